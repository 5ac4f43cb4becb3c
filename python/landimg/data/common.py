"""Shared pieces of the readers: errors, file series, records, CF times.

Opening and decoding files is :mod:`landimg.data.netcdf`, dimensions :mod:`landimg.data.axes`, reading a
product file's variables :mod:`landimg.data.reading`, units :mod:`landimg.units`. Every problem a user
can cause (no file matches, a corrupt file, a missing variable, wrong units, a file off the domain or
period) raises :class:`DataError` with one line naming the file, the variable and the problem.
"""

from __future__ import annotations

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
    "date_from_name",
    "decode_times",
    "expand_files",
    "seconds_after",
]

#: Density of liquid water, kg m-3 (one path: :data:`landimg.units.WATER_DENSITY`).
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


_CALENDAR_ALIASES = {"gregorian": "standard", "none": "standard", "": "standard"}


def decode_times(var: Any, path: str, name: str = "time") -> tuple[list, str]:
    """CF time variable -> (list of cftime.datetime, calendar); any CF calendar (noleap, 360_day, ...).

    DataError naming the file and the variable for units that are not ``<unit> since <date>``, an unknown
    calendar, missing or undecodable times.
    """
    units = attr(var, "units")
    where = f"{path}: variable {name!r}"
    if not units or " since " not in f" {str(units).strip()} ":
        raise DataError(f"{where} has units {units!r}, not '<unit> since <date>' (CF time)")
    units = " ".join(str(units).split())
    calendar = str(attr(var, "calendar", "standard")).strip().lower()
    calendar = _CALENDAR_ALIASES.get(calendar, calendar)
    if calendar not in _CF_CALENDARS:
        raise DataError(f"{where} has calendar {calendar!r}, not a CF calendar ({', '.join(_CF_CALENDARS)})")
    values = np.ravel(np.asarray(var.values, dtype=np.float64))
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where} holds missing times")
    try:
        times = cftime.num2date(values, units, calendar, only_use_cftime_datetimes=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: cannot decode times with units {units!r} ({exc})") from None
    return list(np.ravel(times)), calendar


_CF_CALENDARS = (
    "standard",
    "proleptic_gregorian",
    "julian",
    "noleap",
    "365_day",
    "all_leap",
    "366_day",
    "360_day",
)


def seconds_after(var: Any, start: Any, path: str, name: str = "time") -> np.ndarray:
    """Seconds from midnight of the date ``start`` (date or YYYY-MM-DD, read in the file's calendar) to each
    time of a CF time variable, float (ntime,); DataError naming file and variable when ``start`` is not a
    date of that calendar."""
    import datetime as _dt

    times, calendar = decode_times(var, path, name)
    start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
    try:
        t0 = cftime.datetime(start.year, start.month, start.day, calendar=calendar)
    except ValueError:
        raise DataError(
            f"{path}: variable {name!r} is in the {calendar} calendar, which has no date {start}"
        ) from None
    return np.array([(t - t0).total_seconds() for t in times], dtype=float)


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
