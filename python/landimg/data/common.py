"""Shared pieces of the product readers: errors, file series, opening files, units, times, fill values.

Every problem a user can cause (no file matches, a corrupt file, a missing variable, wrong units, a
file off the domain or period) raises :class:`DataError` with one line naming the file, the variable
and the problem.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cftime
import numpy as np

__all__ = [
    "DataError",
    "Records",
    "attr",
    "convert_units",
    "date_from_name",
    "decode_times",
    "expand_files",
    "masked_values",
    "open_dataset",
    "require",
]

#: Density of liquid water, kg m-3 (turns kg m-2 of water into metres and mm/h into kg m-2 s-1).
WATER_DENSITY = 1000.0


class DataError(ValueError):
    """A product file cannot be used; the message names the file, the variable and the problem."""


@dataclass
class Records:
    """Records of one product file on the product's own grid, in landimg's units.

    Attributes
    ----------
    path : str
        The file the records come from.
    times : list of cftime.datetime (ntime,)
        Record times (the product's own, e.g. a pass's mean observation time), one calendar.
    fields : dict of str -> ndarray
        Canonical name -> values (ntime, ny, nx) or (ntime, ndepth, ny, nx) on the source grid,
        NaN where missing or rejected by the quality flags.
    grid : object
        The source grid (a :class:`landimg.data.regrid.SourceGrid`).
    """

    path: str
    times: list
    fields: dict[str, np.ndarray]
    grid: Any
    attrs: dict[str, Any] = field(default_factory=dict)


def check_record_span(
    times: np.ndarray, t_first: float, t_last: float, label: str, start: str, note: str = ""
) -> None:
    """ValueError naming both spans unless records at ``times`` (s after the start, the last one lasting as
    long as the step before it) cover ``t_first .. t_last``; ``label`` names the file, ``start`` the origin."""
    step = times[-1] - times[-2] if times.size > 1 else 0.0
    if times[0] > t_first or times[-1] + step < t_last:
        h = 1.0 / 3600.0
        raise ValueError(
            f"{label}: records cover {times[0] * h:g} .. {(times[-1] + step) * h:g} h after {start}, "
            f"the run needs {t_first * h:g} .. {t_last * h:g} h{note}"
        )


def expand_files(pattern: str | Sequence[str], what: str = "files") -> list[str]:
    """Sorted list of the files matching a glob pattern (or several patterns); DataError if none."""
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    found: set[str] = set()
    for pat in patterns:
        pat = os.path.expanduser(str(pat))
        found.update(p for p in glob.glob(pat) if os.path.isfile(p))
    if not found:
        raise DataError(f"{what}: no file matches {', '.join(map(str, patterns))!r}")
    return sorted(found)


def open_dataset(path: str, group: str | None = None, *, variables: Sequence[str] = ()):
    """Open a netCDF4/HDF5 file (or one of its groups) with xarray, raw values (no decoding).

    Parameters
    ----------
    path : str
        The file.
    group : str, optional
        HDF5 group (e.g. ``Soil_Moisture_Retrieval_Data_AM``).
    variables : sequence of str
        Variables that must be present (DataError naming the first missing one otherwise).

    Returns
    -------
    xarray.Dataset
        Values as stored: fill values, scale factors and times are decoded by the readers, which
        check the attributes themselves.
    """
    import xarray as xr

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        ds = xr.open_dataset(
            path,
            group=group,
            engine="h5netcdf",
            phony_dims="access",
            decode_cf=False,
            mask_and_scale=False,
            decode_times=False,
        )
    except OSError as exc:
        what = f"group {group!r}" if group else "file"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if group and "not found" in reason.lower():
            raise DataError(f"{path}: the file has no group {group!r}") from None
        raise DataError(f"{path}: cannot read the {what} as netCDF4/HDF5 ({reason})") from None
    except Exception as exc:  # noqa: BLE001 - h5netcdf/h5py raise many types on corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the file as netCDF4/HDF5 ({reason})") from None
    require(ds, path, variables)
    return ds


def require(ds: Any, path: str, variables: Sequence[str]) -> None:
    """DataError naming the file and the first of ``variables`` missing from ``ds``."""
    for name in variables:
        if name not in ds.variables:
            ds.close()
            raise DataError(f"{path}: variable {name!r} is missing")


def attr(var: Any, name: str, default: Any = None) -> Any:
    """An attribute of an xarray variable, scalars unwrapped and bytes decoded."""
    value = var.attrs.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def masked_values(var: Any, path: str, name: str) -> np.ndarray:
    """Values of a variable as float64 with CF decoding done here: fill values and the valid range
    become NaN, then ``scale_factor``/``add_offset`` are applied."""
    raw = np.asarray(var.values)
    data = raw.astype(np.float64)
    bad = ~np.isfinite(data)
    for key in ("_FillValue", "missing_value"):
        fill = attr(var, key)
        if fill is not None:
            for f in np.atleast_1d(fill):
                bad |= data == float(f)
    vmin, vmax = attr(var, "valid_min"), attr(var, "valid_max")
    vrange = attr(var, "valid_range")
    if vrange is not None and np.size(vrange) == 2:
        vmin, vmax = np.ravel(vrange)
    if vmin is not None:
        bad |= data < float(vmin)
    if vmax is not None:
        bad |= data > float(vmax)
    data = data * float(attr(var, "scale_factor", 1.0)) + float(attr(var, "add_offset", 0.0))
    data[bad] = np.nan
    return data


def _units_registry():
    from cf_xarray.units import units  # a pint registry that reads CF/UDUNITS strings

    return units


def convert_units(
    values: np.ndarray, units: str | None, target: str, path: str, name: str, *, water: bool = False
) -> np.ndarray:
    """Convert ``values`` from the file's ``units`` attribute to ``target``.

    Parameters
    ----------
    values : ndarray
        Values in the file's units.
    units : str or None
        The variable's ``units`` attribute (None: DataError, units must be declared).
    target : str
        landimg's units (CF/UDUNITS string, e.g. ``"kg m-2 s-1"``, ``"m3 m-3"``, ``"K"``).
    path, name : str
        File and variable, named in errors.
    water : bool
        Allow a conversion through the density of liquid water (mm h-1 <-> kg m-2 s-1, m <-> kg m-2).

    Returns
    -------
    ndarray
        Values in ``target`` units.
    """
    if units is None or str(units).strip() == "":
        raise DataError(f"{path}: variable {name!r} has no 'units' attribute (expected {target})")
    from pint.errors import DimensionalityError, PintError

    ureg = _units_registry()
    try:
        source = ureg.Unit(str(units).strip())
    except (PintError, ValueError, TypeError, AttributeError, SyntaxError, KeyError):
        raise DataError(f"{path}: variable {name!r} has units {units!r} that cannot be parsed") from None
    dest = ureg.Unit(target)
    q = ureg.Quantity(np.asarray(values, dtype=float), source)
    candidates = [q]
    if water:
        density = ureg.Quantity(WATER_DENSITY, "kg m-3")
        candidates += [q * density, q / density]
    for candidate in candidates:
        with contextlib.suppress(DimensionalityError):
            return np.asarray(candidate.to(dest).magnitude, dtype=float)
    raise DataError(f"{path}: variable {name!r} has units {units!r}, which cannot be converted to {target}")


_CALENDAR_ALIASES = {"gregorian": "standard", "none": "standard"}


def decode_times(var: Any, path: str, name: str = "time") -> tuple[list, str]:
    """CF time variable -> (list of cftime.datetime, calendar); any CF calendar (noleap, 360_day, ...)."""
    units = attr(var, "units")
    if not units or " since " not in str(units):
        raise DataError(f"{path}: variable {name!r} has units {units!r}, not '<unit> since <date>'")
    calendar = str(attr(var, "calendar", "standard")).lower()
    calendar = _CALENDAR_ALIASES.get(calendar, calendar)
    values = np.ravel(np.asarray(var.values, dtype=np.float64))
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path}: variable {name!r} holds missing times")
    try:
        times = cftime.num2date(values, str(units), calendar, only_use_cftime_datetimes=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path}: variable {name!r}: cannot decode times ({exc})") from None
    return list(np.ravel(times)), calendar


def date_from_name(path: str, calendar: str = "standard") -> cftime.datetime:
    """The date in a file name: ``YYYYMMDD``, ``YYYYMMDD.HHMM`` (GLDAS) or ``YYYYMMDDhhmmss`` (ESA CCI)."""
    base = os.path.basename(path)
    m = re.search(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:\.?(\d{2})(\d{2})(?:\d{2})?)?(?!\d)", base)
    if not m:
        raise DataError(f"{path}: no date YYYYMMDD in the file name")
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hh, mm = int(m.group(4) or 0), int(m.group(5) or 0)
    try:
        return cftime.datetime(y, mo, d, hh, mm, calendar=calendar)
    except ValueError:
        raise DataError(f"{path}: the date {m.group(0)!r} in the file name is not a valid date") from None


def to_seconds(times: Sequence, calendar: str, since: str = "1970-01-01 00:00:00") -> np.ndarray:
    """Seconds since ``since`` of cftime datetimes, float (ntime,)."""
    if len(times) == 0:
        return np.zeros(0)
    return np.asarray(cftime.date2num(list(times), f"seconds since {since}", calendar), dtype=float)


def parse_date(text: str, calendar: str, what: str) -> cftime.datetime:
    """An ISO date (YYYY-MM-DD, optionally with THH:MM) in ``calendar``; DataError naming ``what``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?", str(text).strip())
    if not m:
        raise DataError(f"{what}: {text!r} is not a date YYYY-MM-DD")
    y, mo, d, hh, mm = (int(g) if g else 0 for g in m.groups())
    try:
        return cftime.datetime(y, mo, d, hh, mm, calendar=calendar)
    except ValueError:
        raise DataError(f"{what}: {text!r} is not a valid date in the {calendar} calendar") from None


