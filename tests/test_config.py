"""Configuration: sections derived from the declaring dataclasses, TOML + --set merging, one-line errors."""

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from landimg import da
from landimg.cycle import build_methods
from landimg.experiment.config import (
    MOVED,
    SUPPLIED,
    Config,
    ConfigError,
    from_dict,
    load_config,
    method_sections,
    parse_override,
    to_dict,
    to_toml,
)
from landimg.experiment.settings import build_section, specs


def test_method_sections_are_the_method_dataclasses():
    """Every method with settings has a section whose keys are exactly its dataclass fields (minus supplied)."""
    sections = method_sections()
    assert {"point_enkf", "point_letkf", "curvelet_enkf"} <= set(sections)
    tree = to_dict(load_config())
    for name, cls in sections.items():
        fields = {f.name for f in dataclasses.fields(cls)} - set(SUPPLIED)
        keys = set(specs(cls, SUPPLIED))
        assert keys <= fields and set(tree[name]) <= keys
        defaults = cls()
        for key in tree[name]:  # the default section is the dataclass default, value for value
            value = getattr(defaults, key)
            assert tree[name][key] == (list(value) if isinstance(value, tuple) else value), (name, key)
        for key, spec in specs(cls, SUPPLIED).items():
            assert spec.doc, f"{name}.{key} has no doc (field metadata 'doc' or the docstring Attributes)"


def test_each_method_key_reaches_its_method():
    cfg = load_config(None, ["point_enkf.radius_km=0", "curvelet_enkf.variance_support=interior",
                             "curvelet_enkf.nscales=3", "curvelet_enkf.inflation=1.2",
                             'analysis.methods=["point_letkf", "point_enkf", "curvelet_enkf"]',
                             "point_letkf.max_obs=9", "analysis.obs_depth=0.04"])  # fmt: skip
    m = build_methods(cfg)
    assert list(m) == ["point_letkf", "point_enkf", "curvelet_enkf"]
    assert m["point_enkf"].radius_km == 0.0 and m["point_letkf"].max_obs == 9
    assert m["curvelet_enkf"].variance_support == "interior" and m["curvelet_enkf"].nscales == 3
    assert m["curvelet_enkf"].inflation == 1.2 and m["point_enkf"].inflation == 1.0
    assert all(x.obs_depth == (0.0, 0.04) for x in m.values())  # supplied by the experiment
    assert isinstance(build_methods(load_config())["curvelet_enkf"], da.CurveletEnKF)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_keys_name_their_new_place(old):
    targets = MOVED[old]
    for t in targets:  # the new place exists
        sec, key = t.split(".")
        assert key in specs(method_sections()[sec], SUPPLIED), t
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"{old}=1"])
    msg = str(exc.value)
    assert f"{old} moved to {targets[0]}" in msg and "\n" not in msg


def test_an_old_runs_configuration_still_reads():
    """The TOML stored in restarts before the keys moved (defaults + sentinels) reads as today's defaults
    with the earlier behaviour of the keys whose default changed since (issue 9: diagonal solver, fixed
    inflation as stored and single-scale, no rain error, no per-member spin-up, no per-member soil)."""
    old = tomllib.loads((Path(__file__).parent / "data" / "old_config.toml").read_text())
    then = ["curvelet_enkf.solver=diagonal", "curvelet_enkf.inflation_mode=fixed", "point_enkf.inflation_mode=fixed",
            "ensemble.rain_error_std=0", "ensemble.spread_days=0", "ensemble.perturb_soil=false",
            'analysis.methods=["openloop", "point_enkf", "curvelet_enkf"]', "curvelet_enkf.inflation_per_scale=false",
            "point_letkf.radius_km=500", "curvelet_enkf.bias_correction=false", "curvelet_enkf.denkf=false",
            "curvelet_enkf.layer_increments=full", "curvelet_enkf.obs_corr_km=0",
            "curvelet_enkf.variance_filtering=false", "curvelet_enkf.anomaly_update=joint",
            "curvelet_enkf.cg_preconditioner=jacobi", "curvelet_enkf.cg_single_precision=false",
            "curvelet_enkf.variance_support=land_fraction", "curvelet_enkf.inflation_layers=all",
            "point_enkf.inflation_layers=all", "point_letkf.inflation_layers=all"]  # fmt: skip
    # the stored analysis.localization_km moves to both point filters; the stored curvelet_obs_corr_km = 0
    # now says "assume a white error" (issue 18: unset = the declared error)
    assert from_dict(old, legacy=True) == load_config(None, then)
    old["analysis"]["localization_km"] = 250.0
    old["ensemble"]["inflation"] = 1.1
    old["analysis"]["curvelet_obs_white_fraction"] = 0.3
    old["analysis"]["curvelet_obs_corr_km"] = 100.0
    cfg = from_dict(old, legacy=True)
    assert cfg.method["point_enkf"].radius_km == 250.0 and cfg.method["point_letkf"].radius_km == 250.0
    assert cfg.method["curvelet_enkf"].inflation == 1.1 and cfg.method["point_enkf"].inflation == 1.1
    assert cfg.method["curvelet_enkf"].obs_white_fraction == 0.3
    with pytest.raises(ConfigError, match="moved to"):
        from_dict(old)


