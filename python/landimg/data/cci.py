"""ESA CCI Soil Moisture daily files (COMBINED, ACTIVE or PASSIVE), netCDF4 as distributed.

File ``ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-YYYYMMDD000000-fv0x.y.nc``, one per day: ``time`` (1, days
since 1970-01-01), ``lat`` (720, descending 89.875 .. -89.875), ``lon`` (1440), ``sm`` and
``sm_uncertainty`` (m3 m-3, ``_FillValue`` -9999, ``valid_range`` [0, 1]), ``flag`` (0 = no inconsistency
detected; anything else, and its fill value 127, rejected) and ``t0`` (observation time, days since
1970-01-01). A record's time is the mean ``t0`` of its valid cells in the domain window (the file's
``time`` when none). Dimensions are found by name; regridding: exact area overlap
(:mod:`landimg.data.regrid`), where the descending latitude is handled.
"""

from __future__ import annotations

import numpy as np

from landimg import units
from landimg.data.common import DataError, Records, attr, decode_times
from landimg.data.gridded import latlon_grid
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import check_var, read_var

__all__ = ["ESACCI"]


def _grid(src: NcFile):
    src.dataset(variables=("sm",))
    return latlon_grid(src)


def _read(src: NcFile, rows: slice, cols: slice) -> Records:
    src.dataset(variables=("sm", "flag"))
    tname = src.layout().coord("time")
    times, calendar = decode_times(src.ds[tname], src.label, tname)
    sm = read_var(src, "sm", rows, cols, units.SOIL_MOISTURE, check=False)
    flag = read_var(src, "flag", rows, cols)
    sm = np.where(flag == 0, sm, np.nan)
    sm = check_var(src, "sm", sm, units.SOIL_MOISTURE, hint=" (not flagged; undeclared fill value?)")
    if sm.shape[0] != len(times):
        raise DataError(f"{src.label}: variable 'sm' has {sm.shape[0]} records, {tname!r} has {len(times)}")
    fields = {"sm": sm}
    if "sm_uncertainty" in src.ds.variables:
        fields["sm_error"] = read_var(src, "sm_uncertainty", rows, cols, units.RETRIEVAL_ERROR)
    if "t0" in src.ds.variables:
        t0 = read_var(src, "t0", rows, cols)
        t0_units = attr(src.ds["t0"], "units", "days since 1970-01-01 00:00:00")
        times = [
            _mean_time(t0[k], sm[k], t0_units, calendar, src.label) or times[k] for k in range(len(times))
        ]
    return Records(src.path, list(times), fields, None)


def _mean_time(t0: np.ndarray, sm: np.ndarray, units_: str, calendar: str, label: str):
    import cftime

    use = np.isfinite(t0) & np.isfinite(sm)
    if not use.any():
        return None
    try:
        return cftime.num2date(
            float(np.mean(t0[use])), " ".join(str(units_).split()), calendar, only_use_cftime_datetimes=True
        )
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{label}: variable 't0' has units {units_!r}, not '<unit> since <date>'") from None


ESACCI = Product(
    name="esacci",
    kind="retrieval",
    description=(
        "ESA CCI SM daily (ESACCI-SOILMOISTURE-L3S-SSMV-*-YYYYMMDD000000-fv*.nc), sm/sm_uncertainty/flag/t0"
    ),
    grid=_grid,
    read=_read,
)
