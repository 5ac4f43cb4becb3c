"""Per-member soil parameters (``ensemble.perturb_soil``): perturbed texture per member, the Ensemble's
per-member soil, the experiment path (spin-up, water balance, switch off, restart configuration)."""

import landimg
import numpy as np
import pytest
from landimg.ensemble.perturb import TexturePerturbation, member_soil, member_texture
from landimg.experiment.config import from_dict, load_config, to_dict
from landimg.parallel import SerialComm


@pytest.fixture(scope="module")
def grid():
    return landimg.Grid.regular(lat=(30.0, 40.0), lon=(-100.0, -84.0), res=0.5, land_mask="builtin")


def _texture(grid):
    lat, lon = grid.column_latlon()
    sand = 40.0 + 20.0 * np.sin(np.radians(lon) * 8.0)  # 20 .. 60 %
    clay = 25.0 + 5.0 * np.cos(np.radians(lat) * 10.0)  # 20 .. 30 %
    return sand, clay


class _Rank:
    """A communicator stand-in of rank ``rank`` of ``size`` (enough to build an Ensemble's layout)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_members_differ_and_do_not_depend_on_the_member_set(grid):
    sand, clay = _texture(grid)
    tp = TexturePerturbation(sand_std_pct=10.0, length_km=300.0)
    s_all, c_all = member_texture(tp, grid, sand, clay, range(7), seed=5)
    assert s_all.shape == c_all.shape == (grid.ncol, 7)
    for block in ([0, 1, 2], [3, 4], [5, 6], [4]):  # any split of the members over ranks
        s, c = member_texture(tp, grid, sand, clay, block, seed=5)
        assert s.tobytes() == np.asfortranarray(s_all[:, block]).tobytes()
        assert c.tobytes() == np.asfortranarray(c_all[:, block]).tobytes()
    # every pair of members differs, and the fields are spatially correlated (not white)
    for i in range(7):
        for j in range(i):
            assert np.abs(s_all[:, i] - s_all[:, j]).mean() > 1.0
    other, _ = member_texture(tp, grid, sand, clay, range(7), seed=6)
    assert not np.array_equal(other, s_all)
    d = s_all - sand[:, None]
    img = grid.to_image(d.T)  # (nmem, ny, nx)
    lag1 = np.nanmean(img[:, :, 1:] * img[:, :, :-1]) / np.nanmean(img**2)
    assert lag1 > 0.8  # 0.5 deg cells, L = 300 km: neighbours are strongly correlated
    # the parameters follow the texture (Cosby): more sand = larger K_s
    p = member_soil(tp, grid, sand, clay, range(7), seed=5)
    assert p.nmem == 7
    np.testing.assert_array_equal(p.sand, s_all)
    k = np.argmax(s_all[0]), np.argmin(s_all[0])
    assert p.k_s[0, k[0]] > p.k_s[0, k[1]]


def test_mean_and_spread_over_many_members(grid):
    sand, clay = _texture(grid)
    tp = TexturePerturbation(sand_std_pct=4.0, clay_ratio=0.6, length_km=150.0)  # far from every bound
    n = 400
    s, c = member_texture(tp, grid, sand, clay, range(n), seed=11)
    # the mean of n members is within 4 standard errors of the model's texture everywhere
    assert np.abs(s.mean(axis=1) - sand).max() < 4 * 4.0 / np.sqrt(n) * 1.3
    assert np.abs(c.mean(axis=1) - clay).max() < 4 * 2.4 / np.sqrt(n) * 1.3
    np.testing.assert_allclose(s.std(axis=1).mean(), 4.0, rtol=0.05)
    np.testing.assert_allclose(c.std(axis=1).mean(), 2.4, rtol=0.05)


def test_bounds_are_respected(grid):
    sand, clay = _texture(grid)
    sand = np.where(np.arange(grid.ncol) % 3 == 0, 90.0, sand)  # some columns at the edge of the range
    tp = TexturePerturbation(sand_std_pct=40.0)
    s, c = member_texture(tp, grid, sand, clay, range(30), seed=2)
    assert s.min() >= 5.0 and s.max() <= 92.0 and c.min() >= 3.0 and c.max() <= 60.0
    assert (s + c).max() <= 97.0 + 1e-12
    assert (s == 92.0).any() and (s == 5.0).any()  # the bounds were reached, and held
    p = member_soil(tp, grid, sand, clay, range(30), seed=2)
    assert np.all(p.theta_s > 0.3) and np.all(p.b > 0) and np.all(p.k_s > 0) and np.all(p.psi_s < 0)
    with pytest.raises(ValueError, match="sand_std_pct"):
        TexturePerturbation(sand_std_pct=-1.0)
    with pytest.raises(ValueError, match="max_sum"):
        TexturePerturbation(max_sum=90.0)
    with pytest.raises(ValueError, match="member_texture: sand and clay"):
        member_texture(tp, grid, sand[:-1], clay, range(2))


def test_ensemble_takes_its_members_parameters(grid):
    sand, clay = _texture(grid)
    p = member_soil(TexturePerturbation(), grid, sand, clay, range(5), seed=1)
    for size in (1, 2, 3):
        for rank in range(size):
            ens = landimg.Ensemble(grid, 5, soil=p, comm=_Rank(rank, size), perturbation=None)
            for k, i in enumerate(ens.members):
                for name in ("theta_s", "b", "psi_s", "k_s", "tkdry"):
                    assert (
                        np.asarray(getattr(ens.model.soil, name))[:, k].tobytes()
                        == getattr(p, name)[:, i].tobytes()
                    )
    with pytest.raises(ValueError, match="soil has parameters of 5 members"):
        landimg.Ensemble(grid, 4, soil=p, comm=SerialComm(), perturbation=None)


def test_ensemble_per_member_soil_steps_like_separate_columns(grid):
    sand, clay = _texture(grid)
    p = member_soil(TexturePerturbation(), grid, sand, clay, range(3), seed=4)
    ens = landimg.Ensemble(grid, 3, soil=p, comm=SerialComm(), perturbation=None)
    f = {
        "tair": 293.0,
        "qair": 0.008,
        "psurf": 1e5,
        "precip": 2e-4,
        "wind": 3.0,
        "swdown": 350.0,
        "lwdown": 330.0,
    }
    forcing = {k: np.full(grid.ncol, v) for k, v in f.items()}
    ens.advance(forcing, nsteps=6)
    for i in range(3):
        one = landimg.ColumnModel(grid.ncol, 1, soil=p.member(i), dt=3600.0)
        one.step(forcing, nsteps=6)
        assert (
            one.state["wliq"][..., 0].tobytes()
            == np.ascontiguousarray(ens.model.state["wliq"][..., i]).tobytes()
        )
    th = ens.model.theta()[0]
    assert np.abs(th[:, 0] - th[:, 1]).max() > 1e-3  # different soils, different water


def _small(extra=()):
    return load_config(None, ["domain.res=2.5", "experiment.spinup_days=3", "ensemble.members=4",
                              "ensemble.spread_days=0", "output.plots=false", *extra])  # fmt: skip


def test_experiment_path_closes_the_water_balance():
    from landimg.ensemble.ensemble import Ensemble
    from landimg.experiment.loop import perturbation
    from landimg.experiment.setup import setup
    from landimg.experiment.spinup import seed_members, spinup

    cfg = _small()
    s = setup(cfg)
    assert s.soil_members.nmem == 4 and s.soil_ensemble is s.soil_members
    _, member = spinup(cfg, s, SerialComm())
    ens = Ensemble(s.domain.grid, 4, soil=s.soil_ensemble, dt=cfg.experiment.dt, seed=cfg.experiment.seed,
                   comm=SerialComm(), perturbation=perturbation(cfg), model_kwargs={"igbp": s.domain.igbp})  # fmt: skip
    seed_members({"x": ens}, member)
    m = ens.model
    # the spun-up column (the model's texture) holds more water than some members' pore space
    assert (m.theta() > np.asarray(m.soil.theta_s)[None] + 1e-6).any()
    s0 = m.water_storage()
    m.reset_fluxes()
    for k in range(24):
        ens.advance(s.weather.ensemble(k * cfg.experiment.dt), 1)
    obs = ens.mean_image((0.0, cfg.analysis.obs_depth)) + 0.02
    ens.analyze(np.clip(obs, 0.0, 0.6), 0.02, s.methods["curvelet_enkf"])
    ens.advance(s.weather.ensemble(24 * cfg.experiment.dt), 1)
    F = m.fluxes
    res = (m.water_storage() - s0) - (
        F["precip"] - F["evap_soil"] - F["transpiration"] - F["evap_canopy"]
        - F["runoff_surface"] - F["runoff_subsurface"] + F["analysis"]
    )  # fmt: skip
    assert np.abs(F["analysis"]).max() > 0.0
    assert np.abs(res).max() < 1e-8 * np.abs(s0).max()


def test_switch_off_gives_the_model_texture_to_every_member():
    from landimg.experiment.setup import setup

    s = setup(_small(["ensemble.perturb_soil=false"]))
    assert s.soil_members is None and s.soil_ensemble is s.soil_est
    s = setup(_small(["domain.texture_error_pct=0"]))
    assert s.soil_members is None


def test_a_restart_written_before_the_setting_resumes_without_it():
    tree = to_dict(load_config(None, []))
    del tree["ensemble"]["perturb_soil"]
    assert from_dict(tree, legacy=True).ensemble.perturb_soil is False
    assert from_dict(to_dict(load_config(None, [])), legacy=True).ensemble.perturb_soil is True
