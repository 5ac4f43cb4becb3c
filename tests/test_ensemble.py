"""landimg.Ensemble: forecast, images, assimilation with bounds and booking, restarts, bad input."""

import landimg
import numpy as np
import pytest
from landimg.analysis import CurveletEnKF, OpenLoop, PointEnKF, PointLETKF

CURV = CurveletEnKF(nscales=3, nangles_coarse=8)


@pytest.fixture(scope="module")
def grid():
    return landimg.Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -84.0), res=0.5, land_mask="builtin")


def _forcing(grid, precip=1e-4):
    one = np.ones(grid.ncol)
    return dict(
        tair=293.0 * one,
        qair=0.008 * one,
        psurf=1e5 * one,
        precip=precip * one,
        wind=3.0 * one,
        swdown=350.0 * one,
        lwdown=330.0 * one,
    )


def _ensemble(grid, nmem=6, seed=3, spin=6):
    ens = landimg.Ensemble(grid, nmem, soil=landimg.soil.from_class("loam", grid.ncol), dt=3600.0, seed=seed)
    for _ in range(spin):
        ens.advance(_forcing(grid, precip=0.0), nsteps=4)  # dry down from saturation
    return ens


def test_images_and_moments(grid):
    ens = _ensemble(grid)
    im = ens.images((0.0, 0.05))
    assert im.shape == (6, *grid.shape)
    assert np.isnan(im[:, ~grid.land]).all() and np.isfinite(im[:, grid.land]).all()
    np.testing.assert_allclose(ens.mean_image((0.0, 0.05))[grid.land], im[:, grid.land].mean(0), atol=1e-15)
    np.testing.assert_allclose(
        ens.spread_image((0.0, 0.05))[grid.land], im[:, grid.land].std(0, ddof=1), rtol=1e-10
    )
    assert np.nanmean(ens.spread_image((0.0, 0.05))) > 0  # perturbed forcing made a spread
    assert list(ens.members) == list(range(6))


def test_same_seed_same_perturbations(grid):
    a, b = _ensemble(grid, spin=2), _ensemble(grid, spin=2)
    np.testing.assert_array_equal(a.images(), b.images())
    c = _ensemble(grid, spin=2, seed=4)
    assert not np.array_equal(a.images(), c.images())


@pytest.mark.parametrize(
    "method",
    [
        CURV,
        CurveletEnKF(nscales=3, nangles_coarse=8, deep_regression=True),
        PointEnKF(),
        PointEnKF(radius_km=150.0),
        PointLETKF(radius_km=150.0),
    ],
)
def test_analysis_moves_towards_obs_and_books_water(grid, method):
    ens = _ensemble(grid)
    before = ens.model.water_storage().copy()
    wliq0 = ens.model.state["wliq"].copy()
    mean0 = ens.mean_image((0.0, 0.05))
    obs = mean0 - 0.02  # drier observations, accurate compared with the ensemble spread
    diag = ens.assimilate(obs, 0.0005, method)
    mean1 = ens.mean_image((0.0, 0.05))
    assert np.nanmean(np.abs(mean1 - obs)) < 0.7 * np.nanmean(np.abs(mean0 - obs))
    assert diag["n_obs"] == grid.ncol and diag["increment_mean"] < 0
    # mass: clipped (booked) + applied == computed; the model's storage changed by exactly applied
    assert diag["applied_water_kg_m2"] + diag["clipped_water_kg_m2"] == pytest.approx(
        diag["computed_water_kg_m2"], rel=1e-12
    )
    dstore = ens.model.water_storage() - before
    np.testing.assert_allclose(dstore, ens.model.fluxes["analysis"] - 0.0, atol=1e-9)
    assert np.mean(dstore) == pytest.approx(diag["applied_water_kg_m2"], rel=1e-10)
    if isinstance(method, CurveletEnKF) and not method.deep_regression:
        np.testing.assert_array_equal(ens.model.state["wliq"][3:], wliq0[3:])  # only layers in 0-5 cm
    if isinstance(method, CurveletEnKF) and method.deep_regression:
        assert not np.array_equal(ens.model.state["wliq"][5:], wliq0[5:])


