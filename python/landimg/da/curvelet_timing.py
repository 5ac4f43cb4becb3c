"""Wall-clock sections of one curvelet analysis: the ``timings`` dict of
:func:`landimg.da.curvelet_enkf.curvelet_analysis` (seconds per phase: ``"statistics"``, ``"transform"``,
``"update"``), accumulated across calls; nothing is measured without a dict."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Clock"]


class Clock:
    """Accumulating wall-clock sections into an optional dict (no-op when it is None)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self._t0: dict[str, float] = {}
        self._nested: dict[str, float] = {}

    def start(self, name: str) -> None:
        if self.sink is not None:
            self._t0[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + time.perf_counter() - self._t0.pop(name)

    def subtract(self, name: str, inner: str) -> None:
        """Remove from ``name`` the ``inner`` time accumulated while ``name`` ran (nested sections)."""
        if self.sink is not None:
            self.sink[name] -= self.sink.get(inner, 0.0) - self._nested.get(inner, 0.0)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.sink is not None and name == "statistics":
            self._nested["transform"] = self.sink.get("transform", 0.0)
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)
