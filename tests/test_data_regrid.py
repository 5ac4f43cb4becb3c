"""Conservative regridding of products onto the model grid: exact area-weighted means."""

from __future__ import annotations

import datetime as dt
import os

import netCDF4
import numpy as np
import pytest
from landimg import Grid
from landimg.data import fixtures as fx
from landimg.data.cli import main
from landimg.data.regrid import Regridder, ease2_source, latlon_source, overlap_lengths


def hashed(name, lat, lon, when):
    """Pseudo-random soil moisture in [0.1, 0.4) per cell centre (independent of time)."""
    x = np.sin(np.asarray(lat) * 12.9898 + np.asarray(lon) * 78.233) * 43758.5453
    return 0.1 + 0.3 * (x - np.floor(x))


def area_mean(lat_edges, lon_cells, values):
    """Area-weighted mean of cells between latitude edges (all equal longitude widths)."""
    w = np.diff(np.sin(np.radians(lat_edges)))
    return float(np.sum(w[:, None] * values) / (np.sum(w) * values.shape[1]))


def test_overlap_lengths_both_orders():
    src = np.array([0.0, 1.0, 2.0, 3.0])
    dst = np.array([0.5, 2.5])
    np.testing.assert_allclose(overlap_lengths(src, dst), [[0.5, 1.0, 0.5]])
    np.testing.assert_allclose(overlap_lengths(src[::-1], dst), [[0.5, 1.0, 0.5]])


@pytest.fixture(scope="module")
def gldas_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gldas")
    region = (30.0, 44.0, -104.0, -90.0)
    for h in (0, 3):
        fx.gldas_file(
            str(d),
            dt.datetime(2021, 5, 1, h),
            region=region,
            field=hashed,
            variables=["SoilMoi0_10cm_inst", "SoilMoi10_40cm_inst", "SoilMoi40_100cm_inst"],
        )
    return d


