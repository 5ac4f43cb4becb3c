"""Dimensions by name: which dimension of a variable is time, latitude, longitude (or station).

Coordinates are found by their CF attributes through cf_xarray (``standard_name``, ``units``
``degrees_north``/``degrees_east``, ``axis``, ``_CoordinateAxisType`` ...), by CF time units
(``<unit> since <date>``), then by their usual names (``lat``/``latitude``, ``lon``/``longitude``,
``time``/``valid_time``). A variable's dimension has the role of the 1-D coordinate variable along it (or
of its own name); readers ask for the roles they need and get arrays in that order whatever the file's
order -- (time, lat, lon) stored as (time, lon, lat) or (lat, lon, time) reads the same. Descending
latitudes and 0..360 longitudes stay in file order: the regridder and the nearest-cell matcher take the
coordinate values as they are.

Other dimensions: length 1 is dropped (``depth``, ``number``); ERA5's ``expver`` (ERA5 and ERA5T in one
file, each record held by one of them) is combined by taking the first valid value along it; anything
else is refused in one line naming the file, the variable and its dimensions, as is a variable whose time
or horizontal dimensions cannot be identified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from landimg.data.common import DataError
from landimg.data.decoding import values

__all__ = ["ROLES", "Layout"]

#: Roles a dimension can have; ``station`` is the dimension both 1-D latitude and longitude lie along.
ROLES = ("time", "lat", "lon", "station")
_CF_NAMES = {"time": "time", "lat": "latitude", "lon": "longitude"}
_NAMES = {
    "time": ("time", "valid_time", "times", "t"),
    "lat": ("lat", "latitude", "nav_lat", "lats"),
    "lon": ("lon", "longitude", "nav_lon", "lons", "long"),
}
_TIME_UNITS = re.compile(r"^\s*\w+\s+since\s+\S", re.IGNORECASE)
_COMBINED = ("expver",)
_HINT = (
    "give the coordinate variables CF attributes (standard_name latitude/longitude/time, units degrees_north/"
    "degrees_east/'<unit> since <date>') or the names lat, lon, time"
)


class Layout:
    """The coordinate variables of an opened dataset and the roles of its variables' dimensions.

    Parameters
    ----------
    ds : xarray.Dataset
        Opened by :func:`landimg.data.netcdf.open_dataset`.
    label : str
        The file as errors name it.

    Attributes
    ----------
    coords : dict of str -> list of str
        Role (``time``, ``lat``, ``lon``) -> variables found for it, best first.
    """

    def __init__(self, ds: Any, label: str) -> None:
        self.ds, self.label = ds, label
        found = _cf_coordinates(ds)
        self.coords: dict[str, list[str]] = {}
        for role in ("time", "lat", "lon"):
            names = list(found.get(_CF_NAMES[role], []))
            if role == "time":
                names += [
                    n
                    for n, v in ds.variables.items()
                    if v.ndim == 1 and _TIME_UNITS.match(str(v.attrs.get("units", "")))
                ]
            lower = {str(n).lower(): n for n in ds.variables}
            names += [lower[n] for n in _NAMES[role] if n in lower]
            self.coords[role] = list(dict.fromkeys(names))
        self._dims: dict[tuple, dict[str, str]] = {}

    def coord(self, role: str, required: bool = True) -> str | None:
        """The 1-D coordinate variable of ``role`` (``time``, ``lat``, ``lon``); DataError if none and
        ``required``."""
        one_d = [n for n in self.coords[role] if self.ds[n].ndim == 1]
        if one_d:
            return one_d[0]
        if not required:
            return None
        if role in ("lat", "lon") and self.coords[role]:
            name = self.coords[role][0]
            raise DataError(
                f"{self.label}: {_CF_NAMES[role]} {name!r} has {self.ds[name].ndim} dimensions "
                "(a curvilinear grid): "
                "regrid to a regular latitude-longitude grid first"
            )
        raise DataError(f"{self.label}: no {_CF_NAMES[role]} coordinate variable found ({_HINT})")

    def coord_values(self, role: str) -> np.ndarray:
        """Values of the 1-D coordinate of ``role``, float64 in file order."""
        name = self.coord(role)
        return values(self.ds[name], self.label, name)

    def _dim_roles(self, var: Any) -> dict[str, set[str]]:
        """Dimension of ``var`` -> the roles of the 1-D coordinates along it (or of its own name)."""
        out: dict[str, set[str]] = {d: set() for d in var.dims}
        for role in ("time", "lat", "lon"):
            for name in self.coords[role]:
                c = self.ds[name]
                if c.ndim == 1 and c.dims[0] in out:
                    out[c.dims[0]].add(role)
        for d, roles in out.items():
            if not roles:
                roles.update(r for r in ("time", "lat", "lon") if str(d).lower() in _NAMES[r])
            if {"lat", "lon"} <= roles:  # latitude and longitude along one dimension: station points
                roles.clear()
                roles.add("station")
        return out

    def roles_of(self, name: str) -> set[str]:
        """The roles of variable ``name``'s dimensions."""
        if name not in self.ds.variables:
            raise DataError(f"{self.label}: variable {name!r} is missing")
        return set().union(*self._dim_roles(self.ds[name]).values())

    def dims(self, name: str, want: Sequence[str]) -> dict[str, str]:
        """Role -> dimension of variable ``name`` for the roles ``want``; DataError naming what is missing.

        Dimensions with another role or none must have length 1 (dropped when read) or be ``expver``.
        """
        key = (name, tuple(want))
        if key not in self._dims:
            self._dims[key] = self._find_dims(name, want)
        return dict(self._dims[key])

    def _find_dims(self, name: str, want: Sequence[str]) -> dict[str, str]:
        if name not in self.ds.variables:
            raise DataError(f"{self.label}: variable {name!r} is missing")
        var = self.ds[name]
        roles = self._dim_roles(var)
        out: dict[str, str] = {}
        for d, rs in roles.items():
            for r in rs & set(want):
                if r in out:
                    raise DataError(
                        f"{self.label}: variable {name!r} has two {r} dimensions ({out[r]!r}, {d!r})"
                    )
                out[r] = d
        missing = [r for r in want if r not in out]
        if missing:
            what = ", ".join(
                "latitude and longitude" if r == "station" else _CF_NAMES.get(r, r) for r in missing
            )
            raise DataError(
                f"{self.label}: variable {name!r} has dimensions {tuple(var.dims)}: cannot tell which "
                f"is {what} ({_HINT})"
            )
        for d in var.dims:
            if d not in out.values() and var.sizes[d] > 1 and d not in _COMBINED:
                raise DataError(
                    f"{self.label}: variable {name!r} has a dimension {d!r} of length {var.sizes[d]} besides "
                    f"{', '.join(f'{r} {out[r]!r}' for r in want)}: give one value along it"
                )
        return out

    def read(self, name: str, order: Sequence[str], window: dict[str, Any] | None = None) -> np.ndarray:
        """Values of ``name`` as float64 with axes in ``order`` (roles), decoded and windowed.

        Parameters
        ----------
        name : str
            The variable.
        order : sequence of str
            Roles of the result's axes, e.g. ``("time", "lat", "lon")``; a role given an integer in
            ``window`` is dropped from the result.
        window : dict, optional
            Role -> slice or int selecting along that role's dimension (file order).

        Returns
        -------
        ndarray
            Shape in ``order``; NaN where fill, outside ``valid_*``, or missing in every ``expver``.
        """
        dims = self.dims(name, order)
        var = self.ds[name]
        sel = {dims[r]: s for r, s in (window or {}).items() if s is not None and r in dims}
        sel.update({d: 0 for d in var.dims if d not in dims.values() and d not in _COMBINED})
        sub = var.isel(sel)
        combined = [d for d in sub.dims if d in _COMBINED]
        keep = [dims[r] for r in order if dims[r] in sub.dims]
        data = values(sub.transpose(*combined, *keep), self.label, name)
        for _ in combined:  # ERA5 + ERA5T: the first valid value along expver
            first = np.argmax(np.isfinite(data), axis=0)
            data = np.take_along_axis(data, first[None], axis=0)[0]
        return data


def _cf_coordinates(ds: Any) -> dict[str, list[str]]:
    """Variables whose CF attributes say latitude, longitude or time: cf_xarray's coordinates, then every
    other variable (station files keep ``lat(station)`` as a data variable) by cf_xarray's criteria."""
    import cf_xarray  # noqa: F401 - registers the .cf accessor
    from cf_xarray.criteria import coordinate_criteria

    try:
        found = {k: list(v) for k, v in ds.cf.coordinates.items()}
    except Exception:  # noqa: BLE001 - odd attributes must not hide the fallbacks
        found = {}
    for key in ("latitude", "longitude", "time"):
        for name, var in ds.variables.items():
            attrs = {a: str(var.attrs.get(a, "")).strip() for a in coordinate_criteria[key]}
            if any(attrs[a] in values for a, values in coordinate_criteria[key].items()):
                found.setdefault(key, [])
                if name not in found[key]:
                    found[key].append(name)
    return found
