"""Observation-space diagnostics (landimg.da.obs_diagnostics)."""

import numpy as np
import pytest
from landimg.da.obs_diagnostics import obs_space_stats, rank_histogram


def _ensemble(rng, nmem, nobs, spread, truth_sd):
    """Truth drawn around the ensemble mean with std truth_sd; members with std spread."""
    mean = rng.standard_normal(nobs) * 0.05 + 0.3
    members = mean + spread * rng.standard_normal((nmem, nobs))
    members += mean - members.mean(axis=0)  # exact mean
    truth = mean + truth_sd * rng.standard_normal(nobs)
    return members, truth


@pytest.mark.parametrize("ratio,shape", [(1.0, "flat"), (2.0, "u"), (0.4, "hump")])
def test_rank_histogram_shapes(ratio, shape):
    rng = np.random.default_rng(1)
    nmem, nobs, sig = 10, 40000, 0.02
    sd = 0.03
    members, truth = _ensemble(rng, nmem, nobs, sd, ratio * sd)
    y = truth + sig * rng.standard_normal(nobs)
    c = rank_histogram(members, y, np.full(nobs, sig), np.random.default_rng(2))
    assert c.sum() == nobs and c.shape == (nmem + 1,)
    f = c / c.mean()
    edge, mid = 0.5 * (f[0] + f[-1]), f[3:-3].mean()
    if shape == "flat":
        assert np.all(np.abs(f - 1) < 0.12)
    elif shape == "u":
        assert edge > 2 * mid
    else:
        assert edge < 0.6 * mid


def test_obs_space_stats_values_and_consistency():
    rng = np.random.default_rng(3)
    ny, nx, nmem, sig = 60, 80, 20, 0.02
    spread = 0.03
    m, t = _ensemble(rng, nmem, ny * nx, spread, spread)
    bg = m.reshape(nmem, ny, nx)
    truth = t.reshape(ny, nx)
    y = truth + sig * rng.standard_normal((ny, nx))
    y[:10] = np.nan  # missing
    bg[:, :, :5] = np.nan  # ocean
    an = bg.copy()
    an = 0.5 * (bg + bg.mean(axis=0))  # spread halved, mean unchanged (NaN stays NaN)
    st = obs_space_stats(bg, an, y, sig)
    ok = np.isfinite(y) & np.isfinite(bg[0])
    assert st.n_obs == ok.sum()
    omb = y[ok] - bg[:, ok].mean(axis=0)
    assert st.omb_mean == pytest.approx(omb.mean(), abs=1e-15)
    assert st.omb_rms == pytest.approx(np.sqrt(np.mean(omb**2)), rel=1e-12)
    assert st.oma_rms == pytest.approx(st.omb_rms, rel=1e-12)
    assert st.spread_a == pytest.approx(0.5 * st.spread_b, rel=1e-12)
    assert st.obs_err == pytest.approx(sig)
    assert abs(st.consistency - 1.0) < 0.03  # truth sampled like the members: consistent
    d = st.as_dict()
    assert d["n_obs"] == st.n_obs and sum(d["rank_counts"]) == st.n_obs
    # no usable observation
    st0 = obs_space_stats(bg, an, np.full((ny, nx), np.nan), sig)
    assert st0.n_obs == 0 and np.isnan(st0.omb_rms) and st0.rank_counts.sum() == 0
    with pytest.raises(ValueError, match="background"):
        obs_space_stats(bg[:, :-1], an, y, sig)


def test_obs_space_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from landimg.experiment.obsplots import plot_rank_histograms, plot_spread_error

    d = np.arange(1, 6)
    s = {k: np.linspace(0.01, 0.03, 5) for k in ("omb_rms", "spread_b", "obs_err", "oma_rms", "spread_a")}
    p1 = plot_spread_error(tmp_path / "se.png", d, {"a": s, "b": s})
    p2 = plot_rank_histograms(tmp_path / "rh.png", {"a": [3, 1, 1, 4], "b": [0, 0, 0, 0]})
    assert p1.stat().st_size > 1000 and p2.stat().st_size > 1000
