"""summary.json's period scores: score_from_day cuts every period mean; the temporal scores per pixel."""

from __future__ import annotations

import numpy as np
import pytest
from landimg.cycle import main
from landimg.experiment import metrics
from landimg.experiment.config import load_config
from landimg.experiment.history import History
from landimg.experiment.summary import format_table, summarize

ND, SHAPE = 8, (3, 4)


def _history() -> History:
    rng = np.random.default_rng(3)
    h = History.empty(ND, SHAPE, 2, ["openloop", "curvelet_enkf"], nmem=3)
    h.truth[:] = 0.3 + 0.02 * rng.standard_normal(h.truth.shape)
    h.truth[:, :, 0, 0] = np.nan  # an ocean cell
    h.station_obs[:] = 0.2 + 0.01 * rng.standard_normal(h.station_obs.shape)
    h.n_obs[:] = np.arange(ND)
    for m in h.methods.values():
        m.mean[:] = h.truth + 0.01 * rng.standard_normal(h.truth.shape)
        m.mean_background[:] = h.truth + 0.03 * rng.standard_normal(h.truth.shape)
        m.scores[:] = rng.random(m.scores.shape)
        m.scores_background[:] = rng.random(m.scores.shape)
        m.station[:] = h.station_obs + 0.01 * rng.standard_normal(h.station_obs.shape)
        m.obs_space[:] = rng.random(m.obs_space.shape)
        m.rank_counts[:] = rng.integers(0, 5, m.rank_counts.shape)
        m.clipped_water[:] = 1.0
    return h


@pytest.mark.parametrize("first", [1, 3])
def test_score_from_day_sets_every_period_mean(first):
    cfg = load_config(None, [f"experiment.days={ND}", f"experiment.score_from_day={first}"])
    h = _history()
    s = summarize(cfg, h, ["openloop", "curvelet_enkf"], 1.0, 1)
    i0 = first - 1
    assert s["scored_days"] == [first, ND] and s["obs_per_day"] == pytest.approx(np.mean(np.arange(ND)[i0:]))
    m, e = h["curvelet_enkf"], s["methods"]["curvelet_enkf"]
    for i, layer in enumerate(("0-10cm", "10-40cm", "40-100cm")):
        assert e[layer]["ubrmse_spatial"] == pytest.approx(np.mean(m.scores[i0:, i, 1]))
        assert e[layer]["background"]["bias"] == pytest.approx(np.mean(m.scores_background[i0:, i, 2]))
        # temporal: per pixel over the scored days (ddof 0), then the plain mean over the 11 land pixels
        for est, entry in ((m.mean, e[layer]), (m.mean_background, e[layer]["background"])):
            d = (est[i0:, i] - h.truth[i0:, i]).astype(float).reshape(ND - i0, -1)[:, 1:]
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


def test_too_few_days_give_no_temporal_score():
    cfg = load_config(None, [f"experiment.days={ND}", "experiment.score_from_day=5"])  # 4 days < 5
    e = summarize(cfg, _history(), ["openloop"], 1.0, 1)["methods"]["openloop"]["0-10cm"]
    assert np.isnan(e["ubrmse_time"]) and e["n_ubrmse_time"] == 0 and np.isfinite(e["spatial_corr"])


def test_score_from_day_after_the_last_day_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--set", "experiment.days=4", "--set", "experiment.score_from_day=5"]
    assert main(args) == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["landimg.cycle: error: experiment.score_from_day: must be <= experiment.days = 4 (the last day), got 5"]
