"""Restarts: one sharded store per day, written by every rank, read on any layout (restart schema 2).

After day ``N`` every rank writes its block of the run's state and rank 0 a small manifest
(:mod:`landimg.shards`) into ``DIR/restart/day-0000N/``::

    manifest.json     schema, day, layout of the ranks that wrote it, configuration, input-file hashes,
                      days the output files hold, wall seconds so far; per shard its size, SHA-256 and ranges
    shard-00000.npz   rank 0: its members on its columns (every method), their random streams, its world
                      block of the nature run, its share of the observation error's AR(1) field, its
                      columns of the running score sums, and what is kept once (the small daily record,
                      the AR(1) field's index, the analyses' scalars)
    shard-00001.npz   rank 1 ...

A restart is complete once its manifest exists (written last, atomically); the previous day's restart is
kept until then, and removed after (the one before it is kept until the run completes). ``--resume`` reads
the newest complete restart on any layout: each rank reads the parts of the shards that hold its members
and columns, after every shard's SHA-256 is checked (each by one rank). A missing or corrupt shard, or a
restart of another schema, is one line naming it. Restarts of schema 1 (one ``restart.npz`` gathered on
rank 0, landimg before the sharded restarts) are refused with both versions named.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import atomic_path
from landimg.shards import MANIFEST, ShardWriter, StoreError, read_manifest, remove_store, write_store

__all__ = [
    "RESTART_DIR", "RESTART_SCHEMA", "RestartError", "changed_inputs", "clean_stale", "day_dir", "file_hashes",
    "finish", "has_restart", "latest", "load_for_resume", "load_restart", "previous_good", "recorded_inputs",
    "restart_days", "save_restart", "write_checkpoint",
]  # fmt: skip

#: The schema of the restarts this landimg writes and reads (bumped when their content changes).
RESTART_SCHEMA = 2
#: The restarts' directory inside an output directory.
RESTART_DIR = "restart"
_OLD_NAMES = ("restart.npz", "restart.prev.npz")  # schema 1
_DAY = re.compile(r"^day-(\d+)$")
_SEP = "::"
_JSON = "#json"


class RestartError(ValueError):
    """A restart cannot be used: missing, truncated, corrupt, or of another schema (one line)."""


# ---------------------------------------------------------------------------------------------- layout
def day_dir(out: Path, day: int) -> Path:
    """The directory of the restart after ``day`` days."""
    return Path(out) / RESTART_DIR / f"day-{int(day):05d}"


def _day_dirs(out: Path) -> dict[int, Path]:
    root = Path(out) / RESTART_DIR
    if not root.is_dir():
        return {}
    found = {}
    for p in root.iterdir():
        m = _DAY.match(p.name)
        if m and p.is_dir():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def restart_days(out: Path) -> list[int]:
    """The days of the complete restarts (a manifest written) in ``out``, ascending."""
    return [d for d, p in _day_dirs(out).items() if (p / MANIFEST).is_file()]


def has_restart(out: Path) -> bool:
    """``out`` holds a restart to resume from (complete, or of an earlier schema, which --resume names)."""
    root = Path(out) / RESTART_DIR
    return bool(restart_days(out)) or any((root / name).is_file() for name in _OLD_NAMES)


def latest(out: Path) -> Path:
    """The newest complete restart of ``out``.

    Raises
    ------
    RestartError
        None there (one line; a restart of schema 1 is named with both versions).
    """
    days = restart_days(out)
    if days:
        return day_dir(out, days[-1])
    root = Path(out) / RESTART_DIR
    for name in _OLD_NAMES:
        if (root / name).is_file():
            raise RestartError(
                f"restart {root / name} is restart schema 1 (one file gathered on rank 0); this landimg reads "
                f"restart schema {RESTART_SCHEMA} (sharded): finish that run with the landimg that wrote it, "
                "or start a new run"
            )
    raise RestartError(f"--resume: no restart in {root}")


def previous_good(out: Path, bad: Path) -> str:
    """``; last good day N is in DIR: remove BAD to continue from there`` when an older restart is whole."""
    for day in reversed(restart_days(out)):
        path = day_dir(out, day)
        if path == bad:
            continue
        try:
            _check(read_manifest(path), path)
        except (StoreError, RestartError):
            continue
        return f"; last good day {day} is in {path}: remove {bad} to continue from there"
    return ""


def _check(manifest: Mapping[str, Any], path: Path) -> None:
    schema = manifest.get("schema")
    if schema != RESTART_SCHEMA:
        raise RestartError(f"restart {path} is restart schema {schema}; this landimg reads restart schema {RESTART_SCHEMA}")
    for key in ("day", "config_toml", "layout", "shards", "outputs_days"):
        if key not in manifest:
            raise RestartError(f"restart {path / MANIFEST} is corrupt (no {key})")


def load_for_resume(out: Path) -> dict[str, Any]:
    """The manifest of the restart of ``out`` to continue from (its ``"path"`` added); the shards are
    checked to be there with their sizes (their checksums are checked when they are read).

    Raises
    ------
    RestartError
        No restart, a restart of another schema, a damaged manifest or a missing shard (one line, naming
        the previous restart when it is good).
    """
    path = latest(out)
    try:
        manifest = read_manifest(path)
        _check(manifest, path)
        from landimg.shards import ShardStore

        ShardStore(path, manifest=manifest).check_files()
    except (StoreError, RestartError) as exc:
        raise RestartError(f"{exc}{previous_good(out, path)}") from None
    return {**manifest, "path": str(path)}


def write_checkpoint(out: Path, day: int, writer: ShardWriter, comm: Any, fields: Mapping[str, Any] | None) -> None:
    """Write the restart after ``day`` days (collective): every rank its shard, rank 0 the manifest
    (``fields`` on rank 0: day, configuration, ...; the schema is added). Then rank 0 removes the restarts
    older than the previous one.

    Raises
    ------
    DiskError
        A disk refused a write (every rank, one line naming the file); that day's directory is removed,
        the previous restart is untouched.
    """
    path = day_dir(out, day)
    rank = 0 if comm is None else comm.Get_rank()
    write_store(path, writer, comm, None if fields is None else {"schema": RESTART_SCHEMA, **fields})
    if rank == 0:
        older = [d for d in restart_days(out) if d < day]
        keep = older[-1] if older else None  # the previous restart, until the next one is complete
        for d, p in _day_dirs(out).items():
            if d < day and d != keep:
                remove_store(p)


def finish(out: Path) -> None:
    """After a complete run: only the newest restart is kept."""
    days = restart_days(out)
    for d, p in _day_dirs(out).items():
        if not days or d != days[-1]:
            remove_store(p)


def clean_stale(out: Path) -> list[Path]:
    """Remove what a killed run left: temporary files (``.NAME.*.tmp``) in ``out`` and its subdirectories,
    and restart directories newer than the newest complete one (an interrupted write)."""
    stale = [p for p in out.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    days = restart_days(out)
    for d, p in _day_dirs(out).items():
        if not (p / MANIFEST).is_file() and (not days or d > days[-1]):
            shutil.rmtree(p, ignore_errors=True)
            stale.append(p)
    return stale


# ---------------------------------------------------------------------------------------------- inputs
def file_hashes(files: Mapping[str, str]) -> dict[str, str]:
    """``section.key`` -> ``"sha256:<hex> <path>"`` of every input file (content, not dates)."""
    import hashlib

    out = {}
    for key, path in sorted(files.items()):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        out[key] = f"sha256:{h.hexdigest()} {path}"
    return out


def recorded_inputs(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The input-file hashes a restart recorded (empty for runs without input files)."""
    return {k: str(v) for k, v in manifest.get("inputs", {}).items()}


