"""Disks that refuse a write during a run (docs/reliability.md): a full disk at a restart, at a day's
outputs and in the spin-up cache, a read-only or forbidden cache: one line naming the file, exit 2,
nothing partial, and the restart of the last complete day continues bitwise once there is room.

Full disks are real (a tmpfs of a few MB, resized for the resume) where the test may mount one, and
injected at the write call otherwise; permissions are a read-only mount and an injected EACCES (root
ignores file modes)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _support import MPIRUN, remount, subprocess_env, tiny_tmpfs
from landimg.cycle import main
from landimg.experiment.restart import day_dir, restart_days
from test_cycle_ranks import SMALL, assert_bitwise

pytestmark = pytest.mark.slow  # the cycle, run several times

PREFIX = "landimg.cycle: "


def _args(out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["--out", str(out), "--quiet"]
    for s in (*SMALL, *extra):
        args += ["--set", s]
    return args


def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_args(out)) == 0
    restart = sum(p.stat().st_size for p in day_dir(out, 3).iterdir())
    sizes = {"restart": restart, **{p.name: p.stat().st_size for p in (out / "analysis.nc", out / "metrics.nc")}}
    return out, sizes


def _restart_files(out: Path) -> list[str]:
    return [f for f in _files(out) if f.startswith("restart/")]


def _shard(out: Path, day: int, rank: int = 0) -> Path:
    return day_dir(out, day) / f"shard-{rank:05d}.npz"


def test_full_disk_at_a_restart_keeps_the_last_one_and_resumes_bitwise(reference, tmp_path, capsys):
    ref, sizes = reference
    # the outputs (and their twins) fit, and the restarts of days 1 and 2; day 3's shard does not
    room = 2 * (sizes["analysis.nc"] + sizes["metrics.nc"]) + int(2.5 * sizes["restart"])
    with tiny_tmpfs(tmp_path / "mnt", size=str(room)) as mnt:
        out = mnt / "run"
        capsys.readouterr()
        assert main(_args(out)) == 2
        err = _lines(capsys.readouterr().err)
        assert err == [
            f"{PREFIX}error: cannot write {_shard(out, 3)}: No space left on device; the restart after day 2 is "
            "kept: free space or fix the permissions, then continue with --resume"
        ], err
        assert restart_days(out) == [1, 2] and not day_dir(out, 3).exists()  # nothing partial
        assert not [f for f in _files(out) if f.endswith(".tmp")]
        remount(mnt, "64m")
        assert main(["--out", str(out), "--resume", "--quiet"]) == 0
        assert_bitwise(ref, out)


def test_full_disk_at_the_outputs_keeps_the_files_and_the_restart_and_resumes(reference, tmp_path, capsys):
    """The disk fills before day 3 is appended: analysis.nc keeps its 2 days, whole; the restart after day 2
    is kept; once there is room the resumed run appends from there, bitwise."""
    from landimg.cycle import run
    from landimg.experiment.config import load_config

    ref, sizes = reference
    with tiny_tmpfs(tmp_path / "mnt", size="16m") as mnt:
        out = mnt / "run"
        run(load_config(None, SMALL), out, progress=False, stop_after_days=2)
        before = (out / "analysis.nc").read_bytes()
        st = os.statvfs(mnt)
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - sizes["analysis.nc"] // 4))  # less than a copy of it
        capsys.readouterr()
        assert main(["--out", str(out), "--resume", "--quiet"]) == 2
        err = _lines(capsys.readouterr().err)
        assert err == [
            f"{PREFIX}error: cannot write {out / 'analysis.nc'}: No space left on device; the restart after day 2 "
            "is kept: free space or fix the permissions, then continue with --resume"
        ], err
        assert (out / "analysis.nc").read_bytes() == before and restart_days(out)[-1] == 2
        filler.unlink()
        assert main(["--out", str(out), "--resume", "--quiet"]) == 0
        assert_bitwise(ref, out)


def test_injected_full_disk_at_a_restart(reference, tmp_path, capsys, monkeypatch):
    """The same as on a tmpfs, by injecting ENOSPC into the third restart's write (runs anywhere)."""
    from landimg import shards

    ref, _ = reference
    calls, real = [], shards.np.savez

    def savez(fh, **arrays):
        calls.append(1)
        if len(calls) == 3:
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fh, **arrays)

    monkeypatch.setattr(shards.np, "savez", savez)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(out)) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and f"cannot write {_shard(out, 3)}: No space left on device" in err[0], err
    assert "the restart after day 2 is kept" in err[0]
    assert restart_days(out) == [1, 2] and not day_dir(out, 3).exists()
    assert not [f for f in _files(out) if f.endswith(".tmp")]
    monkeypatch.setattr(shards.np, "savez", real)
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(ref, out)


