"""summary.json's period scores: score_from_day cuts every period mean; the temporal scores per pixel."""

from __future__ import annotations

import numpy as np
import pytest
from landimg.cycle import main
from landimg.experiment import metrics
from landimg.experiment.config import load_config
from landimg.experiment.history import History, ScoreSums, period_time_scores
from landimg.experiment.summary import format_table, summarize

ND, SHAPE = 8, (3, 4)
METHODS = ["openloop", "curvelet_enkf"]


def _run() -> tuple[History, dict, dict]:
    """A small record, the image series of the analysis and background means and the truth, (nd, nl, ny, nx)
    (one ocean cell: NaN)."""
    rng = np.random.default_rng(3)
    h = History.empty(ND, 2, METHODS, nmem=3)
    nl = 3
    truth = 0.3 + 0.02 * rng.standard_normal((ND, nl, *SHAPE))
    truth[:, :, 0, 0] = np.nan  # an ocean cell
    h.station_obs[:] = 0.2 + 0.01 * rng.standard_normal(h.station_obs.shape)
    h.n_obs[:] = np.arange(ND)
    series = {}
    for name, m in h.methods.items():
        series[name] = {"analysis": truth + 0.01 * rng.standard_normal(truth.shape),
                        "background": truth + 0.03 * rng.standard_normal(truth.shape)}  # fmt: skip
        m.scores[:] = rng.random(m.scores.shape)
        m.scores_background[:] = rng.random(m.scores.shape)
        m.station[:] = h.station_obs + 0.01 * rng.standard_normal(h.station_obs.shape)
        m.obs_space[:] = rng.random(m.obs_space.shape)
        m.rank_counts[:] = rng.integers(0, 5, m.rank_counts.shape)
        m.clipped_water[:] = 1.0
    return h, series, truth


def _temporal(series: dict, truth: np.ndarray, first: int, blocks: int = 1) -> dict:
    """The period's temporal scores as the run makes them: running sums per column block of the land
    cells (days from ``first``), the per-pixel scores put together in column order."""
    land = np.isfinite(truth[0, 0]).ravel()
    cols = np.flatnonzero(land)
    pieces = []
    for part in np.array_split(cols, blocks):
        sums = ScoreSums(METHODS, part.size)
        for d in range(first, ND):
            for m in METHODS:
                for kind in ("analysis", "background"):
                    est = series[m][kind][d].reshape(3, -1)[:, part]
                    sums.add(m, kind, est, truth[d].reshape(3, -1)[:, part])
        pieces.append(sums.per_pixel())
    return period_time_scores(np.concatenate(pieces, axis=-1), METHODS)


@pytest.mark.parametrize("first", [1, 3])
def test_score_from_day_sets_every_period_mean(first):
    cfg = load_config(None, [f"experiment.days={ND}", f"experiment.score_from_day={first}"])
    h, series, truth = _run()
    i0 = first - 1
    s = summarize(cfg, h, METHODS, 1.0, 1, _temporal(series, truth, i0))
    assert s["scored_days"] == [first, ND] and s["obs_per_day"] == pytest.approx(np.mean(np.arange(ND)[i0:]))
    m, e = h["curvelet_enkf"], s["methods"]["curvelet_enkf"]
    for i, layer in enumerate(("0-10cm", "10-40cm", "40-100cm")):
        assert e[layer]["ubrmse_spatial"] == pytest.approx(np.mean(m.scores[i0:, i, 1]))
        assert e[layer]["background"]["bias"] == pytest.approx(np.mean(m.scores_background[i0:, i, 2]))
        # temporal: per pixel over the scored days (ddof 0) of the float32 series (analysis.nc's), then the
        # plain mean over the 11 land pixels
        for kind, entry in (("analysis", e[layer]), ("background", e[layer]["background"])):
            est = series["curvelet_enkf"][kind].astype(np.float32).astype(float)
            ref = truth.astype(np.float32).astype(float)
            d = (est[i0:, i] - ref[i0:, i]).reshape(ND - i0, -1)[:, 1:]
            assert entry["ubrmse_time"] == pytest.approx(np.mean(np.std(d, axis=0)), rel=1e-9)
            assert entry["n_ubrmse_time"] == entry["n_time_corr"] == 11
    assert e["0-10cm"]["background"]["ubrmse_time"] > e["0-10cm"]["ubrmse_time"]  # 0.03 vs 0.01 noise
    assert s["primary_score"]["values"]["curvelet_enkf"] == e["0-10cm"]["background"]["ubrmse_time"]
    st = metrics.time_scores(m.station[i0:], h.station_obs[i0:], metrics.MIN_STATION_DAYS)
    assert e["stations"] == st and e["stations"]["n_time_corr"] == 2
    assert e["obs_space"]["omb_mean"] == pytest.approx(np.mean(m.obs_space[i0:, 0]))
    assert e["rank_counts"] == m.rank_counts[i0:].sum(0).tolist()
    assert e["clipped_water_kg_m2"] == ND  # the whole run's water budget, not a period mean
    assert "primary score" in format_table(s)


def test_the_temporal_scores_do_not_depend_on_the_column_blocks():
    """Sums kept per column block and the per-pixel scores put together: bitwise those of one block (the
    scores of the images the files hold, over the whole grid at once)."""
    _, series, truth = _run()
    one = _temporal(series, truth, 0)
    assert _temporal(series, truth, 0, blocks=3) == one
    whole = metrics.TimeSums.of_series(series["openloop"]["background"][:, 1].astype(np.float32),
                                       truth[:, 1].astype(np.float32))  # fmt: skip
    assert metrics.sums_scores(whole) == one["openloop"]["background"][1]


def test_too_few_days_give_no_temporal_score():
    cfg = load_config(None, [f"experiment.days={ND}", "experiment.score_from_day=5"])  # 4 days < 5
    h, series, truth = _run()
    e = summarize(cfg, h, ["openloop"], 1.0, 1, _temporal(series, truth, 4))["methods"]["openloop"]["0-10cm"]
    assert np.isnan(e["ubrmse_time"]) and e["n_ubrmse_time"] == 0 and np.isfinite(e["spatial_corr"])


def test_score_from_day_after_the_last_day_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--set", "experiment.days=4", "--set", "experiment.score_from_day=5"]
    assert main(args) == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["landimg.cycle: error: experiment.score_from_day: must be <= experiment.days = 4 (the last day), got 5"]
