"""Innovation-based adaptive multiplicative inflation of the point and curvelet EnKFs.

Synthetic linear-Gaussian cases where the truth is drawn around the background ensemble mean with a known
multiple ``lam`` of the ensemble variance, so that ``E[d.d] = lam tr(HBH^T) + tr(R)`` holds exactly for the
given ensemble: the estimate must recover ``lam`` within its (analytic) sampling error, and the analysis
must be exactly the fixed-inflation analysis with the estimated factor.
"""

import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from _support import CORE_SETTINGS, subprocess_env
from landimg.analysis import CurveletEnKF, PointEnKF
from landimg.da.curvelet_enkf import curvelet_analysis as _curvelet_analysis
from landimg.da.inflation import smoothed_lambda
from landimg.da.point_enkf import point_enkf_increments
from landimg.experiment.config import ConfigError, load_config
from landimg.transform.curvelet import Curvelet

MPIRUN = Path(sys.executable).parent / "mpirun"
NMEM = 16
SIGMA = 0.02  # observation error std, m3/m3
SHAPE = (64, 64)

curvelet_analysis = partial(_curvelet_analysis, **CORE_SETTINGS)


def _lam_sd(lam: float, v: np.ndarray, r: np.ndarray) -> float:
    """Sampling std of lambda_hat: var(d.d) = 2 sum (lam v + r)^2 for Gaussian d, divided by sum v."""
    return float(np.sqrt(2.0 * np.sum((lam * v + r) ** 2)) / np.sum(v))


# ---------------------------------------------------------------------- point EnKF
def _point_case(lam: float, seed: int = 3, ncol: int = 3000):
    """State (nlev=2, ncol, N), h, obs with obs - H xbar ~ N(0, lam var(Hx) + sigma^2); var(Hx) per column."""
    rng = np.random.default_rng(seed)
    sd = rng.uniform(0.01, 0.03, ncol)  # spatially varying spread
    state = 0.3 + sd[None, :, None] * rng.standard_normal((2, ncol, NMEM))
    h = np.array([0.6, 0.4])
    hx = np.einsum("l,lcm->cm", h, state)
    v = hx.var(axis=1, ddof=1)
    obs = hx.mean(axis=1) + np.sqrt(lam * v) * rng.standard_normal(ncol) + SIGMA * rng.standard_normal(ncol)
    return state, h, obs, v, np.full(ncol, SIGMA**2)


@pytest.mark.parametrize("lam", [4.0, 2.25])
def test_point_recovers_known_underdispersion(lam):
    state, h, obs, v, r = _point_case(lam)
    d_ad, diag = point_enkf_increments(state, h, obs, SIGMA, inflation_mode="adaptive", inflation_max=3.0)
    assert abs(diag["inflation_lambda"] - lam) < 4 * _lam_sd(lam, v, r)
    assert diag["inflation"] == pytest.approx(np.sqrt(diag["inflation_lambda"]), rel=1e-14)
    # the estimated factor is applied exactly as the fixed inflation would be
    d_fx, _ = point_enkf_increments(state, h, obs, SIGMA, inflation=diag["inflation"])
    np.testing.assert_array_equal(d_ad, d_fx)
    # and the inflated analysis spread is larger than without inflation
    d_1, _ = point_enkf_increments(state, h, obs, SIGMA)
    assert (state + d_ad).std(axis=2).mean() > (state + d_1).std(axis=2).mean()


