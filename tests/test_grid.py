"""Grid: column <-> image mapping, presets and validation."""

import numpy as np
import pytest
from landimg import Grid


def test_conus_preset_has_real_coastline():
    g = Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0)
    assert g.shape == (25, 60)
    assert 1000 < g.ncol < 1150  # about 1,070 land cells
    # row 0 is the southernmost latitude; Pacific west of California is ocean, Kansas is land
    assert g.lat[0] < g.lat[-1]
    iy, ix = np.searchsorted(g.lat, 38.5), np.searchsorted(g.lon, -98.5)
    assert g.land[iy, ix]
    assert not g.land[np.searchsorted(g.lat, 35.5), np.searchsorted(g.lon, -124.5)]
    assert not g.periodic_lon


def test_global_grid_is_periodic():
    g = Grid.regular(lat=(-60.0, 90.0), lon=(-180.0, 180.0), res=1.0)
    assert g.shape == (150, 360) and g.periodic_lon
    assert 15000 < g.ncol < 16000


def test_to_image_to_columns_roundtrip_and_fill():
    rng = np.random.default_rng(1)
    land = rng.random((7, 11)) > 0.4
    g = Grid.regular(lat=(0.0, 7.0), lon=(10.0, 21.0), res=1.0, land_mask=land)
    values = rng.normal(size=(3, 2, g.ncol))
    image = g.to_image(values, fill=-9.0)
    assert image.shape == (3, 2, 7, 11)
    np.testing.assert_array_equal(image[..., ~land], -9.0)
    np.testing.assert_array_equal(g.to_columns(image), values)
    # column order is row-major over land cells
    flat = np.flatnonzero(land.ravel())
    np.testing.assert_array_equal(g.column_index, flat)


def test_distances_are_great_circle():
    g = Grid.regular(lat=(0.0, 2.0), lon=(0.0, 2.0), res=1.0, land_mask="all")
    d = g.column_distances_km(0)
    assert d[0] == 0.0
    # one degree of latitude ~ 111.2 km
    assert d[2] == pytest.approx(111.19, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lat=(0, 1.5), lon=(0, 2), res=1.0), "whole number"),
        (dict(lat=(10, 0), lon=(0, 2), res=1.0), "lat bounds"),
        (dict(lat=(0, 2), lon=(0, 2), res=-1.0), "res"),
        (dict(lat=(0, 2), lon=(0, 2), res=1.0, land_mask=np.zeros((2, 2), bool)), "no land"),
        (dict(lat=(0, 2), lon=(0, 2), res=1.0, land_mask=np.ones((3, 2), bool)), "shape"),
        (dict(lat=(0, 2), lon=(0, 2), res=1.0, land_mask="sea"), "land_mask"),
    ],
)
def test_bad_grids_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Grid.regular(**kwargs)


def test_wrong_shapes_raise():
    g = Grid.regular(lat=(0.0, 2.0), lon=(0.0, 3.0), res=1.0, land_mask="all")
    with pytest.raises(ValueError, match="ncol"):
        g.to_image(np.zeros(5))
    with pytest.raises(ValueError, match="trailing shape"):
        g.to_columns(np.zeros((3, 2)))


def test_nearest_file_indices_accepts_finer_and_coarser_files_and_refuses_other_regions():
    g = Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -90.0), res=1.0, land_mask="all")
    fine_lat, fine_lon = np.arange(30.05, 40.0, 0.1), np.arange(260.05, 270.0, 0.1)  # 0-360 longitudes
    iy, ix = g.nearest_file_indices(fine_lat, fine_lon)
    np.testing.assert_allclose(fine_lat[iy], g.lat, atol=0.051)
    np.testing.assert_allclose((fine_lon[ix] + 180) % 360 - 180, g.lon, atol=0.051)
    iy, ix = g.nearest_file_indices(np.arange(29.0, 42.0, 2.0), np.arange(-101.0, -88.0, 2.0))
    assert iy.shape == (10,) and ix.shape == (10,)
    with pytest.raises(ValueError, match="does not cover the model grid in latitude"):
        g.nearest_file_indices(np.arange(45.5, 60.0), np.arange(-99.5, -90.0), source="x.nc")
    with pytest.raises(ValueError, match="x.nc: does not cover the model grid in longitude"):
        g.nearest_file_indices(np.arange(30.5, 40.0), np.arange(-99.5, -95.0), source="x.nc")
