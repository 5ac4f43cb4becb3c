"""Restart files: a nested dict of arrays in one ``.npz``, written atomically, read back bit for bit."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import atomic_path

__all__ = [
    "PREVIOUS_NAME", "RESTART_NAME", "RestartError", "changed_inputs", "clean_stale", "file_hashes", "finish",
    "load_for_resume", "load_restart", "recorded_inputs", "save_restart", "write_checkpoint",
]  # fmt: skip

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


class RestartError(ValueError):
    """A restart file cannot be read (truncated, corrupt, or not a landimg restart)."""


def load_restart(path: str | Path) -> dict[str, Any]:
    """Load a file written by :func:`save_restart` into the nested dict (0-d arrays stay 0-d arrays).

    Raises
    ------
    RestartError
        The file is truncated, corrupt or not a restart (one line naming it).
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


# ---------------------------------------------------------------------------------------------- checkpoints
#: The restart file inside an output directory, and the previous one (kept while a run goes on).
RESTART_NAME = "restart/restart.npz"
PREVIOUS_NAME = "restart/restart.prev.npz"
_INPUTS = "inputs"


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


def write_checkpoint(
    out: Path, day: int, nature: Mapping[str, np.ndarray], ensembles: Mapping[str, Any], history: Any,
    wall_seconds: float, config_toml: str, inputs: Mapping[str, str] | None = None,
    observer: Mapping[str, Any] | None = None,
) -> None:  # fmt: skip
    """Write the restart after ``day`` complete days (rank 0; the ensembles' states already gathered).

    The new file is complete on disk before the previous one moves to ``restart.prev.npz``; a kill at
    any point leaves at least one readable restart. ``inputs`` (:func:`file_hashes`) are recorded for
    ``--resume`` to refuse changed files; ``observer`` is the synthetic observations' state (the AR(1)
    retrieval error, :meth:`landimg.experiment.obs.SatelliteObserver.get_state`).
    """
    tree = {
        "day": day, "nature": nature, "ensembles": ensembles, "history": history.to_tree(),
        "wall_seconds": wall_seconds, "config_toml": config_toml, "observer": dict(observer or {}),
    }  # fmt: skip
    if inputs:
        tree[_INPUTS] = dict(inputs)
    path, prev = out / RESTART_NAME, out / PREVIOUS_NAME
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **_flatten(tree))
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.replace(path, prev)


def _day_of(path: Path) -> int | None:
    try:
        return int(load_restart(path)["day"])
    except (RestartError, OSError, KeyError, ValueError):
        return None


def load_for_resume(out: Path) -> dict[str, Any]:
    """The restart of ``out`` to continue from.

    Raises
    ------
    RestartError
        The restart is missing or corrupt; the message names the previous restart's day when it is good.
    """
    path, prev = out / RESTART_NAME, out / PREVIOUS_NAME
    try:
        tree = load_restart(path)
        int(tree["day"]), tree["config_toml"], tree["history"], tree["ensembles"], tree["nature"]
        return tree
    except FileNotFoundError:
        problem = f"--resume: no restart file {path}"
    except (RestartError, KeyError, TypeError, ValueError) as exc:
        problem = str(exc) if isinstance(exc, RestartError) else f"restart {path} is incomplete (no {exc})"
    good = _day_of(prev) if prev.exists() else None
    if good is not None:
        problem += f"; last good day {good} is in {prev}: move it to {path.name} to continue from there"
    raise RestartError(problem)


def recorded_inputs(tree: Mapping[str, Any]) -> dict[str, str]:
    """The input-file hashes a restart recorded (empty for runs without input files or older restarts)."""
    return {k: str(v) for k, v in tree.get(_INPUTS, {}).items()}


def changed_inputs(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """``section.key (path)`` of every input file whose content (or presence) differs."""
    keys = sorted(set(recorded) | set(now))
    return [
        f"{k} ({(now.get(k) or recorded.get(k, '')).split(' ', 1)[-1]})"
        for k in keys
        if recorded.get(k) != now.get(k)
    ]


def clean_stale(out: Path) -> list[Path]:
    """Remove temporary files a killed run left (``.NAME.*.tmp``) in ``out`` and its subdirectories."""
    stale = [p for p in out.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def finish(out: Path) -> None:
    """After a complete run: the previous restart is no longer needed."""
    (out / PREVIOUS_NAME).unlink(missing_ok=True)
