"""Sizes, dates and infinities in the configuration are refused before anything of the grid's size is
made (docs/reliability.md): one line naming the key, exit 2; no set-up, no land mask of the grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from landimg.cycle import main
from landimg.experiment import loop
from landimg.experiment.config import SECTIONS, ConfigError, load_config, method_sections
from landimg.experiment.memory import config_grid, estimate_memory, estimated_land_columns
from landimg.experiment.settings import specs


def _float_keys() -> list[str]:
    sections = {**SECTIONS, **method_sections()}
    return [f"{name}.{key}" for name, cls in sections.items() for key, spec in specs(cls).items()
            if spec.kind is float or spec.item is float]  # fmt: skip


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_float_key_refuses_non_finite_values(value):
    keys = _float_keys()
    assert len(keys) > 40 and "ensemble.precip_sigma" in keys and "domain.bbox" in keys
    for key in keys:
        section, name = key.split(".")
        spec = specs({**SECTIONS, **method_sections()}[section])[name]
        text = f"{key}=[0, 1, 2, {value}]" if spec.kind is tuple else f"{key}={value}"
        with pytest.raises(ConfigError) as info:
            load_config(None, [text])
        assert str(info.value) == f"{key} must be a finite number, got {float(value)!r}", key


def test_integers_beyond_64_bits_and_floats_beyond_range():
    with pytest.raises(ConfigError, match=r"^ensemble.members = 99999999999999999999 is out of range"):
        load_config(None, ["ensemble.members=99999999999999999999"])
    with pytest.raises(ConfigError, match=r"^experiment.seed = 9223372036854775808 is out of range"):
        load_config(None, ["experiment.seed=9223372036854775808"])
    assert load_config(None, ["experiment.seed=9223372036854775807"]).experiment.seed == 2**63 - 1
    with pytest.raises(ConfigError, match=r"^ensemble.precip_sigma = 1(0)+ is out of range"):
        load_config(None, ["ensemble.precip_sigma=" + "1" + "0" * 400])


def test_dates_outside_the_calendar():
    with pytest.raises(ConfigError, match=r"^experiment.spinup_days: 100000000 days before experiment.start "
                                          r"2021-05-01 is before year 1"):  # fmt: skip
        load_config(None, ["experiment.spinup_days=100000000"])
    with pytest.raises(ConfigError, match=r"^experiment.days: 2920000 days after .* is after year 9999"):
        load_config(None, ["experiment.days=2920000"])
    load_config(None, ["experiment.spinup_days=737910"])  # back to 0001-01-01: a (long) valid run
    with pytest.raises(ConfigError, match=r"^domain.res: res = 1e-300 gives 2.5e\+301 cells along latitude"):
        load_config(None, ["domain.res=1e-300"])
    with pytest.raises(ConfigError, match=r"^domain.res: res = 5e-324 gives inf cells"):
        load_config(None, ["domain.res=5e-324"])


@pytest.mark.timeout(120)  # a hang guard: these used to run for minutes
@pytest.mark.parametrize("override, words", [
    ("ensemble.members=99999999999999999999", "ensemble.members = 99999999999999999999 is out of range"),
    ("ensemble.members=1000000", "memory: the run needs about"),
    ("domain.res=0.01", "memory: the run needs about"),
    ("experiment.spinup_days=100000000", "experiment.spinup_days: 100000000 days before"),
    ("ensemble.precip_sigma=inf", "ensemble.precip_sigma must be a finite number, got inf"),
])  # fmt: skip
def test_absurd_sizes_end_before_the_set_up(override, words, tmp_path, capsys, monkeypatch):
    def no_setup(*args, **kwargs):
        raise AssertionError("the set-up ran")

    monkeypatch.setattr(loop, "setup", no_setup)
    monkeypatch.setenv("LANDIMG_MEMORY_MB", "20000")
    capsys.readouterr()
    assert main(["--out", str(tmp_path / "run"), "--quiet", "--set", override]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"landimg.cycle: error: {words}"), err
    assert not (tmp_path / "run").exists()


def test_the_land_mask_sample_is_bounded_and_exact_for_small_grids(monkeypatch):
    from landimg.grid import Grid

    grid = Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0)
    assert estimated_land_columns(25.0, -125.0, 1.0, 25, 60) == grid.ncol
    seen = []
    import landimg.grid as grid_mod

    real = grid_mod.builtin_land_mask

    def spy(lat, lon):
        seen.append((lat.size, lon.size))
        return real(lat, lon)

    monkeypatch.setattr(grid_mod, "builtin_land_mask", spy)
    cfg = load_config(None, ["domain.res=0.001"])  # 25,000 x 60,000 cells
    (ny, nx), ncol = config_grid(cfg)
    assert (ny, nx) == (25000, 60000) and seen == [(200, 400)]
    assert abs(ncol / (ny * nx) - grid.ncol / (25 * 60)) < 0.03  # the same land fraction as at 1 deg


def test_sampled_land_columns_are_close_to_the_grid():
    from landimg.grid import Grid

    grid = Grid.regular(lat=(-60.0, 90.0), lon=(-180.0, 180.0), res=0.5)  # 300 x 720: sampled 1 in 2
    est = estimated_land_columns(-60.0, -180.0, 0.5, 300, 720)
    assert est != grid.ncol and abs(est / grid.ncol - 1) < 0.01


def test_the_estimate_counts_rank0_parts_once_per_node():
    cfg = load_config(None, ["domain.preset=global1deg"])
    one, four = estimate_memory(cfg, (150, 360), 15483, 1), estimate_memory(cfg, (150, 360), 15483, 4, 4)
    assert four.per_node == four.per_rank + 3 * four.other_rank
    assert four.other_rank < four.per_rank and {"record", "day images"} <= set(four.rank0_only) & set(four.parts)
    assert four.parts["record"] == one.parts["record"]  # rank 0's small record does not shrink with ranks
    # a member's perturbation draw, each method's analysis with the analysis layouts' arrays and rank 0's
    # day images are not alive together: the largest counts
    grouped = {k for g in four.phases for k in g}
    steady = sum(v for k, v in four.parts.items() if k not in grouped)
    point = four.parts["analysis ensemble"] + four.parts["point analysis"]
    curvelet = four.parts["analysis ensemble"] + four.parts["curvelet analysis"]
    draw, images = four.parts["perturbation draw"], four.parts["day images"]
    assert four.per_rank == steady + max(point, curvelet, draw, images)
    others = steady - four.parts["record"] - four.parts["libraries"]
    assert four.other_rank == others + four.other_libraries + max(point, curvelet, draw)
    assert four.parts["models"] < one.parts["models"]  # members are split
    blocks = estimate_memory(cfg, (150, 360), 15483, 4, 4, column_blocks=4)
    assert blocks.parts["score sums"] < one.parts["score sums"]  # kept per column block
    assert math.isfinite(four.per_node) and np.isfinite(one.per_rank)
    assert "restart gather" not in four.parts  # restarts are written by every rank: nothing gathered


def test_the_estimate_grows_with_the_days_by_the_small_record_only():
    """Outputs are appended day by day: a run of 10,000 days needs a few MB more than one of 10 (rank 0's
    record of scores and station series), nothing of the image's size per day."""
    short = estimate_memory(load_config(None, ["domain.preset=global1deg", "experiment.days=10"]), (150, 360), 15483, 1)
    long = estimate_memory(load_config(None, ["domain.preset=global1deg", "experiment.days=10000"]), (150, 360), 15483, 1)
    grown = long.per_rank - short.per_rank
    assert grown == long.parts["record"] - short.parts["record"] and 0 < grown < 50 * 2**20


