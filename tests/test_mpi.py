"""Runs under mpirun (subprocesses with timeouts): bitwise reproducibility over 1, 2, 3 ranks; abort."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import subprocess_env

MPIRUN = Path(sys.executable).parent / "mpirun"
SCRIPTS = Path(__file__).parent / "mpi_scripts"

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")]


def _env():
    return subprocess_env()


def _run(n, args, timeout=120, mpi4py=True):
    cmd = [str(MPIRUN), "-n", str(n), sys.executable] + (["-m", "mpi4py"] if mpi4py else []) + args
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def test_bitwise_identical_on_1_2_3_ranks(tmp_path):
    results = {}
    for n in (1, 2, 3):
        out = tmp_path / f"r{n}.npz"
        proc = _run(n, [str(SCRIPTS / "repro_experiment.py"), str(out)])
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[n] = dict(np.load(out))
    ref = results[1]
    assert np.nanstd(ref["images"]) > 0 and ref["diag"][0] > 0
    for n in (2, 3):
        assert results[n].keys() == ref.keys()
        for key in ref:
            np.testing.assert_array_equal(results[n][key], ref[key], err_msg=f"{key} differs at {n} ranks")


def test_rank_raising_aborts_all_ranks():
    try:
        proc = _run(2, [str(SCRIPTS / "abort_on_raise.py")], timeout=60, mpi4py=False)
    except subprocess.TimeoutExpired:
        pytest.fail("a rank raising left the other rank hanging")
    assert proc.returncode != 0
    assert "deliberate failure on rank 1" in proc.stderr
    assert "UNREACHABLE" not in proc.stdout
