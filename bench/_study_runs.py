"""Runs of the pre-registered study (``bench/study.py``): what one run is, its command, its cost estimate,
the study record (``study.json``, rewritten atomically after every run) and a scheduler that keeps
``slots`` runs going side by side, with a progress line and an estimate of the time left."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _trees import landimg_parent

ROOT = Path(__file__).resolve().parents[1]


#: cost model of one run on one rank (seconds): ncol / 1073 x (SPIN x spin-up days + days x sum over the
#: methods of their per-day weight x members / 16); from the LETKF tuning runs on the shared 2-core machine
#: (CONUS 1 deg, 16 members, 40 days, two runs side by side at one rank each: 155-215 s for the LETKF at
#: 250-500 km, 175-290 s at 1000 km); the scheduler rescales it by the measured / estimated ratio of the
#: finished runs
SPIN_S_PER_DAY = 0.4
METHOD_S_PER_DAY = {"openloop": 2.5, "point_enkf": 3.8, "point_letkf": 3.6, "curvelet_enkf": 4.0}


@dataclass(frozen=True)
class Run:
    """One cycle run of the study.

    Attributes
    ----------
    key : str
        Unique name, also its directory under the study root (``phase/world/.../s<seed>``).
    phase : {"tune", "calibrate", "score", "equal-cpu"}
    world : str
        The world id (``<world>-<grid>``).
    seed : int
    methods : tuple of str
        ``analysis.methods``.
    sets : tuple of str
        Every ``--set`` of the run (base, world, grid, methods' settings, members, seed).
    members, days, spinup_days, ncol : int
        For the cost estimate and the spin-up grouping.
    """

    key: str
    phase: str
    world: str
    seed: int
    methods: tuple[str, ...]
    sets: tuple[str, ...]
    members: int
    days: int
    spinup_days: int
    ncol: int

    @property
    def group(self) -> tuple[str, int, int]:
        """Runs of one group share the spin-up (cache entry): the first one computes it."""
        return self.world, self.seed, self.spinup_days

    def estimate_s(self) -> float:
        """Estimated seconds of the run on one rank (cost model above)."""
        per_day = sum(METHOD_S_PER_DAY.get(m, 2.5) for m in self.methods) * self.members / 16.0
        return self.ncol / 1073.0 * (SPIN_S_PER_DAY * self.spinup_days + self.days * per_day) + 8.0

    def command(self, out: Path, cache: Path, ranks: int) -> list[str]:
        """The cycle command of this run (``ranks`` MPI ranks; 1: no mpirun)."""
        here = ROOT / ".venv" if (ROOT / ".venv").exists() else Path(sys.executable).parents[1]
        venv = Path(os.environ.get("LANDIMG_VENV") or here)  # a worktree without .venv: this interpreter's
        py = str(venv / "bin" / "python")
        head = [py, "-m", "landimg.cycle"]
        if ranks > 1:
            head = [str(venv / "bin" / "mpirun"), "-n", str(ranks), py, "-m", "mpi4py", "-m", "landimg.cycle"]
        cmd = [*head, "--out", str(out), "--quiet", "--spinup-cache", str(cache)]
        for s in self.sets:
            cmd += ["--set", s]
        return cmd


def tree_id() -> dict[str, str]:
    """The code the runs use: git HEAD and a hash of the uncommitted changes (``git diff HEAD``)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            return ""

    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "diff": hashlib.sha256(git("diff", "HEAD").encode()).hexdigest()[:10],
    }


