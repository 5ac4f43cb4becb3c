"""The daily record of an experiment (rank 0): what the outputs, the summary and the restart are made of."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from landimg.experiment import metrics as _metrics

__all__ = ["LAYERS", "LAYER_NAMES", "SCORES", "History", "MethodHistory"]

#: Verification layers (top, bottom) m and their names.
LAYERS = _metrics.LAYERS
LAYER_NAMES = [_metrics.layer_name(layer) for layer in LAYERS]
#: Scores of the ``scores`` arrays' last axis.
SCORES = ("spatial_corr", "ubrmse", "bias")


@dataclass
class MethodHistory:
    """One method's daily record (``nd`` days, ``nl`` verification layers, ``ns`` stations).

    Attributes
    ----------
    mean, spread : float32 (nd, nl, ny, nx)
        Ensemble mean and standard deviation after the day's last analysis, m3/m3 (NaN off land).
    increment : float32 (nd, ny, nx)
        Ensemble-mean increment of the observed layer at the day's last analysis, m3/m3.
    scores, scores_background : float64 (nd, nl, 3)
        :data:`SCORES` of the analysis / background vs the nature run.
    station : float64 (nd, ns)
        Ensemble mean of the 0-10 cm layer at the stations, m3/m3.
    clipped_water : float64 (nd,)
        Water the analyses could not add or remove (bounds), kg/m2, domain mean, sum over the day.
    """

    mean: np.ndarray
    spread: np.ndarray
    increment: np.ndarray
    scores: np.ndarray
    scores_background: np.ndarray
    station: np.ndarray
    clipped_water: np.ndarray

    @classmethod
    def empty(cls, nd: int, shape: tuple[int, int], nstations: int) -> MethodHistory:
        """All values missing (NaN; zero clipped water)."""
        nl, (ny, nx) = len(LAYERS), shape
        return cls(
            mean=np.full((nd, nl, ny, nx), np.nan, np.float32),
            spread=np.full((nd, nl, ny, nx), np.nan, np.float32),
            increment=np.full((nd, ny, nx), np.nan, np.float32),
            scores=np.full((nd, nl, len(SCORES)), np.nan),
            scores_background=np.full((nd, nl, len(SCORES)), np.nan),
            station=np.full((nd, nstations), np.nan),
            clipped_water=np.zeros(nd),
        )


@dataclass
class History:
    """The experiment's daily record.

    Attributes
    ----------
    truth : float32 (nd, nl, ny, nx)
        Nature run, layer means, m3/m3.
    obs : float32 (nd, ny, nx)
        The day's retrievals (NaN = none), m3/m3.
    station_obs : float64 (nd, ns)
        Station readings, m3/m3.
    n_obs : int64 (nd,)
        Retrievals per day.
    methods : dict of str -> MethodHistory
    """

    truth: np.ndarray
    obs: np.ndarray
    station_obs: np.ndarray
    n_obs: np.ndarray
    methods: dict[str, MethodHistory]

    @classmethod
    def empty(cls, nd: int, shape: tuple[int, int], nstations: int, methods: list[str]) -> History:
        """A history of ``nd`` days with every value missing."""
        nl, (ny, nx) = len(LAYERS), shape
        return cls(
            truth=np.full((nd, nl, ny, nx), np.nan, np.float32),
            obs=np.full((nd, ny, nx), np.nan, np.float32),
            station_obs=np.full((nd, nstations), np.nan),
            n_obs=np.zeros(nd, np.int64),
            methods={m: MethodHistory.empty(nd, shape, nstations) for m in methods},
        )

    def __getitem__(self, method: str) -> MethodHistory:
        return self.methods[method]

    def to_tree(self) -> dict[str, Any]:
        """A nested dict of arrays (the restart layout: top-level arrays, then one dict per method)."""
        tree: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "methods"}
        for m, h in self.methods.items():
            tree[m] = {f.name: getattr(h, f.name) for f in fields(h)}
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any], methods: list[str]) -> History:
        """Inverse of :meth:`to_tree`; raises KeyError naming a missing entry."""
        top = {f.name: np.asarray(tree[f.name]) for f in fields(cls) if f.name != "methods"}
        per = {
            m: MethodHistory(**{f.name: np.asarray(tree[m][f.name]) for f in fields(MethodHistory)})
            for m in methods
        }
        return cls(**top, methods=per)
