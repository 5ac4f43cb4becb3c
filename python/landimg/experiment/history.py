"""The daily record of an experiment: what the outputs, the summary and the restart are made of.

Nothing here grows with the image size times the number of days. Each day's images (:class:`DayImages`:
the verification, the observations and each method's mean, background mean, spread and increment) are
made on rank 0 from the block means, appended to ``analysis.nc`` (:mod:`landimg.experiment.ncfiles`) and
dropped. What the summary needs over the period is kept as it goes:

* :class:`History` (rank 0): the small daily values -- spatial scores, station series, observation-space
  statistics, inflation, gains -- a few numbers per day and method;
* :class:`ScoreSums` (the ranks of member group 0, each its column block): the running per-pixel sums of
  the temporal scores (:class:`landimg.experiment.metrics.TimeSums`), reduced on rank 0 at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from landimg.experiment import metrics as _metrics

__all__ = [
    "KINDS", "LAYERS", "LAYER_NAMES", "MAX_SCALES", "OBS_SPACE", "SCORES", "DayImages", "History", "MethodHistory",
    "ScoreSums", "period_time_scores",
]  # fmt: skip

#: Verification layers (top, bottom) m and their names.
LAYERS = _metrics.LAYERS
LAYER_NAMES = [_metrics.layer_name(layer) for layer in LAYERS]
#: Scores of the ``scores`` arrays' last axis.
SCORES = ("spatial_corr", "ubrmse_spatial", "bias")
#: Observation-space statistics of the ``obs_space`` arrays' last axis (:class:`landimg.da.obs_diagnostics.ObsSpaceStats`).
OBS_SPACE = ("omb_mean", "omb_rms", "oma_mean", "oma_rms", "spread_b", "spread_a", "obs_err", "consistency", "n_obs")
#: Length of the per-scale gain record (scales beyond it are not recorded).
MAX_SCALES = 8
#: The temporal scores' two estimates: the analysis (ensemble mean after the day's last analysis) and the
#: background (the mean just before it).
KINDS = ("analysis", "background")


@dataclass
class MethodHistory:
    """One method's small daily record (``nd`` days, ``nl`` verification layers, ``ns`` stations).

    Attributes
    ----------
    scores, scores_background : float64 (nd, nl, 3)
        :data:`SCORES` of the analysis / background vs the verification.
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
    def empty(cls, nd: int, nstations: int, nmem: int = 2) -> MethodHistory:
        """All values missing (NaN; zero clipped water and counts)."""
        nl = len(LAYERS)
        return cls(
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
    """The experiment's small daily record (rank 0): no image.

    Attributes
    ----------
    station_obs : float64 (nd, ns)
        Station readings, m3/m3.
    n_obs : int64 (nd,)
        Retrievals per day.
    methods : dict of str -> MethodHistory
    """

    station_obs: np.ndarray
    n_obs: np.ndarray
    methods: dict[str, MethodHistory]

    @classmethod
    def empty(cls, nd: int, nstations: int, methods: list[str], nmem: int = 2) -> History:
        """A history of ``nd`` days with every value missing (``nmem``: ensemble size, for rank histograms)."""
        return cls(
            station_obs=np.full((nd, nstations), np.nan),
            n_obs=np.zeros(nd, np.int64),
            methods={m: MethodHistory.empty(nd, nstations, nmem) for m in methods},
        )

    def __getitem__(self, method: str) -> MethodHistory:
        return self.methods[method]

    @property
    def days(self) -> int:
        """Days of the record (the run's ``experiment.days``)."""
        return int(self.n_obs.shape[0])

    def to_tree(self) -> dict[str, Any]:
        """A flat dict of arrays (``<field>`` and ``<method>::<field>``), the restart's entries."""
        tree: dict[str, Any] = {"station_obs": self.station_obs, "n_obs": self.n_obs}
        for m, h in self.methods.items():
            tree.update({f"{m}::{f.name}": getattr(h, f.name) for f in fields(h)})
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any], methods: list[str]) -> History:
        """Inverse of :meth:`to_tree` (every entry required: the restart schema fixes them); KeyError
        naming a missing entry."""
        per = {
            m: MethodHistory(**{f.name: np.asarray(tree[f"{m}::{f.name}"]) for f in fields(MethodHistory)})
            for m in methods
        }
        return cls(station_obs=np.asarray(tree["station_obs"]), n_obs=np.asarray(tree["n_obs"]), methods=per)


