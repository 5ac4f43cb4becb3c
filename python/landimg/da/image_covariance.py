"""The observation-error covariance ``R`` as an operator on the observed pixels (never formed, never inverted).

The declared error of a column (:class:`landimg.da.obs_error.ObsError`) is a white part plus a Gaussian-
correlated part, so on the ``p`` usable observations

    R = D_w^2 + D_c G D_c,      G_pq = exp(-|r_p - r_q|^2 / L^2),

with ``D_w``, ``D_c`` the diagonal white and correlated standard deviations and ``r`` the pixel positions
on the flat grid of cell size ``cell_km`` (periodic in x for a global grid): the metric of
:mod:`landimg.random_fields`, with which the synthetic errors are drawn. Products ``R z`` are all the
gap-aware solve needs (:mod:`landimg.da.curvelet_var`): ``G`` is applied as a Gaussian filter of the image
holding ``D_c z`` on the observed pixels (zero elsewhere), by FFT on a zero-padded grid (exactly the
linear convolution with the kernel truncated at ``6 L``, where it is below 3e-16; periodic in x when the
grid wraps around the globe, with the kernel summed over the wraps). The Gaussian is separable and its
sampled, periodized versions are positive definite, so ``R`` is symmetric positive definite whenever the
white part is not zero (and semi-definite otherwise). The same ``R`` between columns, entry by entry, for
the LETKF's local blocks and the inflation's ``1^T R 1``: :class:`landimg.da.obs_covariance.ObsCovariance`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import scipy.fft

__all__ = [
    "DiagonalCovariance", "GaussianCorrelation", "ObservationCovariance", "observation_covariance", "periodic_spectrum",
]  # fmt: skip

_TRUNCATE = 6.0  # kernel support in units of L: exp(-36) = 2.3e-16


def _axis_kernel(n: int, cell_km: float, length_km: float, periodic: bool) -> np.ndarray:
    """The 1-D kernel ``exp(-(k dx)^2 / L^2)`` on the (padded) FFT grid of an axis of ``n`` cells."""
    if periodic:
        k = np.arange(n, dtype=np.float64)
        k = np.minimum(k, n - k)  # distance on the circle, then the kernel summed over all wraps
        wraps = int(math.ceil(_TRUNCATE * length_km / (n * cell_km))) + 1
        out = np.zeros(n)
        for m in range(-wraps, wraps + 1):
            out += np.exp(-(((np.arange(n) + m * n) * cell_km) ** 2) / length_km**2)
        return out
    radius = min(n - 1, int(math.ceil(_TRUNCATE * length_km / cell_km)))
    size = scipy.fft.next_fast_len(n + radius, real=True)
    out = np.zeros(size)
    r = np.arange(radius + 1, dtype=np.float64)
    val = np.exp(-((r * cell_km) ** 2) / length_km**2)
    out[: radius + 1] = val
    if radius:
        out[-radius:] = val[1:][::-1]
    return out


@functools.lru_cache(maxsize=8)
def _spectrum(shape: tuple[int, int], cell_km: tuple[float, float], length_km: float,
              periodic_x: bool) -> tuple[np.ndarray, tuple[int, int]]:  # fmt: skip
    """The filter's spectrum on the padded FFT grid (real: the kernels are symmetric) and that grid's shape."""
    ky = _axis_kernel(shape[0], cell_km[0], length_km, False)
    kx = _axis_kernel(shape[1], cell_km[1], length_km, periodic_x)
    spec = np.outer(scipy.fft.fft(ky).real, scipy.fft.rfft(kx).real)
    spec.setflags(write=False)
    return spec, (ky.size, kx.size)


@functools.lru_cache(maxsize=8)
def periodic_spectrum(shape: tuple[int, int], cell_km: tuple[float, float], length_km: float) -> np.ndarray:
    """The rfft2 spectrum (M, N // 2 + 1) of ``exp(-r^2 / L^2)`` periodized on an ``M x N`` grid of cells
    ``cell_km``: the correlation as a Fourier multiplier of a periodic domain (1 at r = 0 in physical space;
    used to precondition the solve, where an approximation suffices)."""
    ky = _axis_kernel(int(shape[0]), float(cell_km[0]), float(length_km), True)
    kx = _axis_kernel(int(shape[1]), float(cell_km[1]), float(length_km), True)
    spec = np.outer(scipy.fft.fft(ky).real, scipy.fft.rfft(kx).real)
    spec.setflags(write=False)
    return spec


class GaussianCorrelation:
    """``G``: the image filter ``(G f)(p) = sum_q exp(-|r_p - r_q|^2 / L^2) f(q)`` over the pixels of an image.

    Parameters
    ----------
    shape : (int, int)
        Image shape (ny, nx).
    cell_km : (float, float)
        Cell size (north-south, east-west), km.
    length_km : float
        Correlation length ``L`` (e^-1 at ``L``), km, > 0.
    periodic_x : bool
        The image wraps around in x (global grids).
    """

    def __init__(self, shape: tuple[int, int], cell_km: tuple[float, float], length_km: float,
                 periodic_x: bool = False) -> None:  # fmt: skip
        if not (np.isfinite(length_km) and length_km > 0):
            raise ValueError(f"the correlation length must be > 0 km, got {length_km!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.cell_km = (float(cell_km[0]), float(cell_km[1]))
        self.length_km = float(length_km)
        self.periodic_x = bool(periodic_x)
        self._spec, self._fft_shape = _spectrum(self.shape, self.cell_km, self.length_km, self.periodic_x)

    def apply(self, images: np.ndarray, single: bool = False) -> np.ndarray:
        """``G f`` of every image, (k, ny, nx) -> (k, ny, nx) (float64; ``single``: FFTs in single precision,
        relative error ~1e-7)."""
        from landimg.da.curvelet_spectral import filter_images

        spec = self._spec.astype(np.float32) if single else self._spec
        dtype = np.float32 if single else np.float64
        return filter_images(np.asarray(images, dtype=dtype), spec, self._fft_shape)


class DiagonalCovariance:
    """``R = diag(var)`` on the observations (uncorrelated error), ``var`` (nobs,) units^2."""

    def __init__(self, var: np.ndarray) -> None:
        self.var = np.asarray(var, dtype=np.float64)

    def apply(self, z: np.ndarray) -> np.ndarray:
        """``R z``: (k, nobs) -> (k, nobs)."""
        return self.var * z

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``R`` (nobs,)."""
        return self.var

    def total(self) -> float:
        """``1^T R 1``: the variance of the sum of the observation errors."""
        return float(np.sum(self.var))

    def mean_spectrum(self, shape: tuple[int, int]) -> float:
        """``R`` as a Fourier multiplier of a fully observed periodic ``shape`` domain, on average: the mean
        variance (a preconditioner's approximation)."""
        return float(np.mean(self.var)) if self.var.size else 0.0


class ObservationCovariance:
    """``R = D_w^2 + D_c G D_c`` on the usable observations (module docstring).

    Parameters
    ----------
    white_var : ndarray (nobs,)
        Variance of the white part at every usable observation, units^2.
    corr_std : ndarray (nobs,)
        Standard deviation of the correlated part there, units.
    correlation : GaussianCorrelation
        ``G`` on the image.
    valid : ndarray of bool (ny, nx)
        The usable observations (their order is row-major, as ``image[valid]``).
    single : bool
        The filter's FFTs in single precision (for the CG products; :meth:`total` stays float64).
    """

    def __init__(self, white_var: np.ndarray, corr_std: np.ndarray, correlation: GaussianCorrelation,
                 valid: np.ndarray, single: bool = False) -> None:  # fmt: skip
        self.white_var = np.asarray(white_var, dtype=np.float64)
        self.corr_std = np.asarray(corr_std, dtype=np.float64)
        self.correlation, self.single = correlation, bool(single)
        self.valid = np.asarray(valid, dtype=bool)
        if self.valid.shape != correlation.shape:
            raise ValueError(f"valid has shape {self.valid.shape}, the correlation {correlation.shape}")
        n = int(np.count_nonzero(self.valid))
        if self.white_var.shape != (n,) or self.corr_std.shape != (n,):
            raise ValueError(f"white_var and corr_std must have one value per usable observation ({n})")
        self._product = None  # built at the first product

    def correlated(self, z: np.ndarray) -> np.ndarray:
        """``D_c G D_c z``: (k, nobs) -> (k, nobs) (one FFT pair on the observations of the zero-padded grid,
        :class:`~landimg.da.curvelet_spectral.PixelProduct`: the numbers of ``correlation.apply``)."""
        if self._product is None:
            from landimg.da.curvelet_spectral import PixelProduct

            g = self.correlation
            rows, cols = np.nonzero(self.valid)
            spec = g._spec.astype(np.float32) if self.single else g._spec
            self._product = PixelProduct(g._fft_shape, rows * g._fft_shape[1] + cols, spec)
        return self.corr_std * self._product(self.corr_std * z)

    def apply(self, z: np.ndarray) -> np.ndarray:
        """``R z``: (k, nobs) -> (k, nobs)."""
        return self.white_var * z + self.correlated(z)

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``R`` (nobs,): the total variance."""
        return self.white_var + self.corr_std**2

    def total(self) -> float:
        """``1^T R 1``: the variance of the sum of the observation errors."""
        img = np.zeros((1,) + self.correlation.shape)
        img[:, self.valid] = self.corr_std
        corr = float(np.sum(self.corr_std * self.correlation.apply(img)[0][self.valid]))
        return float(np.sum(self.white_var)) + corr

    def stationary_multiplier(self, tshape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray | None:
        """``D_c G D_c`` exactly as the Fourier multiplier of a periodic ``tshape`` domain holding the image at
        ``offset``, or None. Exact when the correlated std is the same at every observation and the domain is
        padded enough that the kernel is below 3e-16 across the wrap (``(padding + 1) cell >= 6 L`` along
        every axis the image does not wrap around by itself); then ``R`` and the curvelet ``B`` share one FFT
        pair per product."""
        c = self.corr_std
        if c.size == 0 or not np.all(c == c[0]):
            return None
        g, (ny, nx) = self.correlation, self.correlation.shape
        need = _TRUNCATE * g.length_km
        if (tshape[0] - ny + 1) * g.cell_km[0] < need:
            return None
        if g.periodic_x:
            if tshape[1] != nx:
                return None
        elif (tshape[1] - nx + 1) * g.cell_km[1] < need:
            return None
        return float(c[0]) ** 2 * periodic_spectrum(tuple(tshape), g.cell_km, g.length_km)

    def mean_spectrum(self, shape: tuple[int, int]) -> np.ndarray:
        """``R`` as a Fourier multiplier of a fully observed periodic ``shape`` domain with the mean white
        and correlated variances (a preconditioner's approximation), (M, N // 2 + 1)."""
        g = self.correlation
        return float(np.mean(self.white_var)) + float(np.mean(self.corr_std**2)) * periodic_spectrum(
            tuple(shape), g.cell_km, g.length_km
        )


def observation_covariance(
    white_std: np.ndarray, corr_std: np.ndarray, corr_length_km: float, valid: np.ndarray,
    cell_km: tuple[float, float], periodic_x: bool = False, single: bool = False,
) -> Any:  # fmt: skip
    """``R`` on the ``valid`` pixels of images of the white and correlated standard deviations (ny, nx):
    a :class:`DiagonalCovariance` when there is no correlated part there, else an
    :class:`ObservationCovariance`."""
    valid = np.asarray(valid, dtype=bool)
    w = np.broadcast_to(np.asarray(white_std, dtype=np.float64), valid.shape)[valid]
    c = np.broadcast_to(np.asarray(corr_std, dtype=np.float64), valid.shape)[valid]
    if not np.any(c > 0):
        return DiagonalCovariance(w**2 + c**2)
    gauss = GaussianCorrelation(valid.shape, cell_km, corr_length_km, periodic_x)
    return ObservationCovariance(w**2, c, gauss, valid, single)
