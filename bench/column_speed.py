"""Column physics speed: this tree's physics against a baseline revision, per core and with threads.

Both are pure-Fortran drivers (``fortran/colm_bench_driver.f90`` of each revision) compiled here with the
same gfortran flags (``-O3 -fstack-arrays -fopenmp``, both run with one thread for the per-core ratio), stepping the same columns,
members, parameters, initial state and cycle of forcing frames, one ``colm_step`` call per time step.
Runs are interleaved (baseline, new, baseline, new, ...) and the best CPU time of each is compared
(robust on a shared machine); then this tree's driver runs with 1 and 2 OpenMP threads (wall time, as
threads share the CPU time) and the final states of the two thread counts are checked to be bitwise
identical. With ``--python`` the Python-driven loop (``ColumnModel.step``) is timed against this
tree's driver as well and their final states compared.

Usage::

    PYTHONPATH=python .venv/bin/python bench/column_speed.py [--baseline 02e5b00] [--ncol 1000] [--nmem 16]
        [--nsteps 48] [--repeat 3] [--python]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import landimg
import numpy as np
from landimg import soil
from landimg.model.column import _FORCING_INDEX, FORCING_NAMES

REPO = Path(__file__).resolve().parents[1]
#: the last commit before issue 11's physics changes (73a93ba CoLM fidelity, ba8bea1 speed work): the
#: old physics with per-member parameters and the OpenMP loop over columns x members
BASELINE = "02e5b00"
SIGMA = 5.67e-8
#: physics sources in dependency order (colm_api and the driver last)
SOURCES = ("colm_kinds", "colm_const", "colm_linalg", "colm_soil", "colm_hydrology", "colm_energy",
           "colm_thermal", "colm_column", "colm_api", "colm_bench_driver")  # fmt: skip
STATE_ORDER = ("wliq", "wice", "tsoil", "zwt", "wa", "wcanopy", "wsnow", "wpond", "tskin", "tsnow", "dsnow")


def _sources(rev: str | None, dest: Path) -> int:
    """Copy fortran/ of ``rev`` (None: the working tree) into ``dest``; return its api_version."""
    dest.mkdir(parents=True)
    if rev is None:
        for f in (REPO / "fortran").glob("*.f90"):
            shutil.copy(f, dest / f.name)
    else:
        tar = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "fortran"], check=True, capture_output=True
        )
        with tarfile.open(fileobj=BytesIO(tar.stdout)) as t:
            for member in t.getmembers():
                if member.name.endswith(".f90"):
                    fh = t.extractfile(member)
                    assert fh is not None
                    (dest / Path(member.name).name).write_bytes(fh.read())
    found = re.search(r"version\s*=\s*(\d+)", (dest / "colm_api.f90").read_text())
    if found is None:
        raise SystemExit(f"no api_version in {dest / 'colm_api.f90'}")
    return int(found.group(1))


def build_driver(rev: str | None, workdir: Path, openmp: bool) -> tuple[Path, int]:
    """Compile colm_bench_driver of ``rev`` in ``workdir``; return (executable, api_version)."""
    src = workdir / "src"
    version = _sources(rev, src)
    flags = ["-O3", "-fstack-arrays", "-fimplicit-none", "-J", str(workdir)] + (
        ["-fopenmp"] if openmp else []
    )
    exe = workdir / "colm_bench_driver"
    files = [str(src / f"{name}.f90") for name in SOURCES]
    subprocess.run(["gfortran", *flags, *files, "-o", str(exe)], check=True, cwd=workdir)
    return exe, version


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


def write_driver_input(path: Path, version: int, m: landimg.ColumnModel, frames, nsteps: int) -> None:
    """Driver input in the layout of Fortran API ``version`` (2-3: parameters (np, ncol) and no snow
    layer; 4: parameters (np, ncol, nmem); 5: + tsnow, dsnow). Parameters of the first ``npar(version)``
    names are the ones all versions share, in the same order."""
    fr = np.zeros((len(FORCING_NAMES), m.ncol, m.nmem, len(frames)), order="F")
    for k, f in enumerate(frames):
        for n in FORCING_NAMES:
            fr[_FORCING_INDEX[n], :, :, k] = f[n]
    params = m._params[:14] if version < 6 else m._params
    params = params[:, :, 0] if version < 4 else params
    state = STATE_ORDER if version >= 5 else STATE_ORDER[:9]
    with open(path, "wb") as fh:
        fh.write(np.array([m.nlev, m.ncol, m.nmem, nsteps, len(frames)], dtype=np.int32).tobytes())
        fh.write(np.array([m.dt], dtype=np.float64).tobytes())
        fh.writelines(
            np.asarray(a, dtype=np.float64).tobytes(order="F")
            for a in (params, m._rootfr, *(m.state[k] for k in state), fr)
        )


def run_driver(exe: Path, fin: Path, fout: Path, threads: int = 1) -> tuple[float, float]:
    """(wall s, cpu s) of one driver run."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([str(exe), str(fin), str(fout)], capture_output=True, text=True, check=True, env=env)
    words = res.stdout.split()
    return float(words[1]), float(words[3])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--baseline",
        default=BASELINE,
        help=f"git revision of the baseline physics (default {BASELINE}: the build before issue 11's physics)",
    )
    ap.add_argument("--ncol", type=int, default=1000)
    ap.add_argument("--nmem", type=int, default=16)
    ap.add_argument("--nsteps", type=int, default=48)
    ap.add_argument("--dt", type=float, default=1800.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python", action="store_true", help="also time the Python-driven loop")
    ap.add_argument(
        "--serial",
        action="store_true",
        help="compile both drivers of the per-core comparison without -fopenmp (same flags for both)",
    )
    args = ap.parse_args(argv)

    frames = make_frames(args.ncol, args.nmem, 24, seed=1)
    m = make_model(args.ncol, args.nmem, args.dt, seed=2)
    m.step(frames[0], nsteps=4)  # leave the cold start
    m.reset_fluxes()
    start = m.get_state()
    colsteps = args.ncol * args.nmem * args.nsteps
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        new, vnew = build_driver(None, tmp / "new", openmp=not args.serial)
        base, vbase = build_driver(args.baseline, tmp / "base", openmp=not args.serial)
        newomp = build_driver(None, tmp / "newomp", openmp=True)[0] if args.serial else new
        fin_new, fin_base = tmp / "in_new.bin", tmp / "in_base.bin"
        write_driver_input(fin_new, vnew, m, frames, args.nsteps)
        write_driver_input(fin_base, vbase, m, frames, args.nsteps)
        t = {"base": [], "new": [], "new1": [], "new2": [], "py": []}
        for _ in range(args.repeat):
            t["base"].append(run_driver(base, fin_base, tmp / "out_base.bin", threads=1)[1])
            t["new"].append(run_driver(new, fin_new, tmp / "out1.bin", threads=1)[1])
        for _ in range(args.repeat):
            t["new1"].append(run_driver(newomp, fin_new, tmp / "out1.bin", threads=1)[0])
            t["new2"].append(run_driver(newomp, fin_new, tmp / "out2.bin", threads=2)[0])
        threads_identical = (tmp / "out1.bin").read_bytes() == (tmp / "out2.bin").read_bytes()
        py_identical = None
        if args.python:
            for _ in range(args.repeat):
                m.set_state(start)
                c0 = time.process_time()
                for k in range(args.nsteps):
                    m.step(frames[k % len(frames)])
                t["py"].append(time.process_time() - c0)
            raw = np.fromfile(tmp / "out1.bin", dtype=np.float64)
            py = m.get_state()
            py_identical = np.array_equal(
                raw, np.concatenate([py[k].ravel(order="F") for k in (*STATE_ORDER, "fluxes")])
            )

    best = {k: min(v) for k, v in t.items() if v}
    print(f"columns x members x steps: {args.ncol} x {args.nmem} x {args.nsteps} (dt {args.dt:g} s), "
          f"{args.repeat} interleaved repeats, best of each")  # fmt: skip
    print(f"per core (CPU time, 1 thread; both compiled {'without' if args.serial else 'with'} -fopenmp):")
    print(f"  baseline {args.baseline} (api {vbase}): {best['base']:.4f} s  {colsteps / best['base']:,.0f} column-steps/s"
          f"  runs {' '.join(f'{x:.3f}' for x in t['base'])}")  # fmt: skip
    print(f"  this tree (api {vnew}):      {best['new']:.4f} s  {colsteps / best['new']:,.0f} column-steps/s"
          f"  runs {' '.join(f'{x:.3f}' for x in t['new'])}")  # fmt: skip
    print(f"  speed-up this tree / baseline: {best['base'] / best['new']:.3f}x  (target >= 1.3x)")
    print("threads (wall time, this tree):")
    print(f"  1 thread : {best['new1']:.4f} s  {colsteps / best['new1']:,.0f} column-steps/s")
    print(f"  2 threads: {best['new2']:.4f} s  {colsteps / best['new2']:,.0f} column-steps/s  "
          f"speed-up {best['new1'] / best['new2']:.2f}x; final states bitwise identical: {threads_identical}")  # fmt: skip
    if args.python:
        print(f"python-driven (ColumnModel.step, CPU): {best['py']:.4f} s, ratio python/fortran "
              f"{best['py'] / best['new']:.3f}; final states bitwise identical: {py_identical}")  # fmt: skip
    return 0 if threads_identical and py_identical in (None, True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
