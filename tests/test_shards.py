"""Sharded stores (landimg.shards) and the ensemble's sharded restarts: every rank writes its block, any
layout reads the parts it needs; a missing or corrupt shard is one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, subprocess_env
from landimg.shards import ShardStore, ShardWriter, StoreError, write_store

SCRIPT = Path(__file__).parent / "mpi_scripts" / "shard_layouts.py"


def _store(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    block = np.asfortranarray(rng.standard_normal((4, 10, 3)))  # (nlev, ncol, nmem)
    cols = rng.standard_normal((2, 10))
    w = ShardWriter()
    w.part("ensemble", members=(0, 3), columns=(0, 10))
    w.add("ensemble", "x", block)
    w.add("ensemble", "c_order", np.ascontiguousarray(block))  # stored in C order
    w.part("streams", members=(0, 3))
    w.add("streams", "rng", [{"m": 0}, {"m": 1}, {"m": 2}])
    w.part("columns", columns=(0, 10))
    w.add("columns", "bias", cols)
    w.part("whole")
    w.add("whole", "n", np.int64(5))
    w.add("whole", "list", [1, 2, 3])
    d = tmp_path / "store"
    manifest = write_store(d, w, None, {"schema": 9})
    assert manifest["schema"] == 9 and manifest["keys"]["ensemble"] == ["c_order", "x"]
    return d, block, cols


def test_a_store_gives_any_block_of_its_parts(tmp_path):
    d, block, cols = _store(tmp_path)
    s = ShardStore(d)
    s.verify()
    for key in ("x", "c_order"):
        part = s.block("ensemble", key, (1, 3), (2, 7))
        assert part.flags.f_contiguous and np.array_equal(part, block[:, 2:7, 1:3])
    with np.load(d / "shard-00000.npz") as z:  # an ordinary .npz
        assert np.array_equal(z["ensemble::x"], block)
    assert np.array_equal(s.columns("columns", "bias", (3, 10)), cols[:, 3:])
    assert s.members("streams", "rng", (1, 3)) == [{"m": 1}, {"m": 2}]
    assert int(s.whole("whole", "n")) == 5 and s.whole("whole", "list") == [1, 2, 3]
    whole = s.assembled()
    assert np.array_equal(whole["ensemble::x"], block) and whole["streams::rng"] == [{"m": i} for i in range(3)]
    with pytest.raises(StoreError, match=r"does not hold x of members \(0, 4\)"):
        s.block("ensemble", "x", (0, 4), (0, 10))


def test_a_missing_or_corrupt_shard_or_manifest_is_one_line_naming_it(tmp_path):
    d, *_ = _store(tmp_path)
    shard = d / "shard-00000.npz"
    good = shard.read_bytes()
    shard.write_bytes(good[:50] + bytes([good[50] ^ 4]) + good[51:])  # one bit: same size
    with pytest.raises(StoreError) as err:
        ShardStore(d).verify()
    assert str(err.value) == f"restart shard {shard} is corrupt (its SHA-256 differs from the manifest's)"
    shard.unlink()
    with pytest.raises(StoreError, match=f"^restart shard {shard} is missing$"):
        ShardStore(d).verify()
    shard.write_bytes(good[:-10])
    with pytest.raises(StoreError, match="bytes, the manifest says"):
        ShardStore(d).verify()
    (d / "manifest.json").write_text("{")
    with pytest.raises(StoreError, match="manifest.json is corrupt"):
        ShardStore(d)
    (d / "manifest.json").unlink()
    with pytest.raises(StoreError, match="manifest.json is missing"):
        ShardStore(d)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from landimg import shards
    from landimg.atomic import DiskError

    def full(fh, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shards.np, "savez", full)
    w = ShardWriter()
    w.part("whole")
    w.add("whole", "n", 1)
    with pytest.raises(DiskError, match="cannot write .*shard-00000.npz: No space left on device"):
        write_store(tmp_path / "s", w)
    assert not (tmp_path / "s").exists()


def test_the_ensemble_continues_bitwise_from_its_shards(tmp_path):
    import landimg

    grid = landimg.Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -84.0), res=1.0, land_mask="builtin")
    one = np.ones(grid.ncol)
    f = dict(tair=293.0 * one, qair=0.008 * one, psurf=1e5 * one, precip=1e-4 * one, wind=3.0 * one,
             swdown=350.0 * one, lwdown=330.0 * one)  # fmt: skip

    def make():
        return landimg.Ensemble(grid, 4, soil=landimg.soil.from_class("loam", grid.ncol), seed=3)

    ens = make()
    ens.advance(f, nsteps=5)
    ens.da_state["x"] = 0.5
    ens.write_shards(tmp_path / "r")
    ens.advance(f, nsteps=3)
    again = make()
    again.read_shards(tmp_path / "r")
    assert again.da_state == {"x": 0.5}
    again.advance(f, nsteps=3)
    np.testing.assert_array_equal(again.images(), ens.images())
    other = landimg.Ensemble(grid, 5, soil=landimg.soil.from_class("loam", grid.ncol), seed=3)
    with pytest.raises(StoreError, match="holds an ensemble of nmem = 4, this one has 5"):
        other.read_shards(tmp_path / "r")


@pytest.mark.mpi
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
def test_shards_written_on_2x2_are_read_on_1x1_1x3_4x1_1x4_bitwise(tmp_path):
    cmd = [str(MPIRUN), "-n", "4", sys.executable, "-m", "mpi4py", str(SCRIPT), str(tmp_path / "store")]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "shard layouts OK" in proc.stdout
