"""Beyond the curvelet-diagonal ``B``: a hybrid covariance and a bias-aware two-stage analysis.

**Hybrid B.** The gap-aware solve (:mod:`landimg.da.curvelet_var`) uses

    B = (1 - beta) C^T diag(v) C + beta (X X^T / (N - 1)) o L

where ``X`` holds the (inflated) anomalies of all ``N`` members on the land pixels and ``L`` is a
Gaspari-Cohn localization of support ``radius_km`` (:func:`landimg.da.localization.gaspari_cohn` of the
distance over ``radius_km / 2``). The curvelet-diagonal part is stationary within a wedge; the localized
ensemble part carries the non-stationary, soil-dependent structure the ensemble sees. Inside the CG only
products with ``B`` are needed: ``((X X^T) o L) z = sum_k x_k o (L (x_k o z))``, i.e. ``N`` sparse
products with ``L`` per member and iteration.

Localization by sparse neighbour sums (``scipy.sparse`` CSR of the pairs closer than ``radius_km``,
found with ``cKDTree``), not by an FFT kernel: only observed cells enter the solve (``L`` between
observations) and land cells the final field (``L`` from land to observations), distances are exact on
the sphere (no constant cell size, no periodic wrap-around or padding for regional grids), and the cost
is proportional to the pairs within the radius. Distances are chord lengths (km) on the sphere, where the
Gaspari-Cohn function is positive definite (it is in R^3), so ``B`` stays symmetric positive
semi-definite and CG applies; for radii << the Earth's radius chord and great-circle distances agree.

**Bias-aware two-stage analysis** (Dee & da Silva 1998; De Lannoy et al. 2007). A forecast bias ``b``
(background minus truth) is carried between analyses on the coarsest curvelet scales,
``b = C^T (m o beta_c)`` with ``m`` the mask of those coefficients. Stage 1, the bias analysis from the
ensemble-mean innovation ``d = y - H (xbar_b - b_f)``:

    b_a = b_f - P_b H^T (H (P_b + B) H^T + R)^-1 d,      P_b = gamma C^T diag(m o v) C,

stage 2, the usual ensemble analysis of the corrected background ``x_i - b_a``; the bias forecast of the
next analysis is ``b_f = memory * b_a`` (``memory = 1``: persistence, Dee & da Silva). ``gamma = 0``
leaves ``b = 0`` and the state analysis exactly the standard one.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.curvelet_stats import coefficient_scales, extract
from landimg.da.curvelet_var import CovarianceOperator, pcg_solve, preconditioner
from landimg.da.localization import EARTH_RADIUS_KM, gaspari_cohn

__all__ = [
    "BiasAware", "FineBand", "HybridB", "LocalizedEnsembleCovariance", "cached_localization", "localization_matrices",
    "planar_xyz_km",
]  # fmt: skip

_log = logging.getLogger("landimg.analysis")


def planar_xyz_km(land: np.ndarray, cell_km: tuple[float, float], periodic_x: bool = False) -> np.ndarray:
    """Positions (nland, 3), km, of the land pixels of an image with cells ``cell_km`` = (dy, dx) km.

    A flat grid; with ``periodic_x`` the x axis is wrapped onto a cylinder of circumference ``nx dx``
    (distances are chords, as on the sphere).
    """
    land = np.asarray(land, dtype=bool)
    jj, ii = np.nonzero(land)
    y, x = jj * float(cell_km[0]), ii * float(cell_km[1])
    if not periodic_x:
        return np.stack([x, y, np.zeros_like(x)], axis=-1)
    rad = land.shape[1] * float(cell_km[1]) / (2.0 * np.pi)
    ang = x / rad
    return np.stack([rad * np.cos(ang), rad * np.sin(ang), y], axis=-1)


def _gc_csr(rows_xyz: np.ndarray, cols_xyz: np.ndarray, radius_km: float) -> Any:
    """Gaspari-Cohn weights of every (row, column) pair closer than ``radius_km``, CSR with sorted indices.

    All pairs from one ``cKDTree.sparse_distance_matrix`` call (C, no per-pair Python loop), the weights of
    the chord distances recomputed from the coordinates (the same on every rank)."""
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    nr, nc = rows_xyz.shape[0], cols_xyz.shape[0]
    if nr == 0 or nc == 0:
        return csr_matrix((nr, nc))
    pairs = cKDTree(rows_xyz).sparse_distance_matrix(cKDTree(cols_xyz), radius_km * (1 + 1e-12), output_type="ndarray")
    order = np.lexsort((pairs["j"], pairs["i"]))
    ii, jj = pairs["i"][order].astype(np.int64), pairs["j"][order].astype(np.int64)
    dist = np.sqrt(np.sum((rows_xyz[ii] - cols_xyz[jj]) ** 2, axis=1))
    data = gaspari_cohn(dist / (radius_km / 2.0))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(ii, minlength=nr))])
    out = csr_matrix((data, jj, indptr), shape=(nr, nc))
    out.has_sorted_indices = True
    return out


def cached_localization(cache: Any, xyz_km: np.ndarray, obs_idx: np.ndarray, radius_km: float) -> tuple[Any, Any]:
    """:func:`localization_matrices` through a host cache (:class:`landimg.da.protocol.AnalysisCache`; None:
    computed): they depend only on the observation pattern, which repeats with the swaths."""
    if cache is None:
        return localization_matrices(xyz_km, obs_idx, radius_km)
    key = (float(radius_km), xyz_km.shape, hash(xyz_km.tobytes()), obs_idx.tobytes())
    return cache.get("curvelet_localization", key, lambda: localization_matrices(xyz_km, obs_idx, radius_km))


def localization_matrices(xyz_km: np.ndarray, obs_idx: np.ndarray, radius_km: float) -> tuple[Any, Any]:
    """Gaspari-Cohn localization ``L`` between observations (nobs, nobs) and from land to observations
    (nland, nobs), sparse CSR.

    Parameters
    ----------
    xyz_km : ndarray (nland, 3)
        Land pixel positions, km (chord distances are used).
    obs_idx : ndarray of int (nobs,)
        Land-pixel index of every observation.
    radius_km : float
        Support of the localization (weight 0 at and beyond), km, > 0.
    """
    if not radius_km > 0:
        raise ValueError(f"hybrid_radius_km must be > 0, got {radius_km}")
    xo = xyz_km[obs_idx]
    return _gc_csr(xo, xo, radius_km), _gc_csr(xyz_km, xo, radius_km)


def _schur(loc: Any, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 19) -> Any:
    """``loc o (a^T b)`` for a sparse ``loc`` (n, m) and dense ``a`` (N, n), ``b`` (N, m): same pattern.

    The members are the last axis of row-major copies, so every pair gathers two contiguous rows of N."""
    from scipy.sparse import csr_matrix

    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)  # (n, N), (m, N)
    rows = np.repeat(np.arange(loc.shape[0]), np.diff(loc.indptr))
    data = np.empty_like(loc.data)
    for s0 in range(0, data.size, chunk):  # bounded memory: N x chunk at a time
        sl = slice(s0, s0 + chunk)
        data[sl] = loc.data[sl] * np.einsum("ik,ik->i", at[rows[sl]], bt[loc.indices[sl]])
    out = csr_matrix((data, loc.indices, loc.indptr), shape=loc.shape)
    out.has_sorted_indices = True
    return out


class LocalizedEnsembleCovariance:
    """Products with ``(X X^T / (N - 1)) o L`` seen from the observations.

    The Schur product of the sample covariance with a compactly supported ``L`` has the sparsity of
    ``L``: it is formed once per analysis (``nnz(L) N`` operations), after which every CG product is one
    sparse mat-vec. Each member's product is computed on its own, so results do not depend on how
    members are batched or spread over ranks.

    Parameters
    ----------
    anomalies : ndarray (N, nland)
        Anomalies of all members on the land pixels (units of the state), member order.
    obs_idx : ndarray of int (nobs,)
        Land-pixel index of every observation.
    l_oo, l_lo : sparse (nobs, nobs), (nland, nobs)
        Localization (:func:`localization_matrices`).
    """

    def __init__(self, anomalies: np.ndarray, obs_idx: np.ndarray, l_oo: Any, l_lo: Any) -> None:
        n = anomalies.shape[0]
        if n < 2:
            raise ValueError("the hybrid covariance needs at least 2 members")
        xl = np.ascontiguousarray(anomalies, dtype=np.float64) / np.sqrt(n - 1.0)  # (N, nland)
        xo = np.ascontiguousarray(xl[:, obs_idx])  # (N, nobs)
        self.m_oo = _schur(l_oo, xo, xo)  # (nobs, nobs)
        self.m_lo = _schur(l_lo, xl, xo)  # (nland, nobs)
        self.l_lo, self.xo = l_lo, xo
        self.var_o = np.einsum("ki,ki->i", xo, xo)

    def variance_obs(self) -> np.ndarray:
        """Diagonal of ``H ((X X^T / (N - 1)) o L) H^T``: the ensemble variance at the observations (nobs,)."""
        return self.var_o

    def obs(self, z: np.ndarray) -> np.ndarray:
        """``H ((X X^T / (N - 1)) o L) H^T z``: (k, nobs) -> (k, nobs)."""
        return np.stack([self.m_oo @ row for row in z]) if z.shape[0] else np.zeros_like(z)

    def cross_field(self, anomalies: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``((Y X^T / (N - 1)) o L) H^T z`` on the land pixels for another variable's anomalies ``Y``
        (N, nland) (e.g. another soil layer): its localized cross-covariance with the observed one, (nland,)."""
        yl = np.ascontiguousarray(anomalies, dtype=np.float64) / np.sqrt(self.xo.shape[0] - 1.0)
        return _schur(self.l_lo, yl, self.xo) @ np.asarray(z, dtype=np.float64)

    def field(self, z: np.ndarray) -> np.ndarray:
        """``((X X^T / (N - 1)) o L) H^T z`` on the land pixels: (k, nobs) -> (k, nland)."""
        return np.stack([self.m_lo @ row for row in z]) if z.shape[0] else np.zeros((0, self.m_lo.shape[0]))


