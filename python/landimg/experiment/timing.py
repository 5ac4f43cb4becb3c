"""Where an experiment's time goes: wall seconds per part (model, forcing, perturbations, analysis, output).

:class:`Timings` accumulates ``time.perf_counter`` intervals per part, either around a block
(``with timings("forcing"): ...``) or around every call of an object's method
(:meth:`Timings.instrument`). Parts do not nest: an instrumented call inside a timed block is not counted
twice (the inner part keeps its time, the outer part gets the rest). ``summary.json`` reports
:meth:`Timings.report` of rank 0 as ``timing_seconds``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PARTS", "Timings"]

#: The reported parts, in order; time outside them is "other".
PARTS: tuple[str, ...] = ("spinup", "model", "forcing", "perturbations", "analysis", "output")


class Timings:
    """Accumulated wall seconds per part of a run (one instance per rank)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self._stack: list[list[Any]] = []  # [part, start, seconds spent in inner parts]
        self._t0 = time.perf_counter()

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        """Count the wall time of the ``with`` block to ``part`` (minus time counted to parts inside it)."""
        if part not in self.seconds:
            raise ValueError(f"unknown timing part {part!r}; expected one of {', '.join(PARTS)}")
        frame = [part, time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.perf_counter() - frame[1]
            self.seconds[part] += spent - frame[2]
            if self._stack:
                self._stack[-1][2] += spent

    def instrument(self, obj: Any, method: str, part: str) -> None:
        """Count every later call of ``obj.method`` to ``part`` (wraps the bound method on this instance)."""
        bound: Callable[..., Any] = getattr(obj, method)

        @functools.wraps(bound)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(part):
                return bound(*args, **kwargs)

        setattr(obj, method, timed)

    def report(self, total: float | None = None) -> dict[str, float]:
        """Seconds per part plus ``other`` (the rest) and ``total`` (since creation, or ``total`` if given)."""
        total = time.perf_counter() - self._t0 if total is None else float(total)
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["other"] = round(max(total - sum(self.seconds.values()), 0.0), 3)
        out["total"] = round(total, 3)
        return out
