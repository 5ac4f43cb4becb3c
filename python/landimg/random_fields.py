"""Gaussian random fields on grid images: the one place where spatially correlated noise is made.

One generator, :class:`GaussianFieldGenerator`, with one correlation-length convention:

    corr(r) = exp(-r^2 / L^2)            (the correlation falls to e^-1 at r = L)

made by filtering white noise with a Gaussian kernel of standard deviation ``L / 2`` (a Gaussian of
standard deviation ``s`` convolved with itself has correlation ``exp(-r^2 / 4 s^2)``). ``L`` is what every
``*_km`` correlation length in landimg means: the synthetic world's texture, rain-bias and retrieval-error
fields, the forcing perturbations and the curvelet EnKF's assumed observation-error correlation.

The generator has two edge treatments, chosen by ``edges``:

* ``"spectral"`` (default) -- multiplication in Fourier space on an image zero-padded by
  ``3 sqrt(2) L / 2`` (where the kernel has fallen to e^-9; no padding in x when periodic): exact unit
  variance at every point, members independent of each other's draws; used for the forcing
  perturbations and the observation-error perturbations of the curvelet EnKF. The white noise is drawn
  directly as complex Gaussian Fourier coefficients (:class:`_SpectralBins`), only where the spectrum
  carries variance, then one inverse transform: the covariance of filtering white noise, half the FFT work.
  ``dtype=np.float32`` does the whole draw in single precision (normals from numpy's float32 ziggurat,
  complex64 transforms; used for the forcing perturbations, whose innovations are evolved in float64):
  the same covariance up to float32 round-off (relative ~1e-6, far below the sampling error of any use),
  about 0.6 of the CPU time of float64. float64 (default) stays for the fields drawn once or rarely
  (soil-texture errors, observation-error perturbations), whose bits it keeps.
* ``"image"`` -- ``scipy.ndimage.gaussian_filter`` (truncated at 3 kernel standard deviations) with
  reflecting edges (wrapping in longitude on a periodic grid), each field then standardised over the
  image (zero mean, unit variance); used for the static fields of the synthetic world
  (:func:`gaussian_random_field`).

History (issue 8): before, the spectral generator used ``exp(-r^2 / 2 L^2)`` (e^-1 at ``sqrt(2) L``) while
the synthetic world used the convention above, so a filter told ``curvelet_obs_corr_km = L`` assumed
errors sqrt(2) longer than those drawn with ``obs.corr_length_km = L``. The forcing-perturbation lengths
were re-expressed in the one convention so that the drawn fields stay bit for bit the same: the
experiment's 300 km (old convention) is ``ensemble.corr_length_km = 424.2640687119285`` (``2 * 300 /
sqrt(2)``, whose half is exactly the old kernel standard deviation); runs with
``analysis.curvelet_obs_corr_km > 0`` change (their assumed error correlation is now e^-1 at the given
length, as the synthetic errors are). Later (h-prof), the spectral draw moved to Fourier space: same
covariance, other bits (every run with forcing perturbations or curvelet observation perturbations).
Then (h-rfdraw) the forcing perturbations' draws went to float32 (``dtype``): same covariance up to
float32 round-off, other bits in every run with forcing perturbations (each member still draws from its
own stream only, so the fields still do not depend on the rank layout); the float64 draws (texture
errors, observation-error perturbations) are bit for bit those of before (the normals are written
straight into reused buffers, in the same order, with the same arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import fft as _fft
from scipy import ndimage

__all__ = ["EDGES", "GaussianFieldGenerator", "gaussian_filter_spectrum", "gaussian_random_field"]

EDGES = ("spectral", "image")
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))  # precisions of the draw
_PAD_KERNEL_SDS = 3.0 * np.sqrt(2.0)  # spectral padding in kernel standard deviations (kernel at e^-9)
_TRUNCATE = 3.0  # "image" filter: kernel truncated at this many standard deviations


def gaussian_filter_spectrum(
    shape: tuple[int, int], cell_km: tuple[float, float], length_km: float
) -> np.ndarray:
    """Fourier transfer function of the kernel that turns unit white noise into a unit-variance field.

    The kernel is a Gaussian of standard deviation ``L / 2`` (so the field's correlation is
    ``exp(-r^2 / L^2)``), normalised to unit sum of squares (so every point has variance exactly 1),
    on a periodic ``shape`` grid of ``cell_km`` = (dy, dx) km cells; ``length_km <= 0``: white noise.

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
    s = length_km / 2.0
    dy = np.minimum(np.arange(ny), ny - np.arange(ny)) * cell_km[0]
    dx = np.minimum(np.arange(nx), nx - np.arange(nx)) * cell_km[1]
    kern = np.exp(-0.5 * (dy[:, None] ** 2 + dx[None, :] ** 2) / s**2)
    kern /= np.sqrt(np.sum(kern**2))
    return np.fft.rfft2(kern)


