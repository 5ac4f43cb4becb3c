"""The background's bias in finished runs: observation space and per layer.

docs/validation.md quotes these numbers (G7 on the 0.25 degree boxes; why the curvelet EnKF's bias stage costs
the deep layers). For every run directory given and every method in it, over the days from ``--from-day``:

* observation space (``metrics.nc``): the mean O-B, the registered O-B consistency
  ``omb_rms / sqrt(spread_b^2 + obs_err^2)`` and the same with each day's mean innovation removed
  (:func:`_study_stats.debiased_consistency`);
* the analysis spread / error at 0-10 cm (G6) and the same with each day's land mean error removed
  (:func:`_study_stats.spread_error`);
* per layer (``analysis.nc``): the land mean of the analysis mean minus the truth on the first and the last
  scored day and its mean over the scored days, and the per-pixel temporal std of that error (mean over land).

    python bench/run_bias.py runs/study18d/score/default-box025/s500[1-3] --from-day 11
    python bench/run_bias.py runs/study18f/tune/default-conus1/curvelet_enkf/{no-deep,no-deep-bias}/s1001
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _study_stats import debiased_consistency, spread_error

LAYERS = ("0-10cm", "10-40cm", "40-100cm")


def run_bias(run: Path, from_day: int) -> dict[str, dict[str, object]]:
    """``{method: {"omb_mean", "consistency", "consistency_debiased", "layers": {layer: {...}}}}`` of one run."""
    import xarray as xr

    i0 = from_day - 1
    methods = list(json.loads((run / "summary.json").read_text())["methods"])
    debiased = debiased_consistency(run / "metrics.nc", methods, i0)
    spread = spread_error(run / "analysis.nc", methods, i0)
    out: dict[str, dict[str, object]] = {}
    with xr.open_dataset(run / "metrics.nc") as mt, xr.open_dataset(run / "analysis.nc") as an:
        land = an["land"].values.astype(bool)
        truth = an["sm_truth"].values[i0:][:, :, land]
        for m in methods:
            err = an[f"sm_mean_{m}"].values[i0:][:, :, land] - truth  # (days, layer, pixel)
            out[m] = {
                "omb_mean": float(np.nanmean(mt[f"omb_mean_{m}"].values[i0:])),
                "consistency": float(np.nanmean(mt[f"consistency_{m}"].values[i0:])),
                "consistency_debiased": debiased.get(m, float("nan")),
                "spread_error": spread.get(m, (float("nan"),) * 2)[0],
                "spread_error_debiased": spread.get(m, (float("nan"),) * 2)[1],
                "layers": {
                    ln: {
                        "mean_error_first": float(np.nanmean(err[0, j])),
                        "mean_error_last": float(np.nanmean(err[-1, j])),
                        "mean_error": float(np.nanmean(err[:, j])),
                        "error_time_std": float(np.nanmean(np.nanstd(err[:, j], axis=0))),
                    }
                    for j, ln in enumerate(LAYERS)
                },
            }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (summary.json, metrics.nc, analysis.nc)")
    p.add_argument("--from-day", type=int, default=11, help="first scored day (1-based)")
    a = p.parse_args(argv)
    print("run | method | mean O-B | O-B consistency | de-biased | spread/error 0-10 cm | de-biased | layer: "
          "mean error first -> last day (mean), temporal std of the error")  # fmt: skip
    for run in a.runs:
        for m, v in run_bias(run, a.from_day).items():
            layers = "; ".join(
                f"{ln} {x['mean_error_first']:+.4f} -> {x['mean_error_last']:+.4f} ({x['mean_error']:+.4f}), "
                f"{x['error_time_std']:.5f}"
                for ln, x in v["layers"].items()  # type: ignore[union-attr]
            )
            print(f"{run} | {m} | {v['omb_mean']:+.4f} | {v['consistency']:.2f} | "
                  f"{v['consistency_debiased']:.2f} | {v['spread_error']:.2f} | {v['spread_error_debiased']:.2f} | "
                  f"{layers}")  # fmt: skip


if __name__ == "__main__":
    main()
