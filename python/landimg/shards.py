"""Sharded stores: every rank writes its own block of arrays and rank 0 a small manifest; any layout reads them.

A store is a directory::

    DIR/shard-00000.npz    rank 0's arrays (numpy ``.npz``, uncompressed: ``np.load`` reads it)
    DIR/shard-00001.npz    rank 1's ...
    DIR/manifest.json      written last: the caller's fields, and per shard its file, size, SHA-256 and
                           the range it holds of each part

Every array belongs to a *part*, and each shard holds one range of a part:

* ``members x columns`` parts hold arrays ``(..., ncol_block, nmem_block)`` (the ensemble's trailing axes,
  :mod:`landimg.layout`): a rank's members on its column block;
* ``columns`` parts hold arrays ``(..., ncol_block)``: values per column, one copy of each column over
  the shards (for instance the ranks of member group 0);
* ``members`` parts hold lists with one JSON value per member (random-stream states);
* a part with neither range (``whole``) is held by one shard.

A reader asks for the range *it* needs -- another layout's block -- and gets it assembled from the shards
that overlap it, reading only those bytes (the ``.npy`` entries are stored uncompressed and mapped, so a
rank reading a quarter of a shard reads a quarter of its bytes). No rank ever holds more than its own
range. Each file is written through :func:`landimg.atomic.atomic_path` (temporary name, fsync, rename);
the manifest is written after every shard is complete, so a directory without a manifest is an
interrupted write. :meth:`ShardStore.verify` checks every shard's size and SHA-256 against the manifest
(each shard hashed by one rank); a missing or damaged shard is a :class:`StoreError`, one line naming it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import DiskError, atomic_path, make_dirs

__all__ = ["MANIFEST", "ShardStore", "ShardWriter", "StoreError", "read_manifest", "remove_store", "write_store"]

#: The manifest's file name inside a store.
MANIFEST = "manifest.json"
_SEP = "::"
_JSON = "#json"
_CHUNK = 1 << 20  # bytes read at a time when hashing a shard

Range = tuple[int, int]


class StoreError(ValueError):
    """A store cannot be read: its manifest or a shard is missing, damaged or does not match (one line)."""


def _shard_name(rank: int) -> str:
    return f"shard-{rank:05d}.npz"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _size(comm: Any) -> int:
    from landimg.parallel import SerialComm

    return 1 if comm is None or isinstance(comm, SerialComm) else int(comm.Get_size())


# ---------------------------------------------------------------------------------------------- writing
class ShardWriter:
    """This rank's shard being assembled: parts with their ranges, and arrays (no copies are made).

    Examples
    --------
    >>> w = ShardWriter()
    >>> w.part("ensemble", members=(0, 2), columns=(0, 10))
    >>> w.add("ensemble", "model::wliq", state["wliq"])        # (nlev, 10, 2)
    """

    def __init__(self) -> None:
        self.ranges: dict[str, list[int] | None] = {}
        self.arrays: dict[str, Any] = {}

    def part(self, name: str, *, members: Range | None = None, columns: Range | None = None) -> None:
        """Declare that this shard holds ``members`` x ``columns`` of part ``name`` (None: not split along
        that axis); declaring it again with the same ranges does nothing."""
        m = [None, None] if members is None else [int(members[0]), int(members[1])]
        c = [None, None] if columns is None else [int(columns[0]), int(columns[1])]
        if _SEP in name or self.ranges.get(name, m + c) != m + c:
            raise ValueError(f"part {name!r} declared with two ranges, or its name holds {_SEP!r}")
        self.ranges[name] = m + c

    def add(self, part: str, key: str, value: Any) -> None:
        """Add ``value`` (an array, or a list of JSON values, one per member of a ``members`` part) as
        ``key`` of ``part`` (declared first)."""
        if part not in self.ranges:
            raise ValueError(f"part {part!r} is not declared")
        if key.endswith(_JSON):
            raise ValueError(f"key {key!r} must not end in {_JSON!r}")
        name = f"{part}{_SEP}{key}"
        if name in self.arrays:
            raise ValueError(f"{name!r} added twice")
        if isinstance(value, (list, tuple)):
            self.arrays[name + _JSON] = np.asarray(json.dumps(list(value)))
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise ValueError(f"{name!r} is not a plain array (dtype object)")
            self.arrays[name] = arr

    def keys(self) -> dict[str, list[str]]:
        """Part -> its keys in this shard."""
        out: dict[str, list[str]] = {p: [] for p in self.ranges}
        for name in self.arrays:
            part, key = name.split(_SEP, 1)
            out[part].append(key.removesuffix(_JSON))
        return out


def _write_shard(path: Path, writer: ShardWriter) -> dict[str, Any]:
    """Write one shard atomically; return its manifest entry (file, bytes, sha256, ranges)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **writer.arrays)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path), "parts": writer.ranges}


