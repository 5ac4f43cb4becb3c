"""Windows, wedge supports and wrapping index arrays of the discrete curvelet transform (private).

Construction (fast discrete curvelet transform via wrapping, Candes, Demanet, Donoho & Ying 2006), written
from the published mathematics:

* Frequencies are integers ``w = (w1, w2)`` of the unitary 2-D DFT of an ``M x N`` image, normalised to
  ``x = (w1 / M, w2 / N)`` cycles per pixel, so that all the rectangles below are squares in ``x``.
* Radial (scale) windows: a Meyer-type 1-D lowpass ``phi(t)`` equal to 1 for ``|t| <= 1`` and 0 for
  ``|t| >= 2`` with ``phi(t)**2 + phi(3 - t)**2 == 1`` on ``[1, 2]``. The separable lowpass of level ``s`` is
  ``P_s(w) = phi(w1 / M_s) * phi(w2 / N_s)`` with ``M_s = M / 3 / 2**(J - 1 - s)`` (so ``M_{J-1} = M / 3``).
  Band ``s`` (``1 <= s``) is ``W_s = sqrt(P_s**2 - P_{s-1}**2)``; scale 0 is ``P_0``.
  With wavelets at the finest scale, ``W_{J-1} = sqrt(1 - P_{J-2}**2)`` on the ordinary frequency grid.
  With curvelets at the finest scale, ``P_{J-1}`` reaches beyond the Nyquist frequency and is evaluated on an
  extended grid; its periodisation is a partition of unity because ``phi(t)**2 + phi(3 - t)**2 == 1``.
* Angular windows: a pseudo-angle ``theta`` in ``[0, 8)`` is the arc length along the boundary of the square
  ``max(|x1|, |x2|) = 1`` (equispaced slopes on each side, C1 across the diagonals). ``n`` wedges have centres
  ``theta_l = (l + 1/2) h`` with ``h = 8 / n`` and windows ``V_l = v((theta - theta_l) / h)`` where
  ``v(u) = cos(pi/2 nu(|u|))`` on ``[-1, 1]``; their squares sum to one.
* Wedge window ``U_{s,l} = W_s V_l``; it is *wrapped* into an ``L1 x L2`` rectangle just large enough for the
  wrapping to be one-to-one on the window's support, then inverse-FFTed.
* Real transform: wedge ``l`` and its mirror ``l + n/2`` (``theta + 4``, i.e. frequency ``-w``) hold conjugate
  information for a real image; only ``l < n/2`` is computed and stored as ``sqrt(2) Re`` and ``sqrt(2) Im``.

Everything here runs once per (shape, parameters) and is cached by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.sparse

__all__ = ["Plan", "WedgeGeometry", "angular_window", "build_plan", "lowpass_1d", "meyer_nu"]


def meyer_nu(x: np.ndarray) -> np.ndarray:
    """Meyer auxiliary polynomial ``nu`` on [0, 1] (clipped outside) with ``nu(x) + nu(1 - x) == 1``."""
    x = np.clip(x, 0.0, 1.0)
    return x**4 * (35.0 - 84.0 * x + 70.0 * x**2 - 20.0 * x**3)


def lowpass_1d(t: np.ndarray) -> np.ndarray:
    """1-D lowpass ``phi(|t|)``: 1 for ``|t| <= 1``, 0 for ``|t| >= 2``, ``phi(t)**2 + phi(3-t)**2 = 1``."""
    return np.cos(0.5 * np.pi * meyer_nu(np.abs(t) - 1.0))


def angular_window(u: np.ndarray) -> np.ndarray:
    """Angular window ``v(u)`` supported on ``|u| < 1`` with ``v(u)**2 + v(u - 1)**2 == 1`` on [0, 1]."""
    out = np.cos(0.5 * np.pi * meyer_nu(np.abs(u)))
    out[np.abs(u) >= 1.0] = 0.0
    return out


def pseudo_angle(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Arc length in [0, 8) along the square ``max(|x1|, |x2|) = 1`` of the direction ``(x1, x2)``.

    Starts at the corner ``(1, -1)``, runs along the side ``x1 = 1`` (0..2), then ``x2 = 1`` (2..4),
    ``x1 = -1`` (4..6) and ``x2 = -1`` (6..8). The origin gets 0 (it is never inside a band).
    """
    r = np.maximum(np.abs(x1), np.abs(x2))
    r = np.where(r == 0.0, 1.0, r)
    a, b = x1 / r, x2 / r
    theta = np.where(
        (a >= 1.0) & (b < 1.0),
        1.0 + b,
        np.where(
            b >= 1.0,
            3.0 - a,
            np.where(a <= -1.0, 5.0 - b, 7.0 + a),
        ),
    )
    # the corner (1, -1) itself: 7 + 1 = 8 -> 0
    return np.mod(theta, 8.0)


