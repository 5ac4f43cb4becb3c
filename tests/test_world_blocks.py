"""The world on column blocks (issue 17 item 2): every piece made on a block of columns is bitwise the
whole-domain piece cut to that block -- the weather (truth and ensemble), the storm-column pairs, the random
fields drawn on a band of rows, the forcing perturbations, the observations, the stations, the nature run's
steps and the spin-up. Under mpirun: no rank makes the weather, the nature run or the observations of every
column, and the forcing moves from the world blocks to every G x K layout bitwise."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, subprocess_env
from landimg import Grid
from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_domain
from landimg.experiment.forcing import FileForcing, WeatherGenerator
from landimg.experiment.obs import SatelliteObserver, Stations
from landimg.experiment.setup import Observer, Weather, setup
from landimg.experiment.spinup import new_nature, spinup
from landimg.experiment.storm_pairs import StormColumnPairs
from landimg.random_fields import GaussianFieldGenerator

SCRIPT = Path(__file__).parent / "mpi_scripts" / "world_blocks.py"


def forcing_file(path: Path, grid, hours: int, bad: tuple[int, int] | None = None) -> Path:
    """An hourly ALMA forcing file on ``grid`` from 2021-04-30 00:00 (a smooth field per variable); ``bad =
    (record, column)``: an implausible air temperature (500 K) there."""
    import netCDF4

    ny, nx = grid.shape
    with netCDF4.Dataset(path, "w") as ds:
        for name, size in (("time", hours), ("lat", ny), ("lon", nx)):
            ds.createDimension(name, size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2021-04-30 00:00"
        t[:] = np.arange(hours, dtype=float)
        ds.createVariable("lat", "f8", ("lat",))[:] = grid.lat
        ds.createVariable("lon", "f8", ("lon",))[:] = grid.lon
        wave = np.sin(np.arange(hours) / 5.0)[:, None, None] + np.cos(np.radians(grid.lat))[None, :, None]
        for name, val, amp in (("Tair", 290.0, 5.0), ("Qair", 0.01, 0.002), ("PSurf", 1e5, 500.0),
                               ("Rainf", 1e-4, 1e-4), ("Wind", 3.0, 1.0), ("SWdown", 300.0, 100.0),
                               ("LWdown", 350.0, 20.0)):  # fmt: skip
            data = np.broadcast_to(val + amp * wave, (hours, ny, nx)).copy()
            if name == "Tair" and bad is not None:
                data.reshape(hours, -1)[bad[0], grid.column_index[bad[1]]] = 500.0
            ds.createVariable(name, "f8", ("time", "lat", "lon"))[:] = data
    return path


def _blocks(n: int) -> list[tuple[int, int]]:
    """Blocks of columns: thirds, a single column, one that starts and ends mid-row, the last column."""
    return [(0, n // 3), (n // 3, 2 * n // 3), (2 * n // 3, n), (7, 8), (n // 5 + 3, n // 2 + 1), (n - 1, n)]


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.fixture(
    scope="module", params=["domain.res=2.5", "domain.preset=global1deg"], ids=["conus", "global"]
)
def world(request):
    cfg = load_config(None, [request.param, "experiment.spinup_days=2", "ensemble.spread_days=1"])
    return cfg, build_domain(cfg)


def test_weather_on_a_block_is_the_whole_weather_cut(world):
    cfg, d = world
    g = d.grid
    args = (g, d.aridity, cfg.forcing, cfg.experiment.seed, cfg.experiment.start)
    whole = WeatherGenerator(*args)
    blocks = _blocks(g.ncol)
    gens = [WeatherGenerator(*args, columns=slice(a, b)) for a, b in blocks]
    rained = 0
    for t in np.arange(-30, 50, 11) * 3600.0:
        for kind in ("truth", "ensemble"):
            w = getattr(whole, kind)(t)
            rained += int((w["precip"] > 0).sum())
            for (a, b), gen in zip(blocks, gens, strict=True):
                f = getattr(gen, kind)(t)
                assert set(f) == set(w) and gen.ncol == b - a
                for key in w:
                    assert _same(f[key], w[key][a:b]), (kind, t, (a, b), key)
    assert rained > 0  # storms reached the columns compared


def test_storm_pairs_of_a_block_are_the_whole_pairs_in_order(world):
    _, d = world
    g = d.grid
    rng = np.random.default_rng(3)
    n = 40
    p0 = np.radians(rng.uniform(g.lat[0], g.lat[-1], n))
    l0 = np.radians(rng.uniform(g.lon[0], g.lon[-1], n))
    reach = rng.uniform(0.02, 0.4, n)
    si, ci = StormColumnPairs(g).candidates(p0, l0, reach)
    assert si.size > 0
    for a, b in _blocks(g.ncol):
        bs, bc = StormColumnPairs(g, (a, b)).candidates(p0, l0, reach)
        keep = (ci >= a) & (ci < b)
        assert np.array_equal(bs, si[keep]) and np.array_equal(bc, ci[keep] - a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length_km", [0.0, 300.0, 2000.0])
def test_a_band_of_rows_is_the_whole_draw_cut(dtype, length_km):
    g = Grid.regular((-60, 90), (-180, 180), 2.0, land_mask="all")
    gen = GaussianFieldGenerator(g.shape, g.cell_size_km(), length_km, g.periodic_lon, dtype=dtype)
    whole = gen.draw([np.random.default_rng(5), np.random.default_rng(6)], 3)
    for r0, r1 in ((0, 75), (0, 1), (20, 21), (33, 60), (74, 75)):
        part = gen.draw([np.random.default_rng(5), np.random.default_rng(6)], 3, rows=(r0, r1))
        assert _same(part, whole[:, :, r0:r1])
    with pytest.raises(ValueError, match="rows"):
        gen.draw([np.random.default_rng(5)], 1, rows=(3, 99))


def test_image_filtered_band_is_the_whole_draw_cut():
    g = Grid.regular((20, 50), (-125, -65), 1.0, land_mask="all")
    gen = GaussianFieldGenerator(g.shape, g.cell_size_km(), 300.0, edges="image")
    assert _same(
        gen.draw([np.random.default_rng(1)], 2, rows=(4, 9)),
        gen.draw([np.random.default_rng(1)], 2)[..., 4:9, :],
    )


def test_forcing_perturbations_of_a_block_are_the_whole_ones_cut(world):
    _, d = world
    g = d.grid
    cfg = ForcingPerturbation(rain_error_std=0.6)
    members = [0, 3, 5]
    whole = ForcingPerturber(cfg, g, members, seed=11)
    zs = [whole.z.copy()]
    for _ in range(3):
        whole.advance(3600.0)
        zs.append(whole.z.copy())
    forcing = {
        k: np.full(g.ncol, v)
        for k, v in (("precip", 1e-4), ("swdown", 300.0), ("lwdown", 350.0), ("tair", 290.0))
    }
    facs = whole.apply(forcing)
    for a, b in _blocks(g.ncol):
        p = ForcingPerturber(cfg, g, members, seed=11, columns=slice(a, b))
        assert _same(p.z, zs[0][..., a:b])
        for z in zs[1:]:
            p.advance(3600.0)
            assert _same(p.z, z[..., a:b])
        out = p.apply({k: v[a:b] for k, v in forcing.items()})
        assert all(_same(out[k], np.asfortranarray(facs[k][a:b])) for k in forcing)
    with pytest.raises(ValueError, match="contiguous"):
        ForcingPerturber(cfg, g, members, seed=11, columns=slice(0, 10, 2))


def test_observations_of_a_block_are_the_whole_observations_cut(world):
    cfg, d = world
    g = d.grid
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.05, 0.4, g.ncol)
    frozen = rng.random(g.ncol) < 0.1
    whole_obs = SatelliteObserver(g, cfg.obs, 9)
    img = whole_obs.observe(g.to_image(truth), 3.0, g.to_image(frozen, fill=False).astype(bool), index=5)
    y = g.to_columns(img)
    assert np.isfinite(y).sum() > 10 and np.isnan(y).sum() > 10
    assert _same(whole_obs.observe_columns(truth, 3.0, frozen, index=5), y)
    stations = Stations(g, cfg.obs, 9)
    readings = stations.observe(truth, 4)
    for a, b in _blocks(g.ncol):
        obs = SatelliteObserver(g, cfg.obs, 9, columns=slice(a, b))
        assert _same(obs.observe_columns(truth[a:b], 3.0, frozen[a:b], index=5), y[a:b])
        here = (stations.columns >= a) & (stations.columns < b)
        assert _same(stations.observe(truth[a:b], 4, slice(a, b)), readings[here])
    with pytest.raises(ValueError, match="observe_columns"):
        SatelliteObserver(g, cfg.obs, 9, columns=slice(0, 5)).observe(g.to_image(truth), 3.0)


def test_observer_of_a_block_cuts_a_retrieval_file(tmp_path):
    """A file's retrievals are read whole and cut to the block, frozen columns masked there."""
    import netCDF4

    cfg = load_config(None, ["domain.res=2.5"])
    g = build_domain(cfg).grid
    path = tmp_path / "sm.nc"
    rng = np.random.default_rng(4)
    with netCDF4.Dataset(path, "w") as ds:
        for name, size in (("time", 2), ("lat", g.shape[0]), ("lon", g.shape[1])):
            ds.createDimension(name, size)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2021-05-01 00:00"
        t[:] = [0.25, 1.25]
        ds.createVariable("lat", "f8", ("lat",))[:] = g.lat
        ds.createVariable("lon", "f8", ("lon",))[:] = g.lon
        ds.createVariable("sm", "f4", ("time", "lat", "lon"))[:] = rng.uniform(0.05, 0.4, (2, *g.shape))
        ds.createVariable("sm_error", "f4", ("time", "lat", "lon"))[:] = rng.uniform(
            0.02, 0.05, (2, *g.shape)
        )
    cfg = load_config(None, ["domain.res=2.5", f"obs.file={path}"])
    frozen = np.zeros(g.ncol, dtype=bool)
    frozen[::7] = True
    y_whole, err = Observer(cfg, g)(np.zeros(g.ncol), 1.0, frozen, 1.0, 1)
    assert np.isfinite(y_whole).sum() > 5 and np.all(np.isnan(y_whole[frozen]))
    a, b = 11, g.ncol - 5
    y, err_b = Observer(cfg, g, slice(a, b))(np.zeros(b - a), 1.0, frozen[a:b], 1.0, 1)
    assert _same(y, y_whole[a:b]) and _same(err_b.white_std, err.white_std) and err_b.corr_std == err.corr_std


