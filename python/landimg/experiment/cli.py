"""The command line: ``python -m landimg.cycle [--config FILE] [--set section.key=value ...] --out DIR [--resume]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from landimg.atomic import DiskError
from landimg.experiment.config import Config, ConfigError, input_files, load_config, to_dict, to_toml
from landimg.experiment.loop import RunStopped, run, saved_config
from landimg.experiment.ncfiles import FILES
from landimg.experiment.output import OutputDirError, prepare_out_dir
from landimg.experiment.restart import (
    changed_inputs,
    clean_stale,
    file_hashes,
    has_restart,
    load_for_resume,
    recorded_inputs,
)  # fmt: skip
from landimg.experiment.setup import InputError
from landimg.experiment.summary import format_table
from landimg.notices import WarningLog

__all__ = ["main"]

_PROG = "landimg.cycle"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m landimg.cycle",
        description="Run the landimg soil-moisture assimilation experiment (open loop, point EnKF, curvelet EnKF).",
    )
    p.add_argument("--config", help="TOML configuration file (keys: docs/configuration.md)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one configuration key (repeatable), e.g. --set experiment.days=10")  # fmt: skip
    p.add_argument("--out", help="output directory (must not exist unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue a stopped run from DIR/restart")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as TOML and exit"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--spinup-cache", metavar="DIR",
                   help="read the spin-up from DIR when it holds one for these inputs, else run and store it there")  # fmt: skip
    return p


def changed_keys(old: Config, new: Config, asked: list[str] | None = None) -> list[str]:
    """``section.key`` whose value differs between two configurations (only those in ``asked`` if given);
    ``[parallel]`` (the layout of the ranks, not part of the experiment) is left out."""
    a, b = ({s: v for s, v in to_dict(c).items() if s != "parallel"} for c in (old, new))
    keys = {f"{s}.{k}" for tree in (a, b) for s in tree for k in tree[s]}
    diff = sorted(
        k
        for k in keys
        if a.get(k.split(".")[0], {}).get(k.split(".")[1]) != b.get(k.split(".")[0], {}).get(k.split(".")[1])
    )
    return diff if asked is None else [k for k in diff if k in asked]


def _resume_config(out: Path, cfg: Config, args: argparse.Namespace) -> Config:
    """The stopped run's configuration with this run's ``[parallel]`` layout (any layout continues a run
    bitwise); an error naming the keys the user changed if anything else differs."""
    saved = dataclasses.replace(saved_config(out), parallel=cfg.parallel)
    changed = changed_inputs(recorded_inputs(load_for_resume(out)), file_hashes(input_files(saved)))
    if changed:
        raise ConfigError(
            f"--resume: input file(s) changed since the run stopped: {', '.join(changed)}; "
            "restore them, or start a new run"
        )
    asked = [t.split("=", 1)[0].strip() for t in args.set]
    if args.config:
        asked += changed_keys(load_config(), load_config(args.config))
    if [k for k in asked if not k.startswith("parallel.")] and saved != cfg:  # [parallel] may change
        changed = changed_keys(saved, cfg, asked) or changed_keys(saved, cfg)
        raise ConfigError(
            f"--resume: {', '.join(changed)} differ(s) from the stopped run's configuration "
            "(omit --config/--set to continue it as it was; [parallel] may change)"
        )
    return saved


def _prepare(args: argparse.Namespace, cfg: Config, comm: Any) -> tuple[str | None, Config, bool]:
    """(error or None, configuration to run, output directory created by this run) on every rank."""
    out, rank = Path(args.out), comm.Get_rank()
    err, created = None, False
    if rank == 0:
        try:
            created = prepare_out_dir(out, args.resume, create=False)
            if args.resume:
                cfg = _resume_config(out, cfg, args)
                clean_stale(out)
        except (OutputDirError, ConfigError, OSError, ValueError, KeyError) as exc:
            err = str(exc)
    err = comm.bcast(err, root=0)
    return err, comm.bcast(cfg, root=0), created


def _run_line(exc: BaseException, out: Path, rank: int) -> tuple[str, int]:
    """The one line (and exit status) that ends a run that did not complete."""
    resume = f"continue with python -m landimg.cycle --out {out} --resume"
    if isinstance(exc, RunStopped):
        return (
            f"{_PROG}: stopped by {_signal_name(exc.signum)} after day {exc.day}; {resume}",
            128 + exc.signum,
        )
    if isinstance(exc, KeyboardInterrupt):
        signum = getattr(exc, "signum", 2)
        kept = f"; {resume}" if has_restart(out) else "; nothing was kept"
        return f"{_PROG}: interrupted by {_signal_name(signum)}{kept}", 128 + signum
    if isinstance(exc, (InputError, DiskError)):
        return f"{_PROG}: error: {exc}", 2
    first = str(exc).splitlines()[0] if str(exc) else ""
    if os.environ.get("LANDIMG_TRACEBACK"):
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if os.environ.get("LANDIMG_TRACEBACK") else " (LANDIMG_TRACEBACK=1 shows the traceback)"
    return f"{_PROG}: error on rank {rank}: {type(exc).__name__}: {first}{hint}", 1


def _remove_outputs(out: Path) -> None:
    """The files a run that kept no restart wrote into a directory it did not create (it was empty)."""
    for name in FILES:
        for p in (out / name, out / f".{name}.next", out / f".{name}.prev"):
            p.unlink(missing_ok=True)
    shutil.rmtree(out / "restart", ignore_errors=True)


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    0 success; 2 usage, configuration, input or output-directory errors, or a disk that refused a write
    (full, no permission); 128 + signal number when stopped by SIGINT/SIGTERM (the restart of the last
    complete day is kept); 1 an unexpected error (all ranks are aborted; the failing rank prints one line).
    landimg's warnings are printed by rank 0, each distinct one once with a count; other packages'
    warnings are dropped (:class:`landimg.notices.WarningLog`).
    """
    from landimg.parallel import default_comm, install_abort_excepthook

    args = _parser().parse_args(argv)
    comm = default_comm()
    if comm.Get_size() > 1:
        install_abort_excepthook(comm)
    with WarningLog(_PROG, enabled=comm.Get_rank() == 0) as notices:
        return _main(args, comm, notices)


