"""Localization: Gaspari-Cohn weights and the observed neighbours of every column on the sphere."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "EARTH_RADIUS_KM",
    "Neighbourhoods",
    "gaspari_cohn",
    "great_circle_km",
    "observation_pair_weights",
    "observed_neighbourhoods",
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


def unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (..., 3) of latitudes and longitudes in degrees."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


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
    """

    idx: np.ndarray
    dist: np.ndarray
    rho: np.ndarray
    use: np.ndarray
    radius_km: float
    pair_weights: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def m(self) -> int:
        """Width of the neighbourhood arrays (the largest number of local observations, >= 1)."""
        return int(self.idx.shape[1])


def observed_neighbourhoods(
    xyz: np.ndarray, valid: np.ndarray, radius_km: float, max_obs: int | None = None
) -> Neighbourhoods:
    """Every column's usable observations within ``radius_km``, nearest first (scipy ``cKDTree``).

    The search runs over the *observed* cells only, so the whole radius is reached whatever the
    coverage: every valid observation closer than ``radius_km`` is kept, unless a column has more than
    ``max_obs`` of them (then the ``max_obs`` nearest). Ties in distance are broken by the tree, the same
    way on every rank (identical inputs).

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
    """
    valid = np.asarray(valid, dtype=bool)
    ncol = valid.size
    own = np.arange(ncol)[:, None]
    if radius_km <= 0:
        return Neighbourhoods(
            own, np.zeros((ncol, 1)), valid[:, None].astype(float), valid[:, None].copy(), 0.0
        )
    obs_idx = np.flatnonzero(valid)
    chord = 2.0 * np.sin(min(radius_km / EARTH_RADIUS_KM, np.pi) / 2.0) * (1 + 1e-12)
    m = 0
    if obs_idx.size:
        from scipy.spatial import cKDTree

        tree = cKDTree(xyz[obs_idx])
        m = int(np.max(tree.query_ball_point(xyz, r=chord, return_length=True)))
        if max_obs is not None:
            m = min(m, int(max_obs))
    if m == 0:  # no observation within reach of any column
        return Neighbourhoods(
            own, np.full((ncol, 1), np.inf), np.zeros((ncol, 1)), np.zeros((ncol, 1), bool), radius_km
        )
    dchord, ii = tree.query(xyz, k=m, distance_upper_bound=chord)
    dchord, ii = dchord.reshape(ncol, m), ii.reshape(ncol, m)
    pad = ii >= obs_idx.size
    idx = np.where(pad, own, obs_idx[np.minimum(ii, obs_idx.size - 1)])
    dist = np.where(pad, np.inf, great_circle_km(np.where(pad, 0.0, dchord)))
    rho = np.where(pad, 0.0, gaspari_cohn(np.where(pad, 0.0, dist) / (radius_km / 2.0)))
    return Neighbourhoods(idx, dist, rho, ~pad & (rho > 0), float(radius_km))


PAIR_CACHE_ELEMENTS = 64_000_000  # keep the (ncol, m, m) float32 pair weights of a pattern up to 256 MB


def observation_pair_weights(xyz: np.ndarray, nb: Neighbourhoods, rows: slice) -> np.ndarray:
    """Gaspari-Cohn weights between the local observations of the columns ``rows``: (nc, m, m).

    Used for the B-localization of the observation-space covariance in the point EnKF. They depend only
    on the observation pattern: kept in ``nb`` (computed once for all columns) when ``ncol m^2`` is at most
    :data:`PAIR_CACHE_ELEMENTS`, else computed for the requested columns at every call. Stored as float32
    (either way, so cached and uncached analyses agree bit for bit): 1e-7 relative is far below the
    accuracy of a localization function.
    """
    if nb.m == 1 or nb.radius_km <= 0:
        return np.ones((nb.idx[rows].shape[0], nb.m, nb.m), dtype=np.float32)
    if nb.pair_weights is not None:
        return nb.pair_weights[rows]
    if nb.idx.shape[0] * nb.m * nb.m <= PAIR_CACHE_ELEMENTS:
        object.__setattr__(nb, "pair_weights", _pair_weights(xyz, nb, slice(None)))
        return nb.pair_weights[rows]
    return _pair_weights(xyz, nb, rows)


def _pair_weights(xyz: np.ndarray, nb: Neighbourhoods, rows: slice) -> np.ndarray:
    """Pair weights of the columns ``rows``: (nc, m, m) float32, 0 wherever the solve ignores them.

    The dot products come from one batched ``matmul`` (the arithmetic the filter has always used; it
    returns A A^T exactly symmetric), but the chord, arcsine and Gaspari-Cohn polynomial are evaluated
    only for the pairs the solve uses: both observations in use (``nb.use``), within the radius (beyond
    it the weight is exactly 0) and on or above the diagonal (the lower triangle is mirrored).
    Elementwise numpy arithmetic on a subset gives the same bits as on the whole array, so the weights the
    solve reads are those of the full evaluation (``tests/test_localization_pairs.py``); the others are 0
    (they are multiplied by 0 there).
    """
    q = xyz[nb.idx[rows]]
    dot = np.matmul(q, q.transpose(0, 2, 1))
    use = nb.use[rows]
    m = dot.shape[1]
    reach = 2.0 * np.sin(min(nb.radius_km / EARTH_RADIUS_KM, np.pi) / 2.0)
    near = dot >= 1.0 - 0.5 * reach**2 - 1e-9  # generous: a pair just beyond the radius gets 0 below
    sel = near & use[:, :, None] & use[:, None, :] & np.triu(np.ones((m, m), dtype=bool), 1)[None]
    out = np.zeros(dot.shape, dtype=np.float32)
    out[sel] = _weight(dot[sel], nb.radius_km)
    out += out.transpose(0, 2, 1).copy()
    col, pos = np.nonzero(use)
    out[col, pos, pos] = _weight(dot[col, pos, pos], nb.radius_km)
    return out


def _weight(dot: np.ndarray, radius_km: float) -> np.ndarray:
    """Gaspari-Cohn weight (float32) of unit-vector dot products, as the filter has always computed it."""
    chord = np.sqrt(np.clip(2.0 - 2.0 * dot, 0.0, 4.0))
    return gaspari_cohn(great_circle_km(chord) / (radius_km / 2.0)).astype(np.float32)
