"""Rank 1 raises while rank 0 waits in a collective: the excepthook must abort every rank."""

import time

from landimg.parallel import install_abort_excepthook
from mpi4py import MPI

install_abort_excepthook(MPI.COMM_WORLD)
if MPI.COMM_WORLD.Get_rank() == 1:
    time.sleep(0.2)
    raise RuntimeError("deliberate failure on rank 1")
MPI.COMM_WORLD.Barrier()  # would hang forever without the abort
print("UNREACHABLE")
