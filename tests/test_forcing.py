"""Synthetic weather generator: physical properties, degradation and determinism."""

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_domain
from landimg.experiment.forcing import FORCING_KEYS, FileForcing, WeatherGenerator, qsat, solar_cos_zenith


@pytest.fixture(scope="module")
def gen():
    g = Grid.regular(lat=(30.0, 45.0), lon=(-110.0, -80.0), res=1.0, land_mask="all")
    cfg = load_config()
    d = build_domain(cfg, g)
    return WeatherGenerator(g, d.aridity, cfg.forcing, 5, "2021-06-01"), g


def test_physical_ranges_and_night(gen):
    wg, g = gen
    lat, lon = g.column_latlon()
    for k in range(0, 72, 1):
        f = wg.truth(3600.0 * k)
        assert set(f) == set(FORCING_KEYS)
        assert all(v.shape == (g.ncol,) for v in f.values())
        assert np.all(f["precip"] >= 0) and np.all(f["swdown"] >= 0)
        assert np.all((f["tair"] > 250) & (f["tair"] < 330))
        assert np.all(f["qair"] > 0) and np.all(f["qair"] <= qsat(f["tair"], f["psurf"]) * (1 + 1e-12))
        assert np.all((f["lwdown"] > 150) & (f["lwdown"] < 550)) and np.all(f["wind"] > 0)
        cosz = solar_cos_zenith(lat, lon, 152 + k / 24.0, k % 24)
        assert np.all(f["swdown"][cosz <= 0] == 0.0)  # zero at night
        assert np.all(f["swdown"][cosz > 0.3] > 0.0)


def test_diurnal_cycle_and_rain_amount(gen):
    wg, _ = gen
    f = [wg.truth(3600.0 * k) for k in range(24 * 10)]
    tair = np.array([x["tair"] for x in f]).reshape(10, 24, -1).mean(axis=(0, 2))
    # 00 UTC ~ 17-19 h local in the US (warm), 12 UTC ~ 05-07 h local (cold)
    assert tair[22] - tair[11] > 4.0
    rain = np.array([x["precip"] for x in f]) * 3600.0
    daily = rain.sum(0).mean() / 10.0
    assert 0.5 < daily < 8.0  # mm/day, a plausible climate
    assert 0.05 < (rain.sum(0) > 0).mean() <= 1.0 and (rain > 0).mean() < 0.6


def test_determinism_and_degradation(gen):
    wg, g = gen
    cfg = load_config()
    wg2 = WeatherGenerator(g, wg.aridity, cfg.forcing, 5, "2021-06-01")
    for t in (0.0, 3600.0 * 37, -86400.0 * 3.5):  # also during spin-up (t < 0)
        a, b = wg.truth(t), wg2.truth(t)
        assert all(np.array_equal(a[k], b[k]) for k in a)
    # random access equals sequential access (nothing hidden in the cache)
    wg3 = WeatherGenerator(g, wg.aridity, cfg.forcing, 5, "2021-06-01")
    assert np.array_equal(wg3.ensemble(3600.0 * 100)["precip"], wg.ensemble(3600.0 * 100)["precip"])
    # ensemble rain: same climate, different pattern
    tr = np.array([wg.truth(3600.0 * k)["precip"] for k in range(24 * 30)]).reshape(30, 24, -1).sum(1)
    en = np.array([wg.ensemble(3600.0 * k)["precip"] for k in range(24 * 30)]).reshape(30, 24, -1).sum(1)
    assert not np.array_equal(tr, en)
    wet = [i for i in range(30) if tr[i].std() > 0 and en[i].std() > 0]
    assert len(wet) >= 4
    corr = np.mean([np.corrcoef(tr[i], en[i])[0, 1] for i in wet])
    assert 0.0 < corr < 0.9
    assert 0.3 < en.mean() / tr.mean() < 1.5
    other = WeatherGenerator(g, wg.aridity, cfg.forcing, 6, "2021-06-01")
    assert not np.array_equal(other.truth(3600.0 * 30)["tair"], wg.truth(3600.0 * 30)["tair"])