def path_str(path: str | Path) -> str:
    """A path as given (for messages)."""
    return os.fspath(path)


def read_var(
    ds: Any,
    path: str,
    name: str,
    rows: slice,
    cols: slice,
    units: str | None = None,
    *,
    water: bool = False,
    default_units: str | None = None,
) -> np.ndarray:
    """A variable's window ``[..., rows, cols]`` as float64: fills -> NaN, CF packing undone, units converted.

    Parameters
    ----------
    ds : xarray.Dataset
        Opened by :func:`open_dataset` (raw values).
    path, name : str
        The file and the variable (named in errors).
    rows, cols : slice
        Window of the last two (latitude, longitude or EASE row, column) dimensions.
    units : str, optional
        Target units; the variable's ``units`` attribute is converted to them (DataError if it cannot be).
    water : bool
        Allow conversion through the density of water (see :func:`convert_units`).
    default_units : str, optional
        Units assumed when the variable has no ``units`` attribute (only for landimg's own layouts).

    Returns
    -------
    ndarray (ntime, nrows, ncols)
        A 2-D variable gets a leading axis of length 1.
    """
    if name not in ds.variables:
        raise DataError(f"{path}: variable {name!r} is missing")
    var = ds[name]
    if var.ndim < 2:
        raise DataError(f"{path}: variable {name!r} has {var.ndim} dimension(s), expected (..., lat, lon)")
    try:
        window = var[(Ellipsis, rows, cols)]
        data = masked_values(window, path, name)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - HDF5 read errors (corrupt chunks) come in many types
        raise DataError(f"{path}: variable {name!r} cannot be read ({str(exc).splitlines()[0]})") from None
    if data.ndim == 2:
        data = data[None]
    elif data.ndim != 3:
        data = data.reshape((-1,) + data.shape[-2:])
    if units is not None:
        file_units = attr(var, "units", default_units)
        data = convert_units(data, file_units, units, path, name, water=water)
    return data


