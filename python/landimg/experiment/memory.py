"""Memory estimate of an experiment before anything large is allocated, and the memory this node has.

The estimate is a sum of named parts per rank (interpreter and libraries, the set-up's whole-domain
inputs, model states, forcing, the nature run, rank 0's small daily record, the score sums of the column
blocks) plus the largest of the parts alive at different times: one member's perturbation draw (during the
forecast), the analysis layouts' arrays with the point analysis' or with the curvelet analysis' work
arrays (the methods analyse one after another), and rank 0's images of the day. Restarts are written from
the model's buffers by every rank (no gather) and the outputs are appended day by day, so nothing grows
with the image size times the days.
It is calibrated on measured peak resident sizes (``docs/scaling.md``, ``bench/rank_usage.py --phases``:
global 1, 0.5 and 0.25 deg runs with 8 members on one rank and on 1 x 2 and 1 x 4 layouts; estimate /
measured 1.01-1.25) and errs high; a run is refused only when the estimate for the ranks on this node
exceeds what the node (or the cgroup the job runs in) has available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landimg.layout import column_chunk_size

__all__ = [
    "MemoryEstimate", "available_bytes", "config_grid", "estimate_memory", "estimated_land_columns",
    "memory_error", "ranks_on_node",
]  # fmt: skip

_MB = 1024.0 * 1024.0
_BASE_BYTES = 140 * 1024 * 1024  # rank 0: python, numpy, scipy, netCDF4, mpi4py, matplotlib (measured ~120 MB)
_OTHER_BASE_BYTES = 110 * 1024 * 1024  # the other ranks without plots (measured 76-105 MB after set-up); with
# plots on they make their share of the figures and load matplotlib like rank 0 (_BASE_BYTES)
# per column, member and method: the ColumnModel (state, fluxes, parameters) and the perturbation state
# (measured: the spin-up adds 925 B per column-member with the forcing, global 0.25 deg, 1 x 4, 8 members)
_COLUMN_MEMBER_BYTES = 900
# the set-up's whole-domain inputs on every rank (measured: 321 MB at global 0.25 deg, 247,292 columns): per
# column 9 soil parameters of every member (ensemble.perturb_soil) and 40 values (true and estimated soil,
# vegetation, forcing climatology), per grid cell 12 values (grid, land mask, aridity, random-field spectra)
_SETUP_COLUMN_VALUES = 40
_SETUP_CELL_VALUES = 12
_SOIL_PARAMS = 9
_KM_PER_DEG = 111.2
_FORCING_KEYS = 7
_PERTURBED_VARS = 4
_STATE_LAYERS = 10
_LAYERS = 3
_RECORD_PER_DAY = 45  # numbers per day and method of the small record besides stations and rank counts
_RANK0_ONLY = ("record", "day images")  # (the nature run is on the world blocks: every rank its share)
#: Parts alive at different times: only the largest group counts (a member's perturbation draw during the
#: forecast; the methods analyse one after another; the day's images are made after the analyses).
_PHASES = (
    ("perturbation draw",), ("analysis ensemble", "point analysis"), ("analysis ensemble", "curvelet analysis"),
    ("day images",),
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of one rank, by part.

    Attributes
    ----------
    parts : dict of str -> int
        Bytes per part on the busiest rank (rank 0, which also holds the small daily record and makes
        each day's images).
    ranks_on_node : int
        Ranks of the run sharing this node's memory.
    rank0_only : tuple of str
        The parts only rank 0 holds; every other rank holds the rest.
    phases : tuple of tuple of str
        Groups of parts alive at different times: only the largest group counts.
    other_libraries : int or None
        The ``"libraries"`` part of the other ranks (None: as rank 0's).
    """

    parts: dict[str, int] = field(default_factory=dict)
    ranks_on_node: int = 1
    rank0_only: tuple[str, ...] = ()
    phases: tuple[tuple[str, ...], ...] = ()
    other_libraries: int | None = None

    def _peak(self, parts: dict[str, int]) -> int:
        grouped = {k for group in self.phases for k in group}
        steady = sum(v for k, v in parts.items() if k not in grouped)
        return int(steady + max((sum(parts.get(k, 0) for k in g) for g in self.phases), default=0))

    @property
    def per_rank(self) -> int:
        """Estimated peak of the busiest rank (rank 0), bytes."""
        return self._peak(self.parts)

    @property
    def other_rank(self) -> int:
        """Estimated peak of any other rank, bytes."""
        parts = {k: v for k, v in self.parts.items() if k not in self.rank0_only}
        if self.other_libraries is not None and "libraries" in parts:
            parts["libraries"] = self.other_libraries
        return self._peak(parts)

    @property
    def per_node(self) -> int:
        """Estimated peak of the ranks on this node, bytes: rank 0 and ``ranks_on_node - 1`` others
        (a node without rank 0 needs less)."""
        return self.per_rank + (self.ranks_on_node - 1) * self.other_rank


