"""Configuration: defaults, TOML + --set merging, validation messages."""

import tomllib

import pytest
from landimg.experiment.config import (
    METHODS,
    Config,
    ConfigError,
    from_dict,
    load_config,
    parse_override,
    to_toml,
)


def test_defaults_have_required_keys():
    c = load_config()
    assert c.domain.preset == "conus" and c.analysis.methods == METHODS
    assert c.analysis.interval_hours == 24 and c.obs.error_std == 0.04
    assert c.experiment.days > 0 and c.ensemble.members >= 2 and c.experiment.spinup_days >= 0
    assert c.grid_spec == ((25.0, 50.0), (-125.0, -65.0), 1.0)
    assert c.steps_per_day * c.experiment.dt == 86400


def test_file_then_set_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[experiment]\ndays = 7\nseed = 3\n[domain]\npreset = "china"\nres = 1.0\n')
    c = load_config(
        f, ["experiment.days=9", 'analysis.methods=["openloop", "curvelet_enkf"]', "obs.error_std=0.05"]
    )
    assert (c.experiment.days, c.experiment.seed, c.domain.preset) == (9, 3, "china")
    assert c.analysis.methods == ("openloop", "curvelet_enkf") and c.obs.error_std == 0.05
    assert c.grid_spec[2] == 1.0
    # plain strings need no quotes; ints are accepted for floats
    assert load_config(None, ["domain.preset=global1deg", "experiment.dt=1800"]).experiment.dt == 1800.0


def test_print_config_roundtrip():
    c = load_config(None, ["experiment.days=4"])
    assert from_dict(tomllib.loads(to_toml(c))) == c


@pytest.mark.parametrize(
    "override, words",
    [
        ("experiment.dayz=3", ["experiment.dayz", "'days'"]),
        ("experimnt.days=3", ["experimnt", "'experiment'"]),
        ("ensemble.members=-4", ["ensemble.members", ">= 2"]),
        ("experiment.days=0", ["experiment.days", "> 0"]),
        ('experiment.days="ten"', ["experiment.days", "integer"]),
        ("experiment.days=2.5", ["experiment.days", "integer"]),
        ("obs.error_std=true", ["obs.error_std", "number"]),
        ("domain.preset=chna", ["domain.preset", "'china'"]),
        ('analysis.methods=["pointenkf"]', ["analysis.methods", "'point_enkf'"]),
        ("analysis.interval_hours=5", ["interval_hours"]),
        ("domain.res=0.7", ["domain.res"]),
        ("experiment.start=May", ["experiment.start"]),
    ],
)
def test_errors_name_the_key_and_suggest(override, words):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    for w in words:
        assert w in str(exc.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="domain.soil_file: no such file"):
        load_config(None, [f'domain.soil_file="{tmp_path / "nope.nc"}"'])
    with pytest.raises(ConfigError, match="section.key"):
        parse_override("days=3")
    assert isinstance(load_config(), Config)


def test_curvelet_variance_support_key_reaches_the_filter():
    from landimg.experiment.config import ConfigError, load_config
    from landimg.experiment.cycle import build_methods

    cfg = load_config(overrides=["analysis.curvelet_variance_support=interior"])
    assert build_methods(cfg)["curvelet_enkf"].variance_support == "interior"
    assert build_methods(load_config())["curvelet_enkf"].variance_support == "land_fraction"
    with pytest.raises(ConfigError, match="interior"):
        load_config(overrides=["analysis.curvelet_variance_support=interier"])


def test_zero_localization_radius_means_own_cell_point_enkf():
    from landimg.experiment.config import load_config
    from landimg.experiment.cycle import build_methods

    cfg = load_config(overrides=["analysis.localization_km=0"])
    assert build_methods(cfg)["point_enkf"].radius_km == 0.0


def test_top_level_key_points_to_its_section(tmp_path):
    from landimg.experiment.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text("days = 3\n")
    with pytest.raises(
        ConfigError, match=r"key 'days' must be inside a \[section\]; did you mean \[experiment\] days"
    ):
        load_config(path)
