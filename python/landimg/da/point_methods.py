"""The column-wise filters as methods: :class:`PointEnKF` (perturbed observations) and :class:`PointLETKF`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.column_ops import increment_stats, inflate_columns, usable_observations
from landimg.da.inflation import InflationSettings
from landimg.da.localization import Neighbourhoods, observed_neighbourhoods, pad_neighbourhoods
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.da.point_enkf import point_enkf_increments
from landimg.da.point_letkf import point_letkf_increments
from landimg.da.protocol import AnalysisContext, Diagnostics, Distribution, Need
from landimg.layout import Layout, column_chunks

__all__ = ["PointEnKF", "PointLETKF"]


def _check(method: Any) -> None:
    if method.radius_km < 0:
        raise ValueError(f"radius_km must be >= 0, got {method.radius_km}")
    if method.max_obs is not None and method.max_obs < 1:
        raise ValueError(f"max_obs must be >= 1 (or None), got {method.max_obs}")
    method.check_inflation_settings()


def _neighbourhoods(method: Any, obs, obs_std, obs_mask, context: AnalysisContext) -> Neighbourhoods:
    """The observed neighbourhoods of the owned columns for this observation pattern (from the host's
    cache when it repeats), as wide as the widest of every column block's (a collective maximum).

    Ties in distance are broken by the global column index, so a block with its halo finds the whole
    domain's neighbourhoods of its columns, and every block has the width of the whole domain's.
    """
    g, cols = context.geometry, context.column_index()
    valid = usable_observations(obs, obs_std, obs_mask)
    own = context.owned_mask(valid.size)
    radius = float(method.radius_km)
    key = (radius, method.max_obs, g.ncol, cols.tobytes(), own.tobytes(), valid.tobytes())
    nb = context.cache.get(
        "neighbourhoods", key,
        lambda: observed_neighbourhoods(g.xyz[cols], valid, radius, method.max_obs, rows=own, order=cols),
    )  # fmt: skip
    width = int(context.layout.column_max(nb.m))  # every rank calls this, cached or not
    if width == nb.m:
        return nb
    return context.cache.get("neighbourhoods", (*key, width), lambda: pad_neighbourhoods(nb, width))


def _chunk_of_columns(context: AnalysisContext) -> np.ndarray:
    """The fixed chunk of the domain (:func:`landimg.layout.column_chunks`) of every column given, (nc,)."""
    return np.searchsorted(column_chunks(context.geometry.ncol), context.column_index(), side="right") - 1


def _column_analysis(
    method, background, obs, obs_error, obs_mask, context, rngs
) -> tuple[np.ndarray, Diagnostics]:
    """Shared ``analyze`` of the point filters: update mask (with ``nlev_update``), inflation of every
    layer, the update on the inflated members, diagnostics."""
    g, lay, h = context.geometry, context.layout, np.asarray(context.h, dtype=np.float64)
    theta = np.asarray(background, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    obs_std = method.assumed_obs_error(as_obs_error(obs_error, obs.shape[0])).std
    ok = context.update_mask
    ok = np.ones(theta.shape, dtype=bool) if ok is None else np.array(ok, dtype=bool)
    if method.nlev_update is not None:
        ok[method.nlev_update :] = False
    mask = None if obs_mask is None else np.asarray(obs_mask, dtype=bool)
    infl, fields = inflate_columns(method, theta, obs, obs_std, mask, ok, context)
    cols, own = context.column_index(), context.owned_mask(obs.shape[0])
    nb = _neighbourhoods(method, obs, obs_std, mask, context)
    dtheta, diag = method.increments(
        infl, h, obs, obs_std, lat=g.column_lat[cols], lon=g.column_lon[cols], obs_mask=mask, update_mask=ok,
        layout=lay, rngs=rngs, seed=context.seed, neighbours=nb, perturbations=context.perturbations,
        window=_chunk_of_columns(context),
    )  # fmt: skip
    if infl is not theta:
        dtheta += (infl - theta) * ok
    mean, rms = increment_stats(np.einsum("l,lcm->mc", h, dtheta)[:, own], lay)
    nan = np.isnan(obs) & (True if mask is None else mask)  # domain counts: the owned columns of every block
    usable = usable_observations(obs, obs_std, mask)
    counts = lay.column_sum(np.stack([usable, nan])[:, own].astype(np.float64))
    gain = diag.get("gain_top")
    return dtheta, Diagnostics(
        method=type(method).__name__, n_obs=int(counts[0]), n_nan_masked=int(counts[1]),
        increment_mean=mean, increment_rms=rms,
        mean_gain_top=None if gain is None else float(lay.column_sum(gain[own])) / g.ncol, **fields,
    )  # fmt: skip


_ANALYZE = """Increments of the layer state (nlev, ncol, nloc) from per-column observations (ncol,) of the
        ``obs_depth`` layer (``context.h``); every layer inflated first (as in every filter), neighbourhoods
        cached by the host while the observation pattern repeats; see :mod:`landimg.da.protocol`."""


@dataclass(frozen=True)
class _ColumnFilter(InflationSettings):
    """Settings shared by the column-wise filters (each filter's docstring lists its own).

    Attributes
    ----------
    radius_km : float
        Gaspari-Cohn localization radius (weight 0 at this distance); 0 = own cell only. Default 500 km
        for the EnKF; 250 km for the LETKF, its best of 125-2000 km in the study (docs/validation.md).
    max_obs : int or None
        At most this many nearest *observations* per column (the search runs over observed cells, so the
        radius is reached unless a column has more; None: no limit).
    obs_depth : (float, float)
        Observed layer, m.
    nlev_update : int or None
        Update only the top ``nlev_update`` layers (None: all layers; cross-layer covariances carry
        the information down).
    snow_threshold : float
        Columns with more snow water than this (kg/m2) are not updated.
    """

    radius_km: float = 500.0
    max_obs: int | None = 64
    obs_depth: tuple[float, float] = (0.0, 0.05)
    nlev_update: int | None = None
    snow_threshold: float = 1.0

    def __post_init__(self) -> None:
        _check(self)

    def assumed_obs_error(self, declared: ObsError) -> ObsError:
        """The error this filter assumes: the declared total std per column, uncorrelated (R diagonal)."""
        return declared.assume(white_fraction=1.0)


@dataclass(frozen=True)
class PointEnKF(_ColumnFilter):
    """Column-wise EnKF with perturbed observations (the classic land DA baseline).

    The localization, inflation and layer settings are those of every column filter (``radius_km``,
    ``max_obs``, ``inflation*``, ``obs_depth``, ``nlev_update``, ``snow_threshold``: see ``_ColumnFilter``).

    Attributes
    ----------
    perturb_obs : bool
        Perturbed observations (True) or the deterministic variant (False, tests).
    """

    perturb_obs: bool = True

    @property
    def need(self) -> Need:
        """Every member of a block of columns and of the columns within ``radius_km``; perturbed
        observations drawn by the host (``perturb_obs``)."""
        return Need(Distribution.COLUMNS, halo_km=self.radius_km, perturbations=self.perturb_obs)

    def increments(
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
        layout: Layout | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
        seed: int = 0,
        neighbours: Neighbourhoods | None = None,
        perturbations: np.ndarray | None = None,
        window: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """:func:`point_enkf_increments` of ``state`` (nlev, ncol, nloc) with no further inflation."""
        return point_enkf_increments(
            state, h, obs, obs_std, lat=lat, lon=lon, radius_km=self.radius_km, max_obs=self.max_obs,
            seed=seed, rngs=rngs, perturb_obs=self.perturb_obs, obs_mask=obs_mask, update_mask=update_mask,
            layout=layout, neighbours=neighbours, perturbations=perturbations, window=window,
        )  # fmt: skip

    def update(
        self, state: np.ndarray, h: np.ndarray, obs: np.ndarray, obs_std: float | np.ndarray, **kw: Any
    ):
        """Array-level update (nlev, ncol, nloc) -> (increments, dict) with this method's inflation applied by
        the functional core (fixed factor, or its single-analysis adaptive estimate); keywords as
        :meth:`increments`. :meth:`analyze` is the protocol entry point (smoothed adaptive inflation)."""
        return point_enkf_increments(
            state, h, obs, obs_std, radius_km=self.radius_km, max_obs=self.max_obs, perturb_obs=self.perturb_obs,
            inflation=self.inflation, inflation_mode=self.inflation_mode, inflation_max=self.inflation_max, **kw,
        )  # fmt: skip

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_error: ObsError | float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray, Diagnostics]:
        return _column_analysis(self, background, obs, obs_error, obs_mask, context, context.rngs)

    analyze.__doc__ = _ANALYZE


@dataclass(frozen=True)
class PointLETKF(_ColumnFilter):
    """Column-wise LETKF (Hunt et al. 2007): deterministic square-root local analysis per column.

    Every setting is that of every column filter (``radius_km`` is the Gaspari-Cohn R-localization
    radius, default 250 km: the best of 125, 250, 500, 1000 and 2000 km for the LETKF on the default
    experiment, ``bench/study.py``; ``max_obs``, ``inflation*``, ``obs_depth``, ``nlev_update``,
    ``snow_threshold``: see ``_ColumnFilter``).
    """

    radius_km: float = 250.0

    @property
    def need(self) -> Need:
        """Every member of a block of columns and of the columns within ``radius_km`` (deterministic)."""
        return Need(Distribution.COLUMNS, halo_km=self.radius_km)

    def increments(
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
        layout: Layout | None = None,
        neighbours: Neighbourhoods | None = None,
        **_: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """:func:`point_letkf_increments` of ``state`` (nlev, ncol, nloc) with no further inflation."""
        return point_letkf_increments(
            state, h, obs, obs_std, lat=lat, lon=lon, radius_km=self.radius_km, max_obs=self.max_obs,
            obs_mask=obs_mask, update_mask=update_mask, layout=layout, neighbours=neighbours,
        )  # fmt: skip

    def update(
        self, state: np.ndarray, h: np.ndarray, obs: np.ndarray, obs_std: float | np.ndarray, **kw: Any
    ):
        """Array-level update (nlev, ncol, nloc) -> (increments, dict) with this method's fixed inflation;
        keywords as :meth:`increments`. :meth:`analyze` is the protocol entry point."""
        kw.pop("rngs", None), kw.pop("seed", None), kw.pop("perturbations", None), kw.pop("window", None)
        return point_letkf_increments(
            state,
            h,
            obs,
            obs_std,
            radius_km=self.radius_km,
            max_obs=self.max_obs,
            inflation=self.inflation,
            **kw,
        )

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_error: ObsError | float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray, Diagnostics]:
        return _column_analysis(self, background, obs, obs_error, obs_mask, context, None)

    analyze.__doc__ = _ANALYZE
