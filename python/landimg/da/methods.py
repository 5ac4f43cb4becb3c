"""Analysis methods: open loop, curvelet-space EnKF and the column-wise (point) EnKF.

Each method is a dataclass of typed hyper-parameters with

* ``update(...)``: the pure analysis on arrays (serial, or this rank's members under MPI with a
  :class:`~landimg.parallel.MemberLayout`), and
* ``assimilate(ensemble, obs_image, obs_std, obs_mask)``: the same applied to a
  :class:`landimg.Ensemble`'s model state (increments to the soil water, bounds kept, clipped water booked).

The maths is in docs/method.md; the functional cores are :func:`curvelet_enkf` / :func:`curvelet_analysis`
(``_curvelet_enkf.py``) and :func:`point_enkf_increments` (``_point_enkf.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from landimg.da.curvelet_enkf import (
    CoefficientStats,
    Transform,
    curvelet_analysis,
    curvelet_enkf,
    resolve_white_fraction,
)
from landimg.da.point_enkf import (
    INFLATION_MODES,
    adaptive_inflation,
    apply_bounded,
    check_inflation,
    gaspari_cohn,
    local_neighbours,
    point_enkf_increments,
    point_letkf_increments,
)
from landimg.parallel import MemberLayout

if TYPE_CHECKING:  # pragma: no cover
    from landimg.ensemble.ensemble import Ensemble

__all__ = [
    "INFLATION_MODES",
    "CoefficientStats",
    "CurveletEnKF",
    "OpenLoop",
    "PointEnKF",
    "PointLETKF",
    "Transform",
    "adaptive_inflation",
    "apply_bounded",
    "curvelet_analysis",
    "curvelet_enkf",
    "gaspari_cohn",
    "layer_overlap",
    "local_neighbours",
    "point_enkf_increments",
    "point_letkf_increments",
]

_log = logging.getLogger("landimg.analysis")
_RHO_LIQ = 1000.0  # kg/m3
_SNOW_KEYS = ("wsnow", "wsno", "snow", "scv")


def layer_overlap(z_bottom: np.ndarray, depth: tuple[float, float]) -> np.ndarray:
    """Thickness (m) of every model layer inside ``depth`` = (top, bottom) m: (nlev,).

    ``overlap / overlap.sum()`` are the weights of the layer mean over ``depth``.
    """
    zb = np.asarray(z_bottom, dtype=np.float64)
    zt = np.concatenate([[0.0], zb[:-1]])
    top, bot = depth
    if not 0.0 <= top < bot:
        raise ValueError(f"depth must be (top, bottom) with 0 <= top < bottom, got {depth}")
    return np.clip(np.minimum(zb, bot) - np.maximum(zt, top), 0.0, None)


def _update_mask(model: Any, snow_threshold: float) -> np.ndarray:
    """(nlev, ncol, nmem) bool: layers that may be updated (not frozen, no snow on the column)."""
    nlev = model.nlev
    ok = np.ones(model.state["wliq"].shape, dtype=bool)
    frozen = getattr(model, "frozen", None)
    if frozen is not None:
        fz = np.asarray(frozen(), dtype=bool)
        ok &= ~(fz[None] if fz.ndim == 2 else fz)
    for key in _SNOW_KEYS:
        if key in model.state:
            snow = np.asarray(model.state[key])
            ok &= (snow <= snow_threshold)[None] if snow.ndim == 2 else np.ones(nlev, bool)[:, None, None]
            break
    return ok


def _apply_to_model(ensemble: Ensemble, dtheta: np.ndarray) -> dict[str, float]:
    """Add theta increments (nlev, ncol, nloc) as liquid water through ``model.add_soil_water``.

    Returns the booking diagnostics: computed, applied and clipped water (kg/m2, domain means over
    columns and all members) with ``applied + clipped == computed``.
    """
    model = ensemble.model
    dz = np.asarray(model.dz, dtype=np.float64)
    dw = np.asfortranarray(dtheta * (_RHO_LIQ * dz)[:, None, None])  # kg/m2 per layer
    applied, clipped = model.add_soil_water(dw)
    computed = dw.sum(axis=0)
    lay = ensemble.layout

    def tot(a: np.ndarray) -> float:  # domain mean per member, (ncol, nloc) -> scalar, member-ordered
        return float(lay.ordered_sum(np.asarray(a).T).sum()) / (lay.nmem * model.ncol)

    return {
        "computed_water_kg_m2": tot(computed),
        "applied_water_kg_m2": tot(applied),
        "clipped_water_kg_m2": tot(clipped),
        "clipped_abs_water_kg_m2": tot(np.abs(clipped)),
    }


@dataclass(frozen=True)
class OpenLoop:
    """No analysis: the reference run (members keep their background)."""

    obs_depth: tuple[float, float] = (0.0, 0.05)

    def update(self, background: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Return a copy of ``background`` and empty diagnostics."""
        return np.array(background, copy=True), {}

    def assimilate(self, ensemble: Ensemble, obs_image, obs_std, obs_mask=None) -> dict[str, Any]:
        """Nothing changes; reports the number of usable observations."""
        obs = np.asarray(obs_image, dtype=np.float64)
        if obs.shape != ensemble.grid.shape:
            raise ValueError(f"obs_image has shape {obs.shape}, expected {ensemble.grid.shape}")
        n_nan = int(np.count_nonzero(np.isnan(obs) & ensemble.grid.land))
        return {
            "method": "OpenLoop",
            "n_obs": int(np.count_nonzero(np.isfinite(obs) & ensemble.grid.land)),
            "n_nan_masked": n_nan,
            "increment_mean": 0.0,
            "increment_rms": 0.0,
            "clipped_water_kg_m2": 0.0,
        }


