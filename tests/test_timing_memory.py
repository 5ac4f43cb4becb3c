"""Timing breakdown bookkeeping and the memory estimate (no wall times asserted: a fake clock)."""

import numpy as np
import pytest
from landimg.experiment import memory, timing
from landimg.experiment.config import load_config
from landimg.experiment.memory import MemoryEstimate, estimate_memory, memory_error


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_parts_do_not_nest_or_double_count(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", lambda: 0.5 * clock.now)  # CPU at half the wall rate
    t = timing.Timings()

    class Model:
        def step(self, x):
            clock.now += 2.0
            return x + 1

    m = Model()
    t.instrument(m, "step", "model")
    with t("forcing"):
        clock.now += 1.0
        assert m.step(1) == 2  # 2 s of model inside the forcing block
        clock.now += 0.5
    clock.now += 3.0  # outside every part
    rep = t.report()
    assert rep["model"] == 2.0 and rep["forcing"] == 1.5
    assert rep["other"] == 3.0 and rep["total"] == 6.5
    assert set(rep) == set(timing.PARTS) | {"other", "total"}
    assert t.report(cpu=True) == {k: 0.5 * v for k, v in rep.items()}  # CPU split by the same rule
    with pytest.raises(ValueError, match="unknown timing part"), t("plotting"):
        pass


def test_labelled_calls_count_their_whole_cpu_per_label(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    monkeypatch.setattr(timing.time, "process_time", lambda: 0.5 * clock.now)
    t = timing.Timings()

    class Ens:
        def __init__(self, cost):
            self.cost, self.model = cost, Model()

        def assimilate(self):
            clock.now += self.cost
            self.model.step()  # an instrumented part inside: still part of the method's whole call

    class Model:
        def step(self):
            clock.now += 1.0

    a, b = Ens(2.0), Ens(6.0)
    for name, e in (("a", a), ("b", b)):
        t.instrument(e.model, "step", "model")
        t.instrument(e, "assimilate", "analysis", label=name)
    a.assimilate(), b.assimilate(), a.assimilate()
    assert t.labelled_cpu_seconds == {"a": 0.5 * 2 * 3.0, "b": 0.5 * 7.0}
    assert t.cpu_seconds["analysis"] == 0.5 * (2 + 6 + 2) and t.cpu_seconds["model"] == 0.5 * 3


def test_estimate_scales_and_fits_the_conus_target():
    cfg4 = load_config(None, ["ensemble.members=4", "experiment.days=2"])
    cfg32 = load_config(None, ["ensemble.members=32", "experiment.days=20"])
    small = estimate_memory(cfg4, (25, 60), 1073, 1)
    big = estimate_memory(cfg32, (25, 60), 1073, 1)
    assert 150 * 2**20 < small.per_rank < 300 * 2**20  # measured peak ~190 MB (docs/benchmarks.md)
    assert big.per_rank > small.per_rank
    assert estimate_memory(cfg32, (25, 60), 1073, 4).parts["models"] < big.parts["models"]
    two = estimate_memory(cfg4, (25, 60), 1073, 2, ranks_on_node=2)
    assert two.per_node == two.per_rank + two.other_rank  # rank 0 and one other


def test_memory_error_is_one_line_with_both_figures(monkeypatch):
    est = MemoryEstimate(parts={"libraries": 100 * 2**20, "models": 400 * 2**20}, ranks_on_node=2)
    msg = memory_error(est, 300 * 2**20)
    assert msg is not None and "\n" not in msg
    assert "1000 MB" in msg and "300 MB" in msg and "models 400 MB" in msg
    assert memory_error(est, 2000 * 2**20) is None
    assert memory_error(est, None) is None  # unknown: never refuse
    monkeypatch.setenv("LANDIMG_MEMORY_MB", "123")
    assert memory.available_bytes() == 123 * 2**20
    monkeypatch.delenv("LANDIMG_MEMORY_MB")
    avail = memory.available_bytes()
    assert avail is None or avail > 0
    assert np.isfinite(est.per_rank)
