"""Storm-column pairs of the weather generator: which land columns may lie within a storm's reach.

:class:`StormColumnPairs` returns, for storms given by centre and reach, a superset of the storm-column
pairs closer than the reach in the local equirectangular distance the generator uses, without visiting
sea cells or all columns: the rows of the storm's latitude band times the image columns of its
longitude window (widened by ``1 / cos`` of the latitude), as runs of consecutive land columns. Pairs are
storm-major, so per-column sums over storms keep the storms' order and equal an exhaustive search
bitwise (``tests/test_weather_pairs.py``). On a block of columns only the block's rows are visited and each
run is cut to the block: the whole domain's pairs of those columns, in the same order.
"""

from __future__ import annotations

import numpy as np

from landimg.grid import Grid

__all__ = ["StormColumnPairs", "run_columns"]


class StormColumnPairs:
    """Candidate storm-column pairs on a grid's land columns.

    Parameters
    ----------
    grid : Grid
    columns : (start, stop), optional
        The contiguous block of columns to pair storms with (default all); ``candidates`` then returns
        column indices relative to ``start``.
    """

    def __init__(self, grid: Grid, columns: tuple[int, int] | None = None) -> None:
        self.grid = grid
        self.columns = (0, grid.ncol) if columns is None else (int(columns[0]), int(columns[1]))
        self._rows = grid.column_rows(*self.columns)  # the image rows holding the block
        self._row_phi = np.radians(grid.lat)  # the columns' latitudes come from these values
        # land cells of row y with image column < x: _land_before[y, x]; row y's first column: _row_first[y]
        land = grid.land.astype(np.int64)
        self._land_before = np.zeros((grid.shape[0], grid.shape[1] + 1), dtype=np.int64)
        np.cumsum(land, axis=1, out=self._land_before[:, 1:])
        self._row_first = np.concatenate([[0], np.cumsum(land.sum(axis=1))[:-1]])

    def _lon_ranges(self, l0: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image-column ranges [xa, xb) (nstorm, 3) holding every cell within ``half`` rad of ``l0`` (wrapped).

        One range per 2 pi branch (-1, 0, +1), widened by a cell on each side; a window reaching around
        the globe is the whole row (once).
        """
        nx = self.grid.shape[1]
        dl = np.radians(self.grid.res)
        u = (l0 - np.radians(self.grid.lon[0])) % (2.0 * np.pi)  # storm offset east of column 0, [0, 2 pi)
        shift = 2.0 * np.pi * np.arange(-1, 2)
        xa = np.floor((u[:, None] - half[:, None] + shift) / dl) - 1.0
        xb = np.ceil((u[:, None] + half[:, None] + shift) / dl) + 2.0
        xa, xb = np.clip(xa, 0, nx).astype(np.int64), np.clip(xb, 0, nx).astype(np.int64)
        whole = half >= np.pi - 3.0 * dl
        xa[whole], xb[whole] = [0, 0, 0], [nx, 0, 0]
        return xa, np.maximum(xa, xb)

    def candidates(
        self, p0: np.ndarray, l0: np.ndarray, reach_rad: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Storm-column pairs that may lie within ``reach_rad`` of each other, storm-major.

        A superset of the pairs with ``d2 < (_CLOUD_REACH rc)^2`` in ``WeatherGenerator._rain_and_cloud``: the rows
        within ``reach_rad`` of the storm's latitude ``p0`` times the image columns whose wrapped
        longitude difference is below ``reach_rad / cos(|p0| + reach_rad / 2)`` (the smallest cosine
        the exact distance can use), with margins. The land cells of a row segment are consecutive
        columns, so pairs are made from (storm, row, segment) runs (:meth:`runs`) without visiting sea
        cells. The order is storm-major, so every column receives its storms in storm order and the sums
        over storms are bitwise those of an exhaustive search.

        Parameters
        ----------
        p0, l0 : ndarray (nstorm,)
            Storm-centre latitude and longitude, radians.
        reach_rad : ndarray (nstorm,)
            Reach of each storm, radians of arc.

        Returns
        -------
        si, ci : ndarray of int (npair,)
            Storm index and column index (relative to the block's first column) of every candidate pair.
        """
        storm, _row, first, count = self.runs(p0, l0, reach_rad)
        return np.repeat(storm, count), run_columns(first, count)

    def runs(
        self, p0: np.ndarray, l0: np.ndarray, reach_rad: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The candidate pairs of :meth:`candidates` as runs: one (storm, image row, first column, count)
        per non-empty run of consecutive land columns of one row segment, storm-major (arguments as there).

        Returns
        -------
        storm, row, first, count : ndarray of int (nrun,)
            Storm index, image row, first column (relative to the block's first column) and number of
            columns of every run; :meth:`candidates` is ``np.repeat(storm, count), run_columns(first,
            count)``. The columns of a run share their latitude (the row's).
        """
        pad = 1e-6 * reach_rad + 1e-12
        r0 = np.searchsorted(self._row_phi, p0 - reach_rad - pad, side="left")
        r1 = np.searchsorted(self._row_phi, p0 + reach_rad + pad, side="right")
        r0, r1 = np.maximum(r0, self._rows[0]), np.minimum(r1, self._rows[1])  # the block's rows only
        nr = np.maximum(r1 - r0, 0)
        cmin = np.cos(np.minimum(np.abs(p0) + 0.5 * reach_rad + pad, 0.5 * np.pi))
        half = np.where(cmin > 1e-6, (reach_rad + pad) / np.maximum(cmin, 1e-6) * (1.0 + 1e-6), np.inf)
        xa, xb = self._lon_ranges(l0, np.minimum(half, 4.0 * np.pi))
        # (storm, segment) with a non-empty segment, then one entry per row of the storm's band
        s_idx, k_idx = np.nonzero((xb > xa) & (nr[:, None] > 0))
        rep = nr[s_idx]
        seg = np.repeat(np.arange(s_idx.size), rep)
        row = np.repeat(r0[s_idx] - (np.cumsum(rep) - rep), rep) + np.arange(int(rep.sum()))
        first = self._row_first[row] + self._land_before[row, xa[s_idx, k_idx][seg]]
        count = self._land_before[row, xb[s_idx, k_idx][seg]] - self._land_before[row, xa[s_idx, k_idx][seg]]
        c0, c1 = self.columns  # each run cut to the block (a run holds consecutive columns of one row)
        end = np.minimum(first + count, c1)
        first = np.maximum(first, c0) - c0
        count = np.maximum(end - c0 - first, 0)
        keep = np.flatnonzero(count)
        return s_idx[seg[keep]], row[keep], first[keep], count[keep]


def run_columns(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The column indices of runs: ``first[j], first[j] + 1, ..., first[j] + count[j] - 1`` for every run
    ``j`` in turn, int array (count.sum(),)."""
    return np.repeat(first - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
