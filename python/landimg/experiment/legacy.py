"""Configuration keys of earlier versions: refused with their new place, translated in old restarts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from landimg.experiment.settings import ConfigError

__all__ = ["MOVED", "OLD_SENTINELS", "check_moved", "upgrade"]

#: Keys of earlier versions -> where they live now (an old key is an error naming its new place).
MOVED: dict[str, tuple[str, ...]] = {
    "analysis.localization_km": ("point_enkf.radius_km", "point_letkf.radius_km"),
    "analysis.point_max_obs": ("point_enkf.max_obs", "point_letkf.max_obs"),
    "analysis.curvelet_nscales": ("curvelet_enkf.nscales",),
    "analysis.curvelet_nangles": ("curvelet_enkf.nangles_coarse",),
    "analysis.curvelet_finest": ("curvelet_enkf.finest",),
    "analysis.curvelet_pooling": ("curvelet_enkf.pooling",),
    "analysis.curvelet_variance_support": ("curvelet_enkf.variance_support",),
    "analysis.curvelet_obs_corr_km": ("curvelet_enkf.obs_corr_km",),
    "analysis.curvelet_obs_white_fraction": ("curvelet_enkf.obs_white_fraction",),
    "analysis.deep_regression": ("curvelet_enkf.deep_regression",),
    "ensemble.inflation": ("curvelet_enkf.inflation", "point_enkf.inflation", "point_letkf.inflation"),
    "ensemble.inflation_mode": ("curvelet_enkf.inflation_mode", "point_enkf.inflation_mode"),
}
#: Values that meant "unset" in earlier versions (dropped when an old restart's configuration is read).
OLD_SENTINELS: dict[str, Any] = {
    "analysis.curvelet_nscales": 0, "analysis.curvelet_obs_white_fraction": -1.0, "domain.res": 0.0,
    "domain.soil_file": "", "domain.vegetation_file": "", "forcing.true_file": "", "forcing.ensemble_file": "",
    "obs.file": "", "obs.stations_file": "",
}  # fmt: skip


def upgrade(tree: dict[str, Any], has_key: Callable[[str, str], bool]) -> dict[str, Any]:
    """An old restart's configuration in today's keys (moved keys, sentinels dropped).

    ``has_key(section, key)`` tells whether today's configuration has that key (a moved key goes to
    each of its new places that exists, e.g. the LETKF has no ``inflation_mode``).
    """
    if not any(f"{s}.{k}" in MOVED for s, b in tree.items() if isinstance(b, dict) for k in b):
        return tree  # written by this version
    new: dict[str, dict[str, Any]] = {s: dict(b) for s, b in tree.items() if isinstance(b, dict)}
    length = new.get("ensemble", {}).get("corr_length_km")
    if length is not None:  # exp(-r^2/2L^2) then, exp(-r^2/L^2) now: the same fields
        new["ensemble"]["corr_length_km"] = 2.0 * length / math.sqrt(2.0)
    for sname in list(new):
        for key in list(new[sname]):
            full, value = f"{sname}.{key}", new[sname][key]
            if full in OLD_SENTINELS and value == OLD_SENTINELS[full]:
                del new[sname][key]
            elif full in MOVED:
                del new[sname][key]
                for target in MOVED[full]:
                    ts, tk = target.split(".")
                    if has_key(ts, tk):
                        new.setdefault(ts, {})[tk] = value
    return new


def check_moved(tree: dict[str, Any], source: str) -> None:
    for sname, body in tree.items():
        for key in body if isinstance(body, dict) else ():
            if f"{sname}.{key}" in MOVED:
                raise ConfigError(f"{source}: {sname}.{key} moved to {' and '.join(MOVED[f'{sname}.{key}'])}")
