"""Plots of the experiment: increment split by curvelet scale, figure files written atomically."""

import numpy as np
import pytest
from landimg.experiment import plot
from landimg.experiment.figure import available as plots_available


def test_increment_by_scale_sums_back():
    from landimg.transform.curvelet import Curvelet

    C = Curvelet((48, 64), nscales=3)
    y, x = np.mgrid[0:48, 0:64]
    img = np.sin(x / 9.0) + 0.3 * np.cos(y / 2.0) + 0.1 * np.random.default_rng(0).standard_normal((48, 64))
    img[5, 7] = np.nan  # treated as 0
    parts = plot.increment_by_scale(img, C)
    assert parts.shape == (3, 48, 64)
    assert np.allclose(parts.sum(0), np.nan_to_num(img), atol=1e-10)
    # the smooth large-scale signal lives in the coarse scales, the pixel noise in the finest
    assert np.abs(parts[0]).mean() > np.abs(parts[-1]).mean()


def test_figures_are_written(tmp_path):
    if not plots_available():
        pytest.skip("matplotlib not installed")
    lat, lon = np.arange(10.0), np.arange(20.0)
    f = np.random.default_rng(1).random((10, 20))
    f[0, 0] = np.nan
    p = plot.plot_maps(tmp_path / "m.png", lat, lon, {"a": f, "b": f * 2}, "title")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = {"openloop": {"spatial_corr/0-10cm": np.arange(5.0)}}
    plot.plot_metric_series(tmp_path / "s.png", np.arange(5), series, ["0-10cm"], metrics=("spatial_corr",))
    parts = np.stack([f, -f])
    plot.plot_increment_scales(tmp_path / "i.png", lat, lon, parts, np.isfinite(f), "inc")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["i.png", "m.png", "s.png"]


@pytest.fixture()
def reference_run(tmp_path):
    """A configuration verified against a reference product, with an (empty) history of 2 days and the
    images of its last day."""
    from landimg.experiment.config import load_config
    from landimg.experiment.history import DayImages, History
    from landimg.experiment.obs import Stations
    from landimg.grid import Grid

    files = str(tmp_path / "gldas" / "GLDAS_*.nc4")
    cfg = load_config(None, ["experiment.days=2", 'reference.product="gldas"', f'reference.files="{files}"',
                             'analysis.methods=["openloop"]'])  # fmt: skip
    grid = Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -80.0), res=2.0, land_mask="all")
    stations = Stations(grid, cfg.obs, 0)
    history = History.empty(2, stations.n, ["openloop"], cfg.ensemble.members)
    nan = np.full((3, *grid.shape), np.nan, np.float32)
    last = DayImages(truth=nan, obs=nan[0], mean={"openloop": nan}, mean_background={"openloop": nan},
                     spread={"openloop": nan}, increment={"openloop": nan[0]})  # fmt: skip
    return cfg, grid, stations, history, last, files


def test_the_reference_is_named_in_the_files(reference_run, tmp_path):
    import netCDF4
    from landimg.experiment.ncfiles import ExperimentFiles

    cfg, grid, stations, history, last, files = reference_run
    nc = ExperimentFiles(tmp_path, cfg, grid, stations, ["openloop"], cfg.ensemble.members)
    nc.create()
    nc.append(0, last, history)
    with netCDF4.Dataset(tmp_path / "analysis.nc") as ds:
        truth = ds["sm_truth"]
        assert truth.long_name.startswith("reference soil moisture: gldas (GLDAS Noah 3-hourly")
        assert truth.source == f"gldas files {files}"
    with netCDF4.Dataset(tmp_path / "metrics.nc") as ds:
        assert ds["spatial_corr_openloop"].long_name == "openloop daily spatial correlation of the analysis vs the reference gldas"


def test_the_reference_is_named_in_the_plot_titles(reference_run, tmp_path, monkeypatch):
    cfg, grid, stations, history, last, _ = reference_run
    seen = {}
    monkeypatch.setattr(plot, "plot_maps", lambda path, lat, lon, fields, title, **k: seen.update(
        maps=(list(fields), title)))  # fmt: skip
    monkeypatch.setattr(plot, "plot_metric_series", lambda *a, title=None, **k: seen.update(series=title))
    from landimg.experiment import obsplots

    monkeypatch.setattr(obsplots, "plot_spread_error", lambda path, *a: path)
    monkeypatch.setattr(obsplots, "plot_rank_histograms", lambda path, *a: path)
    plot.experiment_plots(cfg, grid, tmp_path, history, last)
    fields, title = seen["maps"]
    assert fields[0] == "reference gldas" and "; reference soil moisture: gldas (GLDAS Noah" in title
    assert seen["series"].startswith("scores against reference soil moisture: gldas (GLDAS Noah")


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 6])
def test_every_figure_is_made_by_one_rank(ranks):
    shares = [plot.figures_of(r, ranks) for r in range(ranks)]
    made = [f for share in shares for f in share]
    assert sorted(made) == sorted(plot.FIGURES)  # each once
    assert shares[0][0] == plot.FIGURES[0]
    if ranks == 1:
        assert shares[0] == plot.FIGURES
    else:  # the costliest two on different ranks
        assert plot.FIGURES[1] in shares[1]


def test_unknown_figures_are_refused(reference_run, tmp_path):
    cfg, grid, _, history, last, _ = reference_run
    with pytest.raises(ValueError, match="unknown figures"):
        plot.experiment_plots(cfg, grid, tmp_path, history, last, ("maps", "histogram"))
