"""Issue 9 (items 2-4): observed-cell neighbourhoods, cached analyses, the LETKF against the exact Kalman
update, layer increments by regression, de-biased smoothed inflation of every layer, rank independence."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _support import MPIRUN, subprocess_env
from landimg import Grid, Layout
from landimg.analysis import (
    AnalysisCache,
    AnalysisContext,
    CurveletEnKF,
    PointEnKF,
    PointLETKF,
    observed_neighbourhoods,
    point_enkf_increments,
    point_letkf_increments,
)
from landimg.da.inflation import smoothed_inflation
from landimg.da.localization import great_circle_km
from landimg.da.obs_covariance import ObsCovariance
from landimg.da.obs_error import ObsError
from landimg.parallel import SerialComm


def _geometry(ny=20, nx=40, res=1.0, lat0=30.0, lon0=-110.0):
    lat = lat0 + res * (np.arange(ny) + 0.5)
    lon = lon0 + res * (np.arange(nx) + 0.5)
    return Grid(lat=lat, lon=lon, land=np.ones((ny, nx), bool), res=res)


# ---------------------------------------------------------------------- neighbourhoods
def test_observed_neighbourhoods_reach_the_full_radius():
    g = _geometry()
    valid = np.zeros(g.ncol, bool)
    valid[::3] = True  # one column in three observed
    radius = 1000.0
    nb = observed_neighbourhoods(g.xyz, valid, radius, max_obs=None)
    chord = np.sqrt(np.sum((g.xyz[:, None, :] - g.xyz[None, valid, :]) ** 2, axis=-1))
    brute = great_circle_km(chord) < radius
    np.testing.assert_array_equal(nb.use.sum(axis=1), brute.sum(axis=1))  # every observation in reach
    assert nb.dist[nb.use].max() > 0.95 * radius  # the 64-nearest-columns search stopped near 455 km
    assert np.all(valid[nb.idx[nb.use]]) and np.all(np.diff(np.where(nb.use, nb.dist, 1e9), axis=1) >= 0)
    capped = observed_neighbourhoods(g.xyz, valid, radius, max_obs=10)
    assert capped.m == 10
    np.testing.assert_array_equal(capped.dist, nb.dist[:, :10])  # the nearest observations are kept


def test_own_cell_and_empty_patterns():
    g = _geometry(ny=4, nx=5)
    valid = np.arange(g.ncol) % 2 == 0
    nb = observed_neighbourhoods(g.xyz, valid, 0.0)
    np.testing.assert_array_equal(nb.use[:, 0], valid)
    none = observed_neighbourhoods(g.xyz, np.zeros(g.ncol, bool), 500.0)
    assert not none.use.any()


def _ensemble(g, nmem=16, nlev=3, seed=0):
    rng = np.random.default_rng(seed)
    base = 0.25 + 0.02 * np.sin(np.arange(g.ncol) / 7.0)
    state = base[None, :, None] + 0.02 * rng.standard_normal((nlev, g.ncol, nmem))
    state[1:] += 0.5 * state[:1] - 0.5 * base[None, :, None]  # deeper layers correlated with the top
    return state


def test_cached_and_uncached_analyses_are_identical():
    g = _geometry()
    state = _ensemble(g)
    h = np.array([0.7, 0.3, 0.0])
    obs = 0.27 + np.zeros(g.ncol)
    obs[::4] = np.nan
    for method in (PointEnKF(radius_km=400.0, max_obs=None), PointLETKF(radius_km=400.0, max_obs=None)):
        lay = Layout(16, SerialComm())
        ctx = AnalysisContext(h=h, geometry=g, layout=lay, cache=AnalysisCache())
        rng = [np.random.default_rng(i) for i in range(16)]
        d1, _ = method.analyze(state, obs, 0.02, None, AnalysisContext(h=h, geometry=g, layout=lay, rngs=rng))
        for _ in range(2):  # the second call reuses the cached neighbourhoods
            rng = [np.random.default_rng(i) for i in range(16)]
            ctx.rngs = rng
            d2, _ = method.analyze(state, obs, 0.02, None, ctx)
            np.testing.assert_array_equal(d1, d2)
        assert len(ctx.cache) == 1
    valid = np.isfinite(obs)
    nb = observed_neighbourhoods(g.xyz, valid, 400.0, None)
    a, _ = point_enkf_increments(
        state, h, obs, 0.02, lat=g.column_lat, lon=g.column_lon, radius_km=400.0, seed=1, neighbours=nb
    )
    b, _ = point_enkf_increments(state, h, obs, 0.02, lat=g.column_lat, lon=g.column_lon, radius_km=400.0, seed=1)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- LETKF == Kalman
@pytest.mark.slow
def test_letkf_matches_the_exact_kalman_update_at_large_n():
    """Linear-Gaussian toy: 3-layer columns, own-cell observations of a layer mean, N = 1000 members drawn
    from the true B: the LETKF mean and covariance equal the exact Kalman update within sampling error."""
    rng = np.random.default_rng(5)
    ncol, nmem, sigma = 4, 1000, 0.02
    b_true = np.array([[4.0, 2.0, 1.0], [2.0, 3.0, 1.5], [1.0, 1.5, 2.0]]) * 1e-4
    h = np.array([0.6, 0.4, 0.0])
    mu = 0.3 + 0.01 * rng.standard_normal((3, ncol))
    state = mu[:, :, None] + np.einsum(
        "ij,jcn->icn", np.linalg.cholesky(b_true), rng.standard_normal((3, ncol, nmem))
    )
    truth = mu + np.linalg.cholesky(b_true) @ rng.standard_normal((3, ncol))
    obs = h @ truth + sigma * rng.standard_normal(ncol)
    d, _ = point_letkf_increments(state, h, obs, sigma)
    xa = state + d
    k = b_true @ h / (h @ b_true @ h + sigma**2)
    mean_exact = mu + np.outer(k, obs - h @ mu)
    pa_exact = b_true - np.outer(k, h @ b_true)
    se = np.sqrt(np.diag(b_true) / nmem)[:, None]  # sampling error of the prior mean
    assert np.all(np.abs(xa.mean(axis=2) - mean_exact) < 5 * se)
    for c in range(ncol):
        np.testing.assert_allclose(np.cov(xa[:, c]), pa_exact, atol=0.2 * np.abs(b_true).max())


# ---------------------------------------------------------------------- layer increments
def test_layer_increments_by_regression_keep_the_observed_mean():
    g = _geometry(ny=16, nx=24)
    state = _ensemble(g, nlev=4, seed=3)
    h = np.array([0.5, 0.45, 0.05, 0.0])  # layer 3 barely inside the observed depth
    obs = 0.3 + np.zeros(g.ncol)
    lay = Layout(16, SerialComm())
    out = {}
    for mode in ("regression", "full"):
        m = CurveletEnKF(
            pooling="wedge", layer_increments=mode, perturb_obs=False, nscales=3, nangles_coarse=8
        )
        out[mode], _ = m.analyze(state, obs, 0.02, None, AnalysisContext(h=h, geometry=g, layout=lay))
    dobs = np.einsum("l,lcm->cm", h, out["full"])
    np.testing.assert_allclose(np.einsum("l,lcm->cm", h, out["regression"]), dobs, atol=1e-14)
    xobs = np.einsum("l,lcm->cm", h, state)
    ao, at = xobs - xobs.mean(axis=1, keepdims=True), state - state.mean(axis=2, keepdims=True)
    beta = np.sum(at * ao[None], axis=2) / np.sum(ao**2, axis=1)
    np.testing.assert_allclose(out["regression"], beta[:, :, None] * dobs[None], atol=1e-14)
    np.testing.assert_allclose(out["full"][2], dobs, atol=1e-14)  # the first version's rule
    assert np.abs(out["regression"][2]).mean() < 0.8 * np.abs(dobs).mean()


# ---------------------------------------------------------------------- inflation
def test_debiased_inflation_ignores_a_bias_and_smoothing_is_a_weighted_mean():
    rng = np.random.default_rng(2)
    ncol, nmem, sigma = 4000, 16, 0.02
    hx = 0.3 + 0.01 * rng.standard_normal((ncol, nmem))
    spread = hx.std(axis=1, ddof=1)
    obs = hx.mean(axis=1) + spread * rng.standard_normal(ncol) + sigma * rng.standard_normal(ncol) + 0.05
    valid = np.ones(ncol, bool)
    std = np.full(ncol, sigma)
    lam_b, _, _ = smoothed_inflation(hx, obs, std, valid, debias=True, upper=10.0)
    lam_raw, _, _ = smoothed_inflation(hx, obs, std, valid, debias=False, upper=10.0)
    assert abs(lam_b - 1.0) < 0.15 and lam_raw > 20.0  # the 0.05 bias is no spread deficit
    raw, lam_inf, _ = smoothed_inflation(
        hx, obs, std, valid, prior=1.5, prior_var=np.inf, lower=0.5, upper=10.0
    )
    assert lam_inf == pytest.approx(raw)
    _, lam_s, f = smoothed_inflation(hx, obs, std, valid, prior=1.5, prior_var=1e-3, lower=0.5, upper=10.0)
    assert min(raw, 1.5) < lam_s < max(raw, 1.5) and f == pytest.approx(np.sqrt(lam_s))
    _, lam_c, _ = smoothed_inflation(hx, obs + 1.0, std, valid, prior=1.0, debias=False, upper=1.5)
    assert lam_c == 1.5**2  # clipped


def _inflation_only(method):
    """A 3-layer ensemble (h = 0.6, 0.4, 0), 5 frozen columns, analysed without observations (inflation only):
    (state, update mask, increment)."""
    g = _geometry(ny=12, nx=16)
    state = _ensemble(g, nlev=3, seed=4)
    ok = np.ones(state.shape, bool)
    ok[:, :5] = False  # frozen columns keep their state
    ctx = AnalysisContext(h=np.array([0.6, 0.4, 0.0]), geometry=g, layout=Layout(16, SerialComm()),
                          update_mask=ok, rngs=[np.random.default_rng(i) for i in range(16)])  # fmt: skip
    d, _ = method.analyze(state, np.full(g.ncol, np.nan), 0.02, None, ctx)
    return state, ok, d


@pytest.mark.parametrize(
    "method",
    [
        CurveletEnKF(inflation=1.3, nscales=3, nangles_coarse=8, inflation_layers="all"),
        PointEnKF(inflation=1.3, inflation_layers="all"),
        PointLETKF(inflation=1.3, inflation_layers="all"),
    ],
    ids=["curvelet", "point_enkf", "point_letkf"],
)
def test_every_filter_inflates_every_layer(method):
    state, ok, d = _inflation_only(method)
    expect = 0.3 * (state - state.mean(axis=2, keepdims=True)) * ok
    np.testing.assert_allclose(d, expect, atol=1e-15)


@pytest.mark.parametrize(
    "method",
    [
        CurveletEnKF(inflation=1.3, nscales=3, nangles_coarse=8),
        CurveletEnKF(inflation=1.3, nscales=3, nangles_coarse=8, inflation_mode="adaptive", inflation_per_scale=True),
        PointEnKF(inflation=1.3),
        PointLETKF(inflation=1.3),
    ],
    ids=["curvelet", "curvelet_per_scale", "point_enkf", "point_letkf"],
)  # fmt: skip
def test_inflation_of_the_observed_layers_only(method):
    """The default of every filter: the prior inflation multiplies the observed layers' anomalies only."""
    assert method.inflation_layers == "observed"
    state, ok, d = _inflation_only(method)
    anomalies = state - state.mean(axis=2, keepdims=True)  # no observation: every factor is its bound 1.3
    np.testing.assert_allclose(d[:2], 0.3 * anomalies[:2] * ok[:2], atol=1e-14)
    np.testing.assert_array_equal(d[2], 0.0)  # the unobserved layer keeps its forecast spread
    with pytest.raises(ValueError, match="inflation_layers"):
        PointLETKF(inflation_layers="deep")


