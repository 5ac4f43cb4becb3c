"""Small product files in each product's real layout, written by landimg's own code.

Used by the tests and by ``python -m landimg.data demo``. No third-party data is copied: the values come
from a field function ``field(name, lat, lon, when) -> ndarray`` (lat/lon arrays of one shape, degrees;
``when`` a datetime) -- :func:`smooth_field` by default -- and the layouts (groups, names, units, fill
values, flags, time encodings, grids) follow docs/data.md.

Global grids (SMAP EASE-Grid 2.0, ESA CCI) are written whole, with fill values outside ``bbox``;
GLDAS, ERA5 and CMFD files can be written whole or as the regional subsets their portals produce.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections.abc import Callable, Sequence

import numpy as np

from landimg.data.regrid import EASE2

__all__ = [
    "cci_file",
    "forcing_field",
    "gldas_file",
    "regular_axis",
    "smap_file",
    "smooth_field",
]

Field = Callable[[str, np.ndarray, np.ndarray, _dt.datetime], np.ndarray]
_FILL = -9999.0
_J2000 = _dt.datetime(2000, 1, 1, 11, 58, 55, 816000)


def smooth_field(name: str, lat: np.ndarray, lon: np.ndarray, when: _dt.datetime) -> np.ndarray:
    """Smooth soil moisture (m3 m-3) varying with position, layer name and time; forcing via
    :func:`forcing_field` for the ALMA names."""
    day = (when - _dt.datetime(2000, 1, 1)).total_seconds() / 86400.0
    depth = {"1": 0.0, "2": 0.03, "3": 0.05, "4": 0.06}.get(name[-1], 0.0)
    base = 0.24 + depth + 0.06 * np.sin(np.radians(3.0 * lat)) * np.cos(np.radians(2.0 * lon))
    return base + 0.02 * np.sin(2.0 * np.pi * day / 7.0) + 0.01 * np.cos(np.radians(lat + lon) * 7.0)


def forcing_field(name: str, lat: np.ndarray, lon: np.ndarray, when: _dt.datetime) -> np.ndarray:
    """Plausible ALMA forcing (landimg units) with a diurnal cycle; rain in the afternoon."""
    hour = when.hour + when.minute / 60.0 + lon / 15.0
    sun = np.maximum(np.cos(2.0 * np.pi * (hour - 12.0) / 24.0), 0.0)
    ones = np.ones_like(lat, dtype=float)
    values = {
        "Tair": 285.0 - 0.4 * (lat - 35.0) + 6.0 * sun,
        "Qair": 0.008 * ones - 0.0001 * (lat - 35.0),
        "PSurf": 96000.0 * ones + 10.0 * lon,
        "Rainf": np.where((hour % 24 > 14) & (hour % 24 < 18), 2.0e-4, 0.0) * ones,
        "Snowf": 0.0 * ones,
        "Wind": 3.0 + 0.5 * np.cos(np.radians(lon)) * ones,
        "SWdown": 800.0 * sun,
        "LWdown": 330.0 * ones + 0.5 * (lon + 100.0),
    }
    return np.asarray(values[name], dtype=float)


def regular_axis(lo: float, hi: float, res: float, descending: bool = False) -> np.ndarray:
    """Cell centres from ``lo`` to ``hi`` (edges) at ``res`` degrees."""
    n = round((hi - lo) / res)
    c = lo + (np.arange(n) + 0.5) * res
    return c[::-1].copy() if descending else c


def _inside(lat, lon, bbox):
    if bbox is None:
        return np.isfinite(lat)
    s, n, w, e = bbox
    lon = (lon - w) % 360.0 + w
    return (lat >= s) & (lat <= n) & (lon >= w) & (lon <= e)


def ease2_latlon(
    name: str, rows: slice = slice(None), cols: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitude and longitude of EASE-Grid 2.0 global grid ``M36``/``M09`` (a window of it)."""
    from pyproj import Transformer

    from landimg.data.regrid import _EASE2_ORIGIN_X, _EASE2_ORIGIN_Y

    nrows, ncols, cell = EASE2[name]
    x = (_EASE2_ORIGIN_X + (np.arange(ncols) + 0.5) * cell)[cols]
    y = (_EASE2_ORIGIN_Y - (np.arange(nrows) + 0.5) * cell)[rows]
    tr = Transformer.from_crs("EPSG:6933", "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(*np.meshgrid(x, y))
    return np.asarray(lat), np.asarray(lon)


def _ease2_window(name: str, bbox) -> tuple[slice, slice]:
    nrows, ncols, _ = EASE2[name]
    if bbox is None:
        return slice(0, nrows), slice(0, ncols)
    from landimg.data.regrid import _ease2_y, ease2_source

    src = ease2_source(name)
    s, n, w, e = bbox
    yn, ys = _ease2_y(np.array([n, s], dtype=float))
    r = np.flatnonzero((src.y_edges[1:] < yn) & (src.y_edges[:-1] > ys))
    c = np.flatnonzero((src.x_edges[1:] > w) & (src.x_edges[:-1] < e))
    return slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1)


