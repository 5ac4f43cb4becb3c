"""The Fortran extension ``landimg.model._colm`` and the names of its arrays.

The Fortran side (``fortran/colm_const.f90``) is the one table of array layouts: each forcing,
parameter, flux and state entry has a name there, and ``colm_api::colm_field_name`` reports it. This module
checks on import that the extension is the API version this package was written for, reads the
names, and (:func:`index_map`) checks that they are exactly the names the Python side uses;
``ColumnModel`` then packs and reads the arrays by these names, never by position. A stale build fails here with a message saying how to
rebuild.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any

__all__ = [
    "API_VERSION",
    "FORTRAN_FLUXES",
    "FORTRAN_CSTATE",
    "FORTRAN_FORCING",
    "FORTRAN_LSTATE",
    "FORTRAN_PARAMS",
    "api",
    "check_names",
    "index_map",
]

#: API version of fortran/colm_api.f90 this package needs (colm_api::api_version)
API_VERSION = 7

_REBUILD = (
    "rebuild the extension: `bash ci/dev-build.sh` in a source checkout (or `pip install .` / "
    "`bash ci/setup.sh` for an installed package)"
)

try:
    from landimg.model._colm import colm_api as api
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"landimg.model._colm (the Fortran column physics) cannot be imported ({exc}); {_REBUILD}"
    ) from exc


def _check_version(mod: Any) -> None:
    """ImportError unless ``mod.api_version()`` equals :data:`API_VERSION`."""
    get = getattr(mod, "api_version", None)
    found = int(get()) if get is not None else None
    if found != API_VERSION:
        raise ImportError(
            f"landimg.model._colm is Fortran API version {found}, this landimg needs version "
            f"{API_VERSION} (stale build); {_REBUILD}"
        )


def _names(mod: Any, group: int) -> tuple[str, ...]:
    """Entry names of array ``group`` (1 forcing, 2 parameters, 3 fluxes, 4 per-layer state, 5 per-column
    state) in Fortran index order."""
    out = []
    i = 1
    while True:
        name, ierr = mod.colm_field_name(group, i)
        if ierr != 0:
            break
        out.append(bytes(name).decode("ascii").strip())
        i += 1
    return tuple(out)


def check_names(what: str, fortran: tuple[str, ...], python: tuple[str, ...]) -> dict[str, int]:
    """Map each name to its 0-based Fortran index; ImportError naming the names only one side has."""
    only_f = sorted(set(fortran) - set(python))
    only_p = sorted(set(python) - set(fortran))
    if only_f or only_p or len(set(fortran)) != len(fortran):
        raise ImportError(
            f"the {what} names of landimg.model._colm ({', '.join(fortran)}) do not match the Python side "
            f"(only in Fortran: {only_f or 'none'}; only in Python: {only_p or 'none'}); {_REBUILD}"
        )
    return {n: fortran.index(n) for n in python}


_check_version(api)
# Threads are opt-in: without OMP_NUM_THREADS the physics runs on one thread per process (an OpenMP
# runtime would otherwise take every core in each MPI rank and oversubscribe the node).
if not os.environ.get("OMP_NUM_THREADS"):
    api.colm_threads(1)
_FORTRAN_FORCING = _names(api, 1)
_FORTRAN_PARAMS = _names(api, 2)
_FORTRAN_FLUXES = _names(api, 3)
_FORTRAN_LSTATE = _names(api, 4)
_FORTRAN_CSTATE = _names(api, 5)
_sizes = tuple(int(x) for x in api.colm_layout())
_groups = (_FORTRAN_FORCING, _FORTRAN_PARAMS, _FORTRAN_FLUXES, _FORTRAN_LSTATE, _FORTRAN_CSTATE)
if _sizes != tuple(len(g) for g in _groups):
    raise ImportError(f"landimg.model._colm reports inconsistent array layouts; {_REBUILD}")

#: forcing names in Fortran index order
FORTRAN_FORCING: tuple[str, ...] = _FORTRAN_FORCING
#: parameter names in Fortran index order
FORTRAN_PARAMS: tuple[str, ...] = _FORTRAN_PARAMS
#: flux names in Fortran index order
FORTRAN_FLUXES: tuple[str, ...] = _FORTRAN_FLUXES
#: per-layer state names (last dimension of the layer state array) in Fortran index order
FORTRAN_LSTATE: tuple[str, ...] = _FORTRAN_LSTATE
#: per-column state names (last dimension of the column state array) in Fortran index order
FORTRAN_CSTATE: tuple[str, ...] = _FORTRAN_CSTATE


def index_map(what: str, python: tuple[str, ...]) -> MappingProxyType[str, int]:
    """Read-only name -> 0-based Fortran index for ``what`` in ("forcing", "parameter", "flux", "layer state",
    "column state")."""
    fortran = {"forcing": FORTRAN_FORCING, "parameter": FORTRAN_PARAMS, "flux": FORTRAN_FLUXES,
               "layer state": FORTRAN_LSTATE, "column state": FORTRAN_CSTATE}[what]  # fmt: skip
    return MappingProxyType(check_names(what, fortran, python))
