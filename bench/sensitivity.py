"""Sensitivity study for the paper's reviewers: run named variants of the default experiment and tabulate.

    python bench/sensitivity.py                       # all variants into runs/study-<UTC time>/ (about 25 min wall)
    python bench/sensitivity.py --only m4 --only m8   # a subset (repeat --only, or comma-separate names)
    python bench/sensitivity.py --quick               # smoke test: every variant with 2 days, 20-day spin-up, <= 4 members
    python bench/sensitivity.py --list                # print the variants and exit
    python bench/sensitivity.py --root DIR --resume   # keep finished variants of DIR (their summary.json), run the rest

Every variant is one ``python -m mpi4py -m landimg.cycle --out ROOT/NAME --set ...`` under
``mpirun -n 2`` (a subprocess, so a crash or hang of one variant cannot take the study down; each run
has a timeout), run one at a time. The study-wide settings (``STUDY_BASE``: 120-day spin-up, 10 days,
no netCDF / plots / daily restarts) are applied before each variant's own overrides. After each run
the variant's ``summary.json``, wall time and exit status are collected into ``ROOT/study.json``
(rewritten after every variant, so a stopped study keeps its results), the run's final restart file
(20-100 MB, not needed here) is deleted, and the markdown tables are printed and written to
``ROOT/study.md``.

Cost: ``summary.json`` has only the total wall time of a run, so the ``cost_*`` variants run one method
each at the base configuration (their wall times minus the open-loop-only run give each filter's cost,
noisy on a shared machine), and ``--cost`` measures the CPU time of each method's analysis and of the
forecast in-process on one rank (:func:`measure_cost`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("0-10cm", "10-40cm", "40-100cm")

#: study-wide overrides applied before each variant's own (shorter than the default 240 + 20 days).
STUDY_BASE: tuple[str, ...] = (
    "experiment.spinup_days=120",
    "experiment.days=10",
    "output.netcdf=false",
    "output.plots=false",
    "output.restart=false",
)
#: overrides of --quick (applied after the variant's own; members capped separately).
QUICK: tuple[str, ...] = ("experiment.spinup_days=20", "experiment.days=2")


@dataclass(frozen=True)
class Variant:
    """One experiment variant.

    Attributes
    ----------
    name : str
        Short unique name (also the output directory name).
    group : str
        Reviewer question / table it belongs to.
    sets : tuple of str
        ``section.key=value`` overrides on top of :data:`STUDY_BASE`.
    note : str
        What the variant changes, for the table.
    timeout_s : float
        Kill the run after this many seconds (wall).
    """

    name: str
    group: str
    sets: tuple[str, ...]
    note: str
    timeout_s: float = 900.0


def _v(name: str, group: str, note: str, *sets: str, timeout_s: float = 900.0) -> Variant:
    return Variant(name, group, tuple(sets), note, timeout_s)


VARIANTS: tuple[Variant, ...] = (
    # (1) ensemble size, equal N for point and curvelet EnKF; m16 is also the base of every other group
    _v("m16", "members", "base: 16 members (the default)", "ensemble.members=16"),
    _v("m4", "members", "4 members", "ensemble.members=4"),
    _v("m8", "members", "8 members", "ensemble.members=8"),
    _v("m32", "members", "32 members", "ensemble.members=32", timeout_s=1500.0),
    # (2) localization of the point EnKF (the curvelet EnKF does not use it: only point_enkf runs)
    # 60 km support is below the 1-deg cell spacing (71-111 km): own cell only (point_enkf.radius_km=0 is the same)
    _v("loc60", "localization", "point EnKF, 60 km (own cell only)", "point_enkf.radius_km=60",
       'analysis.methods=["point_enkf"]'),
    _v("loc250", "localization", "point EnKF, 250 km", "point_enkf.radius_km=250",
       'analysis.methods=["point_enkf"]'),
    _v("loc1000", "localization", "point EnKF, 1000 km", "point_enkf.radius_km=1000",
       'analysis.methods=["point_enkf"]'),
    _v("loc2000", "localization", "point EnKF, 2000 km", "point_enkf.radius_km=2000",
       'analysis.methods=["point_enkf"]'),
    _v("loc1000_obs256", "localization", "point EnKF, 1000 km, up to 256 obs per column",
       "point_enkf.radius_km=1000", "point_enkf.max_obs=256", 'analysis.methods=["point_enkf"]'),
    # (4) resolution
    _v("res05", "resolution", "CONUS 0.5 deg (50x120), 5 days", "domain.res=0.5", "experiment.days=5",
       timeout_s=1800.0),
    _v("res1_5d", "resolution", "CONUS 1 deg, 5 days (same period as res05)", "experiment.days=5"),
    # the default number of scales is 3 at both 1 and 0.5 deg (padded 36x80 and 64x150): try one more
    _v("res05_ns4", "resolution", "CONUS 0.5 deg, 5 days, curvelet EnKF with 4 scales", "domain.res=0.5",
       "experiment.days=5", "curvelet_enkf.nscales=4", 'analysis.methods=["curvelet_enkf"]', timeout_s=1800.0),
    _v("res05_ns5", "resolution", "CONUS 0.5 deg, 5 days, curvelet EnKF with 5 scales", "domain.res=0.5",
       "experiment.days=5", "curvelet_enkf.nscales=5", 'analysis.methods=["curvelet_enkf"]', timeout_s=1800.0),
    _v("ns4", "resolution", "CONUS 1 deg, curvelet EnKF with 4 scales", "curvelet_enkf.nscales=4",
       'analysis.methods=["curvelet_enkf"]'),
    # (2) inflation
    _v("infl11", "inflation", "multiplicative inflation 1.1", "point_enkf.inflation=1.1", "curvelet_enkf.inflation=1.1",
       'analysis.methods=["point_enkf","curvelet_enkf"]'),
    _v("infl13", "inflation", "multiplicative inflation 1.3", "point_enkf.inflation=1.3", "curvelet_enkf.inflation=1.3",
       'analysis.methods=["point_enkf","curvelet_enkf"]'),
    _v("infl15", "inflation", "multiplicative inflation 1.5", "point_enkf.inflation=1.5", "curvelet_enkf.inflation=1.5",
       'analysis.methods=["point_enkf","curvelet_enkf"]'),
    _v("infl20", "inflation", "multiplicative inflation 2.0", "point_enkf.inflation=2.0", "curvelet_enkf.inflation=2.0",
       'analysis.methods=["point_enkf","curvelet_enkf"]'),
    # (1) perturbations
    _v("noperturb", "perturbations", "no forcing perturbations", "ensemble.perturb=false"),
    _v("precip2x", "perturbations", "precip sigma 1.0 (2x)", "ensemble.precip_sigma=1.0"),
    # curvelet pooling (only curvelet_enkf runs)
    _v("pool_coef", "pooling", "curvelet EnKF, per-coefficient variances", "curvelet_enkf.pooling=coefficient",
       "curvelet_enkf.layer_increments=regression", 'analysis.methods=["curvelet_enkf"]'),
    _v("pool_scale", "pooling", "curvelet EnKF, pooled per scale", "curvelet_enkf.pooling=scale",
       'analysis.methods=["curvelet_enkf"]'),
    # observation-error model: the retrieval error is half a 200 km correlated field; the default analysis assumes white
    _v("obscorr200", "pooling", "curvelet EnKF told the obs error is 200 km correlated",
       "curvelet_enkf.obs_corr_km=200", 'analysis.methods=["curvelet_enkf"]'),
    _v("obscorr200_infl13", "pooling", "obs error 200 km correlated, inflation 1.3",
       "curvelet_enkf.obs_corr_km=200", "point_enkf.inflation=1.3", "curvelet_enkf.inflation=1.3", 'analysis.methods=["curvelet_enkf"]'),
    # robustness: another seed, another domain
    _v("seed7", "robustness", "seed 7", "experiment.seed=7"),
    _v("seed7_m8", "robustness", "seed 7, 8 members", "experiment.seed=7", "ensemble.members=8"),
    _v("china1", "robustness", "China preset at 1 deg, 5 days", "domain.preset=china", "domain.res=1.0",
       "experiment.days=5", timeout_s=1500.0),
    # (3) cost: one method per run at the base configuration
    _v("cost_openloop", "cost", "open loop only", 'analysis.methods=["openloop"]'),
    _v("cost_point", "cost", "point EnKF only", 'analysis.methods=["point_enkf"]'),
    _v("cost_curvelet", "cost", "curvelet EnKF only", 'analysis.methods=["curvelet_enkf"]'),
    # the work tree changes under the study (other engineers): the base again, at the end
    _v("m16_again", "members", "base again at the end of the study (tree drift check)", "ensemble.members=16"),
)


@dataclass
class Outcome:
    """Result of one variant: exit status, wall time and the run's summary (None if it failed)."""

    name: str
    group: str
    note: str
    sets: list[str]
    returncode: int | None
    wall_s: float
    summary: dict[str, Any] | None = None
    error: str = ""
    tree: dict[str, str] = field(default_factory=dict)