def _smap_put(g, sfx: str, shape, window, var: str, data, dtype, fill, **attrs):
    """One SMAP dataset ``var + sfx`` of the whole global ``shape``, ``data`` written at ``window``."""
    ds = g.create_dataset(
        var + sfx, shape=shape, dtype=dtype, fillvalue=fill, chunks=(203, 241), compression="gzip"
    )
    ds[window] = np.asarray(data, dtype=dtype)
    for key, value in attrs.items():
        ds.attrs[key] = value
    return ds


def _smap_retrieval(lat, lon, seen, when, field: Field, bad_quality, units: str):
    """Soil moisture (``units``, fill where unseen) and ``retrieval_qual_flag`` of one pass."""
    sm = np.where(seen, field("sm", lat, lon, when), _FILL)
    qual = np.where(seen, 0, 65534).astype(np.uint16)
    if bad_quality is not None:
        bad = seen & bad_quality(lat, lon)
        sm = np.where(bad, 0.9, sm)
        qual = np.where(bad, 1, qual).astype(np.uint16)
    if units == "percent":
        sm = np.where(seen, sm * 100.0, _FILL)
    return sm, qual


def _smap_put_retrieval(put, seen, sm, qual, error: float, units: str) -> None:
    f32 = np.float32
    put(
        "soil_moisture",
        sm,
        f32,
        f32(_FILL),
        units=units,
        _FillValue=f32(_FILL),
        long_name="Representative soil moisture measurement for the Earth based grid cell",
    )
    put(
        "soil_moisture_error",
        np.where(seen, error, _FILL),
        f32,
        f32(_FILL),
        units="cm**3/cm**3",
        _FillValue=f32(_FILL),
        long_name="Net uncertainty measure of soil moisture",
    )
    put(
        "retrieval_qual_flag",
        qual,
        np.uint16,
        np.uint16(65534),
        _FillValue=np.uint16(65534),
        flag_masks=np.array([1, 2, 4, 8], dtype=np.uint16),
        flag_meanings="Retrieval_recommended Retrieval_attempted Retrieval_success FT_retrieval_success",
    )


def _smap_put_geolocation(put, seen, secs, lat, lon, rows: slice, cols: slice) -> None:
    f32 = np.float32
    put(
        "tb_time_seconds",
        np.where(seen, secs, _FILL),
        np.float64,
        np.float64(_FILL),
        units="seconds",
        _FillValue=np.float64(_FILL),
        long_name="Seconds since 2000-01-01 11:58:55.816 UTC (J2000)",
    )
    stamps = np.full(lat.shape, b"N/A", dtype="S24")
    if seen.any():
        t = np.datetime64("2000-01-01T11:58:55.816", "ms") + (secs[seen] * 1000).astype("timedelta64[ms]")
        stamps[seen] = np.char.add(np.datetime_as_string(t, unit="ms").astype("S23"), b"Z")
    put("tb_time_utc", stamps, "S24", b"N/A", long_name="Date and time of the brightness temperatures")
    put(
        "latitude",
        np.where(seen, lat, _FILL),
        f32,
        f32(_FILL),
        units="degrees_north",
        _FillValue=f32(_FILL),
    )
    put(
        "longitude",
        np.where(seen, lon, _FILL),
        f32,
        f32(_FILL),
        units="degrees_east",
        _FillValue=f32(_FILL),
    )
    rr, cc = np.indices(lat.shape)
    put("EASE_row_index", np.where(seen, rr + rows.start, 65534), np.uint16, np.uint16(65534))
    put("EASE_column_index", np.where(seen, cc + cols.start, 65534), np.uint16, np.uint16(65534))


