"""Cross-check of the LETKF with a correlated R against DAPPER's ETKF (an independent implementation).

Without localization (every column sees every observation with weight 1) each column's LETKF analysis is
the global ETKF restricted to that column, so the whole analysis ensemble must equal DAPPER's
``EnKF_analysis(..., upd_a="Sqrt")`` (symmetric square root, Sakov & Oke 2008) with the full correlated
``R`` of the declared :class:`landimg.da.obs_error.ObsError`. DAPPER is not a dependency: it runs in a
venv of its own (Python >= 3.9; ``pip install dapper==1.7.1``), called by this script in a subprocess::

    PYTHONPATH=python .venv/bin/python bench/letkf_dapper_check.py --dapper-python VENV/bin/python

Prints the largest differences of the analysis ensembles (relative to the increments). The test suite
checks the same against a dense numpy ETKF (tests/test_letkf_correlated.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _oracle(src: Path, dst: Path) -> None:
    """Runs under the DAPPER venv: its ETKF analysis of the problem in ``src``."""
    from dapper.da_methods.ensemble import EnKF_analysis
    from dapper.tools.matrices import CovMat
    from dapper.tools.randvars import GaussRV

    p = np.load(src)
    hnoise = GaussRV(C=CovMat(p["R"]), mu=0)
    out = {upd: EnKF_analysis(p["E"], p["Eo"], hnoise, p["y"], upd) for upd in ("Sqrt", "Sqrt svd")}
    np.savez(dst, eig=out["Sqrt"], svd=out["Sqrt svd"])


def _problem(seed: int):
    """A small grid with ocean, 3 layers, 12 members, half the columns observed, a mixed error."""
    from landimg.analysis import Geometry, ObsError
    from landimg.da.localization import EARTH_RADIUS_KM

    rng = np.random.default_rng(seed)
    ny, nx = 9, 14
    lat, lon = 30.0 + np.arange(ny) + 0.5, -110.0 + np.arange(nx) + 0.5
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = np.ones((ny, nx), bool)
    land[:2, :3] = False
    dy = np.radians(1.0) * EARTH_RADIUS_KM
    g = Geometry(land, la[land], lo[land], (dy, 0.85 * dy))
    nmem, nlev = 12, 3
    modes = np.stack([np.sin(g.lat / 3.0 + k) * np.cos(g.lon / 4.0 - k) for k in range(5)])
    anom = np.einsum("kc,lkn->lcn", modes, 0.01 * rng.standard_normal((nlev, 5, nmem)))
    anom += 0.004 * rng.standard_normal((nlev, g.ncol, nmem))
    anom[1:] += 0.6 * anom[:1]
    state = 0.25 + anom
    obs = 0.25 + 0.02 * rng.standard_normal(g.ncol)
    obs[rng.random(g.ncol) < 0.5] = np.nan
    err = ObsError.from_fraction(0.02 + 0.01 * rng.random(g.ncol), 0.3, 350.0)
    return g, state, np.array([0.7, 0.3, 0.0]), obs, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dapper-python", type=Path, help="python of a venv with dapper installed")
    ap.add_argument("--oracle", nargs=2, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args(argv)
    if a.oracle:
        _oracle(*a.oracle)
        return 0
    if a.dapper_python is None:
        ap.error("--dapper-python is required")
    from landimg.analysis import point_letkf_increments
    from landimg.da.localization import Neighbourhoods
    from landimg.da.obs_covariance import ObsCovariance

    g, state, h, obs, err = _problem(a.seed)
    cov = ObsCovariance.of(err, g)
    ok = np.isfinite(obs)
    o = np.flatnonzero(ok)
    r = cov.between(o[:, None], o[None, :])
    nlev, ncol, nmem = state.shape
    e = state.transpose(2, 0, 1).reshape(nmem, nlev * ncol)  # DAPPER: (N, Nx), layer-major state
    eo = np.einsum("l,lcn->nc", h, state)[:, ok]  # (N, p)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "p.npz", Path(tmp) / "a.npz"
        np.savez(src, E=e, Eo=eo, R=r, y=obs[ok])
        subprocess.run([str(a.dapper_python), __file__, "--oracle", str(src), str(dst)], check=True)
        ref = dict(np.load(dst))
    idx = np.broadcast_to(o, (ncol, o.size)).copy()
    nb = Neighbourhoods(idx, np.zeros(idx.shape), np.ones(idx.shape), np.ones(idx.shape, bool), 1e9)
    kw = dict(lat=g.lat, lon=g.lon, radius_km=1e9, neighbours=nb)
    d, _ = point_letkf_increments(state, h, obs, err.std, obs_cov=cov, **kw)
    dw, _ = point_letkf_increments(state, h, obs, err.std, **kw)
    xa = (state + d).transpose(2, 0, 1).reshape(nmem, -1)
    xw = (state + dw).transpose(2, 0, 1).reshape(nmem, -1)
    scale = np.abs(xa - e).max()
    print(
        f"grid {g.shape}, {ncol} columns, {o.size} observations, {nmem} members, white fraction 0.3, L 350 km"
    )
    for name, val in ref.items():
        print(
            f"DAPPER Sqrt ({name}): max |LETKF - DAPPER| = {np.abs(xa - val).max():.2e} "
            f"({np.abs(xa - val).max() / scale:.1e} of the largest increment)"
        )
    print(
        f"white LETKF (same total std) vs DAPPER: {np.abs(xw - ref['eig']).max() / scale:.2f} "
        "of the largest increment"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
