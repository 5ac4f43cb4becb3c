"""Argument checks of :class:`landimg.model.column.ColumnModel` (one-line ValueErrors naming the argument)."""

from __future__ import annotations

from typing import Any

import numpy as np

from landimg.model import soil as _soil


def _positive_int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x!r}")
    return int(x)


def _nonnegative_int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {x!r}")
    return int(x)


#: physically admissible range (exclusive) of each soil parameter the Fortran physics divides by or
#: takes powers of: a hand-built SoilParams outside it would give NaN or a silent nonsense column
_SOIL_BOUNDS: dict[str, tuple[float, float]] = {
    "theta_s": (0.0, 1.0),
    "b": (0.0, np.inf),
    "psi_s": (-np.inf, 0.0),
    "k_s": (0.0, np.inf),
    "csol": (0.0, np.inf),
    "tksol": (0.0, np.inf),
    "tkdry": (0.0, np.inf),
}


def _check_soil(soil: _soil.SoilParams) -> None:
    """ValueError naming the first soil parameter that is not a finite array of the soil's shape
    ((ncol,) or (ncol, nmem)) within its bounds."""
    shape = np.shape(soil.theta_s)
    if len(shape) not in (1, 2):
        raise ValueError(f"soil.theta_s must have shape (ncol,) or (ncol, nmem), got {shape}")
    for name, (lo, hi) in _SOIL_BOUNDS.items():
        a = np.asarray(getattr(soil, name), dtype=float)
        if a.shape != shape:
            raise ValueError(f"soil.{name} must have shape {shape} like soil.theta_s, got {a.shape}")
        if not (np.all(np.isfinite(a)) and np.all(a > lo) and np.all(a < hi)):
            raise ValueError(f"soil.{name} must be finite and within ({lo}, {hi})")


def _check_dt(dt: Any) -> float:
    try:
        v = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a number of seconds, got {dt!r}") from None
    if not (np.isfinite(v) and 0.0 < v <= 3600.0):
        raise ValueError(f"dt must be in (0, 3600] s, got {dt!r}")
    return v
