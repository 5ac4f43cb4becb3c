"""landimg's own regular-grid retrieval layout (what ``regrid`` writes for retrievals).

netCDF with 1-D ``time`` (CF units, any calendar), ``lat``, ``lon`` (ascending or descending) and
``sm`` (time, lat, lon) in m3 m-3 (``units`` converted when given, m3 m-3 assumed when absent),
optional ``sm_error`` (same shape, m3 m-3); fill values and valid ranges -> missing.
"""

from __future__ import annotations

import numpy as np

from landimg.data.common import DataError, Records, decode_times, open_dataset, read_var
from landimg.data.products import Product
from landimg.data.regrid import SourceGrid, latlon_source

__all__ = ["GRIDDED", "latlon_grid"]


def latlon_grid(path: str, lat: str = "lat", lon: str = "lon") -> SourceGrid:
    """SourceGrid of a file with 1-D coordinates ``lat``/``lon``."""
    ds = open_dataset(path, variables=(lat, lon))
    try:
        return latlon_source(ds[lat].values, ds[lon].values, path, (lat, lon))
    finally:
        ds.close()


def _read(path: str, rows: slice, cols: slice) -> Records:
    ds = open_dataset(path, variables=("time", "sm"))
    try:
        times, _ = decode_times(ds["time"], path)
        fields = {"sm": read_var(ds, path, "sm", rows, cols, "m3 m-3", default_units="m3 m-3")}
        if "sm_error" in ds.variables:
            fields["sm_error"] = read_var(ds, path, "sm_error", rows, cols, "m3 m-3", default_units="m3 m-3")
    finally:
        ds.close()
    sm = fields["sm"]
    if sm.shape[0] != len(times):
        raise DataError(f"{path}: variable 'sm' has {sm.shape[0]} records, 'time' has {len(times)}")
    if np.any((sm < 0.0) | (sm > 1.0)):
        raise DataError(
            f"{path}: variable 'sm' has values outside [0, 1] m3/m3 (undeclared fill value or percent units?)"
        )
    return Records(path, times, fields, None)


GRIDDED = Product(
    name="gridded",
    kind="retrieval",
    description="landimg's regular-grid layout: time, lat, lon, sm (m3 m-3), optional sm_error",
    grid=latlon_grid,
    read=_read,
)
