"""What the world's pieces cost per rank when made whole and on a world block (issue 17 item 2).

    PYTHONPATH=python .venv/bin/python bench/world_costs.py --res 0.25 --blocks 1 2 4 8

On the domain ``--bbox`` at ``--res`` degrees (default: the issue's global 0.25 degree box, 60 S - 90 N),
prints the CPU milliseconds (best of ``--repeat``, ``time.process_time``) of:

* the weather of one hour (truth + ensemble) for the whole domain and for the first of ``B`` world blocks
  (its share of the columns), and of the synoptic term made for every column (the one term not cut);
* one member's forcing-perturbation draw (4 fields of ``ensemble.corr_length_km`` and the persistent rain
  error field, float32) whole and on the image rows of a block of ``1/B`` of the columns;
* the synthetic retrieval error of one analysis (drawn whole, cut: white noise and a correlated field);
* the weather's static rain-bias field (once per run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _cpu_ms(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return 1e3 * best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--res", type=float, default=0.25)
    p.add_argument(
        "--bbox", type=float, nargs=4, default=[-60.0, 90.0, -180.0, 180.0], metavar=("S", "N", "W", "E")
    )
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    from landimg.ensemble.perturb import ForcingPerturber
    from landimg.experiment.config import load_config
    from landimg.experiment.domain import build_domain
    from landimg.experiment.forcing import WeatherGenerator
    from landimg.experiment.obs import SatelliteObserver
    from landimg.experiment.setup import perturbation
    from landimg.layout import balanced_bounds
    from landimg.random_fields import gaussian_random_field

    s, n, w, e = args.bbox
    cfg = load_config(None, [f"domain.bbox=[{s}, {n}, {w}, {e}]", f"domain.res={args.res}"])
    t0 = time.perf_counter()
    d = build_domain(cfg)
    g = d.grid
    print(
        f"domain {g.shape[0]} x {g.shape[1]}, {g.ncol} land columns (built in {time.perf_counter() - t0:.0f} s)"
    )
    wargs = (g, d.aridity, cfg.forcing, cfg.experiment.seed, cfg.experiment.start)
    hours = np.arange(args.repeat + 1) * 3600.0 * 5 + 3600.0 * 30
    for nb in args.blocks:
        c1 = int(balanced_bounds(g.ncol, nb)[1])
        gen = WeatherGenerator(*wargs, columns=slice(0, c1))
        it = iter(hours)

        def hour(gen=gen, it=it):  # a new hour each time (the hour's cloud-free terms are kept)
            t = next(it)
            gen.truth(t)
            gen.ensemble(t)

        ms = _cpu_ms(hour, args.repeat)
        print(f"weather, one hour (truth + ensemble), block 1 of {nb} ({c1} columns): {ms:.1f} ms")
    gen = WeatherGenerator(*wargs)
    shift = gen._waves[0] * 0.1
    ms = _cpu_ms(lambda: np.cos(shift) @ gen._sin_wave0 - np.sin(shift) @ gen._cos_wave0, args.repeat)
    print(f"  of which the synoptic term made for every column: {ms:.2f} ms")
    pert = perturbation(cfg)
    for nb in args.blocks:
        c1 = int(balanced_bounds(g.ncol, nb)[1])
        fp = ForcingPerturber(pert, g, [0], seed=1, columns=slice(0, c1))

        def draw(fp=fp):  # a perturber alone shares no draw: each advance draws
            fp.advance(3600.0)

        r0, r1 = g.column_rows(0, c1)
        ms = _cpu_ms(draw, args.repeat)
        print(
            f"perturbation draw + AR step, one member, block 1 of {nb} (rows {r0}..{r1} of {g.shape[0]}): {ms:.1f} ms"
        )
    obs = SatelliteObserver(g, cfg.obs, 1)
    ms = _cpu_ms(lambda: obs.error(3), args.repeat)
    print(
        f"synthetic retrieval error of one analysis (whole domain, white + {cfg.obs.corr_length_km:g} km field): {ms:.1f} ms"
    )
    ms = _cpu_ms(lambda: gaussian_random_field(g, cfg.forcing.bias_field_km, np.random.default_rng(0)), 1)
    print(f"weather's rain-bias field (whole, once per run): {ms:.0f} ms")


if __name__ == "__main__":
    main()
