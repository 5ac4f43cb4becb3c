"""The embedding API: an ensemble of land-surface members stepped in memory across MPI ranks.

:class:`Ensemble` owns this rank's members (one :class:`~landimg.model.column.ColumnModel` holding them), their
forcing perturbations and random streams, and offers ``advance`` / ``images`` / ``seed_members`` /
``assimilate`` / ``gather_state`` / ``scatter_state`` for an outside driver (docs/embedding.md). It is the
host of the analysis methods (:mod:`landimg.da`, arrays only): it owns the observation operator, the
update masks (frozen soil, snow), the transform cache, and applies the increments with the water booked. Everything that mixes
members is reduced in member order, so results do not depend on the number of ranks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from landimg.da.protocol import (
    AnalysisCache,
    AnalysisContext,
    Diagnostics,
    Distribution,
    Geometry,
    Method,
    ObsError,
    as_obs_error,
)
from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber
from landimg.parallel import MemberLayout, Purpose, SerialComm, member_rng

__all__ = ["Ensemble"]

_MODEL_MEMBER_AXIS = -1  # ColumnModel arrays are (..., ncol, nmem)
_DEFAULT_PERTURBATION = ForcingPerturbation()  # frozen dataclass: CoLM's defaults
_RHO_LIQ = 1000.0  # density of liquid water, kg/m3


class Ensemble:
    """An ensemble of ``nmem`` members on a grid, split over the ranks of ``comm``.

    Parameters
    ----------
    grid : landimg.Grid
        Grid and land mask; the model has one column per land cell.
    nmem : int
        Global ensemble size.
    soil : landimg.model.soil.SoilParams
        Soil parameters per column (arrays (ncol,), shared by every member) or per member (arrays
        (ncol, nmem), member ``i``'s in ``[:, i]``, e.g. from :func:`landimg.ensemble.perturb.member_soil`
        or :func:`landimg.model.soil.stack_members`); every rank passes the same, and each keeps its own
        members' columns.
    dt : float
        Model time step, s.
    seed : int
        Experiment seed: member ``i``'s streams depend only on (seed, i, purpose).
    comm : communicator, optional
        mpi4py communicator (default ``MPI.COMM_WORLD`` if available, else serial).
    perturbation : ForcingPerturbation or None
        Forcing perturbation configuration (default: CoLM's defaults); None = unperturbed members.
    model_kwargs : dict, optional
        Extra keyword arguments for :class:`~landimg.model.column.ColumnModel` (igbp, lai, ...).

    Attributes
    ----------
    members : range
        Global indices of this rank's members (contiguous).
    model : ColumnModel
        The model holding this rank's members.
    layout : MemberLayout
        Member partition and reproducible reductions.
    obs_rngs : list of Generator
        Per-member observation-perturbation streams (``Purpose.OBS``).
    geometry : landimg.da.protocol.Geometry
        The grid's columns as the analysis sees them (land mask, coordinates, cell size).
    cache : landimg.da.protocol.AnalysisCache
        Transforms of the analysis methods and neighbourhoods of recent observation patterns.
    da_state : dict of str to float or ndarray
        State the methods carry between analyses (time-smoothed adaptive inflation, the curvelet bias
        coefficients); in the restarts.
    """

    def __init__(
        self,
        grid: Any,
        nmem: int,
        *,
        soil: Any,
        dt: float = 3600.0,
        seed: int = 0,
        comm: Any = None,
        perturbation: ForcingPerturbation | None = _DEFAULT_PERTURBATION,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from landimg.model.column import ColumnModel

        self.grid = grid
        self.seed = int(seed)
        self.layout = MemberLayout(int(nmem), comm)
        self.comm = self.layout.comm
        self.members = self.layout.members
        soil = self._local_soil(soil)
        self.model = ColumnModel(grid.ncol, self.layout.nloc, soil=soil, dt=dt, **dict(model_kwargs or {}))
        self.perturber = (
            None if perturbation is None else ForcingPerturber(perturbation, grid, self.members, self.seed)
        )
        self.obs_rngs = [member_rng(self.seed, i, Purpose.OBS) for i in self.members]
        lat, lon = grid.column_latlon()
        self.geometry = Geometry(grid.land, lat, lon, grid.cell_size_km(), grid.periodic_lon)
        self.cache = AnalysisCache()
        self.da_state: dict[str, Any] = {}

    def _local_soil(self, soil: Any) -> Any:
        """This rank's members' part of per-member soil parameters (per-column ones as they are)."""
        nmem = getattr(soil, "nmem", None)
        if nmem is None:
            return soil
        if nmem != self.nmem:
            raise ValueError(
                f"Ensemble: soil has parameters of {nmem} members (arrays (ncol, {nmem})), expected {self.nmem}"
            )
        return soil.take((slice(None), slice(self.layout.start, self.layout.stop)))

    @property
    def nmem(self) -> int:
        """Global ensemble size."""
        return self.layout.nmem

    # ------------------------------------------------------------------ forecast
    def advance(self, forcing: Mapping[str, np.ndarray], nsteps: int = 1, t: float | None = None) -> None:
        """Step every local member ``nsteps`` model steps under perturbed ``forcing``.

        Parameters
        ----------
        forcing : dict of ndarray (ncol,)
            Unperturbed forcing (tair K, qair kg/kg, psurf Pa, precip kg/m2/s, wind m/s, swdown and
            lwdown W/m2), held for the ``nsteps`` steps.
        nsteps : int
            Model steps. The perturbations evolve by one AR(1) step of ``nsteps * dt`` first, then the
            model takes all steps in one Fortran call.
        t : float, optional
            Time of the (first) step, s since the experiment start: needed when the perturbation shifts
            each member's rain daily (``ForcingPerturbation.rain_shift_km > 0``).
        """
        if int(nsteps) < 1:
            raise ValueError(f"nsteps must be >= 1, got {nsteps}")
        if self.perturber is not None:
            self.perturber.advance(self.model.dt * int(nsteps))
            forcing = self.perturber.apply(forcing, t)
        self.model.step(forcing, nsteps=int(nsteps))

    # ------------------------------------------------------------------ images
    def _local_layer(self, depth: tuple[float, float]) -> np.ndarray:
        return self.model.layer_mean([tuple(depth)])[0].T  # (nloc, ncol)

    def images(self, depth: tuple[float, float] = (0.0, 0.1), gather: bool = True) -> np.ndarray:
        """Layer-mean volumetric water images, m3/m3, NaN off land.

        Returns (nmem, ny, nx) on every rank when ``gather`` else this rank's (nloc, ny, nx).
        """
        loc = self._local_layer(depth)
        if gather:
            loc = self.layout.allgather_members(loc)
        return self.grid.to_image(loc)

    def mean_image(self, depth: tuple[float, float] = (0.0, 0.1)) -> np.ndarray:
        """Ensemble-mean layer image (ny, nx), identical on all ranks."""
        return self.grid.to_image(self.layout.mean(self._local_layer(depth)))

    def spread_image(self, depth: tuple[float, float] = (0.0, 0.1)) -> np.ndarray:
        """Ensemble standard deviation (ddof 1) image (ny, nx), identical on all ranks."""
        _, var = self.layout.mean_var(self._local_layer(depth))
        return self.grid.to_image(np.sqrt(var))

    # ------------------------------------------------------------------ analysis
    def seed_members(self, state: Mapping[str, np.ndarray]) -> None:
        """Set every local member's model state from ``state`` (keys as ``model.get_state()``).

        Each array has the member axis last, of length 1 (one state copied into every member, e.g. a
        spun-up column) or ``nmem`` (member ``i`` gets ``state[key][..., i]``, identical on every rank).
        """
        lay, snap = self.layout, {}
        for key, arr in state.items():
            a = np.asarray(arr)
            if a.shape[-1:] == (1,):
                snap[key] = np.asfortranarray(np.repeat(a, lay.nloc, axis=-1))
            elif a.shape[-1:] == (self.nmem,):
                snap[key] = np.asfortranarray(a[..., lay.start : lay.stop])
            else:
                raise ValueError(
                    f"seed_members: state[{key!r}] has shape {a.shape}; the last (member) axis must be 1 or {self.nmem}"
                )
        self.model.set_state(snap)

    def observation_weights(self, depth: tuple[float, float]) -> np.ndarray:
        """Observation operator of a layer mean over ``depth`` = (top, bottom) m: weights (nlev,), sum 1.

        The model's own layer weights (``ColumnModel.layer_weights``), the one implementation also used
        by :meth:`images`.
        """
        return self.model.layer_weights([tuple(depth)])[0]

    def update_mask(self, snow_threshold: float) -> np.ndarray:
        """Layers that an analysis may change, bool (nlev, ncol, nloc).

        Not where the model reports frozen soil or snow (``ColumnModel.frozen()``), nor on columns with
        more than ``snow_threshold`` kg/m2 of snow water (``state["wsnow"]``).
        """
        m = self.model
        ok = ~np.asarray(m.frozen(), dtype=bool) & (m.state["wsnow"] <= snow_threshold)  # (ncol, nloc)
        return np.broadcast_to(ok[None], m.state["wliq"].shape).copy()

    def analysis_context(self, method: Any) -> AnalysisContext:
        """The arrays-only context of an analysis by ``method`` on this ensemble (see :mod:`landimg.da`)."""
        return AnalysisContext(
            h=self.observation_weights(method.obs_depth), geometry=self.geometry, layout=self.layout,
            rngs=self.obs_rngs, update_mask=self.update_mask(method.snow_threshold), cache=self.cache,
            state=self.da_state,
        )  # fmt: skip

    def analyze(
        self,
        obs_image: np.ndarray,
        obs_std: float | np.ndarray | ObsError,
        method: Method,
        obs_mask: np.ndarray | None = None,
    ) -> Diagnostics:
        """Assimilate an observation image of the layer ``method.obs_depth`` (see :meth:`assimilate`).

        The background goes to the method in the layout it asks for (``method.need``): whole members as
        held (``MEMBERS``), or every member of the columns (``COLUMNS``: gathered here; every rank then
        holds one block with every column, and keeps its own members' increments). Observation
        perturbations, when needed, are drawn from each member's own stream (:meth:`ObsError.draw` of the
        error the method assumes) before the redistribution.

        Returns the typed :class:`~landimg.da.protocol.Diagnostics`, with the water booking filled in.
        """
        obs, err, mask = self._check_observations(obs_image, obs_std, obs_mask)
        g, lay, need = self.grid, self.layout, method.need
        obs, mask = g.to_columns(obs), None if mask is None else g.to_columns(mask)
        context = self.analysis_context(method)
        theta = self.model.theta()
        if need.perturbations:  # (ncol, nloc): each member from its own stream, over the whole domain
            context.perturbations = method.assumed_obs_error(err).draw(self.obs_rngs, self.geometry).T
        if need.distribution is Distribution.COLUMNS and not isinstance(self.comm, SerialComm) and lay.size > 1:
            dtheta, diag = method.analyze(*self._column_complete(theta, context), obs, err, mask, context)
            dtheta = None if dtheta is None else dtheta[:, :, lay.start : lay.stop]
        else:
            if need.distribution is Distribution.COLUMNS:
                context.rngs = None  # every member is here: perturbations come from the host
            dtheta, diag = method.analyze(theta, obs, err, mask, context)
        if dtheta is None:
            diag.clipped_water_kg_m2 = 0.0
        else:
            self._apply_increments(dtheta, diag)
        return diag

    def _column_complete(self, theta: np.ndarray, context: AnalysisContext) -> tuple[np.ndarray]:
        """Member layout -> column-complete layout of one block holding every column (in place on
        ``context``: every member's update mask and perturbations, a serial member layout). Returns
        ``(background,)`` (nlev, ncol, nmem)."""
        lay = self.layout

        def gather(a: np.ndarray) -> np.ndarray:  # (..., ncol, nloc) -> (..., ncol, nmem), member order,
            # Fortran-ordered like the model's arrays (numpy's reductions follow the memory order: same bits)
            return np.asfortranarray(np.moveaxis(lay.allgather_members(np.moveaxis(a, -1, 0)), 0, -1))

        if context.update_mask is not None:
            context.update_mask = gather(context.update_mask.astype(np.float64)) > 0.5
        if context.perturbations is not None:
            context.perturbations = gather(context.perturbations)
        context.layout, context.rngs = MemberLayout(self.nmem, SerialComm()), None
        return (gather(theta),)

    def assimilate(
        self,
        obs_image: np.ndarray,
        obs_std: float | np.ndarray,
        method: Method,
        obs_mask: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Assimilate an observation image of the layer ``method.obs_depth``.

        Parameters
        ----------
        obs_image : ndarray (ny, nx)
            Observed layer-mean soil moisture, m3/m3; NaN = missing.
        obs_std : float, ndarray (ny, nx) or ObsError
            Observation error: a standard deviation, m3/m3 (>= 0; uncorrelated), or the declared error
            model per column (:class:`landimg.da.obs_error.ObsError`, arrays (ncol,) of the grid's columns).
        method : OpenLoop, CurveletEnKF, PointEnKF or PointLETKF (any :class:`landimg.da.protocol.Method`)
        obs_mask : ndarray of bool (ny, nx), optional
            False = do not use.

        Returns
        -------
        dict
            :meth:`analyze`'s diagnostics as a dict (``Diagnostics.as_dict()``): method, n_obs,
            n_nan_masked, increment_mean, increment_rms (m3/m3 of the observed layer), computed/applied/
            clipped water (kg/m2, domain mean per member), ...
        """
        return self.analyze(obs_image, obs_std, method, obs_mask).as_dict()

    def _check_observations(self, obs_image, obs_std, obs_mask):
        """(obs image, the error as an ObsError per column, mask image or None), with one-line errors naming
        the argument."""
        obs_image = np.asarray(obs_image, dtype=np.float64)
        if obs_image.shape != self.grid.shape:
            raise ValueError(
                f"obs_image has shape {obs_image.shape}, expected the grid shape {self.grid.shape}"
            )
        out_of_range = np.isfinite(obs_image) & ((obs_image < 0.0) | (obs_image > 1.0))
        if out_of_range.any():
            raise ValueError(
                f"obs_image has {int(out_of_range.sum())} values outside [0, 1] m3/m3 (min {np.nanmin(obs_image):.4g}, "
                f"max {np.nanmax(obs_image):.4g}): volumetric soil moisture expected; mark missing values with NaN"
            )
        if isinstance(obs_std, ObsError):
            err = as_obs_error(obs_std, self.grid.ncol)
        else:
            std = np.asarray(obs_std, dtype=np.float64)
            if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != self.grid.shape):
                raise ValueError(f"obs_std must be a scalar or shape {self.grid.shape}, got {std.shape}")
            if np.any(std < 0) or np.any(np.isnan(std)):
                raise ValueError("obs_std must be >= 0 and not NaN")
            err = ObsError.white(std if std.ndim == 0 else self.grid.to_columns(std))
        if obs_mask is not None:
            if np.shape(obs_mask) != self.grid.shape:
                raise ValueError(f"obs_mask has shape {np.shape(obs_mask)}, expected {self.grid.shape}")
            obs_mask = np.asarray(obs_mask, dtype=bool)
        return obs_image, err, obs_mask

    def _apply_increments(self, dtheta: np.ndarray, diag: Diagnostics) -> None:
        """Add theta increments (nlev, ncol, nloc) as liquid water (``model.add_soil_water``, bounds kept).

        Books computed, applied and clipped water (kg/m2, domain means over columns and all members,
        member-ordered) in ``diag`` with ``applied + clipped == computed``.
        """
        model, lay = self.model, self.layout
        dz = np.asarray(model.dz, dtype=np.float64)
        dw = np.asfortranarray(dtheta * (_RHO_LIQ * dz)[:, None, None])  # kg/m2 per layer
        applied, clipped = model.add_soil_water(dw)
        computed = dw.sum(axis=0)

        def tot(a: np.ndarray) -> float:  # domain mean per member, (ncol, nloc) -> scalar, member-ordered
            return float(lay.ordered_sum(np.asarray(a).T).sum()) / (lay.nmem * model.ncol)

        diag.computed_water_kg_m2 = tot(computed)
        diag.applied_water_kg_m2 = tot(applied)
        diag.clipped_water_kg_m2 = tot(clipped)
        diag.clipped_abs_water_kg_m2 = tot(np.abs(clipped))

    # ------------------------------------------------------------------ restart
    def gather_state(self, root: int = 0) -> dict[str, Any] | None:
        """Full ensemble state with the member axis complete, on ``root`` (None elsewhere).

        Keys: ``model/<name>`` (model arrays, member axis last), ``perturb_z`` (nmem, nvar, ncol),
        ``rng_forcing`` and ``rng_obs`` (lists of bit-generator states in member order), ``da_state``
        (dict of 0-d arrays: what the analysis methods carry between analyses), ``seed``, ``nmem``.
        """
        lay = self.layout
        out: dict[str, Any] = {}
        for key, arr in self.model.get_state().items():
            full = lay.gather_members(np.moveaxis(arr, _MODEL_MEMBER_AXIS, 0), root=root)
            if full is not None:
                out[f"model/{key}"] = np.asfortranarray(np.moveaxis(full, 0, _MODEL_MEMBER_AXIS))
        if self.perturber is not None:
            pstate = self.perturber.get_state()
            z = lay.gather_members(pstate["z"], root=root)
            rng_f = self.comm.gather(pstate["rng"], root=root)
            if z is not None:
                out["perturb_z"] = z
                out["rng_forcing"] = [s for part in rng_f for s in part]
        rng_o = self.comm.gather([g.bit_generator.state for g in self.obs_rngs], root=root)
        if lay.rank != root:
            return None
        out["rng_obs"] = [s for part in rng_o for s in part]
        out["da_state"] = {k: np.asarray(v, dtype=np.float64) for k, v in sorted(self.da_state.items())}
        out["seed"], out["nmem"] = self.seed, self.nmem
        return out

    def scatter_state(self, state: Mapping[str, Any] | None, root: int = 0) -> None:
        """Restore a state from :meth:`gather_state` (given on ``root``; ignored elsewhere)."""
        lay = self.layout
        bad = lay.rank == root and (state is None or int(state.get("nmem", -1)) != self.nmem)
        if self.comm.bcast(bad, root=root):  # every rank raises, none is left waiting
            raise ValueError("state must come from gather_state of an ensemble of the same size")
        keys = self.comm.bcast(
            None if state is None else sorted(k for k in state if k.startswith("model/")), root=root
        )
        snap = {}
        for key in keys:
            full = None if lay.rank != root else np.moveaxis(np.asarray(state[key]), _MODEL_MEMBER_AXIS, 0)
            snap[key[len("model/") :]] = np.asfortranarray(
                np.moveaxis(lay.scatter_members(full, root=root), 0, _MODEL_MEMBER_AXIS)
            )
        self.model.set_state(snap)
        sl = slice(lay.start, lay.stop)
        rng_o = self.comm.bcast(None if lay.rank != root else state["rng_obs"], root=root)
        for g, s in zip(self.obs_rngs, rng_o[sl], strict=True):
            g.bit_generator.state = s
        da_state = self.comm.bcast(None if lay.rank != root else dict(state.get("da_state", {})), root=root)
        self.da_state = {  # restarts without it: fresh state; arrays (e.g. the curvelet bias) stay arrays
            k: float(v) if np.ndim(v) == 0 else np.array(v, dtype=np.float64) for k, v in da_state.items()
        }
        if self.perturber is not None:
            z = lay.scatter_members(None if lay.rank != root else state["perturb_z"], root=root)
            rng_f = self.comm.bcast(None if lay.rank != root else state["rng_forcing"], root=root)
            self.perturber.set_state({"z": z, "rng": rng_f[sl]})
