"""Output: atomic file writes, restart files, CF-netCDF files, summary.json, output directory checks.

Every file is written to a temporary name in the destination directory, flushed and fsync'ed, then
renamed into place with :func:`os.replace`, so a reader (or a resumed run) never sees a partial file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OutputDirError",
    "atomic_path",
    "load_restart",
    "open_input_netcdf",
    "prepare_out_dir",
    "save_restart",
    "write_experiment_netcdf",
    "write_json",
    "write_netcdf",
    "seconds_since",
    "write_text",
]


def open_input_netcdf(path: str | Path, required: tuple[str, ...] = (), what: str = "input file"):
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
    netCDF4.Dataset
        The open dataset (the caller closes it, or uses it as a context manager).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable netCDF file, or a required variable is missing.
    """
    import netCDF4

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r}: no such file")
    try:
        ds = netCDF4.Dataset(path)
    except OSError as err:
        raise ValueError(
            f"{what} {str(path)!r}: not a readable netCDF file ({err.strerror or err})"
        ) from None
    missing = [name for name in required if name not in ds.variables]
    if missing:
        ds.close()
        raise ValueError(f"{what} {str(path)!r}: needs the variable(s) {missing}")
    return ds


def seconds_since(time_var: Any, start: Any) -> np.ndarray:
    """Seconds from midnight of the date ``start`` to each value of a CF time variable, float (ntime,)."""
    import datetime as _dt

    import netCDF4

    start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
    units = getattr(time_var, "units", None)
    if units is None:
        raise ValueError("the time variable has no 'units' attribute (e.g. 'hours since 2021-05-01 00:00')")
    times = netCDF4.num2date(
        time_var[:],
        units,
        getattr(time_var, "calendar", "standard"),
        only_use_cftime_datetimes=False,
        only_use_python_datetimes=True,
    )
    t0 = _dt.datetime.combine(start, _dt.time())
    return np.array([(t - t0).total_seconds() for t in np.ravel(times)], dtype=float)