def smap_file(
    directory: str,
    date: _dt.date,
    *,
    grid: str = "M36",
    bbox: Sequence[float] | None = None,
    field: Field = smooth_field,
    error: float = 0.04,
    bad_quality: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    units: str = "cm**3/cm**3",
    passes: Sequence[str] = ("AM", "PM"),
) -> str:
    """Write ``SMAP_L3_SM_P[_E]_YYYYMMDD_R18290_001.h5`` (HDF5 groups AM/PM, no dimension scales).

    ``field`` gives the soil moisture of each pass at its local solar time (6 am / 6 pm);
    ``bad_quality(lat, lon)`` marks cells whose ``retrieval_qual_flag`` bit 0 is set (the value
    written there is 0.9, to prove the flag is applied). Cells outside ``bbox`` are fill (the
    arrays are the whole global grid, chunked, so fill chunks cost nothing).
    """
    import h5py

    shape = EASE2[grid][:2]
    rows, cols = _ease2_window(grid, bbox)
    lat, lon = ease2_latlon(grid, rows, cols)
    inside = _inside(lat, lon, bbox)
    name = f"SMAP_L3_SM_P_{'E_' if grid == 'M09' else ''}{date:%Y%m%d}_R18290_001.h5"
    path = os.path.join(directory, name)
    midnight = _dt.datetime(date.year, date.month, date.day)
    with h5py.File(path, "w") as f:
        f.create_group("Metadata").attrs["ShortName"] = "SPL3SMP_E" if grid == "M09" else "SPL3SMP"
        for pass_, local_hour in (("AM", 6.0), ("PM", 18.0)):
            g = f.create_group(f"Soil_Moisture_Retrieval_Data_{pass_}")
            put = functools.partial(_smap_put, g, "" if pass_ == "AM" else "_pm", shape, (rows, cols))
            seen = inside & (pass_ in passes)
            secs = (midnight - _J2000).total_seconds() + (local_hour - lon / 15.0) * 3600.0
            when = midnight + _dt.timedelta(hours=local_hour)
            sm, qual = _smap_retrieval(lat, lon, seen, when, field, bad_quality, units)
            _smap_put_retrieval(put, seen, sm, qual, error, units)
            _smap_put_geolocation(put, seen, secs, lat, lon, rows, cols)
    return path


def _nc_var(ds, name, dims, data, fill, **attrs):
    import netCDF4  # noqa: F401  (the writer used for netCDF4 fixtures)

    dtype = np.asarray(data).dtype if fill is None else np.asarray(fill).dtype
    v = ds.createVariable(name, dtype, dims, zlib=True, complevel=2, fill_value=fill)
    for key, value in attrs.items():
        v.setncattr(key, value)
    v[:] = data
    return v


def cci_file(
    directory: str,
    date: _dt.date,
    *,
    bbox: Sequence[float] | None = None,
    field: Field = smooth_field,
    uncertainty: float = 0.05,
    flagged: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    version: str = "fv08.1",
) -> str:
    """Write ``ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-YYYYMMDD000000-fv08.1.nc`` (global 0.25 deg,
    descending latitude, ``flag`` nonzero where ``flagged(lat, lon)``, value 0.95 there)."""
    import netCDF4

    lat = regular_axis(-90.0, 90.0, 0.25, descending=True)
    lon = regular_axis(-180.0, 180.0, 0.25)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    seen = _inside(lat2, lon2, bbox)
    day0 = (_dt.datetime(date.year, date.month, date.day) - _dt.datetime(1970, 1, 1)).days
    t0 = day0 + (6.0 - lon2 / 15.0) / 24.0  # a morning pass, local solar time
    when = _dt.datetime(date.year, date.month, date.day, 6)
    sm = np.where(seen, field("sm", lat2, lon2, when), _FILL)
    flag = np.zeros(lat2.shape, dtype=np.int8)
    if flagged is not None:
        bad = seen & flagged(lat2, lon2)
        flag[bad] = 1
        sm[bad] = 0.95
    name = f"ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-{date:%Y%m%d}000000-{version}.nc"
    path = os.path.join(directory, name)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.title = "ESA CCI Surface Soil Moisture Product (fixture written by landimg)"
        _nc_var(
            ds,
            "time",
            ("time",),
            [float(day0)],
            None,
            units="days since 1970-01-01 00:00:00 UTC",
            calendar="standard",
            standard_name="time",
        )
        _nc_var(
            ds, "lat", ("lat",), lat.astype(np.float32), None, units="degrees_north", standard_name="latitude"
        )
        _nc_var(
            ds, "lon", ("lon",), lon.astype(np.float32), None, units="degrees_east", standard_name="longitude"
        )
        three = ("time", "lat", "lon")
        _nc_var(
            ds,
            "sm",
            three,
            sm[None].astype(np.float32),
            np.float32(_FILL),
            units="m3 m-3",
            long_name="Volumetric Soil Moisture",
            valid_range=np.array([0.0, 1.0], np.float32),
        )
        _nc_var(
            ds,
            "sm_uncertainty",
            three,
            np.where(seen, uncertainty, _FILL)[None].astype(np.float32),
            np.float32(_FILL),
            units="m3 m-3",
            long_name="Volumetric Soil Moisture Uncertainty",
        )
        _nc_var(
            ds,
            "flag",
            three,
            np.where(seen | (flag > 0), flag, 127)[None].astype(np.int8),
            np.int8(127),
            long_name="Flag",
            flag_values=np.array([0, 1, 2, 4, 8, 16, 32, 64], np.int8),
        )
        _nc_var(
            ds,
            "t0",
            three,
            np.where(seen, t0, _FILL)[None],
            np.float64(_FILL),
            units="days since 1970-01-01 00:00:00 UTC",
            long_name="Observation Timestamp",
        )
        _nc_var(
            ds,
            "dnflag",
            three,
            np.where(seen, 1, 0)[None].astype(np.int8),
            np.int8(0),
            long_name="Day / Night Flag",
            flag_values=np.array([0, 1, 2, 3], np.int8),
        )
    return path


