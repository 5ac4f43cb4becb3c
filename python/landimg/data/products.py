"""The registry of supported products: name -> :class:`Product` (how to find its grid, read a file,
finish the merged series)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from landimg.data.common import DataError, Records
from landimg.data.netcdf import NcFile
from landimg.data.regrid import SourceGrid

__all__ = ["KINDS", "Product", "get_product", "product_names"]

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


def _registry() -> dict[str, Product]:
    from landimg.data import alma, cci, cmfd, era5, gldas, gridded, smap

    products: list[Product] = [
        smap.SPL3SMP,
        smap.SPL3SMP_E,
        cci.ESACCI,
        gridded.GRIDDED,
        gldas.GLDAS_SM,
        gldas.GLDAS_FORCING,
        era5.ERA5LAND_SM,
        era5.ERA5_FORCING,
        era5.ERA5LAND_FORCING,
        cmfd.CMFD,
        alma.ALMA,
    ]
    return {p.name: p for p in products}


def product_names(kind: str | None = None) -> list[str]:
    """Names of the supported gridded products (of one kind, or all)."""
    return [n for n, p in _registry().items() if kind is None or p.kind == kind]


def get_product(name: str) -> Product:
    """The product called ``name`` (case-insensitive); DataError listing the known names otherwise."""
    reg = _registry()
    key = str(name).strip().lower().replace("-", "_")
    if key not in reg:
        raise DataError(
            f"--product: unknown product {name!r}; known: {', '.join(sorted(reg))} (and ismn for stations)"
        )
    return reg[key]
