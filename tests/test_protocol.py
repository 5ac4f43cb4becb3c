"""The DA protocol: the declared observation error (ObsError), what each method needs from its host
(Need), and the host honouring it (column indices, owned columns, perturbations drawn by the host)."""

from __future__ import annotations

import landimg
import numpy as np
import pytest
from landimg import Layout
from landimg.analysis import CurveletEnKF, OpenLoop, PointEnKF, PointLETKF
from landimg.da.obs_error import ObsError, as_obs_error
from landimg.da.protocol import AnalysisCache, AnalysisContext, Distribution, Geometry, Need
from landimg.parallel import SerialComm, member_rng

_FORCING = {"tair": 290.0, "qair": 0.008, "psurf": 1e5, "precip": 2e-4, "wind": 3.0, "swdown": 300.0,
            "lwdown": 330.0}  # fmt: skip


def _geometry(ny: int = 12, nx: int = 20, res: float = 1.0) -> landimg.Grid:
    return landimg.Grid.regular(lat=(30.0, 30.0 + ny * res), lon=(-110.0, -110.0 + nx * res), res=res,
                                land_mask="all")  # fmt: skip


# ---------------------------------------------------------------------- ObsError
def test_from_fraction_splits_the_variance_and_assume_keeps_the_total():
    std = np.array([0.02, 0.04, 0.05])
    err = ObsError.from_fraction(std, 0.3, corr_length_km=400.0, memory_days=10.0)
    np.testing.assert_allclose(err.white_std**2, 0.3 * std**2, rtol=1e-15)
    np.testing.assert_allclose(err.corr_std**2, 0.7 * std**2, rtol=1e-15)
    np.testing.assert_allclose(err.std, std, rtol=1e-15)
    assert err.white_fraction == pytest.approx(0.3, rel=1e-14) and err.correlated
    white = err.assume(white_fraction=1.0)
    np.testing.assert_allclose(white.std, std, rtol=1e-15)
    assert not white.correlated and white.memory_days == 10.0
    assert err.assume() is err
    other = err.assume(white_fraction=0.5, corr_length_km=100.0)
    assert other.corr_length_km == 100.0 and other.white_fraction == pytest.approx(0.5, rel=1e-14)
    sub = err.take(np.array([2, 0]))
    np.testing.assert_array_equal(sub.std, err.std[[2, 0]])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"white_std": -0.1}, ">= 0"), ({"white_std": np.nan}, "NaN"),
     ({"white_std": 0.02, "corr_std": 0.02}, "corr_length_km > 0"),
     ({"white_std": [0.02, 0.03], "corr_std": [0.1, 0.1, 0.1], "corr_length_km": 10.0}, "differ in shape"),
     ({"white_std": 0.02, "memory_days": np.inf}, "memory_days")],
)  # fmt: skip
def test_bad_errors_are_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ObsError(**kwargs)


def test_as_obs_error_takes_a_bare_std_as_white():
    err = as_obs_error(0.04, ncol=5)
    assert not err.correlated and float(err.std) == 0.04
    with pytest.raises(ValueError, match="expected 4"):
        as_obs_error(np.full(5, 0.04), ncol=4)


def test_geometry_of_the_first_version_builds_the_one_grid():
    """``Geometry(land, column lat, column lon, cell_km)`` (the first protocol's constructor) is a
    ``landimg.Grid`` with the same columns; coordinates off a regular grid are refused."""
    land = np.ones((6, 9), bool)
    land[:2, :3] = False  # a sea in the south-west corner: rows and columns still placed by the spacing
    grid = landimg.Grid(lat=30.5 + np.arange(6.0), lon=-109.5 + np.arange(9.0), land=land, res=1.0)
    g = Geometry(grid.land, grid.column_lat, grid.column_lon, grid.cell_km)
    assert isinstance(g, landimg.Grid) and g.shape == grid.shape and g.ncol == grid.ncol
    np.testing.assert_array_equal(g.xyz, grid.xyz)
    np.testing.assert_allclose(g.lat, grid.lat, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.cell_km, grid.cell_km, rtol=1e-14)
    lat = grid.column_lat.copy()
    lat[5] += 0.1  # one column off its row
    with pytest.raises(ValueError, match="regular lat/lon grid"):
        Geometry(grid.land, lat, grid.column_lon, grid.cell_km)


def test_a_draw_of_some_columns_equals_the_whole_draw_sliced():
    g = _geometry()
    err = ObsError.from_fraction(0.04, 0.5, corr_length_km=300.0)
    cols = np.array([5, 17, 3, 200, 239])
    whole = err.draw([member_rng(7, i, 1) for i in range(3)], g)
    part = err.draw([member_rng(7, i, 1) for i in range(3)], g, columns=cols)
    assert whole.shape == (3, g.ncol) and part.shape == (3, cols.size)
    np.testing.assert_array_equal(part, whole[:, cols])


def test_draws_have_the_declared_covariance():
    """Empirical R of many draws: white variance on the diagonal, corr_std^2 exp(-r^2/L^2) off it."""
    g = _geometry(ny=8, nx=30)
    length = 250.0
    err = ObsError(0.03, 0.04, corr_length_km=length)
    e = err.draw([member_rng(1, i, 1) for i in range(3000)], g)  # (3000, ncol)
    cov = np.cov(e, rowvar=False)
    np.testing.assert_allclose(np.diag(cov).mean(), 0.03**2 + 0.04**2, rtol=0.03)
    i, j = 4 * 30 + 10, 4 * 30 + 12  # two columns of one row, two cells apart
    r = 2 * g.cell_km[1]
    assert cov[i, j] == pytest.approx(0.04**2 * np.exp(-(r**2) / length**2), abs=0.1 * 0.04**2)


