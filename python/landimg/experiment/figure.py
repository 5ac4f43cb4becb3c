"""Figure plumbing shared by the experiment's figures (matplotlib, optional): whether matplotlib is there,
a figure without pyplot, fixed margins, and an atomic PNG write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landimg.atomic import atomic_path

__all__ = ["available", "margins", "save", "subplots"]


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def subplots(nrows: int, ncols: int, figsize: tuple[float, float], **kw: Any):
    """A figure and its (nrows, ncols) axes, without pyplot (no global figure manager or GUI backend to
    import and tear down: the figure is written by the Agg renderer and dropped)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def margins(fig, left: float, right: float, bottom: float, top: float, wspace: float, hspace: float) -> None:
    """Fixed figure margins in inches (and the spacing between panels as fractions of a panel): the
    layout is set once instead of measured from the drawn text (``bbox_inches="tight"`` draws every
    figure twice and measures all its text a third time)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)  # fmt: skip


def save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG (one draw; the layout is fixed by :func:`margins`) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
