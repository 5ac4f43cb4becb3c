"""Make docs/figures/curvelet_overview.png: what the curvelet transform sees in a soil-moisture-like image.

Run from the repository root:

    .venv/bin/python docs/make_curvelet_figure.py

Panels: a synthetic soil-moisture field (smooth climatology + correlated anomalies + a sharp rain-band
edge + a dry river-valley line), the coefficients of a few curvelet wedges (each wedge is a small
image of one scale and orientation), the reconstructions from the coarsest scales only and from the
finer scales only (their sum is the field, exactly), and a reconstruction keeping only the largest 5 %
of the coefficients.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from landimg.transform.curvelet import Curvelet


def synthetic_soil_moisture(shape: tuple[int, int], seed: int = 3) -> np.ndarray:
    """Volumetric soil moisture (m3/m3) with large-scale structure, anomalies and sharp features."""
    M, N = shape
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:M, 0:N] / np.array([M, N])[:, None, None]
    base = 0.22 + 0.08 * np.sin(2 * np.pi * (j - 0.2)) * np.cos(np.pi * (i - 0.5)) + 0.05 * (1 - i)
    # correlated anomalies: Gaussian random field with a power-law spectrum (slope -3)
    k1 = np.fft.fftfreq(M)[:, None] * M / N
    k2 = np.fft.rfftfreq(N)[None, :]
    k = np.hypot(k1, k2)
    amp = np.where(k > 0, (k + 1.0 / N) ** -1.5, 0.0)
    spec = amp * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    anom = np.fft.irfft2(spec, s=shape)
    anom *= 0.04 / anom.std()
    # a rain band: wet behind a curved front, sharp edge
    front = 0.55 * N + 0.25 * N * np.sin(2.5 * np.pi * i) - 0.6 * N * (i - 0.5)
    rain = 0.10 / (1 + np.exp(-(j * N - front) / 1.5)) * np.exp(-(((j * N - front - 25) / 30) ** 2))
    # a dry line (river valley / soil boundary), slanted
    d = np.abs((i * M - 0.3 * M) - 0.35 * (j * N - 0.2 * N)) / np.hypot(1, 0.35)
    valley = -0.06 * np.exp(-((d / 1.2) ** 2)) * (j > 0.15) * (j < 0.7)
    return np.clip(base + anom + rain + valley, 0.02, 0.48)


def main() -> None:
    shape = (180, 360)
    x = synthetic_soil_moisture(shape)
    C = Curvelet(shape, finest="wavelets")
    c = C.forward(x)
    sc = C.scale_of_coef()

    def keep_scales(scales):
        return C.inverse(np.where(np.isin(sc, scales), c, 0.0))

    coarse = keep_scales([0, 1])
    fine = keep_scales(list(range(2, C.nscales)))
    thr = np.quantile(np.abs(c[sc > 0]), 0.95)
    sparse = C.inverse(np.where((np.abs(c) >= thr) | (sc == 0), c, 0.0))

    fig = plt.figure(figsize=(13, 9.2), constrained_layout=True)
    gs = fig.add_gridspec(3, 4)
    kw = {"origin": "lower", "cmap": "YlGnBu", "vmin": 0.02, "vmax": 0.48}

    def show(ax, img, title, **extra):
        im = ax.imshow(img, **{**kw, **extra})
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        return im

    im = show(fig.add_subplot(gs[0, :2]), x, f"synthetic soil moisture {shape[0]} x {shape[1]} (m3/m3)")
    fig.colorbar(im, ax=fig.axes[-1], shrink=0.8)
    show(
        fig.add_subplot(gs[0, 2:]),
        sparse,
        f"largest 5% of curvelet coefficients (+ coarsest): rel. error "
        f"{np.linalg.norm(sparse - x) / np.linalg.norm(x - x.mean()):.2f} of the anomaly",
    )

    # a few wedges, scales 2 and 3: the orientation of the dry line's normal (wave vector (1, -0.35) in
    # (row, column) pixels: 109 deg) and the perpendicular one (19 deg)
    def nearest(s, target):
        idx = [k for k, w in enumerate(C.wedges) if w.scale == s and w.angle < C.nangles[s] // 2]
        return min(idx, key=lambda k: abs(np.angle(np.exp(2j * (C.wedges[k].orientation - target)))))

    normal = np.arctan2(1.0, -0.35)
    picks = [nearest(s, t) for s in (2, 3) for t in (normal, normal - np.pi / 2)]
    for n, k in enumerate(picks):
        w = C.wedges[k]
        ax = fig.add_subplot(gs[1, n])
        img = c[w.slice].reshape(w.shape)
        lim = np.abs(img).max()
        ax.imshow(img, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_title(
            f"scale {w.scale}, angle {w.angle}: {w.shape[0]}x{w.shape[1]} coefs\n"
            f"wave-vector direction {np.degrees(w.orientation):.0f} deg",
            fontsize=9,
        )
        ax.set_xticks([])
        ax.set_yticks([])

    show(fig.add_subplot(gs[2, 0:2]), coarse, "reconstruction from scales 0-1 (large-scale pattern)")
    ax = fig.add_subplot(gs[2, 2:4])
    lim = np.abs(fine).max()
    im = ax.imshow(fine, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(
        f"scales 2-{C.nscales - 1} (edges, lines, small anomalies); sum of the two = field "
        f"(error {np.abs(coarse + fine - x).max():.0e})",
        fontsize=10,
    )
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(
        f"landimg.Curvelet{shape}: {C.nscales} scales, angles {C.nangles}, "
        f"{C.ncoef} coefficients ({C.redundancy:.2f}x)",
        fontsize=12,
    )
    out = pathlib.Path(__file__).parent / "figures" / "curvelet_overview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
