"""The cheaper routes of the curvelet analysis (issue 18 item 6, second round), each against the one it replaced.

* :class:`PixelProduct` (scatter into a reused zero image, one FFT pair, gather; FFTW one image at a time
  when pyFFTW is importable) is the scatter / ``scipy.fft`` / gather product, batch-invariant bit for bit;
* the correlated ``R`` product through it is the Gaussian filter of the image;
* the batched multipliers and the cross energies from spectra are the one-by-one ones;
* the layer mean increments computed from the columns (one batched FFT per member) are those of the image
  route (every layer's anomaly images, cross energies member by member) to round-off, with and without
  variance filtering and with the bias stage;
* with FFTW and without it the whole analysis agrees to the CG tolerance.
"""

from dataclasses import replace

import numpy as np
import pytest
import scipy.fft
from _support import box_geometry, smooth_fields
from landimg.analysis import CurveletEnKF
from landimg.da import curvelet_spectral as cs
from landimg.da.curvelet_background import smoothed_std
from landimg.da.curvelet_layers import layer_mean_increments
from landimg.da.curvelet_stats import embed, extract
from landimg.da.image_covariance import GaussianCorrelation, ObservationCovariance
from landimg.layout import Layout
from landimg.parallel import SerialComm
from landimg.transform.curvelet import Curvelet

BACKENDS = ["fftw", "scipy"]


def _backend(monkeypatch, name):
    if name == "scipy":
        monkeypatch.setattr(cs, "fftw_plans", lambda shape, dtype: None)
    elif cs.fftw_plans((8, 8), np.float64) is None:
        pytest.skip("pyFFTW is not installed")


