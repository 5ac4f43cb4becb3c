"""Decoding a variable's values the one way every reader does: CF valid bounds applied (outside -> NaN),
read errors as one line naming file and variable, and the packing step of a CF-packed variable.

xarray has already decoded packing, ``_FillValue``/``missing_value`` and ``_Unsigned`` when a variable
reaches these functions (:func:`landimg.data.netcdf.open_dataset`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from landimg.data.common import DataError

__all__ = ["packing_step", "values"]


def _valid_bounds(var: Any) -> tuple[float | None, float | None]:
    """``valid_min``/``valid_max`` (or ``valid_range``) of a decoded variable in its decoded units."""
    attrs = var.attrs
    lo, hi = attrs.get("valid_min"), attrs.get("valid_max")
    vr = attrs.get("valid_range")
    if vr is not None and np.size(vr) == 2:
        lo, hi = np.ravel(vr)
    scale = float(np.ravel(var.encoding.get("scale_factor", 1.0))[0])
    offset = float(np.ravel(var.encoding.get("add_offset", 0.0))[0])

    def unpack(b):
        return None if b is None else float(np.ravel(b)[0]) * scale + offset

    lo, hi = unpack(lo), unpack(hi)
    if lo is not None and hi is not None and lo > hi:  # a negative scale factor swaps them
        lo, hi = hi, lo
    return lo, hi


def values(var: Any, label: str, name: str) -> np.ndarray:
    """A (windowed) decoded variable's values as float64, outside ``valid_*`` -> NaN.

    DataError naming the file and variable when the data cannot be read (corrupt chunks ...).
    """
    try:
        data = np.asarray(var.values, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - HDF5/netCDF read errors come in many types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{label}: variable {name!r} cannot be read ({reason})") from None
    lo, hi = _valid_bounds(var)
    if lo is not None or hi is not None:
        data = data.copy() if not data.flags.writeable else data
        with np.errstate(invalid="ignore"):
            if lo is not None:
                data[data < lo] = np.nan
            if hi is not None:
                data[data > hi] = np.nan
    return data


def packing_step(var: Any) -> float:
    """One packing step of a CF-packed variable (integers on disk) in its decoded units; 0 when not packed."""
    stored = np.dtype(var.encoding.get("dtype", np.float64))
    if stored.kind not in "iu" or "scale_factor" not in var.encoding:
        return 0.0
    return abs(float(np.ravel(var.encoding["scale_factor"])[0]))
