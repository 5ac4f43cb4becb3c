#!/usr/bin/env bash
# Developer loop: (re)build the Fortran extension with meson in build-dev/ and place it next to the
# sources in python/landimg/model/, so that `PYTHONPATH=python .venv/bin/python ...` runs the working tree.
# Needs the venv made by ci/setup.sh; adds meson and ninja to it on first use.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LANDIMG_VENV:-$repo/.venv}
cd "$repo"
"$venv/bin/python" -c 'import mesonbuild, ninja' 2>/dev/null || "$venv/bin/python" -m pip install -q meson ninja meson-python
export PATH="$venv/bin:$PATH"
[ -f build-dev/build.ninja ] || meson setup build-dev --buildtype=release >/dev/null
ninja -C build-dev >/dev/null
so=$(ls build-dev/fortran/_colm*.so)
tmp=$(mktemp "python/landimg/model/.colm.XXXXXX")
cp "$so" "$tmp" && mv -f "$tmp" "python/landimg/model/$(basename "$so")"
echo "built $(basename "$so")"
