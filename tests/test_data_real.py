"""Real files as their providers distributed them (tests/data/README.md: sources, commits, licences):
ESA CCI SM v04.2 PASSIVE (netCDF-4, descending latitude, flags, t0), GLDAS-2.1 Noah 0.25 deg (a variable
subset missing the 40-100 cm layer) and ERA5 from the old Climate Data Store (netCDF-3 64-bit offset,
int16 CF-packed, 5 deg, with the land-sea mask). Each is read by the products' path and checked against
area-weighted means computed here by hand from the raw values (read with netCDF4-python, an independent
decoder); and the cycle assimilates the five real ESA CCI days over CONUS."""

from __future__ import annotations

import json
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pytest
from landimg import Grid
from landimg.data.cli import main as data_main
from landimg.data.era5 import ERA5LAND_SM
from landimg.data.netcdf import NcFile, file_kind
from landimg.data.regrid import Regridder
from landimg.data.series import read_series

DATA = Path(__file__).parent / "data"
CCI = sorted((DATA / "esacci").glob("ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-*-fv04.2.nc"))
GLDAS = DATA / "gldas" / "GLDAS_NOAH025_3H.A20160101.0300.021.nc4"
ERA5 = DATA / "era5" / "example_downloaded_raw.nc"
#: CONUS at 1 deg (the conus preset's box), every cell: the hand computation covers ocean cells too.
CONUS = Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0, land_mask="all")


def _raw(path, name):
    """A variable as netCDF4-python decodes it (its own masking and scaling), float64, NaN where masked."""
    with netCDF4.Dataset(path) as ds:
        return np.ma.filled(np.ma.asarray(ds[name][:], dtype=np.float64), np.nan), ds


def _coords(path, lat_name="lat", lon_name="lon"):
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds[lat_name][:], float), np.asarray(ds[lon_name][:], float)


def _hand_mean(values, lat, lon, grid, half):
    """Area-weighted mean (ny, nx) of the valid (finite) source cells of centres ``lat``, ``lon`` (2 x ``half``
    degrees wide) inside each model cell; the source cells nest exactly in the model cells here."""
    out = np.full(grid.shape, np.nan)
    w_lat = np.sin(np.radians(lat + half)) - np.sin(np.radians(lat - half))  # cell area / (R^2 dlon)
    for i, clat in enumerate(grid.lat):
        rows = np.flatnonzero(np.abs(lat - clat) < grid.res / 2)
        for j, clon in enumerate(grid.lon):
            cols = np.flatnonzero(np.abs(((lon - clon + 180.0) % 360.0) - 180.0) < grid.res / 2)
            v = values[np.ix_(rows, cols)]
            w = np.broadcast_to(w_lat[rows][:, None], v.shape)
            ok = np.isfinite(v)
            if ok.any():
                out[i, j] = np.sum(w[ok] * v[ok]) / np.sum(w[ok])
    return out


def test_the_files_are_the_providers_formats():
    assert [file_kind(str(p)) for p in (CCI[0], GLDAS, ERA5)] == ["netcdf4", "netcdf4", "netcdf3"]
    with netCDF4.Dataset(ERA5) as ds:
        assert ds.file_format == "NETCDF3_64BIT_OFFSET" and ds["swvl1"].dtype == np.int16
        assert "grib_to_netcdf" in ds.history and "scale_factor" in ds["swvl1"].ncattrs()
    with netCDF4.Dataset(CCI[0]) as ds:
        assert ds.product_version == "04.2" and ds["lat"][0] > ds["lat"][-1]  # latitude descending


