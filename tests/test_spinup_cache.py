"""Spin-up cache: the key covers what the spin-up depends on; states round-trip bitwise; hit/miss logic."""

import dataclasses

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment import spinup_cache as sc
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_domain
from landimg.model import soil
from landimg.parallel import SerialComm


@pytest.fixture(scope="module")
def world():
    grid = Grid.regular(lat=(30.0, 36.0), lon=(-100.0, -90.0), res=1.0, land_mask="all")
    cfg = load_config(None, ["experiment.spinup_days=3"])
    dom = build_domain(cfg, grid)
    st, se = soil.from_texture(dom.sand_true, dom.clay_true), soil.from_texture(dom.sand_est, dom.clay_est)
    return cfg, dom, st, se


def _key(cfg, dom, st, se, igbp=None):
    return sc.spinup_key(cfg, dom, st, se, {"igbp": dom.igbp if igbp is None else igbp})


def test_key_changes_with_every_input(world):
    cfg, dom, st, se = world
    base = _key(cfg, dom, st, se)
    assert base == _key(cfg, dom, st, se)  # deterministic
    changed = [
        _key(load_config(None, ["experiment.spinup_days=4"]), dom, st, se),
        _key(load_config(None, ["experiment.spinup_days=3", "experiment.seed=99"]), dom, st, se),
        _key(load_config(None, ["experiment.spinup_days=3", "forcing.rain_bias=1.1"]), dom, st, se),
        _key(load_config(None, ["experiment.spinup_days=3", "experiment.start='2021-06-01'"]), dom, st, se),
        _key(cfg, dom, st, soil.from_texture(dom.sand_est + 1.0, dom.clay_est)),
        _key(cfg, dom, soil.from_texture(dom.sand_true, dom.clay_true + 1.0), se),
        _key(cfg, dom, st, se, igbp=np.where(dom.igbp == 10, 12, 10).astype(np.int32)),
        _key(cfg, dataclasses.replace(dom, aridity=dom.aridity + 0.1), st, se),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # the cached ensemble column stops ensemble.spread_days before the end (at most spinup_days)
    spread = _key(load_config(None, ["experiment.spinup_days=3", "ensemble.spread_days=1"]), dom, st, se)
    assert spread != base and spread not in changed
    longer = _key(load_config(None, ["experiment.spinup_days=3", "ensemble.spread_days=50"]), dom, st, se)
    assert longer == base  # 10 and 50 days both mean the whole 3-day spin-up
    # experiment.days, other ensemble settings (the per-member soil is used after the cached part) and
    # analysis settings do not touch the spin-up
    same = load_config(None, ["experiment.spinup_days=3", "experiment.days=7", "ensemble.members=5",
                              "ensemble.perturb_soil=false"])  # fmt: skip
    assert _key(same, dom, st, se) == base
    # nor does the layout of the ranks (every layout spins up the same bits)
    assert _key(load_config(None, ["experiment.spinup_days=3", "parallel.column_blocks=2"]), dom, st, se) == base


def test_roundtrip_and_cached_spinup(tmp_path, world):
    rng = np.random.default_rng(1)
    nature = {"wliq": rng.random((10, 4, 1)), "tsoil": rng.random((10, 4, 1)) + 270.0}
    member = {"wliq": rng.random((10, 4, 1)), "tsoil": rng.random((10, 4, 1))}
    calls = []

    def spin():
        calls.append(1)
        return nature, member

    _, _, status = sc.cached_spinup(spin, lambda: "abc", tmp_path / "cache", SerialComm())
    assert status == "stored" and len(calls) == 1
    n2, m2, status = sc.cached_spinup(spin, lambda: "abc", tmp_path / "cache", SerialComm())
    assert status == "hit" and len(calls) == 1
    for a, b in ((nature, n2), (member, m2)):
        assert set(a) == set(b) and all(
            a[k].tobytes() == b[k].tobytes() and a[k].shape == b[k].shape for k in a
        )
    assert sc.cached_spinup(spin, lambda: "other", tmp_path / "cache", SerialComm())[2] == "stored"
    assert sc.cached_spinup(spin, lambda: "x", None, SerialComm())[2] == "off"
    assert not list((tmp_path / "cache").glob("*.tmp"))
    assert sc.load_spinup(tmp_path / "cache", "absent") is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_a_damaged_entry_is_named_then_recomputed_and_rewritten(tmp_path, damage):
    nature, member = {"wliq": np.arange(6.0).reshape(3, 2, 1)}, {"wliq": np.ones((3, 2, 1))}
    path = sc.save_spinup(tmp_path, "abc", nature, member)
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK garbage")
    else:
        np.savez(path, other=np.ones(2))  # a readable npz that is not a spin-up
    with pytest.raises(sc.DamagedEntry, match=rf"^spin-up cache entry {path} is damaged \(.+\)$"):
        sc.load_spinup(tmp_path, "abc")
    calls = []

    def spin():
        calls.append(1)
        return nature, member

    with pytest.warns(UserWarning, match=rf"{path} is damaged .*: the spin-up is recomputed and the entry rewritten"):
        _, _, status = sc.cached_spinup(spin, lambda: "abc", tmp_path, SerialComm())
    assert status == "stored" and calls == [1] and path.read_bytes() == good
    assert sc.cached_spinup(spin, lambda: "abc", tmp_path, SerialComm())[2] == "hit"


def test_unwritable_cache_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="spinup-cache .* not a writable directory") as info:
        sc.check_cache_dir(blocker / "sub")
    assert "\n" not in str(info.value)
    sc.check_cache_dir(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()
