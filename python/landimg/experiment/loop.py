"""The cycle: set-up, spin-up (or restart), then day by day forecast, analyses, record and restart.

One path of data through a day (every rank; rank 0 records):

    weather.truth(t) -> nature.step          weather.ensemble(t) -> moved -> Ensemble.advance (members perturbed)
    at each analysis time: nature's observed layer -> Observer -> y, ObsError -> gathered -> Ensemble.assimilate(y, err, method)
    end of day: ensemble means/spreads vs nature (gathered on rank 0) -> History (rank 0) -> restart (rank 0 writes)

The ranks are member groups x column blocks (``[parallel] column_blocks``, :class:`landimg.layout.Layout`):
each Ensemble steps its group's members on its block's columns. The nature run, the weather and the
observations live on the world blocks (:mod:`landimg.experiment.world`: the columns cut into one block per
rank, whatever the layout); the ensemble forcing is moved to the ensembles' blocks, the observations to
every rank, the reference and the nature state to rank 0. Every reduction is in member order and every
domain sum uses the fixed chunking of the columns, so results do not depend on the layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import DiskError, make_dirs
from landimg.da.obs_diagnostics import obs_space_stats
from landimg.experiment import metrics as _metrics
from landimg.experiment.config import Config, from_dict, input_files, to_toml
from landimg.experiment.history import LAYERS, SCORES, History
from landimg.experiment.obs import Stations
from landimg.experiment.progress import Progress
from landimg.experiment.restart import file_hashes, finish, load_for_resume, write_checkpoint
from landimg.experiment.setup import InputError, Setup, perturbation, setup
from landimg.experiment.spinup import new_nature, seed_members, spinup, spread_members, spun_up
from landimg.experiment.spinup_cache import check_cache_dir, spinup_key
from landimg.experiment.summary import summarize, write_outputs
from landimg.experiment.timing import Timings

__all__ = ["RunResult", "RunStopped", "run"]


class RunStopped(Exception):
    """The run stopped at a safe point (after the restart of ``day``) because a rank received ``signum``."""

    def __init__(self, day: int, signum: int) -> None:
        super().__init__(f"stopped after day {day} (signal {signum})")
        self.day, self.signum = day, signum


@dataclass
class RunResult:
    """What :func:`run` returns on rank 0 (None elsewhere)."""

    summary: dict[str, Any]
    history: History = field(repr=False)


@dataclass
class _Run:
    """The running experiment on this rank (``history`` only on rank 0; ``nature`` of the world block)."""

    cfg: Config
    s: Setup
    comm: Any
    nature: Any
    ensembles: dict[str, Any]
    column_blocks: int = 1
    history: History | None = None
    day0: int = 0
    wall_before: float = 0.0
    inputs: dict[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    saved_day: int | None = None  # the day of the restart on disk (None: none yet)
    mover: Any = None  # world blocks -> the ensembles' columns (ColumnMover)

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    def start_forcing(self, block: dict[str, np.ndarray]) -> Any:
        """Start moving the world block's ensemble forcing to the ensembles' columns; ``.wait()`` gives it.
        With a rain shift (``ensemble.rain_shift_km > 0``) on column blocks the precipitation of every column
        goes to every rank (the shift moves rain across blocks)."""
        moving = self.mover.start_dict(block)
        if not self.rain_whole:
            return moving
        precip = self.s.world.allgather(block["precip"])
        return _Finish(lambda: {**moving.wait(), "precip": precip})

    def forcing(self, t: float) -> dict[str, np.ndarray]:
        """The ensemble forcing at ``t`` s on the ensembles' columns: made on the world blocks, then moved."""
        return self.start_forcing(self.s.weather.ensemble(t)).wait()

    @property
    def rain_whole(self) -> bool:
        """The ensembles need the precipitation of every column (a rain shift on column blocks)."""
        first = next(iter(self.ensembles.values()))
        shift = getattr(first.perturber, "rain_shift", None) if first.perturber is not None else None
        return shift is not None and not first.layout.whole


@dataclass
class _Finish:
    """A computation to complete later (``wait()``)."""

    finish: Any

    def wait(self) -> Any:
        return self.finish()


