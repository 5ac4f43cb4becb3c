"""Layers below the observed one from a local ensemble fit of the observed layer's analysis increment.

The curvelet EnKF analyses the observed layer ``x_o = h . theta`` as an image; the layers below it
(``h_l = 0``) must get their increments from that analysis. Two local rules (issue 18, goal G1), both per
column ``c`` over its neighbourhood ``J(c)`` (every land column within ``radius_km``, Gaspari-Cohn weights
``rho_cj``, as the LETKF's localization):

``"transform"``: the ensemble-space weights that best fit the observed layer's analysis increment in the
neighbourhood, applied to the column's own deep anomalies (the LETKF's way of reaching the deep layers,
with the curvelet analysis of the observed layer standing for the observations)::

    w_k(c) = [Y_J^T D Y_J + alpha s_c^2 (N - 1) I]^-1 Y_J^T D dx_k,J,     dtheta_l,k(c) = X_l(c) w_k(c)

with ``Y_J`` (m x N) the observed layer's background anomalies at the neighbours, ``D = diag(rho_cj)``,
``dx_k,J`` member ``k``'s observed-layer increment there, ``X_l(c)`` (1 x N) the column's anomalies of
layer ``l`` and ``s_c^2 = sum_j rho_cj var_j / sum_j rho_cj`` the local observed-layer variance: the
ensemble-space analysis of an LETKF that takes the increment field as observations with error variance
``alpha s_c^2`` (``alpha`` = ``layer_fit_ridge``). Only the part of the image increment that the local
ensemble can represent reaches depth (the rest, the spatial detail the curvelet ``B`` adds, stays in the
observed layer); the weights are linear in the increment, so the mean's deep increment is the fit of the
mean's increment. ``alpha -> infinity`` gives zero deep increments; with ``radius_km -> 0`` (own column
only) and ``alpha -> 0`` it is the column regression ``beta_l(c) dx_k(c)`` (the fit of one value by one
direction of ensemble space, minimum norm).

``"pooled"``: the column regression with its cross-covariance and variance pooled over the neighbourhood,
``beta_l(c) = sum_j rho_cj cov(theta_l, x_o)_j / sum_j rho_cj var(x_o)_j`` (less sampling noise than a
single column's 16-member regression), applied to each member's increment at the column.
"""

from __future__ import annotations

import numpy as np

from landimg.da.localization import Neighbourhoods, observed_neighbourhoods

__all__ = ["column_neighbourhoods", "ensemble_fit_increments", "pooled_regression"]

#: at most this many columns per batch of the ensemble-space fits, and about this many elements in each of
#: their (nc, m, N) work arrays (4 MB of float64: the batch shrinks with the neighbourhood and the ensemble)
_CHUNK = 512
_BLOCK_ELEMENTS = 1 << 19


def column_neighbourhoods(xyz: np.ndarray, radius_km: float) -> Neighbourhoods:
    """Every column's neighbours within ``radius_km`` (all columns, nearest first; itself included),
    with their Gaspari-Cohn weights: :func:`landimg.da.localization.observed_neighbourhoods` of a fully
    observed domain. ``xyz`` (ncol, 3): unit-sphere positions."""
    return observed_neighbourhoods(np.asarray(xyz, dtype=np.float64), np.ones(len(xyz), dtype=bool), radius_km)


def ensemble_fit_increments(
    deep: np.ndarray, obs_anom: np.ndarray, dobs: np.ndarray, nb: Neighbourhoods, ridge: float
) -> np.ndarray:
    """Layer increments (nlev, ncol, K) from local ensemble-space fits of observed-layer increments.

    Parameters
    ----------
    deep : ndarray (nlev, ncol, N)
        Background anomalies (member mean removed) of the layers to update, every member, m3/m3.
    obs_anom : ndarray (ncol, N)
        The observed layer's background anomalies, m3/m3.
    dobs : ndarray (ncol, K)
        The increments to fit (e.g. every member's observed-layer analysis increment), m3/m3.
    nb : Neighbourhoods
        Every column's neighbours and weights (:func:`column_neighbourhoods`).
    ridge : float
        ``alpha`` >= 0 (module docstring): the fit's pseudo-observation error variance relative to the
        local observed-layer variance.

    Returns
    -------
    ndarray (nlev, ncol, K)
        ``X_l(c) w_k(c)``; 0 at columns whose neighbourhood has no spread.
    """
    nlev, ncol, nmem = deep.shape
    out = np.zeros((nlev, ncol, dobs.shape[1]))
    eye = np.eye(nmem)
    step = max(1, min(_CHUNK, _BLOCK_ELEMENTS // max(1, nb.idx.shape[1] * nmem)))
    for c0 in range(0, ncol, step):  # every column's fit is its own: the batch size changes no bit
        sl = slice(c0, min(c0 + step, ncol))
        idx = nb.idx[sl]
        rho = np.where(nb.use[sl], nb.rho[sl], 0.0)  # (nc, m)
        y = obs_anom[idx]  # (nc, m, N)
        yd = y.transpose(0, 2, 1) * rho[:, None, :]  # Y^T D (nc, N, m)
        a = np.matmul(yd, y)  # (nc, N, N)
        wsum = rho.sum(axis=1)
        s2 = np.einsum("cnn->c", a) / ((nmem - 1) * np.where(wsum > 0, wsum, 1.0))
        spread = s2 > 0
        a = a + (ridge * (nmem - 1) * np.where(spread, s2, 1.0))[:, None, None] * eye
        rhs = np.matmul(yd, dobs[idx])  # (nc, N, K)
        if ridge > 0:
            w = np.linalg.solve(a, rhs)
        else:  # minimum-norm least squares (a may be singular: fewer neighbours than members)
            w = np.matmul(np.linalg.pinv(a, hermitian=True), rhs)
        w = np.where(spread[:, None, None], w, 0.0)
        out[:, sl] = np.matmul(deep[:, sl].transpose(1, 0, 2), w).transpose(1, 0, 2)  # X_l(c) w(c)
    return out


def pooled_regression(deep: np.ndarray, obs_anom: np.ndarray, nb: Neighbourhoods) -> np.ndarray:
    """``beta_l(c)`` (nlev, ncol): the regression of each layer on the observed layer with cross-covariance
    and variance pooled over the neighbourhood with the Gaspari-Cohn weights (module docstring); 0 where
    the pooled variance is 0. ``deep`` (nlev, ncol, N), ``obs_anom`` (ncol, N): anomalies, every member."""
    rho = np.where(nb.use, nb.rho, 0.0)  # (ncol, m)
    cov = np.einsum("lcn,cn->lc", deep, obs_anom)  # member sums per column
    var = np.einsum("cn,cn->c", obs_anom, obs_anom)
    pc = np.einsum("lcm,cm->lc", cov[:, nb.idx], rho)
    pv = np.einsum("cm,cm->c", var[nb.idx], rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pv > 0, pc / np.where(pv > 0, pv, 1.0), 0.0)
