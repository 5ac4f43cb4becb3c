"""The experiment with user files: gridded retrievals and station readings instead of synthetic ones."""

import json

import numpy as np
from landimg.cycle import main
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_grid


def test_cycle_with_observation_and_station_files(tmp_path):
    import netCDF4

    grid = build_grid(load_config())
    obs = tmp_path / "smap.nc"
    with netCDF4.Dataset(obs, "w") as ds:
        for n, s in (("time", 2), ("lat", grid.shape[0]), ("lon", grid.shape[1])):
            ds.createDimension(n, s)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-05-01 00:00"
        t[:] = [6.0, 30.0]
        ds.createVariable("lat", "f8", ("lat",))[:] = grid.lat
        ds.createVariable("lon", "f8", ("lon",))[:] = grid.lon + 360.0
        sm = np.full((2,) + grid.shape, 0.25)
        sm[:, :, :30] = np.nan  # western half missing
        ds.createVariable("sm", "f8", ("time", "lat", "lon"))[:] = sm
    st = tmp_path / "stations.nc"
    with netCDF4.Dataset(st, "w") as ds:
        ds.createDimension("time", 2)
        ds.createDimension("station", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2021-05-01"
        t[:] = [0.5, 1.5]
        ds.createVariable("lat", "f8", ("station",))[:] = [38.6, 40.2]
        ds.createVariable("lon", "f8", ("station",))[:] = [-98.4, -89.7]
        ds.createVariable("sm", "f8", ("time", "station"))[:] = [[0.2, 0.3], [0.25, 0.28]]
    out = tmp_path / "run"
    sets = [
        "experiment.days=2",
        "experiment.spinup_days=2",
        "ensemble.members=4",
        "output.plots=false",
        'analysis.methods=["openloop", "curvelet_enkf"]',
        f'obs.file="{obs}"',
        f'obs.stations_file="{st}"',
    ]
    args = ["--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    east_land = int(grid.land[:, 30:].sum())
    assert 0.8 * east_land <= s["obs_per_day"] <= east_land  # frozen cells may drop a few
    import xarray as xr

    with xr.open_dataset(out / "metrics.nc") as ds:
        assert ds.sizes["station"] == 2
        assert np.allclose(ds["station_sm"].values, [[0.2, 0.3], [0.25, 0.28]])
    with xr.open_dataset(out / "analysis.nc") as ds:
        inc = ds["increment_curvelet_enkf"].values
        assert np.nanmax(np.abs(inc)) > 0.0
        assert np.all(np.nan_to_num(ds["increment_openloop"].values) == 0.0)


def _sm_file(path, grid, hours, lat_shift=0.0):
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        for n, s in (("time", len(hours)), ("lat", grid.shape[0]), ("lon", grid.shape[1])):
            ds.createDimension(n, s)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-05-01 00:00"
        t[:] = hours
        ds.createVariable("lat", "f8", ("lat",))[:] = grid.lat + lat_shift
        ds.createVariable("lon", "f8", ("lon",))[:] = grid.lon
        ds.createVariable("sm", "f8", ("time", "lat", "lon"))[:] = np.full((len(hours),) + grid.shape, 0.25)


def test_unusable_input_files_fail_before_running_with_one_line_and_nothing_left(tmp_path, capsys):
    grid = build_grid(load_config())
    cases = {
        "a year off": (tmp_path / "late.nc", dict(hours=[8766.0, 8790.0])),
        "other region": (tmp_path / "north.nc", dict(hours=[6.0], lat_shift=30.0)),
        "corrupt": (tmp_path / "corrupt.nc", None),
        "absent": (tmp_path / "absent.nc", None),
    }
    (tmp_path / "corrupt.nc").write_bytes(b"not a netCDF file")
    expected = {
        "a year off": "no record falls in the 2 days",
        "other region": "does not cover the model grid",
        "corrupt": "not a readable netCDF file",
        "absent": "no such file",
    }
    for name, (path, spec) in cases.items():
        if spec is not None:
            _sm_file(path, grid, **spec)
        out = tmp_path / f"run-{name.replace(' ', '_')}"
        args = ["--out", str(out), "--quiet", "--set", "experiment.days=2", "--set", "experiment.spinup_days=1",
                "--set", f'obs.file="{path}"']  # fmt: skip
        assert main(args) == 2, name
        err = capsys.readouterr().err
        assert (
            err.startswith("landimg.cycle: error: ") and expected[name] in err and "Traceback" not in err
        ), err
        assert not out.exists(), name
