"""Plots of the experiment: increment split by curvelet scale, figure files written atomically."""

import numpy as np
import pytest
from landimg.experiment import plot


def test_increment_by_scale_sums_back():
    from landimg.transform.curvelet import Curvelet

    C = Curvelet((48, 64), nscales=3)
    y, x = np.mgrid[0:48, 0:64]
    img = np.sin(x / 9.0) + 0.3 * np.cos(y / 2.0) + 0.1 * np.random.default_rng(0).standard_normal((48, 64))
    img[5, 7] = np.nan  # treated as 0
    parts = plot.increment_by_scale(img, C)
    assert parts.shape == (3, 48, 64)
    assert np.allclose(parts.sum(0), np.nan_to_num(img), atol=1e-10)
    # the smooth large-scale signal lives in the coarse scales, the pixel noise in the finest
    assert np.abs(parts[0]).mean() > np.abs(parts[-1]).mean()


def test_figures_are_written(tmp_path):
    if not plot.available():
        pytest.skip("matplotlib not installed")
    lat, lon = np.arange(10.0), np.arange(20.0)
    f = np.random.default_rng(1).random((10, 20))
    f[0, 0] = np.nan
    p = plot.plot_maps(tmp_path / "m.png", lat, lon, {"a": f, "b": f * 2}, "title")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = {"openloop": {"spatial_corr/0-10cm": np.arange(5.0)}}
    plot.plot_metric_series(tmp_path / "s.png", np.arange(5), series, ["0-10cm"], metrics=("spatial_corr",))
    parts = np.stack([f, -f])
    plot.plot_increment_scales(tmp_path / "i.png", lat, lon, parts, np.isfinite(f), "inc")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["i.png", "m.png", "s.png"]
