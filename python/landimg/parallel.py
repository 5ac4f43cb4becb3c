"""MPI plumbing shared by every room: communicators, member random streams, failing and stopping together.

The layout of an ensemble over the ranks (member groups x column blocks, its reproducible reductions,
gathers and transpositions) is :class:`landimg.layout.Layout` (``landimg.Layout``).

Random numbers: member ``i`` draws from streams keyed by ``(seed, i, purpose)`` only (a
:class:`numpy.random.SeedSequence` spawn key), never by rank, so a member's noise does not depend on where
it runs.

Without mpi4py (or without an initialisable MPI) a :class:`SerialComm` with the same methods stands in.
"""

from __future__ import annotations

import enum
import os
import sys
import traceback
from typing import Any

import numpy as np

__all__ = [
    "Interrupted",
    "Purpose",
    "SerialComm",
    "StopRequest",
    "abort_on_error",
    "block_partition",
    "default_comm",
    "finish_together",
    "install_abort_excepthook",
    "member_rng",
    "member_seed_sequence",
    "wait_all",
]


class Purpose(enum.IntEnum):
    """What a member's random stream is used for (part of its spawn key)."""

    FORCING = 0
    OBS = 1
    PARAMS = 2
    INIT = 3
    RAIN_SHIFT = 4


def member_seed_sequence(seed: int, member: int, purpose: Purpose | int) -> np.random.SeedSequence:
    """Seed sequence of member ``member`` for ``purpose``: depends only on (seed, member, purpose).

    Identical to ``SeedSequence(seed).spawn(member + 1)[member].spawn(purpose + 1)[purpose]``.
    """
    if member < 0:
        raise ValueError(f"member must be >= 0, got {member}")
    return np.random.SeedSequence(int(seed), spawn_key=(int(member), int(purpose)))


def member_rng(seed: int, member: int, purpose: Purpose | int) -> np.random.Generator:
    """A fresh :class:`numpy.random.Generator` (PCG64) for member ``member`` and ``purpose``."""
    return np.random.Generator(np.random.PCG64(member_seed_sequence(seed, member, purpose)))


class SerialComm:
    """A one-rank stand-in for an ``mpi4py`` communicator (the subset landimg uses)."""

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        return [obj]

    def scatter(self, objs: list[Any], root: int = 0) -> Any:
        return objs[0]

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        return obj

    def Barrier(self) -> None:
        return None

    def Abort(self, errorcode: int = 1) -> None:
        sys.stderr.flush()
        os._exit(errorcode)


def default_comm() -> Any:
    """``MPI.COMM_WORLD`` if mpi4py imports and MPI initialises, else a :class:`SerialComm`."""
    try:
        from mpi4py import MPI

        return MPI.COMM_WORLD
    except Exception:  # noqa: BLE001 - ImportError, or an MPI library that cannot start
        return SerialComm()


def block_partition(n: int, size: int) -> np.ndarray:
    """Contiguous block bounds: ``bounds[r]:bounds[r+1]`` are the items of rank ``r``.

    The first ``n % size`` ranks get one item more. Returns int array (size + 1,).
    """
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 and size >= 1, got n={n}, size={size}")
    counts = np.full(size, n // size, dtype=np.int64)
    counts[: n % size] += 1
    return np.concatenate([[0], np.cumsum(counts)])


def _is_serial(comm: Any) -> bool:
    return isinstance(comm, SerialComm) or comm.Get_size() == 1


def _abort_hook(comm: Any):
    def hook(exc_type, exc, tb):  # pragma: no cover - runs in a dying process
        rank = comm.Get_rank() if comm is not None else 0
        sys.stderr.write(f"[landimg rank {rank}] uncaught exception, aborting all ranks:\n")
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        sys.stderr.flush()
        if comm.Get_size() > 1:
            import time

            time.sleep(0.2)  # let mpirun forward the traceback before the abort tears the job down
        comm.Abort(1)

    return hook


def install_abort_excepthook(comm: Any = None) -> None:
    """Make an uncaught exception on any rank call ``comm.Abort(1)`` instead of leaving others hanging.

    ``comm`` defaults to ``MPI.COMM_WORLD`` (or the serial stand-in). Running under ``python -m mpi4py``
    has the same effect.
    """
    sys.excepthook = _abort_hook(comm if comm is not None else default_comm())


class abort_on_error:
    """Context manager: an exception inside the block aborts all ranks of ``comm`` (``Abort(1)``).

    Example
    -------
    >>> with abort_on_error(comm):
    ...     run_cycle()
    """

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm if comm is not None else default_comm()

    def __enter__(self) -> abort_on_error:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            if self.comm.Get_size() > 1:
                _abort_hook(self.comm)(exc_type, exc, tb)
        return False


# ---------------------------------------------------------------------------------------------- stopping
class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM where no safe stop is possible (before a restart exists, or a second signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


class StopRequest:
    """SIGINT/SIGTERM handling for a program with safe points (e.g. after a restart is written).

    While :attr:`armed` is False (nothing to keep yet) a signal raises :class:`Interrupted` at once;
    once armed, the first signal only records itself (:attr:`signum`) and the program polls
    :meth:`agreed` at its next safe point; a second signal raises :class:`Interrupted`.
    """

    _SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.signum = 0
        self.armed = False
        self._previous: dict[int, Any] = {}

    def install(self) -> StopRequest:
        """Install the handlers (main thread only); returns self."""
        import signal

        for name in self._SIGNALS:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were installed before :meth:`install`."""
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum == 0
        self.signum = self.signum or int(signum)
        if not (first and self.armed):
            raise Interrupted(signum)

    def agreed(self, comm: Any) -> int:
        """Collective: the signal number any rank received (0: none), the same on every rank."""
        if _is_serial(comm):
            return self.signum
        from mpi4py import MPI

        return int(comm.allreduce(self.signum, op=MPI.MAX))


def wait_all(comm: Any, timeout: float | None = None, poll: float = 0.01) -> bool:
    """Wait until every rank of ``comm`` arrives here, polling (signal handlers keep running).

    Returns True when all arrived, False after ``timeout`` seconds (the barrier is then left pending:
    use a communicator reserved for this, and abort).
    """
    if _is_serial(comm):
        return True
    import time

    req = comm.Ibarrier()
    t0 = time.monotonic()
    while not req.Test():
        if timeout is not None and time.monotonic() - t0 > timeout:
            return False
        time.sleep(poll)
    return True


def finish_together(comm: Any, errcomm: Any, line: str, code: int, timeout: float = 5.0) -> int:
    """End a failing program on every rank with ``line`` printed exactly once, and no rank left waiting.

    Every rank that fails calls this. If all ranks of ``errcomm`` (a duplicate of ``comm`` reserved for
    this) arrive within ``timeout`` seconds -- a failure every rank saw, e.g. a bad input -- rank 0
    prints its ``line`` and every rank returns ``code``. Otherwise this rank's ``line`` is printed and
    flushed, and ``comm.Abort(code)`` ends all ranks. ``line`` is printed to stderr.
    """
    if _is_serial(comm):
        if line:
            print(line, file=sys.stderr, flush=True)
        return code
    if wait_all(errcomm, timeout):
        if errcomm.Get_rank() == 0 and line:
            print(line, file=sys.stderr, flush=True)
        wait_all(errcomm)  # nobody leaves (and perhaps aborts under -m mpi4py) before rank 0 printed
        return code
    if line:
        print(line, file=sys.stderr, flush=True)
    import time

    time.sleep(0.2)  # let mpirun forward the line before the abort tears the job down
    comm.Abort(code)
    return code  # pragma: no cover - Abort does not return
