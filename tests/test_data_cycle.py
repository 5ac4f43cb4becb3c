"""The cycle on products as distributed: ``landimg.data demo`` then the cycle on its config.toml."""

from __future__ import annotations

import json

import numpy as np
import pytest
from landimg.data import inputs
from landimg.data.cli import main as data_main

pytestmark = pytest.mark.slow  # the cycle, run several times


def _doc_examples():
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("doc_examples", Path(__file__).parents[1] / "docs" / "examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "D"
    assert data_main(["demo", "--out", str(root)]) == 0
    return root


@pytest.mark.timeout(1500)
def test_demo_runs_and_scores_against_the_reference(demo, tmp_path, monkeypatch):
    from landimg.experiment.config import load_config
    from landimg.experiment.loop import run

    made = []
    original = inputs.ProductObservations.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(inputs.ProductObservations, "__init__", spy)
    examples = _doc_examples()
    cfg = load_config(demo / "config.toml", examples.DEMO_PROBE_SETS)  # 6-hourly analyses
    result = run(cfg, tmp_path / "R", progress=False)
    # this run is the probe of the demo quoted in docs/data.md (docs/examples.py): the same numbers
    from landimg.experiment.summary import format_table

    table = examples.table(format_table(result.summary), wall=False)
    assert table == examples.load("demo")["probe"], "the demo's numbers moved: run python docs/examples.py --run demo"
    obs = made[0]
    # sub-daily (6-hourly) analyses: every SMAP record of the run (AM and PM passes) entered exactly once
    assert obs.times.size == 5
    np.testing.assert_array_equal(obs.used, 1)
    hours = np.sort(obs.times % 86400.0) / 3600.0
    # PM passes near 00:30 UTC and AM passes near 12:30 UTC
    assert np.any(hours < 2.0) and np.any((hours > 11.0) & (hours < 14.0))
    assert obs.matcher is not None  # CDF matched to the spin-up climatology
    summary = json.loads((tmp_path / "R" / "summary.json").read_text())
    assert summary["verification"]["spatial"] == "reference product gldas"
    assert summary["verification"]["stations"] == "ismn 0-0.1 m"
    for method in ("openloop", "point_enkf", "curvelet_enkf"):
        entry = summary["methods"][method]
        for layer in ("0-10cm", "10-40cm", "40-100cm"):
            assert np.isfinite(entry[layer]["spatial_corr"]) and np.isfinite(entry[layer]["ubrmse_spatial"])
        assert entry["stations"]["n_time_corr"] == 4 and np.isfinite(entry["stations"]["time_corr"])
    # the reference, not the nature run, is what the history holds as truth
    from landimg import Grid
    from landimg.data.inputs import ProductReference

    grid = Grid.regular(lat=(35.0, 39.0), lon=(-100.0, -95.0), res=0.5, land_mask="builtin")
    ref = ProductReference("gldas", str(demo / "gldas" / "GLDAS_*.nc4"), grid, "2021-05-01", 3)
    import netCDF4

    with netCDF4.Dataset(tmp_path / "R" / "analysis.nc") as ds:
        truth = ds["sm_truth"][:].filled(np.nan)
    np.testing.assert_allclose(truth, ref.daily.astype(np.float32), equal_nan=True)


def test_config_user_domain_and_product_keys():
    from landimg.experiment.config import ConfigError, load_config

    cfg = load_config(None, ["domain.bbox=[35, 39, -100, -95]", "domain.res=0.5"])
    assert cfg.grid_spec == ((35.0, 39.0), (-100.0, -95.0), 0.5)
    with pytest.raises(ConfigError, match="needs domain.res"):
        load_config(None, ["domain.bbox=[35, 39, -100, -95]"])
    with pytest.raises(ConfigError, match="does not divide the bbox"):
        load_config(None, ["domain.bbox=[35, 39, -100, -95]", "domain.res=0.7"])
    with pytest.raises(ConfigError, match="reference.product and files go together"):
        load_config(None, ['reference.product="gldas"'])
    with pytest.raises(ConfigError, match="stations.product"):
        load_config(None, ['stations.product="smos"', 'stations.files="x"'])


def test_cycle_refuses_a_product_not_covering_the_run(demo, tmp_path):
    from landimg.experiment.config import load_config
    from landimg.experiment.setup import InputError, setup

    cfg = load_config(demo / "config.toml", ["experiment.days=10"])
    with pytest.raises(InputError, match="forcing.files: the files do not cover the end day"):
        setup(cfg)
    assert not (tmp_path / "R").exists()
