#!/usr/bin/env bash
# Set up everything landimg needs on a fresh Debian/Ubuntu machine (as root) or an existing one:
# gfortran (apt, only if missing), a virtual environment (.venv, reused when present), and the project
# with its MPI (PyPI mpich), FFTW (pyFFTW), test and plot extras. Idempotent: a second run reuses what is there and
# only rebuilds the project itself.
#
# Environment: LANDIMG_VENV (default: <repo>/.venv), LANDIMG_EXTRAS (default: test,mpich,plot,fftw).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LANDIMG_VENV:-$repo/.venv}
extras=${LANDIMG_EXTRAS:-test,mpich,plot,fftw}
log() { printf '[landimg setup] %s\n' "$*"; }

missing=()
command -v gfortran >/dev/null 2>&1 || missing+=(gfortran)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    >/dev/null 2>&1 || missing+=(python3-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing system packages: ${missing[*]}; install them (e.g. apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | { grep -v "is neither a file nor a directory" || true; }
fi
log "installing landimg[$extras] into $venv (builds the Fortran extension)"
# (pip's notes about unreachable local find-links folders on some images are dropped; errors still show)
"$venv/bin/python" -m pip install -q "$repo[$extras]" 2>&1 | { grep -v "is neither a file nor a directory" || true; }
"$venv/bin/python" -c 'import landimg; print("[landimg setup] landimg", landimg.__version__, "ready")'
