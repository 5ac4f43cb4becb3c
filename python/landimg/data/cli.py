"""``python -m landimg.data``: the preprocessing tool (regrid, stations, demo).

::

    python -m landimg.data regrid --product P --files GLOB (--preset NAME | --bbox S N W E --res DEG)
                                  [--start D --end D] [--min-coverage F] --out F.nc
    python -m landimg.data stations --product ismn --path DIR_OR_ZIP (--preset NAME | --bbox S N W E --res DEG)
                                    --start D --end D --depth TOP BOTTOM --out F.nc
    python -m landimg.data demo --out DIR
    python -m landimg.data products

Bad input exits with status 2 and one line ``landimg.data: error: ...`` naming the file, variable and
problem; nothing is written (outputs are written to a temporary file renamed into place).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from landimg.atomic import DiskError, atomic_path
from landimg.data.common import DataError
from landimg.notices import WarningLog

__all__ = ["build_grid", "main"]

_PROG = "landimg.data"


def build_grid(preset: str | None, bbox: Sequence[float] | None, res: float | None):
    """The model grid of a preset (its default resolution unless ``res``) or of a bbox + res."""
    from landimg.grid import Grid

    if preset:
        from landimg.experiment.config import PRESETS

        if preset not in PRESETS:
            raise DataError(f"--preset: unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        lat, lon, default_res = PRESETS[preset]
        res = res or default_res
    else:
        if bbox is None or res is None:
            raise DataError("give --preset NAME, or --bbox SOUTH NORTH WEST EAST with --res DEG")
        south, north, west, east = bbox
        lat, lon = (south, north), (west, east)
    try:
        return Grid.regular(lat=lat, lon=lon, res=float(res), land_mask="builtin")
    except ValueError as exc:
        raise DataError(f"--bbox/--res: {exc}") from None


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` renamed to it on success (:func:`landimg.atomic.atomic_path`);
    removed on any error."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(f"--out: directory {str(path.parent)!r} does not exist")
    with atomic_path(path) as tmp:
        yield tmp


def _domain_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--preset", help="domain preset (conus, china, global1deg)")
    g.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        metavar=("SOUTH", "NORTH", "WEST", "EAST"),
        help="domain edges, degrees",
    )
    p.add_argument("--res", type=float, help="grid spacing, degrees (default: the preset's)")


def _parser() -> argparse.ArgumentParser:
    from landimg.data.products import product_names

    ap = argparse.ArgumentParser(prog=f"python -m {_PROG}", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("regrid", help="a product's files on the model grid (area-weighted means)")
    r.add_argument("--product", required=True, help=f"one of {', '.join(product_names())}")
    r.add_argument("--files", required=True, help="glob pattern of the product's files (quote it)")
    _domain_args(r)
    r.add_argument("--start", help="first day YYYY-MM-DD (records must reach it)")
    r.add_argument("--end", help="last day YYYY-MM-DD (records must reach it)")
    r.add_argument(
        "--min-coverage",
        type=float,
        default=0.0,
        help="least fraction of a model cell covered by valid source cells (default 0: any)",
    )
    r.add_argument("--out", required=True, help="output netCDF file")
    s = sub.add_parser("stations", help="ISMN stations: daily means of 'G' readings in a layer")
    s.add_argument("--product", required=True, choices=["ismn"])
    s.add_argument("--path", required=True, help="ISMN download: directory or .zip")
    _domain_args(s)
    s.add_argument("--start", required=True)
    s.add_argument("--end", required=True)
    s.add_argument("--depth", nargs=2, type=float, required=True, metavar=("TOP", "BOTTOM"), help="layer, m")
    s.add_argument("--out", required=True)
    d = sub.add_parser("demo", help="small product files in their real layouts and a config.toml")
    d.add_argument("--out", required=True, help="new directory")
    sub.add_parser("products", help="list the supported products")
    return ap


def _write_dataset(ds, out: str) -> None:
    with atomic_output(out) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")


def _run(args: argparse.Namespace) -> str:
    if args.command == "products":
        from landimg.data.products import KINDS, get_product, product_names

        lines = []
        for kind in KINDS:
            for name in product_names(kind):
                lines.append(f"{name:18s} {kind:10s} {get_product(name).description}")
        lines.append(f"{'ismn':18s} {'stations':10s} ISMN download (directory or zip), header+values or CEOP")
        return "\n".join(lines)
    if args.command == "demo":
        from landimg.data.demo import write_demo

        write_demo(args.out)
        return f"wrote {args.out} (run: python -m landimg.cycle --config {args.out}/config.toml --out RUN)"
    grid = build_grid(args.preset, args.bbox, args.res)
    if args.command == "regrid":
        from landimg.data.series import FileProgress, read_series, to_dataset

        series = read_series(
            args.product,
            args.files,
            grid,
            args.start,
            args.end,
            min_coverage=args.min_coverage,
            progress=FileProgress("--files", prefix=f"{_PROG}:"),
        )
        _write_dataset(to_dataset(series, grid), args.out)
        return f"wrote {args.out}: {series.product.name}, {series.times.size} records on a {grid.shape} grid"
    from landimg.data.stations import read_ismn, to_dataset

    st = read_ismn(args.path, grid, args.start, args.end, tuple(args.depth))
    _write_dataset(to_dataset(st, tuple(args.depth)), args.out)
    return f"wrote {args.out}: {len(st.ids)} stations, {len(st.days)} days"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    with WarningLog(_PROG) as notices:  # landimg's warnings once each, with a count; others dropped
        try:
            done = _run(args)
        except (DataError, DiskError, FileNotFoundError) as exc:
            notices.flush()
            print(
                f"{_PROG}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                file=sys.stderr,
            )
            return 2
        notices.flush()
        print(done)
    return 0
