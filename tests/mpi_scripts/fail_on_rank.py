"""The cycle program with a deliberate failure on rank 1 in day 2 (its first analysis of that day).

Usage: mpirun -n 2 python fail_on_rank.py ARGS...  (the arguments of python -m landimg.cycle; the test
configuration has 2 analyses a day and 4 methods, so day 2 starts at the 9th assimilate call).
"""

import sys

from landimg.ensemble.ensemble import Ensemble
from landimg.experiment.cli import main
from mpi4py import MPI

_calls = [0]
_assimilate = Ensemble.assimilate


def _failing(self, *args, **kwargs):
    _calls[0] += 1
    if MPI.COMM_WORLD.Get_rank() == 1 and _calls[0] > 8:
        raise RuntimeError("deliberate failure on day 2")
    return _assimilate(self, *args, **kwargs)


Ensemble.assimilate = _failing
sys.exit(main(sys.argv[1:]))
