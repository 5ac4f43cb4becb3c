"""Experiment configuration: built-in defaults, a TOML file and ``--set section.key=value`` overrides.

The configuration is a tree of frozen dataclasses (:class:`Config` holds one dataclass per TOML
section). :func:`load_config` merges, in this order, the built-in defaults, an optional TOML file and
command-line overrides, then checks every key and value. Errors are :class:`ConfigError` (a
``ValueError``) naming the offending key and, for unknown names, suggesting the closest valid one.

Every key is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "METHODS",
    "PRESETS",
    "AnalysisConfig",
    "Config",
    "ConfigError",
    "DomainConfig",
    "EnsembleConfig",
    "ExperimentConfig",
    "ForcingConfig",
    "ObsConfig",
    "OutputConfig",
    "from_dict",
    "load_config",
    "parse_override",
    "to_dict",
    "to_toml",
]

#: Domain presets: name -> (lat bounds, lon bounds, default resolution in degrees).
PRESETS: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "conus": ((25.0, 50.0), (-125.0, -65.0), 1.0),
    "china": ((18.0, 54.0), (73.0, 135.0), 0.5),
    "global1deg": ((-60.0, 90.0), (-180.0, 180.0), 1.0),
}

#: Analysis methods known to the cycling program.
METHODS: tuple[str, ...] = ("openloop", "point_enkf", "curvelet_enkf")


_POOLINGS = ("wedge", "scale", "coefficient", "global")
_VARIANCE_SUPPORTS = ("land_fraction", "interior")


class ConfigError(ValueError):
    """A configuration key or value is invalid (the message names the key)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Experiment length, time step and random seed."""

    seed: int = 42
    days: int = 20
    spinup_days: int = 240
    start: str = "2021-05-01"
    dt: float = 3600.0


@dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble size and per-member forcing perturbations (CoLM LETKF settings by default)."""

    members: int = 16
    perturb: bool = True
    precip_sigma: float = 0.5
    swdown_sigma: float = 0.3
    lwdown_std: float = 20.0
    tair_std: float = 1.0
    tau_hours: float = 24.0
    corr_length_km: float = 424.2640687119285  # e^-1 length; = 2 * 300 / sqrt(2): the former 300 km of exp(-r^2/2L^2)
    inflation: float = 1.0
    inflation_mode: str = "adaptive"
    rain_error_std: float = 0.6
    rain_error_tau_days: float = 10.0
    rain_error_km: float = 800.0
    spread_days: int = 10


@dataclass(frozen=True)
class DomainConfig:
    """Domain preset, resolution and optional user fields."""

    preset: str = "conus"
    res: float = 0.0
    soil_file: str = ""
    vegetation_file: str = ""
    texture_corr_km: float = 400.0
    texture_error_pct: float = 25.0


@dataclass(frozen=True)
class ForcingConfig:
    """Synthetic weather generator (truth) and its degradation (the ensemble's reanalysis-like forcing)."""

    true_file: str = ""
    ensemble_file: str = ""
    storms_per_day: float = 0.5
    storm_radius_km: float = 150.0
    storm_intensity_mm_h: float = 3.0
    storm_speed_km_h: float = 35.0
    storm_hours: float = 24.0
    displacement_km: float = 500.0
    smoothing: float = 1.6
    rain_bias: float = 0.85
    amount_sigma: float = 0.5
    miss_fraction: float = 0.3
    false_alarm_fraction: float = 0.3
    tair_bias: float = 0.5
    bias_field_std: float = 0.9
    bias_field_km: float = 800.0


@dataclass(frozen=True)
class AnalysisConfig:
    """Which analyses run, how often, and their hyper-parameters."""

    methods: tuple[str, ...] = METHODS
    interval_hours: int = 24
    obs_depth: float = 0.05
    localization_km: float = 500.0
    curvelet_nscales: int = 0
    curvelet_nangles: int = 16
    curvelet_finest: str = "wavelets"
    curvelet_pooling: str = "wedge"
    curvelet_solver: str = "cg"
    curvelet_variance_support: str = "land_fraction"
    curvelet_obs_corr_km: float = 0.0
    curvelet_obs_white_fraction: float = -1.0  # < 0: automatic (1 if curvelet_obs_corr_km == 0 else 0)
    deep_regression: bool = True
    point_max_obs: int = 64


