"""Every soil layer's increment from the same analysis (issue 18 item 5, ``layer_increments="analysis"``).

* the layers' increments add up to the observed layer's (``h . dtheta = dx_o``);
* a layer that is a multiple ``alpha`` of the observed one (plus small independent noise) gets ``alpha``
  times its mean increment (the per-direction regression);
* a deep layer with independent variability of its own: its mean increment is the cross-covariance's,
  not the column regression's sampling noise.
"""

import numpy as np
import pytest
from _support import box_geometry, smooth_fields
from landimg.analysis import AnalysisContext, CurveletEnKF
from landimg.layout import Layout
from landimg.parallel import SerialComm

NMEM = 24


def _geometry():
    return box_geometry(32, 48, (5, 8))


def _fields(rng, n, shape, length=4.0):
    return smooth_fields(rng, n, shape, length)


def _case(g, seed=0, alpha=0.6, quiet=None):
    """Three layers: the top two observed (h = 0.7, 0.3), the third alpha times the second layer's anomaly
    plus 10 % independent noise; ``quiet`` (ny, nx) bool: the top layers' spread there is 1/10."""
    rng = np.random.default_rng(seed)
    shape = g.shape
    top = 0.02 * _fields(rng, NMEM, shape)
    if quiet is not None:
        top = np.where(quiet, 0.1 * top, top)
    second = 0.8 * top + 0.004 * _fields(rng, NMEM, shape)
    third = alpha * second + 0.1 * alpha * 0.02 * _fields(rng, NMEM, shape, 2.0)
    state = np.stack([g.to_columns(a).T for a in (top, second, third)])  # (3, ncol, N)
    state = 0.25 + state - state.mean(axis=2, keepdims=True)
    truth = 0.25 + 0.02 * _fields(rng, 1, shape)[0]
    obs = g.to_columns(np.where(rng.random(shape) < 0.5, truth + 0.02 * rng.standard_normal(shape), np.nan))
    return state, obs


def _analyze(method, g, state, obs):
    ctx = AnalysisContext(h=np.array([0.7, 0.3, 0.0]), geometry=g, layout=Layout(NMEM, SerialComm()))
    return method.analyze(state, obs, 0.02, None, ctx)[0]


KW = dict(nscales=4, nangles_coarse=8, cg_tol=1e-10, cg_maxiter=2000, inflation_mode="fixed", cg_single_precision=False)


@pytest.mark.parametrize("extra", [{}, {"variance_filtering": True}, {"fine_band_scales": 1, "fine_band_radius_km": 600.0}])
def test_layers_add_up_to_the_observed_layer(extra):
    g = _geometry()
    state, obs = _case(g)
    h = np.array([0.7, 0.3, 0.0])
    d_an = _analyze(CurveletEnKF(layer_increments="analysis", **KW, **extra), g, state, obs)
    d_rg = _analyze(CurveletEnKF(layer_increments="regression", **KW, **extra), g, state, obs)
    obs_inc = np.einsum("l,lcm->cm", h, d_rg)  # the observed layer's increment (the same analysis)
    np.testing.assert_allclose(np.einsum("l,lcm->cm", h, d_an), obs_inc, rtol=0, atol=1e-9)
    assert not np.allclose(d_an[2], d_rg[2])  # the deep layer's mean increment differs from the column rule


def test_a_proportional_layer_gets_the_proportional_increment():
    g = _geometry()
    alpha = 0.6
    state, obs = _case(g, seed=1, alpha=alpha)
    d = _analyze(CurveletEnKF(layer_increments="analysis", **KW), g, state, obs)
    m2, m3 = d[1].mean(axis=1), d[2].mean(axis=1)
    ratio = np.sum(m3 * m2) / np.sum(m2 * m2)
    assert ratio == pytest.approx(alpha, rel=0.05)


def test_deep_increment_is_the_cross_covariance_not_the_column_noise():
    """A deep layer = alpha x the second layer + independent variability twice as large: the exact Kalman
    mean increment of the deep layer is alpha x the second layer's (its only covariance with the observed
    layers). The column regression estimates alpha per column from 24 members (sampling noise ~ 2 /
    sqrt(22) relative); the per-direction regression pools it over the domain."""
    g = _geometry()
    alpha = 0.6
    state, obs = _case(g, seed=2, alpha=alpha)
    rng = np.random.default_rng(5)
    noise = 2 * alpha * g.to_columns(0.016 * _fields(rng, NMEM, g.shape)).T
    state[2] = state[2] + noise - noise.mean(axis=1, keepdims=True)
    err = {}
    for rule in ("regression", "analysis"):
        d = _analyze(CurveletEnKF(layer_increments=rule, **KW), g, state, obs)
        m2, m3 = d[1].mean(axis=1), d[2].mean(axis=1)
        err[rule] = np.sqrt(np.mean((m3 - alpha * m2) ** 2)) / np.sqrt(np.mean((alpha * m2) ** 2))
    print(f"rms(deep - alpha x second) / rms(alpha x second): regression {err['regression']:.3f}, "
          f"analysis {err['analysis']:.3f}")
    assert err["analysis"] < 0.4 * err["regression"]


def test_analysis_rule_is_checked():
    with pytest.raises(ValueError, match="layer_increments"):
        CurveletEnKF(layer_increments="analysis", pooling="coefficient")
    with pytest.raises(ValueError, match="layer_increments"):
        CurveletEnKF(layer_increments="analysis", hybrid_beta=0.5)
