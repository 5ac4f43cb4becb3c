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
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from landimg.da.point_enkf import adaptive_inflation, check_inflation
from landimg.parallel import MemberLayout, Purpose, SerialComm, member_rng
from landimg.random_fields import GaussianFieldGenerator

__all__ = ["CoefficientStats", "Transform", "curvelet_analysis", "curvelet_enkf", "land_coverage"]

_log = logging.getLogger("landimg.analysis")

POOLINGS = ("coefficient", "wedge", "scale", "global")
VARIANCE_SUPPORTS = ("land_fraction", "interior")

# variance_support="interior": per group, the K best land-covered coefficients are pooled, with
# K = max(#{cov >= _INTERIOR_COVERAGE}, ceil(_INTERIOR_MIN_FRACTION * size), min(_INTERIOR_MIN_COUNT, size))
_INTERIOR_COVERAGE = 1.0 - 1e-4
_INTERIOR_MIN_FRACTION = 0.2
_INTERIOR_MIN_COUNT = 16
_COVERAGE_SAMPLES = 64  # white-noise probes of the coverage estimate (x2 transforms, cached per mask)
_COVERAGE_SEED = 0x5EED_C0DE


class Transform(Protocol):
    """What the analysis needs from a transform (``landimg.Curvelet`` satisfies it).

    ``forward`` maps (..., ny, nx) to (..., ncoef); ``inverse`` is its adjoint and exact inverse;
    ``wedges`` is a list of records with ``.scale`` (int) and ``.slice`` (into the coefficient axis).
    Optional: per-coefficient squared frame-element norms (``norms2``/``coef_norms2``/``frame_norms2``).
    """

    shape: tuple[int, int]
    ncoef: int
    wedges: Sequence[Any]

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def inverse(self, c: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------- transform helpers
def _transform_shape(transform: Any) -> tuple[int, int]:
    return tuple(int(s) for s in transform.shape)


def coefficient_groups(transform: Any, pooling: str) -> np.ndarray:
    """Group index (ncoef,) of every coefficient for ``pooling`` (coefficient|wedge|scale|global)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    n = int(transform.ncoef)
    if pooling == "coefficient":
        return np.arange(n)
    if pooling == "global":
        return np.zeros(n, dtype=np.int64)
    gid = np.full(n, -1, dtype=np.int64)
    for w, wedge in enumerate(transform.wedges):
        gid[wedge.slice] = w if pooling == "wedge" else int(wedge.scale)
    if (gid < 0).any():
        raise ValueError("transform.wedges do not cover every coefficient")
    return gid


def coefficient_scales(transform: Any) -> np.ndarray:
    """Scale index (ncoef,) of every coefficient (0 = coarsest)."""
    return coefficient_groups(transform, "scale")


def frame_norms2(transform: Any) -> np.ndarray:
    """Squared norm of every frame element (row of C), (ncoef,).

    Uses the transform's own attribute when it has one; otherwise estimates it per wedge from 16 white
    noise images (a wedge's elements are translates of one another, so their norms agree).
    """
    for name in ("row_norms_sq", "norms2", "coef_norms2", "frame_norms2", "norm2", "squared_norms"):
        val = getattr(transform, name, None)
        if val is not None:
            val = val() if callable(val) else val
            return np.asarray(val, dtype=np.float64).reshape(-1)
    rng = np.random.Generator(np.random.PCG64(12345))
    c = transform.forward(rng.standard_normal((16,) + _transform_shape(transform)))
    gid = coefficient_groups(transform, "wedge")
    sums = np.bincount(gid, weights=np.mean(c**2, axis=0))
    return (sums / np.bincount(gid))[gid]


def _offset(
    shape: tuple[int, int], tshape: tuple[int, int], offset: tuple[int, int] | None
) -> tuple[int, int]:
    if offset is None:
        return (tshape[0] - shape[0]) // 2, (tshape[1] - shape[1]) // 2
    oy, ox = (int(v) for v in offset)
    if oy < 0 or ox < 0 or oy + shape[0] > tshape[0] or ox + shape[1] > tshape[1]:
        raise ValueError(
            f"pad_offset {offset} does not fit the image {shape} into the transform shape {tshape}"
        )
    return oy, ox


def _embed(images: np.ndarray, tshape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Place (..., ny, nx) images into zero (..., Ty, Tx) images at ``offset``."""
    ny, nx = images.shape[-2:]
    if (ny, nx) == tshape:
        return images
    oy, ox = offset
    out = np.zeros(images.shape[:-2] + tshape)
    out[..., oy : oy + ny, ox : ox + nx] = images
    return out


def _extract(images: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    if images.shape[-2:] == shape:
        return images
    oy, ox = offset
    return images[..., oy : oy + shape[0], ox : ox + shape[1]]


# ---------------------------------------------------------------------- statistics
@dataclass
class CoefficientStats:
    """Background and observation error variance per coefficient and the gain actually used.

    Attributes (all (ncoef,))
    -------------------------
    s_b, s_o : background / observation error variance per coefficient (after pooling and inflation)
    gain : k = w s_b / (s_b + s_o)
    """

    s_b: np.ndarray
    s_o: np.ndarray
    gain: np.ndarray
    scale: np.ndarray = field(repr=False)

    def per_scale(self) -> dict[str, list[float]]:
        """Mean s_b, s_o and gain per scale (lists indexed by scale)."""
        n = np.bincount(self.scale)
        return {
            name: (np.bincount(self.scale, weights=getattr(self, name)) / n).tolist()
            for name in ("s_b", "s_o", "gain")
        }


class _CoverageKey:
    """Hashable cache key: the transform object (by identity, kept alive), the padded mask, the probes."""

    def __init__(self, transform: Any, land_t: np.ndarray, nsamples: int) -> None:
        self.transform, self.land_t, self.nsamples = transform, land_t, nsamples
        self._key = (id(transform), land_t.shape, land_t.tobytes(), nsamples)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CoverageKey) and self._key == other._key


@functools.lru_cache(maxsize=4)
def _cached_coverage(key: _CoverageKey) -> np.ndarray:
    cov = _estimate_coverage(key.transform, key.land_t, key.nsamples)
    cov.setflags(write=False)
    return cov


def _estimate_coverage(transform: Any, land_t: np.ndarray, nsamples: int, batch: int = 8) -> np.ndarray:
    """Fixed-seed estimate of :func:`land_coverage` (identical on every rank); see there."""
    tshape = _transform_shape(transform)
    rng = np.random.Generator(np.random.PCG64(_COVERAGE_SEED))
    e_land = np.zeros(int(transform.ncoef))
    e_off = np.zeros(int(transform.ncoef))
    for b0 in range(0, nsamples, batch):
        z = rng.standard_normal((min(batch, nsamples - b0),) + tshape)
        c_land = transform.forward(z * land_t)
        c_off = transform.forward(z * ~land_t)
        e_land += np.sum(c_land**2, axis=0)
        e_off += np.sum(c_off**2, axis=0)
    tot = e_land + e_off
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(tot > 0, e_land / tot, 0.0)


def land_coverage(transform: Any, land_t: np.ndarray, nsamples: int = _COVERAGE_SAMPLES) -> np.ndarray:
    """Land coverage of every frame element, (ncoef,) in [0, 1].

    ``cov_k = sum_p land_p phi_k(p)^2 / sum_p phi_k(p)^2`` with ``phi_k`` the k-th frame element (row of C).
    Estimated from ``nsamples`` fixed-seed white-noise images ``z`` split into their land and off-land
    parts: ``E[(C(land z))_k^2] = sum_p land_p phi_k(p)^2`` and likewise off land, and ``cov_k`` is the ratio
    of the land sum to the total. The two parts are independent, so ``logit(cov)`` has the error of the
    log of a ratio of two chi2 / nsamples variables, std ``2 / sqrt(nsamples)``, whatever the coverage:
    std ``~ 2 cov (1 - cov) / sqrt(nsamples)`` in ``cov`` (0.06 at cov = 0.5 and 0.02 at 0.9 for 64 probes,
    relative accuracy of ``1 - cov`` near full coverage), exactly 1 (0) when the mask is all land (no land).
    Cached per (transform object, mask, nsamples): the mask is fixed.

    Parameters
    ----------
    transform : Transform
    land_t : ndarray of bool, transform.shape
        Land on the transform domain (padding is not land).
    nsamples : int
        Number of noise probes (each costs two forward transforms, once per cache entry).
    """
    land_t = np.ascontiguousarray(land_t, dtype=bool)
    if land_t.shape != _transform_shape(transform):
        raise ValueError(
            f"land_t must have the transform shape {_transform_shape(transform)}, got {land_t.shape}"
        )
    if nsamples < 1:
        raise ValueError(f"nsamples must be >= 1, got {nsamples}")
    return _cached_coverage(_CoverageKey(transform, land_t, int(nsamples)))


def _pool_interior(
    values: np.ndarray,
    gid: np.ndarray,
    cov: np.ndarray,
    full: float = _INTERIOR_COVERAGE,
    min_fraction: float = _INTERIOR_MIN_FRACTION,
    min_count: int = _INTERIOR_MIN_COUNT,
) -> np.ndarray:
    """Coverage-normalised pooled mean over the best land-covered coefficients of each group, (ncoef,).

    In each group of ``n`` coefficients the ``K`` with the highest coverage are selected,
    ``K = max(#{cov >= full}, ceil(min_fraction n), min(min_count, n))``: every coefficient whose frame
    element lies (numerically) entirely on land, and never fewer than a fifth of the group, so that groups
    without interior elements (coarse scales, small islands) still get a well-sampled, best-covered
    estimate. The pooled value is ``sum_sel values / sum_sel cov`` (0 where that coverage is 0): unbiased
    for white anomalies whatever the selection (``E[var_k] = cov_k sigma^2``), and free of the coastal
    jump energy of smooth anomalies where the selection is interior. Ties are broken by coefficient index,
    so the result depends only on ``values`` (identical on every rank).
    """
    ngroup = int(gid.max()) + 1 if gid.size else 0
    order = np.lexsort((-cov, gid))  # by group, then by decreasing coverage (stable, deterministic)
    size = np.bincount(gid, minlength=ngroup)
    start = np.concatenate(([0], np.cumsum(size)[:-1]))
    rank = np.empty(gid.size, dtype=np.int64)
    rank[order] = np.arange(gid.size) - start[gid[order]]  # position within its group by coverage
    n_full = np.bincount(gid, weights=(cov >= full), minlength=ngroup).astype(np.int64)
    k = np.maximum(n_full, np.ceil(min_fraction * size).astype(np.int64))
    k = np.minimum(size, np.maximum(k, min_count))
    sel = rank < k[gid]
    num = np.bincount(gid, weights=np.where(sel, values, 0.0), minlength=ngroup)
    den = np.bincount(gid, weights=np.where(sel, cov, 0.0), minlength=ngroup)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.where(den > 0, num / den, 0.0)
    return pooled[gid]


def _pool(values: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Mean of ``values`` within each group, broadcast back to (ncoef,)."""
    if gid.size and gid[-1] == gid.size - 1:  # one group per coefficient (groups are sorted)
        return values
    sums = np.bincount(gid, weights=values)
    return (sums / np.bincount(gid))[gid]


@dataclass
class _ObsErrorModel:
    """Observation error: std map sigma (ny, nx), white fraction of its variance, correlation length (km).

    ``e = sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)`` with unit-variance white noise ``z_white`` and
    Gaussian-correlated noise ``z_corr`` of length ``corr_km`` (``w = white_fraction``; ``w < 1`` needs
    ``corr_km > 0``).
    """

    sigma: np.ndarray
    corr_km: float
    cell_km: tuple[float, float]
    periodic_x: bool
    white_fraction: float = 1.0

    def _part(self, white_fraction: float) -> _ObsErrorModel:
        return _ObsErrorModel(self.sigma, self.corr_km, self.cell_km, self.periodic_x, white_fraction)

    def fields(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """One error image per generator, (n, ny, nx).

        Mixed model: the correlated draw first, then the white one, both from each member's own
        generator (independent of the rank layout).
        """
        w = self.white_fraction
        if w < 1:
            gen = GaussianFieldGenerator(self.sigma.shape, self.cell_km, self.corr_km, self.periodic_x)
            z = gen.draw(rngs, 1)[:, 0]
            if w > 0:
                white = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
                z = np.sqrt(1.0 - w) * z + np.sqrt(w) * white
        else:
            z = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
        return self.sigma * z

    def coefficient_variance(
        self,
        transform: Any,
        nsamples: int,
        seed: int,
        *,
        pooled: bool = False,
        offset: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """s_o per coefficient (ncoef,) at *full coverage*: the error field on the whole transform domain.

        ``sigma`` must already hold the fill value (rms of the usable sigmas) off the observations; the
        padding of a larger transform domain takes the same fill, so that ``s_o`` is on the same footing
        as the land-fraction normalised pooled ``s_b`` (and as the analytic white path).

        * uniform white error: ``sigma^2 |row_j|^2`` (exact);
        * white error with a sigma map, pooled (wedge/scale/global): ``mean(sigma^2) |row_j|^2`` (exact
          after pooling: a wedge's frame elements are translates on a grid that covers the domain
          uniformly, so ``sum_{j in wedge} C_jp^2`` does not depend on the pixel ``p``);
        * otherwise (correlated error, or a sigma map without pooling): Monte Carlo over ``nsamples``
          fixed-seed error images on the transform domain (identical on every rank);
        * mixed error (``0 < white_fraction < 1``): ``w * s_o(white) + (1 - w) * s_o(correlated)``, each
          part as above (the two parts are independent, so their variances add).
        """
        w = self.white_fraction
        if 0 < w < 1:
            kw: dict[str, Any] = {"pooled": pooled, "offset": offset}
            return w * self._part(1.0).coefficient_variance(transform, nsamples, seed, **kw) + (
                1.0 - w
            ) * self._part(0.0).coefficient_variance(transform, nsamples, seed, **kw)
        white = w >= 1
        vals = self.sigma[np.isfinite(self.sigma)]
        uniform = bool(vals.size) and bool(np.all(vals == vals[0]))
        if white and uniform:
            return vals[0] ** 2 * frame_norms2(transform)
        tshape = _transform_shape(transform)
        fill = float(np.sqrt(np.mean(vals**2))) if vals.size else 0.0
        sig = np.full(tshape, fill)
        oy, ox = _offset(self.sigma.shape, tshape, offset)
        sig[oy : oy + self.sigma.shape[0], ox : ox + self.sigma.shape[1]] = self.sigma
        if white and pooled:
            return float(np.mean(sig**2)) * frame_norms2(transform)
        full = _ObsErrorModel(sig, self.corr_km, self.cell_km, self.periodic_x, w)
        rngs = [member_rng(seed, k, Purpose.OBS) for k in range(10**6, 10**6 + nsamples)]
        return np.mean(transform.forward(full.fields(rngs)) ** 2, axis=0)


class _Clock:
    """Accumulating wall-clock sections into an optional dict (no-op when it is None)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self._t0: dict[str, float] = {}
        self._nested: dict[str, float] = {}

    def start(self, name: str) -> None:
        if self.sink is not None:
            self._t0[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + time.perf_counter() - self._t0.pop(name)

    def subtract(self, name: str, inner: str) -> None:
        """Remove from ``name`` the ``inner`` time accumulated while ``name`` ran (nested sections)."""
        if self.sink is not None:
            self.sink[name] -= self.sink.get(inner, 0.0) - self._nested.get(inner, 0.0)

    @contextmanager
    def __call__(self, name: str):
        if self.sink is not None and name == "statistics":
            self._nested["transform"] = self.sink.get("transform", 0.0)
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)


# ---------------------------------------------------------------------- validation
def resolve_white_fraction(obs_white_fraction: float | None, obs_corr_km: float) -> float:
    """The white fraction of the observation-error variance actually used, checked.

    None: 1.0 when ``obs_corr_km <= 0`` (white), 0.0 otherwise (entirely correlated, the historical
    meaning of ``obs_corr_km > 0``). A given value must lie in [0, 1]; values below 1 need
    ``obs_corr_km > 0``.
    """
    if obs_white_fraction is None:
        return 1.0 if obs_corr_km <= 0 else 0.0
    w = float(obs_white_fraction)
    if not 0.0 <= w <= 1.0:  # also rejects NaN
        raise ValueError(f"obs_white_fraction must be in [0, 1] (or None), got {obs_white_fraction!r}")
    if w < 1.0 and obs_corr_km <= 0:
        raise ValueError(
            f"obs_white_fraction={w} < 1 needs a correlation length obs_corr_km > 0, got {obs_corr_km!r}"
        )
    return w


def _check_inputs(background, obs, obs_std, obs_mask, update_mask):
    background = np.asarray(background, dtype=np.float64)
    if background.ndim != 3:
        raise ValueError(f"background must be (nmem_local, ny, nx), got shape {background.shape}")
    shape = background.shape[1:]
    obs = np.asarray(obs, dtype=np.float64)
    if obs.shape != shape:
        raise ValueError(f"obs has shape {obs.shape}, expected the image shape {shape}")
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != shape):
        raise ValueError(f"obs_std must be a scalar or an image of shape {shape}, got shape {std.shape}")
    if np.any(std < 0):
        raise ValueError("obs_std must be >= 0 (got negative values)")
    if np.any(np.isnan(std)):
        raise ValueError("obs_std must not be NaN")
    std = np.broadcast_to(std, shape)
    if obs_mask is not None:
        obs_mask = np.asarray(obs_mask, dtype=bool)
        if obs_mask.shape != shape:
            raise ValueError(f"obs_mask has shape {obs_mask.shape}, expected {shape}")
    if update_mask is not None:
        update_mask = np.asarray(update_mask, dtype=bool)
        if update_mask.shape not in (shape, background.shape):
            raise ValueError(
                f"update_mask must have shape {shape} or {background.shape}, got {update_mask.shape}"
            )
    return background, obs, std, obs_mask, update_mask


# ---------------------------------------------------------------------- the analysis
def curvelet_analysis(
    background: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    transform: Any,
    *,
    obs_mask: np.ndarray | None = None,
    seed: int = 0,
    rngs: Sequence[np.random.Generator] | None = None,
    perturb_obs: bool = True,
    inflation: float = 1.0,
    inflation_mode: str = "fixed",
    inflation_max: float = 2.0,
    rtps: float = 0.0,
    pooling: str = "coefficient",
    variance_support: str = "land_fraction",
    scale_weights: Sequence[float] | None = None,
    obs_corr_km: float = 0.0,
    obs_white_fraction: float | None = None,
    cell_km: tuple[float, float] = (1.0, 1.0),
    periodic_x: bool = False,
    obs_var_samples: int = 32,
    land: np.ndarray | None = None,
    update_mask: np.ndarray | None = None,
    layout: MemberLayout | None = None,
    pad_offset: tuple[int, int] | None = None,
    batch: int = 8,
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Curvelet-space EnKF analysis of member images, with diagnostics.

    Parameters
    ----------
    background : ndarray (nloc, ny, nx)
        This rank's member images (e.g. m3/m3); NaN off land.
    obs : ndarray (ny, nx)
        Observation image; NaN = missing (masked and counted).
    obs_std : float or ndarray (ny, nx)
        Observation error standard deviation (same units); ``inf`` = no information; must be >= 0.
    transform : Transform
        Tight frame on the image shape, or on a larger padded shape (images are embedded centred in
        zeros: padding is unobserved and carries no anomaly, which stops wrap-around at regional edges).
    obs_mask : ndarray of bool (ny, nx), optional
        False marks observations not to use.
    seed : int
        Experiment seed for the perturbed observations (``member_rng(seed, i, Purpose.OBS)``) when
        ``rngs`` is not given.
    rngs : sequence of Generator, optional
        One generator per local member (advanced in place).
    perturb_obs : bool
        Stochastic EnKF with perturbed observations (True) or the deterministic update of every member
        with the unperturbed observation (False; exact convex blend for a constant gain, for tests).
    inflation : float
        Multiplicative inflation of the background anomalies (>= 1 to inflate); applied on every call,
        also when no observation is usable. With ``inflation_mode="adaptive"``: the lower bound.
    inflation_mode : {"fixed", "adaptive"}
        ``"adaptive"``: the anomaly factor of this analysis is estimated from the innovations in
        observation (image) space, ``d = y - mean(x_b)`` over the usable observed land pixels:
        ``lambda = (d.d - sum sigma^2) / sum var_b`` (:func:`landimg.da.point_enkf.adaptive_inflation`;
        ``var_b`` the member-ordered ensemble variance per pixel, so identical on any number of ranks),
        factor ``sqrt(lambda)`` clipped to ``[inflation, inflation_max]``.
    inflation_max : float
        Upper bound of the adaptive anomaly factor.
    rtps : float
        Relaxation to prior spread (Whitaker & Hamill 2012), per pixel, 0..1.
    pooling : {"coefficient", "wedge", "scale", "global"}
        Where the variances are averaged before the gain is formed.
    variance_support : {"land_fraction", "interior"}
        How a pooled background variance is brought to its land value (no effect with
        ``pooling="coefficient"``). ``"land_fraction"``: mean over the group divided by the land fraction
        of the transform domain (exact for spatially white anomalies only: the jump of smooth anomalies at
        the coast adds energy to the fine scales). ``"interior"``: only coefficients whose frame element
        lies entirely on land are pooled, normalised by their land coverage (:func:`land_coverage`;
        ``cov >= 1 - 1e-4``, at least the best covered fifth of each group); see docs/method.md.
    scale_weights : sequence of float, optional
        Multiplies the gain of each scale (coarsest first); gains are clipped to [0, 1].
    obs_corr_km, cell_km, periodic_x :
        Spatially correlated observation error (Gaussian correlation of length ``obs_corr_km`` km on cells
        of ``cell_km`` = (dy, dx) km; periodic in x for global grids).
    obs_white_fraction : float in [0, 1], optional
        Fraction of the observation-error *variance* that is white; the rest is correlated with length
        ``obs_corr_km`` (``< 1`` needs ``obs_corr_km > 0``). Default None keeps the historical rule: white
        when ``obs_corr_km == 0``, entirely correlated when ``obs_corr_km > 0``.
    obs_var_samples : int
        Monte-Carlo images for ``s_o`` when it has no exact formula (correlated error, or an ``obs_std``
        map with ``pooling="coefficient"``).
    land : ndarray of bool (ny, nx), optional
        Cells that hold model values (default: finite in every local member).
    update_mask : ndarray of bool (ny, nx) or (nloc, ny, nx), optional
        False marks cells not updated (frozen, snow covered).
    layout : MemberLayout, optional
        Member layout for MPI runs (default: the ``nloc`` members are the whole ensemble, serial).
    pad_offset : (int, int), optional
        Position of the image in a larger (padded) transform shape (default centred; pass
        ``imageprep.EdgePadding(...).offset``).
    batch : int
        Members transformed per call (bounds memory to ``batch x ncoef``).
    timings : dict, optional
        Accumulates wall seconds of "transform", "statistics" (reductions, pooling, s_o) and "update".

    Returns
    -------
    analysis : ndarray (nloc, ny, nx)
        NaN stays NaN; cells outside ``land`` or ``update_mask`` keep their background values.
    diagnostics : dict
        ``n_obs``, ``n_nan_masked``, ``stats`` (:class:`CoefficientStats`), ``gain_per_scale`` ...;
        adaptive mode also ``inflation`` (anomaly factor applied) and ``inflation_lambda`` (unclipped
        variance-ratio estimate, NaN without usable observations or spread).
    """
    background, obs, std, obs_mask, update_mask = _check_inputs(
        background, obs, obs_std, obs_mask, update_mask
    )
    nloc, ny, nx = background.shape
    shape = (ny, nx)
    if layout is None:
        layout = MemberLayout(max(nloc, 1), SerialComm())
    if nloc != layout.nloc:
        raise ValueError(f"background holds {nloc} members, the layout expects nloc={layout.nloc}")
    if layout.nmem < 2:
        raise ValueError("the curvelet EnKF needs at least 2 members")
    check_inflation(inflation, inflation_mode, inflation_max)
    adaptive = inflation_mode == "adaptive"
    if not 0.0 <= rtps <= 1.0:
        raise ValueError(f"rtps must be in [0, 1], got {rtps}")
    if variance_support not in VARIANCE_SUPPORTS:
        raise ValueError(f"variance_support must be one of {VARIANCE_SUPPORTS}, got {variance_support!r}")
    white_fraction = resolve_white_fraction(obs_white_fraction, obs_corr_km)
    tshape = _transform_shape(transform)
    if tshape[0] < ny or tshape[1] < nx:
        raise ValueError(f"transform shape {tshape} is smaller than the image shape {shape}")
    off = _offset(shape, tshape, pad_offset)

    if land is None:
        land = layout.ordered_sum(~np.isfinite(background)) == 0  # finite in every member, all ranks
    land = np.asarray(land, dtype=bool)
    nan_obs = np.isnan(obs) & land
    valid = land & np.isfinite(obs) & np.isfinite(std)
    if obs_mask is not None:
        valid &= obs_mask
    n_nan = int(np.count_nonzero(nan_obs if obs_mask is None else nan_obs & obs_mask))
    if n_nan:
        _log.info("curvelet_enkf: %d NaN observations on land masked", n_nan)
    diag: dict[str, Any] = {"n_obs": int(valid.sum()), "n_nan_masked": n_nan}
    if adaptive:
        diag.update(inflation=float(inflation), inflation_lambda=float("nan"))
    analysis = background.copy()
    if not valid.any():  # nothing to assimilate; the inflation still applies, as in every analysis
        diag["stats"] = None
        if inflation != 1.0:
            upd = land if update_mask is None else land & update_mask
            mean = layout.mean(np.where(land, background, 0.0))
            analysis = np.where(upd, mean + inflation * (background - mean), background)
        return analysis, diag

    xb = np.where(land, background, 0.0)
    # ---- background statistics: anomalies (zero off land) -> coefficients
    mean = layout.mean(xb)  # (ny, nx), member order
    anom = (xb - mean) * land
    if adaptive:  # innovation statistics in image space over the usable observations
        var_b = layout.ordered_sum_terms((a * a for a in anom), shape) / (layout.nmem - 1)
        lam, inflation = adaptive_inflation(
            float(np.sum((obs[valid] - mean[valid]) ** 2)), float(np.sum(std[valid] ** 2)),
            float(np.sum(var_b[valid])), inflation, inflation_max,
        )  # fmt: skip
        diag.update(inflation=inflation, inflation_lambda=lam)
        _log.info("curvelet_enkf: adaptive inflation lambda_hat=%.4f factor=%.4f", lam, inflation)
    if inflation != 1.0:
        anom *= inflation
        xb = np.where(land, mean + anom, 0.0)
    clock = _Clock(timings)

    def squared_coefficients():  # member by member, transformed in batches
        for b0 in range(0, nloc, batch):
            with clock("transform"):
                ca = transform.forward(_embed(anom[b0 : b0 + batch], tshape, off))
            for row in ca:
                yield row * row

    with clock("statistics"):
        var_c = layout.ordered_sum_terms(squared_coefficients(), (int(transform.ncoef),)) / (layout.nmem - 1)
    clock.subtract("statistics", "transform")
    clock.start("statistics")
    scale = coefficient_scales(transform)
    gid = coefficient_groups(transform, pooling)
    land_frac = land.sum() / float(tshape[0] * tshape[1])
    if pooling != "coefficient" and variance_support == "interior":
        cov = land_coverage(transform, _embed(land, tshape, off).astype(bool))
        s_b = _pool_interior(var_c, gid, cov)
    else:
        s_b = _pool(var_c, gid)
        if pooling != "coefficient":
            s_b = s_b / land_frac  # pooled energy of a land-only field: per-coefficient level on land

    # ---- observation error variance per coefficient
    vals = std[valid]
    # unobserved pixels take the rms sigma: mean(sigma^2) over the image == mean over the observations
    fill_sigma = float(vals[0]) if np.all(vals == vals[0]) else float(np.sqrt(np.mean(vals**2)))
    err = _ObsErrorModel(np.where(valid, std, fill_sigma), obs_corr_km, cell_km, periodic_x, white_fraction)
    s_o = err.coefficient_variance(
        transform, obs_var_samples, seed, pooled=pooling != "coefficient", offset=off
    )
    s_o = _pool(s_o, gid)

    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(s_b + s_o > 0, s_b / (s_b + s_o), 0.0)
        gain = np.where(np.isinf(s_o), 0.0, gain)
    if scale_weights is not None:
        w = np.asarray(scale_weights, dtype=np.float64)
        if w.size <= scale.max():
            raise ValueError(f"scale_weights needs one weight per scale ({scale.max() + 1}), got {w.size}")
        gain = np.clip(gain * w[scale], 0.0, 1.0)
    stats = CoefficientStats(s_b=s_b, s_o=s_o, gain=gain, scale=scale)
    clock.stop("statistics")

    # ---- innovations (each member's gaps filled with its own values: zero innovation)
    if perturb_obs:
        if rngs is None:
            rngs = [member_rng(seed, i, Purpose.OBS) for i in layout.members]
        if len(rngs) != nloc:
            raise ValueError(f"rngs must hold one generator per local member ({nloc}), got {len(rngs)}")
        yi = obs + err.fields(rngs)
    else:
        yi = np.broadcast_to(obs, background.shape)
    with clock("update"):
        innov = yi - xb
        innov[:, ~valid] = 0.0
    anom = yi = None  # free the memory (the statistics generator is exhausted)
    inc = innov  # each batch's increment overwrites its (already transformed) innovation
    for b0 in range(0, nloc, batch):
        sl = slice(b0, b0 + batch)
        with clock("transform"):
            cd = transform.forward(_embed(innov[sl], tshape, off))
        with clock("update"):
            cd *= gain
        with clock("transform"):
            inc[sl] = _extract(transform.inverse(cd), shape, off)

    with clock("update"):
        upd = land if update_mask is None else land & update_mask
        np.add(xb, inc, out=inc)
        analysis = np.where(upd, inc, background)  # not updated: background as given

    if rtps > 0:
        _, var_b = layout.mean_var(xb)
        mu_a, var_a = layout.mean_var(np.where(land, analysis, 0.0))
        sd_b, sd_a = np.sqrt(var_b), np.sqrt(var_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            fac = np.where(sd_a > 0, 1.0 + rtps * (sd_b - sd_a) / sd_a, 1.0)
        analysis = np.where(upd, mu_a + fac * (analysis - mu_a), analysis)

    diag["stats"] = stats
    diag["gain_per_scale"] = stats.per_scale()["gain"]
    return analysis, diag


def curvelet_enkf(
    background: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    transform: Any,
    *,
    obs_mask: np.ndarray | None = None,
    seed: int = 0,
    perturb_obs: bool = True,
    inflation: float = 1.0,
    pooling: str = "coefficient",
    **options: Any,
) -> np.ndarray:
    """Curvelet-space EnKF: (N, ny, nx) background images -> (N, ny, nx) analysis images.

    The functional core for tests and embedding; see :func:`curvelet_analysis` for every option
    (``rtps``, ``scale_weights``, ``obs_corr_km``, ``land``, ``update_mask``, ``layout``, ``rngs`` ...) and
    the diagnostics.
    """
    analysis, _ = curvelet_analysis(
        background,
        obs,
        obs_std,
        transform,
        obs_mask=obs_mask,
        seed=seed,
        perturb_obs=perturb_obs,
        inflation=inflation,
        pooling=pooling,
        **options,
    )
    return analysis
