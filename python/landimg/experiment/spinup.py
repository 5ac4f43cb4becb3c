"""Spin-up: the nature run and one ensemble column brought to equilibrium, then copied to the members.

Every rank spins up its world block (:class:`~landimg.experiment.world.World`; the domain on one rank):
the nature run (true weather, true soil) and one column of the ensemble (ensemble forcing, estimated
soil) up to ``ensemble.spread_days`` before the end, hour by hour on the same weather. The nature run stays
on the world blocks; the ensemble column goes to the ensemble's layout (moved, not recomputed), every
member of every method starts from it, and the members then run the last ``spread_days`` each with its own
perturbed forcing and, with ``ensemble.perturb_soil``, its own soil parameters (:func:`spread_members`), so
each member starts from a state consistent with its parameters. Water above a member's smaller pore space
at the switch leaves as runoff in the first step (booked by the model), so the water balance stays closed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from landimg.experiment.config import Config
from landimg.experiment.progress import Progress
from landimg.experiment.setup import Setup
from landimg.experiment.timing import Timings

__all__ = ["new_nature", "seed_members", "spinup", "spread_members", "spun_up"]

State = dict[str, np.ndarray]


def _block(s: Setup) -> tuple[slice, int]:
    """This rank's world block of columns and its size (every column without a world)."""
    w = s.world
    ncol = s.domain.grid.ncol
    return (slice(0, ncol), ncol) if w is None else (w.columns, w.ncol)


def _block_model(cfg: Config, s: Setup, soil: Any) -> Any:
    """A one-member ColumnModel of this rank's world block with per-column ``soil`` of every column."""
    from landimg.model.column import ColumnModel

    cols, n = _block(s)
    whole = n == s.domain.grid.ncol
    return ColumnModel(n, 1, soil=soil if whole else soil.take(cols), dt=cfg.experiment.dt,
                       igbp=s.domain.igbp if whole else s.domain.igbp[cols])  # fmt: skip


def new_nature(cfg: Config, s: Setup) -> Any:
    """The nature run of this rank's world block: one member of each of its columns with the true soil."""
    return _block_model(cfg, s, s.soil_true)


def spinup(
    cfg: Config, s: Setup, comm: Any, timings: Timings | None = None, progress: Progress | None = None
) -> tuple[State, State]:
    """(nature state, ensemble-column state) of this rank's world block after ``experiment.spinup_days``
    (``get_state()`` dicts, arrays (..., ncol_block, 1)); collective.

    The model steps count to the ``"model"`` part of ``timings`` when given; ``progress`` is updated
    after every spin-up day (it prints on rank 0 only).
    """
    e = cfg.experiment
    nsteps = e.spinup_days * cfg.steps_per_day
    nspread = min(cfg.ensemble.spread_days, cfg.experiment.spinup_days) * cfg.steps_per_day  # per member
    nature, column = _block_model(cfg, s, s.soil_true), _block_model(cfg, s, s.soil_est)
    climatology: list[np.ndarray] = []  # the ensemble column's observed layer, daily (for CDF matching)
    obs_layer = [(0.0, cfg.analysis.obs_depth)]
    if timings is not None:
        for m in (nature, column):
            timings.instrument(m, "step", "model")
    for k in range(-nsteps, 0):  # nature and ensemble column take the same hour in turn (shared weather)
        nature.step(s.weather.truth(k * e.dt))
        if k < -nspread:
            column.step(s.weather.ensemble(k * e.dt))
            if (k + 1) % cfg.steps_per_day == 0:
                climatology.append(column.layer_mean(obs_layer)[0, :, 0].copy())
        if progress is not None and (k + 1) % cfg.steps_per_day == 0:
            progress.update((k + 1 + nsteps) // cfg.steps_per_day, "")
    states = []
    for m in (nature, column):
        m.reset_fluxes()
        states.append(m.get_state())
    from landimg.parallel import wait_all

    wait_all(comm)  # polled: a rank waiting for the others' spin-up still reacts to signals
    if cfg.obs.cdf_match and getattr(s.observer, "product", None) is not None:
        clim = np.asarray(climatology).reshape(len(climatology), -1)
        s.observer.fit_cdf(clim if s.world is None else s.world.allgather(clim))
    return states[0], states[1]


def spun_up(
    cfg: Config, s: Setup, comm: Any, cache: Path | None, timings: Timings | None, key: Callable[[], str],
    progress: Progress | None = None,
) -> tuple[State, State, str]:  # fmt: skip
    """:func:`spinup` of this rank's world block, or its part of the states in the spin-up cache ``cache``.

    The cache holds the states of every column (:func:`landimg.experiment.spinup_cache.cached_spinup`,
    ``key`` its key): a hit is read on rank 0 and cut to every block; a spin-up to store is gathered on
    rank 0. Returns (nature state, ensemble-column state, status "off" / "hit" / "stored").
    """
    from landimg.experiment.spinup_cache import cached_spinup

    if cache is None:
        return (*spinup(cfg, s, comm, timings, progress), "off")
    world, held = s.world, {}

    def spin() -> tuple[State | None, State | None]:  # every column on rank 0 (stored there), None elsewhere
        held["block"] = spinup(cfg, s, comm, timings, progress)
        return world.gather_state(held["block"][0]), world.gather_state(held["block"][1])

    nature, member, status = cached_spinup(spin, key, cache, comm)
    if status == "hit":
        return world.take_state(nature), world.take_state(member), status
    return (*held["block"], status)


def seed_members(ensembles: dict[str, Any], member: dict[str, np.ndarray]) -> None:
    """Start every member of every ensemble from the one-member state ``member`` (``Ensemble.seed_members``)."""
    for ens in ensembles.values():
        ens.seed_members(member)


def spread_members(
    cfg: Config, s: Setup, ensembles: dict[str, Any], forcing: Callable[[float], dict[str, np.ndarray]]
) -> None:
    """Per-member spin-up: the last ``ensemble.spread_days`` of the spin-up run with perturbed forcing.

    The first ensemble runs them (this rank's members, each with its own perturbations and, with
    ``ensemble.perturb_soil``, its own soil parameters, which every method's ensemble shares); the others
    copy its state (model and perturbation fields), so every method starts from the same spread-out ensemble.
    ``forcing(t)``: the ensemble forcing of the ensembles' columns at ``t`` s. Member streams make it
    independent of the rank layout. Fluxes are reset afterwards.
    """
    nspread = min(cfg.ensemble.spread_days, cfg.experiment.spinup_days) * cfg.steps_per_day
    if nspread == 0 or not ensembles:
        return
    first, *others = ensembles.values()
    for k in range(-nspread, 0):
        first.advance(forcing(k * cfg.experiment.dt), 1, t=k * cfg.experiment.dt)
    first.model.reset_fluxes()
    for ens in others:
        ens.model.set_state(first.model.get_state())
        ens.model.reset_fluxes()
        if first.perturber is not None:
            ens.perturber.set_state(first.perturber.get_state())
