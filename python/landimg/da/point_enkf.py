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

from landimg.parallel import MemberLayout, Purpose, SerialComm, member_rng

__all__ = [
    "INFLATION_MODES",
    "adaptive_inflation",
    "apply_bounded",
    "check_inflation",
    "gaspari_cohn",
    "local_neighbours",
    "point_enkf_increments",
    "point_letkf_increments",
]

_log = logging.getLogger("landimg.analysis")
_EARTH_RADIUS_KM = 6371.0
INFLATION_MODES = ("fixed", "adaptive")


def check_inflation(inflation: float, inflation_mode: str, inflation_max: float) -> None:
    """Raise ValueError unless the inflation settings are consistent (shared by both EnKFs).

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


def gaspari_cohn(r: np.ndarray) -> np.ndarray:
    """Gaspari & Cohn (1999) 5th-order compactly supported correlation, ``r`` = distance / half-width.

    1 at r = 0, 0 for r >= 2.
    """
    r = np.minimum(np.abs(np.asarray(r, dtype=np.float64)), 2.0)
    # Horner forms of the two pieces, evaluated everywhere and selected (faster than masked indexing)
    inner = (((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r * r + 1.0
    with np.errstate(divide="ignore"):
        outer = ((((r / 12.0 - 0.5) * r + 0.625) * r + 5.0 / 3.0) * r - 5.0) * r + 4.0 - 2.0 / (3.0 * r)
    return np.where(r <= 1.0, inner, np.where(r < 2.0, outer, 0.0))


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _great_circle_km(chord: np.ndarray) -> np.ndarray:
    return 2.0 * _EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def local_neighbours(
    lat: np.ndarray, lon: np.ndarray, radius_km: float, max_obs: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Columns within ``radius_km`` of every column (itself first), nearest first.

    Parameters
    ----------
    lat, lon : ndarray (ncol,)
        Column coordinates, degrees.
    radius_km : float
        Cut-off (Gaspari-Cohn weight reaches 0 there); 0 = own cell only.
    max_obs : int
        At most this many neighbours (the nearest).

    Returns
    -------
    idx : ndarray of int (ncol, m)
        Neighbour column indices; padded entries repeat the column itself.
    dist : ndarray (ncol, m)
        Great-circle distances, km; ``inf`` for padded entries.
    """
    ncol = lat.size
    if radius_km <= 0:
        return np.arange(ncol)[:, None], np.zeros((ncol, 1))
    from scipy.spatial import cKDTree

    xyz = _xyz(lat, lon)
    chord = 2.0 * np.sin(min(radius_km / _EARTH_RADIUS_KM, np.pi) / 2.0)
    tree = cKDTree(xyz)
    k = int(min(max_obs, ncol))
    dchord, idx = tree.query(xyz, k=k, distance_upper_bound=chord * (1 + 1e-12))
    dchord, idx = dchord.reshape(ncol, k), idx.reshape(ncol, k)
    pad = idx >= ncol
    idx = np.where(pad, np.arange(ncol)[:, None], idx)
    dist = np.where(pad, np.inf, _great_circle_km(np.where(pad, 0.0, dchord)))
    keep = int(np.max(np.sum(~pad, axis=1)))
    return idx[:, :keep], dist[:, :keep]


