"""The member update of a curvelet analysis: each member's innovation image and its increment.

The observations each member is updated towards (perturbed per member, the same for every member, or the
DEnKF's ``y - (x_i + mean) / 2``) minus the member, on the usable observations only, give the innovation
``d_i``; its increment is the diagonal form ``C^T (k * C d_i)`` (one FFT pair per member with a spectral
frame) or the gap-aware solve ``B H^T (H B H^T + R)^-1 d_i`` (:mod:`landimg.da.curvelet_var`); the DEnKF
may update the mean and the anomalies apart. Then, optionally, the spread is relaxed towards the prior's
(RTPS); without usable observations the analysis is the (inflated) background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from landimg.da.curvelet_background import normalised
from landimg.da.curvelet_problem import Problem
from landimg.da.curvelet_stats import CoefficientStats, embed, extract, frame_norms2
from landimg.da.curvelet_timing import Clock
from landimg.da.curvelet_var import b_weights, gap_aware_increments
from landimg.da.obs_error import ObsErrorModel
from landimg.layout import Layout
from landimg.parallel import Purpose, member_rng

__all__ = ["diagonal_gain", "inflated_background", "relax_to_prior_spread", "solve_diagnostics", "update_members"]


def _member_obs(
    p: Problem, xb: np.ndarray, err: ObsErrorModel, mode: str, rngs: Sequence[np.random.Generator] | None,
    seed: int, perturbations: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """The observations each member is updated towards (nloc, ny, nx) in ``mode`` (:func:`update_members`);
    "denkf" takes ``y + (x_i - mean) / 2``: the increments are linear in ``d``, so this is the mean's full
    increment minus half of each anomaly's."""
    nloc = p.background.shape[0]
    if mode == "denkf":
        return p.obs + 0.5 * (xb - p.layout.mean(xb))
    if mode == "perturbed" and perturbations is not None:
        perturbations = np.asarray(perturbations, dtype=np.float64)
        if perturbations.shape != p.background.shape:
            raise ValueError(f"perturbations must have shape {p.background.shape}, got {perturbations.shape}")
        return p.obs + perturbations
    if mode == "perturbed":
        if rngs is None:
            rngs = [member_rng(seed, i, Purpose.OBS) for i in p.layout.members]
        if len(rngs) != nloc:
            raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
        return p.obs + err.fields(rngs)
    return np.broadcast_to(p.obs, p.background.shape)


def update_members(
    p: Problem, transform: Any, xb: np.ndarray, stats: CoefficientStats, err: ObsErrorModel, mode: str,
    rngs: Sequence[np.random.Generator] | None, seed: int, batch: int, clock: Clock, cg: tuple | None,
    diag: dict[str, Any], op_kw: dict[str, Any], r_cov: Any, perturbations: np.ndarray | None = None,
    settings: Any = None, frame: Any = None,
) -> np.ndarray:  # fmt: skip
    """Analysis members (nloc, ny, nx) of the background members ``xb`` (inflated, zero off land) from the
    masked innovations ``d``: ``mode`` "perturbed" (observations perturbed per member: ``perturbations``,
    else drawn from ``rngs``, else from ``member_rng(seed, i, OBS)``, with the error model ``err``), "plain"
    (the same observations for every member) or "denkf" (``y - (x_i + mean) / 2``, the deterministic EnKF
    of Sakov & Oke 2008). Cells not updated (``p.upd``) keep the background as given.

    ``cg`` None: the diagonal form ``x + C^T (k * C d)``; else ``(tol, maxiter, preconditioner)`` of the
    gap-aware solve ``x + B H^T (H B H^T + R)^-1 d`` with ``B = C^T diag(s_b / |row|^2) C``
    (:mod:`landimg.da.curvelet_var`), hybrid with the localized ensemble covariance of ``op_kw``
    (``ensemble``, ``beta``, ``land``) if given, and ``R`` the operator ``r_cov``
    (:mod:`landimg.da.image_covariance`: white or correlated); its iterations and the mean's solution
    (``"_solution"``) into ``diag``. DEnKF with ``settings.anomaly_update`` other than ``"joint"``: the mean
    by one solve, the anomalies cheaper (:func:`_denkf_split`).
    """
    if mode == "denkf" and cg is not None and settings is not None and settings.anomaly_update != "joint":
        return _denkf_split(p, transform, xb, stats, batch, clock, cg, diag, op_kw, r_cov, settings, frame)
    yi = _member_obs(p, xb, err, mode, rngs, seed, perturbations)
    with clock("update"):
        innov = yi - xb
        innov[:, ~p.valid] = 0.0
    yi = None  # free the memory
    if cg is not None:
        with clock("update"):
            v = b_weights(stats.s_b, frame_norms2(transform))
            inc, info = gap_aware_increments(
                innov, p.valid, r_cov, v, transform, offset=p.offset, tol=cg[0], maxiter=cg[1], precond=cg[2],
                **op_kw,
            )  # fmt: skip
        solve_diagnostics(diag, p.layout, info)
        diag["_solution"] = p.layout.mean(info.solution)  # the mean's (the solves are linear in d)
        with clock("update"):
            np.add(xb, inc, out=inc)
            return np.where(p.upd, inc, p.background)
    with clock("transform"):
        inc = diagonal_gain(p, transform, frame, stats.gain, innov, batch, op_kw.get("scale"))
    with clock("update"):
        np.add(xb, inc, out=inc)
        return np.where(p.upd, inc, p.background)  # not updated: background as given


