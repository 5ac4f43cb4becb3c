"""Speed of landimg.Curvelet (forward + inverse) against the UDCT package `curvelets` and the FFT floor.

Run (single-threaded, from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python bench/curvelet_speed.py

Times are best-of-N *CPU* times (``time.process_time``) of a single-threaded process, so that other jobs on a
shared machine disturb them less than wall-clock times. Prints, per image size, milliseconds per image for one
forward + inverse pair:
  floor      one scipy.fft rfft2 + irfft2 pair on the same image (the cheapest possible "transform")
  ours/scipy landimg.Curvelet with the scipy.fft backend (default number of scales, 16 angles, wavelets finest)
  ours/fftw  the same with the pyFFTW backend (if installed)
  udct       curvelets.numpy.UDCT (Nguyen & Chauris 2010) with the same number of scales, on the image padded
             (mirror) to the next size divisible by 2**(nscales-1) so that it reconstructs exactly; its
             relative reconstruction error when run directly on the unpadded size is reported too.
Single images and batches of 32 images (per image: batch time / 32); UDCT has no batch mode (single only).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.fft as sfft
from landimg.transform.curvelet import Curvelet


def _best(fn, repeat: int) -> float:
    fn()  # warm-up (plans, caches)
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def _floor(x: np.ndarray) -> None:
    sfft.irfft2(sfft.rfft2(x, norm="ortho", workers=1), s=x.shape[-2:], norm="ortho", workers=1)


def _udct(shape, nscales, x, repeat, wedges, finest):
    try:
        from curvelets.numpy import UDCT
    except ImportError:
        return None
    mode = "wavelet" if finest == "wavelets" else "curvelet"
    q = 2 ** (nscales - 1)
    padded = tuple(int(np.ceil(n / q) * q) for n in shape)
    xp = np.pad(x, [(0, p - n) for p, n in zip(padded, shape, strict=True)], mode="symmetric")
    U = UDCT(padded, num_scales=nscales, wedges_per_direction=wedges, high_frequency_mode=mode)
    t = _best(lambda: U.backward(U.forward(xp)), repeat)
    err_pad = np.abs(U.backward(U.forward(xp))[: shape[0], : shape[1]] - x).max() / np.abs(x).max()
    U0 = UDCT(shape, num_scales=nscales, wedges_per_direction=wedges, high_frequency_mode=mode)
    err_raw = np.abs(U0.backward(U0.forward(x)) - x).max() / np.abs(x).max()
    ncoef = 2 * U.vect(U.forward(xp)).size  # complex numbers -> real numbers
    return t, err_pad, err_raw, padded, ncoef


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="150x360,512x512,600x1440")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--udct-wedges", type=int, default=3, help="UDCT wedges_per_direction (3, 6, 12)")
    ap.add_argument("--finest", default="wavelets", choices=["wavelets", "curvelets"])
    args = ap.parse_args()
    backends = ["scipy"]
    try:
        import pyfftw  # noqa: F401

        backends.append("pyfftw")
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    print(
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, FFT workers=1; finest={args.finest}"
    )
    rows = []
    for spec in args.sizes.split(","):
        shape = tuple(int(v) for v in spec.split("x"))
        x = rng.standard_normal(shape)
        xb = rng.standard_normal((args.batch, *shape))
        res = {"floor": _best(lambda x=x: _floor(x), args.repeat)}
        res["floor_b"] = _best(lambda xb=xb: _floor(xb), max(2, args.repeat // 2)) / args.batch
        ns = None
        for be in backends:
            C = Curvelet(shape, finest=args.finest, backend=be)
            ns = C.nscales
            c = C.forward(x)
            res[be] = _best(lambda C=C, x=x: C.inverse(C.forward(x)), args.repeat)
            res[be + "_b"] = (
                _best(lambda C=C, xb=xb: C.inverse(C.forward(xb)), max(2, args.repeat // 2)) / args.batch
            )
            res["err"] = np.abs(C.inverse(c) - x).max() / np.abs(x).max()
            res["ncoef"] = C.ncoef
        res["udct"] = _udct(shape, ns, x, max(2, args.repeat // 2), args.udct_wedges, args.finest)
        rows.append((shape, ns, res))
        u = res["udct"]
        print(
            f"\n{shape[0]} x {shape[1]} ({ns} scales): ncoef {res['ncoef']} ({res['ncoef'] / x.size:.2f}x), "
            f"rel. reconstruction error {res['err']:.1e}"
        )
        print(
            f"  floor rfft2+irfft2     single {1e3 * res['floor']:8.2f} ms   batched {1e3 * res['floor_b']:8.2f} ms/image"
        )
        for be in backends:
            print(
                f"  landimg ({be:6s})       single {1e3 * res[be]:8.2f} ms   batched {1e3 * res[be + '_b']:8.2f} ms/image"
                f"   = {res[be] / res['floor']:.1f}x / {res[be + '_b'] / res['floor_b']:.1f}x floor"
            )
        if u:
            t, err_pad, err_raw, padded, nc = u
            best = min(res[be] for be in backends)
            print(
                f"  curvelets UDCT at {padded[0]}x{padded[1]} single {1e3 * t:8.2f} ms   ({nc / x.size:.2f}x real coefs)"
                f"   = {t / best:.1f}x slower than landimg; error cropped {err_pad:.1e}, unpadded {err_raw:.1e}"
            )

    print(
        "\n| size | scales | floor ms | landimg scipy ms (x floor) | landimg pyfftw ms (x floor) | batched/32 best ms (x floor) "
        "| UDCT ms (padded) | UDCT / landimg | UDCT error unpadded |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for shape, ns, r in rows:
        fftw = f"{1e3 * r['pyfftw']:.2f} ({r['pyfftw'] / r['floor']:.1f}x)" if "pyfftw" in r else "n/a"
        bb = min(r[be + "_b"] for be in backends)
        best = min(r[be] for be in backends)
        u = r["udct"]
        ucol = (
            f"{1e3 * u[0]:.1f} ({u[3][0]}x{u[3][1]}) | {u[0] / best:.1f}x | {u[2]:.1e}"
            if u
            else "n/a | n/a | n/a"
        )
        print(
            f"| {shape[0]}x{shape[1]} | {ns} | {1e3 * r['floor']:.2f} | {1e3 * r['scipy']:.2f} ({r['scipy'] / r['floor']:.1f}x) "
            f"| {fftw} | {1e3 * bb:.2f} ({bb / r['floor_b']:.1f}x) | {ucol} |"
        )


if __name__ == "__main__":
    main()
