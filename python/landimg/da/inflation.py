"""Multiplicative inflation of ensemble anomalies, shared by every filter.

``check_inflation`` validates the settings; :func:`smoothed_lambda` is the one adaptive estimator (the
variance ratio of the innovations, Desroziers et al. 2005; Li, Kalnay & Miyoshi 2009, smoothed in time,
Miyoshi 2011), fed by :func:`innovation_statistics` (innovations with the bias part removed) in
:func:`smoothed_inflation` for the column filters and the functional cores, and by the per-scale
projections of :mod:`landimg.da.scale_inflation` for the curvelet filter; ``inflate_only`` is what every
filter does when no observation is usable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from landimg.layout import Layout, chunked_sum

__all__ = [
    "INFLATION_LAYERS",
    "INFLATION_MODES",
    "check_inflation",
    "check_smoothing",
    "inflate_only",
    "innovation_statistics",
    "smoothed_inflation",
    "smoothed_lambda",
]

INFLATION_MODES = ("fixed", "adaptive")
INFLATION_LAYERS = ("all", "observed")


@dataclass(frozen=True)
class InflationSettings:
    """Anomaly-inflation settings shared by every filter (each filter's config section lists them).

    Attributes
    ----------
    inflation : float
        Multiplicative anomaly inflation of every layer (1 = none); the lower bound in adaptive mode.
    inflation_mode : {"fixed", "adaptive"}
        ``"adaptive"`` (default): the factor is estimated at every analysis from the innovations with their bias
        (spatial mean) part removed and smoothed in time (:func:`landimg.da.inflation.smoothed_inflation`,
        state kept by the host), clipped to ``[inflation, inflation_max]``; reported as
        ``inflation``/``inflation_lambda`` in the diagnostics.
    inflation_max : float
        Upper bound of the adaptive anomaly factor.
    inflation_prior_var : float
        Variance of the variance inflation's change between analyses (time smoothing; inf = none).
    inflation_debias : bool
        Remove the spatial mean of the innovations (and anomalies) before estimating the inflation.
    inflation_layers : {"all", "observed"}
        Which layers' anomalies the prior inflation multiplies: only the layers the observation operator
        weights (``"observed"``, ``h > 0``; default), or every layer (``"all"``, the behaviour before; old
        restarts resume with it). The factor is estimated from the observed layer's innovations; deeper
        layers, whose spread the analysis barely reduces, would be inflated day after day, over-dispersed,
        and given increments too large for their errors (docs/validation.md, "Temporal skill of the
        filters").
    """

    inflation: float = 1.0
    inflation_mode: str = "adaptive"
    inflation_max: float = 2.0
    inflation_prior_var: float = 0.01
    inflation_debias: bool = True
    inflation_layers: str = "observed"

    def check_inflation_settings(self) -> None:
        """One-line ``ValueError`` naming the first invalid inflation setting."""
        check_inflation(self.inflation, self.inflation_mode, self.inflation_max)
        check_smoothing(self.inflation_prior_var)
        if self.inflation_layers not in INFLATION_LAYERS:
            raise ValueError(f"inflation_layers must be one of {INFLATION_LAYERS}, got {self.inflation_layers!r}")


def check_inflation(inflation: float, inflation_mode: str, inflation_max: float) -> None:
    """Raise ValueError unless the inflation settings are consistent (shared by all EnKFs).

    ``inflation`` > 0; ``inflation_mode`` in :data:`INFLATION_MODES`; ``inflation_max`` finite and >= 1,
    and >= ``inflation`` in adaptive mode (``inflation`` is then the lower bound).
    """
    if not inflation > 0:
        raise ValueError(f"inflation must be > 0, got {inflation}")
    if inflation_mode not in INFLATION_MODES:
        raise ValueError(f"inflation_mode must be one of {INFLATION_MODES}, got {inflation_mode!r}")
    if not (np.isfinite(inflation_max) and inflation_max >= 1.0):
        raise ValueError(f"inflation_max must be finite and >= 1, got {inflation_max}")
    if inflation_mode == "adaptive" and inflation_max < inflation:
        raise ValueError(
            f"inflation_max ({inflation_max}) must be >= inflation ({inflation}), the adaptive lower bound"
        )


def inflate_only(state: np.ndarray, inflation: float, layout: Layout) -> np.ndarray:
    """Increments (nlev, ncol, nloc) that inflate the anomalies of ``state`` by ``inflation`` (no update).

    ``(inflation - 1) * (x_i - mean(x))``, the member mean reduced in member order; zeros when
    ``inflation == 1``.
    """
    if inflation == 1.0:
        return np.zeros_like(state)
    return (inflation - 1.0) * (state - layout.mean(state, axis=2)[:, :, None])


def _member_sum(a: np.ndarray) -> np.ndarray:
    """Sum over the members (last axis) one after the other in member order: (..., N) -> (...,)."""
    acc = np.zeros(a.shape[:-1])
    for i in range(a.shape[-1]):
        acc += a[..., i]
    return acc


def innovation_statistics(
    hx_all: np.ndarray,
    obs: np.ndarray,
    std: np.ndarray,
    valid: np.ndarray,
    *,
    debias: bool = True,
    column_sum: Callable[[np.ndarray], np.ndarray] | None = None,
    r_total: float | None = None,
) -> tuple[float, float, float, float]:
    """The sums the inflation estimate is made of, over the usable observations.

    With innovations ``d = y - mean(Hx)`` and predicted-observation anomalies ``a_i = H x_i - mean(Hx)``
    over the ``p`` usable observations; with ``debias`` the spatial mean over the observations is removed
    from ``d`` and from every ``a_i`` (a persistent bias is not spread that inflation could fix) and
    ``tr R`` becomes ``tr (P R P) = tr R - 1^T R 1 / p`` (``P = I - 1 1^T / p``): ``(1 - 1/p) tr R`` for
    uncorrelated errors, ``tr R - r_total / p`` when the sum of all entries of a correlated ``R`` is given
    (``r_total``, :meth:`landimg.da.obs_covariance.ObsCovariance.summed`: a correlated error's spatial mean
    is part of what de-biasing removes).

    Every sum over the observations is a domain sum over their columns with the fixed chunking
    (``column_sum``; each column's terms summed over the members in member order first), so the result is
    bitwise the same however the columns are split over ranks.

    Parameters
    ----------
    hx_all : ndarray (ncol, N)
        Predicted observations of all members at the columns held (identical on every rank holding them).
    obs, std : ndarray (ncol,)
        Observations and error std; ``valid`` (ncol,) bool marks the usable ones.
    debias : bool
        Remove the spatial mean (bias) part of the innovations and anomalies.
    column_sum : callable, optional
        Domain sum of per-column values (..., ncol) -> (...,) (``Layout.column_sum`` when the columns
        are this rank's block of a larger domain); default: the fixed chunking of the columns given
        (:func:`landimg.layout.chunked_sum`, the whole domain on one rank).
    r_total : float, optional
        ``1^T R 1`` over the usable observations of a correlated ``R`` (None: ``R`` diagonal).

    Returns
    -------
    d2, r_tr, hbh, dof : float
        ``sum d^2``, ``tr R``, ``sum_i sum a_i^2 / (N - 1)`` (obs units squared) and the number of
        observations ``p`` (the degrees of freedom of ``d2``); all 0 when ``p < 2``.
    """
    total = chunked_sum if column_sum is None else column_sum
    hx_all = np.asarray(hx_all, dtype=np.float64)
    nmem = hx_all.shape[1]
    valid = np.asarray(valid, dtype=bool)
    hx = np.where(valid[:, None], hx_all, 0.0)
    p = float(total(valid.astype(np.float64)))
    if p < 2:
        return 0.0, 0.0, 0.0, 0.0
    hbar = _member_sum(hx) / nmem
    d = np.where(valid, obs - hbar, 0.0)
    a = np.where(valid[:, None], hx - hbar[:, None], 0.0)  # (ncol, N)
    r_tr = float(total(np.where(valid, std * std, 0.0)))
    if debias:
        mean = total(np.concatenate([d[None], a.T])) / p  # (1 + N,): the means of d and of every a_i
        d = np.where(valid, d - mean[0], 0.0)
        a = np.where(valid[:, None], a - mean[1:], 0.0)
        r_tr = r_tr * (1.0 - 1.0 / p) if r_total is None else r_tr - float(r_total) / p
    d2, a2 = total(np.stack([d * d, _member_sum(a * a)]))
    return float(d2), r_tr, float(a2) / (nmem - 1), p


def smoothed_lambda(
    d2: np.ndarray | float,
    r_tr: np.ndarray | float,
    hbh: np.ndarray | float,
    dof: np.ndarray | float,
    *,
    prior: np.ndarray | float = 1.0,
    prior_var: float = float("inf"),
    lower: float = 1.0,
    upper: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The one adaptive inflation estimator: variance ratio of the innovations, smoothed in time.

    Element-wise (one element for the column filters, one per curvelet scale for the per-scale
    inflation of the curvelet filter):

        lambda_o = (d2 - r_tr) / hbh                               (Desroziers et al. 2005)
        v_o      = 2 / dof * ((prior hbh + r_tr) / hbh)^2          (its sampling variance)
        lambda   = (v_o prior + prior_var lambda_o) / (v_o + prior_var)    (Miyoshi 2011)

    clipped to ``[lower^2, upper^2]`` (``prior_var = inf``: no smoothing, ``lambda = lambda_o``).
    Where ``hbh <= 0`` or ``dof < 1`` nothing is estimated: ``lambda_o`` is NaN and ``lambda`` the clipped
    ``prior``. The caller keeps ``lambda`` as the next analysis' ``prior``.

    Parameters
    ----------
    d2, r_tr, hbh : float or ndarray (k,)
        Squared innovations, observation-error variance and ensemble variance they contain (obs units
        squared; :func:`innovation_statistics`, or their projections on curvelet scales).
    dof : float or ndarray (k,)
        Degrees of freedom of ``d2`` (number of observations, or its share of a scale).
    prior : float or ndarray (k,)
        Previous variance inflation.
    prior_var : float
        Variance of the variance inflation's change between analyses.
    lower, upper : float
        Bounds of the anomaly factor.

    Returns
    -------
    lambda_o, lam : ndarray (k,) (0-d for scalar input)
        This analysis' estimate and the smoothed, clipped variance inflation (anomaly factor ``sqrt(lam)``).
    """
    d2, r_tr, hbh, dof, prior = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (d2, r_tr, hbh, dof, prior))
    )
    ok = (hbh > 0) & (dof >= 1)
    safe_h, safe_dof = np.where(ok, hbh, 1.0), np.where(ok, dof, 1.0)
    lam_o = np.where(ok, (d2 - r_tr) / safe_h, np.nan)
    if np.isfinite(prior_var):
        v_o = 2.0 / safe_dof * ((prior * safe_h + r_tr) / safe_h) ** 2
        used = (v_o * prior + prior_var * np.where(ok, lam_o, 0.0)) / (v_o + prior_var)
    else:
        used = lam_o
    lam = np.clip(np.where(ok, used, prior), lower * lower, upper * upper)
    return lam_o, lam


def smoothed_inflation(
    hx_all: np.ndarray,
    obs: np.ndarray,
    std: np.ndarray,
    valid: np.ndarray,
    *,
    prior: float = 1.0,
    prior_var: float = float("inf"),
    debias: bool = True,
    lower: float = 1.0,
    upper: float = 2.0,
    column_sum: Callable[[np.ndarray], np.ndarray] | None = None,
    r_total: float | None = None,
) -> tuple[float, float, float]:
    """Variance inflation from (de-biased) innovations, smoothed in time (Miyoshi 2011; Anderson 2009).

    :func:`innovation_statistics` then :func:`smoothed_lambda` (``dof`` = the number of usable
    observations). Every filter uses it: the methods with their time-smoothing state (``prior``,
    ``prior_var`` finite, ``debias``), the functional cores with a single analysis (``prior_var = inf``).

    Parameters
    ----------
    hx_all : ndarray (ncol, N)
        Predicted observations of all members (identical on every rank).
    obs, std : ndarray (ncol,)
        Observations and error std; ``valid`` (ncol,) bool marks the usable ones.
    prior, prior_var : float
        Previous variance inflation and the variance of its change between analyses (inf: no smoothing).
    debias : bool
        Remove the spatial mean (bias) part of the innovations and anomalies.
    lower, upper : float
        Bounds of the anomaly factor.
    column_sum : callable, optional
        Domain sum over the columns (see :func:`innovation_statistics`).
    r_total : float, optional
        ``1^T R 1`` of a correlated ``R`` over the usable observations (:func:`innovation_statistics`).

    Returns
    -------
    lambda_o : float
        This analysis' estimate (NaN without >= 2 usable observations or spread).
    lam : float
        Smoothed, clipped variance inflation (``prior`` clipped when ``lambda_o`` is NaN).
    factor : float
        Anomaly factor ``sqrt(lam)``.
    """
    d2, r_tr, hbh, dof = innovation_statistics(
        hx_all, obs, std, valid, debias=debias, column_sum=column_sum, r_total=r_total
    )
    lam_o, lam = smoothed_lambda(
        d2, r_tr, hbh, dof, prior=prior, prior_var=prior_var, lower=lower, upper=upper
    )
    return float(lam_o), float(lam), float(np.sqrt(lam))


def check_smoothing(prior_var: float) -> None:
    """Raise ValueError unless ``prior_var`` (the inflation's time-smoothing variance) is > 0 (inf allowed)."""
    if not prior_var > 0:
        raise ValueError(f"inflation_prior_var must be > 0 (inf = no smoothing), got {prior_var}")
