"""Warnings a user sees: landimg's own, each distinct one once with a count; other packages' silenced.

A landimg module warns with :func:`warnings.warn` about the user's input (a product file set without a
layer, records dropped, a damaged cache entry). While a :class:`WarningLog` is active, such a warning is
collected instead of printed; :meth:`WarningLog.flush` (at the end of a program's phase, and when the
log closes) prints each distinct message once, ``PROG: warning: MESSAGE``, with ``(N times)`` when it
came more than once (e.g. once per file of a month). Warnings raised by other packages (for example
cf_xarray's ``Import(s) unavailable to set up matplotlib support`` when it is imported, or numpy's
floating-point warnings) are not about the user's input and are dropped -- unless the user asked for
warnings with ``python -W ...`` or ``PYTHONWARNINGS``, which then apply as Python defines them.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType, TracebackType
from typing import Any, TextIO

__all__ = ["WarningLog"]

_PACKAGE = "landimg"


def _warning_caller(frame: FrameType | None) -> str:
    """Module name of the code that called :func:`warnings.warn` (the first frame outside the warnings
    machinery and this module), whatever ``stacklevel`` it gave."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name not in ("warnings", __name__):
            return name
        frame = frame.f_back
    return ""


def _is_ours(module: str, category: type[Warning]) -> bool:
    return (module == _PACKAGE or module.startswith(_PACKAGE + ".")) and issubclass(category, UserWarning)


class WarningLog:
    """Collect landimg's warnings during a ``with`` block; print each distinct one once, with a count.

    Parameters
    ----------
    prog : str
        Prefix of the printed lines (``PROG: warning: ...``).
    enabled : bool
        Print (False: collect and drop, e.g. on every MPI rank but 0, which read the same inputs).
    stream : file, optional
        Where lines go (default ``sys.stderr`` at the time of printing).

    Attributes
    ----------
    counts : dict of str -> int
        How many times each message came (all of them, printed or not).
    """

    def __init__(self, prog: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.prog, self.enabled, self.stream = prog, enabled, stream
        self.counts: dict[str, int] = {}
        self._printed: dict[str, int] = {}
        self._catcher: Any = None

    def __enter__(self) -> WarningLog:
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        if not sys.warnoptions:  # the user asked for nothing: every landimg warning reaches the log
            warnings.simplefilter("always")
        self._previous_show = warnings.showwarning
        warnings.showwarning = self._show
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.flush()
        finally:
            self._catcher.__exit__(exc_type, exc, tb)

    def _show(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
              file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        if not _is_ours(_warning_caller(sys._getframe(1)), category):
            if sys.warnoptions:  # asked for with -W / PYTHONWARNINGS: shown as Python would
                self._previous_show(message, category, filename, lineno, file, line)
            return
        text = str(message).splitlines()[0] if str(message) else category.__name__
        self.counts[text] = self.counts.get(text, 0) + 1

    def flush(self) -> None:
        """Print each message that came since it was last printed: once, with ``(N times)`` if repeated."""
        for text, n in self.counts.items():
            new = n - self._printed.get(text, 0)
            if new <= 0:
                continue
            self._printed[text] = n
            if self.enabled:
                if n > new:  # printed before
                    times = f" ({new} more time{'s' if new > 1 else ''})"
                else:
                    times = f" ({new} times)" if new > 1 else ""
                print(f"{self.prog}: warning: {text}{times}", file=self.stream or sys.stderr, flush=True)
