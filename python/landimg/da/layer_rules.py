"""How the curvelet EnKF's observed-layer increment reaches every model layer (``CurveletEnKF.layer_increments``).

The image analysis updates the observed layer ``x_o = h . theta`` of every member (``dobs``, (nloc, ncol));
:func:`layer_increments` turns it into increments of every layer (nlev, ncol, nloc) by the method's rule:

- ``"regression"``: ``beta_l(c) dobs`` with the column's ensemble regression ``beta_l`` (columns without
  spread: the full ``dobs`` in the observed layers), so ``h . dtheta = dobs``;
- ``"full"``: every observed layer gets the whole ``dobs`` (the first version's rule), the deep ones their
  regression increment;
- ``"analysis"``: the mean increments from the analysis' own solution through each layer's cross-covariance
  (:func:`landimg.da.curvelet_layers.layer_mean_increments`), the anomalies by the column regression;
- ``"transform"`` / ``"pooled"``: the observed layers by the column regression, the deep ones by the local
  ensemble-space fit or the pooled regression of :mod:`landimg.da.deep_layers`;

then the deep layers' increments (``h == 0``) are scaled by ``deep_gain`` (none with ``deep_regression``
false). Arrays in, arrays out; the settings are the method's dataclass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from landimg.da.column_ops import anomaly_regression, regression_coefficients, regression_increments
from landimg.da.curvelet_background import smoothed_std
from landimg.da.curvelet_layers import AnalysisSolution, layer_mean_increments
from landimg.da.deep_layers import column_neighbourhoods, ensemble_fit_increments, pooled_regression
from landimg.layout import Layout

__all__ = ["layer_increments"]


def layer_increments(
    s: Any, theta: np.ndarray, xcol: np.ndarray, dobs: np.ndarray, h: np.ndarray, layout: Layout,
    g: Any, cache: Any, solution: AnalysisSolution | None,
) -> np.ndarray:  # fmt: skip
    """Increments (nlev, ncol, nloc) of every layer from the observed layer's ``dobs``.

    Parameters
    ----------
    s : CurveletEnKF
        The method's settings (``layer_increments``, ``deep_regression``, ``deep_gain``, ``layer_radius_km``,
        ``layer_fit_ridge``, ``variance_smoothing_km``).
    theta : ndarray (nlev, ncol, nloc)
        The (inflated) background of this rank's members, m3/m3.
    xcol : ndarray (nloc, ncol)
        Their observed layer ``h . theta``, m3/m3.
    dobs : ndarray (nloc, ncol)
        Its analysis increment, m3/m3.
    h : ndarray (nlev,)
        Observation-operator weights of the layers.
    layout, g, cache :
        Member layout, the grid (:class:`landimg.Grid`), the analysis cache.
    solution : AnalysisSolution or None
        What the analysis leaves for ``"analysis"`` (None: that rule falls back to the column regression).
    """
    if s.layer_increments == "analysis" and solution is not None:
        dtheta = _from_the_analysis(s, theta, xcol, dobs, h, layout, g, solution)
    elif s.layer_increments in ("transform", "pooled"):
        dtheta = _local(s, theta, xcol, dobs, h, layout, g, cache)
    else:
        dtheta = _columnwise(s, theta, xcol, dobs, h > 0, layout)
    if s.deep_gain != 1.0:  # the layers below the observed depth: a fraction of their increment
        dtheta[h == 0] *= s.deep_gain
    return dtheta


def _column_beta(theta: np.ndarray, xcol: np.ndarray, over: np.ndarray, layout: Layout) -> np.ndarray:
    """The column regression ``beta_l(c)`` (nlev, ncol) of every layer on the observed layer; columns without
    spread: 1 in the observed layers (``over``), 0 below (the full ``dobs`` where it is observed)."""
    return _beta_where_spread(regression_coefficients(theta, xcol, layout), over)


def _beta_where_spread(fit: tuple[np.ndarray, np.ndarray], over: np.ndarray) -> np.ndarray:
    beta, spread = fit
    return np.where(spread[None, :], beta, over[:, None].astype(float))


def _from_the_analysis(s, theta, xcol, dobs, h, layout, g, sol) -> np.ndarray:
    """``"analysis"``: every layer's mean increment through its cross-covariance with the observed layer,
    each member's anomaly increment by the column regression; ``h . dtheta = dobs`` exactly."""
    at = np.array(np.moveaxis(theta, 2, 0), order="C", copy=True)  # (nloc, nlev, ncol) member-major copy
    at -= layout.mean(at)  # every layer's anomalies (in place: always a copy, never the caller's theta)
    ao = xcol - layout.mean(xcol, axis=0)  # the observed layer's (nloc, ncol)
    scales = None
    if sol.scale is not None:  # every layer's S_l, smoothed together
        var = layout.ordered_sum_terms((at[k] ** 2 for k in range(at.shape[0])), at.shape[1:]) / (layout.nmem - 1)
        scales = smoothed_std(g.to_image(var, fill=0.0), g.land, s.variance_smoothing_km, g.cell_km, g.periodic_lon)
    mean_inc = layer_mean_increments(at, ao, sol, layout, g.column_index, scales)  # (nlev, ncol)
    over = h > 0
    beta = _beta_where_spread(anomaly_regression(at, ao, layout), over)
    if not s.deep_regression:
        beta[~over] = 0.0
        mean_inc[~over] = 0.0
    dmean = layout.mean(dobs, axis=0)  # (ncol,) the observed layer's mean increment
    # what the cross-covariances leave of it (round-off; with variance filtering the layers' own S_l do not
    # commute with the directions): by the column regression, so that h . dtheta = dobs exactly
    mean_inc += beta * (dmean - h @ mean_inc)[None, :]
    out = np.multiply(beta[:, :, None], (dobs - dmean).T[None], out=np.empty(theta.shape))
    out += mean_inc[:, :, None]
    return out


