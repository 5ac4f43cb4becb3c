"""The main program: a soil-moisture assimilation experiment, end to end.

    mpirun -n N python -m mpi4py -m landimg.cycle [--config FILE] [--set section.key=value ...] --out DIR [--resume]
    python -m landimg.cycle --print-config

A nature run (true weather, true soil) plays the reference; synthetic satellite retrievals of its top
soil layer and station readings are drawn from it; open loop, point EnKF and curvelet EnKF ensembles run
side by side on the same degraded, perturbed forcing and the same observations (three Ensembles with
the same seed). Daily metrics against the nature run go to ``summary.json``, CF-netCDF files and plots.

Restarts (``DIR/restart/restart.npz``) are written atomically after every day's analysis; ``--resume``
continues a stopped run bitwise identically. Ranks split the members; all results are independent of
the number of ranks.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landimg import __version__ as _landimg_version
from landimg.experiment import metrics as _metrics
from landimg.experiment.config import Config, ConfigError, from_dict, load_config, to_dict, to_toml
from landimg.experiment.domain import Domain, build_domain
from landimg.experiment.forcing import FileForcing, WeatherGenerator
from landimg.experiment.io import OutputDirError, load_restart, prepare_out_dir, save_restart, write_json
from landimg.experiment.obs import FileObservations, FileStations, SatelliteObserver, Stations

__all__ = ["RESTART_NAME", "InputError", "build_methods", "main", "run"]

RESTART_NAME = "restart/restart.npz"
_LAYERS = _metrics.LAYERS
_LAYER_NAMES = [_metrics.layer_name(layer) for layer in _LAYERS]
_SCORES = ("spatial_corr", "ubrmse", "bias")
_OBS_SPACE = ("omb_mean", "omb_rms", "oma_mean", "oma_rms", "spread_b", "spread_a", "obs_err", "consistency", "n_obs")
_MAX_SCALES = 8


# ---------------------------------------------------------------------------------------------- setup
class InputError(ValueError):
    """A user input (a data file, or the domain it implies) cannot be used; raised before any step is run."""


def build_methods(cfg: Config) -> dict[str, Any]:
    """The analysis method objects of ``cfg.analysis.methods`` (name -> OpenLoop/PointEnKF/CurveletEnKF)."""
    from landimg import analysis

    a = cfg.analysis
    depth = (0.0, a.obs_depth)
    makers = {
        "openloop": lambda: analysis.OpenLoop(),
        "point_enkf": lambda: analysis.PointEnKF(
            inflation_mode=cfg.ensemble.inflation_mode,
            radius_km=a.localization_km, max_obs=a.point_max_obs, inflation=cfg.ensemble.inflation, obs_depth=depth
        ),
        "curvelet_enkf": lambda: analysis.CurveletEnKF(
            pooling=a.curvelet_pooling, variance_support=a.curvelet_variance_support,
            inflation=cfg.ensemble.inflation, inflation_mode=cfg.ensemble.inflation_mode,
            obs_corr_km=a.curvelet_obs_corr_km,
            obs_white_fraction=a.curvelet_obs_white_fraction if a.curvelet_obs_white_fraction >= 0 else None,
            nscales=a.curvelet_nscales or None, nangles_coarse=a.curvelet_nangles, finest=a.curvelet_finest,
            obs_depth=depth, deep_regression=a.deep_regression, solver=a.curvelet_solver,
        ),
    }  # fmt: skip
    return {name: makers[name]() for name in a.methods}


def _perturbation(cfg: Config):
    from landimg.ensemble.perturb import ForcingPerturbation

    e = cfg.ensemble
    if not e.perturb:
        return None
    return ForcingPerturbation(
        std=(e.precip_sigma, e.swdown_sigma, e.lwdown_std, e.tair_std),
        tau_hours=e.tau_hours,
        length_km=e.corr_length_km,
        rain_error_std=e.rain_error_std,
        rain_error_tau_days=e.rain_error_tau_days,
        rain_error_km=e.rain_error_km,
    )


class _Weather:
    """truth(t) / ensemble(t): the synthetic generator, or user files where configured."""

    def __init__(self, cfg: Config, domain: Domain) -> None:
        grid, f = domain.grid, cfg.forcing
        gen = WeatherGenerator(grid, domain.aridity, f, cfg.experiment.seed, cfg.experiment.start)
        self.truth = FileForcing(f.true_file, grid, cfg.experiment.start) if f.true_file else gen.truth
        self.ensemble = (
            FileForcing(f.ensemble_file, grid, cfg.experiment.start) if f.ensemble_file else gen.ensemble
        )
        e = cfg.experiment
        for source in (self.truth, self.ensemble):
            if isinstance(source, FileForcing):  # the run reads t = -spin-up .. end of the last day
                source.check_covers(-e.spinup_days * 86400.0, e.days * 86400.0 - e.dt)


class _Observer:
    """Satellite retrievals (synthetic from the nature run, or a user file) for an analysis window."""

    def __init__(self, cfg: Config, grid: Any) -> None:
        self.cfg = cfg
        self.synthetic = SatelliteObserver(grid, cfg.obs, cfg.experiment.seed)
        self.file = FileObservations(cfg.obs.file, grid, cfg.experiment.start) if cfg.obs.file else None
        if self.file is not None and self.file.days_with_records(cfg.experiment.days) == 0:
            raise ValueError(
                f"{cfg.obs.file}: no record falls in the {cfg.experiment.days} days from experiment.start "
                f"{cfg.experiment.start}: check the file's time axis and units"
            )

    def __call__(self, truth: np.ndarray, t_days: float, frozen: np.ndarray, window: float, index: int):
        """(observation image (ny, nx) NaN = missing, error std: float or image)."""
        if self.file is None:
            y = self.synthetic.observe(truth, t_days, frozen, window_days=window, index=index)
            return y, self.cfg.obs.error_std
        y, err = self.file.observe(int(np.floor(t_days + window - 1e-9)))
        y = np.where(frozen, np.nan, y)
        if err is None:
            return y, self.cfg.obs.error_std
        return y, np.where(np.isfinite(err), err, self.cfg.obs.error_std)


@dataclass
class _Setup:
    cfg: Config
    domain: Domain
    weather: _Weather
    observer: _Observer
    stations: Stations | FileStations
    soil_true: Any
    soil_est: Any
    methods: dict[str, Any]


def _setup(cfg: Config) -> _Setup:
    from landimg.model import soil

    domain = build_domain(cfg)
    grid = domain.grid
    return _Setup(
        cfg=cfg,
        domain=domain,
        weather=_Weather(cfg, domain),
        observer=_Observer(cfg, grid),
        stations=(
            FileStations(cfg.obs.stations_file, grid, cfg.experiment.start, cfg.experiment.days)
            if cfg.obs.stations_file
            else Stations(grid, cfg.obs, cfg.experiment.seed)
        ),
        soil_true=soil.from_texture(domain.sand_true, domain.clay_true),
        soil_est=soil.from_texture(domain.sand_est, domain.clay_est),
        methods=build_methods(cfg),
    )


# ---------------------------------------------------------------------------------------------- progress
class _Progress:
    """Rank-0 progress: a bar on an interactive terminal, periodic log lines otherwise."""

    def __init__(self, total: int, every: int, enabled: bool, stream=None) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def log(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r\033[K")
            print(f"[landimg] {text}", file=self.stream, flush=True)

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        if self.tty:
            n = 30
            fill = int(n * done / max(self.total, 1))
            self.stream.write(
                f"\r[{'#' * fill}{'.' * (n - fill)}] day {done}/{self.total} {el:6.1f} s  {text}"
            )
            self.stream.flush()
            if done == self.total:
                self.stream.write("\n")
        elif done % self.every == 0 or done == self.total:
            print(f"[landimg] day {done}/{self.total} ({el:.1f} s) {text}", file=self.stream, flush=True)


# ---------------------------------------------------------------------------------------------- history
def _new_history(cfg: Config, s: _Setup) -> dict[str, Any]:
    nd, nl = cfg.experiment.days, len(_LAYERS)
    ny, nx = s.domain.grid.shape
    h: dict[str, Any] = {
        "truth": np.full((nd, nl, ny, nx), np.nan, np.float32),
        "obs": np.full((nd, ny, nx), np.nan, np.float32),
        "station_obs": np.full((nd, s.stations.n), np.nan),
        "n_obs": np.zeros(nd, np.int64),
    }
    for m in s.methods:
        h[m] = {
            "mean": np.full((nd, nl, ny, nx), np.nan, np.float32),
            "spread": np.full((nd, nl, ny, nx), np.nan, np.float32),
            "increment": np.full((nd, ny, nx), np.nan, np.float32),
            "scores": np.full((nd, nl, len(_SCORES)), np.nan),
            "scores_background": np.full((nd, nl, len(_SCORES)), np.nan),
            "station": np.full((nd, s.stations.n), np.nan),
            "clipped_water": np.zeros(nd),
            "obs_space": np.full((nd, len(_OBS_SPACE)), np.nan),
            "rank_counts": np.zeros((nd, cfg.ensemble.members + 1), np.int64),
            "inflation": np.full(nd, np.nan),
            "gain_per_scale": np.full((nd, _MAX_SCALES), np.nan),
        }
    return h


# ---------------------------------------------------------------------------------------------- spin-up
def _spinup(cfg: Config, s: _Setup, comm: Any, model_kwargs: dict[str, Any]) -> tuple[dict, dict]:
    """Spin up the nature run (true weather, true soil) and one ensemble-forcing member (estimated soil).

    Rank 0 spins the nature run while the last rank spins the ensemble column (the same rank when
    serial); the states are broadcast. Returns (nature state, ensemble member state) (get_state()).
    """
    from landimg.model.column import ColumnModel

    e = cfg.experiment
    ncol = s.domain.grid.ncol
    rank, size = comm.Get_rank(), comm.Get_size()
    nsteps = e.spinup_days * cfg.steps_per_day
    nspread = cfg.ensemble.spread_days * cfg.steps_per_day  # the ensemble's last days: per member
    todo = []
    if rank == 0:
        todo.append(("nature", s.soil_true, s.weather.truth))
    if rank == size - 1:
        todo.append(("ensemble", s.soil_est, s.weather.ensemble))
    states: dict[str, dict] = {}
    for name, soil, weather in todo:
        m = ColumnModel(ncol, 1, soil=soil, dt=e.dt, **model_kwargs)
        for k in range(-nsteps, 0 if name == "nature" else -nspread):
            m.step(weather(k * e.dt))
        m.reset_fluxes()
        states[name] = m.get_state()
    nature = comm.bcast(states.get("nature"), root=0)
    member = comm.bcast(states.get("ensemble"), root=size - 1)
    return nature, member


def _spread(cfg: Config, s: _Setup, ensembles: list) -> None:
    """Per-member spin-up: the last ``ensemble.spread_days`` of the spin-up run with perturbed forcing.

    The first ensemble runs them (all members, this rank's share); the others copy its state (model and
    perturbation fields), so every method starts from the same spread-out ensemble.
    """
    nspread = cfg.ensemble.spread_days * cfg.steps_per_day
    if nspread == 0 or not ensembles:
        return
    first = ensembles[0]
    for k in range(-nspread, 0):
        first.advance(s.weather.ensemble(k * cfg.experiment.dt), 1)
    first.model.reset_fluxes()
    for ens in ensembles[1:]:
        ens.model.set_state(first.model.get_state())
        ens.model.reset_fluxes()
        if first.perturber is not None:
            ens.perturber.set_state(first.perturber.get_state())


def _replicate(state: dict[str, np.ndarray], nloc: int) -> dict[str, np.ndarray]:
    return {k: np.asfortranarray(np.repeat(v, nloc, axis=-1)) for k, v in state.items()}


# ---------------------------------------------------------------------------------------------- run
@dataclass
class RunResult:
    """What :func:`run` returns on rank 0 (None elsewhere)."""

    summary: dict[str, Any]
    history: dict[str, Any] = field(repr=False)


from landimg.da.obs_diagnostics import obs_space_stats  # noqa: E402


def _daily_record(cfg, s, day, ensembles, nature, obs_img, bg_obs_mean, history, diags) -> None:
    """Fill day ``day`` of the history (rank 0 stores; every rank computes the collective images)."""
    grid = s.domain.grid
    truth_cols = nature.layer_mean(list(_LAYERS))[:, :, 0]  # (nl, ncol)
    truth = grid.to_image(truth_cols)
    obs_depth = (0.0, cfg.analysis.obs_depth)
    per_method = {}
    for name, ens in ensembles.items():
        means = np.stack([ens.mean_image(layer) for layer in _LAYERS])
        spreads = np.stack([ens.spread_image(layer) for layer in _LAYERS])
        an_obs = ens.mean_image(obs_depth)
        per_method[name] = (means, spreads, an_obs)
    if history is None:
        return
    history["truth"][day] = truth
    history["obs"][day] = obs_img
    history["n_obs"][day] = int(np.isfinite(obs_img).sum())
    history["station_obs"][day] = s.stations.observe(truth_cols[0], day)
    for name, (means, spreads, an_obs) in per_method.items():
        h = history[name]
        h["mean"][day], h["spread"][day] = means, spreads
        h["increment"][day] = an_obs - bg_obs_mean[name]
        for i in range(len(_LAYERS)):
            sc = _metrics.spatial_scores(means[i], truth[i], grid.land)
            h["scores"][day, i] = [sc[k] for k in _SCORES]
        h["station"][day] = grid.to_columns(means[0])[s.stations.columns]
        h["clipped_water"][day] = float(diags[name].get("clipped_water_kg_m2", 0.0))
        st = diags[name].get("obs_space")
        if st is not None:
            h["obs_space"][day] = [getattr(st, k) for k in _OBS_SPACE]
            h["rank_counts"][day] = st.rank_counts
        h["inflation"][day] = float(diags[name].get("inflation", np.nan))
        g = diags[name].get("gain_per_scale")
        if g is not None:
            h["gain_per_scale"][day, : min(len(g), _MAX_SCALES)] = g[:_MAX_SCALES]


def _background_scores(s, ensembles, nature, history, day) -> dict[str, np.ndarray]:
    grid = s.domain.grid
    truth = grid.to_image(nature.layer_mean(list(_LAYERS))[:, :, 0])
    bg = {}
    for name, ens in ensembles.items():
        means = [ens.mean_image(layer) for layer in _LAYERS]
        if history is not None:
            for i in range(len(_LAYERS)):
                sc = _metrics.spatial_scores(means[i], truth[i], grid.land)
                history[name]["scores_background"][day, i] = [sc[k] for k in _SCORES]
        bg[name] = means
    return bg


def summarize(
    cfg: Config, history: dict[str, Any], methods: list[str], wall: float, ranks: int
) -> dict[str, Any]:
    """The summary dict (shape of ``summary.json``) from a run's history."""
    out: dict[str, Any] = {"methods": {}}
    for m in methods:
        h = history[m]
        entry: dict[str, Any] = {}
        for i, ln in enumerate(_LAYER_NAMES):
            entry[ln] = {k: float(np.nanmean(h["scores"][:, i, j])) for j, k in enumerate(_SCORES)}
            entry[ln]["background"] = {
                k: float(np.nanmean(h["scores_background"][:, i, j])) for j, k in enumerate(_SCORES)
            }
        tc = _metrics.time_corr(h["station"], history["station_obs"])
        entry["stations"] = {
            "time_corr": float(np.nanmean(tc)) if np.isfinite(tc).any() else float("nan"),
            "n": int(np.isfinite(tc).sum()),
        }
        entry["clipped_water_kg_m2"] = float(np.sum(h["clipped_water"]))
        entry["obs_space"] = {k: float(np.nanmean(h["obs_space"][:, j])) if np.isfinite(h["obs_space"][:, j]).any() else float("nan") for j, k in enumerate(_OBS_SPACE)}
        entry["rank_counts"] = [int(c) for c in h["rank_counts"].sum(axis=0)]
        out["methods"][m] = entry
    out["wall_seconds"] = float(wall)
    out["ranks"] = int(ranks)
    out["landimg_version"] = _landimg_version
    out["obs_per_day"] = float(np.mean(history["n_obs"]))
    out["config"] = to_dict(cfg)
    return out


