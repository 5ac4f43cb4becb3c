"""Functional core of the column-wise (point) EnKF with perturbed observations and localization.

For every land column ``c`` the state is its layers ``x_c`` (nlev); observations are layer means
``y_o = h . x_o + e_o`` at land cells. With the local observations ``O_c`` (every usable observation
within the localization radius, nearest first, at most ``max_obs``; :func:`observed_neighbourhoods`) and
Gaspari-Cohn weights ``rho``:

    S_c = rho_OO * (HA_O HA_O^T) / (N - 1) + R_O          # (m, m) innovation covariance
    K_c = [rho_cO * (A_c HA_O^T) / (N - 1)] S_c^{-1}      # (nlev, m) gain
    x_c,i^a = x_c,i + K_c (y_O + eps_O,i - h . x_O,i)     # perturbed observations per member

The gain depends only on all members' columns, which every rank gathers (a few MB): every rank computes
the same ``K`` from the same arrays, so MPI runs are bitwise reproducible; each rank then updates its own
members with their own perturbed observations. Local solves are batched over columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from landimg.da.inflation import check_inflation, inflate_only, smoothed_inflation
from landimg.da.localization import Neighbourhoods, observation_pair_weights
from landimg.da.point_common import (
    ColumnProblem,
    apply_update_mask,
    column_problem,
    gather_members,
    neighbourhoods,
)
from landimg.layout import Layout, chunked_sum, column_chunks
from landimg.parallel import Purpose, member_rng

__all__ = ["point_enkf_increments"]

_log = logging.getLogger("landimg.analysis")


def _adapt(p: ColumnProblem, hx_all: np.ndarray, inflation: float, inflation_max: float) -> float:
    """Single-analysis adaptive factor from the innovations over all usable observations (every rank):
    :func:`landimg.da.inflation.smoothed_inflation` without time smoothing and without de-biasing."""
    lam, _, inflation = smoothed_inflation(
        hx_all, p.obs, p.std, p.valid, debias=False, lower=inflation, upper=inflation_max
    )
    p.diag.update(inflation=inflation, inflation_lambda=lam)
    _log.info("point_enkf: adaptive inflation lambda_hat=%.4f factor=%.4f", lam, inflation)
    return inflation


def _perturbations(p: ColumnProblem, perturb_obs: bool, rngs, seed: int, given=None) -> np.ndarray:
    """Observation perturbations of the local members (ncol, nloc); one draw per column and member
    (``given``: drawn by the host, zeroed where the observation is not usable)."""
    ncol, nloc = p.obs.shape[0], p.state.shape[2]
    if not perturb_obs:
        return np.zeros((ncol, nloc))
    if given is not None:
        given = np.asarray(given, dtype=np.float64)
        if given.shape != (ncol, nloc):
            raise ValueError(f"perturbations must have shape ({ncol}, {nloc}), got {given.shape}")
        return np.where(p.valid[:, None], given, 0.0)
    if rngs is None:
        rngs = [member_rng(seed, i, Purpose.OBS) for i in p.layout.members]
    if len(rngs) != nloc:
        raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
    return np.stack([g.standard_normal(ncol) for g in rngs], axis=1) * np.where(p.valid, p.std, 0.0)[:, None]


def _width(use: np.ndarray) -> int:
    """Local systems' size for a batch's ``use`` (nc, m): its last used position + 1 (at least 1).

    Entries beyond it are unused in every column of the batch (decoupled unit rows of the solve, zero
    gain): dropping them solves the same equations at (w/m)^3 of the cost. Neighbours are sorted by
    distance and padded at the end, so w is the batch's largest observation count; batches are made of
    columns with similar counts (:func:`_batches`), so w is close to each column's own count.
    """
    used = np.flatnonzero(use.any(axis=0))
    return int(used[-1]) + 1 if used.size else 1


def _batches(use: np.ndarray, chunk: int, window: np.ndarray) -> list[np.ndarray]:
    """Column batches of at most ``chunk`` for the local solves, from ``use`` (ncol, m).

    A batch never mixes columns of two windows: the fixed column chunks of the domain (``window`` (ncol,):
    the chunk of every column), so a batch and its system size :func:`_width` are the same however the
    columns are split over ranks (the batched solves are then the same bits). Within a window the columns
    are sorted by their observation count (stable) before being cut into batches: a batch's system size
    is then close to each of its columns' own count, and its distinct observations stay few (the dense
    pair-weight block of :func:`landimg.da.localization.observation_pair_weights`). Columns without
    observations get no increment and are left out.
    """
    count = use.sum(axis=1)
    rows = np.lexsort((count, window))  # by window, then by count (stable: then by position)
    rows = rows[count[rows] > 0]
    out = []
    for cols in np.split(rows, np.flatnonzero(np.diff(window[rows])) + 1):
        out.extend(cols[c0 : c0 + chunk] for c0 in range(0, cols.size, chunk))
    return out


def _local_solves(full, hx_all, innov, p, nb, xyz, chunk, window) -> tuple[np.ndarray, np.ndarray]:
    """Increments of the local members (nlev, ncol, nloc) and every column's top-layer gain to its nearest
    observation (ncol,) (0 without one).

    ``full`` (nlev, ncol, N) all members (already inflated), ``hx_all`` (ncol, N) their predicted
    observations, ``innov`` (ncol, nloc) the local members' innovations, ``window`` (ncol,) the fixed
    chunk of every column (:func:`_batches`).
    """
    nlev, ncol, nmem = full.shape
    anom = full - full.mean(axis=2)[:, :, None]  # A (nlev, ncol, N)
    ha = hx_all - hx_all.mean(axis=1)[:, None]  # HA (ncol, N)
    r = np.where(p.valid, p.std, 1.0) ** 2
    dstate = np.zeros((nlev, ncol, innov.shape[1]))
    gain = np.zeros(ncol)
    for sl in _batches(nb.use, chunk, window):  # a batch fixes the systems' size w (the same on any layout)
        w = _width(nb.use[sl])
        ii, u = nb.idx[sl, :w], nb.use[sl, :w]
        gain_t = np.empty((sl.size, w, nlev))  # K^T of every column of the batch
        for c0 in range(0, sl.size, _SOLVE_ROWS):  # its (nc, w, w) work arrays a few columns at a time
            part = slice(c0, c0 + _SOLVE_ROWS)
            gain_t[part] = _gain_transposed(ha, anom, r, nb, xyz, sl[part], w, nmem)
        dstate[:, sl] = np.einsum("cml,cmk->lck", gain_t, np.where(u[:, :, None], innov[ii], 0.0))
        gain[sl] = gain_t[:, 0, 0]
    return dstate, gain


#: Columns whose (w, w) systems are built and solved together within a batch: each column's system and
#: solve are its own (the same bits whatever else is solved with it), so this bounds the work arrays
#: (~4 x 64 x w^2 x 8 bytes: 8 MB at w = 64) without changing a number; the batch (``chunk`` columns, at
#: most 256) still fixes the system size w.
_SOLVE_ROWS = 64


def _gain_transposed(ha, anom, r, nb, xyz, cols, w, nmem) -> np.ndarray:
    """``K^T`` (nc, w, nlev) of the columns ``cols`` with systems of size ``w``: the localized
    ``HPH^T + R`` (unused entries: decoupled unit rows) solved against the localized ``HA_O A_c^T``."""
    ii, u, diag_idx = nb.idx[cols, :w], nb.use[cols, :w], np.arange(w)
    y = ha[ii]  # (nc, w, N)
    s = np.matmul(y, y.transpose(0, 2, 1)) / (nmem - 1)  # HPH^T
    s *= observation_pair_weights(xyz, nb, cols, w)  # localization; 0 unless both observations are used
    s[:, diag_idx, diag_idx] += np.where(u, r[ii], 1.0)  # + R
    pxo = np.matmul(y, anom[:, cols].transpose(1, 2, 0)) / (nmem - 1)  # (HA_O A_c^T): (nc, w, nlev)
    pxo *= nb.rho[cols, :w][:, :, None]
    return np.linalg.solve(s, pxo)


def point_enkf_increments(
    state: np.ndarray,
    h: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    *,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    radius_km: float = 0.0,
    max_obs: int | None = None,
    seed: int = 0,
    rngs: Sequence[np.random.Generator] | None = None,
    perturb_obs: bool = True,
    inflation: float = 1.0,
    inflation_mode: str = "fixed",
    inflation_max: float = 2.0,
    obs_mask: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: Layout | None = None,
    neighbours: Neighbourhoods | None = None,
    chunk: int = 256,
    perturbations: np.ndarray | None = None,
    window: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Point (column-wise) EnKF increments of the layer state.

    Parameters
    ----------
    state : ndarray (nlev, ncol, nloc)
        This rank's members' layer values (e.g. theta, m3/m3).
    h : ndarray (nlev,)
        Observation operator weights: ``obs = h . state`` (overlap-weighted layer mean).
    obs, obs_std : ndarray (ncol,), float or ndarray (ncol,)
        Observed layer value per column (NaN = missing: masked, counted); its error std (>= 0; ``inf`` = unused).
    lat, lon, radius_km, max_obs :
        Column coordinates (degrees, needed when ``radius_km > 0``); Gaspari-Cohn localization radius
        (weight 0 beyond it; 0 = own cell only); at most this many nearest *observations* per column
        (None: every usable observation within the radius).
    seed, rngs, perturb_obs :
        Perturbed observations from ``member_rng(seed, i, Purpose.OBS)`` (or the given generators,
        one per local member, advanced in place); ``perturb_obs=False``: deterministic variant.
    inflation, inflation_mode, inflation_max :
        Multiplicative anomaly inflation of every layer; ``"adaptive"``: the single-analysis estimate of
        :func:`landimg.da.inflation.smoothed_inflation` without time smoothing or de-biasing (the
        methods use the same estimator with their smoothing state and de-biasing), clipped to ``[inflation, inflation_max]``.
    obs_mask, update_mask :
        False = observation not used (ncol,); False = not updated ((ncol, nloc) or (nlev, ncol, nloc)).
    layout, neighbours, chunk :
        MPI member layout (default serial); precomputed :class:`Neighbourhoods` of this observation
        pattern and radius (e.g. cached by the host; default: searched here); columns per batch.
    perturbations : ndarray (ncol, nloc), optional
        Observation perturbations of the local members drawn by the host (``perturb_obs``); default:
        drawn here from ``rngs`` (white, ``obs_std``).
    window : ndarray of int (ncol,), optional
        The fixed chunk of the domain every column belongs to (batches never mix two); default: the
        fixed chunking of the columns given (:func:`landimg.layout.column_chunks`), the whole domain.

    Returns
    -------
    dstate : ndarray (nlev, ncol, nloc)
        Increments (before any bounds).
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``, ``mean_gain_top`` (mean gain of layer 1 to its nearest observation,
        summed with the fixed chunking), ``gain_top`` (ncol,) that gain per column (0 without an
        observation); adaptive mode also ``inflation`` and ``inflation_lambda``.
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

    full = gather_members(p.state, lay)  # (nlev, ncol, N), identical on all ranks
    hx_all = np.einsum("l,lcm->cm", p.h, full)  # (ncol, N) predicted observations
    if inflation_mode == "adaptive":
        inflation = _adapt(p, hx_all, inflation, inflation_max)
    if inflation != 1.0:  # the inflated members are the background
        mean = full.mean(axis=2)[:, :, None]
        full = mean + inflation * (full - mean)
        hx_all = np.einsum("l,lcm->cm", p.h, full)
    local = full[:, :, lay.start : lay.stop]
    eps = _perturbations(p, perturb_obs, rngs, seed, perturbations)
    innov = np.where(p.valid[:, None], p.obs[:, None] + eps - hx_all[:, lay.start : lay.stop], 0.0)
    nb, xyz = neighbourhoods(p.valid, lat, lon, radius_km, max_obs, neighbours)
    ncol = p.obs.shape[0]
    if window is None:
        window = np.repeat(np.arange(column_chunks(ncol).size - 1), np.diff(column_chunks(ncol)))
    dstate, gain = _local_solves(full, hx_all, innov, p, nb, xyz, chunk, np.asarray(window))
    diag["gain_top"], diag["mean_gain_top"] = gain, float(chunked_sum(gain)) / ncol
    dstate += local - p.state  # the inflation (zero without)
    return apply_update_mask(dstate, update_mask), diag
