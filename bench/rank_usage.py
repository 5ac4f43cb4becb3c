"""Per-rank process CPU seconds and peak memory of an experiment, with the memory at points of the run.

    python bench/rank_usage.py --compare 2:2 4:4 -- --set domain.preset=global1deg \\
        --set ensemble.members=8 --set experiment.spinup_days=3 --set experiment.days=2 \\
        --set output.plots=false --quiet --out runs/usage
    mpirun -n 2 python -m mpi4py bench/rank_usage.py -- --set parallel.column_blocks=2 ... --out runs/u2

Without ``--compare``: runs ``python -m landimg.cycle`` (arguments after ``--``) on every rank of this
launch and prints one line per rank: its process CPU seconds (user + system, ``getrusage``; includes MPI's
busy polling while it waits), its peak resident memory (``VmHWM`` of ``/proc/self/status``), and ``VmHWM``
/ ``VmRSS`` after the set-up, the spin-up, each day's forecast and analyses, each checkpoint and the final
outputs (where the memory goes); ``--json FILE`` writes the same per rank (rank 0 writes every rank's). ``--trace``: tracemalloc too (slower):
at each point the live Python/numpy memory by the landimg file (and line) that allocated it (the innermost
landimg frame of each allocation), and the traced peak since the previous point.

``--compare R:K ...``: the driver. Runs the experiment on one rank without mpirun, then on ``R`` ranks
with ``parallel.column_blocks = K`` (``mpirun -n R``, one thread per rank), one after the other, each
into its own output directory (``--out`` + ``-1``, ``-RxK``), and prints the largest rank's CPU seconds
and peak memory of each beside the one-rank run's, as ratios (issue 17 item 6: CPU of 1 x 2 <= 0.6,
memory of 1 x 4 <= 0.40 of one rank).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_KB = 1024.0


def _status() -> dict[str, float]:
    """VmHWM and VmRSS of this process, MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = float(value.split()[0]) / _KB
    return out


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _by_landimg_line(top: int = 6) -> list[tuple[str, float]]:
    """Live traced memory (MB) by the innermost landimg frame (file:line) of each allocation, the largest."""
    import tracemalloc

    sizes: dict[str, float] = {}
    for trace in tracemalloc.take_snapshot().traces:
        where = "other"
        for frame in reversed(trace.traceback):  # the innermost (most recent) frame first
            if "/landimg/" in frame.filename:
                where = f"{frame.filename.split('/landimg/')[-1]}:{frame.lineno}"
                break
        sizes[where] = sizes.get(where, 0.0) + trace.size / _KB / _KB
    return sorted(((k, round(v, 1)) for k, v in sizes.items()), key=lambda kv: -kv[1])[:top]


class _Points:
    """The memory (and CPU) of this rank after named points of the run."""

    def __init__(self, trace: bool = False) -> None:
        self.rows: list[tuple[str, float, float, float]] = []
        self.traced: list[tuple[str, float, float, list[tuple[str, float]]]] = []
        self.trace = trace
        if trace:
            import tracemalloc

            tracemalloc.start(25)

    def mark(self, name: str) -> None:
        s = _status()
        self.rows.append(
            (name, round(_cpu(), 2), round(s.get("VmHWM", 0.0), 1), round(s.get("VmRSS", 0.0), 1))
        )
        if self.trace:
            import tracemalloc

            current, peak = tracemalloc.get_traced_memory()
            self.traced.append(
                (name, round(current / _KB / _KB, 1), round(peak / _KB / _KB, 1), _by_landimg_line())
            )
            tracemalloc.reset_peak()

    def wrap(self, module, name: str, label) -> None:
        """Mark after every call of ``module.name`` (``label(args)`` names the point)."""
        inner = getattr(module, name)

        def wrapped(*args, **kwargs):
            out = inner(*args, **kwargs)
            self.mark(label(args))
            return out

        setattr(module, name, wrapped)


