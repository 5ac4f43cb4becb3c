"""Verification metrics against a reference (the nature run, or a reference product).

Spatial scores of one day, for a field x (the estimate, e.g. the ensemble-mean soil moisture of a layer)
and the reference r over the N valid land cells of that day:

* bias = mean(x - r)
* RMSE = sqrt(mean((x - r)^2))
* ubRMSE (``ubrmse_spatial``) = sqrt(RMSE^2 - bias^2), the spatial standard deviation of x - r
* spatial correlation = Pearson correlation of x and r over the cells

Temporal scores (Entekhabi et al. 2010; the SMAP validation metrics), per pixel (or station) over the
scored days, then a plain mean over the pixels with at least :data:`MIN_DAYS` valid days (stations: at
least :data:`MIN_STATION_DAYS`):

* ``ubrmse_time`` = sqrt(mean((x - r - mean(x - r))^2)) over the pixel's days (ddof 0, as pytesmo's
  ``ubrmsd``): the error of the pixel's anomaly series, its own long-term bias removed;
* ``time_corr`` = Pearson correlation of the pixel's series of x and r.

The temporal scores are computed from running per-pixel sums (:class:`TimeSums`, one ``add`` per day,
centred co-moments updated as in Welford 1962), so a run that streams its days needs only six arrays of
the image's shape, never the history of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LAYERS", "MIN_DAYS", "MIN_STATION_DAYS", "TimeSums", "bias", "layer_name", "pearson", "pixel_mean", "rmse",
    "spatial_scores", "sums_scores", "time_corr", "time_scores", "ubrmse", "ubrmse_time",
]  # fmt: skip

#: Verification layers (top, bottom) in m, as in the paper (GLDAS/Noah layers).
LAYERS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.4), (0.4, 1.0))
#: Fewest valid days for a pixel's temporal scores to enter a period mean.
MIN_DAYS = 5
#: Fewest valid days for a station's (the station time correlation's rule before the pixel scores).
MIN_STATION_DAYS = 3


def layer_name(layer: tuple[float, float]) -> str:
    """``(0.0, 0.1)`` -> ``"0-10cm"``."""
    return f"{round(layer[0] * 100):d}-{round(layer[1] * 100):d}cm"


def _valid(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    x, r = np.asarray(x, dtype=float), np.asarray(r, dtype=float)
    if x.shape != r.shape:
        raise ValueError(f"estimate shape {x.shape} differs from reference shape {r.shape}")
    ok = np.isfinite(x) & np.isfinite(r)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != x.shape:
            raise ValueError(f"mask shape {mask.shape} differs from field shape {x.shape}")
        ok &= mask
    return x[ok], r[ok]


def pearson(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation over the cells where both are finite (and ``mask`` is True); NaN if undefined."""
    x, r = _valid(x, r, mask)
    if x.size < 2:
        return float("nan")
    xa, ra = x - x.mean(), r - r.mean()
    den = np.sqrt((xa * xa).sum() * (ra * ra).sum())
    return float((xa * ra).sum() / den) if den > 0 else float("nan")


