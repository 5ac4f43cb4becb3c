"""The two-level parallel layout of an ensemble: ``P`` ranks = ``G`` member groups x ``K`` column blocks.

A rank ``r = g K + k`` holds the members of group ``g`` (contiguous, ``block_partition(nmem, G)``) on the
columns of block ``k`` (contiguous, made of whole column chunks, balanced by cost). :class:`Layout` owns
both communicators (PDAF's model / filter split, ``COMM_WORLD.Split``):

* ``member_comm``: the ``G`` ranks that hold the same columns (one per member group, in group order);
  every sum over members runs along it as a chain in member order (rank 0 adds its members one by one,
  passes the running sum on, ..., the last broadcasts), so it is exactly the serial loop over members;
* ``column_comm``: the ``K`` ranks that hold the same members (one per block, in block order); whole
  columns are gathered along it, and domain sums run along it with a **fixed chunking** of the columns.

Fixed chunking: the columns are cut into chunks of :func:`column_chunk_size` columns, independent of the
layout; a domain sum adds the columns of each chunk (numpy's pairwise sum of that chunk's contiguous
values), then the chunk sums in column order. Blocks are runs of whole chunks, so every layout forms the
same chunk sums: domain sums are bitwise the same for any ``G x K``.

Every reduction, gather, scatter and transposition of ensemble data goes through a :class:`Layout` (DART's
ensemble manager). Arrays of the ensemble have the model's trailing axes ``(..., ncol, nmem)`` (column,
member), Fortran-ordered like the model's state; member-first arrays ``(nloc, ...)`` are used by the
member gathers kept from the first version (``allgather_members``). A :class:`Transposer` moves
ensemble arrays between two layouts of the same ranks (e.g. the model's ``G x K`` and an analysis'
``1 x P`` column-complete layout with a halo, or its ``P x 1`` whole-member layout).

Random numbers never depend on the layout: streams are keyed by member (``landimg.parallel.member_rng``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from landimg.parallel import SerialComm, block_partition, default_comm

__all__ = [
    "CHUNKS_MIN",
    "CHUNK_MAX",
    "Layout",
    "LayoutError",
    "Transposer",
    "auto_column_blocks",
    "balanced_bounds",
    "chunked_sum",
    "column_chunk_size",
    "column_chunks",
    "halo_columns",
    "resolve_column_blocks",
]

CHUNK_MAX = 256  # columns per chunk at most
CHUNKS_MIN = 64  # chunks at least (when the domain has that many columns)


class LayoutError(ValueError):
    """A layout that cannot be made (ranks not G x K, more blocks than chunks, ...); one line."""


# ---------------------------------------------------------------------------------------------- chunks
def column_chunk_size(ncol: int) -> int:
    """Columns per chunk of the fixed chunking of ``ncol`` columns: ``min(256, ceil(ncol / 64))``, >= 1.

    A domain has at least 64 chunks (one per column below 64 columns) and at most 256 columns per chunk;
    the chunking depends on ``ncol`` only, never on the layout.
    """
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    return int(min(CHUNK_MAX, max(1, -(-int(ncol) // CHUNKS_MIN))))


def column_chunks(ncol: int) -> np.ndarray:
    """Chunk bounds of ``ncol`` columns: int array (nchunks + 1,), chunk ``j`` is ``[b[j], b[j + 1])``."""
    c = column_chunk_size(ncol)
    return np.append(np.arange(0, ncol, c, dtype=np.int64), np.int64(ncol))


def _chunk_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of each chunk ``[bounds[j], bounds[j + 1])`` of the last axis (which starts at column
    ``bounds[0]``): (..., nchunks) float64.

    Every chunk is summed from its own contiguous values (numpy's pairwise sum of that length), so a
    chunk's sum does not depend on which other columns the array holds.
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    lead = v.shape[:-1]
    n = bounds.size - 1
    out = np.empty(lead + (n,), dtype=np.float64)
    if n <= 0:
        return out[..., :0]
    sizes = np.diff(bounds)
    size = int(sizes[0])
    nfull = n if np.all(sizes == size) else int(np.argmax(sizes != size))
    if nfull:  # the chunks of equal size at once: each row of the reshape is one chunk's contiguous values
        out[..., :nfull] = v[..., : nfull * size].reshape(lead + (nfull, size)).sum(axis=-1)
    first = int(bounds[0])
    for j in range(nfull, n):  # the domain's shorter last chunk
        a, b = int(bounds[j]) - first, int(bounds[j + 1]) - first
        out[..., j] = np.ascontiguousarray(v[..., a:b]).sum(axis=-1)
    return out


def chunked_sum(values: np.ndarray, start: int = 0, ncol: int | None = None) -> np.ndarray:
    """Domain sum of ``values`` (..., n) over its last (column) axis with the fixed chunking, on one rank.

    ``values`` hold the columns ``start .. start + n`` of a domain of ``ncol`` columns (default: the
    array is the whole domain); ``start`` and ``start + n`` must be chunk bounds. Returns (...,) float64:
    the sum of each chunk, then of the chunk sums in column order (what :meth:`Layout.column_sum` does
    over column blocks).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    ncol = n if ncol is None else int(ncol)
    bounds = column_chunks(ncol)
    sel = bounds[(bounds >= start) & (bounds <= start + n)]
    if n and (sel.size < 2 or sel[0] != start or sel[-1] != start + n):
        raise ValueError(f"columns {start}..{start + n} are not whole chunks of a domain of {ncol} columns")
    if n == 0:
        return np.zeros(values.shape[:-1])
    return _chunk_sums(values, sel).sum(axis=-1)


