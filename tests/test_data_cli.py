"""``python -m landimg.data``: bad input exits non-zero with one line naming the problem, writes nothing."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import h5py
import pytest
from landimg.data import fixtures as fx
from landimg.data import fixtures_forcing as ff
from landimg.data.cli import main

REGION = (34.0, 40.0, -101.0, -94.0)
DOMAIN = ["--bbox", "35", "39", "-100", "-95", "--res", "1"]


def run_bad(args, out, capsys, *needles):
    rc = main(args + ["--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not os.path.exists(out)
    if os.path.isdir(os.path.dirname(out)):
        assert not [p for p in os.listdir(os.path.dirname(out)) if p.startswith(f".{os.path.basename(out)}")]
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("products")
    (d / "gldas").mkdir()
    fx.gldas_file(str(d / "gldas"), dt.datetime(2021, 5, 1, 0), region=REGION)
    (d / "badunits").mkdir()
    fx.gldas_file(
        str(d / "badunits"), dt.datetime(2021, 5, 1, 0), region=REGION, units={"SoilMoi0_10cm_inst": "K"}
    )
    (d / "nolw").mkdir()
    names = [n for n in fx._GLDAS_NAMES if n != "LWdown_f_tavg"]
    fx.gldas_file(str(d / "nolw"), dt.datetime(2021, 5, 1, 0), region=REGION, variables=names)
    (d / "smap").mkdir()
    fx.smap_file(str(d / "smap"), dt.date(2021, 5, 1), bbox=REGION)
    (d / "era5").mkdir()
    ff.era5_file(
        str(d / "era5" / "e5.nc"), [dt.datetime(2021, 5, 1, h) for h in range(3)], REGION, units={"t2m": ""}
    )
    return d


def test_no_file_matches(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(files / "nothing*.nc4"), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        "no file matches",
        "nothing*.nc4",
    )


def test_unknown_product(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "smos", "--files", str(files / "gldas/*"), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        "unknown product 'smos'",
    )


def test_wrong_units(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(files / "badunits/*.nc4"), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        "GLDAS_NOAH025_3H.A20210501.0000.021.nc4",
        "'SoilMoi0_10cm_inst'",
        "units 'K'",
    )


def test_missing_units(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "era5", "--files", str(files / "era5/e5.nc"), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        "e5.nc",
        "'t2m'",
        "no units attribute",
    )


def test_domain_not_covered(files, tmp_path, capsys):
    run_bad(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(files / "gldas/*.nc4"),
            "--bbox",
            "35",
            "39",
            "-110",
            "-105",
            "--res",
            "1",
        ],
        tmp_path / "o.nc",
        capsys,
        "GLDAS_NOAH025_3H",
        "does not cover",
        "longitude",
    )


def test_period_not_covered(files, tmp_path, capsys):
    run_bad(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(files / "gldas/*.nc4"),
            *DOMAIN,
            "--start",
            "2021-05-01",
            "--end",
            "2021-05-03",
        ],
        tmp_path / "o.nc",
        capsys,
        "do not cover the end day 2021-05-03",
    )
    run_bad(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(files / "gldas/*.nc4"),
            *DOMAIN,
            "--start",
            "2021-06-01",
            "--end",
            "2021-06-03",
        ],
        tmp_path / "o.nc",
        capsys,
        "no record between",
    )


def test_corrupt_and_truncated_files(files, tmp_path, capsys):
    bad = tmp_path / "GLDAS_NOAH025_3H.A20210501.0300.021.nc4"
    bad.write_bytes(b"this is not HDF5" * 100)
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(bad), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        str(bad),
        "not a readable netCDF file",
    )
    src = next((files / "gldas").glob("*.nc4")).read_bytes()
    bad.write_bytes(src[: len(src) // 3])
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(bad), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        str(bad),
        "not a readable netCDF file",
    )


def test_missing_group_and_missing_variable(files, tmp_path, capsys):
    path = tmp_path / "SMAP_L3_SM_P_20210501_R18290_001.h5"
    path.write_bytes(next((files / "smap").glob("*.h5")).read_bytes())
    with h5py.File(path, "a") as f:
        del f["Soil_Moisture_Retrieval_Data_PM/retrieval_qual_flag_pm"]
    run_bad(
        ["regrid", "--product", "spl3smp", "--files", str(path), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        path.name,
        "'retrieval_qual_flag_pm' is missing",
    )
    with h5py.File(path, "a") as f:
        del f["Soil_Moisture_Retrieval_Data_PM"]
    run_bad(
        ["regrid", "--product", "spl3smp", "--files", str(path), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        path.name,
        "Soil_Moisture_Retrieval_Data_PM",
    )


def test_undeclared_fill_value(tmp_path, capsys):
    path = tmp_path / "SMAP_L3_SM_P_20210501_R18290_001.h5"
    fx.smap_file(str(tmp_path), dt.date(2021, 5, 1), bbox=(35.0, 37.0, -100.0, -95.0))  # fill in the north
    with h5py.File(path, "a") as f:  # the same -9999 values, no fill value declared anywhere
        g = f["Soil_Moisture_Retrieval_Data_AM"]
        data, attrs = g["soil_moisture"][...], dict(g["soil_moisture"].attrs)
        del g["soil_moisture"]
        g.create_dataset("soil_moisture", data=data)
        g["soil_moisture"].attrs["units"] = attrs["units"]
    run_bad(
        ["regrid", "--product", "spl3smp", "--files", str(path), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        path.name,
        "'soil_moisture'",
        "outside the plausible volumetric soil moisture range [0, 1]",
    )


def test_forcing_variable_in_no_file(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "gldas_forcing", "--files", str(files / "nolw/*.nc4"), *DOMAIN],
        tmp_path / "o.nc",
        capsys,
        "'LWdown'",
    )


def test_output_directory_missing_and_bad_domain(files, tmp_path, capsys):
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(files / "gldas/*.nc4"), *DOMAIN],
        tmp_path / "nodir" / "o.nc",
        capsys,
        "nodir",
    )
    run_bad(
        [
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(files / "gldas/*.nc4"),
            "--bbox",
            "35",
            "39",
            "-100",
            "-95",
            "--res",
            "0.7",
        ],
        tmp_path / "o.nc",
        capsys,
        "--bbox/--res",
        "whole number",
    )
    run_bad(
        ["regrid", "--product", "gldas", "--files", str(files / "gldas/*.nc4"), "--preset", "mars"],
        tmp_path / "o.nc",
        capsys,
        "unknown preset 'mars'",
    )


def test_stations_bad_path(tmp_path, capsys):
    run_bad(
        [
            "stations",
            "--product",
            "ismn",
            "--path",
            str(tmp_path / "none.zip"),
            *DOMAIN,
            "--start",
            "2021-05-01",
            "--end",
            "2021-05-02",
            "--depth",
            "0",
            "0.1",
        ],
        tmp_path / "s.nc",
        capsys,
        "none.zip",
    )
    (tmp_path / "empty").mkdir()
    run_bad(
        [
            "stations",
            "--product",
            "ismn",
            "--path",
            str(tmp_path / "empty"),
            *DOMAIN,
            "--start",
            "2021-05-01",
            "--end",
            "2021-05-02",
            "--depth",
            "0",
            "0.1",
        ],
        tmp_path / "s.nc",
        capsys,
        "empty",
        "ISMN",
    )


def test_module_entry_point_exit_status(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "landimg.data",
            "regrid",
            "--product",
            "gldas",
            "--files",
            str(tmp_path / "x*.nc4"),
            *DOMAIN,
            "--out",
            str(tmp_path / "o.nc"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no file matches" in r.stderr
    assert not (tmp_path / "o.nc").exists()
