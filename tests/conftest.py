"""Test markers: ``slow`` (a few seconds or more each) and ``mpi`` (starts mpirun).

The quick suite a developer runs while working is ``pytest -m "not slow and not mpi"`` (README); CI runs
everything. A test that starts mpirun without the ``mpi`` marker fails (the check below), so the quick
suite never needs MPI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _mpirun_needs_the_mpi_marker(request, monkeypatch):
    if request.node.get_closest_marker("mpi") is not None:
        return
    real = subprocess.Popen.__init__

    def init(self, args, *rest, **kwargs):
        first = args[0] if isinstance(args, (list, tuple)) and args else args
        if Path(str(first)).name in ("mpirun", "mpiexec"):
            raise AssertionError(f"{request.node.nodeid} starts mpirun: mark it @pytest.mark.mpi")
        real(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
