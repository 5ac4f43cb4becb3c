"""Set-up of an experiment: domain, weather, observations, stations, soils and the analysis methods.

Everything here reads or builds inputs; nothing is stepped. Any input that cannot be used raises
:class:`InputError` (one line naming the file and the problem) before the spin-up.

The weather and the observer are made for this rank's world block (:class:`~landimg.experiment.world.World`):
the generator and the synthetic observer on the block's columns only; files and products are read whole
and cut to the block.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.obs_error import ObsError
from landimg.ensemble.perturb import TexturePerturbation
from landimg.experiment.config import Config
from landimg.experiment.domain import Domain, build_domain
from landimg.experiment.forcing import FileForcing, WeatherGenerator
from landimg.experiment.obs import FileObservations, FileStations, SatelliteObserver, Stations
from landimg.experiment.world import World

__all__ = ["InputError", "Observer", "Setup", "Weather", "build_methods", "perturbation", "setup"]


class InputError(ValueError):
    """A user input (a data file, or the domain it implies) cannot be used; raised before any step is run."""


def build_methods(cfg: Config) -> dict[str, Any]:
    """The analysis method objects of ``cfg.analysis.methods`` (name -> method dataclass of :mod:`landimg.da`).

    Each is the method's configuration section with the settings the experiment supplies itself
    (``obs_depth = (0, analysis.obs_depth)``).
    """
    from landimg import da

    out = {}
    for name in cfg.analysis.methods:
        method = cfg.method.get(name, None) or da.METHODS[name]()
        if any(f.name == "obs_depth" for f in dataclasses.fields(method)):
            method = dataclasses.replace(method, obs_depth=(0.0, cfg.analysis.obs_depth))
        out[name] = method
    return out


def perturbation(cfg: Config) -> Any:
    """The members' forcing perturbation of ``cfg.ensemble`` (None when ``ensemble.perturb`` is false)."""
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
        rain_shift_km=e.rain_shift_km,
    )


class _OnColumns:
    """A forcing source of every column cut to a block: ``source(t)``'s arrays at ``columns``."""

    def __init__(self, source: Any, columns: slice) -> None:
        self.source, self.columns = source, columns

    def __call__(self, t: float) -> dict[str, np.ndarray]:
        return {k: v[self.columns] for k, v in self.source(t).items()}


class Weather:
    """truth(t) / ensemble(t) of the columns ``columns`` (default all): the synthetic generator, or user
    files where configured (read for the columns only, and checked there), or a product (read whole, cut)."""

    def __init__(self, cfg: Config, domain: Domain, columns: slice | None = None, progress: bool = False) -> None:
        grid, f, e = domain.grid, cfg.forcing, cfg.experiment
        gen = WeatherGenerator(grid, domain.aridity, f, e.seed, e.start, columns=columns)
        truth, ensemble = gen.truth, gen.ensemble
        if f.product:  # a product as distributed drives the nature run and the ensemble
            from landimg.data.inputs import ProductForcing

            truth = ensemble = ProductForcing(
                f.product, f.files, grid, e.start, -e.spinup_days, e.days, progress
            )
        truth = FileForcing(f.true_file, grid, e.start, gen.columns) if f.true_file else truth
        ensemble = FileForcing(f.ensemble_file, grid, e.start, gen.columns) if f.ensemble_file else ensemble
        for source in (truth, ensemble):
            if hasattr(source, "check_covers"):  # the run reads t = -spin-up .. end of the last day
                source.check_covers(-e.spinup_days * 86400.0, e.days * 86400.0 - e.dt)
            if hasattr(source, "check_values"):  # products' values are checked as they are read
                source.check_values(-e.spinup_days * 86400.0, e.days * 86400.0 - e.dt)
        block = gen.ncol != grid.ncol  # a product gives every column: cut to the block
        self.truth = _OnColumns(truth, gen.columns) if block and f.product and not f.true_file else truth
        self.ensemble = _OnColumns(ensemble, gen.columns) if block and f.product and not f.ensemble_file else ensemble


def _on_every_rank(comm: Any, make: Any) -> Any:
    """``make()``; a ValueError or OSError on any rank of ``comm`` is raised on every rank (the first such
    rank's line): each rank reads and checks only its world block's part of a file, so a bad value may be
    found on one rank only."""
    try:
        out, line = make(), None
    except (ValueError, OSError) as exc:
        out, line = None, str(exc)
    found = [x for x in comm.allgather(line) if x]
    if found:
        raise ValueError(found[0])
    return out