# ---------------------------------------------------------------------- Need
def test_each_method_declares_its_layout():
    assert OpenLoop().need == Need(Distribution.NONE)
    assert PointEnKF(radius_km=300.0).need == Need(Distribution.COLUMNS, halo_km=300.0, perturbations=True)
    assert PointEnKF(perturb_obs=False).need.perturbations is False
    assert PointLETKF(radius_km=250.0).need == Need(Distribution.COLUMNS, halo_km=250.0)
    assert CurveletEnKF().need == Need(Distribution.MEMBERS)  # DEnKF: no perturbations
    assert CurveletEnKF(denkf=False).need.perturbations
    with pytest.raises(TypeError):
        Need("columns")


def test_methods_assume_the_declared_total_std():
    err = ObsError.from_fraction(np.full(4, 0.04), 0.5, corr_length_km=200.0)
    for m in (PointEnKF(), CurveletEnKF(obs_corr_km=0.0), PointLETKF(obs_white_fraction=1.0)):  # uncorrelated
        assumed = m.assumed_obs_error(err)
        np.testing.assert_allclose(assumed.std, err.std, rtol=1e-15)
        assert not assumed.correlated
    assert CurveletEnKF().assumed_obs_error(err) is err  # issue 18: R as declared by default
    assert PointLETKF().assumed_obs_error(err) is err  # issue 18: the LETKF takes R as declared
    corr = CurveletEnKF(obs_corr_km=300.0, obs_white_fraction=0.25).assumed_obs_error(err)
    assert corr.corr_length_km == 300.0 and corr.white_fraction == pytest.approx(0.25)
    same_split = CurveletEnKF(obs_corr_km=300.0).assumed_obs_error(err)  # the declared fraction, another length
    assert same_split.corr_length_km == 300.0 and same_split.white_fraction == pytest.approx(0.5)
    alone = CurveletEnKF(obs_corr_km=300.0).assumed_obs_error(ObsError.white(0.04))  # historical meaning
    assert alone.white_fraction == 0.0 and alone.corr_length_km == 300.0


# ---------------------------------------------------------------------- host
def _ensemble(nmem: int = 6, seed: int = 3):
    grid = landimg.Grid.regular(lat=(30.0, 40.0), lon=(-110.0, -96.0), res=1.0, land_mask="all")
    ens = landimg.Ensemble(grid, nmem, soil=landimg.soil.from_class("loam", grid.ncol), seed=seed)
    ens.advance({k: np.full(grid.ncol, v) for k, v in _FORCING.items()}, nsteps=6)
    obs = ens.mean_image((0.0, 0.05)) + 0.03 * np.random.default_rng(9).standard_normal(grid.shape)
    obs[:, ::3] = np.nan
    return ens, obs


@pytest.mark.parametrize("method", [PointEnKF(radius_km=300.0), CurveletEnKF(nscales=3, nangles_coarse=8)])
def test_an_obs_error_object_equals_the_bare_std(method):
    a, obs = _ensemble()
    b, _ = _ensemble()
    da = a.assimilate(obs, 0.02, method)
    db = b.assimilate(obs, ObsError.white(np.full(b.grid.ncol, 0.02)), method)
    np.testing.assert_array_equal(a.model.state["wliq"], b.model.state["wliq"])
    assert da == db


def test_host_perturbations_come_from_each_members_stream():
    """The point EnKF gets the host's draws: the same update as drawing from the members' streams itself."""
    ens, obs = _ensemble()
    m = PointEnKF(radius_km=300.0)
    ctx = ens.analysis_context(m)
    theta = ens.model.theta()
    own, _ = m.analyze(theta, ens.grid.to_columns(obs), 0.02, None, ctx)  # draws from ctx.rngs itself
    ens2, _ = _ensemble()
    diag = ens2.analyze(obs, 0.02, m)  # the host draws, then the method uses them
    applied = ens2.model.theta() - theta
    np.testing.assert_allclose(applied, np.clip(theta + own, 0.0, None) - theta, atol=1e-15)
    assert diag.n_obs == int(np.isfinite(obs).sum())


def test_owned_columns_are_analysed_and_set_the_diagnostics():
    """A column block with a halo: the owned columns get the whole domain's increments (their halo is in
    the arrays), the halo none (its owner analyses it); diagnostics count the owned columns only."""
    ens, obs = _ensemble()
    g, theta = ens.geometry, ens.model.theta()
    y = g.to_columns(obs)
    owned = np.arange(g.ncol) < g.ncol // 2
    m = PointLETKF(radius_km=300.0, inflation_mode="fixed")  # adaptive: estimated from the owned columns

    def ctx(**kw):  # a fresh context: the adaptive inflation's state starts from the same value
        return AnalysisContext(h=ens.observation_weights(m.obs_depth), geometry=g,
                               layout=Layout(6, SerialComm()), cache=AnalysisCache(), **kw)  # fmt: skip

    full_inc, full = m.analyze(theta, y, 0.02, None, ctx())
    inc, part = m.analyze(theta, y, 0.02, None, ctx(owned=owned))
    np.testing.assert_array_equal(inc[:, owned], full_inc[:, owned])
    assert np.all(inc[:, ~owned] == 0) and np.any(full_inc[:, ~owned] != 0)
    assert part.n_obs == int(np.isfinite(y[owned]).sum()) < full.n_obs
    h = ens.observation_weights(m.obs_depth)
    dobs = np.einsum("l,lcm->mc", h, inc[:, owned])
    assert part.increment_mean == pytest.approx(dobs.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="whole-member images"):
        CurveletEnKF(nscales=3).analyze(theta, y, 0.02, None, AnalysisContext(
            h=h, geometry=g, layout=Layout(6, SerialComm()), columns=np.arange(g.ncol)[::-1]))
