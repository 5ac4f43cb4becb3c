"""Forcing (and soil-parameter) perturbations for ensemble members.

Each perturbed variable ``v`` carries a standard-normal field ``z_v`` (land columns) per member that is

* AR(1) in time: ``z(t + dt) = phi z(t) + sqrt(1 - phi^2) w``, ``phi = exp(-dt / tau)``;
* spatially correlated: ``w`` is a Gaussian random field with correlation ``exp(-r^2 / L^2)`` (e^-1 at
  ``L`` = ``length_km``, the one convention of :mod:`landimg.random_fields`), made by filtering white noise
  with a Gaussian kernel in Fourier space on the grid image (zero-padded unless the grid is periodic in
  longitude), unit variance exactly;
* cross-correlated between variables: ``w = chol(R) g`` with independent fields ``g``, so ``corr(z) = R``.

Optionally (``rain_error_std > 0``) precipitation also carries a *persistent* multiplicative error per
member: one more standard-normal field, AR(1) with the long time scale ``rain_error_tau_days`` and the
large correlation length ``rain_error_km`` (reanalysis rain biases are regional and last for weeks), as a
mean-1 lognormal factor of standard deviation ``rain_error_std`` on top of the fast one. It is kept as an
extra last row of ``z`` (so restarts carry it unchanged) and drawn after the fast fields from the same
member stream.

The fields become perturbations either multiplicatively (lognormal with mean 1 and standard deviation
``std``: ``exp(s z - s^2 / 2)``, ``s^2 = ln(1 + std^2)``) for precipitation and shortwave, or additively
(``std * z``) for longwave and air temperature (defaults after CoLM's soil-moisture LETKF and
the cross-correlations of Reichle et al. 2007, GEOS LDAS).

Member ``i`` draws only from its own stream ``member_rng(seed, i, Purpose.FORCING)`` so its perturbations
are the same whichever rank steps it. The spatial fields ``g`` are drawn in single precision (float32
normals and transforms, :mod:`landimg.random_fields`; about 0.6 of the cost of float64, every model
step), then cross-correlated and evolved in float64.

Soil (static): :func:`member_texture` gives each member its own sand/clay, the model's texture plus a
spatially correlated error field per member (``TexturePerturbation``: the soil-map error), kept in
physical bounds; :func:`member_soil` recomputes the Cosby et al. (1984) parameters from it
(:func:`landimg.model.soil.from_texture`), as per-member :class:`~landimg.model.soil.SoilParams`
(ncol, nmem). Member ``i`` draws from ``member_rng(seed, i, Purpose.PARAMS)`` only, so the parameters
are the same on any rank layout and are recomputed, not stored, on restart. The state (AR values and stream states) round-trips through
:meth:`ForcingPerturber.get_state` / :meth:`ForcingPerturber.set_state` for bitwise restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landimg.parallel import Purpose, member_rng
from landimg.random_fields import GaussianFieldGenerator, gaussian_filter_spectrum

__all__ = [
    "ForcingPerturbation",
    "ForcingPerturber",
    "GaussianFieldGenerator",
    "RainShift",
    "TexturePerturbation",
    "correlated_noise",
    "gaussian_filter_spectrum",
    "member_soil",
    "member_texture",
]

_KM_PER_DEG = 111.19492664455873  # 6371 km * pi / 180

# default cross-correlations (precip, swdown, lwdown, tair); Reichle et al. (2007) for the first three
_DEFAULT_CORR = (
    (1.0, -0.8, 0.5, 0.0),
    (-0.8, 1.0, -0.5, 0.4),
    (0.5, -0.5, 1.0, 0.4),
    (0.0, 0.4, 0.4, 1.0),
)


@dataclass(frozen=True)
class ForcingPerturbation:
    """Configuration of forcing perturbations (defaults: CoLM LETKF / GEOS LDAS values).

    Attributes
    ----------
    variables : tuple of str
        Forcing keys perturbed (model names: precip, swdown, lwdown, tair, ...).
    multiplicative : tuple of bool
        True: lognormal factor with mean 1 and standard deviation ``std``; False: additive ``std * z``.
    std : tuple of float
        Standard deviation per variable (factor for multiplicative; W/m2 or K for additive).
    corr : tuple of tuples
        Cross-correlation matrix between the variables' fields (symmetric positive definite).
    tau_hours : float
        AR(1) time scale, hours.
    length_km : float
        Spatial correlation length L, km: correlation ``exp(-r^2 / L^2)``, e^-1 at L; 0 = spatially white.
        The default 70.71067811865474 km (``2 * 50 / sqrt(2)``) draws bit for bit the fields of the former
        default, 50 km in the retired ``exp(-r^2 / 2 L^2)`` convention.
    bounds : tuple of (name, low, high)
        Physical limits the perturbed forcing is clipped to (shortwave at most the solar constant); the
        clipping happens in the tails only and biases the means negligibly.
    rain_error_std : float
        Standard deviation of the persistent mean-1 lognormal precipitation factor (0 = off, the default).
    rain_error_tau_days : float
        AR(1) time scale of the persistent rain error, days.
    rain_error_km : float
        Correlation length L of the persistent rain error field, km.
    rain_shift_km : float
        Rms (per direction) of each member's daily whole-field rain shift, km (0 = off; :class:`RainShift`).
    """

    variables: tuple[str, ...] = ("precip", "swdown", "lwdown", "tair")
    multiplicative: tuple[bool, ...] = (True, True, False, False)
    std: tuple[float, ...] = (0.5, 0.3, 20.0, 1.0)
    corr: tuple[tuple[float, ...], ...] = _DEFAULT_CORR
    tau_hours: float = 24.0
    length_km: float = 70.71067811865474
    bounds: tuple[tuple[str, float, float], ...] = (
        ("precip", 0.0, 1.0),
        ("swdown", 0.0, 1360.0),
        ("lwdown", 0.0, 1000.0),
        ("tair", 150.0, 350.0),
    )
    rain_error_std: float = 0.0
    rain_error_tau_days: float = 10.0
    rain_error_km: float = 800.0
    rain_shift_km: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.variables)
        if not (np.isfinite(self.rain_shift_km) and self.rain_shift_km >= 0):
            raise ValueError(f"rain_shift_km must be >= 0, got {self.rain_shift_km}")
        if self.rain_shift_km > 0 and "precip" not in self.variables:
            raise ValueError("rain_shift_km > 0 needs 'precip' among the perturbed variables")
        if self.rain_error_std < 0 or not self.rain_error_tau_days > 0 or self.rain_error_km < 0:
            raise ValueError(
                "need rain_error_std >= 0, rain_error_tau_days > 0 and rain_error_km >= 0, got "
                f"{self.rain_error_std}, {self.rain_error_tau_days}, {self.rain_error_km}"
            )
        if self.rain_error_std > 0 and "precip" not in self.variables:
            raise ValueError("rain_error_std > 0 needs 'precip' among the perturbed variables")
        if len(self.multiplicative) != n or len(self.std) != n:
            raise ValueError("variables, multiplicative and std must have the same length")
        if any(s < 0 for s in self.std):
            raise ValueError(f"std must be >= 0, got {self.std}")
        c = np.asarray(self.corr, dtype=float)
        if c.shape != (n, n) or not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
            raise ValueError(f"corr must be a symmetric ({n}, {n}) matrix with unit diagonal")
        if np.linalg.eigvalsh(c).min() <= 0:
            raise ValueError("corr must be positive definite")
        if not self.tau_hours > 0:
            raise ValueError(f"tau_hours must be > 0, got {self.tau_hours}")
        if self.length_km < 0:
            raise ValueError(f"length_km must be >= 0, got {self.length_km}")

    @property
    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of ``corr`` (nvar, nvar)."""
        return np.linalg.cholesky(np.asarray(self.corr, dtype=float))


