"""Experiment configuration: built-in defaults, a TOML file and ``--set section.key=value`` overrides.

The configuration is a tree of frozen dataclasses, one per TOML section. Every key is declared once,
as a dataclass field with its type, default, one-line doc and bounds (:func:`settings.setting`); the
analysis methods' sections (``[curvelet_enkf]``, ``[point_enkf]``, ``[point_letkf]``, one per entry of
:data:`landimg.da.METHODS` that has settings) are the method dataclasses of :mod:`landimg.da`
themselves. Parsing, validation, ``--print-config`` and docs/configuration.md are derived from those
declarations (:mod:`landimg.experiment.settings`, :mod:`landimg.experiment.configdoc`).

Settings the experiment supplies to the methods itself: ``obs_depth`` (from ``analysis.obs_depth``, shared
by the observations, the methods and the output), so it is not a key of the method sections.

To add a key: add a field to its section dataclass (``setting(default, doc, ...)``); to add a section:
a dataclass here (or, for an input section, in :mod:`landimg.experiment.config_inputs`) and an entry
in :data:`SECTIONS`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from landimg import da
from landimg.experiment.config_inputs import ForcingConfig, ObsConfig, ReferenceConfig, StationsConfig
from landimg.experiment.legacy import MOVED, check_moved, upgrade
from landimg.experiment.settings import ConfigError, build_section, setting, specs, suggest

__all__ = [
    "DEFAULT_METHODS", "METHODS", "MOVED", "PRESETS", "SECTIONS", "SUPPLIED", "AnalysisConfig", "Config",
    "ConfigError", "DomainConfig", "EnsembleConfig", "ExperimentConfig", "ForcingConfig", "ObsConfig",
    "OutputConfig", "ParallelConfig", "ReferenceConfig", "StationsConfig", "WORLDS", "from_dict", "input_files", "load_config", "method_sections", "parse_override",
    "to_dict", "to_toml",
]  # fmt: skip

#: Domain presets: name -> (lat bounds, lon bounds, default resolution in degrees).
PRESETS: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "conus": ((25.0, 50.0), (-125.0, -65.0), 1.0),
    "china": ((18.0, 54.0), (73.0, 135.0), 0.5),
    "global1deg": ((-60.0, 90.0), (-180.0, 180.0), 1.0),
}

#: World variants (``experiment.world``): name -> the ``section.key`` values the preset sets. Keys given
#: explicitly (in the file or with --set) win; --print-config and the restart hold the resolved keys.
WORLDS: dict[str, dict[str, Any]] = {
    "default": {},
    "correlated": {"obs.white_fraction": 0.3, "obs.corr_length_km": 400.0, "obs.memory_days": 10.0},
    "sparse": {"obs.revisit_days": 4.0},
    "displaced": {
        "forcing.displacement_km": 100.0, "forcing.displacement_scope": "field", "ensemble.rain_shift_km": 100.0,
    },
}  # fmt: skip

#: Analysis methods the cycle can run (``analysis.methods``), from :data:`landimg.da.METHODS`.
METHODS: tuple[str, ...] = tuple(da.METHODS)
#: The methods run by default.
DEFAULT_METHODS: tuple[str, ...] = ("openloop", "point_enkf", "point_letkf", "curvelet_enkf")
#: Method fields the experiment supplies itself (not keys of the method sections).
SUPPLIED: tuple[str, ...] = ("obs_depth",)


def _must(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{key} {msg}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Experiment length, time step and random seed."""

    seed: int = setting(
        42,
        "Seed of everything random: domain fields, weather, observations, stations, member perturbations.",
        ge=0,
    )
    days: int = setting(
        20,
        "Length of the assimilation period, days. Metrics are averaged over these days (from `score_from_day`).",
        gt=0,
    )
    spinup_days: int = setting(
        240,
        "Spin-up before the start: the nature run with the true weather and soil, one ensemble column with the ensemble's forcing and soil, copied to every member.",
        ge=0,
    )
    start: str = setting(
        "2021-05-01", "Experiment start date (00 UTC), `YYYY-MM-DD`; sets the season and solar geometry."
    )
    dt: float = setting(3600.0, "Model time step, s (divides a day).", gt=0, le=3600)
    world: str = setting(
        "default",
        "World variant: a preset of [obs]/[forcing]/[ensemble] keys (`correlated`, `sparse`, `displaced`; "
        "the table below); keys set explicitly win.",
        choices=tuple(WORLDS),
    )
    score_from_day: int = setting(
        1,
        "First day (1-based) of every period mean of `summary.json` (scores, observation-space statistics, "
        "rank histograms); the days before it are spin-in. At most `days`.",
        ge=1,
    )

    def __post_init__(self) -> None:
        _must(self.score_from_day <= self.days, "score_from_day",
              f"must be <= experiment.days = {self.days} (the last day), got {self.score_from_day}")  # fmt: skip
        _must(
            abs(86400.0 / self.dt - round(86400.0 / self.dt)) < 1e-9,
            "dt",
            f"must divide one day, got {self.dt}",
        )
        try:
            start = _dt.date.fromisoformat(self.start)
        except ValueError:
            raise ValueError(f"start must be a date YYYY-MM-DD, got {self.start!r}") from None
        for key, days, sign, limit in (("spinup_days", self.spinup_days, -1, "before year 1"),
                                       ("days", self.days, 1, "after year 9999")):  # fmt: skip
            try:
                start + sign * _dt.timedelta(days=days + (sign > 0))
            except OverflowError:
                where = "before" if sign < 0 else "after"
                raise ValueError(
                    f"{key}: {days} days {where} experiment.start {self.start} is {limit} (the calendar's range)"
                ) from None


