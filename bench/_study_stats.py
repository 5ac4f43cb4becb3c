"""Scores of a finished cycle run, 95 % confidence intervals over seeds, paired differences, the tuning
selection and the goal checks of the pre-registered study (``bench/study.py``)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = ("0-10cm", "10-40cm", "40-100cm")
#: the scores kept per method and layer, for the analysis and (under "background") the forecast
KEYS = ("spatial_corr", "ubrmse_spatial", "bias", "ubrmse_time", "time_corr")
PRIMARY_PATH = ("0-10cm", "background", "ubrmse_time")


class StudyError(SystemExit):
    """A one-line error of the study (exit status 2)."""

    def __init__(self, msg: str) -> None:
        super().__init__(2)
        self.msg = msg

    def __str__(self) -> str:
        return self.msg


def _need(node: Any, path: tuple[str, ...], where: str) -> Any:
    """``node[path...]``; a missing key is a one-line StudyError; ``null`` (a NaN in JSON) becomes NaN."""
    for k in path:
        if not isinstance(node, dict) or k not in node:
            raise StudyError(f"study: {where} has no {'.'.join(path)} (the scores of issue 18 item 1)")
        node = node[k]
    return float("nan") if node is None else node


def run_scores(run: Path, scored_days: tuple[int, int]) -> dict[str, Any]:
    """Scores of one finished run from its ``summary.json`` (and ``analysis.nc`` for spread / error).

    Returns ``{"methods": {m: {layer: {KEYS..., "background": {KEYS...}}, "primary": background
    ubrmse_time at 0-10 cm, "consistency": O-B consistency, "consistency_debiased": the same of the
    innovations with each day's mean removed (informational), "spread_error": analysis spread / error at
    0-10 cm, "analysis_cpu_s": CPU seconds of all its analyses}}, "wall_seconds", "obs_per_day"}``.
    The run must have been scored over ``scored_days`` (first, last; 1-based).
    """
    where = str(run / "summary.json")
    summary = json.loads((run / "summary.json").read_text())
    got = tuple(_need(summary, ("scored_days",), where))
    if got != tuple(scored_days):
        raise StudyError(
            f"study: {where} scored days {got[0]}-{got[1]}, "
            f"the study scores {scored_days[0]}-{scored_days[1]}"
        )
    cpu = summary.get("analysis_cpu_seconds", {})
    out: dict[str, Any] = {
        "methods": {},
        "wall_seconds": summary.get("wall_seconds"),
        "obs_per_day": summary.get("obs_per_day"),
    }
    spread_err = spread_error(run / "analysis.nc", list(summary["methods"]), scored_days[0] - 1)
    debiased = debiased_consistency(run / "metrics.nc", list(summary["methods"]), scored_days[0] - 1)
    for m, s in summary["methods"].items():
        entry: dict[str, Any] = {}
        for ln in LAYERS:
            entry[ln] = {k: float(_need(s, (ln, k), where)) for k in KEYS}
            entry[ln]["background"] = {k: float(_need(s, (ln, "background", k), where)) for k in KEYS}
        entry["primary"] = entry["0-10cm"]["background"]["ubrmse_time"]
        entry["consistency"] = float(s.get("obs_space", {}).get("consistency") or float("nan"))
        entry["consistency_debiased"] = debiased.get(m, float("nan"))
        entry["spread_error"] = spread_err.get(m, (float("nan"),))[0]
        entry["analysis_cpu_s"] = float(cpu[m]) if cpu.get(m) is not None else float("nan")
        out["methods"][m] = entry
    return out


def spread_error(path: Path, methods: list[str], i0: int) -> dict[str, tuple[float, float]]:
    """Analysis spread / rms error of the ensemble mean at 0-10 cm over land and the days from ``i0``
    (0-based), per method: (as registered, de-biased). De-biased: each day's land mean error removed first
    (informational, as :func:`debiased_consistency`: a background biased against the truth raises the
    error, not the scatter the spread describes)."""
    if not path.exists():
        return {}
    import xarray as xr

    out = {}
    with xr.open_dataset(path) as an:
        truth = an["sm_truth"].values[i0:, 0]
        land = an["land"].values.astype(bool)
        for m in methods:
            if f"sm_mean_{m}" not in an:
                continue
            err = (an[f"sm_mean_{m}"].values[i0:, 0] - truth)[:, land]
            spread2 = np.nanmean(an[f"sm_spread_{m}"].values[i0:, 0][:, land] ** 2)
            ratios = []
            for e in (err, err - np.nanmean(err, axis=1, keepdims=True)):
                err2 = float(np.nanmean(e**2))
                ratios.append(float(np.sqrt(spread2 / err2)) if err2 > 0 else float("nan"))
            out[m] = (ratios[0], ratios[1])
    return out


def debiased_consistency(path: Path, methods: list[str], i0: int) -> dict[str, float]:
    """O-B consistency of the innovations with each day's mean removed, mean over the days from ``i0``
    (0-based) that had observations: ``sqrt(omb_rms^2 - omb_mean^2) / sqrt(spread_b^2 + obs_err^2)``.

    The registered consistency (``metrics.nc`` ``consistency_<m>``) is ``omb_rms`` over the same
    denominator: a background biased against the observations raises it although the ensemble spread and
    R describe the innovations' scatter; this one tells the two apart (informational, no goal).
    """
    if not path.exists():
        return {}
    import xarray as xr

    out = {}
    with xr.open_dataset(path) as mt:
        for m in methods:
            if f"omb_rms_{m}" not in mt:
                continue
            rms, mean = mt[f"omb_rms_{m}"].values[i0:], mt[f"omb_mean_{m}"].values[i0:]
            tot = np.hypot(mt[f"spread_b_{m}"].values[i0:], mt[f"obs_err_{m}"].values[i0:])
            with np.errstate(invalid="ignore", divide="ignore"):
                daily = np.sqrt(np.maximum(rms**2 - mean**2, 0.0)) / tot
            ok = np.isfinite(daily)
            out[m] = float(np.mean(daily[ok])) if ok.any() else float("nan")
    return out


def metric(scores: dict[str, Any] | None, method: str, path: tuple[str, ...]) -> float:
    """One number of a run's scores (NaN when the run or the method is missing)."""
    try:
        node = scores["methods"][method]  # type: ignore[index]
        for k in path:
            node = node[k]
        return float(node)
    except (KeyError, TypeError):
        return float("nan")


