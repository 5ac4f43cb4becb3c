"""The cycle program killed (SIGKILL) while it writes metrics.nc at the end of the run.

Usage: python kill_in_final_write.py ARGS...  (the arguments of python -m landimg.cycle)
"""

import os
import signal
import sys

from landimg.experiment import ncfiles, output
from landimg.experiment.cli import main

_write = ncfiles.write_netcdf


def _dying(path, *args, **kwargs):
    if path.name == "metrics.nc":
        with output.atomic_path(path) as tmp:
            tmp.write_bytes(b"CDF partial")
            os.kill(os.getpid(), signal.SIGKILL)
    return _write(path, *args, **kwargs)


ncfiles.write_netcdf = _dying
sys.exit(main(sys.argv[1:]))
