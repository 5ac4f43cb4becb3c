"""Spatially correlated observation error in the curvelet EnKF (issue 18, item 2): R as an operator.

``R = D_w^2 + D_c G D_c`` with ``G_pq = exp(-|r_p - r_q|^2 / L^2)`` is applied by a Gaussian filter on the
observed pixels (never formed, never inverted, :mod:`landimg.da.image_covariance`); the gap-aware solve
uses it. Checked against dense matrices on small grids: the filter itself, the solve, and a
linear-Gaussian analysis whose truth and errors are drawn from the dense B and R.
"""

import numpy as np
import pytest
from landimg.analysis import CurveletEnKF, ObsError
from landimg.da.curvelet_var import gap_aware_increments
from landimg.da.image_covariance import GaussianCorrelation, ObservationCovariance, observation_covariance

CELL = (25.0, 30.0)  # km


def _dense_gaussian(shape, cell_km, length_km, periodic_x):
    yy, xx = np.meshgrid(np.arange(shape[0]) * cell_km[0], np.arange(shape[1]) * cell_km[1], indexing="ij")
    y, x = yy.ravel(), xx.ravel()
    dy2 = (y[:, None] - y[None, :]) ** 2
    dx = x[:, None] - x[None, :]
    if not periodic_x:
        return np.exp(-(dy2 + dx**2) / length_km**2)
    span = shape[1] * cell_km[1]
    return sum(np.exp(-(dy2 + (dx + m * span) ** 2) / length_km**2) for m in range(-6, 7))


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("length", [40.0, 300.0])  # shorter than a cell ... longer than the image
def test_gaussian_filter_is_the_dense_correlation(periodic, length):
    shape = (9, 13)
    g = GaussianCorrelation(shape, CELL, length, periodic)
    n = shape[0] * shape[1]
    dense = g.apply(np.eye(n).reshape((n,) + shape)).reshape(n, n)
    ref = _dense_gaussian(shape, CELL, length, periodic)
    np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-14)
    assert np.linalg.eigvalsh(0.5 * (dense + dense.T)).min() > -1e-12


def test_observation_covariance_products():
    rng = np.random.default_rng(1)
    shape = (10, 12)
    valid = rng.random(shape) < 0.5
    w, c = 0.01 + 0.01 * rng.random(shape), 0.02 + 0.01 * rng.random(shape)
    r = observation_covariance(w, c, 80.0, valid, CELL)
    assert isinstance(r, ObservationCovariance)
    gd = _dense_gaussian(shape, CELL, 80.0, False)
    hi = np.flatnonzero(valid.ravel())
    dense = np.diag(w.ravel()[hi] ** 2) + c.ravel()[hi, None] * gd[np.ix_(hi, hi)] * c.ravel()[None, hi]
    z = rng.standard_normal((3, hi.size))
    np.testing.assert_allclose(r.apply(z), z @ dense, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.diagonal(), np.diag(dense), rtol=1e-14)
    assert r.total() == pytest.approx(dense.sum(), rel=1e-13)
    white = observation_covariance(w, 0.0, 80.0, valid, CELL)  # no correlated part: diagonal
    np.testing.assert_array_equal(white.apply(z), (w[valid] ** 2) * z)


