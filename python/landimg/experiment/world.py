"""The world on column blocks: this rank's share of the nature run, the weather and the observations.

With ``P`` ranks the land columns are cut into ``P`` contiguous blocks of whole column chunks -- the world
blocks, DART's state-complete layout of the truth: a :class:`landimg.layout.Layout` of one member with
``column_blocks = P``, balanced by column count -- whatever the ensemble's ``G x K`` layout. Every rank
makes the weather of its block (truth and ensemble forcing), steps the nature run there and makes the
synthetic observations there; no rank computes them for every column (with ``P = 1`` the one block is
the domain). Each value is made on one rank, bitwise what the whole-domain computation gives there, and
what other ranks need is moved, never recomputed:

* the ensemble forcing of every step goes to the ensemble's layout (:class:`ColumnMover`: each member
  group's block gets the values of its columns, one non-blocking all-to-all that flies while the rank
  steps the nature run; nothing moves when the ensemble's blocks are the world blocks, ``1 x P``);
* the spun-up ensemble column goes the same way (then it seeds every member);
* an analysis time's observations (one value per column) are gathered on every rank (the analyses take
  the whole observation image);
* at the end of a day, the reference (the nature run's verification layers) and the station readings are
  gathered on rank 0 for the scores and the history, and the nature run's state for the restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from landimg.layout import Layout, LayoutError, column_chunks
from landimg.parallel import SerialComm, default_comm

__all__ = ["ColumnMover", "World"]


def _size(comm: Any) -> int:
    return 1 if isinstance(comm, SerialComm) else int(comm.Get_size())


class World:
    """This rank's world block of the columns of ``grid`` (module docstring).

    Parameters
    ----------
    grid : landimg.Grid
    comm : communicator, optional
        All ranks of the run (default :func:`~landimg.parallel.default_comm`); ``P`` blocks.

    Attributes
    ----------
    layout : Layout
        One member on ``P`` column blocks.
    columns : slice
        This rank's columns (contiguous; every column when ``P = 1``).

    Raises
    ------
    LayoutError
        One line: the domain has fewer column chunks than ranks.
    """

    def __init__(self, grid: Any, comm: Any = None) -> None:
        self.grid = grid
        comm = default_comm() if comm is None else comm
        size, nchunks = _size(comm), column_chunks(grid.ncol).size - 1
        if size > nchunks:
            raise LayoutError(
                f"{size} ranks but the domain's {grid.ncol} land columns make only {nchunks} column chunks "
                "(one world block per rank): use fewer ranks or a larger domain"
            )
        self.layout = Layout(1, comm, ncol=grid.ncol, column_blocks=size)
        self.columns = slice(self.layout.col_start, self.layout.col_stop)

    @property
    def comm(self) -> Any:
        """The communicator of all ranks."""
        return self.layout.comm

    @property
    def rank(self) -> int:
        """This rank."""
        return self.layout.rank

    @property
    def ncol(self) -> int:
        """Number of columns of this rank's block."""
        return self.layout.ncol_local

    @property
    def whole(self) -> bool:
        """True when the block is every column (one rank)."""
        return self.layout.size == 1

    def counts(self) -> np.ndarray:
        """Columns of every rank's block, int array (P,)."""
        return np.diff(self.layout.column_bounds)

    # ------------------------------------------------------------------ values per column
    def take(self, full: np.ndarray) -> np.ndarray:
        """This block's part (..., ncol_local) of values of every column (..., ncol) (no communication)."""
        return np.asarray(full)[..., self.columns]

    def allgather(self, local: np.ndarray) -> np.ndarray:
        """Values of every column (..., ncol) on every rank, from each block's (..., ncol_local)."""
        local = np.asarray(local)
        return local if self.whole else self.layout.allgather_columns(local)

    def gather(self, local: np.ndarray, root: int = 0) -> np.ndarray | None:
        """Values of every column (..., ncol) on ``root`` (None elsewhere), from each block's (..., ncol_local)."""
        local = np.asarray(local)
        if self.whole:
            return local
        full = self.layout.gather(local[..., None], root=root)
        return None if full is None else np.ascontiguousarray(full[..., 0])

    def gather_state(self, state: Mapping[str, np.ndarray], root: int = 0) -> dict[str, np.ndarray] | None:
        """A one-member model state of every column on ``root`` (None elsewhere), from each block's state
        (arrays (..., ncol_local, 1), ``ColumnModel.get_state()``); arrays Fortran-ordered like the model's."""
        if self.whole:
            return dict(state)
        out = {k: self.layout.gather(np.asarray(v), root=root) for k, v in state.items()}
        return out if self.rank == root else None

    def scatter_state(self, state: Mapping[str, np.ndarray] | None, root: int = 0) -> dict[str, np.ndarray]:
        """Inverse of :meth:`gather_state`: this block's part of a state of every column given on ``root``."""
        if self.whole:
            return dict(state)
        keys = self.comm.bcast(None if self.rank != root else sorted(state), root=root)
        return {
            k: self.layout.scatter(None if self.rank != root else np.asarray(state[k]), root=root)
            for k in keys
        }

    def take_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This block's part of a one-member state of every column that every rank holds."""
        return {k: np.asfortranarray(np.asarray(v)[..., self.columns, :]) for k, v in state.items()}

    def mover(self, target: Layout) -> ColumnMover:
        """A :class:`ColumnMover` from the world blocks to the column blocks of ``target`` (collective)."""
        return ColumnMover(self, target)


