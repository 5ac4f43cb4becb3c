"""The world on column blocks: this rank's share of the nature run, the weather and the observations.

With ``P`` ranks the land columns are cut into ``P`` contiguous blocks of whole column chunks -- the world
blocks, DART's state-complete layout of the truth: a :class:`landimg.layout.Layout` of one member with
``column_blocks = P``, balanced by column count -- whatever the ensemble's ``G x K`` layout. Every rank
makes the weather of its block (truth and ensemble forcing), steps the nature run there and makes the
synthetic observations there; no rank computes them for every column (with ``P = 1`` the one block is
the domain). Each value is made on one rank, bitwise what the whole-domain computation gives there, and
what other ranks need is moved, never recomputed:

* the ensemble forcing of every step goes to the ensemble's layout (:class:`ColumnMover`: each member
  group's block gets the values of its columns, one all-to-all; nothing moves when the ensemble's blocks
  are the world blocks, ``1 x P``);
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

from landimg.layout import Layout, LayoutError, Transposer, column_chunks
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
        return {k: self.layout.scatter(None if self.rank != root else np.asarray(state[k]), root=root) for k in keys}

    def take_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This block's part of a one-member state of every column that every rank holds."""
        return {k: np.asfortranarray(np.asarray(v)[..., self.columns, :]) for k, v in state.items()}

    def mover(self, target: Layout) -> ColumnMover:
        """A :class:`ColumnMover` from the world blocks to the column blocks of ``target`` (collective)."""
        return ColumnMover(self, target)


class ColumnMover:
    """Moves values per column from the world blocks to an ensemble layout's blocks (collective).

    Every rank of the ensemble layout ``target`` (``G`` member groups x ``K`` column blocks) gets the values
    of its block's columns, which the world blocks hold: the forcing of a step, a spun-up column. Made with
    a :class:`~landimg.layout.Transposer` between two layouts of ``G`` copies (one member group holding all
    ``G`` on the ``P`` world blocks -> ``G`` groups of one copy on the ``K`` blocks), so each world rank
    sends the overlap of its block with a target block to the ``G`` ranks holding that block: one
    all-to-all per call, nothing moved (and no copy) when the partitions are the same (``1 x P``).

    Parameters
    ----------
    world : World
    target : Layout
        The ensemble's layout, blocks balanced by column count (a layout without ``ncol`` holds every
        column on every rank).
    """

    def __init__(self, world: World, target: Layout) -> None:
        lay = world.layout
        if target.size != lay.size:
            raise ValueError(f"the ensemble layout has {target.size} ranks, the world {lay.size}")
        ncol, g = lay.ncol, target.member_groups
        k = 1 if target.ncol is None else target.column_blocks
        self.source = Layout(g, lay.comm, ncol=ncol, column_blocks=lay.size)
        copies = Layout(g, lay.comm, ncol=ncol, column_blocks=k)
        if target.ncol is not None and not np.array_equal(copies.column_bounds, target.column_bounds):
            raise ValueError("ColumnMover: the ensemble layout's column blocks are not balanced by column count")
        self.transposer = Transposer(self.source, copies)
        self.copies = g
        self.ncol_target = copies.ncol_local

    @property
    def identity(self) -> bool:
        """True when nothing moves (the target's blocks are the world blocks)."""
        return self.transposer.identity

    def move(self, values: np.ndarray) -> np.ndarray:
        """World block values (..., ncol_world_local) -> this rank's target block (..., ncol_target), same dtype."""
        values = np.asarray(values)
        if self.identity:
            return values
        a = np.broadcast_to(values[..., None], values.shape + (self.copies,))
        return np.ascontiguousarray(self.transposer.forward(a)[..., 0])

    def move_dict(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`move` of every array of a dict of (ncol_world_local,) arrays (a step's forcing), in one
        all-to-all; the arrays come out contiguous."""
        if self.identity:
            return dict(values)
        keys = list(values)
        moved = self.move(np.stack([np.asarray(values[k], dtype=np.float64) for k in keys]))
        return {k: moved[i].copy() for i, k in enumerate(keys)}

    def move_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A one-member state on the world blocks (arrays (..., ncol_world_local, 1)) -> the target block's
        (..., ncol_target, 1), Fortran-ordered."""
        return {k: np.asfortranarray(self.move(np.asarray(v)[..., 0])[..., None]) for k, v in state.items()}
