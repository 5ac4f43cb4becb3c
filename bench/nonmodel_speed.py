"""CPU time of one rank's non-model work per model hour (weather, forcing perturbations): this tree against a
revision, side by side.

The 2-rank profile run (``bench/profile_run.py``, docs/scaling.md: global 1 deg, 4 members, a 2 x 1 layout)
makes on each rank, every model hour, the weather of its world block (truth + ensemble forcing, block 1 of
``--blocks``) and the forcing perturbations of its member group (``--members``, every column): an AR step
(one draw per hour, shared by the ensembles) and the perturbed forcing of each ensemble. This times, per
hour, ``--hours`` consecutive hours of

* ``weather``: ``WeatherGenerator.truth`` + ``ensemble`` on the block;
* ``perturb x1``: ``ForcingPerturber.advance`` + ``apply`` of one ensemble (the per-member spin-up);
* ``perturb x4``: the same for ``--ensembles`` ensembles of the same members in turn (the cycle's days:
  the open loop, point EnKF, LETKF and curvelet EnKF step the same members);

with ``time.process_time`` after a warm-up hour, in a subprocess per tree, alternately (baseline, this,
baseline, ...) for ``--rounds`` rounds; the best per piece and the ratio are printed. The baseline's
``python/`` comes from ``git archive`` (:mod:`_trees`). Every piece's output is also hashed, so the lines
say whether both trees made the same bits.

Usage::

    PYTHONPATH=python .venv/bin/python bench/nonmodel_speed.py [--baseline 52dc35b] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import against_baseline


def _worker(args: argparse.Namespace) -> None:
    """Print {piece: [CPU seconds per hour, sha256 of the outputs]} of this interpreter's landimg as JSON."""
    import numpy as np
    from landimg.ensemble.perturb import ForcingPerturber
    from landimg.experiment.config import load_config
    from landimg.experiment.forcing import WeatherGenerator
    from landimg.experiment.setup import perturbation, setup
    from landimg.layout import balanced_bounds

    cfg = load_config(None, [f"domain.preset={args.preset}", f"ensemble.members={max(args.members) + 1}"])
    s, e = setup(cfg), cfg.experiment
    grid = s.domain.grid
    b = balanced_bounds(grid.ncol, args.blocks)
    weather = WeatherGenerator(grid, s.domain.aridity, cfg.forcing, e.seed, e.start, slice(int(b[0]), int(b[1])))
    hours = [3600.0 * (-24 * 10 + k) for k in range(args.hours + 1)]  # in the per-member spin-up
    out: dict[str, list] = {}

    def timed(name: str, step) -> None:
        digest = hashlib.sha256()
        step(hours[0], digest)  # warm-up hour
        t0 = time.process_time()
        for t in hours[1:]:
            step(t, digest)
        out[name] = [(time.process_time() - t0) / args.hours, digest.hexdigest()[:12]]

    def weather_hour(t: float, digest) -> None:
        for f in (weather.truth(t), weather.ensemble(t)):
            for v in f.values():
                digest.update(np.ascontiguousarray(v).tobytes())

    timed("weather", weather_hour)
    forcing = s.weather.ensemble(hours[0])  # every column (one rank's set-up)
    for n in (1, args.ensembles):
        perturbers = [ForcingPerturber(perturbation(cfg), grid, args.members, e.seed) for _ in range(n)]

        def perturb_hour(t: float, digest, perturbers=perturbers) -> None:
            for p in perturbers:
                p.advance(cfg.experiment.dt)
                for v in p.apply(forcing, t).values():
                    digest.update(np.ascontiguousarray(v).tobytes())

        timed(f"perturb x{n}", perturb_hour)
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default="52dc35b", help="git revision to compare with")
    p.add_argument("--preset", default="global1deg", help="domain preset")
    p.add_argument("--blocks", type=int, default=2, help="world blocks (the weather of the first is timed)")
    p.add_argument("--members", type=int, nargs="+", default=[0, 1], help="the rank's members")
    p.add_argument("--ensembles", type=int, default=4, help="ensembles stepping the same members")
    p.add_argument("--hours", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return
    flags = [f"--preset={args.preset}", f"--blocks={args.blocks}", f"--ensembles={args.ensembles}",
             f"--hours={args.hours}", "--members", *map(str, args.members)]  # fmt: skip
    runs = against_baseline(__file__, args.baseline, flags, args.rounds)
    base, this = runs[args.baseline], runs["this tree"]
    print(f"{args.preset}, block 1 of {args.blocks}, members {args.members}, {args.hours} hours, "
          f"best of {args.rounds} interleaved rounds, CPU ms per model hour:")  # fmt: skip
    print(f"  {'piece':12s} {args.baseline:>10s} {'this tree':>10s}  ratio  same bits")
    for piece in base[0]:
        b, t = min(r[piece][0] for r in base), min(r[piece][0] for r in this)
        same = {r[piece][1] for r in base} == {r[piece][1] for r in this}
        print(f"  {piece:12s} {1e3 * b:10.2f} {1e3 * t:10.2f}  {b / t:5.2f}x  {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