@pytest.mark.parametrize(
    "method", [CurveletEnKF(nscales=3, nangles_coarse=8, inflation=1.2), PointEnKF(), PointLETKF(radius_km=150.0)]
)
def test_vertical_localization_tapers_each_layer_increment(grid, method):
    """Every filter's layer increments times the Gaspari-Cohn weight of the layer's depth below 0-5 cm."""
    from dataclasses import replace

    from landimg.da.column_ops import vertical_weights

    obs = _ensemble(grid).mean_image((0.0, 0.05)) - 0.01  # a small increment: no layer reaches a bound
    plain, tapered = _ensemble(grid), _ensemble(grid)
    theta0 = plain.model.theta()
    plain.assimilate(obs, 0.02, method)
    tapered.assimilate(obs, 0.02, replace(method, vertical_localization_m=0.8))
    z, h = plain.model.z_node, plain.observation_weights((0.0, 0.05))
    w = vertical_weights(z, h, 0.05, 0.8)
    np.testing.assert_array_equal(w[h > 0], 1.0)
    assert 0 < w[4] < 1 and np.all(w[z > 0.85] == 0)  # zero from 0.8 m below the observed layer
    d_plain, d_tapered = plain.model.theta() - theta0, tapered.model.theta() - theta0
    assert np.abs(d_plain[6:]).max() > 1e-4  # the deep layers do get an increment without the taper
    np.testing.assert_allclose(d_tapered, w[:, None, None] * d_plain, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(plain.layer_weights(method), 1.0)  # a method without the taper


def test_clipping_is_booked(grid):
    ens = _ensemble(grid, spin=1)  # nearly saturated
    obs = np.full(grid.shape, 0.9)  # far above porosity
    diag = ens.assimilate(obs, 0.001, PointEnKF())
    assert diag["clipped_water_kg_m2"] > 0
    assert diag["applied_water_kg_m2"] + diag["clipped_water_kg_m2"] == pytest.approx(
        diag["computed_water_kg_m2"], rel=1e-12
    )
    theta = ens.model.theta()
    assert np.all(theta <= ens.model.theta_sat[:, :, None] + 1e-12) and np.all(theta >= 0)


def test_frozen_columns_not_updated(grid):
    ens = _ensemble(grid)
    cold = np.zeros(grid.ncol, bool)
    cold[::3] = True
    ens.model.state["tsoil"][:, cold, :] = 265.0
    wliq0 = ens.model.state["wliq"].copy()
    for method in (CURV, PointEnKF(radius_km=100.0)):
        ens.assimilate(ens.mean_image((0.0, 0.05)) + 0.05, 0.01, method)
    np.testing.assert_array_equal(ens.model.state["wliq"][:, cold], wliq0[:, cold])
    assert not np.array_equal(ens.model.state["wliq"][:, ~cold], wliq0[:, ~cold])


def test_bad_input(grid, caplog):
    ens = _ensemble(grid, spin=1)
    obs = ens.mean_image((0.0, 0.05))
    with pytest.raises(ValueError, match="obs_image"):
        ens.assimilate(obs[:-1], 0.02, CURV)
    with pytest.raises(ValueError, match="obs_std"):
        ens.assimilate(obs, -0.02, PointEnKF())
    wliq0 = ens.model.state["wliq"].copy()
    for bad in (-9999.0, 25.0):  # an undeclared fill value; percent instead of m3/m3
        with pytest.raises(ValueError, match=r"obs_image has 1 values outside \[0, 1\] m3/m3"):
            ens.assimilate(np.where(np.arange(obs.size).reshape(obs.shape) == 0, bad, obs), 0.02, CURV)
    np.testing.assert_array_equal(ens.model.state["wliq"], wliq0)
    land_idx = np.argwhere(grid.land)[:5]
    obs[tuple(land_idx.T)] = np.nan
    with caplog.at_level("INFO", logger="landimg.analysis"):
        for method in (CURV, PointEnKF()):
            diag = ens.assimilate(obs, 0.02, method)
            assert diag["n_nan_masked"] == 5 and diag["n_obs"] == grid.ncol - 5
    assert "5 NaN" in caplog.text
    assert np.isfinite(ens.model.state["wliq"]).all()
    assert ens.assimilate(obs, 0.02, OpenLoop())["n_nan_masked"] == 5


def test_restart_is_bitwise(grid):
    ens = _ensemble(grid, spin=2)
    state = ens.gather_state()

    def cycle(e):
        e.advance(_forcing(grid), nsteps=3)
        e.assimilate(e.mean_image((0.0, 0.05)) + 0.02, 0.02, CURV)
        e.advance(_forcing(grid), nsteps=2)
        return e.images(), e.gather_state()

    im1, s1 = cycle(ens)
    fresh = landimg.Ensemble(grid, 6, soil=landimg.soil.from_class("loam", grid.ncol), dt=3600.0, seed=99)
    fresh.scatter_state(state)
    im2, s2 = cycle(fresh)
    np.testing.assert_array_equal(im1, im2)
    for k in ("model/wliq", "model/tsoil", "perturb_z"):
        np.testing.assert_array_equal(s1[k], s2[k])