def _ensembles(cfg: Config, s: Setup, comm: Any, column_blocks: int) -> dict[str, Any]:
    from landimg.ensemble.ensemble import Ensemble

    e = cfg.experiment
    return {
        name: Ensemble(s.domain.grid, cfg.ensemble.members, soil=s.soil_ensemble, dt=e.dt, seed=e.seed, comm=comm,
                       perturbation=perturbation(cfg), model_kwargs={"igbp": s.domain.igbp},
                       column_blocks=column_blocks)
        for name in s.methods
    }  # fmt: skip


def _start(
    cfg: Config,
    s: Setup,
    out: Path,
    comm: Any,
    resume: bool,
    prog: Progress,
    cache: Path | None,
    timings: Timings,
    column_blocks: int = 1,
) -> _Run:
    """The nature run and ensembles after the spin-up (from ``cache`` when it holds it), or from the restart."""
    ens = _ensembles(cfg, s, comm, column_blocks)
    r = _Run(cfg, s, comm, new_nature(cfg, s), ens, column_blocks, timings=timings)
    r.mover = s.world.mover(next(iter(r.ensembles.values())).layout)
    _instrument(r)  # before the spin-up: its model steps and perturbations count to their parts
    if r.rank == 0:
        r.inputs = file_hashes(input_files(cfg))
    if resume:
        tree = load_for_resume(out) if r.rank == 0 else None
        r.day0 = comm.bcast(int(tree["day"]) if r.rank == 0 else None, root=0)
        r.saved_day = r.day0
        r.nature.set_state(s.world.scatter_state(tree["nature"] if r.rank == 0 else None))
        # the AR(1) retrieval error (restarts without it: the chain is rerun from the first analysis)
        s.observer.synthetic.set_state(comm.bcast(tree.get("observer") if r.rank == 0 else None, root=0))
        for name, ens in r.ensembles.items():
            ens.scatter_state(tree["ensembles"][name] if r.rank == 0 else None)
        if r.rank == 0:
            r.history = History.from_tree(tree["history"], list(s.methods), cfg.ensemble.members)
            r.wall_before = float(tree["wall_seconds"])
        prog.log(f"resuming after day {r.day0}")
        if cfg.obs.cdf_match and s.observer.product is not None:
            spinup(cfg, s, comm)  # recomputes the open loop's climatology for the CDF matching
        return r
    t0 = time.perf_counter()
    with timings("spinup"):
        nature, member, status = spun_up(
            cfg, s, comm, cache, timings,
            lambda: spinup_key(cfg, s.domain, s.soil_true, s.soil_est, {"igbp": s.domain.igbp}),
            prog.phase(cfg.experiment.spinup_days, "spin-up day"),
        )  # fmt: skip
    r.nature.set_state(nature)
    seed_members(r.ensembles, r.mover.move_state(member))
    spread_members(cfg, s, r.ensembles, r.forcing)
    how = {"off": "", "hit": " (read from the spin-up cache)", "stored": " (stored in the spin-up cache)"}[
        status
    ]
    prog.log(f"spin-up of {cfg.experiment.spinup_days} days: {time.perf_counter() - t0:.1f} s{how}")
    if r.rank == 0:
        r.history = History.empty(
            cfg.experiment.days, s.domain.grid.shape, s.stations.n, list(s.methods), cfg.ensemble.members
        )
    _on_rank0(comm, lambda: make_dirs(out / "restart"), "nothing was kept")  # only now: set-up errors leave nothing
    return r


def _truth_layers(r: _Run) -> np.ndarray | None:
    """Nature run's verification-layer means of every column (nl, ncol) on rank 0 (None elsewhere), gathered
    from the world blocks (collective)."""
    return r.s.world.gather(r.nature.layer_mean(list(LAYERS))[:, :, 0])


def _verification(r: _Run, day: int, truth_cols: np.ndarray | None) -> np.ndarray | None:
    """The spatial metrics' reference of ``day``, (nl, ny, nx) on rank 0: the reference product's daily layer
    means when ``[reference]`` is given, else the nature run's ``truth_cols`` (:func:`_truth_layers`)."""
    if r.history is None:
        return None
    if r.s.reference is not None:
        return r.s.reference.daily[day]
    return r.s.domain.grid.to_image(truth_cols)


