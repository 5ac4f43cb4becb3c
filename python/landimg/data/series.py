"""A product's file series on the model grid: read each file's window, regrid, merge in time, select
the period, check, and build the output dataset that ``regrid`` writes."""

from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from collections.abc import Sequence

import cftime
import numpy as np

from landimg.data.common import ALMA_UNITS, LAYERS, DataError, expand_files, parse_date, to_seconds
from landimg.data.products import Product, get_product
from landimg.data.regrid import Regridder

__all__ = ["Series", "read_series", "to_dataset"]

_EPOCH = "1970-01-01 00:00:00"


class Series:
    """A product on the model grid.

    Attributes
    ----------
    product : Product
    times : ndarray (ntime,)
        Record times, seconds since 1970-01-01 00:00:00 in ``calendar``.
    calendar : str
    fields : dict of str -> ndarray (ntime, ..., ny, nx)
        Output variables in landimg's units.
    files : list of str
    """

    def __init__(self, product: Product, times, calendar, fields, files) -> None:
        self.product, self.times, self.calendar, self.fields, self.files = (
            product,
            times,
            calendar,
            fields,
            files,
        )

    def dates(self) -> list:
        """Record times as cftime datetimes."""
        return list(cftime.num2date(self.times, f"seconds since {_EPOCH}", self.calendar))


