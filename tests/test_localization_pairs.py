"""The point EnKF's obs-obs pair weights: a per-pattern table of the observation pairs, gathered per chunk.

Checked against a brute-force Gaspari-Cohn of the great-circle distance (haversine) of every (column, obs,
obs) entry, on the table path and on the per-chunk fallback (forced by small caps), which agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from landimg.da import localization as loc
from landimg.da import point_enkf as pe
from landimg.da.point_enkf import point_enkf_increments


def _reference(lat, lon, nb, rows=slice(None)):
    """Brute force (nc, m, m) float64: GC(haversine distance / (radius / 2)) where both are used, else 0."""
    idx, use = nb.idx[rows], nb.use[rows]
    la, lo = np.radians(lat[idx]), np.radians(lon[idx])
    dla, dlo = la[:, :, None] - la[:, None, :], lo[:, :, None] - lo[:, None, :]
    hav = np.sin(dla / 2) ** 2 + np.cos(la[:, :, None]) * np.cos(la[:, None, :]) * np.sin(dlo / 2) ** 2
    km = 2.0 * loc.EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(hav, 0.0, 1.0)))
    w = loc.gaspari_cohn(km / (nb.radius_km / 2.0))
    return np.where(use[:, :, None] & use[:, None, :], w, 0.0)


def _global_case(seed=3, res=3.0):
    """A global grid with a blobby 'land' mask and a swath-like observation pattern."""
    lat = -89.0 + res * np.arange(int(178 / res) + 1)
    lon = -180.0 + res * (np.arange(int(360 / res)) + 0.5)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = np.sin(np.radians(3 * lo)) + np.cos(np.radians(4 * la)) > -0.3
    lat_c, lon_c = la[land], lo[land]
    valid = (np.floor((lon_c + 0.7 * lat_c) / 25.0) % 2 == 0) & (np.random.default_rng(seed).random(lat_c.size) > 0.1)
    return lat_c, lon_c, valid


def _weights(lat, lon, valid, radius, max_obs, chunk=100):
    """Fresh neighbourhoods and their pair weights of all columns, in chunks as the filter asks for them."""
    xyz = loc.unit_xyz(lat, lon)
    nb = loc.observed_neighbourhoods(xyz, valid, radius, max_obs)
    n = nb.idx.shape[0]
    w = [loc.observation_pair_weights(xyz, nb, slice(c, min(c + chunk, n))) for c in range(0, n, chunk)]
    return nb, np.concatenate(w)


@pytest.mark.parametrize("radius, max_obs", [(900.0, 64), (1200.0, 16), (600.0, None)])
@pytest.mark.slow
def test_pair_weights_are_gaspari_cohn_of_the_great_circle_distance(monkeypatch, radius, max_obs):
    lat, lon, valid = _global_case()
    nb, table = _weights(lat, lon, valid, radius, max_obs)
    sub = slice(0, None, 3)  # every third column against the brute force (memory and time)
    ref = _reference(lat, lon, nb, sub)
    used = nb.use[:, :, None] & nb.use[:, None, :]
    assert nb.pair_table is not None and nb.pair_table.weights is not None  # the table path ran
    assert table.dtype == np.float32 and table.shape == used.shape
    assert (used[sub] & (ref > 0.01) & (ref < 0.99)).sum() > 1000  # many pairs between 0 and 1
    assert np.abs(table[sub] - ref).max() < 1e-6
    assert not table[~used].any()  # padded / unused entries: exactly 0
    np.testing.assert_array_equal(table[used & np.eye(nb.m, dtype=bool)], 1.0)
    for cap in ("PAIR_BLOCK_ELEMENTS", "PAIR_TABLE_ELEMENTS"):  # the per-chunk fallback, same bits
        with monkeypatch.context() as mp:
            mp.setattr(loc, cap, 0)
            nb_f, fallback = _weights(lat, lon, valid, radius, max_obs, chunk=37)
        np.testing.assert_array_equal(nb_f.idx, nb.idx)
        np.testing.assert_array_equal(fallback, table)
    assert nb_f.pair_table.weights is None  # PAIR_TABLE_ELEMENTS = 0: no table kept


def test_pairs_right_at_the_radius(monkeypatch):
    # equator cells 1 deg apart, all observed, radius 6 cells: cells +-3 from a column are a pair exactly at
    # the radius (weight 0), -3 and +2 are 5 cells apart (GC(5/3) > 0)
    lon = np.arange(40, dtype=float)
    lat = np.zeros_like(lon)
    radius = loc.EARTH_RADIUS_KM * np.radians(6.0)
    nb, w = _weights(lat, lon, np.ones(lon.size, bool), radius, None, chunk=7)
    monkeypatch.setattr(loc, "PAIR_BLOCK_ELEMENTS", 0)
    _, fallback = _weights(lat, lon, np.ones(lon.size, bool), radius, None, chunk=7)
    np.testing.assert_array_equal(fallback, w)
    assert np.abs(w - _reference(lat, lon, nb)).max() < 1e-6 and w.min() >= 0.0
    c = 20  # an inner column: observations at 0, +-1, ..., +-5 cells (+-6 at the radius: weight ~0)
    assert nb.use[c].sum() >= 11 and np.all(nb.rho[c, nb.dist[c] > radius * (1 - 1e-9)] < 1e-12)
    for s0, s1, expect in ((-3, 3, 0.0), (-6, 0, 0.0), (-3, 2, loc.gaspari_cohn(5.0 / 3.0))):
        a, b = (int(np.flatnonzero(nb.idx[c] == c + s)[0]) for s in (s0, s1))
        if nb.use[c, a] and nb.use[c, b]:
            assert w[c, a, b] == w[c, b, a] == pytest.approx(expect, abs=1e-6)
    assert w[c].max() == 1.0 and (w[c] > 0.01).sum() > 50


def test_pair_table_is_made_once_and_small():
    lat, lon, valid = _global_case(seed=4)
    xyz = loc.unit_xyz(lat, lon)
    nb = loc.observed_neighbourhoods(xyz, valid, 900.0, 64)
    first = loc.observation_pair_weights(xyz, nb, slice(0, 50))
    table = nb.pair_table
    np.testing.assert_array_equal(loc.observation_pair_weights(xyz, nb, slice(0, 50)), first)
    assert nb.pair_table is table
    nobs = np.unique(nb.idx[nb.use]).size
    assert table.weights.shape == (nobs, nobs) and table.weights.nnz < 0.5 * nobs**2
    np.testing.assert_array_equal(table.weights.diagonal(), 1.0)
    assert (table.weights - table.weights.T).count_nonzero() == 0
    assert (table.row >= 0).sum() == nobs and np.isin(np.flatnonzero(table.row >= 0), nb.idx[nb.use]).all()


def test_single_observation_neighbourhoods_are_the_use_mask():
    lat, lon, valid = _global_case()
    xyz = loc.unit_xyz(lat, lon)
    nb = loc.observed_neighbourhoods(xyz, valid, 0.0)  # own cell only
    w = loc.observation_pair_weights(xyz, nb, slice(None))
    np.testing.assert_array_equal(w[:, 0, 0], valid.astype(np.float32))


def _point_problem(case_seed, nmem, rng_seed, radius):
    """A point EnKF problem on :func:`_global_case`: (lat, lon, valid, state, h, obs, keyword arguments)."""
    lat, lon, valid = _global_case(seed=case_seed)
    ncol, nlev = lat.size, 4
    rng = np.random.default_rng(rng_seed)
    state = 0.25 + 0.05 * rng.standard_normal((nlev, ncol, nmem))
    obs = np.where(valid, 0.27 + 0.03 * rng.standard_normal(ncol), np.nan)
    h = np.array([0.6, 0.4, 0.0, 0.0])
    kw = {"lat": lat, "lon": lon, "radius_km": radius, "max_obs": 64, "seed": 2, "chunk": 100}
    return lat, lon, valid, state, h, obs, kw


@pytest.mark.parametrize("cap", [None, "PAIR_BLOCK_ELEMENTS"])
def test_point_enkf_increments_with_the_reference_weights(monkeypatch, cap):
    lat, lon, valid, state, h, obs, kw = _point_problem(5, 12, 0, 900.0)
    if cap:
        monkeypatch.setattr(loc, cap, 0)
    new, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    monkeypatch.setattr(
        pe,
        "observation_pair_weights",
        lambda xyz, nb, sl, w=None: _reference(lat, lon, nb, sl)[:, :w, :w].astype(np.float32),
    )
    ref, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    assert np.abs(new).max() > 1e-3
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_truncated_local_systems_solve_the_same_equations(monkeypatch):
    """The solve drops the positions unused in a whole chunk (w < m): same increments as the padded m."""
    lat, lon, valid, state, h, obs, kw = _point_problem(6, 10, 1, 700.0)
    widths = []
    width = pe._width
    monkeypatch.setattr(pe, "_width", lambda use: widths.append((width(use), use.shape[1])) or widths[-1][0])
    short, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    assert widths and sum(w < m for w, m in widths) > len(widths) / 2  # most chunks were truncated
    monkeypatch.setattr(pe, "_width", lambda use: use.shape[1])
    full, _ = point_enkf_increments(state, h, obs, 0.03, **kw)
    assert np.abs(full).max() > 1e-3
    np.testing.assert_allclose(short, full, rtol=0, atol=1e-12 * np.abs(full).max())
    # the weights of the first w observations are the leading block of all m, bit for bit
    xyz = loc.unit_xyz(lat, lon)
    nb = loc.observed_neighbourhoods(xyz, valid, 700.0, 64)
    rows = slice(0, 100)
    w = width(nb.use[rows])
    np.testing.assert_array_equal(
        loc.observation_pair_weights(xyz, nb, rows, w), loc.observation_pair_weights(xyz, nb, rows)[:, :w, :w]
    )
    assert not nb.use[rows, w:].any() and width(np.zeros((3, 5), bool)) == 1


def test_a_block_with_its_halo_finds_the_whole_domains_neighbourhoods():
    """Exact ties in distance (longitudes symmetric about 0) are ordered, and cut at max_obs, by the
    global column index: a block's rows, searched among its halo's observations only, equal the whole
    domain's bit for bit (without the tie rule the tree of the halo picks other tied observations)."""
    from scipy.spatial import cKDTree

    lat, lon = np.meshgrid(np.arange(20.0), np.arange(-10.0, 10.0), indexing="ij")
    xyz = loc.unit_xyz(lat.ravel(), lon.ravel())
    n = xyz.shape[0]
    valid = np.random.default_rng(0).random(n) < 0.6
    whole = loc.observed_neighbourhoods(xyz, valid, 500.0, 20)
    finite = [row[np.isfinite(row)] for row in whole.dist]
    assert sum(r.size - np.unique(r).size for r in finite) > 100  # many exact ties
    assert np.any(np.isfinite(whole.dist[:, -1]))  # rows cut at max_obs
    own = np.arange(n) // 100 == 1
    reach, _ = cKDTree(xyz[own]).query(xyz, k=1, distance_upper_bound=2 * np.sin(500 / 6371 / 2) * 1.001)
    held = np.flatnonzero(np.isfinite(reach))  # the block and its halo
    nb = loc.observed_neighbourhoods(xyz[held], valid[held], 500.0, 20, rows=own[held], order=held)
    r = own[held]
    assert nb.m == whole.m
    np.testing.assert_array_equal(held[nb.idx[r]], whole.idx[own])
    for name in ("dist", "rho", "use"):
        np.testing.assert_array_equal(getattr(nb, name)[r], getattr(whole, name)[own])
    assert not nb.use[~r].any()  # the halo's own rows: no neighbourhood (their owners analyse them)
    wide = loc.pad_neighbourhoods(nb, nb.m + 3)
    assert wide.m == nb.m + 3 and not wide.use[:, nb.m :].any() and np.all(np.isinf(wide.dist[:, nb.m :]))
