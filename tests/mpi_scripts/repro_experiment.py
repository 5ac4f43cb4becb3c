"""A small ensemble experiment (forecast + curvelet and point analyses) whose result rank 0 saves.

Usage: mpirun -n N python -m mpi4py repro_experiment.py OUT.npz [COLUMN_BLOCKS]
Run at 1, 2 and 3 ranks (and on column blocks: 1x2, 1x3, 2x2) by tests/test_mpi.py, which checks the
outputs are bitwise identical.
"""

import sys

import landimg
import numpy as np
from landimg.analysis import CurveletEnKF, ObsError, PointEnKF, PointLETKF
from landimg.parallel import install_abort_excepthook

install_abort_excepthook()
out = sys.argv[1]
blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 1
grid = landimg.Grid.regular(lat=(30.0, 42.0), lon=(-100.0, -80.0), res=0.5, land_mask="builtin")
soil = landimg.soil.from_class("loam", grid.ncol)
ens = landimg.Ensemble(grid, 7, soil=soil, dt=3600.0, seed=11, column_blocks=blocks)
ones = np.ones(grid.ncol)
forcing = dict(
    tair=293.0 * ones,
    qair=0.008 * ones,
    psurf=1e5 * ones,
    precip=1e-4 * ones,
    wind=3.0 * ones,
    swdown=350.0 * ones,
    lwdown=330.0 * ones,
)
for _ in range(4):
    ens.advance(forcing, nsteps=3)
truth = ens.mean_image((0.0, 0.05)) + 0.03 * np.sin(np.arange(grid.shape[1]) / 3.0)[None, :]
obs = truth.copy()
obs[:, :6] = np.nan  # a gap
diag1 = ens.assimilate(
    obs, 0.02, CurveletEnKF(pooling="wedge", nscales=3, nangles_coarse=8, deep_regression=True)
)
ens.advance(forcing, nsteps=1)
# correlated obs error (Monte-Carlo s_o, correlated perturbations), a sigma map, inflation and RTPS
sigma = np.where(np.arange(grid.shape[1])[None, :] < 20, 0.02, 0.03) * np.ones(grid.shape)
curv2 = CurveletEnKF(
    pooling="scale", nscales=3, nangles_coarse=8, obs_corr_km=100.0, inflation=1.05, rtps=0.5,
    obs_var_samples=8,
)  # fmt: skip
diag1b = ens.assimilate(obs, sigma, curv2)
ens.advance(forcing, nsteps=2)
# hybrid B (localized ensemble covariance from all ranks' members) and the two-stage bias (carried state)
curv3 = CurveletEnKF(
    nscales=3, nangles_coarse=8, hybrid_beta=0.5, hybrid_radius_km=300.0, bias_correction=True, bias_gamma=0.5,
    layer_increments="regression",  # "analysis" (the default) refuses hybrid B; the column regression's path
)  # fmt: skip
for _ in range(2):
    diag1c = ens.assimilate(obs, 0.02, curv3)
    ens.advance(forcing, nsteps=1)
# issue 18: the declared correlated R in the solve, variance filtering, interior support, the fine band of
# localized band-passed covariances and every layer's increment from the same analysis
curv4 = CurveletEnKF(
    nscales=3, nangles_coarse=8, variance_filtering=True, variance_support="interior", fine_band_scales=1,
    fine_band_radius_km=300.0, layer_increments="analysis",
)  # fmt: skip
diag1d = ens.assimilate(obs, ObsError.from_fraction(0.02, 0.5, 150.0), curv4)
ens.advance(forcing, nsteps=1)
# the deep layers from a local ensemble-space fit of the observed layer's increment (every member gathered), a
# deep gain
curv5 = CurveletEnKF(nscales=3, nangles_coarse=8, layer_increments="transform", layer_radius_km=200.0, deep_gain=0.5)
ens.assimilate(obs, 0.02, curv5)
ens.advance(forcing, nsteps=1)
diag2 = ens.assimilate(obs, 0.02, PointEnKF(radius_km=120.0, inflation=1.1))
ens.advance(forcing, nsteps=1)
diag3 = ens.assimilate(obs, 0.02, PointLETKF(radius_km=120.0))
images = ens.images((0.0, 0.05))
state = ens.gather_state()
mean = ens.mean_image((0.0, 0.05))  # collective: every rank calls it
ens.advance(forcing, nsteps=2)  # move on, then restore the gathered state on every rank
ens.scatter_state(state)
restored = ens.images((0.0, 0.05))
if ens.layout.rank == 0:
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    arrays["images"] = images
    arrays["mean"] = mean
    arrays["bias"] = ens.da_state["CurveletEnKF.bias"]
    assert np.array_equal(restored, images, equal_nan=True), "scatter_state did not restore the state"
    arrays["diag"] = np.array(
        [
            diag1["increment_rms"],
            diag1["clipped_water_kg_m2"],
            diag1b["increment_rms"],
            diag1c["increment_rms"],
            diag1d["increment_rms"],
            diag2["increment_rms"],
            diag3["increment_rms"],
        ]
    )
    np.savez(out, **arrays)
