"""Functional core of the column-wise LETKF (Hunt et al. 2007): a deterministic square-root local analysis
per column in ensemble space, with R-localization, a diagonal or a correlated local ``R``, and an optional
bias-aware two-stage analysis.

**R-localization.** With ``D = diag(rho)`` the Gaspari-Cohn weights of a column's local observations
``O``, the localized precision is ``R_loc^-1 = D^1/2 R_O^-1 D^1/2`` (``R_loc = D^-1/2 R_O D^-1/2``, the
observation errors inflated by ``1 / sqrt(rho)`` at both ends; Miyoshi, Kalnay & Li 2013). For a diagonal
``R`` this is the usual ``rho / r``; for a correlated ``R`` (:class:`landimg.da.obs_covariance.ObsCovariance`)
the ensemble space needs ``Y^T R_loc^-1 Y`` and ``Y^T R_loc^-1 d``: one batched solve ``R_O Z = D^1/2
[Y d]`` per column (``numpy.linalg.solve``, LU of the m x m local block; ``R_O`` itself is never inverted
and never divided by the weights, so observations at the edge of the radius stay well conditioned).

**Bias-aware two-stage analysis** (Dee & da Silva 1998, with ``P_b = gamma P_f``; De Lannoy et al. 2007;
the LETKF form of the curvelet filter's stage, :mod:`landimg.da.curvelet_hybrid`). A forecast bias ``b_f``
(background minus truth, every layer of every column) is carried between analyses. Stage 1 estimates it
from the ensemble-mean innovation ``d_b = y - H (xbar - b_f)`` with its own local analysis (radius
``bias_radius_km``):

    b_a = b_f - gamma / (1 + gamma) X [(N - 1) / ((1 + gamma) rho^2) I + Y^T R_loc^-1 Y]^-1 Y^T R_loc^-1 d_b

(``= b_f - P_b H^T (H (P_b + P_f) H^T + R)^-1 d_b`` by the Woodbury identity, with the localized
``P_f = rho^2 X X^T / (N - 1)``); stage 2 is the usual analysis of the corrected members ``x_i - b_a``.
Columns without a local observation keep ``b_a = b_f``.

Every column's computation uses only its own local observations in their (nearest-first) order; the
diagonal-R analysis without a bias stage is the first version's arithmetic (bit for bit), the correlated
and bias paths batch the columns by equal observation count (each system exactly its column's size), so
a column's result does not depend on which other columns are analysed with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.inflation import inflate_only
from landimg.da.localization import Neighbourhoods
from landimg.da.obs_covariance import ObsCovariance
from landimg.da.point_common import apply_update_mask, column_problem, gather_members, neighbourhoods
from landimg.layout import Layout

__all__ = ["LetkfBias", "point_letkf_increments"]


@dataclass(frozen=True)
class LetkfBias:
    """Stage 1 of the two-stage analysis: its inputs and settings.

    Attributes
    ----------
    forecast : ndarray (nlev, ncol)
        Bias forecast ``b_f`` of every layer and column (background minus truth, state units).
    gamma : float
        ``P_b = gamma P_f`` (> 0).
    neighbours : Neighbourhoods or None
        The local observations of the bias analysis (None: those of the state analysis).
    """

    forecast: np.ndarray
    gamma: float
    neighbours: Neighbourhoods | None = None


class _Local:
    """The local observation-space products of one column batch: ``C = Y^T R_loc^-1 Y`` (nc, N, N) and
    ``Y^T R_loc^-1 d`` for any innovation ``d`` (ncol,) indexed by the batch's local observations."""

    def __init__(self, yanom, nb, cols, cov: ObsCovariance | None, rinv, width: int | None) -> None:
        self.cols, self.nb = cols, nb
        self.idx = nb.idx[cols, :width]
        yl = yanom[self.idx]  # (nc, m, N)
        if cov is None:  # diagonal R: rho / r, today's arithmetic
            self.cmat = yl.transpose(0, 2, 1) * rinv[cols, :width][:, None, :]  # Y^T R^-1 (nc, N, m)
            self.c = np.matmul(self.cmat, yl)
        else:
            use = nb.use[cols, :width]
            self.sq = np.where(use, np.sqrt(np.where(use, nb.rho[cols, :width], 0.0)), 0.0)  # D^1/2
            yh = yl * self.sq[:, :, None]
            z = np.linalg.solve(cov.local_blocks(self.idx, use), yh)  # R_O^-1 D^1/2 Y
            self.cmat = (z * self.sq[:, :, None]).transpose(0, 2, 1)  # Y^T R_loc^-1
            c = np.matmul(yh.transpose(0, 2, 1), z)
            self.c = 0.5 * (c + c.transpose(0, 2, 1))

    def project(self, d: np.ndarray) -> np.ndarray:
        """``Y^T R_loc^-1 d_O`` (nc, N) of an innovation ``d`` given per local observation (nc, m)."""
        return np.einsum("cnm,cm->cn", self.cmat, d)