_GLDAS_NAMES = {
    "SoilMoi0_10cm_inst": ("kg m-2", 0.1),
    "SoilMoi10_40cm_inst": ("kg m-2", 0.3),
    "SoilMoi40_100cm_inst": ("kg m-2", 0.6),
    "Tair_f_inst": ("K", "Tair"),
    "Qair_f_inst": ("kg kg-1", "Qair"),
    "Psurf_f_inst": ("Pa", "PSurf"),
    "Rainf_f_tavg": ("kg m-2 s-1", "Rainf"),
    "Snowf_tavg": ("kg m-2 s-1", "Snowf"),
    "Wind_f_inst": ("m s-1", "Wind"),
    "SWdown_f_tavg": ("W m-2", "SWdown"),
    "LWdown_f_tavg": ("W m-2", "LWdown"),
}


def gldas_file(
    directory: str,
    when: _dt.datetime,
    *,
    res: float = 0.25,
    region: Sequence[float] | None = None,
    bbox: Sequence[float] | None = None,
    field: Field = smooth_field,
    variables: Sequence[str] | None = None,
    units: dict[str, str] | None = None,
) -> str:
    """Write ``GLDAS_NOAH025_3H.AYYYYMMDD.HHMM.021.nc4`` (or ``NOAH10`` at 1 deg): global
    (-60..90 N) or a ``region`` (south, north, west, east) subset; -9999 outside ``bbox``.

    Soil moisture is ``field(sm_layerK)`` m3 m-3 x 1000 x thickness (kg m-2); forcing from
    :func:`forcing_field`. ``variables`` limits the variables written, ``units`` overrides units
    attributes (for bad-unit tests).
    """
    import netCDF4

    s, n, w, e = region if region is not None else (-60.0, 90.0, -180.0, 180.0)
    lat, lon = regular_axis(s, n, res), regular_axis(w, e, res)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    seen = _inside(lat2, lon2, bbox)
    tag = "NOAH025" if res == 0.25 else "NOAH10"
    path = os.path.join(directory, f"GLDAS_{tag}_3H.A{when:%Y%m%d.%H%M}.021.nc4")
    names = list(variables) if variables is not None else list(_GLDAS_NAMES)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("bnds", 2)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.title = f"GLDAS2.1 {tag} 3H (fixture written by landimg)"
        _nc_var(
            ds,
            "time",
            ("time",),
            [0.0],
            None,
            units=f"minutes since {when:%Y-%m-%d %H:%M:%S}",
            calendar="standard",
            bounds="time_bnds",
            standard_name="time",
        )
        _nc_var(ds, "time_bnds", ("time", "bnds"), [[0.0, 180.0]], None)
        _nc_var(
            ds, "lat", ("lat",), lat.astype(np.float32), None, units="degrees_north", standard_name="latitude"
        )
        _nc_var(
            ds, "lon", ("lon",), lon.astype(np.float32), None, units="degrees_east", standard_name="longitude"
        )
        for name in names:
            unit, spec = _GLDAS_NAMES[name]
            if name.startswith("SoilMoi"):
                layer = {"SoilMoi0_10cm_inst": "sm_layer1", "SoilMoi10_40cm_inst": "sm_layer2"}.get(
                    name, "sm_layer3"
                )
                values = field(layer, lat2, lon2, when) * 1000.0 * spec
            else:
                values = forcing_field(spec, lat2, lon2, when)
            data = np.where(seen, values, _FILL)[None].astype(np.float32)
            _nc_var(
                ds,
                name,
                ("time", "lat", "lon"),
                data,
                np.float32(_FILL),
                missing_value=np.float32(_FILL),
                units=(units or {}).get(name, unit),
                long_name=name,
            )
    return path
