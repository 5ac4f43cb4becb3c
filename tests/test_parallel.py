"""Member layout, reproducible reductions and member random streams (serial parts; MPI in test_mpi.py and
test_layout.py)."""

import numpy as np
import pytest
from landimg import Layout
from landimg.parallel import (
    Purpose,
    SerialComm,
    abort_on_error,
    block_partition,
    default_comm,
    member_rng,
    member_seed_sequence,
)


def test_block_partition():
    np.testing.assert_array_equal(block_partition(7, 3), [0, 3, 5, 7])
    np.testing.assert_array_equal(block_partition(6, 1), [0, 6])
    b = block_partition(128, 5)
    assert b[-1] == 128 and np.ptp(np.diff(b)) <= 1
    with pytest.raises(ValueError):
        block_partition(3, 0)


def test_member_streams_depend_only_on_seed_member_purpose():
    a = member_rng(5, 3, Purpose.OBS).standard_normal(4)
    b = member_rng(5, 3, Purpose.OBS).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, member_rng(5, 4, Purpose.OBS).standard_normal(4))
    assert not np.array_equal(a, member_rng(5, 3, Purpose.FORCING).standard_normal(4))
    assert not np.array_equal(a, member_rng(6, 3, Purpose.OBS).standard_normal(4))
    # documented equivalence with SeedSequence.spawn
    ss = np.random.SeedSequence(5).spawn(4)[3].spawn(2)[1]
    assert ss.generate_state(4).tolist() == member_seed_sequence(5, 3, Purpose.OBS).generate_state(4).tolist()


def test_serial_layout_reductions_match_member_order_loop():
    lay = Layout(5, SerialComm())
    assert (lay.rank, lay.size, lay.nloc, list(lay.members)) == (0, 1, 5, [0, 1, 2, 3, 4])
    x = np.random.default_rng(0).standard_normal((5, 7, 3)) * 10 ** np.arange(5)[:, None, None]
    acc = np.zeros((7, 3))
    for k in range(5):
        acc += x[k]
    np.testing.assert_array_equal(lay.ordered_sum(x), acc)  # exactly the serial loop
    mu, var = lay.mean_var(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(var, x.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(lay.ordered_sum(np.moveaxis(x, 0, 2), axis=2), acc)
    np.testing.assert_array_equal(lay.allgather_members(x), x)
    np.testing.assert_array_equal(lay.scatter_members(lay.gather_members(x)), x)
    with pytest.raises(ValueError, match="nloc"):
        lay.ordered_sum(x[:4])


def test_layout_checks_and_serial_fallback(monkeypatch):
    with pytest.raises(ValueError, match="nmem"):
        Layout(0, SerialComm())
    import sys

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # mpi4py absent: the serial stand-in, not a crash
    comm = default_comm()
    assert isinstance(comm, SerialComm)
    obj = {"a": np.arange(3)}
    assert comm.bcast(obj) is obj and comm.gather(obj) == [obj] and comm.allgather(5) == [5]
    assert comm.scatter([7]) == 7 and comm.allreduce(4) == 4
    with (
        pytest.raises(RuntimeError),
        abort_on_error(SerialComm()),
    ):  # serial: the exception propagates unchanged
        raise RuntimeError("boom")
