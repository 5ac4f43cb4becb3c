"""Another revision's Python package beside this tree's, for benchmarks that compare them side by side.

:func:`python_tree` extracts ``python/`` of a git revision (``git archive``) into a directory and copies
this tree's compiled column-model extension into it, so the two trees differ only in their Python code
(a revision whose Fortran API differs refuses to import, naming the mismatch). :func:`interleaved` runs
a benchmark's worker on each tree in turn, round after round, so that the machine's load drifts alike
over all of them.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def landimg_parent() -> str:
    """The directory whose ``landimg`` child runs should import: this source tree where its Fortran extension
    is built (``ci/dev-build.sh``), otherwise the package this interpreter imports (an install, as in CI)."""
    if any((REPO / "python" / "landimg" / "model").glob("_colm*.so")):
        return str(REPO / "python")
    spec = importlib.util.find_spec("landimg")
    if spec is None or spec.origin is None:
        raise SystemExit("landimg is neither built in this tree (bash ci/dev-build.sh) nor installed")
    return str(Path(spec.origin).resolve().parents[1])


def python_tree(rev: str, workdir: Path) -> Path:
    """The ``python`` directory of git revision ``rev``, extracted under ``workdir``, to put on PYTHONPATH."""
    dest = Path(workdir) / rev.replace("/", "_")
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "python"], check=True,
                             capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    for so in (REPO / "python" / "landimg" / "model").glob("_colm*.so"):
        shutil.copy2(so, dest / "python" / "landimg" / "model")
    return dest / "python"


def interleaved(script: str, runs: dict[str, tuple[str, list[str]]], rounds: int) -> dict[str, list[Any]]:
    """``python script --worker ARGS`` for every run ``name -> (PYTHONPATH, ARGS)``, one after the other,
    ``rounds`` times (single-threaded); each run's list of the JSON values its worker printed last."""
    out: dict[str, list[Any]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (path, args) in runs.items():
            env = dict(os.environ, PYTHONPATH=str(path), OMP_NUM_THREADS="1")
            cmd = [sys.executable, script, "--worker", *args]
            stdout = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            out[name].append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def against_baseline(script: str, baseline: str, flags: list[str], rounds: int) -> dict[str, list[Any]]:
    """:func:`interleaved` runs of ``script``'s worker with ``flags`` on git revision ``baseline``'s package
    (:func:`python_tree`, in a temporary directory) and on this tree's (:func:`landimg_parent`): keys
    ``baseline`` and ``"this tree"``."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = {baseline: str(python_tree(baseline, Path(tmp))), "this tree": landimg_parent()}
        return interleaved(script, {name: (path, flags) for name, path in trees.items()}, rounds)
