"""Units of input data, one path for every reader: parse a variable's ``units`` attribute, convert to
landimg's unit with pint, check the converted values against a physically plausible range, or refuse.

A shared leaf (no landimg imports): the experiment's file readers and the product readers of
:mod:`landimg.data` use it. A :class:`Quantity` names landimg's unit, the plausible range (checked after
conversion) and whether a conversion through the density of liquid water is allowed. Unit strings are
parsed by pint with cf_xarray's UDUNITS-style registry (``m3 m-3``, ``kg m-2 s-1``, ``m**3 m**-3``,
``mm/h``, ``degC``, ``%`` ...), plus a few spellings providers use that UDUNITS lacks (``fraction``,
ERA5's ``(0 - 1)``). The density of water (1000 kg m-3) converts only *water amounts*: mm, cm and m of
water and their rates; an arbitrary length (``furlongs``, ``inch``) is refused, never turned into a
water amount. Infinite values are errors (missing values are NaN or ``_FillValue``, never Inf).

>>> TEMPERATURE.convert(np.array([20.0, 25.0]), "degC", "forcing.nc: variable 'Tair'")
array([293.15, 298.15])
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "LAND_FRACTION", "LAYER_WATER", "LONGWAVE", "LW_ACCUMULATION", "PRECIPITATION", "PRESSURE", "QUANTITIES",
    "RETRIEVAL_ERROR", "SHORTWAVE", "SOIL_MOISTURE", "SOIL_MOISTURE_ERROR", "SPECIFIC_HUMIDITY",
    "SW_ACCUMULATION", "TEMPERATURE",
    "TEXTURE", "WATER_ACCUMULATION", "WATER_DENSITY", "WIND", "Conversion", "Quantity", "UnitsError",
    "check_values", "refuse_infinite", "to_canonical",
]  # fmt: skip

#: Density of liquid water, kg m-3 (a water depth of 1 mm is 1 kg m-2).
WATER_DENSITY = 1000.0

#: Spellings providers use that UDUNITS/pint do not parse -> a parsable equivalent.
_ALIASES = {"fraction": "1", "(0 - 1)": "1", "0-1": "1", "degrees_celsius": "degC", "degree_celsius": "degC"}
#: Lengths that measure water (a depth of liquid water); only these convert through the density of water.
_WATER_LENGTHS = frozenset({"meter", "centimeter", "millimeter"})


class UnitsError(ValueError):
    """Values in unknown units, infinite, or outside the plausible range (one line naming the variable)."""


class Conversion(NamedTuple):
    """``value * scale + offset`` converts a file's values to landimg's unit."""

    scale: float
    offset: float

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` (any shape) in landimg's unit, float64."""
        v = np.asarray(values, dtype=float)
        return v * self.scale + self.offset if (self.scale, self.offset) != (1.0, 0.0) else v


@functools.cache
def _registry() -> Any:
    from cf_xarray.units import units  # a pint registry that reads CF/UDUNITS strings

    return units


def _parse(units: str, where: str) -> Any:
    """The pint unit of a ``units`` attribute; UnitsError naming ``where`` if it cannot be parsed."""
    from pint.errors import PintError

    text = _ALIASES.get(str(units).strip().lower(), str(units).strip())
    try:
        return _registry().Unit(text)
    except (PintError, ValueError, TypeError, AttributeError, SyntaxError, KeyError, AssertionError):
        raise UnitsError(
            f"{where}: units {units!r} cannot be parsed (not a UDUNITS/CF unit string)"
        ) from None


def _is_mass(name: str) -> bool:
    """Whether a unit name (a token of a units string) is a mass unit."""
    ureg = _registry()
    try:
        return ureg.Unit(name).dimensionality == ureg.Unit("kg").dimensionality
    except Exception:  # noqa: BLE001 - a token that is not a unit is not a mass
        return False


def _mass_ratio(units: str) -> bool:
    """True for a ratio of masses (``kg kg-1``, ``g/kg``): pint reduces it to a plain number."""
    tokens = (re.sub(r"[-+^\d]+$", "", t.replace("**", "")) for t in re.split(r"[\s/*.()]+", str(units)))
    return sum(_is_mass(name) for name in tokens if name) >= 2


def _is_water_amount(unit: Any) -> bool:
    """A depth of water or its rate: every length in ``unit`` is mm, cm or m (not furlongs, inches ...)."""
    ureg = _registry()
    lengths = [n for n in unit._units if ureg.Unit(n).dimensionality == ureg.Unit("m").dimensionality]
    return bool(lengths) and all(ureg.get_name(n) in _WATER_LENGTHS for n in lengths)


