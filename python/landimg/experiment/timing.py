"""Where an experiment's time goes: wall and CPU seconds per part (model, forcing, perturbations, ...).

:class:`Timings` accumulates ``time.perf_counter`` (wall) and ``time.process_time`` (CPU of the process,
all its threads) intervals per part, either around a block (``with timings("forcing"): ...``) or around
every call of an object's method (:meth:`Timings.instrument`). Parts do not nest: an instrumented call
inside a timed block is not counted twice (the inner part keeps its time, the outer part gets the rest).
``summary.json`` reports :meth:`Timings.report` of rank 0 as ``timing_seconds`` (wall) and
``timing_cpu_seconds`` (CPU), and ``analysis_cpu_seconds``: per method, the CPU seconds of all its
``Ensemble.assimilate`` calls (:meth:`Timings.instrument` with a label), the largest over the ranks. The CPU figures are the low-overhead profile of a run: two clock reads per
model step, against a profiler's per-call hooks, which inflate Python-heavy parts (plots, bookkeeping)
several-fold but not the compiled column model (``bench/profile_run.py`` compares them).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PARTS", "Timings"]

#: The reported parts, in order; time outside them is "other". "model" is every column-model step (the
#: nature run's and the ensembles', spin-up included); "spinup" is the rest of the spin-up (its cache,
#: the climatology, copying states); "output" the netCDF files and restarts; "plots" the figures.
PARTS: tuple[str, ...] = ("spinup", "model", "forcing", "perturbations", "analysis", "output", "plots")


def _now() -> tuple[float, float]:
    """(wall, CPU) clock readings, seconds."""
    return time.perf_counter(), time.process_time()


class Timings:
    """Accumulated wall and CPU seconds per part of a run (one instance per rank)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self.cpu_seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self.labelled_cpu_seconds: dict[str, float] = {}  # CPU of whole instrumented calls, by label
        self._stack: list[list[Any]] = []  # [part, (wall, cpu) start, (wall, cpu) spent in inner parts]
        self._t0 = _now()

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        """Count the time of the ``with`` block to ``part`` (minus time counted to parts inside it)."""
        if part not in self.seconds:
            raise ValueError(f"unknown timing part {part!r}; expected one of {', '.join(PARTS)}")
        frame = [part, _now(), [0.0, 0.0]]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            end = _now()
            spent = (end[0] - frame[1][0], end[1] - frame[1][1])
            self.seconds[part] += spent[0] - frame[2][0]
            self.cpu_seconds[part] += spent[1] - frame[2][1]
            if self._stack:
                inner = self._stack[-1][2]
                inner[0] += spent[0]
                inner[1] += spent[1]

    def instrument(self, obj: Any, method: str, part: str, label: str | None = None) -> None:
        """Count every later call of ``obj.method`` to ``part`` (wraps the bound method on this instance).

        With ``label``, the CPU seconds of the whole call (parts inside it included) are also summed in
        ``labelled_cpu_seconds[label]`` (e.g. each method's analyses).
        """
        bound: Callable[..., Any] = getattr(obj, method)

        @functools.wraps(bound)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                with self(part):
                    return bound(*args, **kwargs)
            finally:
                if label is not None:
                    spent = time.process_time() - start
                    self.labelled_cpu_seconds[label] = self.labelled_cpu_seconds.get(label, 0.0) + spent

        setattr(obj, method, timed)

    def report(self, cpu: bool = False) -> dict[str, float]:
        """Seconds per part plus ``other`` (the rest) and ``total`` (since creation): wall seconds, or CPU
        seconds of the process with ``cpu``."""
        seconds = self.cpu_seconds if cpu else self.seconds
        total = _now()[int(cpu)] - self._t0[int(cpu)]
        out = {k: round(v, 3) for k, v in seconds.items()}
        out["other"] = round(max(total - sum(seconds.values()), 0.0), 3)
        out["total"] = round(total, 3)
        return out