@dataclass
class _FieldMaker:
    """Unit-variance correlated noise on a grid's land columns, drawn in ``dtype`` (float64 or float32).

    ``columns = (start, stop)``: only those columns (a block), from the image rows that hold them
    (:meth:`GaussianFieldGenerator.draw` with ``rows``): bitwise the whole draw's values there.
    """

    grid: Any
    length_km: float
    dtype: Any = np.float64
    columns: tuple[int, int] | None = None
    gen: GaussianFieldGenerator = field(init=False)

    def __post_init__(self) -> None:
        g = self.grid
        self.gen = GaussianFieldGenerator(
            g.shape, g.cell_size_km(), self.length_km, g.periodic_lon, dtype=self.dtype
        )
        if self.columns is not None and tuple(self.columns) == (0, g.ncol):
            self.columns = None

    def draw(self, rngs: Sequence[np.random.Generator], nfield: int) -> np.ndarray:
        """Draw ``nfield`` independent fields per generator: (len(rngs), nfield, ncol) of ``dtype`` (ncol:
        the columns handled)."""
        if self.columns is None:
            return self.grid.to_columns(self.gen.draw(rngs, nfield))
        c0, c1 = self.columns
        band = self.gen.draw(rngs, nfield, rows=self.grid.column_rows(c0, c1))
        return self.grid.band_to_columns(band, c0, c1)


