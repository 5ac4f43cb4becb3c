"""ERA5 / ERA5-Land, CMFD, ALMA and landimg's gridded-retrieval files in their real layouts, written by
landimg's own code (values from :func:`landimg.data.fixtures.forcing_field` / ``smooth_field``)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence

import numpy as np

from landimg.data.era5 import SWVL_LAYERS
from landimg.data.fixtures import Field, _nc_var, forcing_field, regular_axis, smooth_field

__all__ = ["alma_file", "cmfd_files", "era5_file", "era5_old_cds", "gridded_file"]


def _dewpoint(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Dew point (K) of specific humidity q (kg/kg) at pressure p (Pa): inverse of IFS Tetens."""
    e = q * p / (0.621981 + 0.378019 * q)
    x = np.log(e / 611.21) / 17.502
    return (273.16 - 32.19 * x) / (1.0 - x)


#: Units of the ERA5 / ERA5-Land variables as the Climate Data Store writes them.
_ERA5_UNITS = {
    "t2m": "K",
    "d2m": "K",
    "sp": "Pa",
    "u10": "m s**-1",
    "v10": "m s**-1",
    "tp": "m",
    "ssrd": "J m**-2",
    "strd": "J m**-2",
    **{f"swvl{k}": "m**3 m**-3" for k in range(1, 5)},
}


def _era5_data(times, lat2, lon2, names, land: bool, field: Field) -> dict[str, np.ndarray]:
    """The ERA5 variables ``names`` at ``times`` on the (lat, lon) grid: name -> (time, lat, lon) array."""
    nt = len(times)
    data = {k: np.zeros((nt,) + lat2.shape) for k in names}
    acc = {k: np.zeros(lat2.shape) for k in ("tp", "ssrd", "strd")}
    for i, t in enumerate(times):
        mid = t - _dt.timedelta(minutes=30)  # fluxes of the hour ending at t
        rate = {k: forcing_field(k, lat2, lon2, mid) for k in ("Rainf", "SWdown", "LWdown")}
        hourly = {
            "tp": rate["Rainf"] * 3600.0 / 1000.0,
            "ssrd": rate["SWdown"] * 3600.0,
            "strd": rate["LWdown"] * 3600.0,
        }
        for k, amount in hourly.items():
            acc[k] = acc[k] + amount if land and t.hour != 1 else amount
        tair = forcing_field("Tair", lat2, lon2, t)
        psurf = forcing_field("PSurf", lat2, lon2, t)
        wind = forcing_field("Wind", lat2, lon2, t)
        values = {
            "t2m": tair,
            "d2m": _dewpoint(forcing_field("Qair", lat2, lon2, t), psurf),
            "sp": psurf,
            "u10": wind * 0.6,
            "v10": -wind * 0.8,
            **acc,
        }
        for k in range(4):
            values[f"swvl{k + 1}"] = field(f"sm_layer{min(k + 1, 3)}", lat2, lon2, t) + 0.01 * k
        for k in names:
            data[k][i] = values[k]
    return data


