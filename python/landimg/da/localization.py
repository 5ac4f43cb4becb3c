"""Localization: Gaspari-Cohn weights and the observed neighbours of every column on the sphere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from landimg.grid import unit_xyz

if TYPE_CHECKING:
    from scipy.sparse import csr_array

__all__ = [
    "EARTH_RADIUS_KM",
    "Neighbourhoods",
    "PairTable",
    "gaspari_cohn",
    "great_circle_km",
    "observation_pair_weights",
    "observed_neighbourhoods",
    "pad_neighbourhoods",
    "unit_xyz",
]

EARTH_RADIUS_KM = 6371.0


def gaspari_cohn(r: np.ndarray) -> np.ndarray:
    """Gaspari & Cohn (1999) 5th-order compactly supported correlation, ``r`` = distance / half-width.

    1 at r = 0, 0 for r >= 2.
    """
    r = np.minimum(np.abs(np.asarray(r, dtype=np.float64)), 2.0)
    # Horner forms of the two pieces, evaluated everywhere and selected (faster than masked indexing)
    inner = (((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r * r + 1.0
    with np.errstate(divide="ignore"):
        outer = ((((r / 12.0 - 0.5) * r + 0.625) * r + 5.0 / 3.0) * r - 5.0) * r + 4.0 - 2.0 / (3.0 * r)
    return np.where(r <= 1.0, inner, np.where(r < 2.0, outer, 0.0))


def great_circle_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance (km) of a chord length on the unit sphere."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


@dataclass(frozen=True)
class Neighbourhoods:
    """The observed cells near every column, for one observation pattern (nearest first).

    Attributes
    ----------
    idx : ndarray of int (ncol, m)
        Column index of each local observation; padding repeats the column itself.
    dist : ndarray (ncol, m)
        Great-circle distance, km (``inf`` for padding).
    rho : ndarray (ncol, m)
        Gaspari-Cohn weight ``GC(dist / (radius_km / 2))`` (1 for the own cell when ``radius_km == 0``),
        0 for padding.
    use : ndarray of bool (ncol, m)
        True for a real local observation with a weight > 0.
    radius_km : float
        The localization radius the neighbourhoods were made for.
    pair_table : PairTable or None
        The Gaspari-Cohn weights between the used observations (:func:`observation_pair_weights`), made
        at its first call and kept with the neighbourhoods (the host caches them per observation pattern).
    """

    idx: np.ndarray
    dist: np.ndarray
    rho: np.ndarray
    use: np.ndarray
    radius_km: float
    pair_table: PairTable | None = field(default=None, repr=False, compare=False)

    @property
    def m(self) -> int:
        """Width of the neighbourhood arrays (the largest number of local observations, >= 1)."""
        return int(self.idx.shape[1])


def observed_neighbourhoods(
    xyz: np.ndarray,
    valid: np.ndarray,
    radius_km: float,
    max_obs: int | None = None,
    *,
    rows: np.ndarray | None = None,
    order: np.ndarray | None = None,
) -> Neighbourhoods:
    """Every column's usable observations within ``radius_km``, nearest first (scipy ``cKDTree``).

    The search runs over the *observed* cells only, so the whole radius is reached whatever the
    coverage: every valid observation closer than ``radius_km`` is kept, unless a column has more than
    ``max_obs`` of them (then the ``max_obs`` nearest). Observations at the same distance are ordered
    (and, at the ``max_obs`` cut, chosen) by ``order``, so a column's neighbourhood does not depend on
    which other columns the arrays hold: a block of columns with its halo finds exactly the
    neighbourhoods the whole domain finds for them.

    Parameters
    ----------
    xyz : ndarray (ncol, 3)
        Columns on the unit sphere (:func:`unit_xyz`).
    valid : ndarray of bool (ncol,)
        Columns that hold a usable observation.
    radius_km : float
        Localization radius (Gaspari-Cohn weight 0 there); 0 = own cell only.
    max_obs : int or None
        At most this many observations per column (None: no limit).
    rows : ndarray of bool (ncol,), optional
        The columns that get a neighbourhood (e.g. a block's own columns, not its halo); the others get
        none (no observation). Default: all.
    order : ndarray of int (ncol,), optional
        Tie-break key of every column (its global index); default ``arange(ncol)``.

    Returns
    -------
    Neighbourhoods
        Width ``m``: the largest number of observations of a row (at most ``max_obs``; at least 1);
        :func:`pad_neighbourhoods` widens it (e.g. to the largest width over all blocks).
    """
    valid = np.asarray(valid, dtype=bool)
    ncol = valid.size
    rows = np.ones(ncol, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    order = np.arange(ncol) if order is None else np.asarray(order)
    own = np.arange(ncol)[:, None]
    if radius_km <= 0:
        use = (valid & rows)[:, None]
        return Neighbourhoods(own, np.zeros((ncol, 1)), use.astype(float), use.copy(), 0.0)
    obs_idx = np.flatnonzero(valid)
    q = np.flatnonzero(rows)
    chord = 2.0 * np.sin(min(radius_km / EARTH_RADIUS_KM, np.pi) / 2.0) * (1 + 1e-12)
    m, counts, tree = 0, np.zeros(q.size, dtype=np.int64), None
    if obs_idx.size and q.size:
        from scipy.spatial import cKDTree

        tree = cKDTree(xyz[obs_idx])
        counts = np.asarray(tree.query_ball_point(xyz[q], r=chord, return_length=True), dtype=np.int64)
        m = int(counts.max())
        if max_obs is not None:
            m = min(m, int(max_obs))
    if m == 0:  # no observation within reach of any row
        return Neighbourhoods(
            own, np.full((ncol, 1), np.inf), np.zeros((ncol, 1)), np.zeros((ncol, 1), bool), radius_km
        )
    dchord, ii = tree.query(xyz[q], k=m, distance_upper_bound=chord)
    dchord, ii = dchord.reshape(q.size, m), ii.reshape(q.size, m)
    _canonical_ties(tree, xyz[q], dchord, ii, counts > m, order[obs_idx])
    pad = ii >= obs_idx.size
    idx = np.repeat(own, m, axis=1)
    idx[q] = np.where(pad, q[:, None], obs_idx[np.minimum(ii, obs_idx.size - 1)])
    dist = np.full((ncol, m), np.inf)
    dist[q] = np.where(pad, np.inf, great_circle_km(np.where(pad, 0.0, dchord)))
    near = np.isfinite(dist)
    rho = np.where(near, gaspari_cohn(np.where(near, dist, 0.0) / (radius_km / 2.0)), 0.0)
    return Neighbourhoods(idx, dist, rho, near & (rho > 0), float(radius_km))


def _canonical_ties(tree, points, dchord, ii, truncated, key) -> None:
    """Order every row's observations by (distance, ``key``) in place, and where a row was cut at its
    width while observations at the cut distance were left out, choose the cut ones by ``key`` too.

    The distances are the tree's (the same bits for a pair of points whatever else the tree holds); only
    which of several observations at exactly the same distance the tree returns depends on the tree.
    """
    m = ii.shape[1]
    nobs = key.size
    for r in np.flatnonzero(truncated):  # rare: more observations within reach than the width
        d_cut = dchord[r, m - 1]
        k = int(tree.query_ball_point(points[r], r=d_cut * (1 + 1e-9), return_length=True))
        if k > m:  # observations as near as the last kept one: take every candidate, choose by key
            dd, jj = tree.query(points[r], k=k)
            best = np.lexsort((key[jj], dd))[:m]
            dchord[r], ii[r] = dd[best], jj[best]
    keys = np.where(ii < nobs, key[np.minimum(ii, nobs - 1)], np.iinfo(np.int64).max)
    perm = np.lexsort((keys, dchord), axis=1)
    dchord[:] = np.take_along_axis(dchord, perm, axis=1)
    ii[:] = np.take_along_axis(ii, perm, axis=1)


def pad_neighbourhoods(nb: Neighbourhoods, m: int) -> Neighbourhoods:
    """``nb`` widened to ``m`` entries per column (padding: the column itself, no observation); the same
    neighbourhoods a search of width ``m`` finds. ``nb`` itself when it is already that wide."""
    if m <= nb.m:
        return nb
    ncol, extra = nb.idx.shape[0], m - nb.m
    return Neighbourhoods(
        np.concatenate([nb.idx, np.repeat(np.arange(ncol)[:, None], extra, axis=1)], axis=1),
        np.concatenate([nb.dist, np.full((ncol, extra), np.inf)], axis=1),
        np.concatenate([nb.rho, np.zeros((ncol, extra))], axis=1),
        np.concatenate([nb.use, np.zeros((ncol, extra), bool)], axis=1),
        nb.radius_km,
    )


PAIR_TABLE_ELEMENTS = 8_000_000  # stored pair weights (incl. diagonal) of a pattern: ~8 bytes each, 64 MB
PAIR_BLOCK_ELEMENTS = 4_000_000  # dense (k + 1)^2 float32 block of one chunk's k observations: 16 MB


@dataclass(frozen=True)
class PairTable:
    """Gaspari-Cohn weights between the distinct used observations of one observation pattern.

    Attributes
    ----------
    row : ndarray of int (ncol,)
        Row of each column's observation in ``weights``; -1 for a column that no neighbourhood uses.
    weights : scipy.sparse.csr_array (nobs, nobs) of float32, or None
        Symmetric weights of the pairs closer than the radius (1 on the diagonal, absent = 0); None when
        they would exceed :data:`PAIR_TABLE_ELEMENTS` (the weights are then evaluated per chunk).
    """

    row: np.ndarray
    weights: csr_array | None


def observation_pair_weights(
    xyz: np.ndarray, nb: Neighbourhoods, rows: slice | np.ndarray, width: int | None = None
) -> np.ndarray:
    """Gaspari-Cohn weights between the local observations of the columns ``rows``: (nc, w, w) float32.

    Used for the B-localization of the observation-space covariance in the point EnKF. A pair's weight
    depends only on its two observations: they are evaluated once per observation pattern for the pairs
    closer than the radius (:class:`PairTable`, kept in ``nb.pair_table``) and gathered here through a
    dense block of the chunk's distinct observations. When the table or the block would exceed
    :data:`PAIR_TABLE_ELEMENTS` / :data:`PAIR_BLOCK_ELEMENTS`, the weights of the chunk are evaluated
    directly (:func:`_pair_weights`), with the same arithmetic (the same bits). Entries where either
    observation is unused (``nb.use`` False) are 0, so the solve needs no other mask. Float32: 1e-7
    relative is far below the accuracy of a localization function.

    Parameters
    ----------
    xyz : ndarray (ncol, 3)
        Columns on the unit sphere (:func:`unit_xyz`).
    nb : Neighbourhoods
        The observed neighbourhoods (its ``pair_table`` is set at the first call).
    rows : slice or ndarray of int
        The columns of the chunk.
    width : int, optional
        Only the first ``w = width`` local observations of each column (default: all ``m``); the solve
        passes the chunk's last used position + 1.
    """
    if nb.m == 1 or nb.radius_km <= 0:  # the own observation (or a single one) only: weight 1
        u = nb.use[rows, :width]
        return (u[:, :, None] & u[:, None, :]).astype(np.float32)
    if nb.pair_table is None:
        object.__setattr__(nb, "pair_table", _pair_table(xyz, nb))
    out = None if nb.pair_table.weights is None else _gather_block(nb.pair_table, nb, rows, width)
    return _pair_weights(xyz, nb, rows, width) if out is None else out


def _pair_table(xyz: np.ndarray, nb: Neighbourhoods) -> PairTable:
    """The :class:`PairTable` of ``nb``: pairs from a ``cKDTree`` of the distinct used observations.

    Two observations of one column are at most twice its farthest used observation apart (triangle
    inequality), so the pair search stops at ``min(radius, 2 x that distance)`` (slightly widened).
    """
    from scipy.sparse import csr_array
    from scipy.spatial import cKDTree

    obs = np.unique(nb.idx[nb.use])  # distinct used observation columns, sorted
    row = np.full(nb.idx.shape[0], -1, dtype=np.int64)
    row[obs] = np.arange(obs.size)
    if obs.size == 0:
        return PairTable(row, csr_array((0, 0), dtype=np.float32))
    reach_km = min(nb.radius_km, 2.0 * float(np.max(nb.dist[nb.use])))
    chord = 2.0 * np.sin(min(reach_km / EARTH_RADIUS_KM, np.pi) / 2.0) * (1 + 1e-9)
    tree = cKDTree(xyz[obs])
    if tree.count_neighbors(tree, chord) > PAIR_TABLE_ELEMENTS:  # ordered pairs incl. (i, i) = the nnz
        return PairTable(row, None)
    ij = tree.query_pairs(chord, output_type="ndarray")  # (npair, 2), i < j
    w = _chord_weight(xyz[obs[ij[:, 0]]], xyz[obs[ij[:, 1]]], nb.radius_km)
    keep = w > 0
    i, j, d = ij[keep, 0], ij[keep, 1], np.arange(obs.size)
    data = np.concatenate([w[keep], w[keep], np.ones(obs.size, dtype=np.float32)])
    ri, ci = np.concatenate([i, j, d]), np.concatenate([j, i, d])
    return PairTable(row, csr_array((data, (ri, ci)), shape=(obs.size, obs.size)))


def _gather_block(
    table: PairTable, nb: Neighbourhoods, rows: slice | np.ndarray, width: int | None = None
) -> np.ndarray | None:
    """Pair weights (nc, w, w) of the columns ``rows`` from ``table``; None if their block is too large.

    The chunk's ``k`` distinct used observations get a dense (k + 1, k + 1) block of ``table.weights``
    whose last row and column are 0: unused entries point there.
    """
    u = nb.use[rows, :width]
    r = np.where(u, table.row[nb.idx[rows, :width]], -1)
    obs = np.unique(r[u])  # the chunk's observations (rows of the table), sorted
    k = obs.size
    if (k + 1) ** 2 > PAIR_BLOCK_ELEMENTS:
        return None
    block = np.zeros((k + 1, k + 1), dtype=np.float32)
    if k:
        block[:k, :k] = table.weights[obs][:, obs].toarray()
    q = np.where(u, np.searchsorted(obs, r), k).astype(np.intp)
    flat = (q * (k + 1))[:, :, None] + q[:, None, :]  # block[q[:, :, None], q[:, None, :]], flat (faster)
    return np.take(block.ravel(), flat, mode="clip")  # all in range: "clip" skips the bounds check


def _pair_weights(
    xyz: np.ndarray, nb: Neighbourhoods, rows: slice | np.ndarray, width: int | None = None
) -> np.ndarray:
    """Pair weights of the columns ``rows`` (first ``width`` observations) evaluated directly: (nc, w, w)
    float32, 0 where unused.

    The fallback of :func:`observation_pair_weights`. A batched ``matmul`` of the unit vectors finds the
    candidate pairs (generously: a pair just beyond the radius gets weight 0); the weight itself is
    evaluated, as in the table, by :func:`_chord_weight` for the pairs the solve uses (both observations
    in use, on or above the diagonal; mirrored below it; 1 on the diagonal).
    """
    q = xyz[nb.idx[rows, :width]]
    dot = np.matmul(q, q.transpose(0, 2, 1))
    use = nb.use[rows, :width]
    m = dot.shape[1]
    reach = 2.0 * np.sin(min(nb.radius_km / EARTH_RADIUS_KM, np.pi) / 2.0)
    near = dot >= 1.0 - 0.5 * reach**2 - 1e-9  # generous: a pair just beyond the radius gets 0 below
    sel = near & use[:, :, None] & use[:, None, :] & np.triu(np.ones((m, m), dtype=bool), 1)[None]
    c, a, b = np.nonzero(sel)
    out = np.zeros(dot.shape, dtype=np.float32)
    out[c, a, b] = _chord_weight(q[c, a], q[c, b], nb.radius_km)
    out += out.transpose(0, 2, 1).copy()
    col, pos = np.nonzero(use)
    out[col, pos, pos] = 1.0
    return out


def _chord_weight(a: np.ndarray, b: np.ndarray, radius_km: float) -> np.ndarray:
    """Gaspari-Cohn weight (float32, >= 0) of point pairs ``a``, ``b`` (n, 3) on the unit sphere.

    The chord ``|a - b|`` (the same bits for ``b``, ``a``) -> great-circle km -> ``GC(d / (radius_km / 2))``,
    clipped at 0 (the polynomial's round-off just inside the radius is about -2e-16).
    """
    d = a - b
    chord = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
    w = gaspari_cohn(great_circle_km(chord) / (radius_km / 2.0))
    return np.maximum(w, 0.0).astype(np.float32)