@dataclass
class DayImages:
    """One day's images on rank 0 (``analysis.nc``'s record of the day; made, appended and dropped).

    Attributes
    ----------
    truth : float32 (nl, ny, nx)
        The verification's layer means (nature run or reference product), m3/m3, NaN off land.
    obs : float32 (ny, nx)
        The day's retrievals (NaN = none), m3/m3.
    mean, mean_background, spread : dict of str -> float32 (nl, ny, nx)
        Per method: ensemble mean after the day's last analysis, before it, and the standard deviation.
    increment : dict of str -> float32 (ny, nx)
        Per method: ensemble-mean increment of the observed layer at the day's last analysis.
    """

    truth: np.ndarray
    obs: np.ndarray
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    mean_background: dict[str, np.ndarray] = field(default_factory=dict)
    spread: dict[str, np.ndarray] = field(default_factory=dict)
    increment: dict[str, np.ndarray] = field(default_factory=dict)

    def to_tree(self) -> dict[str, np.ndarray]:
        tree = {"truth": self.truth, "obs": self.obs}
        for name in ("mean", "mean_background", "spread", "increment"):
            tree.update({f"{m}::{name}": v for m, v in getattr(self, name).items()})
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any], methods: list[str]) -> DayImages:
        out = cls(truth=np.asarray(tree["truth"]), obs=np.asarray(tree["obs"]))
        for name in ("mean", "mean_background", "spread", "increment"):
            getattr(out, name).update({m: np.asarray(tree[f"{m}::{name}"]) for m in methods})
        return out


class ScoreSums:
    """Running per-pixel sums of the temporal scores on this rank's column block (member group 0).

    For each method, estimate (:data:`KINDS`) and verification layer a
    :class:`~landimg.experiment.metrics.TimeSums` over the block's columns, fed the float32 values
    ``analysis.nc`` holds (so the scores are those of the files' series), day by day from
    ``experiment.score_from_day``. Elementwise, so every column's sums are bitwise those of the whole
    image; :meth:`per_pixel` gives the block's per-pixel scores for rank 0's period means.
    """

    def __init__(self, methods: list[str], ncol: int) -> None:
        self.methods, self.ncol = list(methods), int(ncol)
        self.sums = {(m, k, i): _metrics.TimeSums.zeros((self.ncol,)) for m in self.methods for k in KINDS
                     for i in range(len(LAYERS))}  # fmt: skip

    def add(self, method: str, kind: str, estimate: np.ndarray, reference: np.ndarray) -> None:
        """Add one day: ``estimate`` and ``reference`` (nl, ncol) of the block (rounded to float32 first)."""
        x = np.asarray(estimate).astype(np.float32)
        r = np.asarray(reference).astype(np.float32)
        for i in range(len(LAYERS)):
            self.sums[(method, kind, i)].add(x[i], r[i])

    def per_pixel(self, min_days: int = _metrics.MIN_DAYS) -> np.ndarray:
        """The block's per-pixel ubRMSE and correlation, (nmethods, 2 kinds, nl, 2, ncol): ``[..., 0, :]``
        ubRMSE, ``[..., 1, :]`` correlation (NaN where fewer than ``min_days`` days)."""
        out = np.empty((len(self.methods), len(KINDS), len(LAYERS), 2, self.ncol))
        for (m, k, i), s in self.sums.items():
            out[self.methods.index(m), KINDS.index(k), i] = s.ubrmse(min_days), s.corr(min_days)
        return out

    def to_tree(self) -> dict[str, np.ndarray]:
        """Flat dict ``<method>::<kind>::<layer>::<field>`` -> (ncol,) arrays."""
        return {f"{m}::{k}::{i}::{f.name}": getattr(s, f.name) for (m, k, i), s in self.sums.items()
                for f in fields(s)}  # fmt: skip

    def load(self, get: Any) -> None:
        """Fill from ``get(key) -> (ncol,) array`` (keys of :meth:`to_tree`)."""
        for (m, k, i), s in self.sums.items():
            for f in fields(s):
                value = np.asarray(get(f"{m}::{k}::{i}::{f.name}"))
                setattr(s, f.name, value.astype(getattr(s, f.name).dtype, copy=True))


def period_time_scores(per_pixel: np.ndarray, methods: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{method: {kind: [scores per layer]}}`` from the per-pixel values of every column (nmethods, 2, nl, 2,
    ncol) (:meth:`ScoreSums.per_pixel`, gathered in column order): the plain means over the pixels with a
    score (:func:`landimg.experiment.metrics.sums_scores`)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for j, m in enumerate(methods):
        out[m] = {}
        for kk, kind in enumerate(KINDS):
            out[m][kind] = []
            for i in range(len(LAYERS)):
                ub, nub = _metrics.pixel_mean(per_pixel[j, kk, i, 0])
                tc, ntc = _metrics.pixel_mean(per_pixel[j, kk, i, 1])
                out[m][kind].append({"ubrmse_time": ub, "n_ubrmse_time": nub, "time_corr": tc, "n_time_corr": ntc})
    return out