@dataclass(frozen=True)
class ObsConfig:
    """Synthetic satellite observations and verification stations, or user files."""

    error_std: float = 0.04
    white_fraction: float = 0.5
    corr_length_km: float = 200.0
    revisit_days: float = 2.5
    swath_period_deg: float = 25.0
    stations: int = 50
    station_error_std: float = 0.02
    station_bias_std: float = 0.02
    file: str = ""
    stations_file: str = ""


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes in ``--out``."""

    netcdf: bool = True
    plots: bool = True
    restart: bool = True
    log_every_days: int = 5


@dataclass(frozen=True)
class Config:
    """The full resolved configuration (one attribute per TOML section)."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def grid_spec(self) -> tuple[tuple[float, float], tuple[float, float], float]:
        """(lat bounds, lon bounds, resolution) of the domain after ``domain.res`` is applied."""
        lat, lon, res = PRESETS[self.domain.preset]
        return lat, lon, (self.domain.res if self.domain.res > 0 else res)

    @property
    def steps_per_day(self) -> int:
        """Model time steps per day."""
        return round(86400.0 / self.experiment.dt)

    @property
    def steps_per_analysis(self) -> int:
        """Model time steps between two analyses."""
        return round(self.analysis.interval_hours * 3600.0 / self.experiment.dt)


_SECTION_TYPES: dict[str, type] = {
    "experiment": ExperimentConfig,
    "ensemble": EnsembleConfig,
    "domain": DomainConfig,
    "forcing": ForcingConfig,
    "analysis": AnalysisConfig,
    "obs": ObsConfig,
    "output": OutputConfig,
}


def _suggest(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Check ``value`` against the annotated type ``typ``; return it in canonical form."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):  # pragma: no cover - no optional keys today
        return value
    raise ConfigError(f"{key}: unsupported type {typ!r}")  # pragma: no cover


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key} must be {bound}, got {value!r}")


