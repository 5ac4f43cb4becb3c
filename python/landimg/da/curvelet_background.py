"""Background statistics of a curvelet analysis: the (inflated) anomalies, the spatial variance scale ``S``
and the pooled background variance per coefficient ``s_b``.

The members' anomalies (zero off land) are inflated (fixed, or adaptive from the innovations,
:func:`landimg.da.inflation.smoothed_inflation`); with variance filtering ``B = S C^T diag(v) C S`` the
anomalies are divided by ``S``, the smoothed ensemble standard deviation (:func:`variance_scale`); ``s_b``
is their transformed energy, summed over the members in member order and pooled
(:mod:`landimg.da.curvelet_stats`: on the land fraction, on land-covered frame elements, or locally).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from landimg.da.curvelet_problem import Problem
from landimg.da.curvelet_stats import (
    coefficient_groups,
    embed,
    land_coverage,
    pool,
    pool_interior,
    pool_local,
)
from landimg.da.curvelet_timing import Clock
from landimg.da.image_covariance import GaussianCorrelation
from landimg.da.inflation import smoothed_inflation
from landimg.layout import Layout

__all__ = [
    "background_variance", "inflated_anomalies", "mean_square", "normalised", "smoothed_std", "variance_scale",
]  # fmt: skip

_log = logging.getLogger("landimg.analysis")


def inflated_anomalies(
    p: Problem, s: Any, state: MutableMapping[str, Any] | None, diag: dict[str, Any], key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Member mean (ny, nx), inflated anomalies (zero off land) and the inflated members (zero off land),
    the latter two (nloc, ny, nx).

    Adaptive inflation (``s.inflation_mode``): :func:`landimg.da.inflation.smoothed_inflation` over the
    usable observations with the settings' smoothing and de-biasing, its prior from (and its estimate
    into) ``state[key]`` when given; the factor and the estimate into ``diag``.
    """
    inflation = s.inflation
    xb = np.where(p.land, p.background, 0.0)
    mean = p.layout.mean(xb)  # (ny, nx), member order
    anom = (xb - mean) * p.land
    if s.inflation_mode == "adaptive":
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


def background_variance(
    p: Problem, transform: Any, anom: np.ndarray, pooling: str, variance_support: str, batch: int, clock: Clock,
    frame: Any = None, local_radius: float = 2.0,
) -> np.ndarray:  # fmt: skip
    """Pooled background error variance per coefficient ``s_b`` (ncoef,), member-ordered, of the anomaly
    images ``anom`` (nloc, ny, nx) transformed ``batch`` members at a time.

    Pooled on land-fraction support with a :class:`~landimg.da.curvelet_spectral.SpectralFrame`, the
    energies per direction come from one FFT per member (the same sums as the transform's, to round-off).
    Timed as ``"statistics"`` (without the transforms); on both routes that section is left running, for
    the caller to stop after the gains.
    """
    nloc, layout = p.background.shape[0], p.layout
    gid = coefficient_groups(transform, pooling)
    land_frac = p.land.sum() / float(p.tshape[0] * p.tshape[1])
    if frame is not None and pooling not in ("coefficient", "local") and variance_support == "land_fraction":

        def direction_energies():  # member by member, in batches (each image on its own: batch-invariant)
            for b0 in range(0, nloc, batch):
                yield from frame.energies(embed(anom[b0 : b0 + batch], p.tshape, p.offset))

        clock.start("statistics")  # left running, as on the transform route
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


def variance_scale(anom: np.ndarray, land: np.ndarray, layout: Layout, length_km: float,
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


def normalised(images: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The images (..., ny, nx) divided by ``S`` (ny, nx), 0 where ``S`` is 0."""
    return np.where(scale > 0, images / np.where(scale > 0, scale, 1.0), 0.0)


def mean_square(scale: np.ndarray | None, land: np.ndarray) -> float:
    """Mean of ``S^2`` over land (1 without variance filtering)."""
    if scale is None:
        return 1.0
    vals = scale[land]
    return float(np.mean(vals**2)) if vals.size else 1.0
