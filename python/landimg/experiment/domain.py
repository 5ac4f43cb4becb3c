"""The experiment's domain: grid, soil texture and vegetation fields (synthetic or from user files).

Without files, the fields are built from smooth Gaussian random fields (GRFs) on the grid plus a
large-scale gradient, so they have the spatial structure of real maps (large coherent regions, sharp
enough contrasts), see ``docs/experiment.md``:

* an *aridity* index ``a = 0.8 g + 0.6 r1`` (unit-free, about N(0, 1)): ``g`` a linear gradient across
  the domain along a seed-dependent direction (standardised), ``r1`` a GRF with correlation length
  ``domain.texture_corr_km``. Arid cells are sandier, carry sparse vegetation and get less rain (the
  weather generator uses the same index for its rain climatology and diurnal range);
* sand % = clip(45 + 14 a + 10 r2, 5, 92), clay % = clip(22 - 6 a + 8 r3, 3, 60) with sand + clay <= 97;
* IGBP class from aridity and latitude: forests where wet (evergreen needleleaf poleward of 45 deg,
  evergreen broadleaf within 15 deg of the equator, deciduous broadleaf / mixed elsewhere), cropland
  and grassland in between, savanna/shrubland, then barren where arid.

The nature run uses this "true" texture; the ensemble uses a degraded estimate: the truth plus a
spatially correlated error field of ``domain.texture_error_pct`` percent standard deviation (soil maps
are uncertain), clipped to the same physical ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landimg import units
from landimg.data.netcdf import NcFile
from landimg.data.reading import to_unit
from landimg.experiment.config import Config
from landimg.grid import Grid
from landimg.random_fields import gaussian_random_field

__all__ = ["IGBP_NAMES", "Domain", "build_domain", "build_grid", "read_field_file"]

#: IGBP class number -> name (1..17).
IGBP_NAMES: dict[int, str] = {
    1: "evergreen needleleaf forest",
    2: "evergreen broadleaf forest",
    3: "deciduous needleleaf forest",
    4: "deciduous broadleaf forest",
    5: "mixed forest",
    6: "closed shrubland",
    7: "open shrubland",
    8: "woody savanna",
    9: "savanna",
    10: "grassland",
    11: "permanent wetland",
    12: "cropland",
    13: "urban",
    14: "cropland/natural mosaic",
    15: "snow and ice",
    16: "barren",
    17: "water",
}

_STREAM_DOMAIN = 101  # SeedSequence stream id of the domain fields


@dataclass(frozen=True, eq=False)
class Domain:
    """Grid plus the land-surface fields of every column.

    Attributes
    ----------
    grid : Grid
    sand_true, clay_true : ndarray (ncol,)
        Soil texture of the nature run, percent.
    sand_est, clay_est : ndarray (ncol,)
        The ensemble's (degraded) estimate of the texture, percent.
    igbp : ndarray of int (ncol,)
        IGBP vegetation class 1..17 (the same for nature run and ensemble).
    aridity : ndarray (ncol,)
        Unit-free aridity index (about N(0, 1)); drives rain climatology and diurnal range.
    """

    grid: Grid
    sand_true: np.ndarray
    clay_true: np.ndarray
    sand_est: np.ndarray
    clay_est: np.ndarray
    igbp: np.ndarray
    aridity: np.ndarray


def build_grid(cfg: Config) -> Grid:
    """The grid of ``cfg.domain`` (preset bounds, ``domain.res`` or the preset's resolution)."""
    lat, lon, res = cfg.grid_spec
    return Grid.regular(lat=lat, lon=lon, res=res, land_mask="builtin")


def _gradient(grid: Grid, angle: float) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(-1, 1, grid.shape[0]), np.linspace(-1, 1, grid.shape[1]), indexing="ij")
    g = np.cos(angle) * x + np.sin(angle) * y
    return (g - g.mean()) / g.std()


def _igbp_from_aridity(aridity: np.ndarray, lat: np.ndarray, u: np.ndarray) -> np.ndarray:
    """IGBP class from aridity (ncol,), latitude (ncol,) and a uniform random field u in [0, 1)."""
    alat = np.abs(lat)
    forest = np.where(alat > 45.0, 1, np.where(alat < 15.0, 2, np.where(u < 0.5, 4, 5)))
    classes = np.select(
        [aridity < -0.9, aridity < -0.3, aridity < 0.3, aridity < 0.8, aridity < 1.4],
        [
            forest,
            np.where(u < 0.5, 12, 14),
            np.where(u < 0.6, 12, 10),
            np.where(u < 0.5, 9, 10),
            np.where(u < 0.5, 7, 8),
        ],
        default=16,
    )
    return classes.astype(np.int32)


