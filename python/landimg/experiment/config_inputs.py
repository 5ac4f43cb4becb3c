"""Configuration sections of the experiment's inputs: ``[forcing]``, ``[obs]``, ``[reference]``, ``[stations]``.

The synthetic generators' settings and the user files or distributed products that replace them. Part of
:mod:`landimg.experiment.config`, which re-exports every name here and lists the sections in
:data:`landimg.experiment.config.SECTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from landimg.experiment.settings import setting

__all__ = ["ForcingConfig", "ObsConfig", "ReferenceConfig", "StationsConfig"]


@dataclass(frozen=True)
class ForcingConfig:
    """Synthetic weather generator (truth) and its degradation (the ensemble's reanalysis-like forcing)."""

    true_file: str | None = setting(
        None,
        "Forcing file for the nature run (ALMA names, [data.md](data.md)); omitted: the synthetic true weather.",
    )
    ensemble_file: str | None = setting(
        None,
        "Forcing file for the ensemble (before member perturbations); omitted: the degraded synthetic weather.",
    )
    product: str | None = setting(
        None,
        "Forcing product read as distributed (`gldas_forcing`, `era5`, `era5land_forcing`, `cmfd`, `alma`; [data.md](data.md)) driving the nature run and the ensemble; needs `files`.",
    )
    files: str | None = setting(None, "Glob pattern of the forcing product's files.")
    storms_per_day: float = setting(0.5, "Storm births per day per million km2 of the domain box.", gt=0)
    storm_radius_km: float = setting(
        150.0, "Typical Gaussian radius of a storm's rain footprint, km (lognormal, 30 %).", gt=0
    )
    storm_intensity_mm_h: float = setting(3.0, "Mean peak rain rate, mm/h (lognormal, 50 %).", gt=0)
    storm_speed_km_h: float = setting(35.0, "Mean eastward storm speed, km/h.", ge=0)
    storm_hours: float = setting(24.0, "Mean storm life, hours (uniform 0.5-1.5x, at most 48 h).", gt=0)
    displacement_km: float = setting(
        500.0, "Ensemble forcing: rms displacement per direction of each storm (or of the whole field), km.", ge=0
    )
    displacement_scope: str = setting(
        "storm",
        "Ensemble forcing: `storm` = every storm displaced by its own random vector (storms far apart move "
        "independently); `field` = the whole rain (and cloud) field displaced by one vector per day (the "
        "reanalysis' weather systems misplaced together).",
        choices=("storm", "field"),
    )
    smoothing: float = setting(
        1.6, "Ensemble forcing: storm radius factor (1 = no smoothing; rain amount conserved).", ge=1
    )
    rain_bias: float = setting(0.85, "Ensemble forcing: multiplicative rain bias.", gt=0)
    amount_sigma: float = setting(0.5, "Ensemble forcing: per-storm lognormal amount error.", ge=0)
    miss_fraction: float = setting(0.3, "Ensemble forcing: fraction of true storms missed.", ge=0, lt=1)
    false_alarm_fraction: float = setting(
        0.3, "Ensemble forcing: spurious storms, as a fraction of the true storm rate.", ge=0, lt=1
    )
    tair_bias: float = setting(0.5, "Ensemble forcing: air-temperature bias, K.")
    bias_field_std: float = setting(
        0.9, "Ensemble forcing: log-standard deviation of a smooth regional rain-bias field.", ge=0
    )
    bias_field_km: float = setting(800.0, "Correlation length of that field, km.", gt=0)


@dataclass(frozen=True)
class ObsConfig:
    """Synthetic satellite observations and verification stations, or user files."""

    error_std: float = setting(
        0.04,
        "Retrieval error standard deviation, m3/m3: the declared observation error (the synthetic retrievals "
        "are drawn from it, and it is what the experiment passes to the methods).",
        gt=0,
    )
    white_fraction: float = setting(
        0.5,
        "Fraction of the error variance that is white (per pixel; a product's `sm_error` sets the white "
        "part's std where given); the rest is a spatially correlated field of unit variance at every cell.",
        ge=0,
        le=1,
    )
    corr_length_km: float = setting(
        200.0, "Correlation length of the correlated error part, km (correlation e^-1 at this distance).", gt=0
    )
    memory_days: float = setting(
        0.0,
        "E-folding time of the correlated error part between analyses, days: AR(1) with coefficient "
        "exp(-interval / memory_days); 0 = redrawn at each analysis. Its state is in the restart.",
        ge=0,
    )
    revisit_days: float = setting(
        2.5, "Each cell is observed once every this many days (2 or 3 for 2.5).", ge=1
    )
    swath_period_deg: float = setting(25.0, "Spacing of the swath stripes, degrees of longitude.", gt=0)
    stations: int = setting(50, "Number of synthetic verification stations (random land cells).", ge=0)
    station_error_std: float = setting(0.02, "Daily point-scale noise of station readings, m3/m3.", ge=0)
    station_bias_std: float = setting(
        0.02, "Standard deviation of each station's constant point-scale bias, m3/m3.", ge=0
    )
    file: str | None = setting(
        None, "Gridded retrievals to assimilate instead of the synthetic ones ([data.md](data.md))."
    )
    stations_file: str | None = setting(
        None, "Station readings to verify against instead of the synthetic stations."
    )
    product: str | None = setting(
        None,
        "Retrieval product read as distributed (`spl3smp`, `spl3smp_e`, `esacci`, `gridded`; [data.md](data.md)): each record enters the analysis whose window holds its time; needs `files`.",
    )
    files: str | None = setting(None, "Glob pattern of the retrieval product's files.")
    cdf_match: bool = setting(
        False,
        "Rescale the product's retrievals to the open loop's climatology (CDF matching over the spin-up).",
    )


@dataclass(frozen=True)
class ReferenceConfig:
    """A reference soil-moisture product whose spatial metrics replace the nature run's."""

    product: str | None = setting(
        None, "Reference product (`gldas`, `era5land`; [data.md](data.md)); needs `files`."
    )
    files: str | None = setting(None, "Glob pattern of the reference product's files.")


@dataclass(frozen=True)
class StationsConfig:
    """In-situ stations read as distributed (replace the synthetic stations and `obs.stations_file`)."""

    product: str | None = setting(None, "Station product: `ismn`; needs `files`.", choices=("ismn",))
    files: str | None = setting(None, "ISMN download: a directory or a .zip.")
    depth_top: float = setting(0.0, "Top of the station layer, m (sensors overlapping it are used).", ge=0)
    depth_bottom: float = setting(0.1, "Bottom of the station layer, m.", gt=0)