#: measured peak resident memory (MB) of the busiest rank and of the largest other rank (docs/scaling.md:
#: bench/rank_usage.py, 8 members, 2 days): (res, methods, ranks, column blocks, land columns, rank 0, other,
#: LETKF radius when measured (None: today's default))
_THREE = ["openloop", "curvelet_enkf", "point_letkf"]
_FOUR = ["openloop", "point_enkf", "point_letkf", "curvelet_enkf"]
_MEASURED = (
    (1.0, _THREE, 4, 4, 15483, 308, 273, 250),
    (0.5, _THREE, 4, 4, 61848, 796, 738, 250),
    (0.25, _THREE, 4, 4, 247292, 2755, 2620, 250),
    (1.0, _FOUR, 1, 1, 15483, 784, None, 250),
    (1.0, _FOUR, 4, 4, 15483, 357, 336, 250),
    (0.5, _FOUR, 1, 1, 61848, 2919, None, 250),
    (0.5, _FOUR, 4, 4, 61848, 1006, 1002, 250),
    (1.0, _THREE, 4, 4, 15483, 334, 305, None),
    (1.0, _FOUR, 1, 1, 15483, 822, None, None),  # bounded point-filter work arrays (h-mem)
    (1.0, _FOUR, 4, 4, 15483, 369, 347, None),
)


@pytest.mark.parametrize("res, methods, ranks, blocks, ncol, rank0, other, radius", _MEASURED)
def test_the_estimate_errs_high_by_little_on_the_measured_global_runs(
    res, methods, ranks, blocks, ncol, rank0, other, radius
):
    """Calibrated, not loose: within 0-30 % above every measured peak (the issue's global 0.25 deg run on
    4 ranks needs ~10.6 GB and was refused at 22.5 GB estimated before; it must fit a 23 GB node)."""
    sets = ["domain.bbox=[-60, 90, -180, 180]", f"domain.res={res}", "ensemble.members=8",
            f"analysis.methods={methods}", "experiment.days=2"]  # fmt: skip
    cfg = load_config(None, sets + ([] if radius is None else [f"point_letkf.radius_km={radius}"]))
    ny, nx = int(150 / res), int(360 / res)
    est = estimate_memory(cfg, (ny, nx), ncol, ranks, ranks, column_blocks=blocks)
    mb = 2.0**20
    assert 1.0 <= est.per_rank / mb / rank0 <= 1.3
    if other is not None:
        assert 1.0 <= est.other_rank / mb / other <= 1.3
    if res == 0.25:
        assert est.per_node < 16_000 * mb