def correlated_noise(
    grid: Any, length_km: float, rngs: Sequence[np.random.Generator], nfield: int = 1
) -> np.ndarray:
    """Unit-variance Gaussian random fields with correlation ``exp(-r^2 / L^2)`` at land columns.

    Parameters
    ----------
    grid : landimg.Grid
    length_km : float
        Correlation length L, km (e^-1 at L; 0 = white).
    rngs : sequence of Generator
        One generator per field set (e.g. per member).
    nfield : int
        Independent fields per generator.

    Returns
    -------
    ndarray (len(rngs), nfield, ncol)
    """
    return _FieldMaker(grid, length_km).draw(rngs, nfield)


@dataclass
class RainShift:
    """Each member's rain field shifted as a whole by its own random vector, redrawn daily.

    Member ``i`` on day ``d`` (``floor(t / 86400)`` of the step's time ``t``, s since the experiment start)
    draws ``(dx, dy) = length_km * N(0, 1)^2`` km (rms ``length_km`` per direction, the convention of
    ``forcing.displacement_km``) from a stream keyed by (seed, i, :attr:`Purpose.RAIN_SHIFT`, d) only: the
    same shift on any rank layout, and nothing to restart. The member's rain at a cell is the rain
    ``(dx, dy)`` upwind of it, bilinear between the four surrounding cells (``dx`` converted to degrees
    of longitude at the cell's latitude, cos clipped at 0.2; periodic in longitude on a global grid).

    Water: the forcing exists over land only, so rain shifted in from the sea or from outside the domain
    box is zero, and rain shifted onto the sea or out of the box would be lost; the shifted field is
    therefore rescaled so that its land total (area-weighted, cos latitude) equals that of the unshifted
    field, every step and member: the domain's rain is conserved exactly, and moved. When the shifted
    field has no rain over land at all (all of it moved to sea), the unshifted field is kept for that
    step. In the interior, the bilinear shift alone conserves the total (its weights sum to one per row).

    Parameters
    ----------
    grid : landimg.Grid
    length_km : float
        Rms shift per direction, km (> 0).
    seed : int
        Experiment seed.
    """

    grid: Any
    length_km: float
    seed: int = 0
    _cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def shift_km(self, member: int, day: int) -> tuple[float, float]:
        """(dx east, dy north) km of ``member`` on ``day``."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(int(member), int(Purpose.RAIN_SHIFT), int(day) + 1_000_000))
        dx, dy = self.length_km * np.random.default_rng(ss).standard_normal(2)
        return float(dx), float(dy)

    def _weights(self, member: int, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(source columns (4, ncol), -1 = none; bilinear weights (4, ncol)) of ``member``'s shift on ``day``."""
        key = (member, day)
        if key not in self._cache:
            if len(self._cache) > 64:  # a day's members at a time
                self._cache.clear()
            g = self.grid
            ny, nx = g.shape
            dx, dy = self.shift_km(member, day)
            iy, ix = np.unravel_index(g.column_index, g.shape)
            cos = np.maximum(np.cos(np.radians(g.lat[iy])), 0.2)
            fy = iy - dy / (g.res * _KM_PER_DEG)
            fx = ix - dx / (g.res * _KM_PER_DEG * cos)
            y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
            ty, tx = fy - y0, fx - x0
            lookup = np.full(ny * nx, -1, dtype=np.int64)
            lookup[g.column_index] = np.arange(g.ncol)
            src, w = np.empty((4, g.ncol), np.int64), np.empty((4, g.ncol))
            for k, (oy, ox, wk) in enumerate(((0, 0, (1 - ty) * (1 - tx)), (0, 1, (1 - ty) * tx),
                                               (1, 0, ty * (1 - tx)), (1, 1, ty * tx))):  # fmt: skip
                yy, xx = y0 + oy, x0 + ox
                if g.periodic_lon:
                    xx = xx % nx
                inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                flat = np.where(inside, yy * nx + np.clip(xx, 0, nx - 1), 0)
                src[k] = np.where(inside, lookup[flat], -1)
                w[k] = wk
            self._cache[key] = (src, w)
        return self._cache[key]

    def apply(self, precip: np.ndarray, members: Sequence[int], t: float) -> np.ndarray:
        """Each member's rain shifted: ``precip`` (ncol, nloc) of ``members`` at time ``t`` s -> (ncol, nloc).

        The land total of every member's column (area-weighted) is that of its input column (see above).
        """
        day = int(np.floor(t / 86400.0))
        area = np.cos(np.radians(self.grid.column_latlon()[0]))
        out = np.empty_like(precip, dtype=np.float64)
        for j, m in enumerate(members):
            p = np.asarray(precip[:, j], dtype=np.float64)
            src, w = self._weights(int(m), day)
            shifted = np.sum(np.where(src >= 0, w * p[np.maximum(src, 0)], 0.0), axis=0)
            before, after = float(area @ p), float(area @ shifted)
            out[:, j] = shifted * (before / after) if after > 0 else p
        return out




