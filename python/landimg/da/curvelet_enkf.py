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

:func:`curvelet_analysis` runs the steps; each lives in the module of its job: the checked inputs
(:mod:`~landimg.da.curvelet_problem`), the inflated anomalies, the variance scale ``S`` and ``s_b``
(:mod:`~landimg.da.curvelet_background`), the observation error's image model and ``R``
(:mod:`~landimg.da.obs_error`), ``s_o`` and the gain (:mod:`~landimg.da.curvelet_stats`), the ensemble part
of ``B`` and the bias stage (:mod:`~landimg.da.curvelet_hybrid`), the member update and RTPS
(:mod:`~landimg.da.curvelet_update`).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import replace
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
from landimg.parallel import MemberLayout

__all__ = ["curvelet_analysis", "curvelet_enkf", "method_settings"]

_KEY = "CurveletEnKF"  # prefix of the method's entries in the host's state
_INFLATION_KEY = f"{_KEY}.inflation_lambda"
_BIAS_KEY = f"{_KEY}.bias"


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
        ``n_obs``, ``n_nan_masked``, ``stats`` (:class:`~landimg.da.curvelet_stats.CoefficientStats`),
        ``gain_per_scale`` (diagonal-form gain, also for ``"cg"``); adaptive: ``inflation`` (applied), ``inflation_lambda`` (unclipped, NaN if
        undefined); ``"cg"``: ``cg_iterations`` (member mean), ``cg_unconverged`` (members at ``cg_maxiter``);
        ``bias``: ``bias_mean``, ``bias_rms`` (over land), ``bias_iterations``; ``variance_filtering``:
        ``variance_scale`` (the image ``S``, (ny, nx)).
    """
    s = method_settings(settings, options)
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
