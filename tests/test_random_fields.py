"""The spectral Gaussian field generator: noise drawn in Fourier space, same covariance as before."""

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


class _Basis:
    """A generator whose normals are the unit vectors: the draw returns the linear map noise -> field."""

    def standard_normal(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape[1:]))
        return np.eye(n).reshape((n,) + tuple(shape[1:]))


def _old_covariance(g: GaussianFieldGenerator) -> np.ndarray:
    """Exact covariance of the former ``irfft2(rfft2(white) * S)`` on the work grid: lag (dy, dx)."""
    return np.fft.irfft2(np.abs(g.spectrum) ** 2, s=g.work_shape)


@pytest.mark.parametrize("shape, cell, length, periodic", CASES)
def test_exact_variance_and_covariance_match_the_filtered_white_noise(shape, cell, length, periodic):
    g = GaussianFieldGenerator(shape, cell, length, periodic)
    a = g.draw([_Basis()], 1)[0]  # (nnormal, ny, nx): field = sum_j z_j a_j
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


def test_sampled_variance_and_correlation_at_L():
    cell, length = (25.0, 25.0), 100.0  # L = 4 cells
    g = GaussianFieldGenerator((48, 48), cell, length, periodic_x=False)
    f = g.draw([np.random.default_rng(7)], 400)[0]  # 400 x 2304 samples
    var = f.var(axis=0).mean()
    assert abs(var - 1.0) < 0.02  # sampling sd ~ 0.005 (few independent areas per field)
    corr = np.mean(f[:, :, :-4] * f[:, :, 4:]) / var
    assert abs(corr - np.exp(-1.0)) < 0.02
    corr_y = np.mean(f[:, :-4, :] * f[:, 4:, :]) / var
    assert abs(corr_y - np.exp(-1.0)) < 0.02


def test_each_field_draws_from_its_own_stream_only():
    g = GaussianFieldGenerator((30, 40), (50.0, 50.0), 200.0, True)
    both = g.draw([np.random.default_rng(1), np.random.default_rng(2)], 3)
    alone = g.draw([np.random.default_rng(2)], 3)
    np.testing.assert_array_equal(both[1], alone[0])
    r = np.random.default_rng(3)
    g.draw([r], 2)
    assert r.bit_generator.state == _advanced(3, 2 * g._bins.nnormal)


def _advanced(seed: int, n: int) -> dict:
    r = np.random.default_rng(seed)
    r.standard_normal(n)
    return r.bit_generator.state
