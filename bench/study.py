"""The multi-seed study (issue 9): curvelet EnKF against the open loop, the point filter and its own
diagonal form, over several seeds, scored after a spin-in period, with paired 95 % confidence intervals.

    python bench/study.py                          # every config x seed into runs/study9-<UTC>/, then tables
    python bench/study.py --root DIR --resume      # keep finished runs of DIR, run the rest
    python bench/study.py --root DIR --report-only # tables from what DIR holds
    python bench/study.py ... --write-docs         # also rewrite the marked blocks of docs/validation.md, README.md
    python bench/study.py --quick                  # smoke test (2 seeds, 4 days, 10-day spin-up, 4 members)

Every run is ``mpirun -n 2 python -m mpi4py -m landimg.cycle --out ROOT/<config>-s<seed> --set ...``
(a subprocess with a timeout), run one at a time; ``BASE`` settings first, then the config's own. A run's
scores are its ``summary.json`` period scores over days ``score_from``..``days`` (1-based; the runs are
given ``experiment.score_from_day``), the primary score (background ``ubrmse_time`` at 0-10 cm, lower is
better) first, and the ensemble spread / error of the analysis mean against the nature run over the same
days (``analysis.nc``). The
runs of one seed share the nature run, the observations and the forcing, so differences between methods
are *paired* by seed: mean difference +- t(0.975, n-1) sd / sqrt(n) over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("0-10cm", "10-40cm", "40-100cm")
SEEDS = (42, 7, 1, 2, 3)
#: settings of every run (40 days scored on days 11-40; 120-day spin-up to keep the study affordable)
BASE: tuple[str, ...] = (
    "experiment.days=40",
    "experiment.spinup_days=120",
    "output.plots=false",
    "output.restart=false",
)
SCORE_FROM = 11
QUICK: tuple[str, ...] = ("experiment.days=4", "experiment.spinup_days=10", "ensemble.members=4")
DOC_BEGIN, DOC_END = "<!-- study9:begin -->", "<!-- study9:end -->"


@dataclass(frozen=True)
class Config:
    """One experiment configuration run for every seed: name, ``--set`` overrides, what it shows."""

    name: str
    sets: tuple[str, ...]
    note: str


#: the LETKF's localization radii tried (km) and the seeds of that tuning (a subset of the study's seeds:
#: tuning on the seeds it is then scored on favours the competitor, never the curvelet filter)
TUNE_RADII = (125, 250, 500, 1000, 2000)
TUNE_SEEDS = (42, 7)
TUNE: tuple[Config, ...] = tuple(
    Config(f"letkf-r{r}", ('analysis.methods=["point_letkf"]', "point_letkf.inflation_mode=adaptive", f"point_letkf.radius_km={r}"),
           f"point LETKF alone at {r} km (radius tuning)")
    for r in TUNE_RADII
)  # fmt: skip


def main_configs(letkf_radius: float) -> tuple[Config, ...]:
    """The scored configurations, with the LETKF at ``letkf_radius`` km (its best tuned radius)."""
    return (
        Config("main", ('analysis.methods=["openloop","point_enkf","point_letkf","curvelet_enkf"]',
                        "point_enkf.radius_km=1000", "point_letkf.inflation_mode=adaptive",
                        f"point_letkf.radius_km={letkf_radius:g}", *BASELINE_CURVELET),
               f"open loop, point EnKF (1000 km), point LETKF ({letkf_radius:g} km, its tuned best), curvelet EnKF "
               "(perturbed observations, no bias stage: the variants' reference)"),
        Config("default", ('analysis.methods=["curvelet_enkf"]', *DEFAULT_CURVELET),
               "curvelet EnKF with the bias-aware two-stage analysis and DEnKF, paired with main by seed"),
        Config("final", ('analysis.methods=["curvelet_enkf"]', *FINAL_CURVELET),
               "curvelet EnKF with the final defaults (two-stage, DEnKF, one inflation for all scales, "
               "regression layer increments), paired with main by seed"),
    )  # fmt: skip


#: the curvelet settings of ``main`` (the variants' reference), pinned so that the configurations keep
#: their meaning when the defaults change; and the defaults chosen from the variants (explicit as well)
BASELINE_CURVELET = ("curvelet_enkf.bias_correction=false", "curvelet_enkf.denkf=false", "curvelet_enkf.layer_increments=full")
#: the scored "default": the study's runs had layer_increments=full; the default became "regression" after
#: its variant scored the same (docs/validation.md), so a re-run of this configuration pins what was run
DEFAULT_CURVELET = ("curvelet_enkf.bias_correction=true", "curvelet_enkf.bias_gamma=0.1", "curvelet_enkf.denkf=true",
                    "curvelet_enkf.layer_increments=full")
#: the defaults chosen from all the variants (the scored configuration of the goals)
FINAL_CURVELET = ("curvelet_enkf.bias_correction=true", "curvelet_enkf.bias_gamma=0.1", "curvelet_enkf.denkf=true",
                  "curvelet_enkf.inflation_per_scale=false", "curvelet_enkf.layer_increments=regression")
#: curvelet-only variants of ``main``'s curvelet EnKF, each paired with it on the same seeds
VARIANTS: tuple[Config, ...] = (
    Config("bias", ('analysis.methods=["curvelet_enkf"]', "curvelet_enkf.denkf=false", "curvelet_enkf.bias_correction=true", "curvelet_enkf.bias_gamma=0.1"),
           "curvelet EnKF with the bias-aware two-stage analysis on the coarsest scale (gamma 0.1)"),
    Config("denkf", ('analysis.methods=["curvelet_enkf"]', "curvelet_enkf.bias_correction=false", "curvelet_enkf.denkf=true"),
           "curvelet EnKF with the deterministic (DEnKF) anomaly update instead of perturbed observations"),
    Config("single-scale", ('analysis.methods=["curvelet_enkf"]', *BASELINE_CURVELET, "curvelet_enkf.inflation_per_scale=false"),
           "curvelet EnKF with one adaptive inflation for all scales"),
    Config("no-debias", ('analysis.methods=["curvelet_enkf"]', *BASELINE_CURVELET, "curvelet_enkf.inflation_debias=false"),
           "curvelet EnKF, adaptive inflation estimated without removing the innovations' mean"),
    Config("hybrid", ('analysis.methods=["curvelet_enkf"]', *BASELINE_CURVELET, "curvelet_enkf.hybrid_beta=0.5", "curvelet_enkf.hybrid_radius_km=1000"),
           "curvelet EnKF with hybrid B (half localized ensemble covariance, 1000 km)"),
    Config("regression", ('analysis.methods=["curvelet_enkf"]', *BASELINE_CURVELET, "curvelet_enkf.layer_increments=regression"),
           "curvelet EnKF, layers overlapping the observed layer get their regression share"),
    Config("diagonal", ('analysis.methods=["curvelet_enkf"]', *BASELINE_CURVELET, "curvelet_enkf.solver=diagonal"),
           "curvelet EnKF with the paper's diagonal update (solver=diagonal)"),
)  # fmt: skip
VARIANT_SEEDS = (42, 7, 1)


def best_radius(scores: dict[str, Any], seeds: list[int]) -> tuple[float, list[tuple[int, float]]]:
    """The tuned LETKF radius: the one with the highest mean 0-10 cm correlation over ``seeds``.

    Returns the radius and ``[(radius, mean correlation), ...]`` of every radius with all seeds scored.
    """
    table = []
    for r in TUNE_RADII:
        v = [_get(scores, f"letkf-r{r}", s, "point_letkf", ("0-10cm", "spatial_corr")) for s in seeds]
        if all(np.isfinite(v)):
            table.append((r, float(np.mean(v))))
    if not table:
        raise SystemExit("study: no finished LETKF tuning run; run the tuning first")
    return float(max(table, key=lambda t: t[1])[0]), table


#: paired comparisons: (label, (config, method), (config, method)); then default - each variant
PAIRS = (
    ("curvelet (final defaults) - point LETKF", ("final", "curvelet_enkf"), ("main", "point_letkf")),
    ("curvelet (final defaults) - point EnKF", ("final", "curvelet_enkf"), ("main", "point_enkf")),
    ("curvelet (final defaults) - open loop", ("final", "curvelet_enkf"), ("main", "openloop")),
    ("curvelet (final defaults) - curvelet (main)", ("final", "curvelet_enkf"), ("main", "curvelet_enkf")),
    ("curvelet (two-stage + DEnKF) - point LETKF", ("default", "curvelet_enkf"), ("main", "point_letkf")),
    ("curvelet (two-stage + DEnKF) - curvelet (main)", ("default", "curvelet_enkf"), ("main", "curvelet_enkf")),
    ("curvelet - open loop", ("main", "curvelet_enkf"), ("main", "openloop")),
    ("curvelet - point EnKF", ("main", "curvelet_enkf"), ("main", "point_enkf")),
    ("curvelet - point LETKF", ("main", "curvelet_enkf"), ("main", "point_letkf")),
    ("point LETKF - point EnKF", ("main", "point_letkf"), ("main", "point_enkf")),
    ("point EnKF - open loop", ("main", "point_enkf"), ("main", "openloop")),
)


def _command(cfg: Config, seed: int, out: Path, quick: bool) -> list[str]:
    venv = Path(os.environ.get("LANDIMG_VENV", ROOT / ".venv"))
    score_from = 2 if quick else SCORE_FROM
    sets = [*BASE, *cfg.sets, f"experiment.seed={seed}", *(QUICK if quick else ()),
            f"experiment.score_from_day={score_from}"]  # fmt: skip
    cmd = [str(venv / "bin" / "mpirun"), "-n", "2", str(venv / "bin" / "python"), "-m", "mpi4py", "-m",
           "landimg.cycle", "--out", str(out), "--spinup-cache", str(out.parent / "spinup-cache")]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_scores(run: Path, score_from: int) -> dict[str, Any]:
    """Scores of one finished run: per method, per layer, the period scores of its ``summary.json``
    (the run was told ``experiment.score_from_day = score_from``), and the spread / error of the analysis
    mean against the nature run over the same days (``analysis.nc``).

    Returns ``{method: {layer: {spatial_corr, ubrmse_spatial, bias, ubrmse_time, time_corr, background:
    {...the same of the background}}, "primary": background ubrmse_time at 0-10 cm, "spread_error_0-10cm":
    ratio, "consistency": mean O-B / sqrt(spread^2 + sigma^2)}}`` plus ``wall_seconds``.
    """
    import xarray as xr

    summary = json.loads((run / "summary.json").read_text())
    if summary.get("scored_days", [1])[0] != score_from:
        raise SystemExit(f"study: {run} scored from day {summary.get('scored_days')}, expected {score_from}")
    out: dict[str, Any] = {"wall_seconds": summary.get("wall_seconds")}
    i0 = score_from - 1
    keys = ("spatial_corr", "ubrmse_spatial", "bias", "ubrmse_time", "time_corr")
    with xr.open_dataset(run / "analysis.nc") as an:
        truth = an["sm_truth"].values[i0:, 0]
        land = an["land"].values.astype(bool)
        for m, s in summary["methods"].items():
            entry: dict[str, Any] = {}
            for ln in LAYERS:
                entry[ln] = {k: float(s[ln][k]) for k in keys}
                entry[ln]["background"] = {k: float(s[ln]["background"][k]) for k in keys}
            entry["primary"] = float(summary["primary_score"]["values"][m])
            mean = an[f"sm_mean_{m}"].values[i0:, 0]
            spread = an[f"sm_spread_{m}"].values[i0:, 0]
            err2 = float(np.mean(((mean - truth)[:, land]) ** 2))
            entry["spread_error_0-10cm"] = float(np.sqrt(np.mean(spread[:, land] ** 2) / err2))
            entry["consistency"] = float(s["obs_space"]["consistency"])
            out[m] = entry
    return out


def _t975(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def _ci(values: list[float]) -> tuple[float, float, int]:
    """Mean and 95 % half-width (t distribution) of ``values``; half-width NaN for fewer than 2."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    if v.size < 2:
        return float(v.mean()), float("nan"), 1
    return float(v.mean()), _t975(v.size) * float(v.std(ddof=1)) / math.sqrt(v.size), int(v.size)


