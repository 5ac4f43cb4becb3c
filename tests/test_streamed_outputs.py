"""analysis.nc and metrics.nc are appended day by day: a stopped run's files hold the days of its restart,
a resumed run continues them (bitwise the uninterrupted run's), and rank 0 keeps no history of images."""

from __future__ import annotations

import shutil
import tracemalloc

import netCDF4
import numpy as np
import pytest
from landimg.cycle import main, run
from landimg.experiment import loop
from landimg.experiment.config import load_config
from landimg.experiment.restart import day_dir, restart_days
from landimg.shards import read_manifest
from test_cycle_ranks import SMALL, assert_bitwise

pytestmark = pytest.mark.slow  # the cycle, run several times


def _days(path) -> int:
    with netCDF4.Dataset(path) as ds:
        return len(ds.dimensions["time"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["--out", str(out), "--quiet", *[a for s in SMALL for a in ("--set", s)]]) == 0
    return out


def test_the_files_grow_day_by_day_and_a_resume_continues_them(reference, tmp_path):
    out = tmp_path / "run"
    run(load_config(None, SMALL), out, progress=False, stop_after_days=1)
    assert _days(out / "analysis.nc") == _days(out / "metrics.nc") == 1
    assert read_manifest(day_dir(out, 1))["outputs_days"] == 1
    with netCDF4.Dataset(out / "analysis.nc") as ds:  # one image per chunk, compressed
        v = ds["sm_mean_point_enkf"]
        assert v.chunking() == [1, *v.shape[1:]] and v.filters()["zlib"]
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)
    assert sorted(p.name for p in out.iterdir()) == ["analysis.nc", "metrics.nc", "restart", "summary.json"]


def test_files_a_day_ahead_of_the_restart_are_rewritten_with_the_same_bits(reference, tmp_path):
    """Killed between a day's append and its restart: the files hold day 2, the restart is day 1's."""
    out = tmp_path / "run"
    run(load_config(None, SMALL), out, progress=False, stop_after_days=2)
    shutil.rmtree(day_dir(out, 2))
    assert restart_days(out) == [1] and _days(out / "analysis.nc") == 2
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)


def test_files_behind_the_restart_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    run(load_config(None, SMALL), out, progress=False, stop_after_days=2)
    (out / "metrics.nc").unlink()
    capsys.readouterr()
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert err == [f"landimg.cycle: error: --resume: {out / 'metrics.nc'} is missing (the restart after day 2 needs its 2 day(s))"]


def test_rank0_memory_does_not_grow_with_the_days(tmp_path, monkeypatch):
    """Python memory held after each day from day 2 on (CONUS at 0.25 degree, the open loop): it grows by
    less than a twentieth of one day's images a day (the history of images grew by 15 float32 images a day;
    what grows besides is the weather's storm cache, a few tens of kB)."""
    held = []
    real = loop._day

    def day(r, d, out):
        real(r, d, out)
        held.append(tracemalloc.get_traced_memory()[0])

    monkeypatch.setattr(loop, "_day", day)
    cfg = load_config(None, ["experiment.days=6", "experiment.spinup_days=1", "ensemble.members=2",
                             "domain.res=0.25", 'analysis.methods=["openloop"]', "output.plots=false"])  # fmt: skip
    tracemalloc.start()
    try:
        result = run(cfg, tmp_path / "run", progress=False)
    finally:
        tracemalloc.stop()
    ny, nx = (100, 240)
    one_day_of_images = 4 * ny * nx * 15
    per_day = (max(held[1:]) - held[1]) / (len(held) - 2)
    assert per_day < 0.05 * one_day_of_images, (per_day, held)
    assert all(np.asarray(v).size < ny * nx for v in result.history.to_tree().values())
