"""In-memory CoLM-like soil columns for an ensemble: :class:`ColumnModel`.

The physics lives in Fortran (``landimg.model._colm``, built from ``fortran/``); one call of
``colm_step`` advances every column of every member ``nsteps`` time steps in place. This module owns the
Fortran-ordered state buffers, validates forcing before anything is touched, and offers the
diagnostics used by the data assimilation (volumetric water, layer means, water storage, frozen
flags, bookkept analysis increments, state snapshots for restarts). See ``docs/model.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from landimg.model import soil as _soil
from landimg.model._colm import colm_api as _api

__all__ = ["FLUX_NAMES", "FORCING_NAMES", "STATE_UNITS", "ColumnModel"]

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

#: accumulated fluxes in the order of the Fortran flux array (kg/m2 unless noted)
FLUX_NAMES: tuple[str, ...] = (
    "precip",
    "evap_soil",
    "transpiration",
    "evap_canopy",
    "runoff_surface",
    "runoff_subsurface",
    "analysis",
    "sensible_heat",  # J/m2
    "latent_heat",  # J/m2
    "snowmelt",
    "ground_heat",  # J/m2
)

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
    "tskin": "K surface (skin) temperature, diagnostic = top soil layer (ncol, nmem)",
}
_LAYERED = ("wliq", "wice", "tsoil")
_PLANE = ("zwt", "wa", "wcanopy", "wsnow", "wpond", "tskin")

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
        Soil parameters with arrays (ncol,); default: "loam" everywhere.
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
        _check_soil(soil)
        self.soil = soil
        self.veg = _soil.vegetation(
            igbp, self.ncol, lai=lai, sai=sai, z0m=z0m, albedo=albedo, emissivity=emissivity, gsmax=gsmax
        )
        self.nlev = _NLEV
        self.z_node, self.dz, self.z_bottom = _geometry(self.nlev)
        self.z_top = np.concatenate([[0.0], self.z_bottom[:-1]])
        nf, npar, nx = _api.colm_layout()
        if nf != len(FORCING_NAMES) or nx != len(FLUX_NAMES):
            raise RuntimeError(
                "landimg.model._colm does not match landimg.model.column (rebuild the extension)"
            )
        self._params = np.zeros((npar, self.ncol), order="F")
        for i, v in enumerate(
            (
                soil.theta_s,
                soil.b,
                soil.psi_s,
                soil.k_s,
                soil.csol,
                soil.tksol,
                soil.tkdry,
                self.veg.lai,
                self.veg.sai,
                self.veg.z0m,
                self.veg.albedo,
                self.veg.emissivity,
                self.veg.gsmax,
                np.ones(self.ncol),
            )
        ):
            self._params[i] = v
        self._rootfr = _soil.root_fractions(self.veg, self.z_bottom)
        shape3 = (self.nlev, self.ncol, self.nmem)
        shape2 = (self.ncol, self.nmem)
        self._state = {k: np.zeros(shape3, order="F") for k in _LAYERED}
        self._state.update({k: np.zeros(shape2, order="F") for k in _PLANE})
        self.state: Mapping[str, np.ndarray] = MappingProxyType(self._state)
        self._fluxes = np.zeros((len(FLUX_NAMES), self.ncol, self.nmem), order="F")
        self.fluxes: Mapping[str, np.ndarray] = MappingProxyType(
            {k: self._fluxes[i] for i, k in enumerate(FLUX_NAMES)}
        )
        self._forcing = np.zeros((len(FORCING_NAMES), self.ncol, self.nmem), order="F")
        self._colerr = np.zeros(shape2, dtype=np.int32, order="F")
        self.cold_start()

    # ------------------------------------------------------------------ geometry and parameters
    @property
    def theta_sat(self) -> np.ndarray:
        """Porosity per layer (nlev, ncol) (m3/m3)."""
        return np.tile(self.soil.theta_s, (self.nlev, 1))

    @property
    def rootfr(self) -> np.ndarray:
        """Root fraction per layer (nlev, ncol) (-), a copy."""
        return self._rootfr.copy()

    # ------------------------------------------------------------------ state
    def cold_start(self) -> None:
        """Reset the state to the CoLM2014 cold start and zero the fluxes."""
        s = self._state
        s["wliq"][...] = (self.soil.theta_s[None, :] * self.dz[:, None] * _DENH2O)[:, :, None]
        s["wice"][...] = 0.0
        s["tsoil"][...] = 283.0
        s["zwt"][...] = self.z_bottom[-1] + 1.0
        s["wa"][...] = 4800.0
        s["wcanopy"][...] = 0.0
        s["wsnow"][...] = 0.0
        s["wpond"][...] = 0.0
        s["tskin"][...] = 283.0
        self.reset_fluxes()

    def get_state(self) -> dict[str, np.ndarray]:
        """Copy of everything the next step depends on, plus the flux accumulators ("fluxes",
        (nflux, ncol, nmem) in the order of :data:`FLUX_NAMES`). Restoring it with :meth:`set_state`
        reproduces the run bitwise."""
        out = {k: v.copy(order="F") for k, v in self._state.items()}
        out["fluxes"] = self._fluxes.copy(order="F")
        return out

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
        wmax = np.maximum(
            0.0, _DENH2O * (self.soil.theta_s[None, :, None] * dz - self._state["wice"] / _DENICE)
        )
        new = np.minimum(np.maximum(wliq + d, 0.0), np.maximum(wmax, wliq))
        # removals never push a layer above its bound, additions never below zero
        new = np.where(d >= 0.0, np.maximum(new, wliq), np.minimum(new, wliq))
        applied_layers = new - wliq
        applied = applied_layers.sum(axis=0)
        clipped = d.sum(axis=0) - applied
        wliq[...] = new
        self._fluxes[FLUX_NAMES.index("analysis")] += applied
        return applied, clipped

    # ------------------------------------------------------------------ stepping
    def _load_forcing(self, forcing: Mapping[str, Any]) -> None:
        if not isinstance(forcing, Mapping):
            raise ValueError("forcing must be a dict of arrays keyed by " + ", ".join(FORCING_NAMES))
        unknown = set(forcing) - set(FORCING_NAMES)
        if unknown:
            raise ValueError(f"unknown forcing variable(s) {sorted(unknown)}; expected {FORCING_NAMES}")
        for i, name in enumerate(FORCING_NAMES):
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
            self._forcing[i] = a[:, None] if a.ndim == 1 else a

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
        s = self._state
        ierr = _api.colm_step(
            nsteps, self.dt, self._forcing, self._params, self._rootfr,
            s["wliq"], s["wice"], s["tsoil"], s["zwt"], s["wa"], s["wcanopy"], s["wsnow"], s["wpond"],
            s["tskin"], self._fluxes, self._colerr,
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


def _positive_int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


def _nonnegative_int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {x!r}")
    return int(x)


#: physically admissible range (exclusive) of each soil parameter the Fortran physics divides by or
#: takes powers of: a hand-built SoilParams outside it would give NaN or a silent nonsense column
_SOIL_BOUNDS: dict[str, tuple[float, float]] = {
    "theta_s": (0.0, 1.0),
    "b": (0.0, np.inf),
    "psi_s": (-np.inf, 0.0),
    "k_s": (0.0, np.inf),
    "csol": (0.0, np.inf),
    "tksol": (0.0, np.inf),
    "tkdry": (0.0, np.inf),
}


def _check_soil(soil: _soil.SoilParams) -> None:
    """ValueError naming the first soil parameter that is not a finite (ncol,) array within its bounds."""
    for name, (lo, hi) in _SOIL_BOUNDS.items():
        a = np.asarray(getattr(soil, name), dtype=float)
        if a.shape != (soil.ncol,):
            raise ValueError(f"soil.{name} must have shape ({soil.ncol},), got {a.shape}")
        if not (np.all(np.isfinite(a)) and np.all(a > lo) and np.all(a < hi)):
            raise ValueError(f"soil.{name} must be finite and within ({lo}, {hi})")


def _check_dt(dt: Any) -> float:
    try:
        v = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a number of seconds, got {dt!r}") from None
    if not (np.isfinite(v) and 0.0 < v <= 3600.0):
        raise ValueError(f"dt must be in (0, 3600] s, got {dt!r}")
    return v