@dataclass(frozen=True)
class EnsembleConfig:
    """Ensemble size and per-member forcing perturbations (CoLM LETKF settings by default)."""

    members: int = setting(16, "Ensemble size. The same members run for every method.", ge=2)
    perturb: bool = setting(
        True,
        "Per-member forcing perturbations. With false (and perturb_soil false) all members are identical (zero spread), so the EnKFs make no update: use it only to check that.",
    )
    precip_sigma: float = setting(
        0.5, "Standard deviation of the multiplicative (lognormal, mean 1) precipitation factor.", ge=0
    )
    swdown_sigma: float = setting(0.3, "Same for shortwave radiation.", ge=0)
    lwdown_std: float = setting(20.0, "Additive longwave perturbation, W/m2.", ge=0)
    tair_std: float = setting(1.0, "Additive air-temperature perturbation, K.", ge=0)
    tau_hours: float = setting(24.0, "AR(1) time scale of the perturbations, hours.", gt=0)
    corr_length_km: float = setting(
        424.2640687119285,
        "Spatial correlation length of the perturbation fields, km: correlation e^-1 at this distance "
        "(random_fields convention; the default equals the former 300 km of exp(-r^2/2L^2)); 0 = white.",
        ge=0,
    )
    rain_error_std: float = setting(
        0.6,
        "Standard deviation of each member's persistent multiplicative (lognormal, mean 1) rain error, on top of the fast precipitation perturbation (reanalysis rain biases are regional and last for weeks); 0 = off.",
        ge=0,
    )
    rain_error_tau_days: float = setting(10.0, "AR(1) time scale of the persistent rain error, days.", gt=0)
    rain_error_km: float = setting(
        800.0, "Correlation length of the persistent rain error, km (e^-1 at this distance).", ge=0
    )
    rain_shift_km: float = setting(
        0.0,
        "Each member's rain field shifted as a whole by its own random vector of this rms per direction, km, "
        "redrawn daily from the member's own stream, so the ensemble samples position errors; the land "
        "total of the rain is kept ([experiment.md](experiment.md#world-variants)); 0 = off.",
        ge=0,
    )
    spread_days: int = setting(
        10,
        "Per-member spin-up: the last days of the spin-up are run by every member with its own perturbed forcing, so the ensemble starts with spread (0 = all members start as one copy; at most experiment.spinup_days).",
        ge=0,
    )
    perturb_soil: bool = setting(
        True,
        "Per-member soil parameters: each member's sand/clay is the model's texture plus its own correlated error field of the soil map's error statistics (domain.texture_error_pct, 0.6x for clay; correlation length domain.texture_corr_km / 2), clipped to the physical ranges, and its Cosby parameters are recomputed from it (the same members for every method; the per-member spin-up runs with them). false = every member uses the model's texture.",
    )