def test_regrid_quarter_degree_reference_equals_area_mean_of_16_cells(gldas_dir, tmp_path):
    out = tmp_path / "gldas.nc"
    rc = main(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(gldas_dir / "GLDAS_*.nc4"),
            "--bbox",
            "35",
            "40",
            "-100",
            "-94",
            "--res",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    with netCDF4.Dataset(out) as ds:
        sm = np.ma.filled(ds["sm"][:], np.nan)
        assert ds["sm"].units == "m3 m-3"
        assert sm.shape == (2, 3, 5, 6)
        np.testing.assert_allclose(ds["depth_bnds"][:], [[0.0, 0.1], [0.1, 0.4], [0.4, 1.0]])
        lat, lon = ds["lat"][:], ds["lon"][:]
    for iy, la in enumerate(lat):
        for ix, lo in enumerate(lon):
            edges = la - 0.5 + 0.25 * np.arange(5)
            cl = la - 0.5 + 0.125 + 0.25 * np.arange(4)
            co = lo - 0.5 + 0.125 + 0.25 * np.arange(4)
            # the fixture stores float32 kg m-2 values: reproduce that storage
            v = (hashed("", *np.meshgrid(cl, co, indexing="ij"), None) * 1000.0 * 0.1).astype(
                np.float32
            ) / 100.0
            assert abs(sm[0, 0, iy, ix] - area_mean(edges, co, v.astype(float))) < 1e-6


def test_regrid_uses_only_valid_source_cells():
    grid = Grid.regular(lat=(10.0, 12.0), lon=(20.0, 22.0), res=1.0, land_mask="all")
    src = latlon_source(10.0 + 0.125 + 0.25 * np.arange(8), 20.0 + 0.125 + 0.25 * np.arange(8), "mem")
    rg = Regridder(src, grid, "mem")
    v = np.arange(64, dtype=float).reshape(8, 8)
    v[1, 2] = np.nan
    got = rg.apply(v)[0, 0]
    w = np.diff(np.sin(np.radians(10.0 + 0.25 * np.arange(5))))[:, None] * np.ones((1, 4))
    ok = np.isfinite(v[:4, :4])
    v = v[:4, :4]
    assert got == pytest.approx(np.sum(w[ok] * v[ok]) / np.sum(w[ok]), abs=1e-12)
    full = np.arange(64, dtype=float).reshape(8, 8)
    full[1, 2] = np.nan
    assert np.isnan(rg.apply(full, min_coverage=1.0)[0, 0]) and np.isfinite(
        rg.apply(full, min_coverage=1.0)[1, 1]
    )


def test_coarser_source_gives_the_containing_cell():
    grid = Grid.regular(lat=(10.0, 12.0), lon=(20.0, 22.0), res=0.5, land_mask="all")
    src = latlon_source(np.array([9.5, 10.5, 11.5, 12.5]), np.array([19.5, 20.5, 21.5, 22.5]), "mem")
    rg = Regridder(src, grid, "mem")
    v = np.arange(16, dtype=float).reshape(4, 4)[rg.rows, rg.cols]
    out = rg.apply(v)
    np.testing.assert_allclose(out[:2, :2], v[0, 0])
    np.testing.assert_allclose(out[2:, 2:], v[1, 1])


def test_longitude_0_360_source_on_a_western_domain():
    grid = Grid.regular(lat=(10.0, 12.0), lon=(-100.0, -98.0), res=1.0, land_mask="all")
    lon = 0.125 + 0.25 * np.arange(1440)
    src = latlon_source(10.125 + 0.25 * np.arange(8), lon, "mem")
    rg = Regridder(src, grid, "mem")
    assert (rg.cols.start, rg.cols.stop) == (1040, 1048)  # 260 .. 262 degrees east
    v = np.tile(np.arange(8.0), (8, 1))
    np.testing.assert_allclose(rg.apply(v), [[1.5, 5.5], [1.5, 5.5]])


def test_ease2_exact_overlap_matches_subsampled_areas():
    """Each EASE cell split into 120 x 120 equal-area pieces assigned by their centres: the regridded
    mean must match the sub-sampled area-weighted mean to sampling accuracy."""
    from landimg.data.regrid import _EASE2_ORIGIN_X, _EASE2_ORIGIN_Y, EASE2
    from pyproj import Transformer

    grid = Grid.regular(lat=(36.0, 38.0), lon=(-99.0, -97.0), res=1.0, land_mask="all")
    rg = Regridder(ease2_source("M36"), grid, "mem")
    nr, nc = rg.window_shape
    rng = np.random.default_rng(3)
    v = rng.uniform(0.1, 0.4, (nr, nc))
    out = rg.apply(v)
    _, _, cell = EASE2["M36"]
    k = 120
    sub = (np.arange(k) + 0.5) / k
    ys = _EASE2_ORIGIN_Y - (rg.rows.start + np.arange(nr)[:, None] + sub[None, :]).ravel() * cell
    xs = _EASE2_ORIGIN_X + (rg.cols.start + np.arange(nc)[:, None] + sub[None, :]).ravel() * cell
    lon, lat = Transformer.from_crs("EPSG:6933", "EPSG:4326", always_xy=True).transform(*np.meshgrid(xs, ys))
    vals = np.repeat(np.repeat(v, k, axis=0), k, axis=1)
    for iy, la in enumerate(grid.lat):
        for ix, lo in enumerate(grid.lon):
            sel = (np.abs(lat - la) < 0.5) & (np.abs(lon - lo) < 0.5)
            assert out[iy, ix] == pytest.approx(vals[sel].mean(), abs=1.5e-4)


def test_regrid_refuses_a_domain_outside_the_files(gldas_dir, tmp_path, capsys):
    out = tmp_path / "x.nc"
    rc = main(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(gldas_dir / "GLDAS_*.nc4"),
            "--bbox",
            "45",
            "50",
            "-100",
            "-94",
            "--res",
            "1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "does not cover the model domain" in err and "not covered: latitudes 45 .. 50" in err
    assert "GLDAS_NOAH025_3H.A20210501.0000.021.nc4" in err
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
