"""Column operations shared by the methods: deeper-layer regression and increment statistics."""

from __future__ import annotations

import numpy as np

from landimg.parallel import MemberLayout

__all__ = ["increment_stats", "regression_increments"]


def regression_increments(
    theta: np.ndarray, xobs: np.ndarray, dobs: np.ndarray, over: np.ndarray, layout: MemberLayout
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
    layout : MemberLayout
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


def increment_stats(dobs: np.ndarray, layout: MemberLayout) -> tuple[float, float]:
    """Domain mean and rms of the observed-layer increment ``dobs`` (nloc, ncol) over all members."""
    n = layout.nmem * dobs.shape[1]
    s1 = float(layout.ordered_sum(dobs).sum())
    s2 = float(layout.ordered_sum(dobs**2).sum())
    return s1 / n, float(np.sqrt(s2 / n))
