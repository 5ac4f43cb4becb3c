"""The column-wise filters as methods: :class:`PointEnKF` (perturbed observations) and :class:`PointLETKF`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.column_ops import increment_stats
from landimg.da.inflation import check_inflation
from landimg.da.point_enkf import point_enkf_increments
from landimg.da.point_letkf import point_letkf_increments
from landimg.da.protocol import AnalysisContext, Diagnostics
from landimg.parallel import MemberLayout

__all__ = ["PointEnKF", "PointLETKF"]


def _column_analysis(
    method, background, obs, obs_std, obs_mask, context, rngs
) -> tuple[np.ndarray, Diagnostics]:
    """Shared ``analyze`` of the point filters: update mask (with ``nlev_update``), the update, diagnostics."""
    g, lay, h = context.geometry, context.layout, np.asarray(context.h, dtype=np.float64)
    theta = np.asarray(background, dtype=np.float64)
    ok = context.update_mask
    ok = np.ones(theta.shape, dtype=bool) if ok is None else np.array(ok, dtype=bool)
    if method.nlev_update is not None:
        ok[method.nlev_update :] = False
    mask = None if obs_mask is None else np.asarray(obs_mask, dtype=bool)
    dtheta, diag = method.update(
        theta, h, np.asarray(obs, dtype=np.float64), obs_std, lat=g.lat, lon=g.lon, obs_mask=mask,
        update_mask=ok, layout=lay, rngs=rngs, seed=context.seed,
    )  # fmt: skip
    mean, rms = increment_stats(np.einsum("l,lcm->mc", h, dtheta), lay)
    return dtheta, Diagnostics(
        method=type(method).__name__, n_obs=diag["n_obs"], n_nan_masked=diag["n_nan_masked"],
        increment_mean=mean, increment_rms=rms, inflation=diag.get("inflation"),
        inflation_lambda=diag.get("inflation_lambda"), mean_gain_top=diag.get("mean_gain_top"),
    )  # fmt: skip


@dataclass(frozen=True)
class PointEnKF:
    """Column-wise EnKF with perturbed observations (the classic land DA baseline).

    Attributes
    ----------
    radius_km : float
        Gaspari-Cohn localization radius (weight 0 at this distance; default 500 km); 0 = own cell only.
    max_obs : int
        At most this many (nearest) observations per column.
    inflation : float
        Multiplicative anomaly inflation; the lower bound in adaptive mode.
    inflation_mode : {"fixed", "adaptive"}
        ``"adaptive"`` (default): the anomaly factor is estimated per analysis from the innovations over all usable
        observations (see :class:`CurveletEnKF`), clipped to ``[inflation, inflation_max]``.
    inflation_max : float
        Upper bound of the adaptive anomaly factor.
    perturb_obs : bool
        Perturbed observations (True) or the deterministic variant (False, tests).
    obs_depth : (float, float)
        Observed layer, m.
    nlev_update : int or None
        Update only the top ``nlev_update`` layers (None: all layers; cross-layer covariances carry
        the information down).
    snow_threshold : float
        Columns with more snow water than this (kg/m2) are not updated.
    """

    radius_km: float = 500.0
    max_obs: int = 64
    inflation: float = 1.0
    inflation_mode: str = "adaptive"
    inflation_max: float = 2.0
    perturb_obs: bool = True
    obs_depth: tuple[float, float] = (0.0, 0.05)
    nlev_update: int | None = None
    snow_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.radius_km < 0:
            raise ValueError(f"radius_km must be >= 0, got {self.radius_km}")
        check_inflation(self.inflation, self.inflation_mode, self.inflation_max)

    def update(
        self,
        state: np.ndarray,
        h: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        *,
        lat: np.ndarray | None = None,
        lon: np.ndarray | None = None,
        obs_mask: np.ndarray | None = None,
        update_mask: np.ndarray | None = None,
        layout: MemberLayout | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Increments of ``state`` (nlev, ncol, nloc) and diagnostics; see :func:`point_enkf_increments`."""
        return point_enkf_increments(
            state, h, obs, obs_std, lat=lat, lon=lon, radius_km=self.radius_km, max_obs=self.max_obs,
            seed=seed, rngs=rngs, perturb_obs=self.perturb_obs, inflation=self.inflation,
            inflation_mode=self.inflation_mode, inflation_max=self.inflation_max,
            obs_mask=obs_mask, update_mask=update_mask, layout=layout,
        )  # fmt: skip

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray, Diagnostics]:
        """Increments of the layer state (nlev, ncol, nloc) from per-column observations (ncol,) of the
        ``obs_depth`` layer (``context.h``); see :mod:`landimg.da.protocol`."""
        return _column_analysis(self, background, obs, obs_std, obs_mask, context, context.rngs)


@dataclass(frozen=True)
class PointLETKF:
    """Column-wise LETKF (Hunt et al. 2007): deterministic square-root local analysis per column.

    Attributes
    ----------
    radius_km : float
        Gaspari-Cohn R-localization radius (weight 0 at this distance; default 500 km); 0 = own cell only.
    max_obs : int
        At most this many (nearest) observations per column.
    inflation : float
        Multiplicative anomaly inflation (prior variance times ``inflation**2``).
    obs_depth : (float, float)
        Observed layer, m.
    nlev_update : int or None
        Update only the top ``nlev_update`` layers (None: all).
    snow_threshold : float
        Columns with more snow water than this (kg/m2) are not updated.
    """

    radius_km: float = 500.0
    max_obs: int = 64
    inflation: float = 1.0
    obs_depth: tuple[float, float] = (0.0, 0.05)
    nlev_update: int | None = None
    snow_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.radius_km < 0:
            raise ValueError(f"radius_km must be >= 0, got {self.radius_km}")
        if not self.inflation > 0:
            raise ValueError(f"inflation must be > 0, got {self.inflation}")

    def update(
        self,
        state: np.ndarray,
        h: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        *,
        lat: np.ndarray | None = None,
        lon: np.ndarray | None = None,
        obs_mask: np.ndarray | None = None,
        update_mask: np.ndarray | None = None,
        layout: MemberLayout | None = None,
        **_: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Increments of ``state`` (nlev, ncol, nloc) and diagnostics; see :func:`point_letkf_increments`."""
        return point_letkf_increments(
            state, h, obs, obs_std, lat=lat, lon=lon, radius_km=self.radius_km, max_obs=self.max_obs,
            inflation=self.inflation, obs_mask=obs_mask, update_mask=update_mask, layout=layout,
        )  # fmt: skip

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray, Diagnostics]:
        """Increments of the layer state (nlev, ncol, nloc) from per-column observations (ncol,) of the
        ``obs_depth`` layer (``context.h``); see :mod:`landimg.da.protocol`."""
        return _column_analysis(self, background, obs, obs_std, obs_mask, context, None)
