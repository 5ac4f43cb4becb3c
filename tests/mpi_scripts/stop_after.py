"""Run the experiment and stop after a day's restart: ``stop_after.py OUT DAYS [--set section.key=value ...]``.

``landimg.cycle.run(..., stop_after_days=DAYS)`` on every rank (under ``mpirun -n P python -m mpi4py``):
the restart of day DAYS is written and the run stops, for tests that continue it with ``--resume``.
"""

import sys

from landimg.cycle import run
from landimg.experiment.config import load_config

out, days = sys.argv[1], int(sys.argv[2])
overrides = [v for k, v in zip(sys.argv[3:], sys.argv[4:], strict=False) if k == "--set"]
run(load_config(None, overrides), out, progress=False, stop_after_days=days)