@dataclass(frozen=True)
class HybridB:
    """Settings of the hybrid covariance: weight ``beta`` of the localized ensemble part, its support
    ``radius_km``, and the land pixel positions ``xyz_km`` (nland, 3) (None: a flat grid of ``cell_km``)."""

    beta: float
    radius_km: float
    xyz_km: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"hybrid_beta must be in [0, 1], got {self.beta}")
        if not self.radius_km > 0:
            raise ValueError(f"hybrid_radius_km must be > 0, got {self.radius_km}")

    def covariance(
        self, anom: np.ndarray, land: np.ndarray, valid: np.ndarray, layout: Any,
        cell_km: tuple[float, float], periodic_x: bool, cache: Any = None,
    ) -> LocalizedEnsembleCovariance:  # fmt: skip
        """The localized ensemble covariance of this rank's anomaly images ``anom`` (nloc, ny, nx).

        ``land`` and ``valid`` (ny, nx) bool; all members' anomalies are gathered (member order).
        """
        xyz = self.xyz_km
        if xyz is None:
            xyz = planar_xyz_km(land, cell_km, periodic_x)
        nland = int(np.count_nonzero(land))
        if xyz.shape != (nland, 3):
            raise ValueError(
                f"hybrid coordinates have shape {xyz.shape}, expected ({nland}, 3) (land pixels)"
            )
        obs_idx = np.flatnonzero(valid[land])
        l_oo, l_lo = cached_localization(cache, xyz, obs_idx, self.radius_km)
        return LocalizedEnsembleCovariance(layout.allgather_members(anom[:, land]), obs_idx, l_oo, l_lo)


