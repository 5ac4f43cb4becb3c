"""SMAP L3 radiometer soil moisture, ``SPL3SMP`` (36 km) and ``SPL3SMP_E`` (9 km), HDF5 as distributed.

File ``SMAP_L3_SM_P_YYYYMMDD_Rnnnnn_nnn.h5`` (``SMAP_L3_SM_P_E_...`` for the enhanced product), one per
day, two groups: ``Soil_Moisture_Retrieval_Data_AM`` (6 am descending pass) and
``Soil_Moisture_Retrieval_Data_PM`` (6 pm ascending pass; every name ends in ``_pm``). Arrays are the
whole EASE-Grid 2.0 global grid (406 x 964 at 36 km, 1624 x 3856 at 9 km) without dimension scales.

Used: ``soil_moisture`` and ``soil_moisture_error`` (cm3/cm3 -> m3/m3 from their ``units``),
``retrieval_qual_flag`` (bit 0 set = recommended quality not met -> rejected), ``_FillValue`` -9999 and
the valid range -> missing, ``tb_time_seconds`` (seconds since 2000-01-01 11:58:55.816 UTC, J2000) or
``tb_time_utc``: a record's time is the mean observation time of its valid cells in the domain window.
Both passes become records (AM and PM). Regridding: exact area overlap on the equal-area EASE grid
(:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import warnings

import cftime
import numpy as np

from landimg.data.common import DataError, Records, attr, date_from_name, open_dataset, read_var
from landimg.data.products import Product
from landimg.data.regrid import EASE2, SourceGrid, ease2_source

__all__ = ["GROUPS", "J2000", "SPL3SMP", "SPL3SMP_E"]

#: Group of each pass and the suffix of its variable names.
GROUPS = {"AM": ("Soil_Moisture_Retrieval_Data_AM", ""), "PM": ("Soil_Moisture_Retrieval_Data_PM", "_pm")}
#: Epoch of ``tb_time_seconds``.
J2000 = cftime.datetime(2000, 1, 1, 11, 58, 55, 816000, calendar="standard")
_NOMINAL_HOUR = {"AM": 6.0, "PM": 18.0}  # local solar time of the pass


def _grid_for(path: str, expected: str) -> SourceGrid:
    group, suffix = GROUPS["AM"]
    ds = open_dataset(path, group, variables=("soil_moisture" + suffix,))
    try:
        shape = ds["soil_moisture" + suffix].shape
    finally:
        ds.close()
    rows, cols, _ = EASE2[expected]
    if tuple(shape) != (rows, cols):
        raise DataError(
            f"{path}: variable 'soil_moisture' has shape {tuple(shape)}, not the EASE-Grid 2.0 {expected} "
            f"global grid ({rows}, {cols}) of this product"
        )
    return ease2_source(expected)


def _times_seconds(ds, path: str, suffix: str, rows: slice, cols: slice) -> np.ndarray | None:
    """Observation times (seconds after J2000) on the window, NaN where missing; None if absent."""
    name = "tb_time_seconds" + suffix
    if name in ds.variables:
        return read_var(ds, path, name, rows, cols)[0]
    name = "tb_time_utc" + suffix
    if name not in ds.variables:
        return None
    raw = np.asarray(ds[name][rows, cols].values)
    text = np.char.decode(raw.astype("S"), "ascii", "replace") if raw.dtype.kind in "SO" else raw.astype(str)
    out = np.full(text.shape, np.nan)
    ok = np.vectorize(lambda s: bool(re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", s)))(text)
    if ok.any():
        stamps = np.array([s[:23].rstrip("Z") for s in text[ok]], dtype="datetime64[ms]")
        j2000 = np.datetime64("2000-01-01T11:58:55.816", "ms")
        out[ok] = (stamps - j2000).astype("timedelta64[ms]").astype(float) / 1000.0
    return out


def _read_pass(path: str, pass_: str, rows: slice, cols: slice, lon_mid: float):
    group, sfx = GROUPS[pass_]
    ds = open_dataset(path, group, variables=("soil_moisture" + sfx, "retrieval_qual_flag" + sfx))
    try:
        sm = read_var(ds, path, "soil_moisture" + sfx, rows, cols, "m3 m-3")[0]
        err = None
        if "soil_moisture_error" + sfx in ds.variables:
            err = read_var(ds, path, "soil_moisture_error" + sfx, rows, cols, "m3 m-3")[0]
        qual_var = ds["retrieval_qual_flag" + sfx]
        qual = np.asarray(qual_var[rows, cols].values)
        qfill = attr(qual_var, "_FillValue")
        bad = (qual.astype(np.int64) & 1) != 0
        if qfill is not None:
            bad &= qual != qfill  # a filled flag goes with a filled soil moisture
        sm = np.where(bad, np.nan, sm)
        if np.any((sm < 0.0) | (sm > 1.0)):
            raise DataError(
                f"{path}: variable 'soil_moisture{sfx}' has values outside [0, 1] m3/m3 that are neither "
                "fill nor flagged (undeclared fill value or wrong units?)"
            )
        secs = _times_seconds(ds, path, sfx, rows, cols)
    finally:
        ds.close()
    day = date_from_name(path)
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
    def read(path: str, rows: slice, cols: slice) -> Records:
        _, ncols, _ = EASE2[expected]
        lon_mid = -180.0 + 360.0 * (0.5 * (cols.start + cols.stop)) / ncols
        times, sms, errs = [], [], []
        for pass_ in ("AM", "PM"):
            when, sm, err = _read_pass(path, pass_, rows, cols, lon_mid)
            times.append(when)
            sms.append(sm)
            errs.append(err)
        fields = {"sm": np.stack(sms)}
        if all(e is not None for e in errs):
            fields["sm_error"] = np.stack(errs)
        else:
            warnings.warn(
                f"{os.path.basename(path)}: no soil_moisture_error; sm_error not written", stacklevel=2
            )
        return Records(path, times, fields, ease2_source(expected), {"passes": "AM PM"})

    return read


SPL3SMP = Product(
    name="spl3smp",
    kind="retrieval",
    description="SMAP L3 radiometer 36 km (SMAP_L3_SM_P_YYYYMMDD_*.h5), AM and PM passes",
    grid=lambda path: _grid_for(path, "M36"),
    read=_reader("M36"),
)
SPL3SMP_E = Product(
    name="spl3smp_e",
    kind="retrieval",
    description="SMAP L3 enhanced 9 km (SMAP_L3_SM_P_E_YYYYMMDD_*.h5), AM and PM passes",
    grid=lambda path: _grid_for(path, "M09"),
    read=_reader("M09"),
)
