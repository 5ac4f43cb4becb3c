"""Functional core of the column-wise LETKF (Hunt et al. 2007): a deterministic square-root local analysis
per column in ensemble space, with R-localization (Gaspari-Cohn weights on the inverse error variances)."""

from __future__ import annotations

from typing import Any

import numpy as np

from landimg.da.inflation import inflate_only
from landimg.da.localization import Neighbourhoods
from landimg.da.point_common import apply_update_mask, column_problem, gather_members, neighbourhoods
from landimg.parallel import MemberLayout

__all__ = ["point_letkf_increments"]


def _local_analyses(full, mean_x, yanom, idx, rinv, d, inflation, start, nloc, chunk) -> np.ndarray:
    """Analysis of the local members (nlev, ncol, nloc) from all members' columns ``full`` (nlev, ncol, N)."""
    nlev, ncol, nmem = full.shape
    xa_all = full - mean_x[:, :, None]  # X
    out = np.empty((nlev, ncol, nloc))
    eye = np.eye(nmem)
    for c0 in range(0, ncol, chunk):
        sl = slice(c0, min(c0 + chunk, ncol))
        yl = yanom[idx[sl]]  # (nc, m, N)
        cmat = yl.transpose(0, 2, 1) * rinv[sl][:, None, :]  # Y^T R^-1: (nc, N, m)
        amat = (nmem - 1) / inflation**2 * eye + np.matmul(cmat, yl)  # (nc, N, N)
        lam, vec = np.linalg.eigh(amat)
        pa = np.matmul(vec / lam[:, None, :], vec.transpose(0, 2, 1))
        wsq = np.matmul(vec * np.sqrt((nmem - 1) / lam)[:, None, :], vec.transpose(0, 2, 1))
        wbar = np.einsum("cnk,ck->cn", pa, np.einsum("cnm,cm->cn", cmat, d[sl]))
        t = wbar[:, :, None] + wsq[:, :, start : start + nloc]  # (nc, N, nloc): weights of local members
        out[:, sl] = mean_x[:, sl, None] + np.einsum("lcn,cnk->lck", xa_all[:, sl], t)
    return out


def point_letkf_increments(
    state: np.ndarray,
    h: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    *,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    radius_km: float = 0.0,
    max_obs: int | None = None,
    inflation: float = 1.0,
    obs_mask: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: MemberLayout | None = None,
    neighbours: Neighbourhoods | None = None,
    chunk: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """LETKF increments (Hunt et al. 2007), one local analysis per column, R-localization.

    For column ``c`` with local observations ``O`` (Gaspari-Cohn weights ``rho``, radius ``radius_km``;
    0 = own cell), ensemble-space analysis with ``Y`` the obs-space anomalies (N x m), ``X`` the state
    anomalies, ``d = y_O - mean(h . x_O)``:

        Pa = [(N - 1) / inflation^2 I + Y^T (rho / r) Y]^-1,   w = Pa Y^T (rho / r) d,
        W = [(N - 1) Pa]^(1/2) (symmetric),                      x_i^a = mean(x) + X (w + W e_i)

    Deterministic (no perturbed observations). Parameters as :func:`point_enkf_increments`; all members'
    columns are gathered on every rank (the local analysis needs them), so results are identical on any
    number of ranks.

    Returns
    -------
    dstate : ndarray (nlev, ncol, nloc)
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``.
    """
    p = column_problem(
        state, h, obs, obs_std, obs_mask=obs_mask, layout=layout, radius_km=radius_km, lat=lat, lon=lon,
        zero_std_ok=False, who="point LETKF",
    )  # fmt: skip
    if not inflation > 0:
        raise ValueError(f"inflation must be > 0, got {inflation}")
    lay, diag = p.layout, p.diag
    if not p.valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        return apply_update_mask(inflate_only(p.state, inflation, lay), update_mask), diag

    nmem = lay.nmem
    full = gather_members(p.state, lay)  # (nlev, ncol, N), identical on all ranks
    mean_x = full.mean(axis=2)
    hx = np.einsum("l,lcm->cm", p.h, full)  # (ncol, N)
    ybar = hx.mean(axis=1)
    yanom = hx - ybar[:, None]  # Y^T per column
    nb, _ = neighbourhoods(p.valid, lat, lon, radius_km, max_obs, neighbours)
    idx, use = nb.idx, nb.use
    rinv = np.where(use, nb.rho / np.where(p.valid, p.std, 1.0)[idx] ** 2, 0.0)  # (ncol, m) localized R^-1
    d = np.where(use, np.where(p.valid, p.obs, 0.0)[idx] - ybar[idx], 0.0)  # (ncol, m)
    if chunk is None:
        chunk = max(16, int(2e7 // (nmem * nmem)))
    nloc = p.state.shape[2]
    if inflation != 1.0:  # every column changes (inflated)
        xa = _local_analyses(full, mean_x, yanom, idx, rinv, d, inflation, lay.start, nloc, chunk)
        return apply_update_mask(xa - p.state, update_mask), diag
    # only the columns with a local observation change (no others: exactly unchanged, not x_mean + X e_i),
    # e.g. not a column block's halo; each column's analysis is its own, whatever else is analysed with it
    rows = np.flatnonzero(use.any(axis=1))
    dstate = np.zeros_like(p.state)
    part = np.asfortranarray(full[:, rows])  # the same memory order as ``full`` (the model's)
    xa = _local_analyses(
        part, mean_x[:, rows], yanom, idx[rows], rinv[rows], d[rows], 1.0, lay.start, nloc, chunk
    )
    dstate[:, rows] = xa - p.state[:, rows]
    return apply_update_mask(dstate, update_mask), diag
