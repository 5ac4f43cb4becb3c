"""Analysis and forecast speed: curvelet EnKF vs point EnKF, members x grid, and 1 vs 2 MPI ranks.

    python bench/analysis_speed.py            # short default run (about a minute)
    python bench/analysis_speed.py --full     # members 8..128 x grids 150x360..600x1440 (several minutes)
    python bench/analysis_speed.py --no-mpi   # skip the forecast 1-vs-2-ranks part
    python bench/analysis_speed.py --toy      # add the one-analysis accuracy toy (64 x 128 images, docs/method.md)
    python bench/analysis_speed.py --methods  # only the per-method analysis cost (CONUS and global 1 deg, N = 16)
    OMP_NUM_THREADS=1 python bench/analysis_speed.py --ratio  # curvelet / LETKF CPU ratio (issue 18), global 1 deg, CONUS 0.25 deg

Prints one table per part; the analysis time is split into transforms (curvelet forward + inverse),
statistics (reductions, pooling, observation-error variance, gains) and update (innovations, gains applied,
increments), as measured inside :func:`landimg.analysis.curvelet_analysis`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import landimg  # noqa: E402
from landimg.analysis import (  # noqa: E402
    AnalysisContext,
    CurveletEnKF,
    PointEnKF,
    PointLETKF,
    curvelet_analysis,
)
from landimg.layout import Layout  # noqa: E402
from landimg.parallel import SerialComm  # noqa: E402

GRIDS = {"150x360": 1.0, "300x720": 0.5, "600x1440": 0.25}


def _global_grid(res: float):
    return landimg.Grid.regular(lat=(-60.0, 90.0), lon=(-180.0, 180.0), res=res, land_mask="builtin")


def _members(grid, n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth synthetic member images (n, ny, nx), NaN off land."""
    ny, nx = grid.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * 4.0) ** 2 * (ky**2 + kx**2))
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, ny, nx))) * filt, s=(ny, nx))
    x = 0.25 + 0.04 * f / f.std()
    return np.where(grid.land, x, np.nan)


