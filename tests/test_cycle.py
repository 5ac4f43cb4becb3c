"""End to end: the experiment program (short runs on the CONUS grid), CLI errors, resume and MPI bitwise checks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _support import assert_same_restart, restart_day, subprocess_env
from landimg.cycle import main

pytestmark = pytest.mark.slow  # the cycle, run several times

SHORT = [
    "experiment.days=5",
    "experiment.spinup_days=40",
    "ensemble.members=8",
    "output.plots=false",
]
METHODS = ("openloop", "point_enkf", "point_letkf", "curvelet_enkf")
LAYERS = ("0-10cm", "10-40cm", "40-100cm")


def _args(out, extra=()):
    args = ["--out", str(out), "--quiet"]
    for s in (*SHORT, *extra):
        args += ["--set", s]
    return args


def _env():
    return subprocess_env()


def _assert_same_state(a: Path, b: Path):
    assert_same_restart(a, b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_args(out)) == 0
    return out


def test_summary_shape_and_curvelet_improves(reference, capsys):
    s = json.loads((reference / "summary.json").read_text())
    assert set(s["methods"]) == set(METHODS)
    for m in METHODS:
        for layer in LAYERS:
            for entry in (s["methods"][m][layer], s["methods"][m][layer]["background"]):
                keys = ("spatial_corr", "ubrmse_spatial", "bias", "ubrmse_time", "time_corr")
                assert "ubrmse" not in entry and all(np.isfinite(entry[k]) for k in keys)
                assert entry["n_ubrmse_time"] == entry["n_time_corr"] == 1073  # every land pixel, 5 days
        st = s["methods"][m]["stations"]
        assert st["n_time_corr"] == st["n_ubrmse_time"] == 50 and np.isfinite(st["ubrmse_time"])
    assert s["scored_days"] == [1, 5]
    cpu = s["analysis_cpu_seconds"]  # each method's analyses, the largest rank
    assert set(cpu) == set(METHODS) and cpu["curvelet_enkf"] > 0 and cpu["point_letkf"] > 0
    assert s["primary_score"]["values"]["curvelet_enkf"] == s["methods"]["curvelet_enkf"]["0-10cm"]["background"]["ubrmse_time"]
    assert s["landimg_version"] == __import__("landimg").__version__
    assert s["ranks"] == 1 and s["wall_seconds"] > 0 and s["config"]["experiment"]["days"] == 5
    ol, cv = s["methods"]["openloop"]["0-10cm"], s["methods"]["curvelet_enkf"]["0-10cm"]
    assert cv["spatial_corr"] > ol["spatial_corr"] + 0.01
    assert cv["ubrmse_spatial"] < ol["ubrmse_spatial"]
    # the open loop has no analysis: its background is its analysis; the curvelet EnKF's differ. (Over
    # these 5 days the filters' temporal ubRMSE exceeds the open loop's: the first analyses' large
    # corrections are part of each pixel's anomaly series; score_from_day leaves such days out.)
    for k in ("ubrmse_time", "time_corr", "spatial_corr"):
        assert ol["background"][k] == ol[k] and cv["background"][k] != cv[k]


def test_netcdf_opens_in_xarray(reference):
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(reference / "analysis.nc") as ds:
        assert ds["sm_mean_curvelet_enkf"].dims == ("time", "depth", "lat", "lon")
        assert ds.sizes["time"] == 5 and ds.sizes["depth"] == 3
        assert ds["sm_truth"].attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
        assert "landimg" in ds.attrs["history"] and ds.attrs["Conventions"] == "CF-1.8"
        for coord in ("time", "depth", "lat", "lon", "lat_bnds", "lon_bnds", "depth_bnds"):
            assert "_FillValue" not in ds[coord].encoding or ds[coord].encoding["_FillValue"] is None, coord
        assert "cell_methods" not in ds["sm_obs"].attrs  # one layer, no depth axis to name
        land = ds["land"].values.astype(bool)
        assert np.all(np.isfinite(ds["sm_truth"].values[:, :, land]))
        assert np.all(np.isnan(ds["sm_truth"].values[:, :, ~land]))
    with xr.open_dataset(reference / "metrics.nc") as ds:
        assert ds["spatial_corr_openloop"].shape == (5, 3)
        assert "ubrmse_spatial_background_openloop" in ds and "ubrmse_openloop" not in ds
    leftovers = [p for p in reference.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_cli_errors_leave_nothing(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["--out", str(out), "--set", "ensemble.members=-3"]) == 2
    assert "ensemble.members" in capsys.readouterr().err and not out.exists()
    assert main(["--out", str(out), "--set", "experiment.dayz=3"]) == 2
    assert "did you mean 'days'" in capsys.readouterr().err and not out.exists()
    assert main(["--out", str(out), "--set", "experiment.days=0"]) == 2 and not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    assert main(["--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and [p.name for p in out.iterdir()] == ["keep.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "sub")]) == 2
    assert main(["--out", str(tmp_path / "y"), "--resume"]) == 2
    assert main(["--print-config", "--set", "experiment.days=7"]) == 0
    assert "days = 7" in capsys.readouterr().out


def test_resume_after_kill_is_bitwise(reference, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "landimg.cycle", *_args(out)]
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 240
    killed_at = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            day = restart_day(out)
            if 1 <= day < 5:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at = day
                break
            time.sleep(0.2)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed_at is not None, "the run finished before it could be interrupted"
    assert not (out / "summary.json").exists()
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    _assert_same_state(reference, out)
    a = json.loads((reference / "summary.json").read_text())["methods"]
    b = json.loads((out / "summary.json").read_text())["methods"]
    assert a == b


@pytest.mark.mpi
def test_two_ranks_match_one_rank_bitwise(reference, tmp_path):
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        pytest.skip("no mpirun next to the Python interpreter")
    out = tmp_path / "run2"
    cmd = [str(mpirun), "-n", "2", sys.executable, "-m", "mpi4py", "-m", "landimg.cycle", *_args(out)]
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same_state(reference, out)
    s = json.loads((out / "summary.json").read_text())
    assert s["ranks"] == 2
    assert s["methods"] == json.loads((reference / "summary.json").read_text())["methods"]


def test_china_preset_other_seed_curvelet_improves(tmp_path):
    out = tmp_path / "china"
    extra = [
        "domain.preset=china",
        "domain.res=1.0",
        "experiment.seed=7",
        "experiment.days=4",
        "experiment.spinup_days=30",
        'analysis.methods=["openloop", "curvelet_enkf"]',
        "output.netcdf=false",
    ]
    assert main(_args(out, extra)) == 0
    s = json.loads((out / "summary.json").read_text())["methods"]
    assert set(s) == {"openloop", "curvelet_enkf"}
    ol, cv = s["openloop"]["0-10cm"], s["curvelet_enkf"]["0-10cm"]
    assert cv["spatial_corr"] > ol["spatial_corr"] and cv["ubrmse_spatial"] < ol["ubrmse_spatial"]


def test_resume_with_a_changed_key_names_it(reference, capsys):
    args = ["--out", str(reference), "--resume", "--quiet", "--set", "output.log_every_days=2"]
    for s in SHORT:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "output.log_every_days differ(s)" in err and "experiment.days" not in err
