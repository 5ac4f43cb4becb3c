"""Dimensions by name (issue 19): observation, forcing, soil and station files read the same whatever the
order of their dimensions (transposed), the names of their coordinates (renamed; found by CF attributes or
usual names) and the direction of their axes (descending latitude, longitude 0..360); a file whose
dimensions cannot be identified is refused in one line. The product readers too.

Each layout is written from one field that differs in every cell (a rotated or mirrored read could not
match), and compared with the canonical (time, lat, lon) file's values exactly."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pytest
from landimg import Grid, units
from landimg.data.common import DataError
from landimg.data.series import read_series
from landimg.experiment.domain import read_field_file
from landimg.experiment.forcing import FileForcing
from landimg.experiment.obs import FileObservations, read_stations_file

#: A square grid: a transposed file read by position would be read rotated without an error.
GRID = Grid.regular(lat=(34.0, 40.0), lon=(-100.0, -94.0), res=0.5, land_mask="all")
HOURS = np.arange(-24.0, 27.0, 3.0)  # a day of spin-up and a day, 3-hourly

#: name -> how the canonical layout is changed: (dimension order, renaming, reversed latitude, lon 0..360)
LAYOUTS = {
    "canonical": (("time", "lat", "lon"), {}, False, False),
    "time, lon, lat": (("time", "lon", "lat"), {}, False, False),
    "lat, lon, time": (("lat", "lon", "time"), {}, False, False),
    "lon, time, lat": (("lon", "time", "lat"), {}, False, False),
    "latitude/longitude/valid_time": (("time", "lat", "lon"), {"lat": "latitude", "lon": "longitude",
                                                              "time": "valid_time"}, False, False),
    "CF attributes only (y, x, t)": (("time", "lon", "lat"), {"lat": "y", "lon": "x", "time": "t"}, False, False),
    "descending latitude": (("time", "lat", "lon"), {}, True, False),
    "longitude 0..360": (("time", "lat", "lon"), {}, False, True),
    "all at once": (("lon", "lat", "time"), {"lat": "nav_lat", "lon": "nav_lon"}, True, True),
}  # fmt: skip


def _axes(descending: bool, east: bool, pad: int = 2):
    """File coordinates covering the grid with a margin; latitude descending / longitude 0..360 if asked."""
    lat = np.arange(GRID.lat[0] - pad * 0.5, GRID.lat[-1] + pad * 0.5 + 0.01, 0.5)
    lon = np.arange(GRID.lon[0] - pad * 0.5, GRID.lon[-1] + pad * 0.5 + 0.01, 0.5)
    if descending:
        lat = lat[::-1]
    if east:
        lon = np.sort(lon % 360.0)
    return lat, lon


def _field(lat, lon, t, scale=1.0, offset=0.0):
    """A field (time, lat, lon) different in every cell and record."""
    la, lo = np.meshgrid(lat, ((lon + 180.0) % 360.0) - 180.0, indexing="ij")
    return offset + scale * (
        0.2 + 0.01 * (la - 34.0) + 0.002 * (lo + 100.0) + 0.001 * np.asarray(t)[:, None, None]
    )


def _write_grid_file(path, layout, variables, times, time_units="hours since 2021-05-01 00:00"):
    """variables: name -> (function (lat, lon, t) -> (time, lat, lon) array, units or None)."""
    order, rename, descending, east = LAYOUTS[layout]
    lat, lon = _axes(descending, east)
    name = {r: rename.get(r, r) for r in ("time", "lat", "lon")}
    cf = {
        "lat": {"units": "degrees_north", "standard_name": "latitude"},
        "lon": {"units": "degrees_east", "standard_name": "longitude"},
        "time": {"units": time_units, "standard_name": "time"},
    }
    axis = {"lat": lat, "lon": lon, "time": np.asarray(times, float)}
    with netCDF4.Dataset(path, "w") as ds:
        for role in ("time", "lat", "lon"):
            ds.createDimension(name[role], axis[role].size)
            v = ds.createVariable(name[role], "f8", (name[role],))
            v[:] = axis[role]
            v.setncatts(cf[role])
        for var, (fn, unit) in variables.items():
            data = fn(lat, lon, np.asarray(times, float))  # (time, lat, lon)
            perm = [("time", "lat", "lon").index(r) for r in order]
            v = ds.createVariable(var, "f8", tuple(name[r] for r in order))
            if unit is not None:
                v.units = unit
            v[:] = np.transpose(data, perm)
    return path


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_observation_file_layouts_read_the_same(tmp_path, layout):
    variables = {"sm": (lambda la, lo, t: _field(la, lo, t), "m3 m-3"),
                 "sm_error": (lambda la, lo, t: _field(la, lo, t, 0.1), "m3 m-3")}  # fmt: skip
    ref = FileObservations(str(_write_grid_file(tmp_path / "ref.nc", "canonical", variables, [6.0, 30.0])), GRID,
                           "2021-05-01")  # fmt: skip
    got = FileObservations(str(_write_grid_file(tmp_path / "x.nc", layout, variables, [6.0, 30.0])), GRID,
                           "2021-05-01")  # fmt: skip
    for day in (0, 1):
        (a, ea), (b, eb) = ref.observe(day), got.observe(day)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ea, eb)
    # the values are the field at the grid's own cells: not rotated, not mirrored
    np.testing.assert_allclose(got.observe(1)[0], _field(GRID.lat, GRID.lon, [30.0])[0], rtol=0, atol=1e-12)


_FORCING = {
    "Tair": (lambda la, lo, t: _field(la, lo, t, 100.0, 260.0), "K"),
    "Qair": (lambda la, lo, t: _field(la, lo, t, 0.01), "kg kg-1"),
    "PSurf": (lambda la, lo, t: _field(la, lo, t, 1000.0, 95000.0), "Pa"),
    "Rainf": (lambda la, lo, t: _field(la, lo, t, 1e-4), "kg m-2 s-1"),
    "Wind": (lambda la, lo, t: _field(la, lo, t, 10.0), "m s-1"),
    "SWdown": (lambda la, lo, t: _field(la, lo, t, 500.0), "W m-2"),
    "LWdown": (lambda la, lo, t: _field(la, lo, t, 500.0), "W m-2"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_forcing_file_layouts_read_the_same(tmp_path, layout):
    ref = FileForcing(
        str(_write_grid_file(tmp_path / "ref.nc", "canonical", _FORCING, HOURS)), GRID, "2021-05-01"
    )
    got = FileForcing(str(_write_grid_file(tmp_path / "x.nc", layout, _FORCING, HOURS)), GRID, "2021-05-01")
    got.check_values(-86400.0, 86400.0)
    lat, lon = GRID.column_latlon()
    for t in (-86400.0, 0.0, 3600.0 * 7, 86400.0):
        a, b = ref(t), got(t)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        rec = int(np.searchsorted(HOURS, t / 3600.0, side="right")) - 1
        expect = _field(lat, lon, [HOURS[rec]], 100.0, 260.0)[0].diagonal()  # at each column's own cell
        np.testing.assert_allclose(b["tair"], expect, rtol=0, atol=1e-9)


def _soil(lat, lon, t):
    return _field(lat, lon, t, 100.0, 10.0)  # 30..52 %


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_soil_file_layouts_read_the_same(tmp_path, layout):
    soil = {"sand": (_soil, "percent"), "clay": (lambda la, lo, t: _soil(la, lo, t) / 3.0, "percent")}
    ref = read_field_file(str(_write_grid_file(tmp_path / "r.nc", "canonical", soil, [0.0])), GRID, ("sand", "clay"),
                          units.TEXTURE)  # fmt: skip
    got = read_field_file(str(_write_grid_file(tmp_path / "x.nc", layout, soil, [0.0])), GRID, ("sand", "clay"),
                          units.TEXTURE)  # fmt: skip
    for name in ("sand", "clay"):
        np.testing.assert_array_equal(ref[name], got[name])
    lat, lon = GRID.column_latlon()
    np.testing.assert_allclose(got["sand"], _soil(lat, lon, [0.0])[0].diagonal(), rtol=0, atol=1e-9)


def test_soil_file_without_a_time_dimension(tmp_path):
    lat, lon = _axes(True, True)
    path = tmp_path / "s.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("longitude", lon.size)
        ds.createDimension("latitude", lat.size)
        ds.createVariable("latitude", "f8", ("latitude",))[:] = lat
        ds.createVariable("longitude", "f8", ("longitude",))[:] = lon
        ds.createVariable("sand", "f8", ("longitude", "latitude"))[:] = _soil(lat, lon, [0.0])[0].T
    got = read_field_file(str(path), GRID, ("sand",), units.TEXTURE)["sand"]
    glat, glon = GRID.column_latlon()
    np.testing.assert_allclose(got, _soil(glat, glon, [0.0])[0].diagonal(), rtol=0, atol=1e-9)


def _stations_file(path, order=("time", "station"), names=("lat", "lon", "time"), station_dim="station"):
    slat = np.array([35.2, 36.7, 39.1])
    slon = np.array([-99.3, 263.4, -95.2])  # the second in 0..360
    sm = np.array([[0.21, 0.32, 0.13], [0.22, 0.31, 0.14], [0.25, 0.30, 0.16]])  # (time, station)
    lat_n, lon_n, time_n = names
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension(time_n, 3)
        ds.createDimension(station_dim, 3)
        t = ds.createVariable(time_n, "f8", (time_n,))
        t.units = "hours since 2021-05-01 00:00"
        t[:] = [6.0, 18.0, 30.0]
        la = ds.createVariable(lat_n, "f8", (station_dim,))
        la.units = "degrees_north"
        la[:] = slat
        lo = ds.createVariable(lon_n, "f8", (station_dim,))
        lo.units = "degrees_east"
        lo[:] = slon
        dims = tuple(time_n if d == "time" else station_dim for d in order)
        v = ds.createVariable("sm", "f8", dims)
        v.units = "m3 m-3"
        v[:] = sm if order == ("time", "station") else sm.T
    return path


def test_station_file_layouts_read_the_same(tmp_path):
    ref_cols, ref = read_stations_file(str(_stations_file(tmp_path / "a.nc")), GRID, "2021-05-01", 2)
    np.testing.assert_allclose(ref, [[0.215, 0.315, 0.135], [0.25, 0.30, 0.16]])
    variants = {
        "station, time": {"order": ("station", "time")},
        "latitude/longitude/valid_time, dimension id": {
            "names": ("latitude", "longitude", "valid_time"),
            "station_dim": "id",
        },
        "CF units only": {"names": ("y", "x", "t"), "order": ("station", "time"), "station_dim": "n"},
    }
    for name, kw in variants.items():
        cols, got = read_stations_file(str(_stations_file(tmp_path / "b.nc", **kw)), GRID, "2021-05-01", 2)
        np.testing.assert_array_equal(cols, ref_cols, err_msg=name)
        np.testing.assert_array_equal(got, ref, err_msg=name)


def test_unidentifiable_dimensions_are_refused_in_one_line(tmp_path):
    path = tmp_path / "obs.nc"
    with netCDF4.Dataset(path, "w") as ds:  # coordinates with neither CF attributes nor usual names
        for d, n in (("a", 2), ("b", 20), ("c", 20)):
            ds.createDimension(d, n)
            ds.createVariable(d, "f8", (d,))[:] = np.arange(n)
        ds.createVariable("sm", "f8", ("a", "b", "c"))[:] = 0.2
    with pytest.raises(DataError, match=r"obs.nc': variable 'sm' has dimensions \('a', 'b', 'c'\): cannot tell which "
                                        r"is time, latitude, longitude") as err:  # fmt: skip
        FileObservations(str(path), GRID, "2021-05-01")
    assert len(str(err.value).splitlines()) == 1
    path2 = _write_grid_file(tmp_path / "extra.nc", "canonical", {"sm": (lambda la, lo, t: _field(la, lo, t), None)},
                             [6.0, 30.0])  # fmt: skip
    with netCDF4.Dataset(path2, "a") as ds:
        ds.createDimension("member", 3)
        ds.createVariable("sm_error", "f8", ("member", "time", "lat", "lon"))[:] = 0.05
    fo = FileObservations(str(path2), GRID, "2021-05-01")
    with pytest.raises(DataError, match=r"variable 'sm_error' has a dimension 'member' of length 3"):
        fo.observe(0)
    path3 = tmp_path / "st.nc"
    with netCDF4.Dataset(path3, "w") as ds:  # latitude along one dimension, longitude along another
        ds.createDimension("time", 1)
        ds.createDimension("p", 2)
        ds.createDimension("q", 2)
        ds.createVariable("time", "f8", ("time",)).units = "days since 2021-05-01"
        ds.createVariable("lat", "f8", ("p",))[:] = [35.0, 36.0]
        ds.createVariable("lon", "f8", ("q",))[:] = [-99.0, -98.0]
        ds.createVariable("sm", "f8", ("time", "p"))[:] = 0.2
    with pytest.raises(DataError, match=r"variable 'sm' has dimensions \('time', 'p'\): cannot tell which is "
                                        r"latitude and longitude"):  # fmt: skip
        read_stations_file(str(path3), GRID, "2021-05-01", 1)


def _gridded(path, layout):
    variables = {"sm": (lambda la, lo, t: _field(la, lo, t), "m3 m-3")}
    return _write_grid_file(path, layout, variables, [12.0, 36.0], time_units="hours since 2021-05-01 00:00")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_product_reader_layouts_read_the_same(tmp_path, layout):
    """The products' path (regridding by exact area overlap) takes the same layouts."""
    ref = read_series("gridded", str(_gridded(tmp_path / "ref.nc", "canonical")), GRID)
    got = read_series("gridded", str(_gridded(tmp_path / "x.nc", layout)), GRID)
    np.testing.assert_array_equal(ref.times, got.times)
    np.testing.assert_allclose(got.fields["sm"], ref.fields["sm"], rtol=0, atol=1e-13)
    # the file's 0.5 deg cells coincide with the model's: the regridded value is the cell's own
    np.testing.assert_allclose(got.fields["sm"][0], _field(GRID.lat, GRID.lon, [12.0])[0], rtol=0, atol=1e-12)


