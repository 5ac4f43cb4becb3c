"""A product's file series on the model grid: read each file's window (each file opened once), regrid,
merge in time, finish, check, select the period, and build the output dataset that ``regrid`` writes."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import cftime
import numpy as np

from landimg import units
from landimg.data.common import ALMA_UNITS, LAYERS, DataError, expand_files, parse_date, to_seconds
from landimg.data.netcdf import NcFile
from landimg.data.product import Product
from landimg.data.products import get_product
from landimg.data.reading import ALMA_QUANTITIES
from landimg.data.regrid import Regridder

__all__ = ["FileProgress", "Series", "read_all", "read_series", "to_dataset"]

#: Reports reading progress: (files done, files in all).
ProgressFn = Callable[[int, int], None]

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

    def select(self, grid, start: str | None, end: str | None, what: str = "--files") -> Series:
        """The records from ``start`` 00:00 to the end of ``end`` (YYYY-MM-DD in :attr:`calendar`; None:
        unbounded), which must reach both days; forcing must be finite at every land cell of ``grid``."""
        times, fields = _select(self.times, self.fields, self.calendar, start, end, self.files, what)
        if self.product.kind == "forcing":
            _check_forcing(times, fields, grid, self.calendar, what)
        return Series(self.product, times, self.calendar, fields, self.files)


class FileProgress:
    """Progress of reading a file set: on a terminal a line updated in place, otherwise a line every
    ``every`` seconds; silent for reads shorter than ``after`` seconds.

    Parameters
    ----------
    what : str
        What is read (``forcing.files`` ...), shown on the line.
    prefix : str
        Start of each line (``[landimg]``, ``landimg.data:``).
    stream : file, optional
        Default ``sys.stderr``.
    clock : callable, optional
        Seconds (``time.monotonic``).
    """

    def __init__(
        self,
        what: str,
        prefix: str = "[landimg]",
        stream=None,
        after: float = 2.0,
        every: float = 10.0,
        clock=None,
    ) -> None:
        self.what, self.prefix, self.after, self.every = what, prefix, after, every
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.clock = time.monotonic if clock is None else clock
        self.t0 = self.clock()
        self.last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        el = now - self.t0
        due = self.last is None and el >= self.after
        due |= self.last is not None and now - self.last >= (0.5 if self.tty else self.every)
        if not (due or (done == total and self.last is not None)):
            return
        self.last = now
        text = f"{self.prefix} reading {self.what}: {done}/{total} files ({el:.0f} s)"
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if done == total else ""))
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)


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


def read_all(
    product: str | Product,
    files: str | Sequence[str],
    grid,
    *,
    min_coverage: float = 0.0,
    what: str = "--files",
    progress: ProgressFn | None = None,
) -> Series:
    """Every record of a product's files on the model grid: read (each file opened once), regridded,
    merged in time, finished and checked; :meth:`Series.select` takes a period.

    Parameters
    ----------
    product : str or Product
        A name from :func:`landimg.data.products.product_names`.
    files : str or list of str
        Glob pattern(s) of the files.
    grid : landimg.Grid
        The model grid.
    min_coverage : float
        See :meth:`landimg.data.regrid.Regridder.apply`.
    what : str
        How the files were given, named in errors (``--files``, ``forcing.files`` ...).
    progress : callable (done, total), optional
        Called after each file (e.g. :class:`FileProgress`).

    Raises
    ------
    DataError
        No file matches, a file is corrupt, lacks a variable, has wrong units or implausible values, does
        not cover the domain, or no value of a needed variable is valid.
    """
    product = get_product(product) if isinstance(product, str) else product
    paths = expand_files(files, what)
    regridders: dict = {}
    per_var: dict[str, list] = defaultdict(list)
    calendar = None
    for k, path in enumerate(paths):
        with NcFile(path) as src:
            source = product.grid(src)
            rg = regridders.get(source.key())
            if rg is None:
                rg = regridders[source.key()] = Regridder(source, grid, src.label)
            rec = product.read(src, rg.rows, rg.cols)
        cal = getattr(rec.times[0], "calendar", "standard") or "standard"
        if calendar is None:
            calendar = cal
        elif cal != calendar:
            raise DataError(f"{path}: calendar {cal!r} differs from the other files' {calendar!r}")
        secs = to_seconds(rec.times, calendar, _EPOCH)
        for name, values in rec.fields.items():
            per_var[name].append((secs, rg.apply(values, min_coverage), path))
        if progress is not None:
            progress(k + 1, len(paths))
    times, fields = _merge(per_var, {})
    if product.finish is not None:
        times, fields = product.finish(times, fields)
    _check_fields(product, fields, paths, what)
    _check_valid(product, fields, grid, paths, what)
    _check_plausible(product, fields, paths, what)
    return Series(product, times, calendar, fields, paths)


def read_series(
    product: str | Product,
    files: str | Sequence[str],
    grid,
    start: str | None = None,
    end: str | None = None,
    *,
    min_coverage: float = 0.0,
    what: str = "--files",
    progress: ProgressFn | None = None,
) -> Series:
    """Read, regrid and merge a product's files for the model grid and (optionally) a period.

    ``start``, ``end``: first and last day (YYYY-MM-DD, in the files' calendar); records from ``start``
    00:00 up to the end of ``end`` are kept, and they must reach both days. The other parameters are
    those of :func:`read_all`.
    """
    series = read_all(product, files, grid, min_coverage=min_coverage, what=what, progress=progress)
    return series.select(grid, start, end, what)


def _check_fields(product: Product, fields: dict, paths: list[str], what: str) -> None:
    need = {"retrieval": ("sm",), "reference": ("sm",)}.get(product.kind)
    if need is None:
        need = tuple(n for n in ALMA_UNITS if n != "Snowf")
    for name in need:
        if name not in fields:
            raise DataError(f"{what}: no file holds {name!r} of product {product.name} ({paths[0]} ...)")


def _check_valid(product: Product, fields: dict, grid, paths: list[str], what: str) -> None:
    """A needed variable without one valid value at a land cell is an error (not a file of NaN)."""
    need = (
        ("sm",) if product.kind in ("retrieval", "reference") else tuple(n for n in ALMA_UNITS if n in fields)
    )
    for name in need:
        values = fields[name]
        land = values[..., grid.land] if values.shape[-2:] == grid.shape else values
        if not np.isfinite(land).any():
            raise DataError(
                f"{what}: no valid value of {name!r} at any land cell of the model grid in the "
                f"{product.name} "
                f"files ({paths[0]} ...): all fill values, flagged, or over the sea"
            )


def _check_plausible(product: Product, fields: dict, paths: list[str], what: str) -> None:
    """Derived forcing (ERA5's Qair from the dew point, de-accumulated fluxes ...) in its plausible range."""
    if product.kind != "forcing":
        return
    for name, values in fields.items():
        q = ALMA_QUANTITIES.get(name)
        if q is not None:
            try:
                q.check(values, f"{what}: {product.name} {name} (from {paths[0]} ...)", q.unit)
            except units.UnitsError as exc:
                raise DataError(str(exc)) from None


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
