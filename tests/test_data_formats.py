"""Every format the providers used, and plausibility after conversion (issue 19, docs/reliability.md):
netCDF-3 and CF-packed files (the old Climate Data Store), both CDS layouts, ERA5 single levels as the
era5land reference with its land-sea mask, missing layers (one warning), nothing valid (an error), units
that are not a water amount (furlongs), calendar and time-unit errors naming file and variable, the
domain-coverage message, each file of a set opened once, and the reading progress."""

from __future__ import annotations

import datetime as dt
import io
import os

import netCDF4
import numpy as np
import pytest
from landimg import Grid, units
from landimg.data import era5
from landimg.data import fixtures as fx
from landimg.data import fixtures_forcing as ff
from landimg.data.cli import main
from landimg.data.common import DataError
from landimg.data.netcdf import file_kind
from landimg.data.series import FileProgress, read_series
from landimg.experiment.forcing import FileForcing
from landimg.experiment.obs import FileObservations

REGION = (34.0, 40.0, -101.0, -94.0)
GRID = Grid.regular(lat=(35.0, 39.0), lon=(-100.0, -95.0), res=1.0, land_mask="all")
DOMAIN = ["--bbox", "35", "39", "-100", "-95", "--res", "1"]
HOURS = [dt.datetime(2021, 5, 1, h) for h in range(1, 7)]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def test_old_cds_netcdf3_packed_reads_like_the_new_cds_file(tmp_path):
    new = ff.era5_file(str(tmp_path / "new.nc"), HOURS, REGION, res=0.25, land=True)
    old = ff.era5_old_cds(new, str(tmp_path / "old.nc"))
    assert (file_kind(new), file_kind(old)) == ("netcdf4", "netcdf3")
    with netCDF4.Dataset(old) as ds:
        assert (
            ds.file_format == "NETCDF3_64BIT_OFFSET"
            and ds["swvl1"].dtype == np.int16
            and "time" in ds.variables
        )
    for product, (rtol, atol) in (("era5land", (0.0, 2e-5)), ("era5land_forcing", (1e-4, 1e-7))):
        a, b = read_series(product, new, GRID), read_series(product, old, GRID)
        np.testing.assert_array_equal(a.times, b.times)  # valid_time (s since 1970) and time (h since 1900)
        assert set(a.fields) == set(b.fields)
        for (
            name
        ) in a.fields:  # equal to the int16 packing's precision (de-accumulated fluxes: of the day's sum)
            np.testing.assert_allclose(b.fields[name], a.fields[name], rtol=rtol, atol=atol, err_msg=name)


def _sea_west(lat2, lon2):
    """Land-sea mask (lat, lon) of the fixture grid: sea west of 97.5 W (cell centres west of 97.4 W)."""
    return (((lon2 + 180.0) % 360.0 - 180.0) > -97.4).astype(float)


