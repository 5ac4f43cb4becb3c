"""CoLM fidelity (issue 11): water table under sustained recharge, infiltration into dry frozen soil,
supercooled water, snow insulation, no vapour uptake by dry soil, and the water balance and water
table range through long frozen and snow seasons."""

import landimg
import numpy as np
from landimg import soil
from test_column_physics import SIGMA, qsat, residual, still_forcing, synthetic_forcing

HFUS, GRAV, TFRZ = 3.336e5, 9.80616, 273.16


def test_water_table_rises_under_sustained_recharge():
    """10 mm/day of rain, no evaporation (saturated still air), 3 years: the water table of a loam
    column rises into the soil column to where the baseflow carries the recharge (CoLM: ~1.6 m; the
    old capped aquifer pinned it at 3.1 m), never leaves [0, 80] m, and the water balance closes."""
    m = landimg.ColumnModel(1, 1, soil=soil.from_class("loam", 1), dt=3600.0, igbp=16)
    f = still_forcing(1, precip=10.0 / 86400.0)
    s0 = m.water_storage()
    zmin, zmax = np.inf, -np.inf
    for _ in range(3 * 365):
        m.step(f, nsteps=24)
        zmin = min(zmin, m.state["zwt"].min())
        zmax = max(zmax, m.state["zwt"].max())
    zwt = m.state["zwt"][0, 0]
    assert zwt < 2.5, zwt
    assert 0.0 <= zmin and zmax <= 80.0
    # steady: the baseflow at zwt carries what does not run off at the surface
    assert np.abs(residual(m, s0)).max() < 3e-8
    s0 = m.water_storage()
    m.reset_fluxes()
    m.step(f, nsteps=24 * 30)
    F = m.fluxes
    np.testing.assert_allclose(F["runoff_surface"] + F["runoff_subsurface"], F["precip"], rtol=2e-3)
    np.testing.assert_allclose(
        F["runoff_subsurface"][0, 0] / (30 * 86400.0), 5.5e-3 * np.exp(-2.5 * zwt), rtol=2e-3
    )
    assert np.abs(residual(m, s0)).max() < 1e-8


def test_dry_frozen_loam_takes_up_gentle_rain():
    """A dry frozen loam (theta 0.12, all ice, 268 K) under 0.25 mm/h of rain at +2.5 C for 12 h takes
    up most of it (CoLM: ice fraction = ice volume / porosity, 10^(-6 f_ice) K_s); an ice-filled top
    (97 % of the pores) still sheds nearly all."""
    m = landimg.ColumnModel(2, 1, soil=soil.from_class("loam", 2), dt=3600.0, igbp=16)
    ice = 0.12 * 917.0 * m.dz
    m.state["wliq"][...] = 0.0
    m.state["wice"][:, 0, 0] = ice
    m.state["wice"][:, 1, 0] = ice
    m.state["wice"][:3, 1, 0] = 0.97 * m.theta_sat[:3, 1] * 917.0 * m.dz[:3]
    m.state["tsoil"][...] = 268.0
    m.state["tsnow"][...] = 268.0
    m.step(still_forcing(2, tair=TFRZ + 2.5, precip=0.25 / 3600.0), nsteps=12)
    F = m.fluxes
    assert F["runoff_surface"][0, 0] < 0.2 * F["precip"][0, 0], F["runoff_surface"][0, 0]
    assert F["runoff_surface"][1, 0] > 0.9 * F["precip"][1, 0]


def test_frozen_layer_keeps_supercooled_liquid_water():
    """Below freezing a wet layer freezes down to the supercooled water of the freezing-point
    depression, theta_s (psi(T)/psi_s)^(-1/b) with psi(T) = 1e3 L_f (T - T_f)/(g T) mm (CoLM), not to
    zero."""
    sl = soil.from_class(["loam", "clay"])
    m = landimg.ColumnModel(2, 1, soil=sl, dt=3600.0, igbp=16)
    m.state["wliq"][...] *= 0.8
    t = np.full(2, 258.0)
    p = np.full(2, 1.0e5)
    f = dict(tair=t, qair=qsat(t, p), psurf=p, precip=np.zeros(2), wind=np.full(2, 2.0),
             swdown=np.zeros(2), lwdown=SIGMA * t**4)  # fmt: skip
    m.step(f, nsteps=24 * 20)
    # layers 3-6 (below the evaporating surface): frozen, with liquid water left
    tl = m.state["tsoil"][2:6, :, 0]
    assert np.all(tl < TFRZ - 1.0)
    psi = 1000.0 * HFUS * (tl - TFRZ) / (GRAV * tl)
    expect = sl.theta_s * (psi / sl.psi_s) ** (-1.0 / sl.b)
    theta_liq = m.state["wliq"][2:6, :, 0] / (1000.0 * m.dz[2:6, None])
    assert np.all(theta_liq > 0.05)
    assert np.all(m.state["wice"][2:6, :, 0] > 0.0)
    # the liquid left is the supercooled amount at the temperature of the last freezing (within the
    # cooling of one step)
    np.testing.assert_allclose(theta_liq, expect, rtol=0.03)


