"""Verification metrics against a reference (the nature run), with the paper's definitions.

For a field x (the estimate, e.g. the ensemble-mean soil moisture of a layer) and the reference r over
the N valid land cells of one day:

* bias = mean(x - r)
* RMSE = sqrt(mean((x - r)^2))
* ubRMSE = sqrt(RMSE^2 - bias^2)  (the unbiased RMSE, i.e. the standard deviation of x - r)
* spatial correlation = Pearson correlation of x and r over the cells

These daily values are averaged over the assimilation period. At stations the time correlation is the
Pearson correlation of the daily series of the estimate and the station, averaged over stations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LAYERS", "bias", "layer_name", "pearson", "rmse", "spatial_scores", "time_corr", "ubrmse"]

#: Verification layers (top, bottom) in m, as in the paper (GLDAS/Noah layers).
LAYERS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.4), (0.4, 1.0))


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
    """``{"spatial_corr", "ubrmse", "bias"}`` of one field against the reference."""
    return {"spatial_corr": pearson(x, r, mask), "ubrmse": ubrmse(x, r, mask), "bias": bias(x, r, mask)}


def time_corr(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Time correlation per station.

    Parameters
    ----------
    x, r : ndarray (ntime, nstation)
        Estimate and station series; NaN marks missing values (pairs with a NaN are skipped).

    Returns
    -------
    ndarray (nstation,)
        Pearson correlation of each station's series (NaN when fewer than 3 valid pairs or constant).
    """
    x, r = np.asarray(x, dtype=float), np.asarray(r, dtype=float)
    if x.shape != r.shape or x.ndim != 2:
        raise ValueError(f"x and r must both be (ntime, nstation), got {x.shape} and {r.shape}")
    ok = np.isfinite(x) & np.isfinite(r)
    n = ok.sum(axis=0)
    xz, rz = np.where(ok, x, 0.0), np.where(ok, r, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm, rm = xz.sum(0) / n, rz.sum(0) / n
        xa, ra = np.where(ok, x - xm, 0.0), np.where(ok, r - rm, 0.0)
        den = np.sqrt((xa * xa).sum(0) * (ra * ra).sum(0))
        c = (xa * ra).sum(0) / den
    c[(n < 3) | ~(den > 0)] = np.nan
    return c
