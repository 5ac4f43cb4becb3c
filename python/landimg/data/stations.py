"""ISMN in-situ soil moisture through the ``ismn`` package (directory or zip download; "header +
values" and CEOP formats, both read by ``ismn.interface.ISMN_Interface``).

Kept: soil-moisture sensors whose depth range overlaps the requested layer (a point sensor at depth d
counts when top <= d < bottom), stations inside the model domain, readings flagged ``G`` (good) by
ISMN's quality control, values in m3 m-3 within [0, 1]. A station's value of a UTC day is the mean
over its kept sensors of each sensor's mean of that day's ``G`` readings (with one sensor: the plain
daily mean of its ``G`` readings). ISMN's metadata cache is built in a temporary directory, so the
download is never written to.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from landimg.data.common import DataError

__all__ = ["StationSeries", "read_ismn", "sensor_overlaps", "to_dataset"]


@dataclass
class StationSeries:
    """Daily station soil moisture.

    Attributes
    ----------
    days : list of datetime.date (ntime,)
    ids : list of str (nstation,)
        ``NETWORK/STATION``.
    lat, lon : ndarray (nstation,)
        Degrees.
    depth_from, depth_to : ndarray (nstation,)
        Range of the used sensors' depths, m.
    sensors : list of str (nstation,)
        The used sensors, ``NAME FROM-TO m`` joined by ``; ``.
    sm : ndarray (ntime, nstation)
        Daily means, m3 m-3, NaN where no ``G`` reading.
    """

    days: list
    ids: list
    lat: np.ndarray
    lon: np.ndarray
    depth_from: np.ndarray
    depth_to: np.ndarray
    sensors: list
    sm: np.ndarray


def sensor_overlaps(depth_from: float, depth_to: float, top: float, bottom: float) -> bool:
    """True when a sensor's depth range [from, to] (m) overlaps the layer [top, bottom) (m)."""
    lo, hi = min(depth_from, depth_to), max(depth_from, depth_to)
    if hi == lo:
        return top <= lo < bottom
    return lo < bottom and hi > top


def _inside(lat: float, lon: float, grid) -> bool:
    half = grid.res / 2.0
    south, north = grid.lat[0] - half, grid.lat[-1] + half
    west = grid.lon[0] - half
    lon_w = (lon - west) % 360.0 + west
    return south <= lat < north and west <= lon_w < grid.lon[-1] + half


def _open(path: str, tmp: str):
    from ismn.interface import ISMN_Interface

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), _quiet():
            return ISMN_Interface(path, meta_path=tmp, temp_root=tmp, force_metadata_collection=True)
    except Exception as exc:  # noqa: BLE001 - ismn raises many types on malformed downloads
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as an ISMN download ({reason})") from None


def _daily(frame, path: str, sensor: str, days: list) -> np.ndarray:
    value_col = "soil_moisture"
    flag_col = "soil_moisture_flag"
    if value_col not in frame or flag_col not in frame:
        raise DataError(f"{path}: sensor {sensor}: no soil_moisture/flag columns")
    good = frame[frame[flag_col].astype(str) == "G"]
    values = good[value_col].to_numpy(dtype=float)
    if np.any((values < 0.0) | (values > 1.0)):
        raise DataError(f"{path}: sensor {sensor}: 'G' soil moisture outside [0, 1] m3/m3 (percent units?)")
    stamp = good.index.to_numpy(dtype="datetime64[ns]")
    day_index = {np.datetime64(d, "D"): k for k, d in enumerate(days)}
    out_sum = np.zeros(len(days))
    out_n = np.zeros(len(days))
    for d, v in zip(stamp.astype("datetime64[D]"), values, strict=True):
        k = day_index.get(d)
        if k is not None and np.isfinite(v):
            out_sum[k] += v
            out_n[k] += 1
    with np.errstate(invalid="ignore"):
        return np.where(out_n > 0, out_sum / np.maximum(out_n, 1), np.nan)


