"""The column-wise filters as methods: :class:`PointEnKF` (perturbed observations) and :class:`PointLETKF`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.column_ops import (
    VerticalLocalization,
    increment_stats,
    inflate_columns,
    usable_observations,
)
from landimg.da.inflation import InflationSettings
from landimg.da.localization import (
    EARTH_RADIUS_KM,
    Neighbourhoods,
    observed_neighbourhoods,
    pad_neighbourhoods,
)
from landimg.da.obs_covariance import ObsCovariance
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.da.point_enkf import point_enkf_increments
from landimg.da.point_letkf import LetkfBias, point_letkf_increments
from landimg.da.protocol import AnalysisContext, Diagnostics, Distribution, Need
from landimg.layout import Layout, column_chunks

__all__ = ["PointEnKF", "PointLETKF"]

_log = logging.getLogger("landimg.analysis")


def _check(method: Any) -> None:
    if method.radius_km < 0:
        raise ValueError(f"radius_km must be >= 0, got {method.radius_km}")
    if method.max_obs is not None and method.max_obs < 1:
        raise ValueError(f"max_obs must be >= 1 (or None), got {method.max_obs}")
    method.check_inflation_settings()
    method.check_vertical_localization()


def _within(context: AnalysisContext, radius_km: float) -> np.ndarray:
    """bool (nc,): the columns given that lie within ``radius_km`` of an owned column (owned ones included)."""
    own = context.owned_mask(context.column_index().size)
    if own.all():
        return own
    from scipy.spatial import cKDTree

    xyz = context.geometry.xyz[context.column_index()]
    chord = 2.0 * np.sin(min(radius_km / EARTH_RADIUS_KM, np.pi) / 2.0) * (1 + 1e-9)
    near = cKDTree(xyz[own]).query(xyz, k=1, distance_upper_bound=chord)[0] <= chord
    return own | near


def _neighbourhoods(
    method: Any, obs, obs_std, obs_mask, context: AnalysisContext, radius_km: float | None = None,
    rows: np.ndarray | None = None,
) -> Neighbourhoods:
    """The observed neighbourhoods of the owned columns (or of ``rows``) for this observation pattern
    (radius ``radius_km``, default the method's; from the host's cache when it repeats), as wide as the
    widest of every column block's (a collective maximum).

    Ties in distance are broken by the global column index, so a block with its halo finds the whole
    domain's neighbourhoods of its columns, and every block has the width of the whole domain's.
    """
    g, cols = context.geometry, context.column_index()
    valid = usable_observations(obs, obs_std, obs_mask)
    own = context.owned_mask(valid.size) if rows is None else np.asarray(rows, dtype=bool)
    radius = float(method.radius_km if radius_km is None else radius_km)
    key = (radius, method.max_obs, g.ncol, cols.tobytes(), own.tobytes(), valid.tobytes())
    found = context.cache.get(  # the day's pattern seldom repeats: only the latest is kept (per radius)
        f"neighbourhoods of a pattern, {radius} km", key,
        lambda: _Searched(observed_neighbourhoods(g.xyz[cols], valid, radius, method.max_obs, rows=own,
                                                  order=cols)),
        keep=1,
    )  # fmt: skip
    return found.padded(int(context.layout.column_max(found.width)))  # every rank calls this, cached or not


class _Searched:
    """The neighbourhoods a search found (width ``width``), held padded to the width last asked (one copy:
    the padded arrays begin with the found ones)."""

    def __init__(self, nb: Neighbourhoods) -> None:
        self.width, self.nb = nb.m, nb

    def padded(self, width: int) -> Neighbourhoods:
        """The found neighbourhoods padded to ``width`` (>= the found width): :func:`pad_neighbourhoods`."""
        if self.nb.m != width:
            self.nb = pad_neighbourhoods(_narrowed(self.nb, self.width), width)
        return self.nb


def _narrowed(nb: Neighbourhoods, m: int) -> Neighbourhoods:
    """The first ``m`` entries of every column of ``nb`` (views; ``nb`` itself when it is that wide)."""
    if nb.m == m:
        return nb
    return Neighbourhoods(nb.idx[:, :m], nb.dist[:, :m], nb.rho[:, :m], nb.use[:, :m], nb.radius_km)


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
    err = method.assumed_obs_error(as_obs_error(obs_error, obs.shape[0]))
    obs_std = err.std
    ok = context.update_mask
    ok = np.ones(theta.shape, dtype=bool) if ok is None else np.array(ok, dtype=bool)
    if method.nlev_update is not None:
        ok[method.nlev_update :] = False
    mask = None if obs_mask is None else np.asarray(obs_mask, dtype=bool)
    infl, fields = inflate_columns(method, theta, obs, err, mask, ok, context)
    cols, own = context.column_index(), context.owned_mask(obs.shape[0])
    nb = _neighbourhoods(method, obs, obs_std, mask, context)
    dtheta, diag = method.increments(
        infl, h, obs, obs_std, lat=g.column_lat[cols], lon=g.column_lon[cols], obs_mask=mask, update_mask=ok,
        layout=lay, rngs=rngs, seed=context.seed, neighbours=nb, perturbations=context.perturbations,
        window=_chunk_of_columns(context), obs_error=err, context=context,
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
        mean_gain_top=None if gain is None else float(lay.column_sum(gain[own])) / g.ncol,
        extra={k: v for k, v in diag.items() if k.startswith("bias_")}, **fields,
    )  # fmt: skip


_ANALYZE = """Increments of the layer state (nlev, ncol, nloc) from per-column observations (ncol,) of the
        ``obs_depth`` layer (``context.h``); every layer inflated first (as in every filter), neighbourhoods
        cached by the host while the observation pattern repeats; see :mod:`landimg.da.protocol`."""


@dataclass(frozen=True)
class _ColumnFilter(VerticalLocalization, InflationSettings):
    """Settings shared by the column-wise filters (each filter's docstring lists its own).

    Attributes
    ----------
    radius_km : float
        Gaspari-Cohn localization radius (weight 0 at this distance); 0 = own cell only. Default 500 km
        for the EnKF and the LETKF (the LETKF's best of 250/500/1000 km on the issue-18 study's training
        seeds, docs/validation.md).
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
        **_: Any,
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


_BIAS_KEY = "PointLETKF.bias"


@dataclass(frozen=True)
class PointLETKF(_ColumnFilter):
    """Column-wise LETKF (Hunt et al. 2007): deterministic square-root local analysis per column.

    The localization, inflation and layer settings are those of every column filter (``radius_km`` is
    the Gaspari-Cohn R-localization radius, default 500 km: the best of 250, 500 and 1000 km (and 500 km
    with the bias stage) on the training seeds of the issue-18 study, ``bench/study.py``; ``max_obs``, ``inflation*``,
    ``obs_depth``, ``nlev_update``, ``snow_threshold``: see ``_ColumnFilter``).

    Attributes
    ----------
    obs_white_fraction : float in [0, 1] or None
        The white share of the observation-error variance the LETKF assumes (None, default: as declared
        by the observations, ``[obs]``; 1: uncorrelated, the R of the first version); the total std is
        always the declared one. A correlated R is localized as ``D^1/2 R_O^-1 D^1/2`` (Miyoshi, Kalnay &
        Li 2013; docs/method.md).
    obs_corr_km : float or None
        Correlation length of the assumed correlated part, km (None, default: as declared).
    bias_correction : bool
        Bias-aware two-stage analysis (Dee & da Silva 1998, ``P_b = bias_gamma P_f``): a forecast bias of
        every layer, carried by the host between analyses, is estimated from the innovations of the
        ensemble mean by its own local analysis (radius ``bias_radius_km``) and removed from the
        background before the state analysis: the LETKF form of the curvelet EnKF's option (default False:
        the study decides).
    bias_gamma : float
        Bias error covariance ``P_b = bias_gamma * P_f`` (> 0).
    bias_memory : float in [0, 1]
        Bias forecast ``b_f = bias_memory * b_a`` of the next analysis (1 = persistence).
    bias_radius_km : float or None
        Localization radius of the bias analysis, km (None: ``radius_km``; a longer radius gives a
        larger-scale bias; the column blocks' halo is then ``radius_km + bias_radius_km``).
    """

    radius_km: float = 500.0
    obs_white_fraction: float | None = None
    obs_corr_km: float | None = None
    bias_correction: bool = False
    bias_gamma: float = 0.1
    bias_memory: float = 1.0
    bias_radius_km: float | None = None

    def __post_init__(self) -> None:
        _check(self)
        w, length = self.obs_white_fraction, self.obs_corr_km
        if w is not None and not 0.0 <= w <= 1.0:  # also rejects NaN
            raise ValueError(f"obs_white_fraction must be in [0, 1] (or None), got {w!r}")
        if length is not None and not (np.isfinite(length) and length >= 0):
            raise ValueError(f"obs_corr_km must be finite and >= 0 (or None), got {length!r}")
        if w is not None and w < 1.0 and length == 0:
            raise ValueError(f"obs_white_fraction={w} < 1 needs obs_corr_km > 0 (or None: as declared)")
        if not (np.isfinite(self.bias_gamma) and self.bias_gamma > 0):
            raise ValueError(f"bias_gamma must be finite and > 0, got {self.bias_gamma}")
        if not 0.0 <= self.bias_memory <= 1.0:
            raise ValueError(f"bias_memory must be in [0, 1], got {self.bias_memory}")
        if self.bias_radius_km is not None and not (
            np.isfinite(self.bias_radius_km) and self.bias_radius_km >= 0
        ):
            raise ValueError(f"bias_radius_km must be finite and >= 0 (or None), got {self.bias_radius_km}")

    @property
    def _bias_radius(self) -> float:
        return float(self.radius_km if self.bias_radius_km is None else self.bias_radius_km)

    @property
    def need(self) -> Need:
        """Every member of a block of columns and of the columns within ``radius_km`` (deterministic);
        with the bias stage within ``radius_km + bias_radius_km`` (the bias at every observation of a
        column's neighbourhood comes from that observation's own neighbourhood)."""
        halo = self.radius_km + (self._bias_radius if self.bias_correction else 0.0)
        return Need(Distribution.COLUMNS, halo_km=halo)

    def assumed_obs_error(self, declared: ObsError) -> ObsError:
        """The error this filter assumes: the declared one (``obs_white_fraction``, ``obs_corr_km``: another
        split of the same total std, for mis-specification experiments)."""
        return declared.assume(white_fraction=self.obs_white_fraction, corr_length_km=self.obs_corr_km)

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
        obs_error: ObsError | None = None,
        context: AnalysisContext | None = None,
        **_: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """:func:`point_letkf_increments` of ``state`` (nlev, ncol, nloc) with no further inflation.

        With ``context`` (the protocol's): a correlated ``obs_error`` gives the correlated local R
        (positions from ``context.geometry`` at ``context.columns``), and the bias stage reads its forecast
        from ``context.state`` and stores the next one there (owned columns)."""
        obs_cov = bias = None
        if context is not None and obs_error is not None and obs_error.correlated:
            obs_cov = ObsCovariance.of(obs_error, context.geometry, context.columns)
        if context is not None and self.bias_correction:
            # stage 2 of an owned column uses the bias at its observations (within radius_km): analyse
            # the bias of every column within that reach, halo columns included
            reach = _within(context, float(self.radius_km))
            nb_b = _neighbourhoods(self, obs, obs_std, obs_mask, context, self._bias_radius, rows=reach)
            bias = LetkfBias(_bias_forecast(context, np.shape(state)[0]), self.bias_gamma, nb_b)
        dtheta, diag = point_letkf_increments(
            state, h, obs, obs_std, lat=lat, lon=lon, radius_km=self.radius_km, max_obs=self.max_obs,
            obs_mask=obs_mask, update_mask=update_mask, layout=layout, neighbours=neighbours,
            obs_cov=obs_cov, bias=bias,
        )  # fmt: skip
        b_a = diag.pop("bias", None)
        if bias is not None:  # collective on column blocks: every block stores once any block analysed
            if context.layout.column_max(float(b_a is not None)) > 0:
                # a block without observations within reach keeps its forecast (as on one rank)
                diag.update(_store_bias(context, bias.forecast if b_a is None else b_a, self.bias_memory, h))
        return dtheta, diag

    def update(
        self, state: np.ndarray, h: np.ndarray, obs: np.ndarray, obs_std: float | np.ndarray, **kw: Any
    ):
        """Array-level update (nlev, ncol, nloc) -> (increments, dict) with this method's fixed inflation;
        keywords as :func:`point_letkf_increments` (a white ``obs_std``; ``obs_cov``/``bias`` explicit).
        :meth:`analyze` is the protocol entry point."""
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


def _bias_forecast(context: AnalysisContext, nlev: int) -> np.ndarray:
    """The LETKF's bias forecast (nlev, nc) at the columns given, from ``context.state`` (an array
    (nlev, ncol) over every column of the geometry; zeros when none is carried or its shape differs)."""
    g, cols = context.geometry, context.column_index()
    old = context.state.get(_BIAS_KEY)
    if old is None:
        return np.zeros((nlev, cols.size))
    old = np.asarray(old, dtype=np.float64)
    if old.shape != (nlev, g.ncol):
        _log.warning("%s has shape %s, expected (%d, %d): restarted at 0", _BIAS_KEY, old.shape, nlev, g.ncol)
        return np.zeros((nlev, cols.size))
    return old[:, cols]


def _store_bias(context: AnalysisContext, b_a: np.ndarray, memory: float, h: np.ndarray) -> dict[str, float]:
    """Store the next bias forecast ``memory * b_a`` in ``context.state`` (a new array over every column:
    the owned columns' values, gathered from every column block) and return the diagnostics
    ``bias_mean``/``bias_rms`` of the observed layer over the domain (fixed column chunking)."""
    g, cols, lay = context.geometry, context.column_index(), context.layout
    own = context.owned_mask(cols.size)
    part = memory * b_a[:, own]
    if getattr(lay, "ncol", None) == g.ncol and not lay.whole:  # column blocks: every block's owned columns
        if not np.array_equal(cols[own], lay.columns):
            raise ValueError("PointLETKF bias: the owned columns are not the analysis layout's column block")
        full = lay.allgather_columns(part)
    else:
        old = context.state.get(_BIAS_KEY)
        full = np.zeros((b_a.shape[0], g.ncol))
        if old is not None and np.shape(old) == full.shape:
            full[:] = old
        full[:, cols[own]] = part
    context.state[_BIAS_KEY] = full
    top = np.einsum("l,lc->c", h, b_a[:, own])
    n, s1, s2 = lay.column_sum(np.stack([np.ones_like(top), top, top**2]))
    return {"bias_mean": float(s1 / n) if n else 0.0, "bias_rms": float(np.sqrt(s2 / n)) if n else 0.0}
