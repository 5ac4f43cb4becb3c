"""Single analyses with swath gaps: the curvelet EnKF's B variants (curvelet diagonal, hybrid) and the
two-stage bias analysis, scored in the gaps against the truth, with the CPU time of each analysis.

The set-up is that of tests/test_gap_acceptance.py (48 x 96 image, 1 km cells, Gaussian-correlated
background error of length 10 cells, 16 members, swaths over 40 % of the image) plus, for the bias
rows, a constant background bias of 0.03 and a short cycle (fresh background errors, moving swaths).

    PYTHONPATH=python python bench/hybrid_gap.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from landimg.analysis import CurveletEnKF
from test_gap_acceptance import SHAPE, _case, _fields, _scores, _swaths

_RG = {"layer_increments": "regression"}  # one layer: the rule plays no part; "analysis" refuses hybrid B
VARIANTS = {
    "curvelet diagonal B (default)": {},
    "hybrid beta=0.25 r=30km": {"hybrid_beta": 0.25, "hybrid_radius_km": 30.0, **_RG},
    "hybrid beta=0.5 r=30km": {"hybrid_beta": 0.5, "hybrid_radius_km": 30.0, **_RG},
    "hybrid beta=0.5 r=15km": {"hybrid_beta": 0.5, "hybrid_radius_km": 15.0, **_RG},
    "hybrid beta=1 r=30km": {"hybrid_beta": 1.0, "hybrid_radius_km": 30.0, **_RG},
}


def _single(seeds: list[int]) -> None:
    print(f"{'variant':34s} {'gap rms':>8s} {'gap corr':>8s} {'obs rms':>8s} {'CG it':>6s} {'CPU s':>6s}")
    for name, kw in VARIANTS.items():
        rows = []
        for seed in seeds:
            truth, xb, y, sigma, valid = _case(seed)
            t0 = time.process_time()
            xa, diag = CurveletEnKF(**kw).update(xb, y, sigma, seed=seed)
            cpu = time.process_time() - t0
            rows.append(
                (*_scores(xa, truth, ~valid), _scores(xa, truth, valid)[0], diag["cg_iterations"], cpu)
            )
        m = np.mean(rows, axis=0)
        print(f"{name:34s} {m[0]:8.4f} {m[1]:8.3f} {m[2]:8.4f} {m[3]:6.1f} {m[4]:6.2f}")
    for seed in seeds:
        truth, xb, _, _, valid = _case(seed)
        rms, corr = _scores(xb, truth, ~valid)
        print(f"seed {seed}: background gap rms {rms:.4f} corr {corr:.3f}")


def _bias_cycle(seed: int, n: int = 10, bias: float = 0.03) -> None:
    rng = np.random.default_rng(seed)
    methods = {
        "standard": CurveletEnKF(),
        "two-stage gamma=0.1": CurveletEnKF(bias_correction=True, bias_gamma=0.1),
        "two-stage gamma=0.3": CurveletEnKF(bias_correction=True, bias_gamma=0.3),
    }
    states = {k: {} for k in methods}
    out = {k: [] for k in methods}
    for t in range(n):
        truth = 0.3 + 0.03 * _fields(rng, 1, 10.0)[0]
        anom = 0.04 * _fields(rng, 16, 10.0)
        xb = truth + bias + 0.04 * _fields(rng, 1, 10.0)[0] + anom - anom.mean(axis=0)
        valid = np.roll(_swaths(24.0), 7 * t, axis=1)
        y = np.where(valid, truth + 0.02 * rng.standard_normal(SHAPE), np.nan)
        for k, m in methods.items():
            t0 = time.process_time()
            xa, d = m.update(xb, y, 0.02, seed=t, state=states[k])
            cpu = time.process_time() - t0
            gap = ~valid
            err = xa.mean(axis=0)[gap] - truth[gap]
            out[k].append((float(np.mean(err)), float(np.sqrt(np.mean(err**2))),
                           float(np.corrcoef(xa.mean(axis=0)[gap], truth[gap])[0, 1]),
                           d.get("bias_mean", 0.0), cpu))  # fmt: skip
    print(f"bias cycle, seed {seed}, true bias {bias}, {n} analyses; means over the last {n // 2}:")
    print(f"{'':22s} {'gap bias':>9s} {'gap rms':>8s} {'gap corr':>8s} {'b est':>7s} {'CPU s':>6s}")
    for k, rows in out.items():
        m = np.mean(rows[n - n // 2 :], axis=0)
        print(f"{k:22s} {m[0]:9.4f} {m[1]:8.4f} {m[2]:8.3f} {m[3]:7.4f} {m[4]:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--skip-single", action="store_true")
    a = ap.parse_args()
    if not a.skip_single:
        _single(a.seeds)
    _bias_cycle(a.seeds[0])


if __name__ == "__main__":
    main()
