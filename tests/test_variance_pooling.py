"""Background-variance pooling of the curvelet EnKF on a masked regional grid (``variance_support``).

The anomalies are zero off land before the transform. ``"land_fraction"`` (default) divides the pooled
energy by the land fraction, exact only for spatially white anomalies; ``"interior"`` pools the land-covered
frame elements normalised by their coverage. Truth: the same members' anomalies on the *whole* (periodic)
transform domain, pooled the same way.
"""

import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest
from _support import CORE_SETTINGS, MPIRUN, subprocess_env
from landimg.analysis import CurveletEnKF
from landimg.da import curvelet_enkf as ce
from landimg.da import curvelet_stats as cs
from landimg.random_fields import gaussian_filter_spectrum
from landimg.transform.curvelet import Curvelet

NY, NX = 50, 120  # about CONUS at 0.5 deg
CELL_KM = (55.0, 45.0)
NMEM = 40

_analysis = partial(ce.curvelet_analysis, **CORE_SETTINGS)
_enkf = partial(ce.curvelet_enkf, **CORE_SETTINGS)


def _continent() -> np.ndarray:
    """Irregular 'continent' (ny, nx) bool with a wiggly coast; about half the padded domain is land."""
    yy, xx = np.mgrid[0:NY, 0:NX]
    r = ((yy - 22) / 30.0) ** 2 + ((xx - 60) / 55.0) ** 2
    return r + 0.25 * np.sin(xx / 5.0) * np.cos(yy / 4.0) < 1.0


@pytest.fixture(scope="module")
def setup():
    method = CurveletEnKF()
    transform, offset = method.transform_for((NY, NX))
    return transform, offset, _continent()


