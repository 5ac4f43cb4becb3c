"""Analysis methods: open loop, curvelet-space EnKF and the column-wise (point) EnKF / LETKF.

Each method is a frozen dataclass of typed hyper-parameters (declared once, with their defaults and docs)
with ``analyze(background, obs, obs_std, obs_mask, context) -> (increments, Diagnostics)`` on arrays
(:mod:`landimg.da.protocol`); the host (e.g. :class:`landimg.Ensemble`) builds the context, applies the
increments and books the water. The maths is in docs/method.md; the functional cores are
:func:`curvelet_enkf` / :func:`curvelet_analysis`, :func:`point_enkf_increments` and
:func:`point_letkf_increments`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landimg.da.curvelet_enkf import curvelet_analysis, curvelet_enkf
from landimg.da.curvelet_method import CurveletEnKF
from landimg.da.curvelet_stats import CoefficientStats, Transform
from landimg.da.inflation import INFLATION_MODES, smoothed_inflation
from landimg.da.localization import Neighbourhoods, gaspari_cohn, observed_neighbourhoods
from landimg.da.point_common import apply_bounded
from landimg.da.point_enkf import point_enkf_increments
from landimg.da.point_letkf import point_letkf_increments
from landimg.da.point_methods import PointEnKF, PointLETKF
from landimg.da.protocol import (
    AnalysisCache,
    AnalysisContext,
    Diagnostics,
    Distribution,
    Geometry,
    Method,
    Need,
    ObsError,
    TransformCache,
)

__all__ = [
    "INFLATION_MODES",
    "AnalysisCache",
    "AnalysisContext",
    "CoefficientStats",
    "CurveletEnKF",
    "Diagnostics",
    "Distribution",
    "Geometry",
    "Method",
    "Need",
    "Neighbourhoods",
    "ObsError",
    "OpenLoop",
    "PointEnKF",
    "PointLETKF",
    "Transform",
    "TransformCache",
    "apply_bounded",
    "curvelet_analysis",
    "curvelet_enkf",
    "gaspari_cohn",
    "observed_neighbourhoods",
    "point_enkf_increments",
    "point_letkf_increments",
    "smoothed_inflation",
]


@dataclass(frozen=True)
class OpenLoop:
    """No analysis: the reference run (members keep their background).

    Attributes
    ----------
    obs_depth : (float, float)
        Observed layer, m (only to count the observations).
    snow_threshold : float
        Unused (the open loop updates nothing); part of the method protocol.
    """

    obs_depth: tuple[float, float] = (0.0, 0.05)
    snow_threshold: float = 1.0

    @property
    def need(self) -> Need:
        """Nothing to redistribute: the open loop analyses nothing."""
        return Need(Distribution.NONE)

    def assumed_obs_error(self, declared: ObsError) -> ObsError:
        """The declared error (unused)."""
        return declared

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_error: ObsError | float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[None, Diagnostics]:
        """No increments (None: the state stays as it is); counts the finite and NaN observations of the
        owned columns (``context.owned``) of every column block (``context.layout.column_sum``)."""
        obs = np.asarray(obs, dtype=np.float64)[context.owned_mask(np.shape(obs)[0])]
        counts = np.stack([np.isfinite(obs), np.isnan(obs)]).astype(np.float64)
        n_obs, n_nan = context.layout.column_sum(counts)
        return None, Diagnostics(method="OpenLoop", n_obs=int(n_obs), n_nan_masked=int(n_nan))
