"""The checked inputs of one curvelet analysis on the transform domain (:class:`Problem`).

:func:`image_problem` validates the arrays of :func:`landimg.da.curvelet_enkf.curvelet_analysis` (one-line
errors naming the argument), takes the observation error the settings assume, and finds what every later
step works on: the land cells (finite in every member, on every rank), the usable observations, the cells
to update, the member layout and where the image sits in the (padded) transform domain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.curvelet_stats import image_offset, transform_shape
from landimg.da.obs_error import ObsError, declared_image_error, pixel_image
from landimg.layout import Layout
from landimg.parallel import SerialComm

__all__ = ["Problem", "image_problem"]

_log = logging.getLogger("landimg.analysis")


def _check_inputs(background, obs, obs_std, obs_mask, update_mask):
    """Float64 arrays of the right shapes (one-line errors naming the argument)."""
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 3:
        raise ValueError(f"background must be (nmem_local, ny, nx), got shape {background.shape}")
    shape = background.shape[1:]
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != shape:
        raise ValueError(f"obs has shape {obs.shape}, expected the image shape {shape}")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != shape):
        raise ValueError(f"obs_std must be a scalar or an image of shape {shape}, got shape {std.shape}")
    if np.any(std < 0):
        raise ValueError("obs_std must be >= 0 (got negative values)")
    if np.any(np.isnan(std)):
        raise ValueError("obs_std must not be NaN")
    std = np.broadcast_to(std, shape)
    if obs_mask is not None:
        obs_mask = np.asarray(obs_mask, dtype=bool)
        if obs_mask.shape != shape:
            raise ValueError(f"obs_mask has shape {obs_mask.shape}, expected {shape}")
    if update_mask is not None:
        update_mask = np.asarray(update_mask, dtype=bool)
        if update_mask.shape not in (shape, background.shape):
            raise ValueError(
                f"update_mask must have shape {shape} or {background.shape}, got {update_mask.shape}"
            )
    return background, obs, std, obs_mask, update_mask


@dataclass
class Problem:
    """The checked inputs of one analysis on the transform domain."""

    background: np.ndarray  # (nloc, ny, nx)
    obs: np.ndarray  # (ny, nx)
    std: np.ndarray  # (ny, nx)
    valid: np.ndarray  # (ny, nx) usable observations
    land: np.ndarray  # (ny, nx)
    upd: np.ndarray  # (ny, nx) or (nloc, ny, nx): cells updated
    layout: Layout
    tshape: tuple[int, int]
    offset: tuple[int, int]
    error: ObsError  # the assumed observation error, pixel layout (scalar or (ny * nx,) stds)


def image_problem(
    background: Any, obs: Any, obs_std: Any, transform: Any, obs_mask: Any, update_mask: Any, land: Any,
    layout: Layout | None, pad_offset: tuple[int, int] | None, settings: Any,
) -> tuple[Problem, dict[str, Any]]:  # fmt: skip
    """Validated :class:`Problem` (with the error ``settings`` assume) and the diagnostics ``n_obs`` /
    ``n_nan_masked``. The arguments are those of :func:`landimg.da.curvelet_enkf.curvelet_analysis`."""
    shape = np.shape(background)[1:]
    error = settings.assumed_obs_error(declared_image_error(obs_std, shape)) if len(shape) == 2 else None
    background, obs, std, obs_mask, update_mask = _check_inputs(
        background, obs, obs_std if error is None else pixel_image(error.std, shape), obs_mask, update_mask
    )
    nloc, ny, nx = background.shape
    if layout is None:
        layout = Layout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"background holds {nloc} members, the layout expects nloc={layout.nloc}")
    if layout.nmem < 2:
        raise ValueError("the curvelet EnKF needs at least 2 members")
    tshape = transform_shape(transform)
    if tshape[0] < ny or tshape[1] < nx:
        raise ValueError(f"transform shape {tshape} is smaller than the image shape {(ny, nx)}")
    off = image_offset((ny, nx), tshape, pad_offset)
    if land is None:
        land = layout.ordered_sum(~np.isfinite(background)) == 0  # finite in every member, all ranks
    land = np.asarray(land, dtype=bool)
    nan_obs = np.isnan(obs) & land
    valid = land & np.isfinite(obs) & np.isfinite(std)
    if obs_mask is not None:
        valid &= obs_mask
    n_nan = int(np.count_nonzero(nan_obs if obs_mask is None else nan_obs & obs_mask))
    if n_nan:
        _log.info("curvelet_enkf: %d NaN observations on land masked", n_nan)
    upd = land if update_mask is None else land & update_mask
    prob = Problem(background, obs, std, valid, land, upd, layout, tshape, off, error)
    return prob, {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}
