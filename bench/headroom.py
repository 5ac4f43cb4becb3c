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


def _kf_layer(z: np.ndarray, hx: np.ndarray, y: np.ndarray, r: np.ndarray, taper_zy: np.ndarray,
              taper_yy: np.ndarray) -> np.ndarray:  # fmt: skip
    """Analysis mean of a layer ``z`` (ncol, N) from observations ``y`` (m,) of ``hx`` (m, N) with the
    localized ensemble covariances and the observation-error covariance ``r`` (m, m)."""
    n = z.shape[1]
    za, ha = z - z.mean(1, keepdims=True), hx - hx.mean(1, keepdims=True)
    c_zy = taper_zy * (za @ ha.T) / (n - 1)
    c_yy = taper_yy * (ha @ ha.T) / (n - 1)
    w = np.linalg.solve(c_yy + r, y - hx.mean(1))
    return z.mean(1) + c_zy @ w


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
        seen["w010"] = next(iter(out.values())).model.layer_weights([(0.0, 0.1)])[0]
        return out

    def capture_background(r, day, images, truth):
        seen["day"], seen["truth"] = day, None if truth.nature is None else truth.nature[0].copy()
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
        grid, w = seen["grid"], seen["w010"]
        valid = np.isfinite(obs) if obs_mask is None else (np.asarray(obs_mask, bool) & np.isfinite(obs))
        iy = np.flatnonzero(valid)
        mean = bg.mean(axis=2, keepdims=True)
        lay = Layout(SUB, SerialComm())
        z_of = lambda x: np.einsum("l,lcn->cn", w, x)  # noqa: E731 -- 0-10 cm layer (ncol, N)
        h_of = lambda x: np.einsum("l,lcn->cn", context.h, x)[iy]  # noqa: E731 -- at the observations (m, N)
        hx = h_of(bg)
        r_true = ObsCovariance.of(obs_error, grid).between(iy[:, None], iy[None, :])
        # one inflation for every analysis, from this analysis' innovations (their mean removed): the
        # large ensemble's variance at the observations scaled so that HBH + R matches them
        innov = obs[iy] - hx.mean(1)
        hbh = float(np.mean(hx.var(axis=1, ddof=1)))
        alpha = max((float(np.var(innov)) - float(np.mean(np.diag(r_true)))) / hbh, 1.0)
        bg = mean + np.sqrt(alpha) * (bg - mean)
        z, hx = z_of(bg), h_of(bg)
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
        errs = {}
        za = {"kf_ens_true_r": _kf_layer(z, hx, obs[iy], r_true, tz, ty),
              "kf_ens_white_r": _kf_layer(z, hx, obs[iy], r_white, tz, ty)}  # fmt: skip
        truth = seen["truth"]
        for k, v in out.items():
            errs[k] = _errors(np.einsum("l,lc->c", w, v), truth)
        for k, v in za.items():
            errs[k] = _errors(v, truth)
        return {"day": seen["day"] + 1, "n_obs": int(iy.size), "errors": errs, "inflation": float(np.sqrt(alpha)),
                "white_fraction": float(obs_error.white_fraction)}  # fmt: skip

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