def changed_inputs(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """``section.key (path)`` of every input file whose content (or presence) differs."""
    keys = sorted(set(recorded) | set(now))
    return [
        f"{k} ({(now.get(k) or recorded.get(k, '')).split(' ', 1)[-1]})"
        for k in keys
        if recorded.get(k) != now.get(k)
    ]


# ---------------------------------------------------------------------------------------------- small trees
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
            flat[name + _JSON] = np.asarray(json.dumps(v))
        else:
            arr = np.asarray(v)
            if arr.dtype == object:
                raise ValueError(f"restart entry {name!r} is not a plain array (dtype object)")
            flat[name] = arr
    return flat


def save_restart(path: str | Path, tree: Mapping[str, Any]) -> None:
    """Save a nested dict of arrays/scalars to one ``.npz`` file atomically (no pickling): a small state
    on one rank (e.g. :meth:`landimg.Ensemble.gather_state` of a small grid). Nested dicts are stored with
    ``::``-joined keys, lists/tuples (of JSON-able values such as numpy bit-generator states) as JSON text;
    :func:`load_restart` restores all of it bit for bit (tuples come back as lists)."""
    flat = _flatten(tree)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **flat)


def load_restart(path: str | Path) -> dict[str, Any]:
    """Load a file written by :func:`save_restart` into the nested dict (0-d arrays stay 0-d arrays).

    Raises
    ------
    RestartError
        The file is truncated, corrupt or not such a file (one line naming it).
    FileNotFoundError
        No such file.
    """
    import zipfile

    out: dict[str, Any] = {}
    try:
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
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RestartError(f"restart {path} is corrupt ({type(exc).__name__}: {reason})") from None
    return out
