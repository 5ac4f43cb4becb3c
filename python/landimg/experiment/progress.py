"""Rank-0 progress output of a run."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Rank-0 progress: a bar on an interactive terminal, periodic log lines otherwise."""

    def __init__(self, total: int, every: int, enabled: bool, stream=None) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

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
                f"\r[{'#' * fill}{'.' * (n - fill)}] day {done}/{self.total} {el:6.1f} s  {text}"
            )
            self.stream.flush()
            if done == self.total:
                self.stream.write("\n")
        elif done % self.every == 0 or done == self.total:
            print(f"[landimg] day {done}/{self.total} ({el:.1f} s) {text}", file=self.stream, flush=True)
