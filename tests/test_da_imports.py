"""The DA room imports neither the model, the ensemble, the data readers nor the experiment (issue 8).

Every import statement under ``python/landimg/da`` (also inside functions and ``TYPE_CHECKING`` blocks)
is parsed with ``ast``; only the shared leaves, the transform room and the DA room itself are allowed.
"""

import ast
from pathlib import Path

import pytest

DA = Path(__file__).resolve().parents[1] / "python" / "landimg" / "da"
ALLOWED = (
    "landimg.da", "landimg.transform", "landimg.grid", "landimg.layout", "landimg.parallel", "landimg.random_fields",
)  # fmt: skip


def _landimg_imports(source: str, package: str = "landimg.da") -> list[str]:
    """Absolute names of the landimg modules imported by ``source`` (relative imports resolved)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names += [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
    return [n for n in names if n == "landimg" or n.startswith("landimg.")]


def _forbidden(name: str) -> bool:
    return not any(name == a or name.startswith(a + ".") for a in ALLOWED)


def test_da_room_imports_only_transform_and_leaves():
    files = sorted(DA.glob("*.py"))
    assert len(files) >= 8, f"expected the da modules in {DA}"
    bad = {f.name: [n for n in _landimg_imports(f.read_text()) if _forbidden(n)] for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"landimg.da must not import the model, ensemble, data or experiment: {bad}"


@pytest.mark.parametrize(
    "source",
    [
        "import landimg",
        "from landimg.model.column import ColumnModel",
        "def f():\n    from landimg.ensemble import ensemble",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from landimg.experiment.config import Config",
        "from ..model import column",
        "from .. import ensemble",
    ],
)
def test_checker_catches_forbidden_imports(source):
    assert any(_forbidden(n) for n in _landimg_imports(source))


def test_checker_allows_the_leaves():
    src = (
        "from landimg.layout import Layout\nfrom . import protocol\nimport landimg.transform.curvelet"
    )
    names = _landimg_imports(src)
    assert names and not any(_forbidden(n) for n in names)
