"""CPU a rank burns while it waits in MPI, with MPICH's settings that make it sleep instead.

    PYTHONPATH=python .venv/bin/python bench/mpi_wait.py            # the driver: each setting in turn

Rank 0 sleeps ``--seconds`` (5) while rank 1 waits in a barrier; printed: rank 1's process CPU seconds
(user + system) for MPICH's default (polling), ``MPIR_CVAR_CH4_PROGRESS_THROTTLE=1``,
``MPIR_CVAR_POLLS_BEFORE_YIELD=10`` and ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1`` (a ``nanosleep`` in the yield),
each ``--repeat`` times. A waiting rank that polls uses about as much CPU as the wait lasts when it has a
core to itself (less when the machine is busy: the numbers are upper-bounded by the core it gets).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

_SETTINGS = {
    "default (polling)": {},
    "CH4_PROGRESS_THROTTLE=1": {"MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1"},
    "POLLS_BEFORE_YIELD=10": {"MPIR_CVAR_POLLS_BEFORE_YIELD": "10"},
    "ENABLE_HEAVY_YIELD=1": {"MPIR_CVAR_ENABLE_HEAVY_YIELD": "1"},
}


def _worker(seconds: float) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_rank() == 0:
        time.sleep(seconds)
    comm.Barrier()
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = comm.gather(r.ru_utime + r.ru_stime, root=0)
    if comm.Get_rank() == 0:
        print(f"{cpu[1]:.2f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args.seconds)
        return 0
    mpirun = str(Path(sys.executable).with_name("mpirun"))
    me = str(Path(__file__).resolve())
    for name, env in _SETTINGS.items():
        cpus = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [mpirun, "-n", "2", sys.executable, me, "--worker", "--seconds", str(args.seconds)],
                env={**os.environ, **env}, capture_output=True, text=True, check=True,
            )  # fmt: skip
            cpus.append(out.stdout.strip().splitlines()[-1])
        print(
            f"{name:26s} waiting rank's CPU over a {args.seconds:.0f} s wait: {' / '.join(cpus)} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
