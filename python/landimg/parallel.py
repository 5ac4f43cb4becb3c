"""Parallel layout of the ensemble: member blocks over MPI ranks, reproducible reductions, RNG streams.

Members are split over the ranks of a communicator in contiguous blocks. Everything that mixes members
(sums, means, variances, covariances) is reduced **in global member order** by a chain: rank 0 adds its
members one after the other, passes the running sum to rank 1, which adds its members, and so on; the
last rank broadcasts the result. The floating-point operations are then exactly those of a serial loop
over members, so results are bitwise identical for any number of ranks.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Interrupted",
    "MemberLayout",
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


@dataclass
class MemberLayout:
    """The members of an ensemble of ``nmem`` split over ``comm`` in contiguous blocks.

    Parameters
    ----------
    nmem : int
        Global ensemble size.
    comm : communicator, optional
        An mpi4py communicator or :class:`SerialComm`; default :func:`default_comm`.

    Attributes
    ----------
    rank, size : int
        This rank and the communicator size.
    bounds : ndarray (size + 1,)
        Member block bounds; this rank holds members ``start:stop``.
    """

    nmem: int
    comm: Any = None
    rank: int = field(init=False)
    size: int = field(init=False)
    bounds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.nmem < 1:
            raise ValueError(f"nmem must be >= 1, got {self.nmem}")
        if self.comm is None:
            self.comm = default_comm()
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        if self.size > self.nmem:
            raise ValueError(f"more ranks ({self.size}) than members (nmem={self.nmem})")
        self.bounds = block_partition(self.nmem, self.size)

    @property
    def start(self) -> int:
        return int(self.bounds[self.rank])

    @property
    def stop(self) -> int:
        return int(self.bounds[self.rank + 1])

    @property
    def nloc(self) -> int:
        """Number of members on this rank."""
        return self.stop - self.start

    @property
    def members(self) -> range:
        """Global indices of this rank's members."""
        return range(self.start, self.stop)

    @property
    def counts(self) -> np.ndarray:
        """Members per rank, int array (size,)."""
        return np.diff(self.bounds)

    # ------------------------------------------------------------------ reductions
    def ordered_sum(self, local: np.ndarray, axis: int = 0) -> np.ndarray:
        """Sum over members in global member order, identical bit for bit on any rank count.

        Parameters
        ----------
        local : ndarray
            This rank's members along ``axis`` (length ``nloc``); other axes identical on all ranks.

        Returns
        -------
        ndarray
            The sum over all ``nmem`` members (float64), the same on every rank.
        """
        local = np.moveaxis(np.asarray(local, dtype=np.float64), axis, 0)
        if local.shape[0] != self.nloc:
            raise ValueError(
                f"local has {local.shape[0]} members along axis {axis}, expected nloc={self.nloc}"
            )
        return self.ordered_sum_terms((local[k] for k in range(self.nloc)), local.shape[1:])

    def ordered_sum_terms(self, terms: Iterable[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        """Like :meth:`ordered_sum`, with this rank's member terms produced one by one (saves memory).

        ``terms`` must yield exactly ``nloc`` arrays of ``shape``, in member order.
        """
        acc = np.zeros(shape, dtype=np.float64)
        serial = _is_serial(self.comm)
        if not serial and self.rank > 0:
            self.comm.Recv(acc, source=self.rank - 1, tag=71)
        count = 0
        for term in terms:  # loop over members only: fixes the summation order
            acc += term
            count += 1
        if count != self.nloc:
            raise ValueError(f"got {count} member terms, expected nloc={self.nloc}")
        if serial:
            return acc
        if self.rank < self.size - 1:
            self.comm.Send(acc, dest=self.rank + 1, tag=71)
        self.comm.Bcast(acc, root=self.size - 1)
        return acc

    def mean(self, local: np.ndarray, axis: int = 0) -> np.ndarray:
        """Ensemble mean over all members (reproducible), shape of ``local`` without ``axis``."""
        return self.ordered_sum(local, axis) / self.nmem

    def mean_var(self, local: np.ndarray, axis: int = 0, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and variance (two-pass, ``ddof`` = 1 unbiased), both reproducible."""
        local = np.moveaxis(np.asarray(local, dtype=np.float64), axis, 0)
        mu = self.mean(local)
        var = self.ordered_sum((local - mu) ** 2) / max(self.nmem - ddof, 1)
        return mu, var

    # ------------------------------------------------------------------ gathers
    def allgather_members(self, local: np.ndarray) -> np.ndarray:
        """All members' arrays on every rank: (nloc, ...) -> (nmem, ...) float64 in member order."""
        local = np.ascontiguousarray(local, dtype=np.float64)
        if local.shape[0] != self.nloc:
            raise ValueError(f"local has {local.shape[0]} members, expected nloc={self.nloc}")
        if _is_serial(self.comm):
            return local.copy()
        item = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((self.nmem,) + local.shape[1:], dtype=np.float64)
        counts = self.counts * item
        displs = self.bounds[:-1] * item
        from mpi4py import MPI

        self.comm.Allgatherv(local, [out, counts.tolist(), displs.tolist(), MPI.DOUBLE])
        return out

    def gather_members(self, local: np.ndarray, root: int = 0) -> np.ndarray | None:
        """All members' arrays on ``root`` (nmem, ...); ``None`` on the other ranks."""
        local = np.ascontiguousarray(local, dtype=np.float64)
        if _is_serial(self.comm):
            return local.copy()
        item = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((self.nmem,) + local.shape[1:], dtype=np.float64) if self.rank == root else None
        from mpi4py import MPI

        recv = [out, (self.counts * item).tolist(), (self.bounds[:-1] * item).tolist(), MPI.DOUBLE]
        self.comm.Gatherv(local, recv if self.rank == root else None, root=root)
        return out

    def scatter_members(self, full: np.ndarray | None, root: int = 0) -> np.ndarray:
        """Inverse of :meth:`gather_members`: (nmem, ...) on ``root`` -> this rank's (nloc, ...)."""
        if _is_serial(self.comm):
            return np.array(full, dtype=np.float64, copy=True)
        shape = self.comm.bcast(None if full is None else np.shape(full)[1:], root=root)
        item = int(np.prod(shape, dtype=np.int64))
        out = np.empty((self.nloc,) + tuple(shape), dtype=np.float64)
        from mpi4py import MPI

        send = None
        if self.rank == root:
            full = np.ascontiguousarray(full, dtype=np.float64)
            send = [full, (self.counts * item).tolist(), (self.bounds[:-1] * item).tolist(), MPI.DOUBLE]
        self.comm.Scatterv(send, out, root=root)
        return out


def _abort_hook(comm: Any):
    def hook(exc_type, exc, tb):  # pragma: no cover - runs in a dying process
        rank = comm.Get_rank() if comm is not None else 0
        sys.stderr.write(f"[landimg rank {rank}] uncaught exception, aborting all ranks:\n")
        traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
        sys.stderr.flush()
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
