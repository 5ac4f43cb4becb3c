#!/usr/bin/env bash
# Set up everything (ci/setup.sh) and run the default landimg experiment on MPI ranks:
#   mpirun -n $LANDIMG_RANKS python -m mpi4py -m landimg.cycle --out $LANDIMG_OUT [extra arguments]
# LANDIMG_RANKS defaults to 2; LANDIMG_OUT to runs/default-<date-time> (a new directory every time, so a
# second run never collides with the first). Extra arguments go to landimg.cycle (e.g. --set ensemble.members=32).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/ci/setup.sh"
venv=${LANDIMG_VENV:-$repo/.venv}
export PATH="$venv/bin:$PATH"      # the mpirun of the same environment as mpi4py
ranks=${LANDIMG_RANKS:-2}
out=${LANDIMG_OUT:-$repo/runs/default-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$(dirname "$out")"
echo "[landimg] mpirun -n $ranks python -m mpi4py -m landimg.cycle --out $out $*"
exec "$venv/bin/mpirun" -n "$ranks" "$venv/bin/python" -m mpi4py -m landimg.cycle --out "$out" "$@"
