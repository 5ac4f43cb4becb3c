"""CMFD (China Meteorological Forcing Dataset), 3-hourly 0.1 deg netCDF over China.

Files hold one variable each (``temp_CMFD_..._YYYYMM.nc`` ...) or several: ``time`` (CF units),
``lat``, ``lon`` (1-D), variables (time, lat, lon): ``temp`` K, ``shum`` kg kg-1, ``pres`` Pa,
``wind`` m s-1, ``srad`` and ``lrad`` W m-2, ``prec`` mm hr-1 (3-hourly mean rate, converted to
kg m-2 s-1 through the density of water) -> ALMA Tair, Qair, PSurf, Wind, SWdown, LWdown, Rainf
(total precipitation; no snow split). Units are converted from each file's ``units`` attribute.
Regridding: exact area overlap (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

from landimg.data.common import Records
from landimg.data.gridded import latlon_grid
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import ALMA_QUANTITIES, read_mapped

__all__ = ["CMFD"]

_NAMES = {"Tair": "temp", "Qair": "shum", "PSurf": "pres", "Wind": "wind", "SWdown": "srad", "LWdown": "lrad",
          "Rainf": "prec"}  # fmt: skip
_MAPPING = {out: (name, ALMA_QUANTITIES[out]) for out, name in _NAMES.items()}


def _read(src: NcFile, rows: slice, cols: slice) -> Records:
    return read_mapped(src, rows, cols, _MAPPING)


CMFD = Product(
    name="cmfd",
    kind="forcing",
    description="CMFD 3-hourly (temp, shum, pres, wind, srad, lrad, prec in mm hr-1) -> ALMA",
    grid=latlon_grid,
    read=_read,
)