def test_adaptive_state_is_carried_and_restored():
    g = _geometry(ny=12, nx=16)
    state = _ensemble(g, seed=6)
    obs = np.einsum("l,lcm->c", [0.7, 0.3, 0.0], state) / 16 + 0.03 * np.random.default_rng(
        1
    ).standard_normal(g.ncol)
    m = PointLETKF(inflation_mode="adaptive", radius_km=300.0)
    ctx = AnalysisContext(h=np.array([0.7, 0.3, 0.0]), geometry=g, layout=Layout(16, SerialComm()))
    _, d1 = m.analyze(state, obs, 0.02, None, ctx)
    lam1 = ctx.state["PointLETKF.inflation_lambda"]
    _, d2 = m.analyze(state, obs, 0.02, None, ctx)
    assert d1.inflation > 1.0 and lam1 > 1.0 and d2.inflation >= d1.inflation  # smoothed: keeps growing
    fresh = AnalysisContext(h=ctx.h, geometry=g, layout=ctx.layout, state=dict(ctx.state))
    _, d3 = m.analyze(state, obs, 0.02, None, fresh)
    _, d4 = m.analyze(state, obs, 0.02, None, ctx)
    assert d3.inflation == d4.inflation  # a restored state continues exactly


# ---------------------------------------------------------------------- MPI
_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import landimg
    from landimg.analysis import CurveletEnKF, PointEnKF, PointLETKF

    grid = landimg.Grid.regular(lat=(30.0, 42.0), lon=(-110.0, -90.0), res=1.0, land_mask="all")
    soil = landimg.soil.from_class("loam", grid.ncol)
    methods = [CurveletEnKF(inflation_mode="adaptive", inflation_per_scale=True, nscales=3, nangles_coarse=8),
               PointEnKF(inflation_mode="adaptive", radius_km=400.0, max_obs=None),
               PointLETKF(inflation_mode="adaptive", radius_km=400.0)]
    out = {}
    for k, method in enumerate(methods):
        ens = landimg.Ensemble(grid, 7, soil=soil, seed=3)
        ens.advance({"tair": np.full(grid.ncol, 290.0), "qair": np.full(grid.ncol, 0.008),
                     "psurf": np.full(grid.ncol, 1e5), "precip": np.full(grid.ncol, 2e-4),
                     "wind": np.full(grid.ncol, 3.0), "swdown": np.full(grid.ncol, 300.0),
                     "lwdown": np.full(grid.ncol, 330.0)}, nsteps=6)
        obs = ens.mean_image((0.0, 0.05)) + 0.05 * np.random.default_rng(9).standard_normal(grid.shape)
        obs[:, ::3] = np.nan
        for _ in range(2):
            ens.assimilate(obs, 0.02, method)
        st = ens.gather_state()
        if st is not None:
            out[f"wliq{k}"] = st["model/wliq"]
            items = st["da_state"].items()
            out[f"lam{k}"] = np.concatenate([np.ravel(v) for key, v in items if "inflation" in key])
            out[f"state{k}"] = np.concatenate([np.ravel(v) for _, v in items])  # with the curvelet bias
    if out:
        np.savez(sys.argv[1], **out)
    """
)


@pytest.mark.mpi
def test_new_paths_bitwise_on_1_2_3_ranks(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(_SCRIPT)
    res = {}
    for n in (1, 2, 3):
        f = tmp_path / f"r{n}.npz"
        cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "mpi4py", str(script), str(f)]
        proc = subprocess.run(
            cmd, env=subprocess_env(), capture_output=True, text=True, timeout=900, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        res[n] = dict(np.load(f))
    # point filters: one state; curvelet: the effective lambda and one per scale (nscales=3)
    assert [res[1][f"lam{k}"].size for k in range(3)] == [4, 1, 1]
    assert all(res[1][f"lam{k}"][0] > 1.0 for k in range(3))
    for n in (2, 3):
        for key, val in res[1].items():
            np.testing.assert_array_equal(res[n][key], val, err_msg=f"{key} on {n} ranks")


# ---------------------------------------------------------------------- work batches (issue 17 item 6)
def test_the_work_batches_bound_memory_not_numbers(monkeypatch):
    """The point filters' work arrays are bounded by analysing a few columns at a time (the EnKF's systems
    ``_SOLVE_ROWS`` columns at a time within a batch of fixed width, the LETKF ``chunk`` columns at a
    time): every column's analysis is its own, so any sizes, down to one column, give the same bits."""
    import landimg.da.point_enkf as point_enkf

    g = _geometry(ny=14, nx=18)
    state = _ensemble(g, nmem=8, nlev=3, seed=11)
    rng = np.random.default_rng(5)
    obs = np.where(rng.random(g.ncol) < 0.5, 0.25 + 0.02 * rng.standard_normal(g.ncol), np.nan)
    h = np.array([0.7, 0.3, 0.0])
    kw = dict(lat=g.column_lat, lon=g.column_lon, radius_km=500.0, max_obs=12)
    pert = 0.02 * rng.standard_normal((g.ncol, 8))
    window = np.zeros(g.ncol, dtype=int)
    enkf = {}
    for rows in (64, 7, 1):
        monkeypatch.setattr(point_enkf, "_SOLVE_ROWS", rows)
        # one window: batches of up to ``chunk`` = 256 columns, cut into systems of ``rows`` columns
        enkf[rows] = point_enkf_increments(state, h, obs, 0.02, perturbations=pert, window=window, **kw)[0]
    letkf = {c: point_letkf_increments(state, h, obs, 0.02, inflation=1.1, chunk=c, **kw)[0] for c in (None, 10, 1)}
    cov = ObsCovariance.of(ObsError.from_fraction(0.02, 0.5, 300.0).take(np.arange(g.ncol)), g)
    letkf_r = {c: point_letkf_increments(state, h, obs, 0.02, inflation=1.1, chunk=c, obs_cov=cov, **kw)[0]
               for c in (None, 10, 1)}  # fmt: skip
    for out in (enkf, letkf, letkf_r):
        first, *rest = out.values()
        assert np.abs(first).max() > 1e-4  # observations reach the state
        for other in rest:
            np.testing.assert_array_equal(first, other)
