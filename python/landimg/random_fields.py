"""Gaussian random fields on grid images: the one place where spatially correlated noise is made.

Two generators live here (both zero mean, unit variance, Gaussian correlation):

* :class:`GaussianFieldGenerator` -- spectral filtering of white noise on a (padded) periodic image, exact
  unit variance at every point; used for forcing perturbations and observation-error perturbations;
* :func:`gaussian_random_field` -- ``scipy.ndimage`` filtering with reflecting (or wrapping) edges, then
  standardised over the image; used for the synthetic world (texture, retrieval errors, rain bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["GaussianFieldGenerator", "gaussian_filter_spectrum", "gaussian_random_field"]


def gaussian_filter_spectrum(
    shape: tuple[int, int], cell_km: tuple[float, float], length_km: float
) -> np.ndarray:
    """Fourier transfer function of the kernel that turns unit white noise into a unit-variance field.

    The kernel is a Gaussian of standard deviation ``L / sqrt(2)`` (so the field's correlation is
    ``exp(-r^2 / 2 L^2)``), normalised to unit sum of squares (so every point has variance exactly 1),
    on a periodic ``shape`` grid of ``cell_km`` = (dy, dx) km cells.

    Returns
    -------
    ndarray (ny, nx // 2 + 1), complex
        ``rfft2`` of the kernel.
    """
    ny, nx = shape
    if length_km <= 0:
        kern = np.zeros(shape)
        kern[0, 0] = 1.0
        return np.fft.rfft2(kern)
    s = length_km / np.sqrt(2.0)
    dy = np.minimum(np.arange(ny), ny - np.arange(ny)) * cell_km[0]
    dx = np.minimum(np.arange(nx), nx - np.arange(nx)) * cell_km[1]
    kern = np.exp(-0.5 * (dy[:, None] ** 2 + dx[None, :] ** 2) / s**2)
    kern /= np.sqrt(np.sum(kern**2))
    return np.fft.rfft2(kern)


@dataclass
class GaussianFieldGenerator:
    """Unit-variance Gaussian random fields on an image, correlation ``exp(-r^2 / 2 L^2)``.

    Parameters
    ----------
    shape : (ny, nx)
        Image shape.
    cell_km : (dy, dx)
        Cell size, km.
    length_km : float
        Correlation length L, km (0 = white noise).
    periodic_x : bool
        Periodic in x (global longitude): no padding in x.
    """

    shape: tuple[int, int]
    cell_km: tuple[float, float]
    length_km: float
    periodic_x: bool = False
    work_shape: tuple[int, int] = field(init=False)
    spectrum: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ny, nx = self.shape
        dy, dx = self.cell_km
        pad_y = pad_x = 0
        if self.length_km > 0:
            pad_y = int(np.ceil(3.0 * self.length_km / dy))
            pad_x = 0 if self.periodic_x else int(np.ceil(3.0 * self.length_km / dx))
        self.work_shape = (ny + pad_y, nx + pad_x)
        self.spectrum = gaussian_filter_spectrum(self.work_shape, (dy, dx), self.length_km)

    def draw(self, rngs: Sequence[np.random.Generator], nfield: int = 1) -> np.ndarray:
        """Draw ``nfield`` independent fields per generator: (len(rngs), nfield, ny, nx)."""
        ny, nx = self.shape
        white = np.stack([r.standard_normal((nfield,) + self.work_shape) for r in rngs])
        if self.length_km <= 0:
            return white
        fields = np.fft.irfft2(np.fft.rfft2(white) * self.spectrum, s=self.work_shape)
        return np.ascontiguousarray(fields[..., :ny, :nx])



def gaussian_random_field(
    grid: Any, corr_km: float, rng: np.random.Generator, n: int | None = None
) -> np.ndarray:
    """Smooth Gaussian random field(s) on the grid image, unit variance, zero mean.

    White noise filtered with a Gaussian kernel of standard deviation ``corr_km / 2`` (so the field's
    correlation falls to exp(-1) at about ``corr_km``), wrapping in longitude on a global grid and
    reflecting at regional edges; each field is then standardised over the whole image.

    Parameters
    ----------
    grid : Grid
    corr_km : float
        Correlation length in km (> 0).
    rng : numpy Generator
    n : int, optional
        Number of independent fields; ``None`` gives one field of shape (ny, nx).

    Returns
    -------
    ndarray (ny, nx) or (n, ny, nx)
    """
    if corr_km <= 0:
        raise ValueError(f"corr_km must be > 0, got {corr_km}")
    dy_km, dx_km = grid.cell_size_km()
    sigma = (corr_km / 2.0 / dy_km, corr_km / 2.0 / max(dx_km, 1e-3 * dy_km))
    shape = (1 if n is None else n,) + grid.shape
    white = rng.standard_normal(shape)
    modes = ("reflect", "wrap" if grid.periodic_lon else "reflect")
    out = np.empty(shape)
    for k in range(shape[0]):  # a handful of fields, not a hot path
        f = ndimage.gaussian_filter(white[k], sigma=sigma, mode=modes, truncate=3.0)
        f -= f.mean()
        sd = f.std()
        out[k] = f / sd if sd > 0 else f
    return out[0] if n is None else out