@dataclass(frozen=True)
class DomainConfig:
    """Domain preset, resolution and optional user fields."""

    preset: str = setting(
        "conus",
        "`conus` (25-50N, 125-65W, 1 deg, 1,073 land cells), `china` (18-54N, 73-135E, 0.5 deg, 7,346), `global1deg` (60S-90N, 1 deg, 15,483).",
        choices=tuple(PRESETS),
    )
    res: float | None = setting(
        None, "Grid spacing in degrees (omitted: the preset's). Must divide the preset's spans.", gt=0
    )
    bbox: tuple[float, ...] = setting(
        (),
        "User domain `[south, north, west, east]` in degrees (with `res`); replaces the preset when given.",
    )
    soil_file: str | None = setting(
        None,
        "netCDF with `sand` and `clay` on `lat`/`lon` ([data.md](data.md)); replaces the synthetic true texture.",
    )
    vegetation_file: str | None = setting(
        None, "netCDF with `igbp` (1..17); replaces the synthetic vegetation classes."
    )
    texture_corr_km: float = setting(
        400.0, "Correlation length of the synthetic texture/aridity fields, km.", gt=0
    )
    texture_error_pct: float = setting(
        25.0,
        "Standard deviation (percent sand; 0.6x for clay) of the ensemble's soil-texture error (a correlated field of half the texture's correlation length).",
        ge=0,
    )

    def __post_init__(self) -> None:
        if self.bbox:
            _must(len(self.bbox) == 4, "bbox", f"must be [south, north, west, east], got {list(self.bbox)}")
            _must(self.res is not None, "bbox", "needs domain.res (the grid spacing in degrees)")
            s, n, w, e = self.bbox
            ok = -90.0 <= s < n <= 90.0 and w < e <= w + 360.0
            _must(ok, "bbox", f"is not a valid box: {list(self.bbox)}")
        elif self.res is None or self.preset not in PRESETS:
            return
        else:
            (s, n), (w, e), _ = PRESETS[self.preset]
        for span, name in ((n - s, "latitude"), (e - w, "longitude")):
            _must(span / self.res < 1e9, "res", f"= {self.res} gives {span / self.res:.3g} cells along {name}, too many")
            where = "bbox" if self.bbox else self.preset
            _must(abs(span / self.res - round(span / self.res)) <= 1e-6, "res",
                  f"{self.res} does not divide the {where} {name} span of {span} degrees")  # fmt: skip