@dataclass
class GaussianFieldGenerator:
    """Zero-mean, unit-variance Gaussian random fields on an image, correlation ``exp(-r^2 / L^2)``.

    Parameters
    ----------
    shape : (ny, nx)
        Image shape.
    cell_km : (dy, dx)
        Cell size, km.
    length_km : float
        Correlation length L, km: the correlation is e^-1 at distance L (0 = white noise).
    periodic_x : bool
        Periodic in x (global longitude): no padding ("spectral") or wrapping edges ("image") in x.
    edges : {"spectral", "image"}
        Edge treatment (module docstring): padded Fourier filter with exact unit variance, or a
        reflecting image filter with each field standardised over the image.
    dtype : numpy.float64 or numpy.float32
        Precision of the fields and, with ``edges="spectral"``, of the whole draw (normals and
        transforms; float32 costs about 0.6 of float64, module docstring). ``"image"`` filters in float64.
    """

    shape: tuple[int, int]
    cell_km: tuple[float, float]
    length_km: float
    periodic_x: bool = False
    edges: str = "spectral"
    dtype: Any = np.float64
    work_shape: tuple[int, int] = field(init=False)
    spectrum: np.ndarray | None = field(init=False, repr=False)
    _bins: _SpectralBins | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.edges not in EDGES:
            raise ValueError(f"GaussianFieldGenerator.edges must be one of {EDGES}, got {self.edges!r}")
        if self.length_km < 0:
            raise ValueError(f"GaussianFieldGenerator.length_km must be >= 0, got {self.length_km}")
        if np.dtype(self.dtype) not in _DTYPES:
            raise ValueError(f"GaussianFieldGenerator.dtype must be float64 or float32, got {self.dtype!r}")
        self.dtype = np.dtype(self.dtype)
        ny, nx = self.shape
        dy, dx = self.cell_km
        pad_y = pad_x = 0
        if self.edges == "spectral" and self.length_km > 0:
            s = self.length_km / 2.0
            pad_y = int(np.ceil(_PAD_KERNEL_SDS * s / dy))
            pad_x = 0 if self.periodic_x else int(np.ceil(_PAD_KERNEL_SDS * s / dx))
        # FFT-friendly lengths (5-smooth): more padding, never less (the x period stays nx when periodic)
        self.work_shape = (
            ny + pad_y if pad_y == 0 else _fft.next_fast_len(ny + pad_y),
            nx + pad_x if pad_x == 0 else _fft.next_fast_len(nx + pad_x),
        )
        self.spectrum = (
            gaussian_filter_spectrum(self.work_shape, (dy, dx), self.length_km)
            if self.edges == "spectral"
            else None
        )
        if self.spectrum is not None and self.length_km > 0:
            self._bins = _SpectralBins.make(self.spectrum, self.work_shape)

    def draw(
        self, rngs: Sequence[np.random.Generator], nfield: int = 1, rows: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Draw ``nfield`` independent fields per generator: (len(rngs), nfield, ny, nx) of ``dtype``.

        Generator ``k`` draws only from ``rngs[k]``: with ``edges="spectral"`` its complex white noise in
        Fourier space (:class:`_SpectralBins`; before, ``nfield`` white-noise images of the work shape
        went through ``rfft2``: same covariance, other bits), else ``nfield`` white-noise images
        (float64 for ``"image"``, then rounded to ``dtype``).

        ``rows = (r0, r1)``: only the image rows ``r0 .. r1 - 1`` (a band of latitudes, e.g. the rows of a
        block of columns), (len(rngs), nfield, r1 - r0, nx), bitwise those rows of the whole draw. The
        spectral draw then transforms only those rows along x (its cost falls with the band; the normals
        and the transform along y are the whole draw's); the others draw whole and cut.
        """
        r0, r1 = (0, self.shape[0]) if rows is None else (int(rows[0]), int(rows[1]))
        if not 0 <= r0 <= r1 <= self.shape[0]:
            raise ValueError(f"rows {rows} outside the image's {self.shape[0]} rows")
        if self._bins is not None:  # spectral: complex noise drawn directly in Fourier space
            return self._bins.draw(rngs, nfield, self.shape, self.dtype, rows=(r0, r1))
        if self.length_km <= 0 and self.edges == "spectral":
            white = np.stack([r.standard_normal((nfield,) + self.work_shape, dtype=self.dtype) for r in rngs])
            return white if rows is None else np.ascontiguousarray(white[..., r0:r1, :])
        white = np.stack([r.standard_normal((nfield,) + self.work_shape) for r in rngs])
        if self.length_km > 0:
            white = self._filter_image(white)
        white = white.astype(self.dtype, copy=False)
        return white if rows is None else np.ascontiguousarray(white[..., r0:r1, :])

    def _filter_image(self, white: np.ndarray) -> np.ndarray:
        """``scipy.ndimage`` Gaussian filter (std L/2) of every image, then standardised over the image."""
        dy, dx = self.cell_km
        s = self.length_km / 2.0
        sigma = (s / dy, s / max(dx, 1e-3 * dy))
        modes = ("reflect", "wrap" if self.periodic_x else "reflect")
        out = np.empty_like(white)
        for idx in np.ndindex(white.shape[:-2]):  # a handful of static fields, not a hot path
            f = ndimage.gaussian_filter(white[idx], sigma=sigma, mode=modes, truncate=_TRUNCATE)
            f -= f.mean()
            sd = f.std()
            out[idx] = f / sd if sd > 0 else f
        return out


_DROP_FRACTION = 1e-16  # spectral draw: at most this fraction of the variance is left out (below round-off)


@dataclass(frozen=True)
class _SpectralBins:
    """White noise drawn directly as the ``rfft2`` coefficients that carry variance, then one inverse FFT.

    For unit white noise ``w`` on the periodic work grid (N = Ny Nx points), ``W = rfft2(w)`` is complex
    Gaussian with ``E|W_k|^2 = N``: independent real and imaginary parts of variance N/2, except the
    self-conjugate bins (ky, kx in {0, Ny/2} x {0, Nx/2}), which are real with variance N, and Hermitian
    pairs ``W(-ky, kx) = conj W(ky, kx)`` in the columns kx = 0 and kx = Nx/2 (even Nx). Drawing ``W``
    this way and multiplying by the spectrum ``S`` gives fields with exactly the covariance of
    ``irfft2(rfft2(w) S)`` (filtered white noise), for one inverse transform instead of two.
    Only the rectangle ``|ky| <= ky_max``, ``kx < kx_end`` is drawn: the bins outside hold at most
    ``_DROP_FRACTION`` of the variance (``sum |S_k|^2 / N = 1``; a Gaussian spectrum falls like
    ``exp(-k^2 ...)``), so the variance changes by less than double-precision round-off (``dropped``).
    The kept rows are two contiguous blocks, ``0 .. nlow - 1`` and ``Ny - (len(rows) - nlow) .. Ny - 1``.

    The draw works in ``dtype`` (float64 or float32: normals, products and both transforms) in buffers
    kept between draws (``_work``: the same shapes are drawn every model step, and fresh multi-MB
    temporaries cost page faults); one draw at a time per instance (not thread-safe).
    """

    shape: tuple[int, int]  # work shape (Ny, Nx)
    rows: np.ndarray  # the kept ky (0..ky_max, then Ny-ky_max..Ny-1)
    nlow: int  # rows[:nlow] = 0..nlow-1, rows[nlow:] = Ny-(len(rows)-nlow)..Ny-1
    kx_end: int  # the kept kx: 0..kx_end-1
    amp: np.ndarray  # (len(rows), kx_end): S sqrt(N / 2)
    conj_dst: tuple[np.ndarray, np.ndarray]  # (ky, kx) of the mirror bins W(-ky) = conj W(ky) ...
    conj_src: np.ndarray  # ... and the ky of their sources
    real_bins: tuple[np.ndarray, np.ndarray]  # (ky, kx) of the self-conjugate bins
    dropped: float  # fraction of the variance left out
    _work: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def make(cls, spectrum: np.ndarray, shape: tuple[int, int]) -> _SpectralBins:
        """The kept rectangle of ``spectrum`` (Ny, Nx // 2 + 1) on the work grid ``shape``."""
        ny, nx = shape
        s = np.real(spectrum)  # the kernel is even: its transform is real up to round-off
        kx = np.arange(s.shape[1])
        selfconj_col = (kx == 0) | ((nx % 2 == 0) & (kx == nx // 2))
        weight = s**2 * np.where(selfconj_col, 1.0, 2.0)[None, :]  # variance of each rfft bin (both halves)
        total, budget = float(weight.sum()), 0.5 * _DROP_FRACTION * float(weight.sum())
        col_tail = np.cumsum(weight.sum(axis=0)[::-1])[::-1]  # weight in kx >= K
        kx_end = int(np.count_nonzero(col_tail > budget))
        ky = np.arange(ny)
        dist = np.minimum(ky, ny - ky)
        dist_w = np.bincount(dist, weights=weight.sum(axis=1))
        dist_tail = np.cumsum(dist_w[::-1])[::-1]
        ky_max = int(np.count_nonzero(dist_tail > budget)) - 1
        rows = ky[dist <= ky_max]
        kept = np.zeros_like(weight, dtype=bool)
        kept[np.ix_(rows, np.arange(kx_end))] = True
        dropped = float(weight[~kept].sum() / total)
        cols = np.flatnonzero(selfconj_col[:kx_end])
        lower = rows[rows > (-rows) % ny]  # mirror rows of the columns kx = 0, Nx/2
        real_rows = rows[rows == (-rows) % ny]
        return cls(
            (ny, nx), rows, int(np.count_nonzero(rows == np.arange(rows.size))), kx_end,
            s[np.ix_(rows, np.arange(kx_end))] * np.sqrt(ny * nx / 2.0),
            (np.repeat(lower, cols.size), np.tile(cols, lower.size)), np.repeat((-lower) % ny, cols.size),
            (np.repeat(real_rows, cols.size), np.tile(cols, real_rows.size)), dropped,
        )

    @property
    def nnormal(self) -> int:
        """Standard normals per field (imaginary parts of real bins and mirror bins drawn and unused)."""
        return 2 * self.rows.size * self.kx_end

    def draw(
        self, rngs: Sequence[np.random.Generator], nfield: int, out: tuple[int, int], dtype: Any = np.float64,
        rows: tuple[int, int] | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Fields (len(rngs), nfield, *out) of ``dtype``, the top-left ``out`` corner of the work grid.

        Generator ``k`` draws only from ``rngs[k]``: nfield x rows x kx_end x 2 standard normals of
        ``dtype`` (float64: the same normals, in the same order, as one ``standard_normal`` call of that
        shape), written straight into the kept rows of the spectrum.

        ``rows = (r0, r1)``: only the rows ``r0 .. r1 - 1`` of that corner, (len(rngs), nfield, r1 - r0,
        out[1]): the inverse transform along x runs row by row (numpy's pocketfft, one 1-D transform per
        row), so these rows are bitwise those of the whole draw, for ``(r1 - r0) / out[0]`` of its cost.
        """
        nx, dtype = self.shape[1], np.dtype(dtype)
        r0, r1 = (0, out[0]) if rows is None else rows
        fields = np.empty((len(rngs), nfield, r1 - r0, nx), dtype=dtype)
        # one generator at a time: a spectrum buffer of one member, not of all (the same bits as the batch:
        # numpy's pocketfft makes every 1-D transform on its own)
        for k, r in enumerate(rngs):
            self._draw_one(r, nfield, dtype, (r0, r1), fields[k : k + 1])
        return fields if out[1] == nx else np.ascontiguousarray(fields[..., : out[1]])

    def _draw_one(self, r: np.random.Generator, nfield: int, dtype: np.dtype, rows: tuple[int, int],
                  out: np.ndarray) -> None:  # fmt: skip
        """The rows ``rows`` of the fields of generator ``r`` into ``out`` (1, nfield, r1 - r0, Nx)."""
        ny, nx = self.shape
        nhigh = self.rows.size - self.nlow
        spec, amp = self._buffers(1, nfield, dtype)
        parts = spec.view(dtype)  # (1, nfield, Ny, 2 kx_end): re, im, re, im, ...
        low, high = parts[:, :, : self.nlow], parts[:, :, ny - nhigh :]
        for f in range(nfield):  # the kept rows, in order: same stream as one (nfield, rows, kx, 2) call
            r.standard_normal(out=low[0, f], dtype=dtype)
            if nhigh:
                r.standard_normal(out=high[0, f], dtype=dtype)
        low *= amp[: self.nlow]  # real and imaginary parts, variance N/2 each
        high *= amp[self.nlow :]
        spec[:, :, self.nlow : ny - nhigh] = 0.0  # the rows left out (the transform below overwrites them)
        rr, rc = self.real_bins
        spec[..., rr, rc] = np.sqrt(2.0) * spec[..., rr, rc].real  # real, variance N
        dr, dc = self.conj_dst
        spec[..., dr, dc] = np.conj(spec[..., self.conj_src, dc])
        np.fft.ifft(spec, axis=-2, out=spec)  # in place; then irfft: 1/Ny 1/Nx, irfft2's 1/N
        np.fft.irfft(spec[:, :, rows[0] : rows[1]], n=nx, axis=-1, out=out)

    def _buffers(self, ngen: int, nfield: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """The spectrum (ngen, nfield, Ny, kx_end) and ``amp`` per re/im part (rows, 2 kx_end), ``dtype``
        (``ngen`` = 1: the draw makes one generator's fields at a time).

        Kept for the next draw of the same shape and precision.
        """
        key = (ngen, nfield, dtype.str)
        if self._work.get("key") != key:
            ctype = np.result_type(dtype, np.complex64)
            self._work.clear()  # one shape at a time: the forcing draws repeat theirs every step
            self._work.update(key=key, spec=np.zeros((ngen, nfield) + (self.shape[0], self.kx_end), ctype),
                              amp=np.repeat(self.amp, 2, axis=1).astype(dtype))  # fmt: skip
        return self._work["spec"], self._work["amp"]


def gaussian_random_field(
    grid: Any, corr_km: float, rng: np.random.Generator, n: int | None = None
) -> np.ndarray:
    """Smooth Gaussian random field(s) on the grid image, standardised to zero mean and unit variance.

    :class:`GaussianFieldGenerator` with ``edges="image"``: correlation ``exp(-r^2 / L^2)``, ``L =
    corr_km`` (e^-1 at ``corr_km``), reflecting at regional edges and wrapping in longitude on a global grid.

    Parameters
    ----------
    grid : Grid
        Anything with ``shape``, ``cell_size_km()`` and ``periodic_lon``.
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
    gen = GaussianFieldGenerator(grid.shape, grid.cell_size_km(), corr_km, grid.periodic_lon, edges="image")
    out = gen.draw([rng], 1 if n is None else n)[0]
    return out[0] if n is None else out