def _validate(cfg: Config) -> None:
    e, ens, d, f, a, o, out = (
        cfg.experiment,
        cfg.ensemble,
        cfg.domain,
        cfg.forcing,
        cfg.analysis,
        cfg.obs,
        cfg.output,
    )
    _positive("experiment.days", e.days)
    _positive("experiment.spinup_days", e.spinup_days, allow_zero=True)
    _positive("experiment.dt", e.dt)
    if e.seed < 0:
        raise ConfigError(f"experiment.seed must be >= 0, got {e.seed}")
    if e.dt > 3600.0 or abs(86400.0 / e.dt - round(86400.0 / e.dt)) > 1e-9:
        raise ConfigError(f"experiment.dt must divide one day and be <= 3600 s, got {e.dt}")
    try:
        _dt.date.fromisoformat(e.start)
    except ValueError:
        raise ConfigError(f"experiment.start must be a date YYYY-MM-DD, got {e.start!r}") from None
    if ens.members < 2:
        raise ConfigError(f"ensemble.members must be >= 2, got {ens.members}")
    for k in ("precip_sigma", "swdown_sigma", "lwdown_std", "tair_std"):
        _positive(f"ensemble.{k}", getattr(ens, k), allow_zero=True)
    _positive("ensemble.tau_hours", ens.tau_hours)
    _positive("ensemble.corr_length_km", ens.corr_length_km, allow_zero=True)
    if ens.inflation < 1.0:
        raise ConfigError(f"ensemble.inflation must be >= 1, got {ens.inflation}")
    _positive("ensemble.rain_error_std", ens.rain_error_std, allow_zero=True)
    _positive("ensemble.rain_error_tau_days", ens.rain_error_tau_days)
    _positive("ensemble.rain_error_km", ens.rain_error_km, allow_zero=True)
    if not 0 <= ens.spread_days <= e.spinup_days:
        raise ConfigError(
            f"ensemble.spread_days must be in [0, experiment.spinup_days = {e.spinup_days}], got {ens.spread_days}"
        )
    if ens.inflation_mode not in ("fixed", "adaptive"):
        raise ConfigError(
            f"ensemble.inflation_mode must be fixed or adaptive, got {ens.inflation_mode!r}"
            f"{_suggest(ens.inflation_mode, ('fixed', 'adaptive'))}"
        )
    if d.preset not in PRESETS:
        raise ConfigError(
            f"domain.preset: unknown preset {d.preset!r}{_suggest(d.preset, PRESETS)}"
            f" (valid: {', '.join(PRESETS)})"
        )
    _positive("domain.res", d.res, allow_zero=True)
    if d.res > 0:
        (s, n), (w, east), _ = PRESETS[d.preset]
        for span, name in ((n - s, "latitude"), (east - w, "longitude")):
            if abs(span / d.res - round(span / d.res)) > 1e-6:
                raise ConfigError(
                    f"domain.res={d.res} does not divide the {d.preset} {name} span of {span} degrees"
                )
    _positive("domain.texture_corr_km", d.texture_corr_km)
    _positive("domain.texture_error_pct", d.texture_error_pct, allow_zero=True)
    for k in (
        "storms_per_day",
        "storm_radius_km",
        "storm_intensity_mm_h",
        "storm_hours",
        "smoothing",
        "rain_bias",
    ):
        _positive(f"forcing.{k}", getattr(f, k))
    _positive("forcing.bias_field_km", f.bias_field_km)
    for k in ("storm_speed_km_h", "displacement_km", "amount_sigma", "tair_bias", "bias_field_std"):
        _positive(f"forcing.{k}", abs(getattr(f, k)) if k == "tair_bias" else getattr(f, k), allow_zero=True)
    if f.smoothing < 1.0:
        raise ConfigError(f"forcing.smoothing must be >= 1 (1 = no smoothing), got {f.smoothing}")
    for k in ("miss_fraction", "false_alarm_fraction"):
        if not 0.0 <= getattr(f, k) < 1.0:
            raise ConfigError(f"forcing.{k} must be in [0, 1), got {getattr(f, k)}")
    if not a.methods:
        raise ConfigError("analysis.methods must name at least one method")
    for m in a.methods:
        if m not in METHODS:
            raise ConfigError(
                f"analysis.methods: unknown method {m!r}{_suggest(m, METHODS)} (valid: {', '.join(METHODS)})"
            )
    if len(set(a.methods)) != len(a.methods):
        raise ConfigError(f"analysis.methods has duplicates: {list(a.methods)}")
    _positive("analysis.interval_hours", a.interval_hours)
    if (a.interval_hours * 3600.0) % e.dt != 0:
        raise ConfigError(
            f"analysis.interval_hours={a.interval_hours} is not a whole number of experiment.dt={e.dt} s"
        )
    if 24 % a.interval_hours != 0 and a.interval_hours % 24 != 0:
        raise ConfigError(
            f"analysis.interval_hours must divide 24 or be a multiple of 24, got {a.interval_hours}"
        )
    if not 0.0 < a.obs_depth <= 0.1:
        raise ConfigError(f"analysis.obs_depth must be in (0, 0.1] m, got {a.obs_depth}")
    _positive("analysis.localization_km", a.localization_km, allow_zero=True)
    _positive("analysis.curvelet_nscales", a.curvelet_nscales, allow_zero=True)
    _positive("analysis.curvelet_nangles", a.curvelet_nangles)
    _positive("analysis.curvelet_obs_corr_km", a.curvelet_obs_corr_km, allow_zero=True)
    if not (a.curvelet_obs_white_fraction == -1.0 or 0.0 <= a.curvelet_obs_white_fraction <= 1.0) or (
        0.0 <= a.curvelet_obs_white_fraction < 1.0 and a.curvelet_obs_corr_km <= 0
    ):
        raise ConfigError(
            "analysis.curvelet_obs_white_fraction must be -1 (automatic) or in [0, 1] (< 1 needs "
            f"analysis.curvelet_obs_corr_km > 0), got {a.curvelet_obs_white_fraction!r}"
        )
    _positive("analysis.point_max_obs", a.point_max_obs)
    if a.curvelet_pooling not in _POOLINGS:
        raise ConfigError(
            f"analysis.curvelet_pooling must be one of {', '.join(_POOLINGS)}, got {a.curvelet_pooling!r}"
            f"{_suggest(a.curvelet_pooling, _POOLINGS)}"
        )
    if a.curvelet_solver not in ("cg", "diagonal"):
        raise ConfigError(
            f"analysis.curvelet_solver must be cg or diagonal, got {a.curvelet_solver!r}"
            f"{_suggest(a.curvelet_solver, ('cg', 'diagonal'))}"
        )
    if a.curvelet_nangles % 4 != 0:
        raise ConfigError(f"analysis.curvelet_nangles must be a multiple of 4, got {a.curvelet_nangles}")
    if a.curvelet_variance_support not in _VARIANCE_SUPPORTS:
        raise ConfigError(
            f"analysis.curvelet_variance_support must be one of {', '.join(_VARIANCE_SUPPORTS)}, "
            f"got {a.curvelet_variance_support!r}{_suggest(a.curvelet_variance_support, _VARIANCE_SUPPORTS)}"
        )
    if a.curvelet_finest not in ("wavelets", "curvelets"):
        raise ConfigError(
            f"analysis.curvelet_finest must be 'wavelets' or 'curvelets', got {a.curvelet_finest!r}"
            f"{_suggest(a.curvelet_finest, ('wavelets', 'curvelets'))}"
        )
    _positive("obs.error_std", o.error_std)
    if not 0.0 <= o.white_fraction <= 1.0:
        raise ConfigError(f"obs.white_fraction must be in [0, 1], got {o.white_fraction}")
    _positive("obs.corr_length_km", o.corr_length_km)
    if o.revisit_days < 1.0:
        raise ConfigError(f"obs.revisit_days must be >= 1, got {o.revisit_days}")
    _positive("obs.swath_period_deg", o.swath_period_deg)
    _positive("obs.stations", o.stations, allow_zero=True)
    _positive("obs.station_error_std", o.station_error_std, allow_zero=True)
    _positive("obs.station_bias_std", o.station_bias_std, allow_zero=True)
    _positive("output.log_every_days", out.log_every_days)
    for key, path in (
        ("domain.soil_file", d.soil_file),
        ("domain.vegetation_file", d.vegetation_file),
        ("forcing.true_file", f.true_file),
        ("forcing.ensemble_file", f.ensemble_file),
        ("obs.file", o.file),
        ("obs.stations_file", o.stations_file),
    ):
        if path and not Path(path).is_file():
            raise ConfigError(f"{key}: no such file {path!r}")


