"""Conservative (area-weighted) regridding of product grids onto the model grid.

Both kinds of source grid landimg reads are *separable in an equal-area coordinate*:

* a regular (or rectilinear) latitude-longitude grid: a cell's area on the sphere is
  ``R^2 * (lon_e - lon_w) * (sin(lat_n) - sin(lat_s))``;
* EASE-Grid 2.0 global (SMAP): a Lambert cylindrical equal-area projection, in which a model cell
  (a latitude-longitude rectangle) is a rectangle too, longitude maps linearly to ``x`` and latitude
  monotonically to ``y`` (computed with ``pyproj`` on the WGS84 ellipsoid), and areas are ``dx * dy``.

So the exact area of the overlap of source cell (i, j) with model cell (I, J) is the product of a
latitude-direction overlap ``Wy[I, i]`` and a longitude-direction overlap ``Wx[J, j]``, and the model
value is the overlap-area-weighted mean of the valid source cells::

    out[I, J] = sum_ij Wy[I, i] Wx[J, j] v[i, j] / sum_ij Wy[I, i] Wx[J, j] valid[i, j]

This is first-order conservative remapping: when the source is finer than the model cell it is the
area-weighted mean of the source cells (16 cells for 0.25 deg -> 1 deg); when it is coarser it is the
overlap-weighted mean of the one to four source cells a model cell touches. It is exact for cells
that straddle model-cell edges (they count with the part that overlaps), unlike centre binning
(pyresample's bucket averaging, which gives a straddling cell wholly to one model cell and needs
dask) -- which is why this small module computes the overlaps itself rather than calling a library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landimg.data.common import DataError

__all__ = ["EASE2", "Regridder", "SourceGrid", "latlon_source", "overlap_lengths"]

#: EASE-Grid 2.0 global grids (NSIDC grid parameter definitions EASE2_M36km / EASE2_M09km):
#: name -> (rows, columns, cell size in metres).
EASE2: dict[str, tuple[int, int, float]] = {
    "M36": (406, 964, 36032.220840584),
    "M09": (1624, 3856, 9008.055210146),
}
_EASE2_ORIGIN_X = -17367530.4451615  # metres, -180 deg longitude (left edge of column 0)
_EASE2_ORIGIN_Y = 7314540.8306386  # metres (top edge of row 0)
_EPSG_EASE2_GLOBAL = "EPSG:6933"


@dataclass(frozen=True)
class SourceGrid:
    """A product's grid, separable in an equal-area coordinate.

    Attributes
    ----------
    kind : {"latlon", "ease2"}
    y_edges : ndarray (ny + 1,)
        Row edges in file order: latitudes (degrees) for ``latlon``, projected y (m) for ``ease2``.
    x_edges : ndarray (nx + 1,)
        Column edges in file order, longitudes in degrees (for ``ease2`` the linear image of x).
    """

    kind: str
    y_edges: np.ndarray
    x_edges: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the source grid."""
        return self.y_edges.size - 1, self.x_edges.size - 1

    def key(self) -> tuple:
        """Hashable identity (files on the same grid share one regridder)."""
        return (self.kind, self.y_edges.tobytes(), self.x_edges.tobytes())


def _edges_from_centres(c: np.ndarray, path: str, name: str) -> np.ndarray:
    c = np.asarray(c, dtype=float)
    if c.ndim != 1 or c.size < 2 or not np.all(np.isfinite(c)):
        raise DataError(f"{path}: variable {name!r} must be a 1-D coordinate with 2+ finite values")
    d = np.diff(c)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise DataError(f"{path}: variable {name!r} is not strictly monotonic")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - 0.5 * d[0]], mid, [c[-1] + 0.5 * d[-1]]])


def latlon_source(lat: np.ndarray, lon: np.ndarray, path: str, names=("lat", "lon")) -> SourceGrid:
    """SourceGrid of a file with 1-D cell-centre ``lat`` (ascending or descending) and ``lon``."""
    y = np.clip(_edges_from_centres(lat, path, names[0]), -90.0, 90.0)
    x = _edges_from_centres(lon, path, names[1])
    if abs(x[-1] - x[0]) > 360.0 + 1e-6:
        raise DataError(f"{path}: variable {names[1]!r} spans more than 360 degrees")
    return SourceGrid("latlon", y, x)


def ease2_source(name: str) -> SourceGrid:
    """SourceGrid of the EASE-Grid 2.0 global grid ``"M36"`` or ``"M09"``."""
    rows, cols, cell = EASE2[name]
    y = _EASE2_ORIGIN_Y - cell * np.arange(rows + 1)
    x = -180.0 + 360.0 * np.arange(cols + 1) / cols
    return SourceGrid("ease2", y, x)


