"""Exact squared norms of the curvelet frame elements (private).

A complex wedge coefficient is ``(T x)_k = sum_n x(n) g_k(n)`` with spectrum
``g_k^(xi) = L**-0.5 * sum_{p : w_p = xi mod (M, N)} U_p exp(2 pi i k . pos_p / L)`` (``pos_p`` the wrapped
position of support point ``p`` in the ``L1 x L2`` rectangle, ``L = L1 L2``). The real transform stores
``sqrt(2) Re`` and ``sqrt(2) Im``, whose frame elements have squared norms ``||g_k||**2 +- Re sum g_k**2``
with (Parseval)

    ||g_k||**2  = (sum_p U_p**2 + sum_{p != q, w_p = w_q} U_p U_q e^{2 pi i k.(pos_p - pos_q)/L}) / L
    sum g_k**2  = (sum_{w_p = -w_q} U_p U_q e^{2 pi i k.(pos_p + pos_q)/L}) / L

(congruences modulo the image size). Without aliasing (every wavelet-finest transform) only the first sum
survives and all elements of a wedge have the same norm; at a curvelet finest scale the periodised windows
overlap near the Nyquist frequencies and the norms vary (slightly) with position, computed here exactly by
one small inverse FFT per wedge.
"""

from __future__ import annotations

import numpy as np

from landimg.transform._windows import Plan, WedgeGeometry, lowpass_1d

__all__ = ["row_norms_sq"]


def _pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j) with ``a[i] == b[j]``."""
    order = np.argsort(a, kind="stable")
    sa = a[order]
    lo = np.searchsorted(sa, b, side="left")
    hi = np.searchsorted(sa, b, side="right")
    cnt = hi - lo
    j = np.repeat(np.arange(b.size), cnt)
    start = np.repeat(lo, cnt)
    within = np.arange(j.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    i = order[start + within]
    return i, j


def _wedge_norms(g: WedgeGeometry, L1: int, L2: int, M: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """``(||g_k||**2, Re sum g_k**2)`` for every k of one wedge, arrays (L1*L2,)."""
    L = L1 * L2
    u = g.window
    p1, p2 = np.mod(g.w1, L1), np.mod(g.w2, L2)
    key = np.mod(g.w1, M) * N + np.mod(g.w2, N)
    nkey = np.mod(-g.w1, M) * N + np.mod(-g.w2, N)
    # ||g_k||^2
    i, j = _pairs(key, key)
    off = i != j
    i, j = i[off], j[off]
    d1 = np.zeros((L1, L2))
    np.add.at(d1, (np.mod(p1[i] - p1[j], L1), np.mod(p2[i] - p2[j], L2)), u[i] * u[j])
    norm = np.sum(u**2) / L + np.fft.ifft2(d1).real.ravel()
    # sum g_k^2
    i, j = _pairs(key, nkey)
    d2 = np.zeros((L1, L2))
    np.add.at(d2, (np.mod(p1[i] + p1[j], L1), np.mod(p2[i] + p2[j], L2)), u[i] * u[j])
    s2 = np.fft.ifft2(d2).real.ravel()
    return norm, s2


def row_norms_sq(plan: Plan) -> np.ndarray:
    """Squared norms of all frame elements of ``plan``'s real transform, float64 (ncoef,)."""
    M, N = plan.shape
    out = np.empty(plan.ncoef)
    for grp in plan.groups:
        size = grp.L1 * grp.L2
        for i, g in enumerate(grp.geoms):
            norm, s2 = _wedge_norms(g, grp.L1, grp.L2, M, N)
            if grp.kind == "real":
                out[grp.re_start : grp.re_start + size] = 0.5 * (norm + s2)
            else:
                out[grp.re_start + i * size : grp.re_start + (i + 1) * size] = norm + s2
                out[grp.im_start + i * size : grp.im_start + (i + 1) * size] = norm - s2
    if plan.wavelet_window is not None:
        f1 = np.fft.fftfreq(M, 1.0 / M)[:, None]
        f2 = np.fft.fftfreq(N, 1.0 / N)[None, :]
        inner = lowpass_1d(f1 / (M / 6.0)) * lowpass_1d(f2 / (N / 6.0))
        out[plan.wavelet_start : plan.wavelet_start + M * N] = np.sum(1.0 - inner**2) / (M * N)
    return out
