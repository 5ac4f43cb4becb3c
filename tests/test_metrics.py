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


def test_layer_names():
    assert [metrics.layer_name(layer) for layer in metrics.LAYERS] == ["0-10cm", "10-40cm", "40-100cm"]