def test_era5_with_expver_takes_the_valid_value_of_each_record(tmp_path):
    """Old-CDS ERA5 files mixing ERA5 and ERA5T carry an ``expver`` dimension: each record valid in one."""
    from landimg.data.fixtures_forcing import era5_file

    times = [dt.datetime(2021, 5, 1, h) for h in range(1, 5)]
    plain = era5_file(str(tmp_path / "plain.nc"), times, (33.0, 41.0, -101.0, -93.0), res=0.25, land=True,
                      variables=["swvl1", "swvl2", "swvl3"])  # fmt: skip
    mixed = tmp_path / "expver.nc"
    with netCDF4.Dataset(plain) as src, netCDF4.Dataset(mixed, "w") as dst:
        tdim = next(d for d in src.dimensions if "time" in d)
        for d, n in src.dimensions.items():
            dst.createDimension(d, len(n))
        dst.createDimension("expver", 2)
        for name, v in src.variables.items():
            if v.ndim == 3:
                out = dst.createVariable(
                    name, "f4", (tdim, "expver") + v.dimensions[1:], fill_value=np.float32(-32767)
                )
                data = np.full((v.shape[0], 2) + v.shape[1:], -32767.0, np.float32)
                data[:2, 0] = v[:2]  # ERA5 for the first records, ERA5T for the last
                data[2:, 1] = v[2:]
                out[:] = data
            elif v.ndim == 1:
                out = dst.createVariable(name, v.dtype, v.dimensions)
                out[:] = v[:]
            else:
                continue
            out.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
    a = read_series("era5land", str(plain), GRID)
    b = read_series("era5land", str(mixed), GRID)
    np.testing.assert_allclose(b.fields["sm"], a.fields["sm"], rtol=0, atol=1e-6)
