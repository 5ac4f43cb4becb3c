"""Multiplicative inflation of ensemble anomalies, shared by every filter.

``check_inflation`` validates the settings; ``adaptive_inflation`` estimates the factor of one analysis
from its innovations (Desroziers et al. 2005; Li, Kalnay & Miyoshi 2009); ``smoothed_inflation`` is the
estimator the methods use: innovations with the bias part removed, smoothed in time (Miyoshi 2011);
``inflate_only`` is what every filter does when no observation is usable.
"""

from __future__ import annotations

import numpy as np

from landimg.parallel import MemberLayout

__all__ = [
    "INFLATION_MODES",
    "adaptive_inflation",
    "check_inflation",
    "check_smoothing",
    "inflate_only",
    "smoothed_inflation",
]

INFLATION_MODES = ("fixed", "adaptive")


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


def adaptive_inflation(
    d2_sum: float, r_sum: float, hbh_sum: float, lower: float = 1.0, upper: float = 2.0
) -> tuple[float, float]:
    """Multiplicative inflation from the innovation statistics of one analysis (Desroziers et al. 2005).

    With innovations ``d = y - H xbar_b`` over the ``p`` usable observations, ensemble background
    covariance ``B`` and a true background error covariance ``lambda B``,
    ``E[d^T d] = lambda tr(H B H^T) + tr(R)``, so

        lambda_hat = (d^T d - tr(R)) / tr(H B H^T)

    (Li, Kalnay & Miyoshi 2009, without time smoothing). ``lambda`` scales variances; the anomalies are
    multiplied by ``sqrt(lambda)``, clipped to ``[lower, upper]``.

    Parameters
    ----------
    d2_sum : float
        ``d^T d``, squared innovations summed over the usable observations (obs units squared).
    r_sum : float
        ``tr(R)``, observation error variances summed over the same observations.
    hbh_sum : float
        ``tr(H B H^T)``, ensemble variances (ddof 1) of the predicted observations, summed.
    lower, upper : float
        Bounds of the anomaly factor (``lower`` = the fixed inflation, 1 by default).

    Returns
    -------
    lambda_hat : float
        Unclipped variance-ratio estimate (NaN when ``hbh_sum <= 0``: no spread to scale).
    factor : float
        Anomaly inflation applied, ``sqrt(clip(lambda_hat, lower^2, upper^2))`` (``lower`` when NaN).
    """
    if not hbh_sum > 0:
        return float("nan"), float(lower)
    lam = (float(d2_sum) - float(r_sum)) / float(hbh_sum)
    return lam, float(np.sqrt(min(max(lam, lower * lower), upper * upper)))


def inflate_only(state: np.ndarray, inflation: float, layout: MemberLayout) -> np.ndarray:
    """Increments (nlev, ncol, nloc) that inflate the anomalies of ``state`` by ``inflation`` (no update).

    ``(inflation - 1) * (x_i - mean(x))``, the member mean reduced in member order; zeros when
    ``inflation == 1``.
    """
    if inflation == 1.0:
        return np.zeros_like(state)
    return (inflation - 1.0) * (state - layout.mean(state, axis=2)[:, :, None])


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
) -> tuple[float, float, float]:
    """Variance inflation from de-biased innovations, smoothed in time (Miyoshi 2011; Anderson 2009).

    Over the ``p`` usable observations, with innovations ``d = y - mean(Hx)`` and predicted-observation
    anomalies ``a_i = H x_i - mean(Hx)``: with ``debias`` the spatial mean over the observations is
    removed from ``d`` and from every ``a_i`` (a persistent bias is not spread that inflation could
    fix), and ``tr R`` becomes ``(1 - 1/p) tr R`` (exact for uncorrelated errors). Then

        lambda_o = (sum d^2 - tr R) / (sum_i sum a_i^2 / (N - 1))

    with sampling variance ``v_o = 2 / p * ((prior tr(HBH^T) + tr R) / tr(HBH^T))^2``, and the posterior
    ``lambda = (v_o prior + prior_var lambda_o) / (v_o + prior_var)`` (``prior_var = inf``: no smoothing),
    clipped to ``[lower^2, upper^2]``. The caller keeps ``lambda`` as the next analysis' ``prior``.

    Parameters
    ----------
    hx_all : ndarray (ncol, N)
        Predicted observations of all members (identical on every rank).
    obs, std : ndarray (ncol,)
        Observations and error std; ``valid`` (ncol,) bool marks the usable ones.
    prior, prior_var : float
        Previous variance inflation and the variance of its change between analyses.
    debias : bool
        Remove the spatial mean (bias) part of the innovations and anomalies.
    lower, upper : float
        Bounds of the anomaly factor.

    Returns
    -------
    lambda_o : float
        This analysis' estimate (NaN without >= 2 usable observations or spread).
    lam : float
        Smoothed, clipped variance inflation (``prior`` clipped when ``lambda_o`` is NaN).
    factor : float
        Anomaly factor ``sqrt(lam)``.
    """
    nmem = hx_all.shape[1]
    hb = hx_all[valid]
    p = hb.shape[0]
    lam = float(min(max(prior, lower * lower), upper * upper))
    if p < 2:
        return float("nan"), lam, float(np.sqrt(lam))
    hbar = hb.mean(axis=1)
    d, a = obs[valid] - hbar, hb - hbar[:, None]
    r_tr = float(np.sum(std[valid] ** 2))
    if debias:
        d, a, r_tr = d - d.mean(), a - a.mean(axis=0), r_tr * (1.0 - 1.0 / p)
    hbh = float(np.sum(a * a)) / (nmem - 1)
    if not hbh > 0:
        return float("nan"), lam, float(np.sqrt(lam))
    lam_o = (float(np.sum(d * d)) - r_tr) / hbh
    if np.isfinite(prior_var):
        v_o = 2.0 / p * ((prior * hbh + r_tr) / hbh) ** 2
        lam_o_used = (v_o * prior + prior_var * lam_o) / (v_o + prior_var)
    else:
        lam_o_used = lam_o
    lam = float(min(max(lam_o_used, lower * lower), upper * upper))
    return lam_o, lam, float(np.sqrt(lam))


def check_smoothing(prior_var: float) -> None:
    """Raise ValueError unless ``prior_var`` (the inflation's time-smoothing variance) is > 0 (inf allowed)."""
    if not prior_var > 0:
        raise ValueError(f"inflation_prior_var must be > 0 (inf = no smoothing), got {prior_var}")
