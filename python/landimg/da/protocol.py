"""The contract between a host (an ensemble of any land model) and the analysis methods: arrays only.

Every method (``OpenLoop``, ``CurveletEnKF``, ``PointEnKF``, ``PointLETKF`` and any new one) has

    increments, diagnostics = method.analyze(background, obs, obs_std, obs_mask, context)

with ``background`` the layer state of this rank's members (nlev, ncol, nloc) (e.g. volumetric soil water,
m3/m3), ``obs`` (ncol,) the observed layer value per column (NaN = missing), ``obs_std`` a scalar or (ncol,)
and ``obs_mask`` (ncol,) bool or None; ``context`` (:class:`AnalysisContext`) carries the observation
operator weights, the geometry of the columns, the member layout, the random streams, the layers that
may be updated and a transform cache. The method returns state increments (nlev, ncol, nloc), zero where
not updated (or None: the state stays as it is, e.g. the open loop), and typed :class:`Diagnostics`. It never touches a model: the host applies the increments
(bounds, water booking) itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

import numpy as np

from landimg.da.localization import unit_xyz
from landimg.parallel import MemberLayout

__all__ = ["AnalysisCache", "AnalysisContext", "Diagnostics", "Geometry", "Method", "TransformCache"]


@dataclass(frozen=True)
class Geometry:
    """Where the columns are: a regular lat/lon image with a land mask (columns = land cells, row-major).

    Attributes
    ----------
    land : ndarray of bool (ny, nx)
        Land mask of the image; column ``j`` is the ``j``-th True cell in row-major order.
    lat, lon : ndarray (ncol,)
        Column coordinates, degrees.
    cell_km : (float, float)
        Cell size (north-south, east-west), km.
    periodic_lon : bool
        The image wraps around the globe in longitude.
    """

    land: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    cell_km: tuple[float, float]
    periodic_lon: bool = False
    index: np.ndarray = field(init=False, repr=False)
    xyz: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        land = np.asarray(self.land, dtype=bool)
        if land.ndim != 2:
            raise ValueError(f"Geometry.land must be a 2-d mask (ny, nx), got shape {land.shape}")
        object.__setattr__(self, "land", land)
        object.__setattr__(self, "index", np.flatnonzero(land.ravel()))
        for name in ("lat", "lon"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (self.index.size,):
                raise ValueError(f"Geometry.{name} must have shape ({self.index.size},), got {arr.shape}")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "xyz", unit_xyz(self.lat, self.lon))  # (ncol, 3) on the unit sphere

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (ny, nx)."""
        return self.land.shape

    @property
    def ncol(self) -> int:
        """Number of columns (land cells)."""
        return int(self.index.size)

    def to_image(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Columns (..., ncol) -> images (..., ny, nx), ``fill`` off land."""
        values = np.asarray(values)
        dtype = np.result_type(values.dtype, np.asarray(fill).dtype)
        out = np.full(values.shape[:-1] + (self.land.size,), fill, dtype=dtype)
        out[..., self.index] = values
        return out.reshape(values.shape[:-1] + self.shape)

    def to_columns(self, image: np.ndarray) -> np.ndarray:
        """Images (..., ny, nx) -> columns (..., ncol)."""
        image = np.asarray(image)
        return image.reshape(image.shape[:-2] + (-1,))[..., self.index]


class AnalysisCache:
    """What a host keeps between analyses: transforms (building a curvelet plan costs seconds) and the
    neighbourhoods of an observation pattern; a few entries per kind, least recently used dropped first."""

    def __init__(self, per_kind: int = 4) -> None:
        self.per_kind = int(per_kind)
        self._items: dict[str, OrderedDict[Hashable, Any]] = {}

    def get(self, kind: str, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value of ``(kind, key)``, made by ``make()`` when missing."""
        items = self._items.setdefault(kind, OrderedDict())
        if key in items:
            items.move_to_end(key)
            return items[key]
        value = items[key] = make()
        while len(items) > self.per_kind:
            items.popitem(last=False)
        return value

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
    geometry : Geometry
        Column positions (images, distances).
    layout : MemberLayout
        This rank's members and the reproducible reductions over all members.
    rngs : sequence of Generator or None
        One observation-perturbation stream per local member (advanced in place; None: the method's
        own fixed-seed streams).
    update_mask : ndarray of bool (nlev, ncol, nloc) or None
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
    geometry: Geometry
    layout: MemberLayout
    rngs: Sequence[np.random.Generator] | None = None
    update_mask: np.ndarray | None = None
    cache: AnalysisCache = field(default_factory=AnalysisCache)
    state: dict[str, float] = field(default_factory=dict)
    seed: int = 0


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

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray | None, Diagnostics]: ...
