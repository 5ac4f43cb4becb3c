"""How much better than the LETKF can one analysis be? The single-analysis experiment behind the goal G3 of
issue 18 (correlated world: the curvelet EnKF's primary score <= 0.93 x the LETKF's).

A large ensemble (``--members``, default 128) is cycled by the LETKF (the study's selection: 500 km, the
layers the observation operator weights) in a world of the study (``--world``, default ``correlated``) on a
*training* seed. At each analysis from day ``--from-day`` on, the same background is analysed four ways,
all from the large ensemble's mean, and each analysis' 0-10 cm layer is compared with the nature run:

* ``letkf16`` and ``curvelet16``: the study's selected LETKF and curvelet EnKF, given 16 of the members
  (their anomalies about their own mean, recentred on the large ensemble's mean), with one inflation for all
  (from this analysis' innovations: the large ensemble's variance at the observations scaled so that
  HBH + R matches the innovations' variance; a single analysis has no inflation history), their
  declared-R assumptions as in the cycle;
* ``kf_ens_true_r``: the Kalman update of the 0-10 cm layer with the large ensemble's covariances
  (Gaspari-Cohn localized at ``--kf-radius-km``) and the world's true observation-error covariance (white +
  correlated part, dense; :class:`landimg.da.obs_covariance.ObsCovariance`): what the large ensemble's
  covariances give with the right R;
* ``kf_ens_white_r``: the same with R = sigma^2 I.

It prints, per analysis and as means, the rms and the centred rms (the day's land mean removed: the
background's bias, which neither selected filter models in this world, dominates the rms) of the 0-10 cm
analysis error over land, and each one's ratio to ``letkf16``: the curvelet EnKF's advantage over the
LETKF in one analysis from the same background, against which the cycle's 24-hour-forecast margin is read.
Below it, the same for the 10-40 and 40-100 cm layers (goal G4), with ratios to the background: the
selected filters leave those layers alone, the two Kalman updates change them through the large
ensemble's (horizontally localized) cross-covariances with the observed layer, so their ratio is what the
best-informed deep increment from these observations would gain. Last, the temporal ubRMSE of each
analysis' series over the analysed days (per pixel the std of its error over the days, ddof 0, then the
mean over pixels: the study's score, of analyses each made from the cycled background) per layer: what
the day-to-day part of each layer's analysis error, the part the cycle's primary score counts, gains.

    PYTHONPATH=python .venv/bin/python bench/headroom.py --seed 1001 --out runs/headroom-1001
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the study's selections in the correlated world (runs/study18f selection.json, training seeds only)
LETKF_SETS = {"radius_km": 500.0, "nlev_update": 3, "bias_correction": False}
CURVELET_SETS = {
    "layer_increments": "analysis",
    "deep_regression": False,
    "fine_band_scales": 1,
    "fine_band_radius_km": 300.0,
}
SUB = 16


def _kf_layers(zs: list[np.ndarray], hx: np.ndarray, y: np.ndarray, r: np.ndarray, taper_zy: np.ndarray,
               taper_yy: np.ndarray) -> list[np.ndarray]:  # fmt: skip
    """Analysis means of the layers ``zs`` (each (ncol, N)) from observations ``y`` (m,) of ``hx`` (m, N)
    with the localized ensemble covariances and the observation-error covariance ``r`` (m, m)."""
    n = hx.shape[1]
    ha = hx - hx.mean(1, keepdims=True)
    w = np.linalg.solve(taper_yy * (ha @ ha.T) / (n - 1) + r, y - hx.mean(1))
    return [z.mean(1) + (taper_zy * ((z - z.mean(1, keepdims=True)) @ ha.T) / (n - 1)) @ w for z in zs]


def _errors(a: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    e = a - truth
    return float(np.sqrt(np.mean(e**2))), float(np.sqrt(np.mean((e - e.mean()) ** 2)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from landimg import da
    from landimg.analysis import gaspari_cohn
    from landimg.da.obs_covariance import ObsCovariance
    from landimg.da.protocol import AnalysisContext
    from landimg.experiment import loop
    from landimg.experiment.config import load_config
    from landimg.experiment.metrics import LAYERS, layer_name
    from landimg.layout import Layout
    from landimg.parallel import SerialComm

    cfg = load_config(None, [
        f"experiment.world={args.world}", f"experiment.seed={args.seed}", f"experiment.days={args.days}",
        f"experiment.spinup_days={args.spinup_days}", f"ensemble.members={args.members}",
        "output.plots=false", "output.restart=false", 'analysis.methods=["point_letkf"]',
        *(f"point_letkf.{k}={json.dumps(v)}" for k, v in LETKF_SETS.items()),
    ])  # fmt: skip
    setup, ensembles, background = loop.setup, loop._ensembles, loop._background
    seen: dict[str, Any] = {"day": -1}
    rows: list[dict[str, Any]] = []
    series: dict[str, dict[str, list[np.ndarray]]] = {}  # layer -> analysis -> each day's error (ncol,)

    def capture_setup(cfg, *a, **kw):
        s = setup(cfg, *a, **kw)
        seen["curvelet"] = da.METHODS["curvelet_enkf"](
            obs_depth=(0.0, cfg.analysis.obs_depth), inflation_mode="fixed", inflation=1.0, **CURVELET_SETS
        )
        seen["letkf"] = dataclasses.replace(s.methods["point_letkf"], inflation_mode="fixed", inflation=1.0)
        seen["grid"] = s.domain.grid
        m = s.methods["point_letkf"]
        recorder = type("Recording", (type(m),), {"analyze": recording(type(m).analyze)})
        s.methods["point_letkf"] = recorder(**{f.name: getattr(m, f.name) for f in dataclasses.fields(m)})
        return s

    def capture_ensembles(*a, **kw):
        out = ensembles(*a, **kw)
        seen["wl"] = next(iter(out.values())).model.layer_weights(list(LAYERS))
        return out

    def capture_background(r, day, images, truth):
        seen["day"], seen["truth"] = day, None if truth.nature is None else truth.nature.copy()  # (3, ncol)
        return background(r, day, images, truth)

    def recording(analyze):
        def wrapped(self, bg, obs, obs_error, obs_mask, context):
            if seen["day"] + 1 >= args.from_day and seen.get("truth") is not None:
                rows.append(evaluate(bg, obs, obs_error, obs_mask, context))
                r = rows[-1]
                print(f"day {seen['day'] + 1}: n_obs {r['n_obs']}, inflation {r['inflation']:.2f}, rms " + ", ".join(
                    f"{k} {v[0]:.5f}" for k, v in r["errors"].items()), flush=True)  # fmt: skip
            return analyze(self, bg, obs, obs_error, obs_mask, context)

        return wrapped

    def evaluate(bg, obs, obs_error, obs_mask, context) -> dict[str, Any]:
        grid, wl = seen["grid"], seen["wl"]
        valid = np.isfinite(obs) if obs_mask is None else (np.asarray(obs_mask, bool) & np.isfinite(obs))
        iy = np.flatnonzero(valid)
        mean = bg.mean(axis=2, keepdims=True)
        lay = Layout(SUB, SerialComm())
        z_of = lambda x: [np.einsum("l,lcn->cn", w, x) for w in wl]  # noqa: E731 -- each layer (ncol, N)
        h_of = lambda x: np.einsum("l,lcn->cn", context.h, x)[iy]  # noqa: E731 -- at the observations (m, N)
        hx = h_of(bg)
        r_true = ObsCovariance.of(obs_error, grid).between(iy[:, None], iy[None, :])
        # one inflation for every analysis, from this analysis' innovations (their mean removed): the
        # large ensemble's variance at the observations scaled so that HBH + R matches them
        innov = obs[iy] - hx.mean(1)
        hbh = float(np.mean(hx.var(axis=1, ddof=1)))
        alpha = max((float(np.var(innov)) - float(np.mean(np.diag(r_true)))) / hbh, 1.0)
        bg = mean + np.sqrt(alpha) * (bg - mean)
        zs, hx = z_of(bg), h_of(bg)
        sub = bg[..., :SUB]
        sub = sub - sub.mean(axis=2, keepdims=True) + mean  # recentred on the large ensemble's mean
        out = {"background": mean[..., 0]}
        for name in ("letkf", "curvelet"):
            ctx = AnalysisContext(h=context.h, geometry=context.geometry, layout=lay, seed=args.seed)
            d, _ = seen[name].analyze(sub.copy(), obs, obs_error, obs_mask, ctx)
            out[f"{name}16"] = (sub + d).mean(axis=2)
        if "distances" not in seen:  # every column pair, once per run
            seen["distances"] = _distances(grid)
        dist = seen["distances"]
        std = obs_error.columns_std(grid.ncol)[iy]
        r_white = np.diag(std**2)
        half = args.kf_radius_km / 2.0
        tz, ty = gaspari_cohn(dist[:, iy] / half), gaspari_cohn(dist[np.ix_(iy, iy)] / half)
        za = {"kf_ens_true_r": _kf_layers(zs, hx, obs[iy], r_true, tz, ty),
              "kf_ens_white_r": _kf_layers(zs, hx, obs[iy], r_white, tz, ty)}  # fmt: skip
        truth = seen["truth"]  # the scored layers' means, as LAYERS
        layers = {}
        for i, name in enumerate(layer_name(ly) for ly in LAYERS):
            fields = {k: np.einsum("l,lc->c", wl[i], v) for k, v in out.items()}
            fields.update({k: v[i] for k, v in za.items()})
            layers[name] = {k: _errors(v, truth[i]) for k, v in fields.items()}
            for k, v in fields.items():  # the error series of each pixel, for the temporal scores
                series.setdefault(name, {}).setdefault(k, []).append(v - truth[i])
        return {"day": seen["day"] + 1, "n_obs": int(iy.size), "errors": layers["0-10cm"], "layers": layers,
                "inflation": float(np.sqrt(alpha)), "white_fraction": float(obs_error.white_fraction)}  # fmt: skip

    loop.setup, loop._ensembles, loop._background = capture_setup, capture_ensembles, capture_background
    t0 = time.perf_counter()
    loop.run(cfg, args.out, spinup_cache=args.spinup_cache, progress=False)
    if not rows:
        raise SystemExit(f"headroom: no analysis from day {args.from_day} to day {args.days} (--from-day, --days)")
    keys = list(rows[0]["errors"])
    res = {
        "seed": args.seed, "world": args.world, "members": args.members, "kf_radius_km": args.kf_radius_km,
        "days": [r["day"] for r in rows], "n_obs": [r["n_obs"] for r in rows],
        "rms": {k: float(np.mean([r["errors"][k][0] for r in rows])) for k in keys},
        "centred_rms": {k: float(np.mean([r["errors"][k][1] for r in rows])) for k in keys},
        "deep_centred_rms": {
            ln: {k: float(np.mean([r["layers"][ln][k][1] for r in rows])) for k in keys}
            for ln in list(rows[0]["layers"])[1:]
        },
        # per pixel the std over the analysed days of the error (ubRMSE, ddof 0), mean over the pixels: the
        # temporal ubRMSE of the analyses, each from the cycled background (not cycled themselves)
        "ubrmse_time": {
            ln: {k: float(np.mean(np.std(np.array(v), axis=0))) for k, v in by.items()} for ln, by in series.items()
        },
        "wall_seconds": time.perf_counter() - t0,
    }  # fmt: skip
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "headroom.json").write_text(json.dumps({**res, "rows": rows}, indent=1))
    print(_table(res))
    return res


def _distances(grid: Any) -> np.ndarray:
    """Great-circle distances (km) between every pair of the grid's columns (ncol, ncol)."""
    lat, lon = (np.radians(a) for a in grid.column_latlon())
    c = np.sin(lat)[:, None] * np.sin(lat)[None, :] + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.cos(
        lon[:, None] - lon[None, :]
    )
    return 6371.0 * np.arccos(np.clip(c, -1.0, 1.0))