@dataclass(frozen=True)
class CurveletEnKF:
    """Curvelet-space EnKF of the observed layer (docs/method.md).

    Attributes
    ----------
    pooling : {"wedge", "scale", "coefficient", "global"}
        Where background and observation error variances are averaged (wedge: best in the toy study).
    variance_support : {"land_fraction", "interior"}
        How pooled background variances are brought to their land value: divided by the land fraction
        (default), or pooled over the coefficients whose frame elements lie on land, normalised by their
        land coverage (``"interior"``: removes the coastal-jump energy of smooth anomalies; docs/method.md).
    inflation : float
        Multiplicative anomaly inflation (1 = none); the lower bound in adaptive mode.
    inflation_mode : {"fixed", "adaptive"}
        ``"adaptive"``: the anomaly factor is estimated per analysis from the innovations over the observed
        land pixels (``lambda = (d.d - tr R) / tr(H B H^T)``, factor ``sqrt(lambda)`` clipped to
        ``[inflation, inflation_max]``; reported as ``inflation``/``inflation_lambda`` in the diagnostics).
    inflation_max : float
        Upper bound of the adaptive anomaly factor.
    rtps : float
        Relaxation to prior spread, 0..1.
    perturb_obs : bool
        Perturbed observations (stochastic EnKF); False = deterministic update (tests).
    scale_weights : tuple of float or None
        Gain multiplier per scale, coarsest first.
    obs_corr_km : float
        Correlation length of the observation error, km (0 = white).
    obs_white_fraction : float in [0, 1] or None
        Fraction of the observation-error variance that is white, the rest correlated with length
        ``obs_corr_km`` (``< 1`` needs ``obs_corr_km > 0``). None (default): white if ``obs_corr_km == 0``,
        else entirely correlated (the historical meaning).
    nscales, nangles_coarse, finest :
        Curvelet parameters (``nscales=None``: the transform's default).
    pad : int or None
        Edge padding of regional grids (None: ``imageprep`` default; global grids are not padded in lon).
    obs_depth : (float, float)
        Observed layer, m.
    deep_regression : bool
        Also update the layers below ``obs_depth`` by ensemble regression on the observed-layer increment
        (default True, as in the experiment).
    snow_threshold : float
        Columns with more snow water than this (kg/m2) are not updated.
    obs_var_samples : int
        Monte-Carlo images for the observation-error variance per coefficient when it has no exact
        formula (correlated error, or an ``obs_std`` map with ``pooling="coefficient"``).
    """

    pooling: str = "wedge"
    variance_support: str = "land_fraction"
    inflation: float = 1.0
    inflation_mode: str = "fixed"
    inflation_max: float = 2.0
    rtps: float = 0.0
    perturb_obs: bool = True
    scale_weights: tuple[float, ...] | None = None
    obs_corr_km: float = 0.0
    obs_white_fraction: float | None = None
    nscales: int | None = None
    nangles_coarse: int = 16
    finest: str = "wavelets"
    pad: int | None = None
    obs_depth: tuple[float, float] = (0.0, 0.05)
    deep_regression: bool = True
    snow_threshold: float = 1.0
    obs_var_samples: int = 32

    def __post_init__(self) -> None:
        if self.pooling not in ("coefficient", "wedge", "scale", "global"):
            raise ValueError(f"pooling must be coefficient|wedge|scale|global, got {self.pooling!r}")
        if self.variance_support not in ("land_fraction", "interior"):
            raise ValueError(
                f"variance_support must be land_fraction|interior, got {self.variance_support!r}"
            )
        check_inflation(self.inflation, self.inflation_mode, self.inflation_max)
        if not 0 <= self.rtps <= 1:
            raise ValueError(f"rtps must be in [0, 1], got {self.rtps}")
        resolve_white_fraction(self.obs_white_fraction, self.obs_corr_km)

    def transform_for(
        self, shape: tuple[int, int], periodic_lon: bool = False
    ) -> tuple[Any, tuple[int, int]]:
        """The padded curvelet transform for images of ``shape`` and the image offset in it."""
        from landimg.transform.curvelet import Curvelet
        from landimg.transform.imageprep import EdgePadding

        pad = EdgePadding(shape, pad=self.pad, periodic_lon=periodic_lon)
        kw = {} if self.nscales is None else {"nscales": self.nscales}
        return Curvelet(
            pad.padded_shape, nangles_coarse=self.nangles_coarse, finest=self.finest, **kw
        ), pad.offset

    def update(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        *,
        transform: Any = None,
        pad_offset: tuple[int, int] | None = None,
        periodic_lon: bool = False,
        cell_km: tuple[float, float] = (1.0, 1.0),
        obs_mask: np.ndarray | None = None,
        land: np.ndarray | None = None,
        update_mask: np.ndarray | None = None,
        layout: MemberLayout | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Analysis images (nloc, ny, nx) and diagnostics; see :func:`curvelet_analysis`.

        ``transform`` defaults to :meth:`transform_for` the image shape (padded).
        """
        if transform is None:
            transform, pad_offset = self.transform_for(np.shape(background)[1:], periodic_lon)
        return curvelet_analysis(
            background, obs, obs_std, transform,
            obs_mask=obs_mask, seed=seed, rngs=rngs, perturb_obs=self.perturb_obs,
            inflation=self.inflation, inflation_mode=self.inflation_mode, inflation_max=self.inflation_max,
            rtps=self.rtps, pooling=self.pooling, variance_support=self.variance_support,
            scale_weights=self.scale_weights, obs_corr_km=self.obs_corr_km,
            obs_white_fraction=self.obs_white_fraction, cell_km=cell_km,
            periodic_x=periodic_lon, obs_var_samples=self.obs_var_samples, land=land,
            update_mask=update_mask, layout=layout, pad_offset=pad_offset,
        )  # fmt: skip

    def assimilate(self, ensemble: Ensemble, obs_image, obs_std, obs_mask=None) -> dict[str, Any]:
        """Update the ensemble's soil water from an observation image of the ``obs_depth`` layer."""
        grid, model, lay = ensemble.grid, ensemble.model, ensemble.layout
        over = layer_overlap(model.z_bottom, self.obs_depth)
        h = over / over.sum()
        theta = model.theta()  # (nlev, ncol, nloc)
        xcol = np.einsum("l,lcm->mc", h, theta)  # observed-layer mean (nloc, ncol)
        ok = _update_mask(model, self.snow_threshold)  # (nlev, ncol, nloc)
        ok_obs = np.all(ok[over > 0], axis=0)  # (ncol, nloc)
        transform, offset = ensemble._transform(self)
        xa, diag = self.update(
            grid.to_image(xcol), obs_image, obs_std,
            transform=transform, pad_offset=offset, periodic_lon=grid.periodic_lon,
            cell_km=grid.cell_size_km(), obs_mask=obs_mask, land=grid.land,
            update_mask=grid.to_image(ok_obs.T, fill=False).astype(bool), layout=lay,
            rngs=ensemble.obs_rngs,
        )  # fmt: skip
        dobs = grid.to_columns(xa) - xcol  # (nloc, ncol) observed-layer increment
        dtheta = np.where((over > 0)[:, None, None], dobs.T[None], 0.0)
        if self.deep_regression:
            dtheta += _regression_increments(theta, xcol, dobs, over, lay)
        dtheta *= ok
        diag = {k: v for k, v in diag.items() if k != "stats"}
        diag["method"] = "CurveletEnKF"
        diag.update(_increment_stats(dobs, lay))
        diag.update(_apply_to_model(ensemble, dtheta))
        return diag


def _regression_increments(theta, xobs, dobs, over, layout) -> np.ndarray:
    """Deeper-layer increments by ensemble regression on the observed-layer value, (nlev, ncol, nloc).

    ``dtheta_l = cov(theta_l, x_obs) / var(x_obs) * dx_obs`` for the layers outside the observed depth.
    """
    mu_t = layout.mean(theta, axis=2)
    mu_o = layout.mean(xobs, axis=0)
    at, ao = theta - mu_t[:, :, None], (xobs - mu_o).T  # (nlev, ncol, nloc), (ncol, nloc)
    cov = layout.ordered_sum(at * ao[None], axis=2)
    var = layout.ordered_sum(ao**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(var > 0, cov / var, 0.0)
    beta[over > 0] = 0.0  # observed layers already get the increment itself
    return beta[:, :, None] * dobs.T[None]


def _increment_stats(dobs: np.ndarray, layout: MemberLayout) -> dict[str, float]:
    """Domain mean and rms of the observed-layer increment over all members (reproducible)."""
    n = layout.nmem * dobs.shape[1]
    s1 = float(layout.ordered_sum(dobs).sum())
    s2 = float(layout.ordered_sum(dobs**2).sum())
    return {"increment_mean": s1 / n, "increment_rms": float(np.sqrt(s2 / n))}


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
        ``"adaptive"``: the anomaly factor is estimated per analysis from the innovations over all usable
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
    inflation_mode: str = "fixed"
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

    def assimilate(self, ensemble: Ensemble, obs_image, obs_std, obs_mask=None) -> dict[str, Any]:
        """Update the ensemble's soil water from an observation image of the ``obs_depth`` layer."""
        return _point_assimilate(self, ensemble, obs_image, obs_std, obs_mask, rngs=ensemble.obs_rngs)


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

    def assimilate(self, ensemble: Ensemble, obs_image, obs_std, obs_mask=None) -> dict[str, Any]:
        """Update the ensemble's soil water from an observation image of the ``obs_depth`` layer."""
        return _point_assimilate(self, ensemble, obs_image, obs_std, obs_mask, rngs=None)


def _point_assimilate(method, ensemble: Ensemble, obs_image, obs_std, obs_mask, rngs) -> dict[str, Any]:
    """Shared column-wise assimilation of PointEnKF / PointLETKF into an Ensemble's soil water."""
    grid, model, lay = ensemble.grid, ensemble.model, ensemble.layout
    obs_image = np.asarray(obs_image, dtype=np.float64)
    if obs_image.shape != grid.shape:
        raise ValueError(f"obs_image has shape {obs_image.shape}, expected {grid.shape}")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim == 2:
        if std.shape != grid.shape:
            raise ValueError(f"obs_std has shape {std.shape}, expected {grid.shape} or a scalar")
        std = grid.to_columns(std)
    mask = None if obs_mask is None else grid.to_columns(np.asarray(obs_mask, dtype=bool))
    over = layer_overlap(model.z_bottom, method.obs_depth)
    h = over / over.sum()
    theta = model.theta()
    ok = _update_mask(model, method.snow_threshold)
    if method.nlev_update is not None:
        ok[method.nlev_update :] = False
    lat, lon = grid.column_latlon()
    dtheta, diag = method.update(
        theta, h, grid.to_columns(obs_image), std, lat=lat, lon=lon, obs_mask=mask,
        update_mask=ok, layout=lay, rngs=rngs,
    )  # fmt: skip
    diag["method"] = type(method).__name__
    diag.update(_increment_stats(np.einsum("l,lcm->mc", h, dtheta), lay))
    diag.update(_apply_to_model(ensemble, dtheta))
    return diag
