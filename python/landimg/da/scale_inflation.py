"""Per-scale adaptive inflation of the curvelet EnKF: one variance inflation per curvelet scale.

With ``C_s`` the rows of the curvelet transform ``C`` (tight frame) that belong to scale ``s`` and ``M``
the selection of the ``p`` usable observed pixels (zero elsewhere), the de-biased innovation image
``d' = M (y - mean x) - m mean_obs(d)`` and every member's de-biased anomaly image ``a_i'`` (same masking,
same removal of its mean over the observations; ``m`` the observation mask image) are projected on each
scale:

    D_s = |C_s d'|^2,    A_s = sum_i |C_s a_i'|^2 / (N - 1),
    R_s = f_s tr R - 2/p <C_s (sigma^2 m), C_s m> + tr R |C_s m|^2 / p^2   (+ the correlated part's energy),

where ``f_s = sum_{k in s} |row_k|^2 / n_pix`` is the share of scale ``s`` in the frame's energy. ``R_s``
is the observation-error energy at scale ``s`` of the de-biased, masked error ``(I - m m^T / p) M eps``
for uncorrelated errors, exact when the scale's projection ``C_s^T C_s`` is a convolution (the FFT-based
curvelet: its diagonal is ``f_s``). If the truth differs from the ensemble mean by an error of covariance
``lambda B`` at every scale, ``E[D_s] = lambda A_s + R_s`` for every ``s``; the estimate of every scale is
the one estimator of :func:`landimg.da.inflation.smoothed_lambda` on ``(D_s, R_s, A_s)`` with
``dof_s = p f_s`` degrees of freedom, each scale with its own time-smoothed ``lambda_s``. Summed over the
scales (Parseval) the statistics are exactly those of the single estimate
(:func:`landimg.da.inflation.innovation_statistics`): one scale is the single-scale inflation.
Approximation: the observation mask leaks energy between scales (a masked coarse anomaly has fine-scale
edges), in the innovations and in the anomalies alike; a ``lambda`` shared by all scales is recovered
exactly, different ones are mixed in proportion to that leak.

The de-biasing removes the mean over the observations (the bias lives at the coarsest scale, where
inflation cannot fix it) from innovations and anomalies before the projection, so the coarse-scale
estimate measures spread, not bias.

The inflation is applied in curvelet space to the anomalies of every layer:
``a_i <- C^T diag(sqrt(lambda_s(k))) C a_i`` (anomaly images zero off land; the result is kept on land),
which is ``sqrt(lambda) a_i`` exactly when every scale has the same ``lambda``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.curvelet_stats import coefficient_scales, embed, extract, frame_norms2, transform_shape
from landimg.layout import Layout

__all__ = ["CorrelatedPart", "ScaleStatistics", "apply_scale_inflation", "scale_statistics"]


@dataclass(frozen=True)
class ScaleStatistics:
    """Innovation statistics per curvelet scale, coarsest first (arrays (nscales,), obs units squared).

    Attributes
    ----------
    d2, r_tr, hbh, dof : ndarray (nscales,)
        ``D_s``, ``R_s``, ``A_s`` and ``p f_s`` of the module docstring (all 0 without >= 2 observations).
    """

    d2: np.ndarray
    r_tr: np.ndarray
    hbh: np.ndarray
    dof: np.ndarray


def _energy(c: np.ndarray, scale: np.ndarray, nscales: int) -> np.ndarray:
    """Sum of squared coefficients per scale, (nscales,)."""
    return np.bincount(scale, weights=c * c, minlength=nscales)


def scale_statistics(
    x_obs: np.ndarray,
    obs: np.ndarray,
    std: np.ndarray,
    valid: np.ndarray,
    transform: Any,
    offset: tuple[int, int],
    layout: Layout,
    *,
    debias: bool = True,
    correlated: CorrelatedPart | None = None,
) -> ScaleStatistics:
    """Per-scale innovation statistics of one analysis (see the module docstring).

    Parameters
    ----------
    x_obs : ndarray (nloc, ny, nx)
        This rank's members' observed-layer images (only the ``valid`` pixels are read).
    obs, std : ndarray (ny, nx)
        Observation image and its error std.
    valid : ndarray of bool (ny, nx)
        Usable observations.
    transform : Transform
        The curvelet transform of the analysis (image placed at ``offset`` in its domain).
    offset : (int, int)
        Position of the image in the transform domain.
    layout : Layout
        Members over the ranks (sums in member order: identical on any rank count).
    debias : bool
        Remove the mean over the observations from the innovations and from every anomaly.
    correlated : CorrelatedPart, optional
        The spatially correlated part of the observation error (``std`` is then the total std): ``R_s``
        adds its energy at every scale, estimated from fixed-seed draws (identical on every rank).
    """
    scale = coefficient_scales(transform)
    ns = int(scale.max()) + 1
    tshape = transform_shape(transform)
    p = int(np.count_nonzero(valid))
    if p < 2:
        z = np.zeros(ns)
        return ScaleStatistics(z, z.copy(), z.copy(), z.copy())
    f_s = np.bincount(scale, weights=frame_norms2(transform), minlength=ns) / float(np.prod(tshape))
    xv = np.asarray(x_obs, dtype=np.float64)[:, valid]  # (nloc, p)
    mean = layout.mean(xv)  # (p,), member order
    d = obs[valid] - mean
    s2 = std[valid] ** 2
    if correlated is not None:  # the closed form below is the white part's
        s2 = np.maximum(s2 - correlated.std[valid] ** 2, 0.0)
    r_tr = float(np.sum(s2))
    if debias:
        d = d - d.mean()

    def image(values: np.ndarray) -> np.ndarray:
        img = np.zeros(valid.shape)
        img[valid] = values
        return embed(img, tshape, offset)

    d2 = _energy(transform.forward(image(d)), scale, ns)

    def anomaly_energies():
        for row in xv:
            a = row - mean
            if debias:
                a = a - a.mean()
            yield _energy(transform.forward(image(a)), scale, ns)

    hbh = layout.ordered_sum_terms(anomaly_energies(), (ns,)) / (layout.nmem - 1)
    r_s = f_s * r_tr
    if debias:
        cm = transform.forward(image(np.ones(p)))
        cs = transform.forward(image(s2))
        cross = np.bincount(scale, weights=cs * cm, minlength=ns)
        r_s = r_s - 2.0 / p * cross + r_tr / p**2 * _energy(cm, scale, ns)
    if correlated is not None:
        r_s = r_s + correlated.scale_energy(valid, transform, offset, scale, ns, debias)
    return ScaleStatistics(d2, r_s, hbh, p * f_s)


@dataclass(frozen=True)
class CorrelatedPart:
    """The Gaussian-correlated part of an observation error on the image, for :func:`scale_statistics`.

    Attributes
    ----------
    std : ndarray (ny, nx)
        Its standard deviation per pixel (units of the observations).
    length_km : float
        Correlation length ``L`` (``exp(-r^2 / L^2)``), km.
    cell_km : (float, float)
        Cell size (north-south, east-west), km.
    periodic_x : bool
        The image wraps around in x.
    nsamples : int
        Fixed-seed draws of the error's energy per scale (relative noise ~ ``sqrt(2 / (nsamples dof_s))``).
    """

    std: np.ndarray
    length_km: float
    cell_km: tuple[float, float]
    periodic_x: bool = False
    nsamples: int = 32

    def scale_energy(
        self, valid: np.ndarray, transform: Any, offset: tuple[int, int], scale: np.ndarray, ns: int,
        debias: bool,
    ) -> np.ndarray:  # fmt: skip
        """``E |C_s M' D_c z|^2`` per scale, (ns,): the masked (and de-biased) correlated error's energy."""
        from landimg.parallel import Purpose, member_rng
        from landimg.random_fields import GaussianFieldGenerator

        gen = GaussianFieldGenerator(valid.shape, self.cell_km, self.length_km, self.periodic_x)
        rngs = [member_rng(0, k, Purpose.OBS) for k in range(2 * 10**6, 2 * 10**6 + self.nsamples)]
        fields = gen.draw(rngs, 1)[:, 0]  # (nsamples, ny, nx), unit variance
        tshape = transform_shape(transform)
        out = np.zeros(ns)
        for z in fields:
            e = np.where(valid, self.std * z, 0.0)
            if debias:
                e[valid] -= e[valid].mean()
            out += _energy(transform.forward(embed(e, tshape, offset)), scale, ns)
        return out / self.nsamples


def apply_scale_inflation(
    anomalies: np.ndarray,
    factors: np.ndarray,
    transform: Any,
    offset: tuple[int, int],
    land: np.ndarray,
    batch: int = 8,
) -> np.ndarray:
    """Anomaly images inflated per scale, ``C^T diag(factors[scale(k)]) C a``, (k, ny, nx).

    Parameters
    ----------
    anomalies : ndarray (k, ny, nx)
        Anomaly images (any units), read on ``land`` only (zero elsewhere).
    factors : ndarray (nscales,)
        Anomaly factor per scale (``sqrt(lambda_s)``), coarsest first.
    transform, offset :
        The curvelet transform and the image's position in its domain.
    land : ndarray of bool (ny, nx)
        Cells that hold model values; the result is zero elsewhere.
    batch : int
        Images transformed per call.
    """
    factors = np.asarray(factors, dtype=np.float64)
    scale = coefficient_scales(transform)
    if factors.shape != (int(scale.max()) + 1,):
        raise ValueError(
            f"factors must have one value per scale ({int(scale.max()) + 1}), got {factors.shape}"
        )
    a = np.where(land, anomalies, 0.0)
    if np.all(factors == factors[0]):  # one factor: the frame is tight, C^T (f C a) = f a exactly
        return a * factors[0]
    w = factors[scale]
    tshape = transform_shape(transform)
    out = np.empty_like(a)
    for b0 in range(0, a.shape[0], batch):
        c = transform.forward(embed(a[b0 : b0 + batch], tshape, offset))
        c *= w
        out[b0 : b0 + batch] = extract(transform.inverse(c), a.shape[1:], offset)
    return np.where(land, out, 0.0)
