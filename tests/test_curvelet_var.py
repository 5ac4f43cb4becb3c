"""Gap-aware curvelet analysis (landimg.da.curvelet_var): the solver against a dense Kalman update."""

import landimg
import numpy as np
import pytest
from landimg.da.curvelet_stats import frame_norms2
from landimg.da.curvelet_var import b_weights, gap_aware_increments, max_nscales

SHAPE = (20, 28)


@pytest.fixture(scope="module")
def C():
    return landimg.Curvelet(SHAPE, nscales=3, nangles_coarse=8)


def _dense(C) -> np.ndarray:
    """The transform as a matrix (ncoef, npix)."""
    eye = np.eye(SHAPE[0] * SHAPE[1]).reshape((-1,) + SHAPE)
    return C.forward(eye).T


def _problem(C, rng, nmem=3):
    scale = np.array([w.scale for w in C.wedges])
    v = np.zeros(C.ncoef)
    for w in C.wedges:  # a red spectrum, per wedge, with some anisotropy
        v[w.slice] = 4.0 ** (-w.scale) * (1.0 + 0.5 * np.cos(w.orientation) ** 2) * 1e-3
    assert scale.max() == 2
    valid = rng.random(SHAPE) < 0.6
    valid[:, 8:14] = False  # a swath gap
    obs_var = (0.01 + 0.02 * rng.random(SHAPE)) ** 2
    d = rng.standard_normal((nmem,) + SHAPE) * 0.03
    return v, valid, obs_var, d


def test_matches_dense_kalman_update_with_gaps(C):
    rng = np.random.default_rng(3)
    v, valid, obs_var, d = _problem(C, rng)
    inc, info = gap_aware_increments(d, valid, obs_var, v, C, tol=1e-12, maxiter=2000)
    assert info.converged.all()
    Cm = _dense(C)
    B = Cm.T @ (v[:, None] * Cm)
    Hi = np.flatnonzero(valid.ravel())
    S = B[np.ix_(Hi, Hi)] + np.diag(obs_var.ravel()[Hi])
    for i in range(d.shape[0]):
        ref = B[:, Hi] @ np.linalg.solve(S, d[i].ravel()[Hi])
        np.testing.assert_allclose(inc[i].ravel(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    # the gap receives information (unlike the diagonal form, which leaves it nearly untouched)
    assert np.abs(inc[:, ~valid]).mean() > 0.2 * np.abs(inc[:, valid]).mean()


def test_zero_innovation_and_padding_offset(C):
    rng = np.random.default_rng(4)
    v, valid, obs_var, d = _problem(C, rng)
    d[1] = 0.0
    inc, info = gap_aware_increments(d, valid, obs_var, v, C)
    assert info.iterations[1] == 0 and np.all(inc[1] == 0.0)
    # an image embedded in a larger transform domain: same as embedding by hand
    small = d[:, 2:18, 3:25]
    inc_s, _ = gap_aware_increments(small, valid[2:18, 3:25], 1e-4, v, C, offset=(2, 3), tol=1e-10)
    big = np.zeros_like(d)
    big[:, 2:18, 3:25] = small
    vb = np.zeros(SHAPE, bool)
    vb[2:18, 3:25] = valid[2:18, 3:25]
    inc_b, _ = gap_aware_increments(big, vb, 1e-4, v, C, tol=1e-10)
    np.testing.assert_allclose(inc_s, inc_b[:, 2:18, 3:25], atol=1e-12)


def test_members_are_solved_independently_bitwise(C):
    """A member's result does not depend on the other members (rank-layout independence)."""
    rng = np.random.default_rng(5)
    v, valid, obs_var, d = _problem(C, rng, nmem=4)
    inc_all, info_all = gap_aware_increments(d, valid, obs_var, v, C)
    for i in range(4):
        inc_i, info_i = gap_aware_increments(d[i : i + 1], valid, obs_var, v, C)
        assert np.array_equal(inc_i[0], inc_all[i])
        assert info_i.iterations[0] == info_all.iterations[i]
    assert len(set(info_all.iterations.tolist())) >= 1


def test_white_b_full_coverage_is_scalar_kalman(C):
    """B = q I (white spectrum) and full coverage: the increment is q / (q + r) d exactly."""
    q, r = 2e-3, 5e-4
    v = b_weights(q * frame_norms2(C), frame_norms2(C))
    np.testing.assert_allclose(v, q, rtol=1e-12)
    d = np.random.default_rng(6).standard_normal((2,) + SHAPE)
    inc, info = gap_aware_increments(d, np.ones(SHAPE, bool), r, v, C, tol=1e-13)
    np.testing.assert_allclose(inc, q / (q + r) * d, atol=1e-11)
    assert info.iterations.max() <= 3


def test_errors(C):
    d = np.zeros((1,) + SHAPE)
    ok = np.ones(SHAPE, bool)
    v = np.ones(C.ncoef)
    with pytest.raises(ValueError, match="innovation"):
        gap_aware_increments(d[0], ok, 1.0, v, C)
    with pytest.raises(ValueError, match="valid"):
        gap_aware_increments(d, ok[:-1], 1.0, v, C)
    with pytest.raises(ValueError, match="obs_var"):
        gap_aware_increments(d, ok, np.inf, v, C)
    with pytest.raises(ValueError, match="v must"):
        gap_aware_increments(d, ok, 1.0, v[:-1], C)
    with pytest.raises(ValueError, match="s_b"):
        b_weights(-np.ones(3), np.ones(3))
    assert max_nscales((36, 80)) == 4 and max_nscales((240, 360)) == 7
    landimg.Curvelet((36, 80), nscales=max_nscales((36, 80)))
    with pytest.raises(ValueError):
        landimg.Curvelet((36, 80), nscales=max_nscales((36, 80)) + 1)