class Record:
    """``ROOT/study.json``: every run's status, command, times, code and scores; atomic rewrites."""

    def __init__(self, root: Path) -> None:
        self.path = root / "study.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {"runs": {}}

    def save(self) -> None:
        tmp = self.path.with_name(".study.json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def entry(self, key: str) -> dict[str, Any] | None:
        return self.data["runs"].get(key)

    def done(self, key: str) -> bool:
        e = self.entry(key)
        return bool(e and e.get("status") == "ok" and "scores" in e)

    def scores(self, key: str) -> dict[str, Any] | None:
        e = self.entry(key)
        return e.get("scores") if e and e.get("status") == "ok" else None


def _hms(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _estimate(entry: dict[str, Any]) -> float | None:
    """A recorded run's estimate by today's cost model (its recorded estimate if it cannot be rebuilt)."""
    try:
        run = entry["run"]
        return Run(**{k: tuple(v) if isinstance(v, list) else v for k, v in run.items()}).estimate_s()
    except (KeyError, TypeError):
        return entry.get("est_s")


def _ratio(record: Record) -> float:
    """Measured / estimated run time, median over the finished runs (1 before any)."""
    r = []
    for e in record.data["runs"].values():
        est = _estimate(e)
        if e.get("status") == "ok" and est and e.get("wall_s"):
            r.append(e["wall_s"] / est)
    return float(sorted(r)[len(r) // 2]) if r else 1.0


def plan_text(runs: list[Run], record: Record, slots: int, ranks: int) -> str:
    """The dry-run listing: every run, whether it is done, its estimated time; totals."""
    ratio = _ratio(record)
    lines = [f"{'run':<58} {'methods':<44} {'N':>3} {'est':>8}  state"]
    todo = 0.0
    for r in runs:
        est = r.estimate_s() * ratio
        state = "done" if record.done(r.key) else "to run"
        todo += 0.0 if state == "done" else est
        lines.append(f"{r.key:<58} {','.join(r.methods):<44} {r.members:>3} {_hms(est):>8}  {state}")
    par = slots * (1.0 if ranks == 1 else 0.85 * ranks)  # two ranks on one run: ~85 % parallel efficiency
    ndone = sum(record.done(r.key) for r in runs)
    lines.append(
        f"{len(runs)} runs ({ndone} done); to run: {_hms(todo)} of one-rank time, about {_hms(todo / par)} "
        f"of wall time with {slots} slot(s) x {ranks} rank(s) (cost model x {ratio:.2f}, from finished runs)"
    )
    return "\n".join(lines)


def execute(
    runs: list[Run],
    root: Path,
    record: Record,
    scorer: Callable[[Run, Path], dict[str, Any]],
    *,
    slots: int = 2,
    ranks: int = 1,
    cache: Path,
    timeout: float = 7200.0,
    nice: int = 10,
) -> None:
    """Run every run of ``runs`` not done yet, ``slots`` at a time, recording each as it ends.

    A run whose directory holds a finished ``summary.json`` but no record (a study stopped between the
    run's end and the record) is read back, not rerun. Runs of one spin-up group are not started side by
    side while another group can start (the first computes the cached spin-up, the others reuse it).
    """
    tree = tree_id()
    pending = []
    for r in runs:
        if record.done(r.key):
            continue
        out = root / r.key
        if (out / "summary.json").exists():
            try:
                record.data["runs"][r.key] = {
                    "status": "ok",
                    "scores": scorer(r, out),
                    "read_back": True,
                    "est_s": r.estimate_s(),
                    "cmd": r.command(out, cache, ranks),
                }
                record.save()
                continue
            except (OSError, ValueError, KeyError):
                pass
        pending.append(r)
    total, t_start = len(pending), time.monotonic()
    running: dict[str, tuple[Run, subprocess.Popen, float, Any]] = {}
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    finished = 0
    started: dict[str, float] = {}

    def start(r: Run) -> None:
        out = root / r.key
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        log = open(logs / (r.key.replace("/", "__") + ".log"), "w")
        env = dict(
            os.environ,
            PYTHONPATH=landimg_parent(),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        proc = subprocess.Popen(
            r.command(out, cache, ranks),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
        running[r.key] = (r, proc, time.monotonic(), log)
        started[r.key] = time.time()
        print(f"[study] start {r.key} ({', '.join(r.methods)}, N={r.members})", flush=True)

    def finish(key: str, code: int | None) -> None:
        nonlocal finished
        r, proc, t0, log = running.pop(key)
        log.close()
        wall = time.monotonic() - t0
        out = root / r.key
        entry = {
            "status": "ok" if code == 0 else ("timeout" if code is None else "failed"),
            "returncode": code,
            "wall_s": wall,
            "est_s": r.estimate_s(),
            "cmd": r.command(out, cache, ranks),
            "tree": tree,
            "started_unix": started.pop(key),
            "run": asdict(r),
        }
        if code == 0:
            try:
                entry["scores"] = scorer(r, out)
            except (SystemExit, Exception) as e:  # noqa: BLE001 -- a run without its scores: recorded as failed
                entry.update(status="failed", error=f"scores: {type(e).__name__}: {e}")
        else:
            entry["error"] = (logs / (r.key.replace("/", "__") + ".log")).read_text()[-2000:]
        record.data["runs"][key] = entry
        record.save()
        finished += 1
        ratio = _ratio(record)
        left = sum(x.estimate_s() for x in pending) * ratio
        left += sum(
            max(0.0, x.estimate_s() * ratio - (time.monotonic() - t)) for x, _, t, _ in running.values()
        )
        print(
            f"[study] {entry['status']:>7} {key} in {_hms(wall)} | {finished}/{total} done, "
            f"{len(running)} running, "
            f"elapsed {_hms(time.monotonic() - t_start)}, left ~{_hms(left / max(1, slots))}",
            flush=True,
        )
        if entry["status"] != "ok":
            last = (entry.get("error") or "").strip().splitlines()[-1:] or ["(no output)"]
            print(f"[study]         {key}: {last[0]} (log {logs / (r.key.replace('/', '__') + '.log')})", flush=True)

    def next_run() -> Run:
        busy = {x.group for x, *_ in running.values()}
        for i, r in enumerate(pending):
            if r.group not in busy:
                return pending.pop(i)
        return pending.pop(0)

    try:
        while pending or running:
            while pending and len(running) < slots:
                start(next_run())
            time.sleep(0.5)
            for key, (_, proc, t0, _) in list(running.items()):
                code = proc.poll()
                if code is None and time.monotonic() - t0 > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    finish(key, None)
                elif code is not None:
                    finish(key, code)
    except KeyboardInterrupt:
        for _, proc, _, _ in running.values():
            os.killpg(proc.pid, signal.SIGTERM)
        print("[study] interrupted: finished runs are recorded; --resume continues", file=sys.stderr)
        raise
