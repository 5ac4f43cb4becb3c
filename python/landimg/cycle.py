"""``python -m landimg.cycle``: the soil-moisture assimilation experiment, end to end (a stable entry point).

    mpirun -n N python -m landimg.cycle [--config FILE] [--set section.key=value ...] --out DIR [--resume]
    python -m landimg.cycle --print-config

A nature run (true weather, true soil) plays the reference; synthetic satellite retrievals of its top
soil layer and station readings are drawn from it; open loop, point EnKF / LETKF and curvelet EnKF
ensembles run side by side on the same degraded, perturbed forcing and the same observations (one
Ensemble per method, same seed). Daily metrics against the nature run go to ``summary.json``, CF-netCDF
files (appended day by day) and plots. Sharded restarts (every rank its block, rank 0 a manifest) are
written atomically after every day; ``--resume`` continues a stopped run bitwise identically, on any layout
of the ranks (``[parallel]``).

The program lives in :mod:`landimg.experiment` (``setup``, ``spinup``, ``loop``, ``restart``, ``history``,
``summary``, ``cli``); this module gathers the names users call: ``landimg.cycle.run`` / ``main`` ...
"""

import sys

from landimg.experiment.cli import main
from landimg.experiment.history import History, MethodHistory
from landimg.experiment.loop import RunResult, run
from landimg.experiment.restart import RESTART_DIR, RESTART_SCHEMA
from landimg.experiment.setup import InputError, build_methods
from landimg.experiment.summary import format_table, summarize

__all__ = [
    "RESTART_DIR", "RESTART_SCHEMA", "History", "InputError", "MethodHistory", "RunResult", "build_methods",
    "format_table", "main", "run", "summarize",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