def format_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: one row per method and layer."""
    lines = [f"{'method':<15}{'layer':<10}{'spatial_corr':>13}{'ubRMSE':>10}{'bias':>10}{'station_r':>11}"]
    for m, entry in summary["methods"].items():
        for i, ln in enumerate(_LAYER_NAMES):
            sc = entry[ln]
            st = f"{entry['stations']['time_corr']:>11.3f}" if i == 0 else ""
            lines.append(
                f"{m:<15}{ln:<10}{sc['spatial_corr']:>13.3f}{sc['ubrmse']:>10.4f}{sc['bias']:>10.4f}{st}"
            )
    lines.append(
        f"wall {summary['wall_seconds']:.1f} s on {summary['ranks']} rank(s); "
        f"{summary['obs_per_day']:.0f} observations per day"
    )
    return "\n".join(lines)


def run(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    comm: Any = None,
    progress: bool = True,
    stop_after_days: int | None = None,
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

    Returns
    -------
    RunResult on rank 0 once the run is complete, None elsewhere (or when stopped early).
    """
    from landimg.ensemble.ensemble import Ensemble
    from landimg.parallel import default_comm

    comm = default_comm() if comm is None else comm
    out = Path(out)
    rank, size = comm.Get_rank(), comm.Get_size()
    t_start = time.perf_counter()
    e = cfg.experiment
    try:
        s = _setup(cfg)
    except (ValueError, OSError) as exc:  # every rank reads the same inputs, so every rank raises this
        raise InputError(str(exc)) from exc
    grid = s.domain.grid
    model_kwargs = {"igbp": s.domain.igbp}
    prog = _Progress(e.days, cfg.output.log_every_days, progress and rank == 0)
    prog.log(
        f"{cfg.domain.preset} {grid.shape[0]}x{grid.shape[1]} ({grid.ncol} land columns), {cfg.ensemble.members} members"
        f" x {len(s.methods)} methods ({', '.join(s.methods)}) on {size} rank(s), {e.days} days"
    )
    if not cfg.ensemble.perturb and set(s.methods) - {"openloop"}:
        prog.log("warning: ensemble.perturb = false: all members are identical, so the EnKFs make no update")
    from landimg.model.column import ColumnModel

    nature = ColumnModel(grid.ncol, 1, soil=s.soil_true, dt=e.dt, **model_kwargs)
    ensembles = {
        name: Ensemble(grid, cfg.ensemble.members, soil=s.soil_est, dt=e.dt, seed=e.seed, comm=comm,
                       perturbation=_perturbation(cfg), model_kwargs=model_kwargs)
        for name in s.methods
    }  # fmt: skip
    restart_path = out / RESTART_NAME
    history = None
    wall_before = 0.0
    if resume:
        tree = load_restart(restart_path) if rank == 0 else None
        day0 = comm.bcast(int(tree["day"]) if rank == 0 else None, root=0)
        nat = comm.bcast(tree["nature"] if rank == 0 else None, root=0)
        nature.set_state(nat)
        for name, ens in ensembles.items():
            ens.scatter_state(tree["ensembles"][name] if rank == 0 else None)
        if rank == 0:
            history = tree["history"]
            wall_before = float(tree["wall_seconds"])
        prog.log(f"resuming after day {day0}")
    else:
        t0 = time.perf_counter()
        nat, member = _spinup(cfg, s, comm, model_kwargs)
        nature.set_state(nat)
        for ens in ensembles.values():
            ens.model.set_state(_replicate(member, ens.model.state["wliq"].shape[-1]))
        _spread(cfg, s, list(ensembles.values()))
        prog.log(f"spin-up of {e.spinup_days} days: {time.perf_counter() - t0:.1f} s")
        day0 = 0
        history = _new_history(cfg, s) if rank == 0 else None
        if rank == 0:
            (out / "restart").mkdir(
                parents=True, exist_ok=True
            )  # created only now: set-up errors leave nothing
    spd, spa = cfg.steps_per_day, cfg.steps_per_analysis
    obs_depth = (0.0, cfg.analysis.obs_depth)
    window = cfg.analysis.interval_hours / 24.0
    diags: dict[str, dict] = {name: {} for name in ensembles}
    for day in range(day0, e.days):
        clipped = dict.fromkeys(ensembles, 0.0)
        obs_img = np.full(grid.shape, np.nan)
        bg_obs = {}
        for step in range(spd):
            k = day * spd + step
            t = k * e.dt
            nature.step(s.weather.truth(t))
            fe = s.weather.ensemble(t)
            for ens in ensembles.values():
                ens.advance(fe, 1)
            if (k + 1) % spa == 0:  # analysis time (end of the step)
                ia = (k + 1) // spa - 1
                t_days = (k + 1) * e.dt / 86400.0 - window
                truth_obs = grid.to_image(nature.layer_mean([obs_depth])[0, :, 0])
                frozen = grid.to_image(nature.frozen()[:, 0], fill=False).astype(bool)
                y, ystd = s.observer(truth_obs, t_days, frozen, window, ia)
                obs_img = np.where(np.isfinite(y), y, obs_img)
                if step == spd - 1:
                    _background_scores(s, ensembles, nature, history, day)
                for name, ens in ensembles.items():
                    if step == spd - 1:
                        bg_obs[name] = ens.mean_image(obs_depth)
                        bg_members = ens.images(obs_depth, gather=True)
                    diags[name] = ens.assimilate(y, ystd, s.methods[name])
                    if step == spd - 1:
                        diags[name]["obs_space"] = obs_space_stats(
                            bg_members, ens.images(obs_depth, gather=True), y, ystd,
                            rng=np.random.Generator(np.random.PCG64([e.seed, day, 0x0B5])),
                        )  # fmt: skip
                    clipped[name] += float(diags[name].get("clipped_water_kg_m2", 0.0))
        if not bg_obs:  # no analysis at the end of this day (interval > 24 h)
            _background_scores(s, ensembles, nature, history, day)
            bg_obs = {name: ens.mean_image(obs_depth) for name, ens in ensembles.items()}
        for name in ensembles:
            diags[name]["clipped_water_kg_m2"] = clipped[name]
        _daily_record(cfg, s, day, ensembles, nature, obs_img, bg_obs, history, diags)
        # restart (collective gathers; rank 0 writes atomically)
        if cfg.output.restart or day + 1 == e.days or stop_after_days == day + 1:
            states = {name: ens.gather_state() for name, ens in ensembles.items()}
            if rank == 0:
                save_restart(restart_path, {
                    "day": day + 1, "nature": nature.get_state(), "ensembles": states, "history": history,
                    "wall_seconds": wall_before + time.perf_counter() - t_start, "config_toml": to_toml(cfg),
                })  # fmt: skip
        if rank == 0:
            sc = {m: history[m]["scores"][day, 0, 0] for m in ensembles}
            prog.update(day + 1, "0-10cm r: " + " ".join(f"{m} {v:.2f}" for m, v in sc.items()))
        if stop_after_days is not None and day + 1 >= stop_after_days and day + 1 < e.days:
            return None
    if rank != 0:
        return None
    wall = wall_before + time.perf_counter() - t_start
    summary = summarize(cfg, history, list(ensembles), wall, size)
    _write_outputs(cfg, s, out, history, summary)
    summary["wall_seconds"] = wall_before + time.perf_counter() - t_start
    write_json(out / "summary.json", summary)
    return RunResult(summary=summary, history=history)