def t975(n: int) -> float:
    """Two-sided 95 % quantile of Student's t with ``n - 1`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def ci(values: list[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, 95 % half-width (t over the finite values) and their number; half-width NaN below 2."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    if v.size < 2:
        return float(v.mean()), float("nan"), 1
    return float(v.mean()), t975(v.size) * float(v.std(ddof=1)) / math.sqrt(v.size), int(v.size)


def paired(a: list[float], b: list[float]) -> tuple[float, float, int]:
    """Paired difference ``a - b`` over the seeds where both are finite: mean, 95 % half-width, n."""
    return ci([x - y for x, y in zip(a, b, strict=True) if np.isfinite(x) and np.isfinite(y)])


def fmt(mu: float, hw: float, nd: int, signed: bool = False) -> str:
    """``mean +- half-width`` (the half-width left out when NaN)."""
    if not np.isfinite(mu):
        return "n/a"
    s = f"{mu:+.{nd}f}" if signed else f"{mu:.{nd}f}"
    return f"{s} +- {hw:.{nd}f}" if np.isfinite(hw) else s


def select(table: dict[str, list[float]]) -> tuple[str, list[tuple[str, float]]]:
    """The candidate with the lowest mean primary score over the training seeds (ties: the first
    listed); every candidate must have all its seeds scored. Returns (name, [(name, mean), ...])."""
    means = []
    for name, vals in table.items():
        if not vals or not all(np.isfinite(vals)):
            raise StudyError(f"study: candidate {name} has unscored training runs; finish the tuning first")
        means.append((name, float(np.mean(vals))))
    best = min(means, key=lambda t: t[1])[0]
    return best, means


def select_every_layer(
    tables: dict[str, dict[str, list[float]]], eligible: set[str] | None = None
) -> tuple[str, list[tuple[str, float]]]:
    """The candidate best at every layer at once: ``tables`` maps each layer to the candidates' per-seed
    scores (lower is better). A candidate's score is the mean over the layers of its mean over the seeds
    divided by the lowest such mean of that layer (1 = best at every layer); the lowest score is selected
    among ``eligible`` (None: all; ties: the first listed). Every candidate must have all its seeds scored.
    Returns (name, [(name, score), ...]) with every candidate's score, eligible or not."""
    names = list(next(iter(tables.values())))
    means: dict[str, dict[str, float]] = {}
    for layer, table in tables.items():
        for name, vals in table.items():
            if not vals or not all(np.isfinite(vals)):
                raise StudyError(f"study: candidate {name} has unscored training runs; finish the tuning first")
            means.setdefault(layer, {})[name] = float(np.mean(vals))
    scores = [(n, float(np.mean([m[n] / min(m.values()) for m in means.values()]))) for n in names]
    pool = [t for t in scores if eligible is None or t[0] in eligible]
    if not pool:
        raise StudyError("study: no candidate is eligible (the selection's CPU bound excludes them all)")
    return min(pool, key=lambda t: t[1])[0], scores


def members_for_cpu(points: dict[int, float], target: float, lo: int, hi: int) -> int:
    """The ensemble size at which a method's analysis CPU (``points``: members -> CPU seconds) reaches
    ``target``: log-log interpolation between the calibration sizes (extrapolated with the end
    segments' slopes), rounded to an integer in ``[lo, hi]``."""
    n = np.array(sorted(points), dtype=float)
    c = np.array([points[int(k)] for k in n], dtype=float)
    if n.size < 2 or not np.all(c > 0) or not target > 0:
        raise StudyError(f"study: cannot size the equal-CPU ensemble from {points} (target {target})")
    ln, lc, lt = np.log(n), np.log(c), math.log(target)
    k = int(np.clip(np.searchsorted(lc, lt), 1, n.size - 1))  # the segment (k - 1, k)
    slope = (lc[k] - lc[k - 1]) / (ln[k] - ln[k - 1])
    if not slope > 0:  # timing noise (short runs on a busy machine): the fit over every size, else ~ N
        fit = float(np.polyfit(ln, lc, 1)[0]) if n.size > 2 else slope
        slope = fit if fit > 0 else 1.0
        print(
            f"study: warning: analysis CPU does not grow with the ensemble size between the calibration runs "
            f"{points} (timing noise?); sizing with CPU ~ N^{slope:.2f}",
            file=sys.stderr,
        )
    return int(np.clip(round(math.exp(ln[k - 1] + (lt - lc[k - 1]) / slope)), lo, hi))


def write_block(path: Path, tag: str, text: str) -> None:
    """Replace the block between ``<!-- {tag}:begin -->`` and ``<!-- {tag}:end -->`` of ``path``
    (appended when absent); written to a temporary file and renamed (never half-written)."""
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    doc = path.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        pre, rest = doc.split(begin, 1)
        doc = pre + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc)
    tmp.replace(path)
