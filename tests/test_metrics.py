"""Metrics on analytic cases."""

import numpy as np
import pytest
from landimg.experiment import metrics


def test_constant_offset_and_scaling():
    rng = np.random.default_rng(0)
    r = rng.random(500)
    x = 2.0 * r + 0.3
    assert metrics.pearson(x, r) == pytest.approx(1.0)
    assert metrics.bias(x, r) == pytest.approx(np.mean(r) + 0.3)
    # ubRMSE = std of the difference = std(r) (population)
    assert metrics.ubrmse(x, r) == pytest.approx(np.std(r))
    assert metrics.pearson(-x, r) == pytest.approx(-1.0)
    assert metrics.ubrmse(r + 0.1, r) == pytest.approx(0.0, abs=1e-12)
    assert metrics.rmse(r + 0.1, r) == pytest.approx(0.1)


def test_ubrmse_identity_and_masking():
    rng = np.random.default_rng(1)
    r = rng.random((20, 30))
    x = r + 0.05 * rng.standard_normal(r.shape) - 0.02
    assert metrics.ubrmse(x, r) ** 2 + metrics.bias(x, r) ** 2 == pytest.approx(metrics.rmse(x, r) ** 2)
    mask = np.zeros_like(r, dtype=bool)
    mask[:10] = True
    x2 = x.copy()
    x2[~mask] = 100.0  # outside the mask: must not matter
    x2[0, 0] = np.nan  # NaN cells skipped
    s = metrics.spatial_scores(x2, r, mask)
    m = mask.copy()
    m[0, 0] = False
    assert s["bias"] == pytest.approx(np.mean((x - r)[m]))
    assert s["spatial_corr"] == pytest.approx(np.corrcoef(x[m], r[m])[0, 1])


def test_known_correlation_of_two_vectors():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    r = np.array([1.0, 3.0, 2.0, 4.0])
    assert metrics.pearson(x, r) == pytest.approx(0.8)
    assert np.isnan(metrics.pearson(np.ones(4), r))


def test_time_corr_per_station():
    t = np.linspace(0, 6, 40)
    r = np.stack([np.sin(t), np.cos(t), t], axis=1)
    x = np.stack([2 * np.sin(t) + 1, -np.cos(t), t**2], axis=1)
    x[5, 0] = np.nan
    c = metrics.time_corr(x, r)
    assert c[0] == pytest.approx(1.0) and c[1] == pytest.approx(-1.0)
    assert c[2] == pytest.approx(np.corrcoef(t**2, t)[0, 1])
    assert np.isnan(metrics.time_corr(np.ones((5, 1)), np.arange(5.0)[:, None]))[0]


def test_temporal_scores_by_hand():
    # pixel 0: d = x - r = [1, 3, 1, 3, 2] -> mean 2, deviations [-1, 1, -1, 1, 0] -> ubRMSE sqrt(4/5)
    r = np.array([[0.1, 0.2, 0.3, 0.2, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 0.0, 1.0, np.nan]]).T
    x = r + np.array([[1.0, 3.0, 1.0, 3.0, 2.0], [0.5] * 5, [0.0, 0.0, 0.0, 0.0, 0.0]]).T
    x[:, 1] = 2.0 * r[:, 1] + 0.5  # pixel 1: a perfect linear relation, d = r + 0.5: ubRMSE = std(r) = sqrt(2)
    ub = metrics.ubrmse_time(x, r)
    assert ub[0] == pytest.approx(np.sqrt(4.0 / 5.0), rel=1e-12)
    assert ub[1] == pytest.approx(np.sqrt(2.0), rel=1e-12)
    assert np.isnan(ub[2])  # 4 valid days < MIN_DAYS
    assert metrics.ubrmse_time(x, r, min_days=4)[2] == 0.0
    tc = metrics.time_corr(x, r, min_days=5)
    # pixel 0 by hand: r' = [-0.08, 0.02, 0.12, 0.02, -0.08], x' = r' + [-1, 1, -1, 1, 0]
    ra = r[:, 0] - r[:, 0].mean()
    xa = ra + np.array([-1.0, 1.0, -1.0, 1.0, 0.0])
    assert tc[0] == pytest.approx(np.sum(xa * ra) / np.sqrt(np.sum(xa**2) * np.sum(ra**2)), rel=1e-12)
    assert tc[1] == pytest.approx(1.0, rel=1e-12) and np.isnan(tc[2])
    s = metrics.time_scores(x, r)  # plain means over the pixels with >= 5 valid days (pixels 0 and 1)
    assert s["n_ubrmse_time"] == 2 and s["ubrmse_time"] == pytest.approx((np.sqrt(0.8) + np.sqrt(2.0)) / 2)
    assert s["n_time_corr"] == 2 and s["time_corr"] == pytest.approx((tc[0] + 1.0) / 2)


def test_running_sums_match_two_pass_numpy_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(4)
    nt, shape = 30, (4, 5)
    r = 0.25 + 0.05 * rng.standard_normal((nt, *shape)).cumsum(0) / 4
    x = 0.8 * r + 0.07 + 0.03 * rng.standard_normal(r.shape)
    x[rng.random(x.shape) < 0.2] = np.nan  # gaps
    r[0, 0, 0] = np.nan
    sums = metrics.TimeSums.zeros(shape)
    for t in range(nt):  # day by day, as a streaming run adds them
        sums.add(x[t], r[t])
    ub, tc = sums.ubrmse(), sums.corr()
    for iy, ix in np.ndindex(shape):
        ok = np.isfinite(x[:, iy, ix]) & np.isfinite(r[:, iy, ix])
        d = x[ok, iy, ix] - r[ok, iy, ix]
        assert sums.n[iy, ix] == ok.sum()
        assert ub[iy, ix] == pytest.approx(np.std(d, ddof=0), rel=1e-10)
        assert tc[iy, ix] == pytest.approx(stats.pearsonr(x[ok, iy, ix], r[ok, iy, ix])[0], rel=1e-10)
    np.testing.assert_array_equal(ub, metrics.ubrmse_time(x, r))
    # ubRMSE^2 + bias^2 = RMSE^2 per pixel (the decomposition of Entekhabi et al. 2010)
    d = x - r
    rmse2, bias = np.nanmean(d**2, axis=0), np.nanmean(d, axis=0)
    np.testing.assert_allclose(ub**2 + bias**2, rmse2, rtol=1e-10)


def test_temporal_scores_match_pytesmo():
    """pytesmo's ``ubrmsd`` and ``pearsonr`` as an oracle (skipped where pytesmo is not installed; the
    development check ran it in a separate venv, see docs/experiment.md)."""
    pm = pytest.importorskip("pytesmo.metrics")
    rng = np.random.default_rng(9)
    r = 0.2 + 0.06 * rng.random((40, 6))
    x = 1.3 * r - 0.05 + 0.02 * rng.standard_normal(r.shape)
    ub, tc = metrics.ubrmse_time(x, r), metrics.time_corr(x, r)
    for k in range(r.shape[1]):
        assert ub[k] == pytest.approx(pm.ubrmsd(x[:, k], r[:, k], ddof=0), rel=1e-10)
        assert tc[k] == pytest.approx(pm.pearsonr(x[:, k], r[:, k])[0], rel=1e-10)


def test_layer_names():
    assert [metrics.layer_name(layer) for layer in metrics.LAYERS] == ["0-10cm", "10-40cm", "40-100cm"]
