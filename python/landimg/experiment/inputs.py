"""Opening users' input files: the experiment's names for the one reading path of :mod:`landimg.data`.

Files are opened by :func:`landimg.data.netcdf.open_dataset` (netCDF-3, netCDF-4/HDF5; CF decoding) and
times decoded by :func:`landimg.data.common.decode_times`, as for the product readers. Reading inputs is
kept apart from writing outputs (:mod:`landimg.experiment.output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from landimg.data.common import seconds_after
from landimg.data.netcdf import open_dataset

__all__ = ["open_input_netcdf", "seconds_since"]


def open_input_netcdf(path: str | Path, required: tuple[str, ...] = (), what: str = "input file") -> Any:
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
    xarray.Dataset
        CF-decoded (fill values NaN, packing undone), times as numbers; a context manager.

    Raises
    ------
    landimg.data.DataError (a ValueError)
        No such file, a directory, not a readable netCDF file, or a required variable is missing.
    """
    return open_dataset(str(path), variables=required, what=what)


def seconds_since(time_var: Any, start: Any, path: str = "input file", name: str = "time") -> np.ndarray:
    """Seconds from midnight of the date ``start`` to each value of a CF time variable, float (ntime,).

    Any CF calendar (noleap, 360_day ...): the start date is read in the file's calendar; errors name
    ``path`` and ``name``.
    """
    return seconds_after(time_var, start, path, name)