def balanced_bounds(ncol: int, nblocks: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Contiguous blocks of whole chunks with about equal cost: column bounds, int array (nblocks + 1,).

    The cost of a block is the sum of its columns' ``weights`` (default 1 per column: the model steps
    every column alike). Cut ``k`` is the chunk bound whose cumulative cost is nearest to ``k / nblocks``
    of the total, kept increasing; with fewer chunks than blocks the last blocks are empty.
    """
    chunks = column_chunks(ncol)
    nch = chunks.size - 1
    w = np.ones(ncol) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (ncol,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and >= 0 with shape ({ncol},)")
    cum = np.concatenate([[0.0], np.cumsum(np.add.reduceat(w, chunks[:-1]))])  # cost up to each chunk bound
    cuts = [0]
    for k in range(1, nblocks):
        target = cum[-1] * k / nblocks
        j = int(np.argmin(np.abs(cum - target)))
        lo = cuts[-1] + 1 if cuts[-1] < nch else nch  # every block gets a chunk while chunks last
        hi = max(lo, nch - (nblocks - k))
        cuts.append(int(min(max(j, lo), hi, nch)))
    cuts.append(nch)
    return chunks[np.asarray(cuts)]


# ---------------------------------------------------------------------------------------------- K
def auto_column_blocks(ranks: int, members: int) -> int:
    """``column_blocks = "auto"``: 1 while ``ranks <= members``, else the smallest ``K`` dividing
    ``ranks`` with ``ranks / K <= members`` (every rank holds at least one member)."""
    if ranks <= members:
        return 1
    return next(k for k in range(1, ranks + 1) if ranks % k == 0 and ranks // k <= members)


def resolve_column_blocks(value: int | str, ranks: int, members: int, ncol: int) -> int:
    """The number of column blocks ``K`` of ``[parallel] column_blocks = value`` on ``ranks`` ranks.

    Raises
    ------
    LayoutError
        One line: ``ranks`` is not ``G x K``, a group would hold no member, or the domain has fewer
        column chunks than ``K``.
    """
    k = auto_column_blocks(ranks, members) if value == "auto" else int(value)
    if k < 1:
        raise LayoutError(f'parallel.column_blocks must be >= 1 or "auto", got {value!r}')
    if ranks % k:
        raise LayoutError(
            f"parallel.column_blocks = {k} does not divide the {ranks} ranks: run on G x {k} ranks "
            "(G member groups), or set column_blocks to a divisor of the rank count"
        )
    if ranks // k > members:
        raise LayoutError(
            f"{ranks} ranks with parallel.column_blocks = {k} make {ranks // k} member groups for "
            f'ensemble.members = {members}: use more column blocks (or "auto")'
        )
    nch = column_chunks(ncol).size - 1
    if k > nch:
        raise LayoutError(
            f"parallel.column_blocks = {k} exceeds the {nch} column chunks of this domain ({ncol} columns)"
        )
    return k


# ---------------------------------------------------------------------------------------------- MPI
def _size(comm: Any) -> int:
    return 1 if isinstance(comm, SerialComm) else int(comm.Get_size())


def _mpi():
    from mpi4py import MPI

    return MPI


def _exchange(comm: Any, pieces: Sequence[np.ndarray | None], recv_bytes: Sequence[int]) -> list[np.ndarray]:
    """All-to-all of byte pieces: ``pieces[t]`` (or None) goes to rank ``t``; returns the uint8 buffers
    received from every rank (``recv_bytes[s]`` bytes from rank ``s``)."""
    size = _size(comm)
    flat = [np.zeros(0, np.uint8) if p is None else np.ascontiguousarray(p).reshape(-1).view(np.uint8)
            for p in pieces]  # fmt: skip
    if size == 1:
        return [flat[0].copy()]
    scount = [int(f.size) for f in flat]
    sdisp = np.concatenate([[0], np.cumsum(scount)[:-1]]).astype(np.int64).tolist()
    rcount = [int(b) for b in recv_bytes]
    rdisp = np.concatenate([[0], np.cumsum(rcount)[:-1]]).astype(np.int64).tolist()
    sendbuf = np.concatenate(flat) if sum(scount) else np.zeros(1, np.uint8)
    recvbuf = np.empty(max(1, sum(rcount)), np.uint8)
    byte = _mpi().BYTE
    comm.Alltoallv([sendbuf, (scount, sdisp), byte], [recvbuf, (rcount, rdisp), byte])
    return [recvbuf[d : d + c] for d, c in zip(rdisp, rcount, strict=True)]


# ---------------------------------------------------------------------------------------------- Layout
class Layout:
    """The ranks of ``comm`` as ``G`` member groups x ``K`` column blocks of an ensemble (module docstring).

    Parameters
    ----------
    nmem : int
        Global ensemble size.
    comm : communicator, optional
        mpi4py communicator of all ``P`` ranks, or :class:`~landimg.parallel.SerialComm` (default
        :func:`~landimg.parallel.default_comm`).
    ncol : int, optional
        Global number of columns; needed when ``column_blocks > 1``. None: a layout of member groups
        only (the first version's ``MemberLayout(nmem, comm)``): every rank holds every column, however
        many the arrays have; the column attributes are then undefined (``col_stop = -1``).
    column_blocks : int
        ``K``; ``P`` must be a multiple of it (``G = P / K`` member groups, which may exceed ``nmem``:
        groups beyond the members are empty).
    weights : ndarray (ncol,), optional
        Cost of every column; blocks are balanced by it (default: column count).

    Attributes
    ----------
    comm, rank, size : the communicator of all ranks, this rank, ``P``.
    member_groups, column_blocks : ``G`` and ``K``.
    group, block : this rank's member group and column block (``rank = group K + block``).
    member_comm : the ``G`` ranks holding this rank's columns (rank in it = ``group``).
    column_comm : the ``K`` ranks holding this rank's members (rank in it = ``block``).
    bounds : int array (G + 1,): members of group ``g`` are ``bounds[g]:bounds[g + 1]``.
    column_bounds : int array (K + 1,): columns of block ``k`` (chunk bounds).
    chunk_bounds : int array (nchunks + 1,): the fixed chunking of the columns.
    """

    def __init__(
        self,
        nmem: int,
        comm: Any = None,
        *,
        ncol: int | None = None,
        column_blocks: int = 1,
        weights: np.ndarray | None = None,
    ) -> None:
        if nmem < 1:
            raise ValueError(f"nmem must be >= 1, got {nmem}")
        self.nmem = int(nmem)
        self.comm = default_comm() if comm is None else comm
        self.rank, self.size = int(self.comm.Get_rank()), _size(self.comm)
        k = int(column_blocks)
        if k < 1 or self.size % k:
            raise LayoutError(f"{self.size} ranks are not G x K with K = column_blocks = {column_blocks}")
        if k > 1 and ncol is None:
            raise ValueError("a layout with column blocks needs ncol")
        self.ncol = None if ncol is None else int(ncol)
        self.column_blocks, self.member_groups = k, self.size // k
        self.group, self.block = divmod(self.rank, k)
        self.bounds = block_partition(self.nmem, self.member_groups)
        if self.ncol is None:
            self.column_bounds = np.array([0, -1], dtype=np.int64)  # every column (count unknown)
            self.chunk_bounds = np.zeros(1, dtype=np.int64)
        else:
            if k > column_chunks(self.ncol).size - 1:
                raise LayoutError(f"column_blocks = {k} exceeds the column chunks of {self.ncol} columns")
            self.chunk_bounds = column_chunks(self.ncol)
            self.column_bounds = balanced_bounds(self.ncol, k, weights)
        g = self.member_groups  # ranks of one block (one per group) / of one group (one per block):
        self.member_comm = (
            SerialComm() if g == 1 else self.comm if k == 1 else self.comm.Split(self.block, self.group)
        )
        self.column_comm = (
            SerialComm() if k == 1 else self.comm if g == 1 else self.comm.Split(self.group, self.block)
        )

    def __repr__(self) -> str:
        return (f"Layout(nmem={self.nmem}, ncol={self.ncol}, {self.member_groups} member groups x "
                f"{self.column_blocks} column blocks, rank {self.rank}: members {self.start}:{self.stop}, "
                f"columns {self.col_start}:{self.col_stop})")  # fmt: skip

    # ------------------------------------------------------------------ members of this rank
    @property
    def start(self) -> int:
        """First member of this rank."""
        return int(self.bounds[self.group])

    @property
    def stop(self) -> int:
        """One past the last member of this rank."""
        return int(self.bounds[self.group + 1])

    @property
    def nloc(self) -> int:
        """Number of members on this rank (0 in a group beyond the members)."""
        return self.stop - self.start

    @property
    def members(self) -> range:
        """Global indices of this rank's members."""
        return range(self.start, self.stop)

    @property
    def counts(self) -> np.ndarray:
        """Members per group, int array (G,)."""
        return np.diff(self.bounds)

    def members_of(self, rank: int) -> range:
        """The members of world rank ``rank``."""
        g = rank // self.column_blocks
        return range(int(self.bounds[g]), int(self.bounds[g + 1]))

    # ------------------------------------------------------------------ columns of this rank
    @property
    def col_start(self) -> int:
        """First column of this rank's block."""
        return int(self.column_bounds[self.block])

    @property
    def col_stop(self) -> int:
        """One past the last column of this rank's block (-1 when the layout does not know ``ncol``)."""
        return int(self.column_bounds[self.block + 1])

    @property
    def ncol_local(self) -> int:
        """Number of columns of this rank's block."""
        return self.col_stop - self.col_start

    @property
    def columns(self) -> np.ndarray:
        """Global indices of this rank's columns, int array (ncol_local,)."""
        return np.arange(self.col_start, self.col_stop)

    def columns_of(self, rank: int) -> tuple[int, int]:
        """Column range ``(start, stop)`` of world rank ``rank``."""
        k = rank % self.column_blocks
        return int(self.column_bounds[k]), int(self.column_bounds[k + 1])

    @property
    def whole(self) -> bool:
        """True when this layout is one block of every column (``K = 1``)."""
        return self.column_blocks == 1

    def same_partition(self, other: Layout) -> bool:
        """True when ``other`` puts the same members and columns on every rank."""
        return (
            self.size == other.size and self.column_blocks == other.column_blocks
            and np.array_equal(self.bounds, other.bounds)
            and (self.whole or np.array_equal(self.column_bounds, other.column_bounds))
        )  # fmt: skip

    # ------------------------------------------------------------------ reductions over members
    def ordered_sum(self, local: np.ndarray, axis: int = 0) -> np.ndarray:
        """Sum over all members in member order, bitwise the same for any layout.

        Parameters
        ----------
        local : ndarray
            This rank's members along ``axis`` (length ``nloc``); the other axes the same on the ranks
            of ``member_comm`` (this rank's columns).

        Returns
        -------
        ndarray
            The sum over all ``nmem`` members (float64), the same on every rank of ``member_comm``.
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
        comm, g, ng = self.member_comm, self.group, self.member_groups
        serial = _size(comm) == 1
        if not serial and g > 0:
            comm.Recv(acc, source=g - 1, tag=71)
        count = 0
        for term in terms:  # a loop over members only: fixes the summation order
            acc += term
            count += 1
        if count != self.nloc:
            raise ValueError(f"got {count} member terms, expected nloc={self.nloc}")
        if serial:
            return acc
        if g < ng - 1:
            comm.Send(acc, dest=g + 1, tag=71)
        comm.Bcast(acc, root=ng - 1)
        return acc

    def mean(self, local: np.ndarray, axis: int = 0) -> np.ndarray:
        """Ensemble mean over all members (reproducible), the shape of ``local`` without ``axis``."""
        return self.ordered_sum(local, axis) / self.nmem

    def mean_var(self, local: np.ndarray, axis: int = 0, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and variance (two passes, ``ddof`` = 1 unbiased), both reproducible."""
        local = np.moveaxis(np.asarray(local, dtype=np.float64), axis, 0)
        mu = self.mean(local)
        var = self.ordered_sum((local - mu) ** 2) / max(self.nmem - ddof, 1)
        return mu, var

    # ------------------------------------------------------------------ reductions over columns
    def column_sum(self, values: np.ndarray) -> np.ndarray:
        """Domain sum over the columns with the fixed chunking, bitwise the same for any layout.

        Parameters
        ----------
        values : ndarray (..., ncol_local)
            Values of this rank's columns (a layout without ``ncol``: of every column); the leading axes
            the same on the ranks of ``column_comm``.

        Returns
        -------
        ndarray (...,) float64
            Each chunk summed, then the chunk sums in column order; the same on every rank of
            ``column_comm`` (and on every rank when every member group passes the same values).
        """
        values = np.asarray(values, dtype=np.float64)
        if self.ncol is None:
            return chunked_sum(values)
        if values.shape[-1] != self.ncol_local:
            raise ValueError(f"values hold {values.shape[-1]} columns, this block {self.ncol_local}")
        b = self.chunk_bounds
        mine = b[(b >= self.col_start) & (b <= self.col_stop)]
        sums = _chunk_sums(values, mine)  # (..., my chunks)
        if _size(self.column_comm) > 1:
            parts = self.column_comm.allgather(sums)  # block order = column order
            sums = np.concatenate(parts, axis=-1)
        return np.ascontiguousarray(sums).sum(axis=-1)

    def domain_sum(self, local: np.ndarray) -> np.ndarray:
        """Sum over every member and column of ``local`` (..., ncol_local, nloc): members first (in member
        order, :meth:`ordered_sum`), then the columns (:meth:`column_sum`). (...,) float64, the same on
        every rank."""
        local = np.asarray(local, dtype=np.float64)
        return self.column_sum(self.ordered_sum(local, axis=-1))

    def column_max(self, value: float) -> float:
        """The largest ``value`` over the column blocks (exact: a maximum has no rounding)."""
        if _size(self.column_comm) == 1:
            return value
        return self.column_comm.allreduce(value, op=_mpi().MAX)

    # ------------------------------------------------------------------ gathers along one level
    def allgather_members(self, local: np.ndarray) -> np.ndarray:
        """All members' arrays on every rank of ``member_comm``: (nloc, ...) -> (nmem, ...) float64."""
        local = np.ascontiguousarray(local, dtype=np.float64)
        if local.shape[0] != self.nloc:
            raise ValueError(f"local has {local.shape[0]} members, expected nloc={self.nloc}")
        if _size(self.member_comm) == 1:
            return local.copy()
        item = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((self.nmem,) + local.shape[1:], dtype=np.float64)
        counts, displs = (self.counts * item).tolist(), (self.bounds[:-1] * item).tolist()
        self.member_comm.Allgatherv(local, [out, counts, displs, _mpi().DOUBLE])
        return out

    def gather_members(self, local: np.ndarray, root: int = 0) -> np.ndarray | None:
        """All members' arrays (nmem, ...) on group ``root`` of ``member_comm``; None on the others."""
        local = np.ascontiguousarray(local, dtype=np.float64)
        if _size(self.member_comm) == 1:
            return local.copy()
        item = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((self.nmem,) + local.shape[1:], dtype=np.float64) if self.group == root else None
        recv = [out, (self.counts * item).tolist(), (self.bounds[:-1] * item).tolist(), _mpi().DOUBLE]
        self.member_comm.Gatherv(local, recv if self.group == root else None, root=root)
        return out

    def scatter_members(self, full: np.ndarray | None, root: int = 0) -> np.ndarray:
        """Inverse of :meth:`gather_members`: (nmem, ...) on group ``root`` -> this rank's (nloc, ...)."""
        if _size(self.member_comm) == 1:
            return np.array(full, dtype=np.float64, copy=True)
        shape = self.member_comm.bcast(None if full is None else np.shape(full)[1:], root=root)
        item = int(np.prod(shape, dtype=np.int64))
        out = np.empty((self.nloc,) + tuple(shape), dtype=np.float64)
        send = None
        if self.group == root:
            full = np.ascontiguousarray(full, dtype=np.float64)
            send = [full, (self.counts * item).tolist(), (self.bounds[:-1] * item).tolist(), _mpi().DOUBLE]
        self.member_comm.Scatterv(send, out, root=root)
        return out

    def allgather_columns(self, local: np.ndarray) -> np.ndarray:
        """Every column on every rank of ``column_comm``: (..., ncol_local) -> (..., ncol), same dtype."""
        local = np.asarray(local)
        if _size(self.column_comm) == 1:
            return local.copy()
        parts = self.column_comm.allgather(np.ascontiguousarray(local))
        return np.concatenate(parts, axis=-1)

    def gather_columns(self, local: np.ndarray, root: int = 0) -> np.ndarray | None:
        """Every column (..., ncol) on world rank ``root`` (None elsewhere), from the ranks of ``root``'s
        member group (each (..., ncol_local); the values of one member group, e.g. ensemble means, which
        every group holds alike). Same dtype."""
        local = np.asarray(local)
        group, block = divmod(int(root), self.column_blocks)
        if self.group != group:
            return None
        if _size(self.column_comm) == 1:
            return local.copy()
        parts = self.column_comm.gather(np.ascontiguousarray(local), root=block)
        return None if self.block != block else np.concatenate(parts, axis=-1)

    # ------------------------------------------------------------------ whole ensemble arrays
    def _full_pieces(self, local: np.ndarray) -> np.ndarray:
        local = np.asarray(local)
        want = (self.ncol_local if self.ncol is not None else local.shape[-2], self.nloc)
        if local.ndim < 2 or local.shape[-2:] != want:
            raise ValueError(f"local must have trailing axes (ncol_local, nloc) = {want}, got {local.shape}")
        return np.ascontiguousarray(local)

    def _assemble(self, parts: Sequence[np.ndarray], lead: tuple[int, ...], dtype: Any) -> np.ndarray:
        ncol = parts[0].shape[-2] if self.ncol is None else self.ncol
        out = np.empty(lead + (ncol, self.nmem), dtype=dtype, order="F")
        for r, part in enumerate(parts):
            c0, c1 = self.columns_of(r) if self.ncol is not None else (0, ncol)
            m = self.members_of(r)
            out[..., c0:c1, m.start : m.stop] = part.reshape(lead + (c1 - c0, len(m)))
        return out

    def gather(self, local: np.ndarray, root: int = 0) -> np.ndarray | None:
        """The whole array (..., ncol, nmem), Fortran-ordered, on world rank ``root`` (None elsewhere), from
        every rank's (..., ncol_local, nloc)."""
        local = self._full_pieces(local)
        if self.size == 1:
            return np.asfortranarray(local)
        parts = self.comm.gather(local, root=root)
        if self.rank != root:
            return None
        return self._assemble(parts, local.shape[:-2], local.dtype)

    def allgather(self, local: np.ndarray) -> np.ndarray:
        """The whole array (..., ncol, nmem), Fortran-ordered, on every rank."""
        local = self._full_pieces(local)
        if self.size == 1:
            return np.asfortranarray(local)
        return self._assemble(self.comm.allgather(local), local.shape[:-2], local.dtype)

    def scatter(self, full: np.ndarray | None, root: int = 0) -> np.ndarray:
        """Inverse of :meth:`gather`: (..., ncol, nmem) on ``root`` -> this rank's (..., ncol_local, nloc),
        Fortran-ordered."""
        if self.size == 1:
            return np.asfortranarray(np.array(full, copy=True))
        pieces = None
        if self.rank == root:
            full = np.asarray(full)
            pieces = []
            for r in range(self.size):
                c0, c1 = self.columns_of(r) if self.ncol is not None else (0, full.shape[-2])
                m = self.members_of(r)
                pieces.append(np.ascontiguousarray(full[..., c0:c1, m.start : m.stop]))
        return np.asfortranarray(self.comm.scatter(pieces, root=root))

    def take(self, full: np.ndarray) -> np.ndarray:
        """This rank's part (..., ncol_local, nloc) of an array (..., ncol, nmem) every rank holds (no
        communication), Fortran-ordered."""
        full = np.asarray(full)
        cols = slice(None) if self.ncol is None else slice(self.col_start, self.col_stop)
        return np.asfortranarray(full[..., cols, self.start : self.stop])

    # ------------------------------------------------------------------ transpositions
    def transposer(self, target: Layout, held: np.ndarray | None = None) -> Transposer:
        """A :class:`Transposer` from this layout to ``target`` (collective); ``held``: the columns this
        rank holds in ``target`` (its block plus a halo, sorted global indices; None: its block)."""
        return Transposer(self, target, held)


# ---------------------------------------------------------------------------------------------- transposer
class Transposer:
    """Moves ensemble arrays between two layouts of the same ranks (DART's ``all_copies_to_all_vars``).

    ``forward`` takes this rank's ``(..., ncol_local, nloc)`` of the ``source`` layout and returns its
    ``(..., len(held), nloc)`` of the ``target`` layout (the target block's columns plus its halo, all in
    global column order), ``backward`` the reverse for the target's own columns only (a halo column's
    value comes from the rank that owns it). One all-to-all per array; arrays keep their dtype and come
    out Fortran-ordered. Built collectively (every rank's held columns are exchanged once).

    Attributes
    ----------
    held : int array (nheld,)
        Global columns this rank holds in the target layout (sorted).
    owned : bool array (nheld,)
        Which of them belong to its target block (False: halo).
    identity : bool
        Source and target hold the same data on every rank (no communication).
    """

    def __init__(self, source: Layout, target: Layout, held: np.ndarray | None = None) -> None:
        if source.size != target.size or source.nmem != target.nmem or source.ncol != target.ncol:
            raise ValueError("a transposition needs two layouts of the same ranks, members and columns")
        if source.ncol is None:
            raise ValueError("a transposition needs layouts that know ncol")
        self.source, self.target = source, target
        own = np.arange(target.col_start, target.col_stop)
        held = own if held is None else np.unique(np.asarray(held, dtype=np.int64))
        if not np.all(np.isin(own, held)):
            raise ValueError("held columns must include the target block's own columns")
        self.held = held
        self.owned = (held >= target.col_start) & (held < target.col_stop)
        all_held = [held] if source.size == 1 else source.comm.allgather(held)
        self._plan(all_held)
        blocks = [target.columns_of(r) for r in range(target.size)]
        self.identity = source.same_partition(target) and all(
            h.size == c1 - c0 for h, (c0, c1) in zip(all_held, blocks, strict=True)
        )

    def _plan(self, all_held: list[np.ndarray]) -> None:
        """Per peer rank: (source members, source column positions / target members, target positions)."""
        s, t, me = self.source, self.target, self.source.rank
        sm, (sc0, sc1) = s.members_of(me), s.columns_of(me)
        tm = t.members_of(me)
        self._send, self._recv, self._back_send, self._back_recv = [], [], [], []
        for r in range(s.size):
            # forward: my source data -> rank r's held target columns
            m = range(max(sm.start, t.members_of(r).start), min(sm.stop, t.members_of(r).stop))
            h = all_held[r]
            cols = h[(h >= sc0) & (h < sc1)]
            self._send.append(
                (m.start - sm.start, m.stop - sm.start, cols - sc0) if len(m) and cols.size else None
            )
            # forward: rank r's source data -> my held columns
            rm, (rc0, rc1) = s.members_of(r), s.columns_of(r)
            m = range(max(rm.start, tm.start), min(rm.stop, tm.stop))
            pos = np.flatnonzero((self.held >= rc0) & (self.held < rc1))
            self._recv.append((m.start - tm.start, m.stop - tm.start, pos) if len(m) and pos.size else None)
            # backward: my target block (owned columns) -> rank r's source block
            oc0, oc1 = t.col_start, t.col_stop
            m = range(max(tm.start, rm.start), min(tm.stop, rm.stop))
            pos = np.flatnonzero((self.held >= max(oc0, rc0)) & (self.held < min(oc1, rc1)))
            self._back_send.append(
                (m.start - tm.start, m.stop - tm.start, pos) if len(m) and pos.size else None
            )
            # backward: rank r's target block -> my source block
            tr, (tc0, tc1) = t.members_of(r), t.columns_of(r)
            m = range(max(tr.start, sm.start), min(tr.stop, sm.stop))
            lo, hi = max(tc0, sc0), min(tc1, sc1)
            cols = np.arange(lo, hi) - sc0
            self._back_recv.append(
                (m.start - sm.start, m.stop - sm.start, cols) if len(m) and cols.size else None
            )

    @staticmethod
    def _move(comm, a, lead, dtype, send, recv, out_shape) -> np.ndarray:
        item = int(np.prod(lead, dtype=np.int64)) * np.dtype(dtype).itemsize
        pieces = [None if p is None else a[..., p[2], p[0] : p[1]] for p in send]
        nbytes = [0 if p is None else item * len(p[2]) * (p[1] - p[0]) for p in recv]
        got = _exchange(comm, pieces, nbytes)
        out = np.zeros(lead + out_shape, dtype=dtype, order="F")
        for p, buf in zip(recv, got, strict=True):
            if p is not None:
                out[..., p[2], p[0] : p[1]] = buf.view(dtype).reshape(lead + (len(p[2]), p[1] - p[0]))
        return out

    def forward(self, a: np.ndarray) -> np.ndarray:
        """Source ``(..., ncol_local, nloc)`` -> target ``(..., len(held), nloc_target)`` (Fortran order)."""
        a = np.asarray(a)
        s = self.source
        if a.shape[-2:] != (s.ncol_local, s.nloc):
            raise ValueError(f"expected trailing axes {(s.ncol_local, s.nloc)}, got {a.shape}")
        if self.identity:
            return a
        return self._move(s.comm, a, a.shape[:-2], a.dtype, self._send, self._recv,
                          (self.held.size, self.target.nloc))  # fmt: skip

    def backward(self, b: np.ndarray) -> np.ndarray:
        """Target ``(..., len(held), nloc_target)`` -> source ``(..., ncol_local, nloc)``: the target's own
        columns go back to the ranks that hold them in the source layout (Fortran order)."""
        b = np.asarray(b)
        t = self.target
        if b.shape[-2:] != (self.held.size, t.nloc):
            raise ValueError(f"expected trailing axes {(self.held.size, t.nloc)}, got {b.shape}")
        if self.identity:
            return b
        s = self.source
        return self._move(s.comm, b, b.shape[:-2], b.dtype, self._back_send, self._back_recv,
                          (s.ncol_local, s.nloc))  # fmt: skip


# ---------------------------------------------------------------------------------------------- halo
def halo_columns(layout: Layout, xyz: np.ndarray, halo_km: float) -> np.ndarray:
    """This rank's block of ``layout`` plus every column within ``halo_km`` of it: sorted global indices.

    ``xyz`` (ncol, 3): the columns on the unit sphere. A column is in the halo when its great-circle
    distance to the nearest column of the block is at most ``halo_km`` (slightly widened, so every
    column a method finds within that radius is held).
    """
    own = np.arange(layout.col_start, layout.col_stop)
    if halo_km <= 0 or own.size == 0 or own.size == xyz.shape[0]:
        return own
    from scipy.spatial import cKDTree

    chord = 2.0 * np.sin(min(halo_km / 6371.0, np.pi) / 2.0) * (1 + 1e-9)
    d, _ = cKDTree(xyz[own]).query(xyz, k=1, distance_upper_bound=chord)
    return np.flatnonzero(np.isfinite(d))


def column_costs(xyz: np.ndarray, halo_km: float, cap: int = 64) -> np.ndarray:
    """Analysis cost weight of every column: ``1 +`` the number of columns within ``halo_km``, at most
    ``cap`` (the size of its local problem: a point filter's neighbourhood, the default ``max_obs``)."""
    n = xyz.shape[0]
    if halo_km <= 0 or n < 2:
        return np.ones(n)
    from scipy.spatial import cKDTree

    chord = 2.0 * np.sin(min(halo_km / 6371.0, np.pi) / 2.0)
    k = min(cap + 1, n)
    d, _ = cKDTree(xyz).query(xyz, k=k, distance_upper_bound=chord)
    return 1.0 + np.isfinite(d.reshape(n, k)[:, 1:]).sum(axis=1)
