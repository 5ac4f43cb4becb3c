"""CPU time of the forcing-perturbation random-field draws: this tree against another revision or tree.

One "draw" is one ``ForcingPerturber`` innovation's worth of spectral fields on a global 1-degree image
(150 x 360, 60 S - 90 N, periodic in longitude, cells 111.2 x 107.4 km): ``nvar`` fast fields of length
``--length`` per member plus one slow rain-error field of length ``--slow`` (0 = none), for ``--members``
member streams, through :class:`landimg.random_fields.GaussianFieldGenerator`; "advance" is one
``ForcingPerturber.advance`` (draw, land columns, cross-correlation, AR(1)) with the same lengths on that
grid with every cell land (the upper bound of the column work). Three runs, each in its own
subprocess, alternately (other, this float64, this float32, other, ...): the other tree (``--baseline``
revision's ``python/`` from ``git archive``, or ``--other PATH``; its default precision, float64), this tree in float64 and in float32 (what ``ForcingPerturber`` uses); each times
``--ndraw`` draws with ``time.process_time`` (user + system: page faults count) after one warm-up draw.
The best and median per-draw CPU time of each are printed.

Usage::

    PYTHONPATH=python .venv/bin/python bench/rfdraw_speed.py [--baseline 34447fb | --other PATH] [--rounds 3]
        [--ndraw 50] [--length 424.2640687119285] [--slow 800]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import interleaved, python_tree


def _cpu_per_call(fn: Callable[[], object], n: int) -> float:
    """CPU seconds per call of ``fn`` over ``n`` calls after one warm-up call."""
    fn()
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n


def _worker(args: argparse.Namespace) -> None:
    """Time ``args.ndraw`` draws and advances here; print the per-call CPU times (s) as JSON."""
    import numpy as np
    from landimg.ensemble.perturb import ForcingPerturbation, ForcingPerturber
    from landimg.grid import Grid
    from landimg.random_fields import GaussianFieldGenerator

    grid = Grid.regular(lat=(-60.0, 90.0), lon=(-180.0, 180.0), res=1.0, land_mask="all")
    kw = {"dtype": np.dtype(args.dtype)} if args.dtype != "default" else {}
    cell = grid.cell_size_km()
    fast = GaussianFieldGenerator(grid.shape, cell, args.length, True, **kw)
    slow = GaussianFieldGenerator(grid.shape, cell, args.slow, True, **kw) if args.slow else None
    rngs = [np.random.default_rng(1000 + k) for k in range(args.members)]

    def draw() -> None:
        fast.draw(rngs, args.nvar)
        if slow is not None:
            slow.draw(rngs, 1)

    cfg = ForcingPerturbation(length_km=args.length, rain_error_std=0.6 if args.slow else 0.0,
                              rain_error_km=args.slow)  # fmt: skip
    pert = ForcingPerturber(cfg, grid, range(args.members), seed=1)
    step = lambda: pert.advance(3600.0)  # noqa: E731
    print(json.dumps([_cpu_per_call(draw, args.ndraw), _cpu_per_call(step, args.ndraw)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default="34447fb", help="git revision to compare with (before float32 draws)")
    p.add_argument("--other", default=None, help="PYTHONPATH of the tree to compare with (instead of --baseline)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ndraw", type=int, default=50)
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--nvar", type=int, default=4)
    p.add_argument("--length", type=float, default=424.2640687119285, help="fast field length L, km")
    p.add_argument("--slow", type=float, default=800.0, help="slow rain-error length L, km (0 = none)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="default", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        other = args.other or str(python_tree(args.baseline, Path(tmp)))
        _compare(args, other)


def _compare(args: argparse.Namespace, other: str) -> None:
    """Run the workers alternately and print the per-call times and ratios."""
    here = str(Path(__file__).resolve().parents[1] / "python")
    runs = {"other": (other, "default"), "this float64": (here, "float64"),
            "this float32": (here, "float32")}  # fmt: skip
    flags = [f"--{k}={getattr(args, k)}" for k in ("ndraw", "members", "nvar", "length", "slow")]
    work = {name: (path, [f"--dtype={dtype}", *flags]) for name, (path, dtype) in runs.items()}
    times = interleaved(__file__, work, args.rounds)
    for i, what in enumerate(("draw", "advance")):
        base = min(t[i] for t in times["other"])
        for name, (path, _) in runs.items():
            if what == "advance" and name == "this float64":
                continue  # this tree's ForcingPerturber always draws in float32
            t = [x[i] for x in times[name]]
            each = ", ".join(f"{1e3 * x:.2f}" for x in t)
            print(f"{what:7s} {name:12s} {path}: best {1e3 * min(t):.2f} ms ({base / min(t):.2f}x), "
                  f"median {1e3 * statistics.median(t):.2f} ms ({each})")  # fmt: skip


if __name__ == "__main__":
    main()
