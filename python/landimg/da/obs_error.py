"""The observation-error model of the curvelet EnKF: white and spatially correlated parts.

``e = sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)``: perturbations of the observations (one draw per
member from its own stream) and the error variance per curvelet coefficient ``s_o`` (exact formulas where
they exist, else a fixed-seed Monte-Carlo estimate, identical on every rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.curvelet_stats import frame_norms2, image_offset, transform_shape
from landimg.parallel import Purpose, member_rng
from landimg.random_fields import GaussianFieldGenerator

__all__ = ["ObsErrorModel", "resolve_white_fraction"]


@dataclass
class ObsErrorModel:
    """Observation error: std map sigma (ny, nx), white fraction of its variance, correlation length (km).

    ``e = sigma * (sqrt(w) z_white + sqrt(1 - w) z_corr)`` with unit-variance white noise ``z_white`` and
    Gaussian-correlated noise ``z_corr`` of length ``corr_km`` (``w = white_fraction``; ``w < 1`` needs
    ``corr_km > 0``).
    """

    sigma: np.ndarray
    corr_km: float
    cell_km: tuple[float, float]
    periodic_x: bool
    white_fraction: float = 1.0

    def _part(self, white_fraction: float) -> ObsErrorModel:
        return ObsErrorModel(self.sigma, self.corr_km, self.cell_km, self.periodic_x, white_fraction)

    def fields(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """One error image per generator, (n, ny, nx).

        Mixed model: the correlated draw first, then the white one, both from each member's own
        generator (independent of the rank layout).
        """
        w = self.white_fraction
        if w < 1:
            gen = GaussianFieldGenerator(self.sigma.shape, self.cell_km, self.corr_km, self.periodic_x)
            z = gen.draw(rngs, 1)[:, 0]
            if w > 0:
                white = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
                z = np.sqrt(1.0 - w) * z + np.sqrt(w) * white
        else:
            z = np.stack([r.standard_normal(self.sigma.shape) for r in rngs])
        return self.sigma * z

    def coefficient_variance(
        self,
        transform: Any,
        nsamples: int,
        seed: int,
        *,
        pooled: bool = False,
        offset: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """s_o per coefficient (ncoef,) at *full coverage*: the error field on the whole transform domain.

        ``sigma`` must already hold the fill value (rms of the usable sigmas) off the observations; the
        padding of a larger transform domain takes the same fill, so that ``s_o`` is on the same footing
        as the land-fraction normalised pooled ``s_b`` (and as the analytic white path).

        * uniform white error: ``sigma^2 |row_j|^2`` (exact);
        * white error with a sigma map, pooled (wedge/scale/global): ``mean(sigma^2) |row_j|^2`` (exact
          after pooling: a wedge's frame elements are translates on a grid that covers the domain
          uniformly, so ``sum_{j in wedge} C_jp^2`` does not depend on the pixel ``p``);
        * otherwise (correlated error, or a sigma map without pooling): Monte Carlo over ``nsamples``
          fixed-seed error images on the transform domain (identical on every rank);
        * mixed error (``0 < white_fraction < 1``): ``w * s_o(white) + (1 - w) * s_o(correlated)``, each
          part as above (the two parts are independent, so their variances add).
        """
        w = self.white_fraction
        if 0 < w < 1:
            kw: dict[str, Any] = {"pooled": pooled, "offset": offset}
            return w * self._part(1.0).coefficient_variance(transform, nsamples, seed, **kw) + (
                1.0 - w
            ) * self._part(0.0).coefficient_variance(transform, nsamples, seed, **kw)
        white = w >= 1
        vals = self.sigma[np.isfinite(self.sigma)]
        uniform = bool(vals.size) and bool(np.all(vals == vals[0]))
        if white and uniform:
            return vals[0] ** 2 * frame_norms2(transform)
        tshape = transform_shape(transform)
        fill = float(np.sqrt(np.mean(vals**2))) if vals.size else 0.0
        sig = np.full(tshape, fill)
        oy, ox = image_offset(self.sigma.shape, tshape, offset)
        sig[oy : oy + self.sigma.shape[0], ox : ox + self.sigma.shape[1]] = self.sigma
        if white and pooled:
            return float(np.mean(sig**2)) * frame_norms2(transform)
        full = ObsErrorModel(sig, self.corr_km, self.cell_km, self.periodic_x, w)
        rngs = [member_rng(seed, k, Purpose.OBS) for k in range(10**6, 10**6 + nsamples)]
        return np.mean(transform.forward(full.fields(rngs)) ** 2, axis=0)


def resolve_white_fraction(obs_white_fraction: float | None, obs_corr_km: float) -> float:
    """The white fraction of the observation-error variance actually used, checked.

    None: 1.0 when ``obs_corr_km <= 0`` (white), 0.0 otherwise (entirely correlated, the historical
    meaning of ``obs_corr_km > 0``). A given value must lie in [0, 1]; values below 1 need
    ``obs_corr_km > 0``.
    """
    if obs_white_fraction is None:
        return 1.0 if obs_corr_km <= 0 else 0.0
    w = float(obs_white_fraction)
    if not 0.0 <= w <= 1.0:  # also rejects NaN
        raise ValueError(f"obs_white_fraction must be in [0, 1] (or None), got {obs_white_fraction!r}")
    if w < 1.0 and obs_corr_km <= 0:
        raise ValueError(
            f"obs_white_fraction={w} < 1 needs a correlation length obs_corr_km > 0, got {obs_corr_km!r}"
        )
    return w