def bench_analysis(grid_names, member_counts, repeat: int = 1, max_loc_ncol: int = 20000) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for gname in grid_names:
        grid = _global_grid(GRIDS[gname])
        method = CurveletEnKF(pooling="wedge")
        t0 = time.perf_counter()
        transform, offset = method.transform_for(grid.shape, grid.periodic_lon)
        t_plan = time.perf_counter() - t0
        lat, lon = grid.column_latlon()
        for n in member_counts:
            xb = _members(grid, n, rng)
            obs = np.where(grid.land, 0.25 + 0.04 * rng.standard_normal(grid.shape), np.nan)
            kw = dict(transform=transform, pad_offset=offset, periodic_lon=True, cell_km=grid.cell_size_km(),
                      land=grid.land, seed=1)  # fmt: skip
            method.update(xb[:2], obs, 0.04, layout=None, **kw)  # warm-up: caches of the transform
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            for _ in range(repeat):
                curvelet_analysis(xb, obs, 0.04, transform, method, land=grid.land,
                                  pad_offset=offset, periodic_x=True, timings=timings, seed=1)  # fmt: skip
            t_curv = (time.perf_counter() - t0) / repeat
            timings = {k: v / repeat for k, v in timings.items()}
            state = grid.to_columns(xb).T[None].copy()  # (1, ncol, n)
            yc = grid.to_columns(obs)
            t0 = time.perf_counter()
            PointEnKF().update(state, np.ones(1), yc, 0.04, seed=1)
            t_point = time.perf_counter() - t0
            t_loc = float("nan")  # localized point EnKF: only on grids up to max_loc_ncol columns
            if grid.ncol <= max_loc_ncol:
                t0 = time.perf_counter()
                PointEnKF(radius_km=3 * grid.cell_size_km()[0]).update(
                    state, np.ones(1), yc, 0.04, lat=lat, lon=lon, seed=1
                )
                t_loc = time.perf_counter() - t0
            row = {
                "grid": gname, "ncol": grid.ncol, "nmem": n, "ncoef": int(transform.ncoef),
                "plan_s": t_plan, "curvelet_s": t_curv,
                "transform_s": timings.get("transform", 0.0), "statistics_s": timings.get("statistics", 0.0),
                "update_s": timings.get("update", 0.0), "point_s": t_point, "point_loc3_s": t_loc,
            }  # fmt: skip
            rows.append(row)
            print(
                f"{gname:>9} N={n:4d} ncoef={row['ncoef']:9d}  curvelet {t_curv:7.3f} s "
                f"(transforms {row['transform_s']:6.3f}, statistics {row['statistics_s']:6.3f}, "
                f"update {row['update_s']:6.3f})  point {t_point:6.3f} s  point-loc(3 cells) {t_loc:7.3f} s",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------------- all methods through the protocol
def _swath_obs(grid, rng: np.random.Generator) -> np.ndarray:
    """Observations (ncol,) on ~40 % of the land: bands 2 of every 5 swath widths (8 cells) in longitude."""
    iy, ix = np.unravel_index(grid.column_index, grid.shape)
    seen = (ix // 8 + iy // 40) % 5 < 2
    return np.where(seen, 0.25 + 0.04 * rng.standard_normal(grid.ncol), np.nan)


def bench_methods(nmem: int = 16, nlev: int = 10, repeat: int = 3) -> list[dict]:
    """CPU seconds per analysis of every method through ``method.analyze`` (the cycle's path).

    CONUS 1 deg (the default experiment's grid) and global 1 deg, ``nmem`` members of ``nlev`` layers,
    observations on ~40 % of the land in swaths, 500 km localization (``max_obs=64`` observations).
    "first" includes building the transform (curvelet) or the observed neighbourhoods (point filters);
    "cached" is the mean of ``repeat`` further analyses with the same observation pattern.
    """
    rows = []
    grids = {
        "conus 1deg": landimg.Grid.regular(
            lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0, land_mask="builtin"
        ),
        "global 1deg": _global_grid(1.0),
    }
    methods = {
        "curvelet_enkf": CurveletEnKF(pooling="wedge"),
        "point_enkf": PointEnKF(radius_km=500.0),
        "point_letkf": PointLETKF(radius_km=500.0),
    }
    rng = np.random.default_rng(1)
    for gname, grid in grids.items():
        xb = grid.to_columns(_members(grid, nmem, rng))  # (N, ncol)
        state = np.ascontiguousarray(np.broadcast_to(xb.T[None], (nlev, grid.ncol, nmem)))
        obs = _swath_obs(grid, rng)
        h = np.zeros(nlev)
        h[:3] = (0.35, 0.55, 0.10)
        for mname, method in methods.items():
            ctx = AnalysisContext(h=h, geometry=grid, layout=Layout(nmem, SerialComm()),
                                  rngs=[np.random.default_rng(i) for i in range(nmem)])  # fmt: skip
            t0 = time.process_time()
            method.analyze(state, obs, 0.04, None, ctx)
            first = time.process_time() - t0
            t0 = time.process_time()
            for _ in range(repeat):
                method.analyze(state, obs, 0.04, None, ctx)
            cached = (time.process_time() - t0) / repeat
            row = {"grid": gname, "ncol": grid.ncol, "n_obs": int(np.isfinite(obs).sum()), "nmem": nmem,
                   "method": mname, "first_cpu_s": first, "cached_cpu_s": cached}  # fmt: skip
            rows.append(row)
            print(f"{gname:>11} ncol={grid.ncol:6d} obs={row['n_obs']:6d} N={nmem} {mname:>13}: "
                  f"first {first:7.3f} s, cached {cached:7.3f} s CPU", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------- issue 18: curvelet / LETKF CPU ratio
#: The configurations compared by --ratio: the LETKF and the curvelet EnKF with their defaults, and the
#: curvelet EnKF's costlier options (reported with their cost).
RATIO_METHODS: dict[str, str] = {
    "point_letkf": "PointLETKF()",
    "curvelet_enkf": "CurveletEnKF()",
    "curvelet regression layers": "CurveletEnKF(layer_increments='regression')",
    "curvelet homogeneous B": "CurveletEnKF(variance_filtering=False, variance_support='land_fraction')",
    "curvelet diagonal anomalies": "CurveletEnKF(anomaly_update='diagonal')",
    "curvelet joint DEnKF": "CurveletEnKF(anomaly_update='joint')",
    "curvelet float64 CG": "CurveletEnKF(cg_single_precision=False)",
    "curvelet issue-9 solve": "CurveletEnKF(anomaly_update='joint', cg_tol=1e-4, cg_preconditioner='jacobi', "
    "cg_single_precision=False, layer_increments='regression')",
    "curvelet bias stage": "CurveletEnKF(bias_correction=True)",
    "curvelet fine band 300 km": "CurveletEnKF(fine_band_scales=1, fine_band_radius_km=300.0)",
    "curvelet local pooling": "CurveletEnKF(pooling='local', layer_increments='regression')",
}


def _ratio_grids() -> dict:
    return {
        "global 1deg": _global_grid(1.0),
        "conus 0.25deg": landimg.Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=0.25, land_mask="builtin"),
    }


def bench_ratio(nmem: int = 16, nlev: int = 10, repeat: int = 5, methods: dict[str, str] | None = None,
                white_fraction: float = 0.5, corr_km: float = 200.0) -> list[dict]:  # fmt: skip
    """CPU seconds of one analysis per method through ``method.analyze`` (the cycle's path) and the ratio
    to the LETKF's, measured side by side in one run: for every repetition every method analyses the same
    state once, interleaved, so that the load of the shared machine affects all alike; medians over
    ``repeat`` analyses after one warm-up (the transform plan, the observed neighbourhoods). ``nmem``
    members of ``nlev`` layers, observations on ~40 % of the land in swaths, the declared observation error
    of the default world (total std 0.04, ``white_fraction`` of its variance white, the rest correlated at
    ``corr_km``). Run with one thread (``OMP_NUM_THREADS=1``)."""
    from landimg.analysis import ObsError

    methods = RATIO_METHODS if methods is None else methods
    err = ObsError.from_fraction(0.04, white_fraction, corr_km)
    rows = []
    rng = np.random.default_rng(1)
    for gname, grid in _ratio_grids().items():
        xb = grid.to_columns(_members(grid, nmem, rng))
        state = np.ascontiguousarray(np.broadcast_to(xb.T[None], (nlev, grid.ncol, nmem)))
        obs = _swath_obs(grid, rng)
        h = np.zeros(nlev)
        h[:3] = (0.35, 0.55, 0.10)
        objs = {name: eval(expr, {"PointLETKF": PointLETKF, "CurveletEnKF": CurveletEnKF}) for name, expr in methods.items()}
        ctx = {name: AnalysisContext(h=h, geometry=grid, layout=Layout(nmem, SerialComm()),
                                     rngs=[np.random.default_rng(i) for i in range(nmem)]) for name in objs}  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in objs}
        for rep in range(repeat + 1):
            for name, method in objs.items():
                t0 = time.process_time()
                method.analyze(state, obs, err, None, ctx[name])
                if rep:  # the first round builds the caches
                    times[name].append(time.process_time() - t0)
        base = float(np.median(times["point_letkf"]))
        for name in objs:
            med = float(np.median(times[name]))
            row = {"grid": gname, "ncol": grid.ncol, "n_obs": int(np.isfinite(obs).sum()), "nmem": nmem,
                   "method": name, "config": methods[name], "cpu_s": med, "ratio_to_letkf": med / base,
                   "all_cpu_s": times[name]}  # fmt: skip
            rows.append(row)
            print(f"{gname:>13} ncol={grid.ncol:6d} obs={row['n_obs']:6d} N={nmem} {name:>22}: "
                  f"{med:7.3f} s CPU  ratio to LETKF {med / base:5.2f}  ({methods[name]})", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------- accuracy toy
def toy_accuracy(ntrial: int = 3) -> dict:
    """The accuracy toy: 64 x 128 images, one analysis, correlation of the analysis mean with the truth.

    Truth and members are independent Gaussian random fields (correlation exp(-r^2 / 2 (5 cells)^2), std
    0.05) around 0.25;
    observations everywhere with white error 0.04.
    """
    from landimg.random_fields import GaussianFieldGenerator

    shape = (64, 128)
    # e^-1 length 2 * 5 / sqrt(2) cells: the fields of the toy's "5 cells" in the retired exp(-r^2/2L^2)
    gen = GaussianFieldGenerator(shape, (1.0, 1.0), 2.0 * (5.0 / np.sqrt(2.0)), periodic_x=True)
    seeds = np.random.SeedSequence(2024)
    C = landimg.Curvelet(shape)
    grid = landimg.Grid.regular(lat=(0.0, 6.4), lon=(0.0, 12.8), res=0.1, land_mask="all")  # 11 km cells
    lat, lon = grid.column_latlon()
    out = {}
    for n in (4, 16):
        res: dict[str, list[float]] = {}
        for _ in range(ntrial):
            rngs = [np.random.default_rng(s) for s in seeds.spawn(n + 2)]
            f = gen.draw(rngs[: n + 1], 1)[:, 0]
            truth, xb = 0.25 + 0.05 * f[0], 0.25 + 0.05 * f[1:]
            y = truth + 0.04 * rngs[-1].standard_normal(shape)

            def corr(a, truth=truth):
                return float(np.corrcoef(a.ravel(), truth.ravel())[0, 1])

            res.setdefault("background", []).append(corr(xb.mean(0)))
            for pooling in ("coefficient", "wedge", "scale"):
                xa = landimg.analysis.curvelet_enkf(xb, y, 0.04, C, pooling=pooling, seed=1)
                res.setdefault(f"curvelet-{pooling}", []).append(corr(xa.mean(0)))
            st = xb.reshape(n, 1, -1).transpose(1, 2, 0)
            for r in (0.0, 80.0):
                dx, _ = PointEnKF(radius_km=r).update(
                    st, np.ones(1), y.ravel(), 0.04, lat=lat, lon=lon, seed=1
                )
                res.setdefault(f"point-r{r:.0f}km", []).append(corr((st + dx)[0].mean(1).reshape(shape)))
        out[n] = {k: float(np.mean(v)) for k, v in res.items()}
        print(f"toy N={n:3d}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[n].items()), flush=True)
    return out


# ---------------------------------------------------------------------- forecast throughput
def _forecast_worker(nmem: int, nsteps: int, res: float) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    grid = landimg.Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=res, land_mask="builtin")
    ens = landimg.Ensemble(
        grid, nmem, soil=landimg.soil.from_class("loam", grid.ncol), dt=3600.0, seed=0, comm=comm
    )
    one = np.ones(grid.ncol)
    f = dict(tair=293.0 * one, qair=0.008 * one, psurf=1e5 * one, precip=1e-4 * one, wind=3.0 * one,
             swdown=350.0 * one, lwdown=330.0 * one)  # fmt: skip
    ens.advance(f, nsteps=1)  # warm-up
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(nsteps):
        ens.advance(f, nsteps=1)
    comm.Barrier()
    dt = time.perf_counter() - t0
    if comm.Get_rank() == 0:
        print(
            json.dumps(
                {"ranks": comm.Get_size(), "ncol": grid.ncol, "nmem": nmem, "nsteps": nsteps, "seconds": dt}
            )
        )


def bench_forecast(nmem: int, nsteps: int, res: float) -> list[dict]:
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        print("mpirun not found next to the Python interpreter: forecast part skipped")
        return []
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for ranks in (1, 2):
        cmd = [str(mpirun), "-n", str(ranks), sys.executable, "-m", "mpi4py", __file__,
               "--forecast-worker", str(nmem), str(nsteps), str(res)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        if out.returncode != 0:
            print(out.stderr[-2000:])
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["column_steps_per_s"] = row["ncol"] * row["nmem"] * row["nsteps"] / row["seconds"]
        rows.append(row)
        print(f"forecast ranks={ranks} ncol={row['ncol']} N={nmem} steps={nsteps}: {row['seconds']:.2f} s, "
              f"{row['column_steps_per_s'] / 1e6:.3f} M column-steps/s", flush=True)  # fmt: skip
    if len(rows) == 2:
        print(f"speed-up 2 ranks / 1 rank: {rows[0]['seconds'] / rows[1]['seconds']:.2f}x")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="members 8..128 and grids up to 600x1440")
    p.add_argument("--no-mpi", action="store_true", help="skip the forecast 1 vs 2 ranks part")
    p.add_argument(
        "--toy", action="store_true", help="also run the one-analysis accuracy toy (64 x 128 images)"
    )
    p.add_argument("--methods", action="store_true", help="only the per-method analysis cost (CONUS, global)")
    p.add_argument("--ratio", action="store_true",
                   help="only the curvelet / LETKF analysis CPU ratio at global 1 deg and CONUS 0.25 deg (issue 18)")
    p.add_argument("--repeat", type=int, default=5, help="analyses per method for --ratio (median)")
    p.add_argument("--only", help="--ratio: a comma-separated subset of the configurations (names of RATIO_METHODS; "
                   "point_letkf is always included)")
    p.add_argument("--json", type=Path, help="write all results to this JSON file")
    p.add_argument("--forecast-worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.forecast_worker:
        n, s, r = args.forecast_worker
        _forecast_worker(int(n), int(s), float(r))
        return
    if args.ratio:
        if os.environ.get("OMP_NUM_THREADS") != "1":
            print("warning: OMP_NUM_THREADS is not 1: the ratio is meant for one thread", flush=True)
        methods = None
        if args.only:
            names = ["point_letkf"] + [n.strip() for n in args.only.split(",") if n.strip() != "point_letkf"]
            unknown = [n for n in names if n not in RATIO_METHODS]
            if unknown:
                p.error(f"--only: unknown configuration(s) {unknown}; known: {list(RATIO_METHODS)}")
            methods = {n: RATIO_METHODS[n] for n in names}
        results = {"ratio": bench_ratio(repeat=args.repeat, methods=methods)}
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    if args.methods:
        results = {"methods": bench_methods()}
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    if args.full:
        results = {"analysis": bench_analysis(list(GRIDS), [8, 16, 32, 64, 128])}
        fc = (64, 24, 0.5)
    else:
        results = {"analysis": bench_analysis(["150x360"], [8, 32]) + bench_analysis(["300x720"], [16])}
        fc = (16, 12, 0.5)
    results["methods"] = bench_methods()
    if args.toy:
        results["toy"] = toy_accuracy()
    if not args.no_mpi:
        results["forecast"] = bench_forecast(*fc)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
