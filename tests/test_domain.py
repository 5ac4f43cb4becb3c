"""Domain: synthetic soil/vegetation fields, degradation, user files."""

import numpy as np
import pytest
from landimg import Grid
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_domain, read_field_file
from landimg.random_fields import gaussian_random_field


@pytest.fixture(scope="module")
def small():
    land = np.ones((20, 30), dtype=bool)
    land[:3, :5] = False
    g = Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -85.0), res=0.5, land_mask=land)
    return g, load_config(None, ["domain.texture_corr_km=300", "domain.texture_error_pct=8"])


def test_fields_ranges_structure_and_determinism(small):
    g, cfg = small
    d = build_domain(cfg, g)
    for a in (d.sand_true, d.clay_true, d.sand_est, d.clay_est, d.aridity, d.igbp):
        assert a.shape == (g.ncol,)
    assert d.sand_true.min() >= 5 and d.sand_true.max() <= 92 and d.clay_true.min() >= 3
    assert np.all(d.sand_true + d.clay_true <= 97.0 + 1e-9)
    assert set(np.unique(d.igbp)) <= set(range(1, 18)) and len(np.unique(d.igbp)) >= 2
    # the ensemble's texture is a degraded estimate: correlated with, but not equal to, the truth
    c = np.corrcoef(d.sand_true, d.sand_est)[0, 1]
    assert 0.5 < c < 0.999
    # arid -> sandier
    assert np.corrcoef(d.aridity, d.sand_true)[0, 1] > 0.5
    # spatially smooth: neighbours far more alike than random pairs
    img = g.to_image(d.sand_true)
    dn = np.nanmean(np.abs(np.diff(img, axis=1)))
    assert dn < 0.5 * np.nanmean(np.abs(d.sand_true - np.roll(d.sand_true, 97)))
    d2 = build_domain(cfg, g)
    assert np.array_equal(d.sand_true, d2.sand_true) and np.array_equal(d.igbp, d2.igbp)
    d3 = build_domain(load_config(None, ["experiment.seed=7", "domain.texture_error_pct=8"]), g)
    assert not np.array_equal(d.sand_true, d3.sand_true)


def test_grf_unit_variance_and_correlation_length(small):
    g, _ = small
    f = gaussian_random_field(g, 200.0, np.random.default_rng(0), n=8)
    assert f.shape == (8,) + g.shape
    assert np.allclose(f.mean(axis=(1, 2)), 0.0) and np.allclose(f.std(axis=(1, 2)), 1.0)
    lag1 = np.mean(f[:, :, 1:] * f[:, :, :-1])
    assert lag1 > 0.7  # 200 km correlation on ~50 km cells
    with pytest.raises(ValueError, match="corr_km"):
        gaussian_random_field(g, 0.0, np.random.default_rng(0))


def test_user_soil_file(small, tmp_path):
    import netCDF4

    g, _ = small
    path = tmp_path / "soil.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("lat", 40)
        ds.createDimension("lon", 60)
        ds.createVariable("lat", "f8", ("lat",))[:] = 29.875 + 0.25 * np.arange(40)
        ds.createVariable("lon", "f8", ("lon",))[:] = 260.125 + 0.25 * np.arange(60)  # 0..360 convention
        lon2 = np.broadcast_to(260.125 + 0.25 * np.arange(60), (40, 60))
        ds.createVariable("sand", "f8", ("lat", "lon"))[:] = lon2 - 230.0  # 30..45 %
        ds.createVariable("clay", "f8", ("lat", "lon"))[:] = 20.0
    d = build_domain(load_config(None, [f'domain.soil_file="{path}"']), g)
    _, lon = g.column_latlon()
    assert np.allclose(d.sand_true, lon + 360.0 - 230.0, atol=0.13)
    assert np.allclose(d.clay_true, 20.0)
    with pytest.raises(ValueError, match="no variable 'silt'"):
        read_field_file(str(path), g, ("silt",))


def test_field_file_with_unidentifiable_dimensions_is_refused(small, tmp_path):
    import netCDF4

    g, _ = small
    path = tmp_path / "soil_t.nc"
    with netCDF4.Dataset(path, "w") as ds:  # coordinates neither named nor described as lat/lon
        ds.createDimension("a", 40)
        ds.createDimension("b", 60)
        ds.createVariable("a", "f8", ("a",))[:] = 29.875 + 0.25 * np.arange(40)
        ds.createVariable("b", "f8", ("b",))[:] = 260.125 + 0.25 * np.arange(60)
        ds.createVariable("sand", "f8", ("b", "a"))[:] = 40.0
    with pytest.raises(ValueError, match="no latitude coordinate variable found"):
        read_field_file(str(path), g, ("sand",))
