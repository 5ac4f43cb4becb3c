"""ISMN downloads in their real layouts ("header + values" and CEOP), written by landimg's own code.

Layout: ``ROOT/NETWORK/STATION/NETWORK_NETWORK_STATION_sm_FROM_TO_SENSOR_START_END.stm`` with depths
in metres formatted ``%.6f``, plus ``NETWORK_NETWORK_STATION_static_variables.csv``; optionally zipped.

* header + values: first line ``CSE NETWORK STATION LAT LON ELEV FROM TO SENSOR``, then one reading a
  line: ``YYYY/MM/DD HH:MM VALUE ISMN_FLAG PROVIDER_FLAG``;
* CEOP (separate files): every line ``YYYY/MM/DD HH:MM YYYY/MM/DD HH:MM CSE NETWORK STATION LAT LON
  ELEV FROM TO VALUE ISMN_FLAG PROVIDER_FLAG`` (nominal and actual time).

ISMN quality flag ``G`` = good; others (``D01``, ``C03``, ``M`` ...) are not used by landimg.
"""

from __future__ import annotations

import datetime as _dt
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Sensor", "Station", "write_ismn", "zip_directory"]


@dataclass
class Sensor:
    """One soil-moisture sensor: depth range (m), name and its readings."""

    depth_from: float
    depth_to: float
    name: str
    times: list[_dt.datetime]
    values: np.ndarray
    flags: list[str]


@dataclass
class Station:
    """An ISMN station (names without underscores, as ISMN writes them)."""

    network: str
    name: str
    lat: float
    lon: float
    elevation: float
    sensors: list[Sensor] = field(default_factory=list)


_STATIC_ROWS = (
    "saturation;m^3*m^-3;0.00;0.30;0.46;saturation water content;HWSD;;;;;;",
    "clay fraction;% weight;0.00;0.30;22.0;clay;HWSD;;;;;;",
    "sand fraction;% weight;0.00;0.30;41.0;sand;HWSD;;;;;;",
    "silt fraction;% weight;0.00;0.30;37.0;silt;HWSD;;;;;;",
    "organic carbon;% weight;0.00;0.30;0.9;organic carbon;HWSD;;;;;;",
    "land cover classification;;;;10;Cropland, rainfed;CCI_landcover_2010;;;;;;",
    "climate classification;;;;Cfa;Temperate, without dry season, hot summer;koeppen_geiger_2007;;;;;;",
)


def _line_hv(t: _dt.datetime, v: float, flag: str) -> str:
    return f"{t:%Y/%m/%d %H:%M} {v:.4f} {flag} M"


def _line_ceop(st: Station, s: Sensor, t: _dt.datetime, v: float, flag: str) -> str:
    stamp = f"{t:%Y/%m/%d %H:%M}"
    return (
        f"{stamp} {stamp} CSE {st.network} {st.name} {st.lat:.5f} {st.lon:.5f} {st.elevation:.2f} "
        f"{s.depth_from:.2f} {s.depth_to:.2f} {v:.4f} {flag} M"
    )


def write_ismn(root: str, stations: list[Station], fmt: str = "header_values") -> list[str]:
    """Write stations under ``root`` in format ``header_values`` or ``ceop``; returns the data files."""
    if fmt not in ("header_values", "ceop"):
        raise ValueError(f"fmt must be 'header_values' or 'ceop', got {fmt!r}")
    paths = []
    for st in stations:
        folder = os.path.join(root, st.network, st.name)
        os.makedirs(folder, exist_ok=True)
        with open(
            os.path.join(folder, f"{st.network}_{st.network}_{st.name}_static_variables.csv"), "w"
        ) as f:
            f.write(
                "quantity_name;unit;depth_from[m];depth_to[m];value;description;quantity_source_name;"
                "quantity_source_description;quantity_source_provider;quantity_source_version;"
                "quantity_source_resolution;quantity_source_timerange;quantity_source_url\n"
            )
            f.writelines(row + "\n" for row in _STATIC_ROWS)
        for s in st.sensors:
            start, end = s.times[0], s.times[-1]
            name = (
                f"{st.network}_{st.network}_{st.name}_sm_{s.depth_from:.6f}_{s.depth_to:.6f}_{s.name}_"
                f"{start:%Y%m%d}_{end:%Y%m%d}.stm"
            )
            path = os.path.join(folder, name)
            with open(path, "w") as f:
                if fmt == "header_values":
                    f.write(
                        f"CSE {st.network} {st.name} {st.lat:.5f} {st.lon:.5f} {st.elevation:.2f} "
                        f"{s.depth_from:.2f} {s.depth_to:.2f} {s.name}\n"
                    )
                    lines = [_line_hv(t, v, fl) for t, v, fl in zip(s.times, s.values, s.flags, strict=True)]
                else:
                    lines = [
                        _line_ceop(st, s, t, v, fl)
                        for t, v, fl in zip(s.times, s.values, s.flags, strict=True)
                    ]
                f.write("\n".join(lines) + "\n")
            paths.append(path)
    return paths


def zip_directory(root: str, zip_path: str) -> str:
    """Zip the contents of ``root`` (paths relative to it, as ISMN's download archives are)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, _, files in os.walk(root):
            for name in sorted(files):
                full = os.path.join(folder, name)
                zf.write(full, os.path.relpath(full, root))
    return zip_path


def demo_stations(
    bbox: tuple[float, float, float, float], start: _dt.date, days: int, n: int = 4, seed: int = 0, truth=None
) -> list[Station]:
    """``n`` stations inside ``bbox`` with hourly readings, two sensors each (0.05 m and 0.20-0.20 m),
    about 10 % of readings flagged bad (``D01``, value 0.99) and the rest ``G``.

    ``truth(lat, lon, when) -> value`` gives the readings (default: a smooth field plus noise).
    """
    from landimg.data.fixtures import smooth_field

    rng = np.random.default_rng(seed)
    s, nn, w, e = bbox
    stations = []
    t0 = _dt.datetime(start.year, start.month, start.day)
    times = [t0 + _dt.timedelta(hours=h) for h in range(24 * days)]
    for k in range(n):
        lat, lon = rng.uniform(s, nn), rng.uniform(w, e)
        st = Station("DEMONET", f"Station{k + 1}", float(lat), float(lon), 300.0)
        for top, bottom, sensor in ((0.05, 0.05, "ThetaProbe-ML2X"), (0.20, 0.20, "ThetaProbe-ML2X")):
            if truth is None:
                vals = np.array([float(smooth_field("sm", np.array(lat), np.array(lon), t)) for t in times])
                vals = vals + 0.02 * rng.standard_normal(len(times)) + (0.03 if top > 0.1 else 0.0)
            else:
                vals = np.array([float(truth(lat, lon, t)) for t in times])
            flags = ["G"] * len(times)
            for i in np.flatnonzero(rng.random(len(times)) < 0.1):
                flags[i] = "D01"
                vals[i] = 0.99
            st.sensors.append(Sensor(top, bottom, sensor, times, np.clip(vals, 0.0, 1.0), flags))
        stations.append(st)
    return stations
