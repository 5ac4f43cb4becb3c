"""The cycle: set-up, spin-up (or restart), then day by day forecast, analyses, record and restart.

One path of data through a day (every rank; rank 0 records):

    weather.truth(t) -> nature.step          weather.ensemble(t) -> moved -> Ensemble.advance (members perturbed)
    at each analysis time: nature's observed layer -> Observer -> y, ObsError -> gathered -> Ensemble.assimilate(y, err, method)
    end of day: block means/spreads (member order) -> score sums (block; the reference moved there) and,
                gathered, the day's images and scores (rank 0) -> appended to analysis.nc / metrics.nc
                -> sharded restart (every rank its block of the ensembles and of the world)

The ranks are member groups x column blocks (``[parallel] column_blocks``, :class:`landimg.layout.Layout`):
each Ensemble steps its group's members on its block's columns. The nature run, the weather and the
observations live on the world blocks (:mod:`landimg.experiment.world`: the columns cut into one block per
rank, whatever the layout); the ensemble forcing is moved to the ensembles' blocks, the observations to
every rank, the reference to rank 0 and to the score sums' blocks. Every reduction is in member order and
every domain sum uses the fixed chunking of the columns, so results do not depend on the layout.

The run's state on a rank is a :class:`~landimg.experiment.run_state.RunState`; the restart written after a
day and read on ``--resume`` is :mod:`landimg.experiment.checkpoint`'s.
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
from landimg.experiment import checkpoint
from landimg.experiment import metrics as _metrics
from landimg.experiment.config import Config, from_dict, input_files
from landimg.experiment.figure import available as plot_available
from landimg.experiment.history import LAYERS, SCORES, DayImages, History, ScoreSums, period_time_scores
from landimg.experiment.ncfiles import ExperimentFiles
from landimg.experiment.obs import Stations
from landimg.experiment.plot import figures_of
from landimg.experiment.progress import Progress
from landimg.experiment.restart import file_hashes, finish, load_for_resume
from landimg.experiment.run_state import RunState
from landimg.experiment.setup import InputError, Setup, perturbation, setup
from landimg.experiment.spinup import new_nature, seed_members, spinup, spread_members, spun_up
from landimg.experiment.spinup_cache import check_cache_dir, spinup_key
from landimg.experiment.summary import summarize, write_plots
from landimg.experiment.timing import Timings

__all__ = ["RunResult", "RunStopped", "run"]


class RunStopped(Exception):
    """The run stopped at a safe point (after the restart of ``day``) because a rank received ``signum``."""

    def __init__(self, day: int, signum: int) -> None:
        super().__init__(f"stopped after day {day} (signal {signum})")
        self.day, self.signum = day, signum


@dataclass
class RunResult:
    """What :func:`run` returns on rank 0 (None elsewhere): the summary and the small daily record (the
    images are in ``analysis.nc``)."""

    summary: dict[str, Any]
    history: History = field(repr=False)


def _ensembles(cfg: Config, s: Setup, comm: Any, column_blocks: int) -> dict[str, Any]:
    from landimg.ensemble.ensemble import Ensemble
    from landimg.ensemble.perturb import SharedDraws

    e = cfg.experiment
    shared = SharedDraws()  # the methods' ensembles draw the same perturbations: computed once
    return {
        name: Ensemble(s.domain.grid, cfg.ensemble.members, soil=s.soil_ensemble, dt=e.dt, seed=e.seed, comm=comm,
                       perturbation=perturbation(cfg), model_kwargs={"igbp": s.domain.igbp},
                       column_blocks=column_blocks, shared_draws=shared)
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
) -> RunState:
    """The nature run and ensembles after the spin-up (from ``cache`` when it holds it), or from the restart."""
    ens = _ensembles(cfg, s, comm, column_blocks)
    s.release_soil()  # each ensemble holds its part of the members' soil
    r = RunState(cfg, s, comm, new_nature(cfg, s), ens, column_blocks, timings=timings)
    r.mover = s.world.mover(next(iter(r.ensembles.values())).layout)
    _instrument(r)  # before the spin-up: its model steps and perturbations count to their parts
    _new_record(r, out)
    if r.rank == 0:
        r.inputs = file_hashes(input_files(cfg))
    if resume:
        checkpoint.resume(r, out)
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

    def begin() -> None:  # only now: set-up errors leave nothing
        make_dirs(out / "restart")
        if r.files is not None:
            r.files.create()

    _on_rank0(comm, begin, "nothing was kept")
    return r


def _new_record(r: RunState, out: Path) -> None:
    """The (empty) record of the run: history and files on rank 0, score sums on member group 0."""
    cfg, s = r.cfg, r.s
    methods = list(s.methods)
    if r.rank == 0:
        r.history = History.empty(cfg.experiment.days, s.stations.n, methods, cfg.ensemble.members)
        if cfg.output.netcdf:
            r.files = ExperimentFiles(out, cfg, s.domain.grid, s.stations, methods, cfg.ensemble.members)
    if r.layout.group == 0:
        r.sums = ScoreSums(methods, r.layout.ncol_local)


@dataclass
class _Truth:
    """The nature run's verification layers of a day where they are needed: ``nature`` and ``reference``
    (the spatial metrics' reference: the reference product's daily layer means when ``[reference]`` is
    given, else the nature run's) at every column (nl, ncol) on rank 0, ``block`` the reference at this
    rank's model block (nl, ncol_local) on member group 0 (the score sums); None elsewhere."""

    nature: np.ndarray | None
    reference: np.ndarray | None
    block: np.ndarray | None


def _truth(r: RunState, day: int) -> _Truth:
    """:class:`_Truth` of ``day`` (collective): the nature run's layers made on the world blocks, gathered on
    rank 0 and moved to the model blocks."""
    local = r.nature.layer_mean(list(LAYERS))[:, :, 0]
    nature = r.s.world.gather(local)
    nature = nature if r.rank == 0 else None
    if r.s.reference is None:
        moved = r.mover.move(local)
        return _Truth(nature, nature, moved if r.sums is not None else None)
    full = r.s.domain.grid.to_columns(r.s.reference.daily[day])
    return _Truth(nature, full if r.rank == 0 else None, _block(r, full) if r.sums is not None else None)


def _station_obs(r: RunState, truth_cols: np.ndarray | None, day: int) -> np.ndarray | None:
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


def _block(r: RunState, values: np.ndarray) -> np.ndarray:
    """This rank's columns of values of every column (..., ncol)."""
    return values[..., r.layout.col_start : r.layout.col_stop]


def _background(r: RunState, day: int, images: DayImages | None, truth: _Truth) -> dict[str, np.ndarray]:
    """The background of ``day`` (just before its last analysis): each method's block means (score sums),
    gathered on rank 0 for its scores and images. Returns (rank 0) each method's observed-layer mean at
    every column, for the increments."""
    grid, nl = r.s.domain.grid, len(LAYERS)
    bg_obs = {}
    for name, ens in r.ensembles.items():
        mean = ens.layer_stats([*LAYERS, (0.0, r.cfg.analysis.obs_depth)])  # (nl + 1, ncol_local)
        if r.sums is not None and day >= r.scored:
            r.sums.add(name, "background", mean[:nl], truth.block)
        full = ens.layout.gather_columns(mean, root=0)
        if r.history is not None:
            means = grid.to_image(full[:nl])
            r.history[name].scores_background[day] = _scores(means, grid.to_image(truth.reference), grid.land)
            images.mean_background[name] = means.astype(np.float32)
            bg_obs[name] = full[nl]
    return bg_obs


def _record(
    r: RunState, day: int, obs_img: np.ndarray, bg_obs: dict[str, np.ndarray], images: DayImages | None,
    clipped: dict[str, float], diags: dict[str, dict[str, Any]], truth: _Truth,
) -> None:  # fmt: skip
    """The record of day ``day``: score sums on the blocks; on rank 0 the scores, station series and the
    day's images, appended to the files (collective: block means gathered on rank 0)."""
    grid, s, nl = r.s.domain.grid, r.s, len(LAYERS)
    station_obs = _station_obs(r, truth.nature, day)
    gathered = {}
    for name, ens in r.ensembles.items():
        mean, spread = ens.layer_stats([*LAYERS, (0.0, r.cfg.analysis.obs_depth)], spread=True)
        if r.sums is not None and day >= r.scored:
            r.sums.add(name, "analysis", mean[:nl], truth.block)
        gathered[name] = ens.layout.gather_columns(np.concatenate([mean, spread[:nl]]), root=0)
    h = r.history
    if h is None:
        return
    reference = grid.to_image(truth.reference)
    images.truth, images.obs = reference.astype(np.float32), obs_img.astype(np.float32)
    h.n_obs[day] = int(np.isfinite(obs_img).sum())
    h.station_obs[day] = station_obs
    for name, full in gathered.items():
        means, m = grid.to_image(full[:nl]), h[name]
        images.mean[name] = means.astype(np.float32)
        images.spread[name] = grid.to_image(full[nl + 1 :]).astype(np.float32)
        images.increment[name] = grid.to_image(full[nl] - bg_obs[name]).astype(np.float32)
        m.scores[day] = _scores(means, reference, grid.land)
        m.station[day] = full[0][s.stations.columns]
        m.clipped_water[day] = clipped[name]
        m.record_analysis(day, diags.get(name, {}))
    if r.files is not None:
        r.files.append(day, images, h)
    r.last = images if r.cfg.output.plots else None


def _read(r: RunState, day: int, source: Any, *args: Any) -> Any:
    """``source(*args)`` (forcing or observations); a problem of the input file becomes an InputError."""
    try:
        return source(*args)
    except (ValueError, OSError) as exc:
        kept = day > 0 and r.cfg.output.restart
        what = f"the restart after day {day} is kept: fix the input, then --resume" if kept else "no restart kept"
        raise InputError(f"{exc} (found during day {day + 1}; {what})") from exc


def _day(r: RunState, day: int, out: Path) -> None:
    """Forecast steps, analyses and the record of one day (appended to the files on rank 0)."""
    cfg, s, e = r.cfg, r.s, r.cfg.experiment
    grid, spd, spa = s.domain.grid, cfg.steps_per_day, cfg.steps_per_analysis
    obs_depth, window = (0.0, cfg.analysis.obs_depth), cfg.analysis.interval_hours / 24.0
    clipped = dict.fromkeys(r.ensembles, 0.0)
    diags: dict[str, dict[str, Any]] = {}
    obs_img = np.full(grid.shape, np.nan)
    images = DayImages(truth=np.empty(0), obs=np.empty(0)) if r.rank == 0 else None
    bg_obs: dict[str, np.ndarray] | None = None
    truth: _Truth | None = None
    for step in range(spd):
        k = day * spd + step
        moving = r.start_forcing(_read(r, day, s.weather.ensemble, k * e.dt))  # flies while nature steps
        r.nature.step(_read(r, day, s.weather.truth, k * e.dt))
        with r.timings("forcing"):
            fe = moving.wait()
        for ens in r.ensembles.values():
            ens.advance(fe, 1, t=k * e.dt)
        last = step == spd - 1
        if last:  # the day's reference (the nature run does not change in the analyses)
            truth = _truth(r, day)
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
            bg_obs = _background(r, day, images, truth)
        for name, ens in r.ensembles.items():
            members_b = ens.images(obs_depth, root=0) if last else None  # every member: on rank 0 only
            diag = ens.assimilate(y, err, s.methods[name])
            clipped[name] += float(diag.get("clipped_water_kg_m2", 0.0))
            if last:  # observation-space diagnostics of the day's last analysis (rank 0)
                members_a = ens.images(obs_depth, root=0)
                if r.rank == 0:
                    diag["obs_space"] = obs_space_stats(
                        members_b, members_a, y, ystd, rng=np.random.Generator(np.random.PCG64([e.seed, day, 0x0B5])),
                    )  # fmt: skip
                diags[name] = diag
    if bg_obs is None:  # no analysis at the end of this day (interval > 24 h)
        bg_obs = _background(r, day, images, truth)
    _record_agreed(r, day, obs_img, bg_obs, images, clipped, diags, truth)


def _record_agreed(r: RunState, day: int, *args: Any) -> None:
    """:func:`_record`, with a disk refusing the append on rank 0 raised on every rank (one line)."""
    failed = None
    try:
        _record(r, day, *args)
    except DiskError as exc:
        failed = exc.with_hint(checkpoint.kept(r))
    if r.comm.Get_size() > 1:
        failed = r.comm.bcast(failed, root=0)
    if failed is not None:
        raise failed


def _instrument(r: RunState) -> None:
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
        Continue from the newest restart in ``out/restart`` (written on any layout).
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
        _day(r, day, out)
        if cfg.output.restart or day + 1 == e.days or stop_after_days == day + 1:
            stopping = stop is not None and cfg.output.restart and day + 1 < e.days  # the last day completes
            if stopping:  # armed before the restart is written: a signal meanwhile waits for it on every rank
                stop.armed = True  # (armed after it, a rank could still be unarmed once the manifest exists)
            with timings("output"):
                checkpoint.save(r, out, day + 1, t_start)
            if stopping and (signum := stop.agreed(comm)):
                raise RunStopped(day + 1, signum)
        if r.history is not None:
            scores = " ".join(f"{m} {h.scores[day, 0, 0]:.2f}" for m, h in r.history.methods.items())
            prog.update(day + 1, "0-10cm r: " + scores)
        if stop_after_days is not None and day + 1 >= stop_after_days and day + 1 < e.days:
            return None
    per_rank = comm.allgather(dict(timings.labelled_cpu_seconds))  # every rank: each method's analyses
    pixels = None if r.sums is None else r.layout.gather_columns(r.sums.per_pixel(), root=0)
    plotted = _plots_elsewhere(r, out)  # ranks > 0: their share of the figures; rank 0's in _finish
    summary = _on_rank0(
        comm, lambda: _finish(r, out, t_start, per_rank, k, pixels), checkpoint.kept(r, outputs=True)
    )
    if size > 1 and (failed := next((f for f in comm.allgather(plotted) if f is not None), None)) is not None:
        raise failed
    return None if r.history is None else RunResult(summary=summary, history=r.history)


def _plots_elsewhere(r: RunState, out: Path) -> Exception | None:
    """On ranks > 0, their share of the figures (:func:`~landimg.experiment.plot.figures_of`: made at the same
    time as rank 0 makes its own in :func:`_finish`), from the small record and the last day's images that
    rank 0 sends them (a few MB); the error of one that failed (a disk refusing it, or any other: returned,
    not raised, so that every rank still meets rank 0 after the finish and raises it there, none left
    waiting), else None. Collective; nothing with one rank or without plots."""
    size = r.comm.Get_size()
    if size == 1 or not r.cfg.output.plots:
        return None
    mine = figures_of(r.rank, size)
    if not any(figures_of(rank, size) for rank in range(1, size)):
        return None
    history, last = r.comm.bcast((r.history, r.last) if r.rank == 0 else None, root=0)
    if r.rank == 0 or not mine or not plot_available():  # without matplotlib rank 0 alone says so
        return None
    try:
        write_plots(r.cfg, r.s.domain.grid, out, history, last, r.timings, mine)
    except DiskError as exc:
        return exc.with_hint(checkpoint.kept(r, outputs=True))
    except Exception as exc:  # noqa: BLE001 -- raised on every rank after the finish (no rank left waiting)
        return exc
    return None


def _finish(
    r: RunState, out: Path, t_start: float, per_rank: list[dict[str, float]], k: int, pixels: np.ndarray
) -> dict[str, Any]:
    """Rank 0 after the last day: summary.json, its share of the plots (the other ranks make theirs at the
    same time, :func:`_plots_elsewhere`; the summary's "plots" timing is rank 0's), the files' twins and the
    previous restart removed (``per_rank``: every rank's CPU seconds per method's analyses; ``k``: the
    layout's column blocks; ``pixels``: the temporal scores per pixel of every column,
    :meth:`ScoreSums.per_pixel`)."""
    from landimg.experiment.output import write_json

    cfg, timings, size = r.cfg, r.timings, r.comm.Get_size()
    temporal = period_time_scores(pixels, list(r.ensembles))
    summary = summarize(
        cfg, r.history, list(r.ensembles), r.wall_before + time.perf_counter() - t_start, size, temporal
    )
    summary["layout"] = {"ranks": size, "member_groups": size // k, "column_blocks": k}
    with timings("output"):
        write_plots(cfg, r.s.domain.grid, out, r.history, r.last, timings, figures_of(0, size))
    summary["wall_seconds"] = r.wall_before + time.perf_counter() - t_start
    summary["timing_seconds"] = timings.report()  # this session on rank 0 (a resumed run: since the resume)
    summary["timing_cpu_seconds"] = timings.report(cpu=True)
    summary["analysis_cpu_seconds"] = {  # the largest rank; this session (a resumed run: since the resume)
        name: round(max(p.get(name, 0.0) for p in per_rank), 3) for name in r.ensembles
    }
    write_json(out / "summary.json", summary)
    if r.files is not None:
        r.files.finish()
    finish(out)
    return summary


def saved_config(out: Path) -> Config:
    """The configuration stored in ``out``'s restart. The restart's schema (:data:`~landimg.experiment.restart.
    RESTART_SCHEMA`) fixes its keys: a restart of another schema is refused before this is read, so no key
    is guessed or translated here (:mod:`landimg.experiment.legacy` translates configuration files of
    earlier versions only when asked, ``from_dict(legacy=True)``).

    Raises RestartError (missing, corrupt or of another schema) or ConfigError.
    """
    import tomllib

    return from_dict(tomllib.loads(str(load_for_resume(out)["config_toml"])), source=f"{out}/restart")
