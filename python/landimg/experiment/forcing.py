"""Atmospheric forcing: a synthetic weather generator (truth + degraded ensemble forcing) and file readers.

The generator is a pure function of time: ``truth(t)`` and ``ensemble(t)`` give the forcing at
``t`` seconds after the experiment start (negative during spin-up), vectorised over columns, and
deterministic from the seed. That makes restarts trivial (nothing to save) and lets the same weather
be recomputed on every MPI rank.

Weather (all per column, hourly or finer):

* **rain** from moving storm systems. Storms are born per calendar day (Poisson, ``forcing.storms_per_day``
  per million km2 of the domain box, from a per-day random stream so a date's weather does not depend on
  the run length), move eastward (``storm_speed_km_h``), live ``storm_hours`` (random +-50 %) with a
  sin-shaped intensity envelope and have a truncated-Gaussian footprint
  ``max(0, exp(-d^2 / 2R^2) - 0.1) / 0.9`` of radius R ~ ``storm_radius_km``; peak intensity
  ``storm_intensity_mm_h`` (lognormal), times a climatology factor ``exp(-0.5 aridity)`` so arid regions
  are drier;
* **shortwave**: top-of-atmosphere insolation from solar geometry (declination, hour angle, eccentricity)
  times a clear-sky transmissivity 0.75 reduced by storm clouds (a 1.6x wider truncated-Gaussian footprint);
* **air temperature**: latitude-dependent annual mean + seasonal cycle (hemisphere-aware) + diurnal cycle
  peaking at 15 h local solar time (larger when arid) + eastward-travelling synoptic waves, cooled under rain;
* **humidity**: relative humidity from aridity, rain and the diurnal cycle, converted with q_sat(T, p);
* **longwave**: Brutsaert clear-sky emissivity raised by cloud, times sigma T^4;
* **pressure** and **wind**: a mild synoptic modulation around 97 kPa and 3 m/s, windier in storms.

The ensemble's forcing ("reanalysis") is the same weather with degraded rain systems: a fraction
``miss_fraction`` of storms is missed, every kept storm is displaced by a random vector of rms
``displacement_km`` per component (or, with ``displacement_scope = "field"``, the whole field by one
vector per day) and shifted by up to +-3 h, smoothed (radius x ``smoothing`` with
the rain amount conserved), biased (x ``rain_bias``) and randomly scaled (lognormal ``amount_sigma``);
spurious storms are added (``false_alarm_fraction``); regional rain biases multiply the rain by a smooth
lognormal field (log-std ``bias_field_std``, correlation length ``bias_field_km``); clouds follow the degraded storms; air
temperature has a bias ``tair_bias``. The per-member perturbations are applied later, inside the Ensemble.

On a block of columns (``columns``: a rank's world block, :mod:`landimg.experiment.world`) the generator
makes the forcing of those columns only, bitwise the whole domain's there: the storms are the domain's (a
few hundred per day, drawn on every rank), their pairs with columns are found for the block's rows only,
per-column sums over storms keep the storms' order; the static fields (aridity climatology, the rain-bias
field) are made whole once and cut. The synoptic waves' per-column sum over three waves is the one term
made for every column each hour and cut (3 x ncol multiply-adds by BLAS, whose sums over a shorter
array round differently at its vector-loop tail).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from landimg import units
from landimg.data.common import attr, check_record_span, seconds_after
from landimg.data.netcdf import NcFile
from landimg.data.reading import ALMA_QUANTITIES, packing_slack
from landimg.experiment.config import ForcingConfig
from landimg.experiment.storm_pairs import StormColumnPairs, run_columns
from landimg.grid import Grid
from landimg.random_fields import gaussian_random_field

__all__ = [
    "FORCING_KEYS",
    "FileForcing",
    "WeatherGenerator",
    "qsat",
    "solar_cos_zenith",
]

#: Forcing keys and units passed to ColumnModel.step.
FORCING_KEYS: dict[str, str] = {
    "tair": "K",
    "qair": "kg/kg",
    "psurf": "Pa",
    "precip": "kg/m2/s",
    "wind": "m/s",
    "swdown": "W/m2",
    "lwdown": "W/m2",
}

_EARTH_RADIUS_KM = 6371.0
_SOLAR_CONSTANT = 1361.0
_SIGMA = 5.670374419e-8
_STREAM_STORMS = 201
_STREAM_DEGRADE = 202
_STREAM_FALSE = 203
_STREAM_WAVES = 204
_STREAM_BIAS = 205
_STREAM_FIELD_SHIFT = 206
_CLOUD_WIDTH = 1.6  # cloud footprint radius / rain footprint radius
_CLOUD_FLOOR = 0.02  # the cloud footprint is exp(-d^2/2rc^2) - floor (zero beyond rc sqrt(2 ln 50) = 2.8 rc)
_CLOUD_REACH = 2.9  # pairs farther than this many rc apart are skipped (beyond both footprints)
_MAX_LIFE_H = 48.0


def solar_cos_zenith(lat: np.ndarray, lon: np.ndarray, doy: float, utc_hours: float) -> np.ndarray:
    """Cosine of the solar zenith angle (may be negative at night).

    Parameters
    ----------
    lat, lon : ndarray (ncol,)
        Degrees.
    doy : float
        Day of year (1 = 1 January).
    utc_hours : float
        Hour of the day, UTC.
    """
    decl = np.radians(23.44) * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0)
    hour_angle = np.radians((utc_hours + lon / 15.0 - 12.0) * 15.0)
    phi = np.radians(lat)
    return np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)


def qsat(tair: np.ndarray, psurf: np.ndarray) -> np.ndarray:
    """Saturation specific humidity (kg/kg) over water, Tetens/Bolton formula; tair K, psurf Pa."""
    tc = tair - 273.15
    es = 611.2 * np.exp(17.67 * tc / (tc + 243.5))
    return 0.622 * es / (psurf - 0.378 * es)


def _remainder_2pi(a: np.ndarray) -> np.ndarray:
    """``a % (2 pi)`` (numpy's floored remainder), bitwise, without ``np.remainder`` where one period does.

    numpy's remainder is ``fmod(a, b)``, plus ``b`` when that is negative, and ``+0.0`` when it is zero.
    For ``-b <= a < 2 b`` that is ``a`` (``0 <= a < b``), ``a - b`` (``b <= a < 2 b``: exact, as fmod is) or
    ``a + b`` (``-b <= a < 0``), each the same floating-point operation; ``+ 0.0`` turns ``-0.0`` into
    ``+0.0``. Elsewhere (and for nan, inf) ``np.remainder`` itself. ``a`` (float64) may be overwritten.
    About 10x cheaper than ``np.remainder`` (the weather's storm-column pairs, every hour).
    """
    b = 2.0 * np.pi
    out = np.add(a, 0.0)
    np.subtract(a, b, out=out, where=a >= b)
    np.add(a, b, out=out, where=a < 0.0)
    far = np.flatnonzero((a < -b) | (a >= 2.0 * b) | ~np.isfinite(a))
    if far.size:
        out[far] = np.remainder(a[far], b)
    return out


@dataclass(frozen=True)
class _Storms:
    """A catalogue of storms: arrays (n,) of birth time h, life h, lat/lon deg, velocity km/h, radius km, peak mm/h."""

    t0: np.ndarray
    life: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    u: np.ndarray
    v: np.ndarray
    radius: np.ndarray
    peak: np.ndarray

    @staticmethod
    def concat(parts: list[_Storms]) -> _Storms:
        return _Storms(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _Storms.__dataclass_fields__)
        )


class WeatherGenerator:
    """Synthetic true weather and its degraded (ensemble) version over a grid's columns.

    Parameters
    ----------
    grid : Grid
    aridity : ndarray (ncol,)
        Aridity index of the domain (see :mod:`landimg.experiment.domain`).
    cfg : ForcingConfig
    seed : int
    start : datetime.date or str
        Experiment start (t = 0), 00 UTC.
    columns : slice, optional
        The contiguous columns to make the forcing of (default all): ``truth(t)`` and ``ensemble(t)`` then
        give arrays of those columns, bitwise the whole domain's values there.
    """

    def __init__(
        self, grid: Grid, aridity: np.ndarray, cfg: ForcingConfig, seed: int, start: _dt.date | str,
        columns: slice | None = None,
    ) -> None:  # fmt: skip
        self.grid = grid
        self.cfg = cfg
        self.seed = int(seed)
        self.start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
        aridity = np.asarray(aridity, dtype=float)
        if aridity.shape != (grid.ncol,):
            raise ValueError(f"aridity must have shape ({grid.ncol},), got {aridity.shape}")
        c0, c1, step = (slice(None) if columns is None else columns).indices(grid.ncol)
        if step != 1 or c1 < c0:
            raise ValueError(f"columns must be a contiguous slice of the {grid.ncol} columns, got {columns}")
        self.columns, self.ncol = slice(c0, c1), c1 - c0
        cols = self.columns
        self.aridity = aridity[cols]
        self.lat, self.lon = grid.column_lat[cols].copy(), grid.column_lon[cols].copy()
        self._phi = np.radians(self.lat)
        self._lam = np.radians(self.lon)
        clim = np.exp(-0.5 * aridity)
        clim /= clim.mean()  # normalised over the domain
        # the reanalysis' regional rain biases: a smooth lognormal field of log-std bias_field_std
        br = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_BIAS]))
        bias = grid.to_columns(gaussian_random_field(grid, cfg.bias_field_km, br))[cols]
        self._clim = clim[cols]
        self._clim_ens = self._clim * np.exp(cfg.bias_field_std * bias - 0.5 * cfg.bias_field_std**2)
        aridity = self.aridity
        half = grid.res / 2.0
        self._box = (grid.lat[0] - half, grid.lat[-1] + half, grid.lon[0] - half, grid.lon[-1] + half)
        s, n, w, e = self._box
        area = (_EARTH_RADIUS_KM**2) * np.radians(e - w) * abs(np.sin(np.radians(n)) - np.sin(np.radians(s)))
        self._storm_rate = cfg.storms_per_day * area / 1e6  # storms per day over the domain box
        self._cache: dict[tuple[str, int], _Storms] = {}
        self._clear_sky: tuple[float, dict[str, np.ndarray]] | None = None  # last hour's cloud-free terms
        wr = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_WAVES]))
        self._waves = (
            wr.integers(3, 9, size=3),
            wr.uniform(0, 2 * np.pi, size=3),
            wr.uniform(-0.5, 0.5, size=3),
        )
        # Tair climatology (K): annual mean, seasonal amplitude, diurnal amplitude
        alat = np.abs(self.lat)
        self._tmean = 300.0 - 0.45 * np.maximum(alat - 12.0, 0.0)
        self._tseas = (2.0 + 0.32 * alat) * np.sign(self.lat + 1e-9)
        self._tdiur = 5.0 + 1.5 * np.clip(aridity, -2.0, 2.0)
        self._pairs = StormColumnPairs(grid, (c0, c1))
        self._row_phi = np.radians(grid.lat)  # self._phi is these values at the columns' rows
        # time-invariant terms of _forcing (the same operations as written there, so the same bits)
        self._rh0 = 0.55 - 0.15 * np.clip(aridity, -2, 2)
        self._sin_phi, self._cos_phi = np.sin(self._phi), np.cos(self._phi)
        self._sin_lam, self._cos_lam = np.sin(self._lam), np.cos(self._lam)
        k, ph, c = self._waves  # the waves' phase at t = 0: k lam + ph + c phi, (3, ncol): every column
        lam, phi = np.radians(grid.column_lon), np.radians(grid.column_lat)  # (their sum over waves: BLAS)
        wave0 = k[:, None] * lam[None, :] + ph[:, None] + c[:, None] * phi[None, :]
        self._sin_wave0, self._cos_wave0 = np.sin(wave0), np.cos(wave0)

    # ------------------------------------------------------------------ storms
    def _day_storms(self, kind: str, day: int) -> _Storms:
        key = (kind, day)
        if key not in self._cache:
            if len(self._cache) > 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._make_storms(kind, day)
        return self._cache[key]

    def _true_storms_of_day(self, day: int, stream: int) -> _Storms:
        c = self.cfg
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, stream, day + 1_000_000]))
        n = rng.poisson(self._storm_rate)
        s, nn, w, e = self._box
        t0 = 24.0 * day + rng.uniform(0.0, 24.0, n)
        life = np.minimum(c.storm_hours * rng.uniform(0.5, 1.5, n), _MAX_LIFE_H)
        u = c.storm_speed_km_h * (1.0 + 0.3 * rng.standard_normal(n))
        v = 0.3 * c.storm_speed_km_h * rng.standard_normal(n)
        # born anywhere in the box extended upstream (west) by half a life's travel
        margin_deg = np.degrees(0.5 * c.storm_speed_km_h * c.storm_hours / _EARTH_RADIUS_KM) / max(
            np.cos(np.radians(0.5 * (s + nn))), 0.2
        )
        lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(s)), np.sin(np.radians(nn)), n)))
        lon = rng.uniform(w - margin_deg, e, n)
        radius = c.storm_radius_km * rng.lognormal(0.0, 0.3, n)
        peak = c.storm_intensity_mm_h * rng.lognormal(-0.5 * 0.5**2, 0.5, n)
        return _Storms(t0, life, lat, lon, u, v, radius, peak)

    def _make_storms(self, kind: str, day: int) -> _Storms:
        truth = self._true_storms_of_day(day, _STREAM_STORMS)
        if kind == "truth":
            return truth
        c = self.cfg
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_DEGRADE, day + 1_000_000]))
        n = truth.t0.size
        keep = rng.random(n) >= c.miss_fraction
        dx, dy = c.displacement_km * rng.standard_normal((2, n))
        if c.displacement_scope == "field":  # displaced as a whole at evaluation time (_field_shift)
            dx, dy = np.zeros(n), np.zeros(n)
        dt = rng.uniform(-3.0, 3.0, n)
        scale = rng.lognormal(-0.5 * c.amount_sigma**2, c.amount_sigma, n)
        lat = truth.lat + np.degrees(dy / _EARTH_RADIUS_KM)
        lon = truth.lon + np.degrees(dx / _EARTH_RADIUS_KM) / np.maximum(np.cos(np.radians(truth.lat)), 0.2)
        degraded = _Storms(
            truth.t0 + dt,
            truth.life,
            lat,
            lon,
            truth.u,
            truth.v,
            truth.radius * c.smoothing,
            truth.peak * c.rain_bias * scale / c.smoothing**2,
        )
        degraded = _Storms(*(getattr(degraded, f)[keep] for f in _Storms.__dataclass_fields__))
        # spurious storms: an independent draw thinned to false_alarm_fraction of the true rate
        false = self._true_storms_of_day(day, _STREAM_FALSE)
        fr = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_FALSE, 7, day + 1_000_000]))
        sel = fr.random(false.t0.size) < c.false_alarm_fraction
        false = _Storms(*(getattr(false, f)[sel] for f in _Storms.__dataclass_fields__))
        false = _Storms(
            false.t0,
            false.life,
            false.lat,
            false.lon,
            false.u,
            false.v,
            false.radius * c.smoothing,
            false.peak * c.rain_bias / c.smoothing**2,
        )
        return _Storms.concat([degraded, false])

    def _window(self, kind: str, day: int) -> _Storms:
        """Every storm born on the days that can have storms alive during ``day`` (cached)."""
        key = (kind + "/window", day)
        if key not in self._cache:
            ndays_back = int(np.ceil((_MAX_LIFE_H + 3.0) / 24.0))
            window = _Storms.concat([self._day_storms(kind, d) for d in range(day - ndays_back, day + 1)])
            if len(self._cache) > 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = window
        return self._cache[key]

    def _active(self, kind: str, t_h: float) -> tuple[_Storms, np.ndarray]:
        st = self._window(kind, int(np.floor(t_h / 24.0)))
        age = t_h - st.t0
        on = (age >= 0.0) & (age < st.life)
        st = _Storms(*(getattr(st, f)[on] for f in _Storms.__dataclass_fields__))
        return st, age[on]

    def _field_shift(self, kind: str, t_h: float) -> tuple[float, float]:
        """(east, north) km of the whole ensemble rain field at hour ``t_h`` with ``displacement_scope =
        "field"``: one vector of rms ``displacement_km`` per direction per day (keyed by the day); else 0."""
        if kind == "truth" or self.cfg.displacement_scope != "field":
            return 0.0, 0.0
        day = int(np.floor(t_h / 24.0))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_FIELD_SHIFT, day + 1_000_000]))
        dx, dy = self.cfg.displacement_km * rng.standard_normal(2)
        return float(dx), float(dy)

    def _rain_and_cloud(self, kind: str, t_h: float) -> tuple[np.ndarray, np.ndarray]:
        """Rain rate (mm/h) and cloud fraction (0..1) per column at hour t_h."""
        st, age = self._active(kind, t_h)
        ncol = self.ncol
        if st.t0.size == 0:
            return np.zeros(ncol), np.zeros(ncol)
        # storm centre now: moved by (u, v) km/h during `age` hours (and the day's field shift)
        sx, sy = self._field_shift(kind, t_h)
        clat = st.lat + np.degrees((st.v * age + sy) / _EARTH_RADIUS_KM)
        clon = st.lon + np.degrees((st.u * age + sx) / _EARTH_RADIUS_KM) / np.maximum(
            np.cos(np.radians(st.lat)), 0.2
        )
        # storm-column pairs within reach: a storm-major superset from the image as runs of consecutive
        # columns of one row (storm_pairs), then the exact test. Every term is elementwise, so a term that is
        # the same along a run (the row's latitude with the storm's) or per storm is computed once there and
        # gathered after: the same operations on the same values as per pair, the same bits.
        rc = _CLOUD_WIDTH * st.radius  # cloud footprint radius parameter, km
        p0_s, l0_s = np.radians(clat), np.radians(clon)
        rs, row, first, count = self._pairs.runs(p0_s, l0_s, _CLOUD_REACH * rc / _EARTH_RADIUS_KM)
        run = np.repeat(np.arange(rs.size), count)  # the run of every candidate pair
        ci = run_columns(first, count)
        phi, p0 = self._row_phi[row], p0_s[rs]  # per run: phi = self._phi[ci] of its columns
        dphi2, cos_mid = (phi - p0) ** 2, np.cos(0.5 * (phi + p0))
        dlam = self._lam[ci] - l0_s[rs][run]
        dlam += np.pi
        dlam = _remainder_2pi(dlam)  # (lam - l0 + pi) % 2 pi - pi: wrapped to [-pi, pi)
        dlam -= np.pi
        # local equirectangular distance (accurate to < 1 % within the ~2,000 km footprints)
        dlam *= cos_mid[run]
        dlam **= 2
        d2 = dphi2[run]
        d2 += dlam
        d2 *= _EARTH_RADIUS_KM**2  # km^2
        near = np.flatnonzero(d2 < ((_CLOUD_REACH * rc) ** 2)[rs][run])
        si, ci, d2 = rs[run[near]], ci[near], d2[near]
        d2 = np.negative(d2, out=d2)
        g = np.exp(d2 / (2.0 * st.radius**2)[si])
        envelope = np.sin(np.pi * age / st.life)
        g -= 0.1
        amount = np.maximum(g, 0.0, out=g)
        amount *= (st.peak * envelope)[si]
        amount /= 0.9
        rain = np.bincount(ci, weights=amount, minlength=ncol) * (
            self._clim if kind == "truth" else self._clim_ens
        )
        # cloud cover: compact truncated Gaussian of radius parameter rc, combined as 1 - prod(1 - 0.9 gc)
        gc = np.exp(np.divide(d2, (2.0 * rc**2)[si], out=d2))
        gc -= _CLOUD_FLOOR
        gc = np.maximum(gc, 0.0, out=gc)
        gc /= 1.0 - _CLOUD_FLOOR
        gc *= np.minimum(1.0, 2.0 * envelope)[si]
        gc *= -0.9
        cloud = 1.0 - np.exp(np.bincount(ci, weights=np.log1p(gc, out=gc), minlength=ncol))
        return rain, cloud

    # ------------------------------------------------------------------ public
    def _forcing(self, kind: str, t: float) -> dict[str, np.ndarray]:
        t_h = t / 3600.0
        when = _dt.datetime.combine(self.start, _dt.time()) + _dt.timedelta(hours=t_h)
        doy = when.timetuple().tm_yday + (when.hour + when.minute / 60.0) / 24.0
        utc = when.hour + when.minute / 60.0 + when.second / 3600.0
        rain, cloud = self._rain_and_cloud(kind, t_h)
        c = self._cloud_free_terms(t_h, doy, utc)
        seasonal, cos_lst, synoptic, toa = c["seasonal"], c["cos_lst"], c["synoptic"], c["toa"]
        diurnal = self._tdiur * (1.0 - 0.6 * cloud) * cos_lst
        tair = self._tmean + seasonal + diurnal + 2.5 * synoptic - 2.0 * np.minimum(rain / 2.0, 1.0)
        if kind == "ensemble":
            tair = tair + self.cfg.tair_bias
        psurf = 97000.0 + 600.0 * synoptic - 300.0 * cloud
        rh = np.clip(self._rh0 + 0.35 * cloud - 0.12 * cos_lst, 0.08, 1.0)
        qair = rh * qsat(tair, psurf)
        wind = 3.0 + 0.8 * synoptic + 3.0 * cloud
        swdown = toa * 0.75 * (1.0 - 0.65 * cloud)
        e_hpa = qair * psurf / (0.622 + 0.378 * qair) / 100.0
        eps_clear = 1.24 * (e_hpa / tair) ** (1.0 / 7.0)
        eps = np.minimum(eps_clear + (1.0 - eps_clear) * 0.8 * cloud, 1.0)
        lwdown = eps * _SIGMA * tair**4
        return {
            "tair": tair,
            "qair": qair,
            "psurf": psurf,
            "precip": rain / 3600.0,  # mm/h -> kg/m2/s
            "wind": np.maximum(wind, 0.5),
            "swdown": swdown,
            "lwdown": lwdown,
        }

    def _cloud_free_terms(self, t_h: float, doy: float, utc: float) -> dict[str, np.ndarray]:
        """The terms of hour ``t_h`` that do not depend on the storms: the same for truth and ensemble.

        Computed once per hour and kept (truth and ensemble ask for the same hour in turn): same bits.
        Equal to the direct formulas (``solar_cos_zenith``, the waves' sines) to round-off
        (``tests/test_forcing.py``).
        """
        if self._clear_sky is not None and self._clear_sky[0] == t_h:
            return self._clear_sky[1]
        # Every term is cos or sin of (a time-only angle + a column-only angle): by the angle-addition
        # formulas, a few scalar sines per hour times per-column sines computed once (no per-column trig).
        # synoptic waves sin(k (lam - 2 pi 0.12 t / 24) + ph + c phi) = sin(wave0 - k 2 pi 0.12 t / 24)
        shift = self._waves[0] * (2.0 * np.pi * 0.12 * t_h / 24.0)
        synoptic = (np.cos(shift) @ self._sin_wave0 - np.sin(shift) @ self._cos_wave0)[self.columns]
        # local solar time: 2 pi (lst - 15) / 24 = 2 pi (utc - 15) / 24 + lam, lst = utc + lon / 15 (mod 24)
        a = 2.0 * np.pi * (utc - 15.0) / 24.0
        cos_lst = np.cos(a) * self._cos_lam - np.sin(a) * self._sin_lam
        # solar_cos_zenith(self.lat, self.lon, doy, utc): hour angle = 15 (utc - 12) degrees + lam
        decl = np.radians(23.44) * np.sin(2.0 * np.pi * (284.0 + doy) / 365.0)
        h = np.radians(15.0 * (utc - 12.0))
        cos_hour = np.cos(h) * self._cos_lam - np.sin(h) * self._sin_lam
        cosz = self._sin_phi * np.sin(decl) + self._cos_phi * np.cos(decl) * cos_hour
        terms = {
            "seasonal": self._tseas * np.cos(2.0 * np.pi * (doy - 200.0) / 365.0),
            "cos_lst": cos_lst,
            "synoptic": synoptic / np.sqrt(1.5),  # ~unit variance
            "toa": _SOLAR_CONSTANT
            * (1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0))
            * np.maximum(cosz, 0.0),
        }
        self._clear_sky = (t_h, terms)
        return terms

    def truth(self, t: float) -> dict[str, np.ndarray]:
        """True forcing at ``t`` seconds after the experiment start: dict of (ncol,) arrays (FORCING_KEYS units;
        ncol: the columns made)."""
        return self._forcing("truth", t)

    def ensemble(self, t: float) -> dict[str, np.ndarray]:
        """The ensemble's degraded (unperturbed) forcing at ``t`` seconds after the start, same layout as truth."""
        return self._forcing("ensemble", t)


# ALMA / PLUMBER2 variable names in files -> landimg keys
_ALMA = {
    "Tair": "tair",
    "Qair": "qair",
    "PSurf": "psurf",
    "Wind": "wind",
    "SWdown": "swdown",
    "LWdown": "lwdown",
}


_UNITS: dict[str, units.Quantity] = ALMA_QUANTITIES
_HINTS = {
    "Tair": ': degrees Celsius without units = "degC"?',
    "Rainf": ": mm/h or mm/day without a units attribute?",
    "Snowf": ": mm/h or mm/day without a units attribute?",
    "PSurf": ': hPa without units = "hPa"?',
    "Qair": ': g/kg without units = "g kg-1"?',
}


class FileForcing:
    """Forcing read from a CF-netCDF file (ALMA names), held constant over each record.

    The file has a time coordinate (CF units such as ``hours since 2021-05-01 00:00``), latitude and
    longitude coordinates, and variables on (time, lat, lon) in any order (dimensions are found by name;
    latitudes ascending or descending, longitudes -180..180 or 0..360): ``Tair`` (K), ``Qair`` (kg/kg),
    ``PSurf`` (Pa), ``Rainf`` (kg/m2/s; ``Snowf`` is added when present), ``Wind`` (m/s) (or
    ``Wind_E``/``Wind_N``), ``SWdown`` and ``LWdown`` (W/m2). Grid cells are matched by nearest neighbour.
    Each variable's ``units`` attribute is read and converted with pint (:mod:`landimg.units`: e.g. degC,
    hPa, g kg-1, mm h-1), or refused when not convertible; without the attribute the units above are assumed.

    Parameters
    ----------
    path : str
    grid : Grid
    start : date or str
        Experiment start (t = 0 s).
    columns : slice, optional
        The contiguous columns to read (a rank's world block; default all): only the file's rows and
        columns they use are read, and :meth:`check_values` checks them.
    """

    def __init__(self, path: str, grid: Grid, start: _dt.date | str, columns: slice | None = None) -> None:
        self.path = path
        self.grid = grid
        self.columns = slice(*(slice(None) if columns is None else columns).indices(grid.ncol)[:2])
        self._src = NcFile(path, what="forcing file")
        try:
            self._open(grid, start)
        except Exception:
            self._src.close()
            raise

    def _open(self, grid: Grid, start: _dt.date | str) -> None:
        ds, layout, path = self._src.ds, self._src.layout(), self.path
        missing = [v for v in ("Tair", "Qair", "PSurf", "Rainf", "SWdown", "LWdown") if v not in ds.variables]
        if "Wind" not in ds.variables and not {"Wind_E", "Wind_N"} <= set(ds.variables):
            missing.append("Wind")
        if missing:
            raise ValueError(f"{path}: missing forcing variables {missing}")
        self._names = [name for name in _UNITS if name in ds.variables]
        for name in self._names:
            layout.dims(name, ("time", "lat", "lon"))
        self._conv = {
            name: _UNITS[name].conversion(attr(ds[name], "units"), f"{path}: {name}") for name in self._names
        }
        self._slack = {name: packing_slack(ds[name], self._conv[name]) for name in self._names}
        tname = layout.coord("time")
        self.times = seconds_after(ds[tname], start, str(path), tname)
        if self.times.size == 0 or np.any(np.diff(self.times) <= 0):
            raise ValueError(f"{path}: time must be non-empty and strictly increasing")
        row_index, col_index = grid.nearest_file_indices(
            layout.coord_values("lat"), layout.coord_values("lon"), source=str(path)
        )
        rows, cols = np.unravel_index(grid.column_index[self.columns], grid.shape)
        iy, ix = row_index[rows], col_index[cols]
        # read only the file's rows and columns the grid (the block) uses
        self._window = {
            "lat": slice(int(iy.min()), int(iy.max()) + 1),
            "lon": slice(int(ix.min()), int(ix.max()) + 1),
        }
        self._iy, self._ix = iy - iy.min(), ix - ix.min()
        self._last: dict[
            str, tuple[int, np.ndarray]
        ] = {}  # name -> the record read last (steps share records)

    def _read(self, name: str, rec: int, clip: bool = True) -> np.ndarray:
        """Record ``rec`` of ``name`` at the grid's columns (ncol,) in landimg's unit; a CF-packed variable's
        values (a decoded zero may lie a packing step outside the range) clipped to the range unless ``clip``
        is False."""
        last = self._last.get(name)
        if last is not None and last[0] == rec:
            values = last[1]
        else:
            data = self._src.layout().read(name, ("time", "lat", "lon"), {"time": rec, **self._window})
            values = self._conv[name].apply(data[self._iy, self._ix])
            self._last[name] = (rec, values)
        if clip and self._slack[name]:
            values = np.clip(values, _UNITS[name].low, _UNITS[name].high)
        return values

    def check_values(self, t_first: float, t_last: float) -> None:
        """Read every record the run uses (``t_first .. t_last`` s) and refuse missing, infinite or
        implausible values (after unit conversion) with one line naming file, variable and record."""
        first = max(int(np.searchsorted(self.times, t_first, side="right")) - 1, 0)
        last = int(np.searchsorted(self.times, t_last, side="right"))
        for name in self._names:
            q, declared = _UNITS[name], attr(self._src.ds[name], "units")
            for rec in range(first, min(last, self.times.size)):
                v = self._read(name, rec, clip=False)
                where = f"{self.path}: {name} record {rec}"
                q.check(v, where, declared or q.default, hint=_HINTS.get(name, ""), slack=self._slack[name])
                if np.isnan(v).any():
                    raise ValueError(f"{where}: missing values at {int(np.isnan(v).sum())} land cells")

    def __call__(self, t: float) -> dict[str, np.ndarray]:
        """Forcing at ``t`` seconds after the start: the last record at or before t; dict of (ncol,) arrays."""
        rec = int(np.searchsorted(self.times, t, side="right")) - 1
        if rec < 0 or t > self.times[-1] + (self.times[-1] - self.times[-2] if self.times.size > 1 else 0):
            raise ValueError(f"{self.path}: no record covers t = {t} s after the start")
        out = {key: self._read(name, rec) for name, key in _ALMA.items() if name in self._names}
        if "wind" not in out:
            out["wind"] = np.hypot(self._read("Wind_E", rec), self._read("Wind_N", rec))
        precip = self._read("Rainf", rec)
        if "Snowf" in self._names:
            precip = precip + self._read("Snowf", rec)
        out["precip"] = precip
        for key, v in out.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{self.path}: missing {key} values at land cells in record {rec}")
        if np.any(out["precip"] < 0.0):
            raise ValueError(
                f"{self.path}: Rainf (+ Snowf) is negative at {int((out['precip'] < 0).sum())} land cells in "
                f"record {rec} (min {out['precip'].min():g} kg/m2/s)"
            )
        return out

    def check_covers(self, t_first: float, t_last: float) -> None:
        """Raise ValueError, naming both spans, unless records cover ``t_first .. t_last`` s after the start."""
        note = " (spin-up included: negative hours are before experiment.start)"
        check_record_span(self.times, t_first, t_last, str(self.path), "the experiment start", note)

    def close(self) -> None:
        """Close the netCDF file."""
        self._src.close()