def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` are the same array or hold the same bits (shape, dtype and bytes; -0.0 is not 0.0)."""
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)))


class SharedDraws:
    """The last innovation draw and AR step of the perturbers that share them.

    The ensembles of one experiment (open loop, point and curvelet EnKF: the same grid, seed and members)
    draw the same perturbation fields and step them alike; whoever makes them (the experiment's run) gives
    them one ``SharedDraws``, so that the second and later ensembles take the bits the first computed
    (:meth:`ForcingPerturber._innovation`, :meth:`ForcingPerturber.advance`). Each record is one immutable
    tuple, replaced whole; a perturber without a ``SharedDraws`` shares nothing.

    Attributes
    ----------
    draw : tuple or None
        ``(key, after, fields)``: the field makers and the streams' states before the draw, the streams'
        states after it, the fields (read-only).
    step : tuple or None
        ``(z, fields, phi, after)``: the fields before the step, its innovation (the draw's object), the AR
        coefficients and the fields after it (read-only).
    """

    def __init__(self) -> None:
        self.draw: tuple[Any, list[Any], np.ndarray] | None = None
        self.step: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


class ForcingPerturber:
    """The forcing perturbations of a set of members (this rank's) on a set of columns, evolving by AR(1).

    Parameters
    ----------
    config : ForcingPerturbation
    grid : landimg.Grid
    members : sequence of int
        Global member indices handled here.
    seed : int
        Experiment seed; member ``i`` uses ``member_rng(seed, i, Purpose.FORCING)``.
    columns : slice, optional
        The contiguous columns handled here (a rank's block; default all). Each field is drawn on the
        image rows holding them only (:class:`_FieldMaker`), bitwise the whole draw's values there, so a
        member's perturbation at a column does not depend on the block.
    shared : SharedDraws, optional
        Draws and steps shared with the other perturbers of the same members (:class:`SharedDraws`;
        default: none shared). Sharing changes no bit.

    Attributes
    ----------
    z : ndarray (nloc, nvar, ncol), or (nloc, nvar + 1, ncol) with the persistent rain error
        Current standard-normal, cross-correlated perturbation fields of the columns handled (last row:
        the persistent rain error field when ``config.rain_error_std > 0``).
    """

    def __init__(
        self, config: ForcingPerturbation, grid: Any, members: Sequence[int], seed: int = 0,
        columns: slice | None = None, shared: SharedDraws | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self._shared = SharedDraws() if shared is None else shared
        self.grid = grid
        self.members = list(members)
        self.seed = int(seed)
        c0, c1, step = (slice(None) if columns is None else columns).indices(grid.ncol)
        if step != 1 or c1 < c0:
            raise ValueError(f"columns must be a contiguous slice of the {grid.ncol} columns, got {columns}")
        self.columns, self.ncol = slice(c0, c1), c1 - c0
        # innovations drawn in single precision (~0.6 of the cost; module docstring), evolved in double
        self._maker = _FieldMaker(grid, config.length_km, np.float32, (c0, c1))
        slow_on = config.rain_error_std > 0
        self._slow = _FieldMaker(grid, config.rain_error_km, np.float32, (c0, c1)) if slow_on else None
        self._chol = config.cholesky
        self.rngs = [member_rng(self.seed, i, Purpose.FORCING) for i in self.members]
        land = hashlib.sha256(np.ascontiguousarray(grid.column_index).tobytes()).hexdigest()
        slow = None if self._slow is None else config.rain_error_km
        self._draw_key = (grid.shape, grid.cell_size_km(), grid.periodic_lon, land, config.length_km,
                          self._chol.tobytes(), slow, (c0, c1))  # fmt: skip
        self.z = self._innovation().copy()  # stationary start
        self.rain_shift = RainShift(grid, config.rain_shift_km, self.seed) if config.rain_shift_km > 0 else None

    def _innovation(self) -> np.ndarray:
        """Cross-correlated innovations (nloc, nvar, ncol), drawn once per stream position and shared.

        Ensembles on the same grid, seed and members (open loop, point and curvelet EnKF of one
        experiment) draw identical fields; the last draw is kept with the streams' states before and
        after it, so a perturber whose streams stand where that draw began takes the fields and moves
        its streams to where it ended: the same bits as drawing again, at a third of the cost.
        """
        key = (self._draw_key, tuple(repr(r.bit_generator.state) for r in self.rngs))
        last = self._shared.draw
        if last is not None and last[0] == key:
            for r, state in zip(self.rngs, last[1], strict=True):
                r.bit_generator.state = state
            return last[2]
        nvar = len(self.config.variables)
        g = self._maker.draw(self.rngs, nvar)  # (nloc, nvar, ncol) float32, independent
        fields = np.empty((g.shape[0], nvar + (self._slow is not None), g.shape[2]))  # float64
        for v in range(nvar):  # chol g (lower triangular), summed in w order, in float64
            np.multiply(g[:, 0], self._chol[v, 0], out=fields[:, v])
            for w in range(1, v + 1):
                fields[:, v] += self._chol[v, w] * g[:, w]
        if self._slow is not None:
            fields[:, nvar] = self._slow.draw(self.rngs, 1)[:, 0]
        fields.setflags(write=False)
        self._shared.draw = (key, [r.bit_generator.state for r in self.rngs], fields)
        return fields

    def advance(self, dt_seconds: float) -> None:
        """Evolve the fields by one AR(1) step of ``dt_seconds`` (each part with its own time scale)."""
        if dt_seconds <= 0:
            raise ValueError(f"dt_seconds must be > 0, got {dt_seconds}")
        nvar = len(self.config.variables)
        phi = np.full((self.z.shape[1], 1), np.exp(-dt_seconds / (3600.0 * self.config.tau_hours)))
        if self._slow is not None:
            phi[nvar:] = np.exp(-dt_seconds / (86400.0 * self.config.rain_error_tau_days))
        fields = self._innovation()
        last = self._shared.step
        if last is not None and last[1] is fields and np.array_equal(last[2], phi) and _same_bits(last[0], self.z):
            self.z = last[3]  # another ensemble's step from the same fields: the same bits
            return
        z = np.multiply(phi, self.z)  # phi z + sqrt(1 - phi^2) w, in the order written
        z += np.multiply(np.sqrt(1.0 - phi**2), fields)
        z.setflags(write=False)  # may be shared (below): replaced by every step, never written
        self._shared.step = (self.z, fields, phi, z)
        self.z = z

    def factors(self) -> dict[str, np.ndarray]:
        """Current perturbation per variable, (ncol, nloc): factor (multiplicative) or offset (additive)."""
        out = {}
        for v, (name, mult, std) in enumerate(
            zip(self.config.variables, self.config.multiplicative, self.config.std, strict=True)
        ):
            z = self.z[:, v, :].T
            if mult:  # exp(sqrt(s2) z - s2 / 2), in place
                s2 = np.log1p(std**2)
                f = np.multiply(np.sqrt(s2), z)
                f -= 0.5 * s2
                out[name] = np.exp(f, out=f)
            else:
                out[name] = std * z
        if self._slow is not None:
            s2 = np.log1p(self.config.rain_error_std**2)
            f = np.multiply(np.sqrt(s2), self.z[:, -1, :].T)
            f -= 0.5 * s2
            out["precip"] *= np.exp(f, out=f)
        return out

    def apply(self, forcing: dict[str, np.ndarray], t: float | None = None) -> dict[str, np.ndarray]:
        """Perturbed forcing for the local members.

        Parameters
        ----------
        forcing : dict of ndarray (ncol,) or (ncol, nloc)
            Unperturbed forcing of every column of the grid or of the columns handled (``columns``);
            with ``rain_shift_km > 0`` the precipitation of every column (the shift moves rain across
            blocks; the shifted field is then cut to the columns handled).
        t : float, optional
            Time of the step, s since the experiment start: needed with ``rain_shift_km > 0`` (each
            member's rain is shifted by its vector of that day, :class:`RainShift`, before its factors).

        Returns
        -------
        dict of ndarray (ncol, nloc), Fortran-ordered
            Every key of ``forcing``; perturbed keys changed (precipitation and shortwave stay >= 0).
        """
        nloc, ncol, whole = len(self.members), self.ncol, self.grid.ncol
        facs = self.factors()
        out = {}
        for key, val in forcing.items():
            arr = np.asarray(val, dtype=np.float64)
            if arr.ndim in (1, 2) and arr.shape[0] == whole and whole != ncol:
                if key == "precip" and self.rain_shift is not None:  # shifted over the whole grid, then cut
                    arr = self._shifted_rain(np.broadcast_to(arr.reshape(whole, -1), (whole, nloc)), t)
                arr = arr[self.columns]
            elif key == "precip" and self.rain_shift is not None:
                arr = self._shifted_rain(np.broadcast_to(arr.reshape(arr.shape[0], -1), (ncol, nloc)), t)
            if arr.shape == (ncol,):
                arr = arr[:, None]
            if arr.shape not in ((ncol, 1), (ncol, nloc)):
                raise ValueError(
                    f"forcing[{key!r}] has shape {np.shape(val)}, expected ({ncol},) or ({ncol}, {nloc})"
                    + (f", or of every column ({whole},)" if whole != ncol else "")
                )
            res = np.empty((ncol, nloc), order="F")  # the model's order, made once
            if key in facs:
                idx = self.config.variables.index(key)
                (np.multiply if self.config.multiplicative[idx] else np.add)(arr, facs[key], out=res)
                for name, lo, hi in self.config.bounds:
                    if name == key:
                        np.clip(res, lo, hi, out=res)
            else:
                res[...] = arr
            out[key] = res
        return out

    def _shifted_rain(self, precip: np.ndarray, t: float | None) -> np.ndarray:
        """The members' rain (ncol, nloc) of every column of the grid, shifted (:class:`RainShift`)."""
        if t is None:
            raise ValueError("ForcingPerturber.apply: rain_shift_km > 0 needs the step's time t")
        if precip.shape[0] != self.grid.ncol:
            raise ValueError(
                f"ForcingPerturber.apply: rain_shift_km > 0 needs the precipitation of every column "
                f"({self.grid.ncol}), got {precip.shape[0]}"
            )
        return self.rain_shift.apply(precip, self.members, t)

    def get_state(self) -> dict[str, Any]:
        """Serialisable state: ``z`` (nloc, nvar, ncol) and the generators' bit-generator states."""
        return {"z": self.z.copy(), "rng": [r.bit_generator.state for r in self.rngs]}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state` (same members)."""
        z = np.asarray(state["z"], dtype=np.float64)
        if z.shape != self.z.shape:
            raise ValueError(f"state['z'] has shape {z.shape}, expected {self.z.shape}")
        if len(state["rng"]) != len(self.rngs):
            raise ValueError("state['rng'] must hold one generator state per local member")
        self.z = z.copy()
        for r, s in zip(self.rngs, state["rng"], strict=True):
            r.bit_generator.state = s


@dataclass(frozen=True)
class TexturePerturbation:
    """Per-member soil-texture error: the members sample the error of the soil map the model uses.

    Member ``i``'s texture is ``sand + sand_std_pct z_1``, ``clay + clay_ratio sand_std_pct z_2`` (percent)
    with independent unit-variance fields ``z`` of correlation ``exp(-r^2 / length_km^2)``, then clipped
    to ``sand_range``, ``clay_range`` and ``sand + clay <= max_sum`` (clay reduced), the bounds of the
    synthetic world's textures (:mod:`landimg.experiment.domain`).

    Attributes
    ----------
    sand_std_pct : float
        Standard deviation of the sand error, percent (0 = every member has the given texture).
    clay_ratio : float
        Standard deviation of the clay error as a fraction of ``sand_std_pct``.
    length_km : float
        Correlation length L of the error fields, km (e^-1 at L; 0 = white).
    sand_range, clay_range : (low, high)
        Physical bounds of sand and clay, percent.
    max_sum : float
        Upper bound of sand + clay, percent (at least ``sand_range[1] + clay_range[0]``, so the clay
        reduction keeps clay within its range).
    """

    sand_std_pct: float = 25.0
    clay_ratio: float = 0.6
    length_km: float = 200.0
    sand_range: tuple[float, float] = (5.0, 92.0)
    clay_range: tuple[float, float] = (3.0, 60.0)
    max_sum: float = 97.0

    def __post_init__(self) -> None:
        if self.sand_std_pct < 0 or self.clay_ratio < 0 or self.length_km < 0:
            raise ValueError(
                "TexturePerturbation needs sand_std_pct, clay_ratio and length_km >= 0, got "
                f"{self.sand_std_pct}, {self.clay_ratio}, {self.length_km}"
            )
        (s0, s1), (c0, c1) = self.sand_range, self.clay_range
        if not (0.0 <= s0 < s1 <= 100.0 and 0.0 <= c0 < c1 <= 100.0 and s1 + c0 <= self.max_sum <= 100.0):
            raise ValueError(
                f"TexturePerturbation bounds are inconsistent: sand_range {self.sand_range}, "
                f"clay_range {self.clay_range}, max_sum {self.max_sum}"
            )


def member_texture(
    config: TexturePerturbation,
    grid: Any,
    sand: np.ndarray,
    clay: np.ndarray,
    members: Sequence[int],
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each member's perturbed texture around the model's ``sand``, ``clay``.

    Parameters
    ----------
    config : TexturePerturbation
    grid : landimg.Grid
    sand, clay : ndarray (ncol,)
        The model's texture, percent.
    members : sequence of int
        Global member indices; member ``i`` draws from ``member_rng(seed, i, Purpose.PARAMS)`` only.
    seed : int
        Experiment seed.

    Returns
    -------
    sand, clay : ndarray (ncol, len(members)), percent, Fortran-ordered, within the bounds of ``config``
    """
    s = np.asarray(sand, dtype=np.float64)
    c = np.asarray(clay, dtype=np.float64)
    if s.shape != (grid.ncol,) or c.shape != (grid.ncol,):
        raise ValueError(
            f"member_texture: sand and clay must have shape ({grid.ncol},), got {s.shape} and {c.shape}"
        )
    rngs = [member_rng(seed, i, Purpose.PARAMS) for i in members]
    z = correlated_noise(grid, config.length_km, rngs, nfield=2)  # (nloc, 2, ncol)
    sd = config.sand_std_pct
    ps = np.clip(s[:, None] + sd * z[:, 0, :].T, *config.sand_range)
    pc = np.clip(c[:, None] + config.clay_ratio * sd * z[:, 1, :].T, *config.clay_range)
    pc = pc - np.maximum(ps + pc - config.max_sum, 0.0)
    return np.asfortranarray(ps), np.asfortranarray(pc)


def member_soil(
    config: TexturePerturbation,
    grid: Any,
    sand: np.ndarray,
    clay: np.ndarray,
    members: Sequence[int],
    seed: int = 0,
) -> Any:
    """Per-member soil parameters from each member's perturbed texture (:func:`member_texture`).

    Returns
    -------
    landimg.model.soil.SoilParams
        Arrays (ncol, len(members)): Cosby et al. (1984) parameters of the perturbed texture
        (:func:`landimg.model.soil.from_texture`); pass to :class:`landimg.Ensemble` as ``soil``.
    """
    from landimg.model.soil import from_texture

    return from_texture(*member_texture(config, grid, sand, clay, members, seed))
