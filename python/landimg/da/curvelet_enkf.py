"""Functional core of the curvelet-space EnKF (see docs/method.md for the maths).

Notation: ``C`` the transform (a tight frame, ``C^T C = I``), ``x_i`` member images, ``y`` the observation
image. The update of every coefficient is independent and linear, so only the *innovation* images are
transformed forward and the *increments* inverse:

    d_i   = M (y + eps_i - x_i)              # innovation, zero where not observed (gaps, ocean, pads)
    x_i^a = x_i + C^T (k * C d_i)            # k per coefficient (or per pooled group)
    k     = w * s_b / (s_b + s_o)            # w: scale weights (default 1)

which is exactly ``c_i^a = c_i + k (c_o + C eps_i - c_i)`` with each member's gaps filled by its own values.
``s_b`` comes from the transformed ensemble anomalies (zero off land, pooled sums normalised by the land
fraction, or with ``variance_support="interior"`` pooled over land-covered frame elements only), ``s_o``
from the observation-error model at full coverage (error field on the whole transform domain, unobserved
pixels and padding at the rms sigma): exact ``sigma^2 |row_j|^2`` for uniform white error and
``mean(sigma^2) |row_j|^2`` for a white sigma map with pooling, otherwise a fixed-seed Monte-Carlo estimate
with the same error model as the perturbations.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from landimg.da.curvelet_hybrid import BiasAware, FineBand, HybridB
from landimg.da.curvelet_layers import AnalysisSolution
from landimg.da.curvelet_spectral import spectral_frame
from landimg.da.curvelet_stats import (
    CoefficientStats,
    Transform,
    coefficient_groups,
    coefficient_scales,
    embed,
    extract,
    frame_norms2,
    image_offset,
    land_coverage,
    pool,
    pool_interior,
    pool_local,
    transform_shape,
)
from landimg.da.curvelet_var import b_weights, gap_aware_increments
from landimg.da.image_covariance import DiagonalCovariance, GaussianCorrelation, observation_covariance
from landimg.da.inflation import smoothed_inflation
from landimg.da.obs_error import ObsError, ObsErrorModel
from landimg.parallel import MemberLayout, Purpose, SerialComm, member_rng

__all__ = [
    "CoefficientStats", "Transform", "curvelet_analysis", "curvelet_enkf", "land_coverage", "method_settings",
    "smoothed_std", "variance_scale",
]  # fmt: skip

_log = logging.getLogger("landimg.analysis")
_KEY = "CurveletEnKF"  # prefix of the method's entries in the host's state


class _Clock:
    """Accumulating wall-clock sections into an optional dict (no-op when it is None)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self._t0: dict[str, float] = {}
        self._nested: dict[str, float] = {}

    def start(self, name: str) -> None:
        if self.sink is not None:
            self._t0[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + time.perf_counter() - self._t0.pop(name)

    def subtract(self, name: str, inner: str) -> None:
        """Remove from ``name`` the ``inner`` time accumulated while ``name`` ran (nested sections)."""
        if self.sink is not None:
            self.sink[name] -= self.sink.get(inner, 0.0) - self._nested.get(inner, 0.0)

    @contextmanager
    def __call__(self, name: str):
        if self.sink is not None and name == "statistics":
            self._nested["transform"] = self.sink.get("transform", 0.0)
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)


def _check_inputs(background, obs, obs_std, obs_mask, update_mask):
    """Float64 arrays of the right shapes (one-line errors naming the argument)."""
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 3:
        raise ValueError(f"background must be (nmem_local, ny, nx), got shape {background.shape}")
    shape = background.shape[1:]
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != shape:
        raise ValueError(f"obs has shape {obs.shape}, expected the image shape {shape}")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != shape):
        raise ValueError(f"obs_std must be a scalar or an image of shape {shape}, got shape {std.shape}")
    if np.any(std < 0):
        raise ValueError("obs_std must be >= 0 (got negative values)")
    if np.any(np.isnan(std)):
        raise ValueError("obs_std must not be NaN")
    std = np.broadcast_to(std, shape)
    if obs_mask is not None:
        obs_mask = np.asarray(obs_mask, dtype=bool)
        if obs_mask.shape != shape:
            raise ValueError(f"obs_mask has shape {obs_mask.shape}, expected {shape}")
    if update_mask is not None:
        update_mask = np.asarray(update_mask, dtype=bool)
        if update_mask.shape not in (shape, background.shape):
            raise ValueError(
                f"update_mask must have shape {shape} or {background.shape}, got {update_mask.shape}"
            )
    return background, obs, std, obs_mask, update_mask


