"""Reading a product file's variables on a window of its grid, in landimg's units, checked.

The product readers' one path: a file opened once (:class:`~landimg.data.netcdf.NcFile`), dimensions
found by name (:mod:`landimg.data.axes`), values decoded (:func:`~landimg.data.decoding.values`), units
converted with pint and the converted values checked against the quantity's plausible range
(:mod:`landimg.units`). Every problem is one line naming the file, the variable, its declared units and,
for implausible values, the value found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landimg import units
from landimg.data.common import DataError, Records, attr, date_from_name, decode_times
from landimg.data.decoding import packing_step
from landimg.data.netcdf import NcFile

__all__ = [
    "ALMA_QUANTITIES",
    "check_var",
    "file_times",
    "packing_slack",
    "read_mapped",
    "read_var",
    "to_unit",
]

#: The ALMA forcing variables and their quantities (units, plausible range).
ALMA_QUANTITIES: dict[str, units.Quantity] = {
    "Tair": units.TEMPERATURE, "Qair": units.SPECIFIC_HUMIDITY, "PSurf": units.PRESSURE,
    "Rainf": units.PRECIPITATION, "Snowf": units.PRECIPITATION, "Wind": units.WIND, "Wind_E": units.WIND,
    "Wind_N": units.WIND, "SWdown": units.SHORTWAVE, "LWdown": units.LONGWAVE,
}  # fmt: skip


def read_var(
    src: NcFile,
    name: str,
    rows: slice,
    cols: slice,
    quantity: units.Quantity | None = None,
    *,
    check: bool = True,
    group: str | None = None,
    assume_units: bool = False,
) -> np.ndarray:
    """A variable's window as float64 (ntime, nrows, ncols): fills -> NaN, CF packing undone, units converted.

    Parameters
    ----------
    src : NcFile
        The opened file.
    name : str
        The variable; its time, latitude and longitude dimensions are found by name, in any order.
    rows, cols : slice
        Window along the latitude and longitude dimensions (file order).
    quantity : Quantity, optional
        Convert the variable's ``units`` attribute to ``quantity.unit`` (UnitsError -> DataError if it cannot
        be) and, with ``check``, refuse values outside its plausible range.
    check : bool
        Check the plausible range here (False: the caller checks after masking flagged values, with
        :func:`check_var`).
    group : str, optional
        The file's group holding the variable.
    assume_units : bool
        Without a ``units`` attribute assume ``quantity``'s default (landimg's own layouts only; products
        as distributed must declare units).

    Returns
    -------
    ndarray (ntime, nrows, ncols)
        A variable without a time dimension gets a leading axis of length 1.
    """
    layout = src.layout(group)
    var = src.dataset(group, variables=(name,))[name]
    timed = "time" in layout.roles_of(name)
    order = ("time", "lat", "lon") if timed else ("lat", "lon")
    data = layout.read(name, order, {"lat": rows, "lon": cols})
    if not timed:
        data = data[None]
    if quantity is None:
        return data
    where = f"{src.label}: variable {name!r}"
    declared = attr(var, "units")
    try:
        data = quantity.conversion(declared, where, assume_default=assume_units).apply(data)
        if check:
            data = quantity.checked(
                data, where, declared or quantity.default, slack=_slack(var, quantity, declared, where)
            )
    except units.UnitsError as exc:
        raise DataError(str(exc)) from None
    return data


def _slack(var, quantity: units.Quantity, declared, where: str) -> float:
    """One packing step of ``var`` in the quantity's unit (0 when not packed)."""
    step = packing_step(var)
    return abs(step * quantity.conversion(declared, where).scale) if step else 0.0


def to_unit(
    var,
    values: np.ndarray,
    quantity: units.Quantity,
    where: str,
    *,
    hint: str = "",
    assume_units: bool = True,
) -> np.ndarray:
    """``values`` read from ``var`` converted from its ``units`` attribute to ``quantity.unit`` and checked
    (:meth:`landimg.units.Quantity.checked`, a packing step of tolerance): UnitsError naming ``where``."""
    declared = attr(var, "units")
    conversion = quantity.conversion(declared, where, assume_default=assume_units)
    return quantity.checked(
        conversion.apply(values),
        where,
        declared or quantity.default,
        hint=hint,
        slack=packing_slack(var, conversion),
    )


def packing_slack(var, conversion: units.Conversion) -> float:
    """One packing step of a CF-packed ``var`` after ``conversion`` (0 when not packed): the tolerance of
    its plausibility check."""
    return abs(packing_step(var) * conversion.scale)


def check_var(
    src: NcFile,
    name: str,
    values: np.ndarray,
    quantity: units.Quantity,
    *,
    group: str | None = None,
    hint: str = "",
) -> np.ndarray:
    """``values`` (in ``quantity.unit``, read from ``name``) checked: DataError naming file, variable,
    declared units and the value found unless plausible; values within the quantity's tolerance clipped."""
    var = src.dataset(group)[name]
    declared = attr(var, "units")
    where = f"{src.label}: variable {name!r}"
    try:
        return quantity.checked(
            values,
            where,
            declared or quantity.default,
            hint=hint,
            slack=_slack(var, quantity, declared, where),
        )
    except units.UnitsError as exc:
        raise DataError(str(exc)) from None


def file_times(src: NcFile) -> tuple[list, str]:
    """Record times of a file from its time coordinate (found by name), else the date in its name."""
    name = src.layout().coord("time", required=False)
    if name is not None:
        return decode_times(src.ds[name], src.label, name)
    return [date_from_name(src.path)], "standard"


def read_mapped(
    src: NcFile,
    rows: slice,
    cols: slice,
    mapping: dict[str, tuple[str, units.Quantity]],
    *,
    required: Sequence[str] = (),
    check: bool = True,
) -> Records:
    """Read the variables of ``mapping`` (out name -> (file variable, quantity)) present in a file.

    Variables absent from the file are skipped (a series may split variables over files) unless listed in
    ``required``; the file must hold at least one of them. ``check``: check plausibility here (False: the
    caller checks with :func:`check_var` after masking, e.g. ERA5's sea cells).
    """
    times, _ = file_times(src)
    fields: dict[str, np.ndarray] = {}
    for out, (name, quantity) in mapping.items():
        if name not in src.ds.variables:
            if out in required:
                raise DataError(f"{src.label}: variable {name!r} is missing")
            continue
        data = read_var(src, name, rows, cols, quantity, check=check)
        if data.shape[0] != len(times):
            raise DataError(
                f"{src.label}: variable {name!r} has {data.shape[0]} records, time has {len(times)}"
            )
        fields[out] = data
    if not fields:
        wanted = ", ".join(n for n, _ in mapping.values())
        raise DataError(f"{src.label}: none of the product's variables ({wanted}) is in the file")
    return Records(src.path, times, fields, None)