def test_file_forcing(tmp_path):
    import netCDF4

    g = Grid.regular(lat=(30.0, 32.0), lon=(-100.0, -97.0), res=1.0, land_mask="all")
    path = tmp_path / "f.nc"
    with netCDF4.Dataset(path, "w") as ds:
        for n, s in (("time", 3), ("lat", 2), ("lon", 3)):
            ds.createDimension(n, s)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-05-01 00:00"
        t[:] = [0.0, 3.0, 6.0]
        ds.createVariable("lat", "f8", ("lat",))[:] = [30.5, 31.5]
        ds.createVariable("lon", "f8", ("lon",))[:] = [-99.5, -98.5, -97.5]
        for name, val in (
            ("Tair", 290.0),
            ("Qair", 0.01),
            ("PSurf", 1e5),
            ("Rainf", 1e-4),
            ("Snowf", 1e-5),
            ("Wind", 2.0),
            ("SWdown", 300.0),
            ("LWdown", 350.0),
        ):
            v = ds.createVariable(name, "f8", ("time", "lat", "lon"))
            v[:] = val * (1.0 + np.arange(3))[:, None, None]
    ff = FileForcing(str(path), g, "2021-05-01")
    f = ff(3600.0 * 4)  # holds the 3 h record
    assert np.allclose(f["tair"], 580.0) and np.allclose(f["precip"], 2 * 1.1e-4)
    assert set(f) == set(FORCING_KEYS)
    with pytest.raises(ValueError, match="no record"):
        ff(-10.0)
    ff.check_covers(0.0, 8.0 * 3600.0)  # the last record holds for one more 3 h interval
    with pytest.raises(
        ValueError, match=r"records cover 0 .. 9 h after the experiment start, the run needs -24 .. 8 h"
    ):
        ff.check_covers(-24.0 * 3600.0, 8.0 * 3600.0)
    with pytest.raises(ValueError, match="the run needs 0 .. 12 h"):
        ff.check_covers(0.0, 12.0 * 3600.0)
    ff.close()


def test_weather_hour_terms_shared_by_truth_and_ensemble_keep_bits(gen):
    """Truth and ensemble at the same hour share the storm-free terms: same bits as separate generators."""
    wg, g = gen
    cfg = load_config()

    def fresh():
        return WeatherGenerator(g, wg.aridity, cfg.forcing, 5, "2021-06-01")

    both, alone = fresh(), {"truth": fresh(), "ensemble": fresh()}
    for t in (0.0, 3600.0, 3600.0, 7200.0 * 11):
        for kind in ("truth", "ensemble"):
            a, b = getattr(both, kind)(t), getattr(alone[kind], kind)(t)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
    assert both._clear_sky is not None and both._clear_sky[0] == 22.0


@pytest.mark.parametrize("res, lon", [(1.0, (-180.0, 180.0)), (2.5, (0.0, 360.0))])
def test_cloud_free_terms_equal_the_direct_formulas(res, lon):
    """The hour's terms by angle addition equal the direct sines and cosines (solar_cos_zenith, the
    synoptic waves, the local-solar-time cosine) to round-off, at any hour of a long run."""
    g = Grid.regular(lat=(-60.0, 80.0), lon=lon, res=res, land_mask="all")
    cfg = load_config()
    wg = WeatherGenerator(g, np.zeros(g.ncol), cfg.forcing, 9, "2021-01-01")
    lat, lon_c = g.column_latlon()
    k, ph, c = wg._waves
    for t_h, doy, utc in ((0.0, 1.0, 0.0), (13.5, 1.56, 13.5), (24.0 * 400 + 7.0, 36.3, 7.0), (1e5, 180.2, 16.0)):
        terms = wg._cloud_free_terms(t_h, doy, utc)
        waves = k[:, None] * (np.radians(lon_c) - 2.0 * np.pi * 0.12 * t_h / 24.0) + ph[:, None]
        synoptic = np.sin(waves + c[:, None] * np.radians(lat)).sum(axis=0) / np.sqrt(1.5)
        lst = (utc + lon_c / 15.0) % 24.0
        toa = 1361.0 * (1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0))
        toa = toa * np.maximum(solar_cos_zenith(lat, lon_c, doy, utc), 0.0)
        np.testing.assert_allclose(terms["synoptic"], synoptic, rtol=0, atol=1e-9)
        np.testing.assert_allclose(terms["cos_lst"], np.cos(2.0 * np.pi * (lst - 15.0) / 24.0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(terms["toa"], toa, rtol=0, atol=1e-9)
        assert (terms["toa"] > 0).any() and (terms["toa"] == 0).any()  # day and night in the domain
