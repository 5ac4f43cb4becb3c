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

:func:`curvelet_analysis` resolves its settings (:func:`method_settings`) and runs the steps
(:func:`landimg.da.curvelet_steps.analyse`); each lives in the module of its job: the checked inputs
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

from landimg.da.curvelet_method import CurveletEnKF
from landimg.da.curvelet_steps import analyse
from landimg.layout import Layout

__all__ = ["curvelet_analysis", "curvelet_enkf", "method_settings"]


def method_settings(settings: Any = None, options: dict[str, Any] | None = None) -> Any:
    """The :class:`~landimg.da.curvelet_method.CurveletEnKF` settings of an analysis: ``settings`` (default
    ``CurveletEnKF()``) with the fields named in ``options`` replaced (checked by the dataclass: an unknown
    name is a TypeError, an invalid value a one-line ValueError). The one place the defaults live."""
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
    layout: Layout | None = None,
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
    return analyse(
        method_settings(settings, options), background, obs, obs_std, transform,
        obs_mask=obs_mask, seed=seed, rngs=rngs, cell_km=cell_km, periodic_x=periodic_x, land=land,
        update_mask=update_mask, layout=layout, pad_offset=pad_offset, batch=batch, timings=timings, state=state,
        xyz_km=xyz_km, perturbations=perturbations, cache=cache,
    )  # fmt: skip


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
