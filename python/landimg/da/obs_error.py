"""Observation errors: the declared error of an analysis (:class:`ObsError`, per column) and the
curvelet EnKF's image model of it (:class:`ObsErrorModel`).

:class:`ObsError` is what a host hands every method (:mod:`landimg.da.protocol`): per column the standard
deviation of a white part and of a spatially correlated part (Gaussian correlation ``exp(-r^2 / L^2)``
of length ``corr_length_km``), and the e-folding time of the correlated part between analyses
(``memory_days``; the filters treat errors as uncorrelated in time). A method may assume another error
(:meth:`ObsError.assume`) for mis-specification experiments.

:class:`ObsErrorModel` is that error on an image: ``e = sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)``,
its perturbations (one draw per member from its own stream) and its variance per curvelet coefficient
``s_o`` (exact formulas where they exist, else a fixed-seed Monte-Carlo estimate, identical on every rank).
An image analysis takes its declared error in pixel layout (:func:`declared_image_error`), builds that
model from the usable observations (:func:`image_error_model`) and the error's covariance ``R`` on them as
an operator (:func:`image_obs_covariance`, :mod:`landimg.da.image_covariance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landimg.da.curvelet_stats import frame_norms2, image_offset, transform_shape
from landimg.da.image_covariance import DiagonalCovariance, observation_covariance, periodic_spectrum
from landimg.parallel import Purpose, member_rng
from landimg.random_fields import GaussianFieldGenerator

__all__ = [
    "ObsError", "ObsErrorModel", "as_obs_error", "declared_image_error", "image_error_model", "image_obs_covariance",
    "memory_factor", "pixel_image", "resolve_white_fraction",
]  # fmt: skip


def _column_std(value: Any, name: str) -> np.ndarray:
    """A float64 std: scalar (0-d) or per column (1-d), >= 0 and not NaN (``inf`` = no information)."""
    arr = np.array(value, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"ObsError.{name} must be a scalar or one value per column (ncol,), got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0):
        raise ValueError(f"ObsError.{name} must be >= 0 and not NaN")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class ObsError:
    """The declared observation error of one analysis, per column.

    ``e_c = white_std_c z_white,c + corr_std_c z_corr,c`` with independent unit-variance white noise and a
    Gaussian-correlated unit-variance field ``z_corr`` (correlation ``exp(-r^2 / L^2)``, ``L =
    corr_length_km``, the convention of :mod:`landimg.random_fields`), so ``R_cd = white_std_c^2 delta_cd +
    corr_std_c corr_std_d exp(-r_cd^2 / L^2)``.

    Attributes
    ----------
    white_std : float or ndarray (ncol,)
        Standard deviation of the white part, m3/m3 (``inf``: no information, the observation is unusable).
    corr_std : float or ndarray (ncol,)
        Standard deviation of the correlated part, m3/m3 (0: white error).
    corr_length_km : float
        Correlation length ``L`` of the correlated part, km (> 0 when ``corr_std`` is not 0).
    memory_days : float
        E-folding time of the correlated part between analyses (AR(1)), days; 0: redrawn at each analysis.
        Information about the world: the filters treat observation errors as uncorrelated in time.
    """

    white_std: Any
    corr_std: Any = 0.0
    corr_length_km: float = 0.0
    memory_days: float = 0.0
    _shape: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        white, corr = _column_std(self.white_std, "white_std"), _column_std(self.corr_std, "corr_std")
        if white.ndim and corr.ndim and white.shape != corr.shape:
            raise ValueError(f"ObsError: white_std {white.shape} and corr_std {corr.shape} differ in shape")
        if not (np.isfinite(self.corr_length_km) and self.corr_length_km >= 0):
            raise ValueError(f"ObsError.corr_length_km must be finite and >= 0, got {self.corr_length_km!r}")
        if np.any(corr > 0) and self.corr_length_km <= 0:
            raise ValueError("ObsError: a correlated part (corr_std > 0) needs corr_length_km > 0")
        if not (np.isfinite(self.memory_days) and self.memory_days >= 0):
            raise ValueError(f"ObsError.memory_days must be finite and >= 0, got {self.memory_days!r}")
        object.__setattr__(self, "white_std", white)
        object.__setattr__(self, "corr_std", corr)
        object.__setattr__(self, "_shape", np.broadcast_shapes(white.shape, corr.shape))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def white(cls, std: Any) -> ObsError:
        """Uncorrelated error of standard deviation ``std`` (scalar or (ncol,)), m3/m3."""
        return cls(std)

    @classmethod
    def from_fraction(
        cls, std: Any, white_fraction: float, corr_length_km: float = 0.0, memory_days: float = 0.0
    ) -> ObsError:
        """Total standard deviation ``std`` split by the white fraction of its *variance*, ``[0, 1]``."""
        w = float(white_fraction)
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"white_fraction must be in [0, 1], got {white_fraction!r}")
        std = np.asarray(std, dtype=np.float64)
        return cls(np.sqrt(w) * std, np.sqrt(1.0 - w) * std if w < 1.0 else 0.0, corr_length_km, memory_days)

    # ------------------------------------------------------------------ views
    @property
    def std(self) -> np.ndarray:
        """Total standard deviation (scalar or (ncol,)), m3/m3."""
        return np.sqrt(self.white_std**2 + self.corr_std**2)

    @property
    def correlated(self) -> bool:
        """True when the error has a correlated part."""
        return bool(np.any(self.corr_std > 0))

    @property
    def white_fraction(self) -> float:
        """The white share of the error variance (over the columns with a finite, nonzero error)."""
        wv = np.broadcast_to(self.white_std**2, self._shape or (1,))
        tv = np.broadcast_to(self.std**2, self._shape or (1,))
        ok = np.isfinite(tv) & (tv > 0)
        return float(np.sum(wv[ok]) / np.sum(tv[ok])) if ok.any() else 1.0

    def columns_std(self, ncol: int) -> np.ndarray:
        """The total std broadcast to ``ncol`` columns, (ncol,)."""
        if self._shape not in ((), (ncol,)):
            raise ValueError(f"ObsError holds {self._shape[0]} columns, expected {ncol}")
        return np.broadcast_to(self.std, (ncol,))

    def take(self, columns: np.ndarray) -> ObsError:
        """The error of a subset of the columns (global indices ``columns``); scalars stay scalars."""

        def sub(a: np.ndarray) -> np.ndarray:
            return a if a.ndim == 0 else a[np.asarray(columns)]

        return ObsError(sub(self.white_std), sub(self.corr_std), self.corr_length_km, self.memory_days)

    def assume(self, white_fraction: float | None = None, corr_length_km: float | None = None) -> ObsError:
        """The error a method assumes: the same total std per column, its variance split by
        ``white_fraction`` (None: as declared) with correlation length ``corr_length_km`` (None: as
        declared). ``assume()`` is the declared error itself."""
        if white_fraction is None and corr_length_km is None:
            return self
        w = self.white_fraction if white_fraction is None else float(white_fraction)
        length = self.corr_length_km if corr_length_km is None else float(corr_length_km)
        if w < 1.0 and length <= 0:
            raise ValueError(f"an assumed white fraction {w} < 1 needs a correlation length > 0")
        return ObsError.from_fraction(self.std, w, length, self.memory_days)

    # ------------------------------------------------------------------ draws
    def draw(
        self,
        rngs: Sequence[np.random.Generator],
        geometry: Any,
        columns: np.ndarray | None = None,
    ) -> np.ndarray:
        """One error draw per generator at ``columns`` (global indices; None: all), (len(rngs), ncol_taken).

        Every draw covers the whole ``geometry`` (its image for the correlated part, every column for the
        white part) and is then sliced, so a member's error at a column does not depend on which block of
        columns is asked for. Per generator: the correlated field first (``geometry.shape`` image, cell
        size ``geometry.cell_km``), then ``geometry.ncol`` standard normals. ``white_std``/``corr_std``
        are per column of the *taken* columns (or scalars).
        """
        idx = np.arange(geometry.ncol) if columns is None else np.asarray(columns)
        n = idx.size
        if self._shape not in ((), (n,)):
            raise ValueError(f"ObsError holds {self._shape[0]} columns, the draw asks for {n}")
        corr = None
        if self.correlated:
            gen = GaussianFieldGenerator(geometry.shape, geometry.cell_km, self.corr_length_km,
                                         geometry.periodic_lon)  # fmt: skip
            fields = gen.draw(rngs, 1)[:, 0].reshape(len(rngs), -1)
            corr = fields[:, geometry.index[idx]]
        white = np.stack([r.standard_normal(geometry.ncol)[idx] for r in rngs]) if len(rngs) else np.empty((0, n))
        out = white * self.white_std
        if corr is not None:
            out += corr * self.corr_std
        return out


def as_obs_error(value: Any, ncol: int | None = None) -> ObsError:
    """``value`` as an :class:`ObsError`: one already, or a white error std (scalar or (ncol,))."""
    err = value if isinstance(value, ObsError) else ObsError.white(value)
    if ncol is not None and err._shape not in ((), (ncol,)):
        raise ValueError(f"the observation error holds {err._shape[0]} columns, expected {ncol}")
    return err


def declared_image_error(obs_std: Any, shape: tuple[int, int]) -> ObsError:
    """The declared observation error of an image analysis as an :class:`ObsError` in pixel layout.

    ``obs_std``: an :class:`ObsError` whose stds are scalars or one value per pixel (ny * nx,) in
    row-major order, or a white error std (scalar or (ny, nx) image, >= 0, not NaN; ``inf`` = no
    information).
    """
    if isinstance(obs_std, ObsError):
        npix = int(shape[0]) * int(shape[1])
        for name in ("white_std", "corr_std"):
            arr = getattr(obs_std, name)
            if arr.ndim and arr.shape != (npix,):
                raise ValueError(f"obs_std (an ObsError) must hold scalars or one value per pixel ({npix},), "
                                 f"got {name} of shape {arr.shape}")  # fmt: skip
        return obs_std
    std = np.asarray(obs_std, dtype=np.float64)
    if std.ndim not in (0, 2) or (std.ndim == 2 and std.shape != tuple(shape)):
        raise ValueError(f"obs_std must be a scalar or an image of shape {tuple(shape)}, got shape {std.shape}")
    if np.any(std < 0):
        raise ValueError("obs_std must be >= 0 (got negative values)")
    if np.any(np.isnan(std)):
        raise ValueError("obs_std must not be NaN")
    return ObsError.white(std if std.ndim == 0 else std.ravel())


def pixel_image(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A scalar or (ny * nx,) per-pixel value as an image (ny, nx)."""
    values = np.asarray(values, dtype=np.float64)
    return np.broadcast_to(values, shape) if values.ndim == 0 else values.reshape(shape)


