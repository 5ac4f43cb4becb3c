"""ISMN stations through the ismn package: daily means of the 'G' readings, both formats, dir and zip."""

from __future__ import annotations

import datetime as dt

import netCDF4
import numpy as np
import pytest
from landimg import Grid
from landimg.data.cli import main
from landimg.data.common import DataError
from landimg.data.fixtures_stations import Sensor, Station, demo_stations, write_ismn, zip_directory
from landimg.data.stations import read_ismn, sensor_overlaps

BBOX = (35.0, 39.0, -100.0, -95.0)
START = dt.date(2021, 5, 1)


@pytest.fixture(scope="module")
def grid():
    return Grid.regular(lat=BBOX[:2], lon=BBOX[2:], res=1.0, land_mask="all")


@pytest.fixture(scope="module")
def stations():
    sts = demo_stations(BBOX, START, 3, n=3, seed=11)
    far = Station("DEMONET", "Faraway", 45.0, -80.0, 10.0, [sts[0].sensors[0]])  # outside the domain
    return sts + [far]


def expected_daily(sensor: Sensor, days):
    out = []
    for d in days:
        vals = [
            v
            for t, v, f in zip(sensor.times, sensor.values, sensor.flags, strict=True)
            if t.date() == d and f == "G"
        ]
        out.append(np.mean(vals) if vals else np.nan)
    return np.array(out)


@pytest.mark.parametrize("fmt,zipped", [("header_values", False), ("ceop", True), ("header_values", True)])
def test_daily_means_of_good_readings(tmp_path, grid, stations, fmt, zipped):
    root = tmp_path / "ismn"
    write_ismn(str(root), stations, fmt)
    path = zip_directory(str(root), str(tmp_path / "ismn.zip")) if zipped else str(root)
    days = [START + dt.timedelta(days=k) for k in range(3)]
    st = read_ismn(path, grid, str(days[0]), str(days[-1]), (0.0, 0.1))
    assert st.ids == ["DEMONET/Station1", "DEMONET/Station2", "DEMONET/Station3"]
    for k, s in enumerate(stations[:3]):
        shallow = [x for x in s.sensors if x.depth_from < 0.1]
        assert len(shallow) == 1
        # written with 4 decimals: the file's values are what ISMN holds
        sensor = Sensor(0.05, 0.05, "x", shallow[0].times, np.round(shallow[0].values, 4), shallow[0].flags)
        np.testing.assert_allclose(st.sm[:, k], expected_daily(sensor, days), rtol=0, atol=1e-12)
        assert st.lat[k] == pytest.approx(s.lat, abs=1e-5) and st.depth_from[k] == 0.05
    assert np.all(st.sm < 0.9)  # flagged readings (0.99) never enter


def test_depth_selection_and_cli_output(tmp_path, stations):
    write_ismn(str(tmp_path / "ismn"), stations, "header_values")
    out = tmp_path / "st.nc"
    rc = main(
        [
            "stations",
            "--product",
            "ismn",
            "--path",
            str(tmp_path / "ismn"),
            "--bbox",
            *map(str, BBOX),
            "--res",
            "1",
            "--start",
            "2021-05-01",
            "--end",
            "2021-05-03",
            "--depth",
            "0.1",
            "0.4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    with netCDF4.Dataset(out) as ds:
        assert ds["sm"].dimensions == ("time", "station") and ds["sm"].shape == (3, 3)
        np.testing.assert_allclose(ds["depth_from"][:], 0.2)
        assert list(ds["station_id"][:]) == ["DEMONET/Station1", "DEMONET/Station2", "DEMONET/Station3"]
        assert "days since 1970-01-01" in ds["time"].units
    assert sensor_overlaps(0.05, 0.05, 0.0, 0.1) and not sensor_overlaps(0.1, 0.1, 0.0, 0.1)
    assert sensor_overlaps(0.0, 0.3, 0.1, 0.4) and not sensor_overlaps(0.0, 0.05, 0.05, 0.1)


def test_bad_station_inputs(tmp_path, grid, stations):
    with pytest.raises(DataError, match="no such ISMN download"):
        read_ismn(str(tmp_path / "missing.zip"), grid, "2021-05-01", "2021-05-03", (0.0, 0.1))
    write_ismn(str(tmp_path / "ismn"), stations, "header_values")
    with pytest.raises(
        DataError, match="no station inside the domain has a soil moisture sensor overlapping 1-2 m"
    ):
        read_ismn(str(tmp_path / "ismn"), grid, "2021-05-01", "2021-05-03", (1.0, 2.0))
    with pytest.raises(DataError, match="--depth"):
        read_ismn(str(tmp_path / "ismn"), grid, "2021-05-01", "2021-05-03", (0.4, 0.1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        read_ismn(str(tmp_path / "empty"), grid, "2021-05-01", "2021-05-03", (0.0, 0.1))
