"""The frame's directions as Fourier multipliers (private; see :meth:`Curvelet.direction_spectra`).

A *direction* is one wedge of one scale with both real halves of the real transform (``sqrt(2) Re`` and
``sqrt(2) Im`` of the same complex wedge), the coarsest lowpass, or the finest wavelet highpass. With
wavelets at the finest scale no window reaches beyond the Nyquist frequencies, the wrapping is one-to-one
on every support, and the projection on a direction is a Fourier multiplier:

    C_d^T C_d = F^* diag(S_d) F,    S_d(w) = U_d(w)^2 + U_d(-w)^2   (complex wedge d, its mirror included)

(``U_0^2`` for the symmetric coarsest window, the wavelet window squared for the finest band); the
``S_d`` sum to 1 at every frequency (tight frame). Hence for coefficient weights ``v`` constant on every
direction, ``C^T diag(v) C = F^* diag(sum_d v_d S_d) F``: one FFT pair instead of a curvelet transform pair,
and the energy of a real image on a direction is ``sum_f S_d(f) c_f |X_f|^2 / (M N)`` over the rfft2 half
spectrum ``X`` (``c_f`` = 2 where the half spectrum stands for a frequency and its mirror, else 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from landimg.transform._windows import Plan, _half_index

__all__ = ["DirectionSpectra", "direction_spectra"]


@dataclass(frozen=True)
class DirectionSpectra:
    """The squared windows of the frame's directions on the rfft2 half spectrum.

    Attributes
    ----------
    table : scipy.sparse.csr_array, (ndir, M * (N // 2 + 1))
        ``S_d(f)`` of every direction ``d`` at every half-spectrum entry ``f`` (row-major ``(M, N//2+1)``).
    counts : ndarray (M, N // 2 + 1)
        ``c_f``: how many full-grid frequencies each half-spectrum entry stands for (1 or 2).
    direction : ndarray of int (ncoef,)
        Direction index of every coefficient.
    shape : (int, int)
        The transform's image shape ``(M, N)``.
    """

    table: scipy.sparse.csr_array
    counts: np.ndarray
    direction: np.ndarray
    shape: tuple[int, int]

    @property
    def ndir(self) -> int:
        """Number of directions."""
        return int(self.table.shape[0])


def _direction_of_wedges(plan: Plan) -> np.ndarray:
    """Direction index of every wedge of the wedge table (coefficient order)."""
    base, nxt = {}, 0
    out = []
    for s, a, _, _, _, _ in plan.wedge_table:
        n = plan.nangles[s]
        if s not in base:
            base[s] = nxt
            nxt += 1 if n == 1 else n // 2
        out.append(base[s] + (0 if n == 1 else a % (n // 2)))
    return np.asarray(out, dtype=np.int64)


def direction_spectra(plan: Plan) -> DirectionSpectra | None:
    """:class:`DirectionSpectra` of a plan with wavelets at the finest scale (None for curvelets there,
    whose periodised windows overlap near Nyquist: not a Fourier multiplier)."""
    if plan.finest != "wavelets":
        return None
    M, N = plan.shape
    nh = N // 2 + 1
    rows, cols, vals = [], [], []
    d = 0
    for grp in plan.groups:
        for g in grp.geoms:
            u2 = g.window**2
            idx_pos, in_pos = _half_index(g.w1, g.w2, M, N)
            rows.append(np.full(int(in_pos.sum()), d))
            cols.append(idx_pos[in_pos])
            vals.append(u2[in_pos])
            if grp.kind == "complex":  # the mirror wedge (the other half of the real pair)
                idx_neg, in_neg = _half_index(-g.w1, -g.w2, M, N)
                rows.append(np.full(int(in_neg.sum()), d))
                cols.append(idx_neg[in_neg])
                vals.append(u2[in_neg])
            d += 1
    ww = plan.wavelet_window
    rows.append(np.full(M * nh, d))
    cols.append(np.arange(M * nh))
    vals.append((ww**2).ravel())
    d += 1
    r, c, v = (np.concatenate(x) for x in (rows, cols, vals))
    keep = v != 0.0
    table = scipy.sparse.csr_array((v[keep], (r[keep], c[keep])), shape=(d, M * nh))
    table.sum_duplicates()
    counts = np.full((M, nh), 2.0)
    counts[:, 0] = 1.0
    if N % 2 == 0:
        counts[:, -1] = 1.0
    wedge_dir = _direction_of_wedges(plan)
    if wedge_dir.max() + 1 != d:  # pragma: no cover - the group and wedge orders agree by construction
        raise RuntimeError("direction table and wedge table disagree")
    direction = np.empty(plan.ncoef, dtype=np.int64)
    for w, (_, _, _, start, l1, l2) in enumerate(plan.wedge_table):
        direction[start : start + l1 * l2] = wedge_dir[w]
    for a in (counts, direction):
        a.setflags(write=False)
    return DirectionSpectra(table, counts, direction, (M, N))
