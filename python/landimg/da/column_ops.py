"""Column operations shared by the methods: inflation of every layer, regression of layer increments on
the observed-layer increment, vertical localization of the layer increments, increment statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.inflation import smoothed_inflation
from landimg.da.localization import gaspari_cohn
from landimg.da.obs_covariance import ObsCovariance
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.da.protocol import AnalysisContext
from landimg.layout import Layout

__all__ = [
    "VerticalLocalization",
    "increment_stats",
    "inflate_columns",
    "inflated_layers",
    "anomaly_regression",
    "regression_coefficients",
    "regression_increments",
    "usable_observations",
    "vertical_weights",
]


@dataclass(frozen=True)
class VerticalLocalization:
    """The vertical localization of the layer increments, shared by every filter (applied by the host).

    Attributes
    ----------
    vertical_localization_m : float or None
        Support (m) of a Gaspari-Cohn taper of every layer's increment by the depth of its node below the
        observed layer (weight 1 for the layers the observation operator weights, 0 from this depth on;
        the mean and the anomaly increments alike: the localized gain of the stochastic EnKF, the
        deterministic filters' anomalies relaxed towards the forecast's by the same weight). None
        (default): no taper. Trades the deep layers' temporal noise for their correction of persistent
        errors (docs/validation.md, "Temporal skill of the filters").
    """

    vertical_localization_m: float | None = None

    def check_vertical_localization(self) -> None:
        """One-line ``ValueError`` unless ``vertical_localization_m`` is None or finite and > 0."""
        v = self.vertical_localization_m
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"vertical_localization_m must be > 0 and finite (or unset), got {v}")


def vertical_weights(
    z_node: np.ndarray, h: np.ndarray, obs_bottom_m: float, support_m: float | None
) -> np.ndarray:
    """Weights (nlev,) of the layer increments: ``GC(d / (support_m / 2))`` with ``d`` the depth (m) of a
    layer's node below the observed layer's bottom ``obs_bottom_m`` (0 for the observed layers, ``h > 0``).

    All ones when ``support_m`` is None. ``GC`` is :func:`landimg.da.localization.gaspari_cohn`, the
    horizontal localization's function (weight 0 at the support, as ``radius_km``).
    """
    h = np.asarray(h, dtype=np.float64)
    if support_m is None:
        return np.ones(h.shape)
    d = np.where(h > 0, 0.0, np.maximum(np.asarray(z_node, dtype=np.float64) - float(obs_bottom_m), 0.0))
    return gaspari_cohn(d / (0.5 * float(support_m)))


def regression_increments(
    theta: np.ndarray, xobs: np.ndarray, dobs: np.ndarray, over: np.ndarray, layout: Layout
) -> np.ndarray:
    """Deeper-layer increments by ensemble regression on the observed-layer value, (nlev, ncol, nloc).

    ``dtheta_l = cov(theta_l, x_obs) / var(x_obs) * dx_obs`` for the layers outside the observed depth
    (``over`` (nlev,) bool: the layers inside it); member sums reduced in member order.

    Parameters
    ----------
    theta : ndarray (nlev, ncol, nloc)
        Layer values of the local members.
    xobs, dobs : ndarray (nloc, ncol)
        Observed-layer value and its analysis increment per local member.
    over : ndarray of bool (nlev,)
        Layers inside the observed depth (no regression increment).
    layout : Layout
    """
    mu_t = layout.mean(theta, axis=2)
    mu_o = layout.mean(xobs, axis=0)
    at, ao = theta - mu_t[:, :, None], (xobs - mu_o).T  # (nlev, ncol, nloc), (ncol, nloc)
    cov = layout.ordered_sum(at * ao[None], axis=2)
    var = layout.ordered_sum(ao**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(var > 0, cov / var, 0.0)
    beta[over] = 0.0  # observed layers already get the increment itself
    return beta[:, :, None] * dobs.T[None]


def increment_stats(dobs: np.ndarray, layout: Layout) -> tuple[float, float]:
    """Domain mean and rms of the observed-layer increment ``dobs`` (nloc, ncol) over all members.

    ``dobs`` holds this rank's members at its own columns (``layout``'s block; all columns for a layout
    of whole members); the sums run over the members in member order, then over the columns with the
    fixed chunking (:meth:`landimg.layout.Layout.domain_sum`), the same bits on any layout.
    """
    dobs = np.asarray(dobs, dtype=np.float64)
    ncol = dobs.shape[1] if layout.ncol is None else layout.ncol
    n = layout.nmem * ncol
    s1, s2 = layout.domain_sum(np.stack([dobs.T, (dobs * dobs).T]))
    return float(s1) / n, float(np.sqrt(float(s2) / n))


def regression_coefficients(
    theta: np.ndarray, xobs: np.ndarray, layout: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """``beta_l = cov(theta_l, x_obs) / var(x_obs)`` per layer and column (nlev, ncol), and ``var > 0`` (ncol,).

    With ``x_obs = h . theta``, ``sum_l h_l beta_l = 1``: increments ``beta dx_obs`` change the observed
    layer mean by exactly ``dx_obs``. Member sums reduced in member order.
    """
    tm = np.ascontiguousarray(np.moveaxis(theta, 2, 0))  # member-major: contiguous terms, the same sums
    return anomaly_regression(tm - layout.mean(tm), xobs - layout.mean(xobs, axis=0), layout)


def anomaly_regression(at: np.ndarray, ao: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """:func:`regression_coefficients` from the member-major anomalies of the layers ``at``
    (nloc, nlev, ncol) and of the observed layer ``ao`` (nloc, ncol): ``beta`` (nlev, ncol) and
    ``var > 0`` (ncol,). Member terms one at a time (no member-sized temporaries), in member order."""
    nloc, nlev, ncol = at.shape
    cov = layout.ordered_sum_terms((at[k] * ao[k] for k in range(nloc)), (nlev, ncol))
    var = layout.ordered_sum_terms((ao[k] ** 2 for k in range(nloc)), (ncol,))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, cov / var, 0.0), var > 0


def usable_observations(
    obs: np.ndarray, obs_std: float | np.ndarray, obs_mask: np.ndarray | None
) -> np.ndarray:
    """bool (ncol,): finite observation with a finite error std, not excluded by ``obs_mask``."""
    obs = np.asarray(obs, dtype=np.float64)
    valid = np.isfinite(obs) & np.isfinite(np.broadcast_to(np.asarray(obs_std, dtype=np.float64), obs.shape))
    return valid if obs_mask is None else valid & np.asarray(obs_mask, dtype=bool)


def inflated_layers(method: Any, ok: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Where the prior inflation applies, bool (nlev, ncol, nloc): ``ok`` (the update mask), restricted to
    the observed layers (``h > 0``) when ``method.inflation_layers == "observed"``."""
    if getattr(method, "inflation_layers", "all") == "observed":
        return ok & (np.asarray(h) > 0)[:, None, None]
    return ok