def _instrumented_main(cycle_args: list[str], trace: bool = False) -> tuple[int, _Points]:
    from landimg.experiment import cli, loop

    points = _Points(trace)
    points.mark("start")
    points.wrap(loop, "setup", lambda a: "set-up")
    points.wrap(loop, "_start", lambda a: "spin-up")
    points.wrap(loop, "_day", lambda a: f"day {a[1] + 1}")
    points.wrap(loop, "_checkpoint", lambda a: f"checkpoint {a[2]}")
    points.wrap(loop, "_finish", lambda a: "outputs")  # summary.json and plots (the files grow each day)
    status = cli.main(cycle_args)
    points.mark("end")
    return status, points


def _worker(args: argparse.Namespace, cycle_args: list[str]) -> int:
    from landimg.parallel import default_comm

    comm = default_comm()
    t0 = time.perf_counter()
    status, points = _instrumented_main(cycle_args, args.trace)
    wall = time.perf_counter() - t0
    mine = {"rank": comm.Get_rank(), "cpu_seconds": round(_cpu(), 2), "vmhwm_mb": _status()["VmHWM"],
            "wall_seconds": round(wall, 2), "points": points.rows, "traced": points.traced}  # fmt: skip
    every = comm.gather(mine, root=0)
    if comm.Get_rank() == 0:
        for r in every:
            where = "; ".join(f"{n} {cpu:.1f} s {hwm:.0f}/{rss:.0f}" for n, cpu, hwm, rss in r["points"])
            print(f"[usage] rank {r['rank']}: CPU {r['cpu_seconds']:.1f} s, VmHWM {r['vmhwm_mb']:.0f} MB, "
                  f"wall {r['wall_seconds']:.1f} s; CPU s and VmHWM/VmRSS MB after: {where}", flush=True)  # fmt: skip
            for name, current, peak, top in r["traced"]:
                where = ", ".join(f"{k} {v:.0f}" for k, v in top)
                print(f"[trace] rank {r['rank']} {name}: traced {current:.0f} MB live, peak {peak:.0f} MB since "
                      f"the previous point; live by allocating line (MB): {where}", flush=True)  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(every))
    return status


def _run(cmd: list[str], json_path: str) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    sys.stdout.write(proc.stdout)
    return json.loads(Path(json_path).read_text())


def _compare(layouts: list[str], cycle_args: list[str]) -> int:
    out = cycle_args[cycle_args.index("--out") + 1] if "--out" in cycle_args else None
    if out is None:
        raise SystemExit("--compare needs --out DIR among the experiment's arguments")
    base = [a for i, a in enumerate(cycle_args) if a != "--out" and (i == 0 or cycle_args[i - 1] != "--out")]
    me = str(Path(__file__).resolve())
    mpirun = str(Path(sys.executable).with_name("mpirun"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("1", [sys.executable, me])]
        for spec in layouts:
            r, k = spec.split(":")
            runs.append((f"{int(r) // int(k)}x{k}", [mpirun, "-n", r, sys.executable, "-m", "mpi4py", me]))
        for name, launcher in runs:
            js = str(Path(tmp) / f"{name}.json")
            extra = [] if name == "1" else ["--set", f"parallel.column_blocks={name.split('x')[1]}"]
            print(f"[usage] {name}: running", flush=True)
            results[name] = _run([*launcher, "--json", js, "--", *base, *extra, "--out", f"{out}-{name}"], js)
    one = results["1"][0]
    for name, ranks in results.items():
        cpu = max(r["cpu_seconds"] for r in ranks)
        hwm = max(r["vmhwm_mb"] for r in ranks)
        print(f"[usage] {name}: largest rank CPU {cpu:.1f} s ({cpu / one['cpu_seconds']:.2f} x one rank), "
              f"peak VmHWM {hwm:.0f} MB ({hwm / one['vmhwm_mb']:.2f} x one rank)", flush=True)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", help="write every rank's figures to this file (rank 0)")
    p.add_argument(
        "--compare", nargs="+", metavar="R:K", help="driver: one rank, then R ranks with K column blocks"
    )
    p.add_argument("--trace", action="store_true", help="tracemalloc: live memory by allocating landimg line")
    args = p.parse_args(argv[:cut])
    cycle_args = argv[cut + 1 :]
    if args.compare:
        return _compare(args.compare, cycle_args)
    return _worker(args, cycle_args)


if __name__ == "__main__":
    sys.exit(main())
