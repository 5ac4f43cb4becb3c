"""SMAP L3 radiometer soil moisture, ``SPL3SMP`` (36 km) and ``SPL3SMP_E`` (9 km), HDF5 as distributed.

File ``SMAP_L3_SM_P_YYYYMMDD_Rnnnnn_nnn.h5`` (``SMAP_L3_SM_P_E_...`` for the enhanced product), one per
day, two groups: ``Soil_Moisture_Retrieval_Data_AM`` (6 am descending pass) and
``Soil_Moisture_Retrieval_Data_PM`` (6 pm ascending pass; every name ends in ``_pm``). Arrays are the
whole EASE-Grid 2.0 global grid (406 x 964 at 36 km, 1624 x 3856 at 9 km) without dimension scales.

Used: ``soil_moisture`` and ``soil_moisture_error`` (cm3/cm3 -> m3/m3 from their ``units``),
``retrieval_qual_flag`` (bit 0 set = recommended quality not met -> rejected), ``_FillValue`` -9999 and
the valid range -> missing, ``tb_time_seconds`` (seconds since 2000-01-01 11:58:55.816 UTC, J2000) or
``tb_time_utc``: a record's time is the mean observation time of its valid cells in the domain window.
Both passes become records (AM and PM). The arrays carry no coordinates: their two dimensions are the
EASE grid's rows and columns by the product's specification, and the shape check refuses anything else.
Regridding: exact area overlap on the equal-area EASE grid (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings

import cftime
import numpy as np

from landimg import units
from landimg.data.common import DataError, Records, attr, date_from_name
from landimg.data.decoding import values
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.regrid import EASE2, SourceGrid, ease2_source

__all__ = ["GROUPS", "J2000", "SPL3SMP", "SPL3SMP_E"]

#: Group of each pass and the suffix of its variable names.
GROUPS = {"AM": ("Soil_Moisture_Retrieval_Data_AM", ""), "PM": ("Soil_Moisture_Retrieval_Data_PM", "_pm")}
#: Epoch of ``tb_time_seconds``.
J2000 = cftime.datetime(2000, 1, 1, 11, 58, 55, 816000, calendar="standard")
_NOMINAL_HOUR = {"AM": 6.0, "PM": 18.0}  # local solar time of the pass


def _grid_for(src: NcFile, expected: str) -> SourceGrid:
    group, suffix = GROUPS["AM"]
    shape = src.dataset(group, variables=("soil_moisture" + suffix,))["soil_moisture" + suffix].shape
    rows, cols, _ = EASE2[expected]
    if tuple(shape) != (rows, cols):
        raise DataError(
            f"{src.label}: variable 'soil_moisture' has shape {tuple(shape)}, not the EASE-Grid 2.0 {expected} "
            f"global grid ({rows}, {cols}) of this product"
        )
    return ease2_source(expected)


def _window(
    src: NcFile, group: str, name: str, rows: slice, cols: slice, quantity=None, check=True
) -> np.ndarray:
    """A (row, column) window of an EASE-grid array, decoded, converted to ``quantity``'s unit."""
    var = src.dataset(group, variables=(name,))[name]
    data = values(var.isel({var.dims[0]: rows, var.dims[1]: cols}), src.label, name)
    if quantity is None:
        return data
    where = f"{src.label}: variable {name!r}"
    try:
        data = quantity.conversion(attr(var, "units"), where, assume_default=False).apply(data)
        if check:
            data = quantity.checked(data, where, attr(var, "units"))
    except units.UnitsError as exc:
        raise DataError(str(exc)) from None
    return data


