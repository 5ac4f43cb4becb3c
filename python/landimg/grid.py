"""Regular latitude-longitude grids with a land mask: the one grid type of the model, the ensemble and
the analyses (``landimg.Grid``).

Model state lives on *columns* (land cells only, in row-major image order); the analysis works on
*images* (ny, nx) with row 0 the southernmost latitude. :class:`Grid` converts between the two and says
where the columns are (coordinates, unit-sphere positions, cell size). A leaf: the analysis room uses it
without importing the ensemble or the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landimg.atomic import DiskError, atomic_path, make_dirs

__all__ = ["Grid", "builtin_land_mask", "land_mask_cache_dir", "unit_xyz"]

_EARTH_RADIUS_KM = 6371.0


_MASK_FILE = "globe_combined_mask_compressed.npz"  # inside the global_land_mask package
_MASK_CHUNK_ROWS = 256  # rows of the 1 km mask decompressed at a time (256 x 43200 bytes = 11 MB)


def unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (..., 3) of latitudes and longitudes in degrees."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def land_mask_cache_dir() -> Path | None:
    """Directory of the on-disk land-mask cache, or None when caching is off.

    ``$LANDIMG_CACHE_DIR`` if set (``none`` or empty turns caching off), else ``$XDG_CACHE_HOME/landimg``,
    else ``~/.cache/landimg``.
    """
    env = os.environ.get("LANDIMG_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "landimg"


def _mask_data_file() -> Path:
    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the global-land-mask package is not installed (pip install global-land-mask)")
    return Path(next(iter(spec.submodule_search_locations))) / _MASK_FILE


def _package_index(values: np.ndarray, axis: np.ndarray, name: str, limit: float) -> np.ndarray:
    """Index into the package's 1 km axis exactly as ``global_land_mask.globe.lat_to_index``/``lon_to_index``."""
    values = np.array(values, dtype=float)
    if np.any(values > limit) or np.any(values < -limit):
        raise ValueError(f"{name} must be within -{limit:g}..{limit:g} degrees")
    values[values > axis.max()] = axis.max()
    values[values < axis.min()] = axis.min()
    return ((values - axis[0]) / (axis[1] - axis[0])).astype("int")


