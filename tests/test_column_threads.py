"""OpenMP threads across columns x members: bitwise identical results for 1 and 2 threads."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import subprocess_env

SCRIPT = r"""
import sys
import numpy as np
import landimg
from landimg import soil
from landimg.model import column

ncol, nmem = 41, 3
rng = np.random.default_rng(4)
sl = soil.from_texture(rng.uniform(5, 90, (ncol, nmem)), rng.uniform(0, 10, (ncol, nmem)))
m = landimg.ColumnModel(ncol, nmem, soil=sl, dt=3600.0, igbp=rng.choice([1, 7, 10, 12, 16], ncol))
for k in range(72):
    t = 268.0 + 12.0 * np.sin(k / 6.0) + rng.normal(0, 2, (ncol, nmem))
    f = dict(tair=t, qair=np.full((ncol, nmem), 0.003), psurf=np.full((ncol, nmem), 1.0e5),
             precip=rng.exponential(3e-4, (ncol, nmem)) * (rng.random((ncol, nmem)) < 0.3),
             wind=rng.uniform(0.5, 8, (ncol, nmem)), swdown=rng.uniform(0, 600, (ncol, nmem)),
             lwdown=rng.uniform(220, 380, (ncol, nmem)))
    m.step(f)
st = m.get_state()
np.savez(sys.argv[1], nthreads=column.threads(), **st)
"""


def _run(tmp_path: Path, nthreads: int) -> dict:
    out = tmp_path / f"state{nthreads}.npz"
    env = dict(subprocess_env(), OMP_NUM_THREADS=str(nthreads))  # the same landimg as this process
    subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, check=True, timeout=600)
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_one_and_two_threads_are_bitwise_identical(tmp_path):
    one = _run(tmp_path, 1)
    two = _run(tmp_path, 2)
    assert int(one["nthreads"]) == 1
    if int(two["nthreads"]) != 2:
        pytest.skip("extension built without OpenMP")
    for k in one:
        if k != "nthreads":
            assert np.array_equal(one[k], two[k]), k


def test_threads_can_be_set_and_queried():
    from landimg.model import column

    n0 = column.threads()
    assert n0 >= 1
    try:
        assert column.threads(1) == 1
    finally:
        column.threads(n0)
    with pytest.raises(ValueError, match="threads"):
        column.threads(0)