def _summed_covariance(err: ObsError, valid: np.ndarray, own: np.ndarray, context: AnalysisContext) -> float:
    """``1^T R 1`` over the usable observations of the whole domain: every block's owned columns (global
    index, usable, white and correlated std) gathered over the column blocks (``Layout.allgather_columns``),
    then :meth:`ObsCovariance.summed` of the whole set on every rank (exactly rounded: the same bits on
    every layout)."""
    lay, cols = context.layout, context.column_index()
    n = cols.size
    white = np.broadcast_to(np.asarray(err.white_std, dtype=np.float64), (n,))[own]
    corr = np.broadcast_to(np.asarray(err.corr_std, dtype=np.float64), (n,))[own]
    every = [lay.allgather_columns(np.ascontiguousarray(a)) for a in (cols[own], valid[own], white, corr)]
    whole = ObsError(every[2], every[3], err.corr_length_km)
    return ObsCovariance.of(whole, context.geometry, every[0]).summed(every[1].astype(bool))


def inflate_columns(
    method: Any,
    theta: np.ndarray,
    obs: np.ndarray,
    obs_error: ObsError | float | np.ndarray,
    obs_mask: np.ndarray | None,
    ok: np.ndarray,
    context: AnalysisContext,
) -> tuple[np.ndarray, dict[str, float]]:
    """The background every filter analyses: all layers' anomalies inflated by one factor.

    ``method.inflation`` (fixed), or with ``inflation_mode="adaptive"`` the time-smoothed, de-biased
    estimate of :func:`landimg.da.inflation.smoothed_inflation` from all members' predicted observations
    ``h . theta`` (its state kept in ``context.state`` under ``"<Method>.inflation_lambda"``), clipped to
    ``[inflation, inflation_max]``. Layers where ``ok`` is False are not inflated, nor, with
    ``method.inflation_layers == "observed"``, the layers outside the observed depth. Returns the inflated
    state (nlev, ncol, nloc) and the diagnostics ``inflation`` / ``inflation_lambda`` (adaptive only).
    The statistics count the owned columns (``context.owned``) and are reduced over the column blocks
    of ``context.layout`` with the fixed chunking: the same factor on every rank and layout. This is the
    one estimator of every filter (the curvelet EnKF's per-scale option feeds the same
    :func:`~landimg.da.inflation.smoothed_lambda` per scale). ``obs_error`` is the error the method
    assumes (an :class:`ObsError`, or a white std): with a correlated error the de-biased ``tr R`` is
    ``tr R - 1^T R 1 / p`` (:func:`_summed_covariance`: the same bits on every layout).
    """
    lay, h = context.layout, np.asarray(context.h, dtype=np.float64)
    factor, fields = float(method.inflation), {}
    if method.inflation_mode == "adaptive":
        key = f"{type(method).__name__}.inflation_lambda"
        own = context.owned_mask(np.shape(obs)[0])
        hx_all = lay.allgather_members(np.einsum("l,lcm->mc", h, theta)[:, own]).T  # (nown, N)
        err = as_obs_error(obs_error, np.shape(obs)[0])
        std = err.columns_std(np.shape(obs)[0])
        valid = usable_observations(obs, std, obs_mask)
        usable = valid[own]
        r_total = None
        if err.correlated and method.inflation_debias:
            r_total = _summed_covariance(err, valid, own, context)
        lam_o, lam, factor = smoothed_inflation(
            hx_all, np.asarray(obs, dtype=np.float64)[own], std[own], usable,
            prior=float(context.state.get(key, 1.0)), prior_var=method.inflation_prior_var,
            debias=method.inflation_debias, lower=method.inflation, upper=method.inflation_max,
            column_sum=lay.column_sum, r_total=r_total,
        )  # fmt: skip
        context.state[key] = lam
        fields = {"inflation": factor, "inflation_lambda": lam_o}
    if factor == 1.0:
        return theta, fields
    mean = lay.mean(theta, axis=2)[:, :, None]
    return np.where(inflated_layers(method, ok, h), mean + factor * (theta - mean), theta), fields
