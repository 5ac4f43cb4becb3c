"""CPU time of the synthetic weather generator per hour (truth + ensemble): this tree against a revision.

The experiment asks the generator for the true and the ensemble's forcing once per model hour each
(``WeatherGenerator.truth`` / ``ensemble``); this times ``--hours`` consecutive hours of both on a domain
preset (default global 1 deg) with ``time.process_time``, after one warm-up hour, in a subprocess per tree,
alternately (baseline, this, baseline, ...) for ``--rounds`` rounds; best and median per hour are printed.
The baseline's ``python/`` comes from ``git archive`` (:mod:`_trees`).

Usage::

    PYTHONPATH=python .venv/bin/python bench/weather_speed.py [--baseline 34447fb] [--preset global1deg]
        [--hours 96] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trees import against_baseline


def _worker(args: argparse.Namespace) -> None:
    """Print the CPU seconds per hour (truth + ensemble) of this interpreter's landimg as JSON."""
    from landimg.experiment.config import load_config
    from landimg.experiment.setup import setup

    weather = setup(load_config(None, [f"domain.preset={args.preset}"])).weather
    t0_h = 24 * 5  # a few days in: storms of earlier days are alive
    weather.truth(3600.0 * t0_h), weather.ensemble(3600.0 * t0_h)
    t0 = time.process_time()
    for k in range(1, args.hours + 1):
        weather.truth(3600.0 * (t0_h + k))
        weather.ensemble(3600.0 * (t0_h + k))
    print(json.dumps((time.process_time() - t0) / args.hours))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default="34447fb", help="git revision to compare with")
    p.add_argument("--preset", default="global1deg", help="domain preset")
    p.add_argument("--hours", type=int, default=96)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return
    flags = [f"--preset={args.preset}", f"--hours={args.hours}"]
    times = against_baseline(__file__, args.baseline, flags, args.rounds)
    base = min(times[args.baseline])
    print(f"weather generator, {args.preset}, truth + ensemble per hour, {args.hours} hours, CPU time:")
    for name, t in times.items():
        each = ", ".join(f"{1e3 * x:.2f}" for x in t)
        print(f"  {name:12s}: best {1e3 * min(t):.2f} ms ({base / min(t):.2f}x), "
              f"median {1e3 * statistics.median(t):.2f} ms ({each})")  # fmt: skip


if __name__ == "__main__":
    main()
