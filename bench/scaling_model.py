"""The cost model of docs/scaling.md: fitted to measured runs, projected to a global 0.1 degree cycle.

    PYTHONPATH=python .venv/bin/python bench/scaling_model.py runs/g1.json runs/g05.json runs/g025.json
    PYTHONPATH=python .venv/bin/python bench/scaling_model.py --nodes 1 4 16 64 --method curvelet_enkf -- ...

The inputs are ``bench/rank_usage.py --json`` files of the same experiment at growing resolution on the
same ``1 x K`` layout (one member group: every rank draws every member's perturbations; issue 17 item 6:
global 1, 0.5 and 0.25 deg, 8 members, openloop + curvelet_enkf + point_letkf, 10-day spin-up, 2 days,
``1 x 4``). Fitted, and printed per run and as a power law in the grid size where it grows:

* the column model: CPU microseconds per column step (one column, one member, one step), all ranks;
* the forcing (weather and moving it to the model's blocks): microseconds per column-hour;
* a member's forcing-perturbation draw (one per member and hour): CPU milliseconds on the busiest rank;
* the point LETKF: CPU seconds per analysis, summed over the ranks, per column and per observation;
* the curvelet EnKF: CPU seconds per member and analysis (the members are spread over the ranks);
* the restart: bytes per column and member; the transpositions: bytes sent per column-member and analysis.

Then the projection: a global 0.1 deg grid (its land columns from the built-in mask), ``--members`` (24),
an analysis every ``--interval`` hours (3), one ``--method``, on ``N`` nodes of ``--cores`` (64) ranks of
one thread, the best ``G x K`` layout for each ``N``: per simulated day, the busiest rank's seconds of
model, forcing, perturbations and analyses, the bytes each rank sends, the restart, the memory per rank
(``landimg.experiment.memory.estimate_memory``, calibrated on the same runs) and what limits it. The
LETKF's cost per column grows with the members as measured by ``bench/letkf_cost.py`` (``--letkf-members``,
default 3.7x from 8 to 24 members, conus025); its neighbourhoods are full (``max_obs`` = 64) from 0.25 deg
on. The perturbation draw keeps a whole-image part on every rank (the spectrum and its transform along
y: 28 % of a whole draw, ``bench/world_costs.py``) and the busiest block spans about twice its share of
rows. Network and disks are not modelled beyond the bytes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

_STATE_BYTES = 2 * 10 * 8  # a column-member's layer values forward and its increments back (float64)
_WHOLE_DRAW_SHARE = 0.28  # of a member's whole draw, made by every rank whatever its block (world_costs)


def _load(path: str) -> dict:
    tree = json.loads(Path(path).read_text())
    run, ranks = tree["run"], tree["ranks"]
    cfg = json.loads(Path(run["out"], "summary.json").read_text())["config"]
    e, ens, an = cfg["experiment"], cfg["ensemble"], cfg["analysis"]
    nmeth, nmem, p = len(an["methods"]), ens["members"], run["ranks"]
    groups = run["layout"]["member_groups"]
    per_day = 24.0 / an.get("interval_hours", 24)
    spread = min(ens["spread_days"], e["spinup_days"])
    ny, nx = run["shape"]
    return {
        "path": path, "ncol": run["land_columns"], "cells": ny * nx, "ny": ny, "ranks": p, "nmem": nmem,
        "cpu": {k: [r["cpu_parts"].get(k, 0.0) for r in ranks] for k in ("model", "forcing", "perturbations")},
        "column_steps": run["column_steps"], "hours": 24 * (e["spinup_days"] + e["days"]),
        # every rank of a 1 x K layout draws its group's members each hour of the per-member spin-up and,
        # for every method, of the days
        "draws": math.ceil(nmem / groups) * 24 * (spread + e["days"] * nmeth),
        "analyses": e["days"] * per_day, "analysis_cpu": run["analysis_cpu_seconds"], "obs": run["obs_per_day"],
        "restart": run["restart_mb"] * 2**20, "members_held": nmem * nmeth + 1,
        "sent": [r.get("sent_mb", {}).get("transposition") for r in ranks], "nmeth_moved": nmeth - 1,
    }  # fmt: skip


def _power(x: list[float], y: list[float]) -> float:
    """Exponent of the least-squares power law y ~ x^a (over the last two points: the growth now)."""
    return float(np.polyfit(np.log(x[-2:]), np.log(y[-2:]), 1)[0])


def fit(runs: list[dict]) -> dict:
    """The cost coefficients of the runs (each a list over the runs, in order) and their growth exponents."""
    f: dict = {"ncol": [r["ncol"] for r in runs], "cells": [r["cells"] for r in runs]}
    f["model_us"] = [1e6 * sum(r["cpu"]["model"]) / r["column_steps"] for r in runs]
    f["forcing_us"] = [1e6 * sum(r["cpu"]["forcing"]) / (r["ncol"] * r["hours"]) for r in runs]
    f["draw_ms"] = [1e3 * max(r["cpu"]["perturbations"]) / r["draws"] for r in runs]
    letkf = [r["analysis_cpu"]["point_letkf"] * r["ranks"] / r["analyses"] for r in runs]
    f["letkf_core_s"] = letkf
    f["letkf_us_per_column"] = [1e6 * c / r["ncol"] for c, r in zip(letkf, runs, strict=True)]
    f["letkf_us_per_obs"] = [1e6 * c / r["obs"] for c, r in zip(letkf, runs, strict=True)]  # one a day
    f["curvelet_member_s"] = [
        r["analysis_cpu"]["curvelet_enkf"] / r["analyses"] / math.ceil(r["nmem"] / r["ranks"]) for r in runs
    ]
    f["curvelet_us_per_pixel"] = [
        1e6 * c / r["cells"] for c, r in zip(f["curvelet_member_s"], runs, strict=True)
    ]
    f["restart_b"] = [r["restart"] / (r["ncol"] * r["members_held"]) for r in runs]
    moved = []
    for r in runs:
        if all(s is not None for s in r["sent"]):
            per_rank = max(r["sent"]) * 2**20 / (r["analyses"] * r["nmeth_moved"])
            moved.append(per_rank / (r["ncol"] / r["ranks"] * r["nmem"]))
    f["moved_b"] = moved
    f["a_draw"] = _power(f["cells"], f["draw_ms"])
    f["a_curvelet"] = _power(f["cells"], f["curvelet_member_s"])
    f["a_letkf"] = _power(f["ncol"], letkf)
    return f


def _layouts(p: int, nmem: int) -> list[tuple[int, int]]:
    return [(g, p // g) for g in range(1, min(p, nmem) + 1) if p % g == 0]


def project(f: dict, args: argparse.Namespace, ref: dict) -> list[dict]:
    """Per node count: the best layout's busiest-rank seconds per simulated day, bytes and memory."""
    from landimg.experiment.config import load_config
    from landimg.experiment.memory import estimate_memory, estimated_land_columns

    res, nmem = args.res, args.members
    ny, nx = int(round(150 / res)), int(round(360 / res))
    ncol, cells = estimated_land_columns(-60.0, -180.0, res, ny, nx), ny * nx
    per_day = 24 // args.interval
    grow = cells / f["cells"][-1]
    draw_whole = (
        f["draw_ms"][-1] * grow ** f["a_draw"] / (_WHOLE_DRAW_SHARE + (1 - _WHOLE_DRAW_SHARE) * 2 / 4)
    )
    member_s = f["curvelet_member_s"][-1] * grow ** f["a_curvelet"]
    letkf_col_s = f["letkf_us_per_column"][-1] * 1e-6 * args.letkf_members  # neighbourhoods full already
    cfg = load_config(None, ["domain.bbox=[-60, 90, -180, 180]", f"domain.res={res}", f"ensemble.members={nmem}",
                             f'analysis.methods=["{args.method}"]', f"analysis.interval_hours={args.interval}",
                             "experiment.days=1", f"point_letkf.radius_km={args.radius_km}"])  # fmt: skip
    rows = []
    for n in args.nodes:
        p = n * args.cores
        best = None
        for g, k in _layouts(p, nmem):
            nloc = math.ceil(nmem / g)
            part = {
                "model": f["model_us"][-1] * 1e-6 * 24 * math.ceil(ncol / k) * nloc,
                "forcing": f["forcing_us"][-1] * 1e-6 * 24 * math.ceil(ncol / p),
                "perturbations": 24 * nloc * 1e-3 * draw_whole
                * (_WHOLE_DRAW_SHARE + (1 - _WHOLE_DRAW_SHARE) * min(1.0, 2 / k)),
            }  # fmt: skip
            own = math.ceil(ncol / p)
            if args.method == "point_letkf":  # the owned columns are analysed; the halo only read
                part["analysis"] = per_day * letkf_col_s * own
            else:  # whole members, spread over the ranks; a member's solve is on one rank
                part["analysis"] = per_day * member_s * math.ceil(nmem / p)
            wall = sum(part.values())
            if best is None or wall < best[0]:
                best = (wall, g, k, part)
        wall, g, k, part = best
        est = estimate_memory(cfg, (ny, nx), ncol, p, args.cores, column_blocks=k)
        own = math.ceil(ncol / p)
        if args.method == "point_letkf":  # every member of the block and of its halo (a latitude band) comes
            halo = 2 * math.ceil(args.radius_km / (res * 111.2)) * math.ceil(ncol / ny)
            held = min(ncol, own + halo)
            sent = per_day * _STATE_BYTES / 2 * nmem * (held + own)
        else:  # whole members: each column-member of the rank's model block goes and comes back
            sent = per_day * _STATE_BYTES * math.ceil(ncol / k) * math.ceil(nmem / g)
        rows.append({
            "nodes": n, "ranks": p, "layout": f"{g} x {k}", "wall_s_per_day": wall, **part,
            "limit": max(part, key=part.get), "sent_mb_per_rank_day": sent / 2**20,
            "restart_gb": f["restart_b"][-1] * ncol * nmem / 2**30, "rank_gb": est.other_rank / 2**30,
            "rank0_gb": est.per_rank / 2**30, "node_gb": est.per_node / 2**30, "ncol": ncol, "cells": cells,
            "member_s": member_s, "draw_whole_ms": draw_whole, "parts": est.parts,
        })  # fmt: skip
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="bench/rank_usage.py --json files, coarsest first")
    p.add_argument("--res", type=float, default=0.1)
    p.add_argument("--members", type=int, default=24)
    p.add_argument("--interval", type=int, default=3, help="hours between analyses")
    p.add_argument("--method", default="point_letkf", choices=["point_letkf", "curvelet_enkf"])
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--cores", type=int, default=64)
    p.add_argument("--radius-km", type=float, default=500.0, help="LETKF localization radius (its halo)")
    p.add_argument("--letkf-members", type=float, default=3.7, help="LETKF cost per column, 24 / 8 members")
    args = p.parse_args()
    runs = [_load(r) for r in args.runs]
    f = fit(runs)
    print("fitted per run (" + ", ".join(f"{r['ncol']} columns" for r in runs) + "):")
    for key in ("model_us", "forcing_us", "draw_ms", "letkf_core_s", "letkf_us_per_column", "letkf_us_per_obs",
                "curvelet_member_s", "curvelet_us_per_pixel", "restart_b", "moved_b"):  # fmt: skip
        print(f"  {key:22s} " + "  ".join(f"{v:.4g}" for v in f[key]))
    print(f"  growth exponents (last step): perturbation draw ~ cells^{f['a_draw']:.2f}, curvelet per member ~ "
          f"cells^{f['a_curvelet']:.2f}, LETKF per analysis ~ columns^{f['a_letkf']:.2f}")  # fmt: skip
    rows = project(f, args, runs[-1])
    r0 = rows[0]
    print(f"projection: {args.res} deg global ({r0['ncol']} land columns, {r0['cells']} cells), {args.members} "
          f"members, an analysis every {args.interval} h, {args.method}; a member's whole perturbation draw "
          f"{r0['draw_whole_ms']:.0f} ms, a curvelet member analysis {r0['member_s']:.0f} s; restart "
          f"{r0['restart_gb']:.1f} GB a day")  # fmt: skip
    print(
        "| nodes | ranks | G x K | s per simulated day (busiest rank) | model | forcing | perturbations | "
        "analyses | limit | MB sent per rank a day | GB per rank (rank 0) | GB per node |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['nodes']} | {r['ranks']} | {r['layout']} | {r['wall_s_per_day']:.1f} | {r['model']:.1f} | "
              f"{r['forcing']:.2f} | {r['perturbations']:.1f} | {r['analysis']:.1f} | {r['limit']} | "
              f"{r['sent_mb_per_rank_day']:.0f} | {r['rank_gb']:.2f} ({r['rank0_gb']:.2f}) | {r['node_gb']:.0f} |")  # fmt: skip
    big = rows[-1]["parts"]
    print(f"memory estimate of rank 0 on {rows[-1]['nodes']} nodes (GB): "
          + ", ".join(f"{k} {v / 2**30:.2f}" for k, v in sorted(big.items(), key=lambda kv: -kv[1])))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