def _side_point(theta: float) -> tuple[float, float]:
    """Point (x1, x2) on the unit square's boundary at pseudo-angle ``theta``."""
    theta = theta % 8.0
    if theta < 2.0:
        return 1.0, theta - 1.0
    if theta < 4.0:
        return 3.0 - theta, 1.0
    if theta < 6.0:
        return -1.0, 5.0 - theta
    return theta - 7.0, -1.0


@dataclass(frozen=True)
class WedgeGeometry:
    """Support of one (complex or real) wedge window on the frequency plane.

    Attributes
    ----------
    w1, w2 : ndarray of int64, shape (npts,)
        Integer frequencies of the support (possibly beyond Nyquist on the extended finest grid).
    window : ndarray of float64, shape (npts,)
        Window value ``U(w) > 0`` there.
    """

    w1: np.ndarray
    w2: np.ndarray
    window: np.ndarray


@dataclass(frozen=True)
class Group:
    """A batch of ``nw`` wedges of one scale sharing one wrapping rectangle ``(L1, L2)``.

    ``kind`` is ``"complex"`` (stored as sqrt(2) Re / sqrt(2) Im blocks) or ``"real"`` (coarsest scale).
    The group's wrapped spectra occupy ``[off, off + nw*L1*L2)`` of the concatenated complex work vector.
    """

    kind: str
    scale: int
    nw: int
    L1: int
    L2: int
    off: int
    re_start: int  # coefficient offset of the Re block (or the real block)
    im_start: int  # coefficient offset of the Im block (-1 for real groups)
    geoms: tuple[WedgeGeometry, ...]  # per wedge, for row norms

    @property
    def size(self) -> int:
        return self.nw * self.L1 * self.L2


@dataclass(frozen=True)
class Plan:
    """Precomputed transform plan for one (shape, nscales, nangles_coarse, finest)."""

    shape: tuple[int, int]
    nscales: int
    nangles: tuple[int, ...]  # per scale (1 for the coarsest and a wavelet finest scale)
    finest: str
    groups: tuple[Group, ...]
    gather: scipy.sparse.csr_array  # (2P, 2K): half spectrum (interleaved re/im) -> windowed wrapped wedges
    scatter: scipy.sparse.csr_array  # (2K, 2P): wedge spectra -> Hermitian-symmetrised half spectrum
    wavelet_window: np.ndarray | None  # (M, N//2+1) finest highpass on the half spectrum, or None
    wavelet_start: int
    ncoef: int
    # wedge table: (scale, angle, orientation, start, L1, L2) in coefficient order
    wedge_table: tuple[tuple[int, int, float, int, int, int], ...]


def _frequencies(r: int) -> np.ndarray:
    return np.arange(-r, r + 1, dtype=np.int64)