def from_dict(tree: dict[str, Any], *, source: str = "config") -> Config:
    """Build and validate a :class:`Config` from a nested dict (missing keys take their defaults).

    Raises
    ------
    ConfigError
        Unknown section or key (with the closest valid name), wrong type or invalid value.
    """
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a table of sections, got {type(tree).__name__}")
    sections: dict[str, Any] = {}
    for sname, body in tree.items():
        if sname not in _SECTION_TYPES and not isinstance(body, dict):
            owners = [sec for sec, cls in _SECTION_TYPES.items() if sname in _field_types(cls)]
            hint = f"; did you mean [{owners[0]}] {sname} (--set {owners[0]}.{sname}=...)?" if owners else ""
            raise ConfigError(f"{source}: key {sname!r} must be inside a [section]{hint}")
        if sname not in _SECTION_TYPES:
            raise ConfigError(
                f"{source}: unknown section {sname!r}{_suggest(sname, _SECTION_TYPES)}"
                f" (valid: {', '.join(_SECTION_TYPES)})"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{sname}] must be a table, got {type(body).__name__}")
        cls = _SECTION_TYPES[sname]
        ftypes = _field_types(cls)
        kwargs = {}
        for key, value in body.items():
            if key not in ftypes:
                raise ConfigError(
                    f"{source}: unknown key {sname}.{key}{_suggest(key, ftypes)}"
                    f" (valid in [{sname}]: {', '.join(ftypes)})"
                )
            kwargs[key] = _coerce(f"{sname}.{key}", value, ftypes[key])
        sections[sname] = cls(**kwargs)
    cfg = Config(**sections)
    _validate(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` into (section, key, value).

    The value is read as a TOML value (``3``, ``0.5``, ``true``, ``"x"``, ``["a", "b"]``); anything
    that is not valid TOML is taken as a plain string (so ``domain.preset=china`` works).
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    lhs, rhs = text.split("=", 1)
    lhs = lhs.strip()
    if lhs.count(".") != 1 or not all(lhs.split(".")):
        raise ConfigError(f"--set {text!r}: the key must be section.key, e.g. experiment.days=10")
    section, key = lhs.split(".")
    rhs = rhs.strip()
    try:
        value = tomllib.loads(f"v = {rhs}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs
    return section, key, value


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Resolve the configuration: defaults <- TOML file ``path`` <- ``overrides`` (``section.key=value``).

    Raises
    ------
    ConfigError
        Unreadable or malformed file, unknown key, wrong type or invalid value.
    """
    tree: dict[str, dict[str, Any]] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                tree = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in _SECTION_TYPES:
            raise ConfigError(f"--set {text}: unknown section {section!r}{_suggest(section, _SECTION_TYPES)}")
        tree.setdefault(section, {})[key] = value
        source = f"{source} + --set"
    return from_dict(tree, source=source)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The configuration as a nested dict of plain JSON/TOML values."""
    out: dict[str, dict[str, Any]] = {}
    for sec in dataclasses.fields(cfg):
        body = dataclasses.asdict(getattr(cfg, sec.name))
        out[sec.name] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in body.items()}
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")  # pragma: no cover


def to_toml(cfg: Config) -> str:
    """The configuration as TOML text (what ``--print-config`` shows; loads back to the same Config)."""
    lines = []
    for sname, body in to_dict(cfg).items():
        lines.append(f"[{sname}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
        lines.append("")
    return "\n".join(lines)
