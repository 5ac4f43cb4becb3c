"""Weather generator: the image-based storm-column pair search equals an exhaustive search bitwise."""

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment import forcing as fmod
from landimg.experiment.config import load_config
from landimg.experiment.forcing import WeatherGenerator


def _exhaustive_rain_and_cloud(wg: WeatherGenerator, kind: str, t_h: float) -> tuple[np.ndarray, np.ndarray]:
    """The footprint sums over *every* storm-column pair (storm-major), written out plainly."""
    st, age = wg._active(kind, t_h)
    ncol = wg.grid.ncol
    if st.t0.size == 0:
        return np.zeros(ncol), np.zeros(ncol)
    radius_earth = fmod._EARTH_RADIUS_KM
    clat = st.lat + np.degrees(st.v * age / radius_earth)
    clon = st.lon + np.degrees(st.u * age / radius_earth) / np.maximum(np.cos(np.radians(st.lat)), 0.2)
    rc = fmod._CLOUD_WIDTH * st.radius
    si = np.repeat(np.arange(st.t0.size), ncol)
    ci = np.tile(np.arange(ncol), st.t0.size)
    p0, l0 = np.radians(clat)[si], np.radians(clon)[si]
    phi = wg._phi[ci]
    dlam = (wg._lam[ci] - l0 + np.pi) % (2.0 * np.pi) - np.pi
    d2 = radius_earth**2 * ((phi - p0) ** 2 + (dlam * np.cos(0.5 * (phi + p0))) ** 2)
    near = d2 < (fmod._CLOUD_REACH * rc[si]) ** 2
    si, ci, d2 = si[near], ci[near], d2[near]
    g = np.exp(-d2 / (2.0 * st.radius[si] ** 2))
    envelope = np.sin(np.pi * age / st.life)
    amount = (st.peak * envelope)[si] * np.maximum(g - 0.1, 0.0) / 0.9
    rain = np.bincount(ci, weights=amount, minlength=ncol) * (wg._clim if kind == "truth" else wg._clim_ens)
    gc = np.maximum(np.exp(-d2 / (2.0 * rc[si] ** 2)) - fmod._CLOUD_FLOOR, 0.0) / (1.0 - fmod._CLOUD_FLOOR)
    gc *= np.minimum(1.0, 2.0 * envelope)[si]
    cloud = 1.0 - np.exp(np.bincount(ci, weights=np.log1p(-0.9 * gc), minlength=ncol))
    return rain, cloud


@pytest.mark.parametrize(
    "lat, lon, res, land",
    [
        ((-90.0, 90.0), (-180.0, 180.0), 6.0, "all"),  # periodic, storms near the poles and the dateline
        ((-90.0, 90.0), (0.0, 360.0), 6.0, "checker"),  # periodic 0..360 with sea cells
        ((20.0, 60.0), (150.0, 250.0), 2.0, "checker"),  # regional across the dateline
        ((-10.0, 30.0), (-20.0, 40.0), 1.0, "all"),  # regional over the equator
    ],
)
@pytest.mark.slow
def test_pair_search_is_bitwise_exhaustive(lat, lon, res, land):
    ny, nx = round((lat[1] - lat[0]) / res), round((lon[1] - lon[0]) / res)
    mask = "all" if land == "all" else (np.add.outer(np.arange(ny), np.arange(nx)) % 3 != 0)
    grid = Grid.regular(lat=lat, lon=lon, res=res, land_mask=mask)
    cfg = load_config(None, ["forcing.storms_per_day=0.5", "forcing.storm_radius_km=400"])
    wg = WeatherGenerator(grid, np.zeros(grid.ncol), cfg.forcing, 11, "2021-01-01")
    checked = 0
    for k in range(-30, 60, 6):
        for kind in ("truth", "ensemble"):
            rain, cloud = wg._rain_and_cloud(kind, float(k))
            ref_rain, ref_cloud = _exhaustive_rain_and_cloud(wg, kind, float(k))
            assert np.array_equal(rain, ref_rain) and np.array_equal(cloud, ref_cloud), (kind, k)
            checked += int((ref_rain > 0).sum())
    assert checked > 100  # storms did rain on the grid


def test_pair_search_finds_only_land_and_each_pair_once():
    mask = np.zeros((30, 60), dtype=bool)
    mask[5:25, 10:50] = True
    grid = Grid.regular(lat=(-90.0, 90.0), lon=(-180.0, 180.0), res=6.0, land_mask=mask)
    cfg = load_config()
    wg = WeatherGenerator(grid, np.zeros(grid.ncol), cfg.forcing, 3, "2021-01-01")
    p0 = np.radians(np.array([0.0, 85.0, -60.0]))
    l0 = np.radians(np.array([179.0, 0.0, -179.0]))
    si, ci = wg._pairs.candidates(p0, l0, np.full(3, 0.5))
    assert np.all(np.diff(si) >= 0)  # storm-major
    pairs = set(zip(si.tolist(), ci.tolist(), strict=True))
    assert len(pairs) == si.size  # no duplicates (the periodic window does not wrap onto itself)
    assert np.all((ci >= 0) & (ci < grid.ncol))
    assert set(ci[si == 1].tolist()) == set(np.flatnonzero(grid.column_latlon()[0] > 85.0 - np.degrees(0.5)))


def test_remainder_2pi_is_numpys_remainder_bitwise():
    b = 2.0 * np.pi
    edges = [0.0, -0.0, b, -b, 2 * b, -2 * b, 3 * b, np.pi, -np.pi, np.inf, -np.inf, np.nan, 1e300, -1e-300]
    near = [np.nextafter(x, s) for x in (0.0, b, -b, 2 * b, -2 * b) for s in (-np.inf, np.inf)]
    a = np.concatenate([edges, near, np.random.default_rng(3).uniform(-30.0, 30.0, 10000)])
    with np.errstate(invalid="ignore"):  # inf % b is nan, as numpy says
        assert fmod._remainder_2pi(a.copy()).tobytes() == np.remainder(a, b).tobytes()
