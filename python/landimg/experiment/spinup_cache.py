"""Spin-up cache: the spun-up nature and ensemble-column states, stored under a hash of all they depend on.

The spin-up (``experiment.spinup_days`` of the column model under the synthetic or file weather) depends
on: the grid and land mask, the soil parameters and vegetation of the nature run and of the ensemble
(which cover ``domain.*`` and the soil/vegetation files' contents), the weather (``forcing.*``,
``experiment.seed``, ``experiment.start``, the aridity field and the forcing files' contents), the time
step, the number of spin-up days and of per-member spin-up days (the cached ensemble column stops
``ensemble.spread_days`` before the end), and the code (landimg's version, the model package including the
compiled extension, and the weather generator's source). :func:`spinup_key` hashes all of it, so a
cached state is used only where the spin-up would compute exactly the same bits; anything else misses.
The per-member part (the last ``spread_days``, with per-member forcing and, with ``ensemble.perturb_soil``,
per-member soil parameters) is not cached: it runs after the cached states are read, so the
per-member soil does not enter the key (the ensemble column is spun up with the model's texture).

Files are ``DIR/spinup-<key>.npz`` written atomically (:func:`landimg.atomic.atomic_path`), so
concurrent runs sharing a cache directory never read a partial file.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import DiskError, atomic_path, make_dirs

__all__ = ["DamagedEntry", "cached_spinup", "check_cache_dir", "load_spinup", "save_spinup", "spinup_key"]

_CHUNK = 1 << 20


def _hash_file(h: Any, path: str | Path) -> None:
    p = Path(path)
    h.update(f"file {p.name} {p.stat().st_size}\n".encode())
    with open(p, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)


def _hash_array(h: Any, name: str, value: Any) -> None:
    a = np.ascontiguousarray(value)
    h.update(f"array {name} {a.dtype.str} {a.shape}\n".encode())
    h.update(a.tobytes())


def _code_files() -> list[Path]:
    """The source and compiled files the spin-up runs: the model package and the weather generator."""
    from landimg import model
    from landimg.experiment import forcing

    root = Path(model.__file__).parent
    files = sorted(p for p in root.iterdir() if p.suffix in (".py", ".so", ".pyd") and p.is_file())
    return files + [Path(forcing.__file__)]


def spinup_key(cfg: Any, domain: Any, soil_true: Any, soil_est: Any, model_kwargs: dict[str, Any]) -> str:
    """Hex SHA-256 of everything the spin-up of ``cfg`` on ``domain`` depends on.

    Parameters
    ----------
    cfg : Config
    domain : Domain
        Grid, aridity and vegetation used by the spin-up.
    soil_true, soil_est : soil parameter objects
        Hashed through their numpy arrays (every attribute that is an array or a number).
    model_kwargs : dict
        Extra ColumnModel arguments (arrays or numbers), e.g. ``igbp``.
    """
    from landimg import __version__

    h = hashlib.sha256()
    e, f = cfg.experiment, cfg.forcing
    settings = {
        "version": __version__,
        "seed": e.seed,
        "start": str(e.start),
        "dt": e.dt,
        "spinup_days": e.spinup_days,
        "spread_days": min(cfg.ensemble.spread_days, e.spinup_days),
        "forcing": {k: getattr(f, k) for k in f.__dataclass_fields__},
    }
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    grid = domain.grid
    for name, value in (
        ("lat", grid.lat),
        ("lon", grid.lon),
        ("land", grid.land),
        ("aridity", domain.aridity),
    ):
        _hash_array(h, name, value)
    for label, soil in (("soil_true", soil_true), ("soil_est", soil_est)):
        fields = (
            vars(soil)
            if hasattr(soil, "__dict__")
            else {k: getattr(soil, k) for k in soil.__dataclass_fields__}
        )
        for k in sorted(fields):
            if isinstance(fields[k], np.ndarray | float | int):
                _hash_array(h, f"{label}.{k}", fields[k])
    for k in sorted(model_kwargs):
        _hash_array(h, f"model.{k}", model_kwargs[k])
    for path in (f.true_file, f.ensemble_file):
        if path:
            _hash_file(h, path)
    for path in _code_files():
        _hash_file(h, path)
    return h.hexdigest()


def _path(directory: str | Path, key: str) -> Path:
    return Path(directory) / f"spinup-{key}.npz"


class DamagedEntry(ValueError):
    """A spin-up cache file exists but cannot be read (truncated, corrupt, not a spin-up); one line naming it."""


def load_spinup(
    directory: str | Path, key: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """The cached (nature state, ensemble-column state) for ``key``, or None when there is none.

    Raises
    ------
    DamagedEntry
        The file is there but truncated, corrupt or not a spin-up (the message names it and the reason).
    """
    import zipfile

    path = _path(directory, key)
    try:
        with np.load(path, allow_pickle=False) as z:
            nature = {k[len("nature/") :]: z[k] for k in z.files if k.startswith("nature/")}
            member = {k[len("member/") :]: z[k] for k in z.files if k.startswith("member/")}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise DamagedEntry(f"spin-up cache entry {path} is damaged ({type(exc).__name__}: {reason})") from None
    if not nature or not member:
        raise DamagedEntry(f"spin-up cache entry {path} is damaged (no nature or member state)")
    return nature, member


def _lookup(directory: str | Path, key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """:func:`load_spinup`, a damaged entry reported (one warning naming it) and treated as absent: the
    spin-up is recomputed and the entry rewritten."""
    import warnings

    try:
        return load_spinup(directory, key)
    except DamagedEntry as exc:
        warnings.warn(f"{exc}: the spin-up is recomputed and the entry rewritten", stacklevel=2)
        return None


def save_spinup(
    directory: str | Path, key: str, nature: dict[str, np.ndarray], member: dict[str, np.ndarray]
) -> Path:
    """Store the spun-up states atomically under ``key``; returns the file's path.

    Raises
    ------
    DiskError
        The directory cannot be created or the file written (one line naming it).
    """
    path = _path(directory, key)
    make_dirs(path.parent)
    arrays = {f"nature/{k}": v for k, v in nature.items()} | {f"member/{k}": v for k, v in member.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def check_cache_dir(directory: str | Path) -> None:
    """Create ``directory`` if needed; raise ValueError (one line) unless it is a writable directory."""
    path = Path(directory)
    try:
        make_dirs(path)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"--spinup-cache {directory}: not a writable directory ({exc.strerror or exc})"
        ) from exc


def cached_spinup(
    spin: Callable[[], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    key: Callable[[], str],
    directory: str | Path | None,
    comm: Any,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """The spun-up (nature, member) states from the cache, or from ``spin()`` and then stored.

    Parameters
    ----------
    spin : callable
        Runs the spin-up (collective: every rank calls it) and returns the states on every rank.
    key : callable
        The cache key (:func:`spinup_key`); called on rank 0 only.
    directory : str, Path or None
        The cache directory; None runs ``spin()`` without a cache.
    comm : communicator

    Returns
    -------
    nature, member : dict of ndarray
        The states, identical on every rank.
    status : {"off", "hit", "stored"}
    """
    if directory is None:
        return (*spin(), "off")
    rank = comm.Get_rank()
    k = key() if rank == 0 else None
    found = _lookup(directory, k) if rank == 0 else None
    if comm.bcast(found is not None, root=0):
        nature, member = comm.bcast(found, root=0)
        return nature, member, "hit"
    nature, member = spin()
    failed = None
    if rank == 0:
        try:
            save_spinup(directory, k, nature, member)
        except DiskError as exc:
            failed = exc.with_hint("give --spinup-cache another directory, or leave it out")
    failed = comm.bcast(failed, root=0)  # every rank ends with the same one line
    if failed is not None:
        raise failed
    return nature, member, "stored"