def read_ismn(path: str, grid, start: str, end: str, depth: tuple[float, float]) -> StationSeries:
    """Daily means of ISMN stations inside the model domain for one soil layer.

    Parameters
    ----------
    path : str
        The ISMN download: a directory or a ``.zip``.
    grid : landimg.Grid
        Model grid (stations inside its bounding box are kept).
    start, end : str
        First and last UTC day, YYYY-MM-DD.
    depth : (top, bottom)
        Layer, metres (e.g. (0.0, 0.1)).

    Raises
    ------
    DataError
        Missing or unreadable download, no sensor overlapping the layer inside the domain, bad dates.
    """
    top, bottom = (float(d) for d in depth)
    if not (0.0 <= top < bottom):
        raise DataError(f"--depth: need 0 <= TOP < BOTTOM metres, got {top:g} {bottom:g}")
    try:
        d0, d1 = _dt.date.fromisoformat(start), _dt.date.fromisoformat(end)
    except (TypeError, ValueError):
        raise DataError(f"--start/--end: {start!r} .. {end!r} are not dates YYYY-MM-DD") from None
    if d1 < d0:
        raise DataError(f"--start {start} is after --end {end}")
    if not (os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(".zip"))):
        raise DataError(f"{path}: no such ISMN download (a directory or a .zip)")
    days = [d0 + _dt.timedelta(days=k) for k in range(int((d1 - d0).days) + 1)]
    rows, seen_sensor = [], False
    with tempfile.TemporaryDirectory(prefix="landimg-ismn-") as tmp:
        ds = _open(path, tmp)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), _quiet():
            for net, stn, sen in ds.collection.iter_sensors(variable="soil_moisture"):
                seen_sensor = True
                if not sensor_overlaps(sen.depth.start, sen.depth.end, top, bottom):
                    continue
                if not _inside(float(stn.lat), float(stn.lon), grid):
                    continue
                label = f"{sen.instrument} {sen.depth.start:g}-{sen.depth.end:g} m"
                daily = _daily(sen.read_data(), path, f"{net.name}/{stn.name} {label}", days)
                rows.append(
                    (f"{net.name}/{stn.name}", float(stn.lat), float(stn.lon), sen.depth, label, daily)
                )
    if not seen_sensor:
        raise DataError(f"{path}: no ISMN soil moisture file (NETWORK/STATION/*_sm_*.stm) was readable")
    if not rows:
        raise DataError(
            f"{path}: no station inside the domain has a soil moisture sensor overlapping {top:g}-{bottom:g} m"
        )
    return _group(rows, days)


def _group(rows: list, days: list) -> StationSeries:
    ids = sorted({r[0] for r in rows})
    lat, lon, dfrom, dto, sensors, sm = [], [], [], [], [], []
    for sid in ids:
        mine = [r for r in rows if r[0] == sid]
        lat.append(mine[0][1])
        lon.append(mine[0][2])
        dfrom.append(min(min(r[3].start, r[3].end) for r in mine))
        dto.append(max(max(r[3].start, r[3].end) for r in mine))
        sensors.append("; ".join(sorted(r[4] for r in mine)))
        stack = np.stack([r[5] for r in mine])
        with np.errstate(invalid="ignore"), _quiet():
            sm.append(np.nanmean(stack, axis=0))
    return StationSeries(
        days, ids, np.array(lat), np.array(lon), np.array(dfrom), np.array(dto), sensors, np.stack(sm, axis=1)
    )


@contextlib.contextmanager
def _quiet():
    """Silence the ismn package's and numpy's warnings (deprecations inside ismn, all-NaN days)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def to_dataset(series: StationSeries, depth: tuple[float, float]):
    """The station series as an xarray.Dataset (time, station) in the layout the cycle reads."""
    import xarray as xr

    from landimg import __version__

    epoch = _dt.date(1970, 1, 1)
    t = np.array([(d - epoch).days for d in series.days], dtype=float)
    ds = xr.Dataset(
        {
            "sm": (
                ("time", "station"),
                series.sm,
                {
                    "units": "m3 m-3",
                    "long_name": "daily mean soil moisture of ISMN 'G' readings",
                    "cell_methods": "time: mean",
                },
            ),
            "time_bnds": (("time", "nv"), np.stack([t, t + 1.0], 1)),
            "station_id": (("station",), np.array(series.ids, dtype=object)),
            "depth_from": (
                ("station",),
                series.depth_from,
                {"units": "m", "long_name": "shallowest used sensor"},
            ),
            "depth_to": (("station",), series.depth_to, {"units": "m", "long_name": "deepest used sensor"}),
            "sensors": (("station",), np.array(series.sensors, dtype=object)),
        },
        coords={
            "time": (
                "time",
                t,
                {"units": "days since 1970-01-01 00:00:00", "calendar": "standard", "bounds": "time_bnds"},
            ),
            "lat": ("station", series.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("station", series.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "featureType": "timeSeries",
            "title": "ISMN stations, daily means of 'G' readings",
            "layer_top_m": float(depth[0]),
            "layer_bottom_m": float(depth[1]),
            "history": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} python -m landimg.data stations "
            f"(landimg {__version__})",
        },
    )
    for name in ("time", "lat", "lon", "time_bnds"):
        ds[name].encoding["_FillValue"] = None
    ds["sm"].encoding["_FillValue"] = np.nan
    return ds
