"""Built-in land mask: the package's values, without its 933 MB array, cached on disk per grid."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from landimg import grid as grid_mod
from landimg.atomic import DiskError
from landimg.grid import Grid, builtin_land_mask, land_mask_cache_dir

_CHECK = r"""
import json, resource, sys
import numpy as np
from landimg.grid import builtin_land_mask
cases = [((-60.0, 90.0), (-180.0, 180.0), 2.0), ((50.0, 70.0), (160.0, 200.0), 0.5), ((-40.0, -20.0), (0.0, 40.0), 0.25)]
ours = []
for (s, n), (w, e), r in cases:
    lat = s + (np.arange(round((n - s) / r)) + 0.5) * r
    lon = w + (np.arange(round((e - w) / r)) + 0.5) * r
    ours.append((lat, lon, builtin_land_mask(lat, lon)))
# VmHWM is this process image's own peak (ru_maxrss keeps the forking pytest's peak across exec)
peak_mb = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]) / 1024.0
held = "global_land_mask.globe" in sys.modules
from global_land_mask import globe
same = []
for lat, lon, m in ours:
    la, lo = np.meshgrid(lat, (lon + 180.0) % 360.0 - 180.0, indexing="ij")
    same.append(bool(np.array_equal(m, globe.is_land(la, lo)) and 0.05 < m.mean() < 0.95))
print(json.dumps({"peak_mb": peak_mb, "held": held, "same": same}))
"""


@pytest.mark.slow
def test_equals_the_package_and_stays_small(tmp_path):
    env = dict(os.environ, LANDIMG_CACHE_DIR="none", PYTHONPATH=str(Path(grid_mod.__file__).parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", _CHECK], check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["same"] == [True, True, True]
    assert not res["held"]  # the package's module (and its array) was never imported
    assert res["peak_mb"] < 500.0  # the package holds a 933 MB array; streaming keeps a few MB of it


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDIMG_CACHE_DIR", str(tmp_path))
    assert land_mask_cache_dir() == tmp_path
    lat, lon = np.arange(30.5, 40.0), np.arange(-100.5, -90.0)
    first = builtin_land_mask(lat, lon)
    files = list((tmp_path / "landmask").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "landmask").glob("*.tmp"))

    def boom(*args):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(grid_mod, "_sample_mask_file", boom)
    assert np.array_equal(builtin_land_mask(lat, lon), first)
    with pytest.raises(AssertionError, match="recomputed"):  # another grid is not mistaken for this one
        builtin_land_mask(lat + 1.0, lon)
    g = Grid.regular(lat=(30.0, 40.0), lon=(-101.0, -90.0), res=1.0)
    assert np.array_equal(g.land, first)


def test_cache_off_and_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDIMG_CACHE_DIR", "none")
    assert land_mask_cache_dir() is None
    lat, lon = np.arange(-30.5, -20.0), np.arange(20.5, 30.0)
    ref = builtin_land_mask(lat, lon)  # computed without a cache
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LANDIMG_CACHE_DIR", str(blocker))
    with pytest.raises(DiskError) as info:  # an unusable cache is one line with the way out
        builtin_land_mask(lat, lon)
    assert str(info.value) == (
        f"cannot create directory {blocker / 'landmask'}: Not a directory; set LANDIMG_CACHE_DIR to a "
        "writable directory, or to none (no cache)"
    )
    monkeypatch.delenv("LANDIMG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert land_mask_cache_dir() == tmp_path / "xdg" / "landimg"
    assert np.array_equal(builtin_land_mask(lat, lon), ref)  # stored in the cache
    assert np.array_equal(builtin_land_mask(lat, lon), ref)  # read from it


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape"])
def test_a_damaged_cache_entry_is_recomputed_and_rewritten(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("LANDIMG_CACHE_DIR", str(tmp_path))
    lat, lon = np.arange(30.5, 40.0), np.arange(-100.5, -90.0)
    ref = builtin_land_mask(lat, lon)
    (entry,) = (tmp_path / "landmask").glob("*.npy")
    good = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"garbage")
    else:
        np.save(entry, np.ones((2, 2), bool))
    assert np.array_equal(builtin_land_mask(lat, lon), ref)
    assert entry.read_bytes() == good