def _station_obs(r: _Run, truth_cols: np.ndarray | None, day: int) -> np.ndarray | None:
    """The stations' readings of ``day`` on rank 0 (collective): synthetic stations read the nature run on
    each world block (gathered in station order: blocks are in column order); others are read there."""
    st, world = r.s.stations, r.s.world
    if not isinstance(st, Stations):
        return None if r.history is None else st.observe(truth_cols[0], day)
    top = r.nature.layer_mean([LAYERS[0]])[0, :, 0]
    parts = world.comm.gather(st.observe(top, day, None if world.whole else world.columns), root=0)
    return None if r.history is None else np.concatenate(parts)


def _scores(means: list[np.ndarray] | np.ndarray, truth: np.ndarray, land: np.ndarray) -> np.ndarray:
    return np.array(
        [[_metrics.spatial_scores(means[i], truth[i], land)[k] for k in SCORES] for i in range(len(LAYERS))]
    )


def _background(r: _Run, day: int, truth_cols: np.ndarray | None) -> dict[str, np.ndarray]:
    """Background scores of ``day`` (recorded on rank 0); returns each method's observed-layer mean image."""
    grid, obs_depth = r.s.domain.grid, (0.0, r.cfg.analysis.obs_depth)
    truth = _verification(r, day, truth_cols)
    for name, ens in r.ensembles.items():
        means = [ens.mean_image(layer) for layer in LAYERS]
        if r.history is not None:
            r.history[name].scores_background[day] = _scores(means, truth, grid.land)
            r.history[name].mean_background[day] = np.stack(means)
    return {name: ens.mean_image(obs_depth) for name, ens in r.ensembles.items()}


def _record(
    r: _Run, day: int, obs_img: np.ndarray, bg_obs: dict[str, np.ndarray], clipped: dict[str, float],
    diags: dict[str, dict[str, Any]], truth_cols: np.ndarray | None,
) -> None:
    """Fill day ``day`` of the history (rank 0 stores; every rank computes the collective images)."""
    grid, s = r.s.domain.grid, r.s
    truth = _verification(r, day, truth_cols)
    station_obs = _station_obs(r, truth_cols, day)
    obs_depth = (0.0, r.cfg.analysis.obs_depth)
    per_method = {}
    for name, ens in r.ensembles.items():
        means = np.stack([ens.mean_image(layer) for layer in LAYERS])
        spreads = np.stack([ens.spread_image(layer) for layer in LAYERS])
        per_method[name] = (means, spreads, ens.mean_image(obs_depth))
    h = r.history
    if h is None:
        return
    h.truth[day], h.obs[day] = truth, obs_img
    h.n_obs[day] = int(np.isfinite(obs_img).sum())
    h.station_obs[day] = station_obs
    for name, (means, spreads, an_obs) in per_method.items():
        m = h[name]
        m.mean[day], m.spread[day] = means, spreads
        m.increment[day] = an_obs - bg_obs[name]
        m.scores[day] = _scores(means, truth, grid.land)
        m.station[day] = grid.to_columns(means[0])[s.stations.columns]
        m.clipped_water[day] = clipped[name]
        m.record_analysis(day, diags.get(name, {}))


def _read(r: _Run, day: int, source: Any, *args: Any) -> Any:
    """``source(*args)`` (forcing or observations); a problem of the input file becomes an InputError."""
    try:
        return source(*args)
    except (ValueError, OSError) as exc:
        kept = day > 0 and r.cfg.output.restart
        what = f"the restart after day {day} is kept: fix the input, then --resume" if kept else "no restart kept"
        raise InputError(f"{exc} (found during day {day + 1}; {what})") from exc