def _write_outputs(
    cfg: Config, s: _Setup, out: Path, history: dict[str, Any], summary: dict[str, Any]
) -> None:
    from landimg.experiment.io import write_experiment_netcdf

    if cfg.output.netcdf:
        write_experiment_netcdf(out, cfg, s.domain.grid, s.stations, history, list(s.methods))
    if cfg.output.plots:
        from landimg.experiment import plot

        if plot.available():
            _plots(cfg, s, out, history)


def _obs_space_plots(pdir: Path, cfg: Config, s: _Setup, history: dict[str, Any]) -> None:
    """Spread versus error and rank histograms in observation space (plots/spread_error.png, rank_histograms.png)."""
    from landimg.experiment import obsplots

    keys = ("omb_rms", "spread_b", "obs_err", "oma_rms", "spread_a")
    series = {m: {k: history[m]["obs_space"][:, _OBS_SPACE.index(k)] for k in keys} for m in s.methods}
    obsplots.plot_spread_error(pdir / "spread_error.png", np.arange(1, cfg.experiment.days + 1), series)
    obsplots.plot_rank_histograms(pdir / "rank_histograms.png", {m: history[m]["rank_counts"].sum(axis=0) for m in s.methods})


def _plots(cfg: Config, s: _Setup, out: Path, history: dict[str, Any]) -> None:
    from landimg.experiment import plot

    grid = s.domain.grid
    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    last = cfg.experiment.days - 1
    fields = {
        "nature run (truth)": history["truth"][last, 0],
        "observations (last day)": history["obs"][last],
    }
    fields.update({m: history[m]["mean"][last, 0] for m in s.methods})
    _obs_space_plots(pdir, cfg, s, history)
    plot.plot_maps(
        pdir / "maps_0-10cm.png", grid.lat, grid.lon, fields, f"0-10 cm soil moisture (m3/m3), day {last + 1}"
    )
    series = {
        m: {
            f"{k}/{ln}": history[m]["scores"][:, i, j]
            for i, ln in enumerate(_LAYER_NAMES)
            for j, k in enumerate(_SCORES)
        }
        for m in s.methods
    }
    plot.plot_metric_series(pdir / "metrics.png", np.arange(1, cfg.experiment.days + 1), series, _LAYER_NAMES)
    if "curvelet_enkf" in s.methods:
        from landimg.transform.curvelet import Curvelet

        inc = history["curvelet_enkf"]["increment"][last].astype(float)
        ny, nx = grid.shape
        try:
            kw = {"nscales": cfg.analysis.curvelet_nscales} if cfg.analysis.curvelet_nscales else {}
            C = Curvelet(
                (ny, nx),
                nangles_coarse=cfg.analysis.curvelet_nangles,
                finest=cfg.analysis.curvelet_finest,
                **kw,
            )
        except ValueError:
            return  # grid too small for a multi-scale split
        parts = plot.increment_by_scale(np.where(grid.land, inc, 0.0), C)
        plot.plot_increment_scales(
            pdir / "curvelet_increment_by_scale.png",
            grid.lat,
            grid.lon,
            parts,
            grid.land,
            f"curvelet EnKF increment of the 0-{cfg.analysis.obs_depth * 100:.0f} cm layer by scale, "
            f"day {last + 1}",
        )


