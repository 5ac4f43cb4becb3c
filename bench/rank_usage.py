"""Per-rank process CPU seconds and peak memory of an experiment, with the memory at points of the run.

    python bench/rank_usage.py --compare 2:2 4:4 -- --set domain.preset=global1deg \\
        --set ensemble.members=8 --set experiment.spinup_days=3 --set experiment.days=2 \\
        --set output.plots=false --quiet --out runs/usage
    mpirun -n 2 python -m mpi4py bench/rank_usage.py -- --set parallel.column_blocks=2 ... --out runs/u2

Without ``--compare``: runs ``python -m landimg.cycle`` (arguments after ``--``) on every rank of this
launch and prints one line per rank: its process CPU seconds (user + system, ``getrusage``; includes MPI's
busy polling while it waits), its peak resident memory (``VmHWM`` of ``/proc/self/status``), and ``VmHWM``
/ ``VmRSS`` after the set-up, the spin-up, each day's forecast and analyses, each checkpoint and the final
outputs (where the memory goes); ``--json FILE`` writes the same per rank (rank 0 writes every rank's).
``--phases``: the resident memory by timed part (each method's analyses apart), sampled every 10 ms: its
peak and the largest rise within one call (cheap; memory the allocator kept from an earlier part is
reused without a rise). ``--trace``: tracemalloc too (slower): at each point the live Python/numpy memory
by the landimg file (and line) that allocated it (the innermost landimg frame of each allocation), and
the traced peak since the previous point.

Each rank also reports its run's own CPU seconds per part (``experiment/timing.py``: model, forcing,
perturbations, analysis, output, ...; ``summary.json`` has rank 0's only), and rank 0 the size of the
restart (``restart/`` of ``--out``) and of the whole output directory.

``--compare R:K ...``: the driver. Runs the experiment on one rank without mpirun, then on ``R`` ranks
with ``parallel.column_blocks = K`` (``mpirun -n R``, one thread per rank), one after the other, each
into its own output directory (``--out`` + ``-1``, ``-RxK``), and prints the largest rank's CPU seconds
and peak memory of each beside the one-rank run's, as ratios (issue 17 item 6: CPU of 1 x 2 <= 0.6,
memory of 1 x 4 <= 0.40 of one rank). The mpirun runs set ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1`` (MPICH's
waits then sleep in ``nanosleep`` every ``MPIR_CVAR_POLLS_BEFORE_YIELD`` polls instead of spinning:
a rank waiting for another no longer burns a core); ``--busy-wait`` keeps MPICH's default polling.
``--only-ranks`` skips the one-rank run (a run too large for one rank).

``--report JSON ...``: one line per ``--json`` file written before (any launch): land columns,
wall, the largest rank's CPU and its parts, every rank's peak memory and the restart size, each with
its growth from the first file (the 1 -> 0.5 -> 0.25 degree table of ``docs/scaling.md``).
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

import numpy as np

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


def _du(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


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


class _PhaseMemory:
    """Resident memory by part of the run (``--phases``): a thread samples ``VmRSS`` every 10 ms and books
    it to the innermost timed part running (each method's analyses apart: ``analysis <method>``); per part,
    the highest RSS seen and the largest rise above the RSS at the start of one call (its transient work
    memory)."""

    def __init__(self) -> None:
        import threading

        self.stack: list[list] = []  # [name, rss at entry]
        self.peak: dict[str, float] = {}
        self.rise: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / _KB / _KB

    def _book(self) -> None:
        if self.stack:
            name, entry = self.stack[-1]
            now = self.rss()
            self.peak[name] = max(self.peak.get(name, 0.0), now)
            self.rise[name] = max(self.rise.get(name, 0.0), now - entry)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._book()

    def enter(self, name: str) -> None:
        self.stack.append([name, self.rss()])

    def leave(self) -> None:
        self._book()
        self.stack.pop()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {k: [round(self.peak[k], 1), round(self.rise[k], 1)] for k in self.peak}


def _capture_timings(loop, phases: _PhaseMemory | None = None) -> list:
    """Keep every ``Timings`` the run makes (one per rank: its CPU and wall seconds per part); with
    ``phases``, book the resident memory to the part running."""
    from contextlib import contextmanager

    made: list = []
    base = loop.Timings

    class _Kept(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self._label: str | None = None
            made.append(self)

        @contextmanager
        def __call__(self, part: str):
            if phases is None:
                with super().__call__(part):
                    yield
                return
            phases.enter(part if self._label is None else f"{part} {self._label}")
            try:
                with super().__call__(part):
                    yield
            finally:
                phases.leave()

        def instrument(self, obj, method: str, part: str, label: str | None = None) -> None:
            super().instrument(obj, method, part, label)
            if label is None or phases is None:
                return
            timed = getattr(obj, method)

            def labelled(*args, **kwargs):
                self._label = label
                try:
                    return timed(*args, **kwargs)
                finally:
                    self._label = None

            setattr(obj, method, labelled)

    loop.Timings = _Kept
    return made


def _capture_grid(loop) -> dict:
    """The grid shape and land columns of the run's set-up."""
    grid: dict = {"shape": None, "land_columns": None}
    inner = loop.setup

    def kept(*args, **kwargs):
        s = inner(*args, **kwargs)
        grid.update(shape=list(s.domain.grid.shape), land_columns=int(s.domain.grid.ncol))
        return s

    loop.setup = kept
    return grid


def _count_traffic(layout_mod) -> dict:
    """Bytes this rank sends to other ranks, by kind: the transpositions between the model's layout and the
    analyses' (``Transposer``: one all-to-all per array) and the whole-array gathers of ``Layout`` (images,
    the day's diagnostics); with the number of calls of each."""
    traffic = {"transposition": [0, 0], "gather": [0, 0]}
    exchange = layout_mod._exchange

    def counted_exchange(comm, pieces, recv_bytes):
        me = comm.Get_rank() if hasattr(comm, "Get_rank") else 0
        sent = sum(0 if p is None or r == me else int(np.asarray(p).nbytes) for r, p in enumerate(pieces))
        traffic["transposition"][0] += sent
        traffic["transposition"][1] += 1
        return exchange(comm, pieces, recv_bytes)

    layout_mod._exchange = counted_exchange
    cls = layout_mod.Layout
    for name in ("gather", "allgather", "gather_columns", "allgather_columns", "gather_members",
                 "allgather_members"):  # fmt: skip
        inner = getattr(cls, name)

        def counted(self, local, *args, _inner=inner, **kwargs):
            if self.size > 1:
                traffic["gather"][0] += int(np.asarray(local).nbytes)
                traffic["gather"][1] += 1
            return _inner(self, local, *args, **kwargs)

        setattr(cls, name, counted)
    return traffic


def _instrumented_main(
    cycle_args: list[str], trace: bool = False, phases: bool = False
) -> tuple[int, _Points, list, dict]:
    from landimg import layout
    from landimg.experiment import checkpoint, cli, loop

    memory = _PhaseMemory() if phases else None
    timings = _capture_timings(loop, memory)
    grid = _capture_grid(loop)
    grid["traffic"] = _count_traffic(layout)
    points = _Points(trace)
    points.mark("start")
    points.wrap(loop, "setup", lambda a: "set-up")
    points.wrap(loop, "_start", lambda a: "spin-up")
    points.wrap(loop, "_day", lambda a: f"day {a[1] + 1}")
    points.wrap(checkpoint, "save", lambda a: f"checkpoint {a[2]}")
    points.wrap(loop, "_finish", lambda a: "outputs")  # summary.json and plots (the files grow each day)
    status = cli.main(cycle_args)
    points.mark("end")
    grid["phases"] = memory.stop() if memory is not None else {}
    return status, points, timings, grid


def _worker(args: argparse.Namespace, cycle_args: list[str]) -> int:
    from landimg.parallel import default_comm

    comm = default_comm()
    t0 = time.perf_counter()
    status, points, timings, grid = _instrumented_main(cycle_args, args.trace, args.phases)
    wall = time.perf_counter() - t0
    parts = timings[-1].report(cpu=True) if timings else {}
    traffic, phases = grid.pop("traffic"), grid.pop("phases")
    mine = {"rank": comm.Get_rank(), "cpu_seconds": round(_cpu(), 2), "vmhwm_mb": _status()["VmHWM"],
            "wall_seconds": round(wall, 2), "points": points.rows, "traced": points.traced,
            "cpu_parts": parts, "sent_mb": {k: round(v[0] / _KB / _KB, 3) for k, v in traffic.items()},
            "calls": {k: v[1] for k, v in traffic.items()}, "phases_mb": phases}  # fmt: skip
    every = comm.gather(mine, root=0)
    if comm.Get_rank() == 0:
        out = Path(cycle_args[cycle_args.index("--out") + 1]) if "--out" in cycle_args else None
        run = _run_facts(out, comm.Get_size(), status, grid)
        for r in every:
            where = "; ".join(f"{n} {cpu:.1f} s {hwm:.0f}/{rss:.0f}" for n, cpu, hwm, rss in r["points"])
            print(f"[usage] rank {r['rank']}: CPU {r['cpu_seconds']:.1f} s, VmHWM {r['vmhwm_mb']:.0f} MB, "
                  f"wall {r['wall_seconds']:.1f} s; CPU s and VmHWM/VmRSS MB after: {where}", flush=True)  # fmt: skip
            shares = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_parts"].items() if k != "total")
            sent = ", ".join(f"{k} {v:.1f} MB in {r['calls'][k]} calls" for k, v in r["sent_mb"].items())
            print(
                f"[usage] rank {r['rank']} CPU s by part: {shares}; sent to other ranks: {sent}", flush=True
            )
            if r["phases_mb"]:
                booked = "; ".join(f"{k} {v[0]:.0f} (+{v[1]:.0f})" for k, v in r["phases_mb"].items())
                print(
                    f"[phases] rank {r['rank']} RSS peak (largest rise in one call) MB: {booked}", flush=True
                )
            for name, current, peak, top in r["traced"]:
                where = ", ".join(f"{k} {v:.0f}" for k, v in top)
                print(f"[trace] rank {r['rank']} {name}: traced {current:.0f} MB live, peak {peak:.0f} MB since "
                      f"the previous point; live by allocating line (MB): {where}", flush=True)  # fmt: skip
        print(f"[usage] {run['ranks']} rank(s), {run['land_columns']} land columns: restart "
              f"{run['restart_mb']:.1f} MB, output directory {run['output_mb']:.1f} MB", flush=True)  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps({"run": run, "ranks": every}))
    return status