def test_era5_single_levels_as_the_era5land_reference_leave_the_sea_out(tmp_path):
    def field(name, lat, lon, when):  # 0.3 on land everywhere; ERA5's sea value is about 0
        return np.full(np.shape(lat), 0.3)

    new = ff.era5_file(str(tmp_path / "e5.nc"), HOURS[:2], REGION, res=0.25, field=field,
                       variables=["swvl1", "swvl2", "swvl3"])  # fmt: skip
    with netCDF4.Dataset(new) as ds:
        lat, lon = ds["latitude"][:], ds["longitude"][:]
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    lsm = _sea_west(lat2, lon2)
    with netCDF4.Dataset(new, "a") as ds:  # ERA5 over the sea: about 0
        for k in (1, 2, 3):
            v = ds[f"swvl{k}"]
            v[:] = np.where(lsm[None] > 0.5, v[:], 0.0)
    old = ff.era5_old_cds(new, str(tmp_path / "e5_old.nc"), lsm=lsm)
    sm = read_series("era5land", old, GRID).fields["sm"]
    land = era5.layer_matrix()[:, :3] @ np.array(
        [0.30, 0.31, 0.32]
    )  # the fixture's swvl1..3 on land: 0.3 + 0.01 (k-1)
    # every model cell holding a land source cell gets the land value (not diluted by the sea's 0)
    np.testing.assert_allclose(sm[:, :, :, 2:], np.broadcast_to(land[None, :, None, None], sm[:, :, :, 2:].shape),
                               atol=2e-5)  # fmt: skip
    assert np.all(np.isnan(sm[:, :, :, :2]))  # cells west of 98 W: sea only
    # the coastal column (98..97 W) is half sea: without the mask (the new file has no lsm) the sea's zeros
    # take half its area-weighted mean
    without = read_series("era5land", new, GRID).fields["sm"]
    coastal = np.broadcast_to(land[None, :, None], sm[:, :, :, 2].shape)
    np.testing.assert_allclose(without[:, :, :, 2], 0.5 * coastal, atol=1e-6)
    np.testing.assert_allclose(sm[:, :, :, 2], coastal, atol=2e-5)


def test_era5_single_levels_with_swvl1_only_are_refused_not_written_as_nan(tmp_path, capsys):
    path = ff.era5_file(str(tmp_path / "swvl1.nc"), HOURS[:2], REGION, variables=["swvl1"])
    out = tmp_path / "o.nc"
    assert main(["regrid", "--product", "era5land", "--files", path, *DOMAIN, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "hold swvl1 only" in line and "swvl2" in line and not out.exists()


def test_gldas_in_furlongs_or_metres_is_refused_with_units_and_value(tmp_path, capsys):
    cases = {
        "furlongs": "units 'furlongs' are a length but not a depth of water",
        "m": "outside the plausible volumetric soil moisture range [0, 1] m3 m-3 after conversion (found ",
    }
    for unit, words in cases.items():
        d = tmp_path / unit
        d.mkdir()
        path = fx.gldas_file(
            str(d), dt.datetime(2021, 5, 1), region=REGION, units={"SoilMoi0_10cm_inst": unit}
        )
        out = tmp_path / f"{unit}.nc"
        assert main(["regrid", "--product", "gldas", "--files", path, *DOMAIN, "--out", str(out)]) == 2
        line = _error_line(capsys)
        assert path in line and "variable 'SoilMoi0_10cm_inst'" in line and words in line, line
        assert not out.exists()
    # a water depth in mm is a water amount: converted through the density of water
    d = tmp_path / "mm"
    d.mkdir()
    path = fx.gldas_file(str(d), dt.datetime(2021, 5, 1), region=REGION, units={"SoilMoi0_10cm_inst": "mm"})
    ref = fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1), region=REGION)
    np.testing.assert_array_equal(read_series("gldas", path, GRID).fields["sm"],
                                  read_series("gldas", ref, GRID).fields["sm"])  # fmt: skip


def test_water_density_converts_only_water_amounts():
    assert units.PRECIPITATION.conversion("mm h-1", "x") == (1.0 / 3600.0, 0.0)
    assert units.PRECIPITATION.conversion("m s-1", "x") == (1000.0, 0.0)
    assert units.WATER_ACCUMULATION.conversion("m", "x") == (1000.0, 0.0)
    assert units.LAYER_WATER.conversion("kg m-2", "x") == (1.0, 0.0)
    for bad in ("furlongs", "inch", "furlong/hour", "in/h"):
        with pytest.raises(units.UnitsError, match="a length but not a depth of water"):
            units.PRECIPITATION.conversion(bad, "x")
    with pytest.raises(units.UnitsError, match="not soil layer water units"):
        units.LAYER_WATER.conversion("m3 m-3", "x")  # no density conversion between unrelated quantities
    with pytest.raises(units.UnitsError, match="mass ratio"):
        units.SOIL_MOISTURE.conversion("kg kg-1", "x")  # gravimetric is not volumetric