class Observer:
    """Satellite retrievals (synthetic from the nature run, or a user file) of the columns ``columns``
    (default all) for an analysis window."""

    def __init__(self, cfg: Config, grid: Any, columns: slice | None = None, progress: bool = False) -> None:
        self.cfg, self.grid = cfg, grid
        interval_days = cfg.analysis.interval_hours / 24.0
        self.synthetic = SatelliteObserver(grid, cfg.obs, cfg.experiment.seed, interval_days, columns)
        self.columns = self.synthetic.columns
        self.product = None  # a retrieval product as distributed: records taken once, by window
        if cfg.obs.product:
            from landimg.data.inputs import ProductObservations

            e = cfg.experiment
            self.product = ProductObservations(
                cfg.obs.product, cfg.obs.files, grid, e.start, e.days, progress
            )
        self.file = FileObservations(cfg.obs.file, grid, cfg.experiment.start) if cfg.obs.file else None
        if self.file is not None and self.file.days_with_records(cfg.experiment.days) == 0:
            raise ValueError(
                f"{cfg.obs.file}: no record falls in the {cfg.experiment.days} days from experiment.start "
                f"{cfg.experiment.start}: check the file's time axis and units"
            )
        if self.file is not None:
            self.file.check_values(cfg.experiment.days)

    def __call__(self, truth: np.ndarray, t_days: float, frozen: np.ndarray, window: float, index: int):
        """(observations of the columns (ncol_block,), NaN = missing; the declared error: an ObsError per land
        column of the grid).

        ``truth`` (m3/m3) and ``frozen`` (bool) are the nature run's observed layer and frozen flags at the
        observer's columns; a file or product is read whole and cut to them.
        """
        if self.product is None and self.file is None:
            y = self.synthetic.observe_columns(truth, t_days, frozen, window_days=window, index=index)
            return y, self.error()
        whole = np.zeros(self.grid.shape, dtype=bool)  # frozen cells are masked below, per column
        if self.product is not None:
            y, white = self._from_product(t_days, window, whole)
        else:
            y, white = self.file.observe(int(np.floor(t_days + window - 1e-9)))
        y = self.grid.to_columns(y)[self.columns]
        return np.where(frozen, np.nan, y), self.error(white)

    def error(self, white: np.ndarray | None = None) -> ObsError:
        """The declared observation error of ``[obs]`` (:class:`landimg.da.obs_error.ObsError`, per land column).

        ``error_std`` split by ``white_fraction`` into a white and a correlated part (``corr_length_km``,
        ``memory_days``); a retrieval file's or product's ``sm_error`` image ``white`` (m3/m3, NaN = not
        given) replaces the white part's std where it is given.
        """
        c = self.cfg.obs
        declared = ObsError.from_fraction(c.error_std, c.white_fraction, c.corr_length_km, c.memory_days)
        if white is None:
            return declared
        cols = self.grid.to_columns(np.asarray(white, dtype=np.float64))
        white_std = np.where(np.isfinite(cols) & (cols > 0), cols, declared.white_std)
        return ObsError(white_std, declared.corr_std, declared.corr_length_km, declared.memory_days)

    def _from_product(self, t_days: float, window: float, frozen: np.ndarray):
        """The product's records with times in [t_days, t_days + window) days, each used once; several
        records in one window are averaged cell by cell (their errors too)."""
        recs = self.product.take(t_days * 86400.0, (t_days + window) * 86400.0)
        shape = frozen.shape
        if not recs:
            return np.full(shape, np.nan), None
        sm = np.stack([r[1] for r in recs])
        err = np.stack([r[2] if r[2] is not None else np.full(shape, np.nan) for r in recs])
        n = np.isfinite(sm).sum(0)
        y = np.where(n > 0, np.nansum(sm, 0) / np.maximum(n, 1), np.nan)
        used = np.isfinite(sm) & np.isfinite(err)
        ne = used.sum(0)
        e = np.where(ne > 0, np.nansum(np.where(used, err, 0.0), 0) / np.maximum(ne, 1), np.nan)
        y = np.where(frozen, np.nan, y)
        return y, np.where(np.isfinite(e) & (e > 0), e, np.nan)

    def fit_cdf(self, model_samples: np.ndarray) -> None:
        """CDF-match the product's retrievals to ``model_samples`` (the open loop's observed layer)."""
        from landimg.data.inputs import CdfMatcher

        if self.product is not None and self.cfg.obs.cdf_match:
            self.product.matcher = CdfMatcher(self.product.all_values(), model_samples)


