"""The cheap routes of the curvelet analysis (issue 18 item 6), each against the exact one it replaces.

* direction spectra: with weights constant per direction (both real halves of a complex wedge), ``C^T diag(v)
  C`` is a Fourier multiplier and the per-direction energies come from one FFT (to round-off);
* the gap-aware solve through FFT pairs equals the solve through transform pairs;
* the DEnKF's split updates: the mean from one solve equals the joint (per-member) DEnKF's mean; a long
  ``"cg"`` anomaly solve is the joint update; ``"diagonal"`` anomalies are half the diagonal-form gain.
"""

import numpy as np
import pytest
from _support import CORE_SETTINGS
from landimg.analysis import CurveletEnKF, curvelet_analysis
from landimg.da.curvelet_spectral import spectral_frame
from landimg.da.curvelet_stats import coefficient_groups
from landimg.da.curvelet_var import gap_aware_increments
from landimg.transform.curvelet import Curvelet

SHAPES = [((36, 80), 4), ((37, 81), 4), ((48, 50), 4), ((20, 28), 3)]


@pytest.mark.parametrize("shape,nscales", SHAPES)
def test_directions_are_fourier_multipliers(shape, nscales):
    C = Curvelet(shape, nscales=nscales, nangles_coarse=8)
    frame = spectral_frame(C)
    np.testing.assert_allclose(np.asarray(frame.spectra.table.sum(axis=0)).ravel(), 1.0, atol=1e-13)  # tight
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3,) + shape)
    c = C.forward(x)
    d = frame.direction
    ref = np.stack([np.bincount(d, weights=ci * ci, minlength=frame.ndir) for ci in c])
    np.testing.assert_allclose(frame.energies(x), ref, rtol=1e-12, atol=1e-12 * ref.max())
    y = rng.standard_normal((3,) + shape)
    ref_xy = np.stack([np.bincount(d, weights=a * b, minlength=frame.ndir) for a, b in zip(c, C.forward(y), strict=True)])
    np.testing.assert_allclose(frame.cross_energies(x, y), ref_xy, rtol=0, atol=1e-12 * ref.max())
    v = rng.random(frame.ndir)
    np.testing.assert_allclose(frame.apply(x, frame.multiplier(v)), C.inverse(c * v[d]), rtol=0, atol=1e-13)
    np.testing.assert_allclose(frame.white_energy, np.bincount(d, weights=C.row_norms_sq()), rtol=1e-12)
    # the wedge pooling groups are the directions (Re and Im halves of a complex wedge together)
    gid = coefficient_groups(C, "wedge")
    assert np.array_equal(np.unique(gid), np.arange(frame.ndir))
    assert all(np.unique(d[gid == g]).size == 1 for g in range(frame.ndir))
    # weights that differ between the two halves of a wedge are not direction-constant
    w = v[d].copy()
    w[C.wedges[1].slice] *= 1.5
    assert frame.per_direction(w) is None and np.array_equal(frame.per_direction(v[d]), v)


def test_no_spectra_for_curvelets_at_the_finest_scale():
    assert spectral_frame(Curvelet((36, 80), nscales=4, finest="curvelets")) is None


def test_gap_aware_solve_through_fft_pairs_is_the_transform_pair_solve():
    shape = (36, 80)
    C = Curvelet(shape, nscales=4)
    frame = spectral_frame(C)
    rng = np.random.default_rng(2)
    v = (3e-3 * 2.0 ** -np.arange(frame.ndir))[frame.direction] * (1 + rng.random(frame.ndir))[frame.direction]
    valid = rng.random(shape) < 0.5
    valid[:, 30:45] = False
    d = 0.03 * rng.standard_normal((2,) + shape)
    slow, i_slow = gap_aware_increments(d, valid, 4e-4, v, C, tol=1e-12, maxiter=2000)
    fast, i_fast = gap_aware_increments(d, valid, 4e-4, v, C, tol=1e-12, maxiter=2000, spectral=frame)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10 * np.abs(slow).max())


def _case(seed=7, shape=(24, 40), n=12):
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-0.5 * (2 * np.pi * 3.0) ** 2 * (ky**2 + kx**2))
    f = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n + 1,) + shape)) * filt, s=shape)
    f *= 0.05 / f.std()
    truth, xb = 0.3 + f[0], 0.3 + f[0] + f[1:] - f[1:].mean(axis=0) + 0.03
    y = truth + 0.02 * rng.standard_normal(shape)
    mask = np.ones(shape, bool)
    mask[:, 12:20] = False
    return xb, y, mask


def test_denkf_split_updates():
    """The mean by one solve is the joint DEnKF's mean; a long anomaly solve is the joint update; the
    diagonal anomaly update is half of the diagonal-form gain (the unperturbed diagonal update's anomalies)."""
    xb, y, mask = _case()
    C = Curvelet(xb.shape[1:], nscales=3, nangles_coarse=8)
    kw = dict(CORE_SETTINGS, pooling="wedge", obs_mask=mask, cg_tol=1e-12, cg_maxiter=2000, denkf=True)
    joint, dj = curvelet_analysis(xb, y, 0.03, C, anomaly_update="joint", **kw)
    cg, dc = curvelet_analysis(xb, y, 0.03, C, anomaly_update="cg", anomaly_cg_iterations=2000, **kw)
    diag, dd = curvelet_analysis(xb, y, 0.03, C, anomaly_update="diagonal", **kw)
    np.testing.assert_allclose(cg, joint, rtol=0, atol=1e-10)
    np.testing.assert_allclose(diag.mean(0), joint.mean(0), rtol=0, atol=1e-10)
    full_d, _ = curvelet_analysis(xb, y, 0.03, C, **{**kw, "denkf": False, "perturb_obs": False, "solver": "diagonal"})
    a_b, a_full, a_d = (x - x.mean(0) for x in (xb, full_d, diag))
    np.testing.assert_allclose(a_d, 0.5 * (a_b + a_full), rtol=0, atol=1e-12)
    assert dc["cg_anomaly_iterations"] > 5 and "cg_anomaly_iterations" not in dd
    short, ds = curvelet_analysis(xb, y, 0.03, C, anomaly_update="cg", anomaly_cg_iterations=3, **kw)
    assert ds["cg_anomaly_iterations"] == 3 and not np.array_equal(short, cg)
    np.testing.assert_allclose(short.mean(0), joint.mean(0), rtol=0, atol=1e-10)