def test_missing_layers_are_nan_with_one_warning_for_the_whole_set(tmp_path, recwarn):
    for h in (0, 3, 6):
        fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1, h), region=REGION,
                      variables=["SoilMoi0_10cm_inst", "SoilMoi10_40cm_inst"])  # fmt: skip
    sm = read_series("gldas", str(tmp_path / "GLDAS_*.nc4"), GRID).fields["sm"]
    messages = [str(w.message) for w in recwarn if "lack" in str(w.message)]
    assert messages == ["GLDAS files lack SoilMoi40_100cm_inst (40-100 cm): those layers are NaN"]
    assert np.all(np.isfinite(sm[:, :2])) and np.all(np.isnan(sm[:, 2]))


def test_a_result_without_any_valid_value_is_an_error(tmp_path, capsys):
    fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1), region=REGION, bbox=(10.0, 20.0, -101.0, -94.0))
    out = tmp_path / "o.nc"
    rc = main(
        ["regrid", "--product", "gldas", "--files", str(tmp_path / "GLDAS_*"), *DOMAIN, "--out", str(out)]
    )
    assert rc == 2 and not out.exists()
    assert "no valid value of 'sm' at any land cell" in _error_line(capsys)


def _obs_file(path, time_units="hours since 2021-05-01 00:00", calendar=None, fmt="NETCDF4", packed=False):
    lat, lon = GRID.lat, GRID.lon
    sm = 0.2 + 0.01 * np.arange(lat.size)[:, None] + 0.001 * np.arange(lon.size)[None, :]
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", 1)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = time_units
        if calendar:
            t.calendar = calendar
        t[:] = [6.0]
        ds.createVariable("lat", "f4", ("lat",))[:] = lat
        ds.createVariable("lon", "f4", ("lon",))[:] = lon
        if packed:
            v = ds.createVariable("sm", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767))
            v.scale_factor, v.add_offset = 1e-4, 0.3
            v.set_auto_maskandscale(False)
            v[:] = np.rint((sm[None] - 0.3) / 1e-4).astype(np.int16)
        else:
            ds.createVariable("sm", "f8", ("time", "lat", "lon"))[:] = sm[None]
        ds["sm"].units = "m3 m-3"
    return path, sm


