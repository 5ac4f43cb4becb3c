"""The contract between a host (an ensemble of any land model) and the analysis methods: arrays only.

Every method (``OpenLoop``, ``CurveletEnKF``, ``PointEnKF``, ``PointLETKF`` and any new one) has

    method.need                                   # Need: the data layout it wants, halo, perturbations
    method.assumed_obs_error(declared)            # the R it assumes (default: the declared one)
    increments, diagnostics = method.analyze(background, obs, obs_error, obs_mask, context)

with ``background`` the layer state (nlev, nc, nm) of the columns ``context.columns`` (global indices
into ``context.geometry``; None = all columns in order) and the members of ``context.layout`` held here
(e.g. volumetric soil water, m3/m3); ``obs`` (nc,) the observed layer value per column (NaN = missing);
``obs_error`` the declared error (:class:`~landimg.da.obs_error.ObsError` for those columns; a scalar or
(nc,) std is taken as white) and ``obs_mask`` (nc,) bool or None; ``context`` (:class:`AnalysisContext`)
carries the observation operator weights, the geometry, the member layout, the observation
perturbations the host drew, the layers that may be updated, and a cache. The method returns state
increments of the same shape, zero where not updated (or None: the state stays as it is, e.g. the open
loop), and typed :class:`Diagnostics`. It never touches a model: the host applies the increments
(bounds, water booking) itself.

Layouts (:class:`Distribution`): a host whose members are spread over ranks redistributes the background
to what ``method.need`` asks for (DART: "copy complete" / "var complete"; PDAF: model and filter
communicators): ``MEMBERS`` (whole-member images: every column of a member on one rank, reductions over
members by ``context.layout``), ``COLUMNS`` (all members of a block of columns plus the columns within
``need.halo_km`` of it: ``context.layout`` then holds every member, ``context.owned`` marks the block's
own columns, whose increments the host keeps) or ``NONE`` (the method changes nothing). Observation
perturbations (``need.perturbations``) are drawn by the host from each member's own stream over the whole
domain (:meth:`ObsError.draw`) and moved with the state, so they do not depend on the layout.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from landimg.da.localization import EARTH_RADIUS_KM
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.grid import Grid
from landimg.layout import Layout

__all__ = [
    "AnalysisCache", "AnalysisContext", "Diagnostics", "Distribution", "Geometry", "Grid", "Method", "Need",
    "ObsError", "TransformCache", "as_obs_error",
]  # fmt: skip


class Distribution(enum.Enum):
    """How a method wants the ensemble laid out over the ranks (see the module docstring)."""

    NONE = "none"  # nothing to analyse (the open loop): the host passes what it holds
    MEMBERS = "members"  # whole members: (nlev, ncol, members of this rank), every column of each
    COLUMNS = "columns"  # column complete: (nlev, block + halo columns, every member)


@dataclass(frozen=True)
class Need:
    """What a method needs from its host.

    Attributes
    ----------
    distribution : Distribution
        The layout of the background (and of the observation perturbations) it analyses.
    halo_km : float
        ``COLUMNS``: columns (and their observations) within this distance of a block come with it.
    perturbations : bool
        Per-member observation perturbations from :meth:`Method.assumed_obs_error` are needed
        (``context.perturbations``), e.g. the stochastic EnKF.
    """

    distribution: Distribution
    halo_km: float = 0.0
    perturbations: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.distribution, Distribution):
            raise TypeError(f"Need.distribution must be a Distribution, got {self.distribution!r}")
        if not (np.isfinite(self.halo_km) and self.halo_km >= 0):
            raise ValueError(f"Need.halo_km must be finite and >= 0, got {self.halo_km!r}")


def Geometry(
    land: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    cell_km: tuple[float, float],
    periodic_lon: bool = False,
) -> Grid:
    """The first version's constructor of the analysis geometry: a :class:`landimg.Grid` from the land
    mask (ny, nx) and the coordinates of its columns (ncol,) (degrees, row-major land cells).

    The columns must lie on a regular latitude-longitude grid whose spacing is ``cell_km[0]`` km; rows or
    columns of the image without land are placed by that spacing. ``periodic_lon`` must agree with the
    grid's span. New code builds the :class:`~landimg.Grid` directly (``Grid(lat, lon, land, res)`` or
    ``Grid.regular``).
    """
    land = np.asarray(land, dtype=bool)
    if land.ndim != 2:
        raise ValueError(f"Geometry: land must be a 2-d mask (ny, nx), got shape {land.shape}")
    iy, ix = np.nonzero(land)
    lat, lon = (np.asarray(v, dtype=np.float64) for v in (lat, lon))
    if lat.shape != iy.shape or lon.shape != iy.shape:
        raise ValueError(f"Geometry: lat and lon must have shape ({iy.size},), got {lat.shape}, {lon.shape}")
    res = float(cell_km[0]) / (np.pi / 180.0 * EARTH_RADIUS_KM)
    axes = []
    for idx, val, n in ((iy, lat, land.shape[0]), (ix, lon, land.shape[1])):
        axis = np.full(n, np.nan)
        axis[idx] = val
        seen = np.flatnonzero(np.isfinite(axis))
        if not np.all(axis[idx] == val):
            raise ValueError("Geometry: the columns' coordinates are not those of a regular lat/lon grid")
        axis = np.where(np.isfinite(axis), axis, axis[seen[0]] + (np.arange(n) - seen[0]) * res)
        axes.append(axis)
    grid = Grid(lat=axes[0], lon=axes[1], land=land, res=res)
    if grid.periodic_lon != bool(periodic_lon):
        raise ValueError(f"Geometry: periodic_lon={periodic_lon} does not fit {grid.shape[1]} cells of {res:g} deg")
    return grid


class AnalysisCache:
    """What a host keeps between analyses: transforms (building a curvelet plan costs seconds) and the
    neighbourhoods of an observation pattern; a few entries per kind, least recently used dropped first
    (before the new one is made, so that a miss never holds more than ``per_kind`` entries of a kind)."""

    def __init__(self, per_kind: int = 4) -> None:
        self.per_kind = int(per_kind)
        self._items: dict[str, OrderedDict[Hashable, Any]] = {}

    def get(self, kind: str, key: Hashable, make: Callable[[], Any], keep: int | None = None) -> Any:
        """The cached value of ``(kind, key)``, made by ``make()`` when missing.

        ``keep``: at most this many entries of ``kind`` (default ``per_kind``); e.g. 1 for what depends on
        the day's observation pattern, which seldom repeats (only the latest is kept).
        """
        items = self._items.setdefault(kind, OrderedDict())
        if key in items:
            items.move_to_end(key)
            return items[key]
        limit = max(1, self.per_kind if keep is None else int(keep))
        while len(items) >= limit:  # freed before the new entry is made
            items.popitem(last=False)
        value = items[key] = make()
        return value

    def entries(self, kind: str) -> int:
        """Number of entries of ``kind`` held."""
        return len(self._items.get(kind, ()))

    def __len__(self) -> int:
        return sum(len(v) for v in self._items.values())


TransformCache = AnalysisCache  # the name of the first version


@dataclass
class AnalysisContext:
    """Everything an analysis needs besides the state and observation arrays.

    Attributes
    ----------
    h : ndarray (nlev,)
        Observation operator weights: the observed value of a column is ``h . state[:, col]``.
    geometry : landimg.Grid
        Where *all* the columns of the domain are (images, coordinates, distances).
    layout : landimg.layout.Layout
        The layout of the background as given: the members held here and the reproducible reductions over
        all members (``ordered_sum``, ``mean``, ...), and over the columns of the domain (``column_sum``:
        a domain sum with the fixed chunking, from the owned columns of every block).
    columns : ndarray of int (nc,) or None
        Global column indices (into ``geometry``) of the arrays' column axis; None: every column in order.
    owned : ndarray of bool (nc,) or None
        Columns whose increments the host keeps (False: the halo of a column block); None: all.
        Diagnostics (domain means) count the owned columns only.
    perturbations : ndarray (nc, nm) or None
        Observation-error draws of the members held here at the columns given, from the error the method
        assumes (drawn by the host from each member's stream when ``need.perturbations``); None: the
        method draws from ``rngs`` (or its fixed-seed streams) itself.
    rngs : sequence of Generator or None
        One observation-perturbation stream per member held here (advanced in place; None: the method's
        own fixed-seed streams), for methods called without ``perturbations``.
    update_mask : ndarray of bool (nlev, nc, nm) or None
        False where a layer may not be updated (frozen soil, snow); None = everywhere.
    cache : AnalysisCache
        The host's cache (transforms, neighbourhoods of an observation pattern).
    state : dict of str to float
        Method state carried from one analysis to the next (the time-smoothed adaptive inflation, one
        entry per curvelet scale for the per-scale inflation); the host keeps it in its restarts.
    seed : int
        Seed of the fallback perturbation streams when ``rngs`` is None.
    """

    h: np.ndarray
    geometry: Grid
    layout: Layout
    columns: np.ndarray | None = None
    owned: np.ndarray | None = None
    perturbations: np.ndarray | None = None
    rngs: Sequence[np.random.Generator] | None = None
    update_mask: np.ndarray | None = None
    cache: AnalysisCache = field(default_factory=AnalysisCache)
    state: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def column_index(self) -> np.ndarray:
        """Global indices of the columns given, (nc,) (``columns``, or every column of the geometry)."""
        return np.arange(self.geometry.ncol) if self.columns is None else np.asarray(self.columns)

    def owned_mask(self, nc: int) -> np.ndarray:
        """``owned`` as a bool array (nc,) (all True when None)."""
        if self.owned is None:
            return np.ones(nc, dtype=bool)
        owned = np.asarray(self.owned, dtype=bool)
        if owned.shape != (nc,):
            raise ValueError(f"AnalysisContext.owned has shape {owned.shape}, expected ({nc},)")
        return owned


@dataclass
class Diagnostics:
    """What one analysis did (domain means over all members; identical on every rank).

    Attributes
    ----------
    method : str
        Class name of the method.
    n_obs, n_nan_masked : int
        Usable observations; NaN observations on land that were masked.
    increment_mean, increment_rms : float
        Mean and rms of the observed-layer increment, m3/m3.
    inflation, inflation_lambda : float or None
        Adaptive inflation only: anomaly factor applied and the unclipped variance-ratio estimate.
    inflation_per_scale, inflation_lambda_per_scale : list of float or None
        Curvelet EnKF with per-scale adaptive inflation: anomaly factor applied per curvelet scale and this
        analysis' (unsmoothed) variance-ratio estimate per scale, coarsest first.
    gain_per_scale : list of float or None
        Curvelet EnKF: mean gain per scale, coarsest first.
    cg_iterations : float or None
        Curvelet EnKF with ``solver="cg"``: conjugate-gradient iterations per member (mean over members).
    mean_gain_top : float or None
        Point EnKF: mean gain of the top layer to its own-cell observation.
    computed_water_kg_m2, applied_water_kg_m2, clipped_water_kg_m2, clipped_abs_water_kg_m2 : float or None
        Water booking of the host (kg/m2, domain mean per member): ``applied + clipped == computed``.
    extra : dict
        Method-specific objects not written to files (e.g. the curvelet ``CoefficientStats``).
    """

    method: str
    n_obs: int = 0
    n_nan_masked: int = 0
    increment_mean: float = 0.0
    increment_rms: float = 0.0
    inflation: float | None = None
    inflation_lambda: float | None = None
    inflation_per_scale: list[float] | None = None
    inflation_lambda_per_scale: list[float] | None = None
    gain_per_scale: list[float] | None = None
    cg_iterations: float | None = None
    mean_gain_top: float | None = None
    computed_water_kg_m2: float | None = None
    applied_water_kg_m2: float | None = None
    clipped_water_kg_m2: float | None = None
    clipped_abs_water_kg_m2: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The diagnostics as a plain dict (keys as the attribute names; None values and ``extra`` left out)."""
        values = ((f.name, getattr(self, f.name)) for f in fields(self) if f.name != "extra")
        return {k: v for k, v in values if v is not None}


@runtime_checkable
class Method(Protocol):
    """An analysis method on arrays (see the module docstring for the shapes)."""

    obs_depth: tuple[float, float]
    snow_threshold: float

    @property
    def need(self) -> Need: ...

    def assumed_obs_error(self, declared: ObsError) -> ObsError: ...

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_error: ObsError | float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray | None, Diagnostics]: ...