def _run_facts(out: Path | None, ranks: int, status: int, grid: dict) -> dict:
    """What rank 0 knows of the finished run: its size, layout, wall and output sizes."""
    facts: dict = {"ranks": ranks, "status": status, "out": str(out), **grid}
    if out is None:
        return facts
    mb = _KB * _KB
    facts["restart_mb"] = round(_du(out / "restart") / mb, 2)
    facts["output_mb"] = round(_du(out) / mb, 2)
    summary = out / "summary.json"
    if summary.exists():
        tree = json.loads(summary.read_text())
        for key in ("layout", "wall_seconds", "timing_cpu_seconds", "analysis_cpu_seconds", "obs_per_day"):
            facts[key] = tree.get(key)
        if facts.get("land_columns"):
            facts["column_steps"] = _column_steps(tree["config"], facts["land_columns"])
    return facts


def _column_steps(cfg: dict, ncol: int) -> int:
    """Column-model steps of a run (one column, one member, one step each): the nature run over the spin-up
    and the days, the ensemble column until the per-member spin-up, every member over it, then every
    member of every method over the days."""
    e, ens = cfg["experiment"], cfg["ensemble"]
    per_day = int(round(86400 / e["dt"]))
    spin, days, nmem = e["spinup_days"], e["days"], ens["members"]
    spread = min(ens["spread_days"], spin)
    nmeth = len(cfg["analysis"]["methods"])
    return per_day * ncol * (spin + days + (spin - spread) + spread * nmem + days * nmem * nmeth)


