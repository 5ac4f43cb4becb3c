"""Units of input data: read a variable's ``units`` attribute, convert to landimg's unit, or refuse.

A shared leaf (no landimg imports): the experiment's file readers and the product readers of
:mod:`landimg.data` use the same table. Each :class:`Quantity` names landimg's unit, the unit strings it
accepts with their conversion (``value * scale + offset``) and a physically plausible range, checked
after conversion. Infinite values are errors (missing values are NaN or ``_FillValue``, never Inf).

>>> to_canonical(np.array([20.0, 25.0]), "degC", TEMPERATURE, "forcing.nc: Tair")
array([293.15, 298.15])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LONGWAVE", "PRECIPITATION", "PRESSURE", "QUANTITIES", "SHORTWAVE", "SOIL_MOISTURE", "SOIL_MOISTURE_ERROR",
    "SPECIFIC_HUMIDITY", "TEMPERATURE", "TEXTURE", "WIND", "Quantity", "UnitsError", "check_values", "refuse_infinite",
    "to_canonical",
]  # fmt: skip


class UnitsError(ValueError):
    """Values in unknown units, infinite, or outside the plausible range (one line naming the variable)."""


@dataclass(frozen=True)
class Quantity:
    """A physical quantity as landimg reads it.

    Attributes
    ----------
    name : str
        What it is (in messages).
    unit : str
        landimg's unit (values are returned in it).
    accepted : dict of str -> (scale, offset)
        Unit strings (compared without case and spaces) and their conversion to ``unit``.
    low, high : float
        Plausible range in ``unit`` (inclusive); ``low_open`` excludes ``low`` itself.
    default : str or None
        The unit assumed when a file has no ``units`` attribute (None: the attribute is required).
    """

    name: str
    unit: str
    accepted: dict[str, tuple[float, float]] = field(repr=False)
    low: float
    high: float
    low_open: bool = False
    default: str | None = None

    def conversion(self, units: str | None, where: str) -> tuple[float, float]:
        """(scale, offset) from ``units`` (the attribute, None if absent) to :attr:`unit`."""
        if units is None or not str(units).strip():
            if self.default is None:
                raise UnitsError(f"{where}: no units attribute (expected one of {', '.join(self.accepted)})")
            units = self.default
        key = _norm(units)
        for name, conv in self.accepted.items():
            if _norm(name) == key:
                return conv
        raise UnitsError(
            f"{where}: units {units!r} are not {self.name} units (accepted: {', '.join(self.accepted)})"
        )


def _norm(units: str) -> str:
    return str(units).replace(" ", "").replace("^", "").replace("**", "").lower()


SOIL_MOISTURE = Quantity("volumetric soil moisture", "m3 m-3", {
    "m3 m-3": (1.0, 0.0), "m3/m3": (1.0, 0.0), "m3.m-3": (1.0, 0.0), "cm3 cm-3": (1.0, 0.0), "cm3/cm3": (1.0, 0.0),
    "1": (1.0, 0.0), "fraction": (1.0, 0.0), "%": (0.01, 0.0), "percent": (0.01, 0.0),
}, 0.0, 1.0, default="m3 m-3")  # fmt: skip
SOIL_MOISTURE_ERROR = Quantity("soil moisture error", "m3 m-3", SOIL_MOISTURE.accepted, 0.0, 0.5, low_open=True,
                               default="m3 m-3")  # fmt: skip
TEXTURE = Quantity("soil texture fraction", "percent", {
    "percent": (1.0, 0.0), "%": (1.0, 0.0), "1": (100.0, 0.0), "fraction": (100.0, 0.0),
    "g kg-1": (0.1, 0.0), "g/kg": (0.1, 0.0),
}, 0.0, 100.0, default="percent")  # fmt: skip
PRECIPITATION = Quantity(
    "precipitation rate",
    "kg m-2 s-1",
    {
        "kg m-2 s-1": (1.0, 0.0),
        "kg/m2/s": (1.0, 0.0),
        "mm s-1": (1.0, 0.0),
        "mm/s": (1.0, 0.0),
        "mm h-1": (1 / 3600, 0.0),
        "mm/h": (1 / 3600, 0.0),
        "mm hr-1": (1 / 3600, 0.0),
        "mm/hr": (1 / 3600, 0.0),
        "mm d-1": (1 / 86400, 0.0),
        "mm/day": (1 / 86400, 0.0),
        "mm day-1": (1 / 86400, 0.0),
        "m s-1": (1000.0, 0.0),
    },
    0.0,
    0.1,
    default="kg m-2 s-1",
)  # fmt: skip  (0.1 kg/m2/s = 360 mm/h)
TEMPERATURE = Quantity("temperature", "K", {
    "K": (1.0, 0.0), "kelvin": (1.0, 0.0), "degK": (1.0, 0.0),
    "degC": (1.0, 273.15), "C": (1.0, 273.15), "deg_C": (1.0, 273.15), "celsius": (1.0, 273.15), "degrees_celsius": (1.0, 273.15),
}, 170.0, 350.0, default="K")  # fmt: skip
SPECIFIC_HUMIDITY = Quantity("specific humidity", "kg kg-1", {
    "kg kg-1": (1.0, 0.0), "kg/kg": (1.0, 0.0), "1": (1.0, 0.0), "g kg-1": (0.001, 0.0), "g/kg": (0.001, 0.0),
}, 0.0, 0.06, default="kg kg-1")  # fmt: skip
PRESSURE = Quantity("surface pressure", "Pa", {"Pa": (1.0, 0.0), "hPa": (100.0, 0.0), "mbar": (100.0, 0.0),
                                               "kPa": (1000.0, 0.0)}, 3.0e4, 1.1e5, default="Pa")  # fmt: skip
WIND = Quantity(
    "wind speed", "m s-1", {"m s-1": (1.0, 0.0), "m/s": (1.0, 0.0)}, -100.0, 100.0, default="m s-1"
)
SHORTWAVE = Quantity(
    "shortwave radiation", "W m-2", {"W m-2": (1.0, 0.0), "W/m2": (1.0, 0.0)}, 0.0, 1500.0, default="W m-2"
)
LONGWAVE = Quantity(
    "longwave radiation", "W m-2", {"W m-2": (1.0, 0.0), "W/m2": (1.0, 0.0)}, 30.0, 750.0, default="W m-2"
)

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


def check_values(values: np.ndarray, q: Quantity, where: str, hint: str = "") -> None:
    """Refuse infinite values and finite values outside ``q``'s plausible range (NaN = missing, allowed)."""
    v = np.asarray(values, dtype=float)
    refuse_infinite(v, where)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return
    lo_bad = fin <= q.low if q.low_open else fin < q.low
    bad = int(lo_bad.sum() + (fin > q.high).sum())
    if bad:
        bound = f"({q.low:g}" if q.low_open else f"[{q.low:g}"
        raise UnitsError(
            f"{where}: {bad} value(s) outside the plausible {q.name} range {bound}, {q.high:g}] {q.unit} "
            f"(min {fin.min():.4g}, max {fin.max():.4g}){hint}"
        )


def to_canonical(
    values: np.ndarray, units: str | None, q: Quantity, where: str, hint: str = ""
) -> np.ndarray:
    """``values`` (in ``units``, the variable's attribute or None) converted to ``q.unit`` and checked."""
    scale, offset = q.conversion(units, where)
    v = np.asarray(values, dtype=float)
    out = v * scale + offset if (scale, offset) != (1.0, 0.0) else v
    check_values(out, q, where, hint)
    return out
