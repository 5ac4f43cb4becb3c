"""Bad inputs are refused at set-up (before the spin-up) by their units and plausible ranges: one line naming
file, variable and problem, exit 2, nothing written; convertible units are converted (docs/reliability.md)."""

import os

import netCDF4
import numpy as np
import pytest
from landimg import units
from landimg.cycle import main
from landimg.experiment.config import load_config
from landimg.experiment.domain import build_domain, build_grid
from landimg.experiment.forcing import FileForcing
from landimg.experiment.obs import FileObservations, read_stations_file
from test_cycle_ranks import SMALL

CFG = load_config(None, SMALL)
GRID = build_grid(CFG)


def _grid_file(path, variables, times=None, time_units="hours since 2021-05-01 00:00"):
    """A netCDF file on the test grid: variables name -> (data, units or None); data (lat, lon) or (time, lat, lon)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("lat", GRID.shape[0])
        ds.createDimension("lon", GRID.shape[1])
        ds.createVariable("lat", "f8", ("lat",))[:] = GRID.lat
        ds.createVariable("lon", "f8", ("lon",))[:] = GRID.lon
        if times is not None:
            ds.createDimension("time", len(times))
            t = ds.createVariable("time", "f8", ("time",))
            t.units = time_units
            t[:] = times
        for name, (data, unit) in variables.items():
            dims = ("time", "lat", "lon") if np.ndim(data) == 3 else ("lat", "lon")
            v = ds.createVariable(name, "f8", dims)
            if unit is not None:
                v.units = unit
            v[:] = data
    return path


def _forcing(path, **change):
    hours = np.arange(-3 * 24, 3 * 24 + 3, 3.0)  # the 3-day spin-up and the 3 days, 3-hourly
    shape = (hours.size,) + GRID.shape
    base = {"Tair": (290.0, "K"), "Qair": (0.008, "kg kg-1"), "PSurf": (1.0e5, "Pa"), "Rainf": (2e-5, "kg m-2 s-1"),
            "Wind": (3.0, "m s-1"), "SWdown": (300.0, "W m-2"), "LWdown": (330.0, "W m-2")}  # fmt: skip
    base.update(change)
    return _grid_file(path, {k: (np.full(shape, v), u) for k, (v, u) in base.items()}, hours)


def _obs(path, value=0.25, unit="m3 m-3", error=None):
    sm = np.full((2,) + GRID.shape, 0.25)
    sm[1] = value
    variables = {"sm": (sm, unit)}
    if error is not None:
        variables["sm_error"] = (np.full((2,) + GRID.shape, error), unit)
    return _grid_file(path, variables, [6.0, 30.0])


def _stations(path, values, unit):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 2)
        ds.createDimension("station", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2021-05-01"
        t[:] = [0.5, 1.5]
        ds.createVariable("lat", "f8", ("station",))[:] = [38.6, 40.2]
        ds.createVariable("lon", "f8", ("station",))[:] = [-98.4, -89.7]
        v = ds.createVariable("sm", "f8", ("time", "station"))
        if unit is not None:
            v.units = unit
        v[:] = values
    return path


def _texture(path, sand, clay, unit=None):
    land = np.ones(GRID.shape)
    return _grid_file(path, {"sand": (sand * land, unit), "clay": (clay * land, unit)})


def _bad_cases(tmp):
    inf_obs = np.full((2,) + GRID.shape, 0.25)
    inf_obs[1, GRID.land] = np.inf
    return {
        "texture in fractions": ("domain.soil_file", _texture(tmp / "frac.nc", 0.4, 0.2), "fractions?"),
        "texture over 100 %": ("domain.soil_file", _texture(tmp / "pct.nc", 70.0, 50.0), "sand + clay exceeds 100 %"),
        "texture in unknown units": ("domain.soil_file", _texture(tmp / "u.nc", 40.0, 20.0, "kg"), "units 'kg' are not"),
        "stations in percent": ("obs.stations_file", _stations(tmp / "st.nc", [[20.0, 30.0], [25.0, 28.0]], None),
                                "percent without units"),
        "infinite observations": ("obs.file", _grid_file(tmp / "inf.nc", {"sm": (inf_obs, None)}, [6.0, 30.0]),
                                  "infinite value"),
        "observations in percent": ("obs.file", _obs(tmp / "pc.nc", 25.0, None), "percent without units"),
        "zero observation error": ("obs.file", _obs(tmp / "e0.nc", error=0.0), "sm_error record 0 (units 'm3 m-3'): "),
        "absurd rain": ("forcing.true_file", _forcing(tmp / "rain.nc", Rainf=(1.0, "kg m-2 s-1")),
                        "Rainf record 0 (units 'kg m-2 s-1'): "),
        "celsius without units": ("forcing.ensemble_file", _forcing(tmp / "tc.nc", Tair=(20.0, None)), "degC"),
        "rain in unknown units": ("forcing.true_file", _forcing(tmp / "ru.nc", Rainf=(1.0, "inch")), "units 'inch'"),
        "a garbage file named .nc": ("obs.file", _garbage(tmp / "garbage.nc"), "not a readable netCDF file"),
    }  # fmt: skip


def _garbage(path):
    path.write_bytes(b"CDF\x01" + b"\x00" * 20)
    return path


def test_bad_inputs_are_refused_at_set_up_with_one_line(tmp_path, capsys):
    for name, (key, path, words) in _bad_cases(tmp_path).items():
        out = tmp_path / f"run-{name.replace(' ', '_')}"
        sets = [a for s in (*SMALL, f'{key}="{path}"') for a in ("--set", s)]
        assert main(["--out", str(out), "--quiet", *sets]) == 2, name
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("landimg.cycle: error: "), (name, err)
        assert str(path) in lines[0] and words in lines[0], (name, lines[0])
        assert not out.exists(), name  # nothing written


def test_a_directory_as_input_file_is_named(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--set", f'obs.file="{tmp_path}"']) == 2
    assert "obs.file: " in capsys.readouterr().err


def test_convertible_units_are_converted(tmp_path):
    f = FileForcing(str(_forcing(tmp_path / "f.nc", Tair=(20.0, "degC"), Rainf=(3.6, "mm/h"), PSurf=(1000.0, "hPa"),
                                 Qair=(8.0, "g/kg"))), GRID, "2021-05-01")  # fmt: skip
    x = f(0.0)
    assert np.allclose(x["tair"], 293.15) and np.allclose(x["precip"], 1e-3) and np.allclose(x["psurf"], 1e5)
    assert np.allclose(x["qair"], 0.008)
    fo = FileObservations(str(_obs(tmp_path / "o.nc", 25.0, "%")), GRID, "2021-05-01")
    assert np.nanmax(fo.observe(1)[0]) == pytest.approx(0.25)
    _, sm = read_stations_file(str(_stations(tmp_path / "s.nc", [[20.0, 30.0], [25.0, 28.0]], "percent")), GRID,
                               "2021-05-01", 2)  # fmt: skip
    assert np.allclose(sm, [[0.2, 0.3], [0.25, 0.28]])
    cfg = load_config(
        None, [*SMALL, f'domain.soil_file="{_texture(tmp_path / "t.nc", 400.0, 200.0, "g kg-1")}"']
    )
    d = build_domain(cfg)
    assert np.allclose(d.sand_true, 40.0) and np.allclose(d.clay_true, 20.0)


def test_units_through_pint():
    assert units.TEMPERATURE.conversion("degC", "x") == (1.0, 273.15)
    assert units.PRECIPITATION.conversion("mm/h", "x") == (1.0 / 3600.0, 0.0)
    assert units.TEXTURE.conversion("g kg-1", "x") == (0.1, 0.0)
    with pytest.raises(units.UnitsError, match="x: no units attribute"):
        units.Quantity("q", "m", 0, 1).conversion(None, "x")
    with pytest.raises(units.UnitsError, match="x: no units attribute"):
        units.SOIL_MOISTURE.conversion(None, "x", assume_default=False)
    with pytest.raises(units.UnitsError, match="2 infinite"):
        units.check_values(np.array([np.inf, -np.inf, np.nan]), units.WIND, "w")
    units.check_values(np.array([np.nan, 0.3]), units.SOIL_MOISTURE, "ok")  # NaN is missing, not an error


def test_resume_refuses_changed_input_files_naming_them(tmp_path, capsys):
    from landimg.cycle import run

    obs = _obs(tmp_path / "o.nc")
    cfg = load_config(None, [*SMALL, f'obs.file="{obs}"'])
    out = tmp_path / "run"
    run(cfg, out, progress=False, stop_after_days=1)
    changed = _obs(tmp_path / "o2.nc", value=0.3)  # another content under the same name
    os.replace(changed, obs)
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"input file(s) changed since the run stopped: obs.file ({obs})" in err
