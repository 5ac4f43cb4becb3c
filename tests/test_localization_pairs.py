"""The point EnKF's obs-obs pair weights: evaluated only where the solve uses them, same bits as before."""

from __future__ import annotations

import numpy as np
import pytest
from landimg.da import localization as loc
from landimg.da.point_enkf import point_enkf_increments


def _full_pair_weights(xyz, nb, rows):
    """The former evaluation: every (column, obs, obs) entry (reference)."""
    q = xyz[nb.idx[rows]]
    chord2 = np.clip(2.0 - 2.0 * np.matmul(q, q.transpose(0, 2, 1)), 0.0, 4.0)
    return loc.gaspari_cohn(loc.great_circle_km(np.sqrt(chord2)) / (nb.radius_km / 2.0)).astype(np.float32)


def _global_case(seed=3, res=3.0):
    """A global grid with a blobby 'land' mask and a swath-like observation pattern."""
    lat = -89.0 + res * np.arange(int(178 / res) + 1)
    lon = -180.0 + res * (np.arange(int(360 / res)) + 0.5)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = np.sin(np.radians(3 * lo)) + np.cos(np.radians(4 * la)) > -0.3
    lat_c, lon_c = la[land], lo[land]
    valid = (np.floor((lon_c + 0.7 * lat_c) / 25.0) % 2 == 0) & (np.random.default_rng(seed).random(lat_c.size) > 0.1)
    return lat_c, lon_c, valid


@pytest.mark.parametrize("radius, max_obs", [(900.0, 64), (1200.0, 16), (600.0, None)])
def test_used_pair_weights_are_bitwise_the_full_evaluation(radius, max_obs):
    lat, lon, valid = _global_case()
    xyz = loc.unit_xyz(lat, lon)
    nb = loc.observed_neighbourhoods(xyz, valid, radius, max_obs)
    new = loc._pair_weights(xyz, nb, slice(None))
    old = _full_pair_weights(xyz, nb, slice(None))
    used = nb.use[:, :, None] & nb.use[:, None, :]
    assert used.any() and (new[used] > 0).any()
    np.testing.assert_array_equal(new[used], old[used])
    assert not new[~used].any()
    np.testing.assert_array_equal(loc._pair_weights(xyz, nb, slice(7, 90)), new[7:90])


@pytest.mark.parametrize("cached", [True, False])
def test_point_enkf_increments_bitwise_unchanged(monkeypatch, cached):
    lat, lon, valid = _global_case(seed=5)
    ncol, nlev, nmem = lat.size, 4, 12
    rng = np.random.default_rng(0)
    state = 0.25 + 0.05 * rng.standard_normal((nlev, ncol, nmem))
    obs = np.where(valid, 0.27 + 0.03 * rng.standard_normal(ncol), np.nan)
    h = np.array([0.6, 0.4, 0.0, 0.0])
    if not cached:
        monkeypatch.setattr(loc, "PAIR_CACHE_ELEMENTS", 0)  # per-chunk evaluation
    kw = {"lat": lat, "lon": lon, "radius_km": 900.0, "max_obs": 64, "seed": 2, "chunk": 100}
    new, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    monkeypatch.setattr(loc, "_pair_weights", _full_pair_weights)
    old, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    assert np.abs(new).max() > 1e-3
    np.testing.assert_array_equal(new, old)
