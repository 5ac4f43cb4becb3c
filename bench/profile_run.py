"""Where an experiment's CPU time goes: run ``landimg.cycle`` under a profiler on every rank.

    python bench/profile_run.py --prof runs/prof-global -- --set domain.preset=global1deg \\
        --set experiment.spinup_days=30 --set experiment.days=2 --set ensemble.members=4 --out runs/global-2d
    python bench/profile_run.py --sampler py-spy --prof runs/spy-global -- ...              # sampling profiler
    mpirun -n 2 python -m mpi4py bench/profile_run.py --prof runs/prof-global-2r -- ...   # one profile per rank

Arguments after ``--`` go to ``python -m landimg.cycle``. Each rank prints one line: its CPU seconds and
the share of the column model (``ColumnModel.step``), the weather (``WeatherGenerator`` truth/ensemble),
the forcing perturbations (``ForcingPerturber`` advance/apply), the analyses (``Ensemble.assimilate``),
the netCDF output, the restart checkpoints and the plots (``experiment_plots``); then the same parts from
the run's own CPU timers (``timing_cpu_seconds`` of ``summary.json``, rank 0; needs ``--out``).

Two profilers, which disagree in a known direction:

* ``--sampler cprofile`` (default): deterministic, ``cProfile`` with a CPU-time clock
  (``time.process_time``: other jobs on a shared machine do not inflate it, waiting in MPI collectives is
  not counted). Every Python call pays the profiler's hook, so call-heavy Python code (matplotlib, the
  bookkeeping) is inflated several-fold while the compiled column model, one call per step, is not: the
  model's share is underestimated. Writes ``PREFIX.rankN.prof`` (``python -m pstats``, snakeviz).
* ``--sampler py-spy``: statistical, ``py-spy record`` attached to each rank (100 samples/s of the
  stacks, idle threads not counted, the process not paused: ``--nonblocking``); no per-call overhead, so
  the shares are those of the unprofiled run, within sampling noise (~1/sqrt(samples)). Writes
  ``PREFIX.rankN.txt`` (collapsed stacks; ``flamegraph.pl`` or speedscope read them). Needs ``py-spy``
  (``pip install py-spy``; the ``bench`` extra) and permission to ptrace the process (root, or
  ``kernel.yama.ptrace_scope = 0``).

``--report`` prints the shares of existing profiles (``.prof`` and ``.txt``) again.
"""

from __future__ import annotations

import argparse
import cProfile
import glob
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# (label, file name ending, function names): time of the outermost matching calls
_PARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("model", "model/column.py", ("step",)),
    ("weather", "experiment/forcing.py", ("truth", "ensemble")),
    ("perturbations", "ensemble/perturb.py", ("advance", "apply")),
    ("analysis", "ensemble/ensemble.py", ("assimilate",)),
    ("output", "experiment/output.py", ("write_netcdf",)),
    ("restarts", "experiment/restart.py", ("write_checkpoint",)),
    ("plots", "experiment/plot.py", ("experiment_plots",)),
)


def _label(filename: str, func: str) -> str | None:
    filename, func = filename.replace("\\", "/"), func.rpartition(".")[2]  # py-spy: "ColumnModel.step"
    for label, ending, names in _PARTS:
        if filename.endswith(ending) and func in names:
            return label
    return None


def _cprofile_shares(path: str) -> tuple[float, dict[str, float]]:
    """Total CPU seconds and the cumulative seconds of each part in a cProfile file."""
    stats = pstats.Stats(path)
    out = dict.fromkeys((p[0] for p in _PARTS), 0.0)
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if (label := _label(filename, func)) is not None:
            out[label] += ct
    return stats.total_tt, out


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _sampled_shares(path: str, rate: float) -> tuple[float, dict[str, float]]:
    """Sampled seconds (samples / rate) in all and per part in py-spy's raw (collapsed-stack) output: a
    stack counts to the part of its outermost matching frame."""
    out = dict.fromkeys((p[0] for p in _PARTS), 0.0)
    total = 0.0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        seconds = int(count) / rate
        total += seconds
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            if m and (label := _label(m["file"], m["func"])) is not None:
                out[label] += seconds
                break
    return total, out


def _line(path: str, rate: float = 100.0) -> str:
    """CPU seconds and the shares of the parts of the profile in ``path`` (.prof or py-spy .txt)."""
    if path.endswith(".txt"):
        total, parts = _sampled_shares(path, rate)
        what = "sampled CPU s"
    else:
        total, parts = _cprofile_shares(path)
        what = "CPU s"
    shares = " ".join(f"{k} {v:.1f} s ({100 * v / max(total, 1e-9):.0f} %)" for k, v in parts.items())
    return f"{total:.1f} {what}; {shares}; profile {path}"


def _timers_line(cycle_args: list[str]) -> str | None:
    """The run's own CPU breakdown (``timing_cpu_seconds`` of ``OUT/summary.json``), as shares."""
    if "--out" not in cycle_args:
        return None
    path = Path(cycle_args[cycle_args.index("--out") + 1]) / "summary.json"
    if not path.exists():
        return None
    t = json.loads(path.read_text()).get("timing_cpu_seconds")
    if not t:
        return None
    total = t["total"]
    shares = " ".join(f"{k} {v:.1f} s ({100 * v / total:.0f} %)" for k, v in t.items() if k != "total")
    return f"rank 0 timers: {total:.1f} CPU s; {shares}"


def _with_pyspy(path: str, rate: float, run) -> int:
    """Run ``run()`` while ``py-spy record`` samples this process into ``path``."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise SystemExit("py-spy not found: pip install py-spy (the bench extra)")
    cmd = [exe, "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", str(int(rate)),
           "--nonblocking", "--output", path]  # fmt: skip
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach before the run starts
    if spy.poll() is not None:
        raise SystemExit(f"py-spy failed: {spy.stderr.read().decode().strip()}")
    try:
        return run()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(timeout=120)


def main(argv: list[str] | None = None) -> int:
    """Profile one experiment run; returns its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prof", required=True, help="profile file prefix (PREFIX.rankN.prof or .txt)")
    p.add_argument("--sampler", choices=("cprofile", "py-spy"), default="cprofile", help="profiler")
    p.add_argument("--rate", type=float, default=100.0, help="py-spy samples per second")
    p.add_argument("--report", action="store_true", help="only print the shares of existing profiles")
    args = p.parse_args(argv[:cut])
    cycle_args = argv[cut + 1 :]
    if args.report:
        for path in sorted(glob.glob(f"{args.prof}.rank*.prof") + glob.glob(f"{args.prof}.rank*.txt")):
            print(f"[profile] {_line(path, args.rate)}")
        return 0
    from landimg.cycle import main as cycle_main
    from landimg.parallel import default_comm

    rank = default_comm().Get_rank()
    if args.sampler == "py-spy":
        path = f"{args.prof}.rank{rank}.txt"
        status = _with_pyspy(path, args.rate, lambda: cycle_main(cycle_args))
    else:
        path = f"{args.prof}.rank{rank}.prof"
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        status = cycle_main(cycle_args)
        prof.disable()
        prof.dump_stats(path)
    print(f"[profile] rank {rank}: {_line(path, args.rate)}", flush=True)
    if rank == 0 and (timers := _timers_line(cycle_args)):
        print(f"[profile] {timers}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