def _day(r: _Run, day: int) -> None:
    """Forecast steps, analyses and the record of one day."""
    cfg, s, e = r.cfg, r.s, r.cfg.experiment
    grid, spd, spa = s.domain.grid, cfg.steps_per_day, cfg.steps_per_analysis
    obs_depth, window = (0.0, cfg.analysis.obs_depth), cfg.analysis.interval_hours / 24.0
    clipped = dict.fromkeys(r.ensembles, 0.0)
    diags: dict[str, dict[str, Any]] = {}
    obs_img = np.full(grid.shape, np.nan)
    bg_obs: dict[str, np.ndarray] = {}
    truth_cols = None
    for step in range(spd):
        k = day * spd + step
        moving = r.start_forcing(_read(r, day, s.weather.ensemble, k * e.dt))  # flies while nature steps
        r.nature.step(_read(r, day, s.weather.truth, k * e.dt))
        with r.timings("forcing"):
            fe = moving.wait()
        for ens in r.ensembles.values():
            ens.advance(fe, 1, t=k * e.dt)
        last = step == spd - 1
        if last:  # the day's reference, on rank 0 (the nature run does not change in the analyses)
            truth_cols = _truth_layers(r)
        if (k + 1) % spa != 0:
            continue
        # analysis time (end of the step): the world blocks' observations, then every column on every rank
        t_days = (k + 1) * e.dt / 86400.0 - window
        truth_obs = r.nature.layer_mean([obs_depth])[0, :, 0]
        frozen = r.nature.frozen()[:, 0].astype(bool)
        y, err = _read(r, day, s.observer, truth_obs, t_days, frozen, window, (k + 1) // spa - 1)
        y = grid.to_image(s.world.allgather(y))
        ystd = err.std if np.ndim(err.std) == 0 else grid.to_image(err.std)  # total std, for the diagnostics
        obs_img = np.where(np.isfinite(y), y, obs_img)
        if last:
            bg_obs = _background(r, day, truth_cols)
        for name, ens in r.ensembles.items():
            members_b = ens.images(obs_depth, gather=True) if last else None
            diag = ens.assimilate(y, err, s.methods[name])
            clipped[name] += float(diag.get("clipped_water_kg_m2", 0.0))
            if last:  # observation-space diagnostics of the day's last analysis (identical on all ranks)
                diag["obs_space"] = obs_space_stats(
                    members_b, ens.images(obs_depth, gather=True), y, ystd,
                    rng=np.random.Generator(np.random.PCG64([e.seed, day, 0x0B5])),
                )  # fmt: skip
                diags[name] = diag
    if not bg_obs:  # no analysis at the end of this day (interval > 24 h)
        bg_obs = _background(r, day, truth_cols)
    _record(r, day, obs_img, bg_obs, clipped, diags, truth_cols)


def _instrument(r: _Run) -> None:
    """Count the model steps, perturbations and analyses of the run to their parts of ``r.timings``."""
    t = r.timings
    t.instrument(r.nature, "step", "model")
    t.instrument(r.mover, "start_dict", "forcing")
    t.instrument(r.mover, "move_dict", "forcing")
    for name, ens in r.ensembles.items():
        t.instrument(ens.model, "step", "model")
        t.instrument(ens, "assimilate", "analysis", label=name)  # and each method's own CPU seconds
        if ens.perturber is not None:
            t.instrument(ens.perturber, "advance", "perturbations")
            t.instrument(ens.perturber, "apply", "perturbations")


def _column_blocks(cfg: Config, s: Setup, comm: Any) -> int:
    """``K`` of ``[parallel] column_blocks`` on this run's ranks (InputError, one line, when the ranks are
    not G x K, a group would hold no member, or the domain has fewer column chunks)."""
    from landimg.layout import LayoutError, resolve_column_blocks

    try:
        return resolve_column_blocks(
            cfg.parallel.column_blocks, comm.Get_size(), cfg.ensemble.members, s.domain.grid.ncol
        )
    except LayoutError as exc:
        raise InputError(str(exc)) from None


def _check_memory(cfg: Config, s: Setup | None, comm: Any, column_blocks: int | None = None) -> None:
    """Refuse (InputError, the same on every rank) a run whose estimated memory exceeds what a node has.

    Without a set-up (``s`` None), the grid's size and land columns come from the configuration
    (:func:`~landimg.experiment.memory.config_grid`): the check runs before any array of the grid's size
    is made (the layout's column blocks from those columns too; a layout that cannot be made is left to
    the check on the built grid); with it, from the grid built.
    """
    from landimg.experiment import memory
    from landimg.layout import LayoutError, resolve_column_blocks

    if s is None:
        shape, ncol = memory.config_grid(cfg)
        try:
            column_blocks = resolve_column_blocks(
                cfg.parallel.column_blocks, comm.Get_size(), cfg.ensemble.members, ncol
            )
        except LayoutError:
            column_blocks = 1
    else:
        shape, ncol = s.domain.grid.shape, s.domain.grid.ncol
    est = memory.estimate_memory(
        cfg, shape, ncol, comm.Get_size(), memory.ranks_on_node(comm), column_blocks or 1
    )
    found = [m for m in comm.allgather(memory.memory_error(est, memory.available_bytes())) if m]
    if found:
        raise InputError(found[0])


def _on_rank0(comm: Any, work: Callable[[], Any], kept: str) -> Any:
    """``work()`` on rank 0 (its result there, None elsewhere); a disk refusing a write there
    (:class:`~landimg.atomic.DiskError`) is raised on every rank, its message ending with ``kept``
    (what is on disk and how to go on), so all ranks end with the same one line."""
    result, failed = None, None
    if comm.Get_rank() == 0:
        try:
            result = work()
        except DiskError as exc:
            failed = exc.with_hint(kept)
    failed = comm.bcast(failed, root=0)
    if failed is not None:
        raise failed
    return result


def _kept(r: _Run, outputs: bool = False) -> str:
    """What a run stopped by a disk error keeps, and how to go on."""
    if r.saved_day is None:
        return "nothing was kept"
    then = "--resume writes the outputs" if outputs else "continue with --resume"
    return f"the restart after day {r.saved_day} is kept: free space or fix the permissions, then {then}"


def _checkpoint(r: _Run, out: Path, day: int, t_start: float) -> None:
    """The restart after ``day`` complete days (collective gathers; rank 0 writes atomically)."""
    states = {name: ens.gather_state() for name, ens in r.ensembles.items()}
    nature = r.s.world.gather_state(r.nature.get_state())

    def write() -> None:
        wall = r.wall_before + time.perf_counter() - t_start
        write_checkpoint(out, day, nature, states, r.history, wall, to_toml(r.cfg), r.inputs,
                         observer=r.s.observer.synthetic.get_state())  # fmt: skip

    _on_rank0(r.comm, write, _kept(r))
    r.saved_day = day


def run(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    comm: Any = None,
    progress: bool = True,
    stop_after_days: int | None = None,
    stop: Any = None,
    spinup_cache: str | Path | None = None,
    notices: Any = None,
) -> RunResult | None:
    """Run (or resume) the experiment of ``cfg`` writing into ``out``.

    Parameters
    ----------
    cfg : Config
    out : str or Path
        Output directory; created after the set-up and spin-up (rank 0) unless resuming.
    resume : bool
        Continue from ``out/restart/restart.npz``.
    comm : communicator, optional
        Default: MPI.COMM_WORLD (or serial).
    progress : bool
        Print progress on rank 0.
    stop_after_days : int, optional
        Stop (after writing the restart) once this many days are complete — for tests of ``--resume``.
    stop : landimg.parallel.StopRequest, optional
        Signal handling: armed once a restart exists; a signal then stops the run after the next
        day's restart (:class:`RunStopped` on every rank).
    spinup_cache : str or Path, optional
        Directory of spun-up states (:mod:`landimg.experiment.spinup_cache`): a spin-up found there is
        read instead of run (bitwise the same states), one not found is run and stored.
    notices : landimg.notices.WarningLog, optional
        Flushed after the set-up and after the spin-up, so that warnings about the inputs appear then.

    Returns
    -------
    RunResult on rank 0 once the run is complete, None elsewhere (or when stopped early).

    Raises
    ------
    InputError
        An input cannot be used (before any step, or found while reading it mid-run).
    RunStopped
        A signal asked to stop (see ``stop``); the restart of the last complete day is kept.
    """
    from landimg.parallel import default_comm

    comm = default_comm() if comm is None else comm
    out, t_start, timings = Path(out), time.perf_counter(), Timings()
    rank, size, e = comm.Get_rank(), comm.Get_size(), cfg.experiment
    try:
        _check_memory(cfg, None, comm)  # sizes from the configuration, before any array is made
    except OSError as exc:  # the land-mask cache
        raise InputError(str(exc)) from exc
    s = setup(cfg, comm, progress=progress and rank == 0)
    grid = s.domain.grid
    k = _column_blocks(cfg, s, comm)
    _check_memory(cfg, s, comm, k)
    cache = None if spinup_cache is None or resume else Path(spinup_cache)
    if cache is not None:
        try:
            check_cache_dir(cache)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    timings.instrument(s.weather, "truth", "forcing")
    timings.instrument(s.weather, "ensemble", "forcing")
    prog = Progress(e.days, cfg.output.log_every_days, progress and rank == 0)
    prog.log(
        f"{'bbox' if cfg.domain.bbox else cfg.domain.preset} {grid.shape[0]}x{grid.shape[1]} ({grid.ncol} land columns), {cfg.ensemble.members} members"
        f" x {len(s.methods)} methods ({', '.join(s.methods)}) on {size} rank(s) ({size // k} member groups"
        f" x {k} column blocks), {e.days} days"
    )
    if not cfg.ensemble.perturb and set(s.methods) - {"openloop"}:
        prog.log("warning: ensemble.perturb = false: all members are identical, so the EnKFs make no update")
    flush = notices.flush if notices is not None else (lambda: None)
    flush()
    r = _start(cfg, s, out, comm, resume, prog, cache, timings, k)
    flush()
    for day in range(r.day0, e.days):
        _day(r, day)
        if cfg.output.restart or day + 1 == e.days or stop_after_days == day + 1:
            with timings("output"):
                _checkpoint(r, out, day + 1, t_start)
            if stop is not None and cfg.output.restart and day + 1 < e.days:  # the last day just completes
                stop.armed = True
                if signum := stop.agreed(comm):
                    raise RunStopped(day + 1, signum)
        if r.history is not None:
            scores = " ".join(f"{m} {h.scores[day, 0, 0]:.2f}" for m, h in r.history.methods.items())
            prog.update(day + 1, "0-10cm r: " + scores)
        if stop_after_days is not None and day + 1 >= stop_after_days and day + 1 < e.days:
            return None
    per_rank = comm.allgather(dict(timings.labelled_cpu_seconds))  # every rank: each method's analyses
    summary = _on_rank0(comm, lambda: _finish(r, out, t_start, per_rank, k), _kept(r, outputs=True))
    return None if r.history is None else RunResult(summary=summary, history=r.history)


def _finish(
    r: _Run, out: Path, t_start: float, per_rank: list[dict[str, float]], k: int
) -> dict[str, Any]:
    """Rank 0 after the last day: summary.json, the output files, the previous restart removed
    (``per_rank``: every rank's CPU seconds per method's analyses; ``k``: the layout's column blocks)."""
    from landimg.experiment.output import write_json

    cfg, timings, size = r.cfg, r.timings, r.comm.Get_size()
    summary = summarize(
        cfg, r.history, list(r.ensembles), r.wall_before + time.perf_counter() - t_start, size
    )
    summary["layout"] = {"ranks": size, "member_groups": size // k, "column_blocks": k}
    with timings("output"):
        write_outputs(cfg, r.s.domain.grid, r.s.stations, out, r.history, timings)
    summary["wall_seconds"] = r.wall_before + time.perf_counter() - t_start
    summary["timing_seconds"] = timings.report()  # this session on rank 0 (a resumed run: since the resume)
    summary["timing_cpu_seconds"] = timings.report(cpu=True)
    summary["analysis_cpu_seconds"] = {  # the largest rank; this session (a resumed run: since the resume)
        name: round(max(p.get(name, 0.0) for p in per_rank), 3) for name in r.ensembles
    }
    write_json(out / "summary.json", summary)
    finish(out)
    return summary


def saved_config(out: Path) -> Config:
    """The configuration stored in ``out``'s restart (an earlier version's keys translated).

    Raises RestartError (missing or corrupt restart) or ConfigError.
    """
    import tomllib

    return from_dict(
        tomllib.loads(str(load_for_resume(out)["config_toml"])), source=f"{out}/restart", legacy=True
    )
