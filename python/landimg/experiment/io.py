"""Compatibility names: input opening, output writing and restarts now live in their own modules.

:mod:`landimg.experiment.inputs` (users' input files), :mod:`landimg.experiment.output` (atomic writes,
JSON, netCDF, the output directory), :mod:`landimg.experiment.restart` (restart files) and
:mod:`landimg.experiment.ncfiles` (the experiment's netCDF files).
"""

from landimg.experiment.inputs import open_input_netcdf, seconds_since
from landimg.experiment.ncfiles import write_experiment_netcdf
from landimg.experiment.output import (
    OutputDirError,
    atomic_path,
    prepare_out_dir,
    write_json,
    write_netcdf,
    write_text,
)
from landimg.experiment.restart import load_restart, save_restart

__all__ = [
    "OutputDirError", "atomic_path", "load_restart", "open_input_netcdf", "prepare_out_dir", "save_restart",
    "seconds_since", "write_experiment_netcdf", "write_json", "write_netcdf", "write_text",
]  # fmt: skip
