"""Synthetic observations: gaps, error statistics, stations, file readers."""

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment.config import load_config
from landimg.experiment.obs import FileObservations, SatelliteObserver, Stations, read_stations_file


@pytest.fixture(scope="module")
def grid():
    land = np.ones((40, 60), dtype=bool)
    land[:, :4] = False
    return Grid.regular(lat=(25.0, 45.0), lon=(-110.0, -80.0), res=0.5, land_mask=land)


def test_revisit_every_two_to_three_days(grid):
    obs = SatelliteObserver(grid, load_config().obs, 1)
    seen = np.array([obs.swath_mask(d) for d in range(30)])
    assert 0.3 < seen.mean() < 0.5  # ~1 / 2.5 of the cells per day
    for iy, ix in ((0, 10), (20, 30), (39, 59)):
        days = np.flatnonzero(seen[:, iy, ix])
        assert set(np.diff(days)) <= {2, 3}


def test_error_statistics_and_gaps(grid):
    cfg = load_config(None, ["obs.error_std=0.04", "obs.white_fraction=0.5"]).obs
    obs = SatelliteObserver(grid, cfg, 3)
    truth = np.where(grid.land, 0.3, np.nan)
    frozen = np.zeros(grid.shape, dtype=bool)
    frozen[30:] = True
    errs, lag1 = [], []
    for d in range(12):
        y = obs.observe(truth, d, unobservable=frozen)
        assert np.all(np.isnan(y[frozen])) and np.all(np.isnan(y[~grid.land]))
        ok = np.isfinite(y)
        assert np.array_equal(ok, grid.land & obs.swath_mask(d) & ~frozen)
        errs.append(y[ok] - 0.3)
        e = obs.error(d)
        lag1.append(np.mean(e[:, 1:] * e[:, :-1]) / np.mean(e * e))
    e = np.concatenate(errs)
    assert abs(e.mean()) < 0.01 and 0.034 < e.std() < 0.046
    # half the variance is spatially correlated: lag-1 correlation ~0.5 * rho_corr
    assert 0.25 < np.mean(lag1) < 0.55
    assert np.array_equal(
        obs.observe(truth, 4), obs.observe(truth, 4), equal_nan=True
    )  # deterministic per day
    white = SatelliteObserver(grid, load_config(None, ["obs.white_fraction=1.0"]).obs, 3)
    lw = np.mean(
        [np.corrcoef(white.error(d)[:, 1:].ravel(), white.error(d)[:, :-1].ravel())[0, 1] for d in range(5)]
    )
    assert abs(lw) < 0.05


def test_stations(grid):
    cfg = load_config(None, ["obs.stations=50", "obs.station_error_std=0.01", "obs.station_bias_std=0.0"]).obs
    st = Stations(grid, cfg, 2)
    assert st.n == 50 and len(np.unique(st.columns)) == 50
    truth = np.linspace(0.1, 0.4, grid.ncol)
    y = st.observe(truth, 0)
    assert y.shape == (50,) and 0.005 < np.std(y - truth[st.columns]) < 0.02
    assert np.array_equal(Stations(grid, cfg, 2).columns, st.columns)


def test_file_readers(grid, tmp_path):
    import netCDF4

    p = tmp_path / "sm.nc"
    with netCDF4.Dataset(p, "w") as ds:
        for n, s in (("time", 2), ("lat", 40), ("lon", 60)):
            ds.createDimension(n, s)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2021-05-01 00:00"
        t[:] = [0.25, 2.25]
        ds.createVariable("lat", "f8", ("lat",))[:] = grid.lat
        ds.createVariable("lon", "f8", ("lon",))[:] = grid.lon
        sm = ds.createVariable("sm", "f4", ("time", "lat", "lon"), fill_value=-9999.0)
        data = np.full((2, 40, 60), 0.25, dtype=np.float32)
        data[0, 5, 10] = -9999.0
        sm[:] = np.ma.masked_equal(data, -9999.0)
    fo = FileObservations(str(p), grid, "2021-05-01")
    y, err = fo.observe(0)
    assert err is None and np.isnan(y[5, 10]) and np.isnan(y[0, 0]) and np.isclose(y[6, 10], 0.25)
    assert np.all(np.isnan(fo.observe(1)[0]))
    fo.close()
    ps = tmp_path / "st.nc"
    with netCDF4.Dataset(ps, "w") as ds:
        ds.createDimension("time", 48)
        ds.createDimension("station", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-05-01 00:00"
        t[:] = np.arange(48.0)
        ds.createVariable("lat", "f8", ("station",))[:] = [30.1, 30.1, 60.0]  # last one outside the grid
        ds.createVariable("lon", "f8", ("station",))[:] = [-100.1, 259.9, -100.0]
        ds.createVariable("sm", "f8", ("time", "station"))[:] = np.repeat(
            [[0.1], [0.2]], 24, axis=0
        ) * np.ones(3)
    cols, sm = read_stations_file(str(ps), grid, "2021-05-01", 3)
    assert cols.size == 2 and cols[0] == cols[1]
    lat, lon = grid.column_latlon()
    assert abs(lat[cols[0]] - 30.1) <= 0.25 and abs(lon[cols[0]] + 100.1) <= 0.25
    assert np.allclose(sm[:2], [[0.1, 0.1], [0.2, 0.2]]) and np.all(np.isnan(sm[2]))


def _write_sm_file(path, lat, lon, data, days):
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        for n, s in (("time", len(days)), ("lat", len(lat)), ("lon", len(lon))):
            ds.createDimension(n, s)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2021-05-01 00:00"
        t[:] = days
        ds.createVariable("lat", "f8", ("lat",))[:] = lat
        ds.createVariable("lon", "f8", ("lon",))[:] = lon
        ds.createVariable("sm", "f8", ("time", "lat", "lon"))[:] = data


def test_file_observations_refuse_a_file_on_another_region(grid, tmp_path):
    p = tmp_path / "europe.nc"
    lat, lon = np.arange(35.5, 60.0), np.arange(0.5, 30.0)
    _write_sm_file(p, lat, lon, np.full((1, lat.size, lon.size), 0.2), [0.5])
    with pytest.raises(ValueError, match="does not cover the model grid"):
        FileObservations(str(p), grid, "2021-05-01")


def test_file_observations_refuse_out_of_range_values_and_count_covered_days(grid, tmp_path):
    p = tmp_path / "fill.nc"
    data = np.full((2,) + grid.shape, 0.25)
    data[0][np.nonzero(grid.land)[0][:3], np.nonzero(grid.land)[1][:3]] = -9999.0  # undeclared fill on land
    _write_sm_file(p, grid.lat, grid.lon, data, [0.5, 30.5])
    fo = FileObservations(str(p), grid, "2021-05-01")
    with pytest.raises(ValueError, match=r"outside the plausible volumetric soil moisture range \[0, 1\] m3 m-3.*fill values"):
        fo.observe(0)
    assert fo.days_with_records(10) == 1 and fo.days_with_records(40) == 2
    fo.close()
