"""The world blocks under mpirun: moves to every G x K layout, gathers, the spin-up cache, and a cycle where no
rank makes the weather, the nature run or the observations of every column.

Usage: mpirun -n P python -m mpi4py world_blocks.py OUTDIR
Prints "world blocks OK <P>" on rank 0.
"""

import json
import sys
import types
from pathlib import Path

import numpy as np
from landimg.experiment import forcing as forcing_module
from landimg.experiment import obs as obs_module
from landimg.experiment import spinup as spinup_module
from landimg.experiment.config import load_config
from landimg.experiment.loop import run
from landimg.experiment.world import World
from landimg.layout import Layout, LayoutError
from landimg.model import column as column_module
from landimg.parallel import default_comm

comm = default_comm()
P, rank = comm.Get_size(), comm.Get_rank()


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"rank {rank}: {what}")


def same(a, b, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    check(a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{what} differs")


def moves() -> None:
    """World blocks -> every G x K layout (and a layout of member groups only), bitwise the whole cut."""
    for ncol in (29, 300):
        world = World(types.SimpleNamespace(ncol=ncol), comm)
        check(world.counts().sum() == ncol and (P == 1 or world.ncol < ncol), "world blocks")
        full = np.random.default_rng(ncol).standard_normal((3, ncol)) * 10.0 ** np.arange(-1, 2)[:, None]
        same(world.allgather(world.take(full)), full, "allgather")
        got = world.gather(world.take(full))
        check((got is None) == (rank != 0), "gather root")
        if rank == 0:
            same(got, full, "gather")
        state = {"a": np.asfortranarray(full[:, :, None]), "b": np.asfortranarray(full[0, :, None])}
        back = world.scatter_state(world.gather_state(world.take_state(state)))
        for k in state:
            same(back[k], world.take_state(state)[k], f"state {k}")
        for nmem in (5, 2):
            for k in [k for k in range(1, P + 1) if P % k == 0]:
                target = Layout(nmem, comm, ncol=ncol, column_blocks=k)
                mover = world.mover(target)
                check(mover.identity == (k == P), f"identity of 1x{P} only (K={k})")
                cols = slice(target.col_start, target.col_stop)
                same(mover.move(world.take(full)), full[:, cols], f"move to {P // k}x{k}")
                moved = mover.move_dict({"x": world.take(full[0]), "y": world.take(full[2])})
                same(moved["x"], full[0, cols], "move_dict x")
                same(moved["y"], full[2, cols], "move_dict y")
                same(
                    mover.move_state(world.take_state(state))["a"],
                    np.asfortranarray(full[:, cols, None]),
                    "move_state",
                )
            members_only = Layout(nmem, comm)  # every rank every column
            same(world.mover(members_only).move(world.take(full)), full, "move to a layout of member groups")
    if P > 1:  # fewer column chunks than ranks: refused on every rank, in one line
        try:
            World(types.SimpleNamespace(ncol=P - 1), comm)
        except LayoutError as exc:
            check("one world block per rank" in str(exc) and "\n" not in str(exc), f"message {exc}")
        else:
            check(False, "a world of fewer columns than ranks was made")


def bad_file(out: Path) -> None:
    """A forcing file with an implausible value in the last rank's block only: every rank refuses the run
    with the same one line (each rank checks only its block's part)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from landimg.experiment.domain import build_domain
    from landimg.experiment.setup import InputError, setup
    from test_world_blocks import forcing_file

    grid = build_domain(load_config(None, ["domain.res=2.5"])).grid
    path = out / "bad_forcing.nc"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        forcing_file(path, grid, 50, bad=(9, grid.ncol - 1))
    comm.Barrier()
    cfg = load_config(None, ["domain.res=2.5", "experiment.days=1", "experiment.spinup_days=1",
                             f"forcing.ensemble_file={path}"])  # fmt: skip
    try:
        setup(cfg, comm)
    except InputError as exc:
        lines = comm.allgather(str(exc))
        check(len(set(lines)) == 1 and "Tair record 9" in lines[0], f"the refusals differ: {lines}")
    else:
        check(False, "a bad forcing value was not refused")


def cached_spinup(out: Path) -> None:
    """The spin-up cache on P ranks: stored from the blocks gathered on rank 0, read back and cut to the
    blocks, bitwise the blocks' own spin-up."""
    from landimg.experiment.setup import setup
    from landimg.experiment.spinup import spun_up

    cfg = load_config(None, ["domain.res=2.5", "experiment.spinup_days=2", "ensemble.spread_days=1"])
    s = setup(cfg, comm)
    cache = out / "spinup-cache"
    runs = [spun_up(cfg, s, comm, None if c is None else cache, None, lambda: "k") for c in (None, 1, 1)]
    check([r[2] for r in runs] == ["off", "stored", "hit"], f"statuses {[r[2] for r in runs]}")
    for i in (0, 1):  # nature, ensemble column
        for key, value in runs[0][i].items():
            for other in runs[1:]:
                same(other[i][key], value, f"cached state {i} {key}")
    check(runs[0][0]["wliq"].shape[-2] == s.world.ncol, "block states")


def cycle(out: Path) -> None:
    """A small cycle; count the columns of every weather call, nature-run step and observation."""
    seen: dict[str, int] = {"weather": 0, "nature": 0, "observations": 0}

    def record(what, n):
        seen[what] = max(seen[what], int(n))

    forcing_call = forcing_module.WeatherGenerator._forcing
    step = column_module.ColumnModel.step
    observe = obs_module.SatelliteObserver.observe_columns

    def counted_forcing(self, kind, t):
        out = forcing_call(self, kind, t)
        record("weather", out["tair"].size)
        return out

    def counted_step(self, forcing, nsteps=1):
        if getattr(self, "world_block", False):  # the nature run and the spun-up ensemble column
            record("nature", self.ncol)
        return step(self, forcing, nsteps)

    block_model = spinup_module._block_model

    def tagged_block_model(*args):
        model = block_model(*args)
        model.world_block = True
        return model

    def counted_observe(self, truth, *args, **kwargs):
        record("observations", np.asarray(truth).size)
        return observe(self, truth, *args, **kwargs)

    forcing_module.WeatherGenerator._forcing = counted_forcing
    column_module.ColumnModel.step = counted_step
    obs_module.SatelliteObserver.observe_columns = counted_observe
    spinup_module._block_model = tagged_block_model
    cfg = load_config(None, [
        "domain.res=2.5", "experiment.days=2", "experiment.spinup_days=2", "ensemble.members=4",
        "ensemble.spread_days=1", 'analysis.methods=["openloop", "point_letkf"]', "output.plots=false",
    ])  # fmt: skip
    result = run(cfg, out, comm=comm, progress=False)
    everyone = comm.allgather(seen)
    if rank == 0:
        assert result is not None
        ncol = int(json.loads((out / "restart" / "day-00002" / "manifest.json").read_text())["ncol"])  # land columns
        for r, counts in enumerate(everyone):
            for what, n in counts.items():
                check(0 < n < ncol or P == 1, f"rank {r} made the {what} of {n} of {ncol} columns")
        check(sum(c["weather"] for c in everyone) == ncol, "the world blocks cover the domain once")
        check(sum(c["nature"] for c in everyone) == ncol, "the nature run's blocks cover the domain once")


moves()
bad_file(Path(sys.argv[1]))
cached_spinup(Path(sys.argv[1]) / f"cache{P}")
cycle(Path(sys.argv[1]) / f"run{P}")
if rank == 0:
    print(f"world blocks OK {P}", flush=True)