def test_anomaly_update_is_checked():
    with pytest.raises(ValueError, match="anomaly_update"):
        CurveletEnKF(anomaly_update="bogus")
    with pytest.raises(ValueError, match="anomaly_cg_iterations"):
        CurveletEnKF(anomaly_cg_iterations=0)


def test_fourier_preconditioner_same_solution_fewer_iterations():
    """The Fourier preconditioner ((B + R)^-1 of a fully observed periodic domain, restricted to the
    observations) converges to the same solution as Jacobi in far fewer iterations, correlated R too."""
    from landimg.da.image_covariance import observation_covariance

    shape = (48, 96)
    C = Curvelet(shape, nscales=5)
    frame = spectral_frame(C)
    rng = np.random.default_rng(4)
    v = (4e-3 * 2.0 ** -np.arange(frame.ndir)).clip(1e-6)[frame.direction]
    jj, ii = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    valid = ((ii - 0.2 * jj) / 24.0) % 1.0 < 0.4
    d = 0.03 * rng.standard_normal((2,) + shape)
    for r in (4e-4, observation_covariance(0.015, 0.015, 200.0, valid, (50.0, 50.0))):
        out = {}
        for kind in ("jacobi", "fourier"):
            out[kind] = gap_aware_increments(d, valid, r, v, C, tol=1e-10, maxiter=3000, spectral=frame, precond=kind)
        (jac, ij), (fou, i_f) = out["jacobi"], out["fourier"]
        np.testing.assert_allclose(fou, jac, rtol=0, atol=1e-7 * np.abs(jac).max())
        assert i_f.iterations.max() < ij.iterations.min(), (i_f.iterations, ij.iterations)


def test_pooled_correlated_obs_error_variance_without_monte_carlo():
    """Pooled s_o of a correlated error from the direction spectra: the expected energy per direction of a
    stationary field with the correlation periodized on the transform domain, against 400 such fields
    drawn by FFT (within 3 % per scale). (The Monte-Carlo route draws fields that are not periodic in y,
    whose wrap-around jump adds fine-scale energy that the padded analysis never sees.)"""
    import scipy.fft
    from landimg.da.curvelet_stats import pool
    from landimg.da.image_covariance import periodic_spectrum
    from landimg.da.obs_error import ObsErrorModel

    shape, cell, length, w = (64, 64), (10.0, 10.0), 60.0, 0.3
    C = Curvelet(shape, nscales=4)
    frame = spectral_frame(C)
    fast = ObsErrorModel(np.full(shape, 0.04), length, cell, True, w).coefficient_variance(C, 32, 0, pooled=True, frame=frame)
    rng = np.random.default_rng(6)
    spec = periodic_spectrum(shape, cell, length)
    corr = scipy.fft.irfft2(scipy.fft.rfft2(rng.standard_normal((400,) + shape)) * np.sqrt(spec.clip(0)), s=shape)
    err = 0.04 * (np.sqrt(1 - w) * corr + np.sqrt(w) * rng.standard_normal((400,) + shape))
    emp = pool(np.mean(C.forward(err) ** 2, axis=0), coefficient_groups(C, "wedge"))
    gid = coefficient_groups(C, "scale")
    per_scale = lambda x: np.bincount(gid, weights=x) / np.bincount(gid)  # noqa: E731
    np.testing.assert_allclose(per_scale(fast), per_scale(emp), rtol=0.03)


def test_correlated_r_shares_the_fft_pair_with_b_where_exact():
    """H (B + R) H^T z in one FFT pair (B a multiplier, the correlated std uniform, the padding wide enough
    that the Gaussian is below 3e-16 across the wrap) equals H B H^T z + R z; single precision is within 1e-6."""
    from landimg.da.curvelet_var import CovarianceOperator
    from landimg.da.image_covariance import observation_covariance

    tshape, shape, off, cell = (48, 96), (30, 70), (9, 13), (40.0, 40.0)
    C = Curvelet(tshape, nscales=4)
    frame = spectral_frame(C)
    rng = np.random.default_rng(8)
    v = (2e-3 * 2.0 ** -np.arange(frame.ndir))[frame.direction]
    valid = rng.random(shape) < 0.5
    z = rng.standard_normal((3, int(valid.sum())))
    for length, merged in ((40.0, True), (400.0, False)):  # 6 L = 240 km < 19 px x 40 km; 2400 km is not
        r = observation_covariance(0.01, 0.02, length, valid, cell)
        assert (r.stationary_multiplier(tshape, off) is not None) == merged
        op = CovarianceOperator(C, v, valid, off, spectral=frame)
        ref = op.obs(z) + r.apply(z)
        np.testing.assert_allclose(op.system(r)(z), ref, rtol=0, atol=1e-14 * np.abs(ref).max())
        single = CovarianceOperator(C, v, valid, off, spectral=frame, single=True)
        np.testing.assert_allclose(single.system(r)(z), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    nonuniform = observation_covariance(0.01, 0.02 + 0.001 * rng.random(shape), 40.0, valid, cell)
    assert nonuniform.stationary_multiplier(tshape, off) is None
