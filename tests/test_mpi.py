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


def test_bitwise_identical_on_1_2_3_ranks_and_column_blocks(tmp_path):
    """The embedding API (landimg.Ensemble) on member groups x column blocks: 1x1, 2x1, 3x1, 1x2, 1x3, 2x2."""
    results = {}
    for n, k in ((1, 1), (2, 1), (3, 1), (2, 2), (3, 3), (4, 2)):
        out = tmp_path / f"r{n}_{k}.npz"
        proc = _run(n, [str(SCRIPTS / "repro_experiment.py"), str(out), str(k)])
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[n // k, k] = dict(np.load(out))
    ref = results[1, 1]
    assert np.nanstd(ref["images"]) > 0 and ref["diag"][0] > 0
    for (g, k), res in results.items():
        assert res.keys() == ref.keys()
        for key in ref:
            assert res[key].tobytes() == ref[key].tobytes(), f"{key} differs on {g} x {k} ranks"


def test_rank_raising_aborts_all_ranks():
    try:
        proc = _run(2, [str(SCRIPTS / "abort_on_raise.py")], timeout=60, mpi4py=False)
    except subprocess.TimeoutExpired:
        pytest.fail("a rank raising left the other rank hanging")
    assert proc.returncode != 0
    assert "deliberate failure on rank 1" in proc.stderr
    assert "UNREACHABLE" not in proc.stdout


@pytest.mark.parametrize("mode, error", [("fixed", "white"), ("adaptive", "corr")])
def test_letkf_bias_stage_is_bitwise_on_column_blocks(tmp_path, mode, error):
    """The bias of the halo columns (within the radius of a block) is analysed too, and every block's owned
    bias is gathered for the next analysis: 1, 2 and 3 column blocks give the same state and bias."""
    res = {}
    for n in (1, 2, 3):
        out = tmp_path / f"b{n}.npz"
        proc = _run(n, [str(SCRIPTS / "letkf_bias_blocks.py"), str(out), mode, error])
        assert proc.returncode == 0, proc.stderr[-3000:]
        res[n] = dict(np.load(out))
    assert np.abs(res[1]["bias1"]).max() > 0
    for n in (2, 3):
        for key, val in res[1].items():
            assert res[n][key].tobytes() == val.tobytes(), f"{key} differs on {n} column blocks"