def apply_bounded(
    theta: np.ndarray, dtheta: np.ndarray, theta_s: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Apply increments keeping 0 <= theta <= theta_s (array-only stand-in for ``add_soil_water``).

    Returns ``(applied, clipped)`` with ``applied + clipped == dtheta`` (same shape as ``theta``).
    """
    new = np.clip(theta + dtheta, 0.0, np.broadcast_to(theta_s, theta.shape))
    applied = new - theta
    return applied, dtheta - applied


def _apply_update_mask(dstate: np.ndarray, update_mask: np.ndarray | None) -> np.ndarray:
    """Zero the increments (nlev, ncol, nloc) where ``update_mask`` is False.

    ``update_mask``: bool (ncol, nloc) or (nlev, ncol, nloc), or None (no masking).
    """
    if update_mask is None:
        return dstate
    nlev, ncol, nloc = dstate.shape
    um = np.asarray(update_mask, dtype=bool)
    if um.shape == (ncol, nloc):
        um = um[None]
    if um.shape not in ((1, ncol, nloc), (nlev, ncol, nloc)):
        raise ValueError(f"update_mask must be (ncol, nloc) or (nlev, ncol, nloc), got {um.shape}")
    dstate *= um
    return dstate


def _column_inputs(
    state: np.ndarray, h: np.ndarray, obs: np.ndarray, obs_std: float | np.ndarray, *, zero_std_ok: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 (state (nlev, ncol, nloc), h (nlev,), obs (ncol,), obs_std broadcast to (ncol,))."""
    state = np.asarray(state, dtype=np.float64)
    if state.ndim != 3:
        raise ValueError(f"state must be (nlev, ncol, nloc), got shape {state.shape}")
    nlev, ncol, _ = state.shape
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (nlev,):
        raise ValueError(f"h must have shape ({nlev},), got {h.shape}")
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != (ncol,):
        raise ValueError(f"obs has shape {obs.shape}, expected ({ncol},)")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 1) or (std.ndim == 1 and std.shape != (ncol,)):
        raise ValueError(f"obs_std must be a scalar or shape ({ncol},), got {std.shape}")
    if zero_std_ok and (np.any(std < 0) or np.any(np.isnan(std))):
        raise ValueError("obs_std must be >= 0 and not NaN")
    if not zero_std_ok and (np.any(std <= 0) or np.any(np.isnan(std))):
        raise ValueError("obs_std must be > 0 and not NaN for the LETKF")
    return state, h, obs, np.broadcast_to(std, (ncol,))


