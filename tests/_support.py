"""Shared helpers for tests that start subprocesses (mpirun, the cycle program)."""

from __future__ import annotations

import os
import sys
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
#: land-fraction variances.
CORE_SETTINGS = dict(
    pooling="coefficient", denkf=False, inflation_mode="fixed", bias_correction=False,
    inflation_prior_var=float("inf"), inflation_debias=False, cg_single_precision=False,
    variance_support="land_fraction", variance_filtering=False,
)  # fmt: skip
