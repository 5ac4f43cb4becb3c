"""Observation-space diagnostics of an analysis: innovations, residuals, spread and rank histograms.

At the usable observations ``y_p`` (error std ``sigma_p``) of one analysis, with background members
``x_i^b`` and analysis members ``x_i^a`` seen through the observation operator (the observed-layer image):

* ``O-B = y - mean(x^b)`` and ``O-A = y - mean(x^a)`` (mean and rms over the observations);
* ensemble spread at the observations, ``sqrt(mean_p var_i(x_i))`` (background and analysis);
* the consistency ratio ``rms(O-B) / sqrt(mean_p (var_b + sigma^2))`` (1 for a well-dispersed ensemble
  and a correct ``R``; Desroziers et al. 2005);
* the rank of each observation among the background members perturbed by draws of the observation error
  (Hamill 2001): a flat histogram of ``nmem + 1`` bins for a reliable ensemble, U-shaped when
  under-dispersed, humped when over-dispersed, sloped when biased.

All sums run over pixels of arrays that are identical on every rank (gathered members), so the results
are reproducible on any number of ranks. The rank-histogram noise comes from a generator the caller seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ObsSpaceStats", "obs_space_stats", "rank_histogram"]


@dataclass(frozen=True)
class ObsSpaceStats:
    """Observation-space statistics of one analysis (units of the observations, e.g. m3/m3).

    Attributes
    ----------
    n_obs : int
        Usable observations.
    omb_mean, omb_rms : float
        Mean and rms of observation minus background mean.
    oma_mean, oma_rms : float
        Mean and rms of observation minus analysis mean.
    spread_b, spread_a : float
        Ensemble spread at the observations (rms over observations of the member std), background / analysis.
    obs_err : float
        rms of the observation error std over the observations.
    consistency : float
        ``omb_rms / sqrt(spread_b^2 + obs_err^2)`` (1 when spread and ``R`` explain the innovations).
    rank_counts : ndarray of int, (nmem + 1,)
        Rank histogram of the observations among the noise-perturbed background members.
    """

    n_obs: int
    omb_mean: float
    omb_rms: float
    oma_mean: float
    oma_rms: float
    spread_b: float
    spread_a: float
    obs_err: float
    consistency: float
    rank_counts: np.ndarray

    def as_dict(self) -> dict[str, float | list[int]]:
        """Plain-Python dict (JSON-ready)."""
        out: dict[str, float | list[int]] = {
            k: float(getattr(self, k))
            for k in ("omb_mean", "omb_rms", "oma_mean", "oma_rms", "spread_b", "spread_a", "obs_err",
                      "consistency")
        }  # fmt: skip
        out["n_obs"] = int(self.n_obs)
        out["rank_counts"] = [int(c) for c in self.rank_counts]
        return out


def rank_histogram(
    members: np.ndarray, obs: np.ndarray, obs_std: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Counts of the rank of every observation among its noise-perturbed ensemble values, (nmem + 1,).

    Parameters
    ----------
    members : ndarray (nmem, nobs)
        Ensemble values at the observations.
    obs : ndarray (nobs,)
    obs_std : ndarray (nobs,)
        Observation error std; each member value gets an independent N(0, sigma^2) draw (Hamill 2001).
    rng : Generator
        Source of the noise (seed it identically on every rank).

    Returns
    -------
    ndarray of int64, (nmem + 1,)
        ``counts[k]``: observations with exactly ``k`` perturbed members below them (ties split evenly
        by counting half of the equal members, rounded down).
    """
    members = np.asarray(members, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if members.ndim != 2 or members.shape[1] != obs.shape[0]:
        raise ValueError(f"members must be (nmem, nobs) with nobs = {obs.shape[0]}, got {members.shape}")
    nmem = members.shape[0]
    pert = members + np.asarray(obs_std, dtype=np.float64) * rng.standard_normal(members.shape)
    below = np.sum(pert < obs, axis=0) + np.sum(pert == obs, axis=0) // 2
    return np.bincount(below, minlength=nmem + 1).astype(np.int64)


def obs_space_stats(
    background: np.ndarray,
    analysis: np.ndarray,
    obs: np.ndarray,
    obs_std: float | np.ndarray,
    valid: np.ndarray | None = None,
    *,
    rng: np.random.Generator | None = None,
) -> ObsSpaceStats:
    """Observation-space statistics of one analysis.

    Parameters
    ----------
    background, analysis : ndarray (nmem, ny, nx)
        All members (gathered) seen through the observation operator; NaN off land.
    obs : ndarray (ny, nx)
        Observation image, NaN where missing.
    obs_std : float or ndarray (ny, nx)
        Observation error std.
    valid : ndarray of bool (ny, nx), optional
        Observations that were used (default: finite observation, finite members, finite positive std).
    rng : Generator, optional
        Noise for the rank histogram (default: a fixed seed, identical on every rank).

    Returns
    -------
    ObsSpaceStats
        NaN statistics and zero counts when no observation is usable.
    """
    background = np.asarray(background, dtype=np.float64)
    analysis = np.asarray(analysis, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if background.ndim != 3 or background.shape != analysis.shape or background.shape[1:] != obs.shape:
        raise ValueError(
            f"background/analysis must both be (nmem, ny, nx) with (ny, nx) = {obs.shape}, got "
            f"{background.shape} and {analysis.shape}"
        )
    nmem = background.shape[0]
    if nmem < 2:
        raise ValueError(f"need at least 2 members, got {nmem}")
    std = np.broadcast_to(np.asarray(obs_std, dtype=np.float64), obs.shape)
    ok = np.isfinite(obs) & np.isfinite(std) & np.all(np.isfinite(background), axis=0)
    ok &= np.all(np.isfinite(analysis), axis=0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    n = int(ok.sum())
    if n == 0:
        nan = float("nan")
        return ObsSpaceStats(0, nan, nan, nan, nan, nan, nan, nan, nan, np.zeros(nmem + 1, np.int64))
    y, sig = obs[ok], std[ok]
    xb, xa = background[:, ok], analysis[:, ok]
    omb, oma = y - xb.mean(axis=0), y - xa.mean(axis=0)
    var_b, var_a = xb.var(axis=0, ddof=1), xa.var(axis=0, ddof=1)
    spread_b, obs_err = float(np.sqrt(np.mean(var_b))), float(np.sqrt(np.mean(sig**2)))
    omb_rms = float(np.sqrt(np.mean(omb**2)))
    tot = np.sqrt(spread_b**2 + obs_err**2)
    if rng is None:
        rng = np.random.Generator(np.random.PCG64(0x0B5D1A6))
    return ObsSpaceStats(
        n_obs=n, omb_mean=float(omb.mean()), omb_rms=omb_rms, oma_mean=float(oma.mean()),
        oma_rms=float(np.sqrt(np.mean(oma**2))), spread_b=spread_b, spread_a=float(np.sqrt(np.mean(var_a))),
        obs_err=obs_err, consistency=omb_rms / tot if tot > 0 else float("nan"),
        rank_counts=rank_histogram(xb, y, sig, rng),
    )  # fmt: skip
