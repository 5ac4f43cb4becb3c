"""Figures of an experiment (matplotlib, optional): maps, metric time series, increments by curvelet scale.

All functions write PNG files atomically and return the paths written; :func:`landimg.experiment.figure.available`
tells whether matplotlib can be imported (the cycle skips plots otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import make_dirs
from landimg.experiment import obsplots
from landimg.experiment.figure import margins, save, subplots

__all__ = [
    "FIGURES",
    "experiment_plots",
    "figures_of",
    "increment_by_scale",
    "plot_increment_scales",
    "plot_maps",
    "plot_metric_series",
]


_SM_UNITS = "m$^3$/m$^3$"  # volumetric soil moisture (and its increments)
_METRIC_LABELS = {
    "spatial_corr": "spatial correlation (-)",
    "ubrmse_spatial": f"spatial ubRMSE ({_SM_UNITS})",
    "bias": f"bias ({_SM_UNITS})",
}


def plot_maps(
    path: str | Path,
    lat: np.ndarray,
    lon: np.ndarray,
    fields: Mapping[str, np.ndarray],
    title: str,
    cmap: str = "YlGnBu",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Maps of volumetric soil moisture (m3/m3), one per entry of ``fields``, sharing one colour scale.

    ``fields`` are images (ny, nx) on ``lat`` (ny,) / ``lon`` (nx,) in degrees; NaN is left blank. At most
    three maps per row; unused panels are removed.
    """
    return _plot_maps(path, lat, lon, fields, title, cmap, vmin, vmax, f"soil moisture ({_SM_UNITS})")


