"""Functional core of the column-wise (point) EnKF with perturbed observations and optional localization.

For every land column ``c`` the state is its layers ``x_c`` (nlev); observations are layer means
``y_o = h . x_o + e_o`` at land cells. With local observations ``O_c`` (own cell, or all cells within the
localization radius) and Gaspari-Cohn weights ``rho``:

    S_c = rho_OO * (HA_O HA_O^T) / (N - 1) + R_O          # (m, m) innovation covariance
    K_c = [rho_cO * (A_c HA_O^T) / (N - 1)] S_c^{-1}      # (nlev, m) gain
    x_c,i^a = x_c,i + K_c (y_O + eps_O,i - h . x_O,i)     # perturbed observations per member

Everything is vectorised over columns (batched solves of (m, m) systems); sums over members are reduced
in member order (:class:`landimg.parallel.MemberLayout`) so MPI runs are bitwise reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from landimg.da.inflation import adaptive_inflation, check_inflation, inflate_only
from landimg.da.localization import gaspari_cohn, great_circle_km, unit_xyz
from landimg.da.point_common import ColumnProblem, apply_update_mask, column_problem, local_observations
from landimg.parallel import MemberLayout, Purpose, member_rng

__all__ = ["point_enkf_increments"]

_log = logging.getLogger("landimg.analysis")


def _adapt(p: ColumnProblem, hx_all: np.ndarray, inflation: float, inflation_max: float) -> float:
    """Adaptive anomaly factor from the innovations over all usable observations (same on every rank)."""
    nmem, v = p.layout.nmem, p.valid
    hbar = hx_all.mean(axis=0)
    hvar = np.sum((hx_all - hbar) ** 2, axis=0) / (nmem - 1)
    lam, inflation = adaptive_inflation(
        float(np.sum((p.obs[v] - hbar[v]) ** 2)), float(np.sum(p.std[v] ** 2)),
        float(np.sum(hvar[v])), inflation, inflation_max,
    )  # fmt: skip
    p.diag.update(inflation=inflation, inflation_lambda=lam)
    _log.info("point_enkf: adaptive inflation lambda_hat=%.4f factor=%.4f", lam, inflation)
    return inflation


def _innovations(p, hx, hx_all, ha, inflation, perturb_obs, rngs, seed) -> np.ndarray:
    """Perturbed innovations (ncol, nloc) of the (inflated) local members; zero at unusable observations."""
    ncol, nloc = p.obs.shape[0], p.state.shape[2]
    if perturb_obs:
        if rngs is None:
            rngs = [member_rng(seed, i, Purpose.OBS) for i in p.layout.members]
        if len(rngs) != nloc:
            raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
        eps = (
            np.stack([g.standard_normal(ncol) for g in rngs], axis=1) * np.where(p.valid, p.std, 0.0)[:, None]
        )
    else:
        eps = np.zeros((ncol, nloc))
    hx_loc = hx.T  # (ncol, nloc); with inflation: H x_i of the inflated members (they are the background)
    if inflation != 1.0:
        hx_loc = hx_all.mean(axis=0)[:, None] + ha[p.layout.start : p.layout.stop].T
    return np.where(p.valid[:, None], p.obs[:, None] + eps - hx_loc, 0.0)


def _solve(p, ha, pxo, innov, idx, use, xyz, radius_km, chunk) -> tuple[np.ndarray, float]:
    """Increments (nlev, ncol, nloc) from batched local solves; also the summed top-layer own-cell gain."""
    ncol = p.state.shape[1]
    nmem, m = p.layout.nmem, idx.shape[1]
    half = radius_km / 2.0
    r = np.where(p.valid, p.std, 1.0) ** 2
    dstate = np.zeros_like(p.state)
    gain_sum = 0.0
    diag_idx = np.arange(m)
    for c0 in range(0, ncol, chunk):  # batches of columns bound the (chunk, m, m) work arrays
        sl = slice(c0, min(c0 + chunk, ncol))
        ii = idx[sl]
        hao = ha[:, ii]  # (N, nc, m)
        hao_t = np.ascontiguousarray(hao.transpose(1, 2, 0))  # (nc, m, N)
        s = np.matmul(hao_t, hao_t.transpose(0, 2, 1)) / (nmem - 1)  # HPH^T
        if m > 1:
            q = xyz[ii]
            chord2 = np.clip(2.0 - 2.0 * np.matmul(q, q.transpose(0, 2, 1)), 0.0, 4.0)
            s *= gaspari_cohn(great_circle_km(np.sqrt(chord2)) / half)
        u = use[sl]
        s *= u[:, :, None] & u[:, None, :]
        s[:, diag_idx, diag_idx] += np.where(u, r[ii], 1.0)  # + R; unused obs: decoupled unit rows
        gain_t = np.linalg.solve(s, pxo[:, sl].transpose(1, 2, 0))  # (nc, m, nlev) = K^T
        dstate[:, sl] = np.einsum("cml,cmk->lck", gain_t, innov[ii])
        gain_sum += float(np.sum(gain_t[:, 0, 0]))
    return dstate, gain_sum


def point_enkf_increments(
    state: np.ndarray,
    h: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    *,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    radius_km: float = 0.0,
    max_obs: int = 64,
    seed: int = 0,
    rngs: Sequence[np.random.Generator] | None = None,
    perturb_obs: bool = True,
    inflation: float = 1.0,
    inflation_mode: str = "fixed",
    inflation_max: float = 2.0,
    obs_mask: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: MemberLayout | None = None,
    chunk: int = 4096,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Point (column-wise) EnKF increments of the layer state.

    Parameters
    ----------
    state : ndarray (nlev, ncol, nloc)
        This rank's members' layer values (e.g. theta, m3/m3).
    h : ndarray (nlev,)
        Observation operator weights: ``obs = h . state`` (overlap-weighted layer mean).
    obs : ndarray (ncol,)
        Observed layer value per column; NaN = missing (masked, counted).
    obs_std : float or ndarray (ncol,)
        Observation error std (>= 0; ``inf`` = unused).
    lat, lon, radius_km, max_obs :
        Column coordinates (degrees, needed when ``radius_km > 0``); Gaspari-Cohn localization radius
        (weight 0 beyond it; 0 = own cell only); at most this many nearest observations per column.
    seed, rngs, perturb_obs :
        Perturbed observations from ``member_rng(seed, i, Purpose.OBS)`` (or the given generators,
        one per local member, advanced in place); ``perturb_obs=False``: deterministic variant.
    inflation, inflation_mode, inflation_max :
        Multiplicative anomaly inflation (used for the gain, and returned in the increment); adaptive: the
        factor is estimated from this analysis' innovations over all usable observations
        (:func:`landimg.da.inflation.adaptive_inflation`, from the gathered predicted observations, so
        identical on any number of ranks), clipped to ``[inflation, inflation_max]``.
    obs_mask : ndarray of bool (ncol,), optional
        False = observation not used.
    update_mask : ndarray of bool (ncol, nloc) or (nlev, ncol, nloc), optional
        False = not updated (frozen layers, snow).
    layout, chunk :
        MPI member layout (default serial); columns per batch of local solves (bounds memory).

    Returns
    -------
    dstate : ndarray (nlev, ncol, nloc)
        Increments (before any bounds).
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``, ``mean_gain_top`` (mean gain of layer 1 to its own-cell obs);
        adaptive mode also ``inflation`` (anomaly factor applied) and ``inflation_lambda`` (unclipped
        variance-ratio estimate, NaN without usable observations).
    """
    p = column_problem(
        state, h, obs, obs_std, obs_mask=obs_mask, layout=layout, radius_km=radius_km, lat=lat, lon=lon,
        zero_std_ok=True, who="point EnKF",
    )  # fmt: skip
    check_inflation(inflation, inflation_mode, inflation_max)
    lay, diag = p.layout, p.diag
    if inflation_mode == "adaptive":
        diag.update(inflation=float(inflation), inflation_lambda=float("nan"))
    if not p.valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        return apply_update_mask(inflate_only(p.state, inflation, lay), update_mask), diag

    nlev, ncol, _ = p.state.shape
    hx = np.einsum("l,lcm->mc", p.h, p.state)  # (nloc, ncol) predicted observations
    hx_all = lay.allgather_members(hx)  # (N, ncol), identical on all ranks
    if inflation_mode == "adaptive":
        inflation = _adapt(p, hx_all, inflation, inflation_max)
    ha = (hx_all - hx_all.mean(axis=0)) * inflation  # HA: obs-space anomalies
    mean_x = lay.mean(p.state, axis=2)  # (nlev, ncol)
    xa = (p.state - mean_x[:, :, None]) * inflation  # A: state anomalies (local members)
    idx, rho_xo, use = local_observations(p.valid, lat, lon, radius_km, max_obs)
    m = idx.shape[1]

    def cross_terms():  # member k's contribution to A HA^T at the local observations
        for k, g in enumerate(lay.members):
            yield xa[:, :, k][:, :, None] * ha[g][idx][None, :, :]

    pxo = rho_xo[None] * lay.ordered_sum_terms(cross_terms(), (nlev, ncol, m)) / (lay.nmem - 1)
    innov = _innovations(p, hx, hx_all, ha, inflation, perturb_obs, rngs, seed)
    xyz = (
        None
        if radius_km <= 0
        else unit_xyz(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    )
    dstate, gain_sum = _solve(p, ha, pxo, innov, idx, use, xyz, radius_km, chunk)
    diag["mean_gain_top"] = gain_sum / ncol
    if inflation != 1.0:
        dstate += xa - (p.state - mean_x[:, :, None])  # the inflated anomalies become the background
    return apply_update_mask(dstate, update_mask), diag
