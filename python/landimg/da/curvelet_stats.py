"""Curvelet-space statistics: coefficient groups, frame-element norms, land coverage, variance pooling.

The pieces of the curvelet EnKF that depend only on the transform and the land mask (no members): which
coefficients are pooled together, the squared norm of every frame element (row of ``C``), how much of a
frame element lies on land, the pooled means that turn per-coefficient anomaly energy into ``s_b``, and
the gain per coefficient from ``s_b`` and the observation error's ``s_o`` (:func:`coefficient_stats`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "POOLINGS",
    "VARIANCE_SUPPORTS",
    "CoefficientStats",
    "Transform",
    "coefficient_groups",
    "coefficient_scales",
    "coefficient_stats",
    "embed",
    "extract",
    "frame_norms2",
    "image_offset",
    "land_coverage",
    "pool",
    "pool_interior",
    "pool_local",
    "transform_shape",
]

POOLINGS = ("coefficient", "wedge", "scale", "global", "local")
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
def transform_shape(transform: Any) -> tuple[int, int]:
    return tuple(int(s) for s in transform.shape)


def _direction_ids(transform: Any) -> list[int]:
    """Direction index of every wedge: the two real halves (``sqrt(2) Re``, ``sqrt(2) Im``) of one complex
    curvelet wedge share one (a real wedge ``a`` of a scale with ``n > 1`` angles is direction ``a mod n/2``
    of its scale); transforms without angles: one per wedge."""
    nangles = getattr(transform, "nangles", None)
    keys: dict[tuple[int, int], int] = {}
    out = []
    for w, wedge in enumerate(transform.wedges):
        angle = getattr(wedge, "angle", None)
        if nangles is None or angle is None:
            key = (-1, w)
        else:
            n = int(nangles[int(wedge.scale)])
            key = (int(wedge.scale), 0 if n == 1 else int(angle) % (n // 2))
        out.append(keys.setdefault(key, len(keys)))
    return out


_GROUPS: dict[tuple[int, str], tuple[Any, np.ndarray]] = {}


def coefficient_groups(transform: Any, pooling: str) -> np.ndarray:
    """Group index (ncoef,) of every coefficient for ``pooling`` (read-only, kept per transform object);
    see :func:`_coefficient_groups`."""
    key = (id(transform), pooling)
    hit = _GROUPS.get(key)
    if hit is not None and hit[0] is transform:
        return hit[1]
    gid = _coefficient_groups(transform, pooling)
    gid.setflags(write=False)
    if len(_GROUPS) >= 32:
        _GROUPS.pop(next(iter(_GROUPS)))
    _GROUPS[key] = (transform, gid)
    return gid


def _coefficient_groups(transform: Any, pooling: str) -> np.ndarray:
    """Group index (ncoef,) of every coefficient for ``pooling`` (coefficient|wedge|scale|global).

    ``"wedge"``: one group per direction of a scale, i.e. both real halves of a complex curvelet wedge
    (issue 18: they sample the same frequencies; pooled together, ``C^T diag(v) C`` is a Fourier
    multiplier, :meth:`landimg.transform.curvelet.Curvelet.direction_spectra`). ``"local"``: the same groups
    (the background variances are then pooled locally within them, :func:`pool_local`).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    n = int(transform.ncoef)
    if pooling == "coefficient":
        return np.arange(n)
    if pooling == "global":
        return np.zeros(n, dtype=np.int64)
    gid = np.full(n, -1, dtype=np.int64)
    ids = _direction_ids(transform) if pooling in ("wedge", "local") else None
    for w, wedge in enumerate(transform.wedges):
        gid[wedge.slice] = ids[w] if ids is not None else int(wedge.scale)
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
    c = transform.forward(rng.standard_normal((16,) + transform_shape(transform)))
    gid = coefficient_groups(transform, "wedge")
    sums = np.bincount(gid, weights=np.mean(c**2, axis=0))
    return (sums / np.bincount(gid))[gid]