def _era5_write(path: str, times, lat, lon_file, names, data, units: dict[str, str] | None) -> None:
    """Write the ERA5 netCDF ``path`` in the new-CDS layout (``valid_time``, ``number``, float32 NaN fill)."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("valid_time", len(times))
        ds.createDimension("latitude", lat.size)
        ds.createDimension("longitude", lon_file.size)
        ds.Conventions = "CF-1.7"
        ds.institution = "fixture written by landimg in the layout of the Climate Data Store"
        secs = [(t - _dt.datetime(1970, 1, 1)).total_seconds() for t in times]
        _nc_var(ds, "number", (), 0, None, long_name="ensemble member numerical id")
        _nc_var(
            ds,
            "valid_time",
            ("valid_time",),
            np.array(secs, dtype=np.int64),
            None,
            units="seconds since 1970-01-01",
            calendar="proleptic_gregorian",
            standard_name="time",
        )
        _nc_var(ds, "latitude", ("latitude",), lat, None, units="degrees_north", standard_name="latitude")
        _nc_var(
            ds, "longitude", ("longitude",), lon_file, None, units="degrees_east", standard_name="longitude"
        )
        for k in names:
            layer = f" {SWVL_LAYERS[int(k[-1]) - 1]} m" if k.startswith("swvl") else ""
            _nc_var(
                ds,
                k,
                ("valid_time", "latitude", "longitude"),
                data[k].astype(np.float32),
                np.float32(np.nan),
                units=(units or {}).get(k, _ERA5_UNITS[k]),
                long_name=k + layer,
                GRIB_paramId=np.int32(0),
            )


def era5_file(
    path: str,
    times: Sequence[_dt.datetime],
    region: Sequence[float],
    *,
    res: float = 0.25,
    land: bool = False,
    variables: Sequence[str] | None = None,
    field: Field = smooth_field,
    lon360: bool = True,
    units: dict[str, str] | None = None,
) -> str:
    """Write a new-CDS ERA5 (``land=False``) or ERA5-Land (``land=True``) netCDF: ``valid_time``
    (seconds since 1970-01-01), descending ``latitude``, ``longitude`` 0..360 (``lon360``).

    Accumulations (``tp`` m, ``ssrd``/``strd`` J m-2) are over the hour ending at the record for ERA5,
    and from 00 UTC for ERA5-Land (the 00 UTC record holds the previous day's total). Soil moisture
    ``swvl1..4`` (m3 m-3) comes from ``field('sm_layerK')`` at the layers' mid-depth ordering.
    """
    s, n, w, e = region
    lat = regular_axis(s, n, res, descending=True)
    lon = regular_axis(w, e, res)
    lon_file = lon % 360.0 if lon360 else lon
    order = np.argsort(lon_file)
    lon_file = lon_file[order]
    lat2, lon2 = np.meshgrid(lat, lon[order], indexing="ij")
    names = (
        list(variables)
        if variables is not None
        else (
            ["t2m", "d2m", "sp", "u10", "v10", "tp", "ssrd", "strd"]
            + (["swvl1", "swvl2", "swvl3", "swvl4"] if land else [])
        )
    )
    data = _era5_data(times, lat2, lon2, names, land, field)
    _era5_write(path, times, lat, lon_file, names, data, units)
    return path


def _pack_int16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """grib_to_netcdf's CF packing: int16 with the extremes at +-32766 (-32767 is the fill value)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    scale = (hi - lo) / 65532.0 if hi > lo else 1.0
    offset = lo + 32766.0 * scale
    packed = np.where(np.isfinite(values), np.rint((values - offset) / scale), -32767).astype(np.int16)
    return packed, scale, offset


def era5_old_cds(src: str, dst: str, lsm: np.ndarray | None = None) -> str:
    """Rewrite a new-CDS ERA5 file (:func:`era5_file`) in the old CDS's layout: netCDF-3 64-bit offset as
    ``grib_to_netcdf`` wrote it, ``time`` (int32 hours since 1900-01-01 00:00:00.0, gregorian) instead of
    ``valid_time``, float32 ``latitude``/``longitude``, every variable int16 CF-packed (``scale_factor``,
    ``add_offset``, ``_FillValue`` = ``missing_value`` = -32767) and ``m**3 m**-3``-style units; ``lsm``
    (latitude, longitude), 0/1, written for every record when given (ERA5 single levels carry it)."""
    import netCDF4

    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst, "w", format="NETCDF3_64BIT_OFFSET") as b:
        secs = np.asarray(a["valid_time"][:], dtype=float)
        hours = (secs + (_dt.datetime(1970, 1, 1) - _dt.datetime(1900, 1, 1)).total_seconds()) / 3600.0
        b.Conventions = "CF-1.6"
        b.history = "fixture written by landimg in the layout of grib_to_netcdf (old Climate Data Store)"
        b.createDimension("longitude", a.dimensions["longitude"].size)
        b.createDimension("latitude", a.dimensions["latitude"].size)
        b.createDimension("time", None)
        for name in ("longitude", "latitude"):
            v = b.createVariable(name, "f4", (name,))
            v.units, v.long_name = a[name].units, name
            v[:] = a[name][:]
        t = b.createVariable("time", "i4", ("time",))
        t.units, t.long_name, t.calendar = "hours since 1900-01-01 00:00:00.0", "time", "gregorian"
        t[:] = np.rint(hours).astype(np.int32)
        fields = {
            n: np.ma.filled(a[n][:].astype(float), np.nan) for n, v in a.variables.items() if v.ndim == 3
        }
        units = {n: a[n].units for n in fields}
        if lsm is not None:
            fields["lsm"] = np.broadcast_to(np.asarray(lsm, float), next(iter(fields.values())).shape)
            units["lsm"] = "(0 - 1)"
        for name, values in fields.items():
            packed, scale, offset = _pack_int16(values)
            v = b.createVariable(name, "i2", ("time", "latitude", "longitude"), fill_value=np.int16(-32767))
            v.scale_factor, v.add_offset = scale, offset
            v.missing_value = np.int16(-32767)
            v.units, v.long_name = units[name], name
            v.set_auto_maskandscale(False)
            v[:] = packed
    return dst