def _reference_product(z, shape, pixels, m):
    """Fresh zero images in ``m``'s precision, scipy.fft, gathered."""
    img = np.zeros((z.shape[0], shape[0] * shape[1]), dtype=np.float32 if m.dtype == np.float32 else np.float64)
    img[:, pixels] = z
    f = scipy.fft.rfft2(img.reshape((-1,) + shape))
    f *= m
    return scipy.fft.irfft2(f, s=shape).reshape(z.shape[0], -1)[:, pixels].astype(np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pixel_product_is_scatter_fft_gather(monkeypatch, backend, dtype):
    _backend(monkeypatch, backend)
    shape = (24, 30)
    rng = np.random.default_rng(0)
    pixels = np.flatnonzero(rng.random(shape) < 0.4)
    m = (1.0 + rng.random((shape[0], shape[1] // 2 + 1))).astype(dtype)
    prod = cs.PixelProduct(shape, pixels, m)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for k in (5, 2, 7):  # the reused image grows and shrinks; stale values never leak
        z = rng.standard_normal((k, pixels.size))
        ref = _reference_product(z, shape, pixels, m)
        got = prod(z)
        assert got.dtype == np.float64 and got.shape == z.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
        for i in range(k):  # batch-invariant: the same bits as one row at a time (any member layout)
            assert np.array_equal(prod(z[i : i + 1])[0], got[i])


@pytest.mark.parametrize("backend", BACKENDS)
def test_rfft2_images_is_rfft2(monkeypatch, backend):
    _backend(monkeypatch, backend)
    x = np.random.default_rng(1).standard_normal((3, 20, 27))
    ref = scipy.fft.rfft2(x)
    np.testing.assert_allclose(cs.rfft2_images(x), ref, rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("single", [False, True])
def test_correlated_error_product_is_the_gaussian_filter(monkeypatch, backend, single):
    _backend(monkeypatch, backend)
    shape = (20, 36)
    rng = np.random.default_rng(2)
    valid = rng.random(shape) < 0.5
    n = int(valid.sum())
    g = GaussianCorrelation(shape, (50.0, 60.0), 150.0, periodic_x=True)
    cstd = 0.02 + 0.01 * rng.random(n)
    r = ObservationCovariance(np.full(n, 1e-4), cstd, g, valid, single=single)
    z = rng.standard_normal((4, n))
    img = np.zeros((4,) + shape)
    img[:, valid] = cstd * z
    ref = cstd * g.apply(img)[:, valid]
    got = r.correlated(z)
    np.testing.assert_allclose(got, ref, rtol=0, atol=(3e-6 if single else 1e-12) * np.abs(ref).max())
    np.testing.assert_allclose(r.apply(z), 1e-4 * z + got, rtol=0, atol=0)


def test_batched_multipliers_and_spectra_cross_energies():
    C = Curvelet((36, 80), nscales=4, nangles_coarse=8)
    frame = cs.spectral_frame(C)
    rng = np.random.default_rng(3)
    per = rng.random((3, frame.ndir))
    many = frame.multipliers(per)
    for i in range(3):
        np.testing.assert_allclose(many[i], frame.multiplier(per[i]), rtol=1e-14, atol=0)
    a, b = rng.standard_normal((4, 36, 80)), rng.standard_normal((36, 80))
    ref = frame.cross_energies(a, b)
    got = frame.spectra_cross_energies(scipy.fft.rfft2(a), scipy.fft.rfft2(b))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


# ------------------------------------------------------------------ layer mean increments: columns vs images
NMEM = 12
H = np.array([0.6, 0.4, 0.0, 0.0])


def _layer_case(seed=0):
    g = box_geometry(28, 44, (5, 8))
    rng = np.random.default_rng(seed)
    layers = [0.02 * smooth_fields(rng, NMEM, g.shape, 3.0)]
    for lev in range(1, H.size):  # each layer part of the one above, part its own
        layers.append(0.7 * layers[-1] + 0.01 * (1 + lev) * smooth_fields(rng, NMEM, g.shape, 2.0 + lev))
    state = np.stack([g.to_columns(a).T for a in layers])  # (nlev, ncol, N)
    state = 0.25 + state - state.mean(axis=2, keepdims=True)
    truth = 0.25 + 0.02 * smooth_fields(rng, 1, g.shape, 3.0)[0]
    obs = np.where(rng.random(g.shape) < 0.5, truth + 0.02 * rng.standard_normal(g.shape), np.nan)
    return g, state, obs


def _image_route(anom_img, sol, scales):
    """The image route this replaced: every layer's normalised anomaly images, cross energies member by
    member (``SpectralFrame.cross_energies``), one multiplier and inverse FFT per layer."""
    frame, off, shape = sol.frame, sol.offset, sol.valid.shape
    nlev, nloc = anom_img.shape[:2]

    def norm(a, s):
        return a if s is None else np.where(s > 0, a / np.where(s > 0, s, 1.0), 0.0)

    obs = np.tensordot(H, anom_img, axes=1)
    sums = np.zeros((nlev + 1, frame.ndir))
    for i in range(nloc):
        o = embed(norm(obs[i], sol.scale), frame.shape, off)
        lay = np.stack([norm(anom_img[lev, i], None if scales is None else scales[lev]) for lev in range(nlev)])
        sums[:-1] += frame.cross_energies(embed(lay, frame.shape, off), o)
        sums[-1] += frame.energies(o[None])[0]
    beta = np.where(sums[-1] > 0, sums[:-1] / np.where(sums[-1] > 0, sums[-1], 1.0), 0.0)
    v_dir = frame.per_direction(sol.v)
    zimg = np.zeros(frame.shape)
    zt = embed(np.zeros(shape), frame.shape, off).astype(bool)
    zt[off[0] : off[0] + shape[0], off[1] : off[1] + shape[1]] = sol.valid
    zimg[zt] = sol.z if sol.scale is None else sol.z * sol.scale[sol.valid]
    zf = scipy.fft.rfft2(zimg)
    out = np.empty((nlev,) + shape)
    for lev in range(nlev):
        inc = extract(scipy.fft.irfft2(frame.multiplier(beta[lev] * v_dir) * zf, s=frame.shape), shape, off)
        if scales is not None:
            inc = inc * scales[lev]
        if sol.bias_image is not None:
            bf = scipy.fft.rfft2(embed(sol.bias_image, frame.shape, off))
            inc = inc - extract(scipy.fft.irfft2(frame.multiplier(beta[lev]) * bf, s=frame.shape), shape, off)
        out[lev] = inc
    return out


@pytest.mark.parametrize("extra", [{}, {"variance_filtering": False}, {"bias_correction": True}])
def test_layer_mean_increments_from_columns_are_the_image_route(extra):
    g, state, obs = _layer_case()
    method = CurveletEnKF(nscales=4, nangles_coarse=8, inflation_mode="fixed", **extra)
    layout = Layout(NMEM, SerialComm())
    xcol = np.einsum("l,lcm->mc", H, state)
    _, diag = method.update(g.to_image(xcol), obs, 0.02, cell_km=g.cell_km, land=g.land, layout=layout)
    sol = diag["solution"]
    assert (sol.scale is None) == (extra.get("variance_filtering") is False)
    assert (sol.bias_image is None) != bool(extra.get("bias_correction"))
    at = np.moveaxis(state, 2, 0) - state.mean(axis=2)  # (N, nlev, ncol)
    ao = xcol - xcol.mean(axis=0)
    scales = None
    if sol.scale is not None:
        var = g.to_image(np.sum(at**2, axis=0) / (NMEM - 1), fill=0.0)
        scales = smoothed_std(var, g.land, method.variance_smoothing_km, g.cell_km, g.periodic_lon)
    assert sol.single  # the default: the cross energies from single-precision FFTs
    ref = g.to_columns(_image_route(g.to_image(np.moveaxis(at, 0, 1), fill=0.0), sol, scales))
    assert np.abs(ref).max() > 0
    got = layer_mean_increments(at, ao, replace(sol, single=False), layout, g.column_index, scales)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    got = layer_mean_increments(at, ao, sol, layout, g.column_index, scales)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_smoothed_std_batch_is_one_by_one():
    g = box_geometry(20, 30, (4, 6))
    var = np.random.default_rng(4).random((3,) + g.shape) * 1e-3
    many = smoothed_std(var, g.land, 300.0, g.cell_km, False)
    for i in range(3):
        np.testing.assert_allclose(many[i], smoothed_std(var[i], g.land, 300.0, g.cell_km, False), rtol=1e-13, atol=0)
    assert np.all(many[:, ~g.land] == 0.0) and np.all(many[:, g.land] > 0)


def test_analysis_with_and_without_fftw_agree_to_the_cg_tolerance(monkeypatch):
    if cs.fftw_plans((8, 8), np.float32) is None:
        pytest.skip("pyFFTW is not installed")
    g, state, obs = _layer_case(seed=1)
    ctx_kw = dict(cell_km=g.cell_km, land=g.land, layout=Layout(NMEM, SerialComm()))
    method = CurveletEnKF(nscales=4, nangles_coarse=8, inflation_mode="fixed", cg_tol=1e-8, anomaly_update="joint")
    xb = g.to_image(np.einsum("l,lcm->mc", H, state))
    a_fftw, _ = method.update(xb, obs, 0.02, **ctx_kw)
    monkeypatch.setattr(cs, "fftw_plans", lambda shape, dtype: None)
    a_scipy, _ = method.update(xb, obs, 0.02, **ctx_kw)
    inc = np.nanmax(np.abs(a_scipy - xb))
    assert np.nanmax(np.abs(a_fftw - a_scipy)) < 1e-4 * inc


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_filters_sharing_one_fft_grid_do_not_leak(monkeypatch, backend, dtype):
    """Pixel products, zero-padded filters and whole-image filters on the same FFT grid, interleaved (FFTW
    keeps one input image per grid and precision): each equals its scipy.fft reference."""
    _backend(monkeypatch, backend)
    shape = (24, 30)
    rng = np.random.default_rng(6)
    m = (0.5 + rng.random((shape[0], shape[1] // 2 + 1))).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-6

    def ref_filter(x, fft_shape):
        f = scipy.fft.rfft2(x.astype(dtype), s=fft_shape) * m
        return scipy.fft.irfft2(f, s=fft_shape)[..., : x.shape[-2], : x.shape[-1]]

    pixels = np.flatnonzero(rng.random(shape) < 0.3)
    prod = cs.PixelProduct(shape, pixels, m)
    for _ in range(2):
        z = rng.standard_normal((3, pixels.size))
        ref = _reference_product(z, shape, pixels, m)
        np.testing.assert_allclose(prod(z), ref, rtol=0, atol=tol * np.abs(ref).max())
        small = rng.standard_normal((2, 17, 21))
        ref = ref_filter(small, shape)
        np.testing.assert_allclose(cs.filter_images(small, m, shape), ref, rtol=0, atol=tol * np.abs(ref).max())
        whole = rng.standard_normal((2,) + shape)
        ref = ref_filter(whole, shape)
        np.testing.assert_allclose(cs.filter_images(whole, m), ref, rtol=0, atol=tol * np.abs(ref).max())
        x = rng.standard_normal((2,) + shape)
        np.testing.assert_allclose(cs.rfft2_images(x.astype(dtype)), scipy.fft.rfft2(x.astype(dtype)),
                                   rtol=0, atol=tol * np.abs(scipy.fft.rfft2(x)).max())  # fmt: skip


def test_layer_rule_leaves_a_member_major_background_alone():
    """The host may hand the background as a member-major view (the 1 x K layouts gather members that way):
    the layer rule's in-place anomalies must work on a copy, and the increments are those of a C-ordered
    background."""
    from landimg.analysis import AnalysisContext

    g, state, obs = _layer_case(seed=2)
    member_major = np.ascontiguousarray(np.moveaxis(state, 2, 0))  # (N, nlev, ncol)
    view = np.moveaxis(member_major, 0, 2)  # (nlev, ncol, N), not C-contiguous
    before = view.copy()
    method = CurveletEnKF(nscales=4, nangles_coarse=8, inflation_mode="fixed")

    def analyze(theta):
        ctx = AnalysisContext(h=H, geometry=g, layout=Layout(NMEM, SerialComm()))
        return method.analyze(theta, g.to_columns(obs), 0.02, None, ctx)[0]

    d_view = analyze(view)
    assert np.array_equal(view, before)
    assert np.array_equal(d_view, analyze(np.ascontiguousarray(state)))
