"""Mixed observation-error model of the curvelet EnKF (``obs_white_fraction``).

The error is ``sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)``; its variance per curvelet coefficient is
``w s_o(white) + (1 - w) s_o(correlated)``. Truth for the variance: an independent empirical estimate from
many transformed mixed-noise images, pooled per wedge. ``w = 1`` and the default (None) must reproduce the
previous models bitwise.
"""

from functools import partial

import numpy as np
import pytest
from _support import CORE_SETTINGS
from landimg.analysis import CurveletEnKF
from landimg.da import curvelet_enkf as ce
from landimg.da import curvelet_stats as cs
from landimg.da.obs_error import ObsErrorModel
from landimg.experiment.config import ConfigError, load_config
from landimg.parallel import Purpose, member_rng
from landimg.transform.curvelet import Curvelet

N = 64
CELL_KM = (10.0, 10.0)
CORR_KM = 40.0
SIGMA = 0.04

_analysis = partial(ce.curvelet_analysis, **CORE_SETTINGS)
_enkf = partial(ce.curvelet_enkf, **CORE_SETTINGS)


@pytest.fixture(scope="module")
def T():
    return Curvelet((N, N))


def _case(seed: int = 3, nmem: int = 6):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:N, 0:N]
    truth = 0.25 + 0.05 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    xb = truth + 0.03 * rng.standard_normal((nmem, N, N))
    obs = truth + SIGMA * rng.standard_normal((N, N))
    return xb, obs


def _run(T, **kw):
    xb, obs = _case()
    kw.setdefault("pooling", "wedge")
    return _analysis(xb, obs, SIGMA, T, seed=11, cell_km=CELL_KM, **kw)


@pytest.mark.parametrize("w", [0.5, 0.2])
@pytest.mark.slow
def test_mixed_variance_matches_empirical_per_wedge(T, w):
    model = ObsErrorModel(np.full((N, N), SIGMA), CORR_KM, CELL_KM, False, w)
    gid = cs.coefficient_groups(T, "wedge")
    s_o = cs.pool(model.coefficient_variance(T, 256, seed=1, pooled=True), gid)
    # independent Monte Carlo: other streams, more images, the mixed fields as the EnKF perturbs them
    rngs = [member_rng(77, k, Purpose.OBS) for k in range(600)]
    acc = np.zeros_like(s_o)
    for b in range(0, len(rngs), 50):
        acc += np.sum(T.forward(model.fields(rngs[b : b + 50])) ** 2, axis=0)
    emp = cs.pool(acc / len(rngs), gid)
    _, first = np.unique(gid, return_index=True)
    rel = s_o[first] / emp[first] - 1.0
    assert np.max(np.abs(rel)) < 0.04, rel
    assert abs(np.mean(rel)) < 0.01
    # and it differs from both pure models by more than that (the test can tell them apart)
    white = cs.pool(model._part(1.0).coefficient_variance(T, 256, seed=1, pooled=True), gid)
    corr = cs.pool(model._part(0.0).coefficient_variance(T, 256, seed=1, pooled=True), gid)
    assert np.max(np.abs(white[first] / emp[first] - 1)) > 0.2
    assert np.max(np.abs(corr[first] / emp[first] - 1)) > 0.2
    np.testing.assert_allclose(s_o, w * white + (1 - w) * corr, rtol=1e-12)


def test_mixed_fields_pixel_variance_and_rank_independence():
    model = ObsErrorModel(np.full((N, N), SIGMA), CORR_KM, CELL_KM, False, 0.3)
    rngs = [member_rng(5, k, Purpose.OBS) for k in range(200)]
    e = model.fields(rngs)
    assert abs(np.var(e) / SIGMA**2 - 1.0) < 0.05
    # each member's draws come from its own stream only: split layouts give the same fields
    whole = model.fields([member_rng(5, k, Purpose.OBS) for k in range(4)])
    parts = [model.fields([member_rng(5, k, Purpose.OBS) for k in ks]) for ks in ((0,), (1, 2, 3))]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_white_fraction_one_reproduces_white_bitwise(T):
    ref, dref = _run(T)  # white: obs_corr_km = 0
    for kw in ({"obs_white_fraction": 1.0}, {"obs_white_fraction": 1.0, "obs_corr_km": CORR_KM}):
        got, d = _run(T, **kw)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(d["stats"].s_o, dref["stats"].s_o)
    # white s_o is the exact formula
    gid = cs.coefficient_groups(T, "wedge")
    np.testing.assert_allclose(dref["stats"].s_o, cs.pool(SIGMA**2 * cs.frame_norms2(T), gid), rtol=1e-12)


def test_default_keeps_historical_meaning_bitwise(T):
    corr, dcorr = _run(T, obs_corr_km=CORR_KM)  # default None + obs_corr_km > 0: entirely correlated
    got, d = _run(T, obs_corr_km=CORR_KM, obs_white_fraction=0.0)
    np.testing.assert_array_equal(got, corr)
    np.testing.assert_array_equal(d["stats"].s_o, dcorr["stats"].s_o)
    mixed, dmix = _run(T, obs_corr_km=CORR_KM, obs_white_fraction=0.5)
    assert not np.array_equal(mixed, corr)
    _, dwhite = _run(T)
    np.testing.assert_allclose(
        dmix["stats"].s_o, 0.5 * dwhite["stats"].s_o + 0.5 * dcorr["stats"].s_o, rtol=1e-12
    )
    assert CurveletEnKF().obs_white_fraction is None
    cfg = load_config()
    assert cfg.method["curvelet_enkf"].obs_white_fraction is None  # automatic


@pytest.mark.parametrize(
    "w, corr", [(-0.1, CORR_KM), (1.5, CORR_KM), (float("nan"), CORR_KM), (0.5, 0.0), (0.0, 0.0)]
)
def test_bad_values_raise(T, w, corr):
    with pytest.raises(ValueError, match="obs_white_fraction"):
        _run(T, obs_corr_km=corr, obs_white_fraction=w)
    with pytest.raises(ValueError, match="obs_white_fraction"):
        CurveletEnKF(obs_corr_km=corr, obs_white_fraction=w)


@pytest.mark.parametrize("w, corr", [("1.5", "200"), ("0.5", "0"), ("-0.5", "200")])
def test_config_key_validated(w, corr):
    with pytest.raises(ConfigError, match="curvelet_enkf.obs_white_fraction"):
        load_config(
            overrides=[f"curvelet_enkf.obs_white_fraction={w}", f"curvelet_enkf.obs_corr_km={corr}"]
        )
    ok = load_config(
        overrides=["curvelet_enkf.obs_white_fraction=0.5", "curvelet_enkf.obs_corr_km=200"]
    )
    assert ok.method["curvelet_enkf"].obs_white_fraction == 0.5