def overlap_lengths(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Lengths of the overlaps of source intervals with destination intervals.

    Parameters
    ----------
    src : ndarray (ns + 1,)
        Source edges, increasing or decreasing.
    dst : ndarray (nd + 1,)
        Destination edges, increasing.

    Returns
    -------
    ndarray (nd, ns)
        Overlap length of destination interval k with source interval l (same units as the edges).
    """
    lo = np.minimum(src[:-1], src[1:])
    hi = np.maximum(src[:-1], src[1:])
    ov = np.minimum(dst[1:, None], hi[None, :]) - np.maximum(dst[:-1, None], lo[None, :])
    return np.maximum(ov, 0.0)


def _lon_overlaps(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Longitude overlaps (nd, ns) in degrees, source shifted by multiples of 360 degrees."""
    total = np.zeros((dst.size - 1, src.size - 1))
    lo = min(src.min(), dst.min())
    hi = max(src.max(), dst.max())
    for k in range(int(np.floor((lo - hi) / 360.0)) - 1, int(np.ceil((hi - lo) / 360.0)) + 2):
        total += overlap_lengths(src + 360.0 * k, dst)
    return total


def _ease2_y(lat: np.ndarray) -> np.ndarray:
    """Projected EASE-Grid 2.0 global y (m) of latitudes (degrees), WGS84 ellipsoid."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", _EPSG_EASE2_GLOBAL, always_xy=True)
    _, y = tr.transform(np.zeros_like(lat), np.clip(lat, -89.999999, 89.999999))
    return np.asarray(y, dtype=float)


class Regridder:
    """Area-weighted regridding from one source grid to the model grid (see the module docstring).

    Parameters
    ----------
    source : SourceGrid
    grid : landimg.Grid
        The model grid.
    path : str
        A file on the source grid (named in errors).

    Attributes
    ----------
    rows, cols : slice
        The window of source rows and columns that overlap the model grid; readers read only it.

    Raises
    ------
    DataError
        The source grid does not cover every model cell completely.
    """

    def __init__(self, source: SourceGrid, grid, path: str) -> None:
        self.source, self.grid = source, grid
        lat_e = np.concatenate([grid.lat - grid.res / 2, [grid.lat[-1] + grid.res / 2]])
        lon_e = np.concatenate([grid.lon - grid.res / 2, [grid.lon[-1] + grid.res / 2]])
        if source.kind == "latlon":
            wy = overlap_lengths(np.sin(np.radians(source.y_edges)), np.sin(np.radians(lat_e)))
            full_y = np.diff(np.sin(np.radians(lat_e)))
        elif source.kind == "ease2":
            yd = _ease2_y(lat_e)
            wy = overlap_lengths(source.y_edges, yd)
            full_y = np.diff(yd)
        else:  # pragma: no cover - constructed by readers only
            raise ValueError(f"unknown source grid kind {source.kind!r}")
        wx = _lon_overlaps(source.x_edges, lon_e)
        full_x = np.diff(lon_e)
        short_y = wy.sum(1) < full_y * (1.0 - 1e-9)
        short_x = wx.sum(1) < full_x * (1.0 - 1e-9)
        if short_y.any() or short_x.any():
            raise DataError(_coverage_message(path, source, grid, short_y, short_x))
        r = np.flatnonzero(wy.sum(0) > 0)
        c = np.flatnonzero(wx.sum(0) > 0)
        self.rows = slice(int(r[0]), int(r[-1]) + 1)
        self.cols = slice(int(c[0]), int(c[-1]) + 1)
        self._wy = wy[:, self.rows]
        self._wx = wx[:, self.cols]

    @property
    def window_shape(self) -> tuple[int, int]:
        """Shape of the source window (rows, columns) that :meth:`apply` expects."""
        return self._wy.shape[1], self._wx.shape[1]

    def apply(self, values: np.ndarray, min_coverage: float = 0.0) -> np.ndarray:
        """Regrid source-window values (..., nrows, ncols) to the model grid (..., ny, nx).

        Parameters
        ----------
        values : ndarray (..., nrows, ncols)
            Values on :attr:`rows` x :attr:`cols` of the source grid, NaN where missing.
        min_coverage : float
            Smallest fraction of a model cell's area that valid source cells must cover for it to get a
            value (0: any valid overlap).

        Returns
        -------
        ndarray (..., ny, nx)
            Area-weighted means, NaN where no (or too little) valid source area overlaps.
        """
        values = np.asarray(values, dtype=float)
        if values.shape[-2:] != self.window_shape:
            raise ValueError(f"values must end in {self.window_shape}, got {values.shape}")
        valid = np.isfinite(values)
        filled = np.where(valid, values, 0.0)
        num = np.einsum("ai,...ij,bj->...ab", self._wy, filled, self._wx, optimize=True)
        den = np.einsum("ai,...ij,bj->...ab", self._wy, valid.astype(float), self._wx, optimize=True)
        full = np.outer(self._wy.sum(1), self._wx.sum(1))
        ok = den > max(min_coverage, 0.0) * full * (1.0 - 1e-12)
        ok &= den > 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _coverage_message(path: str, source: SourceGrid, grid, short_y: np.ndarray, short_x: np.ndarray) -> str:
    """One line: the file's extent, the domain's, and which of the domain is not covered."""
    half = grid.res / 2.0
    dom = (grid.lat[0] - half, grid.lat[-1] + half, grid.lon[0] - half, grid.lon[-1] + half)
    if source.kind == "latlon":
        ys = source.y_edges
        xs = source.x_edges
        have = f"latitude {ys.min():g} .. {ys.max():g}, longitude {xs.min():g} .. {xs.max():g}"
    else:
        have = f"the EASE-Grid 2.0 rows of {source.shape[0]} x {source.shape[1]}"
    missing = []
    if short_y.any():
        missing.append(f"latitudes {grid.lat[short_y].min() - half:g} .. {grid.lat[short_y].max() + half:g}")
    if short_x.any():
        missing.append(f"longitudes {grid.lon[short_x].min() - half:g} .. {grid.lon[short_x].max() + half:g}")
    return (
        f"{path}: the file does not cover the model domain (domain latitude {dom[0]:g} .. {dom[1]:g}, "
        f"longitude {dom[2]:g} .. {dom[3]:g}; the file's grid {have}; not covered: {' and '.join(missing)}); "
        "give files covering the domain or a domain inside the files"
    )
