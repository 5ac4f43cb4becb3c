"""Opening users' input files: netCDF with errors naming the file, CF time axes.

Reading inputs is kept apart from writing outputs (:mod:`landimg.experiment.output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["open_input_netcdf", "seconds_since"]


def open_input_netcdf(path: str | Path, required: tuple[str, ...] = (), what: str = "input file"):
    """Open a user's netCDF file for reading, with errors that name the file and the problem.

    Parameters
    ----------
    path : str or Path
        The file.
    required : tuple of str
        Variables that must be present.
    what : str
        What the file is for (named in error messages, e.g. ``"obs.file"``).

    Returns
    -------
    netCDF4.Dataset
        The open dataset (the caller closes it, or uses it as a context manager).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable netCDF file, or a required variable is missing.
    """
    import netCDF4

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r}: no such file")
    try:
        ds = netCDF4.Dataset(path)
    except OSError as err:
        raise ValueError(
            f"{what} {str(path)!r}: not a readable netCDF file ({err.strerror or err})"
        ) from None
    missing = [name for name in required if name not in ds.variables]
    if missing:
        ds.close()
        raise ValueError(f"{what} {str(path)!r}: needs the variable(s) {missing}")
    return ds


def seconds_since(time_var: Any, start: Any) -> np.ndarray:
    """Seconds from midnight of the date ``start`` to each value of a CF time variable, float (ntime,)."""
    import datetime as _dt

    import netCDF4

    start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
    units = getattr(time_var, "units", None)
    if units is None:
        raise ValueError("the time variable has no 'units' attribute (e.g. 'hours since 2021-05-01 00:00')")
    times = netCDF4.num2date(
        time_var[:],
        units,
        getattr(time_var, "calendar", "standard"),
        only_use_cftime_datetimes=False,
        only_use_python_datetimes=True,
    )
    t0 = _dt.datetime.combine(start, _dt.time())
    return np.array([(t - t0).total_seconds() for t in np.ravel(times)], dtype=float)
