"""Per-scale adaptive inflation of the curvelet EnKF (landimg.da.scale_inflation).

A synthetic ensemble whose coarsest-scale spread is half the true error (fine scales correct) must give
lambda_coarse ~ 4 and lambda ~ 1 elsewhere within the estimate's sampling error; the single-scale limit
(one group) is the single estimator; a restored (or single-scale, older) state continues exactly.
"""

import numpy as np
import pytest
from landimg import Grid, Layout
from landimg.analysis import CurveletEnKF
from landimg.da.curvelet_stats import coefficient_scales
from landimg.da.inflation import innovation_statistics, smoothed_lambda
from landimg.da.protocol import AnalysisContext
from landimg.da.scale_inflation import apply_scale_inflation, scale_statistics
from landimg.parallel import SerialComm
from landimg.transform.curvelet import Curvelet

SHAPE = (64, 64)
NMEM = 24
SIGMA = 0.005


@pytest.fixture(scope="module")
def T():
    return Curvelet(SHAPE, nscales=3, nangles_coarse=8)


def _coarse_half(T, z, g):
    """``C^T diag(g[scale]) C z`` for images z (k, ny, nx)."""
    return apply_scale_inflation(z, g, T, (0, 0), np.ones(SHAPE, bool))


def _case(T, seed, valid=None):
    """Members = white anomalies with the coarsest scale halved; truth error = the same, not halved."""
    rng = np.random.default_rng(seed)
    half = np.array([0.5, 1.0, 1.0])
    anom = _coarse_half(T, 0.02 * rng.standard_normal((NMEM,) + SHAPE), half)
    anom -= anom.mean(axis=0)
    bg = 0.3 + anom
    err = 0.02 * rng.standard_normal(SHAPE)  # the true background error: ensemble-like, coarse not halved
    obs = bg.mean(axis=0) + err + SIGMA * rng.standard_normal(SHAPE)
    valid = np.ones(SHAPE, bool) if valid is None else valid
    return bg, obs, valid


def _oracle(T, ndraw=64):
    """Expected per-scale variance ratio of the construction (Monte Carlo, many draws)."""
    rng = np.random.default_rng(99)
    z = rng.standard_normal((ndraw,) + SHAPE)
    sc = coefficient_scales(T)
    e_true = np.bincount(sc, weights=np.sum(T.forward(z) ** 2, axis=0))
    e_ens = np.bincount(sc, weights=np.sum(T.forward(_coarse_half(T, z, np.array([0.5, 1, 1]))) ** 2, axis=0))
    return e_true / e_ens


def _estimate(T, bg, obs, valid, debias=True):
    lay = Layout(NMEM, SerialComm())
    st = scale_statistics(bg, obs, np.full(SHAPE, SIGMA), valid, T, (0, 0), lay, debias=debias)
    lam_o, _ = smoothed_lambda(st.d2, st.r_tr, st.hbh, st.dof, upper=10.0)
    sd = np.sqrt(2.0 / st.dof) * (lam_o * st.hbh + st.r_tr) / st.hbh  # sampling std of each estimate
    return st, lam_o, sd


def test_recovers_a_known_per_scale_underdispersion(T):
    oracle = _oracle(T)
    # the construction: 4, 1, 1 in the coefficients' flat bands; the coarse window's transition band
    # (shared with scale 1) holds both, so the coarse scale's expected ratio is ~3.3, scale 1's slightly > 1
    assert oracle[0] > 3.0 and np.allclose(oracle[1:], 1.0, atol=0.15), oracle
    for seed in (1, 2):
        _, lam, sd = _estimate(T, *_case(T, seed))
        assert np.all(np.abs(lam - oracle) < 4 * sd), (lam, oracle, sd)
        assert lam[0] > 2.7 and np.all(np.abs(lam[1:] - 1.0) < 0.3), lam


def test_single_scale_limit_is_the_single_estimator(T):
    """Summed over the scales, the statistics are those of the single estimate (Parseval), with gaps."""
    valid = np.ones(SHAPE, bool)
    valid[:, 20:34] = False  # a swath gap
    bg, obs, valid = _case(T, 3, valid)
    for debias in (True, False):
        st, _, _ = _estimate(T, bg, obs, valid, debias)
        hx = bg[:, valid].T
        d2, r_tr, hbh, dof = innovation_statistics(hx, obs[valid], np.full(hx.shape[0], SIGMA),
                                                   np.ones(hx.shape[0], bool), debias=debias)  # fmt: skip
        np.testing.assert_allclose([st.d2.sum(), st.r_tr.sum(), st.hbh.sum(), st.dof.sum()],
                                   [d2, r_tr, hbh, dof], rtol=1e-10)  # fmt: skip


