"""What the point filters' column-block layout holds and moves: blocks, halos and bytes per analysis.

For a domain preset (default CONUS 1 deg) and ``P`` ranks, the ``1 x P`` analysis blocks of a point filter
(balanced by :func:`landimg.layout.column_costs`) and their halos (:func:`landimg.layout.halo_columns`) for
the LETKF's and the point EnKF's default radii, and the bytes the host's transposition moves per analysis:
in, the background (float64), the update mask (bool) and the observation perturbations (float64) of every
held column and member; back, the increments of the owned columns. No MPI needed (the blocks are computed
for every rank here).

Usage::

    PYTHONPATH=python .venv/bin/python bench/layout_halo.py [--preset conus] [--members 16] [--ranks 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from landimg import Grid
from landimg.experiment.config import PRESETS
from landimg.layout import balanced_bounds, column_costs

NLEV = 10


def _held(grid: Grid, c0: int, c1: int, halo_km: float) -> int:
    """Columns of block [c0, c1) plus those within ``halo_km`` (as halo_columns)."""
    from scipy.spatial import cKDTree

    chord = 2.0 * np.sin(min(halo_km / 6371.0, np.pi) / 2.0) * (1 + 1e-9)
    d, _ = cKDTree(grid.xyz[c0:c1]).query(grid.xyz, k=1, distance_upper_bound=chord)
    return int(np.isfinite(d).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="conus", choices=sorted(PRESETS))
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    args = p.parse_args()
    lat, lon, res = PRESETS[args.preset]
    grid = Grid.regular(lat=lat, lon=lon, res=res)
    n = args.members
    print(f"{args.preset}: {grid.ncol} columns, {n} members, {NLEV} layers")
    for radius in (500.0, 250.0):  # point EnKF, LETKF defaults
        cost = column_costs(grid.xyz, radius)
        for ranks in args.ranks:
            b = balanced_bounds(grid.ncol, ranks, cost)
            held = [_held(grid, int(b[k]), int(b[k + 1]), radius) for k in range(ranks)]
            into = sum(held) * n * (NLEV * 8 + NLEV + 8) / 1e6
            back = grid.ncol * n * NLEV * 8 / 1e6
            print(
                f"  halo {radius:.0f} km, {ranks} ranks: owned {np.diff(b).tolist()}, held {held}: halo "
                f"{sum(held) / grid.ncol - 1:.0%} of the columns; moved per analysis {into:.2f} MB in, "
                f"{back:.2f} MB back"
            )


if __name__ == "__main__":
    main()