def memory_factor(memory_days: float, interval_days: float) -> float:
    """Variance factor of an AR(1) error seen at every analysis as if it were new: ``(1 + a) / (1 - a)``,
    ``a = exp(-interval / memory)`` (the variance of the mean of many successive AR(1) errors against that
    of as many independent ones); 1 without memory."""
    if not memory_days > 0:
        return 1.0
    a = float(np.exp(-float(interval_days) / float(memory_days)))
    return (1.0 + a) / (1.0 - a)


@dataclass
class ObsErrorModel:
    """Observation error: std map sigma (ny, nx), white fraction of its variance, correlation length (km).

    ``e = sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)`` with unit-variance white noise ``z_white`` and
    Gaussian-correlated noise ``z_corr`` of length ``corr_km`` (``w = white_fraction``; ``w < 1`` needs
    ``corr_km > 0``).
    """

    sigma: np.ndarray
    corr_km: float
    cell_km: tuple[float, float]
    periodic_x: bool
    white_fraction: float = 1.0

    def _part(self, white_fraction: float) -> ObsErrorModel:
        return ObsErrorModel(self.sigma, self.corr_km, self.cell_km, self.periodic_x, white_fraction)

    def fields(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """One error image per generator, (n, ny, nx).

        Mixed model: the correlated draw first, then the white one, both from each member's own
        generator (independent of the rank layout).
        """
        w = self.white_fraction
        if w < 1:
            gen = GaussianFieldGenerator(self.sigma.shape, self.cell_km, self.corr_km, self.periodic_x)
            z = gen.draw(rngs, 1)[:, 0]
            if w > 0:
                white = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
                z = np.sqrt(1.0 - w) * z + np.sqrt(w) * white
        else:
            z = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
        return self.sigma * z

    def coefficient_variance(
        self,
        transform: Any,
        nsamples: int,
        seed: int,
        *,
        pooled: bool = False,
        offset: tuple[int, int] | None = None,
        frame: Any = None,
    ) -> np.ndarray:
        """s_o per coefficient (ncoef,) at *full coverage*: the error field on the whole transform domain.

        ``sigma`` must already hold the fill value (rms of the usable sigmas) off the observations; the
        padding of a larger transform domain takes the same fill, so that ``s_o`` is on the same footing
        as the land-fraction normalised pooled ``s_b`` (and as the analytic white path).

        * uniform white error: ``sigma^2 |row_j|^2`` (exact);
        * white error with a sigma map, pooled (wedge/scale/global): ``mean(sigma^2) |row_j|^2`` (exact
          after pooling: a wedge's frame elements are translates on a grid that covers the domain
          uniformly, so ``sum_{j in wedge} C_jp^2`` does not depend on the pixel ``p``);
        * otherwise (correlated error, or a sigma map without pooling): Monte Carlo over ``nsamples``
          fixed-seed error images on the transform domain (identical on every rank);
        * mixed error (``0 < white_fraction < 1``): ``w * s_o(white) + (1 - w) * s_o(correlated)``, each
          part as above (the two parts are independent, so their variances add);
        * pooled correlated error with a :class:`~landimg.da.curvelet_spectral.SpectralFrame` ``frame``:
          exactly (no Monte Carlo) the expected energy per direction of a stationary field of the
          correlation periodized on the transform domain, times ``mean(sigma^2)`` over the domain, per
          coefficient of the direction.
        """
        w = self.white_fraction
        if 0 < w < 1:
            kw: dict[str, Any] = {"pooled": pooled, "offset": offset, "frame": frame}
            return w * self._part(1.0).coefficient_variance(transform, nsamples, seed, **kw) + (
                1.0 - w
            ) * self._part(0.0).coefficient_variance(transform, nsamples, seed, **kw)
        white = w >= 1
        vals = self.sigma[np.isfinite(self.sigma)]
        uniform = bool(vals.size) and bool(np.all(vals == vals[0]))
        if white and uniform:
            return vals[0] ** 2 * frame_norms2(transform)
        tshape = transform_shape(transform)
        fill = float(np.sqrt(np.mean(vals**2))) if vals.size else 0.0
        sig = np.full(tshape, fill)
        oy, ox = image_offset(self.sigma.shape, tshape, offset)
        sig[oy : oy + self.sigma.shape[0], ox : ox + self.sigma.shape[1]] = self.sigma
        if white and pooled:
            return float(np.mean(sig**2)) * frame_norms2(transform)
        if pooled and frame is not None:
            energy = frame.stationary_energy(periodic_spectrum(tshape, self.cell_km, self.corr_km))
            return float(np.mean(sig**2)) * (energy / frame.ncoef_per_direction)[frame.direction]
        full = ObsErrorModel(sig, self.corr_km, self.cell_km, self.periodic_x, w)
        rngs = [member_rng(seed, k, Purpose.OBS) for k in range(10**6, 10**6 + nsamples)]
        return np.mean(transform.forward(full.fields(rngs)) ** 2, axis=0)


def image_error_model(
    error: ObsError, std: np.ndarray, valid: np.ndarray, cell_km: tuple[float, float], periodic_x: bool,
    scale: np.ndarray | None = None,
) -> ObsErrorModel:
    """The assumed observation error ``error`` (pixel layout) of an image analysis as an image model (for
    the coefficient variances ``s_o`` and the perturbations): ``std`` (ny, nx) its total std, ``valid``
    (ny, nx) the usable observations; unobserved pixels take the rms observation-error std. The split of
    the variance into its white and correlated parts is the error's overall white fraction (exact when it
    is the same at every pixel, as for errors declared by a fraction). With ``scale`` (variance filtering)
    the error of the normalised problem, ``sigma / S`` (for the gains; observations where ``S = 0`` take
    the rms)."""
    vals = std[valid]
    if scale is not None:
        sv = scale[valid]
        ok = sv > 0
        vals = np.where(ok, vals / np.where(ok, sv, 1.0), np.sqrt(np.mean((vals[ok] / sv[ok]) ** 2)) if ok.any() else 1.0)
        fill_sigma = float(np.sqrt(np.mean(vals**2)))
    else:  # unobserved pixels take the rms sigma: mean(sigma^2) over the image == mean over the observations
        fill_sigma = float(vals[0]) if np.all(vals == vals[0]) else float(np.sqrt(np.mean(vals**2)))
    sigma = np.full(std.shape, fill_sigma)
    sigma[valid] = vals
    if not error.correlated:
        return ObsErrorModel(sigma, 0.0, cell_km, periodic_x, 1.0)
    return ObsErrorModel(sigma, error.corr_length_km, cell_km, periodic_x, error.white_fraction)


def image_obs_covariance(
    error: ObsError, std: np.ndarray, valid: np.ndarray, cell_km: tuple[float, float], periodic_x: bool, *,
    memory_interval_days: float | None = None, single: bool = False,
) -> Any:
    """``R`` of the assumed error ``error`` (pixel layout; ``std`` (ny, nx) its total std) on the usable
    observations ``valid`` (ny, nx), as an operator (never inverted): diagonal for a white error,
    ``D_w^2 + D_c G D_c`` for a correlated one (:mod:`landimg.da.image_covariance`; ``single``: its
    single-precision products). With ``memory_interval_days`` (the days between analyses) the correlated
    part's variance is multiplied by :func:`memory_factor` of the declared memory (the solve's R only; the
    inflation keeps the error of one analysis)."""
    if not error.correlated:
        return DiagonalCovariance(std[valid] ** 2)
    shape = std.shape
    corr = pixel_image(error.corr_std, shape)
    if memory_interval_days is not None:
        corr = corr * np.sqrt(memory_factor(error.memory_days, memory_interval_days))
    return observation_covariance(
        pixel_image(error.white_std, shape), corr, error.corr_length_km, valid, cell_km, periodic_x, single=single,
    )  # fmt: skip


def resolve_white_fraction(obs_white_fraction: float | None, obs_corr_km: float) -> float:
    """The white fraction of the observation-error variance actually used, checked.

    None: 1.0 when ``obs_corr_km <= 0`` (white), 0.0 otherwise (entirely correlated, the historical
    meaning of ``obs_corr_km > 0``). A given value must lie in [0, 1]; values below 1 need
    ``obs_corr_km > 0``.
    """
    if obs_white_fraction is None:
        return 1.0 if obs_corr_km <= 0 else 0.0
    w = float(obs_white_fraction)
    if not 0.0 <= w <= 1.0:  # also rejects NaN
        raise ValueError(f"obs_white_fraction must be in [0, 1] (or None), got {obs_white_fraction!r}")
    if w < 1.0 and obs_corr_km <= 0:
        raise ValueError(
            f"obs_white_fraction={w} < 1 needs a correlation length obs_corr_km > 0, got {obs_corr_km!r}"
        )
    return w