#: Verification layers of reference products, (top, bottom) in metres.
LAYERS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.4), (0.4, 1.0))

#: ALMA forcing variables written by ``regrid`` and their units.
ALMA_UNITS: dict[str, str] = {
    "Tair": "K",
    "Qair": "kg kg-1",
    "PSurf": "Pa",
    "Rainf": "kg m-2 s-1",
    "Snowf": "kg m-2 s-1",
    "Wind": "m s-1",
    "SWdown": "W m-2",
    "LWdown": "W m-2",
}


def file_times(ds: Any, path: str, names: Sequence[str] = ("valid_time", "time")) -> tuple[list, str]:
    """Record times of a file from its first present time variable in ``names``, else from its name."""
    for name in names:
        if name in ds.variables:
            return decode_times(ds[name], path, name)
    return [date_from_name(path)], "standard"


def read_mapped(
    path: str,
    rows: slice,
    cols: slice,
    mapping: dict[str, tuple[str, str]],
    *,
    required: Sequence[str] = (),
    time_names: Sequence[str] = ("valid_time", "time"),
) -> Records:
    """Read the variables of ``mapping`` (out name -> (file variable, target units)) present in a file.

    Variables absent from the file are skipped (a series may split variables over files) unless
    listed in ``required``; the file must hold at least one of them. Precipitation-like units convert
    through the density of water.
    """
    ds = open_dataset(path)
    try:
        times, _ = file_times(ds, path, time_names)
        fields: dict[str, np.ndarray] = {}
        for out, (name, units) in mapping.items():
            if name not in ds.variables:
                if out in required:
                    raise DataError(f"{path}: variable {name!r} is missing")
                continue
            data = read_var(ds, path, name, rows, cols, units, water=True)
            if data.shape[0] != len(times):
                raise DataError(
                    f"{path}: variable {name!r} has {data.shape[0]} records, time has {len(times)}"
                )
            fields[out] = data
    finally:
        ds.close()
    if not fields:
        wanted = ", ".join(n for n, _ in mapping.values())
        raise DataError(f"{path}: none of the product's variables ({wanted}) is in the file")
    return Records(path, times, fields, None)


class StationReadings:
    """Daily station readings at grid columns: ``columns`` (nstation,) indices into the grid's land columns,
    ``readings`` (ndays, nstation) m3/m3 (NaN where none). The interface the experiment's stations share."""

    grid: Any
    columns: np.ndarray
    readings: np.ndarray

    @property
    def n(self) -> int:
        """Number of stations on land cells."""
        return int(self.columns.size)

    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Latitudes and longitudes of the cells holding the stations, degrees."""
        lat, lon = self.grid.column_latlon()
        return lat[self.columns], lon[self.columns]

    def observe(self, truth_columns: np.ndarray, day: int) -> np.ndarray:
        """The daily mean readings of ``day`` (nstation,), NaN where none; ``truth_columns`` is unused."""
        return self.readings[day].copy()
