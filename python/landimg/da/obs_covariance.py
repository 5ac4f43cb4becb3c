"""The declared observation error as a covariance between columns (``R``), for the filters that use it in
observation space (the LETKF's local ``R``, the inflation estimate's ``1^T R 1``).

    R_ij = white_i^2 delta_ij + corr_i corr_j exp(-r_ij^2 / L^2)

(:class:`landimg.da.obs_error.ObsError`). ``r_ij`` is the distance between the two columns' cells in the
image plane: rows ``dy`` km apart, image columns ``dx`` km apart (``Geometry.cell_km``), wrapping in
longitude on a periodic grid. That is the metric of the generator that draws the correlated error
(:class:`landimg.random_fields.GaussianFieldGenerator` on ``geometry.shape`` with ``geometry.cell_km``,
:meth:`ObsError.draw`), so the modelled ``R`` is the covariance of the draws; it is not the great-circle
distance of the localization (the two differ where the cells' east-west size differs from ``dx``).

Everything is per column of the arrays given (``context.columns`` of a block): the positions come from the
geometry's image index of those columns, so nothing assumes that every column is present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from landimg.da.obs_error import ObsError

__all__ = ["ObsCovariance", "NUGGET"]

#: Relative floor of the white variance in the local blocks, ``max(white^2, NUGGET corr^2)``: a purely
#: correlated error (white fraction 0) has a Gaussian-kernel ``R`` that is numerically singular for
#: observations much closer than ``L``; the floor keeps the local solves well posed (no effect when the
#: white fraction exceeds 1e-6).
NUGGET = 1e-6
_KERNEL_CUT = math.sqrt(-math.log(1e-17))  # exp(-k^2) < 1e-17 beyond this many L: the sums drop it


@dataclass(frozen=True)
class ObsCovariance:
    """``R`` of an :class:`ObsError` between the columns of one analysis (local indices ``0..nc-1``).

    Attributes
    ----------
    white_var : ndarray (nc,)
        Variance of the white part, (m3/m3)^2.
    corr_std : ndarray (nc,)
        Standard deviation of the correlated part, m3/m3.
    length_km : float
        Correlation length ``L`` (``exp(-r^2 / L^2)``), km; 0 for a white error.
    iy, ix : ndarray of int (nc,)
        Image row and column of every column's cell.
    cell_km : (float, float)
        Cell size (north-south ``dy``, east-west ``dx``), km.
    nx : int
        Image width, cells (the period in x when ``periodic``).
    periodic : bool
        The image wraps in longitude.
    """

    white_var: np.ndarray
    corr_std: np.ndarray
    length_km: float
    iy: np.ndarray
    ix: np.ndarray
    cell_km: tuple[float, float]
    nx: int
    periodic: bool

    @classmethod
    def of(cls, error: ObsError, geometry, columns: np.ndarray | None = None) -> ObsCovariance:
        """The covariance of ``error`` (per column of ``columns``, global indices into ``geometry``; None:
        every column) between those columns."""
        cols = np.arange(geometry.ncol) if columns is None else np.asarray(columns)
        nc = cols.size
        white = np.broadcast_to(np.asarray(error.white_std, dtype=np.float64), (nc,))
        corr = np.broadcast_to(np.asarray(error.corr_std, dtype=np.float64), (nc,))
        flat = geometry.index[cols]
        ny_, nx_ = geometry.shape
        return cls(
            white**2,
            np.array(corr),
            float(error.corr_length_km),
            flat // nx_,
            flat % nx_,
            (float(geometry.cell_km[0]), float(geometry.cell_km[1])),
            int(nx_),
            bool(geometry.periodic_lon),
        )

    @property
    def correlated(self) -> bool:
        """True when ``R`` has off-diagonal entries."""
        return bool(self.length_km > 0 and np.any(self.corr_std > 0))

    def _dist2(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Squared image-plane distance (km^2) between the cells of columns ``a`` and ``b`` (broadcast:
        the positions are gathered on each index array's own shape, the differences broadcast)."""
        dy, dx = self.cell_km
        ry = np.asarray(self.iy[a] * dy - self.iy[b] * dy)
        rx = np.asarray(self.ix[a] * dx - self.ix[b] * dx)
        np.abs(rx, out=rx)  # in place: the batches' (nc, w, w) arrays are the LETKF's largest work arrays
        if self.periodic:
            np.minimum(rx, self.nx * dx - rx, out=rx)
        ry *= ry
        rx *= rx
        ry += rx
        return ry

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``R_ab`` for index arrays ``a``, ``b`` (local column indices, broadcast against each other)."""
        a, b = np.asarray(a), np.asarray(b)
        out = np.where(a == b, self.white_var[a], 0.0)
        if self.correlated:
            out = out + self.corr_std[a] * self.corr_std[b] * np.exp(-self._dist2(a, b) / self.length_km**2)
        return out

    def local_blocks(self, idx: np.ndarray, use: np.ndarray) -> np.ndarray:
        """The local ``R_O`` of every column: (nc, w, w) from its local observations ``idx`` (nc, w) (local
        column indices) where ``use`` (nc, w); rows and columns of unused entries are those of the identity
        (decoupled: they carry no weight). The white variance is floored at ``NUGGET corr^2``."""
        w = idx.shape[1]
        diag = np.arange(w)
        if self.correlated:
            c = np.where(use, self.corr_std[idx], 0.0)
            r = self._dist2(idx[:, :, None], idx[:, None, :])
            r *= -1.0 / self.length_km**2
            np.exp(r, out=r)
            r *= c[:, :, None]
            r *= c[:, None, :]
        else:
            r = np.zeros(idx.shape + (w,))
        wv = self.white_var[idx]
        r[:, diag, diag] += np.where(use, np.maximum(wv, NUGGET * self.corr_std[idx] ** 2), 1.0)
        return r

    def contributions(self, valid: np.ndarray) -> np.ndarray:
        """Each usable observation's row sum of ``R`` over the usable observations, (nc,) (0 elsewhere):
        ``white_i^2 + c_i sum_j c_j k(r_ij)``; their sum is ``1^T R 1``.

        The correlated part filters one image of ``c`` over the observations' bounding rows (all image
        columns) by the separable kernel, along y then x, cut where it falls below 1e-17
        (``scipy.ndimage.correlate1d``, zeros beyond the box, wrapping in x on a periodic grid): each
        value is computed over the same kernel window whatever the box, so it does not depend on which
        other columns are given as long as every observation within the kernel's reach (about 6 L) is.
        """
        valid = np.asarray(valid, dtype=bool)
        out = np.where(valid, self.white_var, 0.0)
        if not self.correlated or not valid.any():
            return out
        from scipy import ndimage

        iy, ix, c = self.iy[valid], self.ix[valid], self.corr_std[valid]
        y0, y1 = int(iy.min()), int(iy.max()) + 1
        img = np.zeros((y1 - y0, self.nx))
        img[iy - y0, ix] = c
        for axis, cell in ((0, self.cell_km[0]), (1, self.cell_km[1])):
            half = int(np.ceil(_KERNEL_CUT * self.length_km / cell))
            wrap = axis == 1 and self.periodic
            offsets = np.arange(-half, half + 1)
            if wrap and 2 * half + 1 > self.nx:  # every offset once, at its nearest image (as `between`)
                offsets = np.arange(self.nx) - self.nx // 2  # correlate1d's origin: the middle element
            k = np.exp(-((np.abs(offsets) * cell) ** 2) / self.length_km**2)
            img = ndimage.correlate1d(img, k, axis=axis, mode="wrap" if wrap else "constant", cval=0.0)
        out[valid] += c * img[iy - y0, ix]
        return out

    def summed(self, valid: np.ndarray) -> float:
        """``1^T R 1`` over the columns where ``valid`` (nc,) bool: the sum of all entries of ``R`` between
        the usable observations (the bias part of ``tr R`` that de-biased inflation removes): the exactly
        rounded sum (``math.fsum``) of :meth:`contributions`, the same bits for any set of columns holding
        the same observations."""
        return math.fsum(self.contributions(valid).tolist())
