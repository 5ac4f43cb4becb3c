"""Sharded ensemble restarts written on one layout and read on others, under mpirun.

Usage: mpirun -n 4 python -m mpi4py shard_layouts.py DIR
An ensemble of 5 members (uneven groups) on a small grid is stepped and given analysis state (a scalar and
a per-column array) on 2 x 2 ranks and written as a sharded store (Ensemble.write_shards); it is then read
(read_shards) on 1 x 1 (rank 0 alone), 1 x 3 (ranks 0-2), 4 x 1 and 1 x 4, stepped on, and every rank
checks its members' images against the 2 x 2 ensemble stepped on without a restart (bitwise). While
reading, each rank's traced allocations stay within its share of the whole model state (plus 12 % of the
whole): it reads its own block, never whole arrays. Prints "shard layouts OK" on rank 0.
"""

import sys
import tracemalloc
from pathlib import Path

import landimg
import numpy as np
from landimg.parallel import default_comm
from landimg.shards import ShardStore

comm = default_comm()
rank = comm.Get_rank()
assert comm.Get_size() == 4
out = Path(sys.argv[1])
grid = landimg.Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -84.0), res=0.2, land_mask="builtin")
NMEM = 5


def forcing(precip: float) -> dict:
    one = np.ones(grid.ncol)
    return dict(tair=293.0 * one, qair=0.008 * one, psurf=1e5 * one, precip=precip * one, wind=3.0 * one,
                swdown=350.0 * one, lwdown=330.0 * one)  # fmt: skip


def ensemble(sub, k):
    return landimg.Ensemble(grid, NMEM, soil=landimg.soil.from_class("loam", grid.ncol), dt=3600.0, seed=7,
                            comm=sub, column_blocks=k)  # fmt: skip


def go_on(ens):
    """Step on after the restart; every member's image on every rank of the ensemble."""
    ens.advance(forcing(2e-4), nsteps=3)
    return ens.images((0.0, 0.1))


writer = ensemble(comm, 2)
for _ in range(3):
    writer.advance(forcing(0.0), nsteps=4)
writer.da_state["Method.inflation_lambda"] = 1.25
writer.da_state["PointLETKF.bias"] = np.linspace(0.0, 1.0, 2 * grid.ncol).reshape(2, grid.ncol)
writer.write_shards(out)
store = ShardStore(out)
assert len(store.shards) == 4 and store.manifest["layout"] == {"ranks": 4, "member_groups": 2, "column_blocks": 2}
expected = go_on(writer)
whole = 8 * (3 * 10 + 8 + 11) * grid.ncol * NMEM  # the model state of every column and member, bytes

for size, k in ((1, 1), (3, 3), (4, 1), (4, 4)):
    sub = comm.Split(0 if rank < size else 1, rank)
    if rank < size:
        ens = ensemble(sub, k)
        ens.read_shards(out)  # every shard's checksum verified, then each rank reads its parts
        mine = ShardStore(out, sub)
        tracemalloc.start()
        ens.read_from(mine)  # again, traced: what reading the state allocates on this rank
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        share = ens.layout.nloc * ens.layout.ncol_local / (NMEM * grid.ncol)  # this rank's part of the state
        assert peak < (share + 0.12) * whole, f"{size}x{k}: rank {rank} read {peak} B ({share:.2f} of {whole} B)"
        assert ens.da_state["Method.inflation_lambda"] == 1.25
        np.testing.assert_array_equal(ens.da_state["PointLETKF.bias"], writer.da_state["PointLETKF.bias"])
        got = go_on(ens)
        assert np.array_equal(got, expected, equal_nan=True), f"{size}x{k}: rank {rank} differs"
    sub.Free()
    comm.Barrier()
if rank == 0:
    print("shard layouts OK", flush=True)