def _agree(comm: Any, failed: BaseException | None) -> None:
    """Raise on every rank the first rank's failure (a DiskError, or StoreError), if any rank failed."""
    if _size(comm) == 1:
        if failed is not None:
            raise failed
        return
    every = comm.allgather(failed)
    first = next((f for f in every if f is not None), None)
    if first is not None:
        raise first


def write_store(
    directory: str | Path, writer: ShardWriter, comm: Any = None, fields: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Write a store (collective): every rank its shard, then rank 0 the manifest.

    Parameters
    ----------
    directory : path
        Created (a directory of that name left by an interrupted write is replaced).
    writer : ShardWriter
        This rank's shard.
    comm : communicator, optional
        All ranks writing the store (default: serial).
    fields : mapping, optional
        JSON fields of the manifest, given on rank 0 (``shards`` and ``keys`` are added).

    Returns
    -------
    The manifest on rank 0 (None elsewhere).

    Raises
    ------
    DiskError
        A disk refused a write on some rank: raised on every rank (the first rank's, one line naming its
        file); the directory is removed, so nothing partial is left.
    """
    directory = Path(directory)
    rank = 0 if _size(comm) == 1 else int(comm.Get_rank())
    failed: BaseException | None = None
    if rank == 0:
        try:
            if directory.exists():
                shutil.rmtree(directory)
            make_dirs(directory)
        except DiskError as exc:
            failed = exc
    if _size(comm) > 1:
        failed = comm.bcast(failed, root=0)
    if failed is not None:
        raise failed
    entry, failed = None, None
    path = directory / _shard_name(rank)
    try:
        entry = _write_shard(path, writer)
    except DiskError as exc:  # (anything else ends every rank through the abort hook of landimg.parallel)
        failed = exc
    try:
        _agree(comm, failed)
    except BaseException:
        if rank == 0:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    keys = writer.keys()
    every = [(entry, keys)] if _size(comm) == 1 else comm.gather((entry, keys), root=0)
    manifest, failed = None, None
    if rank == 0:
        union: dict[str, set[str]] = {}
        for _, k in every:
            for part, names in k.items():
                union.setdefault(part, set()).update(names)
        manifest = {**dict(fields or {}), "keys": {p: sorted(v) for p, v in sorted(union.items())},
                    "shards": [e for e, _ in every]}  # fmt: skip
        try:
            with atomic_path(directory / MANIFEST) as tmp:
                tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        except DiskError as exc:
            failed = exc
            shutil.rmtree(directory, ignore_errors=True)
    if _size(comm) > 1:
        failed = comm.bcast(failed, root=0)
    if failed is not None:
        raise failed
    return manifest


# ---------------------------------------------------------------------------------------------- reading
def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of the store ``directory``.

    Raises
    ------
    StoreError
        No manifest (an interrupted write, or not a store), or it cannot be read (one line naming it).
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is corrupt ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise StoreError(f"{path} is corrupt (not a landimg store manifest)")
    return manifest


class _Entry:
    """Where an uncompressed ``.npy`` entry of an ``.npz`` lies in the file (for reading parts of it)."""

    def __init__(self, path: Path, name: str) -> None:
        from numpy.lib import format as npformat

        with zipfile.ZipFile(path) as z:
            info = z.getinfo(name + ".npy")
        self.path, self.stored = path, info.compress_type == zipfile.ZIP_STORED
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"bad zip entry {name}")
            nlen, xlen = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + nlen + xlen)
            version = npformat.read_magic(fh)
            read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            self.shape, self.fortran, self.dtype = read(fh)
            self.offset = fh.tell()
        self.name = name

    def array(self) -> np.ndarray:
        """The whole entry, mapped read-only (nothing is read until it is indexed)."""
        if not self.stored:  # not written by this module: read it whole
            with np.load(self.path, allow_pickle=False) as z:
                return z[self.name]
        if 0 in self.shape:
            return np.zeros(self.shape, self.dtype, order="F" if self.fortran else "C")
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self.fortran else "C")  # fmt: skip


def _overlap(a: Range, b: Sequence[int | None]) -> tuple[int, int] | None:
    lo, hi = max(a[0], int(b[0])), min(a[1], int(b[1]))
    return (lo, hi) if lo < hi else None


class ShardStore:
    """A store written by :func:`write_store`, read on any layout.

    Parameters
    ----------
    directory : path
    comm : communicator, optional
        The ranks reading it (default serial); the manifest is read on rank 0 and broadcast.
    manifest : dict, optional
        The manifest already read (on every rank).

    Raises
    ------
    StoreError
        The manifest is missing or damaged (on every rank).
    """

    def __init__(self, directory: str | Path, comm: Any = None, manifest: Mapping[str, Any] | None = None) -> None:
        self.directory, self.comm = Path(directory), comm
        if manifest is None:
            manifest, failed = None, None
            if self.rank == 0:
                try:
                    manifest = read_manifest(self.directory)
                except StoreError as exc:
                    failed = exc
            if _size(comm) > 1:
                manifest, failed = comm.bcast((manifest, failed), root=0)
            if failed is not None:
                raise failed
        self.manifest = dict(manifest)
        self._entries: dict[tuple[str, str], _Entry] = {}

    @property
    def rank(self) -> int:
        return 0 if _size(self.comm) == 1 else int(self.comm.Get_rank())

    @property
    def shards(self) -> list[dict[str, Any]]:
        return list(self.manifest["shards"])

    def path(self, shard: Mapping[str, Any]) -> Path:
        """The file of a shard entry."""
        return self.directory / str(shard["file"])

    def keys(self, part: str, prefix: str = "") -> list[str]:
        """The keys of ``part`` (those starting with ``prefix``, which is removed)."""
        return [k[len(prefix) :] for k in self.manifest.get("keys", {}).get(part, []) if k.startswith(prefix)]

    def has(self, part: str, key: str) -> bool:
        return key in self.manifest.get("keys", {}).get(part, [])

    # ------------------------------------------------------------------ verification
    def check_files(self) -> None:
        """Every shard is present with the size the manifest gives (cheap; any rank). StoreError naming the
        first one that is not."""
        for s in self.shards:
            p = self.path(s)
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                raise StoreError(f"restart shard {p} is missing") from None
            if size != int(s["bytes"]):
                raise StoreError(f"restart shard {p} is corrupt ({size} bytes, the manifest says {s['bytes']})")

    def verify(self) -> None:
        """Check every shard's size and SHA-256 against the manifest (collective: shard ``i`` is hashed by
        rank ``i mod P``). StoreError on every rank naming the first bad shard."""
        problem = None
        try:
            self.check_files()
            size = _size(self.comm)
            for i, s in enumerate(self.shards):
                if i % size == self.rank and _sha256(self.path(s)) != s["sha256"]:
                    raise StoreError(f"restart shard {self.path(s)} is corrupt (its SHA-256 differs from the manifest's)")
        except StoreError as exc:
            problem = exc
        except OSError as exc:
            problem = StoreError(f"restart shard in {self.directory} cannot be read ({exc.strerror or exc})")
        if _size(self.comm) > 1:
            every = self.comm.allgather(problem)
            problem = next((p for p in every if p is not None), None)
        if problem is not None:
            raise problem

    # ------------------------------------------------------------------ reading
    def _entry(self, shard: Mapping[str, Any], name: str) -> _Entry:
        key = (str(shard["file"]), name)
        if key not in self._entries:
            try:
                self._entries[key] = _Entry(self.path(shard), name)
            except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
                raise StoreError(f"restart shard {self.path(shard)} is corrupt (no readable {name}: {exc})") from None
        return self._entries[key]

    def _holding(self, part: str) -> Iterator[tuple[dict[str, Any], list[int | None]]]:
        for s in self.shards:
            r = s["parts"].get(part)
            if r is not None:
                yield s, r

    def block(self, part: str, key: str, members: Range, columns: Range) -> np.ndarray:
        """Members ``members`` x columns ``columns`` of ``key`` of a members x columns part: (..., nc, nm),
        Fortran-ordered, assembled from the shards that overlap it."""
        name = f"{part}{_SEP}{key}"
        out, covered = None, 0
        for s, r in self._holding(part):
            mo, co = _overlap(members, r[:2]), _overlap(columns, r[2:])
            if mo is None or co is None:
                continue
            src = self._entry(s, name).array()
            if out is None:
                out = np.empty(src.shape[:-2] + (columns[1] - columns[0], members[1] - members[0]), src.dtype, order="F")
            out[..., co[0] - columns[0] : co[1] - columns[0], mo[0] - members[0] : mo[1] - members[0]] = src[
                ..., co[0] - r[2] : co[1] - r[2], mo[0] - r[0] : mo[1] - r[0]
            ]
            covered += (mo[1] - mo[0]) * (co[1] - co[0])
        need = (members[1] - members[0]) * (columns[1] - columns[0])
        if out is None or covered != need:
            raise StoreError(f"the store {self.directory} does not hold {key} of members {members} x columns {columns}")
        return out

    def columns(self, part: str, key: str, columns: Range) -> np.ndarray:
        """Columns ``columns`` of ``key`` of a columns part: (..., nc), assembled from the shards."""
        name = f"{part}{_SEP}{key}"
        out, covered = None, 0
        for s, r in self._holding(part):
            co = _overlap(columns, r[2:])
            if co is None:
                continue
            src = self._entry(s, name).array()
            if out is None:
                out = np.empty(src.shape[:-1] + (columns[1] - columns[0],), src.dtype)
            out[..., co[0] - columns[0] : co[1] - columns[0]] = src[..., co[0] - r[2] : co[1] - r[2]]
            covered += co[1] - co[0]
        if out is None or covered != columns[1] - columns[0]:
            raise StoreError(f"the store {self.directory} does not hold {key} of columns {columns}")
        return out

    def members(self, part: str, key: str, members: Range) -> list[Any]:
        """The per-member JSON values of ``key`` of a members part for ``members``, in member order."""
        name = f"{part}{_SEP}{key}{_JSON}"
        out: dict[int, Any] = {}
        for s, r in self._holding(part):
            mo = _overlap(members, r[:2])
            if mo is None:
                continue
            values = self._json(s, name)
            for m in range(*mo):
                out[m] = values[m - int(r[0])]
        if len(out) != members[1] - members[0]:
            raise StoreError(f"the store {self.directory} does not hold {key} of members {members}")
        return [out[m] for m in range(*members)]

    def whole(self, part: str, key: str) -> Any:
        """``key`` of a part held by one shard: an array, or the JSON value."""
        for s, _ in self._holding(part):
            if self.has(part, key):
                name = f"{part}{_SEP}{key}"
                with np.load(self.path(s), allow_pickle=False) as z:
                    if name + _JSON in z.files:
                        return json.loads(str(z[name + _JSON]))
                    if name in z.files:
                        return z[name]
        raise StoreError(f"the store {self.directory} does not hold {part} {key}")

    def assembled(self) -> dict[str, Any]:
        """Every entry of the store put together whole, ``"<part>::<key>"`` -> array (members x columns,
        columns) or list (members) or the entry (whole). For inspecting small stores and tests: this
        holds everything in memory at once."""
        out: dict[str, Any] = {}
        for part, keys in self.manifest.get("keys", {}).items():
            ranges = [r for _, r in self._holding(part)]
            nm = max((int(r[1]) for r in ranges if r[1] is not None), default=None)
            nc = max((int(r[3]) for r in ranges if r[3] is not None), default=None)
            for key in keys:
                if nm is not None and nc is not None:
                    out[f"{part}{_SEP}{key}"] = self.block(part, key, (0, nm), (0, nc))
                elif nc is not None:
                    out[f"{part}{_SEP}{key}"] = self.columns(part, key, (0, nc))
                elif nm is not None:
                    out[f"{part}{_SEP}{key}"] = self.members(part, key, (0, nm))
                else:
                    out[f"{part}{_SEP}{key}"] = self.whole(part, key)
        return out

    def _json(self, shard: Mapping[str, Any], name: str) -> Any:
        try:
            with np.load(self.path(shard), allow_pickle=False) as z:
                return json.loads(str(z[name]))
        except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise StoreError(f"restart shard {self.path(shard)} is corrupt (no readable {name}: {exc})") from None


def remove_store(directory: str | Path) -> None:
    """Remove a store directory (the manifest first, so that a store is never seen half removed)."""
    directory = Path(directory)
    (directory / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)