def image_offset(
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


def embed(images: np.ndarray, tshape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Place (..., ny, nx) images into zero (..., Ty, Tx) images at ``offset``."""
    ny, nx = images.shape[-2:]
    if (ny, nx) == tshape:
        return images
    oy, ox = offset
    out = np.zeros(images.shape[:-2] + tshape)
    out[..., oy : oy + ny, ox : ox + nx] = images
    return out


def extract(images: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
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


def coefficient_stats(
    transform: Any, s_b: np.ndarray, err: Any, pooling: str, scale_weights: Sequence[float] | None,
    nsamples: int, seed: int, offset: tuple[int, int], frame: Any = None,
) -> CoefficientStats:  # fmt: skip
    """The observation-error variance per coefficient ``s_o`` of the error model ``err``
    (:class:`~landimg.da.obs_error.ObsErrorModel`; ``nsamples``, ``seed``: its Monte-Carlo estimate), pooled
    like ``s_b`` (ncoef,), and the gain ``w s_b / (s_b + s_o)`` (``w``: ``scale_weights`` per scale, the
    gain then clipped to [0, 1]; 0 where ``s_o`` is infinite). ``offset``: the image in the transform
    domain; ``frame``: the spectral frame of the transform (or None)."""
    gid = coefficient_groups(transform, pooling)
    scale = coefficient_scales(transform)
    s_o = err.coefficient_variance(
        transform, nsamples, seed, pooled=pooling != "coefficient", offset=offset, frame=frame
    )
    s_o = pool(s_o, gid)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(s_b + s_o > 0, s_b / (s_b + s_o), 0.0)
        gain = np.where(np.isinf(s_o), 0.0, gain)
    if scale_weights is not None:
        w = np.asarray(scale_weights, dtype=np.float64)
        if w.size <= scale.max():
            raise ValueError(f"scale_weights needs one weight per scale ({scale.max() + 1}), got {w.size}")
        gain = np.clip(gain * w[scale], 0.0, 1.0)
    return CoefficientStats(s_b=s_b, s_o=s_o, gain=gain, scale=scale)


class _CoverageKey:
    """Hashable cache key: the transform (by its parameters when it has them, ``Curvelet._plan_key`` and
    FFT backend: equal transforms give equal probe coefficients, so each method's own transform object of
    the same grid shares one estimate; else by identity, kept alive), the padded mask, the probes."""

    def __init__(self, transform: Any, land_t: np.ndarray, nsamples: int) -> None:
        self.transform, self.land_t, self.nsamples = transform, land_t, nsamples
        plan_key = getattr(transform, "_plan_key", None)
        ident = (type(transform).__name__, plan_key(), getattr(transform, "backend", None)) if callable(plan_key) else id(transform)
        self._key = (ident, land_t.shape, land_t.tobytes(), nsamples)

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
    tshape = transform_shape(transform)
    rng = np.random.Generator(np.random.PCG64(_COVERAGE_SEED))
    e_land = np.zeros(int(transform.ncoef))
    e_off = np.zeros(int(transform.ncoef))
    batch_land, batch_off = np.empty_like(e_land), np.empty_like(e_off)
    for b0 in range(0, nsamples, batch):
        z = rng.standard_normal((min(batch, nsamples - b0),) + tshape)
        # one probe's coefficients at a time (every rank builds this; a batch of them is tens of MB at
        # 1 deg), summed over the batch in probe order as np.sum(c**2, axis=0) of the batch did (same bits)
        for i in range(z.shape[0]):
            for part, acc in ((z[i] * land_t, batch_land), (z[i] * ~land_t, batch_off)):
                c2 = np.square(transform.forward(part))
                if i == 0:
                    acc[:] = c2
                else:
                    acc += c2
        e_land += batch_land
        e_off += batch_off
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
    if land_t.shape != transform_shape(transform):
        raise ValueError(
            f"land_t must have the transform shape {transform_shape(transform)}, got {land_t.shape}"
        )
    if nsamples < 1:
        raise ValueError(f"nsamples must be >= 1, got {nsamples}")
    return _cached_coverage(_CoverageKey(transform, land_t, int(nsamples)))


_SELECTIONS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _interior_selection(gid: np.ndarray, cov: np.ndarray, full: float, min_fraction: float,
                        min_count: int) -> np.ndarray:  # fmt: skip
    """The coefficients :func:`pool_interior` pools (bool (ncoef,)): they depend only on the groups and the
    coverage (fixed per transform and land mask), so for read-only (cached) inputs they are kept."""
    key = (id(gid), id(cov), float(full), float(min_fraction), int(min_count))
    hit = _SELECTIONS.get(key)
    if hit is not None and hit[0] is gid and hit[1] is cov:
        return hit[2]
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
    if not gid.flags.writeable and not cov.flags.writeable:
        if len(_SELECTIONS) >= 8:
            _SELECTIONS.pop(next(iter(_SELECTIONS)))
        _SELECTIONS[key] = (gid, cov, sel)
    return sel


def pool_interior(
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
    sel = _interior_selection(gid, cov, full, min_fraction, min_count)
    num = np.bincount(gid, weights=np.where(sel, values, 0.0), minlength=ngroup)
    den = np.bincount(gid, weights=np.where(sel, cov, 0.0), minlength=ngroup)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.where(den > 0, num / den, 0.0)
    return pooled[gid]


def pool(values: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Mean of ``values`` within each group, broadcast back to (ncoef,)."""
    if gid.size and gid[-1] == gid.size - 1:  # one group per coefficient (groups are sorted)
        return values
    sums = np.bincount(gid, weights=values)
    return (sums / np.bincount(gid))[gid]


def pool_local(
    values: np.ndarray, transform: Any, cov: np.ndarray, radius: float, fallback: np.ndarray
) -> np.ndarray:
    """Per-coefficient variances pooled locally within each direction (Pannekoucke, Berre & Desroziers 2007).

    The coefficients of a wedge lie on its ``L1 x L2`` grid (wrapped, so periodic), which tiles the domain:
    neighbours on it are neighbours in space. Per direction (both real halves of a complex wedge together)
    the variances and the land coverages ``cov`` (:func:`land_coverage`) are smoothed by a Gaussian of
    ``radius`` grid steps (periodic) and divided, ``s_b = G(values) / G(cov)``: a coverage-normalised local
    mean (unbiased for white anomalies, like :func:`pool_interior`). Where the smoothed coverage is below
    5 % (the ocean, the padding) ``fallback`` (ncoef,) is kept. A variance that varies in space, as in
    :mod:`landimg.da.curvelet_background`'s ``variance_scale``, but per direction and scale.
    """
    from scipy.ndimage import gaussian_filter

    out = np.array(fallback, dtype=np.float64, copy=True)
    groups: dict[int, list[Any]] = {}
    for w, d in enumerate(_direction_ids(transform)):
        groups.setdefault(d, []).append(transform.wedges[w])
    for wedges in groups.values():
        shape = tuple(getattr(wedges[0], "shape", ()))
        if len(shape) != 2 or any(tuple(w.shape) != shape for w in wedges):
            continue  # not a grid (or halves of different grids): keep the fallback
        v = sum(values[w.slice].reshape(shape) for w in wedges)
        c = sum(cov[w.slice].reshape(shape) for w in wedges)
        sv = gaussian_filter(v, radius, mode="wrap")
        sc = gaussian_filter(c, radius, mode="wrap")
        ok = sc > 0.05 * len(wedges)
        for w in wedges:
            out[w.slice] = np.where(ok, sv / np.where(ok, sc, 1.0), fallback[w.slice].reshape(shape)).ravel()
    return out