def test_snow_insulates_the_soil():
    """20 days at -25 C: under 120 mm of snow (a layer of its own with Jordan 1991 conductivity) the
    soil at 5-15 cm stays >= 5 K warmer than bare soil; the snow cover fraction is CoLM's (1 for a
    deep pack)."""
    m = landimg.ColumnModel(2, 1, soil=soil.from_class("loam", 2), dt=3600.0, igbp=10)
    m.state["wliq"][...] *= 0.6
    m.state["tsoil"][...] = 275.0
    m.state["tsnow"][...] = 272.0
    m.state["wsnow"][1, 0] = 120.0
    m.state["dsnow"][1, 0] = 120.0 / 250.0
    t = np.full(2, 248.15)
    p = np.full(2, 1.0e5)
    f = dict(tair=t, qair=0.8 * qsat(t, p), psurf=p, precip=np.zeros(2), wind=np.full(2, 3.0),
             swdown=np.zeros(2), lwdown=0.85 * SIGMA * t**4)  # fmt: skip
    s0 = m.water_storage()
    m.step(f, nsteps=24 * 20)
    w = m.layer_weights([(0.05, 0.15)])[0]
    t515 = (w[:, None] * m.state["tsoil"][:, :, 0]).sum(axis=0)
    assert t515[1] - t515[0] >= 5.0, t515
    assert m.state["tsnow"][1, 0] < t515[1] - 5.0  # the cold is in the snow layer
    assert m.state["wsnow"][1, 0] > 110.0 and m.state["dsnow"][1, 0] > 0.1
    assert m.state["tskin"][1, 0] == m.state["tsnow"][1, 0]
    assert np.abs(residual(m, s0)).max() < 1e-9


def test_dry_soil_takes_up_no_vapour_from_unsaturated_air():
    """A loam at theta 0.03 under 50 % relative humidity for 2 days (no sun, air and soil at the same
    temperature): CoLM's guard (no flux when hr q_sat < q_a < q_sat) leaves its water unchanged."""
    m = landimg.ColumnModel(1, 1, soil=soil.from_class("loam", 1), dt=1800.0, igbp=16)
    m.state["wliq"][...] = 0.03 * 1000.0 * m.dz[:, None, None]
    t = np.full(1, 293.0)
    p = np.full(1, 1.0e5)
    f = dict(tair=t, qair=0.5 * qsat(t, p), psurf=p, precip=np.zeros(1), wind=np.full(1, 3.0),
             swdown=np.zeros(1), lwdown=SIGMA * t**4)  # fmt: skip
    m.state["tsoil"][...] = 293.0
    w0 = m.state["wliq"][0].sum()
    m.step(f, nsteps=96)
    assert m.fluxes["evap_soil"][0, 0] >= 0.0
    assert m.state["wliq"][0].sum() <= w0 + 1e-12


def test_year_with_long_snow_season_closes_and_keeps_the_water_table_in_range():
    """An arctic year (about 8 months below freezing, snow that builds a layer of its own, frozen
    soil): water balance to 1e-8 kg/m2, zwt in [0, 80] m at every step, snow and ice present, and
    temperatures within bounds."""
    ncol, nmem, nsteps, dt = 22, 2, 8760, 3600.0
    names = soil.class_names()
    sl = soil.from_class([names[i % len(names)] for i in range(ncol)])
    igbp = np.array([1, 2, 4, 6, 7, 8, 9, 10, 12, 14, 16] * 2)
    m = landimg.ColumnModel(ncol, nmem, soil=sl, dt=dt, igbp=igbp)
    frc = synthetic_forcing("freezing", ncol, nmem, nsteps, dt, seed=11)
    frc["tair"] = frc["tair"] - 4.0
    frc["qair"] = np.minimum(frc["qair"], qsat(frc["tair"], frc["psurf"]))
    s0 = m.water_storage()
    zmin, zmax, max_depth = np.inf, -np.inf, 0.0
    for k in range(nsteps):
        m.step({n: v[k] for n, v in frc.items()})
        zmin = min(zmin, m.state["zwt"].min())
        zmax = max(zmax, m.state["zwt"].max())
        max_depth = max(max_depth, m.state["dsnow"].max())
    assert np.abs(residual(m, s0)).max() < 1e-8
    assert 0.0 <= zmin and zmax <= 80.0
    assert max_depth > 0.05
    assert m.fluxes["snowmelt"].sum() > 0.0 and m.state["wice"].sum() > 0.0
    assert m.state["tsoil"].min() > 200.0 and m.state["tsoil"].max() < 330.0