def _table(res: dict[str, Any]) -> str:
    base = res["rms"]["letkf16"], res["centred_rms"]["letkf16"]
    lines = [
        f"{res['world']} world, seed {res['seed']}, {res['members']} members, analyses of days "
        f"{res['days'][0]}-{res['days'][-1]} (mean over {len(res['days'])}), 0-10 cm analysis error over land:",
        f"{'analysis':<15} {'rms':>9} {'/ letkf16':>9} {'centred':>9} {'/ letkf16':>9}",
    ]
    for k in res["rms"]:
        a, c = res["rms"][k], res["centred_rms"][k]
        lines.append(f"{k:<15} {a:9.5f} {a / base[0]:9.3f} {c:9.5f} {c / base[1]:9.3f}")
    deep = res.get("deep_centred_rms", {})
    if deep:
        lines += ["", "deeper layers (G4), centred rms of the analysis error and its ratio to the background's:",
                  f"{'analysis':<15} " + " ".join(f"{ln:>9} {'/ bg':>6}" for ln in deep)]  # fmt: skip
        for k in res["rms"]:
            cells = [f"{deep[ln][k]:9.5f} {deep[ln][k] / deep[ln]['background']:6.3f}" for ln in deep]
            lines.append(f"{k:<15} " + " ".join(cells))
    ub = res.get("ubrmse_time", {})
    if ub:
        lines += ["", f"temporal ubRMSE of the analyses over days {res['days'][0]}-{res['days'][-1]} (per pixel, mean "
                  "over pixels) and its ratio to the background's:",
                  f"{'analysis':<15} " + " ".join(f"{ln:>9} {'/ bg':>6}" for ln in ub)]  # fmt: skip
        for k in res["rms"]:
            lines.append(f"{k:<15} " + " ".join(f"{ub[ln][k]:9.5f} {ub[ln][k] / ub[ln]['background']:6.3f}" for ln in ub))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1001, help="a training seed of the study")
    p.add_argument("--world", default="correlated")
    p.add_argument("--members", type=int, default=128)
    p.add_argument("--days", type=int, default=20)
    p.add_argument("--from-day", type=int, default=11)
    p.add_argument("--spinup-days", type=int, default=120)
    p.add_argument("--kf-radius-km", type=float, default=2000.0, help="Gaspari-Cohn zero distance")
    p.add_argument("--spinup-cache", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