def test_a_restart_written_before_inflation_layers_inflates_every_layer():
    """Restarts written before ``inflation_layers`` (default now "observed") resume with every layer inflated."""
    tree = to_dict(load_config(None, []))
    for sec in ("curvelet_enkf", "point_enkf", "point_letkf"):
        del tree[sec]["inflation_layers"]
    old, today = from_dict(tree, legacy=True), from_dict(to_dict(load_config(None, [])), legacy=True)
    for sec in ("curvelet_enkf", "point_enkf", "point_letkf"):
        assert old.method[sec].inflation_layers == "all" and today.method[sec].inflation_layers == "observed"


def test_print_config_roundtrip_with_optional_keys():
    c = load_config(None, ["experiment.days=4", "curvelet_enkf.scale_weights=[1, 0.5, 0.25]", "curvelet_enkf.solver=diagonal",
                           "curvelet_enkf.layer_increments=regression", "domain.res=2.5",
                           "curvelet_enkf.obs_corr_km=50"])  # fmt: skip
    text = to_toml(c)
    assert "# pad =   (unset)" in text and "scale_weights = [1.0, 0.5, 0.25]" in text
    assert from_dict(tomllib.loads(text)) == c
    assert c.method["curvelet_enkf"].pad is None and c.domain.res == 2.5
    assert load_config().domain.res is None and load_config().grid_spec[2] == 1.0


def test_file_then_set_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text(
        '[experiment]\ndays = 7\nseed = 3\n[domain]\npreset = "china"\nres = 1.0\n[point_enkf]\nmax_obs = 5\n'
    )
    c = load_config(
        f, ["experiment.days=9", 'analysis.methods=["openloop", "curvelet_enkf"]', "point_enkf.max_obs=6"]
    )
    assert (c.experiment.days, c.experiment.seed, c.domain.preset, c.domain.res) == (9, 3, "china", 1.0)
    assert c.analysis.methods == ("openloop", "curvelet_enkf") and c.method["point_enkf"].max_obs == 6
    assert load_config(None, ["domain.preset=global1deg", "experiment.dt=1800"]).experiment.dt == 1800.0


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
        ('analysis.methods=["openloop", "openloop"]', ["analysis.methods", "duplicates"]),
        ("analysis.interval_hours=5", ["analysis.interval_hours", "divide 24"]),
        ("experiment.dt=1000", ["experiment.dt", "divide one day"]),
        ("domain.res=0.7", ["domain.res", "does not divide"]),
        ("experiment.start=May", ["experiment.start", "YYYY-MM-DD"]),
        ("curvelet_enkf.pooling=wedg", ["curvelet_enkf.pooling", "'wedge'"]),
        ("curvelet_enkf.obs_white_fraction=0.5", ["curvelet_enkf.obs_white_fraction", "obs_corr_km > 0"]),
        ("point_enkf.radius_km=-1", ["point_enkf.radius_km", ">= 0"]),
        ("point_enkf.inflation_mode=adaptve", ["point_enkf.inflation_mode", "'adaptive'"]),
        ("point_enkf.obs_depth=0.1", ["point_enkf.obs_depth", "valid in [point_enkf]"]),
        ("curvelet_enkf.nscales=2.5", ["curvelet_enkf.nscales", "integer"]),
        ('curvelet_enkf.finest="bogus"', ["curvelet_enkf.finest", "'bogus' is not one of wavelets, curvelets"]),
        ("curvelet_enkf.nscales=40", ["curvelet_enkf.nscales", "does not fit the padded grid (36, 80)", "at most 4"]),
        ("curvelet_enkf.nscales=5", ["curvelet_enkf.nscales", "at most 4"]),
        ("curvelet_enkf.nscales=1", ["curvelet_enkf.nscales", "at least 2"]),
        ("curvelet_enkf.nangles_coarse=10", ["curvelet_enkf.nangles_coarse", "multiple of 4"]),
        ("curvelet_enkf.pad=-1", ["curvelet_enkf.pad", ">= 0"]),
        ("curvelet_enkf.pad=40", ["curvelet_enkf.pad", "exceeds the axis length"]),
        ("curvelet_enkf.obs_var_samples=0", ["curvelet_enkf.obs_var_samples", ">= 1"]),
    ],
)
def test_errors_are_one_line_naming_the_key(override, words):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_curvelet_transform_settings_are_checked_against_the_grid_of_the_run():
    """The number of scales and the padding depend on the grid: checked when the configuration is read
    (before any spin-up), for the methods that run."""
    assert load_config(None, ["curvelet_enkf.nscales=4"]).method["curvelet_enkf"].nscales == 4
    assert load_config(None, ["domain.preset=global1deg", "curvelet_enkf.nscales=7"]).method["curvelet_enkf"].nscales == 7
    with pytest.raises(ConfigError, match=r"^curvelet_enkf.pad: pad along longitude must be 0"):
        load_config(None, ["domain.preset=global1deg", "curvelet_enkf.pad=2"])
    with pytest.raises(ConfigError, match=r"^curvelet_enkf.nscales = 8 does not fit"):
        load_config(None, ["domain.preset=global1deg", "curvelet_enkf.nscales=8"])
    cfg = load_config(None, ['analysis.methods=["point_letkf"]', "curvelet_enkf.nscales=40"])  # not run
    assert cfg.method["curvelet_enkf"].nscales == 40


