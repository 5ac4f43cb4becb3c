"""Memory estimate of an experiment before anything large is allocated, and the memory this node has.

The estimate is a sum of named parts per rank (interpreter and libraries, model states, forcing and
perturbation work, the analysis' work arrays, rank 0's history and restart gather), calibrated on
measured peaks (``docs/benchmarks.md``: a serial CONUS 1 deg run with 4 members peaks at ~190 MB). It
errs high: a run is refused only when the estimate for the ranks on this node exceeds what the node
(or the cgroup the job runs in) has available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MemoryEstimate", "available_bytes", "estimate_memory", "memory_error", "ranks_on_node"]

_MB = 1024.0 * 1024.0
_BASE_BYTES = 140 * 1024 * 1024  # python, numpy, scipy, netCDF4, mpi4py, matplotlib (measured ~120 MB)
_COLUMN_MEMBER_BYTES = 500  # ColumnModel arrays per column and member (measured 484 B)
_FORCING_KEYS = 7
_PERTURBED_VARS = 4
_STATE_LAYERS = 10
_HISTORY_LAYERS = 3


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of one rank, by part.

    Attributes
    ----------
    parts : dict of str -> int
        Bytes per part on the busiest rank (rank 0, which also holds the history).
    ranks_on_node : int
        Ranks of the run sharing this node's memory.
    """

    parts: dict[str, int] = field(default_factory=dict)
    ranks_on_node: int = 1

    @property
    def per_rank(self) -> int:
        """Estimated peak of the busiest rank, bytes."""
        return int(sum(self.parts.values()))

    @property
    def per_node(self) -> int:
        """Estimated peak of all ranks on this node, bytes (every rank counted as the busiest)."""
        return self.per_rank * self.ranks_on_node


def estimate_memory(
    cfg: Any, shape: tuple[int, int], ncol: int, nranks: int, ranks_on_node: int = 1
) -> MemoryEstimate:
    """Estimate the peak memory of the busiest rank of the experiment ``cfg``.

    Parameters
    ----------
    cfg : Config
        The experiment configuration (members, methods, days, analysis settings).
    shape : (ny, nx)
        Grid image shape.
    ncol : int
        Land columns.
    nranks : int
        Ranks of the run (members are split between them).
    ranks_on_node : int
        Ranks sharing this node.

    Returns
    -------
    MemoryEstimate
    """
    ny, nx = shape
    cells = ny * nx
    nmem = cfg.ensemble.members
    nloc = -(-nmem // max(nranks, 1))  # the busiest rank's members
    methods = list(cfg.analysis.methods)
    nmeth = len(methods)
    days = cfg.experiment.days
    max_obs = [getattr(cfg.method.get(name), "max_obs", 0) or 0 for name in methods]
    m = max(1, min(max([64, *max_obs]), ncol))
    parts = {
        "libraries": _BASE_BYTES,
        # nature run, spin-up column, and nloc members per method
        "models": _COLUMN_MEMBER_BYTES * ncol * (2 + nmeth * nloc),
        # forcing dicts (truth, ensemble, perturbed per method) and perturbation z/factors
        "forcing": 8 * ncol * (_FORCING_KEYS * (2 + 2 * nloc) + 3 * nmeth * nloc * _PERTURBED_VARS),
        # white noise, its spectrum and the filtered fields of one draw (padded image, ~1.3x)
        "perturbation draw": int(1.3 * cells) * nloc * _PERTURBED_VARS * 40,
        # gathered ensemble images and layer states used by every analysis
        "analysis ensemble": 8 * nmem * (cells * 6 + ncol * _STATE_LAYERS * 3),
        # rank 0: history images (float32) for every day, method and layer (mean, background mean, spread)
        "history": 4 * days * cells * (_HISTORY_LAYERS * (1 + 3 * nmeth) + 2 + nmeth),
        # rank 0: the restart gather (every member's model state per method)
        "restart gather": 400 * ncol * nmem * nmeth,
    }
    if "point_enkf" in methods or "point_letkf" in methods:  # (chunk, m, m) solves and (nlev, ncol, m) terms
        parts["point analysis"] = 8 * (8 * 256 * m * m + 3 * _STATE_LAYERS * ncol * m + 2 * nmem * ncol)
    if "curvelet_enkf" in methods:  # curvelet coefficients (~8x redundant, complex) of the members
        parts["curvelet analysis"] = 16 * 8 * cells * (nmem + 4)
    return MemoryEstimate(parts={k: int(v) for k, v in parts.items()}, ranks_on_node=max(1, ranks_on_node))


def _cgroup_free() -> int | None:
    """Bytes left under the cgroup (v2 or v1) memory limit of this process, None when unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            raw = Path(limit_file).read_text().strip()
            if raw == "max" or int(raw) >= 1 << 60:
                return None
            return max(0, int(raw) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_bytes() -> int | None:
    """Memory this node can still give, bytes: ``MemAvailable`` capped by the cgroup limit; None if unknown.

    ``$LANDIMG_MEMORY_MB`` overrides the figure (for tests and batch systems that know better).
    """
    env = os.environ.get("LANDIMG_MEMORY_MB")
    if env:
        return int(float(env) * _MB)
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = None
    cg = _cgroup_free()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def memory_error(estimate: MemoryEstimate, available: int | None) -> str | None:
    """The one-line refusal when ``estimate`` does not fit in ``available`` bytes, else None."""
    if available is None or estimate.per_node <= available:
        return None
    top = sorted(estimate.parts.items(), key=lambda kv: -kv[1])[:3]
    biggest = ", ".join(f"{k} {v / _MB:.0f} MB" for k, v in top)
    return (
        f"memory: the run needs about {estimate.per_node / _MB:.0f} MB on this node "
        f"({estimate.ranks_on_node} rank(s) x {estimate.per_rank / _MB:.0f} MB; largest parts: {biggest}) but "
        f"only {available / _MB:.0f} MB are available: use fewer ensemble.members, experiment.days or ranks "
        "per node, or a coarser domain.res"
    )


def ranks_on_node(comm: Any) -> int:
    """Ranks of ``comm`` sharing this node's memory (collective for an MPI communicator; 1 when serial)."""
    try:
        from mpi4py import MPI
    except ImportError:
        return 1
    if not isinstance(comm, MPI.Comm) or comm.Get_size() == 1:
        return 1
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(node.Get_size())
    finally:
        node.Free()
