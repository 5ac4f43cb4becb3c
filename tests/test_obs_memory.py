"""The synthetic retrieval error's correlated part: unit variance without re-standardisation, AR(1) in time
(``obs.memory_days``), keyed by (seed, analysis index) only, its state restarted bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment.config import load_config
from landimg.experiment.obs import SatelliteObserver


@pytest.fixture(scope="module")
def grid():
    return Grid.regular(lat=(25.0, 45.0), lon=(-110.0, -80.0), res=1.0, land_mask=np.ones((20, 30), bool))


def _observer(grid, memory_days: float, interval_days: float = 1.0, seed: int = 5) -> SatelliteObserver:
    cfg = load_config(None, [f"obs.memory_days={memory_days}", "obs.corr_length_km=300"]).obs
    return SatelliteObserver(grid, cfg, seed, interval_days)


@pytest.mark.parametrize(("memory", "interval"), [(0.0, 1.0), (2.0, 1.0), (10.0, 1.0), (3.0, 0.25)])
def test_lag_one_correlation_is_the_ar_coefficient_and_variance_stationary(grid, memory, interval):
    obs = _observer(grid, memory, interval)
    expected = np.exp(-interval / memory) if memory else 0.0
    assert obs.ar_coefficient == pytest.approx(expected)
    z = np.stack([obs.correlated_part(k).copy() for k in range(600)])  # (k, ny, nx)
    lag1 = np.mean(z[1:] * z[:-1]) / np.sqrt(np.mean(z[1:] ** 2) * np.mean(z[:-1] ** 2))
    # 600 steps x 600 cells, but each field has ~20 independent patches at 300 km and AR memory: tolerance
    tol = 0.05 if memory <= 2 else 0.08
    assert lag1 == pytest.approx(expected, abs=tol)
    if memory >= 2:  # the next lag too: a^2 (an AR(1), not just any lag-1 correlation)
        lag2 = np.mean(z[2:] * z[:-2]) / np.mean(z**2)
        assert lag2 == pytest.approx(expected**2, abs=tol)
    # stationary unit variance: no re-standardisation, and the same at the start as later
    var = np.var(z, axis=(1, 2), ddof=0) + np.mean(z, axis=(1, 2)) ** 2  # E z^2 per field
    assert np.mean(var[:100]) == pytest.approx(1.0, abs=0.15)
    assert np.mean(var[-300:]) == pytest.approx(1.0, abs=0.12)
    # a field is not standardised over the image: its spatial mean and variance vary between analyses
    assert np.std(np.mean(z, axis=(1, 2))) > 0.05 and np.std(np.var(z, axis=(1, 2))) > 0.05


def test_error_statistics_of_the_mixed_error(grid):
    obs = _observer(grid, 4.0)
    e = np.stack([obs.error(k) for k in range(300)])
    c = obs.cfg
    assert np.std(e) == pytest.approx(c.error_std, rel=0.05)
    # the white part is redrawn each time: lag-1 correlation of the total error = (1 - w) a
    lag1 = np.mean(e[1:] * e[:-1]) / np.mean(e**2)
    assert lag1 == pytest.approx((1.0 - c.white_fraction) * np.exp(-1.0 / 4.0), abs=0.06)


def test_draws_depend_only_on_seed_and_index_and_the_state_restarts_bitwise(grid):
    seq = _observer(grid, 5.0)
    fields = [seq.error(k) for k in range(12)]
    # a fresh observer asked for index 11 directly reruns the chain: the same bits
    np.testing.assert_array_equal(_observer(grid, 5.0).error(11), fields[11])
    # the same index twice: the same field (the observer keeps the last one)
    np.testing.assert_array_equal(seq.error(11), fields[11])
    # a restart after index 6: the state continues the chain bitwise
    part = _observer(grid, 5.0)
    for k in range(7):
        part.error(k)
    state = part.get_state()
    resumed = _observer(grid, 5.0)
    resumed.set_state({k: np.array(v) for k, v in state.items()})
    for k in range(7, 12):
        np.testing.assert_array_equal(resumed.error(k), fields[k])
    # the state drives the next step (it is not ignored in favour of a rerun of the chain)
    zero = _observer(grid, 5.0)
    zero.set_state({"index": np.array(6), "field": np.zeros(grid.shape)})
    a = zero.ar_coefficient
    np.testing.assert_allclose(zero.correlated_part(7), np.sqrt(1 - a * a) * zero._draws(7)[1], rtol=1e-15)
    # memory_days = 0: each index independent of the others
    white = _observer(grid, 0.0)
    np.testing.assert_array_equal(white.error(9), _observer(grid, 0.0).error(9))
    assert not np.allclose(_observer(grid, 0.0, seed=6).error(9), white.error(9))


def test_resumed_run_with_memory_is_bitwise(tmp_path):
    import netCDF4
    from _support import assert_same_restart, restart_arrays
    from landimg.experiment.loop import run

    sets = ["domain.bbox=[35.0, 45.0, -105.0, -90.0]", "domain.res=1.0", "experiment.days=4",
            "experiment.spinup_days=4", "ensemble.spread_days=2", "ensemble.members=4", "obs.memory_days=3.0",
            'analysis.methods=["openloop", "point_enkf"]', "output.plots=false"]  # fmt: skip
    cfg = load_config(None, sets)
    whole = run(cfg, tmp_path / "whole", progress=False)
    assert run(cfg, tmp_path / "part", progress=False, stop_after_days=2) is None
    state = restart_arrays(tmp_path / "part")
    assert int(state["whole::observer::index"]) == 1 and state["observer::field"].shape == (150,)
    resumed = run(cfg, tmp_path / "part", progress=False, resume=True)
    np.testing.assert_array_equal(resumed.history.n_obs, whole.history.n_obs)
    with netCDF4.Dataset(tmp_path / "whole" / "analysis.nc") as a, netCDF4.Dataset(tmp_path / "part" / "analysis.nc") as b:
        for v in ("sm_obs", "sm_mean_openloop", "sm_mean_point_enkf"):
            np.testing.assert_array_equal(a[v][:].filled(np.nan), b[v][:].filled(np.nan))
    assert_same_restart(tmp_path / "whole", tmp_path / "part")  # the observation-error field among them


def test_the_experiment_declares_the_obs_model_to_the_methods(grid):
    """setup.Observer returns the [obs] model as an ObsError; a product's sm_error sets the white part."""
    from landimg.da.obs_error import ObsError
    from landimg.experiment.setup import Observer

    cfg = load_config(None, ["obs.error_std=0.05", "obs.white_fraction=0.3", "obs.corr_length_km=400",
                             "obs.memory_days=10"])  # fmt: skip
    obs = Observer(cfg, grid)
    err = obs.error()
    assert isinstance(err, ObsError) and err.corr_length_km == 400.0 and err.memory_days == 10.0
    assert float(err.white_std) ** 2 == pytest.approx(0.3 * 0.05**2)
    assert float(err.corr_std) ** 2 == pytest.approx(0.7 * 0.05**2)
    white = np.full(grid.shape, np.nan)
    white[:5] = 0.02  # given on the first rows only
    per = obs.error(white)
    cols = grid.to_columns(white)
    np.testing.assert_array_equal(per.white_std[np.isfinite(cols)], 0.02)
    np.testing.assert_array_equal(per.white_std[~np.isfinite(cols)], err.white_std)
    assert per.corr_std == err.corr_std and per.memory_days == 10.0
    y, declared = obs(np.full(grid.ncol, 0.3), 0.0, np.zeros(grid.ncol, bool), 1.0, 0)  # the columns observed
    assert declared == err and np.isfinite(y).any()
