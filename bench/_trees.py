"""Another revision's Python package beside this tree's, for benchmarks that compare them side by side.

:func:`python_tree` extracts ``python/`` of a git revision (``git archive``) into a directory and copies
this tree's compiled column-model extension into it, so the two trees differ only in their Python code
(a revision whose Fortran API differs refuses to import, naming the mismatch).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