def test_correlated_observation_error_enters_every_scale(T):
    """Issue 18: R_s holds the energy of the correlated part of the observation error. A well-dispersed
    ensemble (lambda = 1 at every scale) observed with a mostly correlated error (150 km on 10 km cells),
    a swath gap: with the correlated R_s the estimates are ~1 (the coarsest, with few degrees of freedom
    of the correlated error, on average over 6 draws); modelled white, the same total variance puts too
    much R at the fine scales and too little at the coarsest (lambda ~0.1 / ~13)."""
    from landimg.da.scale_inflation import CorrelatedPart
    from landimg.random_fields import GaussianFieldGenerator

    cell, length, sw, sc = (10.0, 10.0), 150.0, 0.005, 0.02
    gen = GaussianFieldGenerator(SHAPE, cell, length, False)
    lay = Layout(NMEM, SerialComm())
    total = np.full(SHAPE, np.hypot(sw, sc))
    valid = np.ones(SHAPE, bool)
    valid[:, 20:34] = False
    lams = {"white": [], "correlated": []}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        anom = 0.02 * rng.standard_normal((NMEM,) + SHAPE)
        anom -= anom.mean(axis=0)
        bg = 0.3 + anom
        err = 0.02 * rng.standard_normal(SHAPE) + sw * rng.standard_normal(SHAPE) + sc * gen.draw([rng], 1)[0, 0]
        obs = bg.mean(axis=0) + err
        for name, corr in (("white", None), ("correlated", CorrelatedPart(np.full(SHAPE, sc), length, cell))):
            st = scale_statistics(bg, obs, total, valid, T, (0, 0), lay, correlated=corr)
            lams[name].append(smoothed_lambda(st.d2, st.r_tr, st.hbh, st.dof, upper=10.0)[0])
    corr, white = np.array(lams["correlated"]), np.array(lams["white"])
    assert np.all(np.abs(corr[:, 1:] - 1.0) < 0.3), corr
    assert abs(corr[:, 0].mean() - 1.0) < 3.0, corr[:, 0]
    assert np.all(white[:, 1:] < 0.5) and white[:, 0].mean() > 5.0, white


def test_equal_factors_are_the_scalar_inflation(T):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3,) + SHAPE)
    land = rng.random(SHAPE) > 0.2
    out = apply_scale_inflation(a, np.full(3, 1.5), T, (0, 0), land)
    np.testing.assert_array_equal(out, np.where(land, 1.5 * a, 0.0))
    # per-scale factors through the transform: 1 + tiny for all but the coarsest equals the exact scaling
    out2 = apply_scale_inflation(a, np.array([1.5, 1.5 + 1e-12, 1.5]), T, (0, 0), land)
    np.testing.assert_allclose(out2, out, atol=1e-10)


# ---------------------------------------------------------------------- the method
def _geometry(ny=32, nx=48, res=1.0):
    lat = 30.0 + res * (np.arange(ny) + 0.5)
    lon = -110.0 + res * (np.arange(nx) + 0.5)
    land = np.ones((ny, nx), bool)
    land[:6, :10] = False  # a sea
    return Grid(lat=lat, lon=lon, land=land, res=res)


def _state(g, seed=0, nlev=3):
    rng = np.random.default_rng(seed)
    s = 0.25 + 0.02 * rng.standard_normal((nlev, g.ncol, 16))
    s[1:] += 0.5 * (s[:1] - 0.25)
    return s


def _ctx(g, state=None):
    return AnalysisContext(h=np.array([0.7, 0.3, 0.0]), geometry=g, layout=Layout(16, SerialComm()),
                           rngs=[np.random.default_rng(i) for i in range(16)], state=dict(state or {}))  # fmt: skip