def cmfd_files(
    directory: str,
    times: Sequence[_dt.datetime],
    region: Sequence[float],
    res: float = 0.1,
    units: dict[str, str] | None = None,
) -> list[str]:
    """Write one CMFD file per variable (``temp_CMFD_V0106_B-01_03hr_010deg_YYYYMM.nc`` ...)."""
    import netCDF4

    s, n, w, e = region
    lat, lon = regular_axis(s, n, res), regular_axis(w, e, res)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    spec = {
        "temp": ("Tair", "K", 1.0),
        "shum": ("Qair", "kg kg-1", 1.0),
        "pres": ("PSurf", "Pa", 1.0),
        "wind": ("Wind", "m s-1", 1.0),
        "srad": ("SWdown", "W m-2", 1.0),
        "lrad": ("LWdown", "W m-2", 1.0),
        "prec": ("Rainf", "mm hr-1", 3600.0),
    }
    hours = [(t - _dt.datetime(1900, 1, 1)).total_seconds() / 3600.0 for t in times]
    paths = []
    for name, (alma, unit, scale) in spec.items():
        path = os.path.join(directory, f"{name}_CMFD_V0106_B-01_03hr_010deg_{times[0]:%Y%m}.nc")
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", None)
            ds.createDimension("lat", lat.size)
            ds.createDimension("lon", lon.size)
            _nc_var(
                ds,
                "time",
                ("time",),
                np.array(hours),
                None,
                units="hours since 1900-01-01 00:00:0.0",
                calendar="gregorian",
            )
            _nc_var(ds, "lat", ("lat",), lat.astype(np.float32), None, units="degrees_north")
            _nc_var(ds, "lon", ("lon",), lon.astype(np.float32), None, units="degrees_east")
            # a 3-hourly mean rate is stamped at the start of its interval; sample mid-interval
            vals = np.stack(
                [forcing_field(alma, lat2, lon2, t + _dt.timedelta(hours=1.5)) * scale for t in times]
            )
            _nc_var(
                ds,
                name,
                ("time", "lat", "lon"),
                vals.astype(np.float32),
                np.float32(-9.9e33),
                units=(units or {}).get(name, unit),
                long_name=name,
            )
        paths.append(path)
    return paths


def alma_file(
    path: str,
    times: Sequence[_dt.datetime],
    region: Sequence[float],
    res: float = 0.5,
    calendar: str = "standard",
) -> str:
    """Write landimg's ALMA forcing layout (time in hours since the first record, ``calendar``)."""
    import cftime
    import netCDF4

    s, n, w, e = region
    lat, lon = regular_axis(s, n, res), regular_axis(w, e, res)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    units = "hours since 2000-01-01 00:00:00"
    nums = cftime.date2num(
        [cftime.datetime(*t.timetuple()[:6], calendar=calendar) for t in times], units, calendar
    )
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        _nc_var(ds, "time", ("time",), np.asarray(nums, float), None, units=units, calendar=calendar)
        _nc_var(ds, "lat", ("lat",), lat, None, units="degrees_north")
        _nc_var(ds, "lon", ("lon",), lon, None, units="degrees_east")
        from landimg.data.common import ALMA_UNITS

        for name, unit in ALMA_UNITS.items():
            vals = np.stack([forcing_field(name, lat2, lon2, t) for t in times])
            _nc_var(ds, name, ("time", "lat", "lon"), vals, np.float64(np.nan), units=unit)
    return path


def gridded_file(
    path: str,
    times: Sequence[_dt.datetime],
    region: Sequence[float],
    res: float = 0.25,
    field: Field = smooth_field,
    calendar: str = "standard",
    units: str = "m3 m-3",
) -> str:
    """Write landimg's regular-grid retrieval layout (``sm``, ``sm_error``) in ``calendar``."""
    import cftime
    import netCDF4

    s, n, w, e = region
    lat, lon = regular_axis(s, n, res), regular_axis(w, e, res)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    tunits = "hours since 2000-01-01 00:00:00"
    nums = cftime.date2num(
        [cftime.datetime(*t.timetuple()[:6], calendar=calendar) for t in times], tunits, calendar
    )
    scale = 100.0 if units in ("%", "percent") else 1.0
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        _nc_var(ds, "time", ("time",), np.asarray(nums, float), None, units=tunits, calendar=calendar)
        _nc_var(ds, "lat", ("lat",), lat, None, units="degrees_north")
        _nc_var(ds, "lon", ("lon",), lon, None, units="degrees_east")
        vals = np.stack([field("sm", lat2, lon2, t) for t in times]) * scale
        _nc_var(ds, "sm", ("time", "lat", "lon"), vals, np.float64(-9999.0), units=units)
        _nc_var(
            ds,
            "sm_error",
            ("time", "lat", "lon"),
            np.full(vals.shape, 0.04),
            np.float64(-9999.0),
            units="m3 m-3",
        )
    return path
