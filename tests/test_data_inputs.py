"""Products as inputs of the cycle: records used once per analysis window, CDF matching, reference, forcing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from landimg import Grid
from landimg.data import fixtures as fx
from landimg.data import fixtures_forcing as ff
from landimg.data.inputs import CdfMatcher, ProductForcing, ProductObservations, ProductReference

REGION = (34.0, 40.0, -101.0, -94.0)


@pytest.fixture(scope="module")
def grid():
    return Grid.regular(lat=(35.0, 39.0), lon=(-100.0, -95.0), res=1.0, land_mask="all")


@pytest.fixture(scope="module")
def smap_glob(tmp_path_factory):
    d = tmp_path_factory.mktemp("smap")
    for k in range(3):
        fx.smap_file(str(d), dt.date(2021, 5, 1 + k), bbox=REGION)
    return str(d / "SMAP_*.h5")


@pytest.mark.parametrize("hours", [3, 6, 24])
def test_sub_daily_windows_use_each_record_once(smap_glob, grid, hours):
    obs = ProductObservations("spl3smp", smap_glob, grid, "2021-05-01", 3)
    assert obs.times.size == 5  # AM and PM passes; the last PM falls after day 3 (UTC)
    step = hours * 3600.0
    taken = []
    for k in range(int(3 * 86400 / step)):
        taken += [t for t, _, _ in obs.take(k * step, (k + 1) * step)]
    assert sorted(taken) == sorted(obs.times.tolist())
    np.testing.assert_array_equal(obs.used, 1)
    with pytest.raises(RuntimeError, match="used twice"):
        obs.take(0.0, 86400.0)


def test_both_passes_enter_different_windows(smap_glob, grid):
    obs = ProductObservations("spl3smp", smap_glob, grid, "2021-05-01", 3)
    day0 = obs.take(0.0, 86400.0)
    assert len(day0) == 1  # the AM pass of May 1 (12:30 UTC); its PM pass is at 00:30 UTC May 2
    day1 = obs.take(86400.0, 2 * 86400.0)
    assert len(day1) == 2 and day1[0][0] < 86400.0 + 3 * 3600.0 < day1[1][0]
    assert all(np.isfinite(sm[grid.land]).all() for _, sm, _ in day0 + day1)


def test_cdf_matching_maps_quantiles():
    rng = np.random.default_rng(0)
    obs = rng.normal(0.30, 0.06, 5000)
    model = rng.normal(0.20, 0.03, 5000)
    m = CdfMatcher(obs, model)
    out = m(obs)
    assert np.mean(out) == pytest.approx(0.20, abs=0.003)
    assert np.std(out) == pytest.approx(0.03, abs=0.003)
    assert np.all(np.diff(m(np.sort(obs))) >= 0)  # monotone
    assert np.isnan(m(np.array([np.nan]))[0])


@pytest.mark.slow
def test_reference_daily_means(tmp_path, grid):
    for k in range(16):
        fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1) + dt.timedelta(hours=3 * k), region=REGION)
    ref = ProductReference("gldas", str(tmp_path / "*.nc4"), grid, "2021-05-01", 2)
    assert ref.daily.shape == (2, 3, 4, 5) and ref.days_covered == 2
    assert np.all((ref.daily > 0.1) & (ref.daily < 0.5))


def test_forcing_noleap_calendar(tmp_path, grid):
    times = [dt.datetime(2021, 2, 27) + dt.timedelta(hours=3 * k) for k in range(8 * 4)]
    ff.alma_file(str(tmp_path / "a.nc"), times, REGION, calendar="noleap")
    f = ProductForcing("alma", str(tmp_path / "a.nc"), grid, "2021-03-01", -2.0, 2.0)
    f.check_covers(-2 * 86400.0, 2 * 86400.0 - 3 * 3600.0)
    out = f(0.0)
    assert set(out) == {"tair", "qair", "psurf", "wind", "swdown", "lwdown", "precip"}
    assert out["tair"].shape == (grid.ncol,)
    # 2021-02-28 + 1 day is 2021-03-01 in noleap: records 3 h apart across the month end
    np.testing.assert_allclose(np.diff(f.times), 3 * 3600.0)
