"""Products as inputs of the cycle: forcing, retrievals, a reference and stations on the model grid,
with times in seconds after the experiment start (in the products' own calendar).

* :class:`ProductForcing` -- the interface of the experiment's forcing sources (call with t, get
  columns in landimg's forcing keys); a record holds until the next one;
* :class:`ProductObservations` -- retrieval records; :meth:`~ProductObservations.take` returns the
  records whose time lies in an analysis window [t0, t1) and marks them used, so each record enters
  exactly one analysis (AM and PM passes are separate records);
* :class:`CdfMatcher` -- CDF matching of retrievals to the model's climatology (the standard rescaling
  of land data assimilation; Reichle and Koster 2004), piecewise linear between percentiles;
* :class:`ProductReference` -- daily mean layer soil moisture (3, ny, nx) for verification;
* :class:`ProductStations` -- ISMN daily means at the land cells holding the stations.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import warnings
from collections.abc import Sequence

import numpy as np

from landimg.data.common import LAYERS, DataError, StationReadings, check_record_span, parse_date, to_seconds
from landimg.data.series import FileProgress, Series, read_all

__all__ = ["CdfMatcher", "ProductForcing", "ProductObservations", "ProductReference", "ProductStations"]

_FORCING_KEYS = {
    "Tair": "tair",
    "Qair": "qair",
    "PSurf": "psurf",
    "Wind": "wind",
    "SWdown": "swdown",
    "LWdown": "lwdown",
}


def _offset(series: Series, start: str) -> np.ndarray:
    """Record times of ``series`` in seconds after ``start`` (YYYY-MM-DD, the series' calendar)."""
    t0 = to_seconds([parse_date(start, series.calendar, "experiment.start")], series.calendar)[0]
    return series.times - t0


def _day_string(start: str, calendar: str, days: float) -> str:
    d = parse_date(start, calendar, "experiment.start") + _dt.timedelta(days=float(days))
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


class ProductForcing:
    """A forcing product on the model's columns (see :mod:`landimg.data.series`).

    Parameters
    ----------
    product : str
        A forcing product name (``gldas_forcing``, ``era5``, ``era5land_forcing``, ``cmfd``, ``alma``).
    files : str or list of str
        Glob pattern(s).
    grid : Grid
    start : str
        Experiment start, YYYY-MM-DD (t = 0 s).
    first_day, last_day : float
        Days after the start the run needs (negative for spin-up); only those records are kept.
    progress : bool
        Show reading progress on stderr for long reads.
    """

    def __init__(
        self, product: str, files, grid, start: str, first_day: float, last_day: float, progress: bool = False
    ) -> None:
        self.product, self.grid = product, grid
        series = read_all(
            product, files, grid, what="forcing.files", progress=_progress("forcing.files", progress)
        )
        cal = series.calendar
        first, last = (
            _day_string(start, cal, np.floor(first_day)),
            _day_string(start, cal, np.ceil(last_day) - 1),
        )
        series = series.select(grid, first, last, "forcing.files")
        if series.product.kind != "forcing":
            raise DataError(f"forcing.product: {product!r} is a {series.product.kind} product, not forcing")
        self.times = _offset(series, start)
        self._cols = {k: grid.to_columns(v) for k, v in series.fields.items()}

    def __call__(self, t: float) -> dict[str, np.ndarray]:
        """Forcing at ``t`` s after the start: the last record at or before t, dict of (ncol,) arrays."""
        rec = int(np.searchsorted(self.times, t, side="right")) - 1
        if rec < 0:
            raise ValueError(f"forcing {self.product}: no record at or before t = {t} s after the start")
        out = {key: self._cols[name][rec] for name, key in _FORCING_KEYS.items()}
        precip = self._cols["Rainf"][rec]
        if "Snowf" in self._cols:
            precip = precip + self._cols["Snowf"][rec]
        out["precip"] = precip
        return out

    def check_covers(self, t_first: float, t_last: float) -> None:
        """ValueError naming both spans unless the records cover ``t_first .. t_last`` s after the start."""
        check_record_span(
            self.times, t_first, t_last, f"forcing {self.product}", "the start", " (spin-up included)"
        )

    def close(self) -> None:
        """Nothing to close (the series is in memory)."""


def _progress(what: str, enabled: bool) -> FileProgress | None:
    return FileProgress(what) if enabled else None


class ProductObservations:
    """Retrieval records on the model grid, each handed to exactly one analysis window.

    Parameters
    ----------
    product, files, grid, start : see :class:`ProductForcing`
    days : int
        Run length; records of days 0 .. days-1 are kept.

    Attributes
    ----------
    times : ndarray (nrec,)
        Record times, s after the start.
    used : ndarray of int (nrec,)
        How many analyses each record entered (0 or 1).
    """

    def __init__(self, product: str, files, grid, start: str, days: int, progress: bool = False) -> None:
        series = read_all(product, files, grid, what="obs.files", progress=_progress("obs.files", progress))
        cal = series.calendar
        if series.product.kind != "retrieval":
            raise DataError(f"obs.product: {product!r} is a {series.product.kind} product, not a retrieval")
        t = _offset(series, start)
        keep = (t >= 0.0) & (t < days * 86400.0)
        if not keep.any():
            raise DataError(
                f"obs.files: no {product} record falls in the {days} run days from {start} ({cal})"
            )
        self.times = t[keep]
        self.sm = series.fields["sm"][keep]
        err = series.fields.get("sm_error")
        self.error = None if err is None else err[keep]
        self.used = np.zeros(self.times.size, dtype=int)
        self.grid = grid
        self.matcher: CdfMatcher | None = None

    def take(self, t0: float, t1: float) -> list[tuple[float, np.ndarray, np.ndarray | None]]:
        """Records with t0 <= time < t1 (s after the start) not used yet: (time, sm (ny, nx), error or None).

        Raises
        ------
        RuntimeError
            A record in the window was already used (overlapping analysis windows).
        """
        idx = np.flatnonzero((self.times >= t0) & (self.times < t1))
        if np.any(self.used[idx] > 0):
            raise RuntimeError(f"observation records {idx[self.used[idx] > 0].tolist()} would be used twice")
        self.used[idx] += 1
        out = []
        for i in idx:
            sm = np.where(self.grid.land, self.sm[i], np.nan)
            if self.matcher is not None:
                sm = self.matcher(sm)
            err = None if self.error is None else np.where(self.grid.land, self.error[i], np.nan)
            out.append((float(self.times[i]), sm, err))
        return out

    def days_with_records(self, ndays: int) -> int:
        """How many of the run's days hold a record."""
        d = np.floor(self.times / 86400.0).astype(int)
        return int(np.unique(d[(d >= 0) & (d < ndays)]).size)

    def all_values(self) -> np.ndarray:
        """Every valid retrieval over land (for CDF matching), 1-D."""
        v = self.sm[:, self.grid.land]
        return v[np.isfinite(v)]


class CdfMatcher:
    """Map retrievals to a model climatology by matching their cumulative distributions.

    Parameters
    ----------
    obs, model : ndarray
        Samples (any shape; NaN ignored) of the retrievals and of the model's observed layer, m3/m3.
    percentiles : sequence of float
        Breakpoints of the piecewise-linear mapping (default 0, 5, ..., 100).
    """

    def __init__(
        self, obs: np.ndarray, model: np.ndarray, percentiles: Sequence[float] | None = None
    ) -> None:
        obs = np.asarray(obs, float)
        model = np.asarray(model, float)
        obs, model = obs[np.isfinite(obs)], model[np.isfinite(model)]
        if obs.size < 10 or model.size < 10:
            raise ValueError("CDF matching needs at least 10 valid retrievals and 10 model values")
        q = np.asarray(percentiles if percentiles is not None else np.arange(0.0, 100.1, 5.0))
        self.obs_q = np.percentile(obs, q)
        self.model_q = np.percentile(model, q)
        keep = np.concatenate([[True], np.diff(self.obs_q) > 0])  # strictly increasing breakpoints
        self.obs_q, self.model_q = self.obs_q[keep], self.model_q[keep]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Rescaled values (same shape), NaN kept; linear extrapolation beyond the end breakpoints."""
        v = np.asarray(values, float)
        out = np.interp(v, self.obs_q, self.model_q)
        if self.obs_q.size > 1:
            lo_slope = (self.model_q[1] - self.model_q[0]) / (self.obs_q[1] - self.obs_q[0])
            hi_slope = (self.model_q[-1] - self.model_q[-2]) / (self.obs_q[-1] - self.obs_q[-2])
            out = np.where(v < self.obs_q[0], self.model_q[0] + lo_slope * (v - self.obs_q[0]), out)
            out = np.where(v > self.obs_q[-1], self.model_q[-1] + hi_slope * (v - self.obs_q[-1]), out)
        return np.where(np.isfinite(v), np.clip(out, 0.0, 1.0), np.nan)


class ProductReference:
    """Reference layer soil moisture (0-10, 10-40, 40-100 cm): daily means on the model grid.

    Attributes
    ----------
    layers : tuple of (top, bottom)
    daily : ndarray (days, 3, ny, nx)
        Mean of the day's records, NaN where none.
    """

    layers = LAYERS

    def __init__(self, product: str, files, grid, start: str, days: int, progress: bool = False) -> None:
        series = read_all(
            product, files, grid, what="reference.files", progress=_progress("reference.files", progress)
        )
        if series.product.kind != "reference":
            raise DataError(
                f"reference.product: {product!r} is a {series.product.kind} product, not a reference"
            )
        t = _offset(series, start)
        day = np.floor(t / 86400.0).astype(int)
        sm = series.fields["sm"]
        self.daily = np.full((days,) + sm.shape[1:], np.nan)
        covered = 0
        for d in range(days):
            sel = day == d
            if sel.any():
                with np.errstate(invalid="ignore"), _quiet():
                    self.daily[d] = np.nanmean(sm[sel], axis=0)
                covered += 1
        if covered == 0:
            raise DataError(f"reference.files: no {product} record falls in the {days} run days from {start}")
        self.days_covered = covered


class ProductStations(StationReadings):
    """ISMN stations at the land cells of the grid, with the interface of the experiment's stations."""

    def __init__(
        self, path: str, grid, start: str, days: int, depth: tuple[float, float] = (0.0, 0.1)
    ) -> None:
        from landimg.data.stations import read_ismn

        end = _day_string(start, "standard", days - 1)
        st = read_ismn(path, grid, start, end, depth)
        flat = _cell_index(grid, st.lat, st.lon)
        col = np.searchsorted(grid.column_index, flat)
        col = np.minimum(col, grid.ncol - 1)
        on_land = (flat >= 0) & (grid.column_index[col] == flat)
        if not on_land.any():
            raise DataError(f"stations.path: no ISMN station of {path} lies on a land cell of the grid")
        self.grid = grid
        self.columns = col[on_land]
        self.readings = st.sm[:, on_land]
        self.ids = [i for i, ok in zip(st.ids, on_land, strict=True) if ok]


def _cell_index(grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    iy = np.floor((lat - (grid.lat[0] - grid.res / 2)) / grid.res).astype(int)
    ix = np.floor(((lon - (grid.lon[0] - grid.res / 2)) % 360.0) / grid.res).astype(int)
    inside = (iy >= 0) & (iy < grid.shape[0]) & (ix >= 0) & (ix < grid.shape[1])
    return np.where(inside, iy * grid.shape[1] + ix, -1)


@contextlib.contextmanager
def _quiet():
    """Silence numpy's 'mean of empty slice' (all-NaN cells stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