def _get(scores: dict, cfg: str, seed: int, method: str, metric: tuple[str, ...]) -> float:
    try:
        node = scores[f"{cfg}-s{seed}"][method]
        for k in metric:
            node = node[k]
        return float(node)
    except (KeyError, TypeError):
        return float("nan")


METRICS = (
    (("primary",), "primary: bg ubRMSE_t 0-10", 4),
    (("0-10cm", "spatial_corr"), "0-10 cm corr", 3),
    (("0-10cm", "ubrmse_spatial"), "0-10 cm ubRMSE_sp", 4),
    (("10-40cm", "spatial_corr"), "10-40 cm corr", 3),
    (("40-100cm", "spatial_corr"), "40-100 cm corr", 3),
    (("spread_error_0-10cm",), "spread/error 0-10", 2),
    (("consistency",), "O-B consistency", 2),
)


def report(
    scores: dict[str, Any], seeds: list[int], meta: dict[str, Any], configs: tuple[Config, ...]
) -> str:
    """Markdown tables: per-method means +- 95 % CI over seeds, then the paired differences."""
    lines = [f"Seeds {', '.join(map(str, seeds))}; {meta['what']}", ""]
    head = "| config / method | n | " + " | ".join(name for _, name, _ in METRICS) + " |"
    lines += [head, "|" + "---|" * (len(METRICS) + 2)]
    for cfg in configs:
        methods = sorted(
            {m for k, v in scores.items() if k.startswith(cfg.name + "-s") for m in v if m != "wall_seconds"}
        )
        for m in methods:
            cells, n = [], 0
            for metric, _, nd in METRICS:
                mu, hw, n_ = _ci([_get(scores, cfg.name, s, m, metric) for s in seeds])
                n = max(n, n_)
                cells.append(f"{mu:.{nd}f} +- {hw:.{nd}f}" if np.isfinite(hw) else f"{mu:.{nd}f}")
            lines.append(f"| {cfg.name} / {m} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences over seeds (mean +- 95 % CI; * = CI excludes 0):", ""]
    lines += [head.replace("config / method", "difference"), "|" + "---|" * (len(METRICS) + 2)]
    variant_pairs = [
        (f"curvelet (main) - {v.name}", ("main", "curvelet_enkf"), (v.name, "curvelet_enkf"))
        for v in VARIANTS
    ]
    for label, (c1, m1), (c2, m2) in [*PAIRS, *variant_pairs]:
        if not any(np.isfinite(_get(scores, c2, s, m2, METRICS[1][0])) for s in seeds):
            continue  # a variant not run
        cells, n = [], 0
        for metric, _, nd in METRICS[:5]:
            d = [_get(scores, c1, s, m1, metric) - _get(scores, c2, s, m2, metric) for s in seeds]
            mu, hw, n = _ci(d)
            star = "*" if np.isfinite(hw) and abs(mu) > hw else ""
            cells.append(
                f"{mu:+.{nd + 1}f} +- {hw:.{nd + 1}f}{star}" if np.isfinite(hw) else f"{mu:+.{nd + 1}f}"
            )
        cells += ["", ""]
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    walls = [v["wall_seconds"] for k, v in scores.items() if k.startswith("main-s") and v.get("wall_seconds")]
    if walls:
        lines += [
            "",
            f"Wall time of a `main` run (2 ranks, shared machine): {min(walls):.0f}-{max(walls):.0f} s.",
        ]
    return "\n".join(lines)