def test_esa_cci_area_weighted_means_flags_uncertainty_and_times():
    s = read_series("esacci", [str(p) for p in CCI], CONUS)
    assert s.times.size == 5 and s.calendar == "standard"
    lat, lon = _coords(CCI[0])
    for k, path in enumerate(CCI):
        sm, _ = _raw(path, "sm")
        flag, _ = _raw(path, "flag")
        err, _ = _raw(path, "sm_uncertainty")
        t0, _ = _raw(path, "t0")
        sm = np.where(flag == 0, sm, np.nan)[0]  # flag 0: no inconsistency detected
        np.testing.assert_allclose(
            s.fields["sm"][k], _hand_mean(sm, lat, lon, CONUS, 0.125), rtol=1e-12, atol=1e-14
        )
        np.testing.assert_allclose(s.fields["sm_error"][k], _hand_mean(err[0], lat, lon, CONUS, 0.125), rtol=1e-12,
                                   atol=1e-14)  # fmt: skip
        # the record's time: the mean observation time t0 of the valid cells in the domain
        box = (lat > 25) & (lat < 50), (lon > -125) & (lon < -65)
        t = t0[0][np.ix_(*box)]
        use = np.isfinite(t) & np.isfinite(sm[np.ix_(*box)])
        when = cftime.num2date(t[use].mean(), "days since 1970-01-01 00:00:00", "standard")
        assert abs(cftime.date2num(when, "seconds since 1970-01-01") - s.times[k]) < 1e-3
        assert when.day == 27 + k  # the file's day
    valid = np.isfinite(s.fields["sm"]).sum(axis=(1, 2))
    assert np.all(valid > 200)  # winter: part of CONUS frozen or snow-covered, the rest observed
    assert 0.0 <= np.nanmin(s.fields["sm"]) and np.nanmax(s.fields["sm"]) <= 1.0


def test_gldas_subset_area_weighted_layers_and_the_missing_layer(recwarn):
    s = read_series("gldas", str(GLDAS), CONUS)
    lat, lon = _coords(GLDAS)
    for k, (name, thickness) in enumerate((("SoilMoi0_10cm_inst", 0.1), ("SoilMoi10_40cm_inst", 0.3))):
        kg_m2, _ = _raw(GLDAS, name)
        expect = _hand_mean(kg_m2[0] / (1000.0 * thickness), lat, lon, CONUS, 0.125)
        np.testing.assert_allclose(s.fields["sm"][0, k], expect, rtol=1e-12, atol=1e-14)
    assert np.all(np.isnan(s.fields["sm"][:, 2]))  # the subset has no 40-100 cm layer
    assert [str(w.message) for w in recwarn if "lack" in str(w.message)] == [
        "GLDAS files lack SoilMoi40_100cm_inst (40-100 cm): those layers are NaN"
    ]
    when = s.dates()[0]
    assert (when.year, when.month, when.day, when.hour) == (
        2016,
        1,
        1,
        3,
    )  # " minutes since 2000-01-01 03:00:00"
    land = np.isfinite(s.fields["sm"][0, 0])
    assert 600 < land.sum() < CONUS.ncol  # the fill over the oceans stays out