def test_point_well_dispersed_gives_one():
    state, h, obs, v, r = _point_case(1.0, seed=5)
    _, diag = point_enkf_increments(state, h, obs, SIGMA, inflation_mode="adaptive")
    assert abs(diag["inflation_lambda"] - 1.0) < 4 * _lam_sd(1.0, v, r)
    assert 1.0 <= diag["inflation"] <= np.sqrt(1.0 + 4 * _lam_sd(1.0, v, r))
    # over-dispersed: clipped at 1 from below, and then exactly the un-inflated analysis
    state, h, obs, v, r = _point_case(0.25, seed=6)
    d_ad, diag = point_enkf_increments(state, h, obs, SIGMA, inflation_mode="adaptive")
    assert diag["inflation_lambda"] < 0.25 + 4 * _lam_sd(0.25, v, r) < 1.0
    assert diag["inflation"] == 1.0
    np.testing.assert_array_equal(d_ad, point_enkf_increments(state, h, obs, SIGMA)[0])


def test_point_bounds_and_no_observations():
    state, h, obs, _, _ = _point_case(9.0)
    _, diag = point_enkf_increments(state, h, obs, SIGMA, inflation_mode="adaptive", inflation_max=1.5)
    assert diag["inflation_lambda"] > 1.5**2 and diag["inflation"] == 1.5  # clipped from above
    state, h, obs, _, _ = _point_case(0.25, seed=6)
    _, diag = point_enkf_increments(state, h, obs, SIGMA, inflation=1.2, inflation_mode="adaptive")
    assert diag["inflation"] == 1.2  # the fixed inflation is the lower bound
    d, diag = point_enkf_increments(state, h, np.full_like(obs, np.nan), SIGMA, inflation=1.1,
                                    inflation_mode="adaptive")  # fmt: skip
    assert np.isnan(diag["inflation_lambda"]) and diag["inflation"] == 1.1
    np.testing.assert_array_equal(d, point_enkf_increments(state, h, np.full_like(obs, np.nan), SIGMA,
                                                           inflation=1.1)[0])  # fmt: skip


def test_adaptive_inflation_formula():
    """The one estimator (no smoothing): lambda = (d2 - tr R) / tr HBH^T, clipped to [lower^2, upper^2]."""
    lam_o, lam = smoothed_lambda(13.0, 1.0, 3.0, 100.0, lower=1.0, upper=3.0)
    assert lam_o == 4.0 and lam == 4.0
    assert smoothed_lambda(2.0, 1.0, 4.0, 100.0) == (0.25, 1.0)
    assert smoothed_lambda(101.0, 1.0, 1.0, 100.0, upper=2.0) == (100.0, 4.0)
    lam_o, lam = smoothed_lambda(1.0, 0.5, 0.0, 100.0, lower=1.3)
    assert np.isnan(lam_o) and lam == pytest.approx(1.69)
    # smoothing: the Miyoshi (2011) posterior of prior and estimate, weighted by their variances
    lam_o, lam = smoothed_lambda(13.0, 1.0, 3.0, 50.0, prior=1.5, prior_var=0.01, upper=3.0)
    v_o = 2.0 / 50.0 * ((1.5 * 3.0 + 1.0) / 3.0) ** 2
    assert lam == pytest.approx((v_o * 1.5 + 0.01 * 4.0) / (v_o + 0.01), rel=1e-14)
    # element-wise over scales
    lam_o, lam = smoothed_lambda(np.array([13.0, 2.0]), 1.0, np.array([3.0, 1.0]), 100.0, upper=3.0)
    np.testing.assert_array_equal(lam_o, [4.0, 1.0])


# ---------------------------------------------------------------------- curvelet EnKF
@pytest.fixture(scope="module")
def T():
    return Curvelet(SHAPE, nangles_coarse=8)


