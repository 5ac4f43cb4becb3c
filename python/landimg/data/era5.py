"""ERA5 and ERA5-Land single levels as the Climate Data Store wrote them, old and new.

Files: netCDF-4 from the new CDS (``valid_time``, seconds since 1970-01-01, float32) or netCDF-3 64-bit
offset from the old CDS (``time``, hours since 1900-01-01, int16 CF-packed with ``scale_factor``/
``add_offset``; ``expver`` when ERA5 and ERA5T are mixed); ``latitude`` (descending), ``longitude``
(0 .. 360 or -180 .. 180); dimensions found by name. Where a file has the land-sea mask ``lsm``
(ERA5; ERA5-Land files are land only), source cells with ``lsm`` < 0.5 are left out of the
area-weighted means: ERA5's values over the sea (about 0 for ``swvl``) never enter a land cell.

* reference soil moisture (product ``era5land``, from ERA5-Land or ERA5 single-level files, which hold
  the same names): ``swvl1`` .. ``swvl3`` (m3 m-3 on 0-7, 7-28 and 28-100 cm) mapped to 0-10, 10-40 and
  40-100 cm by layer-thickness overlap (0-10 = (7 swvl1 + 3 swvl2) / 10; 10-40 = (18 swvl2 + 12 swvl3) /
  30; 40-100 = swvl3); a layer needing a variable no file holds is NaN (one warning naming them), and
  files from which no layer can be made are refused;
* forcing (products ``era5`` and ``era5land_forcing``): ``t2m`` -> Tair; ``d2m`` with ``sp`` ->
  Qair (Tetens over water as in the IFS: e = 611.21 exp(17.502 (Td - 273.16) / (Td - 32.19)) Pa,
  q = 0.621981 e / (p - 0.378019 e)); ``sp`` -> PSurf; ``u10``, ``v10`` -> Wind (speed of the regridded
  vector); ``tp`` (and ``sf`` when present: Snowf, Rainf = tp - sf) m of water, ``ssrd``/``strd`` J m-2,
  de-accumulated and divided by 3600 s: ERA5 hourly fields accumulate over the hour ending at the
  record time; ERA5-Land fields accumulate from 00 UTC (the 01 UTC record is the first hour, the 00
  UTC record closes the previous day), so the hour's amount is the difference of consecutive hourly
  records; a record whose previous hour is missing is dropped with a warning. Flux records keep the
  product's time (the end of their hour).

Regridding: exact area overlap (:mod:`landimg.data.regrid`); Qair and Wind are computed on the model
grid from the regridded inputs (de-accumulation and unit changes are linear and commute with it).
"""

from __future__ import annotations

import warnings

import numpy as np

from landimg import units
from landimg.data.common import DataError, Records
from landimg.data.gridded import latlon_grid
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.reading import check_var, read_mapped, read_var
from landimg.data.regrid import overlap_lengths

__all__ = [
    "ERA5LAND_FORCING",
    "ERA5LAND_SM",
    "ERA5_FORCING",
    "SWVL_LAYERS",
    "layer_matrix",
    "specific_humidity",
]

#: ERA5(-Land) soil layers, (top, bottom) in metres, of swvl1 .. swvl4.
SWVL_LAYERS = ((0.0, 0.07), (0.07, 0.28), (0.28, 1.0), (1.0, 2.89))
_LAYERS_OUT = ((0.0, 0.1), (0.1, 0.4), (0.4, 1.0))
_HOUR = 3600.0

_FORCING = {
    "t2m": ("t2m", units.TEMPERATURE),
    "d2m": ("d2m", units.TEMPERATURE),
    "sp": ("sp", units.PRESSURE),
    "u10": ("u10", units.WIND),
    "v10": ("v10", units.WIND),
    "tp": ("tp", units.WATER_ACCUMULATION),
    "sf": ("sf", units.WATER_ACCUMULATION),
    "ssrd": ("ssrd", units.SW_ACCUMULATION),
    "strd": ("strd", units.LW_ACCUMULATION),
}
_SWVL = {f"swvl{k + 1}": (f"swvl{k + 1}", units.SOIL_MOISTURE) for k in range(3)}
_REQUIRED = ("t2m", "d2m", "sp", "u10", "v10", "tp", "ssrd", "strd")
_ACCUMULATED = ("tp", "sf", "ssrd", "strd")


def layer_matrix(source=SWVL_LAYERS, target=_LAYERS_OUT) -> np.ndarray:
    """Thickness-overlap weights (ntarget, nsource): target mean = weights @ source means."""
    src = np.array([t for t, _ in source] + [source[-1][1]])
    ov = np.stack([overlap_lengths(src, np.array(layer))[0] for layer in target])
    return ov / ov.sum(1, keepdims=True)


