"""Localization: Gaspari-Cohn weights and the neighbours of every column on the sphere."""

from __future__ import annotations

import numpy as np

__all__ = ["EARTH_RADIUS_KM", "gaspari_cohn", "great_circle_km", "local_neighbours", "unit_xyz"]

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


def local_neighbours(
    lat: np.ndarray, lon: np.ndarray, radius_km: float, max_obs: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Columns within ``radius_km`` of every column (itself first), nearest first.

    Parameters
    ----------
    lat, lon : ndarray (ncol,)
        Column coordinates, degrees.
    radius_km : float
        Cut-off (Gaspari-Cohn weight reaches 0 there); 0 = own cell only.
    max_obs : int
        At most this many neighbours (the nearest).

    Returns
    -------
    idx : ndarray of int (ncol, m)
        Neighbour column indices; padded entries repeat the column itself.
    dist : ndarray (ncol, m)
        Great-circle distances, km; ``inf`` for padded entries.
    """
    ncol = lat.size
    if radius_km <= 0:
        return np.arange(ncol)[:, None], np.zeros((ncol, 1))
    from scipy.spatial import cKDTree

    xyz = unit_xyz(lat, lon)
    chord = 2.0 * np.sin(min(radius_km / EARTH_RADIUS_KM, np.pi) / 2.0)
    tree = cKDTree(xyz)
    k = int(min(max_obs, ncol))
    dchord, idx = tree.query(xyz, k=k, distance_upper_bound=chord * (1 + 1e-12))
    dchord, idx = dchord.reshape(ncol, k), idx.reshape(ncol, k)
    pad = idx >= ncol
    idx = np.where(pad, np.arange(ncol)[:, None], idx)
    dist = np.where(pad, np.inf, great_circle_km(np.where(pad, 0.0, dchord)))
    keep = int(np.max(np.sum(~pad, axis=1)))
    return idx[:, :keep], dist[:, :keep]
