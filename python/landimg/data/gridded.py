"""landimg's own regular-grid retrieval layout (what ``regrid`` writes for retrievals).

netCDF with a time coordinate (CF units, any calendar), latitude and longitude coordinates (found by
name; ascending or descending, -180..180 or 0..360) and ``sm`` (time, lat, lon in any order) in m3 m-3
(``units`` converted when given, m3 m-3 assumed when absent), optional ``sm_error`` (same dimensions,
m3 m-3); fill values and valid ranges -> missing.
"""

from __future__ import annotations

from landimg import units
from landimg.data.common import DataError, Records, decode_times
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import read_var
from landimg.data.regrid import SourceGrid, latlon_source

__all__ = ["GRIDDED", "latlon_grid"]

_HINT = " (undeclared fill value or percent units?)"


def latlon_grid(src: NcFile) -> SourceGrid:
    """SourceGrid of a file's 1-D latitude and longitude coordinates (found by name)."""
    layout = src.layout()
    names = (layout.coord("lat"), layout.coord("lon"))
    return latlon_source(layout.coord_values("lat"), layout.coord_values("lon"), src.label, names)


def _read(src: NcFile, rows: slice, cols: slice) -> Records:
    src.dataset(variables=("sm",))
    tname = src.layout().coord("time")
    times, _ = decode_times(src.ds[tname], src.label, tname)
    fields = {"sm": read_var(src, "sm", rows, cols, units.SOIL_MOISTURE, assume_units=True)}
    if "sm_error" in src.ds.variables:
        fields["sm_error"] = read_var(src, "sm_error", rows, cols, units.RETRIEVAL_ERROR, assume_units=True)
    sm = fields["sm"]
    if sm.shape[0] != len(times):
        raise DataError(f"{src.label}: variable 'sm' has {sm.shape[0]} records, {tname!r} has {len(times)}")
    return Records(src.path, times, fields, None)


GRIDDED = Product(
    name="gridded",
    kind="retrieval",
    description="landimg's regular-grid layout: time, lat, lon, sm (m3 m-3), optional sm_error",
    grid=latlon_grid,
    read=_read,
)
