"""Shared helpers for tests that start subprocesses (mpirun, the cycle program)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import landimg

MPIRUN = Path(sys.executable).parent / "mpirun"
"""The mpirun of the same environment as mpi4py (PyPI mpich puts it next to the interpreter)."""


def subprocess_env() -> dict[str, str]:
    """Environment for a child Python that imports the *same* landimg as this test process.

    The directory holding the imported package goes first on PYTHONPATH: the installed package when the
    suite runs against an install (CI), the source tree when a developer runs it with PYTHONPATH=python.
    """
    env = dict(os.environ)
    package_parent = str(Path(landimg.__file__).resolve().parents[1])
    env["PYTHONPATH"] = package_parent + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


#: The settings the functional-core tests were written for: the defaults ``curvelet_analysis`` had before
#: the settings moved into ``CurveletEnKF`` (issue 18: one place for settings and defaults): per-coefficient
#: variances, perturbed observations, fixed inflation (a single analysis' estimate when asked for
#: ``"adaptive"``: no smoothing, no de-biasing), no bias stage, float64 FFT products, homogeneous B with
#: land-fraction variances, the overlapping layers' increments by the column regression (the default before
#: the issue-18 study's tuning; ``"analysis"`` refuses per-coefficient variances).
CORE_SETTINGS = dict(
    pooling="coefficient", denkf=False, inflation_mode="fixed", bias_correction=False,
    inflation_prior_var=float("inf"), inflation_debias=False, cg_single_precision=False,
    variance_support="land_fraction", variance_filtering=False, layer_increments="regression",
)  # fmt: skip


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "256k", options: str = "") -> Iterator[Path]:
    """A small tmpfs mounted at ``where`` for real full-disk and read-only tests (the test is skipped
    where mounting is not permitted, e.g. without root); ``remount(where, size)`` resizes it."""
    import pytest

    where.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (f",{options}" if options else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, size: str) -> None:
    """Resize the tmpfs at ``where`` (its files stay)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def restart_arrays(run: Path) -> dict[str, object]:
    """Every entry of the newest restart of the run directory ``run``, assembled whole over its shards
    (``"<part>::<key>"`` -> array, or list of per-member values), whatever layout wrote it."""
    from landimg.experiment.restart import latest
    from landimg.shards import ShardStore

    return ShardStore(latest(run)).assembled()


def restart_day(run: Path) -> int:
    """The day of the newest complete restart of ``run`` (0 when there is none yet)."""
    from landimg.experiment.restart import restart_days

    days = restart_days(run)
    return days[-1] if days else 0


def assert_same_restart(a: Path, b: Path) -> None:
    """The newest restarts of the runs ``a`` and ``b`` hold the same entries, bit for bit (wall time aside),
    whatever layouts wrote them."""
    import numpy as np

    ra, rb = restart_arrays(a), restart_arrays(b)
    assert set(ra) == set(rb)
    for k, va in ra.items():
        vb = rb[k]
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape and va.tobytes() == vb.tobytes(), k
        else:
            assert va == vb, k


def box_geometry(ny: int, nx: int, sea: tuple[int, int], res: float = 1.0) -> landimg.Grid:
    """A regional analysis grid of ``ny x nx`` cells of ``res`` degrees from 30N, 110W, all land but a
    ``sea`` corner of (rows, columns)."""
    import numpy as np
    from landimg.da.localization import EARTH_RADIUS_KM
    from landimg.da.protocol import Geometry

    lat = 30.0 + res * (np.arange(ny) + 0.5)
    lon = -110.0 + res * (np.arange(nx) + 0.5)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    dy = np.radians(res) * EARTH_RADIUS_KM
    land = np.ones((ny, nx), bool)
    land[: sea[0], : sea[1]] = False
    return Geometry(land, lat2[land], lon2[land], (dy, dy * np.cos(np.radians(lat.mean()))))


def smooth_fields(rng, n: int, shape: tuple[int, int], length: float):
    """``n`` Gaussian-filtered white-noise images (n, *shape) of unit rms, correlation length ``length`` cells."""
    import numpy as np

    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * length) ** 2 * (ky**2 + kx**2))
    w = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n,) + shape)) * filt).real
    return w / np.sqrt(np.mean(w**2))
