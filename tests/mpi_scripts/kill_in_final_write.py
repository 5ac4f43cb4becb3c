"""The cycle program killed (SIGKILL) in the last writes of a run.

Usage: python kill_in_final_write.py WHERE ARGS...  (then the arguments of python -m landimg.cycle)

WHERE ``summary.json``: killed while summary.json is being written (its temporary file exists); WHERE
``analysis.nc``: killed while the last day is appended to analysis.nc -- after its twin holds the day and is
on disk, before the twin replaces the file.
"""

import os
import signal
import sys

from landimg import atomic
from landimg.experiment import output
from landimg.experiment.cli import main

where, args = sys.argv[1], sys.argv[2:]
_text = output.write_text
_replace = atomic.os.replace


def _dying_text(path, text):
    if path.name == "summary.json":
        with output.atomic_path(path) as tmp:
            tmp.write_text(text[: len(text) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return _text(path, text)


def _dying_replace(src, dst):
    if os.path.basename(str(dst)) == "analysis.nc" and os.path.basename(str(src)).startswith(".analysis.nc."):
        import netCDF4

        with netCDF4.Dataset(src) as ds:
            if len(ds.dimensions["time"]) == 3:  # the last day
                os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst)


if where == "summary.json":
    output.write_text = _dying_text
else:
    atomic.os.replace = _dying_replace
sys.exit(main(args))