class OutputDirError(RuntimeError):
    """The output directory exists (without --resume), is not writable, or has no restart to resume."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


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


_SEP = "::"
_JSON = "#json"


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        k = str(k)
        if _SEP in k or k.endswith(_JSON):
            raise ValueError(f"restart keys must not contain {_SEP!r} or end in {_JSON!r}: {k!r}")
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            if not v:
                flat[name + _SEP] = np.zeros(0)
            flat.update(_flatten(v, name + _SEP))
        elif isinstance(v, (list, tuple)):
            # e.g. lists of numpy bit-generator states (dicts with 128-bit ints): exact as JSON text
            flat[name + _JSON] = np.asarray(json.dumps(v))
        else:
            arr = np.asarray(v)
            if arr.dtype == object:
                raise ValueError(f"restart entry {name!r} is not a plain array (dtype object)")
            flat[name] = arr
    return flat


def save_restart(path: str | Path, tree: Mapping[str, Any]) -> None:
    """Save a nested dict of arrays/scalars to an ``.npz`` file atomically (no pickling).

    Nested dicts are stored with ``::``-joined keys, lists/tuples (of JSON-able values such as numpy
    bit-generator states) as JSON text; :func:`load_restart` restores all of it bit for bit
    (tuples come back as lists).
    """
    flat = _flatten(tree)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **flat)


def load_restart(path: str | Path) -> dict[str, Any]:
    """Load a file written by :func:`save_restart` into the nested dict (0-d arrays stay 0-d arrays)."""
    out: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as z:
        for name in z.files:
            parts = name.split(_SEP)
            node = out
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            leaf = parts[-1]
            if not leaf:
                continue
            if leaf.endswith(_JSON):
                node[leaf[: -len(_JSON)]] = json.loads(str(z[name]))
            else:
                node[leaf] = z[name]
    return out


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


def prepare_out_dir(out: str | Path, resume: bool, create: bool = True) -> bool:
    """Check (and create) the output directory.

    Parameters
    ----------
    out : path
    resume : bool
        The directory must hold ``restart/restart.npz``.
    create : bool
        Create the directory now (True) or only check that it can be created (False; the caller
        creates it later, so that a run failing during set-up leaves nothing behind).

    Returns True when the directory was created (or is to be created) by this run.

    Raises
    ------
    OutputDirError
        ``out`` exists and ``resume`` is False; ``resume`` is True but there is no restart in ``out``;
        ``out`` cannot be created or written.
    """
    out = Path(out)
    if resume:
        if not (out / "restart" / "restart.npz").is_file():
            raise OutputDirError(f"--resume: no restart file {out / 'restart' / 'restart.npz'}")
        if not os.access(out, os.W_OK):
            raise OutputDirError(f"output directory {out} is not writable")
        return False
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


_OBS_SPACE_DOC = {
    "omb_mean": ("m3 m-3", "mean observation minus background ensemble mean at the observations"),
    "omb_rms": ("m3 m-3", "rms observation minus background ensemble mean"),
    "oma_mean": ("m3 m-3", "mean observation minus analysis ensemble mean"),
    "oma_rms": ("m3 m-3", "rms observation minus analysis ensemble mean"),
    "spread_b": ("m3 m-3", "background ensemble spread at the observations (rms of the member std)"),
    "spread_a": ("m3 m-3", "analysis ensemble spread at the observations"),
    "obs_err": ("m3 m-3", "rms observation error std"),
    "consistency": ("1", "omb_rms / sqrt(spread_b^2 + obs_err^2)"),
    "n_obs": ("1", "usable observations"),
}


def _obs_space_variables(mvar: dict, mdims: dict, history: Mapping[str, Any], methods: list[str]) -> None:
    """Observation-space diagnostics per method (one analysis a day) into the metrics variables."""
    from landimg.experiment.cycle import _OBS_SPACE

    for m in methods:
        h = history[m]
        if "obs_space" not in h:
            continue
        for j, k in enumerate(_OBS_SPACE):
            u, doc = _OBS_SPACE_DOC[k]
            mvar[f"{k}_{m}"] = (("time",), h["obs_space"][:, j], {"units": u, "long_name": f"{m} {doc}"})
        mdims["rank"] = h["rank_counts"].shape[1]
        mvar[f"rank_counts_{m}"] = (
            ("time", "rank"), h["rank_counts"],
            {"units": "1", "long_name": f"{m} rank histogram of the observations among the background members "
             "perturbed by observation-error draws (Hamill 2001)"},
        )  # fmt: skip
        mvar[f"inflation_{m}"] = (("time",), h["inflation"], {"units": "1", "long_name": f"{m} anomaly inflation factor applied"})
        mdims["scale"] = h["gain_per_scale"].shape[1]
        mvar[f"gain_per_scale_{m}"] = (
            ("time", "scale"), h["gain_per_scale"],
            {"units": "1", "long_name": f"{m} mean diagonal-form gain per curvelet scale (coarsest first)"},
        )  # fmt: skip


def write_experiment_netcdf(
    out: str | Path, cfg: Any, grid: Any, stations: Any, history: Mapping[str, Any], methods: list[str]
) -> list[Path]:
    """Write the experiment's CF-netCDF files into ``out``.

    ``analysis.nc``: daily (00 UTC, after the analysis) ensemble mean and spread per verification layer
    and method, the nature run, the observations and the ensemble-mean increment of the observed layer.
    ``metrics.nc``: daily spatial correlation, ubRMSE and bias per method and layer (analysis and
    background) and the station series.

    Returns the paths written.
    """
    from landimg.experiment import metrics as _m

    out = Path(out)
    ndays = history["truth"].shape[0]
    nl = len(_m.LAYERS)
    start = cfg.experiment.start
    tunits = f"days since {start} 00:00:00"
    time_v = np.arange(1, ndays + 1, dtype=float)
    depth = np.array([0.5 * (a + b) for a, b in _m.LAYERS])
    depth_bnds = np.array(_m.LAYERS, dtype=float)
    half = grid.res / 2.0
    common = {
        "time": (
            ("time",),
            time_v,
            {"standard_name": "time", "units": tunits, "calendar": "standard", "axis": "T"},
        ),
        "depth": (
            ("depth",),
            depth,
            {
                "standard_name": "depth",
                "units": "m",
                "positive": "down",
                "axis": "Z",
                "bounds": "depth_bnds",
                "long_name": "centre of the verification layer",
            },
        ),
        "depth_bnds": (("depth", "nv"), depth_bnds, {"units": "m"}),
    }
    sm_layer_attrs = {  # a single layer, no depth axis: the layer is named in long_name
        "standard_name": "volume_fraction_of_condensed_water_in_soil",
        "units": "m3 m-3",
    }
    sm_attrs = {**sm_layer_attrs, "cell_methods": "depth: mean (thickness-weighted over the layer)"}
    dims = {"time": None, "depth": nl, "nv": 2, "lat": grid.shape[0], "lon": grid.shape[1]}
    var: dict[str, tuple] = dict(common)
    var["lat"] = (
        ("lat",),
        grid.lat,
        {"standard_name": "latitude", "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"},
    )
    var["lat_bnds"] = (
        ("lat", "nv"),
        np.stack([grid.lat - half, grid.lat + half], 1),
        {"units": "degrees_north"},
    )
    var["lon"] = (
        ("lon",),
        grid.lon,
        {"standard_name": "longitude", "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"},
    )
    var["lon_bnds"] = (
        ("lon", "nv"),
        np.stack([grid.lon - half, grid.lon + half], 1),
        {"units": "degrees_east"},
    )
    var["land"] = (
        ("lat", "lon"),
        grid.land.astype(np.int8),
        {"long_name": "land mask", "flag_values": np.array([0, 1], np.int8), "flag_meanings": "ocean land"},
    )
    var["sm_truth"] = (
        ("time", "depth", "lat", "lon"),
        history["truth"],
        {**sm_attrs, "long_name": "nature run soil moisture"},
    )
    var["sm_obs"] = (
        ("time", "lat", "lon"),
        history["obs"],
        {
            **sm_layer_attrs,
            "long_name": f"satellite retrievals of the 0-{cfg.analysis.obs_depth * 100:g} cm layer",
        },
    )
    for m in methods:
        h = history[m]
        var[f"sm_mean_{m}"] = (
            ("time", "depth", "lat", "lon"),
            h["mean"],
            {**sm_attrs, "long_name": f"{m} ensemble mean"},
        )
        var[f"sm_spread_{m}"] = (
            ("time", "depth", "lat", "lon"),
            h["spread"],
            {"units": "m3 m-3", "long_name": f"{m} ensemble standard deviation"},
        )
        var[f"increment_{m}"] = (
            ("time", "lat", "lon"),
            h["increment"],
            {
                "units": "m3 m-3",
                "long_name": f"{m} ensemble-mean analysis increment of the "
                f"0-{cfg.analysis.obs_depth * 100:g} cm layer",
            },
        )
    from landimg import __version__

    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    gattrs = {
        "title": "landimg soil-moisture assimilation experiment",
        "source": f"landimg {__version__}",
        "history": f"{created} created by landimg {__version__} (python -m landimg.cycle)",
        "domain": cfg.domain.preset,
        "members": cfg.ensemble.members,
    }
    p1 = out / "analysis.nc"
    write_netcdf(p1, dims, var, gattrs)

    slat, slon = stations.latlon()
    mdims = {"time": None, "depth": nl, "nv": 2, "station": stations.n}
    mvar: dict[str, tuple] = dict(common)
    mvar["station_lat"] = (("station",), slat, {"standard_name": "latitude", "units": "degrees_north"})
    mvar["station_lon"] = (("station",), slon, {"standard_name": "longitude", "units": "degrees_east"})
    mvar["station_sm"] = (
        ("time", "station"),
        history["station_obs"],
        {
            **sm_layer_attrs,
            "long_name": "station 0-10 cm soil moisture",
            "coordinates": "station_lat station_lon",
        },
    )
    units = {"spatial_corr": "1", "ubrmse": "m3 m-3", "bias": "m3 m-3"}
    for m in methods:
        h = history[m]
        for j, k in enumerate(("spatial_corr", "ubrmse", "bias")):
            mvar[f"{k}_{m}"] = (
                ("time", "depth"),
                h["scores"][:, :, j],
                {"units": units[k], "long_name": f"{m} {k} of the analysis vs the nature run"},
            )
            mvar[f"{k}_background_{m}"] = (
                ("time", "depth"),
                h["scores_background"][:, :, j],
                {"units": units[k], "long_name": f"{m} {k} of the background vs the nature run"},
            )
        mvar[f"station_sm_{m}"] = (
            ("time", "station"),
            h["station"],
            {
                **sm_layer_attrs,
                "long_name": f"{m} ensemble mean 0-10 cm at the stations",
                "coordinates": "station_lat station_lon",
            },
        )
    _obs_space_variables(mvar, mdims, history, methods)
    p2 = out / "metrics.nc"
    write_netcdf(p2, mdims, mvar, gattrs)
    return [p1, p2]
