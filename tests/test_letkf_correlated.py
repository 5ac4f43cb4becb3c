"""Issue 18 items 2 and 7 (LETKF side): the declared observation-error covariance between columns, the
LETKF's correlated local R (reduces to the diagonal LETKF for white error; equals a textbook ETKF with the
full correlated R without localization; equals an explicit per-column R-localized update), the inflation
estimate's correlated trace, and the bias-aware two-stage analysis in a linear-Gaussian cycle."""

import numpy as np
import pytest
from landimg.analysis import AnalysisContext, Geometry, ObsError, PointLETKF, point_letkf_increments
from landimg.da.inflation import innovation_statistics
from landimg.da.localization import Neighbourhoods, observed_neighbourhoods
from landimg.da.obs_covariance import ObsCovariance
from landimg.da.point_letkf import LetkfBias
from landimg.layout import Layout
from landimg.parallel import SerialComm


def _geometry(ny=12, nx=20, res=1.0, periodic=False, holes=True):
    """A regular grid with some ocean; ``periodic``: a band around the globe (``nx`` cells of 360 / nx deg)."""
    from landimg import Grid

    lat0, lon0 = 30.0, -110.0
    if periodic:
        res = 360.0 / nx
        lat0, lon0 = -res * ny / 2.0, -180.0
    land = np.ones((ny, nx), bool)
    if holes:
        land[:3, :4] = False  # some ocean: columns are not the image cells
        land[ny // 2, nx // 2 : nx // 2 + 3] = False
    lat = lat0 + res * (np.arange(ny) + 0.5)
    lon = lon0 + res * (np.arange(nx) + 0.5)
    g = Grid(lat=lat, lon=lon, land=land, res=res)
    assert g.periodic_lon == periodic
    return g


def _brute_r(err: ObsError, g: Geometry, cols=None) -> np.ndarray:
    """R between the columns from the image coordinates, double loop over pairs."""
    cols = np.arange(g.ncol) if cols is None else cols
    iy, ix = np.divmod(g.index[cols], g.shape[1])
    white = np.broadcast_to(err.white_std, (cols.size,))
    corr = np.broadcast_to(err.corr_std, (cols.size,))
    out = np.zeros((cols.size, cols.size))
    for a in range(cols.size):
        for b in range(cols.size):
            ddx = abs(int(ix[a]) - int(ix[b]))
            if g.periodic_lon:
                ddx = min(ddx, g.shape[1] - ddx)
            r2 = ((int(iy[a]) - int(iy[b])) * g.cell_km[0]) ** 2 + (ddx * g.cell_km[1]) ** 2
            out[a, b] = corr[a] * corr[b] * np.exp(-r2 / err.corr_length_km**2) + (a == b) * white[a] ** 2
    return out


def _error(g, seed=0, white_fraction=0.4, length=250.0):
    rng = np.random.default_rng(seed)
    std = 0.03 + 0.01 * rng.random(g.ncol)  # per column
    return ObsError.from_fraction(std, white_fraction, length)


# ---------------------------------------------------------------------- ObsCovariance
@pytest.mark.parametrize("periodic", [False, True])
def test_covariance_matches_the_pairwise_definition(periodic):
    g = _geometry(ny=8, nx=14, periodic=periodic)
    err = _error(g, 1, length=3000.0 if periodic else 250.0)
    cov = ObsCovariance.of(err, g)
    dense = _brute_r(err, g)
    i = np.arange(g.ncol)
    np.testing.assert_allclose(cov.between(i[:, None], i[None, :]), dense, rtol=1e-12, atol=1e-18)
    # the draws have this covariance: 4000 draws, each entry within 5 standard errors
    # (covered by ObsError.draw's own tests; here the sum of all entries, the de-biasing term)
    valid = np.random.default_rng(2).random(g.ncol) < 0.6
    np.testing.assert_allclose(cov.summed(valid), dense[np.ix_(valid, valid)].sum(), rtol=1e-12)
    assert ObsCovariance.of(err, g).summed(np.zeros(g.ncol, bool)) == 0.0


def test_summed_covariance_is_the_same_for_any_block_holding_the_observations():
    """Columns without an observation do not change the bits of 1^T R 1 (fsum; each filtered value is
    computed over the same kernel window whatever the image box)."""
    g = _geometry(ny=14, nx=22)
    err = _error(g, 3)
    valid = np.zeros(g.ncol, bool)
    valid[40:90:3] = True
    full = ObsCovariance.of(err, g).summed(valid)
    block = np.arange(30, 120)
    part = ObsCovariance.of(err.take(block), g, block).summed(valid[block])
    assert part == full


def test_local_blocks_are_r_between_the_used_observations_and_identity_elsewhere():
    g = _geometry()
    err = _error(g, 4)
    cov = ObsCovariance.of(err, g)
    dense = _brute_r(err, g)
    nb = observed_neighbourhoods(g.xyz, np.arange(g.ncol) % 3 == 0, 400.0, max_obs=12)
    blocks = cov.local_blocks(nb.idx, nb.use)
    for c in (0, 17, 101):
        u = nb.use[c]
        k = int(u.sum())
        np.testing.assert_allclose(blocks[c][:k, :k], dense[np.ix_(nb.idx[c, :k], nb.idx[c, :k])], rtol=1e-12)
        np.testing.assert_array_equal(blocks[c][k:, k:], np.eye(u.size - k))
        assert not blocks[c][:k, k:].any()


# ---------------------------------------------------------------------- the LETKF with correlated R
def _problem(g, nmem=12, nlev=3, seed=0, frac_obs=0.45):
    rng = np.random.default_rng(seed)
    base = 0.25 + 0.03 * np.sin(np.arange(g.ncol) / 5.0)
    # spatially smooth member anomalies (a few large-scale modes) plus noise, correlated across layers
    modes = np.stack([np.sin(g.column_lat / 3.0 + k) * np.cos(g.column_lon / 4.0 - k) for k in range(6)])
    anom = np.einsum("kc,lkn->lcn", modes, 0.01 * rng.standard_normal((nlev, 6, nmem)))
    anom += 0.005 * rng.standard_normal((nlev, g.ncol, nmem))
    anom[1:] += 0.6 * anom[:1]
    state = base[None, :, None] + anom
    obs = base + 0.02 * rng.standard_normal(g.ncol)
    obs[rng.random(g.ncol) > frac_obs] = np.nan
    return state, np.array([0.7, 0.3, 0.0])[:nlev], obs


def test_white_error_through_the_dense_path_equals_the_diagonal_letkf():
    """The correlated code path (local blocks, solves, D^1/2 weights) with a white ObsCovariance gives
    the diagonal LETKF's increments to round-off, with localization."""
    g = _geometry()
    state, h, obs = _problem(g)
    std = 0.02 + 0.01 * np.random.default_rng(5).random(g.ncol)
    kw = dict(lat=g.column_lat, lon=g.column_lon, radius_km=500.0, max_obs=20)
    diag_r, _ = point_letkf_increments(state, h, obs, std, **kw)
    dense, _ = point_letkf_increments(
        state, h, obs, std, obs_cov=ObsCovariance.of(ObsError.white(std), g), **kw
    )
    np.testing.assert_allclose(dense, diag_r, rtol=0, atol=1e-12 * np.abs(diag_r).max())
    assert np.abs(diag_r).max() > 1e-3  # a real update


def _global_neighbourhoods(valid: np.ndarray) -> Neighbourhoods:
    """Every column sees every observation with weight 1: no localization."""
    obs_idx = np.flatnonzero(valid)
    ncol = valid.size
    idx = np.broadcast_to(obs_idx, (ncol, obs_idx.size)).copy()
    return Neighbourhoods(idx, np.zeros(idx.shape), np.ones(idx.shape), np.ones(idx.shape, bool), 1e9)


def _textbook_etkf(state, h, obs, r):
    """ETKF of the whole state with the full R (Bishop et al. 2001; Hunt et al. 2007): mean from the
    observation-space Kalman gain, anomalies by the symmetric square root of the ensemble-space
    transform (scipy sqrtm)."""
    from scipy.linalg import sqrtm

    nlev, ncol, n = state.shape
    x = state.reshape(nlev * ncol, n)
    hmat = np.zeros((ncol, nlev * ncol))
    for lev in range(nlev):
        hmat[np.arange(ncol), lev * ncol + np.arange(ncol)] = h[lev]
    ok = np.isfinite(obs)
    hmat, y, r = hmat[ok], obs[ok], r[np.ix_(ok, ok)]
    xm = x.mean(axis=1)
    xa_ = x - xm[:, None]
    p = xa_ @ xa_.T / (n - 1)
    k = p @ hmat.T @ np.linalg.inv(hmat @ p @ hmat.T + r)
    mean = xm + k @ (y - hmat @ xm)
    yy = hmat @ xa_
    t = np.real(sqrtm(np.linalg.inv(np.eye(n) + yy.T @ np.linalg.inv(r) @ yy / (n - 1))))
    anom = xa_ @ t
    post = (np.eye(nlev * ncol) - k @ hmat) @ p
    return mean.reshape(nlev, ncol), anom.reshape(nlev, ncol, n), post


def test_letkf_without_localization_is_the_etkf_with_the_full_correlated_r():
    g = _geometry(ny=8, nx=12)
    state, h, obs = _problem(g, nmem=10, seed=7)
    err = _error(g, 8, white_fraction=0.3, length=400.0)
    r = _brute_r(err, g)
    nb = _global_neighbourhoods(np.isfinite(obs))
    kw = dict(lat=g.column_lat, lon=g.column_lon, radius_km=nb.radius_km, neighbours=nb)
    d, _ = point_letkf_increments(state, h, obs, err.std, obs_cov=ObsCovariance.of(err, g), **kw)
    xa = state + d
    mean, anom, post = _textbook_etkf(state, h, obs, r)
    scale = np.abs(mean - state.mean(axis=2)).max()
    assert scale > 5e-3  # the observations move the mean
    np.testing.assert_allclose(xa.mean(axis=2), mean, rtol=0, atol=1e-10 * scale)
    a = xa - xa.mean(axis=2, keepdims=True)
    np.testing.assert_allclose(a, anom, rtol=0, atol=1e-10 * np.abs(anom).max())
    a2 = a.reshape(-1, a.shape[2])
    np.testing.assert_allclose(a2 @ a2.T / (a.shape[2] - 1), post, rtol=0, atol=1e-10 * np.abs(post).max())
    # the correlated R matters: the white LETKF with the same total std is far from it
    dw, _ = point_letkf_increments(state, h, obs, err.std, **kw)
    assert np.abs((state + dw).mean(axis=2) - mean).max() > 0.1 * scale


def test_localized_correlated_letkf_equals_an_explicit_per_column_update():
    """R-localization with a correlated R: R_loc^-1 = D^1/2 R_O^-1 D^1/2 with D the Gaspari-Cohn weights,
    for a column block (context.columns) of a periodic grid, against an explicit inverse."""
    g = _geometry(ny=8, nx=24, periodic=True)  # 15 deg cells around the globe
    state, h, obs = _problem(g, nmem=8, seed=11)
    err = _error(g, 12, white_fraction=0.5, length=3000.0)
    method = PointLETKF(radius_km=5000.0, max_obs=None, inflation_mode="fixed")
    lon = g.column_lon
    cols = np.flatnonzero((lon < -120.0) | (lon > 140.0))  # a block across the date line
    assert np.ptp(lon[cols]) > 300.0
    ctx = AnalysisContext(h=h, geometry=g, layout=Layout(8, SerialComm()), columns=cols)
    d, _ = method.analyze(state[:, cols], obs[cols], err.take(cols), None, ctx)
    valid = np.isfinite(obs[cols])
    nb = observed_neighbourhoods(g.xyz[cols], valid, 5000.0)
    r = _brute_r(err.take(cols), g, cols)
    x = state[:, cols]
    n = x.shape[2]
    for c in (0, 5, cols.size // 2, cols.size - 1):
        o = nb.idx[c][nb.use[c]]
        sq = np.sqrt(nb.rho[c][nb.use[c]])
        rloc_inv = sq[:, None] * np.linalg.inv(r[np.ix_(o, o)]) * sq[None, :]
        hx = np.einsum("l,lmn->mn", h, x[:, o])  # (m, N)
        y = hx - hx.mean(axis=1, keepdims=True)
        pa = np.linalg.inv((n - 1) * np.eye(n) + y.T @ rloc_inv @ y)
        w = pa @ y.T @ rloc_inv @ (obs[cols][o] - hx.mean(axis=1))
        lam, v = np.linalg.eigh((n - 1) * pa)
        wsq = v @ np.diag(np.sqrt(lam)) @ v.T
        xc = x[:, c]
        expect = xc.mean(axis=1)[:, None] + (xc - xc.mean(axis=1)[:, None]) @ (w[:, None] + wsq)
        np.testing.assert_allclose(xc + d[:, c], expect, rtol=0, atol=1e-12)


def test_letkf_assumes_the_declared_error_and_a_white_one_on_request():
    g = _geometry()
    state, h, obs = _problem(g)
    err = _error(g, 13)
    lay = Layout(12, SerialComm())
    declared = PointLETKF(radius_km=400.0, inflation_mode="fixed")
    white = PointLETKF(radius_km=400.0, inflation_mode="fixed", obs_white_fraction=1.0)
    assert declared.assumed_obs_error(err) is err and not white.assumed_obs_error(err).correlated
    np.testing.assert_allclose(white.assumed_obs_error(err).std, err.std, rtol=1e-15)
    run = lambda m, e: m.analyze(state, obs, e, None, AnalysisContext(h=h, geometry=g, layout=lay))[0]  # noqa: E731
    np.testing.assert_array_equal(run(white, err), run(declared, ObsError.white(err.std)))
    assert np.abs(run(declared, err) - run(white, err)).max() > 1e-4
    with pytest.raises(ValueError, match="obs_white_fraction"):
        PointLETKF(obs_white_fraction=0.5, obs_corr_km=0.0)


def test_correlated_inflation_trace_removes_the_mean_of_the_correlated_error():
    """De-biased inflation: E[d^T P d] = tr(P (HBH + R) P); with correlated R the R part is
    tr R - 1^T R 1 / p, checked by Monte Carlo of the innovation sums with a zero-spread ensemble."""
    g = _geometry(ny=10, nx=14)
    err = _error(g, 14, white_fraction=0.3, length=500.0)
    valid = np.random.default_rng(15).random(g.ncol) < 0.5
    cov = ObsCovariance.of(err, g)
    r = _brute_r(err, g)[np.ix_(valid, valid)]
    chol = np.linalg.cholesky(r)
    rng = np.random.default_rng(16)
    hx = np.zeros((g.ncol, 4))
    hx[:, 1] = 1e-9  # a tiny spread (the estimator needs hbh > 0)
    d2 = []
    for _ in range(3000):
        obs = np.zeros(g.ncol)
        obs[valid] = chol @ rng.standard_normal(valid.sum())
        d2.append(innovation_statistics(hx, obs, err.std * np.ones(g.ncol), valid)[0])
    _, r_tr, _, _ = innovation_statistics(hx, obs, err.std * np.ones(g.ncol), valid, r_total=cov.summed(valid))
    _, r_white, _, _ = innovation_statistics(hx, obs, err.std * np.ones(g.ncol), valid)
    se = np.std(d2) / np.sqrt(len(d2))
    assert abs(np.mean(d2) - r_tr) < 4 * se
    assert abs(np.mean(d2) - r_white) > 10 * se  # the white formula is wrong here


# ---------------------------------------------------------------------- bias-aware two-stage
def _biased_cycle(method, g, nc=40, nmem=20, bias=0.04, seed=0, err=None):
    """A linear-Gaussian cycle: each analysis, a new truth; the members are the truth plus a constant
    bias plus N(0, B) anomalies (B: smooth, cross-layer correlated); observations of the truth's top
    layers with the given error. Returns the carried bias state and the mean analysis error of layer 0."""
    rng = np.random.default_rng(seed)
    h = np.array([0.7, 0.3, 0.0])
    ctx = AnalysisContext(h=h, geometry=g, layout=Layout(nmem, SerialComm()))
    modes = np.stack([np.sin(g.column_lat / 2.0 + k) * np.cos(g.column_lon / 3.0 - k) for k in range(8)])
    lev = np.array([[1.0, 0.0, 0.0], [0.7, 0.5, 0.0], [0.4, 0.4, 0.5]])
    err = ObsError.white(0.02) if err is None else err
    errors = []
    for _ in range(nc):
        truth = 0.25 + 0.02 * np.einsum("kc,lk->lc", modes, rng.standard_normal((3, 8)))
        z = np.einsum("kc,jkn->jcn", modes, 0.01 * rng.standard_normal((3, 8, nmem)))
        z += 0.003 * rng.standard_normal((3, g.ncol, nmem))
        state = truth[:, :, None] + bias + np.einsum("lj,jcn->lcn", lev, z)
        e = err.draw([rng], g)[0]
        obs = h @ truth + e
        obs[rng.random(g.ncol) < 0.5] = np.nan
        d, diag = method.analyze(state, obs, err, None, ctx)
        errors.append(np.mean((state + d).mean(axis=2)[0] - truth[0]))
    return ctx.state.get("PointLETKF.bias"), np.array(errors), diag


def test_bias_stage_recovers_a_constant_bias():
    g = _geometry(ny=10, nx=16, holes=False)
    on = PointLETKF(radius_km=800.0, inflation_mode="fixed", bias_correction=True, bias_gamma=0.5)
    off = PointLETKF(radius_km=800.0, inflation_mode="fixed")
    b, err_on, diag = _biased_cycle(on, g)
    assert b.shape == (3, g.ncol)
    top = np.array([0.7, 0.3, 0.0]) @ b
    assert abs(np.mean(top) - 0.04) < 0.004  # within 10 % of the true bias over the domain
    assert np.sqrt(np.mean((top - 0.04) ** 2)) < 0.008  # 20 % rms over the columns
    assert abs(diag.extra["bias_mean"] - np.mean(top)) < 1e-12  # diagnostics of the observed layer
    _, err_off, _ = _biased_cycle(off, g)
    late = slice(12, None)
    assert abs(np.mean(err_on[late])) < 0.25 * abs(np.mean(err_off[late]))  # the analysis bias shrinks
    assert PointLETKF(bias_correction=True, bias_radius_km=600.0, radius_km=250.0).need.halo_km == 850.0


def test_bias_stage_with_correlated_error_and_its_own_radius():
    g = _geometry(ny=10, nx=16, holes=False)
    err = ObsError.from_fraction(0.02, 0.5, 300.0)
    m = PointLETKF(
        radius_km=400.0, inflation_mode="fixed", bias_correction=True, bias_gamma=0.5, bias_radius_km=1200.0
    )
    b, _, _ = _biased_cycle(m, g, err=err)
    assert abs(np.mean(np.array([0.7, 0.3, 0.0]) @ b) - 0.04) < 0.006  # slower: the large-scale error
    # part of R holds information on a uniform bias back (0.029 after 24 analyses, 0.036 after 40)


def test_bias_state_round_trip_and_gamma_validation():
    g = _geometry(ny=6, nx=8)
    state, h, obs = _problem(g, nmem=6, seed=2)
    m = PointLETKF(radius_km=500.0, bias_correction=True, inflation_mode="fixed")
    ctx = AnalysisContext(h=h, geometry=g, layout=Layout(6, SerialComm()))
    m.analyze(state, obs, 0.02, None, ctx)
    fresh = AnalysisContext(
        h=h, geometry=g, layout=ctx.layout, state={k: np.array(v) for k, v in ctx.state.items()}
    )
    d1, _ = m.analyze(state, obs, 0.02, None, ctx)
    d2, _ = m.analyze(state, obs, 0.02, None, fresh)
    np.testing.assert_array_equal(d1, d2)
    # no usable observation: the bias state is left as it is
    before = ctx.state["PointLETKF.bias"].copy()
    m.analyze(state, np.full(g.ncol, np.nan), 0.02, None, ctx)
    np.testing.assert_array_equal(ctx.state["PointLETKF.bias"], before)
    with pytest.raises(ValueError, match="bias_gamma"):
        PointLETKF(bias_gamma=0.0)
    with pytest.raises(ValueError, match="bias gamma"):
        point_letkf_increments(state, h, obs, 0.02, bias=LetkfBias(np.zeros((3, g.ncol)), 0.0))
