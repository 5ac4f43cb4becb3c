"""The experiment's CF-netCDF files, ``analysis.nc`` and ``metrics.nc``, appended day by day.

``analysis.nc``: daily (00 UTC, after the analysis) ensemble mean and spread per verification layer and
method, the background ensemble mean (before the day's last analysis), the verification (nature run, or
the reference product named in ``sm_truth``'s ``long_name`` and ``source``), the observations and the
ensemble-mean increment of the observed layer. ``metrics.nc``: daily spatial correlation, spatial
ubRMSE (``ubrmse_spatial_<m>``; the temporal ubRMSE per pixel is a period score of ``summary.json``) and
bias per method and layer (analysis and background), the station series, and per method the
observation-space diagnostics of the day's last analysis (O-B, O-A, spread at the observations,
consistency ratio, rank histogram), the inflation factor, and the curvelet gain and inflation factor per
scale.

Both files are created when the cycling starts (the static variables, and every daily variable with an
unlimited ``time`` dimension, one day per chunk for images, compressed) and rank 0 appends each day's
record once the day is done (:class:`ExperimentFiles`); nothing of earlier days is held in memory.

An append never modifies the file a reader sees. Each file has a hidden twin (``.analysis.nc.next``)
holding the days before the last; the day is appended to the twin (with the previous day, read back from
the file), the twin is fsync'ed and renamed over the file, and the former file (one day behind) becomes
the next twin. A kill or a full disk during an append leaves ``analysis.nc`` complete as of the day
before; each day is written twice, so the cost stays linear in the days. The restart records how many
days the files hold (``outputs_days``); a resumed run checks that the files hold them, rebuilds the twin
from the file, and appends from there (a day the files hold beyond the restart -- a run killed between
its append and its restart -- is rewritten with the same bits).
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import atomic_path, diagnose, replace_keeping
from landimg.experiment.history import LAYERS, MAX_SCALES, OBS_SPACE, SCORES, DayImages, History

__all__ = ["FILES", "ExperimentFiles", "verification"]

#: The experiment's netCDF files.
FILES = ("analysis.nc", "metrics.nc")
_SM_LAYER = {"standard_name": "volume_fraction_of_condensed_water_in_soil", "units": "m3 m-3"}
_SM = {**_SM_LAYER, "cell_methods": "depth: mean (thickness-weighted over the layer)"}
_UNITS = {"spatial_corr": "1", "ubrmse_spatial": "m3 m-3", "bias": "m3 m-3"}
_DOC = {"spatial_corr": "spatial correlation", "ubrmse_spatial": "spatial ubRMSE (standard deviation of the error field)", "bias": "bias"}
_IMG3, _IMG4 = ("time", "lat", "lon"), ("time", "depth", "lat", "lon")
_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
_CHUNK_BYTES = 4096  # daily variables smaller than this share a chunk of this size over several days (as netCDF's default)

#: A static variable: (dimensions, data, attributes).
Static = tuple[tuple[str, ...], np.ndarray, dict[str, Any]]
#: A daily variable: (dimensions, dtype, attributes, the day's record from (images, history, day)).
Daily = tuple[tuple[str, ...], np.dtype, dict[str, Any], Callable[[DayImages, History, int], np.ndarray]]


def _depth() -> dict[str, Static]:
    """The depth and depth_bnds variables shared by both files."""
    depth = np.array([0.5 * (a + b) for a, b in LAYERS])
    return {
        "depth": (("depth",), depth, {"standard_name": "depth", "units": "m", "positive": "down", "axis": "Z",
                                      "bounds": "depth_bnds", "long_name": "centre of the verification layer"}),
        "depth_bnds": (("depth", "nv"), np.array(LAYERS, dtype=float), {"units": "m"}),
    }  # fmt: skip


def _time(start: str) -> dict[str, Daily]:
    return {"time": (("time",), _F64, {"standard_name": "time", "units": f"days since {start} 00:00:00",
                                       "calendar": "standard", "axis": "T"},
                     lambda im, h, d: np.float64(d + 1))}  # fmt: skip


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


def _analysis_vars(methods: list[str], layer: str, truth: dict[str, str]) -> dict[str, Daily]:
    """The verification (nature run or reference), observations and per method mean, spread and increment."""
    var: dict[str, Daily] = {
        "sm_truth": (_IMG4, _F32, {**_SM, **truth}, lambda im, h, d: im.truth),
        "sm_obs": (_IMG3, _F32, {**_SM_LAYER, "long_name": f"satellite retrievals of the {layer} layer"},
                   lambda im, h, d: im.obs),
    }  # fmt: skip
    for m in methods:
        var[f"sm_mean_{m}"] = (_IMG4, _F32, {**_SM, "long_name": f"{m} ensemble mean"},
                               lambda im, h, d, m=m: im.mean[m])  # fmt: skip
        var[f"sm_background_{m}"] = (_IMG4, _F32, {**_SM, "long_name": f"{m} ensemble mean of the forecast just before the day's last analysis"},
                                     lambda im, h, d, m=m: im.mean_background[m])  # fmt: skip
        var[f"sm_spread_{m}"] = (_IMG4, _F32, {"units": "m3 m-3", "long_name": f"{m} ensemble standard deviation"},
                                 lambda im, h, d, m=m: im.spread[m])  # fmt: skip
        var[f"increment_{m}"] = (_IMG3, _F32, {"units": "m3 m-3", "long_name": f"{m} ensemble-mean analysis increment of the {layer} layer"},
                                 lambda im, h, d, m=m: im.increment[m])  # fmt: skip
    return var


def _metrics_vars(methods: list[str], stations: Any, versus: str = "nature run") -> tuple[dict[str, Static], dict[str, Daily]]:
    """Station positions (static); readings, and per method the scores and station series (daily)."""
    slat, slon = stations.latlon()
    at_stations = {"coordinates": "station_lat station_lon"}
    static: dict[str, Static] = {
        "station_lat": (("station",), np.asarray(slat, dtype=float), {"standard_name": "latitude", "units": "degrees_north"}),
        "station_lon": (("station",), np.asarray(slon, dtype=float), {"standard_name": "longitude", "units": "degrees_east"}),
    }  # fmt: skip
    daily: dict[str, Daily] = {
        "station_sm": (("time", "station"), _F64, {**_SM_LAYER, "long_name": "station 0-10 cm soil moisture", **at_stations},
                       lambda im, h, d: h.station_obs[d]),
    }  # fmt: skip
    for m in methods:
        for j, k in enumerate(SCORES):
            daily[f"{k}_{m}"] = (("time", "depth"), _F64,
                                 {"units": _UNITS[k], "long_name": f"{m} daily {_DOC[k]} of the analysis vs the {versus}"},
                                 lambda im, h, d, m=m, j=j: h[m].scores[d, :, j])  # fmt: skip
            daily[f"{k}_background_{m}"] = (("time", "depth"), _F64,
                                            {"units": _UNITS[k], "long_name": f"{m} daily {_DOC[k]} of the background vs the {versus}"},
                                            lambda im, h, d, m=m, j=j: h[m].scores_background[d, :, j])  # fmt: skip
        daily[f"station_sm_{m}"] = (("time", "station"), _F64,
                                    {**_SM_LAYER, "long_name": f"{m} ensemble mean 0-10 cm at the stations", **at_stations},
                                    lambda im, h, d, m=m: h[m].station[d])  # fmt: skip
        daily.update(_analysis_diagnostics(m))
    return static, daily


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


def _analysis_diagnostics(m: str) -> dict[str, Daily]:
    """Per-analysis diagnostics of method ``m`` (the day's last analysis): observation space, inflation, gains."""
    var: dict[str, Daily] = {}
    for j, k in enumerate(OBS_SPACE):
        units, doc = _OBS_SPACE_DOC[k]
        var[f"{k}_{m}"] = (("time",), _F64, {"units": units, "long_name": f"{m} {doc}"},
                           lambda im, h, d, j=j: h[m].obs_space[d, j])  # fmt: skip
    var[f"rank_counts_{m}"] = (("time", "rank"), _I64,
                               {"units": "1", "long_name": f"{m} rank histogram of the observations among the background members perturbed by observation-error draws (Hamill 2001)"},
                               lambda im, h, d: h[m].rank_counts[d])  # fmt: skip
    var[f"inflation_{m}"] = (("time",), _F64, {"units": "1", "long_name": f"{m} anomaly inflation factor applied"},
                             lambda im, h, d: h[m].inflation[d])  # fmt: skip
    var[f"gain_per_scale_{m}"] = (("time", "scale"), _F64,
                                  {"units": "1", "long_name": f"{m} mean diagonal-form gain per curvelet scale, coarsest first"},
                                  lambda im, h, d: h[m].gain_per_scale[d])  # fmt: skip
    var[f"inflation_per_scale_{m}"] = (("time", "scale"), _F64,
                                       {"units": "1", "long_name": f"{m} anomaly inflation factor applied per curvelet scale, coarsest first"},
                                       lambda im, h, d: h[m].inflation_per_scale[d])  # fmt: skip
    return var


class _Layout:
    """One file's dimensions, static and daily variables, and global attributes."""

    def __init__(self, dims: dict[str, int | None], static: dict[str, Static], daily: dict[str, Daily],
                 attrs: dict[str, Any]) -> None:  # fmt: skip
        self.dims, self.static, self.daily, self.attrs = dims, static, daily, attrs

    def _fill(self, name: str, dims: tuple[str, ...], dtype: np.dtype) -> float | None:
        """NaN for float variables, except coordinate variables and bounds (CF wants them complete)."""
        bounds = {str(a["bounds"]) for _, _, a, *_ in (*self.static.values(), *self.daily.values()) if "bounds" in a}
        return np.nan if dtype.kind == "f" and dims != (name,) and name not in bounds else None

    def create(self, ds: Any) -> None:
        """Define everything in the new dataset ``ds`` and write the static variables."""
        for name, size in self.dims.items():
            ds.createDimension(name, size)
        for name, (vdims, data, vattrs) in self.static.items():
            data = np.asarray(data)
            kw = {"zlib": True, "complevel": 1} if data.ndim >= 2 else {}
            var = ds.createVariable(name, data.dtype, vdims, fill_value=self._fill(name, vdims, data.dtype), **kw)
            var.setncatts(vattrs)
            var[...] = data
        for name, (vdims, dtype, vattrs, _) in self.daily.items():
            rest = [int(self.dims[d]) for d in vdims[1:]]
            kw: dict[str, Any] = {"zlib": True, "complevel": 1}  # chunks of many days, or one day's image
            if all(rest):
                per_day = dtype.itemsize * int(np.prod(rest, dtype=np.int64))
                kw["chunksizes"] = (max(1, min(1024, _CHUNK_BYTES // max(per_day, 1))), *rest)
            var = ds.createVariable(name, dtype, vdims, fill_value=self._fill(name, vdims, dtype), **kw)
            var.setncatts(vattrs)
        ds.setncatts({"Conventions": "CF-1.8", **self.attrs})

    def write_day(self, ds: Any, day: int, images: DayImages, history: History) -> None:
        """Day ``day`` (0-based) of every daily variable."""
        for name, (_, dtype, _, get) in self.daily.items():
            ds[name][day] = np.asarray(get(images, history, day), dtype=dtype)

    def copy_day(self, src: Any, dst: Any, day: int) -> None:
        """Day ``day`` of every daily variable, as stored in ``src``, into ``dst``."""
        for name in self.daily:
            a, b = src[name], dst[name]
            a.set_auto_maskandscale(False)
            b.set_auto_maskandscale(False)
            b[day] = a[day]


class _Appended:
    """A netCDF file appended day by day without ever being modified in place (module docstring)."""

    def __init__(self, path: Path, layout: _Layout) -> None:
        self.path, self.layout = path, layout
        self.twin = path.with_name(f".{path.name}.next")
        self.spare = path.with_name(f".{path.name}.prev")
        self.twin_days: int | None = None  # leading days the twin holds correctly (None: unknown, rebuilt)

    def create(self) -> None:
        import netCDF4

        with atomic_path(self.path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            self.layout.create(ds)
        self.twin_days = None

    def days(self) -> int:
        """Days the file holds; OSError/RuntimeError when it cannot be read."""
        import netCDF4

        with netCDF4.Dataset(self.path) as ds:
            return len(ds.dimensions["time"])

    def _rebuild_twin(self, days: int) -> None:
        for p in (self.twin, self.spare):
            p.unlink(missing_ok=True)
        shutil.copyfile(self.path, self.twin)
        self.twin_days = days

    def append(self, day: int, images: DayImages, history: History) -> None:
        """Append day ``day`` (0-based; the file holds days ``0 .. day - 1``) through the twin."""
        import netCDF4

        try:
            if self.twin_days is None:
                self._rebuild_twin(day)
            with netCDF4.Dataset(self.twin, "a") as dst:
                if self.twin_days < day:
                    with netCDF4.Dataset(self.path) as src:
                        for d in range(self.twin_days, day):
                            self.layout.copy_day(src, dst, d)
                self.layout.write_day(dst, day, images, history)
            replace_keeping(self.twin, self.path, self.spare)  # the file, one day behind, kept as spare
            self.twin, self.spare = self.spare, self.twin  # ... which is the next twin
            self.twin_days = day
        except BaseException as exc:
            self.twin_days = None  # the twin may be broken: rebuilt from the file at the next append
            err = diagnose(exc, self.path, self.path.parent) if isinstance(exc, Exception) else None
            if err is None or err is exc:
                raise
            raise err from exc

    def finish(self) -> None:
        for p in (self.twin, self.spare):
            p.unlink(missing_ok=True)


class ExperimentFiles:
    """``analysis.nc`` and ``metrics.nc`` of a run in ``out``, appended day by day (rank 0; module docstring).

    Parameters
    ----------
    out : Path
    cfg : Config
    grid : landimg.Grid
    stations : the run's stations (``n``, ``latlon()``)
    methods : list of str
    nmem : int
        Ensemble size (rank histograms have ``nmem + 1`` bins).
    """

    def __init__(self, out: Path, cfg: Any, grid: Any, stations: Any, methods: list[str], nmem: int) -> None:
        from landimg import __version__

        created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        gattrs = {
            "title": "landimg soil-moisture assimilation experiment",
            "source": f"landimg {__version__}",
            "history": f"{created} created by landimg {__version__} (python -m landimg.cycle)",
            "domain": cfg.domain.preset,
            "members": cfg.ensemble.members,
        }
        nl, layer = len(LAYERS), f"0-{cfg.analysis.obs_depth * 100:g} cm"
        versus, truth = verification(cfg)
        adims = {"time": None, "depth": nl, "nv": 2, "lat": grid.shape[0], "lon": grid.shape[1]}
        analysis = _Layout(adims, {**_depth(), **_lat_lon(grid)},
                           {**_time(cfg.experiment.start), **_analysis_vars(methods, layer, truth)}, gattrs)  # fmt: skip
        mstatic, mdaily = _metrics_vars(methods, stations, versus)
        mdims = {"time": None, "depth": nl, "nv": 2, "station": stations.n, "rank": nmem + 1, "scale": MAX_SCALES}
        metrics = _Layout(mdims, {**_depth(), **mstatic}, {**_time(cfg.experiment.start), **mdaily}, gattrs)
        self.files = [_Appended(Path(out) / FILES[0], analysis), _Appended(Path(out) / FILES[1], metrics)]

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def create(self) -> None:
        """Both files with their static variables and no day (atomically). DiskError naming the file."""
        for f in self.files:
            f.create()

    def append(self, day: int, images: DayImages, history: History) -> None:
        """Append day ``day`` (0-based) of the record to both files. DiskError naming the file; the files
        then hold the days before ``day``, complete."""
        for f in self.files:
            f.append(day, images, history)

    def resume(self, days: int) -> None:
        """Continue files that a restart after ``days`` days says hold them.

        Raises
        ------
        ValueError
            A file is missing, unreadable or holds fewer days (one line naming it).
        """
        for f in self.files:
            try:
                held = f.days()
            except FileNotFoundError:
                raise ValueError(f"--resume: {f.path} is missing (the restart after day {days} needs its {days} day(s))") from None
            except (OSError, RuntimeError, KeyError) as exc:
                raise ValueError(f"--resume: {f.path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
            if held < days:
                raise ValueError(f"--resume: {f.path} holds {held} day(s), the restart after day {days} needs {days}")
            f.twin_days = None  # rebuilt from the file at the first append

    def finish(self) -> None:
        """The run is complete: the twins go."""
        for f in self.files:
            f.finish()

    def remove(self) -> None:
        """A run that kept nothing: its files go."""
        for f in self.files:
            for p in (f.path, f.twin, f.spare):
                p.unlink(missing_ok=True)

