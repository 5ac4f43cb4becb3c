"""ALMA forcing (landimg's forcing layout; also PLUMBER2-style gridded files and what ``regrid`` writes).

netCDF with ``time`` (CF units, any calendar), 1-D ``lat``, ``lon`` and (time, lat, lon) variables
``Tair`` K, ``Qair`` kg kg-1, ``PSurf`` Pa, ``Rainf`` and optional ``Snowf`` kg m-2 s-1, ``Wind`` m s-1
(or ``Wind_E``/``Wind_N``: the speed of the regridded vector), ``SWdown``, ``LWdown`` W m-2; units
converted from the attributes. Regridding: exact area overlap (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import numpy as np

from landimg.data.common import ALMA_UNITS, DataError, Records, read_mapped
from landimg.data.gridded import latlon_grid
from landimg.data.products import Product

__all__ = ["ALMA"]

_MAPPING = {name: (name, units) for name, units in ALMA_UNITS.items()}
_MAPPING["Wind_E"] = ("Wind_E", "m s-1")
_MAPPING["Wind_N"] = ("Wind_N", "m s-1")


def _read(path: str, rows: slice, cols: slice) -> Records:
    return read_mapped(path, rows, cols, _MAPPING, time_names=("time",))


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