@dataclass
class _Problem:
    """The checked inputs of one analysis on the transform domain."""

    background: np.ndarray  # (nloc, ny, nx)
    obs: np.ndarray  # (ny, nx)
    std: np.ndarray  # (ny, nx)
    valid: np.ndarray  # (ny, nx) usable observations
    land: np.ndarray  # (ny, nx)
    upd: np.ndarray  # (ny, nx) or (nloc, ny, nx): cells updated
    layout: MemberLayout
    tshape: tuple[int, int]
    offset: tuple[int, int]
    error: ObsError  # the assumed observation error, pixel layout (scalar or (ny * nx,) stds)


def declared_image_error(obs_std: Any, shape: tuple[int, int]) -> ObsError:
    """The declared observation error of an image analysis as an :class:`ObsError` in pixel layout.

    ``obs_std``: an :class:`ObsError` whose stds are scalars or one value per pixel (ny * nx,) in
    row-major order, or a white error std (scalar or (ny, nx) image, >= 0, not NaN; ``inf`` = no
    information).
    """
    if isinstance(obs_std, ObsError):
        npix = int(shape[0]) * int(shape[1])
        for name in ("white_std", "corr_std"):
            arr = getattr(obs_std, name)
            if arr.ndim and arr.shape != (npix,):
                raise ValueError(f"obs_std (an ObsError) must hold scalars or one value per pixel ({npix},), "
                                 f"got {name} of shape {arr.shape}")  # fmt: skip
        return obs_std
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != tuple(shape)):
        raise ValueError(f"obs_std must be a scalar or an image of shape {tuple(shape)}, got shape {std.shape}")
    if np.any(std < 0):
        raise ValueError("obs_std must be >= 0 (got negative values)")
    if np.any(np.isnan(std)):
        raise ValueError("obs_std must not be NaN")
    return ObsError.white(std if std.ndim == 0 else std.ravel())