def _run(cmd: list[str], json_path: str, busy_wait: bool = False) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not busy_wait:
        env.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    sys.stdout.write(proc.stdout)
    return json.loads(Path(json_path).read_text())["ranks"]


def _compare(
    layouts: list[str], cycle_args: list[str], busy_wait: bool = False, one: bool = True, phases: bool = False
) -> int:
    out = cycle_args[cycle_args.index("--out") + 1] if "--out" in cycle_args else None
    if out is None:
        raise SystemExit("--compare needs --out DIR among the experiment's arguments")
    base = [a for i, a in enumerate(cycle_args) if a != "--out" and (i == 0 or cycle_args[i - 1] != "--out")]
    me = str(Path(__file__).resolve())
    mpirun = str(Path(sys.executable).with_name("mpirun"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("1", [sys.executable, me])] if one else []
        for spec in layouts:
            r, k = spec.split(":")
            runs.append((f"{int(r) // int(k)}x{k}", [mpirun, "-n", r, sys.executable, "-m", "mpi4py", me]))
        for name, launcher in runs:
            js = str(Path(tmp) / f"{name}.json")
            extra = [] if name == "1" else ["--set", f"parallel.column_blocks={name.split('x')[1]}"]
            print(f"[usage] {name}: running", flush=True)
            cmd = [
                *launcher,
                *(["--phases"] if phases else []),
                "--json",
                js,
                "--",
                *base,
                *extra,
                "--out",
                f"{out}-{name}",
            ]
            results[name] = _run(cmd, js, busy_wait)
    ref = results["1"][0] if one else None
    for name, ranks in results.items():
        cpu = max(r["cpu_seconds"] for r in ranks)
        hwm = max(r["vmhwm_mb"] for r in ranks)
        wall = max(r["wall_seconds"] for r in ranks)
        ratios = (("", "") if ref is None else
                  (f" ({cpu / ref['cpu_seconds']:.2f} x one rank)", f" ({hwm / ref['vmhwm_mb']:.2f} x one rank)"))  # fmt: skip
        print(f"[usage] {name}: largest rank CPU {cpu:.1f} s{ratios[0]}, peak VmHWM {hwm:.0f} MB{ratios[1]}, "
              f"wall {wall:.1f} s", flush=True)  # fmt: skip
    return 0


def _report(files: list[str]) -> int:
    """The growth table of ``--json`` files (the first is the reference)."""
    ref = None
    for path in files:
        tree = json.loads(Path(path).read_text())
        run, ranks = tree["run"], tree["ranks"]
        big = max(ranks, key=lambda r: r["cpu_seconds"])
        row = {"columns": run.get("land_columns") or 0, "wall": run.get("wall_seconds") or big["wall_seconds"],
               "cpu": big["cpu_seconds"], "hwm": max(r["vmhwm_mb"] for r in ranks),
               "restart": run.get("restart_mb", 0.0)}  # fmt: skip
        ref = ref or row
        grow = " ".join(f"{k} x{row[k] / ref[k]:.1f}" for k in row if ref[k])
        parts = ", ".join(f"{k} {v:.0f}" for k, v in big["cpu_parts"].items() if k != "total" and v >= 0.5)
        model = sum(r["cpu_parts"].get("model", 0.0) for r in ranks)
        steps = run.get("column_steps")
        speed = f", model {1e6 * model / steps:.2f} us per column step (all ranks)" if steps else ""
        peaks = "/".join(f"{r['vmhwm_mb']:.0f}" for r in ranks)
        print(f"{path}: {run['ranks']} ranks, {row['columns']} columns, wall {row['wall']:.0f} s, largest rank "
              f"CPU {row['cpu']:.0f} s ({parts}), VmHWM per rank {peaks} MB, restart {row['restart']:.0f} MB{speed}; "
              f"growth: {grow}", flush=True)  # fmt: skip
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
    p.add_argument("--phases", action="store_true", help="resident memory by part of the run (10 ms samples)")
    p.add_argument("--busy-wait", action="store_true", help="--compare: keep MPICH's polling waits")
    p.add_argument("--only-ranks", action="store_true", help="--compare: skip the one-rank run")
    p.add_argument("--report", nargs="+", metavar="JSON", help="the growth table of --json files")
    args = p.parse_args(argv[:cut])
    cycle_args = argv[cut + 1 :]
    if args.report:
        return _report(args.report)
    if args.compare:
        return _compare(args.compare, cycle_args, args.busy_wait, not args.only_ranks, args.phases)
    return _worker(args, cycle_args)


if __name__ == "__main__":
    sys.exit(main())
