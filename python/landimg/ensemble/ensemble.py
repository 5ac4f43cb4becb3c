"""The embedding API: an ensemble of land-surface members stepped in memory across MPI ranks.

:class:`Ensemble` owns this rank's part of the ensemble: the members of its member group on the columns of
its column block (one :class:`~landimg.model.column.ColumnModel` holding them; :class:`landimg.layout.Layout`,
``G x K`` ranks), their forcing perturbations and random streams, and offers ``advance`` / ``images`` /
``seed_members`` / ``assimilate`` / ``write_shards`` / ``read_shards`` (sharded restarts; ``gather_state`` /
``scatter_state`` gather them on one rank, for small grids) for an outside driver
(docs/embedding.md). It is the host of the analysis methods (:mod:`landimg.da`, arrays only): it owns the
observation operator, the update masks (frozen soil, snow), the transform cache, moves the background to
the layout each method asks for and the increments back (:mod:`landimg.ensemble.redistribute`), and
applies them with the water booked. Everything that mixes members is reduced in member order and every
domain sum uses the fixed chunking of the columns, so results do not depend on the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from landimg.da.column_ops import vertical_weights
from landimg.da.protocol import (
    AnalysisCache,
    AnalysisContext,
    Diagnostics,
    Method,
    ObsError,
    as_obs_error,
)
from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber, SharedDraws
from landimg.ensemble.redistribute import AnalysisLayout, analysis_layout
from landimg.layout import Layout
from landimg.parallel import Purpose, member_rng
from landimg.shards import ShardStore, ShardWriter, StoreError, write_store

__all__ = ["Ensemble"]

_DEFAULT_PERTURBATION = ForcingPerturbation()  # frozen dataclass: CoLM's defaults
_RHO_LIQ = 1000.0  # density of liquid water, kg/m3


class Ensemble:
    """An ensemble of ``nmem`` members on a grid, split over the ranks of ``comm`` (member groups x column
    blocks).

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
    column_blocks : int
        ``K``: the ``P`` ranks of ``comm`` are ``P / K`` member groups x ``K`` blocks of columns
        (:class:`landimg.layout.Layout`; default 1: every rank holds every column of its members).
    perturbation : ForcingPerturbation or None
        Forcing perturbation configuration (default: CoLM's defaults); None = unperturbed members.
    model_kwargs : dict, optional
        Extra keyword arguments for :class:`~landimg.model.column.ColumnModel` (igbp, lai, ...).
    shared_draws : landimg.ensemble.perturb.SharedDraws, optional
        Perturbation draws shared with other ensembles of the same seed and members (the methods of one
        experiment): computed once, the same bits (default: none shared).

    Attributes
    ----------
    members : range
        Global indices of this rank's members (contiguous).
    columns : ndarray of int (ncol_local,)
        Global indices of this rank's columns (contiguous; every column when ``column_blocks = 1``).
    model : ColumnModel
        The model holding this rank's members on its columns.
    layout : landimg.layout.Layout
        The partition (member groups x column blocks) and every reduction, gather and transposition.
    obs_rngs : list of Generator
        Per-member observation-perturbation streams (``Purpose.OBS``).
    geometry : landimg.Grid
        The grid (the analyses' view of the columns: the one grid type).
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
        column_blocks: int = 1,
        shared_draws: SharedDraws | None = None,
    ) -> None:
        from landimg.model.column import ColumnModel

        self.grid = grid
        self.seed = int(seed)
        self.layout = Layout(int(nmem), comm, ncol=grid.ncol, column_blocks=column_blocks)
        if self.layout.member_groups > self.layout.nmem:  # every rank knows: every rank raises
            raise ValueError(
                f"Ensemble: {self.layout.member_groups} member groups for {nmem} members: use more "
                "column blocks"
            )
        self.comm = self.layout.comm
        self.members = self.layout.members
        self.columns = self.layout.columns
        self._cols = slice(self.layout.col_start, self.layout.col_stop)
        soil = self._local_soil(soil)
        kwargs = {k: self._local_columns(v) for k, v in dict(model_kwargs or {}).items()}
        self.model = ColumnModel(self.layout.ncol_local, self.layout.nloc, soil=soil, dt=dt, **kwargs)
        self.perturber = (
            None
            if perturbation is None
            else ForcingPerturber(perturbation, grid, self.members, self.seed, columns=self._cols, shared=shared_draws)
        )
        self.obs_rngs = [member_rng(self.seed, i, Purpose.OBS) for i in self.members]
        self.geometry = grid  # the analyses' view of the columns: the one grid type
        self.cache = AnalysisCache()
        self.da_state: dict[str, Any] = {}
        self._analysis_layouts: dict[Any, AnalysisLayout] = {}

    def _local_soil(self, soil: Any) -> Any:
        """This rank's part of the soil parameters: its columns (and its members' of per-member ones)."""
        nmem = getattr(soil, "nmem", None)
        if nmem is not None and nmem != self.nmem:
            raise ValueError(
                f"Ensemble: soil has parameters of {nmem} members (arrays (ncol, {nmem})), expected {self.nmem}"
            )
        if getattr(soil, "ncol", self.grid.ncol) != self.grid.ncol:
            raise ValueError(f"Ensemble: soil has {soil.ncol} columns, the grid {self.grid.ncol}")
        if nmem is None:
            return soil if self.layout.whole else soil.take(self._cols)
        return soil.take((self._cols, slice(self.layout.start, self.layout.stop)))

    def _local_columns(self, value: Any) -> Any:
        """``value`` on this rank's columns: an array whose first axis holds every column is cut to the
        block; anything else (a scalar, a block's array) is passed on as it is."""
        arr = np.asarray(value)
        if self.layout.whole or arr.ndim == 0 or arr.shape[0] != self.grid.ncol:
            return value
        return arr[self._cols]

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
            lwdown W/m2), held for the ``nsteps`` steps: of every column of the grid (this rank takes its
            block's) or of this rank's columns only (ncol_local,); with ``rain_shift_km > 0`` the
            precipitation of every column (the shift moves rain between blocks).
        nsteps : int
            Model steps. The perturbations evolve by one AR(1) step of ``nsteps * dt`` first, then the
            model takes all steps in one Fortran call.
        t : float, optional
            Time of the (first) step, s since the experiment start: needed when the perturbation shifts
            each member's rain daily (``ForcingPerturbation.rain_shift_km > 0``).
        """
        if int(nsteps) < 1:
            raise ValueError(f"nsteps must be >= 1, got {nsteps}")
        if self.perturber is not None:  # it cuts the forcing to this rank's columns (after the rain shift)
            self.perturber.advance(self.model.dt * int(nsteps))
            forcing = self.perturber.apply(forcing, t)
        else:
            forcing = {k: self._local_columns(v) for k, v in forcing.items()}
        self.model.step(forcing, nsteps=int(nsteps))

    # ------------------------------------------------------------------ images
    def _local_layer(self, depth: tuple[float, float]) -> np.ndarray:
        return self.model.layer_mean([tuple(depth)])[0].T  # (nloc, ncol_local)

    def _block_image(self, values: np.ndarray) -> np.ndarray:
        """Images (..., ny, nx) of values (..., ncol_local) of this rank's columns, NaN elsewhere."""
        full = np.full(values.shape[:-1] + (self.grid.ncol,), np.nan)
        full[..., self._cols] = values
        return self.grid.to_image(full)

    def images(
        self, depth: tuple[float, float] = (0.0, 0.1), gather: bool = True, root: int | None = None
    ) -> np.ndarray | None:
        """Layer-mean volumetric water images, m3/m3, NaN off land.

        Returns (nmem, ny, nx) on every rank when ``gather`` (only on world rank ``root``, None elsewhere,
        when ``root`` is given), else this rank's members (nloc, ny, nx) with its own columns only (NaN on
        the other blocks' columns).
        """
        loc = self._local_layer(depth)
        if gather and root is not None:
            full = self.layout.gather(loc.T, root=root)
            return None if full is None else self.grid.to_image(full.T)
        if gather:
            return self.grid.to_image(self.layout.allgather(loc.T).T)
        return self._block_image(loc)

    def layer_stats(
        self, intervals: list[tuple[float, float]], spread: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Ensemble mean (and with ``spread`` the standard deviation, ddof 1) of layer means over
        ``intervals`` on this rank's columns, (nlayers, ncol_local) each, m3/m3: reduced over every member
        in member order (collective over the ranks holding these columns; bitwise the same on any layout,
        and the same values :meth:`mean_image` / :meth:`spread_image` hold)."""
        loc = self.model.layer_mean([tuple(iv) for iv in intervals])  # (nlayers, ncol_local, nloc)
        if not spread:
            return self.layout.mean(loc, axis=-1)
        mean, var = self.layout.mean_var(loc, axis=-1)
        return mean, np.sqrt(var)

    def mean_image(self, depth: tuple[float, float] = (0.0, 0.1)) -> np.ndarray:
        """Ensemble-mean layer image (ny, nx), identical on all ranks."""
        return self.grid.to_image(self.layout.allgather_columns(self.layout.mean(self._local_layer(depth))))

    def spread_image(self, depth: tuple[float, float] = (0.0, 0.1)) -> np.ndarray:
        """Ensemble standard deviation (ddof 1) image (ny, nx), identical on all ranks."""
        _, var = self.layout.mean_var(self._local_layer(depth))
        return self.grid.to_image(self.layout.allgather_columns(np.sqrt(var)))

    # ------------------------------------------------------------------ analysis
    def seed_members(self, state: Mapping[str, np.ndarray]) -> None:
        """Set every local member's model state from ``state`` (keys as ``model.get_state()``).

        Each array has the member axis last, of length 1 (one state copied into every member, e.g. a
        spun-up column) or ``nmem`` (member ``i`` gets ``state[key][..., i]``, identical on every rank),
        and the column axis before it over every column of the grid (this rank takes its block's).
        """
        lay, snap = self.layout, {}
        for key, arr in state.items():
            a = np.asarray(arr)
            if a.ndim >= 2 and a.shape[-2] == self.grid.ncol:
                a = a[..., self._cols, :]
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
        """Layers that an analysis may change, bool (nlev, ncol_local, nloc).

        Not where the model reports frozen soil or snow (``ColumnModel.frozen()``), nor on columns with
        more than ``snow_threshold`` kg/m2 of snow water (``state["wsnow"]``).
        """
        m = self.model
        ok = ~np.asarray(m.frozen(), dtype=bool) & (m.state["wsnow"] <= snow_threshold)  # (ncol, nloc)
        return np.broadcast_to(ok[None], m.state["wliq"].shape).copy()

    def analysis_context(self, method: Any) -> AnalysisContext:
        """The arrays-only context of an analysis by ``method`` on this ensemble as it is laid out (see
        :mod:`landimg.da`; :meth:`analyze` moves it to the layout the method asks for)."""
        return AnalysisContext(
            h=self.observation_weights(method.obs_depth), geometry=self.geometry, layout=self.layout,
            columns=None if self.layout.whole else self.columns, rngs=self.obs_rngs,
            update_mask=self.update_mask(method.snow_threshold), cache=self.cache, state=self.da_state,
        )  # fmt: skip

    def analysis_layout(self, method: Any) -> AnalysisLayout:
        """The layout ``method.need`` asks for and the transposition there (collective; one per need)."""
        need = method.need
        key = (need.distribution, float(need.halo_km))
        if key not in self._analysis_layouts:
            self._analysis_layouts[key] = analysis_layout(self.layout, need, self.grid)
        return self._analysis_layouts[key]

    def analyze(
        self,
        obs_image: np.ndarray,
        obs_std: float | np.ndarray | ObsError,
        method: Method,
        obs_mask: np.ndarray | None = None,
    ) -> Diagnostics:
        """Assimilate an observation image of the layer ``method.obs_depth`` (see :meth:`assimilate`).

        The background goes to the method in the layout it asks for (``method.need``,
        :mod:`landimg.ensemble.redistribute`): whole members (``MEMBERS``: each member's every column on
        one rank), every member of a block of columns and its halo (``COLUMNS``: one block per rank), or as
        held (``NONE``); the update mask, the observation perturbations and the observations of the
        columns held there go with it, and the increments of each block's own columns come back.
        Observation perturbations, when needed, are drawn by every rank from its members' own streams
        (:meth:`ObsError.draw` of the error the method assumes, over the whole domain, then this rank's
        columns) before the redistribution. The increments are tapered by the method's vertical
        localization (:meth:`layer_weights`) before they are applied.

        Returns the typed :class:`~landimg.da.protocol.Diagnostics`, with the water booking filled in.
        """
        obs, err, mask = self._check_observations(obs_image, obs_std, obs_mask)
        g, need = self.grid, method.need
        obs, mask = g.to_columns(obs), None if mask is None else g.to_columns(mask)
        where = self.analysis_layout(method)
        tr = where.transposer
        context = self.analysis_context(method)
        theta, ok = self.model.theta(), context.update_mask
        pert = None
        if need.perturbations:  # (ncol_local, nloc): each member from its own stream, over the whole domain
            mine = err if self.layout.whole else err.take(self.columns)
            pert = method.assumed_obs_error(mine).draw(self.obs_rngs, g, columns=self.columns).T
        context.layout, context.columns, context.owned = where.layout, where.columns, where.owned
        context.update_mask = tr.forward(ok)
        context.perturbations = None if pert is None else tr.forward(pert)
        if not tr.identity:  # the members held there are not this rank's: the host drew the perturbations
            context.rngs = None
        if where.columns is not None:  # the observations of the columns held there
            cols = where.columns
            obs, err, mask = obs[cols], err.take(cols), None if mask is None else mask[cols]
        dtheta, diag = method.analyze(tr.forward(theta), obs, err, mask, context)
        if dtheta is None:
            diag.clipped_water_kg_m2 = 0.0
        else:
            dtheta = tr.backward(np.asarray(dtheta, dtype=np.float64))
            self._apply_increments(dtheta * self.layer_weights(method)[:, None, None], diag)
        return diag

    def layer_weights(self, method: Any) -> np.ndarray:
        """Weights (nlev,) of ``method``'s layer increments: its vertical localization
        (:func:`landimg.da.column_ops.vertical_weights` of ``method.vertical_localization_m`` by the model's
        layer depths; all ones for a method without it)."""
        return vertical_weights(
            self.model.z_node, self.observation_weights(method.obs_depth), method.obs_depth[1],
            getattr(method, "vertical_localization_m", None),
        )  # fmt: skip

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

        # domain means per member: summed over the members in member order, then over the columns with the
        # fixed chunking (the same bits on any layout)
        parts = np.stack([computed, applied, clipped, np.abs(clipped)])
        tot = lay.domain_sum(parts) / (lay.nmem * self.grid.ncol)
        (diag.computed_water_kg_m2, diag.applied_water_kg_m2, diag.clipped_water_kg_m2,
         diag.clipped_abs_water_kg_m2) = (float(v) for v in tot)  # fmt: skip

    # ------------------------------------------------------------------ restart (sharded)
    def add_to_shard(self, writer: ShardWriter, prefix: str = "") -> None:
        """Add this rank's share of the ensemble to a shard being written (no communication, no copies).

        Parts (:mod:`landimg.shards`): ``ensemble`` -- the model state and flux accumulators
        ``{prefix}model::<name>`` (..., ncol_local, nloc) and the forcing perturbations ``{prefix}perturb_z``
        (nvar, ncol_local, nloc) of this rank's members on its columns; ``streams`` (the first column block
        of each member group) -- the random-stream states of its members, ``{prefix}rng_forcing`` and
        ``{prefix}rng_obs``; ``columns`` (member group 0) -- this block's columns of the analysis state
        kept per column (``da_state`` arrays whose last axis is the grid's columns, e.g. the LETKF bias);
        ``whole`` (rank 0) -- the rest of ``da_state``, ``{prefix}nmem``, ``{prefix}ncol``, ``{prefix}seed``.
        """
        lay = self.layout
        mem, cols = (lay.start, lay.stop), (lay.col_start, lay.col_stop)
        writer.part("ensemble", members=mem, columns=cols)
        for key, arr in self.model.get_state(copy=False).items():
            writer.add("ensemble", f"{prefix}model::{key}", arr)
        if self.perturber is not None:
            writer.add("ensemble", f"{prefix}perturb_z", np.moveaxis(self.perturber.z, 0, -1))
        if lay.block == 0:  # every block of a member group holds the same streams: the first writes them
            writer.part("streams", members=mem)
            if self.perturber is not None:
                writer.add("streams", f"{prefix}rng_forcing", [r.bit_generator.state for r in self.perturber.rngs])
            writer.add("streams", f"{prefix}rng_obs", [g.bit_generator.state for g in self.obs_rngs])
        for key, value in sorted(self.da_state.items()):
            arr = np.asarray(value, dtype=np.float64)
            if self._per_column(arr):
                if lay.group == 0:
                    writer.part("columns", columns=cols)
                    writer.add("columns", f"{prefix}da_state::{key}", arr[..., lay.col_start : lay.col_stop])
            elif lay.rank == 0:
                writer.part("whole")
                writer.add("whole", f"{prefix}da_state::{key}", arr)
        if lay.rank == 0:
            writer.part("whole")
            for key, value in (("nmem", self.nmem), ("ncol", self.grid.ncol), ("seed", self.seed)):
                writer.add("whole", f"{prefix}{key}", np.int64(value))

    def _per_column(self, arr: np.ndarray) -> bool:
        """An analysis-state array over every column of the grid (last axis): written by column blocks."""
        return arr.ndim >= 1 and arr.shape[-1] == self.grid.ncol and not self.layout.whole

    def read_from(self, store: ShardStore, prefix: str = "") -> None:
        """Restore this rank's share from a store written by :meth:`add_to_shard` on any layout (no
        communication: each rank reads the parts of the shards that hold its members and columns).

        Raises
        ------
        StoreError
            The store holds another ensemble (size, grid) or misses a part this rank needs (one line).
        """
        lay = self.layout
        for key, mine in (("nmem", self.nmem), ("ncol", self.grid.ncol)):
            found = int(store.whole("whole", f"{prefix}{key}"))
            if found != mine:
                raise StoreError(f"the store {store.directory} holds an ensemble of {key} = {found}, this one has {mine}")
        mem, cols = (lay.start, lay.stop), (lay.col_start, lay.col_stop)
        names = store.keys("ensemble", f"{prefix}model::")
        self.model.set_state({k: store.block("ensemble", f"{prefix}model::{k}", mem, cols) for k in names})
        for g, st in zip(self.obs_rngs, store.members("streams", f"{prefix}rng_obs", mem), strict=True):
            g.bit_generator.state = st
        da_state: dict[str, Any] = {}
        for key in store.keys("columns", f"{prefix}da_state::"):  # every column: the methods keep them whole
            da_state[key] = store.columns("columns", f"{prefix}da_state::{key}", (0, self.grid.ncol))
        for key in store.keys("whole", f"{prefix}da_state::"):
            da_state[key] = store.whole("whole", f"{prefix}da_state::{key}")
        self.da_state = {k: float(v) if np.ndim(v) == 0 else np.array(v, dtype=np.float64) for k, v in da_state.items()}
        if self.perturber is not None:
            z = store.block("ensemble", f"{prefix}perturb_z", mem, cols)
            rng = store.members("streams", f"{prefix}rng_forcing", mem)
            self.perturber.set_state({"z": np.ascontiguousarray(np.moveaxis(z, -1, 0)), "rng": rng})

    def write_shards(self, directory: str | Path) -> None:
        """Write the ensemble's state as a sharded store (collective): each rank its members on its columns
        (:meth:`add_to_shard`), rank 0 a small manifest; files written atomically (:mod:`landimg.shards`).
        :meth:`read_shards` restores it on any layout. No rank holds more than its own share.

        Raises
        ------
        DiskError
            The disk refused a write (on every rank, one line naming the file); nothing is left.
        """
        writer = ShardWriter()
        self.add_to_shard(writer)
        lay = self.layout
        fields = {"content": "landimg.Ensemble", "layout": {"ranks": lay.size, "member_groups": lay.member_groups,
                  "column_blocks": lay.column_blocks}}  # fmt: skip
        write_store(directory, writer, None if lay.size == 1 else self.comm, fields)

    def read_shards(self, directory: str | Path, verify: bool = True) -> None:
        """Restore a state written by :meth:`write_shards` (collective), on any layout: each rank reads the
        parts of the shards it needs. ``verify``: check every shard's SHA-256 first (each hashed once).

        Raises
        ------
        StoreError
            A shard is missing or corrupt, or the store holds another ensemble (every rank, one line).
        """
        comm = None if self.layout.size == 1 else self.comm
        store = ShardStore(directory, comm)
        if verify:
            store.verify()
        failed = None
        try:
            self.read_from(store)
        except StoreError as exc:
            failed = exc
        if comm is not None:
            failed = next((f for f in comm.allgather(failed) if f is not None), None)
        if failed is not None:
            raise failed

    # ------------------------------------------------------------------ restart (gathered: small grids)
    def gather_state(self, root: int = 0) -> dict[str, Any] | None:
        """Full ensemble state, every member and column, on world rank ``root`` (None elsewhere).

        A convenience for small grids and tests: ``root`` holds the whole ensemble. Large runs write and
        read sharded restarts instead (:meth:`write_shards` / :meth:`read_shards`), where no rank holds
        more than its own members on its own columns.

        Keys: ``model/<name>`` (model arrays (..., ncol, nmem)), ``perturb_z`` (nmem, nvar, ncol),
        ``rng_forcing`` and ``rng_obs`` (lists of bit-generator states in member order), ``da_state``
        (dict of 0-d arrays: what the analysis methods carry between analyses), ``seed``, ``nmem``. The
        same whatever the layout, so a state gathered on one layout scatters on any other.
        """
        lay = self.layout
        out: dict[str, Any] = {}
        for key, arr in self.model.get_state().items():
            full = lay.gather(arr, root=root)
            if full is not None:
                out[f"model/{key}"] = full
        first = lay.block == 0  # every block of a member group holds the same streams: take the first's
        if self.perturber is not None:
            pstate = self.perturber.get_state()
            z = lay.gather(np.moveaxis(pstate["z"], 0, -1), root=root)  # (nvar, ncol, nmem)
            rng_f = self.comm.gather(pstate["rng"] if first else None, root=root)
            if z is not None:
                out["perturb_z"] = np.ascontiguousarray(np.moveaxis(z, -1, 0))
                out["rng_forcing"] = [s for part in rng_f if part is not None for s in part]
        rng_o = self.comm.gather([g.bit_generator.state for g in self.obs_rngs] if first else None, root=root)
        if lay.rank != root:
            return None
        out["rng_obs"] = [s for part in rng_o if part is not None for s in part]
        out["da_state"] = {k: np.asarray(v, dtype=np.float64) for k, v in sorted(self.da_state.items())}
        out["seed"], out["nmem"] = self.seed, self.nmem
        return out

    def scatter_state(self, state: Mapping[str, Any] | None, root: int = 0) -> None:
        """Restore a state from :meth:`gather_state` (given on ``root``; ignored elsewhere), on any layout."""
        lay = self.layout
        bad = lay.rank == root and (state is None or int(state.get("nmem", -1)) != self.nmem)
        if self.comm.bcast(bad, root=root):  # every rank raises, none is left waiting
            raise ValueError("state must come from gather_state of an ensemble of the same size")
        keys = self.comm.bcast(
            None if state is None else sorted(k for k in state if k.startswith("model/")), root=root
        )
        snap = {}
        for key in keys:
            full = None if lay.rank != root else np.asarray(state[key])
            snap[key[len("model/") :]] = lay.scatter(full, root=root)
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
            full = None if lay.rank != root else np.moveaxis(np.asarray(state["perturb_z"]), 0, -1)
            z = np.ascontiguousarray(np.moveaxis(lay.scatter(full, root=root), -1, 0))
            rng_f = self.comm.bcast(None if lay.rank != root else state["rng_forcing"], root=root)
            self.perturber.set_state({"z": z, "rng": rng_f[sl]})