# ---------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landimg.cycle",
        description="Run the landimg soil-moisture assimilation experiment (open loop, point EnKF, curvelet EnKF).",
    )
    p.add_argument("--config", help="TOML configuration file (keys: docs/configuration.md)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key (repeatable), e.g. --set experiment.days=10",
    )
    p.add_argument("--out", help="output directory (must not exist unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from DIR/restart")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as TOML and exit"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _saved_config(out: Path) -> Config:
    import tomllib

    tree = load_restart(out / RESTART_NAME)
    return from_dict(tomllib.loads(str(tree["config_toml"])), source=str(out / RESTART_NAME))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 success, 2 usage/config/output errors)."""
    from landimg.parallel import default_comm, install_abort_excepthook

    args = _parser().parse_args(argv)
    comm = default_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    if size > 1:
        install_abort_excepthook(comm)

    def fail(msg: str) -> int:
        if rank == 0:
            print(f"landimg.experiment.cycle: error: {msg}", file=sys.stderr, flush=True)
        return 2

    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as exc:
        return fail(str(exc))
    if args.print_config:
        if rank == 0:
            print(to_toml(cfg), end="")
        return 0
    if not args.out:
        return fail("--out DIR is required (or --print-config)")
    out = Path(args.out)
    err, created = None, False
    if rank == 0:
        try:
            created = prepare_out_dir(out, args.resume, create=False)
            if args.resume:
                saved = _saved_config(out)
                if (args.config or args.set) and saved != cfg:
                    old_tree, new_tree = to_dict(saved), to_dict(cfg)
                    changed = [f"{sec}.{key}" for sec in new_tree for key in new_tree[sec]
                               if old_tree.get(sec, {}).get(key) != new_tree[sec][key]]  # fmt: skip
                    err = (f"--resume: {', '.join(changed)} differ(s) from the stopped run's configuration "
                           "(omit --config/--set to continue it as it was)")  # fmt: skip
                cfg = saved
        except (OutputDirError, ConfigError, OSError, ValueError, KeyError) as exc:
            err = str(exc)
    err = comm.bcast(err, root=0)
    if err:
        return fail(err)
    cfg = comm.bcast(cfg, root=0)

    def clean_up() -> None:
        if rank == 0 and created and not (out / RESTART_NAME).exists():
            shutil.rmtree(out, ignore_errors=True)

    try:
        result = run(cfg, out, resume=args.resume, comm=comm, progress=not args.quiet)
    except InputError as exc:
        clean_up()
        return fail(str(exc))
    except KeyboardInterrupt:
        clean_up()
        if rank == 0:
            hint = (f"; continue with --out {out} --resume" if (out / RESTART_NAME).exists()
                    else "; nothing was kept")  # fmt: skip
            print(f"landimg.experiment.cycle: interrupted{hint}", file=sys.stderr, flush=True)
        return 130
    except BaseException:
        clean_up()
        raise
    if result is not None and rank == 0:
        print(format_table(result.summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