def test_post_init_checks_of_any_dataclass_name_the_key():
    @dataclass(frozen=True)
    class Toy:
        """A toy method.

        Attributes
        ----------
        shape : {"round", "square"}
            The shape.
        size : float
            Its size, m.
        """

        shape: str = "round"
        size: float = 1.0
        width: int | None = None

        def __post_init__(self):
            if self.width is not None and self.width > self.size:
                raise ValueError(f"width must be <= size ({self.size}), got {self.width}")

    keys = specs(Toy)
    assert keys["shape"].choices == ("round", "square") and keys["size"].doc == "Its size, m."
    assert keys["width"].optional and keys["width"].default is None
    with pytest.raises(ConfigError, match=r"^toy.width: must be <= size"):
        build_section(Toy, "toy", {"width": 3}, "test")
    with pytest.raises(ConfigError, match=r"toy.shape: 'oval' is not one of round, square"):
        build_section(Toy, "toy", {"shape": "oval"}, "test")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="domain.soil_file: no such file"):
        load_config(None, [f'domain.soil_file="{tmp_path / "nope.nc"}"'])
    with pytest.raises(ConfigError, match="obs.file: .* is not a file"):
        load_config(None, [f'obs.file="{tmp_path}"'])
    with pytest.raises(ConfigError, match="section.key"):
        parse_override("days=3")
    assert isinstance(load_config(), Config)


def test_top_level_key_points_to_its_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("days = 3\n")
    with pytest.raises(
        ConfigError, match=r"key 'days' must be inside a \[section\]; did you mean \[experiment\] days"
    ):
        load_config(path)


def test_configuration_doc_is_current():
    from landimg.experiment import configdoc

    if not configdoc.DOC_PATH.is_file():
        pytest.skip("docs/ not next to the package (installed copy)")
    assert configdoc.DOC_PATH.read_text() == configdoc.render(), (
        "docs/configuration.md is out of date: run python -m landimg.experiment.configdoc"
    )
    text = configdoc.render()
    for name, cls in method_sections().items():
        for key in specs(cls, SUPPLIED):
            assert f"| `{key}` |" in text.split(f"## [{name}]")[1], (name, key)


def test_a_restart_of_today_is_not_rescaled():
    """Only an earlier version's stored configuration has its perturbation length converted."""
    cfg = load_config(None, ["ensemble.corr_length_km=500.0"])
    again = from_dict(tomllib.loads(to_toml(cfg)), legacy=True)
    assert again == cfg


def test_cdf_matching_without_a_climatology_is_refused_at_set_up(tmp_path):
    """CDF matching fits the retrievals to the spin-up's climatology before the members spread: with
    spread_days >= spinup_days there is none, which must be one line at set-up, not a failure after it."""
    f = tmp_path / "sm.nc"
    f.write_bytes(b"")
    sets = ['obs.product="esacci"', f'obs.files="{f}"', "obs.cdf_match=true", "experiment.spinup_days=5"]
    with pytest.raises(ConfigError, match=r"obs\.cdf_match needs .*spinup_days = 5 must exceed .*spread_days = 5"):
        load_config(None, [*sets, "ensemble.spread_days=5"])
    assert load_config(None, [*sets, "ensemble.spread_days=4"]).obs.cdf_match


def test_an_option_the_default_layer_rule_refuses_names_the_way_out():
    """The curvelet's default layer rule ('analysis') cannot run with the diagonal solver: the one-line error
    says which setting to add, and adding it is accepted."""
    with pytest.raises(ConfigError, match="curvelet_enkf.*set layer_increments='regression'"):
        load_config(None, ["curvelet_enkf.solver=diagonal"])
    cfg = load_config(None, ["curvelet_enkf.solver=diagonal", "curvelet_enkf.layer_increments=regression"])
    assert cfg.method["curvelet_enkf"].layer_increments == "regression"