class _Pending:
    """A move in flight (:meth:`ColumnMover.start`): :meth:`wait` completes it and returns the moved values."""

    def __init__(self, finish: Any) -> None:
        self._finish = finish

    def wait(self) -> Any:
        """The moved values (blocks until the exchange is complete)."""
        return self._finish()


class ColumnMover:
    """Moves values per column from the world blocks to an ensemble layout's blocks (collective).

    Every rank of the ensemble layout ``target`` (``G`` member groups x ``K`` column blocks) gets the values
    of its block's columns, which the world blocks hold: the forcing of a step, a spun-up column. Each
    world rank sends the overlap of its block with a target block to every rank holding that block (the
    ``G`` ranks of that block): one all-to-all per call (non-blocking with :meth:`start`, so a rank can
    step the nature run while the ensemble forcing moves), nothing moved and no copy when every rank's
    target block is its world block (``1 x P``, or one rank).

    Parameters
    ----------
    world : World
    target : Layout
        The ensemble's layout (a layout without ``ncol`` holds every column on every rank).
    """

    def __init__(self, world: World, target: Layout) -> None:
        lay = world.layout
        if target.size != lay.size:
            raise ValueError(f"the ensemble layout has {target.size} ranks, the world {lay.size}")
        ncol, size, me = lay.ncol, lay.size, lay.rank
        self.comm = lay.comm

        def target_of(r: int) -> tuple[int, int]:
            return (0, ncol) if target.ncol is None else target.columns_of(r)

        self.identity = all(target_of(r) == lay.columns_of(r) for r in range(size))
        (w0, w1), (t0, t1) = lay.columns_of(me), target_of(me)
        # per peer: my world columns [a, b) it needs (relative to my block), its world columns I need
        self._send = [(max(w0, target_of(r)[0]) - w0, min(w1, target_of(r)[1]) - w0) for r in range(size)]
        self._recv = [
            (max(lay.columns_of(r)[0], t0) - t0, min(lay.columns_of(r)[1], t1) - t0) for r in range(size)
        ]
        self.ncol_target = t1 - t0

    def start(self, values: np.ndarray) -> _Pending:
        """Start moving world block values (..., ncol_world_local); ``.wait()`` gives this rank's target
        block (..., ncol_target), same dtype."""
        values = np.asarray(values)
        if self.identity:
            return _Pending(lambda: values)
        from mpi4py import MPI

        lead, item = (
            values.shape[:-1],
            values.dtype.itemsize * int(np.prod(values.shape[:-1], dtype=np.int64)),
        )
        pieces = [np.ascontiguousarray(values[..., a:b]).reshape(-1).view(np.uint8) for a, b in
                  ((a, max(a, b)) for a, b in self._send)]  # fmt: skip
        scount = [int(p.size) for p in pieces]
        rcount = [item * max(b - a, 0) for a, b in self._recv]
        sdisp = np.concatenate([[0], np.cumsum(scount)[:-1]]).astype(np.int64).tolist()
        rdisp = np.concatenate([[0], np.cumsum(rcount)[:-1]]).astype(np.int64).tolist()
        sendbuf = np.concatenate(pieces) if sum(scount) else np.zeros(1, np.uint8)
        recvbuf = np.empty(max(1, sum(rcount)), np.uint8)
        req = self.comm.Ialltoallv([sendbuf, (scount, sdisp), MPI.BYTE], [recvbuf, (rcount, rdisp), MPI.BYTE])
        buffers = (sendbuf, recvbuf)  # kept alive until the exchange is complete

        def finish() -> np.ndarray:
            req.Wait()
            out = np.empty(lead + (self.ncol_target,), dtype=values.dtype)
            for (a, b), d, c in zip(self._recv, rdisp, rcount, strict=True):
                if c:
                    out[..., a:b] = buffers[1][d : d + c].view(values.dtype).reshape(lead + (b - a,))
            return out

        return _Pending(finish)

    def move(self, values: np.ndarray) -> np.ndarray:
        """World block values (..., ncol_world_local) -> this rank's target block (..., ncol_target)."""
        return self.start(values).wait()

    def start_dict(self, values: Mapping[str, np.ndarray]) -> _Pending:
        """:meth:`start` for a dict of (ncol_world_local,) arrays (a step's forcing), in one all-to-all;
        ``.wait()`` gives a dict of contiguous (ncol_target,) arrays."""
        if self.identity:
            out = dict(values)
            return _Pending(lambda: out)
        keys = list(values)
        pending = self.start(np.stack([np.asarray(values[k], dtype=np.float64) for k in keys]))
        return _Pending(lambda: dict(zip(keys, pending.wait(), strict=True)))

    def move_dict(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`start_dict`, completed."""
        return self.start_dict(values).wait()

    def move_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A one-member state on the world blocks (arrays (..., ncol_world_local, 1)) -> the target block's
        (..., ncol_target, 1), Fortran-ordered."""
        return {k: np.asfortranarray(self.move(np.asarray(v)[..., 0])[..., None]) for k, v in state.items()}
