"""FFT backends of the curvelet transform (private): unitary 2-D FFTs over the last two axes.

``scipy.fft`` is always available; pyFFTW (optional extra, FFTW3) is used when installed and requested
(``backend="auto"`` or ``"pyfftw"``). Both compute the same unitary ("ortho") transforms.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["FFTBackend", "PyFFTW", "ScipyFFT", "make_backend"]


class FFTBackend:
    """Unitary FFTs over the last two axes."""

    name = "abstract"

    def rfft2(self, x: np.ndarray) -> np.ndarray:  # (..., M, N) real -> (..., M, N//2+1)
        raise NotImplementedError

    def irfft2(self, h: np.ndarray, s: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def fft2(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ifft2(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fft2_parts(self, re: np.ndarray, im: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
        """``fft2(re + 1j * im)`` (``im`` None: zero) of flat real parts reshaped to ``shape``."""
        z = np.empty(shape, dtype=np.complex128)
        z.real = re.reshape(shape)
        z.imag = 0.0 if im is None else im.reshape(shape)
        return self.fft2(z)


class ScipyFFT(FFTBackend):
    """``scipy.fft`` (pocketfft) with ``workers`` threads; in-place where the input is a temporary."""

    name = "scipy"

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def rfft2(self, x: np.ndarray) -> np.ndarray:
        return sfft.rfft2(x, norm="ortho", workers=self.workers)

    def irfft2(self, h: np.ndarray, s: tuple[int, int]) -> np.ndarray:
        return sfft.irfft2(h, s=s, norm="ortho", workers=self.workers, overwrite_x=True)

    def fft2(self, z: np.ndarray) -> np.ndarray:
        return sfft.fft2(z, norm="ortho", workers=self.workers, overwrite_x=True)

    def ifft2(self, z: np.ndarray) -> np.ndarray:
        return sfft.ifft2(z, norm="ortho", workers=self.workers, overwrite_x=True)


class PyFFTW(FFTBackend):
    """FFTW3 through pyFFTW builders: one plan per (transform, array shape), kept by this object.

    Plans use ``FFTW_ESTIMATE`` (deterministic plan choice, so every process computes the same bits) on
    FFTW-aligned internal buffers. The returned arrays are those internal buffers: they are overwritten by the
    next call of the same plan, so callers consume them at once (and one backend object must not be used by
    two threads at the same time). A plan depends on the number of transforms in a call, so the transform
    feeds FFTW one image at a time to keep batch results bitwise equal to single-image results.
    """

    name = "pyfftw"

    def __init__(self, workers: int = 1) -> None:
        import pyfftw
        import pyfftw.builders

        self._pyfftw = pyfftw
        self._builders = pyfftw.builders
        self._plans: dict[tuple, object] = {}
        self.workers = workers

    def _plan(self, op: str, shape: tuple[int, ...], dtype, s: tuple[int, int] | None = None):
        key = (op, shape, s)
        plan = self._plans.get(key)
        if plan is None:
            template = self._pyfftw.empty_aligned(shape, dtype=dtype)
            plan = getattr(self._builders, op)(
                template,
                s=s,
                axes=(-2, -1),
                threads=self.workers,
                planner_effort="FFTW_ESTIMATE",
                norm="ortho",
            )
            self._plans[key] = plan
        return plan

    @staticmethod
    def _run(plan, a: np.ndarray) -> np.ndarray:
        # always copy into the plan's own aligned input buffer: passing arrays to FFTW.__call__ may make the
        # plan adopt them (and a c2r transform destroys its input)
        plan.input_array[...] = a
        return plan()  # executes on the internal buffers and applies the "ortho" scaling

    def rfft2(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._plan("rfft2", x.shape, np.float64), x)

    def irfft2(self, h: np.ndarray, s: tuple[int, int]) -> np.ndarray:
        return self._run(self._plan("irfft2", h.shape, np.complex128, s), h)

    def fft2(self, z: np.ndarray) -> np.ndarray:
        return self._run(self._plan("fft2", z.shape, np.complex128), z)

    def ifft2(self, z: np.ndarray) -> np.ndarray:
        return self._run(self._plan("ifft2", z.shape, np.complex128), z)

    def fft2_parts(self, re: np.ndarray, im: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
        plan = self._plan("fft2", tuple(shape), np.complex128)
        buf = plan.input_array
        buf.real = re.reshape(shape)
        buf.imag = 0.0 if im is None else im.reshape(shape)
        return plan()


def make_backend(name: str, workers: int) -> FFTBackend:
    """FFT backend by name: "scipy", "pyfftw" (ImportError if missing) or "auto" (pyfftw if importable)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if name == "scipy":
        return ScipyFFT(workers)
    if name == "pyfftw":
        return PyFFTW(workers)
    if name == "auto":
        try:
            return PyFFTW(workers)
        except ImportError:
            return ScipyFFT(workers)
    raise ValueError(f"backend must be 'auto', 'scipy' or 'pyfftw', got {name!r}")