#: elements of a batch's (nc, m, m) local blocks in the correlated path (~4 MB: cache-sized work arrays)
BLOCK_ELEMENTS = 1 << 19


def _batches(nb: Neighbourhoods, chunk: int) -> Iterator[tuple[np.ndarray, int]]:
    """Column batches ``(columns, width)`` of the correlated-R and bias paths: the columns with
    observations grouped by their count (in column order within a group), each system of exactly that
    size (a column's analysis does not depend on the other columns of its batch or block), at most
    ``chunk`` columns and about :data:`BLOCK_ELEMENTS` block elements per batch. Used observations are a
    prefix of each row (nearest first)."""
    count = nb.use.sum(axis=1)
    for k in np.unique(count[count > 0]):
        cols = np.flatnonzero(count == k)
        step = max(1, min(chunk, BLOCK_ELEMENTS // int(k * k)))
        for c0 in range(0, cols.size, step):
            yield cols[c0 : c0 + step], int(k)


def _state_analysis(loc: _Local, xa_all, mean_x, d_o, inflation, start, nloc) -> np.ndarray:
    """Analysis members (nlev, nc, nloc) of the batch ``loc`` from the innovation ``d_o`` (nc, m)."""
    nmem = xa_all.shape[2]
    sl = loc.cols
    amat = (nmem - 1) / inflation**2 * np.eye(nmem) + loc.c  # (nc, N, N)
    lam, vec = np.linalg.eigh(amat)
    pa = np.matmul(vec / lam[:, None, :], vec.transpose(0, 2, 1))
    wsq = np.matmul(vec * np.sqrt((nmem - 1) / lam)[:, None, :], vec.transpose(0, 2, 1))
    wbar = np.einsum("cnk,ck->cn", pa, loc.project(d_o))
    t = wbar[:, :, None] + wsq[:, :, start : start + nloc]  # (nc, N, nloc): weights of local members
    return mean_x[:, sl, None] + np.einsum("lcn,cnk->lck", xa_all[:, sl], t)


def _bias_increment(loc: _Local, xa_all, d_o, inflation, gamma) -> np.ndarray:
    """``b_f - b_a`` (nlev, nc) of the batch ``loc`` from the bias innovation ``d_o`` (nc, m)."""
    nmem = xa_all.shape[2]
    amat = (nmem - 1) / ((1.0 + gamma) * inflation**2) * np.eye(nmem) + loc.c
    w = np.linalg.solve(amat, loc.project(d_o)[:, :, None])[:, :, 0]
    return gamma / (1.0 + gamma) * np.einsum("lcn,cn->lc", xa_all[:, loc.cols], w)


def _white_analyses(full, mean_x, yanom, idx, rinv, d, inflation, start, nloc, chunk) -> np.ndarray:
    """Analysis of the local members (nlev, ncol, nloc) from all members' columns ``full`` (nlev, ncol, N) with
    a diagonal R, no bias stage: the arithmetic of the first version (issue 17's column subsets), bit for bit."""
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


def _white(full, mean_x, yanom, ybar, nb, rinv, p, inflation, lay, chunk, update_mask) -> np.ndarray:
    """Increments of the diagonal-R LETKF without a bias stage (the first version's arithmetic, bit for
    bit, with issue 17's column subsets)."""
    idx, use = nb.idx, nb.use
    d = np.where(use, np.where(p.valid, p.obs, 0.0)[idx] - ybar[idx], 0.0)  # (ncol, m)
    nloc = p.state.shape[2]
    if inflation != 1.0:  # every column changes (inflated)
        xa = _white_analyses(full, mean_x, yanom, idx, rinv, d, inflation, lay.start, nloc, chunk)
        return apply_update_mask(xa - p.state, update_mask)
    # only the columns with a local observation change (no others: exactly unchanged, not x_mean + X e_i),
    # e.g. not a column block's halo; each column's analysis is its own, whatever else is analysed with it
    rows = np.flatnonzero(use.any(axis=1))
    dstate = np.zeros_like(p.state)
    part = np.asfortranarray(full[:, rows])  # the same memory order as ``full`` (the model's)
    xa = _white_analyses(
        part, mean_x[:, rows], yanom, idx[rows], rinv[rows], d[rows], 1.0, lay.start, nloc, chunk
    )
    dstate[:, rows] = xa - p.state[:, rows]
    return apply_update_mask(dstate, update_mask)


def _localized_rinv(nb: Neighbourhoods, valid: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The localized diagonal precision ``rho / r`` (ncol, m) of every column's local observations."""
    return np.where(nb.use, nb.rho / np.where(valid, std, 1.0)[nb.idx] ** 2, 0.0)


def _local_innovation(nb: Neighbourhoods, cols, width, innov: np.ndarray) -> np.ndarray:
    """A column innovation ``innov`` (ncol,) at the batch's local observations (nc, m), 0 where unused."""
    return np.where(nb.use[cols, :width], innov[nb.idx[cols, :width]], 0.0)


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
    layout: Layout | None = None,
    neighbours: Neighbourhoods | None = None,
    chunk: int | None = None,
    obs_cov: ObsCovariance | None = None,
    bias: LetkfBias | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """LETKF increments (Hunt et al. 2007), one local analysis per column, R-localization.

    For column ``c`` with local observations ``O`` (Gaspari-Cohn weights ``rho``, radius ``radius_km``;
    0 = own cell), ensemble-space analysis with ``Y`` the obs-space anomalies (N x m), ``X`` the state
    anomalies, ``d = y_O - mean(h . x_O)``, ``R_loc^-1 = D^1/2 R_O^-1 D^1/2`` (``D = diag(rho)``; ``rho / r``
    for a diagonal ``R``):

        Pa = [(N - 1) / inflation^2 I + Y^T R_loc^-1 Y]^-1,   w = Pa Y^T R_loc^-1 d,
        W = [(N - 1) Pa]^(1/2) (symmetric),                    x_i^a = mean(x) + X (w + W e_i)

    Deterministic (no perturbed observations). Parameters as :func:`point_enkf_increments`; all members'
    columns are gathered on every rank (the local analysis needs them), so results are identical on any
    number of ranks. ``chunk``: columns analysed together (default: local anomalies (chunk, m, N) of about
    :data:`BLOCK_ELEMENTS` elements, 1,024 columns at m = 64, N = 8; the numbers do not depend on it).

    Parameters
    ----------
    obs_cov : ObsCovariance, optional
        The observation-error covariance between the columns (:class:`ObsCovariance`); None: diagonal
        ``R`` of ``obs_std`` (the arithmetic of the first version, bit for bit). Its diagonal must be
        ``obs_std^2``.
    bias : LetkfBias, optional
        Bias-aware two-stage analysis (module docstring): the bias forecast, ``gamma`` and the bias
        analysis' neighbourhoods. The analysis ``b_a`` is returned in the diagnostics (``"bias"``,
        (nlev, ncol)); without usable observations there is no bias stage (no ``"bias"``, nothing
        removed).

    Returns
    -------
    dstate : ndarray (nlev, ncol, nloc)
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``; with ``bias`` and usable observations also ``bias`` (nlev, ncol).
    """
    p = column_problem(
        state,
        h,
        obs,
        obs_std,
        obs_mask=obs_mask,
        layout=layout,
        radius_km=radius_km,
        lat=lat,
        lon=lon,
        zero_std_ok=False,
        who="point LETKF",
    )
    if not inflation > 0:
        raise ValueError(f"inflation must be > 0, got {inflation}")
    lay, diag = p.layout, p.diag
    nlev, ncol, nloc = p.state.shape
    if bias is not None:
        b_f = np.asarray(bias.forecast, dtype=np.float64)
        if b_f.shape != (nlev, ncol):
            raise ValueError(f"bias forecast must have shape ({nlev}, {ncol}), got {b_f.shape}")
        if not (np.isfinite(bias.gamma) and bias.gamma > 0):
            raise ValueError(f"bias gamma must be finite and > 0, got {bias.gamma}")
    if obs_cov is not None and obs_cov.white_var.shape != (ncol,):
        raise ValueError(f"obs_cov holds {obs_cov.white_var.shape[0]} columns, expected {ncol}")
    if not p.valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        return apply_update_mask(inflate_only(p.state, inflation, lay), update_mask), diag

    nmem = lay.nmem
    full = gather_members(p.state, lay)  # (nlev, ncol, N), identical on all ranks
    mean_x = full.mean(axis=2)
    hx = np.einsum("l,lcm->cm", p.h, full)  # (ncol, N)
    ybar = hx.mean(axis=1)
    yanom = hx - ybar[:, None]  # Y^T per column
    xa_all = full - mean_x[:, :, None]  # X
    nb, _ = neighbourhoods(p.valid, lat, lon, radius_km, max_obs, neighbours)
    exact = obs_cov is not None
    rinv = None if exact else _localized_rinv(nb, p.valid, p.std)
    if chunk is None:  # (chunk, m, N) local anomalies of about BLOCK_ELEMENTS: each column's analysis is its
        chunk = max(16, BLOCK_ELEMENTS // (nb.m * nmem))  # own, so the batches bound memory, not numbers
    if not exact and bias is None:
        return _white(full, mean_x, yanom, ybar, nb, rinv, p, inflation, lay, chunk, update_mask), diag
    y_obs = np.where(p.valid, p.obs, 0.0)
    if bias is not None:  # stage 1; stage 2 analyses the corrected members x_i - b_a
        nbb = nb if bias.neighbours is None else bias.neighbours
        rinv_b = rinv if (exact or nbb is nb) else _localized_rinv(nbb, p.valid, p.std)
        innov_b = y_obs - (ybar - np.einsum("l,lc->c", p.h, b_f))  # einsum, not BLAS: the same bits whatever the columns
        b_a = b_f.copy()
        for cols, width in _batches(nbb, chunk):
            loc = _Local(yanom, nbb, cols, obs_cov, rinv_b, width)
            d_o = _local_innovation(nbb, cols, width, innov_b)
            b_a[:, cols] -= _bias_increment(loc, xa_all, d_o, inflation, bias.gamma)
        diag["bias"] = b_a
        mean_x = mean_x - b_a
        ybar = ybar - np.einsum("l,lc->c", p.h, b_a)

    innov = y_obs - ybar
    # columns without observations are in no batch: the inflated (bias-corrected) background
    xa = mean_x[:, :, None] + inflation * xa_all[:, :, lay.start : lay.start + nloc]
    for cols, width in _batches(nb, chunk):
        loc = _Local(yanom, nb, cols, obs_cov, rinv, width)
        d_o = _local_innovation(nb, cols, width, innov)
        xa[:, cols] = _state_analysis(loc, xa_all, mean_x, d_o, inflation, lay.start, nloc)
    dstate = xa - p.state
    if inflation == 1.0:  # no local observation: exactly unchanged (not x_mean + X e_i), but for the bias
        none = ~nb.use.any(axis=1)
        dstate[:, none] = 0.0 if bias is None else -diag["bias"][:, none, None]
    return apply_update_mask(dstate, update_mask), diag
