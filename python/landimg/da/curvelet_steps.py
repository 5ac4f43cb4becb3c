"""The steps of one curvelet analysis, in order (:func:`analyse`: the body of
:func:`landimg.da.curvelet_enkf.curvelet_analysis`, with its settings resolved).

1. the checked inputs (:mod:`~landimg.da.curvelet_problem`); without usable observations the analysis is
   the (inflated) background;
2. the inflated anomalies and the ensemble part of ``B`` (hybrid or fine band, :mod:`~landimg.da.curvelet_hybrid`);
3. the variance scale ``S`` and the pooled ``s_b`` of the normalised anomalies
   (:mod:`~landimg.da.curvelet_background`);
4. the observation error's image model and ``s_o``, the gain (:mod:`~landimg.da.obs_error`,
   :mod:`~landimg.da.curvelet_stats`), the solve's ``R``;
5. the bias stage (stage 1 of the two-stage analysis), the member update and RTPS
   (:mod:`~landimg.da.curvelet_update`);
6. the diagnostics and what the layer increments need (:mod:`~landimg.da.curvelet_layers`).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np

from landimg.da.curvelet_background import (
    background_variance,
    inflated_anomalies,
    mean_square,
    normalised,
    variance_scale,
)
from landimg.da.curvelet_hybrid import BiasAware, FineBand, HybridB
from landimg.da.curvelet_layers import AnalysisSolution
from landimg.da.curvelet_problem import Problem, image_problem
from landimg.da.curvelet_spectral import spectral_frame
from landimg.da.curvelet_stats import CoefficientStats, coefficient_stats, frame_norms2
from landimg.da.curvelet_timing import Clock
from landimg.da.curvelet_update import inflated_background, relax_to_prior_spread, update_members
from landimg.da.curvelet_var import b_weights
from landimg.da.obs_error import ObsErrorModel, image_error_model, image_obs_covariance
from landimg.layout import Layout

__all__ = ["analyse"]

_KEY = "CurveletEnKF"  # prefix of the method's entries in the host's state
_INFLATION_KEY = f"{_KEY}.inflation_lambda"
_BIAS_KEY = f"{_KEY}.bias"


def analyse(
    s: Any,
    background: np.ndarray,
    obs: np.ndarray,
    obs_std: Any,
    transform: Any,
    *,
    obs_mask: np.ndarray | None = None,
    seed: int = 0,
    rngs: Sequence[np.random.Generator] | None = None,
    cell_km: tuple[float, float] = (1.0, 1.0),
    periodic_x: bool = False,
    land: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: Layout | None = None,
    pad_offset: tuple[int, int] | None = None,
    batch: int = 8,
    timings: dict[str, float] | None = None,
    state: MutableMapping[str, Any] | None = None,
    xyz_km: np.ndarray | None = None,
    perturbations: np.ndarray | None = None,
    cache: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Analysis images (nloc, ny, nx) and diagnostics of :func:`landimg.da.curvelet_enkf.curvelet_analysis`
    (the arguments and results are documented there) with the settings ``s``, a
    :class:`~landimg.da.curvelet_method.CurveletEnKF`."""
    hybrid = HybridB(s.hybrid_beta, s.hybrid_radius_km, xyz_km) if s.hybrid_beta > 0 else None
    bias = None
    if s.bias_correction and s.solver == "cg":  # the diagonal form has no bias stage
        bias = BiasAware(s.bias_gamma, s.bias_memory, s.bias_nscales, {} if state is None else state, _BIAS_KEY)
    p, diag = image_problem(background, obs, obs_std, transform, obs_mask, update_mask, land, layout, pad_offset, s)
    if s.inflation_mode == "adaptive":
        diag.update(inflation=float(s.inflation), inflation_lambda=float("nan"))
    if not p.valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        return inflated_background(p, _prior_inflation(s, state)), {**diag, "stats": None}

    clock, frame = Clock(timings), spectral_frame(transform)
    mean, anom, xb = inflated_anomalies(p, s, state, diag, _INFLATION_KEY)
    band, op_kw = _ensemble_part(s, hybrid, anom, p, xyz_km, cell_km, periodic_x, clock, transform, frame, cache)
    scale = None
    if s.variance_filtering:  # B = S C^T diag(v) C S: v from the normalised anomalies
        scale = variance_scale(anom, p.land, p.layout, s.variance_smoothing_km, cell_km, periodic_x)
        anom = normalised(anom, scale)
        op_kw["scale"] = diag["variance_scale"] = scale
    s_b = background_variance(p, transform, anom, s.pooling, s.variance_support, batch, clock, frame,
                              s.local_pooling_radius)  # fmt: skip
    anom = None  # free the memory
    stats, err = _gains(p, s, transform, s_b, scale, cell_km, periodic_x, seed, frame)
    clock.stop("statistics")

    cg = (s.cg_tol, s.cg_maxiter, s.cg_preconditioner) if s.solver == "cg" else None
    r_cov = _solve_covariance(p, s, cell_km, periodic_x) if cg is not None else None
    if bias is not None:  # stage 2 analyses the bias-corrected background
        xb = _bias_corrected(bias, transform, mean, xb, p, stats, op_kw, cg, clock, diag, r_cov)
    mode = "denkf" if s.denkf else "perturbed" if s.perturb_obs else "plain"
    analysis = update_members(
        p, transform, xb, stats, err, mode, rngs, seed, batch, clock, cg, diag, op_kw, r_cov, perturbations,
        settings=s, frame=frame,
    )  # fmt: skip
    if s.rtps > 0:
        analysis = relax_to_prior_spread(p, xb, analysis, s.rtps)
    diag.update(stats=stats, gain_per_scale=stats.per_scale()["gain"])
    _keep_solution(diag, p, stats, transform, frame, op_kw, band, s)
    return analysis, diag


