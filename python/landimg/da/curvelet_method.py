"""The curvelet-space EnKF as a method: hyper-parameters (declared once, here) and ``analyze`` on arrays."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from landimg.da.column_ops import (
    VerticalLocalization,
    increment_stats,
    inflate_columns,
    inflated_layers,
    usable_observations,
)
from landimg.da.curvelet_hybrid import BiasAware, HybridB, sphere_xyz_km
from landimg.da.curvelet_stats import POOLINGS, VARIANCE_SUPPORTS
from landimg.da.curvelet_steps import analyse
from landimg.da.curvelet_var import PRECONDITIONERS, SOLVERS, max_nscales
from landimg.da.inflation import InflationSettings, smoothed_lambda
from landimg.da.layer_rules import layer_increments
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.da.protocol import AnalysisContext, Diagnostics, Distribution, Need
from landimg.da.scale_inflation import CorrelatedPart, apply_scale_inflation, scale_statistics
from landimg.layout import Layout

__all__ = ["ANOMALY_UPDATES", "FINEST", "LAYER_INCREMENTS", "CurveletEnKF"]

#: How the observed layer's increment reaches the model layers (see ``CurveletEnKF.layer_increments``).
LAYER_INCREMENTS = ("regression", "full", "analysis", "transform", "pooled")
#: How the DEnKF updates the anomalies with the gap-aware solve (see ``CurveletEnKF.anomaly_update``).
ANOMALY_UPDATES = ("joint", "diagonal", "cg")

#: The finest curvelet scale: one non-directional band, or curvelets.
FINEST = ("wavelets", "curvelets")


@dataclass(frozen=True)
class CurveletEnKF(VerticalLocalization, InflationSettings):
    """Curvelet-space EnKF of the observed layer (docs/method.md).

    Attributes
    ----------
    pooling : {"wedge", "scale", "coefficient", "global", "local"}
        Where background and observation error variances are averaged (wedge: best in the toy study;
        ``"local"``: the background variances locally within each wedge, ``local_pooling_radius``, Pannekoucke,
        Berre & Desroziers 2007: a B that varies in space per direction and scale, at the cost of a curvelet
        transform pair per CG product instead of an FFT pair).
    local_pooling_radius : float
        ``pooling="local"``: standard deviation of the Gaussian that averages a wedge's coefficient
        variances over its coefficient grid, in grid steps (the grid spacing doubles every other scale).
    variance_support : {"interior", "land_fraction"}
        How pooled background variances are brought to their land value: pooled over the coefficients whose
        frame elements lie on land, normalised by their land coverage (``"interior"``, default since issue 18:
        removes the coastal-jump energy of smooth anomalies; docs/method.md), or divided by the land fraction.
    variance_filtering : bool
        A ``B`` that varies in space (default True since issue 18): ``B = S C^T diag(v) C S`` with ``S`` the
        ensemble standard deviation per pixel smoothed over land (``variance_smoothing_km``) and ``v`` the
        pooled variances of the normalised anomalies ``a_i / S`` (Raynaud, Berre & Desroziers 2009; Bonavita
        et al. 2012); False: ``S = 1``, the homogeneous ``B``.
    variance_smoothing_km : float
        Length L of the normalised Gaussian filter (``exp(-r^2 / L^2)``) that smooths the ensemble variance
        of ``variance_filtering``, km (0: per pixel).
    inflation_per_scale : bool
        Adaptive mode: one time-smoothed inflation per curvelet scale, estimated from the innovations and
        ensemble anomalies projected on each scale and applied to every layer's anomalies in curvelet space
        (:mod:`landimg.da.scale_inflation`; state ``CurveletEnKF.inflation_lambda.scale<s>``, diagnostics
        ``inflation_per_scale``/``inflation_lambda_per_scale``); False (default): one factor for all scales.
        In the study (3 seeds, docs/validation.md) per-scale inflation equalled one factor at 0-10 cm and
        scored 0.0105 +- 0.0064 lower at 10-40 cm (the top layer's scale factors applied to deeper layers).
    rtps : float
        Relaxation to prior spread, 0..1.
    perturb_obs : bool
        Perturbed observations (stochastic EnKF); False = every member sees the unperturbed observations
        (tests). No effect with ``denkf``.
    denkf : bool
        Deterministic EnKF (Sakov & Oke 2008; default True: +0.005 +- 0.001 in 0-10 cm correlation over
        perturbed observations, 3 seeds, docs/validation.md): the mean gets the full Kalman increment and
        the anomalies half of it, ``x_i + K (y - H (x_i + mean) / 2)``, with no observation perturbation
        (no sampling noise from perturbed observations; the square-root update to first order in ``K H``).
    scale_weights : tuple of float or None
        Gain multiplier per scale, coarsest first.
    obs_corr_km : float or None
        The observation error this filter assumes, for mis-specification experiments (default None: the
        declared error, :meth:`assumed_obs_error`): its correlation length L, km, correlation
        ``exp(-r^2 / L^2)``, e^-1 at L (the convention of :mod:`landimg.random_fields` and of the synthetic
        errors); 0 = white with the declared total std.
    obs_white_fraction : float in [0, 1] or None
        The white fraction of the assumed error variance, the rest correlated with length ``obs_corr_km``
        (``< 1`` needs ``obs_corr_km > 0``). None (default): with ``obs_corr_km`` unset the declared error;
        with ``obs_corr_km > 0`` the declared fraction (entirely correlated when the declared error is white).
    obs_memory_inflation : bool
        The declared error's correlated part persists between analyses (``memory_days``, AR(1)); treated as
        new at every analysis it would be counted again and again. With this option the solve's ``R`` takes
        that part's variance times ``(1 + a) / (1 - a)``, ``a = exp(-obs_memory_interval_days /
        memory_days)``: the variance of the mean of successive AR(1) errors against independent ones (an
        effective-sample-size correction; the inflation estimate keeps the error of one analysis).
    obs_memory_interval_days : float
        Days between successive looks at the correlated error (the analysis interval), > 0.
    nscales : int or None
        Number of curvelet scales (>= 2; checked against the padded grid when the configuration is read).
        None: with ``solver="cg"`` the largest number the padded domain allows
        (:func:`landimg.da.curvelet_var.max_nscales`: finer bands of ``B`` at the large scales that carry
        observations into gaps); with ``"diagonal"`` the transform's default.
    nangles_coarse : int
        Curvelet angles at the second-coarsest scale (a multiple of 4, at least 8; doubling every other
        scale going finer).
    finest : {"wavelets", "curvelets"}
        Finest curvelet scale as one non-directional highpass band or as directional curvelets.
    pad : int or None
        Edge padding of regional grids, pixels on each side (None: ``imageprep`` default; global grids are
        not padded in longitude, so a ``pad`` there must be 0).
    obs_depth : (float, float)
        Observed layer, m.
    deep_regression : bool
        Also update the layers below ``obs_depth`` by ensemble regression on the observed-layer increment
        (default True, as in the experiment).
    layer_increments : {"regression", "full", "analysis", "transform", "pooled"}
        How the observed-layer increment reaches the layers that overlap ``obs_depth``: ``"regression"``:
        ``beta_l dx`` with ``beta_l = cov(theta_l, x_obs) / var(x_obs)``, so each layer gets its
        share and the observed-layer mean changes by exactly ``dx`` (columns without spread: the full
        ``dx``); ``"full"`` (the first version's rule): every overlapping layer gets the whole ``dx`` (layer
        3, with 0.49 cm inside 0-5 cm, moves as much as the top layer). An earlier study found no
        difference between these two in the scores (docs/validation.md); ``"regression"`` is the one
        consistent with the operator. ``"analysis"`` (issue 18; default): every layer's *mean* increment
        from the observed layer's solution through its cross-covariance with it (per-direction vertical
        regression of the curvelet ``B``, localized ensemble cross-covariances of the fine band;
        :mod:`landimg.da.curvelet_layers`), the anomalies by the column regression; needs ``solver="cg"``,
        pooled variances, wavelets at the finest scale and ``hybrid_beta = 0`` (with any other of these,
        ask for ``"regression"``). The default since the issue-18 study's tuning (training seeds
        1001/1002, the best of four candidates on the primary score: docs/validation.md).
        ``"transform"`` and ``"pooled"`` (options; :mod:`landimg.da.deep_layers`): the layers inside
        ``obs_depth`` by the column regression, the layers below by a local rule over the land columns within
        ``layer_radius_km``: ``"transform"``, the ensemble-space weights that best fit the observed layer's
        increment (every member's) in the neighbourhood, applied to the column's deep anomalies (the LETKF's
        way of reaching the deep layers, the curvelet analysis standing for the observations); ``"pooled"``,
        the column regression with its covariances pooled over the neighbourhood.
    layer_radius_km : float
        Support of the Gaspari-Cohn weights of the neighbourhoods of ``layer_increments`` "transform" and
        "pooled", km (> 0).
    layer_fit_ridge : float
        ``layer_increments="transform"``: the fit's pseudo-observation error variance relative to the
        local observed-layer ensemble variance (>= 0; the ridge ``alpha s^2 (N - 1) I`` of the
        ensemble-space normal equations; 0: least squares, larger: smaller deep increments).
    deep_gain : float in [0, 1]
        Factor on the increments (mean and anomalies) of the layers below the observed depth (``h = 0``)
        after ``layer_increments``: 1 (default) unchanged, 0 the same as ``deep_regression=False``. The deep
        layers' day-to-day increments are mostly noise against their small temporal variability while their
        persistent errors are corrected over many analyses (docs/validation.md, "The deep layers").
    snow_threshold : float
        Columns with more snow water than this (kg/m2) are not updated.
    obs_var_samples : int
        Monte-Carlo images for the observation-error variance per coefficient when it has no exact
        formula (correlated error, or an ``obs_std`` map with ``pooling="coefficient"``).
    solver : {"cg", "diagonal"}
        ``"cg"`` (default): gap-aware analysis ``x + B H^T (H B H^T + R)^-1 d``, ``B = C^T diag(s_b/|row|^2) C``,
        by per-member conjugate gradients (observations reach into swath gaps; docs/method.md).
        ``"diagonal"``: the paper's per-coefficient gain (each member's own values stand in the gaps).
    cg_tol : float
        Relative residual at which a member's conjugate-gradient solve stops (default 1e-3 since issue 18:
        the training-seed scores of 1e-3 and 1e-4 agree to every printed digit, docs/validation.md).
    cg_maxiter : int
        Iteration cap of the solve (a warning names members that hit it).
    cg_preconditioner : {"fourier", "jacobi"}
        Preconditioner of the CG solves: ``"fourier"`` (default), ``(B + R)^-1`` of a fully observed periodic
        domain as a Fourier multiplier, restricted to the observations (where ``B`` is one: pooled variances,
        wavelets at the finest scale; else Jacobi), 2.5-3.5x fewer iterations than ``"jacobi"``,
        ``1 / (mean diag B + diag R)``.
    cg_single_precision : bool
        The FFT products of the CG solves (``B``, ``R``, the preconditioner, and the increments ``B H^T z``)
        and the cross energies of ``layer_increments="analysis"``'s per-direction regressions in single
        precision (relative error ~1e-7 per product, far below ``cg_tol``; about 1.5x faster FFTs; the CG
        solution moves within its tolerance: ~1e-3 of the mean increment at global 1 deg). The curvelet
        transform itself keeps its exact float64 path. False: float64. Either way the products run through
        FFTW one image at a time when pyFFTW is importable (:func:`landimg.da.curvelet_spectral.fftw_plans`),
        else through ``scipy.fft``.
    anomaly_update : {"cg", "joint", "diagonal"}
        DEnKF with ``solver="cg"``: ``"cg"`` (default since issue 18), the mean by one solve and each anomaly
        by at most ``anomaly_cg_iterations`` CG iterations of the gap-aware gain (training seeds: the scores
        of ``"joint"`` to the printed digits at about half its cost); ``"joint"``, every member solved to
        ``cg_tol`` with its own innovation ``y - H (x_i + mean) / 2`` (the exact DEnKF, one full solve per
        member); ``"diagonal"``, the mean by one solve and each anomaly by half the diagonal-form gain
        ``C^T diag(k) C`` on the observed pixels (one FFT pair per member; cheapest, +1.5 % background
        ubRMSE at 0-10 cm on the training seeds: the anomalies in the gaps keep too much spread).
    anomaly_cg_iterations : int
        CG iterations of each anomaly's solve with ``anomaly_update="cg"``.
    hybrid_beta : float in [0, 1]
        Weight of the localized ensemble covariance in a hybrid ``B = (1 - beta) C^T diag(v) C +
        beta (X X^T / (N - 1)) o L`` (``solver="cg"``; :mod:`landimg.da.curvelet_hybrid`); 0 (default) = the
        curvelet-diagonal ``B`` alone, exactly.
    hybrid_radius_km : float
        Support of the Gaspari-Cohn localization ``L`` of the ensemble part, km (weight 0 beyond).
    fine_band_scales : int
        Scale-dependent covariances (Buehner & Shlyaeva 2015): the ``fine_band_scales`` finest curvelet scales
        take the localized covariance of band-passed ensemble anomalies, ``(X_f X_f^T / (N - 1)) o L_f`` with
        ``X_f = C^T (m_f o C X)``, the coarser ones keep the curvelet-diagonal ``B`` (and the bias stage);
        0 (default): the curvelet ``B`` at every scale (``solver="cg"``; not with ``hybrid_beta``).
    fine_band_radius_km : float
        Support of the Gaspari-Cohn localization ``L_f`` of the fine band, km.
    bias_correction : bool
        Bias-aware two-stage analysis (Dee & da Silva 1998): a forecast bias on the ``bias_nscales``
        coarsest curvelet scales, carried by the host between analyses, is estimated from the innovations
        and removed from the background before the state analysis (``solver="cg"`` only). Default False since
        issue 18: with the declared (correlated) R it no longer helps, and on the primary score (background
        temporal ubRMSE) the training seeds score it worse below 10 cm in both worlds (docs/validation.md;
        issue 9 found +0.004 in 0-10 cm spatial correlation with a white R).
    bias_gamma : float
        Bias error covariance ``P_b = bias_gamma * B`` on the coarsest scales (0: the bias stays 0).
    bias_memory : float in [0, 1]
        Bias forecast ``b_f = bias_memory * b_a`` of the next analysis (1 = persistence).
    bias_nscales : int
        Number of coarsest curvelet scales that carry the bias.
    """

    pooling: str = "wedge"
    local_pooling_radius: float = 2.0
    variance_support: str = "interior"
    variance_filtering: bool = True
    variance_smoothing_km: float = 300.0
    inflation_per_scale: bool = False
    rtps: float = 0.0
    perturb_obs: bool = True
    denkf: bool = True
    scale_weights: tuple[float, ...] | None = None
    obs_corr_km: float | None = None
    obs_white_fraction: float | None = None
    obs_memory_inflation: bool = False
    obs_memory_interval_days: float = 1.0
    nscales: int | None = None
    nangles_coarse: int = 16
    finest: str = "wavelets"
    pad: int | None = None
    obs_depth: tuple[float, float] = (0.0, 0.05)
    deep_regression: bool = True
    layer_increments: str = "analysis"
    layer_radius_km: float = 500.0
    layer_fit_ridge: float = 1.0
    deep_gain: float = 1.0
    snow_threshold: float = 1.0
    obs_var_samples: int = 32
    solver: str = "cg"
    cg_tol: float = 1e-3
    cg_maxiter: int = 300
    cg_preconditioner: str = "fourier"
    cg_single_precision: bool = True
    anomaly_update: str = "cg"
    anomaly_cg_iterations: int = 5
    hybrid_beta: float = 0.0
    hybrid_radius_km: float = 1000.0
    fine_band_scales: int = 0
    fine_band_radius_km: float = 300.0
    bias_correction: bool = False
    bias_gamma: float = 0.1
    bias_memory: float = 1.0
    bias_nscales: int = 1

    def __post_init__(self) -> None:
        HybridB(self.hybrid_beta, self.hybrid_radius_km)  # validates
        BiasAware(self.bias_gamma, self.bias_memory, self.bias_nscales, {})
        if self.solver != "cg" and self.hybrid_beta > 0:
            raise ValueError("hybrid_beta > 0 needs solver='cg'")
        if self.fine_band_scales < 0 or not self.fine_band_radius_km > 0:
            raise ValueError(f"fine_band_scales must be >= 0 and fine_band_radius_km > 0, got "
                             f"{self.fine_band_scales}, {self.fine_band_radius_km}")  # fmt: skip
        if self.fine_band_scales > 0 and (self.solver != "cg" or self.hybrid_beta > 0):
            raise ValueError("fine_band_scales > 0 needs solver='cg' and hybrid_beta = 0")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {'|'.join(SOLVERS)}, got {self.solver!r}")
        if not self.cg_tol > 0 or self.cg_maxiter < 1:
            raise ValueError(f"need cg_tol > 0 and cg_maxiter >= 1, got {self.cg_tol}, {self.cg_maxiter}")
        if self.solver == "cg" and self.scale_weights is not None:
            raise ValueError("scale_weights apply to solver='diagonal' only")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {'|'.join(POOLINGS)}, got {self.pooling!r}")
        if self.variance_support not in VARIANCE_SUPPORTS:
            raise ValueError(
                f"variance_support must be one of {'|'.join(VARIANCE_SUPPORTS)}, got {self.variance_support!r}"
            )
        self.check_inflation_settings()
        self.check_vertical_localization()
        if self.cg_preconditioner not in PRECONDITIONERS:
            raise ValueError(f"cg_preconditioner must be one of {'|'.join(PRECONDITIONERS)}, got {self.cg_preconditioner!r}")
        if not (np.isfinite(self.obs_memory_interval_days) and self.obs_memory_interval_days > 0):
            raise ValueError(f"obs_memory_interval_days must be finite and > 0, got {self.obs_memory_interval_days}")
        if not (np.isfinite(self.local_pooling_radius) and self.local_pooling_radius > 0):
            raise ValueError(f"local_pooling_radius must be finite and > 0, got {self.local_pooling_radius}")
        if not (np.isfinite(self.variance_smoothing_km) and self.variance_smoothing_km >= 0):
            raise ValueError(f"variance_smoothing_km must be finite and >= 0, got {self.variance_smoothing_km}")
        if self.anomaly_update not in ANOMALY_UPDATES:
            raise ValueError(f"anomaly_update must be one of {'|'.join(ANOMALY_UPDATES)}, got {self.anomaly_update!r}")
        if self.anomaly_cg_iterations < 1:
            raise ValueError(f"anomaly_cg_iterations must be >= 1, got {self.anomaly_cg_iterations}")
        if self.layer_increments not in LAYER_INCREMENTS:
            raise ValueError(f"layer_increments must be one of {'|'.join(LAYER_INCREMENTS)}, got {self.layer_increments!r}")
        if not (np.isfinite(self.layer_radius_km) and self.layer_radius_km > 0):
            raise ValueError(f"layer_radius_km must be finite and > 0, got {self.layer_radius_km}")
        if not (np.isfinite(self.layer_fit_ridge) and self.layer_fit_ridge >= 0):
            raise ValueError(f"layer_fit_ridge must be finite and >= 0, got {self.layer_fit_ridge}")
        if not (np.isfinite(self.deep_gain) and 0 <= self.deep_gain <= 1):
            raise ValueError(f"deep_gain must be in [0, 1], got {self.deep_gain}")
        if not 0 <= self.rtps <= 1:
            raise ValueError(f"rtps must be in [0, 1], got {self.rtps}")
        self._check_assumed_error()
        self._check_transform_settings()
        # after every option's own check, so that a bad value is named, not this combination
        self._check_layer_settings_apply()
        if self.layer_increments == "analysis" and (self.solver != "cg" or self.pooling in ("coefficient", "local")
                                                    or self.finest != "wavelets" or self.hybrid_beta > 0):
            raise ValueError("layer_increments='analysis' (the default) needs solver='cg', pooled variances, "
                             "finest='wavelets' and hybrid_beta = 0; with the other options set "
                             "layer_increments='regression'")  # fmt: skip
        if not self.obs_var_samples >= 1:
            raise ValueError(f"obs_var_samples must be >= 1, got {self.obs_var_samples}")
        if not (np.isfinite(self.snow_threshold) and self.snow_threshold >= 0):
            raise ValueError(f"snow_threshold must be finite and >= 0, got {self.snow_threshold}")
        top, bottom = self.obs_depth
        if not 0.0 <= top < bottom:
            raise ValueError(f"obs_depth must be (top, bottom) with 0 <= top < bottom, m, got {self.obs_depth}")
        if self.scale_weights is not None and not all(np.isfinite(w) and w >= 0 for w in self.scale_weights):
            raise ValueError(f"scale_weights must be finite and >= 0, got {self.scale_weights}")

    def _check_layer_settings_apply(self) -> None:
        """A deep-layer setting moved from its default under a rule that ignores it is refused (a study
        candidate must not believe it changed something it did not)."""
        defaults = {f.name: f.default for f in fields(self)}
        ignored = (
            ("layer_radius_km", self.layer_increments not in ("transform", "pooled"), "layer_increments='transform' or 'pooled'"),
            ("layer_fit_ridge", self.layer_increments != "transform", "layer_increments='transform'"),
            ("deep_gain", not self.deep_regression, "deep_regression = true"),
        )  # fmt: skip
        for name, unused, needs in ignored:
            if unused and getattr(self, name) != defaults[name]:
                raise ValueError(f"{name} = {getattr(self, name)} has no effect: it applies with {needs} only")

    def _check_assumed_error(self) -> None:
        """``obs_corr_km`` and ``obs_white_fraction`` (one-line ValueError)."""
        corr, w = self.obs_corr_km, self.obs_white_fraction
        if corr is not None and not (np.isfinite(corr) and corr >= 0):
            raise ValueError(f"obs_corr_km must be finite and >= 0 (or unset), got {corr!r}")
        if w is not None and not 0.0 <= w <= 1.0:  # also rejects NaN
            raise ValueError(f"obs_white_fraction must be in [0, 1] (or unset), got {w!r}")
        if w is not None and w < 1.0 and not (corr is not None and corr > 0):
            raise ValueError(f"obs_white_fraction={w} < 1 needs a correlation length obs_corr_km > 0, got {corr!r}")

    def _check_transform_settings(self) -> None:
        """The transform parameters that do not depend on the grid (one-line ValueError)."""
        if self.finest not in FINEST:
            raise ValueError(f"finest must be one of {'|'.join(FINEST)}, got {self.finest!r}")
        if self.nangles_coarse < 8 or self.nangles_coarse % 4:
            raise ValueError(f"nangles_coarse must be a multiple of 4 and at least 8, got {self.nangles_coarse}")
        if self.nscales is not None and self.nscales < 2:
            raise ValueError(f"nscales must be at least 2 (or None), got {self.nscales}")
        if self.pad is not None and self.pad < 0:
            raise ValueError(f"pad must be >= 0 (or None), got {self.pad}")

    def check_grid(self, shape: tuple[int, int], periodic_lon: bool = False) -> None:
        """Raise a one-line ValueError naming the setting when the transform does not fit a grid of
        ``shape`` (ny, nx) (padding, number of scales); the experiment calls it when it reads its
        configuration, before any spin-up."""
        from landimg.transform._windows import check_parameters
        from landimg.transform.imageprep import EdgePadding

        try:
            padded = EdgePadding(shape, pad=self.pad, periodic_lon=periodic_lon).padded_shape
        except ValueError as exc:
            raise ValueError(f"pad: {exc}") from None
        most = max_nscales(padded) if min(padded) >= 6 else 1
        if self.nscales is not None:
            try:
                check_parameters(padded, int(self.nscales), int(self.nangles_coarse), self.finest)
            except ValueError:
                raise ValueError(
                    f"nscales = {self.nscales} does not fit the padded grid {padded} of this domain (at most {most})"
                ) from None
        total = self.nscales if self.nscales is not None else most
        if self.fine_band_scales >= total:
            raise ValueError(f"fine_band_scales = {self.fine_band_scales} leaves no coarse scale of the {total} "
                             f"of this domain's transform")  # fmt: skip

    @property
    def need(self) -> Need:
        """Whole-member images (each member's every column on one rank); perturbed observations drawn by
        the host for the stochastic update (``perturb_obs`` without ``denkf``)."""
        return Need(Distribution.MEMBERS, perturbations=self.perturb_obs and not self.denkf)

    def assumed_obs_error(self, declared: ObsError) -> ObsError:
        """The observation error this filter assumes: the declared one (default), or, for mis-specification
        experiments, the declared total std per column with the variance split given by ``obs_corr_km`` /
        ``obs_white_fraction`` (``obs_corr_km = 0``: white)."""
        corr, w = self.obs_corr_km, self.obs_white_fraction
        if corr is None and w is None:
            return declared
        if corr is None or corr <= 0 or w == 1.0:
            return declared.assume(white_fraction=1.0)
        if w is None:
            w = declared.white_fraction if declared.correlated else 0.0
        return declared.assume(white_fraction=w, corr_length_km=corr)

    @property
    def transform_key(self) -> tuple:
        """What identifies this method's transform for a given grid (the host's cache key)."""
        auto = self.nscales is None and self.solver == "cg"  # max_nscales of the padded grid
        return ("curvelet", "max" if auto else self.nscales, self.nangles_coarse, self.finest, self.pad)

    def transform_for(
        self, shape: tuple[int, int], periodic_lon: bool = False
    ) -> tuple[Any, tuple[int, int]]:
        """The padded curvelet transform for images of ``shape`` and the image offset in it."""
        from landimg.transform.curvelet import Curvelet
        from landimg.transform.imageprep import EdgePadding

        pad = EdgePadding(shape, pad=self.pad, periodic_lon=periodic_lon)
        kw = {} if self.nscales is None else {"nscales": self.nscales}
        if self.nscales is None and self.solver == "cg":
            kw = {"nscales": max_nscales(pad.padded_shape)}
        return Curvelet(
            pad.padded_shape, nangles_coarse=self.nangles_coarse, finest=self.finest, **kw
        ), pad.offset

    def update(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_std: float | np.ndarray,
        *,
        transform: Any = None,
        pad_offset: tuple[int, int] | None = None,
        periodic_lon: bool = False,
        cell_km: tuple[float, float] = (1.0, 1.0),
        obs_mask: np.ndarray | None = None,
        land: np.ndarray | None = None,
        update_mask: np.ndarray | None = None,
        layout: Layout | None = None,
        rngs: Sequence[np.random.Generator] | None = None,
        seed: int = 0,
        state: MutableMapping[str, Any] | None = None,
        xyz_km: np.ndarray | None = None,
        perturbations: np.ndarray | None = None,
        timings: dict[str, float] | None = None,
        cache: Any = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Analysis images (nloc, ny, nx) and diagnostics: :func:`landimg.da.curvelet_enkf.curvelet_analysis`
        with these settings.

        ``transform`` defaults to :meth:`transform_for` the image shape (padded). ``state``: where the
        bias of ``bias_correction`` (and the adaptive inflation) is carried between calls (None: nothing is
        carried). ``xyz_km`` (nland, 3): the land pixels' positions in km for the hybrid localization (None:
        a flat grid of ``cell_km``).
        """
        if transform is None:
            transform, pad_offset = self.transform_for(np.shape(background)[1:], periodic_lon)
        return analyse(
            self, background, obs, obs_std, transform,
            obs_mask=obs_mask, seed=seed, rngs=rngs, cell_km=cell_km, periodic_x=periodic_lon, land=land,
            update_mask=update_mask, layout=layout, pad_offset=pad_offset, state=state, xyz_km=xyz_km,
            perturbations=perturbations, timings=timings, cache=cache,
        )  # fmt: skip

    def analyze(
        self,
        background: np.ndarray,
        obs: np.ndarray,
        obs_error: ObsError | float | np.ndarray,
        obs_mask: np.ndarray | None,
        context: AnalysisContext,
    ) -> tuple[np.ndarray, Diagnostics]:
        """Increments of the layer state (nlev, ncol, nloc) from observations of the ``obs_depth`` layer.

        Every layer is inflated first (:func:`landimg.da.column_ops.inflate_columns`, as in every filter);
        the observed layer (``context.h``-weighted mean) of every member is then analysed as an image, and
        its increment reaches the layers by ``layer_increments`` (and ``deep_regression``). ``obs``,
        ``obs_error`` and ``obs_mask`` are per column (ncol,) of every column of the geometry (whole-member
        images, ``need``); see :mod:`landimg.da.protocol`.
        """
        g, lay, h = context.geometry, context.layout, np.asarray(context.h, dtype=np.float64)
        if context.columns is not None and not np.array_equal(context.columns, np.arange(g.ncol)):
            raise ValueError("CurveletEnKF analyses whole-member images: every column of the geometry, in order")
        theta = np.asarray(background, dtype=np.float64)
        declared = as_obs_error(obs_error, g.ncol)
        assumed = self.assumed_obs_error(declared)
        pert = context.perturbations
        ok = context.update_mask
        ok = np.ones(theta.shape, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
        transform, offset = context.cache.get(
            "transform", (self.transform_key, g.shape, g.periodic_lon),
            lambda: self.transform_for(g.shape, g.periodic_lon),
        )  # fmt: skip
        if self.inflation_mode == "adaptive" and self.inflation_per_scale:
            infl, fields = self._scale_inflated(
                theta, obs, assumed, obs_mask, inflated_layers(self, ok, h), context, transform, offset
            )
        else:
            infl, fields = inflate_columns(self, theta, obs, assumed, obs_mask, ok, context)
        xcol = np.einsum("l,lcm->mc", h, infl)  # observed-layer mean (nloc, ncol)
        core = replace(self, inflation=1.0, inflation_mode="fixed")  # inflated above, every layer
        xa, diag = core.update(
            g.to_image(xcol), g.to_image(np.asarray(obs, dtype=np.float64)), _pixel_error(declared, g),
            transform=transform, pad_offset=offset, periodic_lon=g.periodic_lon, cell_km=g.cell_km,
            obs_mask=None if obs_mask is None else g.to_image(np.asarray(obs_mask, dtype=bool), fill=False),
            land=g.land, update_mask=g.to_image(np.all(ok[h > 0], axis=0).T, fill=False).astype(bool),
            layout=lay, rngs=context.rngs, seed=context.seed, state=context.state, cache=context.cache,
            xyz_km=sphere_xyz_km(g.xyz) if self.hybrid_beta > 0 or self.fine_band_scales > 0 else None,
            perturbations=None if pert is None else g.to_image(np.asarray(pert, dtype=np.float64).T, fill=0.0),
        )  # fmt: skip
        dobs = g.to_columns(xa) - xcol
        dtheta = layer_increments(self, infl, xcol, dobs, h, lay, g, context.cache, diag.get("solution"))
        if infl is not theta:
            dtheta += infl - theta
        dtheta *= ok
        mean, rms = increment_stats(np.einsum("l,lcm->mc", h, dtheta), lay)
        return dtheta, Diagnostics(
            method="CurveletEnKF", n_obs=diag["n_obs"], n_nan_masked=diag["n_nan_masked"],
            increment_mean=mean, increment_rms=rms, gain_per_scale=diag.get("gain_per_scale"),
            cg_iterations=diag.get("cg_iterations"),
            extra={"stats": diag.get("stats"), **{k: v for k, v in diag.items() if k.startswith("bias_")}},
            **fields,
        )  # fmt: skip

    def _scale_inflated(
        self, theta, obs, error, obs_mask, ok, context, transform, offset
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Every layer's anomalies (nlev, ncol, nloc) inflated per curvelet scale, and the diagnostics.

        The per-scale statistics of the observed layer (:func:`landimg.da.scale_inflation.scale_statistics`)
        feed :func:`landimg.da.inflation.smoothed_lambda`, each scale with its own state in ``context.state``
        (``"<Method>.inflation_lambda.scale<s>"``; a scale without one starts from the single-scale state
        ``"<Method>.inflation_lambda"`` of earlier restarts, else 1). ``inflation`` reports the effective
        factor ``sqrt(sum_s lambda_s A_s / sum_s A_s)`` (kept as the single-scale state too) and
        ``inflation_lambda`` this analysis' single-scale estimate. Layers where ``ok`` is False keep theirs.
        ``error`` (the assumed :class:`ObsError`): ``R_s`` holds the energy of its correlated part too.
        """
        g, lay, h = context.geometry, context.layout, np.asarray(context.h, dtype=np.float64)
        obs = np.asarray(obs, dtype=np.float64)
        std = np.broadcast_to(np.asarray(error.std, dtype=np.float64), obs.shape)
        valid = usable_observations(obs, std, obs_mask)
        corr = None
        if error.correlated:
            cstd = g.to_image(np.broadcast_to(error.corr_std, obs.shape), fill=0.0)
            corr = CorrelatedPart(cstd, error.corr_length_km, g.cell_km, g.periodic_lon, self.obs_var_samples)
        st = scale_statistics(
            g.to_image(np.einsum("l,lcm->mc", h, theta), fill=0.0), g.to_image(obs, fill=0.0),
            g.to_image(std, fill=0.0), g.to_image(valid, fill=False).astype(bool), transform, offset, lay,
            debias=self.inflation_debias, correlated=corr,
        )  # fmt: skip
        key = f"{type(self).__name__}.inflation_lambda"
        single = float(context.state.get(key, 1.0))
        prior = np.array([float(context.state.get(f"{key}.scale{s}", single)) for s in range(st.d2.size)])
        lam_o, lam = smoothed_lambda(
            st.d2, st.r_tr, st.hbh, st.dof, prior=prior, prior_var=self.inflation_prior_var,
            lower=self.inflation, upper=self.inflation_max,
        )  # fmt: skip
        a_tot = float(np.sum(st.hbh))
        eff = float(np.sum(lam * st.hbh) / a_tot) if a_tot > 0 else float(np.mean(lam))
        context.state[key] = eff
        for s, v in enumerate(lam):
            context.state[f"{key}.scale{s}"] = float(v)
        lam_tot = (float(np.sum(st.d2)) - float(np.sum(st.r_tr))) / a_tot if a_tot > 0 else float("nan")
        factors = np.sqrt(lam)
        fields = {
            "inflation": float(np.sqrt(eff)), "inflation_lambda": lam_tot,
            "inflation_per_scale": factors.tolist(), "inflation_lambda_per_scale": lam_o.tolist(),
        }  # fmt: skip
        if np.all(factors == 1.0):
            return theta, fields
        mean = lay.mean(theta, axis=2)  # (nlev, ncol)
        out = theta.copy()
        for lev in range(theta.shape[0]):
            if not ok[lev].any():  # a layer not inflated (inflation_layers="observed", update mask)
                continue
            anom = g.to_image((theta[lev] - mean[lev][:, None]).T, fill=0.0)  # (nloc, ny, nx)
            inflated = g.to_columns(apply_scale_inflation(anom, factors, transform, offset, g.land)).T
            out[lev] = np.where(ok[lev], mean[lev][:, None] + inflated, theta[lev])
        return out, fields


def _pixel_error(error: ObsError, g: Any) -> ObsError:
    """A per-column error (scalars or (ncol,)) in the pixel layout of the image analysis (scalars or
    (ny * nx,), zero off land)."""
    if error.white_std.ndim == 0 and error.corr_std.ndim == 0:
        return error

    def image(a: np.ndarray) -> np.ndarray:
        return g.to_image(np.broadcast_to(a, (g.ncol,)), fill=0.0).ravel()

    return ObsError(image(error.white_std), image(error.corr_std), error.corr_length_km, error.memory_days)