def _sample_mask_file(path: Path, lat: np.ndarray, lon_wrapped: np.ndarray) -> np.ndarray:
    """Land (True) at the cell centres, streaming the compressed 1 km mask and keeping only the rows needed."""
    with zipfile.ZipFile(path) as zf:
        with zf.open("lat.npy") as f:
            axis_lat = np.lib.format.read_array(f)
        with zf.open("lon.npy") as f:
            axis_lon = np.lib.format.read_array(f)
        iy = _package_index(lat, axis_lat, "latitude", 90.0)
        ix = _package_index(lon_wrapped, axis_lon, "longitude", 180.0)
        rows = np.unique(iy)
        picked = np.empty((rows.size, ix.size), dtype=bool)
        with zf.open("mask.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            if fortran or dtype != np.dtype(bool) or len(shape) != 2 or shape[1] != axis_lon.size:
                raise ValueError(f"{path}: unexpected land-mask layout {shape} {dtype} fortran={fortran}")
            ncol, done, start = shape[1], 0, 0
            while done < rows.size:  # rows are increasing; stop after the last one needed
                n = min(_MASK_CHUNK_ROWS, shape[0] - start)
                block = np.frombuffer(f.read(n * ncol), dtype=bool).reshape(n, ncol)
                here = rows[(rows >= start) & (rows < start + n)]
                picked[done : done + here.size] = block[here - start][:, ix]
                done += here.size
                start += n
    is_sea = picked[np.searchsorted(rows, iy)]
    return ~is_sea


def _store_mask(target: Path, land: np.ndarray) -> None:
    """Save the mask to the cache file ``target`` (.npy) atomically (concurrent ranks may write the same
    file: each renames its own complete copy).

    Raises
    ------
    DiskError
        The cache cannot be written (one line naming the file, with how to run without the cache).
    """
    try:
        make_dirs(target.parent)
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.save(fh, land)
    except DiskError as exc:
        raise exc.with_hint("set LANDIMG_CACHE_DIR to a writable directory, or to none (no cache)") from None


def builtin_land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Land mask at cell centres from the ``global-land-mask`` package (a real coastline, 1 km data).

    The same values as ``global_land_mask.globe.is_land`` at the cell centres, without holding the
    package's 933 MB array: the compressed data are streamed and only the grid's rows kept (a few MB at
    most). The result is cached on disk (:func:`land_mask_cache_dir`), keyed by the cell centres and the
    data file, so a grid's mask is computed once per machine.

    Parameters
    ----------
    lat, lon : ndarray
        Cell-centre latitudes (ny,) and longitudes (nx,) in degrees.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        True where the cell centre is on land.
    """
    lat = np.ascontiguousarray(lat, dtype=float)
    lon_wrapped = np.ascontiguousarray((np.asarray(lon, dtype=float) + 180.0) % 360.0 - 180.0)
    data = _mask_data_file()
    cache = land_mask_cache_dir()
    target = None
    if cache is not None:
        h = hashlib.sha256()
        h.update(f"{lat.size},{lon_wrapped.size};{data.stat().st_size};".encode())
        h.update(lat.tobytes())
        h.update(lon_wrapped.tobytes())
        target = cache / "landmask" / f"{h.hexdigest()[:32]}.npy"
        try:
            cached = np.load(target)
            if cached.shape == (lat.size, lon_wrapped.size) and cached.dtype == bool:
                return cached
        except (OSError, ValueError, EOFError):  # absent or damaged: recomputed and rewritten
            pass
    land = _sample_mask_file(data, lat, lon_wrapped)
    if target is not None:
        _store_mask(target, land)
    return land


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular lat/lon grid with a land mask.

    Attributes
    ----------
    lat : ndarray (ny,)
        Cell-centre latitudes, degrees north, increasing (row 0 = southernmost).
    lon : ndarray (nx,)
        Cell-centre longitudes, degrees east, increasing.
    land : ndarray of bool (ny, nx)
        Land mask; model columns are the land cells in row-major order.
    res : float
        Grid spacing in degrees.

    The analyses use the derived attributes: ``column_lat``/``column_lon`` (ncol,) coordinates of the
    columns, ``xyz`` (ncol, 3) their unit-sphere positions, ``cell_km`` the cell size (km), ``index`` (the
    flat image index of every column, = ``column_index``), ``periodic_lon``.
    """

    lat: np.ndarray
    lon: np.ndarray
    land: np.ndarray
    res: float
    _index: np.ndarray = field(init=False, repr=False)
    _columns: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lat = np.asarray(self.lat, dtype=float)
        lon = np.asarray(self.lon, dtype=float)
        land = np.asarray(self.land, dtype=bool)
        if lat.ndim != 1 or lon.ndim != 1 or lat.size < 2 or lon.size < 2:
            raise ValueError("lat and lon must be 1-D arrays with at least 2 cells each")
        if land.shape != (lat.size, lon.size):
            raise ValueError(f"land mask shape {land.shape} does not match (ny, nx) = {(lat.size, lon.size)}")
        if not np.all(np.diff(lat) > 0) or not np.all(np.diff(lon) > 0):
            raise ValueError("lat and lon must be strictly increasing")
        if not land.any():
            raise ValueError("the grid has no land cell")
        for name, value in (("lat", lat), ("lon", lon), ("land", land)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_index", np.flatnonzero(land.ravel()))
        object.__setattr__(self, "_columns", {})  # derived column arrays, made on first use

    @classmethod
    def regular(
        cls,
        lat: tuple[float, float],
        lon: tuple[float, float],
        res: float,
        land_mask: str | np.ndarray = "builtin",
    ) -> Grid:
        """Build a regular grid covering ``lat`` x ``lon`` (bounds in degrees) at ``res`` degrees.

        Parameters
        ----------
        lat : (south, north)
            Latitude bounds of the domain edges, degrees north.
        lon : (west, east)
            Longitude bounds of the domain edges, degrees east (-180..360).
        res : float
            Grid spacing, degrees; the bounds must hold a whole number of cells.
        land_mask : "builtin" or ndarray of bool (ny, nx)
            ``"builtin"`` samples the ``global-land-mask`` package at cell centres; "all" makes every
            cell land; an array is used as given.
        """
        if not np.isfinite(res) or res <= 0:
            raise ValueError(f"res must be a positive number of degrees, got {res!r}")
        (south, north), (west, east) = lat, lon
        if not (-90.0 <= south < north <= 90.0):
            raise ValueError(f"lat bounds must satisfy -90 <= south < north <= 90, got {lat!r}")
        if not (west < east and east - west <= 360.0):
            raise ValueError(f"lon bounds must satisfy west < east <= west + 360, got {lon!r}")
        ny_f, nx_f = (north - south) / res, (east - west) / res
        ny, nx = int(round(ny_f)), int(round(nx_f))
        if abs(ny - ny_f) > 1e-6 or abs(nx - nx_f) > 1e-6:
            raise ValueError(f"domain {lat} x {lon} is not a whole number of {res} degree cells")
        lat_c = south + (np.arange(ny) + 0.5) * res
        lon_c = west + (np.arange(nx) + 0.5) * res
        if isinstance(land_mask, str):
            if land_mask == "builtin":
                land = builtin_land_mask(lat_c, lon_c)
            elif land_mask == "all":
                land = np.ones((ny, nx), dtype=bool)
            else:
                raise ValueError(f"land_mask must be 'builtin', 'all' or a boolean array, got {land_mask!r}")
        else:
            land = np.asarray(land_mask, dtype=bool)
        return cls(lat=lat_c, lon=lon_c, land=land, res=float(res))

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (ny, nx)."""
        return self.land.shape

    @property
    def ncol(self) -> int:
        """Number of land cells (model columns)."""
        return int(self._index.size)

    @property
    def column_index(self) -> np.ndarray:
        """Flat image index (row-major) of each column, int array (ncol,)."""
        return self._index

    @property
    def index(self) -> np.ndarray:
        """Flat image index (row-major) of each column, int array (ncol,) (= :attr:`column_index`)."""
        return self._index

    def _column_array(self, name: str) -> np.ndarray:
        if name not in self._columns:
            iy, ix = np.unravel_index(self._index, self.shape)
            lat, lon = self.lat[iy], self.lon[ix]
            for key, value in (("lat", lat), ("lon", lon), ("xyz", unit_xyz(lat, lon))):
                value.setflags(write=False)
                self._columns[key] = value
        return self._columns[name]

    @property
    def column_lat(self) -> np.ndarray:
        """Latitude of every column, degrees, (ncol,) (read-only)."""
        return self._column_array("lat")

    @property
    def column_lon(self) -> np.ndarray:
        """Longitude of every column, degrees, (ncol,) (read-only)."""
        return self._column_array("lon")

    @property
    def xyz(self) -> np.ndarray:
        """Every column on the unit sphere, (ncol, 3) (read-only; distances between columns)."""
        return self._column_array("xyz")

    @property
    def cell_km(self) -> tuple[float, float]:
        """Cell size (north-south, east-west at the domain's mid-latitude), km (:meth:`cell_size_km`)."""
        return self.cell_size_km()

    @property
    def periodic_lon(self) -> bool:
        """True when the grid wraps around the globe in longitude."""
        return bool(abs(self.lon.size * self.res - 360.0) < 1e-6)

    def column_latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees) of every column, two arrays (ncol,) (copies)."""
        return self.column_lat.copy(), self.column_lon.copy()

    def to_image(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Scatter column values (..., ncol) into images (..., ny, nx); non-land cells get ``fill``."""
        values = np.asarray(values)
        if values.shape[-1:] != (self.ncol,):
            raise ValueError(f"values must have last axis ncol={self.ncol}, got shape {values.shape}")
        dtype = np.result_type(values.dtype, np.asarray(fill).dtype)
        out = np.full(values.shape[:-1] + (self.shape[0] * self.shape[1],), fill, dtype=dtype)
        out[..., self._index] = values
        return out.reshape(values.shape[:-1] + self.shape)

    def to_columns(self, image: np.ndarray) -> np.ndarray:
        """Gather the land cells of images (..., ny, nx) into columns (..., ncol)."""
        image = np.asarray(image)
        if image.shape[-2:] != self.shape:
            raise ValueError(f"image must have trailing shape {self.shape}, got {image.shape}")
        return image.reshape(image.shape[:-2] + (self.land.size,))[..., self._index]

    def column_rows(self, start: int, stop: int) -> tuple[int, int]:
        """The image rows ``(r0, r1)`` holding the columns ``start .. stop - 1`` (a band of latitudes: columns
        are in row-major order); ``(0, 0)`` for no column."""
        if not 0 <= start <= stop <= self.ncol:
            raise ValueError(f"columns {start}..{stop} outside 0..{self.ncol}")
        if start == stop:
            return 0, 0
        nx = self.shape[1]
        return int(self._index[start] // nx), int(self._index[stop - 1] // nx) + 1

    def band_to_columns(self, band: np.ndarray, start: int, stop: int) -> np.ndarray:
        """The columns ``start .. stop - 1`` (..., stop - start) of images (..., r1 - r0, nx) of the rows
        ``column_rows(start, stop)`` (what :meth:`to_columns` of the whole images gives there)."""
        r0, r1 = self.column_rows(start, stop)
        band = np.asarray(band)
        if band.shape[-2:] != (r1 - r0, self.shape[1]):
            raise ValueError(f"band must have trailing shape {(r1 - r0, self.shape[1])}, got {band.shape}")
        return band.reshape(band.shape[:-2] + (-1,))[..., self._index[start:stop] - r0 * self.shape[1]]

    def column_distances_km(self, i: int | np.ndarray) -> np.ndarray:
        """Great-circle distances (km) from column(s) ``i`` to all columns: (ncol,) or (len(i), ncol)."""
        lat, lon = (np.radians(a) for a in self.column_latlon())
        idx = np.asarray(i)
        la0, lo0 = lat[idx][..., None], lon[idx][..., None]
        h = np.sin((lat - la0) / 2) ** 2 + np.cos(la0) * np.cos(lat) * np.sin((lon - lo0) / 2) ** 2
        return 2.0 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))

    def nearest_file_indices(
        self, file_lat: np.ndarray, file_lon: np.ndarray, *, source: str = "file"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-neighbour indices into a file's lat/lon axes for every grid row and column.

        Parameters
        ----------
        file_lat, file_lon : ndarray
            The file's 1-D latitude and longitude coordinates, degrees (longitudes in any 360-degree range).
        source : str
            Named in the error message (e.g. the file's path).

        Returns
        -------
        iy : ndarray of int (ny,)
            Index into ``file_lat`` for each grid row.
        ix : ndarray of int (nx,)
            Index into ``file_lon`` for each grid column.

        Raises
        ------
        ValueError
            The file's coordinates are not 1-D and finite, or the file does not cover the grid: a grid
            cell centre is farther from the nearest file point than half a file spacing plus half a grid
            spacing (so a file on another region or with shifted coordinates is refused, not sampled).
        """
        flat = np.asarray(file_lat, dtype=float)
        flon = np.asarray(file_lon, dtype=float)
        if flat.ndim != 1 or flon.ndim != 1 or flat.size == 0 or flon.size == 0:
            raise ValueError(f"{source}: lat and lon must be non-empty 1-D coordinate variables")
        if not (np.all(np.isfinite(flat)) and np.all(np.isfinite(flon))):
            raise ValueError(f"{source}: lat/lon coordinates contain missing or non-finite values")
        dy = np.abs(flat[None, :] - self.lat[:, None])
        dx = np.abs((flon[None, :] - self.lon[:, None] + 180.0) % 360.0 - 180.0)
        iy, ix = dy.argmin(axis=1), dx.argmin(axis=1)

        def _spacing(axis: np.ndarray) -> float:
            steps = np.abs(np.diff(np.sort(axis)))
            steps = steps[steps > 0]
            return float(steps.max()) if steps.size else 0.0

        for name, dist, spacing in (
            ("latitude", dy[np.arange(self.lat.size), iy], _spacing(flat)),
            ("longitude", dx[np.arange(self.lon.size), ix], _spacing(flon)),
        ):
            limit = 0.5 * spacing + 0.5 * self.res + 1e-6
            if np.any(dist > limit):
                worst = float(dist.max())
                raise ValueError(
                    f"{source}: does not cover the model grid in {name} (a grid cell is {worst:.3g} degrees from the "
                    f"nearest file point; at most {limit:.3g} allowed). Check the file's region and lat/lon values."
                )
        return iy, ix

    def cell_size_km(self) -> tuple[float, float]:
        """Approximate (north-south, east-west at the domain's mid-latitude) cell size in km."""
        dy = np.radians(self.res) * _EARTH_RADIUS_KM
        return float(dy), float(dy * np.cos(np.radians(self.lat.mean())))