def estimate_memory(
    cfg: Any, shape: tuple[int, int], ncol: int, nranks: int, ranks_on_node: int = 1, column_blocks: int = 1
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
        Ranks of the run: ``nranks / column_blocks`` member groups x ``column_blocks`` column blocks.
    ranks_on_node : int
        Ranks sharing this node.
    column_blocks : int
        Column blocks of the layout (each rank steps its group's members on its block's columns).

    Returns
    -------
    MemoryEstimate
    """
    ny, nx = shape
    cells = ny * nx
    nmem = cfg.ensemble.members
    k = max(column_blocks, 1)
    nloc = -(-nmem // max(nranks // k, 1))  # the busiest rank's members
    nblock = -(-ncol // k)  # and columns (blocks are balanced to a chunk)
    nworld = min(ncol, -(-ncol // max(nranks, 1)) + column_chunk_size(ncol))  # a world block's columns
    nmem_da = -(-nmem // max(nranks, 1))  # members of a rank in the whole-member analysis layout
    methods = list(cfg.analysis.methods)
    nmeth = len(methods)
    days = cfg.experiment.days
    nstations = int(getattr(cfg.obs, "stations", 0) or 0)
    ncol_da, m = _point_problem(cfg, methods, ny, ncol, nranks)
    soil_members = nmem if getattr(cfg.ensemble, "perturb_soil", False) else 0
    parts = {
        "libraries": _BASE_BYTES,
        # every rank: the members' soil parameters and the other per-column and per-cell inputs of the domain
        "set-up": 8 * (ncol * (_SOIL_PARAMS * soil_members + _SETUP_COLUMN_VALUES) + _SETUP_CELL_VALUES * cells),
        # nature run and spin-up column of the world block, and nloc members per method on the model block
        "models": _COLUMN_MEMBER_BYTES * (2 * nworld + nmeth * nloc * nblock),
        # forcing dicts (truth and ensemble of the world block, moved to the model block, perturbed there per
        # method) and z/factors
        "forcing": 8 * (
            _FORCING_KEYS * (2 * nworld + nblock + 2 * nloc * nblock) + 3 * nmeth * nloc * nblock * _PERTURBED_VARS
        ),
        # the spectrum (whole) and the filtered rows (the block's band) of one member's draw (padded image, ~1.3x)
        "perturbation draw": int(1.3 * cells * (0.5 + 0.5 / k)) * _PERTURBED_VARS * 40,
        # the analysis layouts' arrays: whole members (nmem / P of them) or column blocks with their halo
        # (every member), and the images of the observed layer of the members held whole (every member's
        # images are rank 0's "day images")
        "analysis ensemble": 8 * (2 * nmem_da * cells + _STATE_LAYERS * 3 * max(nmem_da * ncol, nmem * ncol_da)),
        # the running sums of the temporal scores on the block (member group 0): 7 arrays per method,
        # estimate and layer
        "score sums": 8 * 7 * nmeth * 2 * _LAYERS * nblock,
        # rank 0: the small daily record (scores, station series, diagnostics: a few numbers per day)
        "record": 8 * days * (nmeth * (_RECORD_PER_DAY + nstations + nmem + 1) + nstations + 1),
        # rank 0, one day at a time: every member's observed layer before and after the last analysis (the
        # observation-space diagnostics), the verification and the day's images of every method (float64
        # gathered, float32 written)
        "day images": 8 * cells * (2 * nmem + 2 * _LAYERS + 2) + 4 * cells * nmeth * (3 * _LAYERS + 1) * 2,
    }
    if "point_enkf" in methods or "point_letkf" in methods:
        # the local observation-space anomalies (ncol, m, N) twice (three times with the EnKF's perturbed
        # observations), all members' state, its anomalies and the analysis (nlev, ncol, N), the
        # neighbourhoods (ncol, m: index, weight, flag) and the correlated path's (batch, m, m) blocks
        local = 3 if "point_enkf" in methods else 2
        parts["point analysis"] = (
            8 * (local * ncol_da * m * nmem + 4 * _STATE_LAYERS * ncol_da * nmem) + 17 * ncol_da * m + 8 * 4 * (1 << 19)
        )
    if "curvelet_enkf" in methods:  # curvelet coefficients (~8x redundant, complex) of the members
        parts["curvelet analysis"] = 16 * 8 * cells * (nmem_da + 4)
    return MemoryEstimate(
        parts={k: int(v) for k, v in parts.items()}, ranks_on_node=max(1, ranks_on_node), rank0_only=_RANK0_ONLY,
        phases=_PHASES, other_libraries=_BASE_BYTES if cfg.output.plots else _OTHER_BASE_BYTES,
    )  # fmt: skip


def _point_problem(cfg: Any, methods: list[str], ny: int, ncol: int, nranks: int) -> tuple[int, int]:
    """(columns, local observations) of the busiest rank's point analysis: its column block (balanced over
    the ranks) plus a halo of the localization radius on both sides of a latitude band, and the width of
    the neighbourhoods: ``max_obs``, or the grid cells within the radius if fewer (every one observed)."""
    (_, _), (_, _), res = cfg.grid_spec
    point = [cfg.method.get(name) for name in methods if name in ("point_enkf", "point_letkf")]
    radius = max([float(getattr(c, "radius_km", 0.0) or 0.0) for c in point], default=0.0)
    max_obs = max([int(getattr(c, "max_obs", 0) or 0) for c in point], default=0)
    cell_km = res * _KM_PER_DEG
    rows = -(-int(round(radius * 1000)) // max(1, int(round(cell_km * 1000))))  # halo rows each side
    ncol_da = min(ncol, -(-ncol // max(nranks, 1)) + (2 * rows * -(-ncol // max(ny, 1)) if nranks > 1 else 0))
    within = int(3.1416 * (radius / cell_km) ** 2) + 1
    m = max(1, min(within, max_obs or within, ncol))
    return ncol_da, m


def estimated_land_columns(
    south: float, west: float, res: float, ny: int, nx: int, samples: tuple[int, int] = (200, 400)
) -> int:
    """Land cells of the regular grid (``ny`` x ``nx`` cells of ``res`` degrees from ``south``, ``west``),
    without building it: the built-in land mask at every k-th cell centre (at most ``samples`` rows and
    columns), scaled to the grid. Exact for grids of at most ``samples`` cells (global 1 deg: 150 x 360),
    whose mask is the one the set-up then reads from the land-mask cache.
    """
    import numpy as np

    from landimg.grid import builtin_land_mask

    ky, kx = -(-ny // samples[0]), -(-nx // samples[1])
    lat = south + (np.arange(0, ny, ky) + 0.5) * res
    lon = west + (np.arange(0, nx, kx) + 0.5) * res
    land = builtin_land_mask(lat, lon)
    if ky == 1 and kx == 1:
        return int(land.sum())
    return int(round(ny * nx * float(land.mean())))


def config_grid(cfg: Any) -> tuple[tuple[int, int], int]:
    """The grid shape (ny, nx) and its estimated land columns from the configuration alone (no array of
    the grid's size is made: :func:`estimated_land_columns`)."""
    (south, north), (west, east), res = cfg.grid_spec
    ny, nx = int(round((north - south) / res)), int(round((east - west) / res))
    return (ny, nx), estimated_land_columns(south, west, res, ny, nx)


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
    ranks = (
        f"1 rank: {estimate.per_rank / _MB:.0f} MB"
        if estimate.ranks_on_node == 1
        else f"{estimate.ranks_on_node} ranks: rank 0 {estimate.per_rank / _MB:.0f} MB, the others "
        f"{estimate.other_rank / _MB:.0f} MB each"
    )
    return (
        f"memory: the run needs about {estimate.per_node / _MB:.0f} MB on this node "
        f"({ranks}; largest parts of rank 0: {biggest}) but "
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
