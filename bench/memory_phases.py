"""Resident memory by phase of a run: where the peak of ``landimg.cycle`` comes from (serial).

    python bench/memory_phases.py -- --set domain.preset=china --set ensemble.members=32 \\
        --set experiment.days=1 --set experiment.spinup_days=1 --out runs/mem-china --quiet

A thread samples the resident set size (``/proc/self/statm``) every 10 ms and books it to the phase
running (set-up, ensembles built, spin-up, per-member spin-up, forecast steps, analyses, restart,
outputs); printed: the RSS when each phase starts and its peak, in MB, to compare with the parts of
``landimg.experiment.memory.estimate_memory``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")
_phase = ["start"]
_peaks: dict[str, list[float]] = {}


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE / 2.0**20


def _sampler(stop: threading.Event) -> None:
    while not stop.is_set():
        rec = _peaks.setdefault(_phase[0], [_rss_mb(), 0.0])
        rec[1] = max(rec[1], _rss_mb())
        time.sleep(0.01)


def _wrap(owner: Any, name: str, phase: str) -> None:
    real = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before = _phase[0]
        _phase[0] = phase
        _peaks.setdefault(phase, [_rss_mb(), 0.0])
        try:
            return real(*args, **kwargs)
        finally:
            _phase[0] = before if before != phase else "steps"

    setattr(owner, name, wrapped)


def main() -> int:
    argv = sys.argv[1:]
    args = argv[argv.index("--") + 1 :] if "--" in argv else argv
    from landimg.ensemble.ensemble import Ensemble
    from landimg.experiment import checkpoint, loop, restart
    from landimg.experiment.cli import main as cycle

    _wrap(loop, "setup", "set-up")
    _wrap(loop, "_ensembles", "ensembles built")
    _wrap(loop, "spinup", "spin-up")
    _wrap(loop, "spread_members", "per-member spin-up")
    _wrap(Ensemble, "assimilate", "analysis")
    _wrap(restart, "write_checkpoint", "restart")
    _wrap(checkpoint, "write_checkpoint", "restart")
    _wrap(loop, "summarize", "outputs")  # the run's end: summary.json, metrics.nc (days are streamed)
    _wrap(loop, "write_plots", "outputs")
    stop = threading.Event()
    thread = threading.Thread(target=_sampler, args=(stop,), daemon=True)
    thread.start()
    code = cycle(args)
    stop.set()
    thread.join()
    print(" ".join(args))
    for phase, (start, peak) in _peaks.items():
        print(f"  {phase:20s} RSS at start {start:8.0f} MB   peak {peak:8.0f} MB")
    return code


if __name__ == "__main__":
    sys.exit(main())
