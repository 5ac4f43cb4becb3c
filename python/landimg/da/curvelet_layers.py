"""Every soil layer's increment from the same analysis (issue 18 item 5).

The curvelet EnKF analyses the observed layer ``x_o = h . theta`` (an image): its mean increment is
``-b_a + B H^T z`` with ``z`` the observation-space solution of the (stage-2) solve and ``b_a`` the bias
estimate of the two-stage analysis. Every layer ``l`` gets the increment of the same solution through its
cross-covariance with the observed layer,

    dtheta_l = -b_l + B_lo H^T z,
    B_lo = S_l C^T diag(beta_l o v o m_c) C S_o + (X_l,f X_o,f^T / (N - 1)) o L_f,
    b_l  = F^* diag(sum_d beta_l,d S_d) F b_a,

where ``beta_l,d = <C_d a_l, C_d a_o> / |C_d a_o|^2`` is the per-direction (wedge) vertical regression of
the layer's (normalised) ensemble anomalies on the observed layer's, summed over the members
(:meth:`landimg.da.curvelet_spectral.SpectralFrame.cross_energies`), ``S_l`` the layer's smoothed ensemble
std with variance filtering (1 without), and the fine band (scale-dependent covariances) the localized
ensemble cross-covariance of the band-passed anomalies. Because ``x_o = h . theta`` is linear,
``sum_l h_l beta_l,d = 1`` and ``sum_l h_l X_l,f = X_o,f``: the layers' increments add up to the observed
layer's exactly (``h . dtheta = dx_o``). The coarse band's cross-covariance is pooled over the domain like
``B`` itself, so it does not inherit a column's own ratio of spread (the earlier rule, ``beta_l(c) dx_o``
with ``beta_l(c)`` the column's regression, gave too large deep increments where the pooled variance
exceeds the column's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from landimg.da.curvelet_spectral import rfft2_images
from landimg.da.curvelet_stats import embed
from landimg.layout import Layout

__all__ = ["AnalysisSolution", "layer_mean_increments"]


@dataclass
class AnalysisSolution:
    """What one analysis of the observed layer leaves for the layer increments.

    Attributes
    ----------
    z : ndarray (nobs,)
        Observation-space solution of the mean's (stage-2) solve (``B H^T z`` is the mean increment).
    valid, land : ndarray of bool (ny, nx)
        Usable observations; land pixels.
    v : ndarray (ncoef,)
        Curvelet weights of ``B`` (before ``v_mask``; normalised units with variance filtering).
    transform, offset, frame :
        The transform, the image's offset in its domain, its :class:`~landimg.da.curvelet_spectral.SpectralFrame`.
    scale : ndarray (ny, nx) or None
        ``S`` of the variance filtering.
    v_mask : ndarray (ncoef,) or None
        The coarse directions of scale-dependent covariances.
    bias_image : ndarray (ny, nx) or None
        The observed layer's bias estimate ``b_a`` (subtracted from its background).
    band, ensemble :
        The fine band (:class:`~landimg.da.curvelet_hybrid.FineBand`) and its localized covariance.
    single : bool
        The cross energies of the layer regressions from single-precision FFTs (the method's
        ``cg_single_precision``; relative error ~1e-7, sums in float64).
    """

    z: np.ndarray
    valid: np.ndarray
    land: np.ndarray
    v: np.ndarray
    transform: Any
    offset: tuple[int, int]
    frame: Any
    scale: np.ndarray | None = None
    v_mask: np.ndarray | None = None
    bias_image: np.ndarray | None = None
    band: Any = None
    ensemble: Any = None
    single: bool = False


def _divisor(scale: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scale > 0, scale or 1)``: what :func:`_normalised_by` divides by (None without a scale)."""
    if scale is None:
        return None
    pos = scale > 0
    return pos, np.where(pos, scale, 1.0)


