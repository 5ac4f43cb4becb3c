"""Multiplicative inflation of ensemble anomalies, shared by every filter.

``check_inflation`` validates the settings; ``adaptive_inflation`` estimates the factor of one analysis
from its innovations (Desroziers et al. 2005; Li, Kalnay & Miyoshi 2009); ``inflate_only`` is what every
filter does when no observation is usable (the inflation still applies, as in every analysis).
"""

from __future__ import annotations

import numpy as np

from landimg.parallel import MemberLayout

__all__ = ["INFLATION_MODES", "adaptive_inflation", "check_inflation", "inflate_only"]

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
