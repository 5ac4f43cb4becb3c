"""Writing files atomically, and the one-line error of a disk that refuses a write.

Every file landimg writes (restarts, outputs, figures, the spin-up and land-mask caches, the data tool's
files) goes through :func:`atomic_path`: the content is written to a temporary file beside the target
(``.NAME.<random>.tmp``), flushed to disk (fsync), then renamed over the target with :func:`os.replace`,
so a reader -- or a resumed run -- never sees a partial file, and concurrent writers of the same file
each rename a complete copy. Files are created with mode ``0o666`` minus the process umask, like any
file opened for writing.

A write the disk refuses -- no space (ENOSPC), quota (EDQUOT), file too large (EFBIG), no permission
(EACCES, EPERM), read-only file system (EROFS) -- raises :class:`DiskError`, an :class:`OSError` whose
message is one line naming the path; the temporary file is removed and the target left as it was.
Libraries that hide the system error (the netCDF/HDF5 library reports a full disk as ``NetCDF: HDF
error``) are diagnosed by asking the file system for room beside the temporary file before it is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DISK_ERRNOS", "DiskError", "as_disk_error", "atomic_path", "diagnose", "make_dirs", "replace_keeping",
    "write_bytes",
]  # fmt: skip

#: The errors of a disk (or a file system's permissions) refusing a write.
DISK_ERRNOS: frozenset[int] = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}
)

_PROBE_BYTES = 1 << 20  # room asked for when a library hid the error of a failed write


class DiskError(OSError):
    """A file or directory could not be written: no space, quota, permission or read-only file system.

    ``str()`` is one line: ``cannot <action> <path>: <reason>[; <hint>]``.

    Attributes
    ----------
    errno : int
    path : Path
        The file (or directory) that could not be written.
    action : str
        ``"write"`` or ``"create directory"``.
    hint : str
        What the user can do (may be empty).
    """

    def __init__(self, path: str | Path, code: int, action: str = "write", hint: str = "") -> None:
        super().__init__(code, os.strerror(code), str(path))
        self.path, self.action, self.hint = Path(path), action, hint

    def __str__(self) -> str:
        hint = f"; {self.hint}" if self.hint else ""
        return f"cannot {self.action} {self.path}: {self.strerror}{hint}"

    def __reduce__(self) -> tuple[type, tuple[str, int, str, str]]:  # pickled whole (MPI broadcasts)
        return DiskError, (str(self.path), int(self.errno), self.action, self.hint)

    def with_hint(self, hint: str) -> DiskError:
        """The same error with ``hint`` appended to its message."""
        return DiskError(self.path, self.errno, self.action, "; ".join(h for h in (self.hint, hint) if h))


def as_disk_error(exc: BaseException, path: str | Path, action: str = "write") -> DiskError | None:
    """``exc`` as a :class:`DiskError` naming ``path`` when it is a disk's refusal (:data:`DISK_ERRNOS`),
    else None (a DiskError is returned as it is)."""
    if isinstance(exc, DiskError):
        return exc
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return DiskError(path, exc.errno, action)
    return None


def _no_room(tmp: Path) -> int | None:
    """The errno of a failed request for room beside ``tmp`` (ENOSPC, EDQUOT, ...), None when there is room.

    Used when a library reported a failed write without its system error.
    """
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        end = os.fstat(fd).st_size
        try:
            os.posix_fallocate(fd, end, _PROBE_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.pwrite(fd, b"\0" * _PROBE_BYTES, end)  # file systems without fallocate
            os.fsync(fd)
    except OSError as exc:
        return exc.errno if exc.errno in DISK_ERRNOS else None
    finally:
        os.close(fd)
    return None


def diagnose(exc: BaseException, path: str | Path, directory: str | Path) -> DiskError | None:
    """``exc``, raised while writing ``path`` (a file, or a tree being built in ``directory``), as a
    :class:`DiskError` when the disk refused: an OSError of :data:`DISK_ERRNOS`, or -- for a library that
    hides the system error -- no room for a probe file in ``directory``. None otherwise."""
    err = as_disk_error(exc, path)
    if err is not None or not isinstance(exc, Exception) or isinstance(exc, OSError):
        return err
    probe = Path(directory) / f".probe.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError as refused:
        return DiskError(path, refused.errno) if refused.errno in DISK_ERRNOS else None
    try:
        code = _no_room(probe)
    finally:
        probe.unlink(missing_ok=True)
    return None if code is None else DiskError(path, code)


def make_dirs(path: str | Path) -> Path:
    """Create directory ``path`` and its parents if missing.

    Raises
    ------
    DiskError
        It cannot be created (a disk's refusal, or a file in the way): one line naming it.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise DiskError(path, exc.errno, "create directory") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path``; on success fsync it and rename it to ``path``.

    The temporary file is named ``.NAME.<random>.tmp`` (a resumed run removes such leftovers) and created
    with mode ``0o666`` minus the umask. On any exception it is removed and ``path`` is untouched.

    Raises
    ------
    DiskError
        The disk refused the write (one line naming ``path``), in the block or at the rename.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    except OSError as exc:
        err = as_disk_error(exc, path)
        if err is None:
            raise
        raise err from None
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        err = as_disk_error(exc, path)
        if err is None and isinstance(exc, Exception) and not isinstance(exc, OSError):
            code = _no_room(tmp)  # e.g. "NetCDF: HDF error" for a full disk
            err = None if code is None else DiskError(path, code)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if err is None or err is exc:
            raise
        raise err from exc


def replace_keeping(new: str | Path, path: str | Path, former: str | Path) -> None:
    """fsync the complete file ``new`` and rename it over ``path``; the file ``path`` named is kept as
    ``former`` (linked there first, so ``path`` names a complete file at every moment).

    For files updated by writing a copy (``landimg.experiment.ncfiles``: a day appended to a twin that
    then replaces the file, the former file becoming the next twin). ``path`` must exist.

    Raises
    ------
    DiskError
        The file system refused (one line naming ``path``).
    """
    new, path, former = Path(new), Path(path), Path(former)
    try:
        fd = os.open(new, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        former.unlink(missing_ok=True)
        os.link(path, former)
        os.replace(new, path)
    except OSError as exc:
        err = as_disk_error(exc, path)
        if err is None:
            raise
        raise err from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
