"""The experiment's CF-netCDF files, ``analysis.nc`` and ``metrics.nc``, from its :class:`History`."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from landimg.experiment.history import LAYERS, MAX_SCALES, OBS_SPACE, SCORES, History
from landimg.experiment.output import write_netcdf

__all__ = ["verification", "write_experiment_netcdf"]

_SM_LAYER = {"standard_name": "volume_fraction_of_condensed_water_in_soil", "units": "m3 m-3"}
_SM = {**_SM_LAYER, "cell_methods": "depth: mean (thickness-weighted over the layer)"}
_UNITS = {"spatial_corr": "1", "ubrmse_spatial": "m3 m-3", "bias": "m3 m-3"}
_DOC = {"spatial_corr": "spatial correlation", "ubrmse_spatial": "spatial ubRMSE (standard deviation of the error field)", "bias": "bias"}
_IMG3, _IMG4 = ("time", "lat", "lon"), ("time", "depth", "lat", "lon")


def _time_depth(start: str, ndays: int) -> dict[str, tuple]:
    """The time, depth and depth_bnds variables shared by both files."""
    depth = np.array([0.5 * (a + b) for a, b in LAYERS])
    return {
        "time": (("time",), np.arange(1, ndays + 1, dtype=float),
                 {"standard_name": "time", "units": f"days since {start} 00:00:00", "calendar": "standard", "axis": "T"}),
        "depth": (("depth",), depth, {"standard_name": "depth", "units": "m", "positive": "down", "axis": "Z",
                                      "bounds": "depth_bnds", "long_name": "centre of the verification layer"}),
        "depth_bnds": (("depth", "nv"), np.array(LAYERS, dtype=float), {"units": "m"}),
    }  # fmt: skip


def _lat_lon(grid: Any) -> dict[str, tuple]:
    """lat/lon with bounds and the land mask."""
    half = grid.res / 2.0
    out = {}
    for name, values, axis, units in (
        ("lat", grid.lat, "Y", "degrees_north"),
        ("lon", grid.lon, "X", "degrees_east"),
    ):
        std = "latitude" if name == "lat" else "longitude"
        out[name] = (
            (name,),
            values,
            {"standard_name": std, "units": units, "axis": axis, "bounds": f"{name}_bnds"},
        )
        out[f"{name}_bnds"] = ((name, "nv"), np.stack([values - half, values + half], 1), {"units": units})
    out["land"] = (("lat", "lon"), grid.land.astype(np.int8),
                   {"long_name": "land mask", "flag_values": np.array([0, 1], np.int8), "flag_meanings": "ocean land"})  # fmt: skip
    return out


def verification(cfg: Any) -> tuple[str, dict[str, str]]:
    """What the spatial scores compare with: (short name, attributes of ``sm_truth``).

    The nature run, or the reference product of ``[reference]`` named with its description and files.
    """
    ref = cfg.reference
    if not ref.product:
        return "nature run", {"long_name": "nature run soil moisture"}
    from landimg.data.products import get_product

    description = get_product(ref.product).description
    attrs = {
        "long_name": f"reference soil moisture: {ref.product} ({description})",
        "source": f"{ref.product} files {ref.files}",
    }
    return f"reference {ref.product}", attrs


def _analysis_vars(history: History, layer: str, truth: dict[str, str]) -> dict[str, tuple]:
    """The verification (nature run or reference), observations and per method mean, spread and increment."""
    var = {
        "sm_truth": (_IMG4, history.truth, {**_SM, **truth}),
        "sm_obs": (
            _IMG3,
            history.obs,
            {**_SM_LAYER, "long_name": f"satellite retrievals of the {layer} layer"},
        ),
    }
    for m, h in history.methods.items():
        var[f"sm_mean_{m}"] = (_IMG4, h.mean, {**_SM, "long_name": f"{m} ensemble mean"})
        var[f"sm_background_{m}"] = (_IMG4, h.mean_background,
                                     {**_SM, "long_name": f"{m} ensemble mean of the forecast just before the day's last analysis"})  # fmt: skip
        var[f"sm_spread_{m}"] = (
            _IMG4,
            h.spread,
            {"units": "m3 m-3", "long_name": f"{m} ensemble standard deviation"},
        )
        var[f"increment_{m}"] = (_IMG3, h.increment,
                                 {"units": "m3 m-3", "long_name": f"{m} ensemble-mean analysis increment of the {layer} layer"})  # fmt: skip
    return var


def _metrics_vars(history: History, stations: Any, versus: str = "nature run") -> dict[str, tuple]:
    """Station positions and readings, and per method the scores and station series."""
    slat, slon = stations.latlon()
    at_stations = {"coordinates": "station_lat station_lon"}
    var = {
        "station_lat": (("station",), slat, {"standard_name": "latitude", "units": "degrees_north"}),
        "station_lon": (("station",), slon, {"standard_name": "longitude", "units": "degrees_east"}),
        "station_sm": (("time", "station"), history.station_obs,
                       {**_SM_LAYER, "long_name": "station 0-10 cm soil moisture", **at_stations}),
    }  # fmt: skip
    for m, h in history.methods.items():
        for j, k in enumerate(SCORES):
            var[f"{k}_{m}"] = (
                ("time", "depth"),
                h.scores[:, :, j],
                {"units": _UNITS[k], "long_name": f"{m} daily {_DOC[k]} of the analysis vs the {versus}"},
            )
            var[f"{k}_background_{m}"] = (("time", "depth"), h.scores_background[:, :, j],
                                          {"units": _UNITS[k], "long_name": f"{m} daily {_DOC[k]} of the background vs the {versus}"})  # fmt: skip
        var[f"station_sm_{m}"] = (("time", "station"), h.station,
                                  {**_SM_LAYER, "long_name": f"{m} ensemble mean 0-10 cm at the stations", **at_stations})  # fmt: skip
        var.update(_analysis_diagnostics(m, h))
    return var


_OBS_SPACE_DOC = {
    "omb_mean": ("m3 m-3", "mean observation minus background ensemble mean at the observations"),
    "omb_rms": ("m3 m-3", "rms observation minus background ensemble mean"),
    "oma_mean": ("m3 m-3", "mean observation minus analysis ensemble mean"),
    "oma_rms": ("m3 m-3", "rms observation minus analysis ensemble mean"),
    "spread_b": ("m3 m-3", "background ensemble spread at the observations (rms of the member std, before inflation)"),
    "spread_a": ("m3 m-3", "analysis ensemble spread at the observations"),
    "obs_err": ("m3 m-3", "rms observation error std"),
    "consistency": ("1", "omb_rms / sqrt(spread_b^2 + obs_err^2)"),
    "n_obs": ("1", "usable observations"),
}


def _analysis_diagnostics(m: str, h: Any) -> dict[str, tuple]:
    """Per-analysis diagnostics of method ``m`` (the day's last analysis): observation space, inflation, gains."""
    var: dict[str, tuple] = {}
    for j, k in enumerate(OBS_SPACE):
        units, doc = _OBS_SPACE_DOC[k]
        var[f"{k}_{m}"] = (("time",), h.obs_space[:, j], {"units": units, "long_name": f"{m} {doc}"})
    var[f"rank_counts_{m}"] = (("time", "rank"), h.rank_counts,
                               {"units": "1", "long_name": f"{m} rank histogram of the observations among the background members perturbed by observation-error draws (Hamill 2001)"})  # fmt: skip
    var[f"inflation_{m}"] = (("time",), h.inflation, {"units": "1", "long_name": f"{m} anomaly inflation factor applied"})
    var[f"gain_per_scale_{m}"] = (("time", "scale"), h.gain_per_scale,
                                  {"units": "1", "long_name": f"{m} mean diagonal-form gain per curvelet scale, coarsest first"})  # fmt: skip
    var[f"inflation_per_scale_{m}"] = (("time", "scale"), h.inflation_per_scale,
                                       {"units": "1", "long_name": f"{m} anomaly inflation factor applied per curvelet scale, coarsest first"})  # fmt: skip
    return var


def write_experiment_netcdf(
    out: str | Path, cfg: Any, grid: Any, stations: Any, history: History
) -> list[Path]:
    """Write the experiment's CF-netCDF files into ``out``; returns the paths written.

    ``analysis.nc``: daily (00 UTC, after the analysis) ensemble mean and spread per verification layer
    and method, the background ensemble mean (before the day's last analysis), the verification (nature
    run, or the reference product named in ``sm_truth``'s ``long_name`` and ``source``), the
    observations and the ensemble-mean increment of the observed layer.
    ``metrics.nc``: daily spatial correlation, spatial ubRMSE (``ubrmse_spatial_<m>``; the temporal
    ubRMSE per pixel is a period score of ``summary.json``) and bias per method and layer (analysis and
    background), the station series, and per method the observation-space diagnostics of the day's last
    analysis (O-B, O-A, spread at the observations, consistency ratio, rank histogram), the inflation
    factor, and the curvelet gain and inflation factor per scale.
    """
    from landimg import __version__

    out = Path(out)
    ndays, nl = history.truth.shape[0], len(LAYERS)
    common = _time_depth(cfg.experiment.start, ndays)
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    gattrs = {
        "title": "landimg soil-moisture assimilation experiment",
        "source": f"landimg {__version__}",
        "history": f"{created} created by landimg {__version__} (python -m landimg.cycle)",
        "domain": cfg.domain.preset,
        "members": cfg.ensemble.members,
    }
    layer = f"0-{cfg.analysis.obs_depth * 100:g} cm"
    dims = {"time": None, "depth": nl, "nv": 2, "lat": grid.shape[0], "lon": grid.shape[1]}
    p1, p2 = out / "analysis.nc", out / "metrics.nc"
    versus, truth = verification(cfg)
    write_netcdf(p1, dims, {**common, **_lat_lon(grid), **_analysis_vars(history, layer, truth)}, gattrs)
    nrank = next(iter(history.methods.values())).rank_counts.shape[1] if history.methods else 1
    mdims = {"time": None, "depth": nl, "nv": 2, "station": stations.n, "rank": nrank, "scale": MAX_SCALES}
    write_netcdf(p2, mdims, {**common, **_metrics_vars(history, stations, versus)}, gattrs)
    return [p1, p2]
