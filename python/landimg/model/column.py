"""In-memory CoLM-like soil columns for an ensemble: :class:`ColumnModel`.

The physics lives in Fortran (``landimg.model._colm``, built from ``fortran/``); one call of
``colm_step`` advances every column of every member ``nsteps`` time steps in place. This module owns the
Fortran-ordered state buffers (passed by name, like forcing, parameters and fluxes: ``_binding``), validates forcing before anything is touched, and offers the
diagnostics used by the data assimilation (volumetric water, layer means, water storage, frozen
flags, bookkept analysis increments, state snapshots for restarts). See ``docs/model.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from landimg.model import _binding
from landimg.model import soil as _soil
from landimg.model._validate import _check_dt, _check_soil, _nonnegative_int, _positive_int

__all__ = ["FLUX_NAMES", "FORCING_NAMES", "PARAM_NAMES", "STATE_UNITS", "ColumnModel", "threads"]

_api = _binding.api

#: forcing variables in the order of the Fortran forcing array, with units and allowed range
FORCING_NAMES: tuple[str, ...] = ("tair", "qair", "psurf", "precip", "wind", "swdown", "lwdown")
_FORCING_RANGE: dict[str, tuple[float, float, str]] = {
    "tair": (150.0, 350.0, "K"),
    "qair": (0.0, 0.1, "kg/kg"),
    "psurf": (3.0e4, 1.2e5, "Pa"),
    "precip": (0.0, 1.0, "kg/m2/s"),
    "wind": (0.0, 100.0, "m/s"),
    "swdown": (0.0, 1500.0, "W/m2"),
    "lwdown": (0.0, 1000.0, "W/m2"),
}

#: accumulated fluxes and their units
FLUX_UNITS: dict[str, str] = {
    "precip": "kg/m2",
    "evap_soil": "kg/m2",
    "transpiration": "kg/m2",
    "evap_canopy": "kg/m2",
    "runoff_surface": "kg/m2",
    "runoff_subsurface": "kg/m2",
    "analysis": "kg/m2",
    "sensible_heat": "J/m2",
    "latent_heat": "J/m2",
    "snowmelt": "kg/m2",
    "ground_heat": "J/m2",
}

#: per-column parameters passed to Fortran, by name: where each comes from ("soil.<field>" of
#: :class:`~landimg.model.soil.SoilParams`, "veg.<field>" of :class:`~landimg.model.soil.VegParams`, a
#: constant, or "derived": computed once from the others in Fortran, colm_api::colm_derive)
PARAM_SOURCES: dict[str, str | float] = {
    "theta_s": "soil.theta_s",
    "b": "soil.b",
    "psi_s": "soil.psi_s",
    "k_s": "soil.k_s",
    "csol": "soil.csol",
    "tksol": "soil.tksol",
    "tkdry": "soil.tkdry",
    "lai": "veg.lai",
    "sai": "veg.sai",
    "z0m": "veg.z0m",
    "albedo": "veg.albedo",
    "emissivity": "veg.emissivity",
    "gsmax": "veg.gsmax",
    "hydmodel": 1.0,  # 1 = Campbell / Clapp-Hornberger (colm_soil::hyd_campbell)
    # derived once from the above by colm_api::colm_derive (hoisted out of the time step)
    "theta_air": "derived",
    "tortuosity": "derived",
    "s_fc": "derived",
    "log_tksol": "derived",
    "fveg": "derived",
    "fint": "derived",
    "log_zm": "derived",
    "log_zh": "derived",
}
PARAM_NAMES: tuple[str, ...] = tuple(PARAM_SOURCES)

# name -> 0-based index into the Fortran arrays, checked against the extension's own names on import
_FORCING_INDEX = _binding.index_map("forcing", FORCING_NAMES)
_PARAM_INDEX = _binding.index_map("parameter", PARAM_NAMES)
_FLUX_INDEX = _binding.index_map("flux", tuple(FLUX_UNITS))
#: accumulated fluxes in the order of the Fortran flux array (= ``get_state()["fluxes"]``); units in FLUX_UNITS
FLUX_NAMES: tuple[str, ...] = _binding.FORTRAN_FLUXES

#: state keys, shapes and units
STATE_UNITS: dict[str, str] = {
    "wliq": "kg/m2 liquid soil water per layer (nlev, ncol, nmem)",
    "wice": "kg/m2 soil ice per layer (nlev, ncol, nmem)",
    "tsoil": "K soil temperature per layer (nlev, ncol, nmem)",
    "zwt": "m water-table depth (ncol, nmem)",
    "wa": "kg/m2 water in the unconfined aquifer (ncol, nmem)",
    "wcanopy": "kg/m2 intercepted water on the canopy (ncol, nmem)",
    "wsnow": "kg/m2 snow water equivalent (ncol, nmem)",
    "wpond": "kg/m2 ponded surface water (ncol, nmem)",
    "tskin": "K surface (skin) temperature, diagnostic = snow layer if any, else top soil layer (ncol, nmem)",
    "tsnow": "K snow-layer temperature; = top soil layer while the snow is thinner than 1 cm (ncol, nmem)",
    "dsnow": "m snow depth (ncol, nmem)",
}
_LAYERED = ("wliq", "wice", "tsoil")
_PLANE = ("zwt", "wa", "wcanopy", "wsnow", "wpond", "tskin", "tsnow", "dsnow")
# state name -> 0-based index into the last dimension of the Fortran state arrays, checked like the forcing
_LSTATE_INDEX = _binding.index_map("layer state", _LAYERED)
_CSTATE_INDEX = _binding.index_map("column state", _PLANE)

_ERRORS = {
    1: "a state variable became NaN or Inf",
    2: "soil temperature left the range 150-400 K",
    3: "singular tridiagonal system",
    4: "inconsistent array sizes or time step",
    5: "unknown soil hydraulic model",
}

_NLEV = 10
_TFRZ = 273.16
_DENH2O = 1000.0
_DENICE = 917.0


def _geometry(nlev: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.zeros(nlev, order="F")
    dz = np.zeros(nlev, order="F")
    zi = np.zeros(nlev, order="F")
    z[:], dz[:], zi[:] = _api.colm_geometry(z.size)
    return z, dz, zi


class ColumnModel:
    """Ensemble of CoLM-like soil columns stepped in place by Fortran.

    Parameters
    ----------
    ncol : int
        Number of columns (grid cells).
    nmem : int
        Number of ensemble members.
    soil : landimg.model.soil.SoilParams, optional
        Soil parameters with arrays (ncol,) (shared by all members) or (ncol, nmem) (per member, e.g.
        from :func:`landimg.model.soil.stack_members` or ``from_texture`` of per-member texture); one
        Fortran call still steps all columns and members. Default: "loam" everywhere.
    dt : float
        Time step (s), 0 < dt <= 3600.
    igbp : int or array (ncol,)
        IGBP land-cover class (1..17) for roots, LAI, SAI, roughness and albedo; default 10 (grassland).
    lai, sai, z0m, albedo, emissivity, gsmax : float or array (ncol,), optional
        Overrides of the vegetation defaults (see :func:`landimg.model.soil.vegetation`).

    Notes
    -----
    ``state`` maps names to Fortran-ordered float64 arrays that keep their identity for the life of the
    model: modify them in place (``m.state["wliq"][...] = x``), never rebind. Every key, with units, is
    in :data:`STATE_UNITS`. The model starts cold (as CoLM2014): T = 283 K, saturated soil, wa = 4800 mm,
    zwt = bottom + 1 m; spin it up with ``step(forcing, nsteps=...)``.
    """

    def __init__(
        self,
        ncol: int,
        nmem: int,
        soil: _soil.SoilParams | None = None,
        dt: float = 1800.0,
        *,
        igbp: int | np.ndarray = 10,
        lai: float | np.ndarray | None = None,
        sai: float | np.ndarray | None = None,
        z0m: float | np.ndarray | None = None,
        albedo: float | np.ndarray | None = None,
        emissivity: float | np.ndarray = 0.96,
        gsmax: float | np.ndarray = 0.005,
    ) -> None:
        self.ncol = _positive_int("ncol", ncol)
        self.nmem = _positive_int("nmem", nmem)
        self.dt = _check_dt(dt)
        if soil is None:
            soil = _soil.from_class("loam", self.ncol)
        if not isinstance(soil, _soil.SoilParams):
            raise ValueError("soil must be a landimg.model.soil.SoilParams (from_texture or from_class)")
        if soil.ncol != self.ncol:
            raise ValueError(f"soil has {soil.ncol} columns, the model {self.ncol}")
        if soil.nmem is not None and soil.nmem != self.nmem:
            raise ValueError(f"soil has parameters for {soil.nmem} members, the model {self.nmem}")
        _check_soil(soil)
        self.soil = soil
        self.veg = _soil.vegetation(
            igbp, self.ncol, lai=lai, sai=sai, z0m=z0m, albedo=albedo, emissivity=emissivity, gsmax=gsmax
        )
        self.nlev = _NLEV
        self.z_node, self.dz, self.z_bottom = _geometry(self.nlev)
        self.z_top = np.concatenate([[0.0], self.z_bottom[:-1]])
        self._params = np.zeros((len(PARAM_NAMES), self.ncol, self.nmem), order="F")
        for name, src in PARAM_SOURCES.items():
            if src == "derived":
                continue
            v = np.asarray(self._param_value(src), dtype=float)
            self._params[_PARAM_INDEX[name]] = v[:, None] if v.ndim == 1 else v
        if _api.colm_derive(self._params) != 0:
            raise RuntimeError("colm_derive rejected the parameter array (extension/package mismatch?)")
        self._rootfr = _soil.root_fractions(self.veg, self.z_bottom)
        shape2 = (self.ncol, self.nmem)
        # the state passes to Fortran by name like forcing and parameters: one array per kind, the entry
        # last, so that each entry is one Fortran-contiguous block (the view ``state[name]``)
        self._lstate = np.zeros((self.nlev, self.ncol, self.nmem, len(_LAYERED)), order="F")
        self._cstate = np.zeros((self.ncol, self.nmem, len(_PLANE)), order="F")
        self._state = {k: self._lstate[..., _LSTATE_INDEX[k]] for k in _LAYERED}
        self._state.update({k: self._cstate[..., _CSTATE_INDEX[k]] for k in _PLANE})
        self.state: Mapping[str, np.ndarray] = MappingProxyType(self._state)
        self._fluxes = np.zeros((len(FLUX_NAMES), self.ncol, self.nmem), order="F")
        self.fluxes: Mapping[str, np.ndarray] = MappingProxyType(
            {k: self._fluxes[_FLUX_INDEX[k]] for k in FLUX_NAMES}
        )
        self._forcing = np.zeros((len(FORCING_NAMES), self.ncol, self.nmem), order="F")
        self._colerr = np.zeros(shape2, dtype=np.int32, order="F")
        self.cold_start()

    # ------------------------------------------------------------------ geometry and parameters
    def _param_value(self, src: str | float) -> np.ndarray | float:
        if isinstance(src, str):
            group, field = src.split(".")
            return getattr(self.soil if group == "soil" else self.veg, field)
        return src

    def param(self, name: str) -> np.ndarray:
        """The Fortran parameter ``name`` (one of :data:`PARAM_NAMES`) as passed to the physics, a copy
        of shape (ncol, nmem)."""
        if name not in _PARAM_INDEX:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
        return self._params[_PARAM_INDEX[name]].copy()

    @property
    def theta_sat(self) -> np.ndarray:
        """Porosity per layer (m3/m3): (nlev, ncol) for per-column soil parameters, (nlev, ncol, nmem)
        for per-member ones (:meth:`porosity` is always (nlev, ncol, nmem))."""
        ts = np.asarray(self.soil.theta_s)
        return np.broadcast_to(ts, (self.nlev, *ts.shape)).copy()

    def porosity(self) -> np.ndarray:
        """Porosity of every layer, column and member (nlev, ncol, nmem) (m3/m3)."""
        ts = self._params[_PARAM_INDEX["theta_s"]]
        return np.broadcast_to(ts, (self.nlev, self.ncol, self.nmem)).copy()

    @property
    def rootfr(self) -> np.ndarray:
        """Root fraction per layer (nlev, ncol) (-), a copy."""
        return self._rootfr.copy()

    # ------------------------------------------------------------------ state
    def cold_start(self) -> None:
        """Reset the state to the CoLM2014 cold start and zero the fluxes."""
        s = self._state
        s["wliq"][...] = self.porosity() * self.dz[:, None, None] * _DENH2O
        s["wice"][...] = 0.0
        s["tsoil"][...] = 283.0
        s["zwt"][...] = self.z_bottom[-1] + 1.0
        s["wa"][...] = 4800.0
        s["wcanopy"][...] = 0.0
        s["wsnow"][...] = 0.0
        s["wpond"][...] = 0.0
        s["tskin"][...] = 283.0
        s["tsnow"][...] = 283.0
        s["dsnow"][...] = 0.0
        self.reset_fluxes()

    def get_state(self, copy: bool = True) -> dict[str, np.ndarray]:
        """Copy of everything the next step depends on, plus the flux accumulators ("fluxes",
        (nflux, ncol, nmem) in the order of :data:`FLUX_NAMES`). Restoring it with :meth:`set_state`
        reproduces the run bitwise. ``copy=False``: read-only views of the buffers instead (valid until
        the next step; for writing them out without a copy)."""
        arrays = {**self._state, "fluxes": self._fluxes}
        if copy:
            return {k: v.copy(order="F") for k, v in arrays.items()}
        views = {k: v.view() for k, v in arrays.items()}
        for v in views.values():
            v.flags.writeable = False
        return views

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy a snapshot from :meth:`get_state` into the state buffers (in place).

        All state keys are required; "fluxes" is optional. Raises ValueError (nothing copied) on a
        missing key, wrong shape or non-finite values.
        """
        arrays = {}
        for k, buf in list(self._state.items()) + [("fluxes", self._fluxes)]:
            if k not in state:
                if k == "fluxes":
                    continue
                raise ValueError(f"state is missing {k!r}")
            a = np.asarray(state[k])
            if a.shape != buf.shape:
                raise ValueError(f"state[{k!r}] has shape {a.shape}, expected {buf.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"state[{k!r}] contains NaN or Inf")
            arrays[k] = a
        for k, a in arrays.items():
            np.copyto(self._fluxes if k == "fluxes" else self._state[k], a)

    def reset_fluxes(self) -> None:
        """Zero the flux accumulators."""
        self._fluxes[...] = 0.0

    # ------------------------------------------------------------------ diagnostics
    def theta(self) -> np.ndarray:
        """Volumetric water content liquid + ice (nlev, ncol, nmem) (m3/m3)."""
        dz = self.dz[:, None, None]
        return self._state["wliq"] / (_DENH2O * dz) + self._state["wice"] / (_DENICE * dz)

    def layer_weights(self, intervals: Sequence[tuple[float, float]]) -> np.ndarray:
        """Overlap weights (nlayers, nlev): the fraction of each interval (top, bottom) (m) in each layer."""
        iv = np.asarray(intervals, dtype=float)
        if iv.ndim != 2 or iv.shape[1] != 2:
            raise ValueError("intervals must be a sequence of (top, bottom) depth pairs in m")
        top, bot = iv[:, 0:1], iv[:, 1:2]
        if np.any(~np.isfinite(iv)) or np.any(top < 0.0) or np.any(bot <= top):
            raise ValueError("intervals need 0 <= top < bottom (m)")
        if np.any(bot > self.z_bottom[-1] + 1e-12):
            raise ValueError(f"intervals must end above the column bottom {self.z_bottom[-1]:.4f} m")
        overlap = np.clip(np.minimum(bot, self.z_bottom) - np.maximum(top, self.z_top), 0.0, None)
        return overlap / (bot - top)

    def layer_mean(
        self, intervals: Sequence[tuple[float, float]], field: np.ndarray | None = None
    ) -> np.ndarray:
        """Thickness-weighted means over depth intervals.

        Parameters
        ----------
        intervals : sequence of (top, bottom) in m, e.g. [(0, 0.1), (0.1, 0.4), (0.4, 1.0)].
        field : array (nlev, ncol, nmem), optional
            Layer values to average; default :meth:`theta` (m3/m3).

        Returns
        -------
        array (nlayers, ncol, nmem)

        Notes
        -----
        The sum over model layers is done layer by layer in a fixed order with element-wise operations,
        so each value's bits do not depend on how many columns or members the array holds (a BLAS
        contraction such as ``np.tensordot`` blocks differently for different sizes, so an ensemble
        split over another number of ranks would get other round-off).
        """
        w = self.layer_weights(intervals)
        f = self.theta() if field is None else np.asarray(field, dtype=float)
        if f.shape[0] != self.nlev:
            raise ValueError(f"field must have nlev={self.nlev} layers first, got shape {f.shape}")
        shape = (w.shape[0],) + (1,) * (f.ndim - 1)
        out = w[:, 0].reshape(shape) * f[0]
        for k in range(1, self.nlev):
            out += w[:, k].reshape(shape) * f[k]
        return out

    def water_storage(self) -> np.ndarray:
        """Total water (ncol, nmem) (kg/m2): soil liquid + ice, aquifer, canopy, snow and ponding."""
        s = self._state
        return (
            s["wliq"].sum(axis=0) + s["wice"].sum(axis=0) + s["wa"] + s["wcanopy"] + s["wsnow"] + s["wpond"]
        )

    def snow_water(self) -> np.ndarray:
        """Snow water equivalent (ncol, nmem) (kg/m2), a copy of ``state["wsnow"]``."""
        return self._state["wsnow"].copy()

    def frozen(self, depth: float = 0.1) -> np.ndarray:
        """True (ncol, nmem) where the layers above ``depth`` (m) hold ice or are below freezing, or
        where snow lies: cells the analysis must not update as liquid water."""
        top = self.z_top < depth
        s = self._state
        ice = np.any(s["wice"][top] > 0.0, axis=0)
        cold = np.any(s["tsoil"][top] < _TFRZ, axis=0)
        return ice | cold | (s["wsnow"] > 0.0)

    # ------------------------------------------------------------------ data assimilation
    def add_soil_water(self, delta_wliq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add liquid water increments, keeping 0 <= wliq and theta <= theta_s per layer.

        Parameters
        ----------
        delta_wliq : array (nlev, ncol, nmem)
            Requested change of liquid water (kg/m2), positive or negative.

        Returns
        -------
        applied, clipped : arrays (ncol, nmem)
            Column totals (kg/m2) of the water actually added and of the part removed by the bounds;
            ``applied + clipped`` equals the requested total. ``applied`` is booked in
            ``fluxes["analysis"]`` so the water balance stays closed.
        """
        d = np.asarray(delta_wliq)
        shape = self._state["wliq"].shape
        if d.shape != shape:
            raise ValueError(f"delta_wliq must have shape {shape}, got {d.shape}")
        if d.dtype.kind not in "fiu":
            raise ValueError(f"delta_wliq must be a real numeric array, got dtype {d.dtype}")
        d = d.astype(float, copy=False)
        if not np.all(np.isfinite(d)):
            raise ValueError("delta_wliq contains NaN or Inf")
        wliq = self._state["wliq"]
        dz = self.dz[:, None, None]
        wmax = np.maximum(0.0, _DENH2O * (self.porosity() * dz - self._state["wice"] / _DENICE))
        new = np.minimum(np.maximum(wliq + d, 0.0), np.maximum(wmax, wliq))
        # removals never push a layer above its bound, additions never below zero
        new = np.where(d >= 0.0, np.maximum(new, wliq), np.minimum(new, wliq))
        applied_layers = new - wliq
        applied = applied_layers.sum(axis=0)
        clipped = d.sum(axis=0) - applied
        wliq[...] = new
        self._fluxes[_FLUX_INDEX["analysis"]] += applied
        return applied, clipped

    # ------------------------------------------------------------------ stepping
    def _load_forcing(self, forcing: Mapping[str, Any]) -> None:
        if not isinstance(forcing, Mapping):
            raise ValueError("forcing must be a dict of arrays keyed by " + ", ".join(FORCING_NAMES))
        unknown = set(forcing) - set(FORCING_NAMES)
        if unknown:
            raise ValueError(f"unknown forcing variable(s) {sorted(unknown)}; expected {FORCING_NAMES}")
        for name in FORCING_NAMES:
            if name not in forcing:
                raise ValueError(f"forcing is missing {name!r}")
            a = np.asarray(forcing[name])
            if a.dtype.kind not in "fiu":
                raise ValueError(f"forcing {name!r} must be a real numeric array, got dtype {a.dtype}")
            if a.shape not in ((self.ncol,), (self.ncol, self.nmem)):
                raise ValueError(
                    f"forcing {name!r} must have shape ({self.ncol},) or ({self.ncol}, {self.nmem}), got {a.shape}"
                )
            lo, hi, unit = _FORCING_RANGE[name]
            amin, amax = a.min(), a.max()
            if not (np.isfinite(amin) and np.isfinite(amax)):
                raise ValueError(f"forcing {name!r} contains NaN or Inf")
            if amin < lo or amax > hi:
                what = "has negative values, outside" if name == "precip" and amin < 0 else "is outside"
                raise ValueError(
                    f"forcing {name!r} {what} the physical range [{lo}, {hi}] {unit} "
                    f"(min {amin:g}, max {amax:g})"
                )
            self._forcing[_FORCING_INDEX[name]] = a[:, None] if a.ndim == 1 else a

    def step(self, forcing: Mapping[str, Any], nsteps: int = 1) -> None:
        """Advance every column and member ``nsteps`` steps of ``dt`` with constant forcing, in place.

        Parameters
        ----------
        forcing : dict
            tair (K), qair (kg/kg), psurf (Pa), precip (kg/m2/s), wind (m/s), swdown (W/m2),
            lwdown (W/m2); each (ncol,) (same for all members) or (ncol, nmem).
        nsteps : int
            Number of time steps (>= 0).

        Raises
        ------
        ValueError
            Bad forcing (missing/unknown key, shape, dtype, NaN/Inf, out of range) or nsteps; the
            state is untouched.
        RuntimeError
            The Fortran physics reported a failure (message names the columns and the problem).
        """
        nsteps = _nonnegative_int("nsteps", nsteps)
        self._load_forcing(forcing)
        if nsteps == 0:
            return
        ierr = _api.colm_step(
            nsteps, self.dt, self._forcing, self._params, self._rootfr, self._lstate, self._cstate, self._fluxes,
            self._colerr,
        )  # fmt: skip
        if ierr != 0:
            self._raise_step_error(ierr)

    def _raise_step_error(self, ierr: int) -> None:
        if ierr < 0:
            raise RuntimeError("colm_step rejected the array sizes or dt (extension/package mismatch?)")
        bad = np.argwhere(self._colerr != 0)
        c, m = (int(x) for x in bad[0])
        code = int(self._colerr[c, m])
        raise RuntimeError(
            f"column physics failed in {len(bad)} column(s); first: column {c}, member {m}: "
            f"{_ERRORS.get(code, f'error code {code}')}"
        )


def threads(n: int | None = None) -> int:
    """OpenMP threads of the column physics (columns x members of one ``step`` are shared out).

    Parameters
    ----------
    n : int, optional
        Set the number of threads (as ``OMP_NUM_THREADS`` does at start-up); None only queries.

    Returns
    -------
    int
        Threads the next :meth:`ColumnModel.step` uses (1 if the extension was built without OpenMP).
        Results are bitwise identical for any thread count.
    """
    if n is not None:
        _positive_int("threads", n)
    return int(_api.colm_threads(0 if n is None else int(n)))