def _tree_state() -> dict[str, str]:
    """Git HEAD and a hash of the uncommitted diff of the work tree (others edit it while we run)."""

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    diff = git("diff", "HEAD")
    so = ROOT / "python" / "landimg"
    ext = sorted(so.glob("_colm*.so"))
    ext_hash = hashlib.sha1(ext[0].read_bytes()).hexdigest()[:10] if ext else ""
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:10],
        "ext_sha1": ext_hash,
    }


def _command(v: Variant, out: Path, quick: bool, ranks: int) -> list[str]:
    py = str(ROOT / ".venv" / "bin" / "python")
    mpirun = str(ROOT / ".venv" / "bin" / "mpirun")
    sets = [*STUDY_BASE, *v.sets, *(QUICK if quick else ())]
    if quick:
        sets = [s for s in sets if not (s.startswith("ensemble.members=") or s.startswith("domain.res="))]
        sets.append("ensemble.members=4")
    cmd = [mpirun, "-n", str(ranks), py, "-m", "mpi4py", "-m", "landimg.cycle", "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_variant(v: Variant, root: Path, *, quick: bool = False, ranks: int = 2) -> Outcome:
    """Run one variant under mpirun into ``root/v.name`` and collect its summary.

    Parameters
    ----------
    v : Variant
    root : Path
        Study directory (the variant's output goes to ``root / v.name``, which must not exist).
    quick : bool
        Apply :data:`QUICK` and at most 4 members, 1 deg (smoke test).
    ranks : int
        MPI ranks.

    Returns
    -------
    Outcome
        ``summary`` is the parsed ``summary.json`` or None; ``error`` holds the last lines of stderr on failure.
    """
    out = root / v.name
    cmd = _command(v, out, quick, ranks)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), OMP_NUM_THREADS="1")
    tree = _tree_state()
    t0 = time.perf_counter()
    log = root / f"{v.name}.log"
    try:
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                               timeout=v.timeout_s * (0.3 if quick else 1.0))  # fmt: skip
        rc, err = p.returncode, ""
    except subprocess.TimeoutExpired:
        rc, err = None, f"timeout after {v.timeout_s:.0f} s"
    wall = time.perf_counter() - t0
    summary = None
    sfile = out / "summary.json"
    if sfile.exists():
        summary = json.loads(sfile.read_text())
    shutil.rmtree(out / "restart", ignore_errors=True)  # the final restart (20-100 MB) is not needed here
    if summary is None and not err:
        tail = log.read_text().strip().splitlines()[-5:]
        err = f"exit {rc}: " + " | ".join(tail)
    return Outcome(v.name, v.group, v.note, list(v.sets), rc, wall, summary, err, tree)


