"""Writing outputs: JSON, CF-netCDF, output directory checks.

Every file is written through :func:`landimg.atomic.atomic_path` (a temporary name in the destination
directory, fsync'ed, renamed into place), so a reader (or a resumed run) never sees a partial file, and a
disk that refuses the write raises :class:`landimg.atomic.DiskError` (one line naming the file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import atomic_path

__all__ = ["OutputDirError", "atomic_path", "prepare_out_dir", "write_json", "write_netcdf", "write_text"]


class OutputDirError(RuntimeError):
    """The output directory exists (without --resume), is not writable, or has no restart to resume."""


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (numpy scalars/arrays converted; NaN -> null)."""
    write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_netcdf(
    path: str | Path,
    dims: Mapping[str, int | None],
    variables: Mapping[str, tuple[tuple[str, ...], np.ndarray, Mapping[str, Any]]],
    global_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write a netCDF4 file atomically.

    Parameters
    ----------
    path : path
    dims : mapping name -> size (None = unlimited)
    variables : mapping name -> (dimension names, data, attributes)
        Float data is stored as float32 or float64 as given, with ``_FillValue`` NaN for floats, except
        coordinate variables (one dimension of the same name) and the variables other variables name as
        ``bounds``, which CF requires to be complete (they get no ``_FillValue``).
    global_attrs : mapping, optional
        File attributes (``Conventions = "CF-1.8"`` is added when missing).
    """
    import netCDF4

    attrs = {"Conventions": "CF-1.8"}
    attrs.update(global_attrs or {})
    no_fill = {name for name, (vdims, _, _) in variables.items() if tuple(vdims) == (name,)}
    no_fill |= {str(vattrs["bounds"]) for _, _, vattrs in variables.values() if "bounds" in vattrs}
    with atomic_path(path) as tmp, netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        for name, size in dims.items():
            ds.createDimension(name, size)
        for name, (vdims, data, vattrs) in variables.items():
            data = np.asarray(data)
            if data.shape != tuple(ds.dimensions[d].size for d in vdims) and None not in (
                dims[d] for d in vdims
            ):
                raise ValueError(f"{name}: data shape {data.shape} does not match dimensions {vdims}")
            fill = np.nan if data.dtype.kind == "f" and name not in no_fill else None
            kw = {"zlib": True, "complevel": 1} if data.ndim >= 2 else {}
            var = ds.createVariable(name, data.dtype, vdims, fill_value=fill, **kw)
            var.setncatts({k: v for k, v in vattrs.items() if k != "_FillValue"})
            var[...] = data
        ds.setncatts(dict(attrs))


def _holds_nothing(out: Path) -> bool:
    """True when ``out`` holds only (empty) directories and temporary files of an interrupted write."""
    return all(p.is_dir() or (p.name.startswith(".") and p.name.endswith(".tmp")) for p in out.rglob("*"))


def prepare_out_dir(out: str | Path, resume: bool, create: bool = True) -> bool:
    """Check (and create) the output directory.

    Parameters
    ----------
    out : path
    resume : bool
        The directory must hold a restart (``restart/day-NNNNN/``, or an earlier schema's, which
        ``--resume`` then names).
    create : bool
        Create the directory now (True) or only check that it can be created (False; the caller
        creates it later, so that a run failing during set-up leaves nothing behind).

    An existing directory is used when it holds nothing but empty directories and temporary files
    (a run that failed before its first restart leaves at most that).

    Returns True when the directory was created (or is to be created) by this run.

    Raises
    ------
    OutputDirError
        ``out`` exists and ``resume`` is False; ``resume`` is True but there is no restart in ``out``;
        ``out`` cannot be created or written.
    """
    out = Path(out)
    if resume:
        from landimg.experiment.restart import has_restart

        if not has_restart(out):
            raise OutputDirError(f"--resume: no restart in {out / 'restart'}")
        if not os.access(out, os.W_OK):
            raise OutputDirError(f"output directory {out} is not writable")
        return False
    if out.is_dir() and not out.is_symlink() and _holds_nothing(out):
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputDirError(f"output directory {out} is not writable")
        for p in out.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
        return False  # an empty directory (or one a run left before its first restart): used as it is
    if out.exists() or out.is_symlink():
        raise OutputDirError(f"output directory {out} already exists; choose another --out or pass --resume")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputDirError(f"cannot create output directory {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot create output directory {out}: {parent} is not writable")
    missing = [out.absolute()]
    while not missing[-1].parent.exists():
        missing.append(missing[-1].parent)
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    try:
        probe = out / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        for d in missing:
            d.rmdir()
        raise OutputDirError(f"output directory {out} is not writable: {exc.strerror or exc}") from None
    if not create:  # checked for real; leave nothing behind
        for d in missing:
            d.rmdir()
    return True
