"""Curvelet EnKF with the real landimg.Curvelet, and the point EnKF (acceptance tests of issue 4)."""

from functools import partial

import landimg
import numpy as np
import pytest
from _support import CORE_SETTINGS
from landimg.analysis import (
    CurveletEnKF,
    PointEnKF,
    apply_bounded,
    gaspari_cohn,
    point_enkf_increments,
)
from landimg.analysis import curvelet_analysis as _curvelet_analysis
from landimg.analysis import curvelet_enkf as _curvelet_enkf
from landimg.da.curvelet_stats import coefficient_groups
from landimg.transform.imageprep import EdgePadding

SHAPE = (24, 40)
curvelet_enkf = partial(_curvelet_enkf, **CORE_SETTINGS)
curvelet_analysis = partial(_curvelet_analysis, **CORE_SETTINGS)


@pytest.fixture(scope="module")
def C():
    return landimg.Curvelet(SHAPE, nscales=3, nangles_coarse=8)


def _field(rng, n, shape=SHAPE, sd=0.04, length=4.0):
    """Smooth random images (n, ny, nx) by FFT filtering of white noise."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * length) ** 2 * (ky**2 + kx**2))
    w = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n,) + shape)) * filt).real
    return sd * w / w.std()


def _setup(rng, n=10):
    truth = 0.3 + _field(rng, 1)[0]
    xb = truth + _field(rng, n)
    return truth, xb


def test_limits_with_real_curvelet(C):
    rng = np.random.default_rng(0)
    truth, xb = _setup(rng)
    for pooling in ("coefficient", "wedge", "scale", "global"):
        for solver in ("cg", "diagonal"):
            np.testing.assert_array_equal(curvelet_enkf(xb, truth, np.inf, C, pooling=pooling, solver=solver), xb)
        xa = curvelet_enkf(xb, truth, 0.0, C, pooling=pooling, seed=1, solver="diagonal")
        np.testing.assert_allclose(xa, np.broadcast_to(truth, xa.shape), atol=1e-12)
        if pooling != "coefficient":  # per-coefficient B is nearly singular: sigma = 0 is ill-posed there
            xa = curvelet_enkf(xb, truth, 0.0, C, pooling=pooling, seed=1, cg_tol=1e-10, cg_maxiter=3000)
            np.testing.assert_allclose(xa, np.broadcast_to(truth, xa.shape), atol=1e-8)
    # obs_std -> 0 with a gap (diagonal form): the observation on observed pixels, each member's own values
    # in the gap
    mask = np.ones(SHAPE, bool)
    mask[5:15, 10:22] = False
    for pooling in ("wedge", "scale"):
        xa = curvelet_enkf(xb, truth, 0.0, C, pooling=pooling, obs_mask=mask, seed=1, solver="diagonal")
        np.testing.assert_allclose(xa[:, mask], np.broadcast_to(truth[mask], xa[:, mask].shape), atol=1e-12)
        np.testing.assert_allclose(xa[:, ~mask], xb[:, ~mask], atol=1e-12)
    y = truth + 0.02 * rng.standard_normal(SHAPE)
    xa, diag = curvelet_analysis(xb, y, 0.03, C, pooling="global", perturb_obs=False, solver="diagonal")
    k = diag["stats"].gain[0]
    assert np.ptp(diag["stats"].gain) == 0 and 0 < k < 1
    np.testing.assert_allclose(xa, (1 - k) * xb + k * y, rtol=0, atol=1e-14)


def test_spread_never_grows_real_curvelet(C):
    rng = np.random.default_rng(1)
    truth, xb = _setup(rng, n=30)
    y = truth + 0.03 * rng.standard_normal(SHAPE)
    for pooling in ("coefficient", "wedge", "scale"):
        xa = curvelet_enkf(xb, y, 0.03, C, pooling=pooling, perturb_obs=False)
        ca, cb = C.forward(xa - xa.mean(0)), C.forward(xb - xb.mean(0))
        assert ca.var(0).sum() <= cb.var(0).sum()
        assert xa.var(0).sum() <= xb.var(0).sum()
        xa = curvelet_enkf(xb, y, 0.03, C, pooling=pooling, seed=2)
        assert xa.var(0).sum() < xb.var(0).sum()


@pytest.mark.slow
def test_linear_gaussian_kalman_real_curvelet(C):
    """B = b I is diagonal in every (tight-frame) basis: large-N mean update == exact Kalman."""
    rng = np.random.default_rng(2)
    n, b, sig = 3000, 0.04**2, 0.03
    m = np.full(SHAPE, 0.3)
    xb = m + np.sqrt(b) * rng.standard_normal((n,) + SHAPE)
    y = m + np.sqrt(b + sig**2) * rng.standard_normal(SHAPE)
    exact = m + b / (b + sig**2) * (y - m)
    for pooling in ("wedge", "scale"):
        xa = curvelet_enkf(xb, y, sig, C, pooling=pooling, seed=3)
        tol = 4.5 * np.sqrt((b + sig**2) / n)
        assert np.abs(xa.mean(0) - exact).max() < tol
        np.testing.assert_allclose(xa.var(0, ddof=1).mean(), b * sig**2 / (b + sig**2), rtol=0.05)


@pytest.mark.parametrize("support", ["land_fraction", "interior"])
@pytest.mark.parametrize("filtering", [False, True])
def test_timings_are_measured_on_every_route_and_move_no_number(C, support, filtering):
    """A ``timings`` dict fills the phases of the pooled-statistics routes (the Fourier energies of
    land-fraction support, the transforms of interior support) and changes nothing of the analysis."""
    rng = np.random.default_rng(5)
    truth, xb = _setup(rng, n=6)
    kw = dict(pooling="wedge", variance_support=support, variance_filtering=filtering, seed=2)
    plain, _ = curvelet_analysis(xb, truth, 0.03, C, **kw)
    timings = {}
    timed, _ = curvelet_analysis(xb, truth, 0.03, C, timings=timings, **kw)
    assert timed.tobytes() == plain.tobytes()
    assert {"statistics", "update"} <= set(timings) and min(timings.values()) >= 0.0


def test_bad_input_and_nan(C, caplog):
    rng = np.random.default_rng(3)
    truth, xb = _setup(rng, n=6)
    y = truth.copy()
    y[2:4, 5] = np.nan
    with caplog.at_level("INFO", logger="landimg.analysis"):
        xa, diag = curvelet_analysis(xb, y, 0.03, C, pooling="wedge")
    assert diag["n_nan_masked"] == 2 and np.isfinite(xa).all() and "2 NaN" in caplog.text
    with pytest.raises(ValueError, match="obs has shape"):
        curvelet_enkf(xb, truth.T, 0.03, C)
    with pytest.raises(ValueError, match="obs_std"):
        curvelet_enkf(xb, truth, -1.0, C)


def test_regional_padding_no_wraparound():
    """An innovation at the west edge must not leak to the east edge (periodic transform + padding)."""
    shape = (24, 40)
    pad = EdgePadding(shape, pad=8)
    C = landimg.Curvelet(pad.padded_shape, nscales=3, nangles_coarse=8)
    rng = np.random.default_rng(4)
    xb = 0.3 + _field(rng, 12, shape, length=6.0)
    y = np.full(shape, np.nan)
    y[:, :4] = 0.45  # observed strip at the west edge only
    for solver in ("diagonal", "cg"):
        xa = curvelet_enkf(xb, y, 0.01, C, pooling="scale", pad_offset=pad.offset, perturb_obs=False, solver=solver)
        inc = np.abs(xa - xb).mean(0)
        assert inc[:, :4].mean() > 0.05
        if solver == "diagonal":
            assert inc[:, -4:].max() < 0.02 * inc[:, :4].mean()
        else:  # the solve spreads the strip's innovation by B into the unobserved domain (its far tail,
            # 2-4 % here); the east edge gets no more than the middle: no leak through the 16-px wrap
            assert inc[:, -4:].max() < 0.03 * inc[:, :4].mean()
            assert inc[:, -4:].max() < inc[:, 16:24].max()


def test_curvelet_method_dataclass():
    rng = np.random.default_rng(5)
    shape = (30, 48)
    truth = 0.3 + _field(rng, 1, shape)[0]
    xb = truth + _field(rng, 8, shape)
    m = CurveletEnKF(nscales=3, nangles_coarse=8, pooling="wedge")
    xa, diag = m.update(xb, truth, 0.02)
    assert xa.shape == xb.shape and diag["n_obs"] == truth.size
    assert np.abs(xa.mean(0) - truth).mean() < 0.5 * np.abs(xb.mean(0) - truth).mean()
    with pytest.raises(ValueError, match="pooling"):
        CurveletEnKF(pooling="pixel")


def test_functional_core_takes_the_method_settings():
    """One place for the settings and their defaults: ``curvelet_enkf``/``curvelet_analysis`` default to
    ``CurveletEnKF()`` and take its fields by name (bitwise the same analysis), or the dataclass itself;
    unknown names and invalid values are refused by the dataclass."""
    rng = np.random.default_rng(8)
    shape = (30, 48)
    truth = 0.3 + _field(rng, 1, shape)[0]
    xb = truth + _field(rng, 8, shape)
    y = np.where(rng.random(shape) < 0.6, truth + 0.02 * rng.standard_normal(shape), np.nan)
    C = landimg.Curvelet(shape, nscales=3, nangles_coarse=8)
    state_a, state_b = {}, {}
    ref, _ = CurveletEnKF(bias_correction=True).update(xb, y, 0.02, transform=C, seed=3, state=state_a)
    np.testing.assert_array_equal(_curvelet_enkf(xb, y, 0.02, C, seed=3, state=state_b, bias_correction=True), ref)
    np.testing.assert_array_equal(_curvelet_enkf(xb, y, 0.02, C, seed=3), CurveletEnKF().update(xb, y, 0.02, transform=C, seed=3)[0])
    assert state_a.keys() == state_b.keys() and {"CurveletEnKF.bias", "CurveletEnKF.inflation_lambda"} <= state_a.keys()
    kw = dict(pooling="scale", denkf=False, solver="diagonal", inflation_mode="fixed", inflation=1.1,
              layer_increments="regression")
    by_name, _ = _curvelet_analysis(xb, y, 0.02, C, seed=3, **kw)
    np.testing.assert_array_equal(by_name, _curvelet_enkf(xb, y, 0.02, C, CurveletEnKF(**kw), seed=3))
    np.testing.assert_array_equal(by_name, _curvelet_enkf(xb, y, 0.02, C, CurveletEnKF(pooling="scale"), seed=3,
                                                          **{k: v for k, v in kw.items() if k != "pooling"}))
    assert not np.array_equal(by_name, ref)
    with pytest.raises(TypeError, match="bogus"):
        _curvelet_enkf(xb, y, 0.02, C, bogus=1)
    with pytest.raises(ValueError, match="finest must be one of"):
        _curvelet_enkf(xb, y, 0.02, C, finest="bogus")
    with pytest.raises(TypeError, match="CurveletEnKF"):
        _curvelet_enkf(xb, y, 0.02, C, {"pooling": "wedge"})


# ------------------------------------------------------------------------------ point EnKF
def test_gaspari_cohn_shape():
    r = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    g = gaspari_cohn(r)
    assert g[0] == 1.0 and g[-1] == 0.0 and g[-2] == 0.0
    assert np.all(np.diff(g) <= 0)
    np.testing.assert_allclose(
        gaspari_cohn(np.array([1.0 - 1e-9, 1.0 + 1e-9])), 5 / 24 * np.ones(2) * 1.0, atol=1e-6
    )


def test_point_enkf_two_layer_kalman():
    """2-layer linear-Gaussian column, obs of the layer mean: large-N update == exact Kalman."""
    rng = np.random.default_rng(6)
    n, ncol = 4000, 40
    B = np.array([[4e-3, 2.4e-3], [2.4e-3, 2e-3]])
    h = np.array([0.7, 0.3])
    r = 0.03**2
    mean = np.array([0.30, 0.25])
    L = np.linalg.cholesky(B)
    state = mean[:, None, None] + np.einsum("ij,jcm->icm", L, rng.standard_normal((2, ncol, n)))
    y = rng.normal(0.3, 0.05, ncol)
    K = B @ h / (h @ B @ h + r)
    exact_mean = mean[:, None] + K[:, None] * (y - h @ mean)[None]
    exact_cov = B - np.outer(K, h @ B)
    dx, diag = point_enkf_increments(state, h, y, 0.03, seed=1)
    xa = state + dx
    err = xa.mean(2) - exact_mean
    assert np.abs(err).max() < 4 * np.sqrt(B[0, 0] / n) * 2
    cov = np.einsum("icm,jcm->ij", xa - xa.mean(2, keepdims=True), xa - xa.mean(2, keepdims=True)) / (
        ncol * (n - 1)
    )
    np.testing.assert_allclose(cov, exact_cov, rtol=0.06, atol=2e-5)
    assert diag["n_obs"] == ncol


def test_point_enkf_localized_matches_dense_reference():
    """Localized perturbed-obs EnKF vs an explicit dense computation column by column."""
    rng = np.random.default_rng(7)
    grid = landimg.Grid.regular(lat=(30.0, 34.0), lon=(0.0, 6.0), res=1.0, land_mask="all")
    lat, lon = grid.column_latlon()
    ncol, nlev, n = grid.ncol, 3, 12
    state = 0.3 + 0.05 * rng.standard_normal((nlev, ncol, n))
    h = np.array([0.5, 0.5, 0.0])
    y = 0.3 + 0.05 * rng.standard_normal(ncol)
    y[5] = np.nan
    radius = 250.0
    dx, diag = point_enkf_increments(state, h, y, 0.02, lat=lat, lon=lon, radius_km=radius, perturb_obs=False)
    assert diag["n_nan_masked"] == 1
    hx = np.einsum("l,lcm->cm", h, state)
    ha = hx - hx.mean(1, keepdims=True)
    xa = state - state.mean(2, keepdims=True)
    valid = np.isfinite(y)
    for c in range(ncol):
        d = grid.column_distances_km(c)
        loc = np.flatnonzero((d < radius) & valid)
        rho = gaspari_cohn(d[loc] / (radius / 2))
        dd = grid.column_distances_km(loc)[:, loc]
        S = gaspari_cohn(dd / (radius / 2)) * (ha[loc] @ ha[loc].T) / (n - 1) + 0.02**2 * np.eye(loc.size)
        P = rho[None] * (xa[:, c, :] @ ha[loc].T) / (n - 1)
        ref = P @ np.linalg.solve(S, y[loc, None] - hx[loc])
        np.testing.assert_allclose(dx[:, c, :], ref, rtol=1e-6, atol=1e-9)  # float32 pair weights


def test_point_enkf_limits_and_bad_input():
    rng = np.random.default_rng(8)
    state = 0.3 + 0.05 * rng.standard_normal((4, 10, 6))
    h = np.array([1.0, 0, 0, 0])
    y = np.full(10, 0.35)
    dx, _ = point_enkf_increments(state, h, y, np.inf)
    np.testing.assert_array_equal(dx, 0.0)
    dx, _ = point_enkf_increments(state, h, y, 0.0, perturb_obs=True)
    np.testing.assert_allclose((state + dx)[0], 0.35, atol=1e-12)
    frozen = np.zeros((10, 6), bool)
    frozen[3] = True
    dx, _ = point_enkf_increments(state, h, y, 0.01, update_mask=~frozen)
    np.testing.assert_array_equal(dx[:, 3], 0.0)
    with pytest.raises(ValueError, match="obs has shape"):
        point_enkf_increments(state, h, y[:-1], 0.01)
    with pytest.raises(ValueError, match="obs_std"):
        point_enkf_increments(state, h, y, -0.01)
    with pytest.raises(ValueError, match="radius_km"):
        PointEnKF(radius_km=-1.0)


def test_mass_booking_bounded():
    rng = np.random.default_rng(9)
    theta = rng.uniform(0.0, 0.45, (3, 50, 4))
    dtheta = 0.2 * rng.standard_normal(theta.shape)
    applied, clipped = apply_bounded(theta, dtheta, 0.45)
    np.testing.assert_allclose(applied + clipped, dtheta, atol=0)
    new = theta + applied
    assert new.min() >= -1e-15 and new.max() <= 0.45 + 1e-15 and np.abs(clipped).sum() > 0


# ------------------------------------------------------------------------------ LETKF
def test_letkf_own_cell_is_exact_square_root_kalman():
    """Own-cell LETKF: analysis mean and covariance == Kalman update with the sample covariance (any N)."""
    from landimg.analysis import point_letkf_increments

    rng = np.random.default_rng(10)
    nlev, ncol, n = 3, 25, 7
    state = 0.3 + 0.05 * rng.standard_normal((nlev, ncol, n))
    h = np.array([0.6, 0.4, 0.0])
    y = 0.3 + 0.05 * rng.standard_normal(ncol)
    y[4] = np.nan
    r = 0.02**2
    dx, diag = point_letkf_increments(state, h, y, 0.02)
    xa = state + dx
    assert diag["n_nan_masked"] == 1
    for c in range(ncol):
        X = state[:, c] - state[:, c].mean(1, keepdims=True)
        P = X @ X.T / (n - 1)
        if c == 4:
            np.testing.assert_array_equal(dx[:, c], 0.0)
            continue
        K = P @ h / (h @ P @ h + r)
        np.testing.assert_allclose(
            xa[:, c].mean(1), state[:, c].mean(1) + K * (y[c] - h @ state[:, c].mean(1)), atol=1e-12
        )
        Xa = xa[:, c] - xa[:, c].mean(1, keepdims=True)
        np.testing.assert_allclose(Xa @ Xa.T / (n - 1), P - np.outer(K, h @ P), atol=1e-12)


@pytest.mark.slow
def test_letkf_localized_matches_perturbed_enkf_mean_for_large_n():
    from landimg.analysis import PointLETKF, point_enkf_increments

    grid = landimg.Grid.regular(lat=(30.0, 33.0), lon=(0.0, 4.0), res=1.0, land_mask="all")
    lat, lon = grid.column_latlon()
    rng = np.random.default_rng(11)
    base = 0.3 + 0.05 * rng.standard_normal((2, grid.ncol, 1))
    state = base + 0.03 * rng.standard_normal((2, grid.ncol, 300))
    y = 0.3 + 0.05 * rng.standard_normal(grid.ncol)
    h = np.array([1.0, 0.0])
    dl, _ = PointLETKF(radius_km=300.0).update(state, h, y, 0.02, lat=lat, lon=lon)
    de, _ = point_enkf_increments(state, h, y, 0.02, lat=lat, lon=lon, radius_km=300.0, perturb_obs=False)
    # R-localization (LETKF) and B-localization (EnKF) differ slightly; for the observed layer the mean
    # updates agree closely; the unobserved layer is uncorrelated with it, so both barely move it
    np.testing.assert_allclose(dl[0].mean(1), de[0].mean(1), atol=1.5e-3)
    assert np.abs(dl[1].mean(1)).max() < 0.015 and np.abs(dl[0].mean(1)).max() > 0.05


def test_obs_error_variance_white_uniform_is_analytic(C):
    """White uniform error: s_o = sigma^2 |row_j|^2 exactly, also with gaps (pooled like s_b)."""
    rng = np.random.default_rng(12)
    truth, xb = _setup(rng, n=5)
    y = truth.copy()
    y[:, :7] = np.nan
    _, diag = curvelet_analysis(xb, y, 0.03, C, pooling="coefficient")
    np.testing.assert_array_equal(diag["stats"].s_o, 0.03**2 * C.row_norms_sq())
    _, diag = curvelet_analysis(xb, y, 0.03, C, pooling="wedge")
    gid = coefficient_groups(C, "wedge")
    pooled = np.bincount(gid, 0.03**2 * C.row_norms_sq()) / np.bincount(gid)
    np.testing.assert_allclose(diag["stats"].s_o, pooled[gid], rtol=1e-14)


# ------------------------------------------------------------------------------ review fixes
def test_obs_error_variance_sigma_map_on_padded_domain_is_not_diluted():
    """On a padded (regional) transform, a sigma map or a correlated error must give the same pooled s_o
    level as the analytic uniform-white path (the Monte-Carlo error images used to be zero in the padding,
    which lowered the pooled s_o by the image fraction, ~0.6: an over-confident gain)."""
    shape = (24, 40)
    pad = EdgePadding(shape)
    C = landimg.Curvelet(pad.padded_shape, nscales=3, nangles_coarse=8)
    rng = np.random.default_rng(13)
    xb = 0.3 + _field(rng, 6, shape)
    y = np.full(shape, 0.3)
    y[:, :6] = np.nan  # a gap: its pixels take the rms sigma
    for pooling in ("wedge", "scale"):
        _, d_uni = curvelet_analysis(xb, y, 0.03, C, pooling=pooling, pad_offset=pad.offset)
        sig = np.full(shape, 0.03)
        sig[0, 10] = 0.0300003  # (nearly) the same error, given as a map
        _, d_map = curvelet_analysis(xb, y, sig, C, pooling=pooling, pad_offset=pad.offset)
        np.testing.assert_allclose(d_map["stats"].s_o, d_uni["stats"].s_o, rtol=1e-5)
        # a sigma map: pooled s_o = mean over the observations of sigma^2 times the pooled row norms (exact)
        sig = np.where(np.arange(shape[1])[None, :] < 20, 0.01, 0.05) * np.ones(shape)
        _, d_two = curvelet_analysis(xb, y, sig, C, pooling=pooling, pad_offset=pad.offset)
        ratio = np.mean(sig[:, 6:] ** 2) / 0.03**2
        np.testing.assert_allclose(d_two["stats"].s_o, ratio * d_uni["stats"].s_o, rtol=1e-12)
    # correlated error with a length far below a cell is white: its Monte-Carlo s_o matches the analytic one
    _, d_cor = curvelet_analysis(
        xb, y, 0.03, C, pooling="wedge", pad_offset=pad.offset, obs_corr_km=1e-3, obs_var_samples=48
    )
    _, d_uni = curvelet_analysis(xb, y, 0.03, C, pooling="wedge", pad_offset=pad.offset)
    np.testing.assert_allclose(d_cor["stats"].s_o, d_uni["stats"].s_o, rtol=0.04)


def test_point_enkf_inflation_innovation_uses_inflated_members():
    """With inflation rho the analysis is the EnKF update of the *inflated* members:
    x_i^a = x_i^rho + K (y - H x_i^rho), K from the inflated covariance (own cell, deterministic)."""
    rng = np.random.default_rng(14)
    nlev, ncol, n, rho = 2, 15, 9, 1.4
    state = 0.3 + 0.04 * rng.standard_normal((nlev, ncol, n))
    h = np.array([0.6, 0.4])
    y = 0.3 + 0.04 * rng.standard_normal(ncol)
    r = 0.02**2
    dx, _ = point_enkf_increments(state, h, y, 0.02, inflation=rho, perturb_obs=False)
    for c in range(ncol):
        mu = state[:, c].mean(1, keepdims=True)
        xr = mu + rho * (state[:, c] - mu)  # inflated members
        A = xr - xr.mean(1, keepdims=True)
        P = A @ A.T / (n - 1)
        K = P @ h / (h @ P @ h + r)
        ref = xr + np.outer(K, y[c] - h @ xr)
        np.testing.assert_allclose(state[:, c] + dx[:, c], ref, atol=1e-13)


def test_inflation_applies_also_without_usable_observations(C):
    """An analysis with no usable observation still inflates (it used to return the background as is, so
    inflation silently depended on whether any observation happened to be valid)."""
    from landimg.analysis import point_letkf_increments

    rng = np.random.default_rng(15)
    truth, xb = _setup(rng, n=6)
    y = np.full(SHAPE, np.nan)
    mean = xb.mean(0)
    xa = curvelet_enkf(xb, y, 0.03, C, pooling="wedge", inflation=1.2)
    np.testing.assert_allclose(xa, mean + 1.2 * (xb - mean), atol=1e-14)
    state = 0.3 + 0.04 * rng.standard_normal((3, 10, 6))
    mu = state.mean(2, keepdims=True)
    h = np.array([0.5, 0.5, 0.0])
    frozen = np.zeros((10, 6), bool)
    frozen[2] = True
    for fn in (point_enkf_increments, point_letkf_increments):
        dx, diag = fn(state, h, np.full(10, np.nan), 0.02, inflation=1.3, update_mask=~frozen)
        assert diag["n_obs"] == 0
        np.testing.assert_array_equal(dx[:, 2], 0.0)
        np.testing.assert_allclose((state + dx)[:, 3:], (mu + 1.3 * (state - mu))[:, 3:], atol=1e-14)


@pytest.mark.parametrize("solver", ["diagonal", "cg"])
def test_denkf_halves_the_anomaly_update(C, solver):
    """DEnKF (Sakov & Oke 2008): the mean gets the full Kalman increment, each anomaly half of it.

    The analysis is linear in the innovation, so against the unperturbed-observation update of the same
    members (mean x + K(y - x), anomalies a - K a) the DEnKF mean is the same and its anomalies are
    (a + (a - K a)) / 2, with gaps in the observations; the gap-aware solve to its tolerance."""
    rng = np.random.default_rng(7)
    truth, xb = _setup(rng, n=12)
    y = truth + 0.02 * rng.standard_normal(SHAPE)
    mask = np.ones(SHAPE, bool)
    mask[:, 12:20] = False
    kw = dict(pooling="wedge", solver=solver, obs_mask=mask, cg_tol=1e-12, cg_maxiter=2000, anomaly_update="joint")
    xa_full, _ = curvelet_analysis(xb, y, 0.03, C, perturb_obs=False, **kw)
    xa_d, _ = curvelet_analysis(xb, y, 0.03, C, denkf=True, **kw)
    atol = 1e-13 if solver == "diagonal" else 1e-9
    np.testing.assert_allclose(xa_d.mean(0), xa_full.mean(0), rtol=0, atol=atol)
    a_b, a_full, a_d = (x - x.mean(0) for x in (xb, xa_full, xa_d))
    np.testing.assert_allclose(a_d, 0.5 * (a_b + a_full), rtol=0, atol=atol)
    assert 0 < np.abs(a_d - a_full).max()  # the anomaly update differs from the full-gain one
