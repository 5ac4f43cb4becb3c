"""Rank-0 progress output of a run."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Rank-0 progress: a bar on an interactive terminal, periodic log lines otherwise.

    Parameters
    ----------
    total : int
        Units (days) to do.
    every : int
        Log-line interval in units when the stream is not a terminal.
    enabled : bool
        Print at all (rank 0, not ``--quiet``).
    stream : file, optional
        Default ``sys.stderr``.
    unit : str
        What is counted (``"day"``, ``"spin-up day"``).
    """

    def __init__(self, total: int, every: int, enabled: bool, stream=None, unit: str = "day") -> None:
        self.total, self.every, self.enabled, self.unit = total, every, enabled, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def phase(self, total: int, unit: str, lines: int = 10) -> Progress:
        """Progress of another phase on the same stream (e.g. the spin-up): about ``lines`` log lines."""
        return Progress(total, max(1, -(-total // lines)), self.enabled, self.stream, unit)

    def log(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r\033[K")
            print(f"[landimg] {text}", file=self.stream, flush=True)

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        if self.tty:
            n = 30
            fill = int(n * done / max(self.total, 1))
            self.stream.write(
                f"\r[{'#' * fill}{'.' * (n - fill)}] {self.unit} {done}/{self.total} {el:6.1f} s  {text}"
            )
            self.stream.flush()
            if done == self.total:
                self.stream.write("\n")
        elif done % self.every == 0 or done == self.total:
            line = f"[landimg] {self.unit} {done}/{self.total} ({el:.1f} s) {text}".rstrip()
            print(line, file=self.stream, flush=True)