def test_state_per_scale_applies_to_every_layer_and_old_state_translates():
    g = _geometry()
    m = CurveletEnKF(nscales=3, nangles_coarse=8, solver="diagonal", inflation_per_scale=True, inflation_layers="all",
                     layer_increments="regression")  # fmt: skip
    theta = _state(g)
    nan = np.full(g.ncol, np.nan)
    key = "CurveletEnKF.inflation_lambda"
    # an older restart holds one lambda: every scale starts from it -> exactly the scalar inflation
    ctx = _ctx(g, {key: 2.25})
    d, diag = m.analyze(theta, nan, 0.02, None, ctx)
    np.testing.assert_allclose(d, 0.5 * (theta - theta.mean(axis=2, keepdims=True)), atol=1e-15)
    assert (
        diag.inflation_per_scale == [1.5, 1.5, 1.5]
        and [ctx.state[f"{key}.scale{s}"] for s in range(3)] == [2.25] * 3
    )
    # a per-scale state: every layer's coarsest-scale anomaly doubled, the others unchanged
    ctx = _ctx(g, {key: 1.0, f"{key}.scale0": 4.0, f"{key}.scale1": 1.0, f"{key}.scale2": 1.0})
    d, diag = m.analyze(theta, nan, 0.02, None, ctx)
    assert diag.inflation_per_scale == [2.0, 1.0, 1.0]
    T, off = m.transform_for(g.shape)
    sc = coefficient_scales(T)

    def pad(a):
        return np.pad(a, [(0, 0), (off[0], T.shape[0] - a.shape[1] - off[0]),
                          (off[1], T.shape[1] - a.shape[2] - off[1])])  # fmt: skip

    for lev in range(3):
        a0 = g.to_image((theta[lev] - theta[lev].mean(axis=1, keepdims=True)).T, fill=0.0)
        a1 = g.to_image((theta[lev] + d[lev] - theta[lev].mean(axis=1, keepdims=True)).T, fill=0.0)
        e0 = np.bincount(sc, weights=np.sum(T.forward(pad(a0)) ** 2, axis=0))
        e1 = np.bincount(sc, weights=np.sum(T.forward(pad(a1)) ** 2, axis=0))
        assert e1[0] / e0[0] > 3.0 and abs(e1[2] / e0[2] - 1.0) < 0.05, (lev, e1 / e0)  # land mask: ~4, ~1


def test_per_scale_inflation_of_the_observed_layers_only():
    """``inflation_layers="observed"`` (the default): the per-scale factors reach the layers the observation
    sees (h > 0: layers 0 and 1 here), the unobserved layer keeps its anomalies bitwise."""
    g = _geometry()
    m = CurveletEnKF(nscales=3, nangles_coarse=8, solver="diagonal", inflation_per_scale=True,
                     layer_increments="regression")  # fmt: skip
    assert m.inflation_layers == "observed"
    theta = _state(g)
    key = "CurveletEnKF.inflation_lambda"
    ctx = _ctx(g, {key: 2.25})  # every scale 1.5, no observation: the increment is the inflation alone
    d, diag = m.analyze(theta, np.full(g.ncol, np.nan), 0.02, None, ctx)
    assert diag.inflation_per_scale == [1.5, 1.5, 1.5]
    np.testing.assert_allclose(d[:2], 0.5 * (theta[:2] - theta[:2].mean(axis=2, keepdims=True)), atol=1e-15)
    np.testing.assert_array_equal(d[2], 0.0)


def test_restart_round_trip_and_diagnostics():
    g = _geometry()
    m = CurveletEnKF(
        nscales=3, nangles_coarse=8, solver="diagonal", perturb_obs=False, inflation_per_scale=True,
        layer_increments="regression",
    )
    theta = _state(g, seed=1)
    rng = np.random.default_rng(5)
    obs = np.einsum("l,lcm->c", [0.7, 0.3, 0.0], theta) / 16 + 0.04 * rng.standard_normal(g.ncol)
    ctx = _ctx(g)
    _, d1 = m.analyze(theta, obs, 0.02, None, ctx)
    assert len(d1.inflation_per_scale) == 3 and len(d1.inflation_lambda_per_scale) == 3
    assert d1.inflation > 1.0 and max(d1.inflation_per_scale) > 1.0
    assert "inflation_per_scale" in d1.as_dict()
    restored = {k: float(np.float64(v)) for k, v in ctx.state.items()}  # what a restart stores
    d_a, da = m.analyze(theta, obs, 0.02, None, ctx)
    d_b, db = m.analyze(theta, obs, 0.02, None, _ctx(g, restored))
    np.testing.assert_array_equal(d_a, d_b)
    assert da.inflation_per_scale == db.inflation_per_scale
    # single-scale mode keeps the old state layout (one entry)
    ctx1 = _ctx(g)
    _, d1s = CurveletEnKF(
        nscales=3, nangles_coarse=8, solver="diagonal", inflation_per_scale=False, layer_increments="regression"
    ).analyze(theta, obs, 0.02, None, ctx1)
    assert list(ctx1.state) == ["CurveletEnKF.inflation_lambda"] and d1s.inflation_per_scale is None
    # and its estimate of this analysis equals the per-scale run's single-scale estimate
    assert d1s.inflation_lambda == pytest.approx(d1.inflation_lambda, rel=1e-10)
