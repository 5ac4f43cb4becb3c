"""Every float of every output file (analysis.nc, metrics.nc, summary.json, restart) is bitwise the same on 1, 2, 3 ranks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, subprocess_env

pytestmark = pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")

# a small grid, few members (5: uneven blocks on 2 and 3 ranks), all four methods, 3 days, two analyses a day
SMALL = [
    "domain.res=2.5", "experiment.days=3", "experiment.spinup_days=3", "ensemble.members=5",
    'analysis.methods=["openloop", "point_enkf", "point_letkf", "curvelet_enkf"]', "analysis.interval_hours=12",
    "output.plots=false", "obs.stations=8",
]  # fmt: skip


def run_cycle(n: int, out: Path, extra: list[str] = (), timeout: float = 240) -> subprocess.CompletedProcess:
    """``mpirun -n n python -m landimg.cycle`` (no -m mpi4py) on the small configuration."""
    cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "landimg.cycle", "--out", str(out), "--quiet"]
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
    with np.load(run / "restart" / "restart.npz") as z:
        for k in z.files:
            if z[k].dtype.kind == "f" and k != "wall_seconds":
                out[f"restart:{k}"] = z[k]
    return out


def assert_bitwise(a: Path, b: Path) -> None:
    fa, fb = float_leaves(a), float_leaves(b)
    assert set(fa) == set(fb)
    bad = [k for k in fa if fa[k].shape != fb[k].shape or fa[k].tobytes() != fb[k].tobytes()]
    assert not bad, f"{len(bad)} float outputs differ, e.g. {bad[:6]}"


def test_every_float_output_is_bitwise_equal_on_1_2_3_ranks(tmp_path):
    runs = {}
    for n in (1, 2, 3):
        runs[n] = tmp_path / f"r{n}"
        proc = run_cycle(n, runs[n])
        assert proc.returncode == 0, proc.stderr[-3000:]
    leaves = float_leaves(runs[1])
    assert len(leaves) > 100 and np.nanstd(leaves["analysis.nc:increment_point_enkf"]) > 0
    for n in (2, 3):
        assert_bitwise(runs[1], runs[n])