def test_solve_with_correlated_r_matches_dense_update():
    """The gap-aware solve with R as an operator equals B H^T (H B H^T + R)^-1 d with the dense R."""
    import landimg

    shape = (20, 28)
    C = landimg.Curvelet(shape, nscales=3, nangles_coarse=8)
    rng = np.random.default_rng(3)
    v = np.zeros(C.ncoef)
    for wdg in C.wedges:
        v[wdg.slice] = 4.0 ** (-wdg.scale) * 1e-3
    valid = rng.random(shape) < 0.6
    valid[:, 8:14] = False
    r = observation_covariance(0.01, 0.02, 90.0, valid, CELL)
    d = 0.03 * rng.standard_normal((2,) + shape)
    inc, info = gap_aware_increments(d, valid, r, v, C, tol=1e-12, maxiter=3000)
    assert info.converged.all()
    n = shape[0] * shape[1]
    Cm = C.forward(np.eye(n).reshape((n,) + shape)).T
    B = Cm.T @ (v[:, None] * Cm)
    hi = np.flatnonzero(valid.ravel())
    R = 1e-4 * np.eye(hi.size) + 4e-4 * _dense_gaussian(shape, CELL, 90.0, False)[np.ix_(hi, hi)]
    for i in range(2):
        ref = B[:, hi] @ np.linalg.solve(B[np.ix_(hi, hi)] + R, d[i].ravel()[hi])
        np.testing.assert_allclose(inc[i].ravel(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    white, _ = gap_aware_increments(d, valid, 5e-4, v, C, tol=1e-12, maxiter=3000)  # same total variance
    assert np.sqrt(np.mean((white - inc) ** 2)) > 0.1 * np.sqrt(np.mean(inc**2))


def _linear_gaussian_case(seed=11, shape=(24, 32), nmem=400, sigma=0.02, white_fraction=0.3, length=150.0):
    """Truth, background ensemble and observations drawn from the dense B (a red curvelet spectrum) and
    the dense correlated R; swaths of 50 % coverage."""
    method = CurveletEnKF(pad=0, nscales=3)
    C, _ = method.transform_for(shape)
    v = np.zeros(C.ncoef)
    for wdg in C.wedges:
        v[wdg.slice] = 3e-3 * 2.0 ** (-wdg.scale)
    rng = np.random.default_rng(seed)
    draw = lambda n: C.inverse(np.sqrt(v) * rng.standard_normal((n, C.ncoef)))  # noqa: E731
    truth = 0.3 + draw(1)[0]
    mean_b = truth + draw(1)[0]
    anom = draw(nmem)
    xb = mean_b + anom - anom.mean(axis=0)
    jj, ii = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    valid = ((ii - np.tan(np.radians(12.0)) * jj) / 12.0) % 1.0 < 0.5
    G = _dense_gaussian(shape, CELL, length, False)
    lam, vec = np.linalg.eigh(G)
    e_corr = vec @ (np.sqrt(np.clip(lam, 0.0, None)) * rng.standard_normal(lam.size))
    err = sigma * (np.sqrt(white_fraction) * rng.standard_normal(lam.size) + np.sqrt(1 - white_fraction) * e_corr)
    y = np.where(valid, truth + err.reshape(shape), np.nan)
    n = shape[0] * shape[1]
    Cm = C.forward(np.eye(n).reshape((n,) + shape)).T
    B = Cm.T @ (v[:, None] * Cm)
    hi = np.flatnonzero(valid.ravel())
    R = sigma**2 * (white_fraction * np.eye(hi.size) + (1 - white_fraction) * G[np.ix_(hi, hi)])
    S = B[np.ix_(hi, hi)] + R
    ref = mean_b.ravel() + B[:, hi] @ np.linalg.solve(S, (y.ravel() - mean_b.ravel())[hi])
    pa = np.diag(B) - np.einsum("ij,ji->i", B[:, hi], np.linalg.solve(S, B[hi, :]))
    declared = ObsError.from_fraction(sigma, white_fraction, length)
    return C, xb, y, declared, ref, pa


def test_linear_gaussian_mean_matches_dense_kalman_with_correlated_r():
    """Issue 18 acceptance: with the declared correlated R the analysis mean (B from 400 members, DEnKF)
    matches the exact Kalman mean with the true B and R within 2 % of the analysis error std; assuming a
    white R of the same total variance does not."""
    C, xb, y, declared, ref, pa = _linear_gaussian_case()
    kw = dict(pad=0, nscales=3, cg_tol=1e-8, bias_correction=False, inflation_mode="fixed", cg_single_precision=False)
    xa, diag = CurveletEnKF(obs_corr_km=None, **kw).update(xb, y, declared, transform=C, pad_offset=(0, 0), cell_km=CELL)
    err = xa.mean(axis=0).ravel() - ref
    rel = np.sqrt(np.mean(err**2)) / np.sqrt(pa.mean())
    xw, _ = CurveletEnKF(obs_corr_km=0.0, **kw).update(xb, y, declared, transform=C, pad_offset=(0, 0), cell_km=CELL)
    rel_w = np.sqrt(np.mean((xw.mean(axis=0).ravel() - ref) ** 2)) / np.sqrt(pa.mean())
    print(f"rms(mean - exact Kalman) / analysis error std: correlated R {rel:.4f}, white R {rel_w:.4f}; "
          f"CG iterations {diag['cg_iterations']:.1f}")
    assert rel < 0.02
    assert rel_w > 5 * rel


def test_obs_corr_km_changes_the_solve():
    """``obs_corr_km`` (a mis-specification setting) reaches the CG solve; unset, the declared error is
    used: a white declared error is the white solve bitwise, a correlated one is not."""
    C, xb, y, declared, _, _ = _linear_gaussian_case(nmem=12)
    kw = dict(transform=C, pad_offset=(0, 0), cell_km=CELL)
    white, _ = CurveletEnKF(obs_corr_km=None).update(xb, y, 0.02, **kw)
    assert np.array_equal(CurveletEnKF(obs_corr_km=0.0).update(xb, y, 0.02, **kw)[0], white)
    assert np.array_equal(CurveletEnKF(obs_corr_km=None).update(xb, y, ObsError.white(0.02), **kw)[0], white)
    told, _ = CurveletEnKF(obs_corr_km=150.0, obs_white_fraction=0.3).update(xb, y, 0.02, **kw)
    declared_corr, _ = CurveletEnKF(obs_corr_km=None).update(xb, y, declared, **kw)
    for other in (told, declared_corr):
        assert np.sqrt(np.mean((other - white) ** 2)) > 0.05 * np.sqrt(np.mean((white - xb) ** 2))
    # the same assumption reached two ways: told, or declared
    np.testing.assert_allclose(told, declared_corr, rtol=0, atol=1e-12)


def test_debiased_inflation_trace_with_correlated_error():
    """The adaptive inflation's de-biased ``tr R``: ``E sum (e - mean e)^2 = tr R - 1^T R 1 / p``; with
    correlated errors ``r_total = 1^T R 1`` makes it exact (the white formula ``(1 - 1/p) tr R`` is not)."""
    from landimg.da.inflation import innovation_statistics

    rng = np.random.default_rng(5)
    shape = (12, 16)
    valid = rng.random(shape) < 0.6
    r = observation_covariance(0.01, 0.02, 120.0, valid, CELL)
    p = int(valid.sum())
    dense = r.apply(np.eye(p))
    lam, vec = np.linalg.eigh(dense)
    e = (vec * np.sqrt(np.clip(lam, 0, None))) @ rng.standard_normal((p, 20000))  # (p, ndraw)
    empirical = np.mean(np.sum((e - e.mean(axis=0)) ** 2, axis=0))
    hx = np.zeros((p, 4))
    std = np.sqrt(r.diagonal())
    _, exact, _, _ = innovation_statistics(hx, np.zeros(p), std, np.ones(p, bool), r_total=r.total())
    _, white, _, _ = innovation_statistics(hx, np.zeros(p), std, np.ones(p, bool))
    assert exact == pytest.approx(empirical, rel=0.01)
    assert abs(white - empirical) > 0.05 * empirical


def test_memory_inflation_of_the_correlated_part():
    """``obs_memory_inflation``: the solve's correlated variance times (1 + a)/(1 - a), a = exp(-dt/memory):
    the same analysis as a filter told that inflated error directly; no effect without memory."""
    from landimg.da.obs_error import memory_factor

    assert memory_factor(0.0, 1.0) == 1.0
    a = np.exp(-0.1)
    assert memory_factor(10.0, 1.0) == pytest.approx((1 + a) / (1 - a))
    C, xb, y, _, _, _ = _linear_gaussian_case(nmem=12)
    kw = dict(transform=C, pad_offset=(0, 0), cell_km=CELL)
    settings = dict(bias_correction=False, inflation_mode="fixed", cg_single_precision=False, cg_tol=1e-10)
    w, c = 0.02 * np.sqrt(0.3), 0.02 * np.sqrt(0.7)
    with_memory = ObsError(w, c, 150.0, memory_days=10.0)
    got, _ = CurveletEnKF(obs_memory_inflation=True, **settings).update(xb, y, with_memory, **kw)
    told = ObsError(w, c * np.sqrt(memory_factor(10.0, 1.0)), 150.0, memory_days=10.0)
    ref, _ = CurveletEnKF(**settings).update(xb, y, told, **kw)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    plain, _ = CurveletEnKF(**settings).update(xb, y, with_memory, **kw)
    assert np.abs(plain - got).max() > 1e-4
    no_memory = ObsError(w, c, 150.0)
    np.testing.assert_array_equal(CurveletEnKF(obs_memory_inflation=True, **settings).update(xb, y, no_memory, **kw)[0],
                                  CurveletEnKF(**settings).update(xb, y, no_memory, **kw)[0])
