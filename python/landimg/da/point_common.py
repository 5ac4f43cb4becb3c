"""What the two column-wise filters (:mod:`point_enkf`, :mod:`point_letkf`) share: input checks, usable
observations, the observed neighbourhoods of every column with their Gaspari-Cohn weights, and masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.localization import Neighbourhoods, observed_neighbourhoods, unit_xyz
from landimg.layout import Layout
from landimg.parallel import SerialComm

__all__ = ["apply_bounded", "gather_members", "neighbourhoods"]

_log = logging.getLogger("landimg.analysis")


def apply_bounded(
    theta: np.ndarray, dtheta: np.ndarray, theta_s: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Apply increments keeping 0 <= theta <= theta_s (array-only stand-in for ``add_soil_water``).

    Returns ``(applied, clipped)`` with ``applied + clipped == dtheta`` (same shape as ``theta``).
    """
    new = np.clip(theta + dtheta, 0.0, np.broadcast_to(theta_s, theta.shape))
    applied = new - theta
    return applied, dtheta - applied


def apply_update_mask(dstate: np.ndarray, update_mask: np.ndarray | None) -> np.ndarray:
    """Zero the increments (nlev, ncol, nloc) where ``update_mask`` is False.

    ``update_mask``: bool (ncol, nloc) or (nlev, ncol, nloc), or None (no masking).
    """
    if update_mask is None:
        return dstate
    nlev, ncol, nloc = dstate.shape
    um = np.asarray(update_mask, dtype=bool)
    if um.shape == (ncol, nloc):
        um = um[None]
    if um.shape not in ((1, ncol, nloc), (nlev, ncol, nloc)):
        raise ValueError(f"update_mask must be (ncol, nloc) or (nlev, ncol, nloc), got {um.shape}")
    dstate *= um
    return dstate


def _column_inputs(
    state: np.ndarray, h: np.ndarray, obs: np.ndarray, obs_std: float | np.ndarray, *, zero_std_ok: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 (state (nlev, ncol, nloc), h (nlev,), obs (ncol,), obs_std broadcast to (ncol,))."""
    state = np.asarray(state, dtype=np.float64)
    if state.ndim != 3:
        raise ValueError(f"state must be (nlev, ncol, nloc), got shape {state.shape}")
    nlev, ncol, _ = state.shape
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (nlev,):
        raise ValueError(f"h must have shape ({nlev},), got {h.shape}")
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != (ncol,):
        raise ValueError(f"obs has shape {obs.shape}, expected ({ncol},)")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 1) or (std.ndim == 1 and std.shape != (ncol,)):
        raise ValueError(f"obs_std must be a scalar or shape ({ncol},), got {std.shape}")
    if zero_std_ok and (np.any(std < 0) or np.any(np.isnan(std))):
        raise ValueError("obs_std must be >= 0 and not NaN")
    if not zero_std_ok and (np.any(std <= 0) or np.any(np.isnan(std))):
        raise ValueError("obs_std must be > 0 and not NaN for the LETKF")
    return state, h, obs, np.broadcast_to(std, (ncol,))


def _usable_observations(
    obs: np.ndarray, std: np.ndarray, obs_mask: np.ndarray | None, who: str
) -> tuple[np.ndarray, int]:
    """(bool (ncol,) usable observations, number of NaN observations masked), logging the latter."""
    ncol = obs.shape[0]
    valid = np.isfinite(obs) & np.isfinite(std)
    nan_obs = np.isnan(obs)
    if obs_mask is not None:
        obs_mask = np.asarray(obs_mask, dtype=bool)
        if obs_mask.shape != (ncol,):
            raise ValueError(f"obs_mask has shape {obs_mask.shape}, expected ({ncol},)")
        valid &= obs_mask
        nan_obs &= obs_mask
    n_nan = int(np.count_nonzero(nan_obs))
    if n_nan:
        _log.info("%s: %d NaN observations masked", who, n_nan)
    return valid, n_nan


@dataclass
class ColumnProblem:
    """Checked inputs of a column-wise analysis."""

    state: np.ndarray  # (nlev, ncol, nloc)
    h: np.ndarray  # (nlev,)
    obs: np.ndarray  # (ncol,)
    std: np.ndarray  # (ncol,)
    valid: np.ndarray  # (ncol,) usable observations
    layout: Layout
    diag: dict[str, Any]


def column_problem(
    state, h, obs, obs_std, *, obs_mask, layout, radius_km, lat, lon, zero_std_ok: bool, who: str
) -> ColumnProblem:
    """Validate the inputs of a column-wise filter named ``who``; ``diag`` holds ``n_obs``/``n_nan_masked``."""
    state, h, obs, std = _column_inputs(state, h, obs, obs_std, zero_std_ok=zero_std_ok)
    nloc = state.shape[2]
    if layout is None:
        layout = Layout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"state holds {nloc} members, the layout expects nloc={layout.nloc}")
    if layout.nmem < 2:
        raise ValueError(f"the {who} needs at least 2 members")
    if radius_km > 0 and (lat is None or lon is None):
        raise ValueError("lat and lon are needed when radius_km > 0")
    valid, n_nan = _usable_observations(obs, std, obs_mask, who.replace(" ", "_").lower())
    return ColumnProblem(
        state, h, obs, std, valid, layout, {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}
    )


def neighbourhoods(
    valid: np.ndarray,
    lat: np.ndarray | None,
    lon: np.ndarray | None,
    radius_km: float,
    max_obs: int | None,
    given: Neighbourhoods | None = None,
) -> tuple[Neighbourhoods, np.ndarray | None]:
    """The observed neighbourhoods (``given`` if it matches, e.g. from a cache) and the columns' xyz."""
    ncol = valid.shape[0]
    xyz = (
        None
        if radius_km <= 0
        else unit_xyz(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    )
    if given is not None:
        if given.idx.shape[0] != ncol or given.radius_km != (radius_km if radius_km > 0 else 0.0):
            raise ValueError(f"neighbourhoods were made for another grid or radius ({given.radius_km} km)")
        return given, xyz
    if radius_km <= 0:
        return observed_neighbourhoods(np.zeros((ncol, 3)), valid, 0.0, max_obs), xyz
    return observed_neighbourhoods(xyz, valid, radius_km, max_obs), xyz


def gather_members(state: np.ndarray, layout: Layout) -> np.ndarray:
    """All members' state (nlev, ncol, N) on every rank, in member order."""
    return np.moveaxis(layout.allgather_members(np.moveaxis(state, 2, 0)), 0, 2)
