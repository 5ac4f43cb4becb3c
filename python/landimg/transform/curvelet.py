"""Real-valued fast discrete curvelet transform via wrapping (a tight frame for images of any size).

Implements the construction of Candes, Demanet, Donoho & Ying (2006), "Fast discrete curvelet transforms",
from the published mathematics (see :mod:`landimg.transform._windows` and ``docs/curvelet.md``):
unitary FFT of the image, smooth radial x angular windows whose squares sum to one, each wedge wrapped into
a small rectangle and inverse-FFTed. The transform is real (mirror wedges combined into ``sqrt(2) Re`` and
``sqrt(2) Im``), a tight frame (``inverse == adjoint``, ``inverse(forward(x)) == x``), batched over all
leading axes.

Example
-------
>>> C = Curvelet((180, 360))                 # 5 scales, 16 angles at scale 1, wavelets at the finest
>>> c = C.forward(x)                         # (..., 180, 360) -> (..., C.ncoef)
>>> x2 = C.inverse(c)                        # exact: allclose(x, x2) to ~1e-15
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from landimg.transform._fft import FFTBackend, make_backend
from landimg.transform._windows import Plan, build_plan, check_parameters

__all__ = ["Curvelet", "Wedge", "default_nscales"]


@dataclass(frozen=True)
class Wedge:
    """One real wedge of coefficients.

    Attributes
    ----------
    scale : int
        Scale index, 0 = coarsest, ``nscales - 1`` = finest.
    angle : int
        Angle index within the scale, ``0 .. nangles[scale] - 1``. For the real transform, angles
        ``l < n/2`` hold ``sqrt(2) Re`` and angle ``l + n/2`` holds ``sqrt(2) Im`` of the same complex wedge.
    orientation : float
        Direction of the wedge's central wave vector ``(k_row, k_col)`` in cycles per pixel,
        ``atan2(k_row, k_col)`` folded into ``[0, pi)`` (radians). 0: the wedge's oscillations run along
        the column index (x, longitude; crests are north-south lines); pi/2: along the row index (y,
        latitude; crests east-west). 0 for the coarsest scale and a wavelet finest scale.
    slice : slice
        Location of the wedge in the coefficient axis.
    shape : tuple of int
        Shape ``(L1, L2)`` of the wedge's coefficient array (``c[..., slice].reshape(..., L1, L2)``).
    """

    scale: int
    angle: int
    orientation: float
    slice: slice
    shape: tuple[int, int]


def default_nscales(shape: tuple[int, int]) -> int:
    """Default number of scales ``ceil(log2(min(M, N)) - 3)`` (5 for 180 x 360), at least 2."""
    return max(2, math.ceil(math.log2(min(shape)) - 3))


@functools.lru_cache(maxsize=8)
def _cached_plan(shape: tuple[int, int], nscales: int, nangles_coarse: int, finest: str) -> Plan:
    return build_plan(shape, nscales, nangles_coarse, finest)


class Curvelet:
    """Real fast discrete curvelet transform (wrapping), a tight frame on ``M x N`` images.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(M, N)`` (rows, columns); any sizes, odd, prime and non-square included.
    nscales : int, optional
        Number of scales including the coarsest; default ``ceil(log2(min(M, N)) - 3)``.
        Requires ``min(M, N) >= 3 * 2**(nscales - 1)``.
    nangles_coarse : int
        Number of angles at scale 1 (second coarsest); multiple of 4, at least 8. Angles double every
        other scale going finer (16, 32, 32, 64, ...).
    finest : {"wavelets", "curvelets"}
        Finest scale as one non-directional highpass band (redundancy ~2.9) or as curvelets (~7.4).
    workers : int
        Threads for the FFTs (default 1).
    backend : {"auto", "scipy", "pyfftw"}
        FFT library; "auto" uses pyFFTW when installed (faster), else ``scipy.fft``.

    Attributes
    ----------
    shape, nscales, nangles (angles per scale), finest, ncoef, wedges (list of :class:`Wedge`).

    Notes
    -----
    Results are always new arrays (or ``out``), never FFT work buffers. The window plan is cached and shared
    read-only between instances; the FFT backend (with pyFFTW, its plans and aligned buffers) belongs to the
    instance, so an instance must not be used by two threads at once (build one per thread: construction is
    cheap once the plan is cached).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        nscales: int | None = None,
        nangles_coarse: int = 16,
        finest: str = "wavelets",
        *,
        workers: int = 1,
        backend: str = "auto",
    ) -> None:
        try:
            M, N = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be a pair of ints (M, N), got {shape!r}") from None
        if M < 1 or N < 1:
            raise ValueError(f"shape must be positive, got {shape!r}")
        if nscales is None:
            if min(M, N) < 6:
                raise ValueError(f"image of shape {(M, N)} is too small for a curvelet transform (min 6 x 6)")
            nscales = default_nscales((M, N))
        nscales = int(nscales)
        check_parameters((M, N), nscales, int(nangles_coarse), finest)
        self._plan = _cached_plan((M, N), nscales, int(nangles_coarse), finest)
        self.shape: tuple[int, int] = (M, N)
        self.nscales: int = nscales
        self.nangles_coarse: int = int(nangles_coarse)
        self.finest: str = finest
        self.nangles: tuple[int, ...] = self._plan.nangles
        self.ncoef: int = self._plan.ncoef
        self.workers = int(workers)
        self._fft: FFTBackend = make_backend(backend, self.workers)
        self.backend: str = self._fft.name
        self.wedges: list[Wedge] = [
            Wedge(scale=s, angle=a, orientation=o, slice=slice(st, st + l1 * l2), shape=(l1, l2))
            for (s, a, o, st, l1, l2) in self._plan.wedge_table
        ]

    # ------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"Curvelet(shape={self.shape}, nscales={self.nscales}, nangles_coarse={self.nangles_coarse}, "
            f"finest={self.finest!r}; ncoef={self.ncoef}, redundancy={self.redundancy:.3f}, "
            f"backend={self.backend!r})"
        )

    @property
    def redundancy(self) -> float:
        """Number of (real) coefficients per pixel."""
        return self.ncoef / (self.shape[0] * self.shape[1])

    def _check(self, a: np.ndarray, trailing: tuple[int, ...], name: str) -> np.ndarray:
        a = np.asarray(a)
        if np.iscomplexobj(a):
            raise ValueError(f"{name} must be real-valued, got dtype {a.dtype}")
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype}")
        if a.ndim < len(trailing) or a.shape[a.ndim - len(trailing) :] != trailing:
            raise ValueError(f"{name} must have trailing shape {trailing}, got {a.shape}")
        a = np.ascontiguousarray(a, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values (fill gaps first)")
        return a

    # ------------------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Curvelet coefficients of real images.

        Parameters
        ----------
        x : array_like, shape (..., M, N)
            Real finite images (any leading batch axes, e.g. ensemble members).
        out : ndarray of float64, shape (..., ncoef), optional
            C-contiguous array to write the result into (saves allocating it).

        Returns
        -------
        ndarray of float64, shape (..., ncoef)
        """
        M, N = self.shape
        x = self._check(x, (M, N), "x")
        lead = x.shape[:-2]
        out = self._out(out, (*lead, self.ncoef))
        xb = x.reshape(-1, M, N)
        ob = out.reshape(-1, self.ncoef)
        for b in range(xb.shape[0]):  # one image at a time: cache friendly, bitwise batch-invariant
            self._forward_one(xb[b], ob[b])
        return out

    def inverse(self, c: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Images from coefficients: the exact inverse and the adjoint of :meth:`forward`.

        Parameters
        ----------
        c : array_like, shape (..., ncoef)
        out : ndarray of float64, shape (..., M, N), optional
            C-contiguous array to write the result into.

        Returns
        -------
        ndarray of float64, shape (..., M, N)
        """
        M, N = self.shape
        c = self._check(c, (self.ncoef,), "c")
        lead = c.shape[:-1]
        out = self._out(out, (*lead, M, N))
        cb = c.reshape(-1, self.ncoef)
        ob = out.reshape(-1, M, N)
        for b in range(cb.shape[0]):
            ob[b] = self._inverse_one(cb[b])
        return out

    @staticmethod
    def _out(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
        if out is None:
            return np.empty(shape)
        if out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float64 array of shape {shape}")
        return out

    def _forward_one(self, x: np.ndarray, out: np.ndarray) -> None:
        """Forward transform of one image x (M, N) into out (ncoef,)."""
        M, N = self.shape
        plan = self._plan
        fft = self._fft
        fh = fft.rfft2(x)  # (M, N//2+1) unitary half spectrum
        # window, conjugate-extend and wrap every wedge at once (one sparse gather, sqrt(2) folded in)
        work = (plan.gather @ fh.view(np.float64).ravel()).view(np.complex128)
        for g in plan.groups:
            n = g.size
            y = fft.ifft2(work[g.off : g.off + n].reshape(g.nw, g.L1, g.L2)).reshape(n)
            out[g.re_start : g.re_start + n] = y.real
            if g.kind == "complex":
                out[g.im_start : g.im_start + n] = y.imag
        if plan.wavelet_window is not None:
            fh *= plan.wavelet_window
            out[plan.wavelet_start : plan.wavelet_start + M * N] = fft.irfft2(fh, (M, N)).reshape(M * N)

    def _inverse_one(self, c: np.ndarray) -> np.ndarray:
        """Image (M, N) from coefficients c (ncoef,)."""
        M, N = self.shape
        plan = self._plan
        fft = self._fft
        work = np.empty(plan.gather.shape[0] // 2, dtype=np.complex128)
        for g in plan.groups:
            n = g.size
            im = c[g.im_start : g.im_start + n] if g.kind == "complex" else None
            work[g.off : g.off + n] = fft.fft2_parts(
                c[g.re_start : g.re_start + n], im, (g.nw, g.L1, g.L2)
            ).reshape(n)
        # unwrap, window and Hermitian-symmetrise into the half spectrum (one sparse scatter)
        h = (plan.scatter @ work.view(np.float64)).view(np.complex128).reshape(M, N // 2 + 1)
        if plan.wavelet_window is not None:
            cw = c[plan.wavelet_start : plan.wavelet_start + M * N].reshape(M, N)
            hw = fft.rfft2(cw)
            hw *= plan.wavelet_window
            h += hw
        return fft.irfft2(h, (M, N))

    adjoint = inverse

    # ------------------------------------------------------------------------------------------------
    def scale_of_coef(self) -> np.ndarray:
        """Scale index of every coefficient, int array (ncoef,)."""
        return self._per_coef(lambda i, w: w.scale)

    def wedge_of_coef(self) -> np.ndarray:
        """Index into :attr:`wedges` of every coefficient, int array (ncoef,)."""
        return self._per_coef(lambda i, w: i)

    def _per_coef(self, key) -> np.ndarray:
        out = np.empty(self.ncoef, dtype=np.int64)
        for i, w in enumerate(self.wedges):
            out[w.slice] = key(i, w)
        return out

    def row_norms_sq(self) -> np.ndarray:
        """Squared norm of each coefficient's frame element (analysis row), float64 (ncoef,).

        For white noise of standard deviation sigma in every pixel, coefficient ``k`` has variance
        ``sigma**2 * row_norms_sq()[k]``. Computed exactly from the windows (see docs/curvelet.md); the sum
        over all coefficients equals ``M * N`` (the trace of the identity ``C^T C``).
        """
        return _cached_norms(self._plan_key())

    def direction_spectra(self):
        """The directions of the frame as Fourier multipliers, or None (``finest="curvelets"``).

        A direction is one wedge of one scale with both real halves (``sqrt(2) Re`` and ``sqrt(2) Im``), the
        coarsest lowpass or the finest wavelet band; with wavelets at the finest scale the projection on a
        direction is the Fourier multiplier of its squared window, so weights constant per direction
        make ``C^T diag(v) C`` one FFT pair (:class:`landimg.transform._spectra.DirectionSpectra`).
        """
        return _cached_spectra(self._plan_key())

    def _plan_key(self) -> tuple:
        return (self.shape, self.nscales, self.nangles_coarse, self.finest)


@functools.lru_cache(maxsize=8)
def _cached_norms(key: tuple) -> np.ndarray:
    from landimg.transform._norms import row_norms_sq

    out = row_norms_sq(_cached_plan(*key))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def _cached_spectra(key: tuple):
    from landimg.transform._spectra import direction_spectra

    return direction_spectra(_cached_plan(*key))
