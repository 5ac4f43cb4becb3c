"""A curvelet B that varies in space (issue 18 item 3): ``B = S C^T diag(v) C S`` with ``S`` the smoothed
ensemble standard deviation and ``v`` from the normalised anomalies (variance filtering).

An ensemble whose spread is 3x larger in the east than in the west, drawn from a known ``B = D G D``
(``D`` the east-west standard deviation, ``G`` a stationary correlation): the filter recovers the contrast
in ``S``, and its analysis mean follows the exact Kalman mean with the true ``B`` far better than the
homogeneous (wedge-pooled) ``B``, which gives both halves the same gain; local pooling of the per-coefficient
variances within each wedge (``pooling="local"``) helps too, less.
"""

import numpy as np
import pytest
from landimg.analysis import CurveletEnKF

SHAPE = (32, 64)
CELL = (25.0, 25.0)


def _case(seed=3, nmem=40, sigma_o=0.02):
    """Truth, ensemble and observations (everywhere) with background errors drawn from ``B = D K D``: ``K``
    a stationary unit-variance curvelet-diagonal correlation (a red spectrum per direction, which the
    curvelet B can represent), ``D`` a standard deviation 0.01 at the western edges, 0.03 in the middle."""
    method = CurveletEnKF(pad=0, nscales=4)
    C, _ = method.transform_for(SHAPE)
    v = np.zeros(C.ncoef)
    for w in C.wedges:
        v[w.slice] = 2.0 ** (-1.5 * w.scale)
    n = SHAPE[0] * SHAPE[1]
    Cm = C.forward(np.eye(n).reshape((n,) + SHAPE)).T
    K = Cm.T @ (v[:, None] * Cm)
    norm = np.sqrt(np.mean(np.diag(K)))
    K /= norm**2
    rng = np.random.default_rng(seed)
    xx = np.arange(SHAPE[1])
    sd = np.broadcast_to(0.02 - 0.01 * np.cos(2 * np.pi * (xx + 0.5) / SHAPE[1]), SHAPE)

    def draw(k):
        return sd * C.inverse(np.sqrt(v) * rng.standard_normal((k, C.ncoef))) / norm

    truth = 0.3 + draw(1)[0]
    anom = draw(nmem)
    mean_b = truth + draw(1)[0]
    xb = mean_b + anom - anom.mean(axis=0)
    y = truth + sigma_o * rng.standard_normal(SHAPE)
    d = sd.ravel()
    B = d[:, None] * K * d[None, :]
    ref = mean_b.ravel() + B @ np.linalg.solve(B + sigma_o**2 * np.eye(n), (y - mean_b).ravel())
    return C, xb, y, sigma_o, sd, ref.reshape(SHAPE), mean_b


@pytest.mark.parametrize("seed", [3, 4])
def test_variance_filtering_recovers_an_east_west_contrast(seed):
    C, xb, y, sigma_o, sd, ref, mean_b = _case(seed)
    kw = dict(pad=0, nscales=4, bias_correction=False, inflation_mode="fixed", cg_tol=1e-8, cg_single_precision=False,
              variance_support="land_fraction", layer_increments="regression")  # one layer; "analysis" refuses "local"
    out = {}
    for name, extra in (("homogeneous", {"variance_filtering": False}),
                        ("filtered", {"variance_filtering": True, "variance_smoothing_km": 100.0}),
                        ("local", {"pooling": "local", "variance_filtering": False})):  # fmt: skip
        xa, diag = CurveletEnKF(**kw, **extra).update(xb, y, sigma_o, cell_km=CELL, transform=C, pad_offset=(0, 0))
        out[name] = (xa.mean(axis=0), diag)
    scale = out["filtered"][1]["variance_scale"]
    west, east = (slice(None), slice(0, 8)), (slice(None), slice(28, 36))
    contrast, true_contrast = scale[east].mean() / scale[west].mean(), sd[east].mean() / sd[west].mean()
    err = {k: {side: np.sqrt(np.mean((m - ref)[where] ** 2)) for side, where in (("west", west), ("east", east))}
           for k, (m, _) in out.items()}  # fmt: skip
    print(f"seed {seed}: S east/west {contrast:.2f} (true {true_contrast:.2f}); rms(mean - exact Kalman) "
          f"homogeneous {err['homogeneous']}, filtered {err['filtered']}")
    assert contrast == pytest.approx(true_contrast, rel=0.15)
    for side in ("west", "east"):  # the homogeneous B's gain is too high in the west, too low in the east
        assert err["filtered"][side] < 0.2 * err["homogeneous"][side]
        assert err["local"][side] < 0.6 * err["homogeneous"][side]  # local pooling within the wedges


def test_variance_filtering_settings():
    with pytest.raises(ValueError, match="variance_smoothing_km"):
        CurveletEnKF(variance_filtering=True, variance_smoothing_km=-1.0)
    assert CurveletEnKF().variance_filtering is True  # the default since issue 18 (training seeds)
