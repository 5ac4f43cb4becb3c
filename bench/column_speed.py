"""Column physics speed: Python-driven stepping through the f2py extension vs a pure Fortran driver.

Both step the same columns, members, parameters, initial state and cycle of forcing frames with the
same Fortran routine (``colm_api.colm_step``), one call per time step. The Python side goes through
``ColumnModel.step`` (forcing validation + copy into the Fortran buffer + the f2py call); the Fortran
side is ``colm_bench_driver`` (``fortran/colm_bench_driver.f90``, a non-installed meson executable).
Runs are interleaved and repeated; the best CPU time (primary: robust on a shared machine) and the
best wall time of each are compared, and the final states are checked to be bitwise identical.

Usage::

    PYTHONPATH=python .venv/bin/python bench/column_speed.py [--ncol 1000] [--nmem 16] [--nsteps 48]
        [--repeat 3] [--builddir build-dev]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import landimg
import numpy as np
from landimg import soil
from landimg.model.column import _FORCING_INDEX, FORCING_NAMES

REPO = Path(__file__).resolve().parents[1]
SIGMA = 5.67e-8


def find_driver(builddir: Path) -> Path:
    """Path of colm_bench_driver in ``builddir``; (re)built with ninja (meson setup if needed)."""
    exe = builddir / "fortran" / "colm_bench_driver"
    env = dict(os.environ)
    venv_bin = Path(sys.executable).parent
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    ninja = shutil.which("ninja", path=env["PATH"])
    meson = shutil.which("meson", path=env["PATH"])
    if not (builddir / "build.ninja").exists():
        if meson is None:
            raise SystemExit("meson not found: run `bash ci/dev-build.sh` first")
        subprocess.run([meson, "setup", str(builddir), "--buildtype=release"], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    if ninja is not None:
        subprocess.run([ninja, "-C", str(builddir), "fortran/colm_bench_driver"], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    if not exe.exists():
        raise SystemExit(f"{exe} not found and could not be built")
    return exe


def make_frames(ncol: int, nmem: int, nframes: int, seed: int) -> list[dict[str, np.ndarray]]:
    """A diurnal cycle of ``nframes`` hourly forcing frames, different per column and member."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(nframes):
        h = 24.0 * k / nframes
        t = 290.0 + 6.0 * np.cos(2 * np.pi * (h - 15) / 24) + rng.normal(0, 2.0, (ncol, nmem))
        p = np.full((ncol, nmem), 1.0e5)
        es = 611.2 * np.exp(17.67 * (t - 273.15) / (t - 29.65))
        frames.append(
            {
                "tair": t,
                "qair": 0.6 * 0.622 * es / (p - 0.378 * es),
                "psurf": p,
                "precip": (rng.random((ncol, nmem)) < 0.1) * rng.exponential(5e-4, (ncol, nmem)),
                "wind": rng.gamma(2.0, 1.5, (ncol, nmem)),
                "swdown": np.maximum(0.0, 800.0 * np.cos(2 * np.pi * (h - 12) / 24))
                * rng.uniform(0.4, 1, (ncol, nmem)),
                "lwdown": 0.75 * SIGMA * t**4,
            }
        )
    return frames


def make_model(ncol: int, nmem: int, dt: float, seed: int) -> landimg.ColumnModel:
    rng = np.random.default_rng(seed)
    sand = rng.uniform(5.0, 90.0, ncol)
    clay = rng.uniform(0.0, 1.0, ncol) * (100.0 - sand) * 0.6
    igbp = rng.choice([1, 4, 7, 9, 10, 12, 16], ncol)
    return landimg.ColumnModel(ncol, nmem, soil=soil.from_texture(sand, clay), dt=dt, igbp=igbp)


STATE_ORDER = ("wliq", "wice", "tsoil", "zwt", "wa", "wcanopy", "wsnow", "wpond", "tskin", "tsnow", "dsnow")


def write_driver_input(path: Path, m: landimg.ColumnModel, frames, nsteps: int) -> None:
    fr = np.zeros((len(FORCING_NAMES), m.ncol, m.nmem, len(frames)), order="F")
    for k, f in enumerate(frames):
        for n in FORCING_NAMES:
            fr[_FORCING_INDEX[n], :, :, k] = f[n]
    with open(path, "wb") as fh:
        fh.write(np.array([m.nlev, m.ncol, m.nmem, nsteps, len(frames)], dtype=np.int32).tobytes())
        fh.write(np.array([m.dt], dtype=np.float64).tobytes())
        fh.writelines(
            np.asarray(a, dtype=np.float64).tobytes(order="F")
            for a in (m._params, m._rootfr, *(m.state[k] for k in STATE_ORDER), fr)
        )


def read_driver_output(path: Path, m: landimg.ColumnModel) -> dict[str, np.ndarray]:
    raw = np.fromfile(path, dtype=np.float64)
    out, pos = {}, 0
    for k in (*STATE_ORDER, "fluxes"):
        ref = m._fluxes if k == "fluxes" else m.state[k]
        out[k] = raw[pos : pos + ref.size].reshape(ref.shape, order="F")
        pos += ref.size
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ncol", type=int, default=1000)
    ap.add_argument("--nmem", type=int, default=16)
    ap.add_argument("--nsteps", type=int, default=48)
    ap.add_argument("--dt", type=float, default=1800.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--builddir", type=Path, default=REPO / "build-dev")
    args = ap.parse_args(argv)

    exe = find_driver(args.builddir)
    frames = make_frames(args.ncol, args.nmem, 24, seed=1)
    m = make_model(args.ncol, args.nmem, args.dt, seed=2)
    m.step(frames[0], nsteps=4)  # leave the cold start
    start = m.get_state()
    colsteps = args.ncol * args.nmem * args.nsteps

    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        m.reset_fluxes()
        write_driver_input(fin, m, frames, args.nsteps)
        t_py, t_f, c_py, c_f = [], [], [], []
        for _ in range(args.repeat):
            m.set_state(start)
            m.reset_fluxes()
            t0, c0 = time.perf_counter(), time.process_time()
            for k in range(args.nsteps):
                m.step(frames[k % len(frames)])
            c_py.append(time.process_time() - c0)
            t_py.append(time.perf_counter() - t0)
            res = subprocess.run([str(exe), str(fin), str(fout)], capture_output=True, text=True, check=True)
            words = res.stdout.split()
            t_f.append(float(words[1]))
            c_f.append(float(words[3]))
        fort = read_driver_output(fout, m)
        py = m.get_state()
        identical = all(np.array_equal(py[k], fort[k]) for k in fort)

    print(f"columns x members x steps: {args.ncol} x {args.nmem} x {args.nsteps} (dt {args.dt:g} s), "
          f"{args.repeat} interleaved repeats, best of each")  # fmt: skip
    for label, tp, tf in (("cpu time", c_py, c_f), ("wall time", t_py, t_f)):
        bp, bf = min(tp), min(tf)
        print(f"{label}:")
        print(f"  python-driven (ColumnModel.step, 1 call/step): {bp:.4f} s  {colsteps / bp:,.0f} column-steps/s  "
              f"runs {' '.join(f'{t:.3f}' for t in tp)}")  # fmt: skip
        print(f"  fortran driver (colm_bench_driver):           {bf:.4f} s  {colsteps / bf:,.0f} column-steps/s  "
              f"runs {' '.join(f'{t:.3f}' for t in tf)}")  # fmt: skip
        print(f"  ratio python/fortran ({label}): {bp / bf:.3f}  (target <= 1.05)")
    print(f"final states bitwise identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
