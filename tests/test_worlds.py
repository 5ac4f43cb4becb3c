"""World variants (experiment.world presets) and the ensemble's whole-field rain shift."""

from __future__ import annotations

import numpy as np
import pytest
from landimg import Grid
from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber, RainShift
from landimg.experiment.config import WORLDS, from_dict, load_config, to_toml


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_presets_resolve_and_the_resolved_keys_load_back(world):
    cfg = load_config(None, [f"experiment.world={world}"])
    for full, value in WORLDS[world].items():
        section, key = full.split(".")
        assert getattr(getattr(cfg, section), key) == value, full
    import tomllib

    assert from_dict(tomllib.loads(to_toml(cfg))) == cfg  # what --print-config shows and the restart holds
    if world == "default":
        assert cfg == load_config()


def test_explicit_keys_win_over_the_preset(tmp_path):
    cfg = load_config(None, ["experiment.world=correlated", "obs.memory_days=2"])
    assert cfg.obs.memory_days == 2.0 and cfg.obs.white_fraction == 0.3 and cfg.obs.corr_length_km == 400.0
    path = tmp_path / "c.toml"
    path.write_text('[experiment]\nworld = "displaced"\n[ensemble]\nrain_shift_km = 30.0\n')
    cfg = load_config(path)
    assert cfg.ensemble.rain_shift_km == 30.0 and cfg.forcing.displacement_km == 100.0
    assert cfg.forcing.displacement_scope == "field"
    assert load_config(path, ["forcing.displacement_km=10"]).forcing.displacement_km == 10.0
    assert load_config(None, ["experiment.world=sparse"]).obs.revisit_days == 4.0


@pytest.fixture(scope="module")
def grid():
    land = np.ones((30, 40), dtype=bool)
    land[:, :5] = False  # a sea in the west
    land[12:15, 20:24] = False  # a lake
    return Grid.regular(lat=(30.0, 45.0), lon=(-110.0, -90.0), res=0.5, land_mask=land)


def _area(grid):
    return np.cos(np.radians(grid.column_latlon()[0]))


def test_rain_shift_keeps_each_members_land_total_and_moves_the_rain(grid):
    rs = RainShift(grid, 100.0, seed=3)
    lat, lon = grid.column_latlon()
    blob = np.exp(-((lat - 40.0) ** 2 + (lon + 96.0) ** 2) / (2 * 1.0**2))  # mm/h, away from edges and lake
    edge = np.exp(-((lat - 44.5) ** 2 + (lon + 108.0) ** 2) / (2 * 0.7**2))  # at the sea and the north edge
    for field in (blob, edge):
        p = np.repeat(field[:, None], 6, axis=1)
        out = rs.apply(p, range(6), t=3 * 86400.0 + 7200.0)
        area = _area(grid)
        np.testing.assert_allclose(area @ out, area @ p, rtol=1e-13)  # conserved, per member
        assert np.all(out >= 0) and not np.allclose(out[:, 0], p[:, 0])
    # the blob (far from edges) moves by the member's vector: its rain-weighted centre follows (dx, dy)
    out = rs.apply(np.repeat(blob[:, None], 6, axis=1), range(6), t=3 * 86400.0)
    for m in range(6):
        dx, dy = rs.shift_km(m, 3)
        w = out[:, m] / out[:, m].sum()
        cy = (w @ lat - blob @ lat / blob.sum()) * 111.19
        cx = (w @ lon - blob @ lon / blob.sum()) * 111.19 * np.cos(np.radians(40.0))
        assert cy == pytest.approx(dy, abs=12.0) and cx == pytest.approx(dx, abs=12.0)
    # redrawn daily, the same within a day
    assert rs.shift_km(0, 3) != rs.shift_km(0, 4)
    np.testing.assert_array_equal(rs.apply(blob[:, None], [2], 3 * 86400.0), rs.apply(blob[:, None], [2], 4 * 86400.0 - 1))


def test_rain_moved_entirely_to_sea_keeps_the_unshifted_field(grid):
    rs = RainShift(grid, 300.0, seed=1)
    lat, lon = grid.column_latlon()
    west = np.where(lon == lon.min(), 1e-4, 0.0)  # rain on the westernmost land column only
    m = next(m for m in range(200) if rs.shift_km(m, 0)[0] < -150.0)  # shifted far west: into the sea
    out = rs.apply(west[:, None], [m], 0.0)
    np.testing.assert_array_equal(out[:, 0], west)


def test_rain_shift_is_rank_independent_and_in_the_perturber(grid):
    cfg = ForcingPerturbation(std=(0.5, 0.3, 20.0, 1.0), length_km=200.0, rain_shift_km=100.0)
    forcing = {"precip": np.linspace(0.0, 1e-4, grid.ncol), "swdown": np.full(grid.ncol, 300.0),
               "lwdown": np.full(grid.ncol, 330.0), "tair": np.full(grid.ncol, 290.0)}  # fmt: skip
    whole = ForcingPerturber(cfg, grid, range(4), seed=9)
    parts = [ForcingPerturber(cfg, grid, ms, seed=9) for ms in ((0,), (1, 2, 3))]
    a = whole.apply(forcing, t=86400.0 * 2)["precip"]
    b = np.concatenate([p.apply(forcing, t=86400.0 * 2)["precip"] for p in parts], axis=1)
    np.testing.assert_array_equal(a, b)
    # the shift applies before each member's multiplicative factor: shifted rain x factor
    fac = whole.factors()["precip"]
    shifted = whole.rain_shift.apply(np.repeat(forcing["precip"][:, None], 4, axis=1), range(4), 86400.0 * 2)
    np.testing.assert_allclose(a, np.clip(shifted * fac, 0.0, 1.0), rtol=1e-15)
    with pytest.raises(ValueError, match="needs the step's time"):
        whole.apply(forcing)
    off = ForcingPerturber(ForcingPerturbation(length_km=200.0), grid, range(4), seed=9)
    assert off.rain_shift is None and off.apply(forcing)["precip"].shape == (grid.ncol, 4)


def test_field_displacement_moves_every_storm_by_the_days_vector(grid):
    from landimg.experiment.forcing import WeatherGenerator

    aridity = np.zeros(grid.ncol)
    base = ["forcing.displacement_km=0", "forcing.displacement_scope=field"]
    gen0 = WeatherGenerator(grid, aridity, load_config(None, base).forcing, 4, "2021-05-01")
    storm0 = WeatherGenerator(grid, aridity, load_config(None, ["forcing.displacement_km=0"]).forcing, 4, "2021-05-01")
    for h in (5, 30):  # zero displacement: the two scopes give the same ensemble weather, bit for bit
        np.testing.assert_array_equal(gen0.ensemble(h * 3600.0)["precip"], storm0.ensemble(h * 3600.0)["precip"])
    gen = WeatherGenerator(grid, aridity, load_config(None, ["forcing.displacement_km=150", "forcing.displacement_scope=field"]).forcing, 4, "2021-05-01")
    assert gen._field_shift("ensemble", 1.0) == gen._field_shift("ensemble", 23.0) != gen._field_shift("ensemble", 25.0)
    assert gen._field_shift("truth", 1.0) == (0.0, 0.0)
    np.testing.assert_array_equal(gen.truth(3600.0)["precip"], gen0.truth(3600.0)["precip"])
