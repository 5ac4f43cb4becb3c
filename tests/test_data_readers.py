"""Product readers on files in each product's real layout (written by landimg.data.fixtures)."""

from __future__ import annotations

import datetime as dt

import cftime
import h5py
import numpy as np
import pytest
from landimg import Grid
from landimg.data import fixtures as fx
from landimg.data import fixtures_forcing as ff
from landimg.data.common import DataError
from landimg.data.era5 import layer_matrix, specific_humidity
from landimg.data.series import read_series

REGION = (34.0, 40.0, -101.0, -94.0)


@pytest.fixture(scope="module")
def grid():
    return Grid.regular(lat=(35.0, 39.0), lon=(-100.0, -95.0), res=1.0, land_mask="all")


def flat(name, lat, lon, when):
    return np.full(np.shape(lat), 0.25)


@pytest.fixture(scope="module")
def smap_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("smap")
    for k in range(2):
        fx.smap_file(
            str(d),
            dt.date(2021, 5, 1 + k),
            bbox=REGION,
            field=flat,
            bad_quality=lambda la, lo: (la > 36.2) & (la < 36.8),
        )
    return d


def test_smap_both_passes_flags_and_times(smap_dir, grid):
    s = read_series("spl3smp", str(smap_dir / "SMAP_L3_SM_P_*.h5"), grid)
    assert s.times.size == 4  # AM and PM of two days
    dates = s.dates()
    # AM pass at 6 am and PM at 6 pm local solar time: about 12:30 and 00:30 UTC at -97.5 E
    hours = [(d.hour + d.minute / 60.0) for d in dates]
    assert hours[0] == pytest.approx(6.0 + 97.5 / 15.0, abs=0.3)
    assert hours[1] == pytest.approx((18.0 + 97.5 / 15.0) % 24, abs=0.3)
    sm = s.fields["sm"]
    assert np.nanmax(sm) == pytest.approx(0.25, abs=1e-6)  # the flagged 0.9 never enters
    assert np.all(np.isfinite(sm))  # every cell has unflagged EASE cells
    np.testing.assert_allclose(s.fields["sm_error"], 0.04, atol=1e-7)


def test_smap_time_from_tb_time_utc_when_seconds_absent(tmp_path, grid):
    path = fx.smap_file(str(tmp_path), dt.date(2021, 5, 1), bbox=REGION, field=flat)
    ref = read_series("spl3smp", path, grid).times
    with h5py.File(path, "a") as f:
        del f["Soil_Moisture_Retrieval_Data_AM/tb_time_seconds"]
        del f["Soil_Moisture_Retrieval_Data_PM/tb_time_seconds_pm"]
    np.testing.assert_allclose(read_series("spl3smp", path, grid).times, ref, atol=1e-3)


def test_smap_percent_units_are_converted_and_9km_grid_detected(tmp_path, grid):
    fx.smap_file(str(tmp_path), dt.date(2021, 5, 1), bbox=REGION, field=flat, units="percent")
    s = read_series("spl3smp", str(tmp_path / "SMAP_L3_SM_P_2*.h5"), grid)
    np.testing.assert_allclose(s.fields["sm"], 0.25, atol=1e-6)
    e = fx.smap_file(str(tmp_path), dt.date(2021, 5, 1), grid="M09", bbox=REGION, field=flat)
    np.testing.assert_allclose(read_series("spl3smp_e", e, grid).fields["sm"], 0.25, atol=1e-6)
    with pytest.raises(DataError, match=r"SMAP_L3_SM_P_E_20210501.*'soil_moisture' has shape \(1624, 3856\)"):
        read_series("spl3smp", e, grid)


def test_cci_descending_latitude_flag_and_t0(tmp_path, grid):
    fx.cci_file(
        str(tmp_path),
        dt.date(2021, 5, 1),
        bbox=REGION,
        field=flat,
        flagged=lambda la, lo: (la > 36.0) & (la < 36.5),
    )
    s = read_series("esacci", str(tmp_path / "ESACCI-*.nc"), grid)
    np.testing.assert_allclose(s.fields["sm"], 0.25, atol=1e-6)
    np.testing.assert_allclose(s.fields["sm_error"], 0.05, atol=1e-6)
    when = s.dates()[0]
    assert (when.day, when.hour) == (1, 12) and abs(when.minute - 30) <= 2  # mean t0 at 6 am local


def test_gldas_missing_layer_is_nan_with_a_warning(tmp_path, grid):
    fx.gldas_file(
        str(tmp_path),
        dt.datetime(2021, 5, 1, 0),
        region=REGION,
        field=flat,
        variables=["SoilMoi0_10cm_inst", "SoilMoi10_40cm_inst"],
    )
    with pytest.warns(UserWarning, match="SoilMoi40_100cm_inst"):
        s = read_series("gldas", str(tmp_path / "GLDAS_*.nc4"), grid)
    sm = s.fields["sm"]
    np.testing.assert_allclose(sm[:, :2], 0.25, atol=1e-6)  # kg m-2 / (1000 * thickness)
    assert np.all(np.isnan(sm[:, 2]))