def bias(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of x - r over valid cells (units of x)."""
    x, r = _valid(x, r, mask)
    return float(np.mean(x - r)) if x.size else float("nan")


def rmse(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square difference over valid cells."""
    x, r = _valid(x, r, mask)
    return float(np.sqrt(np.mean((x - r) ** 2))) if x.size else float("nan")


def ubrmse(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Unbiased RMSE sqrt(RMSE^2 - bias^2) over valid cells (clipped at 0 against round-off)."""
    x, r = _valid(x, r, mask)
    if not x.size:
        return float("nan")
    d = x - r
    return float(np.sqrt(max(np.mean(d * d) - np.mean(d) ** 2, 0.0)))


def spatial_scores(x: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """``{"spatial_corr", "ubrmse_spatial", "bias"}`` of one field against the reference."""
    return {
        "spatial_corr": pearson(x, r, mask), "ubrmse_spatial": ubrmse(x, r, mask), "bias": bias(x, r, mask),
    }  # fmt: skip


@dataclass
class TimeSums:
    """Running per-pixel sums of the daily pairs (estimate x, reference r) of a field of ``shape``.

    Centred co-moments (Welford 1962): ``n`` valid days, means ``mean_x``, ``mean_r`` and the sums of
    products of deviations ``cxx``, ``crr``, ``cxr``. A day adds to the pixels where both x and r are
    finite. Everything the temporal scores need; six float64 arrays and one count array.

    Attributes
    ----------
    n : int64 array (shape)
        Valid days per pixel.
    mean_x, mean_r : float64 array (shape)
        Means of x and r over those days (units of x).
    cxx, crr, cxr : float64 array (shape)
        sum (x - mean_x)^2, sum (r - mean_r)^2, sum (x - mean_x)(r - mean_r) over those days.
    """

    n: np.ndarray
    mean_x: np.ndarray
    mean_r: np.ndarray
    cxx: np.ndarray
    crr: np.ndarray
    cxr: np.ndarray

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> TimeSums:
        """No day added yet."""
        return cls(np.zeros(shape, np.int64), *(np.zeros(shape) for _ in range(5)))

    @classmethod
    def of_series(cls, x: np.ndarray, r: np.ndarray) -> TimeSums:
        """The sums of the series ``x``, ``r`` (ntime, *shape) (NaN = missing), added day by day."""
        x, r = np.asarray(x, dtype=float), np.asarray(r, dtype=float)
        if x.shape != r.shape or x.ndim < 1:
            raise ValueError(f"x and r must both be (ntime, ...), got {x.shape} and {r.shape}")
        sums = cls.zeros(x.shape[1:])
        for xt, rt in zip(x, r, strict=True):
            sums.add(xt, rt)
        return sums

    def add(self, x: np.ndarray, r: np.ndarray) -> None:
        """Add one day: ``x``, ``r`` of ``shape`` (NaN = missing; the pixel's sums are kept)."""
        x, r = np.asarray(x, dtype=float), np.asarray(r, dtype=float)
        if x.shape != self.n.shape or r.shape != self.n.shape:
            raise ValueError(f"x and r must have shape {self.n.shape}, got {x.shape} and {r.shape}")
        ok = np.isfinite(x) & np.isfinite(r)
        n = self.n + ok
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = np.where(ok, x - self.mean_x, 0.0)
            dr = np.where(ok, r - self.mean_r, 0.0)
            w = np.where(ok, 1.0 / np.maximum(n, 1), 0.0)
        self.mean_x = self.mean_x + w * dx
        self.mean_r = self.mean_r + w * dr
        ex = np.where(ok, x - self.mean_x, 0.0)  # deviation from the updated mean
        er = np.where(ok, r - self.mean_r, 0.0)
        self.cxx = self.cxx + dx * ex
        self.crr = self.crr + dr * er
        self.cxr = self.cxr + dx * er
        self.n = n

    def ubrmse(self, min_days: int = MIN_DAYS) -> np.ndarray:
        """Per-pixel ubRMSE of x against r (ddof 0), NaN where fewer than ``min_days`` valid days."""
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (self.cxx + self.crr - 2.0 * self.cxr) / self.n
        return np.where(self.n >= min_days, np.sqrt(np.maximum(var, 0.0)), np.nan)

    def corr(self, min_days: int = MIN_DAYS) -> np.ndarray:
        """Per-pixel Pearson correlation of x and r; NaN where fewer than ``min_days`` valid days or
        either series is constant."""
        den = np.sqrt(self.cxx * self.crr)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = self.cxr / den
        return np.where((self.n >= min_days) & (den > 0), c, np.nan)


def pixel_mean(values: np.ndarray) -> tuple[float, int]:
    """(plain mean of the finite ``values``, how many), NaN and 0 when none is finite."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    n = int(ok.sum())
    return (float(v[ok].mean()) if n else float("nan")), n


def ubrmse_time(x: np.ndarray, r: np.ndarray, min_days: int = MIN_DAYS) -> np.ndarray:
    """Per-pixel temporal ubRMSE (ddof 0) of the series ``x`` against ``r``.

    Parameters
    ----------
    x, r : ndarray (ntime, ...)
        Estimate and reference series (m3/m3); NaN marks a missing day (pairs with a NaN are skipped).
    min_days : int
        Fewest valid days for a score (NaN otherwise).

    Returns
    -------
    ndarray (...)
        ``sqrt(mean((d - mean d)^2))``, ``d = x - r`` over each pixel's valid days, m3/m3.
    """
    return TimeSums.of_series(x, r).ubrmse(min_days)


def time_scores(x: np.ndarray, r: np.ndarray, min_days: int = MIN_DAYS) -> dict[str, float | int]:
    """Period scores of series ``x``, ``r`` (ntime, ...): the plain means over pixels (or stations) of
    :func:`ubrmse_time` and :func:`time_corr` with their counts: ``{"ubrmse_time", "n_ubrmse_time",
    "time_corr", "n_time_corr"}``."""
    sums = TimeSums.of_series(x, r)
    return sums_scores(sums, min_days)


def sums_scores(sums: TimeSums, min_days: int = MIN_DAYS) -> dict[str, float | int]:
    """:func:`time_scores` from running sums."""
    ub, nub = pixel_mean(sums.ubrmse(min_days))
    tc, ntc = pixel_mean(sums.corr(min_days))
    return {"ubrmse_time": ub, "n_ubrmse_time": nub, "time_corr": tc, "n_time_corr": ntc}


def time_corr(x: np.ndarray, r: np.ndarray, min_days: int = 3) -> np.ndarray:
    """Temporal Pearson correlation per station (or pixel).

    Parameters
    ----------
    x, r : ndarray (ntime, ...)
        Estimate and reference series; NaN marks missing values (pairs with a NaN are skipped).
    min_days : int
        Fewest valid pairs for a correlation.

    Returns
    -------
    ndarray (...)
        Pearson correlation of each series (NaN when fewer than ``min_days`` valid pairs or constant).
    """
    x, r = np.asarray(x, dtype=float), np.asarray(r, dtype=float)
    if x.shape != r.shape or x.ndim < 1:
        raise ValueError(f"x and r must both be (ntime, ...), got {x.shape} and {r.shape}")
    return TimeSums.of_series(x, r).corr(min_days)
