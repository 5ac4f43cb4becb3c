"""An outside driver stepping landimg.Ensemble (run: .venv/bin/python docs/embedding_example.py, or under mpirun)."""

import landimg
import numpy as np
from landimg.analysis import CurveletEnKF
from landimg.parallel import SerialComm

grid = landimg.Grid.regular(lat=(25.0, 50.0), lon=(-125.0, -65.0), res=1.0, land_mask="builtin")
soil = landimg.soil.from_class("loam", grid.ncol)
lat, lon = grid.column_latlon()


def nwp_forcing(hour: int) -> dict[str, np.ndarray]:
    """The host model's forcing for one hour at every land column."""
    sun = max(0.0, np.sin(2 * np.pi * (hour % 24 - 6) / 24))
    band = np.exp(-0.5 * ((lon - (-120.0 + 2.0 * hour)) / 4.0) ** 2)  # rain band moving east
    one = np.ones(grid.ncol)
    return dict(tair=(288.0 + 8.0 * sun) * one, qair=0.008 * one, psurf=1.0e5 * one,
                precip=2.0e-4 * band, wind=3.0 * one, swdown=800.0 * sun * one, lwdown=330.0 * one)


# nature run: one unperturbed member, a little wetter, as the "truth" the satellite sees
# (comm=SerialComm(): every rank runs the same one-member nature run by itself)
nature = landimg.Ensemble(grid, 1, soil=soil, seed=123, perturbation=None, comm=SerialComm())
ens = landimg.Ensemble(grid, 8, soil=soil, dt=3600.0, seed=1)
method = CurveletEnKF(pooling="wedge", obs_depth=(0.0, 0.05))
rng = np.random.default_rng(0)

# spin-up: ten dry, warm days (one Fortran call each), so the soil leaves saturation
dry = {**nwp_forcing(12), "precip": np.zeros(grid.ncol)}
ens.advance(dry, nsteps=240)
nature.advance(dry, nsteps=240)

for hour in range(48):
    f = nwp_forcing(hour)
    ens.advance(f, nsteps=1)
    nature.advance({**f, "precip": 3.0 * f["precip"]}, nsteps=1)  # the host's rain is too weak
    if hour % 24 == 23:
        truth = nature.images((0.0, 0.05))[0]
        obs = truth + 0.01 * rng.standard_normal(grid.shape)
        obs[:, 20:30] = np.nan  # swath gap
        before = np.nanmean(np.abs(ens.mean_image((0.0, 0.05)) - truth))
        diag = ens.assimilate(obs, 0.01, method)
        after = np.nanmean(np.abs(ens.mean_image((0.0, 0.05)) - truth))
        if ens.layout.rank == 0:
            print(f"hour {hour + 1}: n_obs={diag['n_obs']} nan_masked={diag['n_nan_masked']} "
                  f"increment_rms={diag['increment_rms']:.4f} clipped={diag['clipped_water_kg_m2']:.2e} kg/m2 "
                  f"mean abs error {before:.4f} -> {after:.4f} m3/m3")

# restart: gather everything on rank 0, continue, then resume from the restart and compare
restart = ens.gather_state()
for hour in range(48, 54):
    ens.advance(nwp_forcing(hour))
first = ens.images((0.0, 0.1))
ens.scatter_state(restart)
for hour in range(48, 54):
    ens.advance(nwp_forcing(hour))
assert np.array_equal(first, ens.images((0.0, 0.1)), equal_nan=True), "restart is not bitwise"
spread = np.nanmean(ens.spread_image((0.0, 0.1)))  # collective: called on every rank
if ens.layout.rank == 0:
    print(f"restart reproduces the continuation bitwise; spread 0-10 cm: {spread:.4f} m3/m3")
