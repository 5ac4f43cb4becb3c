"""Curvelet-EnKF functional core against an orthonormal stand-in transform (2-D DCT).

With an orthonormal basis the 'curvelet-space' update is the exact Kalman filter whenever B is diagonal
in that basis, so the core's maths can be checked exactly; tests with the real Curvelet are in
test_analysis.py.
"""

from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
from _support import CORE_SETTINGS
from landimg.analysis import curvelet_enkf as _curvelet_enkf
from landimg.da.curvelet_enkf import curvelet_analysis as _curvelet_analysis
from landimg.da.curvelet_stats import coefficient_groups, frame_norms2
from scipy.fft import dctn, idctn


@dataclass
class _Wedge:
    scale: int
    slice: slice


class DCTTransform:
    """Orthonormal 2-D DCT with coefficients grouped into dyadic 'scales' (4 fake wedges per scale)."""

    def __init__(self, shape):
        self.shape = shape
        ky, kx = np.meshgrid(np.arange(shape[0]) / shape[0], np.arange(shape[1]) / shape[1], indexing="ij")
        r = np.maximum(ky, kx).ravel()
        scale = np.clip(np.floor(np.log2(np.maximum(r, 1e-9) * 8)).astype(int) + 1, 0, 3)
        quad = ((ky.ravel() > 0.5 * r).astype(int) + 2 * (kx.ravel() > 0.5 * r)) % 4
        key = scale * 4 + quad
        self.perm = np.argsort(key, kind="stable")
        self.ncoef = r.size
        self.wedges = []
        sk = key[self.perm]
        for k in np.unique(sk):
            idx = np.flatnonzero(sk == k)
            self.wedges.append(_Wedge(int(k // 4), slice(int(idx[0]), int(idx[-1]) + 1)))
        self.norms2 = np.ones(self.ncoef)

    def forward(self, x):
        c = dctn(np.asarray(x, float), norm="ortho", axes=(-2, -1))
        return c.reshape(c.shape[:-2] + (-1,))[..., self.perm]

    def inverse(self, c):
        flat = np.empty_like(c)
        flat[..., self.perm] = c
        return idctn(flat.reshape(c.shape[:-1] + self.shape), norm="ortho", axes=(-2, -1))


SHAPE = (16, 24)
curvelet_enkf = partial(_curvelet_enkf, **CORE_SETTINGS)
curvelet_analysis = partial(_curvelet_analysis, **CORE_SETTINGS)


@pytest.fixture(scope="module")
def T():
    return DCTTransform(SHAPE)


def _ensemble(rng, n, shape=SHAPE, sd=0.05):
    truth = 0.3 + 0.05 * np.sin(np.linspace(0, 3, shape[1]))[None, :] * np.ones(shape)
    return truth, truth + sd * rng.standard_normal((n,) + shape)


def test_stand_in_is_orthonormal(T):
    x = np.random.default_rng(0).standard_normal((3,) + SHAPE)
    np.testing.assert_allclose(T.inverse(T.forward(x)), x, atol=1e-13)
    gid = coefficient_groups(T, "wedge")
    assert gid.min() == 0 and (np.diff(gid) >= 0).all()
    np.testing.assert_array_equal(frame_norms2(T), 1.0)


def test_infinite_obs_error_returns_background_exactly(T):
    rng = np.random.default_rng(1)
    truth, xb = _ensemble(rng, 8)
    for pooling in ("coefficient", "wedge", "scale"):
        xa = curvelet_enkf(xb, truth, np.inf, T, pooling=pooling)
        np.testing.assert_array_equal(xa, xb)
    std = np.full(SHAPE, np.inf)
    np.testing.assert_array_equal(curvelet_enkf(xb, truth, std, T), xb)


def test_zero_obs_error_returns_observation(T):
    rng = np.random.default_rng(2)
    truth, xb = _ensemble(rng, 8)
    mask = np.ones(SHAPE, bool)
    mask[:, :5] = False
    for perturb in (True, False):
        kw = dict(pooling="wedge", perturb_obs=perturb, solver="diagonal")
        xa = curvelet_enkf(xb, truth, 0.0, T, **kw)
        np.testing.assert_allclose(xa, np.broadcast_to(truth, xa.shape), atol=1e-12)
        # with a gap: the observation on observed pixels, each member's own value in the gap
        xa = curvelet_enkf(xb, truth, 0.0, T, obs_mask=mask, **kw)
        np.testing.assert_allclose(xa[:, mask], np.broadcast_to(truth[mask], xa[:, mask].shape), atol=1e-12)
        np.testing.assert_allclose(xa[:, ~mask], xb[:, ~mask], atol=1e-12)
        # the gap-aware solve interpolates the observations (to its CG tolerance) and moves the gap
        kw.update(solver="cg", cg_tol=1e-10, cg_maxiter=2000)
        xa = curvelet_enkf(xb, truth, 0.0, T, obs_mask=mask, **kw)
        np.testing.assert_allclose(xa[:, mask], np.broadcast_to(truth[mask], xa[:, mask].shape), atol=1e-8)
        assert np.abs(xa[:, ~mask] - xb[:, ~mask]).max() > 1e-3


def test_constant_gain_is_convex_blend(T):
    rng = np.random.default_rng(3)
    truth, xb = _ensemble(rng, 6)
    y = truth + 0.02 * rng.standard_normal(SHAPE)
    xa, diag = curvelet_analysis(xb, y, 0.05, T, pooling="global", perturb_obs=False)
    k = diag["stats"].gain
    assert np.ptp(k) == 0 and 0 < k[0] < 1
    np.testing.assert_allclose(xa, (1 - k[0]) * xb + k[0] * y, rtol=0, atol=1e-14)


def test_spread_never_grows(T):
    rng = np.random.default_rng(4)
    truth, xb = _ensemble(rng, 40)
    y = truth + 0.05 * rng.standard_normal(SHAPE)
    for pooling in ("coefficient", "wedge", "scale"):
        xa = curvelet_enkf(xb, y, 0.05, T, pooling=pooling, perturb_obs=False)
        ca, cb = T.forward(xa - xa.mean(0)), T.forward(xb - xb.mean(0))
        assert np.all(ca.var(0) <= cb.var(0) * (1 + 1e-12))  # per coefficient
        xa = curvelet_enkf(xb, y, 0.05, T, pooling=pooling, perturb_obs=True, seed=5)
        assert xa.var(0, ddof=1).sum() < xb.var(0, ddof=1).sum()


def test_linear_gaussian_matches_kalman(T):
    """B diagonal in the basis, scale-dependent: EnKF mean update == exact Kalman (large N)."""
    rng = np.random.default_rng(6)
    scale = coefficient_groups(T, "scale")
    b = np.array([4e-3, 2e-3, 1e-3, 2.5e-4])[scale]
    sig = 0.03
    n = 4000
    m = np.full(SHAPE, 0.25)
    xb = m + T.inverse(np.sqrt(b) * rng.standard_normal((n, T.ncoef)))
    y = m + T.inverse(np.sqrt(b) * rng.standard_normal(T.ncoef)) + sig * rng.standard_normal(SHAPE)
    exact = m + T.inverse(b / (b + sig**2) * T.forward(y - m))
    exact_var = T.inverse(np.sqrt(b * sig**2 / (b + sig**2)) * np.eye(T.ncoef))  # rows: sqrt(A) columns
    xa = curvelet_enkf(xb, y, sig, T, pooling="scale", seed=9)
    err = xa.mean(0) - exact
    tol = 4 * np.sqrt((b.max() + sig**2) / n)
    assert np.abs(err).max() < tol
    # analysis variance per pixel matches the exact posterior within sampling error
    np.testing.assert_allclose(xa.var(0, ddof=1), (exact_var**2).sum(0), rtol=0.15)


def test_nan_obs_masked_and_bad_input(T, caplog):
    rng = np.random.default_rng(7)
    truth, xb = _ensemble(rng, 5)
    y = truth.copy()
    y[3, 4] = np.nan
    y[0, :3] = np.nan
    with caplog.at_level("INFO", logger="landimg.analysis"):
        xa, diag = curvelet_analysis(xb, y, 0.04, T, pooling="wedge")
    assert diag["n_nan_masked"] == 4 and diag["n_obs"] == y.size - 4
    assert np.isfinite(xa).all()
    assert "4 NaN" in caplog.text
    with pytest.raises(ValueError, match="obs has shape"):
        curvelet_enkf(xb, y[:-1], 0.04, T)
    with pytest.raises(ValueError, match="obs_std"):
        curvelet_enkf(xb, truth, -0.1, T)
    with pytest.raises(ValueError, match="obs_std"):
        curvelet_enkf(xb, truth, np.full((3, 3), 0.1), T)
    with pytest.raises(ValueError, match="pooling"):
        curvelet_enkf(xb, truth, 0.1, T, pooling="bogus")


def test_gaps_keep_each_members_values_and_ocean_untouched(T):
    rng = np.random.default_rng(8)
    truth, xb = _ensemble(rng, 10)
    xb[:, :2, :] = np.nan  # "ocean" rows
    mask = np.ones(SHAPE, bool)
    mask[:, 12:] = False  # observation gap
    xa = curvelet_enkf(xb, truth, 0.02, T, pooling="wedge", obs_mask=mask, perturb_obs=False)
    assert np.isnan(xa[:, :2]).all() and np.isfinite(xa[:, 2:]).all()
    # spread far inside the gap is kept (not collapsed to the mean)
    far = (slice(None), slice(2, None), slice(20, None))
    assert xa[far].std(0).mean() > 0.5 * xb[far].std(0).mean()
    # observed part is pulled to the observation
    obs_part = (slice(None), slice(4, None), slice(0, 8))
    assert (
        np.abs(xa[obs_part].mean(0) - truth[4:, :8]).mean()
        < 0.5 * np.abs(xb[obs_part].mean(0) - truth[4:, :8]).mean()
    )


def test_update_mask_and_padding(T):
    rng = np.random.default_rng(9)
    small = (12, 20)
    Tp = DCTTransform((16, 24))  # padded transform
    truth, xb = _ensemble(rng, 6, shape=small)
    frozen = np.zeros(small, bool)
    frozen[5, 5] = True
    xa = curvelet_enkf(xb, truth, 0.01, Tp, pooling="scale", update_mask=~frozen)
    np.testing.assert_array_equal(xa[:, 5, 5], xb[:, 5, 5])
    assert np.abs(xa.mean(0) - truth).mean() < 0.5 * np.abs(xb.mean(0) - truth).mean()


def test_correlated_obs_error_and_rtps(T):
    rng = np.random.default_rng(10)
    truth, xb = _ensemble(rng, 30)
    _, d1 = curvelet_analysis(xb, truth, 0.05, T, pooling="scale", obs_corr_km=3.0, cell_km=(1.0, 1.0))
    s_o = np.asarray(d1["stats"].per_scale()["s_o"])
    assert s_o[0] > 3 * s_o[-1]  # correlated error is red: more variance at coarse scales
    xa2 = curvelet_enkf(xb, truth, 0.05, T, pooling="scale", rtps=1.0, seed=3)
    np.testing.assert_allclose(xa2.std(0, ddof=1), xb.std(0, ddof=1), rtol=1e-10)
