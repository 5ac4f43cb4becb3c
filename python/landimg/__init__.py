"""landimg: ensemble image (curvelet-space) data assimilation for a CoLM-like land-surface model.

The public names are imported lazily, so ``import landimg`` is cheap and a module is loaded the
first time one of its names is used (``landimg.Curvelet`` loads :mod:`landimg.transform.curvelet` only).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "ColumnModel": ("landimg.model.column", "ColumnModel"),
    "soil": ("landimg.model.soil", None),
    "Curvelet": ("landimg.transform.curvelet", "Curvelet"),
    "Grid": ("landimg.grid", "Grid"),
    "Ensemble": ("landimg.ensemble.ensemble", "Ensemble"),
    "Layout": ("landimg.layout", "Layout"),
    "analysis": ("landimg.analysis", None),
    "perturb": ("landimg.ensemble.perturb", None),
    "parallel": ("landimg.parallel", None),
    "metrics": ("landimg.experiment.metrics", None),
    "config": ("landimg.experiment.config", None),
}

__all__ = ["__version__", *sorted(_LAZY)]  # noqa: PLE0604 - strings, built from the table


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'landimg' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