def solve_diagnostics(
    diag: dict[str, Any], layout: Layout, info: Any, prefix: str = "cg", *, per_member: bool = True
) -> None:
    """Mean CG iterations over the members and the number of unconverged ones (member-ordered sums).
    ``per_member``: one solve per local member (reduced over the member groups, collective), else one solve
    (the mean's) done alike on every rank. Told, not inferred from the sizes: a rank holding one member
    cannot tell the two apart, and the ranks must agree on the collective."""
    nmem = layout.nmem if per_member else 1
    total = layout.ordered_sum(info.iterations.astype(np.float64)) if nmem > 1 else float(info.iterations.sum())
    bad = layout.ordered_sum((~info.converged).astype(np.float64)) if nmem > 1 else float((~info.converged).sum())
    diag[f"{prefix}_iterations"] = float(total) / nmem
    diag[f"{prefix}_unconverged"] = int(bad)


def diagonal_gain(
    p: Problem, transform: Any, frame: Any, gain: np.ndarray, images: np.ndarray, batch: int,
    scale: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """``C^T (k * C x)`` of every image (k, ny, nx) on the transform domain, cropped to the image: one FFT pair
    per image when ``k`` is constant per direction (:mod:`landimg.da.curvelet_spectral`), else a transform
    pair. With variance filtering (``scale`` = S): ``S C^T (k * C (x / S))`` (the gain of the normalised
    problem)."""
    if scale is not None:
        images = normalised(images, scale)
    per = frame.per_direction(gain) if frame is not None else None
    if per is not None:
        out = extract(frame.apply(embed(images, p.tshape, p.offset), frame.multiplier(per)), p.obs.shape, p.offset)
    else:
        out = np.empty_like(images)
        for b0 in range(0, images.shape[0], batch):
            sl = slice(b0, b0 + batch)
            cd = transform.forward(embed(images[sl], p.tshape, p.offset))
            cd *= gain
            out[sl] = extract(transform.inverse(cd), p.obs.shape, p.offset)
    return out if scale is None else out * scale


def _denkf_split(
    p: Problem, transform: Any, xb: np.ndarray, stats: CoefficientStats, batch: int, clock: Clock, cg: tuple,
    diag: dict[str, Any], op_kw: dict[str, Any], r_cov: Any, s: Any, frame: Any,
) -> np.ndarray:  # fmt: skip
    """DEnKF with the mean and the anomalies updated apart (issue 18 item 6: cost).

    The mean gets the full gap-aware increment ``K (y - H mean)`` from one solve (the same on every rank);
    each anomaly half of its own, ``-K H a_i / 2``, with ``K`` the diagonal-form gain
    ``C^T diag(k) C`` on the observed pixels (``anomaly_update="diagonal"``: one FFT pair per member) or
    the gap-aware gain from at most ``anomaly_cg_iterations`` CG iterations (``"cg"``; a truncated CG is
    not linear in its right-hand side, so these increments are re-centred on zero over the members).
    """
    with clock("update"):
        mean = p.layout.mean(xb)  # (ny, nx), member order, zero off land
        v = b_weights(stats.s_b, frame_norms2(transform))
        d = np.where(p.valid, p.obs - mean, 0.0)[None]
        inc_m, info = gap_aware_increments(
            d, p.valid, r_cov, v, transform, offset=p.offset, tol=cg[0], maxiter=cg[1], precond=cg[2], **op_kw
        )  # fmt: skip
        solve_diagnostics(diag, p.layout, info, per_member=False)
        diag["_solution"] = info.solution[0]
        masked = np.where(p.valid, xb - mean, 0.0)
        if s.anomaly_update == "diagonal":
            inc_a = diagonal_gain(p, transform, frame, stats.gain, masked, batch, op_kw.get("scale"))
        else:
            inc_a, info_a = gap_aware_increments(
                masked, p.valid, r_cov, v, transform, offset=p.offset, tol=cg[0],
                maxiter=s.anomaly_cg_iterations, warn=False, precond=cg[2], **op_kw,
            )  # fmt: skip
            solve_diagnostics(diag, p.layout, info_a, "cg_anomaly")
            inc_a -= p.layout.mean(inc_a)  # a truncated CG is not linear: keep the mean's increment exact
        analysis = xb + inc_m - 0.5 * inc_a
        return np.where(p.upd, analysis, p.background)


def relax_to_prior_spread(p: Problem, xb: np.ndarray, analysis: np.ndarray, rtps: float) -> np.ndarray:
    """RTPS (Whitaker & Hamill 2012) per pixel: analysis spread relaxed towards the (inflated) prior spread."""
    _, var_b = p.layout.mean_var(xb)
    mu_a, var_a = p.layout.mean_var(np.where(p.land, analysis, 0.0))
    sd_b, sd_a = np.sqrt(var_b), np.sqrt(var_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.where(sd_a > 0, 1.0 + rtps * (sd_b - sd_a) / sd_a, 1.0)
    return np.where(p.upd, mu_a + fac * (analysis - mu_a), analysis)


def inflated_background(p: Problem, inflation: float) -> np.ndarray:
    """Analysis (nloc, ny, nx) without usable observations: the background, inflated on updated cells."""
    analysis = p.background.copy()
    if inflation != 1.0:
        mean = p.layout.mean(np.where(p.land, p.background, 0.0))
        analysis = np.where(p.upd, mean + inflation * (p.background - mean), p.background)
    return analysis
