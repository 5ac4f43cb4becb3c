"""ALMA forcing (landimg's forcing layout; also PLUMBER2-style gridded files and what ``regrid`` writes).

netCDF with a time coordinate (CF units, any calendar), 1-D latitude and longitude coordinates and
variables on (time, lat, lon) in any order (found by name):
``Tair`` K, ``Qair`` kg kg-1, ``PSurf`` Pa, ``Rainf`` and optional ``Snowf`` kg m-2 s-1, ``Wind`` m s-1
(or ``Wind_E``/``Wind_N``: the speed of the regridded vector), ``SWdown``, ``LWdown`` W m-2; units
converted from the attributes. Regridding: exact area overlap (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import numpy as np

from landimg.data.common import ALMA_UNITS, DataError, Records
from landimg.data.gridded import latlon_grid
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import ALMA_QUANTITIES, read_mapped

__all__ = ["ALMA"]

_MAPPING = {name: (name, q) for name, q in ALMA_QUANTITIES.items()}


def _read(src: NcFile, rows: slice, cols: slice) -> Records:
    return read_mapped(src, rows, cols, _MAPPING)


def _finish(times: np.ndarray, fields: dict[str, np.ndarray]):
    fields = dict(fields)
    if "Wind" not in fields and {"Wind_E", "Wind_N"} <= set(fields):
        fields["Wind"] = np.hypot(fields.pop("Wind_E"), fields.pop("Wind_N"))
    fields.pop("Wind_E", None)
    fields.pop("Wind_N", None)
    missing = [n for n in ALMA_UNITS if n != "Snowf" and n not in fields]
    if missing:
        raise DataError(f"--files: variable {missing[0]!r} is in none of the files (ALMA forcing)")
    return times, fields


ALMA = Product(
    name="alma",
    kind="forcing",
    description="ALMA forcing (Tair, Qair, PSurf, Rainf, Snowf, Wind, SWdown, LWdown)",
    grid=latlon_grid,
    read=_read,
    finish=_finish,
)
