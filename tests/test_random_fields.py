"""The spectral Gaussian field generator: noise drawn in Fourier space, same covariance as before.

float64 (default) and float32 (the forcing perturbations) draws: the same linear map from the normals to
the fields up to float32 round-off, the same sampled statistics, one stream per generator.
"""

from __future__ import annotations

import numpy as np
import pytest
from landimg.random_fields import GaussianFieldGenerator

CASES = [  # (shape, cell km, L km, periodic): odd/even work shapes, truncated or not
    ((40, 60), (50.0, 40.0), 300.0, False),
    ((37, 72), (111.0, 80.0), 424.2640687119285, True),
    ((30, 45), (100.0, 100.0), 250.0, True),
    ((25, 31), (20.0, 30.0), 40.0, False),
]
DTYPES = [np.float64, np.float32]


class _Basis:
    """A generator whose normals are unit vectors: drawn with ``nfield = nnormal``, field ``j`` is the
    response to normal ``j`` alone (its ``j``-th normal is 1, the others 0): the linear map noise -> field.
    """

    def __init__(self, nnormal: int) -> None:
        self.nnormal, self.pos = nnormal, 0

    def standard_normal(self, size=None, dtype=np.float64, out=None) -> np.ndarray:
        assert out is not None and out.dtype == np.dtype(dtype)
        i = self.pos + np.arange(out.size)  # position in the stream: field i // nnormal, normal i % nnormal
        self.pos += out.size
        out[...] = (i % (self.nnormal + 1) == 0).reshape(out.shape)
        return out


def _linear_map(g: GaussianFieldGenerator) -> np.ndarray:
    """(nnormal, ny, nx) float64: field = sum_j z_j a_j for the normals z of one field."""
    return g.draw([_Basis(g._bins.nnormal)], g._bins.nnormal)[0].astype(np.float64)


def _old_covariance(g: GaussianFieldGenerator) -> np.ndarray:
    """Exact covariance of the former ``irfft2(rfft2(white) * S)`` on the work grid: lag (dy, dx)."""
    return np.fft.irfft2(np.abs(g.spectrum) ** 2, s=g.work_shape)


@pytest.mark.parametrize("shape, cell, length, periodic", CASES)
def test_exact_variance_and_covariance_match_the_filtered_white_noise(shape, cell, length, periodic):
    g = GaussianFieldGenerator(shape, cell, length, periodic)
    a = _linear_map(g)
    np.testing.assert_allclose((a**2).sum(axis=0), 1.0, atol=1e-12)  # every point, edges included
    old = _old_covariance(g)
    ny, nx = shape
    for y0, x0 in ((0, 0), (ny // 2, nx // 3), (ny - 1, nx - 1)):
        cov = np.einsum("j,jyx->yx", a[:, y0, x0], a)  # covariance with (y0, x0)
        lag_y = (np.arange(ny)[:, None] - y0) % g.work_shape[0]
        lag_x = (np.arange(nx)[None, :] - x0) % g.work_shape[1]
        np.testing.assert_allclose(cov, old[lag_y, lag_x], atol=1e-12)
    assert g._bins.dropped <= 1e-16
    assert g._bins.nnormal <= 2 * np.prod(g.work_shape)


@pytest.mark.parametrize("shape, cell, length, periodic", CASES)
def test_float32_draw_is_the_float64_map_to_single_precision(shape, cell, length, periodic):
    a64 = _linear_map(GaussianFieldGenerator(shape, cell, length, periodic))
    g32 = GaussianFieldGenerator(shape, cell, length, periodic, dtype=np.float32)
    a32 = _linear_map(g32)
    assert g32.draw([np.random.default_rng(0)], 2).dtype == np.float32
    np.testing.assert_allclose(a32, a64, rtol=0, atol=2e-6 * np.abs(a64).max())
    np.testing.assert_allclose((a32**2).sum(axis=0), 1.0, atol=1e-5)  # unit variance to float32 round-off


@pytest.mark.parametrize("shape, cell, length, periodic", CASES[:2])
def test_float64_draw_is_the_map_of_one_standard_normal_call(shape, cell, length, periodic):
    # the documented stream: (nfield, nnormal) normals in one call's order, so float64 bits are kept
    g = GaussianFieldGenerator(shape, cell, length, periodic)
    a = _linear_map(g)
    f = g.draw([np.random.default_rng(11)], 2)[0]
    z = np.random.default_rng(11).standard_normal((2, g._bins.nnormal))
    np.testing.assert_allclose(f, np.einsum("fj,jyx->fyx", z, a), atol=1e-11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sampled_variance_and_correlation_at_L(dtype):
    cell, length = (25.0, 25.0), 100.0  # L = 4 cells
    g = GaussianFieldGenerator((48, 48), cell, length, periodic_x=False, dtype=dtype)
    f = g.draw([np.random.default_rng(7)], 400)[0].astype(np.float64)  # 400 x 2304 samples
    assert f.dtype == np.float64 and g.draw([np.random.default_rng(7)], 1).dtype == dtype
    var = f.var(axis=0).mean()
    assert abs(var - 1.0) < 0.02  # sampling sd ~ 0.01 over seeds (few independent areas per field)
    corr = np.mean(f[:, :, :-4] * f[:, :, 4:]) / var
    assert abs(corr - np.exp(-1.0)) < 0.02
    corr_y = np.mean(f[:, :-4, :] * f[:, 4:, :]) / var
    assert abs(corr_y - np.exp(-1.0)) < 0.02
    kurtosis = np.mean(f**4) / np.mean(f**2) ** 2  # Gaussian: 3 (float32 normals' tails included)
    assert abs(kurtosis - 3.0) < 0.1  # sampling sd ~ 0.02 over seeds
    assert abs(np.mean(np.abs(f) > 3.0) - 2.6998e-3) < 6e-4  # P(|z| > 3), sampling sd ~ 1.5e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_field_draws_from_its_own_stream_only(dtype):
    g = GaussianFieldGenerator((30, 40), (50.0, 50.0), 400.0, True, dtype=dtype)
    assert g._bins.rows.size < g.work_shape[0]  # rows left out: the reused buffer must be cleared there
    both = g.draw([np.random.default_rng(1), np.random.default_rng(2)], 3)
    again = g.draw([np.random.default_rng(1), np.random.default_rng(2)], 3)  # same shape: reused buffers
    np.testing.assert_array_equal(again, both)
    alone = g.draw([np.random.default_rng(2)], 3)
    np.testing.assert_array_equal(both[1], alone[0])
    r = np.random.default_rng(3)
    g.draw([r], 2)
    assert r.bit_generator.state == _advanced(3, 2 * g._bins.nnormal, dtype)


def _advanced(seed: int, n: int, dtype) -> dict:
    r = np.random.default_rng(seed)
    r.standard_normal(n, dtype=dtype)
    return r.bit_generator.state


def test_dtype_is_checked():
    with pytest.raises(ValueError, match="dtype"):
        GaussianFieldGenerator((10, 10), (10.0, 10.0), 30.0, dtype=np.float16)