def _prior_inflation(s: Any, state: MutableMapping[str, Any] | None) -> float:
    """The inflation of an analysis without usable observations: the settings' (adaptive: the smoothed
    prior from ``state``, clipped to [inflation, inflation_max])."""
    factor = s.inflation
    if s.inflation_mode == "adaptive" and state is not None:  # the smoothed prior, clipped
        factor = float(np.sqrt(np.clip(float(state.get(_INFLATION_KEY, 1.0)),
                                       s.inflation**2, s.inflation_max**2)))  # fmt: skip
    return factor


def _ensemble_part(
    s: Any, hybrid: HybridB | None, anom: np.ndarray, p: Problem, xyz_km: np.ndarray | None,
    cell_km: tuple[float, float], periodic_x: bool, clock: Clock, transform: Any, frame: Any, cache: Any,
) -> tuple[FineBand | None, dict[str, Any]]:  # fmt: skip
    """The fine band of the settings (or None) and the keyword arguments of the CG operator: the ensemble
    part of ``B`` from the (inflated, not normalised) anomalies ``anom`` -- the scale-dependent covariance
    of the fine band (:class:`~landimg.da.curvelet_hybrid.FineBand`), else the hybrid's, else none --, the
    spectral frame and the precision."""
    band = FineBand(s.fine_band_scales, s.fine_band_radius_km, xyz_km) if s.fine_band_scales > 0 else None
    ensemble: dict[str, Any] = {}
    if band is not None:
        with clock("update"):
            ens = band.covariance(anom, p.land, p.valid, p.layout, cell_km, periodic_x, transform, p.offset, frame,
                                  cache)  # fmt: skip
        ensemble = {"ensemble": ens, "ensemble_weight": 1.0, "land": p.land, "v_mask": 1.0 - band.fine_mask(transform)}
    elif hybrid is not None:
        with clock("update"):
            ens = hybrid.covariance(anom, p.land, p.valid, p.layout, cell_km, periodic_x, cache)
        ensemble = {"ensemble": ens, "beta": hybrid.beta, "land": p.land}
    return band, {**ensemble, "spectral": frame, "single": s.cg_single_precision}


def _gains(
    p: Problem, s: Any, transform: Any, s_b: np.ndarray, scale: np.ndarray | None, cell_km: tuple[float, float],
    periodic_x: bool, seed: int, frame: Any,
) -> tuple[CoefficientStats, ObsErrorModel]:  # fmt: skip
    """The diagonal-form statistics (``s_b``, ``s_o`` and the gain; with variance filtering those of the
    normalised problem) and the image model of the assumed observation error (of the perturbations)."""
    err = image_error_model(p.error, p.std, p.valid, cell_km, periodic_x)
    gain_err = err if scale is None else image_error_model(p.error, p.std, p.valid, cell_km, periodic_x, scale)
    stats = coefficient_stats(transform, s_b, gain_err, s.pooling, s.scale_weights, s.obs_var_samples, seed,
                              p.offset, frame)  # fmt: skip
    return stats, err


def _solve_covariance(p: Problem, s: Any, cell_km: tuple[float, float], periodic_x: bool) -> Any:
    """``R`` of the gap-aware solve on the usable observations (with ``obs_memory_inflation`` the
    correlated part's variance times the memory factor)."""
    interval = s.obs_memory_interval_days if s.obs_memory_inflation else None
    return image_obs_covariance(p.error, p.std, p.valid, cell_km, periodic_x, memory_interval_days=interval,
                                single=bool(s.cg_single_precision))  # fmt: skip


def _bias_corrected(bias, transform, mean, xb, p, stats, op_kw, cg, clock, diag, r_cov) -> np.ndarray:
    """Stage 1 of the two-stage analysis: the background ``xb`` minus the bias estimate (its diagnostics
    into ``diag``); ``cg`` = (tol, maxiter, preconditioner) of the gap-aware solve."""
    with clock("update"):
        b_a, bdiag = bias.analyse(
            transform, mean, p.obs, p.valid, p.land, r_cov,
            b_weights(stats.s_b, frame_norms2(transform)), p.offset, op_kw, *cg, scale2=mean_square(op_kw.get("scale"), p.land),
        )  # fmt: skip
    diag["_bias_image"], _ = bdiag.pop("image"), bdiag.pop("solution")
    diag.update(bdiag)
    return np.where(p.land, xb - b_a, 0.0)


def _keep_solution(diag, p, stats, transform, frame, op_kw, band, s) -> None:
    """What the layer increments need (:mod:`landimg.da.curvelet_layers`), from the solve's ``"_solution"``
    in ``diag``, as ``diag["solution"]``; the private entries dropped."""
    if "_solution" in diag:
        diag["solution"] = AnalysisSolution(
            z=diag.pop("_solution"), valid=p.valid, land=p.land, v=b_weights(stats.s_b, frame_norms2(transform)),
            transform=transform, offset=p.offset, frame=frame, scale=op_kw.get("scale"),
            v_mask=op_kw.get("v_mask"), bias_image=diag.pop("_bias_image", None), band=band,
            ensemble=op_kw.get("ensemble") if band is not None else None, single=s.cg_single_precision,
        )  # fmt: skip
    diag.pop("_bias_image", None)
