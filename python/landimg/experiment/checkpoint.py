"""The run's state to and from the restart: :func:`save` writes this rank's part of a
:class:`~landimg.experiment.run_state.RunState` after a complete day, :func:`resume` reads it back (written on
any layout), :func:`kept` says what a stopped run keeps. The restart's files, manifest and schema are
:mod:`landimg.experiment.restart`'s; the shards' format is :mod:`landimg.shards`'."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from landimg.atomic import DiskError
from landimg.experiment.config import to_toml
from landimg.experiment.history import DayImages, History
from landimg.experiment.restart import RestartError, load_for_resume, previous_good, write_checkpoint
from landimg.experiment.run_state import RunState
from landimg.experiment.setup import InputError
from landimg.shards import ShardStore, ShardWriter, StoreError

__all__ = ["kept", "resume", "save"]


def resume(r: RunState, out: Path) -> None:
    """Continue from the newest restart of ``out``, written on any layout (each rank reads its parts)."""
    comm = r.comm
    manifest = _agreed(comm, lambda: load_for_resume(out) if r.rank == 0 else None, (RestartError,))
    manifest = comm.bcast(manifest, root=0)
    store = ShardStore(manifest["path"], None if comm.Get_size() == 1 else comm, manifest)
    try:
        store.verify()  # collective: every shard's SHA-256, each on one rank
    except StoreError as exc:
        raise InputError(f"{exc}{previous_good(out, store.directory)}") from None
    r.day0 = r.saved_day = int(manifest["day"])
    r.wall_before = float(manifest["wall_seconds"])
    _agreed(comm, lambda: _read_state(r, store), (StoreError, KeyError, ValueError))
    days = int(manifest["outputs_days"])
    _agreed(comm, lambda: None if r.files is None else r.files.resume(days), (ValueError,))


def _agreed(comm: Any, work: Callable[[], Any], errors: tuple[type[BaseException], ...]) -> Any:
    """``work()`` on every rank; one of ``errors`` on any rank is an InputError on every rank (the first
    rank's one line), so that no rank is left waiting."""
    result, failed = None, None
    try:
        result = work()
    except errors as exc:
        failed = str(exc)
    if comm.Get_size() > 1:
        failed = next((f for f in comm.allgather(failed) if f is not None), None)
    if failed is not None:
        raise InputError(failed)
    return result


def _pixels(r: RunState) -> tuple[int, int]:
    """This rank's share of the image's pixels (flat, row-major) in the restart: P contiguous ranges."""
    npix, rank, size = int(np.prod(r.s.domain.grid.shape)), r.rank, r.comm.Get_size()
    return npix * rank // size, npix * (rank + 1) // size


def _read_state(r: RunState, store: ShardStore) -> None:
    """This rank's state from the restart ``store``: its members on its columns, its world block of the
    nature run, the observation-error state (every rank holds it whole); the small record on rank 0, its
    columns' score sums on member group 0."""
    lay, world = r.layout, r.s.world.layout
    world_cols = (world.col_start, world.col_stop)
    r.nature.set_state({k: store.block("nature", k, (0, 1), world_cols) for k in store.keys("nature")})
    r.s.observer.synthetic.set_state(_observer_state(r, store))
    for name, ens in r.ensembles.items():
        ens.read_from(store, f"ens::{name}::")
    if r.sums is not None:
        r.sums.load(lambda key: store.columns("columns", f"sums::{key}", (lay.col_start, lay.col_stop)))
    if r.rank == 0:
        methods = list(r.s.methods)
        r.history = History.from_tree(
            {k: store.whole("whole", f"record::{k}") for k in store.keys("whole", "record::")}, methods
        )
        last = store.keys("whole", "last::")
        if last:
            r.last = DayImages.from_tree({k: store.whole("whole", f"last::{k}") for k in last}, methods)


def _observer_state(r: RunState, store: ShardStore) -> dict[str, np.ndarray]:
    """The observation error's AR(1) state of the restart (``{}``: none yet): the index (rank 0's) and the
    field assembled from every rank's share of its pixels."""
    if not store.has("whole", "observer::index"):
        return {}
    npix = int(np.prod(r.s.domain.grid.shape))
    field = store.columns("observer", "field", (0, npix)).reshape(r.s.domain.grid.shape)
    return {"index": store.whole("whole", "observer::index"), "field": field}


def kept(r: RunState, outputs: bool = False) -> str:
    """What a run stopped by a disk error keeps, and how to go on."""
    if r.saved_day is None:
        return "nothing was kept"
    then = "--resume writes the outputs" if outputs else "continue with --resume"
    return f"the restart after day {r.saved_day} is kept: free space or fix the permissions, then {then}"


def save(r: RunState, out: Path, day: int, t_start: float) -> None:
    """The restart after ``day`` complete days (collective, :mod:`landimg.experiment.restart`): every rank
    writes its shard -- its members on its columns, its streams, its world block of the nature run, its
    share of the observation error's AR(1) field, its columns of the score sums (member group 0) -- and
    rank 0 what is kept once and the manifest. No gather."""
    lay, world, w = r.layout, r.s.world.layout, ShardWriter()
    for name, ens in r.ensembles.items():
        ens.add_to_shard(w, f"ens::{name}::")
    w.part("nature", members=(0, 1), columns=(world.col_start, world.col_stop))
    for k, v in r.nature.get_state(copy=False).items():  # (..., ncol_world_local, 1)
        w.add("nature", k, v)
    observer = r.s.observer.synthetic.get_state()
    if observer:
        p0, p1 = _pixels(r)
        w.part("observer", columns=(p0, p1))
        w.add("observer", "field", observer["field"].reshape(-1)[p0:p1])
    if lay.group == 0:
        w.part("columns", columns=(lay.col_start, lay.col_stop))
        for k, v in r.sums.to_tree().items():
            w.add("columns", f"sums::{k}", v)
    fields = None
    if r.rank == 0:
        w.part("whole")
        if observer:
            w.add("whole", "observer::index", observer["index"])
        for k, v in r.history.to_tree().items():
            w.add("whole", f"record::{k}", v)
        if r.last is not None:
            for k, v in r.last.to_tree().items():
                w.add("whole", f"last::{k}", v)
        from landimg import __version__

        fields = {
            "day": day, "landimg_version": __version__, "methods": list(r.ensembles), "nmem": lay.nmem,
            "ncol": r.s.domain.grid.ncol, "layout": {"ranks": lay.size, "member_groups": lay.member_groups,
                                                     "column_blocks": lay.column_blocks},
            "outputs_days": day if r.files is not None else 0, "inputs": r.inputs, "config_toml": to_toml(r.cfg),
            "wall_seconds": r.wall_before + time.perf_counter() - t_start,
        }  # fmt: skip
    try:
        write_checkpoint(out, day, w, None if r.comm.Get_size() == 1 else r.comm, fields)
    except DiskError as exc:
        raise exc.with_hint(kept(r)) from None
    r.saved_day = day
