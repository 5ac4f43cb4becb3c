"""The memory estimate against the measured peak: run ``landimg.cycle`` and print both, per rank.

    python bench/memory_estimate.py -- --set domain.preset=global1deg --set experiment.days=2 \\
        --set experiment.spinup_days=10 --out runs/mem-global --quiet
    mpirun -n 2 python -m mpi4py bench/memory_estimate.py -- ...      # one line per rank

Arguments after ``--`` go to ``python -m landimg.cycle`` (``--out`` is required). Each rank runs the
cycle in this process, then reports its peak resident set size (``getrusage`` ``ru_maxrss``: the whole
process, interpreter and libraries included) beside what ``landimg.experiment.memory.estimate_memory``
says for that rank (rank 0 holds the small daily record and makes the day's images; the other ranks do
not), on the run's layout (``parallel.column_blocks``). Rank 0
prints one line per rank and the ratio estimate / measured; ``--json FILE`` appends the numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def main() -> int:
    argv = sys.argv[1:]
    ours, cycle_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="append the numbers to this JSON-lines file")
    args = ap.parse_args(ours)

    from landimg.experiment.cli import _parser
    from landimg.experiment.cli import main as cycle
    from landimg.experiment.config import load_config
    from landimg.experiment.domain import build_grid
    from landimg.experiment.memory import estimate_memory, ranks_on_node
    from landimg.layout import resolve_column_blocks
    from landimg.parallel import default_comm

    comm = default_comm()
    code = cycle(cycle_args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    parsed = _parser().parse_args(cycle_args)
    cfg = load_config(parsed.config, parsed.set)
    grid = build_grid(cfg)
    blocks = resolve_column_blocks(cfg.parallel.column_blocks, comm.Get_size(), cfg.ensemble.members, grid.ncol)
    est = estimate_memory(cfg, grid.shape, grid.ncol, comm.Get_size(), ranks_on_node(comm), blocks)
    rank = comm.Get_rank()
    mine = est.per_rank if rank == 0 else est.other_rank
    rows = comm.gather((rank, peak, mine), root=0)
    if rank != 0:
        return code
    mb = 2.0**20
    label = " ".join(cycle_args)
    print(f"{label}\n  grid {grid.shape}, {grid.ncol} land columns, {comm.Get_size()} rank(s), exit {code}")
    for r, p, e in rows:
        print(f"  rank {r}: measured peak {p / mb:8.0f} MB   estimate {e / mb:8.0f} MB   ratio {e / p:5.2f}")
    print("  parts (rank 0): " + ", ".join(f"{k} {v / mb:.0f}" for k, v in est.parts.items()))
    if args.json:
        entry = {"args": cycle_args, "shape": list(grid.shape), "ncol": int(grid.ncol), "ranks": comm.Get_size(),
                 "measured_mb": [p / mb for _, p, _ in rows], "estimate_mb": [e / mb for _, _, e in rows],
                 "parts_mb": {k: v / mb for k, v in est.parts.items()}}  # fmt: skip
        with open(args.json, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