def test_forcing_file_of_a_block_reads_and_checks_the_block(tmp_path):
    g = build_domain(load_config(None, ["domain.res=2.5"])).grid
    n = g.ncol
    path = forcing_file(tmp_path / "f.nc", g, 30, bad=(7, n - 1))
    whole = FileForcing(str(path), g, "2021-05-01")
    with pytest.raises(ValueError, match="Tair record 7"):
        whole.check_values(-86400.0, 3600.0)
    for a, b in ((0, n // 2), (n // 2, n), (3, 9)):
        block = FileForcing(str(path), g, "2021-05-01", slice(a, b))
        f, w = block(-3600.0 * 20), whole(-3600.0 * 20)
        assert all(_same(f[k], w[k][a:b]) for k in w)
        if b < n:
            block.check_values(-86400.0, 3600.0)  # the bad value is another block's
        else:
            with pytest.raises(ValueError, match="Tair record 7"):
                block.check_values(-86400.0, 3600.0)
        block.close()
    whole.close()


def _block_setup(cfg, s, a, b):
    """``s`` as a rank of a world block a..b sees it (the weather and observer of the block)."""
    d = s.domain
    world = types.SimpleNamespace(columns=slice(a, b), ncol=b - a, whole=False)
    return types.SimpleNamespace(**{**vars(s), "world": world, "weather": Weather(cfg, d, slice(a, b)),
                                    "observer": Observer(cfg, d.grid, slice(a, b))})  # fmt: skip


def test_nature_run_steps_and_spinup_of_a_block_are_the_whole_ones_cut():
    from landimg.parallel import SerialComm

    cfg = load_config(None, ["domain.res=2.5", "experiment.spinup_days=2", "ensemble.spread_days=1"])
    s = setup(cfg)
    nature, member = spinup(cfg, s, SerialComm())
    whole = new_nature(cfg, s)
    whole.set_state(nature)
    n = s.domain.grid.ncol
    for a, b in ((0, n // 2), (n // 2, n), (13, 40)):
        sb = _block_setup(cfg, s, a, b)
        bn, bm = spinup(cfg, sb, SerialComm())
        assert set(bn) == set(nature) and set(bm) == set(member)
        for k in nature:
            assert _same(bn[k], np.asfortranarray(nature[k][..., a:b, :])), ("nature", k)
            assert _same(bm[k], np.asfortranarray(member[k][..., a:b, :])), ("member", k)
        block = new_nature(cfg, sb)
        assert block.ncol == b - a
        block.set_state(bn)
        w = whole if a == 0 else new_nature(cfg, s)
        w.set_state(nature)
        for k in range(3):  # steps of the nature run on the block's weather
            w.step(s.weather.truth(k * 3600.0))
            block.step(sb.weather.truth(k * 3600.0))
        for key, v in w.get_state().items():
            assert _same(block.get_state()[key], np.asfortranarray(v[..., a:b, :])), key
    assert not np.array_equal(nature["wliq"], new_nature(cfg, s).get_state()["wliq"])  # it did spin up


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
@pytest.mark.parametrize("nranks", [2, 3])
def test_under_mpi_no_rank_makes_the_world_of_every_column(nranks, tmp_path):
    cmd = [str(MPIRUN), "-n", str(nranks), sys.executable, "-m", "mpi4py", str(SCRIPT), str(tmp_path)]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"world blocks OK {nranks}" in proc.stdout
