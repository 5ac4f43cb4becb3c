"""The end of a run: the summary (``summary.json``), its table, and the output files."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from landimg import __version__ as _landimg_version
from landimg.experiment import metrics as _metrics
from landimg.experiment.config import Config, to_dict
from landimg.experiment.history import LAYER_NAMES, OBS_SPACE, SCORES, History
from landimg.experiment.timing import Timings

__all__ = ["format_table", "summarize", "write_outputs"]


def _method_entry(h: Any, station_obs: np.ndarray) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for i, ln in enumerate(LAYER_NAMES):
        entry[ln] = {k: float(np.nanmean(h.scores[:, i, j])) for j, k in enumerate(SCORES)}
        entry[ln]["background"] = {
            k: float(np.nanmean(h.scores_background[:, i, j])) for j, k in enumerate(SCORES)
        }
    tc = _metrics.time_corr(h.station, station_obs)
    entry["stations"] = {
        "time_corr": float(np.nanmean(tc)) if np.isfinite(tc).any() else float("nan"),
        "n": int(np.isfinite(tc).sum()),
    }
    entry["clipped_water_kg_m2"] = float(np.sum(h.clipped_water))
    obs = {}
    for j, k in enumerate(OBS_SPACE):  # means over the analyses (days) that had observations
        col = h.obs_space[:, j]
        obs[k] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
    entry["obs_space"] = obs
    entry["rank_counts"] = [int(c) for c in h.rank_counts.sum(axis=0)]
    return entry


def summarize(cfg: Config, history: History, methods: list[str], wall: float, ranks: int) -> dict[str, Any]:
    """The summary dict (shape of ``summary.json``) from a run's history."""
    out: dict[str, Any] = {"methods": {m: _method_entry(history[m], history.station_obs) for m in methods}}
    out["wall_seconds"] = float(wall)
    out["ranks"] = int(ranks)
    out["landimg_version"] = _landimg_version
    out["obs_per_day"] = float(np.mean(history.n_obs))
    out["verification"] = {
        "spatial": f"reference product {cfg.reference.product}" if cfg.reference.product else "nature run",
        "stations": (
            f"{cfg.stations.product} {cfg.stations.depth_top:g}-{cfg.stations.depth_bottom:g} m"
            if cfg.stations.product
            else ("obs.stations_file" if cfg.obs.stations_file else "synthetic")
        ),
    }
    out["config"] = {k: v for k, v in to_dict(cfg).items() if k != "parallel"}  # the layout: not the identity
    return out


def format_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: one row per method and layer."""
    lines = [f"{'method':<15}{'layer':<10}{'spatial_corr':>13}{'ubRMSE':>10}{'bias':>10}{'station_r':>11}"]
    for m, entry in summary["methods"].items():
        for i, ln in enumerate(LAYER_NAMES):
            sc = entry[ln]
            st = f"{entry['stations']['time_corr']:>11.3f}" if i == 0 else ""
            lines.append(
                f"{m:<15}{ln:<10}{sc['spatial_corr']:>13.3f}{sc['ubrmse']:>10.4f}{sc['bias']:>10.4f}{st}"
            )
    lines.append(
        f"wall {summary['wall_seconds']:.1f} s on {summary['ranks']} rank(s); "
        f"{summary['obs_per_day']:.0f} observations per day"
    )
    return "\n".join(lines)


def write_outputs(
    cfg: Config, grid: Any, stations: Any, out: Path, history: History, timings: Timings | None = None
) -> None:
    """``analysis.nc``/``metrics.nc`` and the plots, as ``cfg.output`` asks (the plots counted to the
    ``"plots"`` part of ``timings`` when given)."""
    if cfg.output.netcdf:
        from landimg.experiment.ncfiles import write_experiment_netcdf

        write_experiment_netcdf(out, cfg, grid, stations, history)
    if cfg.output.plots:
        from landimg.experiment import plot

        if plot.available():
            with nullcontext() if timings is None else timings("plots"):
                plot.experiment_plots(cfg, grid, out, history)
