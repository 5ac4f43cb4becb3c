"""Hybrid B (curvelet diagonal + localized ensemble covariance) and the bias-aware two-stage analysis."""

import landimg
import numpy as np
import pytest
from landimg.analysis import CurveletEnKF
from landimg.da.curvelet_hybrid import planar_xyz_km
from landimg.da.curvelet_stats import frame_norms2
from landimg.da.curvelet_var import b_weights
from landimg.da.localization import gaspari_cohn
from landimg.experiment.restart import load_restart, save_restart


def _fields(rng, n, length, shape):
    """Unit-variance Gaussian-correlated periodic fields (n, ny, nx)."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * length) ** 2 * (ky**2 + kx**2))
    w = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n,) + shape)) * filt).real
    return w / np.sqrt(np.mean(w**2))


def _swaths(shape, period, coverage, shift=0):
    jj, ii = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return (((ii + shift - 0.2 * jj) / period) % 1.0) < coverage


def _case(seed, shape=(32, 48), nmem=12, length=4.0, ocean=True):
    rng = np.random.default_rng(seed)
    truth = 0.3 + 0.03 * _fields(rng, 1, length, shape)[0]
    anom = 0.04 * _fields(rng, nmem, length, shape)
    xb = truth + 0.04 * _fields(rng, 1, length, shape)[0] + anom - anom.mean(axis=0)
    if ocean:
        xb[:, :5, :9] = np.nan  # a corner of ocean
    valid = _swaths(shape, 12.0, 0.45) & np.isfinite(xb[0])
    y = np.where(valid, truth + 0.02 * rng.standard_normal(shape), np.nan)
    return truth, xb, y, valid


# ------------------------------------------------------------------------------------------------- hybrid B
def test_beta_zero_is_bitwise_today():
    _, xb, y, _ = _case(0)
    ref, dref = CurveletEnKF().update(xb, y, 0.02, seed=4)
    for radius in (3.0, 50.0):
        xa, d = CurveletEnKF(hybrid_beta=0.0, hybrid_radius_km=radius).update(xb, y, 0.02, seed=4)
        assert np.array_equal(xa, ref, equal_nan=True)
        assert d["cg_iterations"] == dref["cg_iterations"]


def _dense_hybrid_mean(xb, y, valid, sigma, v, transform, beta, radius, land):
    """Exact mean update with the dense hybrid B (image = transform domain, no padding)."""
    shape = xb.shape[1:]
    eye = np.eye(shape[0] * shape[1]).reshape((-1,) + shape)
    cm = transform.forward(eye).T
    bc = cm.T @ (v[:, None] * cm)
    xb0 = np.where(land, xb, 0.0)
    mean = xb0.mean(axis=0)
    x = (xb0 - mean).reshape(xb.shape[0], -1) / np.sqrt(xb.shape[0] - 1.0)
    xyz = np.zeros((land.size, 3))
    xyz[land.ravel()] = planar_xyz_km(land, (1.0, 1.0))
    dist = np.sqrt(np.sum((xyz[:, None] - xyz[None]) ** 2, axis=-1))
    loc = gaspari_cohn(dist / (radius / 2.0))
    b = (1.0 - beta) * bc + beta * (x.T @ x) * loc
    hi = np.flatnonzero(valid.ravel())
    s = b[np.ix_(hi, hi)] + sigma**2 * np.eye(hi.size)
    return mean.ravel() + b[:, hi] @ np.linalg.solve(s, (y.ravel() - mean.ravel())[hi])


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_hybrid_mean_matches_dense_update(beta):
    """Deterministic update (no perturbations): the CG solve with the hybrid operator reproduces the
    dense Kalman mean with B = (1 - beta) C^T diag(v) C + beta (X X^T / (N - 1)) o L exactly."""
    shape, radius = (16, 24), 6.0
    _, xb, y, valid = _case(1, shape=shape, nmem=10, length=3.0)
    land = np.isfinite(xb[0])
    method = CurveletEnKF(pad=0, nscales=3, cg_tol=1e-11, cg_maxiter=2000, perturb_obs=False, denkf=False, bias_correction=False, cg_single_precision=False,
                          variance_filtering=False, layer_increments="regression",
                          hybrid_beta=beta, hybrid_radius_km=radius, inflation_mode="fixed")  # fmt: skip
    transform, _ = method.transform_for(shape)
    xa, diag = method.update(xb, y, 0.02, transform=transform, pad_offset=(0, 0))
    v = b_weights(diag["stats"].s_b, frame_norms2(transform))
    ref = _dense_hybrid_mean(xb, y, valid, 0.02, v, transform, beta, radius, land).reshape(shape)
    err = (xa.mean(axis=0) - ref)[land]
    inc = (ref - np.where(land, xb, 0.0).mean(axis=0))[land]
    assert np.sqrt(np.mean(err**2)) < 1e-6 * np.sqrt(np.mean(inc**2))
    assert np.isnan(xa[:, ~land]).all()
    # and the ensemble part matters: beta = 0 is a different analysis
    xa0, _ = CurveletEnKF(
        pad=0, nscales=3, perturb_obs=False, denkf=False, bias_correction=False, inflation_mode="fixed"
    ).update(xb, y, 0.02, transform=transform, pad_offset=(0, 0))
    assert np.sqrt(np.mean((xa0.mean(axis=0) - ref)[land] ** 2)) > 0.05 * np.sqrt(np.mean(inc**2))


@pytest.mark.slow
def test_beta_one_huge_radius_approaches_ensemble_kalman():
    """beta = 1, localization ~ 1 everywhere, 300 members from a known covariance P: the analysis mean
    approaches the exact Kalman mean with P, within the sampling error of P (~ 1/sqrt(N))."""
    shape, nmem, sigma = (12, 16), 300, 0.02
    rng = np.random.default_rng(7)
    npx = shape[0] * shape[1]
    jj, ii = np.divmod(np.arange(npx), shape[1])
    r2 = (jj[:, None] - jj[None]) ** 2 + (ii[:, None] - ii[None]) ** 2
    p_true = 0.03**2 * np.exp(-r2 / (2 * 4.0**2))
    chol = np.linalg.cholesky(p_true + 1e-12 * np.eye(npx))
    truth = 0.3 + (chol @ rng.standard_normal(npx)).reshape(shape)
    mean_b = truth + (chol @ rng.standard_normal(npx)).reshape(shape)
    anom = (chol @ rng.standard_normal((npx, nmem))).T.reshape((nmem,) + shape)
    xb = mean_b + anom - anom.mean(axis=0)
    valid = _swaths(shape, 6.0, 0.5)
    y = np.where(valid, truth + sigma * rng.standard_normal(shape), np.nan)
    hi = np.flatnonzero(valid.ravel())
    s = p_true[np.ix_(hi, hi)] + sigma**2 * np.eye(hi.size)
    ref = mean_b.ravel() + p_true[:, hi] @ np.linalg.solve(s, (y.ravel() - mean_b.ravel())[hi])
    inc = ref - mean_b.ravel()
    errs = {}
    for beta in (1.0, 0.0):
        m = CurveletEnKF(pad=0, nscales=3, cg_tol=1e-9, perturb_obs=False, inflation_mode="fixed", cg_single_precision=False,
                         hybrid_beta=beta, hybrid_radius_km=1e6, layer_increments="regression")  # fmt: skip
        xa, _ = m.update(xb, y, sigma)
        errs[beta] = np.sqrt(np.mean((xa.mean(axis=0).ravel() - ref) ** 2)) / np.sqrt(np.mean(inc**2))
    print(f"relative error of the mean increment: beta=1 {errs[1.0]:.3f}, beta=0 {errs[0.0]:.3f}")
    assert errs[1.0] < 0.1  # ~ sampling error of a 300-member covariance
    assert errs[1.0] < 0.5 * errs[0.0]  # the curvelet-diagonal B is a different (stationary) model


@pytest.mark.parametrize(
    "kw",
    [
        {"hybrid_beta": 0.5, "hybrid_radius_km": 8.0, "layer_increments": "regression"},
        {"bias_correction": True, "bias_gamma": 0.3},
    ],
)
def test_infinite_obs_error_returns_background(kw):
    _, xb, y, valid = _case(2)
    state = {}
    for std in (np.inf, np.where(valid, np.inf, 0.02)):
        xa, _ = CurveletEnKF(**kw).update(xb, y, std, state=state)
        assert np.array_equal(xa, xb, equal_nan=True)


def test_options_are_checked():
    for kw, msg in [
        ({"hybrid_beta": 1.5}, "hybrid_beta"),
        ({"hybrid_radius_km": 0.0}, "hybrid_radius_km"),
        ({"bias_gamma": -1.0}, "bias_gamma"),
        ({"bias_memory": 1.5}, "bias_memory"),
        ({"bias_nscales": 0}, "bias_nscales"),
        ({"solver": "diagonal", "hybrid_beta": 0.5}, "solver='cg'"),
    ]:
        with pytest.raises(ValueError, match=msg):
            CurveletEnKF(**kw)
    # without a state mapping the bias forecast is 0 at every call: two calls give the same analysis
    _, xb, y, _ = _case(0)
    first, _ = CurveletEnKF(bias_correction=True).update(xb, y, 0.02, seed=1)
    again, diag = CurveletEnKF(bias_correction=True).update(xb, y, 0.02, seed=1)
    assert np.array_equal(first, again, equal_nan=True) and diag["bias_rms"] > 0
    # the diagonal form has no bias stage: bias_correction (the default) leaves it unchanged
    plain, _ = CurveletEnKF(solver="diagonal", bias_correction=False, layer_increments="regression").update(
        xb, y, 0.02, seed=1
    )
    default, _ = CurveletEnKF(solver="diagonal", layer_increments="regression").update(xb, y, 0.02, seed=1)
    assert np.array_equal(plain, default, equal_nan=True)


# ------------------------------------------------------------------------------------------------- bias
def test_gamma_zero_is_the_standard_update_exactly():
    _, xb, y, _ = _case(3)
    ref, _ = CurveletEnKF(bias_correction=False).update(xb, y, 0.02, seed=2)
    state = {}
    for _ in range(2):
        xa, diag = CurveletEnKF(bias_correction=True, bias_gamma=0.0).update(xb, y, 0.02, seed=2, state=state)
        assert np.array_equal(xa, ref, equal_nan=True)
    assert diag["bias_rms"] == 0.0 and not np.any(state["CurveletEnKF.bias"])


@pytest.mark.slow
def test_two_stage_converges_to_a_constant_bias():
    """A synthetic cycle: every background is truth + 0.04 + random error, swaths move; the bias estimate
    (domain mean over land) converges to the true bias, and the analysis in the gaps is less biased."""
    shape, true_bias = (32, 48), 0.04
    rng = np.random.default_rng(11)
    method = CurveletEnKF(bias_correction=True, bias_gamma=0.3)
    state, est, gap_bias = {}, [], []
    for t in range(14):
        truth = 0.3 + 0.03 * _fields(rng, 1, 3.0, shape)[0]
        anom = 0.02 * _fields(rng, 12, 3.0, shape)
        xb = truth + true_bias + 0.02 * _fields(rng, 1, 3.0, shape)[0] + anom - anom.mean(axis=0)
        valid = _swaths(shape, 12.0, 0.45, shift=5 * t)
        y = np.where(valid, truth + 0.02 * rng.standard_normal(shape), np.nan)
        xa, diag = method.update(xb, y, 0.02, seed=t, state=state)
        est.append(diag["bias_mean"])
        gap_bias.append(float(np.mean((xa.mean(axis=0) - truth)[~valid])))
    print("bias estimates", np.round(est, 4), "gap bias", np.round(gap_bias, 4))
    assert abs(np.mean(est[-4:]) - true_bias) < 0.2 * true_bias
    assert all(abs(e - true_bias) < 0.3 * true_bias for e in est[-4:])
    assert abs(np.mean(gap_bias[-4:])) < 0.2 * true_bias
    x0, _ = CurveletEnKF().update(
        xb, y, 0.02, seed=13
    )  # the standard update keeps part of the bias in the gaps
    assert abs(np.mean((x0.mean(axis=0) - truth)[~valid])) > abs(np.mean(gap_bias[-4:]))


def test_bias_state_survives_restarts(tmp_path):
    """The bias is carried in the host's da_state, written into restarts bit for bit; restarts without it
    (older versions) resume with a fresh (zero) bias."""
    grid = landimg.Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -84.0), res=0.5, land_mask="builtin")
    one = np.ones(grid.ncol)
    forcing = {"tair": 293.0 * one, "qair": 0.008 * one, "psurf": 1e5 * one, "precip": 0.0 * one, "wind": 3.0 * one,
                   "swdown": 350.0 * one, "lwdown": 330.0 * one}  # fmt: skip
    method = CurveletEnKF(nscales=3, nangles_coarse=8, bias_correction=True, bias_gamma=0.5,
                          hybrid_beta=0.3, hybrid_radius_km=300.0, layer_increments="regression")  # fmt: skip

    def make():
        return landimg.Ensemble(grid, 6, soil=landimg.soil.from_class("loam", grid.ncol), dt=3600.0, seed=3)

    def cycle(e):
        for _ in range(2):
            e.advance(forcing, nsteps=3)
            diag = e.assimilate(e.mean_image((0.0, 0.05)) - 0.03, 0.02, method)
        return e.images(), diag

    ens = make()
    ens.advance(forcing, nsteps=6)
    _, _diag = cycle(ens)
    bias = ens.da_state["CurveletEnKF.bias"]
    assert isinstance(bias, np.ndarray) and bias.size > 1 and np.any(bias != 0)
    path = tmp_path / "r.npz"
    save_restart(path, {"ens": ens.gather_state()})
    fresh = make()
    fresh.scatter_state(load_restart(path)["ens"])
    assert np.array_equal(fresh.da_state["CurveletEnKF.bias"], bias)
    im1, _ = cycle(ens)
    im2, _ = cycle(fresh)
    np.testing.assert_array_equal(im1, im2)
    old = load_restart(path)["ens"]
    old["da_state"] = {k: v for k, v in old["da_state"].items() if k != "CurveletEnKF.bias"}
    older = make()
    older.scatter_state(old)
    assert "CurveletEnKF.bias" not in older.da_state
    cycle(older)  # resumes, the bias starts again from 0
    assert "CurveletEnKF.bias" in older.da_state


# ------------------------------------------------------------------------------------------------- fine band
def test_fine_band_mean_matches_dense_scale_dependent_update():
    """Issue 18 item 4: B = C^T diag(v o m_c) C + (X_f X_f^T / (N - 1)) o L_f with X_f the anomalies
    band-passed to the finest scale: the CG solve (DEnKF mean) reproduces the dense Kalman mean with that B,
    with an ocean corner; X_c + X_f = X; the band changes the analysis."""
    from landimg.da.curvelet_hybrid import FineBand
    from landimg.da.curvelet_spectral import spectral_frame

    shape, radius = (16, 24), 6.0
    _, xb, y, valid = _case(1, shape=shape, nmem=10, length=3.0)
    land = np.isfinite(xb[0])
    kw = dict(pad=0, nscales=3, cg_tol=1e-11, cg_maxiter=2000, bias_correction=False, inflation_mode="fixed", cg_single_precision=False,
              variance_filtering=False)
    method = CurveletEnKF(fine_band_scales=1, fine_band_radius_km=radius, **kw)
    transform, _ = method.transform_for(shape)
    xa, diag = method.update(xb, y, 0.02, transform=transform, pad_offset=(0, 0))
    band = FineBand(1, radius)
    mf = band.fine_mask(transform)
    v = b_weights(diag["stats"].s_b, frame_norms2(transform)) * (1.0 - mf)
    cm = transform.forward(np.eye(shape[0] * shape[1]).reshape((-1,) + shape)).T
    bc = cm.T @ (v[:, None] * cm)
    xb0 = np.where(land, xb, 0.0)
    mean = xb0.mean(axis=0)
    anom = xb0 - mean
    fine = band.band_passed(anom, transform, (0, 0), spectral_frame(transform))
    coarse = transform.inverse(transform.forward(anom) * (1.0 - mf))
    np.testing.assert_allclose(coarse + fine, anom, atol=1e-14)  # a tight frame: the bands add up
    np.testing.assert_allclose(fine, band.band_passed(anom, transform, (0, 0)), atol=1e-14)  # FFT == transform
    xf = np.where(land, fine, 0.0).reshape(xb.shape[0], -1) / np.sqrt(xb.shape[0] - 1.0)
    xyz = np.zeros((shape[0] * shape[1], 3))
    xyz[land.ravel()] = planar_xyz_km(land, (1.0, 1.0))
    loc = gaspari_cohn(np.sqrt(np.sum((xyz[:, None] - xyz[None]) ** 2, axis=-1)) / (radius / 2.0))
    b = bc + (xf.T @ xf) * loc
    hi = np.flatnonzero(valid.ravel())
    ref = mean.ravel() + b[:, hi] @ np.linalg.solve(b[np.ix_(hi, hi)] + 0.02**2 * np.eye(hi.size),
                                                    (y.ravel() - mean.ravel())[hi])  # fmt: skip
    err = (xa.mean(axis=0).ravel() - ref)[land.ravel()]
    inc = (ref - mean.ravel())[land.ravel()]
    assert np.sqrt(np.mean(err**2)) < 1e-6 * np.sqrt(np.mean(inc**2))
    plain, _ = CurveletEnKF(**kw).update(xb, y, 0.02, transform=transform, pad_offset=(0, 0))
    print("rms(no band - band) / rms(increment)", np.sqrt(np.mean((plain.mean(axis=0).ravel() - ref)[land.ravel()] ** 2)) / np.sqrt(np.mean(inc**2)))
    assert np.sqrt(np.mean((plain.mean(axis=0).ravel() - ref)[land.ravel()] ** 2)) > 0.003 * np.sqrt(np.mean(inc**2))
    with pytest.raises(ValueError, match="fine_band"):
        CurveletEnKF(fine_band_scales=1, hybrid_beta=0.5)
