"""The LETKF's bias-aware two-stage analysis on column blocks: two analyses, the state and the bias saved
(argv: output .npz, inflation mode, 'white' or 'corr')."""

import sys

import landimg
import numpy as np
from landimg.analysis import ObsError, PointLETKF
from mpi4py import MPI

grid = landimg.Grid.regular(lat=(30.0, 42.0), lon=(-110.0, -90.0), res=1.0, land_mask="all")
ens = landimg.Ensemble(grid, 7, soil=landimg.soil.from_class("loam", grid.ncol), seed=3,
                       column_blocks=MPI.COMM_WORLD.Get_size())  # fmt: skip
forcing = {"tair": 290.0, "qair": 0.008, "psurf": 1e5, "precip": 2e-4, "wind": 3.0, "swdown": 300.0, "lwdown": 330.0}
ens.advance({k: np.full(grid.ncol, v) for k, v in forcing.items()}, nsteps=6)
obs = ens.mean_image((0.0, 0.05)) + 0.05 * np.random.default_rng(9).standard_normal(grid.shape)
obs[:, ::3] = np.nan
std = np.full(grid.ncol, 0.02)
err = ObsError.white(std) if sys.argv[3] == "white" else ObsError.from_fraction(std, 0.5, 200.0)
method = PointLETKF(radius_km=300.0, bias_correction=True, inflation_mode=sys.argv[2])
out = {}
for k in range(2):
    ens.assimilate(obs, err, method)
    st = ens.gather_state()
    if st is not None:
        out[f"wliq{k}"], out[f"bias{k}"] = st["model/wliq"], st["da_state"]["PointLETKF.bias"]
if out:
    np.savez(sys.argv[1], **out)
