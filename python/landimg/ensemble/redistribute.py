"""The analysis layouts of a host: each method's :class:`~landimg.da.protocol.Need` as a layout of the same
ranks, and the transposition from the model's layout to it (made once per need, then reused).

* ``Distribution.COLUMNS`` (point EnKF, LETKF): every member of a block of columns, ``1 x P`` blocks
  balanced by the analysis cost of their columns (:func:`landimg.layout.column_costs`: a column's
  neighbourhood within the halo, capped at 64), plus the columns within ``need.halo_km`` of the block
  (:func:`landimg.layout.halo_columns`): all ranks analyse, each its own columns.
* ``Distribution.MEMBERS`` (curvelet EnKF): whole members, ``P x 1`` (each member's every column on one
  rank; with more ranks than members the last ranks hold none and take part in the reductions with nothing).
* ``Distribution.NONE`` (open loop): the model's layout as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from landimg.da.protocol import Distribution, Need
from landimg.layout import Layout, Transposer, column_costs, halo_columns

__all__ = ["AnalysisLayout", "analysis_layout"]


@dataclass(frozen=True)
class AnalysisLayout:
    """A method's layout and the way there from the model's.

    Attributes
    ----------
    layout : Layout
        The layout the method's arrays are in (``context.layout``).
    transposer : Transposer
        Model layout -> ``layout`` (``forward``) and back for the owned columns (``backward``).
    columns : ndarray of int (nheld,) or None
        Global columns this rank holds there (``context.columns``); None: every column in order.
    owned : ndarray of bool (nheld,) or None
        Which of them it owns (``context.owned``); None: all.
    """

    layout: Layout
    transposer: Transposer
    columns: np.ndarray | None
    owned: np.ndarray | None


def analysis_layout(model_layout: Layout, need: Need, grid: Any) -> AnalysisLayout:
    """The layout ``need`` asks for on the ranks of ``model_layout`` (collective), on ``grid``'s columns."""
    lay = model_layout
    if need.distribution is Distribution.NONE:
        target, held = lay, None
    elif need.distribution is Distribution.MEMBERS:
        target, held = Layout(lay.nmem, lay.comm, ncol=lay.ncol, column_blocks=1), None
    elif need.distribution is Distribution.COLUMNS:
        weights = column_costs(grid.xyz, need.halo_km) if lay.size > 1 else None
        target = Layout(lay.nmem, lay.comm, ncol=lay.ncol, column_blocks=lay.size, weights=weights)
        held = halo_columns(target, grid.xyz, need.halo_km)
    else:  # pragma: no cover - a new Distribution needs a case here
        raise ValueError(f"unknown distribution {need.distribution!r}")
    tr = lay.transposer(target, held)
    whole = tr.held.size == lay.ncol
    return AnalysisLayout(
        target, tr, None if whole else tr.held, None if bool(np.all(tr.owned)) else tr.owned.copy()
    )
