"""Observations: synthetic satellite retrievals and verification stations drawn from the nature run,
and readers for users' observation files.

Satellite (SMAP/SMOS-like), once per analysis time:

* value = nature run's soil moisture of the observed layer (0 - ``analysis.obs_depth`` m) + error;
  the error has standard deviation ``obs.error_std``, a fraction ``obs.white_fraction`` of its variance
  white and the rest a Gaussian random field of correlation length ``obs.corr_length_km``
  (retrieval errors are spatially correlated through the ancillary data), AR(1) between analyses with
  e-folding time ``obs.memory_days`` (0: redrawn at each analysis); values are clipped at 0;
* gaps: descending swaths are stripes tilted 12 degrees from north, ``obs.swath_period_deg`` apart; the
  pattern shifts each day so that each cell is seen once every ``obs.revisit_days`` days (2 or 3 days
  for the default 2.5); no retrieval over frozen or snow-covered ground; NaN marks missing.

Stations: ``obs.stations`` land cells chosen at random (deterministic from the seed); each reports the
nature run's 0-10 cm soil moisture daily with a constant point-scale bias (``obs.station_bias_std``)
and white noise (``obs.station_error_std``); they are used only for verification.

Both work on a block of columns (a rank's world block, :mod:`landimg.experiment.world`): the retrievals
and the station readings of the block's columns, bitwise the whole domain's there (the random errors are
drawn for the whole domain, from streams keyed by the seed and the time, and cut).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from landimg import units
from landimg.data.common import StationReadings, seconds_after
from landimg.data.netcdf import NcFile
from landimg.data.reading import to_unit
from landimg.experiment.config import ObsConfig
from landimg.grid import Grid
from landimg.random_fields import GaussianFieldGenerator

__all__ = ["FileObservations", "FileStations", "SatelliteObserver", "Stations", "read_stations_file"]

_STREAM_OBS = 301
_STREAM_STATIONS = 302
_SWATH_TILT_DEG = 12.0


class SatelliteObserver:
    """Synthetic satellite soil-moisture retrievals of a truth field.

    The retrieval error of analysis ``k`` is ``error_std (sqrt(w) z_white,k + sqrt(1 - w) z_corr,k)`` (``w =
    obs.white_fraction``) with unit-variance white noise and a unit-variance Gaussian random field of
    correlation length ``obs.corr_length_km`` (:class:`landimg.random_fields.GaussianFieldGenerator`,
    spectral: exact unit variance at every cell, never re-standardised over the image). The correlated
    part is AR(1) between analyses with e-folding time ``obs.memory_days``:
    ``z_corr,k = a z_corr,k-1 + sqrt(1 - a^2) eta_k``, ``a = exp(-interval_days / memory_days)``,
    ``z_corr,0 = eta_0`` (stationary from the first analysis); ``memory_days = 0`` redraws it at each
    analysis (``a = 0``). The draws ``z_white,k`` and ``eta_k`` come from a stream keyed by (seed,
    analysis index ``k``) only, never by rank; the AR state (the last correlated field and its index) is
    :meth:`get_state` / :meth:`set_state` for the restart.

    Parameters
    ----------
    grid : Grid
    cfg : ObsConfig
    seed : int
    interval_days : float
        Time between two analyses (two error draws), days.
    columns : slice, optional
        The contiguous columns observed by :meth:`observe_columns` (default all).
    """

    def __init__(
        self, grid: Grid, cfg: ObsConfig, seed: int, interval_days: float = 1.0, columns: slice | None = None
    ) -> None:
        self.grid = grid
        self.cfg = cfg
        self.seed = int(seed)
        self.interval_days = float(interval_days)
        self.columns = slice(*(slice(None) if columns is None else columns).indices(grid.ncol)[:2])
        self._track_columns = self._along_track(grid.column_index[self.columns])
        self._fields = GaussianFieldGenerator(grid.shape, grid.cell_size_km(), cfg.corr_length_km,
                                              grid.periodic_lon)  # fmt: skip
        self._ar: tuple[int, np.ndarray] | None = None  # (index, z_corr) of the last correlated field

    @property
    def ar_coefficient(self) -> float:
        """``a = exp(-interval_days / memory_days)`` of the correlated part (0 with ``memory_days = 0``)."""
        m = self.cfg.memory_days
        return float(np.exp(-self.interval_days / m)) if m > 0 else 0.0

    def _along_track(self, flat: np.ndarray) -> np.ndarray:
        """Along-track coordinate (deg) of the cells of flat image indices ``flat``."""
        iy, ix = np.unravel_index(flat, self.grid.shape)
        return self.grid.lon[ix] - np.tan(np.radians(_SWATH_TILT_DEG)) * self.grid.lat[iy]

    def _seen(self, track: np.ndarray, day: float, window_days: float) -> np.ndarray:
        c = self.cfg
        phase = (track / c.swath_period_deg - day / c.revisit_days) % 1.0
        return phase < min(window_days / c.revisit_days, 1.0)

    def swath_mask(self, day: float, window_days: float = 1.0) -> np.ndarray:
        """Cells seen by the swaths during [day, day + window_days), bool (ny, nx).

        Each cell is seen once every ``revisit_days`` days (the pattern moves continuously in time).
        """
        track = self._along_track(np.arange(self.grid.shape[0] * self.grid.shape[1])).reshape(self.grid.shape)
        return self._seen(track, day, window_days)

    def _draws(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(white noise, correlated innovation eta) of analysis ``index``, unit variance, (ny, nx) each."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_OBS, int(index) + 1_000_000]))
        white = rng.standard_normal(self.grid.shape)
        return white, self._fields.draw([rng], 1)[0, 0]

    def correlated_part(self, index: int) -> np.ndarray:
        """The unit-variance correlated field ``z_corr`` of analysis ``index`` (ny, nx).

        The next index steps the AR(1) from the kept state; the same index returns the kept field; any other
        index (a first call, a jump) runs the chain from index 0, so the field depends only on (seed, index).
        """
        index = int(index)
        if index < 0:
            raise ValueError(f"observation index must be >= 0, got {index}")
        a = self.ar_coefficient
        if self._ar is not None and self._ar[0] == index:
            return self._ar[1]
        if a == 0.0:
            z = self._draws(index)[1]
        else:
            k, z = (self._ar[0], self._ar[1]) if self._ar is not None and self._ar[0] == index - 1 else (-1, None)
            for j in range(k + 1, index + 1):
                eta = self._draws(j)[1]
                z = eta if z is None else a * z + np.sqrt(1.0 - a * a) * eta
        self._ar = (index, z)
        return z

    def error(self, index: int) -> np.ndarray:
        """Retrieval error image (ny, nx), m3/m3, of observation time ``index``: white + correlated parts."""
        c = self.cfg
        white = self._draws(index)[0]
        corr = self.correlated_part(index)
        return c.error_std * (np.sqrt(c.white_fraction) * white + np.sqrt(1.0 - c.white_fraction) * corr)

    def get_state(self) -> dict[str, np.ndarray]:
        """The AR(1) state for a restart: ``{"index": int, "field": (ny, nx)}``, or ``{}`` before any draw."""
        if self._ar is None:
            return {}
        return {"index": np.asarray(self._ar[0], dtype=np.int64), "field": self._ar[1].copy()}

    def set_state(self, state: dict[str, np.ndarray] | None) -> None:
        """Restore :meth:`get_state` (``{}`` or None: no state; the chain is then rerun from index 0)."""
        if not state:
            self._ar = None
            return
        field = np.asarray(state["field"], dtype=np.float64)
        if field.shape != self.grid.shape:
            raise ValueError(f"observation-error state has shape {field.shape}, expected {self.grid.shape}")
        self._ar = (int(state["index"]), field.copy())

    def observe(
        self,
        truth: np.ndarray,
        day: float,
        unobservable: np.ndarray | None = None,
        *,
        window_days: float = 1.0,
        index: int | None = None,
    ) -> np.ndarray:
        """Retrievals of ``truth`` on ``day``.

        Parameters
        ----------
        truth : ndarray (ny, nx)
            True soil moisture of the observed layer, m3/m3 (NaN off land).
        day : float
            Start of the observation window, days since the experiment start (sets the swaths).
        unobservable : ndarray of bool (ny, nx), optional
            Frozen or snow-covered cells (no retrieval).
        window_days : float
            Length of the observation window (the analysis interval), days.
        index : int, optional
            Observation-time index for the error draw (default ``int(day)``).

        Returns
        -------
        ndarray (ny, nx)
            Observed soil moisture, NaN where missing (off land, outside swaths, frozen/snow).
        """
        truth = np.asarray(truth, dtype=float)
        if truth.shape != self.grid.shape:
            raise ValueError(f"truth must have shape {self.grid.shape}, got {truth.shape}")
        if (self.columns.start, self.columns.stop) != (0, self.grid.ncol):
            raise ValueError("observe takes images: use observe_columns on an observer of a block of columns")
        g = self.grid
        masked = None if unobservable is None else g.to_columns(np.asarray(unobservable, dtype=bool))
        y = self.observe_columns(g.to_columns(truth), day, masked, window_days=window_days, index=index)
        return g.to_image(y)

    def observe_columns(
        self,
        truth: np.ndarray,
        day: float,
        unobservable: np.ndarray | None = None,
        *,
        window_days: float = 1.0,
        index: int | None = None,
    ) -> np.ndarray:
        """Retrievals of the observer's columns (:meth:`observe` per column: the same values there).

        Parameters
        ----------
        truth : ndarray (ncol,)
            True soil moisture of the observed layer at the observer's columns, m3/m3.
        day, window_days, index
            As in :meth:`observe`.
        unobservable : ndarray of bool (ncol,), optional
            Frozen or snow-covered columns.

        Returns
        -------
        ndarray (ncol,)
            Observed soil moisture, NaN where missing.
        """
        truth = np.asarray(truth, dtype=float)
        if truth.shape != self._track_columns.shape:
            raise ValueError(f"truth must have shape {self._track_columns.shape}, got {truth.shape}")
        ok = self._seen(self._track_columns, day, window_days) & np.isfinite(truth)
        if unobservable is not None:
            ok &= ~np.asarray(unobservable, dtype=bool)
        error = self.error(int(day) if index is None else index)  # drawn whole, then the block's columns
        y = np.maximum(truth + error.reshape(-1)[self.grid.column_index[self.columns]], 0.0)
        return np.where(ok, y, np.nan)


class Stations:
    """Verification stations at grid cells with point-scale noise.

    Parameters
    ----------
    grid : Grid
    cfg : ObsConfig
    seed : int

    Attributes
    ----------
    columns : ndarray of int (nstation,)
        Column index of each station (sorted).
    bias : ndarray (nstation,)
        Each station's constant point-scale bias, m3/m3.
    """

    def __init__(self, grid: Grid, cfg: ObsConfig, seed: int) -> None:
        self.grid = grid
        self.cfg = cfg
        self.seed = int(seed)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_STATIONS]))
        n = min(cfg.stations, grid.ncol)
        self.columns = np.sort(rng.choice(grid.ncol, size=n, replace=False))
        self.bias = cfg.station_bias_std * rng.standard_normal(n)

    @property
    def n(self) -> int:
        """Number of stations."""
        return int(self.columns.size)

    def latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Station latitudes and longitudes, degrees, (nstation,) each."""
        lat, lon = self.grid.column_latlon()
        return lat[self.columns], lon[self.columns]

    def observe(self, truth_columns: np.ndarray, day: int, columns: slice | None = None) -> np.ndarray:
        """Station readings (nstation,) of the truth's 0-10 cm soil moisture given per column (ncol,).

        ``columns`` (a contiguous slice): ``truth_columns`` holds only those columns, and the readings of
        the stations there are returned (in station order; the noise of every station is drawn and cut).
        """
        truth_columns = np.asarray(truth_columns, dtype=float)
        c0, c1 = (slice(None) if columns is None else columns).indices(self.grid.ncol)[:2]
        if truth_columns.shape != (c1 - c0,):
            raise ValueError(f"truth_columns must have shape ({c1 - c0},), got {truth_columns.shape}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _STREAM_STATIONS, day + 1_000_000]))
        noise = self.cfg.station_error_std * rng.standard_normal(self.n)
        here = (self.columns >= c0) & (self.columns < c1)
        return np.maximum(truth_columns[self.columns[here] - c0] + self.bias[here] + noise[here], 0.0)


_PERCENT_HINT = ": percent without units = \"%\", or undeclared fill values (set _FillValue)?"


class FileObservations:
    """Gridded soil-moisture retrievals from a CF-netCDF file, one image per day.

    The file has a time coordinate (CF units, e.g. ``days since 2021-05-01``), latitude and longitude
    coordinates and a variable ``sm`` (time, lat, lon, in any order: dimensions are found by name;
    latitudes ascending or descending, longitudes -180..180 or 0..360) in m3/m3 or percent (its ``units``
    attribute; missing: NaN or ``_FillValue``); optionally ``sm_error`` (same dimensions) in the same
    units, > 0 where ``sm`` is given. Values are sampled at the grid's cell centres (nearest neighbour);
    the record of a day is the one whose time falls in that day.
    """

    def __init__(self, path: str, grid: Grid, start: _dt.date | str) -> None:
        self.path, self.grid = path, grid
        self._src = NcFile(path, what="observation file")
        try:
            layout = self._src.layout()
            layout.dims("sm", ("time", "lat", "lon"))
            tname = layout.coord("time")
            seconds = seconds_after(self._src.ds[tname], start, str(path), tname)
            self.days = np.floor(seconds / 86400.0).astype(int)
            self._iy, self._ix = grid.nearest_file_indices(
                layout.coord_values("lat"), layout.coord_values("lon"), source=str(path)
            )
        except Exception:
            self._src.close()
            raise

    def _sample(self, name: str, rec: int) -> np.ndarray:
        data = self._src.layout().read(name, ("time", "lat", "lon"), {"time": rec})
        out = np.where(self.grid.land, data[np.ix_(self._iy, self._ix)], np.nan)
        q = units.SOIL_MOISTURE if name == "sm" else units.SOIL_MOISTURE_ERROR
        hint = _PERCENT_HINT if name == "sm" else ""
        return to_unit(self._src.ds[name], out, q, f"{self.path}: {name} record {rec}", hint=hint)

    def observe(self, day: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(sm image (ny, nx) with NaN for missing, error-std image or None) of ``day``; all NaN if no record."""
        hit = np.flatnonzero(self.days == day)
        if hit.size == 0:
            return np.full(self.grid.shape, np.nan), None
        rec = int(hit[0])
        sm = self._sample("sm", rec)
        err = self._sample("sm_error", rec) if "sm_error" in self._src.ds.variables else None
        if err is not None and np.any(np.isfinite(sm) & ~(err > 0.0)):
            raise ValueError(f"{self.path}: sm_error record {rec} must be given (positive) where sm is given")
        return sm, err

    def check_values(self, ndays: int) -> None:
        """Read every record of the run's ``ndays`` days and refuse bad units or values (one line)."""
        for day in np.unique(self.days[(self.days >= 0) & (self.days < ndays)]):
            self.observe(int(day))

    def days_with_records(self, ndays: int) -> int:
        """How many of the run's days 0 .. ndays-1 have a record in the file."""
        return int(np.unique(self.days[(self.days >= 0) & (self.days < ndays)]).size)

    def close(self) -> None:
        """Close the file."""
        self._src.close()


def read_stations_file(
    path: str, grid: Grid, start: _dt.date | str, ndays: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read station soil moisture from a netCDF file.

    The file has a time coordinate (CF units), a station dimension along which both latitude and
    longitude coordinates lie (``lat(station)``, ``lon(station)``, degrees; found by name) and
    ``sm`` on (time, station) in either order (m3/m3, 0-10 cm, NaN/_FillValue missing). Daily means are
    formed for the experiment's ``ndays`` days.

    Returns
    -------
    columns : ndarray of int (nstation,)
        Column index of the land cell holding each station (stations off land are dropped).
    sm : ndarray (ndays, nstation)
        Daily mean readings, NaN where none.
    """
    with NcFile(path, what="station file") as src:
        layout = src.layout()
        layout.dims("sm", ("time", "station"))
        tname = layout.coord("time")
        day = np.floor(seconds_after(src.ds[tname], start, str(path), tname) / 86400.0).astype(int)
        slat, slon = layout.coord_values("lat"), layout.coord_values("lon")
        sm = layout.read("sm", ("time", "station"))
        sm = to_unit(src.ds["sm"], sm, units.SOIL_MOISTURE, f"{path}: sm", hint=_PERCENT_HINT)
    iy = np.floor((slat - (grid.lat[0] - grid.res / 2)) / grid.res).astype(int)
    ix = np.floor(((slon - (grid.lon[0] - grid.res / 2)) % 360.0) / grid.res).astype(int)
    inside = (iy >= 0) & (iy < grid.shape[0]) & (ix >= 0) & (ix < grid.shape[1])
    flat = np.where(inside, iy * grid.shape[1] + ix, -1)
    col = np.searchsorted(grid.column_index, flat)
    col = np.minimum(col, grid.ncol - 1)
    on_land = inside & (grid.column_index[col] == flat)
    out = np.full((ndays, int(on_land.sum())), np.nan)
    for d in range(ndays):  # days, not columns
        rows = day == d
        if rows.any():
            with np.errstate(invalid="ignore"):
                vals = sm[rows][:, on_land]
                cnt = np.isfinite(vals).sum(0)
                out[d] = np.where(cnt > 0, np.nansum(vals, 0) / np.maximum(cnt, 1), np.nan)
    return col[on_land], out


class FileStations(StationReadings):
    """Stations read from a file (:func:`read_stations_file`), with the interface of :class:`Stations`."""

    def __init__(self, path: str, grid: Grid, start: _dt.date | str, ndays: int) -> None:
        self.grid = grid
        self.columns, self.readings = read_stations_file(path, grid, start, ndays)