@dataclass(frozen=True)
class AnalysisConfig:
    """Which analyses run and how often (each method's hyper-parameters are in its own section)."""

    methods: tuple[str, ...] = setting(
        DEFAULT_METHODS,
        "Methods run side by side (each its own ensemble, same seed, forcing and observations); their settings are in the sections of the same names.",
        choices=METHODS,
    )
    interval_hours: int = setting(
        24, "Hours between analyses (divides 24 or a multiple of 24; a whole number of `dt`).", gt=0
    )
    obs_depth: float = setting(
        0.05,
        "Bottom of the observed layer, m (the retrievals are of the 0-`obs_depth` layer mean; supplied to every method).",
        gt=0,
        le=0.1,
    )

    def __post_init__(self) -> None:
        _must(len(self.methods) > 0, "methods", "must name at least one method")
        _must(len(set(self.methods)) == len(self.methods), "methods", f"has duplicates: {list(self.methods)}")
        h = self.interval_hours
        _must(24 % h == 0 or h % 24 == 0, "interval_hours", f"must divide 24 or be a multiple of 24, got {h}")


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes in ``--out``."""

    netcdf: bool = setting(True, "Write `analysis.nc` and `metrics.nc`.")
    plots: bool = setting(True, "Write `plots/*.png` (needs matplotlib; skipped otherwise).")
    restart: bool = setting(
        True,
        "Write a restart (`restart/day-NNNNN/`, sharded: every rank its block) after every day (needed by `--resume`; the last day is always written).",
    )
    log_every_days: int = setting(5, "Progress line interval when the output is not a terminal.", gt=0)


@dataclass(frozen=True)
class ParallelConfig:
    """How the ranks are laid out (not the experiment's identity: every layout gives the same bits)."""

    column_blocks: int | Literal["auto"] = setting(
        "auto",
        "Column blocks K of the layout: the P ranks are G member groups x K blocks of columns (P = G x K; "
        "each rank steps its group's members on its block). `\"auto\"`: 1 while P <= ensemble.members, "
        "else the smallest K that divides P with at most ensemble.members groups. Results are bitwise the "
        "same on every layout; `--resume` may change it.",
        ge=1,
    )


#: The experiment's own sections (TOML name -> dataclass), in --print-config order.
SECTIONS: dict[str, type] = {
    "experiment": ExperimentConfig, "ensemble": EnsembleConfig, "domain": DomainConfig,
    "forcing": ForcingConfig, "analysis": AnalysisConfig, "obs": ObsConfig, "reference": ReferenceConfig,
    "stations": StationsConfig, "output": OutputConfig, "parallel": ParallelConfig,
}  # fmt: skip


def method_sections() -> dict[str, type]:
    """The method sections: name in :data:`landimg.da.METHODS` -> dataclass, for methods with settings."""
    return {name: cls for name, cls in da.METHODS.items() if specs(cls, SUPPLIED)}


def _default_methods() -> dict[str, Any]:
    return {name: cls() for name, cls in method_sections().items()}


@dataclass(frozen=True)
class Config:
    """The full resolved configuration: one attribute per experiment section, ``method[name]`` per method."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    forcing: ForcingConfig = field(default_factory=ForcingConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    obs: ObsConfig = field(default_factory=ObsConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    stations: StationsConfig = field(default_factory=StationsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    method: dict[str, Any] = field(default_factory=_default_methods)

    def __post_init__(self) -> None:
        for section in ("forcing", "obs", "reference", "stations"):
            sec = getattr(self, section)
            _must(bool(sec.product) == bool(sec.files), f"{section}.product",
                  "and files go together (give both, or neither)")  # fmt: skip
        if self.obs.cdf_match and self.obs.product:
            clim_days = self.experiment.spinup_days - min(self.ensemble.spread_days, self.experiment.spinup_days)
            _must(clim_days >= 1, "obs.cdf_match",
                  "needs a model climatology from the spin-up before the members spread: experiment.spinup_days "
                  f"= {self.experiment.spinup_days} must exceed ensemble.spread_days = {self.ensemble.spread_days}")  # fmt: skip
        step = self.analysis.interval_hours * 3600.0
        _must(step % self.experiment.dt == 0, "analysis.interval_hours",
              f"= {self.analysis.interval_hours} is not a whole number of experiment.dt = {self.experiment.dt} s")  # fmt: skip
        self._check_methods_fit_grid()

    def _check_methods_fit_grid(self) -> None:
        """Settings of the methods that run that depend on the grid (e.g. the curvelet transform's number
        of scales and padding), checked now rather than at the first analysis after the spin-up."""
        (s, n), (w, e), res = self.grid_spec
        shape = (round((n - s) / res), round((e - w) / res))
        periodic = abs((e - w) - 360.0) < 1e-6
        for name in self.analysis.methods:
            check = getattr(self.method.get(name), "check_grid", None)
            if check is not None:
                try:
                    check(shape, periodic)
                except ValueError as exc:
                    raise ValueError(f"{name}.{exc}") from None

    @property
    def grid_spec(self) -> tuple[tuple[float, float], tuple[float, float], float]:
        """(lat bounds, lon bounds, resolution) of the domain: ``domain.bbox`` + ``res``, or the preset."""
        if self.domain.bbox:
            s, n, w, e = self.domain.bbox
            return (s, n), (w, e), float(self.domain.res)
        lat, lon, res = PRESETS[self.domain.preset]
        return lat, lon, (self.domain.res if self.domain.res is not None else res)

    @property
    def steps_per_day(self) -> int:
        """Model time steps per day."""
        return round(86400.0 / self.experiment.dt)

    @property
    def steps_per_analysis(self) -> int:
        """Model time steps between two analyses."""
        return round(self.analysis.interval_hours * 3600.0 / self.experiment.dt)


def input_files(cfg: Config) -> dict[str, str]:
    """Every input file the configuration names: ``section.key`` -> path (keys whose type is a file)."""
    out = {}
    for sname in SECTIONS:
        for key, value in dataclasses.asdict(getattr(cfg, sname)).items():
            if value and (key == "file" or key.endswith("_file")):
                out[f"{sname}.{key}"] = str(value)
    return out


def _all_sections() -> dict[str, tuple[type, tuple[str, ...]]]:
    return {
        **{s: (c, ()) for s, c in SECTIONS.items()},
        **{s: (c, SUPPLIED) for s, c in method_sections().items()},
    }


def _has_key(section: str, key: str) -> bool:
    sections = _all_sections()
    return section in sections and key in specs(*sections[section])


def from_dict(tree: dict[str, Any], *, source: str = "config", legacy: bool = False) -> Config:
    """Build and validate a :class:`Config` from a nested dict (missing keys take their defaults).

    ``legacy=True`` (a stored configuration of an earlier version) translates moved keys and old sentinels.

    Raises
    ------
    ConfigError
        Unknown or moved section or key (with the closest valid name or the new place), wrong type or
        invalid value; the message names ``section.key``.
    """
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a table of sections, got {type(tree).__name__}")
    tree = upgrade(tree, _has_key) if legacy else tree
    check_moved(tree, source)
    tree = _apply_world(tree)
    sections = _all_sections()
    built: dict[str, Any] = {}
    for sname, body in tree.items():
        if sname not in sections:
            if not isinstance(body, dict):
                owners = [s for s, (cls, ex) in sections.items() if sname in specs(cls, ex)]
                hint = (
                    f"; did you mean [{owners[0]}] {sname} (--set {owners[0]}.{sname}=...)?" if owners else ""
                )
                raise ConfigError(f"{source}: key {sname!r} must be inside a [section]{hint}")
            raise ConfigError(
                f"{source}: unknown section {sname!r}{suggest(sname, sections)} (valid: {', '.join(sections)})"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{sname}] must be a table, got {type(body).__name__}")
        built[sname] = build_section(*sections[sname][:1], sname, body, source, sections[sname][1])
    method = {**_default_methods(), **{s: v for s, v in built.items() if s not in SECTIONS}}
    try:
        cfg = Config(**{s: v for s, v in built.items() if s in SECTIONS}, method=method)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check_files(cfg)
    return cfg


def _apply_world(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with the keys of its ``experiment.world`` preset (:data:`WORLDS`) added where not given.

    An unknown world is left for the section check to refuse (one line naming the key and the choices).
    """
    body = tree.get("experiment")
    world = body.get("world", "default") if isinstance(body, dict) else "default"
    if not isinstance(world, str) or world not in WORLDS or not WORLDS[world]:
        return tree
    out = {s: (dict(b) if isinstance(b, dict) else b) for s, b in tree.items()}
    for full, value in WORLDS[world].items():
        section, key = full.split(".")
        if not isinstance(out.setdefault(section, {}), dict):
            continue  # a malformed section: refused later
        out[section].setdefault(key, value)
    return out


def _check_files(cfg: Config) -> None:
    for key, path in input_files(cfg).items():
        if not Path(path).exists():
            raise ConfigError(f"{key}: no such file {path!r}")
        if not Path(path).is_file():
            raise ConfigError(f"{key}: {path!r} is not a file")


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
    tree: dict[str, Any] = {}
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
    sections = _all_sections()
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in sections:
            raise ConfigError(f"--set {text}: unknown section {section!r}{suggest(section, sections)}")
        tree.setdefault(section, {})[key] = value
        source = f"{source} + --set"
    return from_dict(tree, source=source)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The configuration as a nested dict of plain TOML values (None, i.e. an omitted key, left out)."""
    out: dict[str, dict[str, Any]] = {}
    bodies = {s: getattr(cfg, s) for s in SECTIONS} | dict(cfg.method)
    for sname, obj in bodies.items():
        keys = specs(type(obj), () if sname in SECTIONS else SUPPLIED)
        values = {k: getattr(obj, k) for k in keys}
        out[sname] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if v is not None}
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
    """The configuration as TOML text (what ``--print-config`` shows; loads back to the same Config).

    Optional keys that are unset appear as comments (``# key =   (unset)``).
    """
    sections = _all_sections()
    lines = []
    for sname, body in to_dict(cfg).items():
        lines.append(f"[{sname}]")
        for key in specs(*sections[sname]):
            lines.append(f"{key} = {_toml_value(body[key])}" if key in body else f"# {key} =   (unset)")
        lines.append("")
    return "\n".join(lines)
