"""Temporal skill of the filters: variants side by side on one nature run, and the diagnostics of why.

docs/validation.md, section "Temporal skill of the filters", quotes the numbers this script prints.

    # every variant of a list in one process (one nature run, one set of observations; each variant is one
    # ensemble, so the runs are paired exactly); training seeds only
    LANDIMG_VENV=.venv .venv/bin/python bench/temporal_skill.py run --seed 1001 --days 30 --out runs/ts/a_1001 \
        --variants openloop,letkf,letkf_obs,curvelet,curvelet_obs
    # the tables (temporal scores, spread/error per layer, increments, relaxation, calibration, sawtooth)
    .venv/bin/python bench/temporal_skill.py report runs/ts/a_1001 runs/ts/a_1002 [--from-day 11]
    .venv/bin/python bench/temporal_skill.py list          # the variants

A variant is a method of the experiment (``point_letkf``, ``curvelet_enkf``, ...) with some of its fields
replaced (the library's options: ``inflation_layers``, ``vertical_localization_m``, ``nlev_update``,
``deep_regression``, ``obs_white_fraction``, ...), and optionally one of two *experimental* host treatments
that the library does not have, implemented here only to measure them (:class:`_Experimental`): RTPS
(relaxation of every layer's analysis spread towards its forecast spread, Whitaker & Hamill 2012, instead
of the prior inflation) and an incremental analysis update (each member's increment added in equal parts
before each of the next ``iau`` model steps; the analysis recorded at 00 UTC is then the background).
Extra variants: ``--define name=base:field=value:...`` (values as JSON; ``host.rtps=0.5``,
``host.iau=6`` for the experimental ones).

The run is :func:`landimg.experiment.loop.run` with the method table replaced by the variants (every
variant is an ensemble of the same seed: identical forcing perturbations and soil parameters) and the
background spread per layer recorded (``extra.npz``); ``analysis.nc`` holds the truth, the observations and
every variant's analysis and background means and analysis spreads per day.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = ("0-10cm", "10-40cm", "40-100cm")

# name -> (method of the experiment, method fields, experimental host treatment)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}


def _variant(name: str, base: str, host: dict[str, Any] | None = None, **fields: Any) -> None:
    VARIANTS[name] = (base, fields, host or {})


_variant("openloop", "openloop")
for _short, _base in (("letkf", "point_letkf"), ("curvelet", "curvelet_enkf"), ("enkf", "point_enkf")):
    _variant(_short, _base)  # the library's defaults (since the temporal study: inflation_layers="observed")
    _variant(f"{_short}_all", _base, inflation_layers="all")  # every layer inflated (the default before)
    _variant(f"{_short}_obs", _base, inflation_layers="observed")
    _variant(f"{_short}_fixed1", _base, inflation_mode="fixed", inflation=1.0)
    _variant(f"{_short}_rtps5", _base, {"rtps": 0.5}, inflation_mode="fixed", inflation=1.0)
    _variant(f"{_short}_iau6", _base, {"iau": 6})
    _variant(f"{_short}_iau24", _base, {"iau": 24})
    for _m in (1.1, 2.2, 3.65):
        _variant(f"{_short}_obs_vl{_m:g}", _base, inflation_layers="observed", vertical_localization_m=_m)
_variant("letkf_top4", "point_letkf", nlev_update=4)
_variant("curvelet_nodeep", "curvelet_enkf", deep_regression=False)
_variant("letkf_white", "point_letkf", obs_white_fraction=1.0)
_variant("letkf_white_obs", "point_letkf", obs_white_fraction=1.0, inflation_layers="observed")


def _define(spec: str) -> None:
    """``name=base:field=value:host.key=value`` (values parsed as JSON when they are)."""
    name, _, rest = spec.partition("=")
    base, *pairs = rest.split(":")
    fields, host = {}, {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        (host if key.startswith("host.") else fields)[key.removeprefix("host.")] = value
    _variant(name, base, host, **fields)


# ------------------------------------------------------------------ experimental host treatments
def _experimental_ensemble_class():
    from landimg.ensemble.ensemble import Ensemble

    class _Experimental(Ensemble):
        """An Ensemble with the treatments the library does not have (measured here only): ``rtps``
        (alpha of RTPS on every layer, after the method's increments) and ``iau`` (model steps over
        which each member's increment is spread)."""

        rtps: float = 0.0
        iau: int = 0
        _pending: tuple[np.ndarray, int] | None = None

        def _apply_increments(self, dtheta: np.ndarray, diag: Any) -> None:
            if self.rtps:
                lay, theta = self.layout, self.model.theta()
                an = theta + dtheta
                _, var_b = lay.mean_var(theta, axis=2)
                mean_a, var_a = lay.mean_var(an, axis=2)
                sd_b, sd_a = np.sqrt(var_b), np.sqrt(var_a)
                with np.errstate(divide="ignore", invalid="ignore"):
                    fac = np.where(sd_a > 0, 1.0 + self.rtps * (sd_b - sd_a) / sd_a, 1.0)
                dtheta = mean_a[:, :, None] + fac[:, :, None] * (an - mean_a[:, :, None]) - theta
            if self.iau:
                self._pending = (dtheta / self.iau, self.iau)
                diag.clipped_water_kg_m2 = 0.0  # booked as the parts are added
                return
            super()._apply_increments(dtheta, diag)

        def advance(self, forcing, nsteps: int = 1, t: float | None = None) -> None:
            if self._pending is not None and self._pending[1] > 0:
                from landimg.da.protocol import Diagnostics

                part, left = self._pending
                super()._apply_increments(part, Diagnostics(method="iau"))
                self._pending = (part, left - 1)
            super().advance(forcing, nsteps, t)

    return _Experimental


# ------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> None:
    from landimg.experiment import loop
    from landimg.experiment.config import load_config

    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; see `list`")
    bases = sorted({VARIANTS[n][0] for n in names})
    cfg = load_config(None, [
        f"experiment.seed={args.seed}", f"experiment.days={args.days}",
        f"experiment.score_from_day={args.from_day}", "output.plots=false", "output.restart=false",
        "analysis.methods=[" + ",".join(f'"{b}"' for b in bases) + "]", *args.set,
    ])  # fmt: skip
    setup, ensembles, background = loop.setup, loop._ensembles, loop._background
    spread_b: dict[str, list[np.ndarray]] = {n: [] for n in names}
    experimental = _experimental_ensemble_class()

    def variant_setup(cfg, *args, **kwargs):
        s = setup(cfg, *args, **kwargs)
        s.methods = {
            n: dataclasses.replace(s.methods[VARIANTS[n][0]], **VARIANTS[n][1]) for n in names
        }  # fmt: skip
        return s

    def variant_ensembles(*args, **kwargs):
        out = ensembles(*args, **kwargs)
        for n, ens in out.items():
            if VARIANTS[n][2]:
                ens.__class__ = experimental
                for key, value in VARIANTS[n][2].items():
                    setattr(ens, key, value)
        return out

    def background_with_spread(r, day, *args, **kwargs):
        out = background(r, day, *args, **kwargs)
        for n, ens in r.ensembles.items():
            images = np.stack([ens.spread_image(layer) for layer in loop.LAYERS])
            if r.rank == 0:
                spread_b[n].append(images)
        return out

    loop.setup, loop._ensembles, loop._background = variant_setup, variant_ensembles, background_with_spread
    t0 = time.perf_counter()
    res = loop.run(cfg, args.out, spinup_cache=args.spinup_cache, progress=False)
    if res is None:
        return
    np.savez_compressed(
        Path(args.out) / "extra.npz", **{f"spread_b_{n}": np.array(v) for n, v in spread_b.items()}
    )
    (Path(args.out) / "variants.json").write_text(json.dumps({n: VARIANTS[n] for n in names}, indent=1))
    print(f"seed {args.seed}, days {args.days}, scored {res.summary['scored_days']}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip


# ------------------------------------------------------------------ report
class _Run:
    """One run directory: the truth, observations, analysis/background means of every variant."""

    def __init__(self, path: Path, from_day: int) -> None:
        import netCDF4

        self.path, self.t0 = path, from_day - 1
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        with netCDF4.Dataset(path / "analysis.nc") as d:
            land = d["land"][:].astype(bool)

            def read(key):
                a = np.ma.filled(d[key][:], np.nan)
                return a[:, :, land] if a.ndim == 4 else a[:, land]

            self.truth, self.obs = read("sm_truth"), read("sm_obs")
            self.names = [k[len("sm_mean_") :] for k in d.variables if k.startswith("sm_mean_")]
            self.xa = {n: read(f"sm_mean_{n}") for n in self.names}
            self.xb = {n: read(f"sm_background_{n}") for n in self.names}
        extra = np.load(path / "extra.npz")
        self.spread_b = {n: extra[f"spread_b_{n}"][:, :, land] for n in self.names}
        self.summary = json.loads((path / "summary.json").read_text())

    def rows(self, name: str) -> dict[str, np.ndarray]:
        """Every diagnostic of one variant over the scored days, per layer (3,) (computed once)."""
        if name not in self._cache:
            self._cache[name] = self._rows(name)
        return self._cache[name]

    def _rows(self, name: str) -> dict[str, np.ndarray]:
        t0, truth = self.t0, self.truth
        xa, xb = self.xa[name], self.xb[name]
        eb, inc = xb - truth, xa - xb
        m = self.summary["methods"][name]

        def score(key: str, background: bool = False) -> np.ndarray:  # None (too few days) -> nan
            values = [(m[layer]["background"] if background else m[layer])[key] for layer in LAYERS]
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        out = {
            "ubrmse_time_bg": score("ubrmse_time", background=True),
            "ubrmse_time_an": score("ubrmse_time"),
            "spatial_corr_an": score("spatial_corr"),
            "time_corr_bg": score("time_corr", background=True),
            "clipped_water": np.array([m.get("clipped_water_kg_m2", 0.0)] * 3),
        }
        sb = self.spread_b[name][t0:]
        out["spread_error_bg"] = np.sqrt(
            np.nanmean(sb**2, axis=(0, 2)) / np.nanmean(eb[t0:] ** 2, axis=(0, 2))
        )
        out["increment_rms"] = np.sqrt(np.nanmean(inc[t0:] ** 2, axis=(0, 2)))
        out["increment_mean"] = np.nanmean(inc[t0:], axis=(0, 2))
        # the model's 24-h change after an analysis minus the truth's, regressed on the increment
        i = inc[t0:-1]
        dev = (xb[t0 + 1 :] - xa[t0:-1]) - (truth[t0 + 1 :] - truth[t0:-1])
        out["relaxation"] = np.nansum(i * dev, axis=(0, 2)) / np.maximum(np.nansum(i * i, axis=(0, 2)), 1e-30)
        # calibration: the true background error regressed on the increment (1 = increments of the right
        # size), on the per-pixel anomalies (time means removed) as the temporal scores see them
        err = truth[t0:] - xb[t0:]
        ia, ea = inc[t0:] - np.nanmean(inc[t0:], axis=0), err - np.nanmean(err, axis=0)
        out["calibration"] = np.nansum(inc[t0:] * err, axis=(0, 2)) / np.maximum(
            np.nansum(inc[t0:] ** 2, axis=(0, 2)), 1e-30
        )
        out["calibration_anomaly"] = np.nansum(ia * ea, axis=(0, 2)) / np.maximum(
            np.nansum(ia**2, axis=(0, 2)), 1e-30
        )
        # the increment's temporal anomaly: its rms and its correlation with the true background error's
        out["increment_rms_time"] = np.sqrt(np.nanmean(ia**2, axis=(0, 2)))
        out["increment_corr_time"] = np.nansum(ia * ea, axis=(0, 2)) / np.sqrt(
            np.maximum(np.nansum(ia**2, axis=(0, 2)) * np.nansum(ea**2, axis=(0, 2)), 1e-30)
        )
        out["sawtooth"] = self._sawtooth(eb)
        return out

    def _sawtooth(self, eb: np.ndarray) -> np.ndarray:
        """rms (3,) of the background error anomaly's mean conditioned on the days since the pixel's last
        observation (the part of the temporal error a revisit cycle explains)."""
        t0, seen = self.t0, np.isfinite(self.obs)
        since, last = np.full(seen.shape, -1), np.full(seen.shape[1], -(10**6))
        for t in range(seen.shape[0]):
            since[t] = t - last
            last = np.where(seen[t], t, last)
        s, e = since[t0:], eb[t0:] - np.nanmean(eb[t0:], axis=0)
        out = np.zeros(3)
        for k in np.unique(s):
            sel = s == k
            for layer in range(3):
                out[layer] += sel.mean() * np.nanmean(e[:, layer][sel]) ** 2
        return np.sqrt(out)


_COLUMNS = (
    ("ubrmse_time_bg", "bg ubRMSE_t", 5), ("ubrmse_time_an", "an ubRMSE_t", 4),
    ("spatial_corr_an", "an spatial r", 3), ("spread_error_bg", "bg spread/err", 2),
    ("increment_rms", "inc rms", 4), ("increment_mean", "inc mean", 4), ("relaxation", "24-h relax", 2),
    ("calibration", "calib", 2), ("calibration_anomaly", "calib anom", 2),
    ("increment_rms_time", "inc rms of temporal anomaly", 4), ("increment_corr_time", "inc/error temporal anomaly corr", 2),
    ("sawtooth", "sawtooth rms", 4),
)  # fmt: skip


def report(args: argparse.Namespace) -> None:
    runs = [_Run(Path(p), args.from_day) for p in args.dirs]
    names = [n for n in runs[0].names if all(n in r.names for r in runs)]
    for key, title, digits in _COLUMNS:
        print(f"\n{title} (0-10 / 10-40 / 40-100 cm; " + " | ".join(r.path.name for r in runs) + ")")
        for n in names:
            cells = [" ".join(f"{v:.{digits}f}" for v in r.rows(n)[key]) for r in runs]
            print(f"  {n:24s} " + " | ".join(cells))
    print("\nclipped water over the run (kg/m2, domain mean per member): "
          + "; ".join(f"{n} " + "/".join(f"{r.rows(n)['clipped_water'][0]:.1f}" for r in runs) for n in names))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--days", type=int, default=30)
    r.add_argument("--from-day", type=int, default=11, help="experiment.score_from_day")
    r.add_argument("--out", required=True)
    r.add_argument("--variants", required=True, help="comma-separated names (see `list`)")
    r.add_argument("--define", action="append", default=[], help="name=base:field=value:host.key=value")
    r.add_argument("--set", action="append", default=[], help="section.key=value for every variant")
    r.add_argument("--spinup-cache", default=None)
    q = sub.add_parser("report")
    q.add_argument("dirs", nargs="+")
    q.add_argument("--from-day", type=int, default=11)
    sub.add_parser("list")
    args = p.parse_args(argv)
    for spec in getattr(args, "define", []):
        _define(spec)
    if args.cmd == "run":
        run(args)
    elif args.cmd == "report":
        report(args)
    else:
        for n, (base, fields, host) in VARIANTS.items():
            print(f"{n:24s} {base:14s} {fields} {host or ''}")


if __name__ == "__main__":
    main()
