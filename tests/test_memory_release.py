"""Issue 17 item 6 (peak memory of the largest rank): what an analysis or the run keeps is freed or held
once, with the same bits -- the neighbourhoods of only the latest observation pattern, the layers' images
of the curvelet's layer increments made one at a time, the members' soil of every column released once the
ensembles hold their parts."""

import numpy as np
import pytest
from landimg import Grid, Layout
from landimg.analysis import AnalysisCache, AnalysisContext, PointEnKF, PointLETKF, observed_neighbourhoods
from landimg.da.localization import pad_neighbourhoods
from landimg.da.point_methods import _Searched
from landimg.parallel import SerialComm


def _geometry(ny=16, nx=30, res=1.0):
    lat = 30.0 + res * (np.arange(ny) + 0.5)
    lon = -110.0 + res * (np.arange(nx) + 0.5)
    return Grid(lat=lat, lon=lon, land=np.ones((ny, nx), bool), res=res)


def test_cache_frees_the_oldest_entry_before_making_the_new_one():
    cache = AnalysisCache(per_kind=4)
    held = []
    for key in range(3):
        value = cache.get("pattern", key, lambda k=key: held.append(cache.entries("pattern")) or k, keep=1)
        assert value == key and cache.entries("pattern") == 1
    assert held == [0, 0, 0]  # no older entry alive while a new one is made
    for key in range(6):  # the default: per_kind entries, at most per_kind - 1 alive while making one
        cache.get("transform", key, lambda: held.append(cache.entries("transform")))
    assert cache.entries("transform") == 4 and max(held[3:]) == 3
    assert cache.get("transform", 5, lambda: 1 / 0) is None  # a hit makes nothing


def test_point_methods_keep_only_the_latest_pattern_with_the_same_bits():
    g = _geometry()
    rng = np.random.default_rng(3)
    state = 0.25 + 0.02 * rng.standard_normal((3, g.ncol, 12))
    h = np.array([0.7, 0.3, 0.0])
    for method in (PointEnKF(radius_km=400.0, max_obs=None), PointLETKF(radius_km=400.0, max_obs=None)):
        lay = Layout(12, SerialComm())
        ctx = AnalysisContext(h=h, geometry=g, layout=lay, cache=AnalysisCache())
        for _day in range(3):  # a new observation pattern every day
            obs = 0.27 + 0.01 * rng.standard_normal(g.ncol)
            obs[rng.random(g.ncol) < 0.4] = np.nan
            ctx.rngs = [np.random.default_rng(i) for i in range(12)]
            kept, _ = method.analyze(state, obs, 0.02, None, ctx)
            fresh = AnalysisContext(h=h, geometry=g, layout=lay, cache=AnalysisCache(),
                                    rngs=[np.random.default_rng(i) for i in range(12)])  # fmt: skip
            alone, _ = method.analyze(state, obs, 0.02, None, fresh)
            np.testing.assert_array_equal(kept, alone)
            assert len(ctx.cache) == 1  # the earlier days' neighbourhoods are gone


def test_searched_neighbourhoods_pad_like_the_found_ones():
    g = _geometry()
    valid = np.random.default_rng(1).random(g.ncol) < 0.5
    nb = observed_neighbourhoods(g.xyz, valid, 300.0, max_obs=None)
    found = _Searched(nb)
    assert found.padded(nb.m) is nb
    for width in (nb.m + 3, nb.m + 7, nb.m + 3, nb.m):  # held padded once; another width from the found part
        got, want = found.padded(width), pad_neighbourhoods(nb, width)
        assert got.m == width
        for name in ("idx", "dist", "rho", "use"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert found.padded(nb.m + 7) is found.padded(nb.m + 7)


def test_cross_energies_of_images_made_one_at_a_time_are_bitwise_the_batched():
    from landimg.da.curvelet_spectral import spectral_frame
    from landimg.transform.curvelet import Curvelet

    frame = spectral_frame(Curvelet((48, 96)))
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((5, 48, 96)), rng.standard_normal((48, 96))
    batched = frame.cross_energies(a, b)
    one_by_one = frame.cross_energies((a[j] * 1.0 for j in range(5)), b)
    assert batched.shape == one_by_one.shape == (5, frame.ndir)
    np.testing.assert_array_equal(batched, one_by_one)
    pairs = frame.cross_energies(iter(a), a)  # pairs with a generator
    np.testing.assert_array_equal(pairs, frame.cross_energies(a, a))


def test_setup_releases_the_members_soil():
    from landimg.experiment.config import load_config
    from landimg.experiment.setup import setup

    cfg = load_config(None, ["domain.res=2.5", "ensemble.members=4", "ensemble.perturb_soil=true"])
    s = setup(cfg)
    assert s.soil_members is not None and s.soil_ensemble is s.soil_members
    s.release_soil()
    assert s.soil_members is None
    with pytest.raises(RuntimeError, match="released"):
        _ = s.soil_ensemble


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_draw_holds_one_members_spectrum_with_the_batch_bits(dtype):
    from landimg.random_fields import GaussianFieldGenerator

    gen = GaussianFieldGenerator((60, 120), (111.0, 90.0), 424.0, periodic_x=True, dtype=dtype)
    rngs = [np.random.default_rng([11, i]) for i in range(6)]
    batch = gen.draw(rngs, 5, rows=(10, 41))
    assert gen._bins._work["spec"].shape[:2] == (1, 5)  # a spectrum buffer of one member, not of six
    alone = [np.random.default_rng([11, i]) for i in range(6)]
    one = np.concatenate([gen.draw([r], 5, rows=(10, 41)) for r in alone])
    np.testing.assert_array_equal(batch, one)
    assert [r.bit_generator.state for r in rngs] == [r.bit_generator.state for r in alone]
    whole = gen.draw([np.random.default_rng([11, i]) for i in range(6)], 5)
    np.testing.assert_array_equal(batch, whole[:, :, 10:41])


@pytest.mark.parametrize("periodic", [True, False])
def test_local_blocks_in_place_are_bitwise_the_plain_formula(periodic):
    from landimg.da.obs_covariance import NUGGET, ObsCovariance

    rng = np.random.default_rng(4)
    n, nc, w, dy, dx, nx, length = 300, 40, 12, 111.0, 85.0, 100, 250.0
    cov = ObsCovariance(rng.random(n) * 1e-3, rng.random(n) * 0.02, length, rng.integers(0, 50, n),
                        rng.integers(0, nx, n), (dy, dx), nx, periodic)  # fmt: skip
    idx = rng.integers(0, n, (nc, w))
    use = rng.random((nc, w)) < 0.8
    a, b = idx[:, :, None], idx[:, None, :]
    ry = cov.iy[a] * dy - cov.iy[b] * dy  # the arithmetic before the work arrays were reused
    rx = np.abs(cov.ix[a] * dx - cov.ix[b] * dx)
    if periodic:
        rx = np.minimum(rx, nx * dx - rx)
    d2 = ry * ry + rx * rx
    c = np.where(use, cov.corr_std[idx], 0.0)
    want = np.exp(d2 * (-1.0 / length**2))
    want *= c[:, :, None]
    want *= c[:, None, :]
    diag = np.arange(w)
    want[:, diag, diag] += np.where(use, np.maximum(cov.white_var[idx], NUGGET * cov.corr_std[idx] ** 2), 1.0)
    np.testing.assert_array_equal(cov.local_blocks(idx, use), want)
    plain = np.where(a == b, cov.white_var[a], 0.0) + cov.corr_std[a] * cov.corr_std[b] * np.exp(-d2 / length**2)
    np.testing.assert_array_equal(cov.between(a, b), plain)
