"""What the LETKF's correlated local R and its bias stage cost: CPU seconds per analysis, side by side.

    # CONUS 1 deg and 0.25 deg, global 1 deg:
    OMP_NUM_THREADS=1 PYTHONPATH=python .venv/bin/python bench/letkf_cost.py
    OMP_NUM_THREADS=1 PYTHONPATH=python .venv/bin/python bench/letkf_cost.py --grids conus1 --repeat 5

Every variant runs ``PointLETKF.analyze`` (the cycle's path: adaptive inflation, neighbourhoods cached
after the first call) on the same members (``--members``, 10 layers) and the same swath observations
(~40 % of the land); the variants of one grid and radius are interleaved ``--repeat`` times (the order
rotated each time) and the least CPU time of each is printed (the least disturbed on a shared machine)
with its ratio to the diagonal-R LETKF measured beside it. Variants: ``white``
(diagonal R, the first version's arithmetic), ``corr 0.5/200`` (half the variance correlated at 200 km:
the default world's error), ``corr 0.3/400`` (the ``correlated`` world's), ``bias`` (two-stage, white R,
the bias analysis on the state's neighbourhoods), ``bias 3r`` (bias radius three times the state's),
``corr+bias`` (0.3/400 with the bias stage).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import landimg  # noqa: E402
from landimg.analysis import AnalysisContext, Geometry, ObsError, PointLETKF  # noqa: E402
from landimg.layout import Layout  # noqa: E402
from landimg.parallel import SerialComm  # noqa: E402

GRIDS = {
    "conus1": dict(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0),
    "conus025": dict(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=0.25),
    "global1": dict(lat=(-60.0, 90.0), lon=(-180.0, 180.0), res=1.0),
}


def _variants(radius: float) -> dict[str, tuple[PointLETKF, ObsError]]:
    base = dict(radius_km=radius)
    white, mixed, corr = (
        ObsError.white(0.04),
        ObsError.from_fraction(0.04, 0.5, 200.0),
        ObsError.from_fraction(0.04, 0.3, 400.0),
    )
    return {
        "white": (PointLETKF(**base), white),
        "corr 0.5/200": (PointLETKF(**base), mixed),
        "corr 0.3/400": (PointLETKF(**base), corr),
        "bias": (PointLETKF(**base, bias_correction=True), white),
        "bias 3r": (PointLETKF(**base, bias_correction=True, bias_radius_km=3 * radius), white),
        "corr+bias": (PointLETKF(**base, bias_correction=True), corr),
    }


def _inputs(grid, nmem: int, nlev: int, rng: np.random.Generator):
    """Smooth members (nlev, ncol, nmem) and swath observations (ncol,) on ~40 % of the land."""
    ny, nx = grid.shape
    ky, kx = np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * 4.0) ** 2 * (ky**2 + kx**2))
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((nmem, ny, nx))) * filt, s=(ny, nx))
    x = grid.to_columns(0.25 + 0.04 * f / f.std())  # (nmem, ncol)
    state = np.ascontiguousarray(np.broadcast_to(x.T[None], (nlev, grid.ncol, nmem)))
    iy, ix = np.unravel_index(grid.column_index, grid.shape)
    seen = (ix // 8 + iy // 40) % 5 < 2
    obs = np.where(seen, 0.25 + 0.04 * rng.standard_normal(grid.ncol), np.nan)
    return state, obs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", default="conus1,conus025,global1")
    ap.add_argument("--radii", default="250,1000")
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    nlev = 10
    h = np.zeros(nlev)
    h[:3] = (0.35, 0.55, 0.10)
    print("| grid | columns | obs | radius km | variant | CPU s / analysis | x white |")
    print("|---|---|---|---|---|---|---|")
    for gname in a.grids.split(","):
        grid = landimg.Grid.regular(**GRIDS[gname], land_mask="builtin")
        lat, lon = grid.column_latlon()
        geo = Geometry(grid.land, lat, lon, grid.cell_size_km(), grid.periodic_lon)
        state, obs = _inputs(grid, a.members, nlev, rng)
        for radius in (float(r) for r in a.radii.split(",")):
            variants = _variants(radius)
            ctx = {
                k: AnalysisContext(h=h, geometry=geo, layout=Layout(a.members, SerialComm()))
                for k in variants
            }
            for k, (m, err) in variants.items():  # first call: neighbourhoods into each context's cache
                m.analyze(state, obs, err, None, ctx[k])
            times: dict[str, list[float]] = {k: [] for k in variants}
            names = list(variants)
            for rep in range(a.repeat):  # interleaved, the order rotated at every repeat
                for k in names[rep % len(names) :] + names[: rep % len(names)]:
                    m, err = variants[k]
                    t0 = time.process_time()
                    m.analyze(state, obs, err, None, ctx[k])
                    times[k].append(time.process_time() - t0)
            base = float(np.min(times["white"]))
            for k, t in times.items():
                med = float(np.min(t))
                print(
                    f"| {gname} | {grid.ncol} | {int(np.isfinite(obs).sum())} | {radius:g} | {k} | "
                    f"{med:.3f} | {med / base:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