def test_full_disk_at_the_first_restart_leaves_nothing(tmp_path, capsys, monkeypatch):
    from landimg import shards

    def savez(fh, **arrays):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(shards.np, "savez", savez)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(out)) == 2
    err = _lines(capsys.readouterr().err)
    assert err == [f"{PREFIX}error: cannot write {_shard(out, 1)}: {os.strerror(errno.EDQUOT)}; nothing was kept"]
    assert not out.exists()


def test_full_spinup_cache_is_one_line_and_the_run_leaves_nothing(tmp_path, capsys):
    with tiny_tmpfs(tmp_path / "cache", size="64k") as cache:
        out = tmp_path / "run"
        capsys.readouterr()
        assert main([*_args(out), "--spinup-cache", str(cache)]) == 2
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and err[0].startswith(f"{PREFIX}error: cannot write {cache}/spinup-"), err
        assert err[0].endswith(
            ".npz: No space left on device; give --spinup-cache another directory, or leave it out"
        )
        assert not out.exists() and _files(cache) == []


def test_damaged_spinup_cache_entry_is_named_recomputed_and_rewritten(reference, tmp_path, capsys):
    ref, _ = reference
    cache = tmp_path / "cache"
    assert main([*_args(tmp_path / "a"), "--spinup-cache", str(cache)]) == 0
    (entry,) = cache.glob("spinup-*.npz")
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])  # truncated: BadZipFile
    capsys.readouterr()
    assert main([*_args(tmp_path / "b"), "--spinup-cache", str(cache)]) == 0
    err = _lines(capsys.readouterr().err)
    assert err == [
        f"{PREFIX}warning: spin-up cache entry {entry} is damaged (BadZipFile: File is not a zip file): "
        "the spin-up is recomputed and the entry rewritten"
    ], err
    assert entry.read_bytes() == good
    assert_bitwise(ref, tmp_path / "b")


def test_read_only_land_mask_cache_is_one_line(tmp_path, capsys, monkeypatch):
    with tiny_tmpfs(tmp_path / "ro", options="ro") as ro:
        monkeypatch.setenv("LANDIMG_CACHE_DIR", str(ro))
        out = tmp_path / "run"
        capsys.readouterr()
        assert main(_args(out, ("domain.res=5.0",))) == 2  # a grid whose mask is not cached yet
        err = _lines(capsys.readouterr().err)
        assert err == [
            f"{PREFIX}error: cannot create directory {ro / 'landmask'}: Read-only file system; set "
            "LANDIMG_CACHE_DIR to a writable directory, or to none (no cache)"
        ], err
        assert not out.exists()


def test_forbidden_land_mask_cache_is_one_line(tmp_path, capsys, monkeypatch):
    from landimg import atomic

    real = atomic.os.open
    cache = tmp_path / "cache"

    def forbid(path, flags, *args):
        if str(path).startswith(str(cache)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setenv("LANDIMG_CACHE_DIR", str(cache))
    monkeypatch.setattr(atomic.os, "open", forbid)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(out)) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith(f"{PREFIX}error: cannot write {cache / 'landmask'}/"), err
    assert err[0].endswith(".npy: Permission denied; set LANDIMG_CACHE_DIR to a writable directory, or to none (no cache)")
    assert not out.exists()


@pytest.mark.mpi
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
def test_full_disk_under_mpi_is_one_line_exit_2_on_every_rank(reference, tmp_path):
    _, sizes = reference
    room = 2 * (sizes["analysis.nc"] + sizes["metrics.nc"]) + int(2.5 * sizes["restart"])
    with tiny_tmpfs(tmp_path / "mnt", size=str(room)) as mnt:
        out = mnt / "run"
        cmd = [str(MPIRUN), "-n", "2", sys.executable, "-m", "landimg.cycle", *_args(out)]
        proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(PREFIX)]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
        assert "MPI_Abort" not in proc.stderr  # every rank knew: a clean exit, no abort after a timeout
        assert f"cannot write {day_dir(out, 3)}/shard-0000" in lines[0] and "No space left on device" in lines[0]
        assert restart_days(out) == [1, 2] and not day_dir(out, 3).exists()