@dataclass(frozen=True)
class FineBand:
    """Scale-dependent covariances (Buehner & Shlyaeva 2015; Caron & Buehner 2018): the curvelet-diagonal
    ``B`` on the coarse scales, the localized covariance of band-passed ensemble anomalies on the fine ones,

        B = C^T diag(v o m_c) C + (X_f X_f^T / (N - 1)) o L_f,      X_f = C^T (m_f o C X),

    with ``m_f`` the mask of the ``nscales`` finest curvelet scales, ``m_c = 1 - m_f`` (``X_c + X_f = X``: the
    frame is tight) and ``L_f`` Gaspari-Cohn of support ``radius_km`` (the fine band's own, shorter radius).
    Cross-band covariances are neglected. ``xyz_km`` (nland, 3): land pixel positions (None: a flat grid).
    """

    nscales: int
    radius_km: float
    xyz_km: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.nscales < 1:
            raise ValueError(f"fine_band_scales must be >= 1 to use the fine band, got {self.nscales}")
        if not self.radius_km > 0:
            raise ValueError(f"fine_band_radius_km must be > 0, got {self.radius_km}")

    def fine_mask(self, transform: Any) -> np.ndarray:
        """1.0 on the coefficients of the ``nscales`` finest scales, else 0.0, (ncoef,)."""
        scale = coefficient_scales(transform)
        return (scale >= scale.max() + 1 - self.nscales).astype(np.float64)

    def band_passed(self, anom: np.ndarray, transform: Any, offset: tuple[int, int], frame: Any = None,
                    batch: int = 8) -> np.ndarray:  # fmt: skip
        """``C^T (m_f o C a)`` of every anomaly image (k, ny, nx) (an FFT pair each with a spectral frame)."""
        from landimg.da.curvelet_stats import embed, transform_shape

        mask = self.fine_mask(transform)
        tshape = transform_shape(transform)
        per = frame.per_direction(mask) if frame is not None else None
        if per is not None:
            return extract(frame.apply(embed(anom, tshape, offset), frame.multiplier(per)), anom.shape[1:], offset)
        out = np.empty_like(anom)
        for b0 in range(0, anom.shape[0], batch):
            c = transform.forward(embed(anom[b0 : b0 + batch], tshape, offset))
            c *= mask
            out[b0 : b0 + batch] = extract(transform.inverse(c), anom.shape[1:], offset)
        return out

    def covariance(
        self, anom: np.ndarray, land: np.ndarray, valid: np.ndarray, layout: Any, cell_km: tuple[float, float],
        periodic_x: bool, transform: Any, offset: tuple[int, int], frame: Any = None, cache: Any = None,
    ) -> LocalizedEnsembleCovariance:  # fmt: skip
        """The localized covariance of this rank's band-passed anomaly images (all members gathered, member
        order); ``anom`` (nloc, ny, nx) zero off land."""
        xyz = self.xyz_km if self.xyz_km is not None else planar_xyz_km(land, cell_km, periodic_x)
        fine = self.band_passed(anom, transform, offset, frame)
        obs_idx = np.flatnonzero(valid[land])
        l_oo, l_lo = cached_localization(cache, xyz, obs_idx, self.radius_km)
        return LocalizedEnsembleCovariance(layout.allgather_members(fine[:, land]), obs_idx, l_oo, l_lo)


