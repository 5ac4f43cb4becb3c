"""The running experiment's state on this rank (:class:`RunState`): what :mod:`landimg.experiment.loop` steps
day by day and :mod:`landimg.experiment.checkpoint` writes to and reads from the restart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landimg.experiment.config import Config
from landimg.experiment.history import DayImages, History, ScoreSums
from landimg.experiment.ncfiles import ExperimentFiles
from landimg.experiment.setup import Setup
from landimg.experiment.timing import Timings

__all__ = ["RunState"]


@dataclass
class RunState:
    """The running experiment on this rank: the record lives where it is made -- ``history``, ``files``
    and ``last`` on rank 0, ``sums`` on the ranks of member group 0 (their column blocks); ``nature`` of
    the world block."""

    cfg: Config
    s: Setup
    comm: Any
    nature: Any
    ensembles: dict[str, Any]
    column_blocks: int = 1
    history: History | None = None
    sums: ScoreSums | None = None
    files: ExperimentFiles | None = None
    last: DayImages | None = None  # the last day's images, for the plots
    day0: int = 0
    wall_before: float = 0.0
    inputs: dict[str, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    saved_day: int | None = None  # the day of the restart on disk (None: none yet)
    mover: Any = None  # world blocks -> the ensembles' columns (ColumnMover)

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    def start_forcing(self, block: dict[str, np.ndarray]) -> Any:
        """Start moving the world block's ensemble forcing to the ensembles' columns; ``.wait()`` gives it.
        With a rain shift (``ensemble.rain_shift_km > 0``) on column blocks the precipitation of every column
        goes to every rank (the shift moves rain across blocks)."""
        moving = self.mover.start_dict(block)
        if not self.rain_whole:
            return moving
        precip = self.s.world.allgather(block["precip"])
        return _Finish(lambda: {**moving.wait(), "precip": precip})

    def forcing(self, t: float) -> dict[str, np.ndarray]:
        """The ensemble forcing at ``t`` s on the ensembles' columns: made on the world blocks, then moved."""
        return self.start_forcing(self.s.weather.ensemble(t)).wait()

    @property
    def rain_whole(self) -> bool:
        """The ensembles need the precipitation of every column (a rain shift on column blocks)."""
        first = next(iter(self.ensembles.values()))
        shift = getattr(first.perturber, "rain_shift", None) if first.perturber is not None else None
        return shift is not None and not first.layout.whole

    @property
    def layout(self) -> Any:
        """The ensembles' layout (every method's ensemble has the same)."""
        return next(iter(self.ensembles.values())).layout

    @property
    def scored(self) -> int:
        """The first scored day (0-based): the temporal scores' sums start there."""
        return self.cfg.experiment.score_from_day - 1


@dataclass
class _Finish:
    """A computation to complete later (``wait()``)."""

    finish: Any

    def wait(self) -> Any:
        return self.finish()
