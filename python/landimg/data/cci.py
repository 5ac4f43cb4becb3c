"""ESA CCI Soil Moisture daily files (COMBINED, ACTIVE or PASSIVE), netCDF4 as distributed.

File ``ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-YYYYMMDD000000-fv0x.y.nc``, one per day: ``time`` (1, days
since 1970-01-01), ``lat`` (720, descending 89.875 .. -89.875), ``lon`` (1440), ``sm`` and
``sm_uncertainty`` (m3 m-3, ``_FillValue`` -9999), ``flag`` (0 = no inconsistency detected; anything
else rejected) and ``t0`` (observation time, days since 1970-01-01). A record's time is the mean ``t0``
of its valid cells in the domain window (the file's ``time`` when none). Regridding: exact area overlap
(:mod:`landimg.data.regrid`); the descending latitude is handled there.
"""

from __future__ import annotations

import numpy as np

from landimg.data.common import DataError, Records, attr, decode_times, open_dataset, read_var
from landimg.data.products import Product
from landimg.data.regrid import SourceGrid, latlon_source

__all__ = ["ESACCI"]


def _grid(path: str) -> SourceGrid:
    ds = open_dataset(path, variables=("lat", "lon", "sm"))
    try:
        return latlon_source(ds["lat"].values, ds["lon"].values, path)
    finally:
        ds.close()


def _read(path: str, rows: slice, cols: slice) -> Records:
    ds = open_dataset(path, variables=("time", "sm", "flag"))
    try:
        times, calendar = decode_times(ds["time"], path)
        sm = read_var(ds, path, "sm", rows, cols, "m3 m-3")
        err = None
        if "sm_uncertainty" in ds.variables:
            err = read_var(ds, path, "sm_uncertainty", rows, cols, "m3 m-3")
        flag = np.asarray(ds["flag"][..., rows, cols].values).reshape(sm.shape)
        sm = np.where(flag == 0, sm, np.nan)
        if sm.shape[0] != len(times):
            raise DataError(f"{path}: variable 'sm' has {sm.shape[0]} records, 'time' has {len(times)}")
        if np.any((sm < 0.0) | (sm > 1.0)):
            raise DataError(f"{path}: variable 'sm' has values outside [0, 1] m3/m3 that are not fill values")
        if "t0" in ds.variables:
            t0 = read_var(ds, path, "t0", rows, cols)
            t0_units = attr(ds["t0"], "units", "days since 1970-01-01 00:00:00")
            times = [
                _mean_time(t0[k], sm[k], t0_units, calendar, path) or times[k] for k in range(len(times))
            ]
    finally:
        ds.close()
    fields = {"sm": sm}
    if err is not None:
        fields["sm_error"] = err
    return Records(path, list(times), fields, None)


def _mean_time(t0: np.ndarray, sm: np.ndarray, units: str, calendar: str, path: str):
    import cftime

    use = np.isfinite(t0) & np.isfinite(sm)
    if not use.any():
        return None
    try:
        return cftime.num2date(float(np.mean(t0[use])), str(units), calendar, only_use_cftime_datetimes=True)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{path}: variable 't0' has units {units!r}, not '<unit> since <date>'") from None


ESACCI = Product(
    name="esacci",
    kind="retrieval",
    description="ESA CCI SM daily (ESACCI-SOILMOISTURE-L3S-SSMV-*-YYYYMMDD000000-fv*.nc), sm/sm_uncertainty/flag/t0",
    grid=_grid,
    read=_read,
)
