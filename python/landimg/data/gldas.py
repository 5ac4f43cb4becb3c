"""GLDAS-2.x Noah 3-hourly files (``GLDAS_NOAH025_3H`` 0.25 deg, ``GLDAS_NOAH10_3H`` 1 deg), netCDF4.

File ``GLDAS_NOAH025_3H.AYYYYMMDD.HHMM.021.nc4``, one per 3 h: ``time`` (1, CF units), ``lat``
(ascending, -59.875 .. 89.875), ``lon`` (-179.875 .. 179.875), variables (time, lat, lon) with
``_FillValue``/``missing_value`` -9999 over ocean and ice; dimensions are found by name.

* reference soil moisture (product ``gldas``): ``SoilMoi0_10cm_inst``, ``SoilMoi10_40cm_inst``,
  ``SoilMoi40_100cm_inst`` (kg m-2 of water in the layer; mm of water also accepted) -> m3 m-3 = value /
  (1000 kg m-3 x layer thickness), checked in [0, 1]; a layer no file holds is NaN with one warning
  (users download variable subsets);
* forcing (product ``gldas_forcing``): ``Tair_f_inst`` K, ``Qair_f_inst`` kg kg-1, ``Psurf_f_inst``
  Pa, ``Rainf_f_tavg`` and ``Snowf_tavg`` kg m-2 s-1, ``Wind_f_inst`` m s-1, ``SWdown_f_tavg`` and
  ``LWdown_f_tavg`` W m-2 -> ALMA names, units converted from the files' attributes.

Regridding: exact area overlap (:mod:`landimg.data.regrid`).
"""

from __future__ import annotations

import warnings

import numpy as np

from landimg import units
from landimg.data.common import LAYERS, DataError, Records
from landimg.data.gridded import latlon_grid
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import ALMA_QUANTITIES, check_var, file_times, read_mapped, read_var

__all__ = ["GLDAS_FORCING", "GLDAS_SM", "SM_VARIABLES"]

#: Soil-moisture variable of each verification layer.
SM_VARIABLES = ("SoilMoi0_10cm_inst", "SoilMoi10_40cm_inst", "SoilMoi40_100cm_inst")

_FORCING = {
    "Tair": "Tair_f_inst",
    "Qair": "Qair_f_inst",
    "PSurf": "Psurf_f_inst",
    "Rainf": "Rainf_f_tavg",
    "Snowf": "Snowf_tavg",
    "Wind": "Wind_f_inst",
    "SWdown": "SWdown_f_tavg",
    "LWdown": "LWdown_f_tavg",
}


def _read_sm(src: NcFile, rows: slice, cols: slice) -> Records:
    times, _ = file_times(src)
    fields = {}
    for name, (top, bottom) in zip(SM_VARIABLES, LAYERS, strict=True):
        if name not in src.ds.variables:
            continue
        kg_m2 = read_var(src, name, rows, cols, units.LAYER_WATER, check=False)
        sm = kg_m2 / (units.WATER_DENSITY * (bottom - top))
        fields[name] = check_var(
            src, name, sm, units.SOIL_MOISTURE, hint=f" (water in a {bottom - top:g} m layer)"
        )
    if not fields:
        raise DataError(f"{src.label}: none of {', '.join(SM_VARIABLES)} is in the file")
    return Records(src.path, times, fields, None)


def _finish_sm(times: np.ndarray, fields: dict[str, np.ndarray]):
    """The layers' fields as ``sm`` (time, layer, ny, nx); layers no file holds are NaN, with one warning."""
    first = next(iter(fields.values()))
    sm = np.full((first.shape[0], len(LAYERS)) + first.shape[1:], np.nan)
    missing = []
    for k, name in enumerate(SM_VARIABLES):
        if name in fields:
            sm[:, k] = fields[name]
        else:
            missing.append(f"{name} ({LAYERS[k][0] * 100:g}-{LAYERS[k][1] * 100:g} cm)")
    if missing:
        warnings.warn(f"GLDAS files lack {', '.join(missing)}: those layers are NaN", stacklevel=2)
    return times, {"sm": sm}


def _read_forcing(src: NcFile, rows: slice, cols: slice) -> Records:
    return read_mapped(src, rows, cols, {out: (name, ALMA_QUANTITIES[out]) for out, name in _FORCING.items()})


GLDAS_SM = Product(
    name="gldas",
    kind="reference",
    description="GLDAS Noah 3-hourly (GLDAS_NOAH*_3H.AYYYYMMDD.HHMM.*.nc4), SoilMoi*_inst kg m-2 -> m3 m-3",
    grid=latlon_grid,
    read=_read_sm,
    finish=_finish_sm,
)
GLDAS_FORCING = Product(
    name="gldas_forcing",
    kind="forcing",
    description="GLDAS Noah 3-hourly forcing (Tair_f_inst, Qair_f_inst, ..., LWdown_f_tavg) -> ALMA",
    grid=latlon_grid,
    read=_read_forcing,
)
