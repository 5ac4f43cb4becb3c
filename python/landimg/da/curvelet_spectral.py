"""The curvelet-diagonal covariances as Fourier multipliers (issue 18 item 6: the cost of the analysis).

With weights constant on every direction of the frame (one wedge of one scale, both real halves; the
pooling ``"wedge"``, ``"scale"`` or ``"global"``), ``C^T diag(v) C = F^* diag(m) F`` with
``m = sum_d v_d S_d`` (:meth:`landimg.transform.curvelet.Curvelet.direction_spectra`): every product with
``B`` (or with a diagonal-form gain) in the conjugate-gradient solve is one real FFT pair of the transform
domain instead of a curvelet transform pair (several times cheaper: no wedge gathers, no small inverse
FFTs, no redundancy), and the energies of anomaly images per direction (their pooled variances) come from
one FFT each. Equal to the transform-pair route to round-off (tested).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

__all__ = ["FFTWPair", "PixelProduct", "SpectralFrame", "fftw_plans", "filter_images", "rfft2_images", "spectral_frame"]


class SpectralFrame:
    """Direction spectra of a transform, and products with direction-constant weights.

    Parameters
    ----------
    spectra : DirectionSpectra
        :meth:`landimg.transform.curvelet.Curvelet.direction_spectra` of the transform.
    """

    def __init__(self, spectra: Any) -> None:
        self.spectra = spectra
        self.shape = tuple(int(s) for s in spectra.shape)
        self.direction = spectra.direction
        self.ndir = int(spectra.ndir)
        self._npix = float(self.shape[0] * self.shape[1])
        self._first = np.full(self.ndir, -1, dtype=np.int64)  # a coefficient of every direction
        idx = np.arange(self.direction.size - 1, -1, -1)
        self._first[self.direction[idx]] = idx
        # sum_k |row_k|^2 over each direction: the energy of unit white noise
        self.white_energy = self.spectra.table @ self.spectra.counts.ravel()
        self.ncoef_per_direction = np.bincount(self.direction, minlength=self.ndir).astype(np.float64)

    def per_direction(self, values: np.ndarray, rtol: float = 1e-12) -> np.ndarray | None:
        """The per-coefficient ``values`` (ncoef,) as one value per direction (ndir,), or None when they
        are not constant on every direction (relative ``rtol``)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != self.direction.shape:
            return None
        per = values[self._first]
        dev = np.abs(values - per[self.direction])
        return per if np.all(dev <= rtol * np.maximum(np.abs(per[self.direction]), 1e-300)) else None

    def multiplier(self, per_direction: np.ndarray) -> np.ndarray:
        """``m = sum_d v_d S_d`` on the rfft2 half spectrum, (M, N // 2 + 1)."""
        return (self.spectra.table.T @ np.asarray(per_direction, dtype=np.float64)).reshape(self.spectra.counts.shape)

    def apply(self, images: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
        """``F^* diag(m) F x`` of every image, (k, M, N) -> (k, M, N) (``C^T diag(v) C x``), float64; with a
        float32 ``multiplier`` the FFTs run in single precision (relative error ~1e-7, about 1.5x faster)."""
        return filter_images(images, multiplier)

    def stationary_energy(self, spectrum: np.ndarray) -> np.ndarray:
        """Expected energy per direction of a stationary unit-variance field of power spectrum ``spectrum``
        (M, N // 2 + 1) (the DFT of its periodic covariance; 1 everywhere for white noise), (ndir,)."""
        return self.spectra.table @ (self.spectra.counts * spectrum).ravel()

    def energies(self, images: np.ndarray) -> np.ndarray:
        """Energy of every image on every direction, ``sum_{k in d} (C x)_k^2``, (k, ndir)."""
        f = scipy.fft.rfft2(images, axes=(-2, -1))
        p = (f.real**2 + f.imag**2) * self.spectra.counts
        return (self.spectra.table @ p.reshape(p.shape[0], -1).T).T / self._npix

    def multipliers(self, per_direction: np.ndarray) -> np.ndarray:
        """:meth:`multiplier` of every row of ``per_direction`` (k, ndir): (k, M, N // 2 + 1)."""
        per = np.atleast_2d(np.asarray(per_direction, dtype=np.float64))
        return (self.spectra.table.T @ per.T).T.reshape((per.shape[0],) + self.spectra.counts.shape)

    def spectra_cross_energies(self, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
        """``sum_{k in d} (C a)_k (C b)_k`` from the rfft2 half spectra (unnormalised ``scipy.fft.rfft2``)
        of images ``a`` (k, M, N // 2 + 1) and of one image ``b`` (M, N // 2 + 1): (k, ndir), float64 (the
        products in the spectra's precision, the sums over each direction in float64)."""
        p = fa.real * fb.real
        p += fa.imag * fb.imag
        p *= self.spectra.counts
        return (self.spectra.table @ p.reshape(p.shape[0], -1).T).T / self._npix

    def cross_energies(self, a: Iterable[np.ndarray], b: np.ndarray) -> np.ndarray:
        """``sum_{k in d} (C a)_k (C b)_k`` of image pairs ``a``, ``b`` (k, M, N), or of every image of ``a``
        with the one image ``b`` (M, N): (k, ndir).

        One pair at a time (work arrays of one image, not of k; ``b``'s spectrum once when it is one image):
        the same sums, in the same order, as the batched products. ``a`` may be any iterable of (M, N)
        images (e.g. a generator making them one at a time: then only one is held).
        """
        b = np.asarray(b)
        fb_all = scipy.fft.rfft2(b) if b.ndim == 2 else None
        rows = []
        for j, aj in enumerate(a):
            fa = scipy.fft.rfft2(aj)
            fb = scipy.fft.rfft2(b[j]) if fb_all is None else fb_all
            p = (fa.real * fb.real + fa.imag * fb.imag) * self.spectra.counts
            rows.append(self.spectra.table @ p.ravel())
        return np.array(rows, dtype=np.float64).reshape(len(rows), self.ndir) / self._npix


_PLANS: dict[tuple, Any] = {}


@dataclass
class FFTWPair:
    """An FFTW plan pair of one real image and what its input image holds: ``fwd`` (rfft2), ``inv``
    (irfft2), ``written`` = the pixels the input holds values at (an index array), a top-left corner
    ``(ny, nx)``, or None (a whole image). Every writer of ``fwd.input_array`` records it in ``written``, so
    that a writer of another pixel set knows to zero the image first."""

    fwd: Any
    inv: Any
    written: Any = None

    def zero_but(self, pixels: np.ndarray) -> np.ndarray:
        """The flat input image, zero everywhere but (possibly) at ``pixels`` (an index array kept by the
        caller: identity decides whether the image was last written at these pixels)."""
        src = self.fwd.input_array.reshape(-1)
        if self.written is not pixels:  # another pixel set (or image) was written last
            src[...] = 0
            self.written = pixels
        return src

    def zero_off_corner(self, ny: int, nx: int) -> np.ndarray:
        """The input image's top-left ``(ny, nx)`` corner, zero elsewhere (a whole image: no zeroing)."""
        if (ny, nx) == self.fwd.input_array.shape:
            self.written = None
        elif not (isinstance(self.written, tuple) and self.written == (ny, nx)):
            self.fwd.input_array[...] = 0
            self.written = (ny, nx)
        return self.fwd.input_array[:ny, :nx]


def fftw_plans(shape: tuple[int, int], dtype: Any) -> FFTWPair | None:
    """The FFTW plans (:class:`FFTWPair`) of one real image of ``shape`` in ``dtype`` (float32 or float64),
    kept per (shape, dtype) like scipy.fft's own plan cache, or None without pyFFTW.

    ``FFTW_ESTIMATE`` (a deterministic plan: the same bits in every process), one thread, the conventions of
    ``scipy.fft`` (forward unscaled, inverse scaled by ``1 / (M N)``); one image per call, so that a batch
    gives the same bits as its images one by one. The plans compute into their own buffers: callers copy
    the input in and consume the output before the next call. About 2x faster than ``scipy.fft`` on the
    transform domains of the analysis (192 x 360, single precision).
    """
    dt = np.dtype(dtype)
    key = (int(shape[0]), int(shape[1]), dt.str)
    if key in _PLANS:
        return _PLANS[key]
    try:
        import pyfftw
        import pyfftw.builders
    except ImportError:
        _PLANS[key] = None
        return None
    shape = key[:2]
    real = pyfftw.empty_aligned(shape, dtype=dt)
    cplx = pyfftw.empty_aligned((shape[0], shape[1] // 2 + 1), dtype=np.result_type(dt, np.complex64))
    fwd = pyfftw.builders.rfft2(real, threads=1, planner_effort="FFTW_ESTIMATE")
    inv = pyfftw.builders.irfft2(cplx, s=shape, threads=1, planner_effort="FFTW_ESTIMATE")
    if len(_PLANS) >= 16:
        _PLANS.pop(next(iter(_PLANS)))
    pair = _PLANS[key] = FFTWPair(fwd, inv)
    return pair


def filter_images(images: np.ndarray, multiplier: np.ndarray, fft_shape: tuple[int, int] | None = None) -> np.ndarray:
    """``F^* diag(m) F x`` of every image ``x`` (k, ny, nx), zero-padded at the top left of the FFT grid
    ``fft_shape`` (default: the images' shape) and cropped back: (k, ny, nx) float64. The FFTs in the
    precision of ``multiplier`` (M, N // 2 + 1) (float32 or float64); FFTW one image at a time when pyFFTW is
    importable (:func:`fftw_plans`), else ``scipy.fft`` (zero-padding by its ``s``)."""
    images = np.asarray(images)
    ny, nx = images.shape[-2:]
    shape = (int(ny), int(nx)) if fft_shape is None else (int(fft_shape[0]), int(fft_shape[1]))
    dtype = np.float32 if multiplier.dtype == np.float32 else np.float64
    plans = fftw_plans(shape, dtype)
    if plans is None:
        f = scipy.fft.rfft2(np.asarray(images, dtype=dtype), s=shape, axes=(-2, -1))
        f *= multiplier
        return scipy.fft.irfft2(f, s=shape, axes=(-2, -1))[..., :ny, :nx].astype(np.float64, copy=False)
    fwd, inv = plans.fwd, plans.inv
    flat = images.reshape((-1, ny, nx))
    out = np.empty(flat.shape)
    corner = plans.zero_off_corner(int(ny), int(nx))
    for i in range(flat.shape[0]):
        corner[...] = flat[i]
        np.multiply(fwd(), multiplier, out=inv.input_array)
        out[i] = inv()[:ny, :nx]
    return out.reshape(images.shape)


def rfft2_images(images: np.ndarray) -> np.ndarray:
    """``scipy.fft.rfft2`` of every image (k, M, N) (FFTW one image at a time when available), (k, M, N // 2 + 1)."""
    plans = fftw_plans(images.shape[-2:], images.dtype)
    if plans is None:
        return scipy.fft.rfft2(images, axes=(-2, -1))
    fwd, plans.written = plans.fwd, None
    out = np.empty(images.shape[:-1] + (images.shape[-1] // 2 + 1,), dtype=fwd.output_array.dtype)
    for i in range(images.shape[0]):
        fwd.input_array[...] = images[i]
        out[i] = fwd()
    return out


class PixelProduct:
    """``z -> (F^* diag(m) F P^T z)[P]`` for a fixed set of pixels ``P`` of a periodic grid: values at the
    pixels (k, n) are written into a zero image (kept between calls: only the pixels are ever written), go
    through one real FFT pair with the multiplier ``m``, and are read back at the same pixels.

    The same numbers as scattering into fresh zero images of the multiplier's precision and
    ``scipy.fft.rfft2`` / ``irfft2`` (a float32 ``m``: single-precision FFTs, relative error ~1e-7).

    Parameters
    ----------
    shape : (int, int)
        The FFT grid (M, N).
    pixels : ndarray of int (n,)
        Flat (row-major) indices of the pixels in that grid.
    multiplier : ndarray (M, N // 2 + 1)
        ``m`` on the rfft2 half spectrum; its dtype (float32 or float64) sets the precision.
    """

    def __init__(self, shape: tuple[int, int], pixels: np.ndarray, multiplier: np.ndarray) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.pixels = np.asarray(pixels, dtype=np.intp)
        self.multiplier = multiplier
        self.dtype = np.float32 if multiplier.dtype == np.float32 else np.float64
        self._buf = np.zeros((0, self.shape[0] * self.shape[1]), dtype=self.dtype)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """The product of every row of ``z`` (k, n), float64 (k, n)."""
        k = z.shape[0]
        plans = fftw_plans(self.shape, self.dtype)
        if plans is not None:  # FFTW, one image at a time (batch-invariant: the same bits on any ranks)
            fwd, inv = plans.fwd, plans.inv
            src = plans.zero_but(self.pixels)  # the plan's input image, zero off these pixels
            out = np.empty(z.shape)
            for i in range(k):
                src[self.pixels] = z[i]
                np.multiply(fwd(), self.multiplier, out=inv.input_array)  # the r2c keeps its input
                out[i] = inv().reshape(-1)[self.pixels]
            return out
        if self._buf.shape[0] < k:
            self._buf = np.zeros((k, self._buf.shape[1]), dtype=self.dtype)
        buf = self._buf[:k]
        buf[:, self.pixels] = z
        f = scipy.fft.rfft2(buf.reshape((k,) + self.shape), axes=(-2, -1))
        f *= self.multiplier
        out = scipy.fft.irfft2(f, s=self.shape, axes=(-2, -1)).reshape(k, -1)[:, self.pixels]
        return out.astype(np.float64, copy=False)


_FRAMES: dict[int, SpectralFrame] = {}  # by id of the (cached, long-lived) direction spectra


def spectral_frame(transform: Any) -> SpectralFrame | None:
    """The :class:`SpectralFrame` of a transform with direction spectra (a curvelet transform with wavelets
    at the finest scale), else None (the analysis then uses transform pairs)."""
    get = getattr(transform, "direction_spectra", None)
    spectra = get() if callable(get) else None
    if spectra is None:
        return None
    frame = _FRAMES.get(id(spectra))
    if frame is None or frame.spectra is not spectra:
        if len(_FRAMES) >= 8:
            _FRAMES.pop(next(iter(_FRAMES)))
        frame = _FRAMES[id(spectra)] = SpectralFrame(spectra)
    return frame