@dataclass
class Setup:
    """Everything an experiment needs before its first step (the weather and the observer of this rank's
    world block ``world``)."""

    cfg: Config
    domain: Domain
    weather: Weather
    observer: Observer
    stations: Stations | FileStations
    soil_true: Any
    soil_est: Any
    methods: dict[str, Any]
    reference: Any = None
    soil_members: Any = None
    world: World | None = None
    soil_released: bool = False

    @property
    def soil_ensemble(self) -> Any:
        """The ensembles' soil: per-member parameters (ncol, nmem) if ``ensemble.perturb_soil``, else ``soil_est``."""
        if self.soil_released:
            raise RuntimeError("the members' soil parameters were released (the ensembles hold their parts)")
        return self.soil_est if self.soil_members is None else self.soil_members

    def release_soil(self) -> None:
        """Forget the members' soil parameters of every column (``soil_members``, ``nfield x ncol x nmem``
        floats on every rank: 9 MB for 8 members at 1 degree) once the ensembles hold their parts."""
        self.soil_members, self.soil_released = None, True


def setup(cfg: Config, comm: Any = None, progress: bool = False) -> Setup:
    """Build and check every input of ``cfg``; raises :class:`InputError` (one line) if one is unusable.

    ``comm``: the run's ranks; the weather and the observer are made for this rank's world block
    (default: one rank, every column). ``progress``: show reading progress of long file sets on stderr
    (rank 0).
    """
    from landimg.model import soil
    from landimg.parallel import SerialComm

    try:
        domain = build_domain(cfg)
        grid = domain.grid
        world = World(grid, SerialComm() if comm is None else comm)
        columns = None if world.whole else world.columns
        return Setup(
            cfg=cfg,
            domain=domain,
            weather=_on_every_rank(world.comm, lambda: Weather(cfg, domain, columns, progress)),
            observer=Observer(cfg, grid, columns, progress),
            stations=_stations(cfg, grid),
            soil_true=soil.from_texture(domain.sand_true, domain.clay_true),
            soil_est=soil.from_texture(domain.sand_est, domain.clay_est),
            methods=build_methods(cfg),
            reference=_reference(cfg, grid, progress),
            soil_members=_member_soil(cfg, domain),
            world=world,
        )
    except (ValueError, OSError) as exc:  # every rank reads the same inputs, so every rank raises this
        raise InputError(str(exc)) from exc


def texture_perturbation(cfg: Config) -> TexturePerturbation | None:
    """The members' texture error (:class:`~landimg.ensemble.perturb.TexturePerturbation`), or None when off.

    Its amplitude and correlation length are those of the soil map's error in the synthetic world
    (``domain.texture_error_pct``, 0.6x for clay, ``domain.texture_corr_km / 2``): the ensemble samples
    the error the model's texture has, with no separate knob to tune.
    """
    d = cfg.domain
    if not cfg.ensemble.perturb_soil or d.texture_error_pct == 0.0:
        return None
    return TexturePerturbation(
        sand_std_pct=d.texture_error_pct, clay_ratio=0.6, length_km=d.texture_corr_km / 2.0
    )


def _member_soil(cfg: Config, domain: Domain) -> Any:
    """Per-member soil parameters (ncol, nmem) around the model's texture, or None (``texture_perturbation``)."""
    from landimg.ensemble.perturb import member_soil

    tp = texture_perturbation(cfg)
    if tp is None:
        return None
    members = range(cfg.ensemble.members)
    return member_soil(tp, domain.grid, domain.sand_est, domain.clay_est, members, cfg.experiment.seed)


def _stations(cfg: Config, grid: Any) -> Any:
    """ISMN stations (``[stations]``), a station file (``obs.stations_file``) or the synthetic stations."""
    e = cfg.experiment
    if cfg.stations.product:
        from landimg.data.inputs import ProductStations

        depth = (cfg.stations.depth_top, cfg.stations.depth_bottom)
        return ProductStations(cfg.stations.files, grid, e.start, e.days, depth)
    if cfg.obs.stations_file:
        return FileStations(cfg.obs.stations_file, grid, e.start, e.days)
    return Stations(grid, cfg.obs, e.seed)


def _reference(cfg: Config, grid: Any, progress: bool = False) -> Any:
    """The reference product of ``[reference]`` (daily layer means), or None (verify against the nature run)."""
    if not cfg.reference.product:
        return None
    from landimg.data.inputs import ProductReference

    e = cfg.experiment
    return ProductReference(cfg.reference.product, cfg.reference.files, grid, e.start, e.days, progress)
