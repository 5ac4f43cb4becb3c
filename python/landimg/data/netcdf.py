"""Opening input files: one opening and decoding path for every reader (experiment inputs and products).

* **Formats.** netCDF-3 (classic, 64-bit offset, CDF-5: the old Climate Data Store's ERA5 files) and
  netCDF-4/HDF5 files are opened with the netCDF-C library (xarray's ``netcdf4`` engine); HDF5 files not
  written through netCDF (SMAP L3: no dimension scales, no ``_NCProperties``) with ``h5netcdf`` and
  phony dimensions (netCDF-C crashes closing some of them). The kind is told from the file's signature.
* **Decoding.** xarray decodes CF packing (``scale_factor``/``add_offset``, e.g. ERA5's int16),
  ``_FillValue``/``missing_value`` (-> NaN) and ``_Unsigned``; :func:`landimg.data.decoding.values`
  applies ``valid_min``/``valid_max``/``valid_range`` (in packed units when packed, as CF says). Times stay
  numbers and are decoded by :func:`landimg.data.common.decode_times` (any CF calendar; errors name file
  and variable).
* **Once.** :class:`NcFile` opens a file (and each group asked for) once; the readers take it, so a file
  of a series is opened once however many variables, groups and checks read it.

Every problem is a :class:`~landimg.data.common.DataError` of one line naming the file.
"""

from __future__ import annotations

import os
from typing import Any, Self

from landimg.data.axes import Layout
from landimg.data.common import DataError

__all__ = ["MissingFileError", "NcFile", "file_kind", "open_dataset"]

_NETCDF3 = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_HDF5 = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)  # the superblock may follow a user block


class MissingFileError(DataError, FileNotFoundError):
    """No such file (a DataError, and a FileNotFoundError for callers that catch that)."""


def _label(path: str, what: str | None) -> str:
    return f"{what} {str(path)!r}" if what else str(path)


def file_kind(path: str, what: str | None = None) -> str:
    """``"netcdf3"``, ``"netcdf4"`` (HDF5 written through netCDF) or ``"hdf5"``; DataError otherwise."""
    label = _label(path, what)
    if os.path.isdir(path):
        raise DataError(f"{label}: is a directory, not a file")
    if not os.path.isfile(path):
        raise MissingFileError(f"{label}: no such file")
    with open(path, "rb") as f:
        head = f.read(max(_HDF5_OFFSETS) + 8)
    if head[:4] in _NETCDF3:
        return "netcdf3"
    if any(head[k : k + 8] == _HDF5 for k in _HDF5_OFFSETS):
        return "netcdf4" if _written_by_netcdf(path) else "hdf5"
    shown = head[:8] if head else b"(empty)"
    raise DataError(
        f"{label}: not a readable netCDF file (no netCDF-3 or HDF5 signature; it starts {shown!r})"
    )


def _written_by_netcdf(path: str) -> bool:
    """An HDF5 file written through netCDF-4 (``_NCProperties``, or dimension scales at its root)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "_NCProperties" in f.attrs:
                return True
            for item in f.values():
                if isinstance(item, h5py.Dataset) and (
                    "DIMENSION_LIST" in item.attrs or item.attrs.get("CLASS") == b"DIMENSION_SCALE"
                ):
                    return True
    except Exception:  # noqa: BLE001 - damaged HDF5: let the netCDF open report it
        return True
    return False


def open_dataset(path: str, group: str | None = None, *, variables=(), what: str | None = None) -> Any:
    """Open a netCDF-3, netCDF-4 or HDF5 file (or a group) with xarray, CF-decoded, times as numbers.

    Parameters
    ----------
    path : str
        The file.
    group : str, optional
        Group (e.g. SMAP's ``Soil_Moisture_Retrieval_Data_AM``).
    variables : sequence of str
        Variables that must be present (DataError naming the first missing one otherwise).
    what : str, optional
        What the file is for (``"obs.file"`` ...), named in errors before the path.

    Returns
    -------
    xarray.Dataset
        Lazily loaded; fill values are NaN and packed values unpacked; ``valid_*`` are applied by
        :func:`values`.
    """
    import xarray as xr

    label = _label(path, what)
    kind = file_kind(path, what)
    options = {"engine": "h5netcdf", "phony_dims": "access"} if kind == "hdf5" else {"engine": "netcdf4"}
    try:
        ds = xr.open_dataset(
            path, group=group, decode_times=False, decode_timedelta=False, mask_and_scale=True, **options
        )
    except Exception as exc:  # noqa: BLE001 - netCDF-C, h5netcdf and h5py raise many types on bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.replace(f": {str(path)!r}", "").replace(f" {str(path)!r}", "")
        if group and ("group" in reason.lower() or "not found" in reason.lower()):
            raise DataError(f"{label}: the file has no group {group!r}") from None
        raise DataError(f"{label}: not a readable netCDF file ({reason})") from None
    if not ds.sizes and not ds.variables:
        ds.close()
        raise DataError(f"{label}: not a readable netCDF file (no dimensions or variables: empty or damaged)")
    for name in variables:
        if name not in ds.variables:
            ds.close()
            raise DataError(f"{label}: variable {name!r} is missing")
    return ds


class NcFile:
    """One input file, opened once: its root and each group asked for, closed together.

    Parameters
    ----------
    path : str
    what : str, optional
        What the file is for, named in errors (``"forcing file"``, ``"obs.file"`` ...).

    Attributes
    ----------
    path : str
    label : str
        How errors name the file.
    """

    def __init__(self, path: str, what: str | None = None) -> None:
        self.path, self.what = str(path), what
        self.label = _label(self.path, what)
        self._groups: dict[str | None, Any] = {}
        self._layouts: dict[str | None, Any] = {}

    def dataset(self, group: str | None = None, variables=()) -> Any:
        """The root (or ``group``) as an xarray.Dataset, opened on first use; ``variables`` must be in it."""
        if group not in self._groups:
            self._groups[group] = open_dataset(self.path, group, what=self.what)
        ds = self._groups[group]
        for name in variables:
            if name not in ds.variables:
                raise DataError(f"{self.label}: variable {name!r} is missing")
        return ds

    @property
    def ds(self) -> Any:
        """The root group."""
        return self.dataset()

    def layout(self, group: str | None = None) -> Any:
        """The coordinate roles of the root (or ``group``): :class:`landimg.data.axes.Layout`, found once."""
        if group not in self._layouts:
            self._layouts[group] = Layout(self.dataset(group), self.label)
        return self._layouts[group]

    def close(self) -> None:
        """Close every opened group."""
        for ds in self._groups.values():
            ds.close()
        self._groups.clear()
        self._layouts.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
