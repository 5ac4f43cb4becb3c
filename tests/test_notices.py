"""Warnings a user sees (landimg.notices.WarningLog): landimg's own once each with a count, other
packages' dropped, -W honoured; end to end in the data tool (a GLDAS layer missing from every file of a
day: one line, not one per file; cf_xarray's matplotlib notice without matplotlib: nothing)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import warnings

import pytest
from _support import subprocess_env
from landimg.data import fixtures as fx
from landimg.notices import WarningLog

REGION = (34.0, 40.0, -101.0, -94.0)


def _warn_from(module: str, text: str, category: type[Warning] = UserWarning, times: int = 1) -> None:
    """``warnings.warn`` called by code of module ``module`` (as a dependency's code would be)."""
    code = "import warnings\nfor _ in range(times):\n    warnings.warn(text, category, stacklevel=2)\n"
    exec(compile(code, f"<{module}>", "exec"), {"__name__": module, "text": text, "category": category,
                                                 "times": times})  # fmt: skip


def test_each_warning_once_with_a_count(capsys):
    with WarningLog("prog") as log:
        _warn_from("landimg.data.gldas", "file(s) lack X", times=248)
        _warn_from("landimg.data.era5", "records dropped")
        _warn_from("landimg.data.gldas", "file(s) lack X", times=2)
        log.flush()
        _warn_from("landimg.data.gldas", "file(s) lack X")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "prog: warning: file(s) lack X (250 times)",
        "prog: warning: records dropped",
        "prog: warning: file(s) lack X (1 more time)",
    ]
    assert log.counts == {"file(s) lack X": 251, "records dropped": 1}


def test_other_packages_warnings_are_dropped(capsys, monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", [])
    with WarningLog("prog"):
        _warn_from("cf_xarray.units", "Import(s) unavailable to set up matplotlib support")
        _warn_from("xarray.coding.times", "decoding", category=RuntimeWarning)
        _warn_from("landimg.experiment.loop", "invalid value in divide", category=RuntimeWarning)
        _warn_from("landimgx", "not landimg")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("flag", [[], ["-W", "default"]])
def test_python_W_shows_the_others_as_python_does(flag):
    code = (
        "from landimg.notices import WarningLog\n"
        "with WarningLog('prog'):\n"
        "    exec(\"import warnings\\nwarnings.warn('Import(s) unavailable')\", {'__name__': 'cf_xarray.units'})\n"
    )
    done = subprocess.run([sys.executable, *flag, "-c", code], env=subprocess_env(), capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    assert ("UserWarning: Import(s) unavailable" in done.stderr) == bool(flag), done.stderr
    assert "prog:" not in done.stderr


def test_disabled_log_counts_but_prints_nothing(capsys):
    with WarningLog("prog", enabled=False) as log:
        _warn_from("landimg.x", "y", times=3)
    assert capsys.readouterr().err == "" and log.counts == {"y": 3}


def test_filters_and_hook_are_restored():
    before = (warnings.showwarning, list(warnings.filters))
    with WarningLog("prog"):
        pass
    assert (warnings.showwarning, list(warnings.filters)) == before


def _regrid(files: str, out: str, sitecustomize: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env()
    if sitecustomize:
        env["PYTHONPATH"] = sitecustomize + ":" + env["PYTHONPATH"]
    cmd = [sys.executable, "-m", "landimg.data", "regrid", "--product", "gldas", "--files", files,
           "--bbox", "35", "39", "-100", "-95", "--res", "1", "--start", "2021-05-01", "--end", "2021-05-01",
           "--out", out]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_data_tool_gldas_missing_layer_once_and_no_dependency_noise(tmp_path):
    """A GLDAS set lacking a layer, read by the data tool without matplotlib: one warning line."""
    names = [n for n in fx._GLDAS_NAMES if n != "SoilMoi40_100cm_inst"]
    for hour in range(0, 24, 3):
        fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1, hour), region=REGION, variables=names)
    nompl = tmp_path / "nompl"
    nompl.mkdir()
    (nompl / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    done = _regrid(str(tmp_path / "GLDAS_*.nc4"), str(tmp_path / "o.nc"), str(nompl))
    assert done.returncode == 0, done.stderr
    # one line for the 8 files (the reader warns once per set, or the log counts its repeats), none from
    # cf_xarray without matplotlib; progress lines ("reading --files: 1/8 files (3 s)") appear only when
    # the reads take longer than 2 s (a loaded machine) and are not warnings
    lines = [ln for ln in done.stderr.splitlines() if not re.match(r"landimg\.data: reading .*\d+/\d+ files", ln)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("landimg.data: warning: GLDAS file") and "SoilMoi40_100cm_inst" in lines[0]


@pytest.mark.slow
def test_plots_without_matplotlib_say_so_once(tmp_path):
    nompl = tmp_path / "nompl"
    nompl.mkdir()
    (nompl / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    env = subprocess_env()
    env["PYTHONPATH"] = f"{nompl}:{env['PYTHONPATH']}"
    cmd = [sys.executable, "-m", "landimg.cycle", "--out", str(tmp_path / "run"), "--quiet"]
    for s in ("domain.res=5.0", "experiment.days=1", "experiment.spinup_days=1", "ensemble.members=2",
              'analysis.methods=["openloop"]', "output.plots=true"):  # fmt: skip
        cmd += ["--set", s]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "landimg.cycle: warning: output.plots = true but matplotlib is not installed: no plots written "
        "(pip install matplotlib, or set output.plots = false)"
    ]
    assert not (tmp_path / "run" / "plots").exists()
