"""What a supported product is: :class:`Product` (how to find its grid, read a file, finish the merged
series) and the kinds of product. The registry of them is :mod:`landimg.data.products`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from landimg.data.common import Records
from landimg.data.netcdf import NcFile
from landimg.data.regrid import SourceGrid

__all__ = ["KINDS", "Finish", "Product"]

#: Kinds of gridded product and what ``regrid`` writes for each.
KINDS = {
    "retrieval": "sm, sm_error (time, lat, lon) in m3 m-3",
    "reference": "sm (time, depth, lat, lon) in m3 m-3 on 0-10, 10-40, 40-100 cm",
    "forcing": "ALMA Tair, Qair, PSurf, Rainf, Snowf, Wind, SWdown, LWdown (time, lat, lon)",
}

#: Finishing step on the model grid: (times in s since 1970, fields) -> output fields (same times).
Finish = Callable[[np.ndarray, dict[str, np.ndarray]], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Product:
    """A product landimg reads.

    Attributes
    ----------
    name : str
        Name given to ``--product`` / the ``product`` key.
    kind : str
        ``retrieval``, ``reference`` or ``forcing`` (see :data:`KINDS`).
    description : str
        One line: the product and its file names.
    grid : callable (NcFile) -> SourceGrid
        The file's grid (reads coordinates only).
    read : callable (NcFile, rows, cols) -> Records
        The file's records on the window ``rows`` x ``cols`` (latitude, longitude in file order) of its
        grid, in landimg's units. Both take the file opened once (:class:`landimg.data.netcdf.NcFile`).
    finish : callable, optional
        Applied to the merged series on the model grid (de-accumulation, derived variables).
    """

    name: str
    kind: str
    description: str
    grid: Callable[[NcFile], SourceGrid]
    read: Callable[[NcFile, slice, slice], Records]
    finish: Finish | None = None