def _pixel_image(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A scalar or (ny * nx,) per-pixel value as an image (ny, nx)."""
    values = np.asarray(values, dtype=np.float64)
    return np.broadcast_to(values, shape) if values.ndim == 0 else values.reshape(shape)


def _problem(background, obs, obs_std, transform, obs_mask, update_mask, land, layout, pad_offset, settings):
    """Validated :class:`_Problem` (with the error ``settings`` assume) and the diagnostics ``n_obs`` /
    ``n_nan_masked``."""
    shape = np.shape(background)[1:]
    error = settings.assumed_obs_error(declared_image_error(obs_std, shape)) if len(shape) == 2 else None
    background, obs, std, obs_mask, update_mask = _check_inputs(
        background, obs, obs_std if error is None else _pixel_image(error.std, shape), obs_mask, update_mask
    )
    nloc, ny, nx = background.shape
    if layout is None:
        layout = MemberLayout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"background holds {nloc} members, the layout expects nloc={layout.nloc}")
    if layout.nmem < 2:
        raise ValueError("the curvelet EnKF needs at least 2 members")
    tshape = transform_shape(transform)
    if tshape[0] < ny or tshape[1] < nx:
        raise ValueError(f"transform shape {tshape} is smaller than the image shape {(ny, nx)}")
    off = image_offset((ny, nx), tshape, pad_offset)
    if land is None:
        land = layout.ordered_sum(~np.isfinite(background)) == 0  # finite in every member, all ranks
    land = np.asarray(land, dtype=bool)
    nan_obs = np.isnan(obs) & land
    valid = land & np.isfinite(obs) & np.isfinite(std)
    if obs_mask is not None:
        valid &= obs_mask
    n_nan = int(np.count_nonzero(nan_obs if obs_mask is None else nan_obs & obs_mask))
    if n_nan:
        _log.info("curvelet_enkf: %d NaN observations on land masked", n_nan)
    upd = land if update_mask is None else land & update_mask
    prob = _Problem(background, obs, std, valid, land, upd, layout, tshape, off, error)
    return prob, {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}


def _inflated_anomalies(p: _Problem, s: Any, state: MutableMapping[str, Any] | None, diag: dict[str, Any]):
    """Member mean (ny, nx), inflated anomalies (zero off land) and the inflated members (zero off land).

    Adaptive inflation (``s.inflation_mode``): :func:`landimg.da.inflation.smoothed_inflation` over the
    usable observations with the settings' smoothing and de-biasing, its prior from (and its estimate
    into) ``state`` when given.
    """
    inflation = s.inflation
    xb = np.where(p.land, p.background, 0.0)
    mean = p.layout.mean(xb)  # (ny, nx), member order
    anom = (xb - mean) * p.land
    if s.inflation_mode == "adaptive":
        key = f"{_KEY}.inflation_lambda"
        hx_all = p.layout.allgather_members(xb[:, p.valid]).T  # (nobs, N), every rank
        lam_o, lam, inflation = smoothed_inflation(
            hx_all, p.obs[p.valid], p.std[p.valid], np.ones(hx_all.shape[0], dtype=bool),
            prior=1.0 if state is None else float(state.get(key, 1.0)), prior_var=s.inflation_prior_var,
            debias=s.inflation_debias, lower=s.inflation, upper=s.inflation_max,
        )  # fmt: skip
        if state is not None:
            state[key] = lam
        diag.update(inflation=inflation, inflation_lambda=lam_o)
        _log.info("curvelet_enkf: adaptive inflation lambda_hat=%.4f factor=%.4f", lam_o, inflation)
    if inflation != 1.0:
        anom *= inflation
        xb = np.where(p.land, mean + anom, 0.0)
    return mean, anom, xb


def _background_variance(p, transform, anom, pooling, variance_support, batch, clock, frame=None,
                         local_radius=2.0) -> np.ndarray:  # fmt: skip
    """Pooled background error variance per coefficient ``s_b`` (ncoef,), member-ordered.

    Pooled on land-fraction support with a :class:`~landimg.da.curvelet_spectral.SpectralFrame`, the
    energies per direction come from one FFT per member (the same sums as the transform's, to round-off).
    """
    nloc, layout = p.background.shape[0], p.layout
    gid = coefficient_groups(transform, pooling)
    land_frac = p.land.sum() / float(p.tshape[0] * p.tshape[1])
    if frame is not None and pooling not in ("coefficient", "local") and variance_support == "land_fraction":

        def direction_energies():  # member by member, in batches (each image on its own: batch-invariant)
            for b0 in range(0, nloc, batch):
                yield from frame.energies(embed(anom[b0 : b0 + batch], p.tshape, p.offset))

        with clock("statistics"):
            var_d = layout.ordered_sum_terms(direction_energies(), (frame.ndir,)) / (layout.nmem - 1)
            group_of_direction = gid[frame._first]
            num = np.bincount(group_of_direction, weights=var_d, minlength=int(gid.max()) + 1)
            return (num / np.bincount(gid))[gid] / land_frac

    def squared_coefficients():  # member by member, transformed in batches
        for b0 in range(0, nloc, batch):
            with clock("transform"):
                ca = transform.forward(embed(anom[b0 : b0 + batch], p.tshape, p.offset))
            for row in ca:
                yield row * row

    with clock("statistics"):
        var_c = layout.ordered_sum_terms(squared_coefficients(), (int(transform.ncoef),)) / (layout.nmem - 1)
    clock.subtract("statistics", "transform")
    clock.start("statistics")
    if pooling != "coefficient" and variance_support == "interior":
        cov = land_coverage(transform, embed(p.land, p.tshape, p.offset).astype(bool))
        s_b = pool_interior(var_c, gid, cov)
    else:
        s_b = pool(var_c, gid)
        if pooling != "coefficient":
            s_b = s_b / land_frac  # pooled energy of a land-only field: per-coefficient level on land
    if pooling == "local":  # local means within each direction, the direction's value where it has no land
        cov = land_coverage(transform, embed(p.land, p.tshape, p.offset).astype(bool))
        s_b = pool_local(var_c, transform, cov, local_radius, s_b)
    return s_b


def _gain(p, transform, s_b, err, pooling, scale_weights, obs_var_samples, seed, frame=None) -> CoefficientStats:
    """Observation-error variance per coefficient ``s_o`` and the gain ``w s_b / (s_b + s_o)``."""
    gid = coefficient_groups(transform, pooling)
    scale = coefficient_scales(transform)
    s_o = err.coefficient_variance(
        transform, obs_var_samples, seed, pooled=pooling != "coefficient", offset=p.offset, frame=frame
    )
    s_o = pool(s_o, gid)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(s_b + s_o > 0, s_b / (s_b + s_o), 0.0)
        gain = np.where(np.isinf(s_o), 0.0, gain)
    if scale_weights is not None:
        w = np.asarray(scale_weights, dtype=np.float64)
        if w.size <= scale.max():
            raise ValueError(f"scale_weights needs one weight per scale ({scale.max() + 1}), got {w.size}")
        gain = np.clip(gain * w[scale], 0.0, 1.0)
    return CoefficientStats(s_b=s_b, s_o=s_o, gain=gain, scale=scale)


def _update(
    p, transform, xb, stats, err, mode, rngs, seed, batch, clock, cg, diag, op_kw, r_cov, perturbations=None,
    settings=None, frame=None,
) -> np.ndarray:
    """Analysis members (nloc, ny, nx) from the masked innovations ``d``: ``mode`` "perturbed" (observations
    perturbed per member), "plain" (the same observations for every member) or "denkf" (``y - (x_i + mean)
    / 2``, the deterministic EnKF of Sakov & Oke 2008).

    ``cg`` None: the diagonal form ``x + C^T (k * C d)``; else ``(tol, maxiter, preconditioner)`` of the gap-aware solve
    ``x + B H^T (H B H^T + R)^-1 d`` with ``B = C^T diag(s_b / |row|^2) C`` (:mod:`landimg.da.curvelet_var`),
    hybrid with the localized ensemble covariance of ``op_kw`` (``ensemble``, ``beta``, ``land``) if given,
    and ``R`` the operator ``r_cov`` (:mod:`landimg.da.image_covariance`: white or correlated). DEnKF with
    ``settings.anomaly_update`` other than ``"joint"``: the mean by one solve, the anomalies cheaper
    (:func:`_denkf_split`).
    """
    nloc = p.background.shape[0]
    if mode == "denkf" and cg is not None and settings is not None and settings.anomaly_update != "joint":
        return _denkf_split(p, transform, xb, stats, batch, clock, cg, diag, op_kw, r_cov, settings, frame)
    if mode == "denkf":  # increments are linear in d: the mean's full increment minus half of each anomaly's
        yi = p.obs + 0.5 * (xb - p.layout.mean(xb))
    elif mode == "perturbed" and perturbations is not None:
        perturbations = np.asarray(perturbations, dtype=np.float64)
        if perturbations.shape != p.background.shape:
            raise ValueError(f"perturbations must have shape {p.background.shape}, got {perturbations.shape}")
        yi = p.obs + perturbations
    elif mode == "perturbed":
        if rngs is None:
            rngs = [member_rng(seed, i, Purpose.OBS) for i in p.layout.members]
        if len(rngs) != nloc:
            raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
        yi = p.obs + err.fields(rngs)
    else:
        yi = np.broadcast_to(p.obs, p.background.shape)
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
        _solve_diagnostics(diag, p.layout, info)
        diag["_solution"] = p.layout.mean(info.solution)  # the mean's (the solves are linear in d)
        with clock("update"):
            np.add(xb, inc, out=inc)
            return np.where(p.upd, inc, p.background)
    with clock("transform"):
        inc = _diagonal_gain(p, transform, frame, stats.gain, innov, batch, op_kw.get("scale"))
    with clock("update"):
        np.add(xb, inc, out=inc)
        return np.where(p.upd, inc, p.background)  # not updated: background as given


def _solve_diagnostics(
    diag: dict[str, Any], layout: MemberLayout, info: Any, prefix: str = "cg", *, per_member: bool = True
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


def _diagonal_gain(p, transform, frame, gain, images, batch, scale=None) -> np.ndarray:
    """``C^T (k * C x)`` of every image (k, ny, nx) on the transform domain, cropped to the image: one FFT pair
    per image when ``k`` is constant per direction (:mod:`landimg.da.curvelet_spectral`), else a transform
    pair. With variance filtering (``scale`` = S): ``S C^T (k * C (x / S))`` (the gain of the normalised
    problem)."""
    if scale is not None:
        images = np.where(scale > 0, images / np.where(scale > 0, scale, 1.0), 0.0)
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


def _denkf_split(p, transform, xb, stats, batch, clock, cg, diag, op_kw, r_cov, s, frame) -> np.ndarray:
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
        _solve_diagnostics(diag, p.layout, info, per_member=False)
        diag["_solution"] = info.solution[0]
        masked = np.where(p.valid, xb - mean, 0.0)
        if s.anomaly_update == "diagonal":
            inc_a = _diagonal_gain(p, transform, frame, stats.gain, masked, batch, op_kw.get("scale"))
        else:
            inc_a, info_a = gap_aware_increments(
                masked, p.valid, r_cov, v, transform, offset=p.offset, tol=cg[0],
                maxiter=s.anomaly_cg_iterations, warn=False, precond=cg[2], **op_kw,
            )  # fmt: skip
            _solve_diagnostics(diag, p.layout, info_a, "cg_anomaly")
            inc_a -= p.layout.mean(inc_a)  # a truncated CG is not linear: keep the mean's increment exact
        analysis = xb + inc_m - 0.5 * inc_a
        return np.where(p.upd, analysis, p.background)


def _relax_to_prior_spread(p: _Problem, xb: np.ndarray, analysis: np.ndarray, rtps: float) -> np.ndarray:
    """RTPS (Whitaker & Hamill 2012) per pixel: analysis spread relaxed towards the (inflated) prior spread."""
    _, var_b = p.layout.mean_var(xb)
    mu_a, var_a = p.layout.mean_var(np.where(p.land, analysis, 0.0))
    sd_b, sd_a = np.sqrt(var_b), np.sqrt(var_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.where(sd_a > 0, 1.0 + rtps * (sd_b - sd_a) / sd_a, 1.0)
    return np.where(p.upd, mu_a + fac * (analysis - mu_a), analysis)


def _inflated_background(p: _Problem, inflation: float) -> np.ndarray:
    """Analysis (nloc, ny, nx) without usable observations: the background, inflated on updated cells."""
    analysis = p.background.copy()
    if inflation != 1.0:
        mean = p.layout.mean(np.where(p.land, p.background, 0.0))
        analysis = np.where(p.upd, mean + inflation * (p.background - mean), p.background)
    return analysis


def _variance_scale(p: _Problem, anom: np.ndarray, length_km: float, cell_km: tuple[float, float],
                    periodic_x: bool) -> np.ndarray:  # fmt: skip
    """:func:`variance_scale` of the problem's anomalies."""
    return variance_scale(anom, p.land, p.layout, length_km, cell_km, periodic_x)


def variance_scale(anom: np.ndarray, land: np.ndarray, layout: MemberLayout, length_km: float,
                   cell_km: tuple[float, float], periodic_x: bool) -> np.ndarray:  # fmt: skip
    """``S`` (ny, nx): the smoothed ensemble standard deviation on land (0 elsewhere), for the variance
    filtering ``B = S C^T diag(v) C S`` (Raynaud, Berre & Desroziers 2009; Bonavita et al. 2012).

    The per-pixel ensemble variance of the (inflated) anomalies ``anom`` (member-ordered sums) is averaged
    over land by a normalised Gaussian filter of length ``length_km`` (weights ``exp(-r^2 / L^2)``,
    :class:`~landimg.da.image_covariance.GaussianCorrelation`; 0 = no smoothing): sampling noise of the
    ``N``-member variance (relative std ``sqrt(2 / (N - 1))``) averages out over the filter's land area."""
    var = layout.ordered_sum(anom * anom) / (layout.nmem - 1)
    return smoothed_std(var, land, length_km, cell_km, periodic_x)


def smoothed_std(var: np.ndarray, land: np.ndarray, length_km: float, cell_km: tuple[float, float],
                 periodic_x: bool) -> np.ndarray:  # fmt: skip
    """The square root of the variance images ``var`` (..., ny, nx) averaged over ``land`` by the normalised
    Gaussian filter of length ``length_km`` (0 = no smoothing), 0 off land: :func:`variance_scale`'s ``S``
    (all images in one batch of FFTs)."""
    weight = land.astype(np.float64)
    if length_km > 0:
        g = GaussianCorrelation(land.shape, cell_km, length_km, periodic_x)
        images = np.concatenate([(var * weight).reshape((-1,) + land.shape), weight[None]])
        smooth = g.apply(images)
        num, den = smooth[:-1].reshape(var.shape), smooth[-1]
        var = np.where(den > 1e-12, num / np.where(den > 1e-12, den, 1.0), 0.0)
    return np.where(land, np.sqrt(np.maximum(var, 0.0)), 0.0)


def _obs_error_model(
    p: _Problem, cell_km: tuple[float, float], periodic_x: bool, scale: np.ndarray | None = None
) -> ObsErrorModel:
    """The assumed observation error as an image model (for the coefficient variances ``s_o`` and the
    perturbations drawn here); unobserved pixels take the rms observation-error std. The split of the
    variance into its white and correlated parts is the error's overall white fraction (exact when it is
    the same at every pixel, as for errors declared by a fraction). With ``scale`` (variance filtering) the
    error of the normalised problem, ``sigma / S`` (for the gains; observations where ``S = 0`` take the
    rms)."""
    vals = p.std[p.valid]
    if scale is not None:
        sv = scale[p.valid]
        ok = sv > 0
        vals = np.where(ok, vals / np.where(ok, sv, 1.0), np.sqrt(np.mean((vals[ok] / sv[ok]) ** 2)) if ok.any() else 1.0)
        fill_sigma = float(np.sqrt(np.mean(vals**2)))
    else:  # unobserved pixels take the rms sigma: mean(sigma^2) over the image == mean over the observations
        fill_sigma = float(vals[0]) if np.all(vals == vals[0]) else float(np.sqrt(np.mean(vals**2)))
    sigma = np.full(p.std.shape, fill_sigma)
    sigma[p.valid] = vals
    if not p.error.correlated:
        return ObsErrorModel(sigma, 0.0, cell_km, periodic_x, 1.0)
    return ObsErrorModel(sigma, p.error.corr_length_km, cell_km, periodic_x, p.error.white_fraction)


def memory_factor(memory_days: float, interval_days: float) -> float:
    """Variance factor of an AR(1) error seen at every analysis as if it were new: ``(1 + a) / (1 - a)``,
    ``a = exp(-interval / memory)`` (the variance of the mean of many successive AR(1) errors against that
    of as many independent ones); 1 without memory."""
    if not memory_days > 0:
        return 1.0
    a = float(np.exp(-float(interval_days) / float(memory_days)))
    return (1.0 + a) / (1.0 - a)


def _obs_covariance(p: _Problem, cell_km: tuple[float, float], periodic_x: bool, s: Any = None) -> Any:
    """``R`` of the assumed error on the usable observations, as an operator (never inverted): diagonal
    for a white error, ``D_w^2 + D_c G D_c`` for a correlated one (:mod:`landimg.da.image_covariance`). With
    ``s.obs_memory_inflation`` the correlated part's variance is multiplied by :func:`memory_factor` of the
    declared memory (the solve's R only; the inflation keeps the error of one analysis)."""
    if not p.error.correlated:
        return DiagonalCovariance(p.std[p.valid] ** 2)
    shape = p.obs.shape
    corr = _pixel_image(p.error.corr_std, shape)
    if s is not None and s.obs_memory_inflation:
        corr = corr * np.sqrt(memory_factor(p.error.memory_days, s.obs_memory_interval_days))
    return observation_covariance(
        _pixel_image(p.error.white_std, shape), corr, p.error.corr_length_km, p.valid, cell_km, periodic_x,
        single=bool(s is not None and s.cg_single_precision),
    )  # fmt: skip


def method_settings(settings: Any = None, options: dict[str, Any] | None = None) -> Any:
    """The :class:`~landimg.da.curvelet_method.CurveletEnKF` settings of an analysis: ``settings`` (default
    ``CurveletEnKF()``) with the fields named in ``options`` replaced (checked by the dataclass: an unknown
    name is a TypeError, an invalid value a one-line ValueError). The one place the defaults live."""
    from landimg.da.curvelet_method import CurveletEnKF

    base = CurveletEnKF() if settings is None else settings
    if not isinstance(base, CurveletEnKF):
        raise TypeError(f"settings must be a CurveletEnKF, got {type(base).__name__}")
    return replace(base, **options) if options else base


def curvelet_analysis(
    background: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    transform: Any,
    settings: Any = None,
    *,
    obs_mask: np.ndarray | None = None,
    seed: int = 0,
    rngs: Sequence[np.random.Generator] | None = None,
    cell_km: tuple[float, float] = (1.0, 1.0),
    periodic_x: bool = False,
    land: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: MemberLayout | None = None,
    pad_offset: tuple[int, int] | None = None,
    batch: int = 8,
    timings: dict[str, float] | None = None,
    state: MutableMapping[str, Any] | None = None,
    xyz_km: np.ndarray | None = None,
    perturbations: np.ndarray | None = None,
    cache: Any = None,
    **options: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Curvelet-space EnKF analysis of member images, with diagnostics.

    Parameters
    ----------
    background, obs, obs_std, obs_mask :
        This rank's member images (nloc, ny, nx) (e.g. m3/m3, NaN off land); the observation image (ny, nx)
        (NaN = missing: masked and counted); its error std (scalar or (ny, nx), >= 0, ``inf`` = no
        information); False in the optional bool (ny, nx) ``obs_mask`` = not used.
    transform : Transform
        Tight frame on the image shape or a larger padded shape (padding is unobserved, zero anomaly).
    settings : CurveletEnKF, optional
        The method's settings (:class:`landimg.da.curvelet_method.CurveletEnKF`, the one place where they,
        their defaults and their checks live; default ``CurveletEnKF()``). ``options``: fields of it to
        replace, by name (``pooling="scale"``, ``denkf=False`` ...). The transform parameters
        (``nscales`` ...) and ``obs_depth`` are not used here: ``transform`` is given.
    seed, rngs, perturbations : observation perturbations of the local members (``perturb_obs`` without
        ``denkf``): the given images (nloc, ny, nx) (e.g. drawn by the host), else drawn here from one
        generator per local member (advanced in place), else from ``member_rng(seed, i, OBS)``.
    cell_km, periodic_x : cell size (dy, dx) km of the correlated observation error and of the hybrid
        localization on a flat grid; periodic in x (global).
    land, update_mask : bool (ny, nx): cells with model values (default: finite in every member); cells
        updated (or per member, (nloc, ny, nx)).
    layout, pad_offset : MPI member layout (default serial); the image offset in a padded transform.
    batch, timings : members transformed per call; a dict accumulating wall seconds per phase.
    state : mutable mapping, optional
        Where the method's state lives between calls (the bias of ``bias_correction`` under
        ``"CurveletEnKF.bias"``, the adaptive inflation under ``"CurveletEnKF.inflation_lambda"``); None:
        nothing is carried (the bias forecast is 0, the inflation's prior 1).
    xyz_km : ndarray (nland, 3), optional
        Land pixel positions, km, for the hybrid localization (None: a flat grid of ``cell_km``).
    cache : AnalysisCache, optional
        The host's cache (:class:`landimg.da.protocol.AnalysisCache`): the localization matrices of the
        hybrid and of the fine band per observation pattern.

    The update: ``"cg"``, the gap-aware solve (:mod:`landimg.da.curvelet_var`; observations reach into
    swath gaps); ``"diagonal"``, the paper's per-coefficient update ``x + C^T (k * C d)`` (zero innovation
    in gaps; gains clipped to [0, 1] and weighted by ``scale_weights`` per scale). ``inflation`` applies on
    every call (the lower bound with ``inflation_mode="adaptive"``, estimated from the image-space
    innovations over the usable observed land pixels, :func:`landimg.da.inflation.smoothed_inflation` with
    the settings' smoothing and de-biasing and the prior from ``state``); RTPS per pixel. ``hybrid_beta > 0``
    adds the localized ensemble covariance, ``bias_correction`` the two-stage bias analysis on the coarsest
    scales (:mod:`landimg.da.curvelet_hybrid`).

    Returns
    -------
    analysis : ndarray (nloc, ny, nx); NaN stays NaN, cells outside ``land``/``update_mask`` keep the background.
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``, ``stats`` (:class:`CoefficientStats`), ``gain_per_scale`` (diagonal-form
        gain, also for ``"cg"``); adaptive: ``inflation`` (applied), ``inflation_lambda`` (unclipped, NaN if
        undefined); ``"cg"``: ``cg_iterations`` (member mean), ``cg_unconverged`` (members at ``cg_maxiter``);
        ``bias``: ``bias_mean``, ``bias_rms`` (over land), ``bias_iterations``; ``variance_filtering``:
        ``variance_scale`` (the image ``S``, (ny, nx)).
    """
    s = method_settings(settings, options)
    hybrid = HybridB(s.hybrid_beta, s.hybrid_radius_km, xyz_km) if s.hybrid_beta > 0 else None
    bias = None
    if s.bias_correction and s.solver == "cg":  # the diagonal form has no bias stage
        bias = BiasAware(s.bias_gamma, s.bias_memory, s.bias_nscales, {} if state is None else state,
                         f"{_KEY}.bias")  # fmt: skip
    p, diag = _problem(background, obs, obs_std, transform, obs_mask, update_mask, land, layout, pad_offset, s)
    if s.inflation_mode == "adaptive":
        diag.update(inflation=float(s.inflation), inflation_lambda=float("nan"))
    if not p.valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        factor = s.inflation
        if s.inflation_mode == "adaptive" and state is not None:  # the smoothed prior, clipped
            factor = float(np.sqrt(np.clip(float(state.get(f"{_KEY}.inflation_lambda", 1.0)),
                                           s.inflation**2, s.inflation_max**2)))  # fmt: skip
        return _inflated_background(p, factor), {**diag, "stats": None}

    clock = _Clock(timings)
    frame = spectral_frame(transform)
    mean, anom, xb = _inflated_anomalies(p, s, state, diag)
    band = FineBand(s.fine_band_scales, s.fine_band_radius_km, xyz_km) if s.fine_band_scales > 0 else None
    op_kw = {**_hybrid_operator(hybrid, anom, p, cell_km, periodic_x, clock, band, transform, frame, cache),
             "spectral": frame,
             "single": s.cg_single_precision}  # fmt: skip
    scale = _variance_scale(p, anom, s.variance_smoothing_km, cell_km, periodic_x) if s.variance_filtering else None
    if scale is not None:  # B = S C^T diag(v) C S: v from the normalised anomalies
        anom = np.where(scale > 0, anom / np.where(scale > 0, scale, 1.0), 0.0)
        op_kw["scale"] = diag["variance_scale"] = scale
    s_b = _background_variance(p, transform, anom, s.pooling, s.variance_support, batch, clock, frame,
                               s.local_pooling_radius)  # fmt: skip
    anom = None  # free the memory
    err = _obs_error_model(p, cell_km, periodic_x)
    gain_err = err if scale is None else _obs_error_model(p, cell_km, periodic_x, scale)
    stats = _gain(p, transform, s_b, gain_err, s.pooling, s.scale_weights, s.obs_var_samples, seed, frame)
    clock.stop("statistics")
    cg = (s.cg_tol, s.cg_maxiter, s.cg_preconditioner) if s.solver == "cg" else None
    r_cov = _obs_covariance(p, cell_km, periodic_x, s) if cg is not None else None
    if bias is not None:  # stage 2 analyses the bias-corrected background
        xb = _bias_corrected(bias, transform, mean, xb, p, stats, op_kw, cg, clock, diag, r_cov)
    mode = "denkf" if s.denkf else "perturbed" if s.perturb_obs else "plain"
    analysis = _update(
        p, transform, xb, stats, err, mode, rngs, seed, batch, clock, cg, diag, op_kw, r_cov, perturbations,
        settings=s, frame=frame,
    )  # fmt: skip
    if s.rtps > 0:
        analysis = _relax_to_prior_spread(p, xb, analysis, s.rtps)
    diag.update(stats=stats, gain_per_scale=stats.per_scale()["gain"])
    if "_solution" in diag:  # what the layer increments need (landimg.da.curvelet_layers)
        diag["solution"] = AnalysisSolution(
            z=diag.pop("_solution"), valid=p.valid, land=p.land, v=b_weights(stats.s_b, frame_norms2(transform)),
            transform=transform, offset=p.offset, frame=frame, scale=op_kw.get("scale"),
            v_mask=op_kw.get("v_mask"), bias_image=diag.pop("_bias_image", None), band=band,
            ensemble=op_kw.get("ensemble") if band is not None else None, single=s.cg_single_precision,
        )  # fmt: skip
    diag.pop("_bias_image", None)
    return analysis, diag


def _hybrid_operator(hybrid, anom, p, cell_km, periodic_x, clock, band=None, transform=None,
                     frame=None, cache=None) -> dict[str, Any]:  # fmt: skip
    """Keyword arguments of the CG operator for the hybrid covariance, or for the scale-dependent one
    (``band``: :class:`~landimg.da.curvelet_hybrid.FineBand`); {} without an ensemble part."""
    if band is not None:
        with clock("update"):
            ens = band.covariance(anom, p.land, p.valid, p.layout, cell_km, periodic_x, transform, p.offset, frame,
                                  cache)  # fmt: skip
        return {"ensemble": ens, "ensemble_weight": 1.0, "land": p.land, "v_mask": 1.0 - band.fine_mask(transform)}
    if hybrid is None or not hybrid.beta > 0:
        return {}
    with clock("update"):
        ens = hybrid.covariance(anom, p.land, p.valid, p.layout, cell_km, periodic_x, cache)
    return {"ensemble": ens, "beta": hybrid.beta, "land": p.land}


def _bias_corrected(bias, transform, mean, xb, p, stats, op_kw, cg, clock, diag, r_cov) -> np.ndarray:
    """Stage 1 of the two-stage analysis: the background ``xb`` minus the bias estimate (its diagnostics
    into ``diag``); ``cg`` = (tol, maxiter, preconditioner) of the gap-aware solve."""
    with clock("update"):
        b_a, bdiag = bias.analyse(
            transform, mean, p.obs, p.valid, p.land, r_cov,
            b_weights(stats.s_b, frame_norms2(transform)), p.offset, op_kw, *cg, scale2=_mean_square(op_kw.get("scale"), p.land),
        )  # fmt: skip
    diag["_bias_image"], _ = bdiag.pop("image"), bdiag.pop("solution")
    diag.update(bdiag)
    return np.where(p.land, xb - b_a, 0.0)


def curvelet_enkf(
    background: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    transform: Any,
    settings: Any = None,
    **options: Any,
) -> np.ndarray:
    """Curvelet-space EnKF: (N, ny, nx) background images -> (N, ny, nx) analysis images.

    The functional core for tests and embedding: :func:`curvelet_analysis` without the diagnostics.
    ``settings`` (a :class:`~landimg.da.curvelet_method.CurveletEnKF`, default ``CurveletEnKF()``) and its
    fields by name in ``options`` (``pooling="wedge"``, ``solver="diagonal"`` ...), besides the run-time
    arguments of :func:`curvelet_analysis` (``obs_mask``, ``seed``, ``land``, ``layout``, ``rngs`` ...).
    """
    analysis, _ = curvelet_analysis(background, obs, obs_std, transform, settings, **options)
    return analysis


def _mean_square(scale: np.ndarray | None, land: np.ndarray) -> float:
    """Mean of ``S^2`` over land (1 without variance filtering)."""
    if scale is None:
        return 1.0
    vals = scale[land]
    return float(np.mean(vals**2)) if vals.size else 1.0
