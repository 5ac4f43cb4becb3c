"""Gap filling and edge padding for the periodic curvelet transform."""

from __future__ import annotations

import numpy as np
import pytest
from landimg.transform.curvelet import Curvelet
from landimg.transform.imageprep import EdgePadding, default_pad, fill_gaps


def test_fill_gaps_mean_per_image():
    x = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    valid = np.zeros((3, 4), dtype=bool)
    valid[:, :2] = True
    out = fill_gaps(x, valid)
    assert out is not x and np.array_equal(x, np.arange(24.0).reshape(2, 3, 4))
    for m in range(2):
        mean = x[m][valid].mean()
        np.testing.assert_array_equal(out[m][valid], x[m][valid])
        np.testing.assert_allclose(out[m][~valid], mean)


def test_fill_gaps_background_and_nan():
    x = np.full((3, 5, 6), 0.3)
    x[:, 0, 0] = np.nan
    valid = np.ones((3, 5, 6), dtype=bool)
    valid[1, 2, 3] = False
    bg = np.linspace(0.1, 0.2, 6)  # broadcasts along columns
    out = fill_gaps(x, valid, background=bg)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0, 0], 0.1)  # NaN counts as a gap
    assert out[1, 2, 3] == bg[3] and out[0, 2, 3] == 0.3
    out2 = fill_gaps(x, valid)
    np.testing.assert_allclose(out2[:, 0, 0], 0.3)


def test_fill_gaps_errors():
    x = np.ones((2, 4, 4))
    with pytest.raises(ValueError, match="broadcast"):
        fill_gaps(x, np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        fill_gaps(x, np.ones((4, 4)))
    v = np.ones((2, 4, 4), dtype=bool)
    v[1] = False
    with pytest.raises(ValueError, match="no valid pixels"):
        fill_gaps(x, v)
    with pytest.raises(ValueError, match="background"):
        fill_gaps(x, v, background=np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        fill_gaps(x, v, background=np.nan)
    np.testing.assert_array_equal(fill_gaps(x, v, background=2.0)[1], 2.0)


@pytest.mark.parametrize("shape, periodic", [((25, 60), False), ((150, 360), True), ((37, 53), False)])
def test_pad_crop_roundtrip(shape, periodic):
    E = EdgePadding(shape, periodic_lon=periodic)
    x = np.random.default_rng(0).standard_normal((3, *shape))
    y = E.pad(x)
    assert y.shape == (3, *E.padded_shape)
    np.testing.assert_array_equal(E.crop(y), x)
    assert E.interior.shape == E.padded_shape and E.interior.sum() == shape[0] * shape[1]
    np.testing.assert_array_equal(y[:, E.interior], x.reshape(3, -1))
    valid = np.random.default_rng(1).random(shape) > 0.3
    pv = E.embed_mask(valid)
    assert pv.shape == E.padded_shape and pv.sum() == valid.sum() and not pv[~E.interior].any()
    np.testing.assert_array_equal(E.crop(pv), valid)
    if periodic:
        assert E.padded_shape[1] == shape[1]
    else:
        assert E.padded_shape[1] >= shape[1] + 2 * default_pad(shape[1])
    assert E.padded_shape[0] >= shape[0] + 2 * default_pad(shape[0])


def test_pad_is_mirror_near_edges_and_continuous_at_seam():
    ny, nx = 40, 70
    yy, xx = np.mgrid[0:ny, 0:nx]
    f = np.sin(yy / 6.0) + 0.03 * xx
    E = EdgePadding((ny, nx), pad=8)
    g = E.pad(f)
    oy, ox = E.offset
    assert (oy, ox) == (8, 8) and E.padded_shape == (56, 86)
    # half-sample mirror at the edges: first padded row/col equals the edge row/col
    np.testing.assert_allclose(g[oy - 1, ox : ox + nx], f[0], atol=1e-3)
    np.testing.assert_allclose(g[oy + ny, ox : ox + nx], f[-1], atol=1e-3)
    np.testing.assert_allclose(g[oy : oy + ny, ox - 1], f[:, 0], atol=1e-3)
    # periodic continuity: no jump larger than a few times the field's own steps
    jump_y = np.abs(np.diff(np.r_[g, g[:1]], axis=0)).max()
    jump_x = np.abs(np.diff(np.c_[g, g[:, :1]], axis=1)).max()
    assert jump_y < 3 * np.abs(np.diff(f, axis=0)).max() + 0.1
    assert jump_x < 3 * np.abs(np.diff(f, axis=1)).max() + 0.1 * (f.max() - f.min())


def test_padding_removes_edge_curvelets():
    # a smooth ramp is discontinuous when wrapped periodically: its fine-scale energy sits on the edges.
    ny, nx = 64, 96
    yy, xx = np.mgrid[0:ny, 0:nx]
    f = 0.2 + 0.002 * xx + 0.001 * yy
    C = Curvelet((ny, nx))
    fine = C.scale_of_coef() == C.nscales - 1
    e_raw = np.sum(C.forward(f)[fine] ** 2)
    E = EdgePadding((ny, nx))
    Cp = Curvelet(E.padded_shape, nscales=C.nscales)
    e_pad = np.sum(Cp.forward(E.pad(f))[Cp.scale_of_coef() == Cp.nscales - 1] ** 2)
    assert e_pad < 1e-3 * e_raw


def test_padding_errors():
    with pytest.raises(ValueError, match="pad"):
        EdgePadding((20, 30), pad=(3, 4), periodic_lon=True)
    with pytest.raises(ValueError, match="exceeds"):
        EdgePadding((20, 30), pad=11)
    with pytest.raises(ValueError, match="pad"):
        EdgePadding((20, 30), pad=-1)
    E = EdgePadding((20, 30))
    with pytest.raises(ValueError, match="trailing shape"):
        E.pad(np.zeros((30, 20)))
    with pytest.raises(ValueError, match="trailing shape"):
        E.crop(np.zeros((20, 30)))
    with pytest.raises(ValueError, match="boolean"):
        E.embed_mask(np.ones((20, 30)))