def goals(scores: dict[str, Any], seeds: list[int]) -> str:
    """Markdown table of the issue-9 goals against the measured means (95 % CI) over seeds."""

    def ci(vals: list[float], nd: int = 3) -> str:
        mu, hw, n = _ci(vals)
        return f"{mu:.{nd}f} +- {hw:.{nd}f} (n={n})" if np.isfinite(hw) else f"{mu:.{nd}f} (n={n})"

    def g(m: str, *metric: str, cfg: str = "main") -> list[float]:
        return [_get(scores, cfg, s, m, metric) for s in seeds]

    cv, ol, pt = "curvelet_enkf", "openloop", "point_enkf"
    scored = next((c for c in ("final", "default") if any(f"{c}-s{s}" in scores for s in seeds)), "main")

    def gc(*metric: str) -> list[float]:  # the curvelet EnKF with its defaults
        return g(cv, *metric, cfg=scored)

    diff = lambda a, b: [x - y for x, y in zip(a, b, strict=True)]
    rows = [
        ("curvelet 0-10 cm spatial correlation", ">= 0.90", ci(gc("0-10cm", "spatial_corr"))),
        ("curvelet 0-10 cm ubRMSE / open loop", "<= 0.5", ci([a / b for a, b in zip(gc("0-10cm", "ubrmse_spatial"), g(ol, "0-10cm", "ubrmse_spatial"), strict=True)])),
        ("curvelet - open loop, 10-40 cm correlation", ">= +0.20", ci(diff(gc("10-40cm", "spatial_corr"), g(ol, "10-40cm", "spatial_corr")))),
        ("curvelet - open loop, 40-100 cm correlation", ">= +0.12", ci(diff(gc("40-100cm", "spatial_corr"), g(ol, "40-100cm", "spatial_corr")))),
        ("curvelet analysis spread / error, 0-10 cm", "0.6 - 1.5", ci(gc("spread_error_0-10cm"), 2)),
        ("curvelet - point EnKF, 0-10 cm correlation", ">= +0.02, CI > 0", ci(diff(gc("0-10cm", "spatial_corr"), g(pt, "0-10cm", "spatial_corr")))),
        ("curvelet - point LETKF (tuned radius), 0-10 cm correlation", ">= +0.02, CI > 0", ci(diff(gc("0-10cm", "spatial_corr"), g("point_letkf", "0-10cm", "spatial_corr")))),
    ]  # fmt: skip
    out = ["| goal (days 11-40) | target | measured, mean +- 95 % CI over seeds |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def write_docs(text: str, path: Path = ROOT / "docs" / "validation.md") -> None:
    """Replace the block between the study markers of ``path`` (appended when absent)."""
    doc = path.read_text()
    block = f"{DOC_BEGIN}\n{text}\n{DOC_END}"
    if DOC_BEGIN in doc and DOC_END in doc:
        pre, rest = doc.split(DOC_BEGIN, 1)
        doc = pre + block + rest.split(DOC_END, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def _run(
    configs: tuple[Config, ...], seeds: list[int], root: Path, data: dict[str, Any], a: argparse.Namespace
) -> None:
    """Run every config x seed not yet scored (with ``--resume``) into ``root``; scores into ``data``."""
    store = root / "study.json"
    score_from = 2 if a.quick else SCORE_FROM
    for seed in seeds:  # seed-major: a stopped study has complete pairs for the first seeds
        for cfg in configs:
            key = f"{cfg.name}-s{seed}"
            if a.resume and key in data["scores"]:
                continue
            out = root / key
            shutil.rmtree(out, ignore_errors=True)
            cmd = _command(cfg, seed, out, a.quick)
            env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
            t0 = time.perf_counter()
            print(f"[study] {key}: {' '.join(cmd[-2 * (len(cmd) - 12) :])}", flush=True)
            try:
                rc = subprocess.run(
                    cmd, env=env, timeout=a.timeout, capture_output=True, text=True, check=False
                )
                code, err = rc.returncode, rc.stderr[-2000:]
            except subprocess.TimeoutExpired:
                code, err = None, "timeout"
            wall = time.perf_counter() - t0
            data["runs"][key] = {"returncode": code, "wall_s": wall, "error": err if code else "", "cmd": cmd}
            if code == 0:
                data["scores"][key] = run_scores(out, score_from)
            print(f"[study] {key}: exit {code}, {wall:.0f} s", flush=True)
            store.write_text(json.dumps(data, indent=1))


def tuning_report(scores: dict[str, Any], seeds: list[int]) -> str:
    """Markdown table of the LETKF radius tuning (mean 0-10 cm correlation and ubRMSE over ``seeds``)."""
    radius, _ = best_radius(scores, seeds)
    out = [f"LETKF radius tuning (seeds {', '.join(map(str, seeds))}, point_letkf alone, same scoring):", "",
           "| radius (km) | 0-10 cm corr | 0-10 cm ubRMSE_sp | 10-40 cm corr |", "|---|---|---|---|"]  # fmt: skip
    for r in TUNE_RADII:
        cells = []
        for metric, nd in (
            (("0-10cm", "spatial_corr"), 3),
            (("0-10cm", "ubrmse_spatial"), 4),
            (("10-40cm", "spatial_corr"), 3),
        ):
            mu, hw, _ = _ci([_get(scores, f"letkf-r{r}", s, "point_letkf", metric) for s in seeds])
            cells.append(f"{mu:.{nd}f} +- {hw:.{nd}f}" if np.isfinite(hw) else f"{mu:.{nd}f}")
        mark = " (best)" if r == radius else ""
        out.append(f"| {r}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--resume", action="store_true", help="keep runs of --root that have scores")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--tune-seeds", default=",".join(map(str, TUNE_SEEDS)))
    p.add_argument("--tune-only", action="store_true", help="run the LETKF radius tuning only")
    p.add_argument("--variant-seeds", default=",".join(map(str, VARIANT_SEEDS)), help="'' = no variants")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s]
    tune_seeds = [int(s) for s in a.tune_seeds.split(",") if s]
    variant_seeds = [int(s) for s in a.variant_seeds.split(",") if s]
    if a.quick:
        seeds, tune_seeds = seeds[:2], tune_seeds[:1]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = a.root or ROOT / "runs" / f"study9-{stamp}"
    root.mkdir(parents=True, exist_ok=True)
    store = root / "study.json"
    data = json.loads(store.read_text()) if store.exists() else {"scores": {}, "runs": {}}
    if not a.report_only:
        _run(TUNE, tune_seeds, root, data, a)
    radius, _ = best_radius(data["scores"], tune_seeds)
    configs = main_configs(radius)
    tuning = tuning_report(data["scores"], tune_seeds)
    print(tuning)
    if a.tune_only:
        return 0
    if not a.report_only:
        _run(configs, seeds, root, data, a)
        for variant in VARIANTS:  # variant-major: a stopped study has the first variants on every seed
            _run((variant,), variant_seeds, root, data, a)
    what = (f"{'quick smoke test' if a.quick else '40 days'} scored on days {2 if a.quick else SCORE_FROM}-"
            f"{4 if a.quick else 40}; {', '.join((QUICK if a.quick else BASE)[1:2])}; CONUS 1 deg")  # fmt: skip
    text = (
        goals(data["scores"], seeds)
        + "\n\n"
        + report(data["scores"], seeds, {"what": what}, configs + VARIANTS)
        + "\n\n"
        + tuning
    )
    (root / "study.md").write_text(text + "\n")
    print(text)
    if a.write_docs:
        write_docs(text)
        write_docs(goals(data["scores"], seeds), ROOT / "README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
