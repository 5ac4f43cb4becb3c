"""Experiment: the spin-up cache gives bitwise the same run, summary.json's timing breakdown, memory refusal."""

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
from _support import assert_same_restart
from landimg.cycle import main
from landimg.experiment import spinup as spinup_module
from landimg.experiment.timing import PARTS

SMALL = ["experiment.days=2", "experiment.spinup_days=6", "ensemble.members=4", "output.plots=false"]


def _args(out, extra=()):
    args = ["--out", str(out), "--quiet"]
    for s in SMALL:
        args += ["--set", s]
    return args + list(extra)


def _assert_bitwise(a: Path, b: Path) -> None:
    assert_same_restart(a, b)
    for name in ("analysis.nc", "metrics.nc"):
        with netCDF4.Dataset(a / name) as fa, netCDF4.Dataset(b / name) as fb:
            for v in fa.variables:
                assert np.asarray(fa[v][:]).tobytes() == np.asarray(fb[v][:]).tobytes(), (name, v)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["methods"] == sb["methods"]


@pytest.mark.slow
def test_spinup_cache_is_bitwise_and_skips_the_spinup(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    assert main(_args(tmp_path / "plain")) == 0
    assert main(_args(tmp_path / "store", ["--spinup-cache", str(cache)])) == 0
    assert len(list(cache.glob("spinup-*.npz"))) == 1

    def no_spinup(*args, **kwargs):
        raise AssertionError("the spin-up ran although it was cached")

    monkeypatch.setattr(spinup_module, "spinup", no_spinup)
    capsys.readouterr()
    assert main(_args(tmp_path / "hit", ["--spinup-cache", str(cache)])) == 0
    _assert_bitwise(tmp_path / "plain", tmp_path / "store")
    _assert_bitwise(tmp_path / "plain", tmp_path / "hit")
    # another spin-up length is another entry: the spin-up runs (and the monkeypatch stops it)
    capsys.readouterr()
    other = ["--spinup-cache", str(cache), "--set", "experiment.spinup_days=7"]
    assert main(_args(tmp_path / "other", other)) == 1
    assert "the spin-up ran although it was cached" in capsys.readouterr().err


@pytest.mark.slow
def test_summary_reports_the_timing_breakdown(tmp_path):
    assert main(_args(tmp_path / "run")) == 0
    t = json.loads((tmp_path / "run" / "summary.json").read_text())["timing_seconds"]
    assert set(t) == {*PARTS, "other", "total"}
    assert all(v >= 0.0 for v in t.values())
    assert t["model"] > 0 and t["forcing"] > 0 and t["analysis"] > 0 and t["output"] > 0 and t["spinup"] > 0
    assert sum(v for k, v in t.items() if k != "total") == pytest.approx(t["total"], abs=0.01)
    assert t["plots"] == 0.0  # output.plots = false: no figure drawn, no time counted to them
    cpu = json.loads((tmp_path / "run" / "summary.json").read_text())["timing_cpu_seconds"]
    assert set(cpu) == set(t) and all(v >= 0.0 for v in cpu.values())
    assert cpu["model"] > 0 and sum(v for k, v in cpu.items() if k != "total") == pytest.approx(cpu["total"], abs=0.01)


def test_memory_refusal_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LANDIMG_MEMORY_MB", "40")
    capsys.readouterr()
    assert main(_args(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "memory:" in err[0] and "40 MB are available" in err[0], err
    assert not (tmp_path / "run").exists()


def test_unwritable_spinup_cache_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    capsys.readouterr()
    assert main(_args(tmp_path / "run", ["--spinup-cache", str(blocker)])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--spinup-cache" in err[0] and "not a writable directory" in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_spinup_progress_lines(tmp_path, capsys):
    capsys.readouterr()
    args = [a for a in _args(tmp_path / "run", ["--set", "experiment.spinup_days=30"]) if a != "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err.splitlines()
    spin = [ln for ln in err if ln.startswith("[landimg] spin-up day ")]
    assert [ln.split()[3] for ln in spin] == [f"{d}/30" for d in range(3, 31, 3)], err
    assert err.index(spin[-1]) < err.index(next(ln for ln in err if ln.startswith("[landimg] spin-up of 30 days")))
