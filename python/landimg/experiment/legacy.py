"""Configuration keys of earlier versions: refused with their new place; translated in a stored configuration
of an earlier version when asked (``config.from_dict(legacy=True)``).

Restarts do not rely on this: they carry a schema version (:mod:`landimg.experiment.restart`), a restart
of another schema is refused naming both versions, and a restart's stored configuration is read as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from landimg.experiment.settings import ConfigError

__all__ = ["ADDED", "MOVED", "OLD_SENTINELS", "RESCALED", "check_moved", "upgrade"]

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


#: Keys whose meaning changed: old value -> today's value. The forcing-perturbation correlation length was
#: the L of exp(-r^2 / 2 L^2); today every length is where the correlation falls to e^-1 (landimg.random_fields),
#: i.e. sqrt(2) L, written 2 L / sqrt(2) so that the former default 300 gives exactly today's 424.2640687119285.
RESCALED: dict[str, Callable[[Any], Any]] = {
    "ensemble.corr_length_km": lambda v: 2.0 * float(v) / math.sqrt(2.0),
}


#: Keys added with a new default behaviour (issue 9), with the value that reproduces the earlier behaviour:
#: an earlier version's stored configuration (which has none of them) reads with these values. A stored
#: configuration of today lists every key of its sections (``to_toml``), so a section without one of these
#: keys was also written before the key existed and reads it with the earlier value.
ADDED: dict[str, Any] = {
    "curvelet_enkf.solver": "diagonal",
    "curvelet_enkf.inflation_per_scale": False,
    "ensemble.rain_error_std": 0.0,
    "ensemble.spread_days": 0,
    "ensemble.perturb_soil": False,
    "curvelet_enkf.bias_correction": False,
    "curvelet_enkf.denkf": False,
    "curvelet_enkf.layer_increments": "full",
    # issue 18 (the stored bias_correction, variance_support and cg_tol of a configuration of today stay as stored)
    "curvelet_enkf.variance_filtering": False,
    "curvelet_enkf.anomaly_update": "joint",
    "curvelet_enkf.cg_preconditioner": "jacobi",
    "curvelet_enkf.cg_single_precision": False,
    # h-temporal: inflation of the observed layers only
    "curvelet_enkf.inflation_layers": "all",
    "point_enkf.inflation_layers": "all",
    "point_letkf.inflation_layers": "all",
}


def upgrade(tree: dict[str, Any], has_key: Callable[[str, str], bool]) -> dict[str, Any]:
    """An old restart's configuration in today's keys (moved keys, sentinels dropped).

    ``has_key(section, key)`` tells whether today's configuration has that key (a moved key goes to
    each of its new places that exists, e.g. the LETKF has no ``inflation_mode``).
    """
    new: dict[str, dict[str, Any]] = {s: dict(b) for s, b in tree.items() if isinstance(b, dict)}
    # a configuration of today has no moved key; an earlier version's stored TOML has all of them
    old = any(f"{s}.{k}" in MOVED for s, b in new.items() for k in b)
    for sname in list(new):
        for key in list(new[sname]):
            full, value = f"{sname}.{key}", new[sname][key]
            if full in OLD_SENTINELS and value == OLD_SENTINELS[full]:
                del new[sname][key]
            elif old and full in RESCALED:
                new[sname][key] = RESCALED[full](value)
            elif full in MOVED:
                del new[sname][key]
                for target in MOVED[full]:
                    ts, tk = target.split(".")
                    if has_key(ts, tk):
                        new.setdefault(ts, {})[tk] = value
    for full, value in ADDED.items():
        ts, tk = full.split(".")
        if (old or ts in new) and has_key(ts, tk) and tk not in new.get(ts, {}):
            new.setdefault(ts, {})[tk] = value
    return new


def check_moved(tree: dict[str, Any], source: str) -> None:
    for sname, body in tree.items():
        for key in body if isinstance(body, dict) else ():
            if f"{sname}.{key}" in MOVED:
                raise ConfigError(f"{source}: {sname}.{key} moved to {' and '.join(MOVED[f'{sname}.{key}'])}")