@dataclass(frozen=True)
class Quantity:
    """A physical quantity as landimg reads it.

    Attributes
    ----------
    name : str
        What it is (in messages).
    unit : str
        landimg's unit (values are returned in it), a UDUNITS string.
    low, high : float
        Plausible range in ``unit`` (inclusive); ``low_open`` excludes ``low`` itself.
    default : str or None
        The unit assumed when a file has no ``units`` attribute (landimg's own layouts; None: required).
    water : bool
        A conversion through the density of liquid water is allowed, from water amounts only (mm, cm, m of
        water and their rates) -- e.g. mm h-1 -> kg m-2 s-1, m -> kg m-2.
    volumetric : bool
        Ratios of masses (``kg kg-1``: gravimetric) are refused although pint reads them as plain numbers.
    tolerance : float
        Values at most this far outside the range (in ``unit``) are providers' round-off, clipped to the
        range rather than refused (ERA5 holds swvl1 = -0.0033 m3 m-3 in the Sahara).
    """

    name: str
    unit: str
    low: float
    high: float
    low_open: bool = False
    default: str | None = None
    water: bool = False
    volumetric: bool = False
    tolerance: float = 0.0

    def conversion(self, units: str | None, where: str, *, assume_default: bool = True) -> Conversion:
        """(scale, offset) from ``units`` (the attribute, None if absent) to :attr:`unit`; UnitsError if none.

        Without a units attribute :attr:`default` is assumed (landimg's own layouts) unless
        ``assume_default`` is False (products as distributed, which always declare units).
        """
        if units is None or not str(units).strip():
            if self.default is None or not assume_default:
                raise UnitsError(f"{where}: no units attribute (expected units convertible to {self.unit})")
            units = self.default
        source = _parse(units, where)
        if self.volumetric and _mass_ratio(str(units)):
            raise UnitsError(
                f"{where}: units {units!r} are a mass ratio, not {self.name} units ({self.unit})"
            )
        ureg = _registry()
        target = ureg.Unit(self.unit)
        multipliers = [None]
        if self.water and source.dimensionality != target.dimensionality and _is_water_amount(source):
            density = ureg.Quantity(WATER_DENSITY, "kg m-3")
            multipliers += [density, 1.0 / density]
        for m in multipliers:
            zero, one = (
                ureg.Quantity(v, source) if m is None else ureg.Quantity(v, source) * m for v in (0.0, 1.0)
            )
            if zero.dimensionality == target.dimensionality:
                return Conversion(float((one - zero).to(target).magnitude), float(zero.to(target).magnitude))
        if self.water and source.dimensionality in (
            ureg.Unit("m").dimensionality,
            ureg.Unit("m/s").dimensionality,
        ):
            raise UnitsError(
                f"{where}: units {units!r} are a length but not a depth of water (mm, cm or m): no "
                "conversion to "
                f"{self.name} in {self.unit}"
            )
        raise UnitsError(f"{where}: units {units!r} are not {self.name} units (convertible to {self.unit})")

    def convert(
        self, values: np.ndarray, units: str | None, where: str, hint: str = "", slack: float = 0.0
    ) -> np.ndarray:
        """``values`` (in ``units``, the attribute or None) in :attr:`unit`, checked (:meth:`checked`)."""
        out = self.conversion(units, where).apply(values)
        return self.checked(out, where, units if units else self.default, hint=hint, slack=slack)

    def check(
        self, values: np.ndarray, where: str, units: str | None = None, *, hint: str = "", slack: float = 0.0
    ) -> None:
        """UnitsError unless every finite value is plausible (see :meth:`checked`)."""
        self.checked(values, where, units, hint=hint, slack=slack)

    def checked(
        self, values: np.ndarray, where: str, units: str | None = None, *, hint: str = "", slack: float = 0.0
    ) -> np.ndarray:
        """``values`` with those within :attr:`tolerance` + ``slack`` of the range clipped to it; UnitsError
        naming ``where``, the declared ``units`` and the value found if any lies farther (NaN = missing,
        allowed; Inf refused).

        Parameters
        ----------
        values : ndarray
            Values in :attr:`unit` (after conversion).
        where : str
            File and variable, named in the message.
        units : str, optional
            The units the file declared (named in the message).
        slack : float
            One packing step of CF-packed data in :attr:`unit` (its decoded zero can be slightly negative).
        """
        v = np.asarray(values, dtype=float)
        refuse_infinite(v, where)
        fin = v[np.isfinite(v)]
        if fin.size == 0:
            return v
        margin = self.tolerance + slack
        lo_bad = fin <= self.low if self.low_open and margin == 0.0 else fin < self.low - margin
        hi_bad = fin > self.high + margin
        bad = int(lo_bad.sum() + hi_bad.sum())
        if bad:
            worst = float(fin[hi_bad].max()) if hi_bad.any() else float(fin[lo_bad].min())
            bound = f"({self.low:g}" if self.low_open else f"[{self.low:g}"
            declared = f"units {units!r}" if units else "no units attribute"
            raise UnitsError(
                f"{where} ({declared}): {bad} value(s) outside the plausible {self.name} range {bound}, "
                f"{self.high:g}] {self.unit} after conversion (found {worst:.6g} {self.unit}; "
                f"min {fin.min():.4g}, "
                f"max {fin.max():.4g}){hint}"
            )
        if margin > 0.0 and (fin.min() < self.low or fin.max() > self.high):
            with np.errstate(invalid="ignore"):
                v = np.clip(v, self.low, self.high)
        return v