def _normalised_by(anom: np.ndarray, divisor: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``anom / scale`` where ``scale > 0``, else 0, with the divisor of :func:`_divisor`."""
    if divisor is None:
        return anom
    pos, den = divisor
    return np.where(pos, anom / den, 0.0)


def layer_mean_increments(
    anomalies: np.ndarray,
    obs_anomalies: np.ndarray,
    sol: AnalysisSolution,
    layout: Layout,
    columns: np.ndarray,
    scales: np.ndarray | None = None,
) -> np.ndarray:
    """Mean increment of every layer at every column from the observed layer's analysis (module
    docstring), (nlev, ncol).

    Parameters
    ----------
    anomalies : ndarray (nloc, nlev, ncol)
        Every layer's (inflated) ensemble anomalies of this rank's members at the land columns, member-major.
    obs_anomalies : ndarray (nloc, ncol)
        Those of the observed layer ``x_o = h . theta``.
    sol : AnalysisSolution
    layout : Layout
        Sums over members in member order (identical on any number of ranks).
    columns : ndarray of int (ncol,)
        Flat (row-major) index of every column in the ``sol.valid.shape`` image (land pixels, in order).
    scales : ndarray (nlev, ny, nx), optional
        Every layer's ``S_l`` with variance filtering (None without).

    Every member's layers (and its observed layer) go through one batched real FFT of the transform domain,
    written straight from the columns into a reused zero image; the per-direction cross energies are summed
    over the members in member order.
    """
    frame = sol.frame
    if frame is None:
        raise ValueError("layer increments from the analysis need a spectral frame (wavelets at the finest scale)")
    v = sol.v if sol.v_mask is None else sol.v * sol.v_mask
    v_dir = frame.per_direction(v)
    if v_dir is None:
        raise ValueError("layer increments from the analysis need variances pooled per direction (not 'coefficient')")
    nloc, nlev, ncol = anomalies.shape
    tshape, off, shape = frame.shape, sol.offset, sol.valid.shape
    if sol.scale is not None and scales is None:
        raise ValueError("layer increments with variance filtering need every layer's scale")
    rows, cols = np.divmod(np.asarray(columns, dtype=np.int64), shape[1])
    tidx = (rows + off[0]) * tshape[1] + (cols + off[1])  # the columns in the transform domain
    s_l = None if scales is None else scales[:, rows, cols]  # (nlev, ncol)
    s_o = None if sol.scale is None else sol.scale[rows, cols]  # (ncol,)
    div_l, div_o = _divisor(s_l), _divisor(s_o)

    def member_terms():  # per member: (cross energy of every layer, own energy of the observed layer)
        buf = np.zeros((nlev + 1, tshape[0] * tshape[1]), dtype=np.float32 if sol.single else np.float64)
        for i in range(nloc):
            buf[:nlev, tidx] = _normalised_by(anomalies[i], div_l)
            buf[nlev, tidx] = _normalised_by(obs_anomalies[i], div_o)
            f = rfft2_images(buf.reshape((nlev + 1,) + tshape))
            yield frame.spectra_cross_energies(f, f[nlev])

    sums = layout.ordered_sum_terms(member_terms(), (nlev + 1, frame.ndir))
    var_o = sums[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(var_o > 0, sums[:-1] / np.where(var_o > 0, var_o, 1.0), 0.0)  # (nlev, ndir)
    zimg = np.zeros(tshape)
    valid_t = np.zeros(tshape, dtype=bool)
    valid_t[off[0] : off[0] + shape[0], off[1] : off[1] + shape[1]] = sol.valid
    zimg[valid_t] = sol.z if sol.scale is None else sol.z * sol.scale[sol.valid]
    spec = frame.multipliers(beta * v_dir) * scipy.fft.rfft2(zimg)  # (nlev, M, N // 2 + 1)
    out = scipy.fft.irfft2(spec, s=tshape).reshape(nlev, -1)[:, tidx]  # (nlev, ncol)
    if s_l is not None:
        out *= s_l
    if sol.bias_image is not None:
        bf = scipy.fft.rfft2(embed(sol.bias_image, tshape, off))
        out -= scipy.fft.irfft2(frame.multipliers(beta) * bf, s=tshape).reshape(nlev, -1)[:, tidx]
    if sol.ensemble is not None:  # the fine band: localized ensemble cross-covariances
        img = np.zeros((nloc, shape[0] * shape[1]))
        for lev in range(nlev):
            img[:, columns] = anomalies[:, lev]
            fine = sol.band.band_passed(img.reshape((nloc,) + shape), sol.transform, off, frame)
            out[lev] += sol.ensemble.cross_field(layout.allgather_members(fine[:, sol.land]), sol.z)
    return out