def _clip_texture(sand: np.ndarray, clay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sand = np.clip(sand, 5.0, 92.0)
    clay = np.clip(clay, 3.0, 60.0)
    over = np.maximum(sand + clay - 97.0, 0.0)
    return sand, clay - over


def read_field_file(
    path: str, grid: Grid, names: tuple[str, ...], quantity: units.Quantity | None = None
) -> dict[str, np.ndarray]:
    """Read 2-D fields from a netCDF file and sample them at the grid's land cells (nearest neighbour).

    The file needs latitude (degrees north, ascending or descending) and longitude (degrees east, -180..180
    or 0..360) coordinates and variables ``names`` on (lat, lon) in either order (dimensions are found by
    name; a time dimension of length 1 is dropped).

    ``quantity`` (optional): the variables' units attribute is converted to its unit (or refused) and the
    values checked against its plausible range.

    Returns
    -------
    dict name -> ndarray (ncol,)

    Raises
    ------
    ValueError
        Missing variable, unidentifiable dimensions, missing coordinates, unknown units, infinite or
        implausible values, or missing values at land cells.
    """
    with NcFile(path, what="field file") as src:
        layout = src.layout()
        row_index, col_index = grid.nearest_file_indices(
            layout.coord_values("lat"), layout.coord_values("lon"), source=str(path)
        )
        rows, cols = np.unravel_index(grid.column_index, grid.shape)
        iy, ix = row_index[rows], col_index[cols]
        out = {}
        for name in names:
            if name not in src.ds.variables:
                raise ValueError(
                    f"{path}: no variable {name!r} (found {', '.join(map(str, src.ds.variables))})"
                )
            values = layout.read(name, ("lat", "lon"))[iy, ix]
            units.refuse_infinite(values, f"{path}: {name}")
            if quantity is not None:
                values = to_unit(src.ds[name], values, quantity, f"{path}: {name}")
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"{path}: {name} has missing values at {int((~np.isfinite(values)).sum())} land cells"
                )
            out[name] = values
    return out


def _refuse_fractions(path: str, texture: dict[str, np.ndarray]) -> None:
    """Texture read as percent but every value <= 1 (fractions without a units attribute) is refused."""
    if all(np.nanmax(v) <= 1.0 for v in texture.values()):
        raise ValueError(
            f'{path}: sand and clay are all <= 1 %: fractions? set their units attribute to "1" (or give percent)'
        )
    if np.any(texture["sand"] + texture["clay"] > 100.0 + 1e-9):
        raise ValueError(
            f"{path}: sand + clay exceeds 100 % at {int((texture['sand'] + texture['clay'] > 100).sum())} land cells"
        )


def build_domain(cfg: Config, grid: Grid | None = None) -> Domain:
    """Build the domain fields for ``cfg`` (deterministic from ``experiment.seed``).

    User files (``domain.soil_file`` with ``sand`` and ``clay`` in percent, fraction or g/kg by their
    ``units`` attribute, ``domain.vegetation_file``
    with ``igbp``) replace the synthetic truth; the ensemble's texture is always the truth plus the
    correlated error of ``domain.texture_error_pct``.
    """
    grid = build_grid(cfg) if grid is None else grid
    d = cfg.domain
    rng = np.random.default_rng(np.random.SeedSequence([cfg.experiment.seed, _STREAM_DOMAIN]))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    fields = gaussian_random_field(grid, d.texture_corr_km, rng, n=4)
    aridity_img = 0.8 * _gradient(grid, angle) + 0.6 * fields[0]
    aridity = grid.to_columns(aridity_img)
    r2, r3 = grid.to_columns(fields[1]), grid.to_columns(fields[2])
    u = 0.5 * (1.0 + np.tanh(grid.to_columns(fields[3])))  # smooth field in (0, 1)
    sand, clay = _clip_texture(45.0 + 14.0 * aridity + 10.0 * r2, 22.0 - 6.0 * aridity + 8.0 * r3)
    lat, _ = grid.column_latlon()
    igbp = _igbp_from_aridity(aridity, lat, u)
    if d.soil_file:
        f = read_field_file(d.soil_file, grid, ("sand", "clay"), units.TEXTURE)
        _refuse_fractions(d.soil_file, f)
        sand, clay = _clip_texture(f["sand"], f["clay"])
    if d.vegetation_file:
        f = read_field_file(d.vegetation_file, grid, ("igbp",))
        igbp = np.rint(f["igbp"]).astype(np.int32)
        if igbp.min() < 1 or igbp.max() > 17:
            raise ValueError(f"{d.vegetation_file}: igbp classes must be 1..17")
    err = gaussian_random_field(grid, d.texture_corr_km / 2.0, rng, n=2)
    sand_est, clay_est = _clip_texture(
        sand + d.texture_error_pct * grid.to_columns(err[0]),
        clay + 0.6 * d.texture_error_pct * grid.to_columns(err[1]),
    )
    return Domain(
        grid=grid,
        sand_true=sand,
        clay_true=clay,
        sand_est=sand_est,
        clay_est=clay_est,
        igbp=igbp,
        aridity=aridity,
    )