def test_era5land_layers_mapped_by_thickness(tmp_path, grid):
    times = [dt.datetime(2021, 5, 1, h) for h in range(1, 4)]

    def by_layer(name, lat, lon, when):
        return np.full(np.shape(lat), {"sm_layer1": 0.1, "sm_layer2": 0.2, "sm_layer3": 0.3}[name])

    ff.era5_file(
        str(tmp_path / "e5l.nc"),
        times,
        REGION,
        res=0.1,
        land=True,
        field=by_layer,
        variables=["swvl1", "swvl2", "swvl3"],
    )
    s = read_series("era5land", str(tmp_path / "e5l.nc"), grid)
    # swvl_k = field + 0.01 (k - 1): 0.10, 0.21, 0.32
    expect = [(7 * 0.10 + 3 * 0.21) / 10, (18 * 0.21 + 12 * 0.32) / 30, 0.32]
    for k in range(3):
        np.testing.assert_allclose(s.fields["sm"][:, k], expect[k], atol=1e-6)
    np.testing.assert_allclose(layer_matrix().sum(1), 1.0)


@pytest.mark.parametrize("land", [False, True])
def test_era5_forcing_deaccumulated_and_humidity(tmp_path, grid, land):
    times = [dt.datetime(2021, 4, 30, 22) + dt.timedelta(hours=h) for h in range(8)]
    ff.era5_file(str(tmp_path / "e5.nc"), times, REGION, res=0.25, land=land)
    if land:
        with pytest.warns(UserWarning, match="cannot be de-accumulated"):
            s = read_series("era5land_forcing", str(tmp_path / "e5.nc"), grid)
        assert s.times.size == len(times) - 1  # the first record has no previous hour
    else:
        s = read_series("era5", str(tmp_path / "e5.nc"), grid)
    kept = s.dates()
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    sub = -0.375 + 0.25 * np.arange(4)

    def cell_mean(name, when):  # mean over the 16 source cells of each model cell
        return np.mean([fx.forcing_field(name, lat2 + a, lon2 + b, when) for a in sub for b in sub], axis=0)

    for k, when in enumerate(kept):
        t = dt.datetime(when.year, when.month, when.day, when.hour)
        mid = t - dt.timedelta(minutes=30)
        for name in ("Rainf", "SWdown", "LWdown"):
            np.testing.assert_allclose(
                s.fields[name][k], cell_mean(name, mid), rtol=2e-3, atol=2e-7, err_msg=f"{name} at {t}"
            )
        np.testing.assert_allclose(s.fields["Qair"][k], cell_mean("Qair", t), rtol=1e-3)
        np.testing.assert_allclose(s.fields["Tair"][k], cell_mean("Tair", t), rtol=1e-5)
    assert specific_humidity(np.array([283.15]), np.array([1e5]))[0] == pytest.approx(0.00763, rel=0.01)


def test_cmfd_precipitation_rate_converted(tmp_path, grid):
    times = [dt.datetime(2021, 5, 1, 3 * k) for k in range(4)]
    ff.cmfd_files(str(tmp_path), times, REGION)
    s = read_series("cmfd", str(tmp_path / "*_CMFD_*.nc"), grid)
    lat2, lon2 = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    for k, t in enumerate(times):
        want = fx.forcing_field("Rainf", lat2, lon2, t + dt.timedelta(hours=1.5))
        np.testing.assert_allclose(s.fields["Rainf"][k], want, atol=3e-6)  # 0.1 deg cells average the edges
    assert s.fields["Tair"].shape == (4, 4, 5)


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_other_calendars_kept(tmp_path, grid, calendar):
    times = [dt.datetime(2021, 2, 28, 12), dt.datetime(2021, 3, 1, 12)]
    ff.gridded_file(str(tmp_path / "g.nc"), times, REGION, calendar=calendar)
    s = read_series("gridded", str(tmp_path / "g.nc"), grid, "2021-02-28", "2021-03-01")
    assert s.calendar == calendar
    assert [(d.month, d.day) for d in s.dates()] == [(2, 28), (3, 1)]
    ff.alma_file(str(tmp_path / "a.nc"), times, REGION, calendar=calendar)
    a = read_series("alma", str(tmp_path / "a.nc"), grid)
    assert a.calendar == calendar and isinstance(a.dates()[0], cftime.datetime)


def test_gridded_percent_units_converted(tmp_path, grid):
    ff.gridded_file(
        str(tmp_path / "g.nc"), [dt.datetime(2021, 5, 1, 12)], REGION, field=flat, units="percent"
    )
    np.testing.assert_allclose(read_series("gridded", str(tmp_path / "g.nc"), grid).fields["sm"], 0.25)
