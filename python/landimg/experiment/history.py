"""The daily record of an experiment (rank 0): what the outputs, the summary and the restart are made of."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from landimg.experiment import metrics as _metrics

__all__ = ["LAYERS", "LAYER_NAMES", "MAX_SCALES", "OBS_SPACE", "SCORES", "History", "MethodHistory"]

#: Verification layers (top, bottom) m and their names.
LAYERS = _metrics.LAYERS
LAYER_NAMES = [_metrics.layer_name(layer) for layer in LAYERS]
#: Scores of the ``scores`` arrays' last axis.
SCORES = ("spatial_corr", "ubrmse_spatial", "bias")
#: Observation-space statistics of the ``obs_space`` arrays' last axis (:class:`landimg.da.obs_diagnostics.ObsSpaceStats`).
OBS_SPACE = ("omb_mean", "omb_rms", "oma_mean", "oma_rms", "spread_b", "spread_a", "obs_err", "consistency", "n_obs")
#: Length of the per-scale gain record (scales beyond it are not recorded).
MAX_SCALES = 8


@dataclass
class MethodHistory:
    """One method's daily record (``nd`` days, ``nl`` verification layers, ``ns`` stations).

    Attributes
    ----------
    mean, spread : float32 (nd, nl, ny, nx)
        Ensemble mean and standard deviation after the day's last analysis, m3/m3 (NaN off land).
    mean_background : float32 (nd, nl, ny, nx)
        Ensemble mean of the forecast just before the day's last analysis (the background), m3/m3.
    increment : float32 (nd, ny, nx)
        Ensemble-mean increment of the observed layer at the day's last analysis, m3/m3.
    scores, scores_background : float64 (nd, nl, 3)
        :data:`SCORES` of the analysis / background vs the nature run.
    station : float64 (nd, ns)
        Ensemble mean of the 0-10 cm layer at the stations, m3/m3.
    clipped_water : float64 (nd,)
        Water the analyses could not add or remove (bounds), kg/m2, domain mean, sum over the day.
    obs_space : float64 (nd, len(OBS_SPACE))
        Observation-space statistics of the day's last analysis (:data:`OBS_SPACE`; m3/m3, ratio, count).
    rank_counts : int64 (nd, nmem + 1)
        Rank histogram of that analysis' observations among the background members (with obs-error noise).
    inflation : float64 (nd,)
        Anomaly inflation factor of that analysis (NaN when the method reports none).
    gain_per_scale : float64 (nd, MAX_SCALES)
        Curvelet EnKF: mean diagonal-form gain per scale, coarsest first (NaN beyond the transform's scales).
    inflation_per_scale : float64 (nd, MAX_SCALES)
        Curvelet EnKF with per-scale adaptive inflation: anomaly factor applied per scale, coarsest first.
    """

    mean: np.ndarray
    spread: np.ndarray
    mean_background: np.ndarray
    increment: np.ndarray
    scores: np.ndarray
    scores_background: np.ndarray
    station: np.ndarray
    clipped_water: np.ndarray
    obs_space: np.ndarray
    rank_counts: np.ndarray
    inflation: np.ndarray
    gain_per_scale: np.ndarray
    inflation_per_scale: np.ndarray

    @classmethod
    def empty(cls, nd: int, shape: tuple[int, int], nstations: int, nmem: int = 2) -> MethodHistory:
        """All values missing (NaN; zero clipped water and counts)."""
        nl, (ny, nx) = len(LAYERS), shape
        return cls(
            mean=np.full((nd, nl, ny, nx), np.nan, np.float32),
            spread=np.full((nd, nl, ny, nx), np.nan, np.float32),
            mean_background=np.full((nd, nl, ny, nx), np.nan, np.float32),
            increment=np.full((nd, ny, nx), np.nan, np.float32),
            scores=np.full((nd, nl, len(SCORES)), np.nan),
            scores_background=np.full((nd, nl, len(SCORES)), np.nan),
            station=np.full((nd, nstations), np.nan),
            clipped_water=np.zeros(nd),
            obs_space=np.full((nd, len(OBS_SPACE)), np.nan),
            rank_counts=np.zeros((nd, nmem + 1), np.int64),
            inflation=np.full(nd, np.nan),
            gain_per_scale=np.full((nd, MAX_SCALES), np.nan),
            inflation_per_scale=np.full((nd, MAX_SCALES), np.nan),
        )

    def record_analysis(self, day: int, diag: dict[str, Any]) -> None:
        """Store the observation-space statistics, inflation and per-scale gains of ``diag`` (if present)."""
        st = diag.get("obs_space")
        if st is not None:
            self.obs_space[day] = [getattr(st, k) for k in OBS_SPACE]
            self.rank_counts[day] = st.rank_counts
        infl = diag.get("inflation")
        self.inflation[day] = np.nan if infl is None else float(infl)
        for name in ("gain_per_scale", "inflation_per_scale"):
            g = diag.get(name)
            if g is not None:
                n = min(len(g), MAX_SCALES)
                getattr(self, name)[day, :n] = g[:n]


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
    def empty(
        cls, nd: int, shape: tuple[int, int], nstations: int, methods: list[str], nmem: int = 2
    ) -> History:
        """A history of ``nd`` days with every value missing (``nmem``: ensemble size, for rank histograms)."""
        nl, (ny, nx) = len(LAYERS), shape
        return cls(
            truth=np.full((nd, nl, ny, nx), np.nan, np.float32),
            obs=np.full((nd, ny, nx), np.nan, np.float32),
            station_obs=np.full((nd, nstations), np.nan),
            n_obs=np.zeros(nd, np.int64),
            methods={m: MethodHistory.empty(nd, shape, nstations, nmem) for m in methods},
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
    def from_tree(cls, tree: dict[str, Any], methods: list[str], nmem: int = 2) -> History:
        """Inverse of :meth:`to_tree`; raises KeyError naming a missing entry.

        Restarts of earlier versions lack the observation-space entries (``obs_space``, ``rank_counts``,
        ``inflation``, ``gain_per_scale``, ``inflation_per_scale``) or the background means
        (``mean_background``): those days read as missing (NaN, zero counts for ``nmem``).
        """
        top = {f.name: np.asarray(tree[f.name]) for f in fields(cls) if f.name != "methods"}
        per = {m: _method_from_tree(tree[m], nmem) for m in methods}
        return cls(**top, methods=per)


def _method_from_tree(tree: dict[str, Any], nmem: int) -> MethodHistory:
    inc, station = np.asarray(tree["increment"]), np.asarray(tree["station"])
    empty = MethodHistory.empty(inc.shape[0], inc.shape[1:], station.shape[1], nmem)
    return MethodHistory(
        **{f.name: np.asarray(tree[f.name]) if f.name in tree else getattr(empty, f.name) for f in fields(MethodHistory)}
    )
