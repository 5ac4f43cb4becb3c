"""The one atomic writer (landimg.atomic): umask, nothing partial, disks that refuse a write.

ENOSPC is tested on a real 256 kB tmpfs where the test may mount one (root in a container), and by
injecting the error at the write call everywhere; EACCES/EROFS by injection and a read-only mount.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest
from _support import tiny_tmpfs
from landimg import atomic
from landimg.atomic import DiskError, atomic_path, make_dirs

PACKAGE = Path(atomic.__file__).parent


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _writers(tmp_path: Path) -> dict[str, Path]:
    """Every kind of file landimg writes, written once into ``tmp_path``: name -> path."""
    from landimg.experiment.output import write_json, write_netcdf
    from landimg.experiment.restart import save_restart
    from landimg.experiment.spinup_cache import save_spinup
    from landimg.grid import _store_mask

    out = {}
    write_json(tmp_path / "summary.json", {"a": 1})
    out["json"] = tmp_path / "summary.json"
    write_netcdf(tmp_path / "a.nc", {"x": 3}, {"v": (("x",), np.arange(3.0), {})})
    out["netcdf"] = tmp_path / "a.nc"
    save_restart(tmp_path / "restart.npz", {"x": np.ones(3)})
    out["restart"] = tmp_path / "restart.npz"
    out["spinup cache"] = save_spinup(tmp_path / "cache", "k", {"w": np.ones(2)}, {"w": np.ones(2)})
    _store_mask(tmp_path / "landmask" / "m.npy", np.ones((2, 2), bool))
    out["land-mask cache"] = tmp_path / "landmask" / "m.npy"
    return out


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_follow_the_umask(tmp_path, mask):
    with umask(mask):
        written = _writers(tmp_path)
    for name, path in written.items():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert not list(tmp_path.rglob(".*.tmp"))


def test_failure_in_the_block_keeps_the_old_file_and_leaves_nothing(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(KeyError), atomic_path(p) as tmp:
        tmp.write_text("partial")
        raise KeyError("boom")
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["f.txt"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS])
def test_injected_refusal_at_the_write_is_one_line_naming_the_file(tmp_path, code):
    p = tmp_path / "out.npz"
    p.write_bytes(b"old")
    with pytest.raises(DiskError) as info, atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"some")
            raise OSError(code, os.strerror(code))
    msg = str(info.value)
    assert msg == f"cannot write {p}: {os.strerror(code)}" and "\n" not in msg
    assert info.value.errno == code
    assert p.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["out.npz"]


def test_refusal_to_create_the_temporary_file(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(DiskError, match=r"^cannot write .*x\.json: Permission denied$"):
        from landimg.experiment.output import write_json

        write_json(tmp_path / "x.json", {})


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "f") as tmp:
        tmp.write_text("x")
        raise OSError(errno.EIO, "Input/output error")
    assert not isinstance(info.value, DiskError)


def test_make_dirs_refused(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(DiskError, match=r"^cannot create directory .*/a/b: Permission denied$"):
        make_dirs(tmp_path / "a" / "b")


def test_full_tmpfs_every_writer(tmp_path):
    """A real full disk: each writer ends in a DiskError naming its file, nothing partial is left,
    and a file written before stays as it was (netCDF: the library hides the error, the probe finds it)."""
    from landimg.experiment.output import write_netcdf
    from landimg.experiment.restart import save_restart
    from landimg.experiment.spinup_cache import save_spinup

    big = np.random.default_rng(0).random(100_000)  # 800 kB, does not fit
    with tiny_tmpfs(tmp_path / "mnt") as mnt:
        save_restart(mnt / "restart.npz", {"x": np.ones(3)})
        before = (mnt / "restart.npz").read_bytes()
        cases = {
            mnt / "restart.npz": lambda: save_restart(mnt / "restart.npz", {"x": big}),
            mnt / "a.nc": lambda: write_netcdf(mnt / "a.nc", {"x": big.size}, {"v": (("x",), big, {})}),
            mnt / "c" / "spinup-k.npz": lambda: save_spinup(mnt / "c", "k", {"w": big}, {"w": big}),
        }
        for path, write in cases.items():
            with pytest.raises(DiskError) as info:
                write()
            assert str(info.value) == f"cannot write {path}: No space left on device"
        assert (mnt / "restart.npz").read_bytes() == before
        left = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*") if p.is_file())
        assert left == ["restart.npz"]


def test_read_only_mount(tmp_path):
    with tiny_tmpfs(tmp_path / "ro", options="ro") as mnt:
        with pytest.raises(DiskError, match=r"Read-only file system$"):
            atomic.write_bytes(mnt / "x", b"1")


def test_one_atomic_writer_in_the_package():
    """No module but landimg.atomic makes temporary files to rename (a second writer would skip the
    umask, the fsync or the disk errors)."""
    pattern = re.compile(r"mkstemp|os\.replace|os\.rename|\.rename\(|NamedTemporaryFile\([^)]*delete=False")
    allowed = {  # demo: a whole directory renamed into place; restart: the previous restart kept
        ("data/demo.py", "os.replace(tmp, out)"), ("experiment/restart.py", "os.replace(path, prev)"),
    }  # fmt: skip
    found = [
        f"{name}:{n}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        if (name := str(p.relative_to(PACKAGE))) != "atomic.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and not any(name == f and s in line for f, s in allowed)
    ]
    assert not found, found


def test_data_tool_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    """The demo's product files are written by netCDF/HDF5 (a full disk is an 'HDF error' there)."""
    from landimg.data.cli import main

    with tiny_tmpfs(tmp_path / "mnt", size="512k") as mnt:
        capsys.readouterr()
        assert main(["demo", "--out", str(mnt / "D")]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [f"landimg.data: error: cannot write {mnt / 'D'}: No space left on device"], err
        assert list(mnt.iterdir()) == []