def test_experiment_inputs_in_netcdf3_and_cf_packed(tmp_path):
    path, sm = _obs_file(tmp_path / "o3.nc", fmt="NETCDF3_CLASSIC", packed=True)
    assert file_kind(str(path)) == "netcdf3"
    got, _ = FileObservations(str(path), GRID, "2021-05-01").observe(0)
    np.testing.assert_allclose(got, sm, rtol=0, atol=0.5e-4 + 1e-12)  # half a packing step
    forcing = tmp_path / "f3.nc"
    lat, lon = GRID.lat, GRID.lon
    with netCDF4.Dataset(forcing, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("time", 4)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-04-30 00:00"
        t[:] = [0.0, 12.0, 24.0, 36.0]
        ds.createVariable("lat", "f4", ("lat",))[:] = lat
        ds.createVariable("lon", "f4", ("lon",))[:] = lon
        for name, value, unit in (("Tair", 15.0, "degC"), ("Qair", 8.0, "g kg-1"), ("PSurf", 960.0, "hPa"),
                                  ("Rainf", 0.0, "mm h-1"), ("Wind", 3.0, "m s-1"), ("SWdown", 0.0, "W m-2"),
                                  ("LWdown", 300.0, "W m-2")):  # fmt: skip
            v = ds.createVariable(name, "i2", ("time", "lat", "lon"))
            v.scale_factor, v.add_offset, v.units = 0.01, value, unit
            v.set_auto_maskandscale(False)
            v[:] = 0
    f = FileForcing(str(forcing), GRID, "2021-05-01")
    f.check_values(-86400.0, 3600.0)
    x = f(0.0)
    assert (
        np.allclose(x["tair"], 288.15) and np.allclose(x["qair"], 0.008) and np.allclose(x["psurf"], 96000.0)
    )
    assert np.all(x["precip"] == 0.0)


def test_calendar_and_time_unit_errors_name_file_and_variable(tmp_path):
    for kw, words in (({"time_units": "hours after 2021-05-01"}, "variable 'time' has units 'hours after"),
                      ({"calendar": "lunar"}, "variable 'time' has calendar 'lunar', not a CF calendar"),
                      ({"time_units": "days since 2021-02-30", "calendar": "noleap"},
                       "variable 'time': cannot decode times")):  # fmt: skip
        path, _ = _obs_file(tmp_path / "bad.nc", **kw)
        with pytest.raises(DataError, match=words) as err:
            FileObservations(str(path), GRID, "2021-05-01")
        assert str(path) in str(err.value)
        with pytest.raises(DataError, match=words):
            read_series("gridded", str(path), GRID)
    path, _ = _obs_file(tmp_path / "360.nc", calendar="360_day")
    with pytest.raises(
        DataError, match=r"360.nc: variable 'time' is in the 360_day calendar, which has no date 2021-05-31"
    ):
        FileObservations(str(path), GRID, "2021-05-31")


def test_coverage_error_says_the_domain_is_not_covered(tmp_path, capsys):
    texas = ff.era5_file(str(tmp_path / "texas.nc"), HOURS[:2], (25.5, 36.5, -106.5, -93.5), res=0.1, land=True,
                         variables=["swvl1", "swvl2", "swvl3"])  # fmt: skip
    out = tmp_path / "o.nc"
    assert (
        main(["regrid", "--product", "era5land", "--files", texas, "--preset", "conus", "--out", str(out)])
        == 2
    )
    line = _error_line(capsys)
    assert (
        "the file does not cover the model domain (domain latitude 25 .. 50, longitude -125 .. -65;" in line
    )
    assert "the file's grid latitude 25.5 .. 36.5" in line and "outside the file's grid" not in line


def test_each_file_of_a_set_is_opened_once(tmp_path, monkeypatch):
    import xarray as xr

    for h in range(4):
        fx.gldas_file(str(tmp_path), dt.datetime(2021, 5, 1, 3 * h), region=REGION)
    for day in (1, 2):
        fx.smap_file(str(tmp_path), dt.date(2021, 5, day), bbox=REGION)
    opened = []
    real = xr.open_dataset

    def counting(path, *args, **kwargs):
        opened.append((os.path.basename(path), kwargs.get("group")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(xr, "open_dataset", counting)
    read_series("gldas_forcing", str(tmp_path / "GLDAS_*"), GRID)
    assert len(opened) == 4 and len(set(opened)) == 4
    opened.clear()
    read_series("spl3smp", str(tmp_path / "SMAP_*"), GRID)
    assert len(opened) == 4 and len(set(opened)) == 4  # two files, two groups (AM, PM) each


def test_reading_progress_is_shown_for_long_reads_only():
    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    clock, out = Clock(), io.StringIO()
    p = FileProgress("forcing.files", stream=out, after=2.0, every=10.0, clock=clock)
    for k in range(1, 31):
        clock.now = 1.0 * k  # one file a second
        p(k, 30)
    lines = out.getvalue().splitlines()
    assert lines == ["[landimg] reading forcing.files: 2/30 files (2 s)", "[landimg] reading forcing.files: 12/30 files (12 s)",
                     "[landimg] reading forcing.files: 22/30 files (22 s)", "[landimg] reading forcing.files: 30/30 files (30 s)"]  # fmt: skip
    quick, out2 = Clock(), io.StringIO()
    q = FileProgress("obs.files", stream=out2, clock=quick)
    for k in range(1, 31):
        quick.now = 0.01 * k
        q(k, 30)
    assert out2.getvalue() == ""
