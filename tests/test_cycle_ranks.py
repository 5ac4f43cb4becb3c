"""Every float of every output file (analysis.nc, metrics.nc, summary.json, restart) is bitwise the same on every
layout of the ranks (G member groups x K column blocks: 1x1, 2x1, 1x2, 2x2, 1x3, 3x2; more ranks than members),
and a run stopped on one layout continues on another, bitwise."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, restart_arrays, subprocess_env

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")]
STOP_AFTER = Path(__file__).parent / "mpi_scripts" / "stop_after.py"

# a small grid, few members (5: uneven blocks on 2 and 3 ranks), all four methods, 3 days, two analyses a day
SMALL = [
    "domain.res=2.5", "experiment.days=3", "experiment.spinup_days=3", "ensemble.members=5",
    'analysis.methods=["openloop", "point_enkf", "point_letkf", "curvelet_enkf"]', "analysis.interval_hours=12",
    "output.plots=false", "obs.stations=8",
]  # fmt: skip


def run_cycle(
    n: int, out: Path, extra: list[str] = (), timeout: float = 240, stop_after_days: int | None = None
) -> subprocess.CompletedProcess:
    """``mpirun -n n python -m landimg.cycle`` (no -m mpi4py) on the small configuration; with
    ``stop_after_days`` the run stops after that day's restart (``landimg.cycle.run(stop_after_days=)``)."""
    if stop_after_days is None:
        cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "landimg.cycle", "--out", str(out), "--quiet"]
    else:
        cmd = [
            str(MPIRUN),
            "-n",
            str(n),
            sys.executable,
            "-m",
            "mpi4py",
            str(STOP_AFTER),
            str(out),
            str(stop_after_days),
        ]
    for s in (*SMALL, *extra):
        cmd += ["--set", s]
    return subprocess.run(
        cmd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def float_leaves(run: Path) -> dict[str, np.ndarray]:
    """Every float array of every output file of ``run``, keyed ``file:variable``."""
    import netCDF4

    out: dict[str, np.ndarray] = {}
    for name in ("analysis.nc", "metrics.nc"):
        with netCDF4.Dataset(run / name) as ds:
            for v in ds.variables:
                x = np.asarray(ds[v][:])
                if x.dtype.kind == "f":
                    out[f"{name}:{v}"] = x

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                clocks = ("wall_seconds", "ranks", "timing_seconds", "timing_cpu_seconds", "analysis_cpu_seconds")
                if k not in clocks:
                    walk(v, f"{path}/{k}")
        elif isinstance(x, float):
            out[f"summary.json:{path}"] = np.float64(x)

    walk(json.loads((run / "summary.json").read_text()), "")
    for k, v in restart_arrays(run).items():  # the sharded restart, assembled whatever layout wrote it
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            out[f"restart:{k}"] = v
    return out


def assert_bitwise(a: Path, b: Path) -> None:
    fa, fb = float_leaves(a), float_leaves(b)
    assert set(fa) == set(fb)
    bad = [k for k in fa if fa[k].shape != fb[k].shape or fa[k].tobytes() != fb[k].tobytes()]
    assert not bad, f"{len(bad)} float outputs differ, e.g. {bad[:6]}"


# (ranks, parallel.column_blocks) -> the G x K of item 4 of issue 17: 1x1, 2x1, 1x2, 2x2, 1x3, 3x2 ("auto" on
# 6 ranks with 5 members: more ranks than members; the curvelet EnKF's whole-member layout has an empty rank)
LAYOUTS = {"1x1": (1, 1), "2x1": (2, 1), "1x2": (2, 2), "2x2": (4, 2), "1x3": (3, 3), "3x2": (6, "auto")}
# what crosses column blocks besides the analyses: each member's rain shifted across the domain, and
# observation errors (and the point EnKF's perturbations) with a spatially correlated part
ACROSS = ["ensemble.rain_shift_km=100.0", "obs.white_fraction=0.5", "obs.corr_length_km=400.0"]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The small experiment run once on every layout of :data:`LAYOUTS`."""
    root = tmp_path_factory.mktemp("layouts")
    runs = {}
    for name, (n, k) in LAYOUTS.items():
        runs[name] = root / name
        blocks = f"parallel.column_blocks={k}" if k != "auto" else 'parallel.column_blocks="auto"'
        proc = run_cycle(n, runs[name], [*ACROSS, blocks])
        assert proc.returncode == 0, f"{name}: {proc.stderr[-3000:]}"
    return runs


def test_every_float_output_is_bitwise_equal_on_every_layout(layouts):
    leaves = float_leaves(layouts["1x1"])
    assert len(leaves) > 100 and np.nanstd(leaves["analysis.nc:increment_point_enkf"]) > 0
    for name, run in layouts.items():
        g, k = (int(v) for v in name.split("x"))
        layout = json.loads((run / "summary.json").read_text())["layout"]
        assert layout == {"ranks": g * k, "member_groups": g, "column_blocks": k}, name
        assert_bitwise(layouts["1x1"], run)


def test_resume_on_another_layout_is_bitwise(layouts, tmp_path):
    """A run stopped after day 2 on 2 x 2 ranks continues on one rank (1 x 1) and on 1 x 3, bitwise equal to
    the uninterrupted run: the layout is not part of the experiment."""
    out = tmp_path / "stopped"
    proc = run_cycle(4, out, [*ACROSS, "parallel.column_blocks=2"], stop_after_days=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "summary.json").exists()
    for n, k in ((1, 1), (3, 3)):
        again = tmp_path / f"resumed{n}"
        shutil.copytree(out, again)
        cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "landimg.cycle", "--out", str(again), "--resume",
               "--quiet", "--set", f"parallel.column_blocks={k}"]  # fmt: skip
        proc = subprocess.run(
            cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_bitwise(layouts["1x1"], again)


def test_figures_shared_by_two_ranks_are_the_one_rank_figures(tmp_path):
    """With plots on, rank 1 makes some of the figures (``plot.figures_of``) from the record rank 0 sends: the
    same files, byte for byte, as one rank makes."""
    pytest.importorskip("matplotlib")
    extra = ["output.plots=true", "experiment.days=2", 'analysis.methods=["openloop", "curvelet_enkf"]']
    pngs = {}
    for n in (1, 2):
        proc = run_cycle(n, tmp_path / f"p{n}", extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        pngs[n] = {p.name: p.read_bytes() for p in sorted((tmp_path / f"p{n}" / "plots").glob("*.png"))}
    assert len(pngs[1]) == 5 and pngs[2].keys() == pngs[1].keys()
    for name, data in pngs[1].items():
        assert pngs[2][name] == data, f"{name} differs"