def _half_index(w1: np.ndarray, w2: np.ndarray, M: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat index into the rfft2 half spectrum (M, N//2+1) of frequency w, and whether it is stored (w2 in half)."""
    nh = N // 2 + 1
    a = np.mod(w1, M)
    b = np.mod(w2, N)
    return a * nh + b, b < nh


def _group_triplets(
    geoms: list[WedgeGeometry], L1: int, L2: int, off: int, M: int, N: int, weight: float
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Sparse triplets of the forward gather and the adjoint scatter of wedges sharing ``L1 x L2``.

    Complex vectors are seen as interleaved real vectors (``view(float64)``): entry ``2 i`` is the real and
    ``2 i + 1`` the imaginary part of complex entry ``i``. The half spectrum (``rfft2`` layout, ``K``
    entries) stores frequency ``w`` when ``w2 mod N <= N // 2`` and otherwise ``conj`` of ``-w``.

    Forward: wrapped[off + pos(w)] = weight * U(w) * F(w). Adjoint (real part of the synthesis, written as
    the Hermitian symmetrisation ``(G(w) + conj G(-w)) / 2`` restricted to the stored half):
    H[w] += weight * U(w) / 2 * Y[pos(w)] and H[-w] += weight * U(w) / 2 * conj(Y[pos(w)]).
    """
    size = L1 * L2
    fr, fc, fd, sr, sc, sd = [], [], [], [], [], []
    for i, g in enumerate(geoms):
        p = off + i * size + np.mod(g.w1, L1) * L2 + np.mod(g.w2, L2)
        if np.unique(p).size != p.size:  # pragma: no cover - guarded by the rectangle choice
            raise RuntimeError("wrapping is not one-to-one; rectangle too small")
        idx_pos, in_pos = _half_index(g.w1, g.w2, M, N)
        idx_neg, in_neg = _half_index(-g.w1, -g.w2, M, N)
        u = weight * g.window
        src = np.where(in_pos, idx_pos, idx_neg)
        sign = np.where(in_pos, 1.0, -1.0)  # conjugate when read from -w
        fr += [2 * p, 2 * p + 1]
        fc += [2 * src, 2 * src + 1]
        fd += [u, sign * u]
        half = 0.5 * u
        for sel, tgt, sgn in ((in_pos, idx_pos, 1.0), (in_neg, idx_neg, -1.0)):
            sr += [2 * tgt[sel], 2 * tgt[sel] + 1]
            sc += [2 * p[sel], 2 * p[sel] + 1]
            sd += [half[sel], sgn * half[sel]]
    cat = np.concatenate
    return (cat(fr), cat(fc), cat(fd)), (cat(sr), cat(sc), cat(sd))


def _rectangle(geoms: list[WedgeGeometry], radial_axis: int) -> tuple[int, int]:
    """Smallest ``(L1, L2)`` for which wrapping every wedge of ``geoms`` is one-to-one.

    Along the radial axis the rectangle covers the whole extent of the support; along the other axis it
    covers the largest extent of any line of constant radial frequency. Wrapping is then injective: two
    support points congruent modulo the rectangle share the radial frequency, hence the line, and differ by
    less than the rectangle's width on it.
    """
    lr, lt = 1, 1
    for g in geoms:
        rad, tan = (g.w1, g.w2) if radial_axis == 0 else (g.w2, g.w1)
        lr = max(lr, int(rad.max() - rad.min() + 1))
        order = np.lexsort((tan, rad))
        r_sorted, t_sorted = rad[order], tan[order]
        first = np.r_[True, r_sorted[1:] != r_sorted[:-1]]
        last = np.r_[r_sorted[1:] != r_sorted[:-1], True]
        lt = max(lt, int((t_sorted[last] - t_sorted[first]).max() + 1))
    return (lr, lt) if radial_axis == 0 else (lt, lr)


def check_parameters(shape: tuple[int, int], nscales: int, nangles_coarse: int, finest: str) -> None:
    """Raise ValueError for unusable transform parameters."""
    M, N = shape
    if finest not in ("wavelets", "curvelets"):
        raise ValueError(f"finest must be 'wavelets' or 'curvelets', got {finest!r}")
    if nangles_coarse < 8 or nangles_coarse % 4:
        raise ValueError(f"nangles_coarse must be a multiple of 4 and at least 8, got {nangles_coarse}")
    if nscales < 2:
        raise ValueError(f"nscales must be at least 2, got {nscales}")
    coarse = min(M, N) / 3.0 / 2.0 ** (nscales - 1)
    if coarse < 1.0:
        raise ValueError(
            f"too many scales (nscales={nscales}) for an image of shape {shape}: the coarsest lowpass "
            f"would be {coarse:.2f} < 1 frequency samples wide; need min(shape) >= 3 * 2**(nscales-1) = "
            f"{3 * 2 ** (nscales - 1)}"
        )


def nangles_per_scale(nscales: int, nangles_coarse: int, finest: str) -> tuple[int, ...]:
    """Angles per scale: 1 at the coarsest, ``nangles_coarse`` at scale 1, doubling every other scale."""
    # band s (1 <= s < nscales) gets nangles_coarse * 2**floor(s/2): 16, 32, 32, 64, 64, ...
    out = [1] + [nangles_coarse * 2 ** (s // 2) for s in range(1, nscales)]
    if finest == "wavelets":
        out[-1] = 1
    return tuple(out)


@dataclass
class _PlanBuilder:
    """Mutable accumulator of :func:`build_plan`: groups, sparse triplets, offsets and the wedge table."""

    M: int
    N: int
    groups: list[Group] = field(default_factory=list)
    gather_t: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    scatter_t: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    work: int = 0  # complex work-vector offset
    wedge_table: list[tuple[int, int, float, int, int, int]] = field(default_factory=list)
    offset: int = 0  # coefficient offset

    def add_triplets(self, geoms: list[WedgeGeometry], L1: int, L2: int, weight: float) -> None:
        ft, st = _group_triplets(geoms, L1, L2, self.work, self.M, self.N, weight=weight)
        self.gather_t.append(ft)
        self.scatter_t.append(st)


def _add_coarsest(b: _PlanBuilder, Ms0: float, Ns0: float) -> None:
    """Coarsest scale: the real lowpass ``P_0`` as one real group."""
    r1, r2 = int(np.ceil(2 * Ms0)) - 1, int(np.ceil(2 * Ns0)) - 1
    w1, w2 = np.meshgrid(_frequencies(r1), _frequencies(r2), indexing="ij")
    p0 = lowpass_1d(w1 / Ms0) * lowpass_1d(w2 / Ns0)
    keep = p0 > 0
    g0 = WedgeGeometry(w1[keep], w2[keep], p0[keep])
    L1, L2 = 2 * r1 + 1, 2 * r2 + 1
    b.add_triplets([g0], L1, L2, weight=1.0)
    b.groups.append(Group("real", 0, 1, L1, L2, b.work, re_start=b.offset, im_start=-1, geoms=(g0,)))
    b.work += L1 * L2
    b.wedge_table.append((0, 0, 0.0, b.offset, L1, L2))
    b.offset += L1 * L2


def _band_sides(
    M: int, N: int, n: int, Ms: tuple[float, float], Ns: tuple[float, float]
) -> list[list[WedgeGeometry]]:
    """Wedge geometries of one curvelet band with ``n`` angles, split into the two sides of the square.

    ``Ms``, ``Ns`` are ``(M_{s-1}, M_s)`` and ``(N_{s-1}, N_s)``.
    """
    nq = n // 4
    h = 8.0 / n
    r1, r2 = int(np.ceil(2 * Ms[1])) - 1, int(np.ceil(2 * Ns[1])) - 1
    w1, w2 = np.meshgrid(_frequencies(r1), _frequencies(r2), indexing="ij")
    outer = lowpass_1d(w1 / Ms[1]) * lowpass_1d(w2 / Ns[1])
    inner = lowpass_1d(w1 / Ms[0]) * lowpass_1d(w2 / Ns[0])
    band = np.sqrt(np.clip(outer**2 - inner**2, 0.0, None))
    inband = band > 0
    bw1, bw2, bval = w1[inband], w2[inband], band[inband]
    theta = pseudo_angle(bw1 / M, bw2 / N)
    sides: list[list[WedgeGeometry]] = [[], []]
    for l in range(n // 2):
        centre = (l + 0.5) * h
        d = np.mod(theta - centre + 4.0, 8.0) - 4.0
        v = angular_window(d / h)
        sel = v > 0
        sides[l // nq].append(WedgeGeometry(bw1[sel], bw2[sel], bval[sel] * v[sel]))
    return sides


def _add_band(b: _PlanBuilder, s: int, n: int, sides: list[list[WedgeGeometry]]) -> None:
    """Curvelet band ``s`` with ``n`` angles: two complex groups (one per side) and its wedge-table rows."""
    nq = n // 4
    h = 8.0 / n
    # smallest one-to-one rectangles, enlarged to FFT-friendly (11-smooth) sizes
    rect = [
        tuple(scipy.fft.next_fast_len(v) for v in _rectangle(sides[0], radial_axis=0)),
        tuple(scipy.fft.next_fast_len(v) for v in _rectangle(sides[1], radial_axis=1)),
    ]
    total = sum(nq * r[0] * r[1] for r in rect)
    re_start = b.offset
    im_start = b.offset + total
    for side in range(2):
        L1, L2 = rect[side]
        b.add_triplets(sides[side], L1, L2, weight=np.sqrt(2.0))
        b.groups.append(
            Group(
                "complex",
                s,
                nq,
                L1,
                L2,
                b.work,
                re_start=re_start,
                im_start=im_start,
                geoms=tuple(sides[side]),
            )
        )
        b.work += nq * L1 * L2
        re_start += nq * L1 * L2
        im_start += nq * L1 * L2
    # wedge table in coefficient order: Re halves (angles 0..n/2-1) then Im halves (n/2..n-1)
    for part in range(2):
        start = b.offset + part * total
        for l in range(n // 2):
            L1, L2 = rect[l // nq]
            x1c, x2c = _side_point((l + 0.5) * h)
            orient = float(np.mod(np.arctan2(x1c, x2c), np.pi))
            b.wedge_table.append((s, l + part * (n // 2), orient, start, L1, L2))
            start += L1 * L2
    b.offset += 2 * total


def _add_wavelets(b: _PlanBuilder, J: int, Ms_inner: float, Ns_inner: float) -> np.ndarray:
    """Finest scale as wavelets: the highpass ``sqrt(1 - P_{J-2}**2)`` on the half spectrum (M, N//2+1)."""
    M, N = b.M, b.N
    nh = N // 2 + 1
    f1 = np.fft.fftfreq(M, 1.0 / M)[:, None]
    f2 = np.arange(nh, dtype=float)[None, :]
    inner = lowpass_1d(f1 / Ms_inner) * lowpass_1d(f2 / Ns_inner)
    wavelet_window = np.sqrt(np.clip(1.0 - inner**2, 0.0, None))
    b.wedge_table.append((J - 1, 0, 0.0, b.offset, M, N))
    b.offset += M * N
    return wavelet_window


def _csr(triplets: list[tuple[np.ndarray, ...]], shape: tuple[int, int]) -> scipy.sparse.csr_array:
    """Sparse matrix of (row, column, value) triplets, zeros dropped, duplicates summed, indices sorted."""
    r, c, d = (np.concatenate([t[i] for t in triplets]) for i in range(3))
    keep = d != 0.0
    mat = scipy.sparse.csr_array((d[keep], (r[keep], c[keep])), shape=shape)
    mat.sum_duplicates()
    mat.sort_indices()
    return mat


def build_plan(shape: tuple[int, int], nscales: int, nangles_coarse: int, finest: str) -> Plan:
    """Compute all windows, rectangles and index arrays of the transform (see module docstring)."""
    check_parameters(shape, nscales, nangles_coarse, finest)
    M, N = shape
    J = nscales
    nangles = nangles_per_scale(J, nangles_coarse, finest)
    Ms = [M / 3.0 / 2.0 ** (J - 1 - s) for s in range(J)]
    Ns = [N / 3.0 / 2.0 ** (J - 1 - s) for s in range(J)]

    b = _PlanBuilder(M, N)
    _add_coarsest(b, Ms[0], Ns[0])
    last_curvelet = J - 1 if finest == "curvelets" else J - 2
    for s in range(1, last_curvelet + 1):
        sides = _band_sides(M, N, nangles[s], (Ms[s - 1], Ms[s]), (Ns[s - 1], Ns[s]))
        _add_band(b, s, nangles[s], sides)
    wavelet_window = None
    wavelet_start = -1
    if finest == "wavelets":
        wavelet_start = b.offset
        wavelet_window = _add_wavelets(b, J, Ms[J - 2], Ns[J - 2])

    K = M * (N // 2 + 1)
    # the plan is cached and shared by every Curvelet of these parameters: freeze its arrays
    frozen = [a for grp in b.groups for g in grp.geoms for a in (g.w1, g.w2, g.window)]
    if wavelet_window is not None:
        frozen.append(wavelet_window)
    for a in frozen:
        a.setflags(write=False)

    return Plan(
        shape=(M, N),
        nscales=J,
        nangles=nangles,
        finest=finest,
        groups=tuple(b.groups),
        gather=_csr(b.gather_t, (2 * b.work, 2 * K)),
        scatter=_csr(b.scatter_t, (2 * K, 2 * b.work)),
        wavelet_window=wavelet_window,
        wavelet_start=wavelet_start,
        ncoef=b.offset,
        wedge_table=tuple(b.wedge_table),
    )
