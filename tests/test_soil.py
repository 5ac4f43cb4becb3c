"""Soil and vegetation parameters: Cosby pedotransfer, Clapp-Hornberger classes, Schenk-Jackson roots."""

import numpy as np
import pytest
from landimg import soil


def test_from_texture_matches_cosby_1984():
    sand = np.array([0.0, 40.0, 92.0])
    clay = np.array([60.0, 20.0, 3.0])
    p = soil.from_texture(sand, clay)
    np.testing.assert_allclose(p.theta_s, 0.489 - 0.00126 * sand, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.b, 2.91 + 0.159 * clay, rtol=1e-15)
    np.testing.assert_allclose(p.psi_s, -10.0 * 10.0 ** (1.88 - 0.0131 * sand), rtol=1e-14)
    np.testing.assert_allclose(p.k_s, 0.0070556 * 10.0 ** (-0.884 + 0.0153 * sand), rtol=1e-14)
    assert np.all(p.psi_s < 0) and p.ncol == 3
    # sandier soils conduct faster and hold less
    assert p.k_s[2] > p.k_s[1] > p.k_s[0]
    assert np.all(np.diff(p.theta_s) < 0)


def test_from_texture_rejects_bad_input():
    with pytest.raises(ValueError, match="sand"):
        soil.from_texture([np.nan], [10.0])
    with pytest.raises(ValueError, match="clay"):
        soil.from_texture([10.0], [-1.0])
    with pytest.raises(ValueError, match="exceed"):
        soil.from_texture([70.0], [40.0])
    with pytest.raises(ValueError, match="same shape"):
        soil.from_texture([10.0, 20.0], [10.0])


def test_from_class_values_and_names():
    p = soil.from_class("clay", 4)
    assert p.ncol == 4
    np.testing.assert_array_equal(p.b, 11.4)
    np.testing.assert_array_equal(p.psi_s, -405.0)
    np.testing.assert_array_equal(p.k_s, 0.0013)
    np.testing.assert_array_equal(p.theta_s, 0.482)
    mixed = soil.from_class(["sand", "Silty_Clay_Loam", "loam"])
    np.testing.assert_array_equal(mixed.b, [4.05, 7.75, 5.39])
    assert len(soil.class_names()) == 11


def test_from_class_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown soil class 'peat'.*sandy clay loam"):
        soil.from_class("peat", 3)
    with pytest.raises(ValueError, match="ncol"):
        soil.from_class("loam", 0)


def test_field_capacity_and_wilting_point_ordering():
    p = soil.from_class(soil.class_names())
    assert np.all(p.wilting_point < p.field_capacity)
    assert np.all(p.field_capacity < p.theta_s)
    # psi(theta_fc) == -3399 mm exactly by construction
    psi = p.psi_s * (p.field_capacity / p.theta_s) ** (-p.b)
    np.testing.assert_allclose(psi, -3399.0, rtol=1e-12)


def test_take_selects_columns():
    p = soil.from_class(["sand", "clay", "loam"])
    q = p.take(np.array([2, 0]))
    np.testing.assert_array_equal(q.b, [5.39, 4.05])


def test_root_fractions_schenk_jackson():
    zb = np.array([0.0175, 0.0451, 0.0906, 0.1655, 0.2891, 0.4929, 0.8289, 1.3828, 2.2961, 3.4331])
    veg = soil.vegetation(np.array([1, 7, 10, 16]), 4)
    rf = soil.root_fractions(veg, zb)
    assert rf.shape == (10, 4) and rf.flags.f_contiguous
    np.testing.assert_allclose(rf.sum(axis=0), 1.0, rtol=0, atol=1e-14)
    assert np.all(rf >= 0)
    # cumulative fraction above d50 is one half
    d50 = veg.d50 / 100.0
    for c in range(4):
        y = 1.0 / (1.0 + (zb / d50[c]) ** veg.beta[c])
        np.testing.assert_allclose(np.cumsum(rf[:, c])[:-1], y[:-1], rtol=1e-13)
    # open shrubs (d50 28 cm) root deeper than grass (9 cm)
    assert rf[:4, 1].sum() < rf[:4, 2].sum()


def test_vegetation_defaults_and_validation():
    v = soil.vegetation(12, 3, lai=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(v.lai, [1.0, 2.0, 3.0])
    assert v.igbp.tolist() == [12, 12, 12]
    with pytest.raises(ValueError, match="igbp"):
        soil.vegetation(18, 2)
    with pytest.raises(ValueError, match="lai"):
        soil.vegetation(10, 2, lai=-1.0)