# --------------------------------------------------------------------------------------------- tables
def _f(x: Any, fmt: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _score(o: Outcome, method: str, layer: str, key: str) -> float | None:
    try:
        return float(o.summary["methods"][method][layer][key])  # type: ignore[index]
    except (TypeError, KeyError):
        return None


def _station(o: Outcome, method: str) -> float | None:
    try:
        return float(o.summary["methods"][method]["stations"]["time_corr"])  # type: ignore[index]
    except (TypeError, KeyError):
        return None


def tables(outcomes: list[Outcome]) -> str:
    """Markdown: a 0-10 cm table (one row per variant x method), a deep-layer table and a run table."""
    short = {"openloop": "open loop", "point_enkf": "point", "curvelet_enkf": "curvelet"}
    lines = [
        "### 0-10 cm (period mean of daily scores; analysis ensemble mean vs nature run)",
        "",
        "| variant | change | method | spatial corr | spatial ubRMSE | bias | station r |",
        "|---|---|---|---|---|---|---|",
    ]
    deep = [
        "### 10-40 cm and 40-100 cm",
        "",
        "| variant | method | corr 10-40 | spatial ubRMSE 10-40 | corr 40-100 | spatial ubRMSE 40-100 |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.summary is None:
            lines.append(f"| {o.name} | {o.note} | FAILED | {o.error[:80]} | | | |")
            continue
        for i, m in enumerate(o.summary["methods"]):
            first = i == 0
            lines.append(
                f"| {o.name if first else ''} | {o.note if first else ''} | {short.get(m, m)} "
                f"| {_f(_score(o, m, LAYERS[0], 'spatial_corr'), '.3f')} | {_f(_score(o, m, LAYERS[0], 'ubrmse_spatial'), '.4f')} "
                f"| {_f(_score(o, m, LAYERS[0], 'bias'), '.4f')} | {_f(_station(o, m), '.2f')} |"
            )
            deep.append(
                f"| {o.name if first else ''} | {short.get(m, m)} "
                f"| {_f(_score(o, m, LAYERS[1], 'spatial_corr'), '.3f')} | {_f(_score(o, m, LAYERS[1], 'ubrmse_spatial'), '.4f')} "
                f"| {_f(_score(o, m, LAYERS[2], 'spatial_corr'), '.3f')} | {_f(_score(o, m, LAYERS[2], 'ubrmse_spatial'), '.4f')} |"
            )
    runs = [
        "### Runs",
        "",
        "| variant | status | run wall (s) | wall in summary (s) | obs/day | tree (HEAD / diff / ext) |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        ok = "ok" if o.summary is not None and o.returncode == 0 else f"FAILED ({o.error[:60]})"
        sw = o.summary.get("wall_seconds") if o.summary else None
        od = o.summary.get("obs_per_day") if o.summary else None
        t = o.tree
        runs.append(
            f"| {o.name} | {ok} | {o.wall_s:.1f} | {_f(sw, '.1f')} | {_f(od, '.0f')} "
            f"| {t.get('head', '')} / {t.get('diff_sha1', '')} / {t.get('ext_sha1', '')} |"
        )
    return "\n".join([*lines, "", *deep, "", *runs, ""])


# ----------------------------------------------------------------------------------- cost (in-process)
COST_CASES: tuple[tuple[float, int], ...] = ((1.0, 4), (1.0, 16), (1.0, 32), (0.5, 16))


def measure_cost(res: float, members: int, root: Path, days: int = 3, spinup_days: int = 20) -> dict[str, Any]:
    """CPU and wall time per analysis of each method and per forecast day, in one serial in-process run.

    ``landimg.Ensemble.assimilate`` and ``Ensemble.advance`` are wrapped (in this process only) to
    accumulate ``time.process_time`` (CPU of this process: insensitive to other users of the machine)
    and ``time.perf_counter`` per method. One rank, CONUS at ``res`` degrees, ``members`` members.

    Returns
    -------
    dict
        ``{"res", "members", "ncol", "analysis": {method: {"cpu_s", "wall_s"}}, "forecast_day": {...}}``,
        times per analysis (analysis) and per member-ensemble forecast day (forecast_day).
    """
    sys.path.insert(0, str(ROOT / "python"))
    from landimg import cycle
    from landimg.ensemble.ensemble import Ensemble
    from landimg.experiment.config import load_config

    cfg = load_config(None, [*STUDY_BASE, f"experiment.spinup_days={spinup_days}", f"experiment.days={days}",
                             f"domain.res={res}", f"ensemble.members={members}"])  # fmt: skip
    acc: dict[str, list[float]] = {}
    fore = [0.0, 0.0, 0]
    ncol = [0]
    orig_assim, orig_adv = Ensemble.assimilate, Ensemble.advance

    def assimilate(self, y, ystd, method, *a, **k):  # type: ignore[no-untyped-def]
        c0, w0 = time.process_time(), time.perf_counter()
        out = orig_assim(self, y, ystd, method, *a, **k)
        rec = acc.setdefault(type(method).__name__, [0.0, 0.0, 0])
        rec[0] += time.process_time() - c0
        rec[1] += time.perf_counter() - w0
        rec[2] += 1
        ncol[0] = int(self.grid.ncol)
        return out

    def advance(self, *a, **k):  # type: ignore[no-untyped-def]
        c0, w0 = time.process_time(), time.perf_counter()
        out = orig_adv(self, *a, **k)
        fore[0] += time.process_time() - c0
        fore[1] += time.perf_counter() - w0
        fore[2] += 1
        return out

    out_dir = root / f"cost_res{res}_m{members}"
    Ensemble.assimilate, Ensemble.advance = assimilate, advance  # type: ignore[method-assign]
    try:
        r = cycle.run(cfg, out_dir, progress=False)
    finally:
        Ensemble.assimilate, Ensemble.advance = orig_assim, orig_adv  # type: ignore[method-assign]
        shutil.rmtree(out_dir / "restart", ignore_errors=True)
    nmeth = len(cfg.analysis.methods)
    steps_per_day = fore[2] / max(1, nmeth * days)
    return {
        "res": res, "members": members, "ncol": ncol[0], "wall_run_s": r.summary["wall_seconds"] if r else None,
        "analysis": {m: {"cpu_s": v[0] / v[2], "wall_s": v[1] / v[2], "calls": v[2]} for m, v in acc.items()},
        "forecast_day": {"cpu_s": fore[0] / (nmeth * days), "wall_s": fore[1] / (nmeth * days),
                         "steps": steps_per_day},
    }  # fmt: skip


def cost_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`measure_cost` rows (CPU seconds, one rank)."""
    lines = [
        "### Cost per day, one rank, CPU seconds (process time)",
        "",
        "| grid | N | forecast (N members, 24 steps) | open loop analysis | point EnKF analysis | curvelet EnKF analysis |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r["analysis"]

        def g(k: str, a: dict = a) -> str:
            return f"{a[k]['cpu_s']:.3f}" if k in a else "–"

        lines.append(
            f"| CONUS {r['res']} deg ({r['ncol']} columns) | {r['members']} | {r['forecast_day']['cpu_s']:.2f} "
            f"| {g('OpenLoop')} | {g('PointEnKF')} | {g('CurveletEnKF')} |"
        )
    return "\n".join([*lines, ""])


def _save(root: Path, outcomes: list[Outcome], args: argparse.Namespace) -> None:
    meta = {"study_base": list(STUDY_BASE), "quick": args.quick, "ranks": args.ranks,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    data = {"meta": meta, "variants": [asdict(o) for o in outcomes]}
    tmp = root / "study.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(root / "study.json")
    (root / "study.md").write_text(tables(outcomes))


def _select(only: list[str]) -> list[Variant]:
    names = [n.strip() for s in only for n in s.split(",") if n.strip()]
    if not names:
        return list(VARIANTS)
    known = {v.name: v for v in VARIANTS}
    bad = [n for n in names if n not in known]
    if bad:
        raise SystemExit(f"sensitivity.py: error: unknown variant(s) {bad}; known: {sorted(known)}")
    return [known[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 if every selected variant produced a summary, else 1."""
    p = argparse.ArgumentParser(prog="bench/sensitivity.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, help="study directory (default runs/study-<UTC time>)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these variants")
    p.add_argument("--quick", action="store_true", help="2 days, 20-day spin-up, 4 members, 1 deg (smoke test)")
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks per run (default 2)")
    p.add_argument("--resume", action="store_true", help="reuse variants of --root that already have summary.json")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    p.add_argument("--cost", action="store_true",
                   help="instead of the variants: in-process CPU time per analysis and forecast day (COST_CASES)")
    args = p.parse_args(argv)
    if args.list:
        for v in VARIANTS:
            print(f"{v.name:<19}{v.group:<14}{v.note:<56}{' '.join(v.sets)}")
        return 0
    if args.ranks < 1:
        raise SystemExit("sensitivity.py: error: --ranks must be >= 1")
    selected = _select(args.only)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    root = args.root or ROOT / "runs" / f"study-{stamp}{'-quick' if args.quick else ''}"
    root.mkdir(parents=True, exist_ok=True)
    if args.cost:
        rows = []
        for res, n in COST_CASES[:1] if args.quick else COST_CASES:
            rows.append(measure_cost(res, n, root, days=1 if args.quick else 3,
                                     spinup_days=2 if args.quick else 20))  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            (root / "cost.json").write_text(json.dumps(rows, indent=1))
        (root / "cost.md").write_text(cost_table(rows))
        print(cost_table(rows))
        return 0
    old: dict[str, dict] = {}
    if args.resume and (root / "study.json").exists():
        old = {d["name"]: d for d in json.loads((root / "study.json").read_text())["variants"]}
    outcomes: list[Outcome] = []
    for v in selected:
        if v.name in old and old[v.name].get("summary") is not None:
            outcomes.append(Outcome(**old[v.name]))
            print(f"[study] {v.name}: kept from {root}", flush=True)
            continue
        if (root / v.name).exists():
            raise SystemExit(f"sensitivity.py: error: {root / v.name} exists (use a new --root, or --resume)")
        print(f"[study] {v.name}: {v.note} ...", flush=True)
        o = run_variant(v, root, quick=args.quick, ranks=args.ranks)
        status = "ok" if o.summary is not None else f"FAILED: {o.error}"
        print(f"[study] {v.name}: {status} ({o.wall_s:.1f} s)", flush=True)
        outcomes.append(o)
        _save(root, outcomes, args)
    # keep earlier variants of the study that were not selected this time
    names = {o.name for o in outcomes}
    outcomes += [Outcome(**d) for n, d in old.items() if n not in names]
    order = {v.name: i for i, v in enumerate(VARIANTS)}
    outcomes.sort(key=lambda o: order.get(o.name, len(order)))
    _save(root, outcomes, args)
    print(tables(outcomes))
    print(f"[study] results: {root / 'study.md'}, {root / 'study.json'}")
    return 0 if all(o.summary is not None for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