def _usable_observations(
    obs: np.ndarray, std: np.ndarray, obs_mask: np.ndarray | None, who: str
) -> tuple[np.ndarray, int]:
    """(bool (ncol,) usable observations, number of NaN observations masked), logging the latter."""
    ncol = obs.shape[0]
    valid = np.isfinite(obs) & np.isfinite(std)
    nan_obs = np.isnan(obs)
    if obs_mask is not None:
        obs_mask = np.asarray(obs_mask, dtype=bool)
        if obs_mask.shape != (ncol,):
            raise ValueError(f"obs_mask has shape {obs_mask.shape}, expected ({ncol},)")
        valid &= obs_mask
        nan_obs &= obs_mask
    n_nan = int(np.count_nonzero(nan_obs))
    if n_nan:
        _log.info("%s: %d NaN observations masked", who, n_nan)
    return valid, n_nan


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
    lat, lon : ndarray (ncol,), optional
        Column coordinates (degrees), needed when ``radius_km > 0``.
    radius_km : float
        Gaspari-Cohn localization radius (weight 0 beyond it); 0 = own cell only.
    max_obs : int
        At most this many nearest observations per column.
    seed, rngs, perturb_obs :
        Perturbed observations from ``member_rng(seed, i, Purpose.OBS)`` (or the given generators,
        one per local member, advanced in place); ``perturb_obs=False``: deterministic variant.
    inflation : float
        Multiplicative inflation of the anomalies (used for the gain, and returned in the increment);
        with ``inflation_mode="adaptive"`` the lower bound of the estimated factor.
    inflation_mode : {"fixed", "adaptive"}
        ``"adaptive"``: the anomaly factor is estimated from this analysis' innovations over all usable
        observations (:func:`adaptive_inflation`, computed from the gathered predicted observations, so
        identical on any number of ranks) and clipped to ``[inflation, inflation_max]``.
    inflation_max : float
        Upper bound of the adaptive anomaly factor.
    obs_mask : ndarray of bool (ncol,), optional
        False = observation not used.
    update_mask : ndarray of bool (ncol, nloc) or (nlev, ncol, nloc), optional
        False = not updated (frozen layers, snow).
    layout : MemberLayout, optional
        MPI member layout (default serial: the ``nloc`` members are the ensemble).
    chunk : int
        Columns per batch of local solves (bounds memory).

    Returns
    -------
    dstate : ndarray (nlev, ncol, nloc)
        Increments (before any bounds).
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``, ``mean_gain_top`` (mean gain of layer 1 to its own-cell obs);
        adaptive mode also ``inflation`` (anomaly factor applied) and ``inflation_lambda`` (unclipped
        variance-ratio estimate, NaN without usable observations).
    """
    state, h, obs, std = _column_inputs(state, h, obs, obs_std, zero_std_ok=True)
    nlev, ncol, nloc = state.shape
    if layout is None:
        layout = MemberLayout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"state holds {nloc} members, the layout expects nloc={layout.nloc}")
    if layout.nmem < 2:
        raise ValueError("the point EnKF needs at least 2 members")
    if radius_km > 0 and (lat is None or lon is None):
        raise ValueError("lat and lon are needed when radius_km > 0")
    check_inflation(inflation, inflation_mode, inflation_max)
    adaptive = inflation_mode == "adaptive"

    valid, n_nan = _usable_observations(obs, std, obs_mask, "point_enkf")
    diag: dict[str, Any] = {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}
    if adaptive:
        diag.update(inflation=float(inflation), inflation_lambda=float("nan"))
    dstate = np.zeros_like(state)
    if not valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        if inflation != 1.0:
            dstate = (inflation - 1.0) * (state - layout.mean(state, axis=2)[:, :, None])
        return _apply_update_mask(dstate, update_mask), diag

    hx = np.einsum("l,lcm->mc", h, state)  # (nloc, ncol) predicted observations
    hx_all = layout.allgather_members(hx)  # (N, ncol), identical on all ranks
    nmem = layout.nmem
    if adaptive:  # innovation statistics over the usable observations (same arrays on every rank)
        hbar = hx_all.mean(axis=0)
        hvar = np.sum((hx_all - hbar) ** 2, axis=0) / (nmem - 1)
        lam, inflation = adaptive_inflation(
            float(np.sum((obs[valid] - hbar[valid]) ** 2)), float(np.sum(std[valid] ** 2)),
            float(np.sum(hvar[valid])), inflation, inflation_max,
        )  # fmt: skip
        diag.update(inflation=inflation, inflation_lambda=lam)
        _log.info("point_enkf: adaptive inflation lambda_hat=%.4f factor=%.4f", lam, inflation)
    ha = (hx_all - hx_all.mean(axis=0)) * inflation  # HA: obs-space anomalies
    mean_x = layout.mean(state, axis=2)  # (nlev, ncol)
    xa = (state - mean_x[:, :, None]) * inflation  # A: state anomalies (local members)

    idx, dist = local_neighbours(
        np.zeros(ncol) if lat is None else np.asarray(lat, dtype=np.float64),
        np.zeros(ncol) if lon is None else np.asarray(lon, dtype=np.float64),
        radius_km,
        max_obs,
    )
    m = idx.shape[1]
    half = radius_km / 2.0
    rho_xo = np.ones_like(dist) if radius_km <= 0 else gaspari_cohn(dist / half)
    use = valid[idx] & np.isfinite(dist) & (rho_xo > 0)  # (ncol, m)
    rho_xo = np.where(use, rho_xo, 0.0)
    r = np.where(valid, std, 1.0) ** 2

    def cross_terms():  # member k's contribution to A HA^T at the local observations
        for k, g in enumerate(layout.members):
            yield xa[:, :, k][:, :, None] * ha[g][idx][None, :, :]

    pxo = rho_xo[None] * layout.ordered_sum_terms(cross_terms(), (nlev, ncol, m)) / (nmem - 1)

    if perturb_obs:
        if rngs is None:
            rngs = [member_rng(seed, i, Purpose.OBS) for i in layout.members]
        if len(rngs) != nloc:
            raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
        eps = np.stack([g.standard_normal(ncol) for g in rngs], axis=1) * np.where(valid, std, 0.0)[:, None]
    else:
        eps = np.zeros((ncol, nloc))
    hx_loc = hx.T  # (ncol, nloc); with inflation: H x_i of the inflated members (they are the background)
    if inflation != 1.0:
        hx_loc = hx_all.mean(axis=0)[:, None] + ha[layout.start : layout.stop].T
    innov = np.where(valid[:, None], obs[:, None] + eps - hx_loc, 0.0)  # (ncol, nloc) innovations

    xyz = (
        None if radius_km <= 0 else _xyz(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    )
    gain_sum = 0.0
    diag_idx = np.arange(m)
    for c0 in range(0, ncol, chunk):  # batches of columns bound the (chunk, m, m) work arrays
        sl = slice(c0, min(c0 + chunk, ncol))
        ii = idx[sl]
        hao = ha[:, ii]  # (N, nc, m)
        hao_t = np.ascontiguousarray(hao.transpose(1, 2, 0))  # (nc, m, N)
        s = np.matmul(hao_t, hao_t.transpose(0, 2, 1)) / (nmem - 1)  # HPH^T
        if m > 1:
            p = xyz[ii]
            chord2 = np.clip(2.0 - 2.0 * np.matmul(p, p.transpose(0, 2, 1)), 0.0, 4.0)
            s *= gaspari_cohn(_great_circle_km(np.sqrt(chord2)) / half)
        u = use[sl]
        s *= u[:, :, None] & u[:, None, :]
        s[:, diag_idx, diag_idx] += np.where(u, r[ii], 1.0)  # + R; unused obs: decoupled unit rows
        gain_t = np.linalg.solve(s, pxo[:, sl].transpose(1, 2, 0))  # (nc, m, nlev) = K^T
        dstate[:, sl] = np.einsum("cml,cmk->lck", gain_t, innov[ii])
        gain_sum += float(np.sum(gain_t[:, 0, 0]))
    diag["mean_gain_top"] = gain_sum / ncol

    if inflation != 1.0:
        dstate += xa - (state - mean_x[:, :, None])  # the inflated anomalies become the background
    return _apply_update_mask(dstate, update_mask), diag


def point_letkf_increments(
    state: np.ndarray,
    h: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    *,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    radius_km: float = 0.0,
    max_obs: int = 64,
    inflation: float = 1.0,
    obs_mask: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: MemberLayout | None = None,
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
    state, h, obs, std = _column_inputs(state, h, obs, obs_std, zero_std_ok=False)
    nlev, ncol, nloc = state.shape
    if layout is None:
        layout = MemberLayout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"state holds {nloc} members, the layout expects nloc={layout.nloc}")
    nmem = layout.nmem
    if nmem < 2:
        raise ValueError("the LETKF needs at least 2 members")
    if radius_km > 0 and (lat is None or lon is None):
        raise ValueError("lat and lon are needed when radius_km > 0")

    valid, n_nan = _usable_observations(obs, std, obs_mask, "point_letkf")
    diag: dict[str, Any] = {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}
    if not valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        dstate = np.zeros_like(state)
        if inflation != 1.0:
            dstate = (inflation - 1.0) * (state - layout.mean(state, axis=2)[:, :, None])
        return _apply_update_mask(dstate, update_mask), diag

    full = np.moveaxis(layout.allgather_members(np.moveaxis(state, 2, 0)), 0, 2)  # (nlev, ncol, N)
    mean_x = full.mean(axis=2)
    xa_all = full - mean_x[:, :, None]  # X
    hx = np.einsum("l,lcm->cm", h, full)  # (ncol, N)
    ybar = hx.mean(axis=1)
    yanom = hx - ybar[:, None]  # Y^T per column
    idx, dist = local_neighbours(
        np.zeros(ncol) if lat is None else np.asarray(lat, dtype=np.float64),
        np.zeros(ncol) if lon is None else np.asarray(lon, dtype=np.float64),
        radius_km,
        max_obs,
    )
    rho = np.ones_like(dist) if radius_km <= 0 else gaspari_cohn(dist / (radius_km / 2.0))
    use = valid[idx] & np.isfinite(dist) & (rho > 0)
    rinv = np.where(use, rho / np.where(valid, std, 1.0)[idx] ** 2, 0.0)  # (ncol, m) localized R^-1
    d = np.where(use, np.where(valid, obs, 0.0)[idx] - ybar[idx], 0.0)  # (ncol, m)

    nloc0 = layout.start
    dstate = np.empty_like(state)
    eye = np.eye(nmem)
    if chunk is None:
        chunk = max(16, int(2e7 // (nmem * nmem)))
    for c0 in range(0, ncol, chunk):
        sl = slice(c0, min(c0 + chunk, ncol))
        yl = yanom[idx[sl]]  # (nc, m, N)
        cmat = yl.transpose(0, 2, 1) * rinv[sl][:, None, :]  # Y^T R^-1: (nc, N, m)
        amat = (nmem - 1) / inflation**2 * eye + np.matmul(cmat, yl)  # (nc, N, N)
        lam, vec = np.linalg.eigh(amat)
        pa = np.matmul(vec / lam[:, None, :], vec.transpose(0, 2, 1))
        wsq = np.matmul(vec * np.sqrt((nmem - 1) / lam)[:, None, :], vec.transpose(0, 2, 1))
        wbar = np.einsum("cnk,ck->cn", pa, np.einsum("cnm,cm->cn", cmat, d[sl]))
        t = wbar[:, :, None] + wsq[:, :, nloc0 : nloc0 + nloc]  # (nc, N, nloc): weights of local members
        xa = mean_x[:, sl, None] + np.einsum("lcn,cnk->lck", xa_all[:, sl], t)
        dstate[:, sl] = xa - state[:, sl]
    if inflation == 1.0:
        dstate[:, ~use.any(axis=1)] = 0.0  # no local observation: exactly unchanged (not x_mean + X e_i)

    return _apply_update_mask(dstate, update_mask), diag