def _main(args: argparse.Namespace, comm: Any, notices: WarningLog) -> int:
    from landimg.parallel import StopRequest, finish_together

    rank, size = comm.Get_rank(), comm.Get_size()
    errcomm = comm.Dup() if size > 1 else comm  # reserved for agreeing on failures

    def fail(msg: str) -> int:  # an error every rank found: rank 0 says it once, no rank aborts another
        notices.flush()
        return finish_together(comm, errcomm, f"{_PROG}: error: {msg}", 2)

    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as exc:
        return fail(str(exc))
    if args.print_config:
        if rank == 0:
            print(to_toml(cfg), end="")
        return 0
    if not args.out:
        return fail("--out DIR is required (or --print-config)")
    out = Path(args.out)
    err, cfg, created = _prepare(args, cfg, comm)
    if err:
        return fail(err)
    stop = StopRequest().install()
    try:
        result = run(cfg, out, resume=args.resume, comm=comm, progress=not args.quiet, stop=stop,
                     spinup_cache=args.spinup_cache, notices=notices)  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - every way out ends all ranks with one line
        if rank == 0 and not args.resume and not has_restart(out):  # nothing kept: nothing left
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                _remove_outputs(out)
        line, code = _run_line(exc, out, rank)
        notices.flush()
        return finish_together(comm, errcomm, line, code)
    finally:
        stop.restore()
    notices.flush()
    if result is not None and rank == 0:
        print(format_table(result.summary), flush=True)
    return 0  # errcomm is not freed: that is collective, and rank 0 may still fail in its final write


if __name__ == "__main__":
    sys.exit(main())