def _fields(tshape, length_km, nugget, seed):
    """(NMEM, Ty, Tx) periodic unit-variance fields: Gaussian correlation ``length_km`` + white ``nugget``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    white = rng.standard_normal((NMEM,) + tshape)
    z = white
    if length_km > 0:
        spectrum = gaussian_filter_spectrum(tshape, CELL_KM, length_km)
        z = np.fft.irfft2(np.fft.rfft2(white) * spectrum, s=tshape)
    if nugget > 0:
        z = np.sqrt(1.0 - nugget) * z + np.sqrt(nugget) * rng.standard_normal((NMEM,) + tshape)
    return z


def _per_scale_ratios(setup, length_km, nugget, seed):
    """Pooled s_b per scale / full-field truth per scale, for both supports (wedge pooling)."""
    transform, (oy, ox), land = setup
    z = _fields(transform.shape, length_km, nugget, seed)
    anom = z - z.mean(axis=0)
    gid = cs.coefficient_groups(transform, "wedge")
    scale = cs.coefficient_scales(transform)
    var_full = np.sum(transform.forward(anom) ** 2, axis=0) / (NMEM - 1)
    truth = np.bincount(scale, weights=cs.pool(var_full, gid)) / np.bincount(scale)
    background = z[:, oy : oy + NY, ox : ox + NX].copy()
    background[:, ~land] = np.nan
    out = {}
    for support in ("land_fraction", "interior"):
        method = CurveletEnKF(pooling="wedge", variance_support=support, perturb_obs=False)
        _, diag = method.update(
            background, np.zeros((NY, NX)), 1.0, transform=transform, pad_offset=(oy, ox), land=land
        )
        out[support] = np.asarray(diag["stats"].per_scale()["s_b"]) / truth
    return out


@pytest.mark.parametrize(
    ("length_km", "nugget", "seed"),
    [(400.0, 0.05, 1), (150.0, 0.01, 2)],  # smooth fields + a little white noise
)
@pytest.mark.slow
def test_interior_support_recovers_full_field_variance(setup, length_km, nugget, seed):
    r = _per_scale_ratios(setup, length_km, nugget, seed)
    old, new = r["land_fraction"], r["interior"]
    bad = old > 1.5
    assert bad.any(), f"the land-fraction estimate should be off by > 1.5x at some scale: {old}"
    assert not bad[0], f"coarsest scale is not affected by the coast: {old}"
    np.testing.assert_allclose(new[bad], 1.0, rtol=0.15, err_msg=f"old {old}, new {new}")
    np.testing.assert_allclose(new, 1.0, rtol=0.15, err_msg=f"new {new}")


def test_white_anomalies_unbiased_for_both_supports(setup):
    r = _per_scale_ratios(setup, 0.0, 0.0, 3)
    np.testing.assert_allclose(r["land_fraction"], 1.0, rtol=0.05)
    np.testing.assert_allclose(r["interior"], 1.0, rtol=0.05)


def test_land_coverage_matches_exact_sum_over_pixels():
    """cov_k = sum_p land_p phi_k(p)^2 / |phi_k|^2 by brute force (one transform per land pixel)."""
    transform = Curvelet((24, 30), nscales=3, nangles_coarse=8)
    yy, xx = np.mgrid[0:24, 0:30]
    land = (yy - 11) ** 2 / 64.0 + (xx - 14) ** 2 / 100.0 < 1.0
    deltas = np.zeros((int(land.sum()), 24, 30))
    deltas[np.arange(deltas.shape[0]), *np.nonzero(land)] = 1.0
    exact = np.sum(transform.forward(deltas) ** 2, axis=0) / transform.row_norms_sq()
    est = cs.land_coverage(transform, land, nsamples=64)
    assert est.shape == (transform.ncoef,) and np.all((est >= 0) & (est <= 1))
    # logit(est) - logit(exact) = log of a ratio of two independent chi2_64 / 64: std sqrt(4 / 64)
    logit = lambda c: np.log(np.clip(c, 1e-12, 1) / np.clip(1 - c, 1e-12, 1))  # noqa: E731
    assert np.max(np.abs(logit(est) - logit(exact))) < 6 * 0.25
    assert np.mean(np.abs(est - exact)) < 0.012
    assert np.corrcoef(est, exact)[0, 1] > 0.99
    # exact limits, and the cache returns the same (read-only) array
    np.testing.assert_array_equal(cs.land_coverage(transform, np.ones((24, 30), bool)), 1.0)
    np.testing.assert_array_equal(cs.land_coverage(transform, np.zeros((24, 30), bool)), 0.0)
    assert cs.land_coverage(transform, land, nsamples=64) is est and not est.flags.writeable
    with pytest.raises(ValueError, match="land_t"):
        cs.land_coverage(transform, land[:-1])


def test_interior_pool_selection_rules():
    """Full-coverage elements all pooled; otherwise the best-covered fifth (>= 16); coverage-normalised."""
    gid = np.repeat([0, 1, 2], [100, 100, 10])
    cov = np.concatenate([np.linspace(0.0, 1.0, 100), np.linspace(0.0, 0.9, 100), np.full(10, 0.0)])
    cov[:30] = 1.0  # group 0: 30 full-coverage elements -> exactly those
    values = np.concatenate([np.full(100, 2.0) * cov[:100] + np.where(cov[:100] < 1, 5.0, 0.0),
                             3.0 * cov[100:200], np.zeros(10)])  # fmt: skip
    pooled = cs.pool_interior(values, gid, cov)
    assert pooled[0] == pytest.approx(2.0)  # only the 30 interior elements (the others carry +5 junk)
    assert pooled[100] == pytest.approx(3.0)  # top 20 of group 1, normalised by their coverage
    assert pooled[-1] == 0.0  # no land at all
    assert np.all(pooled[gid == 0] == pooled[0]) and np.all(pooled[gid == 1] == pooled[100])


@pytest.mark.slow
def test_land_fraction_normalisation(setup):
    """``"land_fraction"`` (the default before issue 18, and of the functional-core tests' settings): wedge
    (direction) mean of the masked-anomaly energy / land fraction (from one FFT per member since issue 18:
    the transform's sums to round-off)."""
    transform, (oy, ox), land = setup
    assert CurveletEnKF().variance_support == "interior"  # the default since issue 18 (training seeds)
    z = _fields(transform.shape, 150.0, 0.0, 4)[:, oy : oy + NY, ox : ox + NX]
    background = np.where(land, z, np.nan)
    args = (background, np.zeros((NY, NX)), 1.0, transform)
    kw = dict(pooling="wedge", perturb_obs=False, pad_offset=(oy, ox), land=land)
    xa0, d0 = _analysis(*args, **kw)
    xa1, d1 = _analysis(*args, variance_support="land_fraction", **kw)
    np.testing.assert_array_equal(xa0, xa1)
    anom = np.where(land, z - z.mean(axis=0), 0.0)
    var = np.zeros(transform.ncoef)
    for row in transform.forward(cs.embed(anom, transform.shape, (oy, ox))):
        var += row * row
    var /= NMEM - 1
    ref = cs.pool(var, cs.coefficient_groups(transform, "wedge")) / (land.sum() / np.prod(transform.shape))
    np.testing.assert_allclose(d0["stats"].s_b, ref, rtol=1e-12, atol=0)
    # no pooling: no normalisation either way
    xa2, _ = _analysis(*args, **{**kw, "pooling": "coefficient"})
    xa3, _ = _analysis(*args, variance_support="interior", **{**kw, "pooling": "coefficient"})
    np.testing.assert_array_equal(xa2, xa3)


def test_bad_variance_support_raises(setup):
    transform, offset, land = setup
    with pytest.raises(ValueError, match="variance_support"):
        CurveletEnKF(variance_support="coverage")
    bg = np.random.default_rng(0).standard_normal((4, NY, NX))
    with pytest.raises(ValueError, match="variance_support"):
        _analysis(bg, bg[0], 1.0, transform, pad_offset=offset, variance_support="bogus")
    with pytest.raises(ValueError, match="variance_support"):
        _enkf(bg, bg[0], 1.0, transform, pad_offset=offset, variance_support="")


_MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from landimg.da import curvelet_enkf as ce
    from landimg.transform.curvelet import Curvelet
    from landimg.layout import Layout

    comm = MPI.COMM_WORLD
    nmem, shape, tshape = 7, (20, 28), (24, 32)
    layout = Layout(nmem, comm)
    rng = np.random.Generator(np.random.PCG64(5))
    full = np.cumsum(np.cumsum(rng.standard_normal((nmem,) + shape), axis=1), axis=2) / 10.0
    yy, xx = np.mgrid[0:20, 0:28]
    land = (yy - 9) ** 2 / 70.0 + (xx - 13) ** 2 / 120.0 < 1.0
    full[:, ~land] = np.nan
    obs = np.where(rng.random(shape) < 0.7, 0.3 * rng.standard_normal(shape), np.nan)
    xa, diag = ce.curvelet_analysis(
        full[layout.start:layout.stop], obs, 0.5, Curvelet(tshape, nscales=3, nangles_coarse=8),
        pooling="wedge", variance_support="interior", land=land, layout=layout, seed=11,
    )
    allxa = layout.gather_members(xa)
    if comm.Get_rank() == 0:
        np.savez(sys.argv[1], xa=allxa, s_b=diag["stats"].s_b, gain=diag["stats"].gain)
    """
)


@pytest.mark.mpi
@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")
def test_interior_bitwise_identical_on_1_2_3_ranks(tmp_path):
    script = tmp_path / "interior.py"
    script.write_text(_MPI_SCRIPT)
    res = {}
    for n in (1, 2, 3):
        out = tmp_path / f"r{n}.npz"
        cmd = [str(MPIRUN), "-n", str(n), sys.executable, "-m", "mpi4py", str(script), str(out)]
        proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res[n] = dict(np.load(out))
    assert np.nanstd(res[1]["xa"]) > 0 and res[1]["gain"].max() > 0
    for n in (2, 3):
        for key in res[1]:
            np.testing.assert_array_equal(res[n][key], res[1][key], err_msg=f"{key} differs at {n} ranks")