def specific_humidity(d2m: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Specific humidity (kg kg-1) from dew point (K) and surface pressure (Pa), IFS Tetens over water."""
    e = 611.21 * np.exp(17.502 * (d2m - 273.16) / (d2m - 32.19))
    return 0.621981 * e / (sp - 0.378019 * e)


def _land_only(src: NcFile, rows: slice, cols: slice, rec: Records, mapping: dict) -> Records:
    """``rec`` with source cells of ``lsm`` < 0.5 (sea) set missing where the file has ``lsm``, then checked
    (values over the sea never enter, so they are not checked either)."""
    if "lsm" in src.ds.variables:
        sea = read_var(src, "lsm", rows, cols, units.LAND_FRACTION) < 0.5  # NaN (missing mask) is not sea
        for name, values in rec.fields.items():
            mask = sea if sea.shape[0] == values.shape[0] else np.broadcast_to(sea[:1], values.shape)
            rec.fields[name] = np.where(mask, np.nan, values)
    for name, values in rec.fields.items():
        var, quantity = mapping[name]
        rec.fields[name] = check_var(src, var, values, quantity)
    return rec


def _read_sm(src: NcFile, rows: slice, cols: slice) -> Records:
    return _land_only(src, rows, cols, read_mapped(src, rows, cols, _SWVL, check=False), _SWVL)


def _finish_sm(times: np.ndarray, fields: dict[str, np.ndarray]):
    """The reference layers from the swvl fields; layers needing an absent swvl are NaN (one warning)."""
    w = layer_matrix()
    first = next(iter(fields.values()))
    out = np.zeros((first.shape[0], w.shape[0]) + first.shape[1:])
    lacking: dict[int, list[str]] = {}
    for k in range(w.shape[0]):
        for j in range(3):
            name = f"swvl{j + 1}"
            if w[k, j] == 0.0:
                continue
            if name not in fields:
                lacking.setdefault(k, []).append(name)
                out[:, k] = np.nan
                continue
            out[:, k] += w[k, j] * fields[name]
    if lacking:
        names = sorted({n for ns in lacking.values() for n in ns})
        if len(lacking) == w.shape[0]:
            raise DataError(
                f"--files: the files hold {', '.join(sorted(fields))} only; every reference layer needs "
                f"{' or '.join(names)} too (0-10 cm = 0.7 swvl1 + 0.3 swvl2, 10-40 cm = 0.6 swvl2 + "
                "0.4 swvl3, "
                "40-100 cm = swvl3)"
            )
        depths = ", ".join(
            f"{_LAYERS_OUT[k][0] * 100:g}-{_LAYERS_OUT[k][1] * 100:g} cm" for k in sorted(lacking)
        )
        warnings.warn(
            f"ERA5(-Land) files lack {', '.join(names)}: the {depths} layer(s) are NaN", stacklevel=2
        )
    return times, {"sm": out}


def _deaccumulate(times: np.ndarray, amounts: dict[str, np.ndarray], since_midnight: bool):
    """Hourly amounts from accumulations; returns (kept times, kept record mask, amounts per hour)."""
    step = np.diff(times)
    hour_of_day = np.round((times % 86400.0) / _HOUR).astype(int) % 24
    if not since_midnight:
        return np.ones(times.size, dtype=bool), dict(amounts)
    out = {}
    prev_ok = np.concatenate([[False], np.isclose(step, _HOUR)])
    first_hour = hour_of_day == 1
    keep = first_hour | prev_ok
    for name, acc in amounts.items():
        diff = np.empty_like(acc)
        diff[0] = acc[0]
        diff[1:] = acc[1:] - acc[:-1]
        out[name] = np.where(first_hour.reshape((-1,) + (1,) * (acc.ndim - 1)), acc, diff)
    if not keep.all():
        warnings.warn(
            f"ERA5-Land: {int((~keep).sum())} record(s) without the previous hour cannot be de-accumulated "
            "and are dropped",
            stacklevel=2,
        )
    return keep, out


def _finisher(since_midnight: bool):
    def finish(times: np.ndarray, fields: dict[str, np.ndarray]):
        missing = [n for n in _REQUIRED if n not in fields]
        if missing:
            raise DataError(
                f"--files: variable {missing[0]!r} is in none of the files (ERA5 forcing needs {_REQUIRED})"
            )
        acc = {n: fields[n] for n in _ACCUMULATED if n in fields}
        keep, amounts = _deaccumulate(times, acc, since_midnight)
        sel = {n: v[keep] for n, v in fields.items()}
        rate = {n: np.maximum(amounts[n][keep], 0.0) / _HOUR for n in amounts}
        out = {
            "Tair": sel["t2m"],
            "Qair": specific_humidity(sel["d2m"], sel["sp"]),
            "PSurf": sel["sp"],
            "Wind": np.hypot(sel["u10"], sel["v10"]),
            "SWdown": rate["ssrd"],
            "LWdown": rate["strd"],
        }
        if "sf" in rate:
            out["Snowf"] = rate["sf"]
            out["Rainf"] = np.maximum(rate["tp"] - rate["sf"], 0.0)
        else:
            out["Rainf"] = rate["tp"]
        return times[keep], out

    return finish


def _read_forcing(src: NcFile, rows: slice, cols: slice) -> Records:
    return _land_only(src, rows, cols, read_mapped(src, rows, cols, _FORCING, check=False), _FORCING)


ERA5LAND_SM = Product(
    name="era5land",
    kind="reference",
    description=(
        "ERA5-Land or ERA5 swvl1..3 (m3 m-3, 0-7/7-28/28-100 cm) -> 0-10/10-40/40-100 cm by thickness, "
        "lsm >= 0.5"
    ),
    grid=latlon_grid,
    read=_read_sm,
    finish=_finish_sm,
)
ERA5_FORCING = Product(
    name="era5",
    kind="forcing",
    description="ERA5 hourly single levels (t2m, d2m, sp, u10, v10, tp, ssrd, strd; hourly accumulations) -> ALMA",
    grid=latlon_grid,
    read=_read_forcing,
    finish=_finisher(since_midnight=False),
)
ERA5LAND_FORCING = Product(
    name="era5land_forcing",
    kind="forcing",
    description="ERA5-Land hourly (t2m, d2m, sp, u10, v10, tp, ssrd, strd accumulated from 00 UTC) -> ALMA",
    grid=latlon_grid,
    read=_read_forcing,
    finish=_finisher(since_midnight=True),
)
