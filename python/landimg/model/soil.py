"""Soil and vegetation parameters of the column model.

Soil hydraulics follow Campbell (1974) / Clapp & Hornberger (1978): ``psi = psi_s (theta/theta_s)^-b``
(mm, negative) and ``K = K_s (theta/theta_s)^(2b+3)`` (mm/s). Parameters come either from sand and clay
percentages through the Cosby et al. (1984) pedotransfer functions (:func:`from_texture`) or from the
Clapp & Hornberger (1978) texture classes (:func:`from_class`). Thermal properties of the solids follow
CoLM (heat capacity and conductivity from sand and clay, dry conductivity from the bulk density).

Vegetation parameters per IGBP class (Schenk & Jackson 2002 root profiles, leaf/stem area, roughness)
are in :func:`vegetation` and :func:`root_fractions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLAPP_HORNBERGER",
    "IGBP_CLASSES",
    "SoilParams",
    "VegParams",
    "class_names",
    "from_class",
    "from_texture",
    "root_fractions",
    "stack_members",
    "vegetation",
]

# Clapp & Hornberger (1978) classes: b, -psi_s (mm), K_s (mm/s), theta_s, and a representative
# (sand, clay) percentage (USDA texture-triangle centroid) for the thermal properties.
CLAPP_HORNBERGER: dict[str, tuple[float, float, float, float, float, float]] = {
    "sand": (4.05, 121.0, 0.176, 0.395, 92.0, 5.0),
    "loamy sand": (4.38, 90.0, 0.156, 0.410, 82.0, 6.0),
    "sandy loam": (4.90, 218.0, 0.0347, 0.435, 58.0, 10.0),
    "silt loam": (5.30, 786.0, 0.0072, 0.485, 17.0, 13.0),
    "loam": (5.39, 478.0, 0.0070, 0.451, 43.0, 18.0),
    "sandy clay loam": (7.12, 299.0, 0.0063, 0.420, 58.0, 27.0),
    "silty clay loam": (7.75, 356.0, 0.0017, 0.477, 10.0, 34.0),
    "clay loam": (8.52, 630.0, 0.0025, 0.476, 32.0, 34.0),
    "sandy clay": (10.4, 153.0, 0.0022, 0.426, 52.0, 42.0),
    "silty clay": (10.4, 490.0, 0.0010, 0.492, 6.0, 47.0),
    "clay": (11.4, 405.0, 0.0013, 0.482, 22.0, 58.0),
}

# IGBP land-cover classes 1..17: name, Schenk & Jackson (2002) d50 (cm) and shape beta,
# leaf area index, stem area index, roughness length z0m (m), snow-free albedo.
IGBP_CLASSES: dict[int, tuple[str, float, float, float, float, float, float]] = {
    1: ("evergreen needleleaf forest", 15.0, -1.623, 4.5, 1.0, 1.0, 0.12),
    2: ("evergreen broadleaf forest", 15.0, -1.623, 5.0, 1.0, 1.5, 0.13),
    3: ("deciduous needleleaf forest", 16.0, -1.681, 3.0, 1.0, 1.0, 0.14),
    4: ("deciduous broadleaf forest", 16.0, -1.681, 4.0, 1.0, 1.0, 0.15),
    5: ("mixed forest", 15.5, -1.652, 4.0, 1.0, 1.0, 0.14),
    6: ("closed shrubland", 19.0, -1.336, 2.0, 0.5, 0.15, 0.18),
    7: ("open shrubland", 28.0, -1.909, 1.0, 0.3, 0.1, 0.22),
    8: ("woody savanna", 18.5, -1.582, 2.5, 0.6, 0.5, 0.17),
    9: ("savanna", 28.0, -1.798, 1.5, 0.4, 0.2, 0.19),
    10: ("grassland", 9.0, -1.359, 1.5, 0.3, 0.05, 0.20),
    11: ("permanent wetland", 9.0, -1.359, 2.0, 0.3, 0.05, 0.14),
    12: ("cropland", 22.0, -1.796, 2.5, 0.4, 0.06, 0.19),
    13: ("urban and built-up", 23.0, -1.757, 0.5, 0.2, 0.5, 0.15),
    14: ("cropland/natural vegetation mosaic", 22.0, -1.796, 2.0, 0.4, 0.1, 0.18),
    15: ("snow and ice", 9.0, -2.261, 0.0, 0.0, 0.01, 0.25),
    16: ("barren", 9.0, -2.261, 0.0, 0.0, 0.01, 0.25),
    17: ("water bodies", 9.0, -2.261, 0.0, 0.0, 0.001, 0.08),
}


@dataclass(frozen=True)
class SoilParams:
    """Soil parameters of ``ncol`` columns (uniform with depth), arrays of shape (ncol,), or (ncol, nmem)
    for parameters that differ between ensemble members (all fields the same shape).

    Attributes
    ----------
    theta_s : porosity (m3/m3).
    b : Clapp-Hornberger exponent (-).
    psi_s : saturated matric potential (mm, negative).
    k_s : saturated hydraulic conductivity (mm/s).
    sand, clay : texture (percent) used for the thermal properties.
    csol : heat capacity of the soil solids (J/m3/K).
    tksol : thermal conductivity of the soil solids (W/m/K).
    tkdry : thermal conductivity of dry soil (W/m/K).
    """

    theta_s: np.ndarray
    b: np.ndarray
    psi_s: np.ndarray
    k_s: np.ndarray
    sand: np.ndarray
    clay: np.ndarray
    csol: np.ndarray
    tksol: np.ndarray
    tkdry: np.ndarray

    @property
    def ncol(self) -> int:
        """Number of columns."""
        return int(self.theta_s.shape[0])

    @property
    def nmem(self) -> int | None:
        """Number of members of per-member parameters (arrays (ncol, nmem)), None for per-column (ncol,)."""
        return int(self.theta_s.shape[1]) if self.theta_s.ndim == 2 else None

    def member(self, i: int) -> SoilParams:
        """Per-column parameters (ncol,) of member ``i`` (per-column parameters are returned as they are)."""
        if self.nmem is None:
            return self
        if not -self.nmem <= i < self.nmem:
            raise ValueError(f"member {i} out of range for {self.nmem} members")
        return SoilParams(**{k: np.array(getattr(self, k)[:, i]) for k in _SOIL_FIELDS})

    def theta_at(self, psi: float | np.ndarray) -> np.ndarray:
        """Volumetric water (m3/m3, (ncol,)) at matric potential ``psi`` (mm, negative)."""
        return self.theta_s * (np.asarray(psi, dtype=float) / self.psi_s) ** (-1.0 / self.b)

    @property
    def field_capacity(self) -> np.ndarray:
        """Volumetric water at psi = -3399 mm (m3/m3, (ncol,))."""
        return self.theta_at(-3399.0)

    @property
    def wilting_point(self) -> np.ndarray:
        """Volumetric water at psi = -1.5e5 mm (m3/m3, (ncol,))."""
        return self.theta_at(-1.5e5)

    def take(self, index: np.ndarray) -> SoilParams:
        """Soil parameters of the columns ``index`` (any numpy index along the column axis)."""
        return SoilParams(**{k: np.array(getattr(self, k)[index]) for k in _SOIL_FIELDS})


_SOIL_FIELDS = ("theta_s", "b", "psi_s", "k_s", "sand", "clay", "csol", "tksol", "tkdry")


def stack_members(members: list[SoilParams] | tuple[SoilParams, ...]) -> SoilParams:
    """Per-member soil parameters (arrays (ncol, nmem)) from one per-column SoilParams per member.

    Parameters
    ----------
    members : sequence of SoilParams, each with arrays (ncol,)

    Returns
    -------
    SoilParams with arrays (ncol, len(members)); ``stack_members(ps).member(i)`` equals ``ps[i]``.
    """
    if len(members) == 0:
        raise ValueError("stack_members needs at least one SoilParams")
    ncol = members[0].ncol
    for i, p in enumerate(members):
        if not isinstance(p, SoilParams) or p.nmem is not None or p.ncol != ncol:
            raise ValueError(f"members[{i}] must be a per-column SoilParams with {ncol} columns")
    return SoilParams(**{k: np.stack([getattr(p, k) for p in members], axis=1) for k in _SOIL_FIELDS})


@dataclass(frozen=True)
class VegParams:
    """Vegetation parameters of ``ncol`` columns, arrays of shape (ncol,) (``rootfr`` (nlev, ncol)).

    Attributes
    ----------
    igbp : IGBP class 1..17.
    lai, sai : leaf and stem area index (m2/m2).
    z0m : roughness length for momentum (m).
    albedo : snow-free surface albedo (-).
    emissivity : surface emissivity (-).
    gsmax : maximum leaf stomatal conductance (m/s).
    d50, beta : Schenk & Jackson (2002) root-profile parameters (cm, -).
    """

    igbp: np.ndarray
    lai: np.ndarray
    sai: np.ndarray
    z0m: np.ndarray
    albedo: np.ndarray
    emissivity: np.ndarray
    gsmax: np.ndarray
    d50: np.ndarray
    beta: np.ndarray


def _texture_thermal(sand: np.ndarray, clay: np.ndarray, theta_s: np.ndarray) -> tuple[np.ndarray, ...]:
    """CoLM thermal properties of the solids from sand/clay percent and porosity."""
    denom = np.maximum(sand + clay, 1.0)
    csol = (2.128 * sand + 2.385 * clay) / denom * 1.0e6
    tksol = (8.80 * sand + 2.92 * clay) / denom
    bd = 2700.0 * (1.0 - theta_s)
    tkdry = (0.135 * bd + 64.7) / (2700.0 - 0.947 * bd)
    return csol, tksol, tkdry


def _as_percent(name: str, x: np.ndarray | float) -> np.ndarray:
    a = np.atleast_1d(np.asarray(x, dtype=float))
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be percentages of shape (ncol,) or (ncol, nmem), got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0.0) or np.any(a > 100.0):
        raise ValueError(f"{name} must be finite percentages in [0, 100]")
    return a


def from_texture(sand: np.ndarray, clay: np.ndarray) -> SoilParams:
    """Soil parameters from texture with the Cosby et al. (1984) pedotransfer functions.

    Parameters
    ----------
    sand, clay : array (ncol,) or (ncol, nmem)
        Sand and clay content (percent), sand + clay <= 100; (ncol, nmem) gives per-member parameters
        (e.g. perturbed texture per ensemble member).

    Returns
    -------
    SoilParams
        theta_s = 0.489 - 0.00126 S; b = 2.91 + 0.159 C; psi_s = -10 * 10^(1.88 - 0.0131 S) mm;
        K_s = 0.0070556 * 10^(-0.884 + 0.0153 S) mm/s.
    """
    s = _as_percent("sand", sand)
    c = _as_percent("clay", clay)
    if s.shape != c.shape:
        raise ValueError(f"sand and clay must have the same shape, got {s.shape} and {c.shape}")
    if np.any(s + c > 100.0 + 1e-9):
        raise ValueError("sand + clay must not exceed 100 percent")
    theta_s = 0.489 - 0.00126 * s
    b = 2.91 + 0.159 * c
    psi_s = -10.0 * 10.0 ** (1.88 - 0.0131 * s)
    k_s = 0.0070556 * 10.0 ** (-0.884 + 0.0153 * s)
    csol, tksol, tkdry = _texture_thermal(s, c, theta_s)
    return SoilParams(theta_s, b, psi_s, k_s, s.copy(), c.copy(), csol, tksol, tkdry)


def class_names() -> list[str]:
    """Names of the Clapp & Hornberger (1978) soil classes."""
    return list(CLAPP_HORNBERGER)


def from_class(name: str | list[str] | np.ndarray, ncol: int | None = None) -> SoilParams:
    """Soil parameters of Clapp & Hornberger (1978) texture classes.

    Parameters
    ----------
    name : str or sequence of str
        One class name for all columns, or one name per column (then ``ncol`` may be omitted).
        Case-insensitive; underscores are read as spaces.
    ncol : int
        Number of columns.

    Raises
    ------
    ValueError
        Unknown class name (the message lists the valid names) or bad ``ncol``.
    """
    if isinstance(name, str):
        if ncol is None:
            raise ValueError("ncol is required when a single soil class name is given")
        names = [name] * _check_ncol(ncol)
    else:
        names = [str(n) for n in name]
        if ncol is not None and _check_ncol(ncol) != len(names):
            raise ValueError(f"ncol={ncol} does not match the {len(names)} class names given")
    rows = []
    for n in names:
        key = n.strip().lower().replace("_", " ")
        if key not in CLAPP_HORNBERGER:
            raise ValueError(f"unknown soil class {n!r}; valid names: {', '.join(CLAPP_HORNBERGER)}")
        rows.append(CLAPP_HORNBERGER[key])
    t = np.array(rows, dtype=float).reshape(len(rows), 6)
    b, mpsi, k_s, theta_s, sand, clay = (t[:, i].copy() for i in range(6))
    csol, tksol, tkdry = _texture_thermal(sand, clay, theta_s)
    return SoilParams(theta_s, b, -mpsi, k_s, sand, clay, csol, tksol, tkdry)


def _check_ncol(ncol: int) -> int:
    if isinstance(ncol, bool) or not isinstance(ncol, (int, np.integer)) or ncol < 1:
        raise ValueError(f"ncol must be a positive integer, got {ncol!r}")
    return int(ncol)


def vegetation(
    igbp: int | np.ndarray,
    ncol: int,
    *,
    lai: float | np.ndarray | None = None,
    sai: float | np.ndarray | None = None,
    z0m: float | np.ndarray | None = None,
    albedo: float | np.ndarray | None = None,
    emissivity: float | np.ndarray = 0.96,
    gsmax: float | np.ndarray = 0.005,
) -> VegParams:
    """Vegetation parameters for IGBP classes (1..17), with optional overrides.

    Parameters
    ----------
    igbp : int or array (ncol,)
        IGBP land-cover class.
    ncol : int
        Number of columns.
    lai, sai, z0m, albedo, emissivity, gsmax : scalar or array (ncol,), optional
        Overrides of the class defaults: leaf/stem area index (m2/m2), roughness length (m),
        snow-free albedo (-), emissivity (-), maximum leaf stomatal conductance (m/s).
    """
    ncol = _check_ncol(ncol)
    cls = np.broadcast_to(np.asarray(igbp), (ncol,))
    if not np.issubdtype(cls.dtype, np.integer) or np.any(cls < 1) or np.any(cls > 17):
        raise ValueError("igbp must be integer IGBP classes in 1..17")
    table = np.array([IGBP_CLASSES[int(k)][1:] for k in range(1, 18)], dtype=float)[cls - 1]

    def pick(
        name: str, value: float | np.ndarray | None, default: np.ndarray, lo: float, hi: float
    ) -> np.ndarray:
        if value is None:
            return default.copy()
        a = np.array(np.broadcast_to(np.asarray(value, dtype=float), (ncol,)))
        if not np.all(np.isfinite(a)) or np.any(a < lo) or np.any(a > hi):
            raise ValueError(f"{name} must be finite and within [{lo}, {hi}]")
        return a

    return VegParams(
        igbp=np.array(cls, dtype=np.int64),
        lai=pick("lai", lai, table[:, 2], 0.0, 15.0),
        sai=pick("sai", sai, table[:, 3], 0.0, 5.0),
        z0m=pick("z0m", z0m, table[:, 4], 1e-4, 5.0),
        albedo=pick("albedo", albedo, table[:, 5], 0.0, 1.0),
        emissivity=pick("emissivity", emissivity, np.full(ncol, 0.96), 0.5, 1.0),
        gsmax=pick("gsmax", gsmax, np.full(ncol, 0.005), 0.0, 0.1),
        d50=table[:, 0].copy(),
        beta=table[:, 1].copy(),
    )


def root_fractions(veg: VegParams, z_bottom: np.ndarray) -> np.ndarray:
    """Root fraction per layer (nlev, ncol) from Schenk & Jackson (2002).

    The cumulative fraction above depth d (cm) is Y(d) = 1 / (1 + (d/d50)^beta) (beta < 0); layer j
    receives Y(bottom_j) - Y(top_j) and the deepest layer the remainder, so each column sums to 1.
    """
    zb = np.asarray(z_bottom, dtype=float) * 100.0  # cm
    y = 1.0 / (1.0 + (zb[:, None] / veg.d50[None, :]) ** veg.beta[None, :])
    y[-1, :] = 1.0
    frac = np.diff(np.vstack([np.zeros((1, y.shape[1])), y]), axis=0)
    return np.asfortranarray(frac)
