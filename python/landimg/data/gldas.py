"""GLDAS-2.x Noah 3-hourly files (``GLDAS_NOAH025_3H`` 0.25 deg, ``GLDAS_NOAH10_3H`` 1 deg), netCDF4.

File ``GLDAS_NOAH025_3H.AYYYYMMDD.HHMM.021.nc4``, one per 3 h: ``time`` (1, CF units), ``lat``
(ascending, -59.875 .. 89.875), ``lon`` (-179.875 .. 179.875), variables (time, lat, lon) with
``_FillValue``/``missing_value`` -9999 over ocean and ice.

* reference soil moisture (product ``gldas``): ``SoilMoi0_10cm_inst``, ``SoilMoi10_40cm_inst``,
  ``SoilMoi40_100cm_inst`` (kg m-2 of water in the layer) -> m3 m-3 = value / (1000 kg m-3 x layer
  thickness); a layer no file holds is NaN with a warning (users download variable subsets);
* forcing (product ``gldas_forcing``): ``Tair_f_inst`` K, ``Qair_f_inst`` kg kg-1, ``Psurf_f_inst``
  Pa, ``Rainf_f_tavg`` and ``Snowf_tavg`` kg m-2 s-1, ``Wind_f_inst`` m s-1, ``SWdown_f_tavg`` and
  ``LWdown_f_tavg`` W m-2 -> ALMA names, units converted from the files' attributes.

Regridding: exact area overlap (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import warnings

import numpy as np

from landimg.data.common import (
    LAYERS,
    WATER_DENSITY,
    DataError,
    Records,
    file_times,
    open_dataset,
    read_mapped,
    read_var,
)
from landimg.data.gridded import latlon_grid
from landimg.data.products import Product

__all__ = ["GLDAS_FORCING", "GLDAS_SM", "SM_VARIABLES"]

#: Soil-moisture variable of each verification layer.
SM_VARIABLES = ("SoilMoi0_10cm_inst", "SoilMoi10_40cm_inst", "SoilMoi40_100cm_inst")

_FORCING = {
    "Tair": ("Tair_f_inst", "K"),
    "Qair": ("Qair_f_inst", "kg kg-1"),
    "PSurf": ("Psurf_f_inst", "Pa"),
    "Rainf": ("Rainf_f_tavg", "kg m-2 s-1"),
    "Snowf": ("Snowf_tavg", "kg m-2 s-1"),
    "Wind": ("Wind_f_inst", "m s-1"),
    "SWdown": ("SWdown_f_tavg", "W m-2"),
    "LWdown": ("LWdown_f_tavg", "W m-2"),
}


def _read_sm(path: str, rows: slice, cols: slice) -> Records:
    ds = open_dataset(path)
    try:
        times, _ = file_times(ds, path, ("time",))
        shape = (len(times), len(LAYERS), rows.stop - rows.start, cols.stop - cols.start)
        sm = np.full(shape, np.nan)
        found = 0
        for k, (name, (top, bottom)) in enumerate(zip(SM_VARIABLES, LAYERS, strict=True)):
            if name not in ds.variables:
                warnings.warn(
                    f"GLDAS file(s) lack {name}: the {top * 100:g}-{bottom * 100:g} cm layer is NaN",
                    stacklevel=2,
                )
                continue
            kg_m2 = read_var(ds, path, name, rows, cols, "kg m-2", water=True)
            sm[:, k] = kg_m2 / (WATER_DENSITY * (bottom - top))
            found += 1
    finally:
        ds.close()
    if not found:
        raise DataError(f"{path}: none of {', '.join(SM_VARIABLES)} is in the file")
    return Records(path, times, {"sm": sm}, None)


def _read_forcing(path: str, rows: slice, cols: slice) -> Records:
    return read_mapped(path, rows, cols, _FORCING, time_names=("time",))


GLDAS_SM = Product(
    name="gldas",
    kind="reference",
    description="GLDAS Noah 3-hourly (GLDAS_NOAH*_3H.AYYYYMMDD.HHMM.*.nc4), SoilMoi*_inst kg m-2 -> m3 m-3",
    grid=latlon_grid,
    read=_read_sm,
)
GLDAS_FORCING = Product(
    name="gldas_forcing",
    kind="forcing",
    description="GLDAS Noah 3-hourly forcing (Tair_f_inst, Qair_f_inst, ..., LWdown_f_tavg) -> ALMA",
    grid=latlon_grid,
    read=_read_forcing,
)