def _image_case(lam: float, seed: int):
    """Members (N, ny, nx) on a land mask with a round lake, obs with known error of the ensemble mean."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    land = (yy - 20) ** 2 + (xx - 12) ** 2 > 36
    sd = 0.01 + 0.02 * xx / SHAPE[1]
    bg = 0.3 + sd * rng.standard_normal((NMEM,) + SHAPE)
    bg[:, ~land] = np.nan
    mean, v = bg.mean(axis=0), bg.var(axis=0, ddof=1)
    obs = mean + np.sqrt(lam * v) * rng.standard_normal(SHAPE) + SIGMA * rng.standard_normal(SHAPE)
    obs[:3, :] = np.nan  # a gap
    use = land & np.isfinite(obs)
    return bg, obs, land, v[use], np.full(int(use.sum()), SIGMA**2)


@pytest.mark.parametrize("lam", [4.0, 2.25])
def test_curvelet_recovers_known_underdispersion(T, lam):
    bg, obs, land, v, r = _image_case(lam, seed=11)
    kw = dict(land=land, pooling="wedge", seed=4)
    xa, diag = curvelet_analysis(bg, obs, SIGMA, T, inflation_mode="adaptive", inflation_max=3.0, **kw)
    assert diag["n_obs"] == v.size
    assert abs(diag["inflation_lambda"] - lam) < 4 * _lam_sd(lam, v, r)
    assert diag["inflation"] == pytest.approx(np.sqrt(diag["inflation_lambda"]), rel=1e-14)
    xf, _ = curvelet_analysis(bg, obs, SIGMA, T, inflation=diag["inflation"], **kw)
    np.testing.assert_array_equal(xa, xf)


def test_curvelet_well_dispersed_and_dataclass(T):
    bg, obs, land, v, r = _image_case(1.0, seed=12)
    method = CurveletEnKF(inflation_mode="adaptive")
    xa, diag = method.update(bg, obs, SIGMA, transform=T, land=land, seed=4)
    assert abs(diag["inflation_lambda"] - 1.0) < 4 * _lam_sd(1.0, v, r)
    assert 1.0 <= diag["inflation"] <= np.sqrt(1.0 + 4 * _lam_sd(1.0, v, r))
    bg, obs, land, v, r = _image_case(0.25, seed=13)
    xa, diag = method.update(bg, obs, SIGMA, transform=T, land=land, seed=4)
    assert diag["inflation"] == 1.0 and diag["inflation_lambda"] < 1.0
    xf, diag_f = CurveletEnKF().update(bg, obs, SIGMA, transform=T, land=land, seed=4)
    np.testing.assert_array_equal(xa, xf)


# ---------------------------------------------------------------------- defaults and validation
def test_fixed_inflation_is_the_kalman_update_with_inflated_covariance():
    """Fixed mode, own cell, deterministic: mean and anomalies are the exact update with B = f^2 P."""
    f = 1.3
    state, h, obs, _, _ = _point_case(4.0, ncol=40)
    d, diag = point_enkf_increments(state, h, obs, SIGMA, inflation=f, perturb_obs=False)
    assert "inflation_lambda" not in diag  # the fixed mode estimates nothing
    xa = state + d
    mean = state.mean(axis=2)
    anom = state - mean[:, :, None]
    for c in range(state.shape[1]):
        p_mat = f**2 * anom[:, c] @ anom[:, c].T / (NMEM - 1)
        k = p_mat @ h / (h @ p_mat @ h + SIGMA**2)
        np.testing.assert_allclose(
            xa[:, c].mean(axis=1), mean[:, c] + k * (obs[c] - h @ mean[:, c]), atol=1e-13
        )
        np.testing.assert_allclose(xa[:, c] - xa[:, c].mean(axis=1, keepdims=True),
                                   (np.eye(2) - np.outer(k, h)) @ (f * anom[:, c]), atol=1e-13)  # fmt: skip


def test_fixed_inflation_applies_without_observations(T):
    """No usable observation: both filters still inflate the anomalies by exactly the fixed factor."""
    bg, obs, land, _, _ = _image_case(1.0, seed=21)
    f = 1.25
    xa, diag = CurveletEnKF(inflation=f, inflation_mode="fixed").update(bg, np.full_like(obs, np.nan), SIGMA, transform=T, land=land)
    assert diag["n_obs"] == 0 and "inflation_lambda" not in diag
    mean = bg.mean(axis=0)
    np.testing.assert_allclose(xa[:, land], (mean + f * (bg - mean))[:, land], rtol=0, atol=1e-14)
    state, h, _, _, _ = _point_case(1.0, ncol=30)
    d, _ = point_enkf_increments(state, h, np.full(30, np.nan), SIGMA, inflation=f)
    np.testing.assert_allclose(d, (f - 1.0) * (state - state.mean(axis=2, keepdims=True)), atol=1e-15)


def test_fixed_inflation_above_the_adaptive_upper_bound_is_valid():
    # a fixed inflation above the default inflation_max stays valid
    assert PointEnKF(inflation=2.5, inflation_mode="fixed").inflation == 2.5


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"inflation_mode": "adaptiv"}, "inflation_mode"),
        ({"inflation_mode": "adaptive", "inflation_max": 0.9}, "inflation_max"),
        ({"inflation_mode": "adaptive", "inflation": 1.5, "inflation_max": 1.2}, "inflation_max"),
        ({"inflation_max": float("inf")}, "inflation_max"),
    ],
)
def test_bad_settings_raise(kw, match):
    for cls in (CurveletEnKF, PointEnKF):
        with pytest.raises(ValueError, match=match):
            cls(**kw)
    state, h, obs, _, _ = _point_case(1.0, ncol=10)
    with pytest.raises(ValueError, match=match):
        point_enkf_increments(state, h, obs, SIGMA, **kw)


def test_config_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[point_enkf]\ninflation_mode = "adaptive"\n')
    assert load_config(cfg).method["point_enkf"].inflation_mode == "adaptive"
    cfg.write_text('[curvelet_enkf]\ninflation_mode = "auto"\n')
    with pytest.raises(ConfigError, match="curvelet_enkf.inflation_mode"):
        load_config(cfg)


# ---------------------------------------------------------------------- MPI: bitwise over 1 and 2 ranks
_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from landimg.da.curvelet_enkf import curvelet_analysis
    from landimg.da.point_enkf import point_enkf_increments
    from landimg.transform.curvelet import Curvelet
    from landimg.layout import Layout

    comm = MPI.COMM_WORLD
    lay = Layout(8, comm)
    rng = np.random.default_rng(7)
    bg = 0.3 + 0.01 * rng.standard_normal((8, 32, 32))
    obs = 0.3 + 0.05 * rng.standard_normal((32, 32))
    loc = bg[lay.start : lay.stop]
    xa, dc = curvelet_analysis(loc, obs, 0.02, Curvelet((32, 32), nangles_coarse=8), seed=3, pooling="wedge",
                               inflation_mode="adaptive", layout=lay)
    state = np.moveaxis(bg.reshape(8, 2, 512), 0, 2)[:, :, lay.start : lay.stop]
    dp, dd = point_enkf_increments(state, np.array([0.5, 0.5]), obs.reshape(2, 512).mean(axis=0), 0.02,
                                   seed=3, inflation_mode="adaptive", layout=lay)
    xa_all = lay.gather_members(xa)
    dp_all = lay.gather_members(np.ascontiguousarray(np.moveaxis(dp, 2, 0)))
    if comm.rank == 0:
        np.savez(sys.argv[1], xa=xa_all, dp=dp_all, lam=[dc["inflation_lambda"], dd["inflation_lambda"]],
                 fac=[dc["inflation"], dd["inflation"]])
    """
)


@pytest.mark.mpi
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
def test_bitwise_identical_on_1_and_2_ranks(tmp_path):
    script = tmp_path / "adaptive.py"
    script.write_text(_SCRIPT)
    res = {}
    for n in (1, 2):
        out = tmp_path / f"r{n}.npz"
        cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "mpi4py", str(script), str(out)]
        proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res[n] = dict(np.load(out))
    assert np.all(res[1]["fac"] > 1.0)  # the estimate is active (obs far from a tight ensemble)
    for key in res[1]:
        np.testing.assert_array_equal(res[2][key], res[1][key], err_msg=key)