def _plot_maps(path, lat, lon, fields, title, cmap, vmin, vmax, cbar_label: str) -> Path:
    """:func:`plot_maps` with a colour-bar label."""
    n = len(fields)
    ncols = max(min(n, 3), 1)
    nrows = max(int(np.ceil(n / ncols)), 1)
    aspect = (lon[-1] - lon[0]) / max(lat[-1] - lat[0], 1e-6)
    fig, axes = subplots(nrows, ncols, (4.2 * ncols, 4.2 * nrows / max(aspect, 0.5) + 0.9))
    margins(fig, 0.75, 0.2, 0.55, 0.8, 0.22, 0.45)
    vals = np.concatenate([np.asarray(f, float)[np.isfinite(f)] for f in fields.values()] or [np.zeros(1)])
    lo = np.percentile(vals, 2) if vmin is None and vals.size else vmin
    hi = np.percentile(vals, 98) if vmax is None and vals.size else vmax
    extent = (lon[0], lon[-1], lat[0], lat[-1])
    im = None
    used = axes.ravel()[:n]
    for k, (ax, (name, f)) in enumerate(zip(used, fields.items(), strict=True)):
        im = ax.imshow(
            np.ma.masked_invalid(f),
            origin="lower",
            extent=extent,
            cmap=cmap,
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
        )
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        row, col = divmod(k, ncols)
        if col == 0:
            ax.set_ylabel("latitude (degrees north)", fontsize=8)
        if row == nrows - 1 or k + ncols >= n:  # lowest map of its column
            ax.set_xlabel("longitude (degrees east)", fontsize=8)
    for ax in axes.ravel()[n:]:
        fig.delaxes(ax)
    fig.suptitle(title, fontsize=10)
    if im is not None:
        cb = fig.colorbar(im, ax=used.tolist(), shrink=0.8)
        cb.set_label(cbar_label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return save(fig, Path(path))


def plot_metric_series(
    path: str | Path,
    days: np.ndarray,
    series: Mapping[str, Mapping[str, np.ndarray]],
    layers: Sequence[str],
    metrics: Sequence[str] = ("spatial_corr", "ubrmse_spatial", "bias"),
    title: str | None = None,
) -> Path:
    """Metric time series: one panel per (metric, layer); ``series[method][f"{metric}/{layer}"]`` (ndays,).

    ``days`` (ndays,) are experiment days (integer ticks); ubRMSE and bias are in m3/m3. One legend of the
    methods, shared by all panels, sits below the panels; ``title`` (optional) above them.
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = subplots(len(metrics), len(layers), (4.0 * len(layers), 2.6 * len(metrics)))
    for i, metric in enumerate(metrics):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            for method, s in series.items():
                ax.plot(days, s[f"{metric}/{layer}"], label=method, lw=1.4, marker="o", ms=3)
            ax.set_title(f"{metric} {layer}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if j == 0:
                ax.set_ylabel(_METRIC_LABELS.get(metric, metric), fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("day", fontsize=8)
    margins(fig, 0.8, 0.15, 0.8, 0.3 if title is None else 0.6, 0.28, 0.5)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 4),
            fontsize=8, frameon=False,
        )  # fmt: skip
    return save(fig, Path(path))


def increment_by_scale(increment: np.ndarray, curvelet) -> np.ndarray:
    """Split an image into its curvelet scale components (they sum back to the image).

    Parameters
    ----------
    increment : ndarray (ny, nx)
        NaN is treated as 0.
    curvelet : Curvelet
        A transform of the image's shape (``scale_of_coef()``, ``forward``, ``inverse``).

    Returns
    -------
    ndarray (nscales, ny, nx)
    """
    x = np.nan_to_num(np.asarray(increment, dtype=float))
    c = curvelet.forward(x)
    scale = curvelet.scale_of_coef()
    parts = np.stack([np.where(scale == s, c, 0.0) for s in range(curvelet.nscales)])
    return curvelet.inverse(parts)


def plot_increment_scales(
    path: str | Path, lat: np.ndarray, lon: np.ndarray, parts: np.ndarray, land: np.ndarray, title: str
) -> Path:
    """Maps of an increment split by curvelet scale (``parts`` (nscales, ny, nx) from :func:`increment_by_scale`)."""
    fields = {"total": np.where(land, parts.sum(0), np.nan)}
    fields.update(
        {
            f"scale {s}" + (" (coarsest)" if s == 0 else ""): np.where(land, p, np.nan)
            for s, p in enumerate(parts)
        }
    )
    lim = float(np.nanmax(np.abs(fields["total"]))) if np.isfinite(fields["total"]).any() else 1.0
    return _plot_maps(path, lat, lon, fields, title, "RdBu", -lim, lim, f"increment ({_SM_UNITS})")


#: The experiment's figures, costliest first (CPU of a global 1 deg run: ~0.5, 0.35, 0.35, 0.17, 0.15 s).
FIGURES: tuple[str, ...] = ("maps", "metrics", "increment_by_scale", "spread_error", "rank_histograms")


def figures_of(rank: int, ranks: int) -> tuple[str, ...]:
    """The figures of :data:`FIGURES` that rank ``rank`` of ``ranks`` makes: dealt out costliest first in
    a snake order (0, 1, .., P-1, P-1, .., 0, ...), so the ranks' shares are about even; one rank: all."""
    order = [*range(ranks), *reversed(range(ranks))]
    return tuple(f for i, f in enumerate(FIGURES) if order[i % len(order)] == rank)


def experiment_plots(
    cfg: Any, grid: Any, out: Path, history: Any, last_day: Any, figures: Sequence[str] = FIGURES
) -> list[Path]:
    """The experiment's figures in ``out/plots``: last-day maps (``last_day``, the last day's
    :class:`~landimg.experiment.history.DayImages`), metric series, observation-space spread versus error
    and rank histograms (``history``, the small daily record), curvelet increment by scale; only those named
    in ``figures`` (:data:`FIGURES`; ranks share them out, :func:`figures_of`). Returns the files written."""
    from landimg.experiment.history import LAYER_NAMES, SCORES
    from landimg.experiment.ncfiles import verification

    unknown = sorted(set(figures) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figures {unknown}; expected some of {FIGURES}")
    pdir = make_dirs(out / "plots")
    last = cfg.experiment.days - 1
    versus, truth = verification(cfg)
    days = np.arange(1, cfg.experiment.days + 1)
    paths = []
    if "maps" in figures:
        name = "nature run (truth)" if versus == "nature run" else versus
        fields = {name: last_day.truth[0], "observations (last day)": last_day.obs}
        fields.update({m: last_day.mean[m][0] for m in history.methods})
        title = f"0-10 cm soil moisture (m3/m3), day {last + 1}"
        if versus != "nature run":
            title += f"; {truth['long_name']}"
        paths.append(plot_maps(pdir / "maps_0-10cm.png", grid.lat, grid.lon, fields, title))
    if "metrics" in figures:
        series = {
            m: {f"{k}/{ln}": h.scores[:, i, j] for i, ln in enumerate(LAYER_NAMES) for j, k in enumerate(SCORES)}
            for m, h in history.methods.items()
        }
        against = None if versus == "nature run" else f"scores against {truth['long_name']}"
        paths.append(plot_metric_series(pdir / "metrics.png", days, series, LAYER_NAMES, title=against))
    from landimg.experiment.history import OBS_SPACE

    if "spread_error" in figures:
        keys = ("omb_rms", "spread_b", "obs_err", "oma_rms", "spread_a")
        obs = {m: {k: h.obs_space[:, OBS_SPACE.index(k)] for k in keys} for m, h in history.methods.items()}
        paths.append(obsplots.plot_spread_error(pdir / "spread_error.png", days, obs))
    if "rank_histograms" in figures:
        paths.append(obsplots.plot_rank_histograms(
            pdir / "rank_histograms.png", {m: h.rank_counts.sum(axis=0) for m, h in history.methods.items()}
        ))  # fmt: skip
    if "increment_by_scale" not in figures or "curvelet_enkf" not in history.methods:
        return paths
    from landimg.transform.curvelet import Curvelet

    c = cfg.method["curvelet_enkf"]
    kw = {} if c.nscales is None else {"nscales": c.nscales}
    try:
        transform = Curvelet(grid.shape, nangles_coarse=c.nangles_coarse, finest=c.finest, **kw)
    except ValueError:
        return paths  # grid too small for a multi-scale split
    inc = last_day.increment["curvelet_enkf"].astype(float)
    parts = increment_by_scale(np.where(grid.land, inc, 0.0), transform)
    title = f"curvelet EnKF increment of the 0-{cfg.analysis.obs_depth * 100:.0f} cm layer by scale, day {last + 1}"
    paths.append(plot_increment_scales(pdir / "curvelet_increment_by_scale.png", grid.lat, grid.lon, parts,
                                       grid.land, title))  # fmt: skip
    return paths
