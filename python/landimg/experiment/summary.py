"""The end of a run: the summary (``summary.json``), its table, and the figures."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from landimg import __version__ as _landimg_version
from landimg.experiment import metrics as _metrics
from landimg.experiment.config import Config, to_dict
from landimg.experiment.figure import available as figure_available
from landimg.experiment.history import LAYER_NAMES, OBS_SPACE, SCORES, History
from landimg.experiment.timing import Timings

__all__ = ["PRIMARY_SCORE", "format_table", "primary_scores", "summarize", "write_plots"]


#: The primary score of every study: where it lives in ``summary.json`` (``<m>`` = the method).
PRIMARY_SCORE = "methods.<m>.0-10cm.background.ubrmse_time"


def _layer_scores(daily: np.ndarray, temporal: dict[str, Any]) -> dict[str, Any]:
    """Period means of the daily spatial scores ``daily`` (nd, 3), the days already cut to the scored
    period, and the period's temporal scores (:func:`landimg.experiment.history.period_time_scores`)."""
    out: dict[str, Any] = {k: float(np.nanmean(daily[:, j])) for j, k in enumerate(SCORES)}
    out.update(temporal)
    return out


def _method_entry(h: Any, temporal: dict[str, list[dict[str, Any]]], station_obs: np.ndarray, first: int) -> dict[str, Any]:
    """One method's entry of ``summary.json``; period means over days ``first`` (0-based) to the end;
    ``temporal[kind][layer]``: the temporal scores of the analysis and the background."""
    entry: dict[str, Any] = {}
    for i, ln in enumerate(LAYER_NAMES):
        entry[ln] = _layer_scores(h.scores[first:, i], temporal["analysis"][i])
        entry[ln]["background"] = _layer_scores(h.scores_background[first:, i], temporal["background"][i])
    entry["stations"] = _metrics.time_scores(h.station[first:], station_obs[first:], _metrics.MIN_STATION_DAYS)
    entry["clipped_water_kg_m2"] = float(np.sum(h.clipped_water))  # the whole run: a water budget
    obs = {}
    for j, k in enumerate(OBS_SPACE):  # means over the analyses (days) that had observations
        col = h.obs_space[first:, j]
        obs[k] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
    entry["obs_space"] = obs
    entry["rank_counts"] = [int(c) for c in h.rank_counts[first:].sum(axis=0)]
    return entry


def primary_scores(summary: dict[str, Any]) -> dict[str, float]:
    """The primary score (:data:`PRIMARY_SCORE`, background ``ubrmse_time`` at 0-10 cm) per method."""
    return {m: float(e["0-10cm"]["background"]["ubrmse_time"]) for m, e in summary["methods"].items()}


def summarize(
    cfg: Config, history: History, methods: list[str], wall: float, ranks: int,
    temporal: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, Any]:  # fmt: skip
    """The summary dict (shape of ``summary.json``) from a run's small daily record and the temporal scores
    of its period (``temporal[method][kind][layer]``, :func:`landimg.experiment.history.period_time_scores`
    of the running per-pixel sums).

    Every period mean is over days ``experiment.score_from_day`` .. ``experiment.days`` (``scored_days``).
    """
    first = cfg.experiment.score_from_day - 1
    out: dict[str, Any] = {
        "methods": {m: _method_entry(history[m], temporal[m], history.station_obs, first) for m in methods}
    }
    out["scored_days"] = [first + 1, history.days]
    out["primary_score"] = {"where": PRIMARY_SCORE, "values": primary_scores(out)}
    out["wall_seconds"] = float(wall)
    out["ranks"] = int(ranks)
    out["landimg_version"] = _landimg_version
    out["obs_per_day"] = float(np.mean(history.n_obs[first:]))
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
    """The end-of-run table: one row per method and layer (analysis scores, then the background's
    temporal ubRMSE: at 0-10 cm the primary score)."""
    a, b = summary.get("scored_days", [1, None]), "background"
    lines = [
        f"{'':<25}{'analysis':-^50}  {b:-^16}",
        f"{'method':<15}{'layer':<10}{'spatial_corr':>13}{'ubrmse_sp':>10}{'bias':>9}"
        f"{'ubrmse_t':>9}{'time_r':>9}  {'ubrmse_t':>8}{'time_r':>8}{'station_r':>11}",
    ]
    for m, entry in summary["methods"].items():
        for i, ln in enumerate(LAYER_NAMES):
            sc, bg = entry[ln], entry[ln]["background"]
            st = f"{entry['stations']['time_corr']:>11.3f}" if i == 0 else ""
            lines.append(
                f"{m:<15}{ln:<10}{sc['spatial_corr']:>13.3f}{sc['ubrmse_spatial']:>10.4f}{sc['bias']:>9.4f}"
                f"{sc['ubrmse_time']:>9.4f}{sc['time_corr']:>9.3f}  {bg['ubrmse_time']:>8.4f}{bg['time_corr']:>8.3f}{st}"
            )
    lines.append(
        f"days {a[0]}-{a[1]} scored; primary score: background ubrmse_t at 0-10cm (m3/m3); "
        f"wall {summary['wall_seconds']:.1f} s on {summary['ranks']} rank(s); "
        f"{summary['obs_per_day']:.0f} observations per day"
    )
    return "\n".join(lines)


def write_plots(
    cfg: Config, grid: Any, out: Path, history: History, last: Any, timings: Timings | None = None,
    figures: Sequence[str] | None = None,
) -> None:  # fmt: skip
    """The figures, as ``cfg.output.plots`` asks, from the small record and the last day's images ``last``
    (:class:`~landimg.experiment.history.DayImages`); counted to the ``"plots"`` part of ``timings``.
    ``figures``: only these (:data:`landimg.experiment.plot.FIGURES`, default all; the ranks of a run share
    them out). (``analysis.nc`` and ``metrics.nc`` are appended day by day: :mod:`landimg.experiment.ncfiles`.)"""
    if not cfg.output.plots or (figures is not None and not figures):
        return
    if figure_available():
        from landimg.experiment import plot

        with nullcontext() if timings is None else timings("plots"):
            plot.experiment_plots(cfg, grid, out, history, last, plot.FIGURES if figures is None else figures)
    else:
        warnings.warn(
            "output.plots = true but matplotlib is not installed: no plots written "
            "(pip install matplotlib, or set output.plots = false)",
            stacklevel=2,
        )
