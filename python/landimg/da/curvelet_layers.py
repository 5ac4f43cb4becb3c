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

from landimg.da.curvelet_stats import embed, extract
from landimg.parallel import MemberLayout

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


def _normalised(anom: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    if scale is None:
        return anom
    return np.where(scale > 0, anom / np.where(scale > 0, scale, 1.0), 0.0)


def layer_mean_increments(
    anomalies: np.ndarray,
    h: np.ndarray,
    sol: AnalysisSolution,
    layout: MemberLayout,
    layer_scale: Any = None,
) -> np.ndarray:
    """Mean increment of every layer from the observed layer's analysis (module docstring), (nlev, ny, nx).

    Parameters
    ----------
    anomalies : ndarray (nlev, nloc, ny, nx)
        Every layer's (inflated) ensemble anomalies of this rank's members, zero off land.
    h : ndarray (nlev,)
        Observation operator weights (``x_o = h . theta``).
    sol : AnalysisSolution
    layout : MemberLayout
        Sums over members in member order (identical on any number of ranks).
    layer_scale : callable, optional
        ``layer_scale(anomalies (nloc, ny, nx)) -> S_l`` with variance filtering (None without).
    """
    frame = sol.frame
    if frame is None:
        raise ValueError("layer increments from the analysis need a spectral frame (wavelets at the finest scale)")
    v = sol.v if sol.v_mask is None else sol.v * sol.v_mask
    v_dir = frame.per_direction(v)
    if v_dir is None:
        raise ValueError("layer increments from the analysis need variances pooled per direction (not 'coefficient')")
    nlev = anomalies.shape[0]
    tshape, off, shape = frame.shape, sol.offset, sol.valid.shape
    obs_anom = np.tensordot(h, anomalies, axes=1)  # (nloc, ny, nx)
    scales = [None] * nlev if sol.scale is None else [layer_scale(anomalies[lev]) for lev in range(nlev)]
    norm_o = embed(_normalised(obs_anom, sol.scale), tshape, off)

    def member_terms():  # per member: (cross energy of every layer, own energy of the observed layer)
        for i in range(obs_anom.shape[0]):  # the layers' images made one at a time (not nlev of them)
            layers = (embed(_normalised(anomalies[lev, i], scales[lev]), tshape, off) for lev in range(nlev))
            cross = frame.cross_energies(layers, norm_o[i])
            yield np.vstack([cross, frame.energies(norm_o[i : i + 1])])

    sums = layout.ordered_sum_terms(member_terms(), (nlev + 1, frame.ndir))
    var_o = sums[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(var_o > 0, sums[:-1] / np.where(var_o > 0, var_o, 1.0), 0.0)  # (nlev, ndir)
    zimg = np.zeros(tshape)
    valid_t = np.zeros(tshape, dtype=bool)
    valid_t[off[0] : off[0] + shape[0], off[1] : off[1] + shape[1]] = sol.valid
    zimg[valid_t] = sol.z if sol.scale is None else sol.z * sol.scale[sol.valid]
    zf = scipy.fft.rfft2(zimg)
    bf = None if sol.bias_image is None else scipy.fft.rfft2(embed(sol.bias_image, tshape, off))
    out = np.empty((nlev,) + shape)
    for lev in range(nlev):
        inc = extract(scipy.fft.irfft2(frame.multiplier(beta[lev] * v_dir) * zf, s=tshape), shape, off)
        if scales[lev] is not None:
            inc = inc * scales[lev]
        if bf is not None:
            inc = inc - extract(scipy.fft.irfft2(frame.multiplier(beta[lev]) * bf, s=tshape), shape, off)
        out[lev] = inc
    if sol.ensemble is not None:  # the fine band: localized ensemble cross-covariances
        for lev in range(nlev):
            fine = sol.band.band_passed(anomalies[lev], sol.transform, off, frame)
            field = sol.ensemble.cross_field(layout.allgather_members(fine[:, sol.land]), sol.z)
            out[lev][sol.land] += field
    out[:, ~sol.land] = 0.0  # in place (not a second (nlev, ny, nx) array)
    return out
