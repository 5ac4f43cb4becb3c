"""Statistics and reproducibility of the forcing perturbations (landimg.ensemble.perturb)."""

import numpy as np
import pytest
from landimg import Grid
from landimg.ensemble.perturb import (
    ForcingPerturbation,
    ForcingPerturber,
)


@pytest.fixture(scope="module")
def grid():
    return Grid.regular(lat=(0.0, 16.0), lon=(0.0, 32.0), res=0.25, land_mask="all")


def _perturber(grid, nmem=120, **kw):
    cfg = ForcingPerturbation(**kw)
    return ForcingPerturber(cfg, grid, range(nmem), seed=7)


def test_marginal_statistics(grid):
    p = _perturber(grid)
    forcing = {
        "precip": np.full(grid.ncol, 2e-4),
        "swdown": np.full(grid.ncol, 400.0),
        "lwdown": np.full(grid.ncol, 300.0),
        "tair": np.full(grid.ncol, 290.0),
        "wind": np.full(grid.ncol, 3.0),
    }
    out = p.apply(forcing)
    assert out["precip"].shape == (grid.ncol, 120) and out["precip"].flags.f_contiguous
    f = out["precip"] / 2e-4
    assert abs(f.mean() - 1.0) < 0.03 and abs(f.std() - 0.5) < 0.04
    assert f.min() > 0
    f = out["swdown"] / 400.0
    assert abs(f.mean() - 1.0) < 0.02 and abs(f.std() - 0.3) < 0.025
    d = out["lwdown"] - 300.0
    assert abs(d.mean()) < 1.0 and abs(d.std() - 20.0) < 1.0
    d = out["tair"] - 290.0
    assert abs(d.mean()) < 0.05 and abs(d.std() - 1.0) < 0.05
    np.testing.assert_array_equal(out["wind"], 3.0)


def test_lag1_autocorrelation(grid):
    p = _perturber(grid, nmem=60, tau_hours=24.0)
    z0 = p.z.copy()
    p.advance(6 * 3600.0)
    r = np.corrcoef(z0.ravel(), p.z.ravel())[0, 1]
    assert abs(r - np.exp(-0.25)) < 0.01
    assert abs(p.z.std() - 1.0) < 0.02  # stationary variance kept


def test_spatial_and_cross_correlation(grid):
    dy, _ = grid.cell_size_km()
    length = 4 * dy  # exactly 4 cells north-south
    p = _perturber(grid, nmem=120, length_km=length)
    z = p.z.reshape(120, 4, *grid.shape)  # all-land grid: columns are the full image
    a, b = z[..., :-4, :], z[..., 4:, :]
    r = np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b))
    assert abs(r - np.exp(-1.0)) < 0.04  # e^-1 at L (landimg.random_fields convention)
    a, b = z[..., :-12, :], z[..., 12:, :]  # 3 L: exp(-9), independent
    assert abs(np.mean(a * b)) < 0.05
    cross = np.corrcoef(z.transpose(1, 0, 2, 3).reshape(4, -1))
    np.testing.assert_allclose(cross, np.asarray(p.config.corr), atol=0.04)


def test_member_streams_independent_of_layout(grid):
    full = _perturber(grid, nmem=5)
    part = ForcingPerturber(full.config, grid, [3, 4], seed=7)
    np.testing.assert_array_equal(part.z, full.z[3:5])
    full.advance(3600.0)
    part.advance(3600.0)
    np.testing.assert_array_equal(part.z, full.z[3:5])


def test_state_roundtrip_is_bitwise(grid):
    p = _perturber(grid, nmem=3)
    p.advance(3600.0)
    state = p.get_state()
    p.advance(3600.0)
    ref = p.z.copy()
    q = _perturber(grid, nmem=3)
    q.set_state(state)
    q.advance(3600.0)
    np.testing.assert_array_equal(q.z, ref)


def test_bad_config():
    with pytest.raises(ValueError, match="corr"):
        ForcingPerturbation(corr=((1, 0.99, 0, 0), (0.99, 1, -0.99, 0), (0, -0.99, 1, 0), (0, 0, 0, 1)))
    with pytest.raises(ValueError, match="tau_hours"):
        ForcingPerturbation(tau_hours=0.0)


def test_persistent_rain_error(grid):
    """The optional persistent rain error: an extra slow, large-scale AR(1) field; off = unchanged."""
    off = _perturber(grid, nmem=4)
    assert off.z.shape[1] == 4
    dy, _ = grid.cell_size_km()
    p = _perturber(grid, nmem=120, rain_error_std=0.6, rain_error_tau_days=10.0, rain_error_km=8 * dy)
    assert p.z.shape == (120, 5, grid.ncol)
    np.testing.assert_array_equal(p.z[:4, :4], off.z)  # the fast fields are drawn first: unchanged start
    z0 = p.z.copy()
    p.advance(86400.0)
    r_slow = np.corrcoef(z0[:, 4].ravel(), p.z[:, 4].ravel())[0, 1]
    r_fast = np.corrcoef(z0[:, 0].ravel(), p.z[:, 0].ravel())[0, 1]
    assert abs(r_slow - np.exp(-0.1)) < 0.01 and abs(r_fast - np.exp(-1.0)) < 0.02
    z = p.z[:, 4].reshape(120, *grid.shape)
    a, b = z[:, :-8, :], z[:, 8:, :]  # one correlation length apart
    assert abs(np.mean(a * b) / np.mean(z * z) - np.exp(-1.0)) < 0.06  # e^-1 at L (random_fields)
    f = p.apply({"precip": np.full(grid.ncol, 1e-4)})["precip"] / 1e-4
    fast = p.factors()  # precip factor = fast x slow, independent, each of mean 1
    assert abs(f.mean() - 1.0) < 0.06
    assert abs(f.std() - np.sqrt((1 + 0.25) * (1 + 0.36) - 1)) < 0.08
    np.testing.assert_allclose(f, fast["precip"], rtol=1e-12)
    with pytest.raises(ValueError, match="rain_error"):
        ForcingPerturbation(rain_error_std=-1.0)
    with pytest.raises(ValueError, match="precip"):
        ForcingPerturbation(variables=("tair",), multiplicative=(False,), std=(1.0,), corr=((1.0,),),
                            rain_error_std=0.5)  # fmt: skip


def test_innovation_is_the_cholesky_factor_times_the_members_float32_fields(grid):
    """z0 = (chol g_fast, g_slow) of float32 fields drawn from each member's own stream, in float64."""
    from landimg.ensemble.perturb import _FieldMaker
    from landimg.parallel import Purpose, member_rng

    cfg = ForcingPerturbation(rain_error_std=0.6)
    p = ForcingPerturber(cfg, grid, [1, 4], seed=2)
    rngs = [member_rng(2, i, Purpose.FORCING) for i in (1, 4)]
    fast = _FieldMaker(grid, cfg.length_km, np.float32).draw(rngs, 4)  # fast fields first, then slow
    slow = _FieldMaker(grid, cfg.rain_error_km, np.float32).draw(rngs, 1)
    assert fast.dtype == slow.dtype == np.float32 and p.z.dtype == np.float64
    want = np.concatenate([np.einsum("vw,mwc->mvc", cfg.cholesky, fast.astype(np.float64)), slow], axis=1)
    np.testing.assert_allclose(p.z, want, rtol=0, atol=1e-14)
    assert [r.bit_generator.state for r in rngs] == [r.bit_generator.state for r in p.rngs]