def sphere_xyz_km(xyz_unit: np.ndarray) -> np.ndarray:
    """Unit-sphere positions (:attr:`Geometry.xyz`) in km."""
    return np.asarray(xyz_unit, dtype=np.float64) * EARTH_RADIUS_KM


@dataclass
class BiasAware:
    """The two-stage bias analysis (module docstring) with its state.

    Attributes
    ----------
    gamma : float
        ``P_b = gamma * B`` on the coarsest scales (>= 0; 0 = no bias estimation).
    memory : float
        Bias forecast ``b_f = memory * b_a`` (0..1; 1 = persistence).
    nscales : int
        Number of coarsest curvelet scales that carry the bias (>= 1).
    state : mutable mapping
        Where the bias coefficients live between analyses (the host's ``AnalysisContext.state``).
    key : str
        Entry of ``state``.
    """

    gamma: float
    memory: float
    nscales: int
    state: MutableMapping[str, Any]
    key: str = "CurveletEnKF.bias"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"bias_gamma must be finite and >= 0, got {self.gamma}")
        if not 0.0 <= self.memory <= 1.0:
            raise ValueError(f"bias_memory must be in [0, 1], got {self.memory}")
        if self.nscales < 1:
            raise ValueError(f"bias_nscales must be >= 1, got {self.nscales}")

    def _mask(self, transform: Any) -> np.ndarray:
        return coefficient_scales(transform) < self.nscales

    def forecast(self, transform: Any) -> np.ndarray:
        """Bias coefficients ``beta_c`` (nbias,) of the coarsest scales (zeros when none is carried)."""
        n = int(np.count_nonzero(self._mask(transform)))
        old = self.state.get(self.key)
        if old is None:
            return np.zeros(n)
        old = np.asarray(old, dtype=np.float64).reshape(-1)
        if old.size != n:
            _log.warning(
                "curvelet bias state has %d coefficients, the transform %d: restarted at 0", old.size, n
            )
            return np.zeros(n)
        return old

    def image(
        self, transform: Any, coef: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]
    ) -> np.ndarray:
        """Bias image (ny, nx) of the coarse coefficients ``coef``."""
        c = np.zeros(int(transform.ncoef))
        c[self._mask(transform)] = coef
        return extract(transform.inverse(c[None])[0], shape, offset)

    def analyse(
        self, transform: Any, mean_b: np.ndarray, obs: np.ndarray, valid: np.ndarray, land: np.ndarray,
        r_cov: Any, v: np.ndarray, offset: tuple[int, int], op_kw: dict[str, Any], tol: float,
        maxiter: int, precond: str = "jacobi", scale2: float = 1.0,
    ) -> tuple[np.ndarray, dict[str, float]]:  # fmt: skip
        """Stage 1: the bias analysis ``b_a`` (ny, nx) from the background mean ``mean_b`` (ny, nx).

        ``valid``, ``land`` (ny, nx) bool: usable observations, land pixels (where the diagnostics are
        taken); ``r_cov`` the observation-error covariance at the ``valid`` pixels (an operator of
        :mod:`landimg.da.image_covariance`, or the variances (nobs,)); ``v`` the curvelet-diagonal
        ``B`` (coefficient space); ``op_kw`` the hybrid part of ``B`` (``ensemble``, ``beta``) and the
        spectral frame (and the variance filter ``scale``, which ``P_b`` does not take: with it ``v`` is in
        normalised units and ``P_b = bias_gamma * scale2 * C^T diag(m o v) C``, ``scale2`` the mean ``S^2``);
        ``precond`` the CG preconditioner (:func:`landimg.da.curvelet_var.preconditioner`). Stores the
        next forecast ``memory * b_a`` in the state.
        """
        shape = mean_b.shape
        mask = self._mask(transform)
        beta_f = self.forecast(transform)
        b_f = self.image(transform, beta_f, shape, offset)
        d = (obs - (mean_b - b_f))[valid][None]
        vb = np.where(mask, self.gamma * scale2 * v, 0.0)
        op = CovarianceOperator(transform, v, valid, offset, extra_v=vb, **op_kw)
        z, info = pcg_solve(op, d, r_cov, preconditioner(op, r_cov, precond), tol, maxiter)
        img = np.zeros((1,) + tuple(int(s) for s in transform.shape))
        img[:, op.valid_t] = z
        beta_a = beta_f - (vb * transform.forward(img)[0])[mask]
        b_a = self.image(transform, beta_a, shape, offset)
        self.state[self.key] = self.memory * beta_a
        bias_land = b_a[land]
        out = {
            "solution": z[0], "image": b_a,
            "bias_iterations": float(info.iterations[0]),
            "bias_mean": float(np.mean(bias_land)) if bias_land.size else 0.0,
            "bias_rms": float(np.sqrt(np.mean(bias_land**2))) if bias_land.size else 0.0,
        }
        _log.info(
            "curvelet_enkf: bias estimate mean %.5f rms %.5f over land", out["bias_mean"], out["bias_rms"]
        )
        return b_a, out
