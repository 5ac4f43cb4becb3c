"""I/O: atomic writes, restart round trip, CF netCDF, output directory rules."""

import json
import os

import numpy as np
import pytest
from landimg.experiment.output import OutputDirError, atomic_path, prepare_out_dir, write_json, write_netcdf
from landimg.experiment.restart import load_restart, save_restart


def test_restart_roundtrip_bitwise(tmp_path):
    rng = np.random.default_rng(0)
    tree = {
        "a": rng.standard_normal((3, 4, 5)),
        "ens": {
            "openloop": {
                "wliq": np.asfortranarray(rng.random((10, 7, 3))),
                "rng": np.arange(4, dtype=np.uint64),
            }
        },
        "day": 5,
        "name": "conus",
        "model/wliq": np.ones((2, 3), order="F"),
        "rngs": [np.random.default_rng(k).bit_generator.state for k in range(3)],
    }
    p = tmp_path / "r.npz"
    save_restart(p, tree)
    back = load_restart(p)
    assert np.array_equal(back["a"], tree["a"])
    assert np.array_equal(back["ens"]["openloop"]["wliq"], tree["ens"]["openloop"]["wliq"])
    assert back["ens"]["openloop"]["rng"].dtype == np.uint64
    assert int(back["day"]) == 5 and str(back["name"]) == "conus"
    assert np.array_equal(back["model/wliq"], np.ones((2, 3)))
    g = np.random.default_rng()
    g.bit_generator.state = back["rngs"][2]
    assert g.random() == np.random.default_rng(2).random()
    assert [f for f in os.listdir(tmp_path)] == ["r.npz"]  # no temporaries left


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "summary.json"
    write_json(p, {"x": np.float64(1.5), "y": np.arange(2), "z": float("nan")})
    assert json.loads(p.read_text()) == {"x": 1.5, "y": [0, 1], "z": None}
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert json.loads(p.read_text())["x"] == 1.5
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]


def test_netcdf_cf_opens_in_xarray(tmp_path):
    xr = pytest.importorskip("xarray")
    p = tmp_path / "out.nc"
    data = np.arange(24.0).reshape(2, 3, 4)
    data[0, 0, 0] = np.nan
    write_netcdf(
        p,
        {"time": None, "lat": 3, "lon": 4},
        {
            "time": (
                ("time",),
                np.array([0.0, 1.0]),
                {"units": "days since 2021-05-01 00:00:00", "calendar": "standard", "standard_name": "time"},
            ),
            "lat": (
                ("lat",),
                np.array([1.0, 2.0, 3.0]),
                {"units": "degrees_north", "standard_name": "latitude"},
            ),
            "lon": (("lon",), np.arange(4.0), {"units": "degrees_east", "standard_name": "longitude"}),
            "sm": (("time", "lat", "lon"), data, {"units": "m3 m-3"}),
        },
        {"title": "test"},
    )
    with xr.open_dataset(p) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert np.isnan(ds["sm"].values[0, 0, 0]) and ds["sm"].values[1, 2, 3] == 23.0
        assert str(ds["time"].values[1])[:10] == "2021-05-02"


def test_prepare_out_dir_rules(tmp_path):
    out = tmp_path / "run"
    assert prepare_out_dir(out, resume=False, create=False) is True and not out.exists()
    assert prepare_out_dir(out, resume=False) is True and out.is_dir()
    (out / "restart").mkdir()
    (out / "restart" / ".restart.npz.x1.tmp").write_bytes(b"partial")
    # what a run that failed before its first restart leaves (empty dirs, temporaries) is reused, cleaned
    assert prepare_out_dir(out, resume=False) is False and not (out / "restart" / ".restart.npz.x1.tmp").exists()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="already exists"):
        prepare_out_dir(out, resume=False)
    with pytest.raises(OutputDirError, match="no restart"):
        prepare_out_dir(out, resume=True)
    save_restart(out / "restart" / "restart.npz", {"a": 1})
    assert prepare_out_dir(out, resume=True) is False
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputDirError, match="cannot create"):
        prepare_out_dir(blocker / "sub", resume=False)


def test_open_input_netcdf_names_missing_corrupt_and_incomplete_files(tmp_path):
    from landimg.experiment.inputs import open_input_netcdf

    with pytest.raises(FileNotFoundError, match="obs.file .*no such file"):
        open_input_netcdf(tmp_path / "absent.nc", what="obs.file")
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"CDF\x01 this is not really netCDF")
    with pytest.raises(ValueError, match="not a readable netCDF file"):
        open_input_netcdf(corrupt)
    ok = tmp_path / "ok.nc"
    write_netcdf(ok, {"x": 3}, {"a": (("x",), np.arange(3.0), {"units": "1"})})
    with pytest.raises(ValueError, match="variable 'sm' is missing"):
        open_input_netcdf(ok, ("a", "sm"))
    with open_input_netcdf(ok, ("a",)) as ds:
        np.testing.assert_array_equal(ds["a"][:], np.arange(3.0))


def test_seconds_since_reads_cf_time_units(tmp_path):
    from landimg.experiment.inputs import open_input_netcdf, seconds_since

    path = tmp_path / "t.nc"
    write_netcdf(
        path,
        {"time": 3},
        {"time": (("time",), np.array([0.0, 6.0, 30.0]), {"units": "hours since 2021-05-02 00:00:00"})},
    )
    with open_input_netcdf(path, ("time",)) as ds:
        np.testing.assert_allclose(seconds_since(ds["time"], "2021-05-01"), [86400.0, 108000.0, 194400.0])
