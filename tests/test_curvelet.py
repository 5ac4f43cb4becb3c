"""Properties of the real fast discrete curvelet transform (tight frame, exactness, localisation)."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
from landimg.transform._windows import pseudo_angle
from landimg.transform.curvelet import Curvelet, Wedge, default_nscales

SIZES = [(37, 53), (150, 360), (180, 360), (256, 256), (101, 131), (127, 64)]
FINEST = ["wavelets", "curvelets"]
BACKENDS = ["scipy"] + (["pyfftw"] if importlib.util.find_spec("pyfftw") else [])


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key) + [20061])


@pytest.mark.parametrize("finest", FINEST)
@pytest.mark.parametrize("shape", SIZES)
def test_exact_parseval_adjoint(shape, finest):
    C = Curvelet(shape, finest=finest, backend="scipy")
    rng = _rng(*shape)
    x = rng.standard_normal((2, *shape))
    c = C.forward(x)
    assert c.dtype == np.float64 and c.shape == (2, C.ncoef)
    # exact reconstruction
    xr = C.inverse(c)
    assert xr.dtype == np.float64 and xr.shape == x.shape
    assert np.abs(xr - x).max() / np.abs(x).max() < 1e-12
    # Parseval (tight frame)
    ratio = np.sum(c**2, axis=-1) / np.sum(x**2, axis=(-2, -1))
    np.testing.assert_allclose(ratio, 1.0, rtol=0, atol=1e-12)
    # adjoint identity <C x, y> == <x, C^T y> for arbitrary coefficient vectors y
    y = rng.standard_normal((2, C.ncoef))
    lhs = np.sum(c * y, axis=-1)
    rhs = np.sum(x * C.inverse(y), axis=(-2, -1))
    scale = np.linalg.norm(c, axis=-1) * np.linalg.norm(y, axis=-1)
    assert np.all(np.abs(lhs - rhs) / scale < 1e-12)


def test_non_tight_random_coefficients_are_projected():
    # C C^T is the orthogonal projector onto the range: applying it twice changes nothing
    C = Curvelet((40, 48), finest="curvelets", backend="scipy")
    y = _rng(1).standard_normal(C.ncoef)
    p1 = C.forward(C.inverse(y))
    p2 = C.forward(C.inverse(p1))
    np.testing.assert_allclose(p2, p1, atol=1e-12 * np.abs(p1).max())
    assert np.linalg.norm(p1) < np.linalg.norm(y)  # redundant frame: random y is not in the range


def test_defaults_and_angles():
    assert default_nscales((180, 360)) == 5
    C = Curvelet((180, 360))
    assert C.nscales == 5 and C.nangles == (1, 16, 32, 32, 1)
    C = Curvelet((180, 360), finest="curvelets")
    assert C.nangles == (1, 16, 32, 32, 64)
    assert Curvelet((512, 512), nangles_coarse=8).nangles == (1, 8, 16, 16, 32, 1)


def test_counts_near_published():
    # Published FDCT-wrapping counts (real, 16 angles, 5 scales, 180 x 360): 184,813 and 475,497.
    # Our wrapping rectangles are the smallest one-to-one ones for our windows (docs/curvelet.md).
    for finest, published in (("wavelets", 184813), ("curvelets", 475497)):
        C = Curvelet((180, 360), nscales=5, nangles_coarse=16, finest=finest)
        assert abs(C.ncoef / published - 1.0) < 0.05


@pytest.mark.parametrize("shape", [(180, 360), (256, 256), (150, 360)])
def test_redundancy(shape):
    rw = Curvelet(shape, finest="wavelets").redundancy
    rc = Curvelet(shape, finest="curvelets").redundancy
    assert 2.6 < rw < 3.0
    assert 6.8 < rc < 7.6


def test_wedge_records_cover_coefficients():
    for finest in FINEST:
        C = Curvelet((150, 360), finest=finest)
        assert all(isinstance(w, Wedge) for w in C.wedges)
        with pytest.raises(dataclasses.FrozenInstanceError):
            C.wedges[0].scale = 3
        start = 0
        for w in C.wedges:
            assert w.slice.start == start and w.slice.stop - w.slice.start == w.shape[0] * w.shape[1]
            assert 0.0 <= w.orientation < np.pi
            start = w.slice.stop
        assert start == C.ncoef
        for s in range(C.nscales):
            angles = sorted(w.angle for w in C.wedges if w.scale == s)
            assert angles == list(range(C.nangles[s]))
        assert C.wedges[0].scale == 0 and C.wedges[-1].scale == C.nscales - 1
        sc, wi = C.scale_of_coef(), C.wedge_of_coef()
        assert sc.shape == wi.shape == (C.ncoef,)
        for i in (0, len(C.wedges) // 2, len(C.wedges) - 1):
            w = C.wedges[i]
            assert np.all(wi[w.slice] == i) and np.all(sc[w.slice] == w.scale)


def test_real_and_imaginary_wedges_share_orientation():
    C = Curvelet((128, 128))
    for s in range(1, C.nscales - 1):
        ws = {w.angle: w for w in C.wedges if w.scale == s}
        n = C.nangles[s]
        for l in range(n // 2):
            assert ws[l].orientation == ws[l + n // 2].orientation
            assert ws[l].shape == ws[l + n // 2].shape


@pytest.mark.parametrize("shape", [(5, 5), (10, 40)])
def test_too_small(shape):
    with pytest.raises(ValueError, match="too"):
        Curvelet(shape, nscales=3 if shape == (5, 5) else 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"nscales": 6}, "too many scales"),
        ({"nscales": 1}, "nscales"),
        ({"nangles_coarse": 6}, "nangles_coarse"),
        ({"nangles_coarse": 18}, "nangles_coarse"),
        ({"finest": "ridgelets"}, "finest"),
        ({"backend": "mkl"}, "backend"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Curvelet((64, 80), **kwargs)


def test_bad_input():
    C = Curvelet((40, 50))
    x = np.zeros((40, 50))
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        C.forward(bad)
    with pytest.raises(ValueError, match="shape"):
        C.forward(np.zeros((50, 40)))
    with pytest.raises(ValueError, match="shape"):
        C.forward(np.zeros(40))
    with pytest.raises(ValueError, match="real"):
        C.forward(x + 1j)
    with pytest.raises(ValueError, match="shape"):
        C.inverse(np.zeros(C.ncoef + 1))
    c = np.zeros(C.ncoef)
    c[7] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        C.inverse(c)
    with pytest.raises(ValueError, match="real"):
        C.inverse(np.zeros(C.ncoef, dtype=complex))


@pytest.mark.parametrize("finest", FINEST)
def test_constant_image_in_coarsest_scale(finest):
    C = Curvelet((90, 121), finest=finest)
    c = C.forward(np.full((90, 121), 0.27))
    sc = C.scale_of_coef()
    total = np.sum(c**2)
    np.testing.assert_allclose(total, 0.27**2 * 90 * 121, rtol=1e-12)
    assert np.sum(c[sc > 0] ** 2) < 1e-24 * total


def _pseudo(orientation: float) -> float:
    """Pseudo-angle (arc length on the unit square, [0, 8)) of the direction ``(sin o, cos o)`` =
    (row, column) frequency; wedge centres sit at ``(l + 1/2) h`` on it."""
    return float(pseudo_angle(np.array(np.sin(orientation)), np.array(np.cos(orientation))))


@pytest.mark.parametrize(
    "shape, k",
    [
        ((128, 128), (5, 17)),
        ((128, 128), (20, -20)),
        ((96, 200), (-9, 30)),
        ((101, 131), (0, 25)),
        ((120, 150), (24, 2)),
    ],
)
def test_plane_wave_in_matching_orientation(shape, k):
    """A plane wave's energy lies only in wedges whose orientation is within the window's reach.

    The angular window of a wedge at scale s spans +-h = 8/n_s pseudo-angle units around its centre, and a
    pseudo-angle unit is at most one radian, so wedges further than h radians from the wave's direction must
    see nothing, and the nearest wedge (within h/2) must see a large share.
    """
    M, N = shape
    C = Curvelet(shape, finest="curvelets", backend="scipy")
    i, j = np.mgrid[0:M, 0:N]
    x = np.cos(2 * np.pi * (k[0] * i / M + k[1] * j / N) + 0.3)
    c = C.forward(x)
    energy = np.array([np.sum(c[w.slice] ** 2) for w in C.wedges])
    total = energy.sum()
    angle = np.mod(np.arctan2(k[0] / M, k[1] / N), np.pi)
    hit = energy > 1e-20 * total
    assert np.isclose(total, np.sum(x**2), rtol=1e-12)
    best = 0.0
    for idx in np.flatnonzero(hit):
        w = C.wedges[idx]
        if w.scale == 0:
            continue
        h = 8.0 / C.nangles[w.scale]
        d = abs(np.mod(w.orientation - angle + np.pi / 2, np.pi) - np.pi / 2)
        assert d < h + 1e-9, (w, d, h)
        # exact form: the angular window is supported on |pseudo-angle - centre| < h (pseudo-angle units)
        dp = abs(np.mod(_pseudo(w.orientation) - _pseudo(angle) + 2.0, 4.0) - 2.0)
        assert dp < h * (1 + 1e-12), (w, dp, h)
        if d <= h / 2 + 1e-9:
            best = max(best, energy[idx])
    assert best > 0.2 * total
    # the wave is in one or two (adjacent) scales only
    assert len({C.wedges[i].scale for i in np.flatnonzero(hit)}) <= 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("finest", FINEST)
def test_batch_equals_single_bitwise(backend, finest):
    C = Curvelet((60, 90), finest=finest, backend=backend)
    x = _rng(3).standard_normal((4, 8, 60, 90))
    c = C.forward(x)
    assert c.shape == (4, 8, C.ncoef)
    xr = C.inverse(c)
    for a in (0, 3):
        for b in (0, 5, 7):
            assert np.array_equal(c[a, b], C.forward(x[a, b]))
            assert np.array_equal(xr[a, b], C.inverse(c[a, b]))
    assert np.array_equal(C.forward(x[1, 2:6]), c[1, 2:6])
    # repeated calls do not depend on earlier calls (FFT plan buffers are reused internally)
    assert np.array_equal(C.forward(x), c) and np.array_equal(C.inverse(c), xr)
    np.testing.assert_allclose(xr, x, atol=1e-13)


def test_backends_agree():
    if len(BACKENDS) < 2:
        pytest.skip("pyfftw not installed")
    x = _rng(4).standard_normal((3, 70, 45))
    a, b = (Curvelet((70, 45), finest="curvelets", backend=be) for be in BACKENDS)
    np.testing.assert_allclose(a.forward(x), b.forward(x), atol=1e-13)
    np.testing.assert_allclose(a.inverse(a.forward(x)), b.inverse(a.forward(x)), atol=1e-13)


def test_input_dtypes_and_plan_cache():
    C1 = Curvelet((48, 64))
    C2 = Curvelet((48, 64))
    assert C1._plan is C2._plan
    xi = _rng(5).integers(0, 10, size=(48, 64))
    np.testing.assert_array_equal(C1.forward(xi), C1.forward(xi.astype(np.float64)))
    x32 = xi.astype(np.float32)
    np.testing.assert_array_equal(C1.forward(x32), C1.forward(xi.astype(np.float64)))


@pytest.mark.parametrize("finest", FINEST)
@pytest.mark.parametrize("shape", [(37, 53), (64, 80), (49, 49)])
def test_row_norms_exact(shape, finest):
    C = Curvelet(shape, finest=finest, backend="scipy")
    nr = C.row_norms_sq()
    assert nr.shape == (C.ncoef,) and np.all(nr > 0)
    # trace of C^T C = identity on M*N pixels
    np.testing.assert_allclose(nr.sum(), shape[0] * shape[1], rtol=1e-12)
    # brute force: the frame element of coefficient k is C^T e_k
    rng = _rng(6, *shape)
    ks = np.unique(np.r_[rng.choice(C.ncoef, 150, replace=False), [w.slice.start for w in C.wedges]])
    e = np.zeros((ks.size, C.ncoef))
    e[np.arange(ks.size), ks] = 1.0
    brute = np.sum(C.inverse(e) ** 2, axis=(-2, -1))
    np.testing.assert_allclose(nr[ks], brute, rtol=1e-12)


@pytest.mark.slow
def test_white_noise_variance_matches_row_norms():
    # empirical check of the documented use: var(C eps) = sigma^2 * row_norms_sq for white noise
    C = Curvelet((32, 48), finest="curvelets")
    sigma = 0.04
    eps = sigma * _rng(7).standard_normal((4000, 32, 48))
    var = np.var(C.forward(eps), axis=0)
    wi = C.wedge_of_coef()
    nr = C.row_norms_sq()
    # pooled per wedge to beat sampling noise (relative std of a pooled variance ~ 1e-3)
    pooled = np.bincount(wi, var) / np.bincount(wi, nr)
    np.testing.assert_allclose(pooled, sigma**2, rtol=0.06)


def test_too_small_default_scales():
    with pytest.raises(ValueError, match="too small"):
        Curvelet((4, 100))
    C = Curvelet((6, 6))  # smallest image with a default: 2 scales
    x = _rng(8).standard_normal((6, 6))
    np.testing.assert_allclose(C.inverse(C.forward(x)), x, atol=1e-14)


def test_out_arguments():
    C = Curvelet((30, 44))
    x = _rng(9).standard_normal((3, 30, 44))
    buf = np.empty((3, C.ncoef))
    c = C.forward(x, out=buf)
    assert c is buf and np.array_equal(c, C.forward(x))
    img = np.empty((3, 30, 44))
    assert C.inverse(c, out=img) is img
    np.testing.assert_allclose(img, x, atol=1e-13)
    with pytest.raises(ValueError, match="out"):
        C.forward(x, out=np.empty((3, C.ncoef), dtype=np.float32))
    with pytest.raises(ValueError, match="out"):
        C.inverse(c, out=np.empty((30, 44)))


@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("finest", FINEST)
def test_exact_other_backend(backend, finest):
    C = Curvelet((180, 360), finest=finest, backend=backend)
    x = _rng(10).standard_normal((2, 180, 360))
    c = C.forward(x)
    assert np.abs(C.inverse(c) - x).max() / np.abs(x).max() < 1e-12
    np.testing.assert_allclose(np.sum(c**2, axis=-1) / np.sum(x**2, axis=(-2, -1)), 1.0, rtol=0, atol=1e-12)
