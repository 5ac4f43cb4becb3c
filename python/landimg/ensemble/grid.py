"""Regular latitude-longitude grids with a land mask: the bridge between model columns and images.

Model state lives on *columns* (land cells only, in row-major image order); the analysis works on
*images* (ny, nx) with row 0 the southernmost latitude. :class:`Grid` converts between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Grid", "builtin_land_mask"]

_EARTH_RADIUS_KM = 6371.0


def builtin_land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Land mask at cell centres from the ``global-land-mask`` package (a real coastline, 1 km data).

    Parameters
    ----------
    lat, lon : ndarray
        Cell-centre latitudes (ny,) and longitudes (nx,) in degrees.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
        True where the cell centre is on land.
    """
    from global_land_mask import globe

    lon_wrapped = (np.asarray(lon, dtype=float) + 180.0) % 360.0 - 180.0
    lat2, lon2 = np.meshgrid(np.asarray(lat, dtype=float), lon_wrapped, indexing="ij")
    return np.asarray(globe.is_land(lat2, lon2), dtype=bool)


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
    """

    lat: np.ndarray
    lon: np.ndarray
    land: np.ndarray
    res: float
    _index: np.ndarray = field(init=False, repr=False)

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
    def periodic_lon(self) -> bool:
        """True when the grid wraps around the globe in longitude."""
        return bool(abs(self.lon.size * self.res - 360.0) < 1e-6)

    def column_latlon(self) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees) of every column, two arrays (ncol,)."""
        iy, ix = np.unravel_index(self._index, self.shape)
        return self.lat[iy], self.lon[ix]

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
        return image.reshape(image.shape[:-2] + (-1,))[..., self._index]

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