SOIL_MOISTURE = Quantity(
    "volumetric soil moisture", "m3 m-3", 0.0, 1.0, default="m3 m-3", volumetric=True, tolerance=0.01
)
SOIL_MOISTURE_ERROR = Quantity("soil moisture error", "m3 m-3", 0.0, 0.5, low_open=True, default="m3 m-3",
                               volumetric=True)  # fmt: skip
#: Products' retrieval uncertainty (ESA CCI ``sm_uncertainty`` reaches 1 where the merging weights are tiny).
RETRIEVAL_ERROR = Quantity("retrieval error", "m3 m-3", 0.0, 1.0, default="m3 m-3", volumetric=True)
#: Water held in a soil layer (GLDAS ``SoilMoi*``); its range is checked as m3 m-3 once divided by the layer.
LAYER_WATER = Quantity("soil layer water", "kg m-2", 0.0, np.inf, water=True)
TEXTURE = Quantity("soil texture fraction", "percent", 0.0, 100.0, default="percent")
#: Rain and snow rates: below the world's 1-hour record (305 mm in 42 minutes, Holt, Missouri, 1947).
PRECIPITATION = Quantity(
    "precipitation rate", "kg m-2 s-1", 0.0, 0.1, default="kg m-2 s-1", water=True
)  # 360 mm/h
TEMPERATURE = Quantity("temperature", "K", 170.0, 350.0, default="K")
SPECIFIC_HUMIDITY = Quantity("specific humidity", "kg kg-1", 0.0, 0.06, default="kg kg-1")
PRESSURE = Quantity("surface pressure", "Pa", 3.0e4, 1.1e5, default="Pa")
WIND = Quantity("wind speed", "m s-1", -100.0, 100.0, default="m s-1")
SHORTWAVE = Quantity("shortwave radiation", "W m-2", 0.0, 1500.0, default="W m-2")
LONGWAVE = Quantity("longwave radiation", "W m-2", 30.0, 750.0, default="W m-2")
#: Accumulations over up to a day (ERA5 hourly, ERA5-Land from 00 UTC): a day of the rate bounds above.
WATER_ACCUMULATION = Quantity("accumulated precipitation", "kg m-2", 0.0, 0.1 * 86400.0, water=True)
SW_ACCUMULATION = Quantity("accumulated shortwave radiation", "J m-2", 0.0, 1500.0 * 86400.0)
LW_ACCUMULATION = Quantity("accumulated longwave radiation", "J m-2", 0.0, 750.0 * 86400.0)
LAND_FRACTION = Quantity("land fraction", "1", 0.0, 1.0)

#: By name, for readers that look a quantity up.
QUANTITIES: dict[str, Quantity] = {
    "soil_moisture": SOIL_MOISTURE, "soil_moisture_error": SOIL_MOISTURE_ERROR, "texture": TEXTURE,
    "precipitation": PRECIPITATION, "temperature": TEMPERATURE, "specific_humidity": SPECIFIC_HUMIDITY,
    "pressure": PRESSURE, "wind": WIND, "shortwave": SHORTWAVE, "longwave": LONGWAVE,
}  # fmt: skip


def refuse_infinite(values: np.ndarray, where: str) -> None:
    """Infinite values are an error, not missing data (missing is NaN or ``_FillValue``)."""
    n_inf = int(np.isinf(np.asarray(values, dtype=float)).sum())
    if n_inf:
        raise UnitsError(f"{where}: {n_inf} infinite value(s) (missing values must be NaN or _FillValue)")


def check_values(
    values: np.ndarray, q: Quantity, where: str, hint: str = "", units: str | None = None
) -> None:
    """Refuse infinite values and finite values outside ``q``'s plausible range (NaN = missing, allowed)."""
    q.check(values, where, units, hint=hint)


def to_canonical(
    values: np.ndarray, units: str | None, q: Quantity, where: str, hint: str = ""
) -> np.ndarray:
    """``values`` (in ``units``, the variable's attribute or None) converted to ``q.unit`` and checked."""
    return q.convert(values, units, where, hint=hint)
