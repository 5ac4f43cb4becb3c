"""Gap-aware curvelet-space analysis: the Kalman update with the observation mask inside the problem.

With ``C`` the curvelet transform (tight frame, ``C^T C = I``), ``H`` the selection of the usable
observed pixels and ``R = diag(sigma^2)`` their error variances, the analysis of member ``i`` is

    x_i^a = x_i + B H^T (H B H^T + R)^-1 d_i,      d_i = y + eps_i - H x_i,
    B     = C^T diag(v) C,                          v_j = s_b,j / |row_j|^2,

where ``s_b`` is the (pooled) background variance of coefficient ``j`` estimated from the ensemble and
``|row_j|^2`` the squared norm of its frame element. ``v`` is the spectral level of the background error at
the frame element: for white noise of variance ``q`` every coefficient has ``s_b,j = q |row_j|^2`` and
``B = q C^T C = q I`` exactly. Unlike the diagonal (paper) update ``C^T diag(s_b / (s_b + s_o)) C d``,
which treats every unobserved pixel as an observation equal to the member's own value, this solve knows
where nothing was observed: the covariance ``B`` carries the innovation into the gaps.

The system ``(H B H^T + R) z = d`` is solved for every member by preconditioned conjugate gradients in
observation space (Jacobi preconditioner ``1 / (b_0 + sigma_p^2)``, with ``b_0`` the mean diagonal of
``B``; equivalent to CG on the ``B^1/2`` control variable for uniform ``R``, and well defined for
``sigma = 0``). Each iteration costs one forward and one inverse transform per member. Members are solved
independently and each stops at its own iteration count (relative residual below ``tol``), so the result
of a member depends only on its own data: bitwise identical on any number of MPI ranks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from landimg.da.curvelet_spectral import PixelProduct
from landimg.da.curvelet_stats import frame_norms2
from landimg.da.image_covariance import DiagonalCovariance

__all__ = [
    "PRECONDITIONERS", "SOLVERS", "CovarianceOperator", "SolveInfo", "as_covariance", "b_weights",
    "fourier_preconditioner", "preconditioner", "gap_aware_increments", "jacobi_preconditioner",
    "max_nscales", "pcg_solve",
]  # fmt: skip

_log = logging.getLogger("landimg.analysis")

SOLVERS = ("cg", "diagonal")
PRECONDITIONERS = ("fourier", "jacobi")


def max_nscales(shape: tuple[int, int]) -> int:
    """Largest number of curvelet scales for a transform of ``shape`` (coarsest lowpass >= 1 sample wide).

    The gap-aware solve uses it by default: ``B`` is constant within each pooled wedge, so its spectrum is
    resolved in octaves; more scales resolve the large scales (which carry the information into swath
    gaps) in more, finer bands. ``min(shape) >= 3 * 2**(nscales - 1)``.
    """
    m = min(int(s) for s in shape)
    if m < 6:
        raise ValueError(f"shape {shape} is too small for a curvelet transform of 2 scales")
    return int(math.floor(math.log2(m / 3.0))) + 1


@dataclass(frozen=True)
class SolveInfo:
    """Convergence of the per-member conjugate-gradient solves.

    Attributes
    ----------
    iterations : ndarray of int, (nloc,)
        CG iterations (transform pairs) used by every local member.
    rel_residual : ndarray of float, (nloc,)
        Final preconditioned residual norm relative to that of the innovation (0 for a zero innovation).
    converged : ndarray of bool, (nloc,)
        ``rel_residual <= tol`` reached within ``maxiter``.
    solution : ndarray (nloc, nobs) or None
        The observation-space solutions ``z`` (``increment = B H^T z``), set by :func:`gap_aware_increments`.
    """

    iterations: np.ndarray
    rel_residual: np.ndarray
    converged: np.ndarray
    solution: np.ndarray | None = None


def b_weights(s_b: np.ndarray, norms2: np.ndarray) -> np.ndarray:
    """Diagonal ``v = s_b / |row|^2`` of ``B = C^T diag(v) C``, (ncoef,) (0 where a frame element is 0).

    Parameters
    ----------
    s_b : ndarray (ncoef,)
        Background error variance per coefficient (units^2), pooled and inflated as used.
    norms2 : ndarray (ncoef,)
        Squared norm of every frame element (``Curvelet.row_norms_sq()``).
    """
    s_b = np.asarray(s_b, dtype=np.float64)
    norms2 = np.asarray(norms2, dtype=np.float64)
    if s_b.shape != norms2.shape:
        raise ValueError(f"s_b has shape {s_b.shape} but norms2 has {norms2.shape}")
    if np.any(s_b < 0) or not np.all(np.isfinite(s_b)):
        raise ValueError("s_b must be finite and >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norms2 > 0, s_b / norms2, 0.0)


class CovarianceOperator:
    """``B = C^T diag(v) C`` on the transform domain, seen from the observed pixels of an image.

    With a localized ensemble covariance ``ensemble`` (:mod:`landimg.da.curvelet_hybrid`) the hybrid
    ``(1 - beta) C^T diag(v) C + beta (X X^T / (N - 1)) o L`` (on the ``land`` pixels); ``extra_v`` (ncoef,) adds
    ``C^T diag(extra_v) C`` (the bias covariance of the two-stage analysis). With ``scale`` (variance
    filtering) the curvelet part is ``S C^T diag(v) C S``, ``S`` the image ``scale`` (the extra part is not
    scaled). Without any of them, exactly ``C^T diag(v) C``. Weights constant per direction make a curvelet
    part a Fourier multiplier (``spectral``: one FFT pair per product instead of a transform pair).
    """

    def __init__(
        self, transform: Any, v: np.ndarray, valid: np.ndarray, offset: tuple[int, int],
        ensemble: Any = None, beta: float = 0.0, extra_v: np.ndarray | None = None,
        land: np.ndarray | None = None, spectral: Any = None, scale: np.ndarray | None = None,
        v_mask: np.ndarray | None = None, ensemble_weight: float | None = None, single: bool = False,
    ) -> None:  # fmt: skip
        self.transform, self.v, self.ensemble, self.beta = transform, v, ensemble, float(beta)
        if v_mask is not None:  # scale-dependent B: the curvelet part on the coarse directions only
            self.v = v = v * v_mask
        if ensemble is not None and ensemble_weight is not None:  # B_c + w (X_f X_f^T) o L_f
            self.beta = float(ensemble_weight)
        elif ensemble is not None:  # hybrid (1 - beta) B_c + beta (X X^T) o L
            self.v = (1.0 - self.beta) * v
        self.extra_v = None
        if extra_v is not None and scale is None:
            self.v = self.v + extra_v
        elif extra_v is not None:
            self.extra_v = extra_v
        self.spectral, self.single = spectral, bool(single)
        self.multiplier = self._multiplier(self.v)
        self.extra_multiplier = None if self.extra_v is None else self._multiplier(self.extra_v)
        self.tshape = tuple(int(s) for s in transform.shape)
        ny, nx = valid.shape
        oy, ox = offset
        self.valid_t = np.zeros(self.tshape, dtype=bool)
        self.valid_t[oy : oy + ny, ox : ox + nx] = valid
        self.window = (slice(oy, oy + ny), slice(ox, ox + nx))
        self.land = land  # land pixels of the image (ny, nx): where the ensemble part lives
        if ensemble is not None and land is None:
            raise ValueError("CovarianceOperator: an ensemble part needs the land mask")
        # variance filtering: B = S C^T diag(v) C S with S (ny, nx) the smoothed ensemble std
        self.scale_t = self.scale_obs = None
        if scale is not None:
            self.scale_t = np.zeros(self.tshape)
            self.scale_t[self.window] = np.asarray(scale, dtype=np.float64)
            self.scale_obs = self.scale_t[self.valid_t]
        self.valid_flat = np.flatnonzero(self.valid_t)  # the observations in the transform domain
        self._obs_product = None  # H C^T diag(v) C H^T as one FFT pair on the observations
        if self.multiplier is not None and self.extra_v is None:
            m = self.multiplier.astype(np.float32) if self.single else self.multiplier
            self._obs_product = PixelProduct(self.tshape, self.valid_flat, m)

    def _multiplier(self, v: np.ndarray) -> np.ndarray | None:
        """The Fourier multiplier of ``C^T diag(v) C`` when ``v`` is constant per direction, else None."""
        if self.spectral is None:
            return None
        per = self.spectral.per_direction(v)
        return None if per is None else self.spectral.multiplier(per)

    def _weighted(self, img: np.ndarray, v: np.ndarray, multiplier: np.ndarray | None) -> np.ndarray:
        """``C^T diag(v) C img`` of images (k, Ty, Tx): an FFT pair (single precision with ``single``), or a
        transform pair."""
        if multiplier is not None:
            return self.spectral.apply(img, multiplier.astype(np.float32) if self.single else multiplier)
        c = self.transform.forward(img)
        c *= v
        return self.transform.inverse(c)

    def _curvelet_field(self, z: np.ndarray) -> np.ndarray:
        img = np.zeros((z.shape[0],) + self.tshape)
        img[:, self.valid_t] = z if self.scale_t is None else z * self.scale_obs
        out = self._weighted(img, self.v, self.multiplier)
        if self.scale_t is not None:
            out *= self.scale_t
        if self.extra_v is not None:
            img[:, self.valid_t] = z
            out += self._weighted(img, self.extra_v, self.extra_multiplier)
        return out

    def field(self, z: np.ndarray) -> np.ndarray:
        """``B H^T z`` on the transform domain: (k, nobs) -> (k, Ty, Tx)."""
        out = self._curvelet_field(z)
        if self.ensemble is not None:
            win = out[(slice(None),) + self.window]  # a view: the image inside the transform domain
            win[:, self.land] += self.beta * self.ensemble.field(z)
        return out

    def system(self, r_cov: Any) -> Any:
        """``z -> H (B + R) H^T z`` for the CG: where ``B`` is a Fourier multiplier (no variance filtering)
        and the correlated part of ``R`` is one exactly (:meth:`ObservationCovariance.stationary_multiplier`),
        both in one FFT pair (plus the white part and any ensemble part); else ``H B H^T z + R z``."""
        get = getattr(r_cov, "stationary_multiplier", None)
        corr = get(self.tshape, (self.window[0].start, self.window[1].start)) if get is not None else None
        if corr is None or self.multiplier is None or self.scale_t is not None or self.extra_v is not None:
            return lambda z: self.obs(z) + r_cov.apply(z)
        joint = self.multiplier + corr
        product = PixelProduct(self.tshape, self.valid_flat, joint.astype(np.float32) if self.single else joint)
        white = r_cov.white_var

        def apply(z: np.ndarray) -> np.ndarray:
            out = product(z) + white * z
            if self.ensemble is not None:
                out += self.beta * self.ensemble.obs(z)
            return out

        return apply

    def obs(self, z: np.ndarray) -> np.ndarray:
        """``H B H^T z``: (k, nobs) -> (k, nobs)."""
        if self._obs_product is not None:  # one FFT pair on the observations (the same numbers)
            out = self._obs_product(z if self.scale_obs is None else z * self.scale_obs)
            if self.scale_obs is not None:
                out *= self.scale_obs
        else:
            out = self._curvelet_field(z)[:, self.valid_t]
        if self.ensemble is not None:
            out += self.beta * self.ensemble.obs(z)
        return out

    def mean_diagonal(self) -> np.ndarray | float:
        """Diagonal of ``H B H^T`` for the Jacobi preconditioner: the curvelet part's mean diagonal over the
        transform domain (exact per pooled wedge; times ``S^2`` at each observation with variance
        filtering), plus the ensemble variance at each observation (nobs,)."""
        norms2 = frame_norms2(self.transform)
        npix = float(np.prod(self.tshape))
        b0 = float(np.sum(self.v * norms2)) / npix
        if self.scale_t is not None:
            b0 = b0 * self.scale_obs**2
        if self.extra_v is not None:
            b0 = b0 + float(np.sum(self.extra_v * norms2)) / npix
        if self.ensemble is None:
            return b0
        return b0 + self.beta * self.ensemble.variance_obs()


def as_covariance(r: Any) -> Any:
    """The observation-error covariance as an operator: ``r`` itself when it has ``apply``/``diagonal``
    (:mod:`landimg.da.image_covariance`), else the diagonal ``diag(r)`` of the variances ``r`` (nobs,)."""
    return r if hasattr(r, "apply") else DiagonalCovariance(r)


def fourier_preconditioner(op: CovarianceOperator, r: Any) -> Any:
    """``z -> H F^* diag(1 / (m + r_hat)) F H^T z``: the inverse of ``B + R`` on a fully observed periodic
    transform domain, restricted to the observations (symmetric positive definite), with ``m`` the Fourier
    multiplier of the curvelet part of ``B`` (plus the hybrid part's mean variance) and ``r_hat`` that of
    the observation error (mean white variance plus the correlated part's spectrum). One FFT pair per
    application; cuts the CG iterations 2.5-3.5x against Jacobi at global 1 deg with 40 % swaths (the
    observation-space system is the fully observed one with rows and columns removed). None when ``B``
    is not a multiplier (the transform-pair route)."""
    if op.multiplier is None:
        return None
    r_cov = as_covariance(r)
    spec = getattr(r_cov, "mean_spectrum", None)
    r_hat = spec(op.tshape) if spec is not None else float(np.mean(r_cov.diagonal()))
    d = None  # variance filtering: D^-1 (H (K + (K_extra + R) / s2) H^T)^-1 D^-1 with D = S at the observations
    if op.scale_t is not None:
        s2 = float(np.mean(op.scale_obs**2)) if op.scale_obs.size else 1.0
        s2 = s2 if s2 > 0 else 1.0
        d = np.where(op.scale_obs > 0, op.scale_obs, np.sqrt(s2))
        r_hat = r_hat / s2
        if op.extra_v is not None:
            if op.extra_multiplier is None:
                return None
            r_hat = r_hat + op.extra_multiplier / s2
    den = op.multiplier + r_hat
    if op.ensemble is not None:
        den = den + op.beta * float(np.mean(op.ensemble.variance_obs())) / (1.0 if d is None else s2)
    inv = np.where(den > 0, 1.0 / np.where(den > 0, den, 1.0), 0.0)
    product = PixelProduct(op.tshape, op.valid_flat, inv.astype(np.float32) if op.single else inv)

    def apply(z: np.ndarray) -> np.ndarray:
        out = product(z if d is None else z / d)
        return out if d is None else out / d

    return apply


def preconditioner(op: CovarianceOperator, r: Any, kind: str = "fourier") -> Any:
    """The CG preconditioner ``kind`` (``"fourier"``: :func:`fourier_preconditioner` where ``B`` is a
    Fourier multiplier, else Jacobi; ``"jacobi"``: :func:`jacobi_preconditioner`)."""
    if kind not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {'|'.join(PRECONDITIONERS)}, got {kind!r}")
    pc = fourier_preconditioner(op, r) if kind == "fourier" else None
    return jacobi_preconditioner(op, r) if pc is None else pc


def jacobi_preconditioner(op: CovarianceOperator, r: Any) -> np.ndarray:
    """``1 / (diag(H B H^T) + diag(R))`` at the observations (1 where that is 0), (nobs,); ``r`` the
    covariance operator or the variances (nobs,)."""
    den = op.mean_diagonal() + as_covariance(r).diagonal()
    return np.where(den > 0, 1.0 / np.where(den > 0, den, 1.0), 1.0)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products (k, n) x (k, n) -> (k,), each row reduced on its own (batch-invariant)."""
    return np.array([float(np.sum(a[i] * b[i])) for i in range(a.shape[0])])


def pcg_solve(op: CovarianceOperator, d: np.ndarray, r: Any, precond: Any,
         tol: float, maxiter: int) -> tuple[np.ndarray, SolveInfo]:  # fmt: skip
    """Solve ``(H B H^T + R) z = d`` (k, nobs) row by row; every row stops at its own convergence.

    ``r``: ``R`` as an operator (:mod:`landimg.da.image_covariance`: products only, never inverted) or its
    diagonal (nobs,); ``precond`` (nobs,) a diagonal preconditioner, or a callable applying one ((k, nobs)
    -> (k, nobs), symmetric positive definite).
    """
    r_cov = as_covariance(r)
    system = op.system(r_cov) if hasattr(op, "system") else (lambda x: op.obs(x) + r_cov.apply(x))
    if callable(precond):
        apply_pc = precond
    else:
        def apply_pc(x: np.ndarray) -> np.ndarray:
            return x * precond
    k = d.shape[0]
    z = np.zeros_like(d)
    r = d.copy()
    s = apply_pc(r)
    p = s.copy()
    rs = _dot(r, s)
    norm0 = np.sqrt(rs)
    rel = np.zeros(k)
    iters = np.zeros(k, dtype=np.int64)
    active = norm0 > 0  # a zero innovation needs no iteration (z = 0 exactly)
    for _ in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        q = system(p[idx])
        pq = _dot(p[idx], q)
        ok = pq > 0
        alpha = np.where(ok, rs[idx] / np.where(ok, pq, 1.0), 0.0)
        z[idx] += alpha[:, None] * p[idx]
        r[idx] -= alpha[:, None] * q
        s_new = apply_pc(r[idx])
        rs_new = _dot(r[idx], s_new)
        iters[idx] += 1
        rel[idx] = np.sqrt(np.maximum(rs_new, 0.0)) / norm0[idx]
        done = (rel[idx] <= tol) | ~ok
        beta = rs_new / np.where(rs[idx] > 0, rs[idx], 1.0)
        p[idx] = s_new + beta[:, None] * p[idx]
        rs[idx] = rs_new
        active[idx[done]] = False
    converged = rel <= tol
    return z, SolveInfo(iterations=iters, rel_residual=rel, converged=converged)


def gap_aware_increments(
    innovation: np.ndarray,
    valid: np.ndarray,
    obs_var: np.ndarray | float,
    v: np.ndarray,
    transform: Any,
    *,
    offset: tuple[int, int] = (0, 0),
    tol: float = 1e-5,
    maxiter: int = 300,
    ensemble: Any = None,
    beta: float = 0.0,
    land: np.ndarray | None = None,
    spectral: Any = None,
    warn: bool = True,
    precond: str = "jacobi",
    scale: np.ndarray | None = None,
    v_mask: np.ndarray | None = None,
    ensemble_weight: float | None = None,
    single: bool = False,
) -> tuple[np.ndarray, SolveInfo]:
    """Analysis increments ``B H^T (H B H^T + R)^-1 d_i`` of every member, (nloc, ny, nx).

    Parameters
    ----------
    innovation : ndarray (nloc, ny, nx)
        Innovation images ``d_i`` (units of the state, e.g. m3/m3); only the ``valid`` pixels are read.
    valid : ndarray of bool (ny, nx)
        Usable observations (``H`` selects them).
    obs_var : float, ndarray (ny, nx) or covariance operator
        Observation error variance ``sigma^2`` (units^2) at the valid pixels (``R`` diagonal); finite,
        >= 0 (0 interpolates the observations exactly where ``B`` allows it). Or ``R`` on the valid pixels
        as an operator (:func:`landimg.da.image_covariance.observation_covariance`: correlated errors).
    v : ndarray (ncoef,)
        Diagonal of ``B`` in coefficient space (:func:`b_weights`), units^2.
    transform : Transform
        Tight frame on the image shape or on a larger (padded) shape; the image sits at ``offset``.
    offset : (int, int)
        Position of the image in the transform domain (``EdgePadding.offset``).
    tol : float
        Relative residual (preconditioned norm) at which a member's CG stops.
    maxiter : int
        Iteration cap per member (a warning is logged for members that did not converge).
    ensemble, beta, land :
        Hybrid ``B = (1 - beta) C^T diag(v) C + beta (X X^T / (N - 1)) o L``: a
        :class:`landimg.da.curvelet_hybrid.LocalizedEnsembleCovariance` built for these ``valid``
        pixels, its weight in [0, 1], and the land mask (ny, nx) it lives on (None: ``C^T diag(v) C``).
    spectral : SpectralFrame, optional
        :func:`landimg.da.curvelet_spectral.spectral_frame` of ``transform``: with ``v`` constant per
        direction, products with ``C^T diag(v) C`` are FFT pairs (the same to round-off).
    warn : bool
        Log a warning for members that reach ``maxiter`` (False for deliberately short solves).
    precond : {"jacobi", "fourier"}
        The CG preconditioner (:func:`preconditioner`).
    scale : ndarray (ny, nx), optional
        Variance filtering: ``B = S C^T diag(v) C S`` with ``S`` this image (the smoothed ensemble std).
    v_mask, ensemble_weight :
        Scale-dependent covariances: the curvelet part on the directions where ``v_mask`` (ncoef,) is 1,
        plus ``ensemble_weight`` times the localized ensemble part (of band-passed anomalies).
    single : bool
        The FFT products in single precision (relative error ~1e-7, far below a ``tol`` of 1e-3).

    Returns
    -------
    increments : ndarray (nloc, ny, nx)
        ``B H^T z_i`` on the image (defined on every pixel, including gaps; zero for a zero innovation).
    info : SolveInfo
    """
    innovation = np.asarray(innovation, dtype=np.float64)
    if innovation.ndim != 3:
        raise ValueError(f"innovation must be (nloc, ny, nx), got shape {innovation.shape}")
    shape = innovation.shape[1:]
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != shape:
        raise ValueError(f"valid has shape {valid.shape}, expected the image shape {shape}")
    if hasattr(obs_var, "apply"):
        r_cov = obs_var
        r_var = r_cov.diagonal()
    else:
        r_var = np.broadcast_to(np.asarray(obs_var, dtype=np.float64), shape)[valid]
        r_cov = DiagonalCovariance(r_var)
    if r_var.shape != (int(np.count_nonzero(valid)),):
        raise ValueError(f"obs_var holds {r_var.size} observations, valid marks {int(np.count_nonzero(valid))}")
    if np.any(~np.isfinite(r_var)) or np.any(r_var < 0):
        raise ValueError("obs_var must be finite and >= 0 at the valid pixels")
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (int(transform.ncoef),):
        raise ValueError(f"v must have shape ({int(transform.ncoef)},), got {v.shape}")
    if not tol > 0 or maxiter < 1:
        raise ValueError(f"need tol > 0 and maxiter >= 1, got tol={tol}, maxiter={maxiter}")
    op = CovarianceOperator(transform, v, valid, offset, ensemble=ensemble, beta=beta, land=land, spectral=spectral,
                            scale=scale, v_mask=v_mask, ensemble_weight=ensemble_weight, single=single)  # fmt: skip
    nloc = innovation.shape[0]
    d = innovation[:, valid]
    if not np.all(np.isfinite(d)):
        raise ValueError("innovation must be finite at the valid pixels")
    z, info = pcg_solve(op, d, r_cov, preconditioner(op, r_cov, precond), tol, maxiter)
    if warn and not np.all(info.converged):
        bad = np.flatnonzero(~info.converged)
        _log.warning(
            "gap-aware curvelet solve: %d member(s) not converged in %d iterations (worst rel. residual %.2e)",
            bad.size, maxiter, float(info.rel_residual[bad].max()),
        )  # fmt: skip
    inc = np.zeros((nloc,) + shape)
    moved = np.flatnonzero(info.iterations > 0)
    if moved.size:
        inc[moved] = op.field(z[moved])[(slice(None),) + op.window]
    return inc, replace(info, solution=z)
