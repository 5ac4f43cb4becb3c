"""Where an experiment's CPU time goes: run ``landimg.cycle`` under cProfile (CPU-time clock) on every rank.

    python bench/profile_run.py --prof runs/prof-global -- --set domain.preset=global1deg \\
        --set experiment.spinup_days=30 --set experiment.days=2 --set ensemble.members=4 --out runs/global-2d
    mpirun -n 2 python -m mpi4py bench/profile_run.py --prof runs/prof-global-2r -- ...   # one profile per rank

Arguments after ``--`` go to ``python -m landimg.cycle``. Each rank writes ``PREFIX.rankN.prof`` (open it
with ``python -m pstats`` or snakeviz) and prints one line: its CPU seconds and the share of the column
model (``ColumnModel.step``), the weather (``WeatherGenerator`` truth/ensemble), the forcing perturbations
(``ForcingPerturber`` advance/apply), the analyses (``Ensemble.assimilate``), the netCDF output, the
restart checkpoints and the plots (``experiment_plots``). ``--report`` prints the shares of existing
profiles again. The profiler's clock is ``time.process_time``, so other jobs on a shared machine do
not inflate the figures (waiting in MPI collectives is not counted either).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

# (label, file name ending, function names): cumulative CPU of the outermost matching calls
_PARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model", "model/column.py", ("step",)),
    ("weather", "experiment/forcing.py", ("truth", "ensemble")),
    ("perturbations", "ensemble/perturb.py", ("advance", "apply")),
    ("analysis", "ensemble/ensemble.py", ("assimilate",)),
    ("output", "experiment/output.py", ("write_netcdf",)),
    ("restarts", "experiment/restart.py", ("write_checkpoint",)),
    ("plots", "experiment/plot.py", ("experiment_plots",)),
)


def _shares(stats: pstats.Stats) -> tuple[float, dict[str, float]]:
    total = stats.total_tt
    out = dict.fromkeys((p[0] for p in _PARTS), 0.0)
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        for label, ending, names in _PARTS:
            if filename.replace("\\", "/").endswith(ending) and func in names:
                out[label] += ct
    return total, out


def main(argv: list[str] | None = None) -> int:
    """Profile one experiment run; returns its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prof", required=True, help="profile file prefix (PREFIX.rankN.prof)")
    p.add_argument(
        "--report", action="store_true", help="only print the shares of existing PREFIX.rank*.prof"
    )
    args = p.parse_args(argv[:cut])
    if args.report:
        import glob

        for path in sorted(glob.glob(f"{args.prof}.rank*.prof")):
            print(f"[profile] {_line(path)}")
        return 0
    from landimg.experiment.cycle import main as cycle_main
    from landimg.parallel import default_comm

    rank = default_comm().Get_rank()
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    status = cycle_main(argv[cut + 1 :])
    prof.disable()
    path = f"{args.prof}.rank{rank}.prof"
    prof.dump_stats(path)
    print(f"[profile] rank {rank}: {_line(path)}", flush=True)
    return status


def _line(path: str) -> str:
    """CPU seconds and the shares of the parts of the profile in ``path``."""
    total, parts = _shares(pstats.Stats(path))
    shares = " ".join(f"{k} {v:.1f} s ({100 * v / total:.0f} %)" for k, v in parts.items())
    return f"{total:.1f} CPU s; {shares}; profile {path}"


if __name__ == "__main__":
    sys.exit(main())
