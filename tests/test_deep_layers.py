"""The curvelet EnKF's updates of the layers below the observed one (issue 18, goal G1):
``layer_increments="transform"`` / ``"pooled"`` (:mod:`landimg.da.deep_layers`) and ``deep_gain``.

* the local ensemble-space fit recovers the weights of an increment that lies in the local ensemble span
  (a deep layer proportional to the observed one then gets exactly the proportional increment);
* with the own column only (radius -> 0) and no ridge, both local rules are the column regression;
  an infinite ridge leaves the deep layers unchanged;
* ``deep_gain`` scales the deep layers' increments only: 0 is ``deep_regression=False``, 1 the default.
"""

import numpy as np
import pytest
from _support import box_geometry, smooth_fields
from landimg.analysis import AnalysisContext, CurveletEnKF
from landimg.da import deep_layers
from landimg.da.deep_layers import column_neighbourhoods, ensemble_fit_increments, pooled_regression
from landimg.layout import Layout
from landimg.parallel import SerialComm

NMEM = 12
H = np.array([0.7, 0.3, 0.0, 0.0])


def _geometry():
    return box_geometry(16, 24, (3, 4))


def _smooth(rng, n, shape, length=3.0):
    return smooth_fields(rng, n, shape, length)


def _case(g, seed=0):
    """Four layers, the top two observed; the deep ones partly proportional to the second, partly their own."""
    rng = np.random.default_rng(seed)
    top = 0.02 * _smooth(rng, NMEM, g.shape)
    second = 0.8 * top + 0.004 * _smooth(rng, NMEM, g.shape)
    third = 0.6 * second + 0.006 * _smooth(rng, NMEM, g.shape)
    fourth = 0.3 * second + 0.004 * _smooth(rng, NMEM, g.shape)
    state = np.stack([g.to_columns(a).T for a in (top, second, third, fourth)])  # (4, ncol, N)
    state = 0.25 + state - state.mean(axis=2, keepdims=True)
    truth = 0.25 + 0.02 * _smooth(rng, 1, g.shape)[0]
    obs = g.to_columns(np.where(rng.random(g.shape) < 0.5, truth + 0.02 * rng.standard_normal(g.shape), np.nan))
    return state, obs


def _analyze(method, g, state, obs):
    ctx = AnalysisContext(h=H, geometry=g, layout=Layout(NMEM, SerialComm()))
    return method.analyze(state, obs, 0.02, None, ctx)[0]


KW = dict(nscales=3, nangles_coarse=8, cg_tol=1e-10, cg_maxiter=2000, inflation_mode="fixed", cg_single_precision=False)


def test_fit_recovers_weights_of_an_increment_in_the_local_span():
    """dx_j = Y_j w for every neighbour j (one w): the fit (no ridge) returns w, so a deep layer equal to
    alpha times the observed one gets alpha dx exactly, at every column."""
    g = _geometry()
    rng = np.random.default_rng(3)
    xo = rng.standard_normal((g.ncol, NMEM))
    xo -= xo.mean(axis=1, keepdims=True)
    w = rng.standard_normal((NMEM, 2))
    dx = xo @ w  # (ncol, 2): two fields, both in the span
    deep = np.stack([0.4 * xo, -1.5 * xo])
    nb = column_neighbourhoods(g.xyz, 400.0)
    assert nb.use.sum(axis=1).min() > NMEM  # an overdetermined fit everywhere
    inc = ensemble_fit_increments(deep, xo, dx, nb, 0.0)
    np.testing.assert_allclose(inc, np.stack([0.4 * dx, -1.5 * dx]), rtol=0, atol=1e-12)
    # a ridge shrinks it (towards 0 as the ridge grows)
    shrunk = ensemble_fit_increments(deep, xo, dx, nb, 1.0)
    assert 0.0 < np.sum(shrunk * inc) < np.sum(inc * inc)
    assert np.abs(ensemble_fit_increments(deep, xo, dx, nb, 1e12)).max() < 1e-9 * np.abs(inc).max()


