"""The two-level layout (landimg.layout): chunks, balanced blocks, G x K resolution, and (under mpirun, 1-6
ranks) every reduction, gather, scatter and transposition against the serial result, bitwise."""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, subprocess_env
from landimg.layout import (
    Layout,
    LayoutError,
    auto_column_blocks,
    balanced_bounds,
    chunked_sum,
    column_chunk_size,
    column_chunks,
    column_costs,
    resolve_column_blocks,
)
from landimg.parallel import SerialComm

SCRIPT = Path(__file__).parent / "mpi_scripts" / "layout_ops.py"


def test_chunking_depends_on_ncol_only():
    assert [column_chunk_size(n) for n in (1, 63, 64, 65, 1073, 16384, 16385, 10**6)] == [
        1,
        1,
        1,
        2,
        17,
        256,
        256,
        256,
    ]
    b = column_chunks(1073)
    assert b[0] == 0 and b[-1] == 1073 and np.all(np.diff(b)[:-1] == 17) and 0 < np.diff(b)[-1] <= 17
    assert b.size - 1 >= 64


def test_chunked_sum_is_per_chunk_then_in_order():
    x = np.random.default_rng(1).standard_normal((2, 1000)) * 10.0 ** np.random.default_rng(2).integers(
        -8, 8, 1000
    )
    b = column_chunks(1000)
    ref = np.stack([x[:, i:j].sum(axis=1) for i, j in itertools.pairwise(b)], axis=1).sum(axis=1)
    assert chunked_sum(x).tobytes() == ref.tobytes()
    assert chunked_sum(x).tobytes() != x.sum(axis=1).tobytes()  # not numpy's sum of the whole row
    # a run of whole chunks of a larger domain: the same chunk sums
    assert (
        chunked_sum(x[:, b[3] : b[10]], start=int(b[3]), ncol=1000).tobytes()
        == (
            np.stack([x[:, i:j].sum(axis=1) for i, j in itertools.pairwise(b[3:11])], axis=1).sum(axis=1)
        ).tobytes()
    )
    with pytest.raises(ValueError, match="whole chunks"):
        chunked_sum(x[:, 1:50], start=1, ncol=1000)


def test_balanced_blocks_are_whole_chunks_and_follow_the_cost():
    chunks = column_chunks(1073)
    for k in (1, 2, 3, 7, 64):
        b = balanced_bounds(1073, k)
        assert b[0] == 0 and b[-1] == 1073 and np.all(np.diff(b) > 0) and np.all(np.isin(b, chunks))
        assert np.ptp(np.diff(b)) <= 17  # one chunk of imbalance at most
    # a column that costs as much as all others keeps a block to itself (and its chunk)
    w = np.ones(1073)
    w[:17] = 1073.0
    b = balanced_bounds(1073, 2, w)
    assert b[1] == 17
    # more blocks than chunks: the last are empty
    b = balanced_bounds(5, 8)
    assert list(np.diff(b)) == [1, 1, 1, 1, 1, 0, 0, 0]


def test_column_costs_count_neighbours_up_to_the_cap():
    lat, lon = np.repeat(np.arange(10.0), 10), np.tile(np.arange(10.0), 10)
    la, lo = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    c = column_costs(xyz, 120.0)  # the 4 nearest cells are ~111 km away: corners have 2, the interior 4
    assert c.min() == 3 and c.max() == 5 and c[0] == 3 and c[55] == 5
    assert column_costs(xyz, 5000.0, cap=8).max() == 9
    assert np.all(column_costs(xyz, 0.0) == 1)


def test_column_blocks_resolution():
    assert auto_column_blocks(2, 16) == 1 and auto_column_blocks(16, 16) == 1
    assert auto_column_blocks(8, 4) == 2 and auto_column_blocks(6, 4) == 2 and auto_column_blocks(7, 4) == 7
    assert resolve_column_blocks("auto", 8, 4, 1073) == 2
    assert resolve_column_blocks(3, 6, 4, 1073) == 3
    with pytest.raises(LayoutError, match="does not divide the 6 ranks"):
        resolve_column_blocks(4, 6, 16, 1073)
    with pytest.raises(LayoutError, match="3 member groups for ensemble.members = 2"):
        resolve_column_blocks(1, 3, 2, 1073)
    with pytest.raises(LayoutError, match="exceeds the 10 column chunks"):
        resolve_column_blocks(12, 12, 16, 10)


def test_serial_layout_is_the_serial_loop():
    lay = Layout(5, SerialComm(), ncol=40)
    assert (lay.rank, lay.size, lay.nloc, list(lay.members), lay.member_groups, lay.column_blocks) == (
        0,
        1,
        5,
        [0, 1, 2, 3, 4],
        1,
        1,
    )
    x = np.random.default_rng(0).standard_normal((3, 40, 5)) * 10 ** np.arange(5)
    acc = np.zeros((3, 40))
    for k in range(5):
        acc += x[..., k]
    assert lay.ordered_sum(x, axis=2).tobytes() == acc.tobytes()
    assert lay.domain_sum(x).tobytes() == chunked_sum(acc).tobytes()
    assert lay.gather(x).tobytes() == np.asfortranarray(x).tobytes() and lay.take(x).flags.f_contiguous
    assert lay.transposer(Layout(5, SerialComm(), ncol=40, column_blocks=1)).identity
    members_only = Layout(5, SerialComm())  # members only, as the first version's layout
    assert members_only.ordered_sum(x, axis=2).tobytes() == acc.tobytes()
    with pytest.raises(ValueError, match="nloc"):
        lay.ordered_sum(x[..., :4], axis=2)
    with pytest.raises(LayoutError):
        Layout(5, SerialComm(), ncol=40, column_blocks=2)


def test_the_first_versions_name_is_gone():
    import landimg.parallel

    with pytest.raises(AttributeError, match="MemberLayout"):
        landimg.parallel.MemberLayout  # noqa: B018 -- one object, landimg.Layout (issue 17)


@pytest.mark.mpi
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5, 6])
def test_layout_operations_under_mpi(ranks):
    cmd = [str(MPIRUN), "-n", str(ranks), sys.executable, "-m", "mpi4py", str(SCRIPT)]
    try:
        proc = subprocess.run(
            cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"layout operations on {ranks} ranks hung")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"layout ops OK {ranks}" in proc.stdout