def _local(s, theta, xcol, dobs, h, layout, g, cache) -> np.ndarray:
    """``"transform"`` / ``"pooled"``: the observed layers by the column regression, the layers below by the
    local fit of :mod:`landimg.da.deep_layers` (every member gathered: the same numbers on any ranks)."""
    over = h > 0
    dtheta = np.where(
        over[:, None, None], _column_beta(theta, xcol, over, layout)[:, :, None] * dobs.T[None], 0.0
    )
    if not s.deep_regression or over.all():
        return dtheta
    nb = cache.get("layer_neighbourhoods", (s.layer_radius_km, g.ncol, hash(g.xyz.tobytes())),
                   lambda: column_neighbourhoods(g.xyz, s.layer_radius_km))  # fmt: skip
    full = np.moveaxis(layout.allgather_members(np.ascontiguousarray(np.moveaxis(theta[~over], 2, 0))), 0, 2)
    deep = full - full.mean(axis=2, keepdims=True)  # (ndeep, ncol, N)
    xo = layout.allgather_members(np.ascontiguousarray(xcol)).T  # (ncol, N)
    xo = xo - xo.mean(axis=1, keepdims=True)
    if s.layer_increments == "pooled":
        dtheta[~over] = pooled_regression(deep, xo, nb)[:, :, None] * dobs.T[None]
        return dtheta
    d_all = layout.allgather_members(np.ascontiguousarray(dobs)).T  # (ncol, N)
    inc = ensemble_fit_increments(deep, xo, d_all, nb, s.layer_fit_ridge)
    dtheta[~over] = inc[:, :, layout.start : layout.start + dobs.shape[0]]
    return dtheta


def _columnwise(s, theta, xcol, dobs, over, layout) -> np.ndarray:
    """``"regression"`` and ``"full"`` (module docstring)."""
    if s.layer_increments == "full":
        dtheta = np.where(over[:, None, None], dobs.T[None], 0.0)
        if s.deep_regression:
            dtheta += regression_increments(theta, xcol, dobs, over, layout)
        return dtheta
    beta = _column_beta(theta, xcol, over, layout)
    if not s.deep_regression:
        beta[~over] = 0.0
    return beta[:, :, None] * dobs.T[None]