def _overlap(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


def test_old_cds_era5_packed_netcdf3_land_only_means():
    """swvl1 of the real 5-deg file on 10-deg cells: each model cell overlaps 3 x 3 source cells partly; the
    exact-overlap means of the land cells (lsm >= 0.5), computed cell by cell here."""
    grid = Grid.regular(lat=(20.0, 50.0), lon=(-130.0, -60.0), res=10.0, land_mask="all")
    with NcFile(str(ERA5)) as src:
        rg = Regridder(ERA5LAND_SM.grid(src), grid, src.label)
        rec = ERA5LAND_SM.read(src, rg.rows, rg.cols)
        got = rg.apply(rec.fields["swvl1"])
    swvl1, _ = _raw(ERA5, "swvl1")  # netCDF4-python's own unpacking of the int16 values
    lsm, _ = _raw(ERA5, "lsm")
    lat, lon = _coords(ERA5, "latitude", "longitude")
    assert got.shape == (4,) + grid.shape and [t.hour for t in rec.times] == [0, 6, 12, 18]
    for t in range(4):
        expect = np.full(grid.shape, np.nan)
        for i, clat in enumerate(grid.lat):
            for j, clon in enumerate(grid.lon):
                num = den = 0.0
                for a, la in enumerate(lat):
                    s0, s1 = max(la - 2.5, -90.0), min(la + 2.5, 90.0)
                    dy = _overlap(np.sin(np.radians(s0)), np.sin(np.radians(s1)),
                                  np.sin(np.radians(clat - 5.0)), np.sin(np.radians(clat + 5.0)))  # fmt: skip
                    for b, lo in enumerate(lon):
                        dx = _overlap(lo - 2.5, lo + 2.5, clon + 360.0 - 5.0, clon + 360.0 + 5.0)
                        v = swvl1[t, a, b]
                        if dy * dx > 0 and lsm[t, a, b] >= 0.5 and np.isfinite(v):
                            num += dy * dx * v
                            den += dy * dx
                if den > 0:
                    expect[i, j] = num / den
        np.testing.assert_allclose(got[t], expect, rtol=1e-12, atol=1e-14)
    assert np.isfinite(got).sum() >= 20 and np.isnan(got[:, 0, 0]).all()  # 20-30 N, 130-120 W: sea only


def test_old_cds_era5_as_the_era5land_reference_is_refused_in_one_line(tmp_path, capsys):
    """The file holds swvl1 only: no reference layer can be made (0-10 cm needs swvl2 too): exit 2."""
    out = tmp_path / "o.nc"
    rc = data_main(
        ["regrid", "--product", "era5land", "--files", str(ERA5), "--preset", "conus", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists() and len(err) == 1
    assert "the files hold swvl1 only; every reference layer needs swvl2 or swvl3 too" in err[0]


@pytest.mark.timeout(900)
def test_the_cycle_assimilates_the_real_esa_cci_days_over_conus(tmp_path, monkeypatch):
    from landimg.data import inputs
    from landimg.experiment.config import load_config
    from landimg.experiment.loop import run

    made = []
    original = inputs.ProductObservations.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(inputs.ProductObservations, "__init__", spy)
    cfg = load_config(None, [
        "domain.preset=\"conus\"", "experiment.start=\"2016-12-27\"", "experiment.days=5", "experiment.spinup_days=2",
        "ensemble.members=4", "ensemble.spread_days=0", 'analysis.methods=["openloop", "curvelet_enkf"]', "output.plots=false",
        'obs.product="esacci"', f'obs.files="{DATA}/esacci/ESACCI-SOILMOISTURE-*.nc"', "obs.cdf_match=true",
    ])  # fmt: skip
    run(cfg, tmp_path / "R", progress=False)
    obs = made[0]
    assert obs.times.size == 5 and np.all(obs.used == 1)  # each real day entered exactly one analysis
    assert np.array_equal(np.floor(obs.times / 86400.0), np.arange(5))
    summary = json.loads((tmp_path / "R" / "summary.json").read_text())
    assert summary["obs_per_day"] > 50  # land cells observed by ESA CCI and not frozen in the nature run
    import xarray as xr

    with xr.open_dataset(tmp_path / "R" / "analysis.nc") as ds:
        y = ds["sm_obs"].values
        assert np.all(np.isfinite(y).sum(axis=(1, 2)) > 0)  # every day assimilated real retrievals
        assert np.nanmax(np.abs(ds["increment_curvelet_enkf"].values)) > 0.0


def test_the_lsm_changes_1040_of_14140_land_cells():
    """The issue's measurement, now pinned: the real 5-deg ERA5 file on the global1deg preset. Of the land
    cells that hold an ERA5 land cell (14,140 of 15,483), 1,040 differed by more than 0.05 m3/m3 when ERA5's
    values over the sea (about 0) entered their means."""
    from landimg import units
    from landimg.data.cli import build_grid
    from landimg.data.reading import read_var

    grid = build_grid("global1deg", None, None)
    with NcFile(str(ERA5)) as src:
        rg = Regridder(ERA5LAND_SM.grid(src), grid, src.label)
        masked = rg.apply(ERA5LAND_SM.read(src, rg.rows, rg.cols).fields["swvl1"])[0][grid.land]
        unmasked = rg.apply(read_var(src, "swvl1", rg.rows, rg.cols, units.SOIL_MOISTURE))[0][grid.land]
    covered = np.isfinite(masked)
    assert (grid.land.sum(), covered.sum()) == (15483, 14140)
    assert int(np.sum(np.abs(masked - unmasked)[covered] > 0.05)) == 1040