def _times_seconds(src: NcFile, group: str, suffix: str, rows: slice, cols: slice) -> np.ndarray | None:
    """Observation times (seconds after J2000) on the window, NaN where missing; None if absent."""
    ds = src.dataset(group)
    name = "tb_time_seconds" + suffix
    if name in ds.variables:
        return _window(src, group, name, rows, cols)
    name = "tb_time_utc" + suffix
    if name not in ds.variables:
        return None
    var = ds[name]
    raw = np.asarray(var.isel({var.dims[0]: rows, var.dims[1]: cols}).values)
    text = np.char.decode(raw.astype("S"), "ascii", "replace") if raw.dtype.kind in "SO" else raw.astype(str)
    out = np.full(text.shape, np.nan)
    ok = np.vectorize(lambda s: bool(re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", s)))(text)
    if ok.any():
        stamps = np.array([s[:23].rstrip("Z") for s in text[ok]], dtype="datetime64[ms]")
        j2000 = np.datetime64("2000-01-01T11:58:55.816", "ms")
        out[ok] = (stamps - j2000).astype("timedelta64[ms]").astype(float) / 1000.0
    return out


def _read_pass(src: NcFile, pass_: str, rows: slice, cols: slice, lon_mid: float):
    group, sfx = GROUPS[pass_]
    ds = src.dataset(group, variables=("soil_moisture" + sfx, "retrieval_qual_flag" + sfx))
    sm = _window(src, group, "soil_moisture" + sfx, rows, cols, units.SOIL_MOISTURE, check=False)
    err = None
    if "soil_moisture_error" + sfx in ds.variables:
        err = _window(src, group, "soil_moisture_error" + sfx, rows, cols, units.RETRIEVAL_ERROR)
    qual = _window(src, group, "retrieval_qual_flag" + sfx, rows, cols)  # fill (no retrieval) -> NaN
    bad = np.isfinite(qual) & ((np.nan_to_num(qual).astype(np.int64) & 1) != 0)
    sm = np.where(bad, np.nan, sm)
    try:
        sm = units.SOIL_MOISTURE.checked(
            sm,
            f"{src.label}: variable 'soil_moisture{sfx}'",
            attr(ds["soil_moisture" + sfx], "units"),
            hint=" (neither fill nor flagged: undeclared fill value or wrong units?)",
        )
    except units.UnitsError as exc:
        raise DataError(str(exc)) from None
    secs = _times_seconds(src, group, sfx, rows, cols)
    day = date_from_name(src.path)
    when = None
    if secs is not None:
        use = np.isfinite(secs) & np.isfinite(sm)
        if not use.any():
            use = np.isfinite(secs)
        if use.any():
            when = J2000 + _dt.timedelta(seconds=float(np.mean(secs[use])))
    if when is None:  # nominal local solar time of the pass at the window's central longitude
        when = day + _dt.timedelta(hours=_NOMINAL_HOUR[pass_] - lon_mid / 15.0)
    return when, sm, err


def _reader(expected: str):
    def read(src: NcFile, rows: slice, cols: slice) -> Records:
        _, ncols, _ = EASE2[expected]
        lon_mid = -180.0 + 360.0 * (0.5 * (cols.start + cols.stop)) / ncols
        times, sms, errs = [], [], []
        for pass_ in ("AM", "PM"):
            when, sm, err = _read_pass(src, pass_, rows, cols, lon_mid)
            times.append(when)
            sms.append(sm)
            errs.append(err)
        fields = {"sm": np.stack(sms)}
        if all(e is not None for e in errs):
            fields["sm_error"] = np.stack(errs)
        else:
            warnings.warn(
                f"{os.path.basename(src.path)}: no soil_moisture_error; sm_error not written", stacklevel=2
            )
        return Records(src.path, times, fields, ease2_source(expected), {"passes": "AM PM"})

    return read


SPL3SMP = Product(
    name="spl3smp",
    kind="retrieval",
    description="SMAP L3 radiometer 36 km (SMAP_L3_SM_P_YYYYMMDD_*.h5), AM and PM passes",
    grid=lambda src: _grid_for(src, "M36"),
    read=_reader("M36"),
)
SPL3SMP_E = Product(
    name="spl3smp_e",
    kind="retrieval",
    description="SMAP L3 enhanced 9 km (SMAP_L3_SM_P_E_YYYYMMDD_*.h5), AM and PM passes",
    grid=lambda src: _grid_for(src, "M09"),
    read=_reader("M09"),
)
