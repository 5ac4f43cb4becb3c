#!/usr/bin/env bash
# Set up (ci/setup.sh), lint (ruff check) and run the whole landimg test suite. Extra arguments go to pytest
# (e.g. -m "not slow and not mpi" for the quick suite).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/ci/setup.sh"
venv=${LANDIMG_VENV:-$repo/.venv}
export PATH="$venv/bin:$PATH"      # the mpirun of the same environment as mpi4py
cd "$repo"
echo "[landimg] ruff check (rules: pyproject.toml)"
"$venv/bin/python" -m ruff check .
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests
status=$?
set -e
if [ "$status" -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$status"
