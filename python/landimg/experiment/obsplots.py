"""Figures of the observation-space diagnostics: spread versus error, and rank histograms.

Inputs are the per-method daily arrays the cycle records (``obs_space`` rows with the fields of
:data:`landimg.da.obs_diagnostics.ObsSpaceStats` and ``rank_counts``); matplotlib is optional as for
:mod:`landimg.experiment.figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from landimg.experiment.figure import margins, save, subplots

__all__ = ["plot_rank_histograms", "plot_spread_error"]

_UNITS = "m$^3$/m$^3$"


def plot_spread_error(
    path: str | Path, days: np.ndarray, series: Mapping[str, Mapping[str, np.ndarray]]
) -> Path:
    """Daily rms(O-B) against the expected sqrt(spread_b^2 + sigma_o^2), one panel per method.

    Parameters
    ----------
    path : path of the PNG
    days : ndarray (nd,)
        Day numbers (1-based).
    series : mapping method -> {"omb_rms", "spread_b", "obs_err", "oma_rms", "spread_a"}: arrays (nd,), m3/m3
    """
    names = list(series)
    fig, axes = subplots(1, len(names), (4.2 * len(names), 3.4), sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        s = series[name]
        expected = np.sqrt(np.asarray(s["spread_b"]) ** 2 + np.asarray(s["obs_err"]) ** 2)
        ax.plot(days, s["omb_rms"], "k-", label="rms(O-B)")
        ax.plot(days, expected, "k--", label=r"$\sqrt{\sigma_b^2+\sigma_o^2}$")
        ax.plot(days, s["spread_b"], "C0-", label="background spread")
        ax.plot(days, s["oma_rms"], "C3-", label="rms(O-A)")
        ax.plot(days, s["spread_a"], "C3:", label="analysis spread")
        ax.set_title(name)
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"at the observations ({_UNITS})")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    margins(fig, 0.85, 0.15, 0.55, 0.55, 0.08, 0.2)
    fig.suptitle("Spread versus error in observation space (consistent ensemble: solid = dashed black)")
    return save(fig, Path(path))


def plot_rank_histograms(path: str | Path, counts: Mapping[str, Sequence[int]]) -> Path:
    """Rank histograms (summed over the analyses) per method; flat = reliable, U = under-dispersed.

    Parameters
    ----------
    path : path of the PNG
    counts : mapping method -> counts (nmem + 1,)
    """
    names = list(counts)
    fig, axes = subplots(1, len(names), (4.2 * len(names), 3.2), sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        c = np.asarray(counts[name], dtype=float)
        freq = c / c.sum() if c.sum() > 0 else c
        ax.bar(np.arange(c.size), freq, color="C0", width=0.9)
        ax.axhline(1.0 / c.size, color="k", ls="--", lw=1, label="flat")
        ax.set_title(name)
        ax.set_xlabel("rank of the observation among the members")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("relative frequency (-)")
    axes[0][0].legend(fontsize=7)
    margins(fig, 0.75, 0.15, 0.55, 0.55, 0.08, 0.2)
    fig.suptitle("Rank histograms of the background at the observations (with observation-error noise)")
    return save(fig, Path(path))
