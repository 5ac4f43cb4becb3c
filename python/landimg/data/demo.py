"""``python -m landimg.data demo --out DIR``: small, format-faithful files of every supported product
(written by :mod:`landimg.data.fixtures`), a README with the ``regrid``/``stations`` commands, and a
``config.toml`` that runs the cycle on them (SMAP retrievals, GLDAS forcing, GLDAS reference, ISMN
stations) on an 8 x 10 cell domain for a few days."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile

from landimg.data.common import DataError

__all__ = ["DEMO", "write_demo"]

#: The demo's domain and period.
DEMO = {
    "bbox": (35.0, 39.0, -100.0, -95.0),
    "res": 0.5,
    "start": _dt.date(2021, 5, 1),
    "days": 3,
    "spinup_days": 2,
}
_REGION = (34.0, 40.0, -101.0, -94.0)  # the portals' subset: a margin around the domain


def _products(root: str) -> dict[str, str]:
    from landimg.data import fixtures as fx
    from landimg.data import fixtures_forcing as ff
    from landimg.data.fixtures_stations import demo_stations, write_ismn, zip_directory

    start, days, spin = DEMO["start"], DEMO["days"], DEMO["spinup_days"]
    first = _dt.datetime(start.year, start.month, start.day) - _dt.timedelta(days=spin)
    ndays = days + spin
    dirs = {}
    for name in ("smap", "smap_e", "esacci", "gldas", "era5", "era5land", "cmfd", "alma", "gridded"):
        dirs[name] = os.path.join(root, name)
        os.makedirs(dirs[name])
    run_days = [start + _dt.timedelta(days=k) for k in range(days)]
    for day in run_days:
        fx.smap_file(dirs["smap"], day, bbox=_REGION, bad_quality=lambda la, lo: (la > 37.6) & (la < 37.9))
        fx.cci_file(dirs["esacci"], day, bbox=_REGION)
    fx.smap_file(dirs["smap_e"], start, grid="M09", bbox=_REGION)
    for k in range(8 * ndays + 1):
        fx.gldas_file(dirs["gldas"], first + _dt.timedelta(hours=3 * k), region=_REGION)
    hours = [first + _dt.timedelta(hours=h) for h in range(24 * ndays + 1)]
    ff.era5_file(os.path.join(dirs["era5"], "era5_single_levels.nc"), hours, _REGION)
    ff.era5_file(os.path.join(dirs["era5land"], "era5land_hourly.nc"), hours, _REGION, res=0.1, land=True)
    three = [first + _dt.timedelta(hours=3 * k) for k in range(8 * ndays + 1)]
    ff.cmfd_files(dirs["cmfd"], three, _REGION)
    ff.alma_file(os.path.join(dirs["alma"], "forcing_alma.nc"), three, _REGION)
    ff.gridded_file(
        os.path.join(dirs["gridded"], "sm_gridded.nc"),
        [_dt.datetime(d.year, d.month, d.day, 12) for d in run_days],
        _REGION,
    )
    stations = demo_stations(DEMO["bbox"], start, days, n=4, seed=7)
    write_ismn(os.path.join(root, "ismn"), stations, "header_values")
    ceop = os.path.join(root, "_ceop")
    write_ismn(ceop, stations, "ceop")
    zip_directory(ceop, os.path.join(root, "ismn_ceop.zip"))
    shutil.rmtree(ceop)
    dirs["ismn"] = os.path.join(root, "ismn")
    return dirs


def _readme() -> str:
    s, n, w, e = DEMO["bbox"]
    dom = f"--bbox {s:g} {n:g} {w:g} {e:g} --res {DEMO['res']:g}"
    start = DEMO["start"]
    end = start + _dt.timedelta(days=DEMO["days"] - 1)
    period = f"--start {start} --end {end}"
    rows = [
        ("spl3smp", "'smap/SMAP_L3_SM_P_*.h5'"),
        ("spl3smp_e", "'smap_e/SMAP_L3_SM_P_E_*.h5'"),
        ("esacci", "'esacci/ESACCI-SOILMOISTURE-*.nc'"),
        ("gridded", "'gridded/*.nc'"),
        ("gldas", "'gldas/GLDAS_NOAH025_3H.*.nc4'"),
        ("era5land", "'era5land/*.nc'"),
        ("gldas_forcing", "'gldas/GLDAS_NOAH025_3H.*.nc4'"),
        ("era5", "'era5/*.nc'"),
        ("era5land_forcing", "'era5land/*.nc'"),
        ("cmfd", "'cmfd/*_CMFD_*.nc'"),
        ("alma", "'alma/*.nc'"),
    ]
    lines = [
        "landimg demo products: small files in each product's real layout, written by landimg's own",
        "fixture code (no third-party data). Regrid any of them onto the demo's model grid:",
        "",
    ]
    one_day = f"--start {start} --end {start}"
    for product, files in rows:
        if product == "spl3smp_e":  # one file: a single day
            lines.append(
                f"python -m landimg.data regrid --product {product} --files {files} {dom} {one_day} --out {product}.nc"
            )
            continue
        lines.append(
            f"python -m landimg.data regrid --product {product} --files {files} {dom} {period} "
            f"--out {product}.nc"
        )
    for path in ("ismn", "ismn_ceop.zip"):
        lines.append(
            f"python -m landimg.data stations --product ismn --path {path} {dom} {period} "
            f"--depth 0 0.1 --out stations_{path.split('.')[0]}.nc"
        )
    lines += ["", "Run the cycle on them:  python -m landimg.cycle --config config.toml --out RUN", ""]
    return "\n".join(lines)


def write_demo(out: str) -> str:
    """Write the demo directory ``out`` (must not exist); built in a temporary directory and renamed.

    Returns
    -------
    str
        ``out``.
    """
    out = os.path.abspath(out)
    if os.path.exists(out):
        raise DataError(f"--out: {out!r} already exists (give a new directory)")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise DataError(f"--out: directory {parent!r} does not exist")
    tmp = tempfile.mkdtemp(prefix=".landimg-demo-", dir=parent)
    try:
        dirs = _products(tmp)
        with open(os.path.join(tmp, "README.txt"), "w") as f:
            f.write(_readme())
        config = demo_config(
            out, dirs={k: os.path.join(out, os.path.relpath(v, tmp)) for k, v in dirs.items()}
        )
        if config is not None:
            with open(os.path.join(tmp, "config.toml"), "w") as f:
                f.write(config)
        os.replace(tmp, out)
    except BaseException as exc:
        from landimg.atomic import diagnose

        refused = diagnose(exc, out, tmp)  # a full disk: one line naming the directory (e.g. an HDF error)
        shutil.rmtree(tmp, ignore_errors=True)
        if refused is None or refused is exc:
            raise
        raise refused from exc
    return out


def demo_config(out: str, dirs: dict[str, str]) -> str:
    """The cycle configuration of the demo: SMAP L3 retrievals (both passes, 12-hourly analyses, CDF
    matched), GLDAS forcing, GLDAS as the reference product and ISMN stations, on the demo domain."""
    s, n, w, e = DEMO["bbox"]
    return f"""# landimg demo: products in their real layouts (written by landimg.data.fixtures)
# run: python -m landimg.cycle --config {out}/config.toml --out RUN

[experiment]
start = "{DEMO["start"]}"
days = {DEMO["days"]}
spinup_days = {DEMO["spinup_days"]}

[domain]
bbox = [{s}, {n}, {w}, {e}]
res = {DEMO["res"]}

[ensemble]
members = 8
spread_days = 0   # the demo's spin-up is only {DEMO["spinup_days"]} days: no per-member spin-up period

[analysis]
methods = ["openloop", "point_enkf", "curvelet_enkf"]
interval_hours = 12

[obs]
product = "spl3smp"
files = "{dirs["smap"]}/SMAP_L3_SM_P_*.h5"
cdf_match = true

[forcing]
product = "gldas_forcing"
files = "{dirs["gldas"]}/GLDAS_NOAH025_3H.*.nc4"

[reference]
product = "gldas"
files = "{dirs["gldas"]}/GLDAS_NOAH025_3H.*.nc4"

[stations]
product = "ismn"
files = "{dirs["ismn"]}"
depth_top = 0.0
depth_bottom = 0.1

[output]
plots = false
"""
