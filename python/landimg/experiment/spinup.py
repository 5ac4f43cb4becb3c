"""Spin-up: the nature run and one ensemble column brought to equilibrium, then copied to the members.

Rank 0 spins the nature run (true weather, true soil) while the last rank spins one column of the
ensemble (ensemble forcing, estimated soil) up to ``ensemble.spread_days`` before the end; the same rank
when serial. The states are broadcast, every member of every method starts from the ensemble column's
state, and the members then run the last ``spread_days`` each with its own perturbed forcing and, with
``ensemble.perturb_soil``, its own soil parameters (:func:`spread_members`), so each member starts from a
state consistent with its parameters. Water above a member's smaller pore space at the switch leaves as
runoff in the first step (booked by the model), so the water balance stays closed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from landimg.experiment.config import Config
from landimg.experiment.progress import Progress
from landimg.experiment.setup import Setup
from landimg.experiment.timing import Timings

__all__ = ["new_nature", "seed_members", "spinup", "spread_members"]


def new_nature(cfg: Config, s: Setup) -> Any:
    """The nature run: one member of every land column with the true soil (a ColumnModel)."""
    from landimg.model.column import ColumnModel

    return ColumnModel(s.domain.grid.ncol, 1, soil=s.soil_true, dt=cfg.experiment.dt, igbp=s.domain.igbp)


def spinup(
    cfg: Config, s: Setup, comm: Any, timings: Timings | None = None, progress: Progress | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(nature state, ensemble member state) after ``experiment.spinup_days`` (``get_state()`` dicts, 1 member).

    The model steps count to the ``"model"`` part of ``timings`` when given; ``progress`` is updated
    after every spin-up day (it prints on rank 0 only).
    """
    from landimg.model.column import ColumnModel

    e = cfg.experiment
    rank, size = comm.Get_rank(), comm.Get_size()
    nsteps = e.spinup_days * cfg.steps_per_day
    nspread = min(cfg.ensemble.spread_days, cfg.experiment.spinup_days) * cfg.steps_per_day  # per member
    todo = []
    if rank == 0:
        todo.append(("nature", s.soil_true, s.weather.truth))
    if rank == size - 1:
        todo.append(("ensemble", s.soil_est, s.weather.ensemble))
    states: dict[str, dict] = {}
    climatology: list[np.ndarray] = []  # the ensemble column's observed layer, daily (for CDF matching)
    obs_layer = [(0.0, cfg.analysis.obs_depth)]
    grid = s.domain.grid
    models = {name: ColumnModel(grid.ncol, 1, soil=soil, dt=e.dt, igbp=s.domain.igbp) for name, soil, _ in todo}
    if timings is not None:
        for m in models.values():
            timings.instrument(m, "step", "model")
    for k in range(-nsteps, 0):  # on one rank nature and ensemble take the same hour in turn (shared weather)
        for name, _, weather in todo:
            if name == "nature" or k < -nspread:
                models[name].step(weather(k * e.dt))
            if name == "ensemble" and k < -nspread and (k + 1) % cfg.steps_per_day == 0:
                climatology.append(models[name].layer_mean(obs_layer)[0, :, 0].copy())
        if progress is not None and (k + 1) % cfg.steps_per_day == 0:
            progress.update((k + 1 + nsteps) // cfg.steps_per_day, "")
    for name, m in models.items():
        m.reset_fluxes()
        states[name] = m.get_state()
    from landimg.parallel import wait_all

    wait_all(comm)  # polled: a rank waiting for the other's spin-up still reacts to signals
    nature = comm.bcast(states.get("nature"), root=0)
    member = comm.bcast(states.get("ensemble"), root=size - 1)
    if cfg.obs.cdf_match and getattr(s.observer, "product", None) is not None:
        clim = comm.bcast(np.asarray(climatology) if rank == size - 1 else None, root=size - 1)
        s.observer.fit_cdf(clim)
    return nature, member


def seed_members(ensembles: dict[str, Any], member: dict[str, np.ndarray]) -> None:
    """Start every member of every ensemble from the one-member state ``member`` (``Ensemble.seed_members``)."""
    for ens in ensembles.values():
        ens.seed_members(member)


def spread_members(cfg: Config, s: Setup, ensembles: dict[str, Any]) -> None:
    """Per-member spin-up: the last ``ensemble.spread_days`` of the spin-up run with perturbed forcing.

    The first ensemble runs them (this rank's members, each with its own perturbations and, with
    ``ensemble.perturb_soil``, its own soil parameters, which every method's ensemble shares); the others
    copy its state (model and perturbation fields), so every method starts from the same spread-out ensemble.
    Member streams make it independent of the rank layout. Fluxes are reset afterwards.
    """
    nspread = min(cfg.ensemble.spread_days, cfg.experiment.spinup_days) * cfg.steps_per_day
    if nspread == 0 or not ensembles:
        return
    first, *others = ensembles.values()
    for k in range(-nspread, 0):
        first.advance(s.weather.ensemble(k * cfg.experiment.dt), 1, t=k * cfg.experiment.dt)
    first.model.reset_fluxes()
    for ens in others:
        ens.model.set_state(first.model.get_state())
        ens.model.reset_fluxes()
        if first.perturber is not None:
            ens.perturber.set_state(first.perturber.get_state())