def test_fit_is_the_localized_ridge_regression_of_the_formula():
    """Against the module's formula written out for a few columns (dense, one column at a time)."""
    g = _geometry()
    rng = np.random.default_rng(7)
    xo = rng.standard_normal((g.ncol, NMEM)) * rng.uniform(0.5, 2.0, (g.ncol, 1))
    xo -= xo.mean(axis=1, keepdims=True)
    deep = rng.standard_normal((2, g.ncol, NMEM))
    dx = rng.standard_normal((g.ncol, 3))
    nb = column_neighbourhoods(g.xyz, 450.0)
    alpha = 0.7
    inc = ensemble_fit_increments(deep, xo, dx, nb, alpha)
    for c in (0, 17, g.ncol // 2, g.ncol - 1):
        j = nb.idx[c][nb.use[c]]
        rho = nb.rho[c][nb.use[c]]
        y = xo[j]
        s2 = np.sum(rho * np.sum(y * y, axis=1) / (NMEM - 1)) / np.sum(rho)
        w = np.linalg.solve(y.T @ np.diag(rho) @ y + alpha * s2 * (NMEM - 1) * np.eye(NMEM), y.T @ np.diag(rho) @ dx[j])
        np.testing.assert_allclose(inc[:, c], deep[:, c] @ w, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("ridge", [0.0, 0.7])
def test_batch_size_changes_no_bit(monkeypatch, ridge):
    """The fits are batched over columns to bound memory: any batch size gives the same bits."""
    g = _geometry()
    rng = np.random.default_rng(11)
    xo = rng.standard_normal((g.ncol, NMEM))
    xo -= xo.mean(axis=1, keepdims=True)
    deep, dx = rng.standard_normal((2, g.ncol, NMEM)), rng.standard_normal((g.ncol, NMEM))
    nb = column_neighbourhoods(g.xyz, 450.0)
    whole = ensemble_fit_increments(deep, xo, dx, nb, ridge)
    for chunk in (1, 7, 64):
        monkeypatch.setattr(deep_layers, "_CHUNK", chunk)
        assert np.array_equal(ensemble_fit_increments(deep, xo, dx, nb, ridge), whole)


@pytest.mark.parametrize("rule", ["transform", "pooled"])
def test_own_column_limit_is_the_column_regression(rule):
    g = _geometry()
    state, obs = _case(g)
    base = _analyze(CurveletEnKF(layer_increments="regression", **KW), g, state, obs)
    local = _analyze(
        CurveletEnKF(
            layer_increments=rule, layer_radius_km=1.0, **({"layer_fit_ridge": 0.0} if rule == "transform" else {}), **KW
        ),
        g,
        state,
        obs,
    )
    np.testing.assert_allclose(local, base, rtol=0, atol=1e-13)


@pytest.mark.parametrize("rule", ["transform", "pooled"])
def test_local_rules_keep_the_observed_layer_and_change_the_deep_ones(rule):
    g = _geometry()
    state, obs = _case(g)
    base = _analyze(CurveletEnKF(layer_increments="regression", **KW), g, state, obs)
    local = _analyze(CurveletEnKF(layer_increments=rule, layer_radius_km=500.0, **KW), g, state, obs)
    np.testing.assert_allclose(np.einsum("l,lcm->cm", H, local), np.einsum("l,lcm->cm", H, base), atol=1e-13)
    np.testing.assert_allclose(local[:2], base[:2], rtol=0, atol=1e-13)
    assert not np.allclose(local[2:], base[2:], rtol=0, atol=1e-6)
    big = _analyze(CurveletEnKF(layer_increments="transform", layer_fit_ridge=1e12, **KW), g, state, obs)
    assert np.abs(big[2:]).max() < 1e-9


def test_pooled_regression_of_a_homogeneous_proportional_layer():
    """A deep layer = alpha x the observed one everywhere: the pooled coefficient is alpha exactly."""
    g = _geometry()
    rng = np.random.default_rng(6)
    xo = rng.standard_normal((g.ncol, NMEM))
    beta = pooled_regression(np.stack([0.7 * xo]), xo, column_neighbourhoods(g.xyz, 600.0))
    np.testing.assert_allclose(beta, 0.7, rtol=1e-13)


@pytest.mark.parametrize("rule", ["analysis", "transform"])
def test_deep_gain_scales_the_deep_layers_only(rule):
    g = _geometry()
    state, obs = _case(g)
    kw = dict(KW, layer_increments=rule)
    full = _analyze(CurveletEnKF(**kw), g, state, obs)
    half = _analyze(CurveletEnKF(deep_gain=0.5, **kw), g, state, obs)
    none = _analyze(CurveletEnKF(deep_gain=0.0, **kw), g, state, obs)
    off = _analyze(CurveletEnKF(deep_regression=False, **kw), g, state, obs)
    np.testing.assert_array_equal(half[:2], full[:2])
    np.testing.assert_allclose(half[2:], 0.5 * full[2:], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(none[2:], 0.0)
    np.testing.assert_allclose(none, off, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "field,value",
    [("layer_radius_km", 0.0), ("layer_radius_km", float("nan")), ("layer_fit_ridge", -1.0),
     ("deep_gain", 1.5), ("deep_gain", -0.1), ("layer_increments", "bogus")],
)  # fmt: skip
def test_bad_settings_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        CurveletEnKF(**{field: value})


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"layer_radius_km": 300.0}, "layer_radius_km"),
        ({"layer_increments": "pooled", "layer_fit_ridge": 2.0}, "layer_fit_ridge"),
        ({"deep_regression": False, "deep_gain": 0.5}, "deep_gain"),
    ],
)
def test_a_setting_its_rule_ignores_is_refused(settings, key):
    with pytest.raises(ValueError, match=f"^{key} = .* has no effect"):
        CurveletEnKF(**settings)