def _merge(per_var: dict, paths_of: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    all_times = np.unique(np.concatenate([s for items in per_var.values() for s, _, _ in items]))
    fields = {}
    for name, items in per_var.items():
        shape = (all_times.size,) + items[0][1].shape[1:]
        out = np.full(shape, np.nan)
        owner = np.full(all_times.size, -1)
        for k, (secs, values, path) in enumerate(items):
            idx = np.searchsorted(all_times, secs)
            if np.unique(idx).size != idx.size or np.any(owner[idx] >= 0):
                clash = idx[owner[idx] >= 0] if np.any(owner[idx] >= 0) else idx
                other = items[int(owner[clash[0]])][2] if owner[clash[0]] >= 0 else path
                raise DataError(f"{path}: variable {name!r} repeats a record time also held by {other}")
            out[idx] = values
            owner[idx] = k
        fields[name] = out
    return all_times, fields


def read_series(
    product: str | Product,
    files: str | Sequence[str],
    grid,
    start: str | None = None,
    end: str | None = None,
    *,
    min_coverage: float = 0.0,
    what: str = "--files",
) -> Series:
    """Read, regrid and merge a product's files for the model grid and (optionally) a period.

    Parameters
    ----------
    product : str or Product
        A name from :func:`landimg.data.products.product_names`.
    files : str or list of str
        Glob pattern(s) of the files.
    grid : landimg.Grid
        The model grid.
    start, end : str, optional
        First and last day (YYYY-MM-DD, in the files' calendar); records from ``start`` 00:00 up to the
        end of ``end`` are kept, and they must reach both days.
    min_coverage : float
        See :meth:`landimg.data.regrid.Regridder.apply`.
    what : str
        How the files were given, named in errors (``--files``, ``forcing.files`` ...).

    Raises
    ------
    DataError
        No file matches, a file is corrupt, lacks a variable, has wrong units, does not cover the
        domain, or the records do not cover the period.
    """
    product = get_product(product) if isinstance(product, str) else product
    paths = expand_files(files, what)
    regridders: dict = {}
    per_var: dict[str, list] = defaultdict(list)
    calendar = None
    for path in paths:
        source = product.grid(path)
        rg = regridders.get(source.key())
        if rg is None:
            rg = regridders[source.key()] = Regridder(source, grid, path)
        rec = product.read(path, rg.rows, rg.cols)
        cal = getattr(rec.times[0], "calendar", "standard") or "standard"
        if calendar is None:
            calendar = cal
        elif cal != calendar:
            raise DataError(f"{path}: calendar {cal!r} differs from the other files' {calendar!r}")
        secs = to_seconds(rec.times, calendar, _EPOCH)
        for name, values in rec.fields.items():
            per_var[name].append((secs, rg.apply(values, min_coverage), path))
    times, fields = _merge(per_var, {})
    if product.finish is not None:
        times, fields = product.finish(times, fields)
    _check_fields(product, fields, paths, what)
    times, fields = _select(times, fields, calendar, start, end, paths, what)
    if product.kind == "forcing":
        _check_forcing(times, fields, grid, calendar, what)
    return Series(product, times, calendar, fields, paths)


def _check_fields(product: Product, fields: dict, paths: list[str], what: str) -> None:
    need = {"retrieval": ("sm",), "reference": ("sm",)}.get(product.kind)
    if need is None:
        need = tuple(n for n in ALMA_UNITS if n != "Snowf")
    for name in need:
        if name not in fields:
            raise DataError(f"{what}: no file holds {name!r} of product {product.name} ({paths[0]} ...)")


def _select(times, fields, calendar, start, end, paths, what):
    def fmt(sec):
        return str(cftime.num2date(sec, f"seconds since {_EPOCH}", calendar))[:16]

    lo, hi = -np.inf, np.inf
    if start:
        lo = float(to_seconds([parse_date(start, calendar, "--start")], calendar, _EPOCH)[0])
    if end:
        end_day = parse_date(end, calendar, "--end")
        hi = float(to_seconds([end_day], calendar, _EPOCH)[0]) + 86400.0
    if lo >= hi:
        raise DataError(f"--start {start} is after --end {end}")
    keep = (times >= lo) & (times < hi)
    span = f"the records span {fmt(times[0])} .. {fmt(times[-1])}" if times.size else "there are no records"
    if not keep.any():
        raise DataError(f"{what}: no record between {start} and {end} ({span}; {paths[0]} ...)")
    kept = times[keep]
    if start and kept[0] >= lo + 86400.0:
        raise DataError(f"{what}: the files do not cover the start day {start} ({span})")
    if end and kept[-1] < hi - 86400.0:
        raise DataError(f"{what}: the files do not cover the end day {end} ({span})")
    return kept, {k: v[keep] for k, v in fields.items()}


def _check_forcing(times, fields, grid, calendar, what) -> None:
    for name, values in fields.items():
        cols = grid.to_columns(values)
        bad = ~np.isfinite(cols)
        if bad.any():
            rec = int(np.flatnonzero(bad.any(axis=1))[0])
            when = cftime.num2date(times[rec], f"seconds since {_EPOCH}", calendar)
            raise DataError(
                f"{what}: variable {name!r} is missing at {int(bad[rec].sum())} land cells of the model grid at "
                f"{str(when)[:16]} (files not covering the domain or a record missing)"
            )


def to_dataset(series: Series, grid):
    """The regridded product as an xarray.Dataset in landimg's layout (see :data:`KINDS`)."""
    import xarray as xr

    from landimg import __version__

    half = grid.res / 2.0
    coords = {
        "time": (
            "time",
            series.times,
            {
                "units": f"seconds since {_EPOCH}",
                "calendar": series.calendar,
                "standard_name": "time",
                "axis": "T",
            },
        ),
        "lat": (
            "lat",
            grid.lat,
            {"units": "degrees_north", "standard_name": "latitude", "bounds": "lat_bnds"},
        ),
        "lon": (
            "lon",
            grid.lon,
            {"units": "degrees_east", "standard_name": "longitude", "bounds": "lon_bnds"},
        ),
    }
    data = {
        "lat_bnds": (("lat", "nv"), np.stack([grid.lat - half, grid.lat + half], 1)),
        "lon_bnds": (("lon", "nv"), np.stack([grid.lon - half, grid.lon + half], 1)),
        "land": (("lat", "lon"), grid.land.astype(np.int8), {"long_name": "model land mask (1 = land)"}),
    }
    kind = series.product.kind
    if kind == "reference":
        coords["depth"] = (
            "depth",
            np.array([0.5 * (a + b) for a, b in LAYERS]),
            {"units": "m", "positive": "down", "bounds": "depth_bnds"},
        )
        data["depth_bnds"] = (("depth", "nv"), np.array(LAYERS))
        data["sm"] = (
            ("time", "depth", "lat", "lon"),
            series.fields["sm"],
            {
                "units": "m3 m-3",
                "long_name": "volumetric soil moisture, layer mean",
                "standard_name": "volume_fraction_of_condensed_water_in_soil",
            },
        )
    elif kind == "retrieval":
        for name in ("sm", "sm_error"):
            if name in series.fields:
                long = (
                    "retrieved surface soil moisture"
                    if name == "sm"
                    else "retrieval error standard deviation"
                )
                data[name] = (
                    ("time", "lat", "lon"),
                    series.fields[name],
                    {"units": "m3 m-3", "long_name": long},
                )
    else:
        for name, units in ALMA_UNITS.items():
            if name in series.fields:
                data[name] = (("time", "lat", "lon"), series.fields[name], {"units": units})
    ds = xr.Dataset(data, coords={k: xr.Variable(*v) for k, v in coords.items()})
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": f"{series.product.name} on the landimg model grid",
        "source_product": series.product.name,
        "source_description": series.product.description,
        "source_files": f"{len(series.files)} file(s), first {series.files[0]}",
        "regridding": "area-weighted conservative means (exact cell overlap) of the valid source cells",
        "history": f"{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} python -m landimg.data regrid "
        f"(landimg {__version__})",
    }
    for name in ds.data_vars:
        if ds[name].dtype.kind == "f" and name not in ("lat_bnds", "lon_bnds", "depth_bnds"):
            ds[name].encoding.update({"zlib": True, "complevel": 4, "_FillValue": np.nan})
    for name in list(ds.coords) + ["lat_bnds", "lon_bnds", "depth_bnds"]:
        if name in ds.variables:
            ds[name].encoding["_FillValue"] = None
    return ds
