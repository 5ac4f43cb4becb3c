"""The installed package holds every module: ``python/landimg/meson.build`` lists each ``.py`` explicitly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "python" / "landimg"


def _listed(meson: str) -> set[str]:
    """``room/module.py`` paths of every ``install_sources`` block, prefixed by the block's room."""
    found = set()
    for block in re.finditer(r"py\.install_sources\(\s*\[(.*?)\]\s*,\s*subdir\s*:\s*'([^']+)'", meson, re.S):
        for name in re.findall(r"'([^']+\.py)'", block.group(1)):
            found.add(name)
    return found


@pytest.mark.skipif(not (PKG / "meson.build").exists(), reason="needs the source tree")
def test_every_module_is_installed() -> None:
    listed = _listed((PKG / "meson.build").read_text())
    present = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")}
    assert present - listed == set(), f"modules missing from python/landimg/meson.build: {sorted(present - listed)}"
    assert listed - present == set(), f"meson.build lists absent modules: {sorted(listed - present)}"
