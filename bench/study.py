"""The pre-registered study (issue 18 item 9): the curvelet EnKF against the tuned LETKF (and the point
EnKF and the open loop as references) in four worlds, tuned on training seeds, scored once on held-out
seeds, with paired 95 % confidence intervals.

    python bench/study.py --dry-run                       # every run, its estimated time, the total
    python bench/study.py --root runs/study18             # register, tune, calibrate, score, report
    python bench/study.py --root runs/study18 --resume    # the same, keeping every finished run
    python bench/study.py --root runs/study18 --resume --phase tune --worlds default-conus1 \
        --methods point_letkf                             # only some of the tuning
    python bench/study.py --root runs/study18 --report-only --write-docs   # tables into docs and README
    python bench/study.py --quick --root /tmp/q           # the smoke design (tests/test_study.py)

**Pre-registration.** Everything that decides the outcome is declared below (:data:`DESIGN`) and
written to ``ROOT/preregistration.json`` (and ``.md``) before the first run: the primary score
(``methods.<m>.0-10cm.background.ubrmse_time`` of ``summary.json``, lower is better), the scored days,
the worlds and grids, the training and held-out seeds, every method's candidate variants (at most
:data:`MAX_CANDIDATES` per method and world), the selection rule, the equal-CPU rule and the goals. Every
later invocation compares the design with the registered one and stops (exit 2) if it changed.

**Phases.** ``tune``: every candidate of every method alone, on the training seeds, per world (the
0.25 degree boxes take the choice of their 1 degree world); the candidate with the lowest mean primary
score is selected, and the selection is written to ``ROOT/selection.json`` (checked against the runs at
every later invocation). ``calibrate``: the selected methods alone at several ensemble sizes (short
runs, training seed), giving the ensemble size at which the cheaper method's analysis CPU equals the
other's at 16 members. ``score``: on the held-out seeds, one run per world and seed with every method
(equal N), and the cheaper method at its equal-CPU size. Paired differences are per seed (the runs of
one seed share the nature run, the observations and the forcing): mean +- t(0.975, n-1) sd / sqrt(n).

**Running.** ``--slots`` runs side by side (default 2, one rank each: both cores, no MPI traffic) or
``--ranks 2`` with one slot; results do not depend on the ranks (bitwise). ``study.json`` records every
run (command, code, wall and estimated time, scores) and is rewritten after each; ``--resume`` reads
finished runs back. The runs share ``--spinup-cache``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _study_runs import ROOT, Record, Run, execute, plan_text, tree_id
from _study_stats import (
    LAYERS,
    StudyError,
    ci,
    fmt,
    members_for_cpu,
    metric,
    paired,
    run_scores,
    select,
    select_every_layer,
    write_block,
)

PRIMARY = "methods.<m>.0-10cm.background.ubrmse_time"
MAX_CANDIDATES = 6
CV, LK, PE, OL = "curvelet_enkf", "point_letkf", "point_enkf", "openloop"
DOC_TAG = "study18"


@dataclass(frozen=True)
class GridSpec:
    """A domain: its ``--set`` keys and its extent (for the number of land columns of the estimate)."""

    name: str
    sets: tuple[str, ...]
    lat: tuple[float, float]
    lon: tuple[float, float]
    res: float
    note: str


@dataclass(frozen=True)
class WorldSpec:
    """A world (``experiment.world`` preset) on a grid, its held-out seeds, where its tuning comes from
    (None: its own tuning runs) and whether the equal-CPU comparison is made there."""

    world: str
    grid: str
    heldout: tuple[int, ...]
    tuned_on: str | None = None
    equal_cpu: bool = False

    @property
    def id(self) -> str:
        return f"{self.world}-{self.grid}"


@dataclass(frozen=True)
class Candidate:
    """A variant of one method: its section's ``--set`` keys."""

    name: str
    sets: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class Goal:
    """A pre-registered goal: ``kind`` names its rule (:func:`_goal`), ``params`` its arguments."""

    id: str
    text: str
    kind: str
    params: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Design:
    """Everything the study's outcome depends on (the pre-registration)."""

    primary: str
    days: int
    spinup_days: int
    score_from_day: int
    members: int
    base: tuple[str, ...]
    train_seeds: tuple[int, ...]
    grids: tuple[GridSpec, ...]
    worlds: tuple[WorldSpec, ...]
    candidates: tuple[tuple[str, tuple[Candidate, ...]], ...]
    reference_methods: tuple[str, ...]
    calibration_members: tuple[int, ...]
    calibration_days: int
    equal_cpu_members: tuple[int, int]
    goals: tuple[Goal, ...]
    selection_rule: str = "lowest mean primary score over the training seeds (ties: the first listed)"
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: what the tuning minimises: "primary" (the primary score) or "every-layer" (the background
    #: ubrmse_time of every layer, :func:`_study_stats.select_every_layer`)
    selection: str = "primary"
    #: (world id, ratio): there the curvelet's candidates are only those whose mean training analysis CPU
    #: is at most ratio x that of the LETKF's selected candidate (the goal's cost bound)
    cpu_bound: tuple[tuple[str, float], ...] = ()

    def grid(self, name: str) -> GridSpec:
        return next(g for g in self.grids if g.name == name)

    def world(self, wid: str) -> WorldSpec:
        return next(w for w in self.worlds if w.id == wid)

    def to_json(self) -> dict[str, Any]:
        """The registered form; the fields added after the first studies are left out at their defaults,
        so those studies' registrations still match."""
        out = json.loads(json.dumps(asdict(self)))
        for key, default in (("selection", "primary"), ("cpu_bound", [])):
            if out[key] == default:
                del out[key]
        return out

    def check(self) -> None:
        """Training and held-out seeds disjoint, candidates few and each setting its own method's."""
        for w in self.worlds:
            if set(w.heldout) & set(self.train_seeds):
                raise StudyError(f"study: world {w.id} scores a training seed")
            if w.tuned_on is not None and self.world(w.tuned_on).tuned_on is not None:
                raise StudyError(
                    f"study: world {w.id} is tuned on {w.tuned_on}, which has no tuning of its own"
                )
        for method, cands in self.candidates:
            if not 1 <= len(cands) <= MAX_CANDIDATES:
                raise StudyError(f"study: {method} has {len(cands)} candidates (1..{MAX_CANDIDATES})")
            for c in cands:
                bad = [s for s in c.sets if not s.startswith(f"{method}.")]
                if bad:
                    raise StudyError(f"study: candidate {method}/{c.name} sets another section: {bad[0]}")
        if self.selection not in ("primary", "every-layer"):
            raise StudyError(f"study: unknown selection {self.selection!r} (primary, every-layer)")
        if self.cpu_bound and [m for m, _ in self.candidates][:2] != [LK, CV]:
            raise StudyError("study: a CPU bound needs the LETKF's candidates listed before the curvelet's")
        for wid, _ in self.cpu_bound:
            if wid not in {w.id for w in self.worlds if w.tuned_on is None}:
                raise StudyError(f"study: cpu_bound names {wid}, not a world with its own tuning")


def _seeds(n: int, first: int = 2001) -> tuple[int, ...]:
    return tuple(range(first, first + n))


def _goals(default: str, correlated: str | None, others: tuple[str, ...]) -> tuple[Goal, ...]:
    """The goals of issue 18 for these world ids (1 deg default and correlated worlds, the four others)."""
    out = [
        Goal(
            "G1",
            f"{default}: curvelet EnKF no worse than the tuned LETKF at every layer (background "
            "ubrmse_time; CI of curvelet - LETKF includes 0 or lies below it)",
            "no_worse",
            (("world", default), ("layers", LAYERS)),
        ),
        Goal(
            "G2",
            f"{default}: curvelet analysis CPU <= 0.5 x the LETKF's (means over seeds, equal N)",
            "cpu_ratio",
            (("world", default), ("max", 0.5)),
        ),
    ]
    if correlated:
        out += [
            Goal(
                "G3",
                f"{correlated}: mean curvelet primary <= 0.93 x the LETKF's, and the CI of the paired "
                "difference below 0",
                "ratio_ci",
                (("world", correlated), ("max_ratio", 0.93)),
            ),
            Goal(
                "G4",
                f"{correlated}: curvelet better at 10-40 and 40-100 cm too (background ubrmse_time; CI of "
                "curvelet - LETKF below 0)",
                "better",
                (("world", correlated), ("layers", ("10-40cm", "40-100cm"))),
            ),
        ]
    if others:
        out.append(
            Goal(
                "G5",
                f"{', '.join(others)}: curvelet ahead of the LETKF (CI of the primary difference "
                f"below 0) in at least two of the {len(others)}",
                "count_ahead",
                (("worlds", others), ("min", 2)),
            )
        )
    return (
        *out,
        Goal(
            "G6",
            "analysis spread / error at 0-10 cm within 0.7-1.3 for every filter and world (means over seeds)",
            "range",
            (("metric", "spread_error"), ("lo", 0.7), ("hi", 1.3)),
        ),
        Goal(
            "G7",
            "O-B consistency within 0.8-1.2 for every filter and world (means over seeds)",
            "range",
            (("metric", "consistency"), ("lo", 0.8), ("hi", 1.2)),
        ),
    )


_LETKF = tuple(
    Candidate(
        f"r{r}{'-bias' if b else ''}",
        (f"point_letkf.radius_km={r}", f"point_letkf.bias_correction={'true' if b else 'false'}"),
        f"LETKF, {r} km localization, bias-aware two-stage {'on' if b else 'off'}",
    )
    for b in (False, True)
    for r in (250, 500, 1000)
)
#: the curvelet EnKF's candidates: its defaults (R as declared, Fourier-preconditioned CG with cheap DEnKF
#: anomalies, interior support, variance filtering, no bias stage), then the options the issue asks the
#: study to weigh; docs/method.md "Options, their cost, and the defaults" has each one's training-seed
#: scores and its CPU against the LETKF (bench/analysis_speed.py --ratio)
_CURVELET = (
    Candidate("default", (), "curvelet EnKF with its defaults"),
    Candidate(
        "fine-band",
        ("curvelet_enkf.fine_band_scales=1", "curvelet_enkf.fine_band_radius_km=300.0"),
        "finest scale from localized band-passed ensemble covariances, 300 km (item 4; 1.1-2.8x the default's CPU)",
    ),
    Candidate(
        "layers",
        ('curvelet_enkf.layer_increments="analysis"',),
        "every layer's mean increment from the same analysis (item 5; 1.5-1.7x the default's CPU)",
    ),
    Candidate(
        "bias",
        ("curvelet_enkf.bias_correction=true",),
        "bias-aware two-stage analysis on the coarse scales (the LETKF has the same option; 1.1-1.2x CPU)",
    ),
    Candidate(
        "homogeneous-B",
        ('curvelet_enkf.variance_support="land_fraction"', "curvelet_enkf.variance_filtering=false"),
        "the issue-9 stationary B (no variance filtering): the cheapest solve (0.4-0.55x the default's CPU)",
    ),
    Candidate(
        "memory",
        ("curvelet_enkf.obs_memory_inflation=true",),
        "R's correlated part inflated for error memory (no cost; last: the default itself where "
        "obs.memory_days = 0, as in the default world)",
    ),
)

#: the full design (12.6 hours of one core: about 6.3 hours on this 2-core machine); ``--full``
FULL = Design(
    primary=PRIMARY,
    days=40,
    spinup_days=120,
    score_from_day=11,
    members=16,
    base=("output.plots=false", "output.restart=false"),
    train_seeds=(1001, 1002),
    grids=(
        GridSpec("conus1", (), (25.0, 50.0), (-125.0, -65.0), 1.0, "CONUS at 1 deg (the default domain)"),
        GridSpec(
            "box025",
            ("domain.res=0.25", "domain.bbox=[34.0, 44.0, -102.0, -87.0]"),
            (34.0, 44.0),
            (-102.0, -87.0),
            0.25,
            "central-US box at 0.25 deg (34-44N, 102-87W)",
        ),
    ),
    worlds=(
        WorldSpec("default", "conus1", _seeds(10), equal_cpu=True),
        WorldSpec("correlated", "conus1", _seeds(10), equal_cpu=True),
        WorldSpec("sparse", "conus1", _seeds(5)),
        WorldSpec("displaced", "conus1", _seeds(5)),
        WorldSpec("default", "box025", _seeds(3), tuned_on="default-conus1"),
        WorldSpec("correlated", "box025", _seeds(3), tuned_on="correlated-conus1"),
    ),
    candidates=((LK, _LETKF), (CV, _CURVELET)),
    reference_methods=(OL, PE, LK, CV),
    calibration_members=(8, 16, 32, 64),
    calibration_days=5,
    equal_cpu_members=(4, 128),
    goals=_goals(
        "default-conus1",
        "correlated-conus1",
        ("sparse-conus1", "displaced-conus1", "default-box025", "correlated-box025"),
    ),
    notes=(
        "point EnKF: an untuned reference at its defaults",
        "equal CPU: the cheaper method (analysis CPU at 16 members, calibration runs) gets the ensemble size "
        "at which its analysis CPU equals the other's at 16 members (log-log interpolation, "
        "calibration_members); it is scored alone at that size on the held-out seeds, paired with the other "
        "method's 16-member run",
    ),
)

#: the design this repository's numbers come from (``python bench/study.py``): the full design cut to
#: what a 2-core machine runs in about an hour -- 30 days scored from day 11 (as the training-seed
#: evidence of the defaults; the issue asks for days 11-40), the 1 degree worlds only (the 0.25 degree box
#: runs take 22 minutes each: left to ``--full``), tuning on the default world (the other worlds take its
#: choice), 10 held-out seeds in the default and correlated worlds and 5 in the sparse and displaced ones
#: (amended from 4/4/3/3: see ``notes``), the point EnKF left out (an untuned reference in no goal).
DESIGN = Design(
    primary=PRIMARY,
    days=30,
    spinup_days=120,
    score_from_day=11,
    members=16,
    base=FULL.base,
    train_seeds=(1001, 1002),
    grids=FULL.grids[:1],
    worlds=(
        WorldSpec("default", "conus1", _seeds(10), equal_cpu=True),
        WorldSpec("correlated", "conus1", _seeds(10), tuned_on="default-conus1"),
        WorldSpec("sparse", "conus1", _seeds(5), tuned_on="default-conus1"),
        WorldSpec("displaced", "conus1", _seeds(5), tuned_on="default-conus1"),
    ),
    candidates=((LK, _LETKF[:3] + _LETKF[4:5]), (CV, _CURVELET[:4])),
    reference_methods=(OL, LK, CV),
    calibration_members=(8, 16, 32),
    calibration_days=5,
    equal_cpu_members=(4, 128),
    goals=_goals("default-conus1", "correlated-conus1", ("sparse-conus1", "displaced-conus1")),
    notes=(
        "cut from the full design (--full) to fit this machine: see the comment above DESIGN in bench/study.py",
        FULL.notes[1],
        "amended 2026-12-07 08:40Z, before any held-out score was read (6 of 18 scoring runs finished, none "
        "opened): held-out seeds 4/4/3/3 -> the issue's 10/10/5/5, because the runs took 1.5-3.6 min instead "
        "of the estimated 6; tuning, selection and calibration unchanged; the first registration is kept as "
        "preregistration-v1.json",
    ),
)

#: the follow-up (``--followup``, root runs/study18b), registered after the first study's held-out
#: results and the near-perfect-observation runs on the training seeds (docs/validation.md, "What bounds
#: the primary score"): both filters' deep layers had twice the open loop's temporal error, so each
#: filter's candidates are its first-study selection and two ways of updating the deep layers less
#: (none below the layers the observation operator weights; a 0.5 m Gaspari-Cohn taper by depth), tuned
#: on the same training seeds and scored on fresh held-out seeds (3001-), the first study's results
#: standing as registered.
_LETKF_DEEP = (
    _LETKF[1],
    Candidate(
        "r500-top",
        (*_LETKF[1].sets, "point_letkf.nlev_update=3"),
        "LETKF 500 km, only the layers the observation operator weights updated (0-9 cm; nlev_update=3)",
    ),
    Candidate(
        "r500-vl05",
        (*_LETKF[1].sets, "point_letkf.vertical_localization_m=0.5"),
        "LETKF 500 km, layer increments tapered by depth (Gaspari-Cohn, zero from 0.5 m below the observed layer)",
    ),
)
_CURVELET_DEEP = (
    _CURVELET[2],
    Candidate(
        "no-deep",
        ('curvelet_enkf.layer_increments="analysis"', "curvelet_enkf.deep_regression=false"),
        "curvelet EnKF (layers from the analysis), no update below the layers the observation operator weights",
    ),
    Candidate(
        "vl05",
        ('curvelet_enkf.layer_increments="analysis"', "curvelet_enkf.vertical_localization_m=0.5"),
        "curvelet EnKF (layers from the analysis), layer increments tapered by depth (zero from 0.5 m below)",
    ),
)
FOLLOWUP = replace(
    DESIGN,
    worlds=(
        WorldSpec("default", "conus1", _seeds(10, 3001)),
        WorldSpec("correlated", "conus1", _seeds(10, 3001), tuned_on="default-conus1"),
        WorldSpec("sparse", "conus1", _seeds(5, 3001), tuned_on="default-conus1"),
        WorldSpec("displaced", "conus1", _seeds(5, 3001), tuned_on="default-conus1"),
    ),
    candidates=((LK, _LETKF_DEEP), (CV, _CURVELET_DEEP)),
    calibration_members=(8, 16),
    goals=_goals("default-conus1", "correlated-conus1", ("sparse-conus1", "displaced-conus1")),
    notes=(
        "follow-up of the first study (root runs/study18, whose results stand): registered after its held-out "
        "results (deep layers at twice the open loop's temporal error for both filters) and the "
        "near-perfect-observation runs on the training seeds; fresh held-out seeds 3001-; no equal-CPU runs "
        "(the first study has them)",
    ),
)

#: the second follow-up (``--deep``, root runs/study18c): the deep layers kept updated, each filter with two
#: ways of making its deep increments smaller -- the curvelet EnKF's ``deep_gain`` (0.6, 0.4: the deep
#: increments' day-to-day part correlates with the true error at r = 0.24-0.29 for every rule, so the best
#: gain is ~0.3-0.4; training seeds, docs/validation.md "The deep layers"), the LETKF's Gaspari-Cohn taper by
#: depth (1.1 m, 0.5 m) -- tuned on the training seeds, scored on fresh held-out seeds (4001-).
_LETKF_KEEP = (
    _LETKF[1],
    Candidate(
        "r500-vl11",
        (*_LETKF[1].sets, "point_letkf.vertical_localization_m=1.1"),
        "LETKF 500 km, layer increments tapered by depth (Gaspari-Cohn, zero from 1.1 m below the observed layer)",
    ),
    _LETKF_DEEP[2],
)
_CURVELET_KEEP = (
    _CURVELET[2],
    Candidate(
        "gain06",
        ('curvelet_enkf.layer_increments="analysis"', "curvelet_enkf.deep_gain=0.6"),
        "curvelet EnKF (layers from the analysis), increments below the observed layer x 0.6",
    ),
    Candidate(
        "gain04",
        ('curvelet_enkf.layer_increments="analysis"', "curvelet_enkf.deep_gain=0.4"),
        "curvelet EnKF (layers from the analysis), increments below the observed layer x 0.4",
    ),
)
DEEP = replace(
    DESIGN,
    worlds=(WorldSpec("default", "conus1", _seeds(10, 4001)),),
    candidates=((LK, _LETKF_KEEP), (CV, _CURVELET_KEEP)),
    calibration_members=(8, 16),
    goals=_goals("default-conus1", None, ()),
    notes=(
        "second follow-up (roots runs/study18 and runs/study18b stand): the deep layers kept updated, each "
        "filter with two smaller deep updates; candidates from training-seed work only (branch h-deep); fresh "
        "held-out seeds 4001-; the default world only (time); no equal-CPU runs",
    ),
)

def _g5_pair(worlds: tuple[str, str], others: str) -> tuple[Goal, ...]:
    """The goals of a follow-up scoring two of G5's four worlds (``others``, the other two, had 0 of 2 ahead):
    G5 on these two (both must be ahead), G6 and G7."""
    g5 = Goal(
        "G5",
        f"{', '.join(worlds)}: curvelet ahead of the LETKF (CI of the primary difference below 0) in both "
        f"({others} have 0 of 2: G5 needs 2 of 4)",
        "count_ahead",
        (("worlds", worlds), ("min", 2)),
    )
    return (g5, *_goals("default-conus1", None, ())[2:])


#: the 0.25 degree boxes (``--boxes``, root runs/study18d): the follow-up's candidates, tuned again on the
#: same training seeds of the 1 degree default world, scored on the central-US box at 0.25 degree in the
#: default and correlated worlds on fresh held-out seeds (5001-); registered after the follow-up's results
#: (sparse and displaced leaning ahead with CIs including 0: G5 needs both boxes ahead).
BOXES = replace(
    FOLLOWUP,
    grids=FULL.grids,
    worlds=(
        WorldSpec("default", "conus1", ()),
        WorldSpec("default", "box025", _seeds(3, 5001), tuned_on="default-conus1"),
        WorldSpec("correlated", "box025", _seeds(3, 5001), tuned_on="default-conus1"),
    ),
    goals=_g5_pair(("default-box025", "correlated-box025"), "the follow-up's sparse and displaced worlds"),
    notes=(
        "third follow-up (roots runs/study18, 18b, 18c stand): the two 0.25 deg boxes of the full design that "
        "no earlier study ran; the follow-up's candidates tuned again on the 1 deg training seeds (no held-out "
        "seeds at 1 deg); fresh held-out seeds 5001-5003 on the boxes; 30 days scored from day 11 as the "
        "other studies; no equal-CPU runs",
    ),
)

#: the fourth follow-up (``--replicate``, root runs/study18e): the follow-up's sparse and displaced worlds on a
#: fresh sample of 10 held-out seeds each (6001-6010; the follow-up's 5 gave CIs including 0 in both), the
#: same candidates tuned again on the same training seeds; registered after the boxes' results. The
#: follow-up's 5-seed results stand; the two samples are reported apart, never pooled.
REPLICATE = replace(
    FOLLOWUP,
    worlds=(
        WorldSpec("default", "conus1", ()),
        WorldSpec("sparse", "conus1", _seeds(10, 6001), tuned_on="default-conus1"),
        WorldSpec("displaced", "conus1", _seeds(10, 6001), tuned_on="default-conus1"),
    ),
    goals=_g5_pair(("sparse-conus1", "displaced-conus1"), "the 0.25 deg boxes"),
    notes=(
        "fourth follow-up (roots runs/study18, 18b, 18c, 18d stand): a fresh 10-seed sample of the follow-up's "
        "sparse and displaced worlds (seeds 6001-6010), whose 5 seeds gave CIs including 0; the follow-up's "
        "candidates tuned again on the 1 deg training seeds; reported apart from the follow-up's sample, never "
        "pooled; no equal-CPU runs",
    ),
)

#: the final study (``--final``, root runs/study18f): the issue's own design -- 40 days scored over days
#: 11-40, every 1 degree world tuned on its own training seeds, held-out seeds 10/10/5/5 at 1 degree and 3 on
#: each 0.25 degree box (tuned on its 1 degree world), equal CPU in the default world -- on fresh held-out
#: seeds (7001-), registered after the four follow-ups. ``FULL`` stays as it was written before any study
#: ran; its candidates predate what the follow-ups found (both filters' primary score is best with fewer
#: deep increments), so this design's candidates are each filter's settings that the follow-ups selected or
#: came close with, and the options the issue asks to weigh, combined with them.
_LETKF_FINAL = (
    _LETKF[1],
    Candidate("r250-top", (*_LETKF[0].sets, "point_letkf.nlev_update=3"), "LETKF 250 km, top layers only"),
    _LETKF_DEEP[1],
    Candidate("r1000-top", (*_LETKF[2].sets, "point_letkf.nlev_update=3"), "LETKF 1000 km, top layers only"),
    _LETKF_DEEP[2],
    Candidate(
        "r500-top-bias",
        (*_LETKF[4].sets, "point_letkf.nlev_update=3"),
        "LETKF 500 km, top layers only, bias-aware two-stage analysis",
    ),
)
_CURVELET_FINAL = (
    Candidate("default", (), "curvelet EnKF with its defaults (every layer from the analysis)"),
    _CURVELET_DEEP[1],
    _CURVELET_KEEP[2],
    Candidate(
        "no-deep-bias",
        (*_CURVELET_DEEP[1].sets, *_CURVELET[3].sets),
        "no deep update, bias-aware two-stage analysis on the coarse scales",
    ),
    Candidate(
        "no-deep-fine",
        (*_CURVELET_DEEP[1].sets, *_CURVELET[1].sets),
        "no deep update, finest scale from localized band-passed ensemble covariances (300 km)",
    ),
    Candidate(
        "no-deep-memory",
        (*_CURVELET_DEEP[1].sets, *_CURVELET[5].sets),
        "no deep update, R's correlated part inflated for error memory (the same as no-deep where "
        "obs.memory_days = 0)",
    ),
)
FINAL = replace(
    FULL,
    worlds=(
        WorldSpec("default", "conus1", _seeds(10, 7001), equal_cpu=True),
        WorldSpec("correlated", "conus1", _seeds(10, 7001)),
        WorldSpec("sparse", "conus1", _seeds(5, 7001)),
        WorldSpec("displaced", "conus1", _seeds(5, 7001)),
        WorldSpec("default", "box025", _seeds(3, 7001), tuned_on="default-conus1"),
        WorldSpec("correlated", "box025", _seeds(3, 7001), tuned_on="correlated-conus1"),
    ),
    candidates=((LK, _LETKF_FINAL), (CV, _CURVELET_FINAL)),
    reference_methods=(OL, LK, CV),
    calibration_members=(8, 16, 32),
    notes=(
        "final study (roots runs/study18, 18b-18e stand): the full design's days, worlds, seeds per world and "
        "per-world tuning, on fresh held-out seeds 7001-; candidates from the follow-ups (see the comment "
        "above FINAL in bench/study.py); the point EnKF left out (an untuned reference in no goal); equal "
        "CPU in the default world only",
        FULL.notes[1],
        "the report adds the O-B consistency of the innovations with each day's mean removed "
        "(informational): the registered G7 figure counts the background's mean bias against the "
        "observations, which none of these filters models unless its bias stage is selected",
    ),
)

#: the fifth follow-up (``--every-layer``, root runs/study18g), registered after the final study: goal G1
#: asks for every layer, but the final study's rule selected on 0-10 cm only and picked the curvelet's bias
#: stage for 0.00012 there, which its training runs showed costs 40-100 cm 0.0002-0.0006 (docs/validation.md,
#: "Why G1 misses"). Here both filters are selected on every layer at once
#: (:func:`_study_stats.select_every_layer`), and in the default world, whose goal G1 bounds the cost, the
#: curvelet only among candidates within half the selected LETKF's training analysis CPU. The candidates,
#: training seeds and days are the final study's, so are its tuning runs (copied into this root with their
#: records and code, e2f5462; three of them rerun with this study's code gave identical outputs, bit for bit);
#: calibration and scoring run anew on fresh held-out seeds (8001-).
EVERY_LAYER = replace(
    FINAL,
    # the final study's worlds, tuning sources and equal-CPU world on fresh seeds: 10 per 1 degree world, 3 per box
    worlds=tuple(replace(w, heldout=_seeds(3 if w.grid == "box025" else 10, 8001)) for w in FINAL.worlds),
    selection="every-layer",
    cpu_bound=(("default-conus1", 0.5),),
    selection_rule=(
        "lowest mean over the three layers of the candidate's mean background ubrmse_time over the training "
        "seeds divided by the lowest such mean among the method's candidates at that layer; in "
        "default-conus1 the curvelet's candidates only those with a mean training analysis CPU <= 0.5 x the "
        "selected LETKF's (ties: the first listed)"
    ),
    notes=(
        "fifth follow-up, registered after the final study (runs/study18f stands as registered): its "
        "candidates, training seeds, days and goals, selected on every layer (G1 asks every layer) and, in "
        "the default world, within G1's cost bound; fresh held-out seeds 8001- (10 per 1 deg world, 3 per "
        "box); equal CPU in the default world",
        "the tuning runs are the final study's (same candidates, seeds and days; copied with their records, "
        "code e2f5462; three of them rerun with this study's code gave identical outputs, bit for bit: "
        "default-conus1 curvelet_enkf/no-deep s1001, curvelet_enkf/no-deep-fine s1002, point_letkf/r500-top "
        "s1001); calibration and scoring run with this study's code",
        *FINAL.notes[1:],
    ),
)

#: the sixth follow-up (``--deep-pattern``, root runs/study18h), registered after the fifth: every study's
#: tuning chose no update below the observed layers, which keeps the deep layers' temporal score and gives up
#: their spatial pattern (the image method's point). bench/headroom.py showed why: at depth the background
#: error is a fixed pattern, and a deep increment hurts the temporal score only by its day-to-day noise. A
#: small deep gain corrects the pattern over many analyses with little daily noise: on the training seeds
#: (1001, 1002, default world; lead's runs, deep_gain 0.1 and 0.05 tried) ``deep_gain = 0.05`` was level with
#: no deep update and with the LETKF on every layer's temporal score and +0.04 on the deep layers' analysis
#: spatial correlation. One candidate per filter (the LETKF the fifth follow-up's selection), fresh seeds
#: (9001-9010), default world only, no open loop and no equal-CPU runs (time).
_GAIN005 = Candidate(
    "gain005",
    ('curvelet_enkf.layer_increments="analysis"', "curvelet_enkf.deep_gain=0.05"),
    "curvelet EnKF (layers from the analysis), increments below the observed layer x 0.05",
)
DEEP_PATTERN = replace(
    FINAL,
    worlds=(WorldSpec("default", "conus1", _seeds(10, 9001)),),
    candidates=((LK, (_LETKF_DEEP[1],)), (CV, (_GAIN005,))),
    reference_methods=(LK, CV),
    goals=(
        *_goals("default-conus1", None, ())[:2],
        Goal(
            "G8",
            "default-conus1: the curvelet EnKF's analysis spatial correlation at 10-40 and 40-100 cm above the "
            "LETKF's (CI of the paired difference above 0)",
            "higher",
            (("world", "default-conus1"), ("layers", ("10-40cm", "40-100cm")), ("metric", "spatial_corr")),
        ),
        *_goals("default-conus1", None, ())[2:],
    ),
    notes=(
        "sixth follow-up, registered after the fifth (runs/study18g stands): one candidate per filter, the "
        "curvelet's from the lead's training-seed runs of deep_gain 0.1 and 0.05 (see the comment above "
        "DEEP_PATTERN in bench/study.py); fresh held-out seeds 9001-9010, default world; no open loop, no "
        "equal-CPU runs",
        *FINAL.notes[1:],
    ),
)

QUICK = Design(
    primary=PRIMARY,
    days=6,
    spinup_days=5,
    score_from_day=2,
    members=4,
    base=("output.plots=false", "output.restart=false", "ensemble.spread_days=2"),
    train_seeds=(1001,),
    grids=(
        GridSpec(
            "tiny",
            ("domain.res=1.0", "domain.bbox=[35.0, 41.0, -100.0, -92.0]"),
            (35.0, 41.0),
            (-100.0, -92.0),
            1.0,
            "a 6 x 8 deg box at 1 deg",
        ),
    ),
    worlds=(WorldSpec("default", "tiny", (2001, 2002), equal_cpu=True),),
    candidates=((LK, _LETKF[:1] + _LETKF[3:4]), (CV, _CURVELET[:1])),
    reference_methods=(OL, LK, CV),
    calibration_members=(4, 8),
    calibration_days=2,
    equal_cpu_members=(2, 16),
    goals=_goals("default-tiny", None, ()),
    notes=("smoke design of tests/test_study.py",),
)


# ---------------------------------------------------------------------- runs
def _ncol(g: GridSpec) -> int:
    """Land columns of a grid (the built-in mask), for the cost estimate."""
    try:
        import landimg

        return int(landimg.Grid.regular(lat=g.lat, lon=g.lon, res=g.res, land_mask="builtin").ncol)
    except Exception:  # noqa: BLE001 -- an estimate only
        return int((g.lat[1] - g.lat[0]) * (g.lon[1] - g.lon[0]) / g.res**2 * 0.7)


def _run(
    d: Design,
    key: str,
    phase: str,
    w: WorldSpec,
    seed: int,
    methods: tuple[str, ...],
    sets: tuple[str, ...],
    members: int,
    days: int,
    score_from: int,
    ncol: dict[str, int],
) -> Run:
    grid = d.grid(w.grid)
    allsets = (
        f"experiment.world={w.world}",
        *grid.sets,
        f"experiment.days={days}",
        f"experiment.spinup_days={d.spinup_days}",
        f"experiment.score_from_day={score_from}",
        *d.base,
        f"analysis.methods={json.dumps(list(methods))}",
        f"ensemble.members={members}",
        *sets,
        f"experiment.seed={seed}",
    )
    return Run(key, phase, w.id, seed, methods, allsets, members, days, d.spinup_days, ncol[w.grid])


def _cands(d: Design) -> dict[str, dict[str, Candidate]]:
    return {m: {c.name: c for c in cs} for m, cs in d.candidates}


def tuning_runs(d: Design, ncol: dict[str, int]) -> list[Run]:
    out = []
    for w in d.worlds:
        if w.tuned_on is None:
            for seed in d.train_seeds:  # seed-major: a stopped tuning has every candidate of the first seed
                for method, cands in d.candidates:
                    for c in cands:
                        out.append(
                            _run(
                                d,
                                f"tune/{w.id}/{method}/{c.name}/s{seed}",
                                "tune",
                                w,
                                seed,
                                (method,),
                                c.sets,
                                d.members,
                                d.days,
                                d.score_from_day,
                                ncol,
                            )
                        )
    return out


def _selected_sets(d: Design, sel: dict[str, Any] | None, wid: str, method: str) -> tuple[str, ...]:
    """The ``--set`` keys of the candidate selected for ``method`` in world ``wid`` (none while untuned:
    only a dry run lists such runs)."""
    w = d.world(wid)
    name = ((sel or {}).get("selected", {}).get(w.tuned_on or wid) or {}).get(method)
    return () if name is None else _cands(d)[method][name].sets


def calibration_runs(d: Design, sel: dict[str, Any] | None, ncol: dict[str, int]) -> list[Run]:
    out = []
    for w in d.worlds:
        if w.equal_cpu:
            for method in (LK, CV):
                for n in d.calibration_members:
                    out.append(
                        _run(
                            d,
                            f"calibrate/{w.id}/{method}/N{n}",
                            "calibrate",
                            w,
                            d.train_seeds[0],
                            (method,),
                            _selected_sets(d, sel, w.id, method),
                            n,
                            d.calibration_days,
                            1,
                            ncol,
                        )
                    )
    return out


def scoring_runs(d: Design, sel: dict[str, Any] | None, ncol: dict[str, int]) -> list[Run]:
    """Seed-major (every world's first held-out seed, then every world's second, ...): a study stopped
    early has its seeds spread over the worlds."""
    out = []
    order = sorted(((i, w) for w in d.worlds for i in range(len(w.heldout))), key=lambda p: p[0])
    for i, w in order:
        sets = tuple(s for m in (LK, CV) for s in _selected_sets(d, sel, w.id, m))
        for seed in w.heldout[i : i + 1]:
            out.append(
                _run(
                    d,
                    f"score/{w.id}/s{seed}",
                    "score",
                    w,
                    seed,
                    d.reference_methods,
                    sets,
                    d.members,
                    d.days,
                    d.score_from_day,
                    ncol,
                )
            )
    for w in d.worlds:
        if w.equal_cpu:
            eq = (sel or {}).get("equal_cpu", {}).get(w.id)
            method, n = (eq["method"], eq["members"]) if eq else (CV, d.members)
            for seed in w.heldout:
                out.append(
                    _run(
                        d,
                        f"equal-cpu/{w.id}/s{seed}",
                        "equal-cpu",
                        w,
                        seed,
                        (method,),
                        _selected_sets(d, sel, w.id, method),
                        n,
                        d.days,
                        d.score_from_day,
                        ncol,
                    )
                )
    return out


# ---------------------------------------------------------------------- pre-registration and selection
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    tmp.replace(path)


def register(d: Design, root: Path) -> None:
    """Write the pre-registration (absent) or check the design against it (present; exit 2 if changed)."""
    path = root / "preregistration.json"
    design = d.to_json()
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("sha256") != _digest(design) or stored.get("design") != design:
            diff = sorted(k for k in design if stored.get("design", {}).get(k) != design[k])
            raise StudyError(
                f"study: the design differs from {path} (registered {stored.get('registered')}) in: "
                f"{', '.join(diff) or 'its digest'}; a registered study is not changed"
            )
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _atomic_json(
        path,
        {
            "design": design,
            "sha256": _digest(design),
            "registered": stamp,
            "registered_unix": time.time(),
            "tree": tree_id(),
        },
    )
    (root / "preregistration.md").write_text(prereg_text(d, stamp))
    print(f"[study] registered {path} ({stamp}, sha256 {_digest(design)[:12]})", flush=True)


def prereg_text(d: Design, stamp: str) -> str:
    """The pre-registration in words (``preregistration.md``)."""
    lines = [
        f"# Pre-registration (registered {stamp})",
        "",
        f"- Primary score: `{d.primary}` of `summary.json` (lower is better), "
        f"days {d.score_from_day}-{d.days} "
        f"after a {d.spinup_days}-day spin-up; {d.members} members.",
        f"- Training seeds: {', '.join(map(str, d.train_seeds))}; selection: {d.selection_rule}.",
        "- Worlds (held-out seeds):",
    ]
    for w in d.worlds:
        tuned = f"tuned on {w.tuned_on}" if w.tuned_on else "tuned on its own training runs"
        lines.append(
            f"  - `{w.id}` ({d.grid(w.grid).note}): "
            f"{f'{len(w.heldout)} seeds {w.heldout[0]}-{w.heldout[-1]}' if w.heldout else 'no held-out seeds'}; "
            f"{tuned}{'; equal-CPU comparison' if w.equal_cpu else ''}"
        )
    lines.append("- Candidates:")
    for m, cs in d.candidates:
        lines += [f"  - `{m}/{c.name}`: {c.note} (`{' '.join(c.sets) or 'defaults'}`)" for c in cs]
    lines.append(f"- Scored together at equal N: {', '.join(d.reference_methods)}.")
    lines += [f"- {n}" for n in d.notes]
    lines.append("- Goals:")
    lines += [f"  - {g.id}: {g.text}" for g in d.goals]
    return "\n".join(lines) + "\n"


def selection(d: Design, record: Record, require: bool) -> dict[str, Any] | None:
    """The selected candidates (and, once calibrated, the equal-CPU sizes) from the finished runs.

    ``require``: every world's tuning must be complete (StudyError otherwise). Without it the selection
    holds the (world, method) pairs whose candidates are all scored, and None when there is none.
    """
    sel: dict[str, Any] = {"selected": {}, "tuning": {}, "equal_cpu": {}}
    for w in d.worlds:
        if w.tuned_on is not None:
            continue
        for method, cands in d.candidates:
            try:
                best, means = _select(d, record, w, method, cands, sel["selected"].get(w.id, {}))
            except StudyError:
                if require:
                    raise
                continue
            sel["selected"].setdefault(w.id, {})[method] = best
            sel["tuning"].setdefault(w.id, {})[method] = means
    if not sel["selected"]:
        return None
    for w in d.worlds:
        if not w.equal_cpu:
            continue
        cpu = {
            m: {
                n: metric(record.scores(f"calibrate/{w.id}/{m}/N{n}"), m, ("analysis_cpu_s",))
                for n in d.calibration_members
            }
            for m in (LK, CV)
        }
        if not all(np.isfinite(v) for c in cpu.values() for v in c.values()):
            continue  # not calibrated yet
        at = {m: cpu[m].get(d.members, float("nan")) for m in (LK, CV)}
        cheap, dear = (CV, LK) if at[CV] <= at[LK] else (LK, CV)
        n = members_for_cpu(cpu[cheap], at[dear], *d.equal_cpu_members)
        sel["equal_cpu"][w.id] = {"method": cheap, "members": n, "other": dear, "cpu_per_run": cpu}
    return sel


def _tuned(record: Record, d: Design, w: WorldSpec, method: str, cand: str, path: tuple[str, ...]) -> list[float]:
    return [metric(record.scores(f"tune/{w.id}/{method}/{cand}/s{s}"), method, path) for s in d.train_seeds]


def _select(
    d: Design, record: Record, w: WorldSpec, method: str, cands: tuple[Candidate, ...], chosen: dict[str, str]
) -> tuple[str, list[tuple[str, float]]]:
    """One method's selection in world ``w`` by the design's rule (``chosen``: the methods already
    selected there, for the CPU bound)."""
    if d.selection == "primary":
        return select({c.name: _tuned(record, d, w, method, c.name, ("primary",)) for c in cands})
    eligible = None
    bound = dict(d.cpu_bound).get(w.id)
    if bound is not None and method == CV:
        if LK not in chosen:
            raise StudyError(f"study: the LETKF of {w.id} is not selected yet (the CPU bound needs it)")
        ref = float(np.mean(_tuned(record, d, w, LK, chosen[LK], ("analysis_cpu_s",))))
        eligible = {
            c.name for c in cands if float(np.mean(_tuned(record, d, w, CV, c.name, ("analysis_cpu_s",)))) <= bound * ref
        }
    tables = {
        ln: {c.name: _tuned(record, d, w, method, c.name, (ln, "background", "ubrmse_time")) for c in cands}
        for ln in LAYERS
    }
    return select_every_layer(tables, eligible)


def freeze(root: Path, name: str, value: dict[str, Any]) -> None:
    """Write ``ROOT/<name>`` once; afterwards it must equal what the runs give (exit 2 otherwise)."""
    path = root / name
    value = json.loads(json.dumps(value))
    if path.exists():
        if json.loads(path.read_text()) != value:
            raise StudyError(f"study: {path} no longer matches the finished runs (were runs replaced?)")
        return
    _atomic_json(path, value)


# ---------------------------------------------------------------------- report
def _held(
    d: Design, record: Record, w: WorldSpec, method: str, path: tuple[str, ...], kind: str = "score"
) -> list[float]:
    if kind == "equal-cpu":
        return [metric(record.scores(f"equal-cpu/{w.id}/s{s}"), method, path) for s in w.heldout]
    return [metric(record.scores(f"score/{w.id}/s{s}"), method, path) for s in w.heldout]


_ROWS = (
    (("primary",), "bg ubRMSE_t 0-10 (primary)", 4),
    (("10-40cm", "background", "ubrmse_time"), "bg ubRMSE_t 10-40", 4),
    (("40-100cm", "background", "ubrmse_time"), "bg ubRMSE_t 40-100", 4),
    (("0-10cm", "ubrmse_time"), "an ubRMSE_t 0-10", 4),
    (("0-10cm", "background", "time_corr"), "bg time R 0-10", 3),
    (("0-10cm", "spatial_corr"), "an spatial R 0-10", 3),
    (("10-40cm", "spatial_corr"), "an spatial R 10-40", 3),
    (("40-100cm", "spatial_corr"), "an spatial R 40-100", 3),
    (("spread_error",), "spread/error", 2),
    (("consistency",), "O-B consistency", 2),
    (("consistency_debiased",), "O-B consistency, de-biased", 2),
    (("analysis_cpu_s",), "analysis CPU s", 2),
)


def world_report(d: Design, record: Record, w: WorldSpec, sel: dict[str, Any] | None) -> str:
    """Per-method means +- 95 % CI over the held-out seeds, and the paired differences."""
    n_done = sum(record.done(f"score/{w.id}/s{s}") for s in w.heldout)
    lines = [
        f"**{w.id}** ({d.grid(w.grid).note}; {n_done} of {len(w.heldout)} held-out seeds scored)",
        "",
        "| method | " + " | ".join(r[1] for r in _ROWS) + " |",
        "|---|" + "---|" * len(_ROWS),
    ]
    for m in d.reference_methods:
        cells = [fmt(*ci(_held(d, record, w, m, p))[:2], nd) for p, _, nd in _ROWS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    pairs = [
        (f"{CV} - {LK}", CV, LK),
        (f"{CV} - {PE}", CV, PE),
        (f"{CV} - {OL}", CV, OL),
        (f"{LK} - {OL}", LK, OL),
    ]
    lines += [
        "",
        "| paired difference (n) | " + " | ".join(r[1] for r in _ROWS[:3]) + " |",
        "|---|---|---|---|",
    ]
    for label, a, b in pairs:
        if a not in d.reference_methods or b not in d.reference_methods:
            continue
        cells = []
        for p, _, nd in _ROWS[:3]:
            mu, hw, n = paired(_held(d, record, w, a, p), _held(d, record, w, b, p))
            star = "*" if np.isfinite(hw) and abs(mu) > hw else ""
            cells.append(fmt(mu, hw, nd + 1, signed=True) + star)
        lines.append(f"| {label} ({n}) | " + " | ".join(cells) + " |")
    eq = (sel or {}).get("equal_cpu", {}).get(w.id)
    if eq:
        cheap, dear, n = eq["method"], eq["other"], eq["members"]
        a = _held(d, record, w, cheap, ("primary",), "equal-cpu")
        b = _held(d, record, w, dear, ("primary",))
        mu, hw, k = paired(a, b) if cheap == CV else paired(b, a)
        lines += [
            "",
            f"Equal analysis CPU: {cheap} at {n} members against {dear} at {d.members} (calibrated on "
            f"seed {d.train_seeds[0]}); primary score, {CV} - {LK}: {fmt(mu, hw, 5, signed=True)} (n={k}).",
        ]
    return "\n".join(lines)


def _num(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.5f}"


def tuning_report(d: Design, sel: dict[str, Any] | None, record: Record) -> str:
    """The training-seed scores of every candidate and the selection (with the every-layer rule: each
    layer's mean, the candidate's training analysis CPU and the rule's score)."""
    layered = d.selection == "every-layer"
    head = "| world | method / candidate | per seed | mean |"
    if layered:
        head += " 10-40 cm mean | 40-100 cm mean | analysis CPU s | rule score |"
    lines = [
        f"Tuning (training seeds {', '.join(map(str, d.train_seeds))}; primary score per seed, mean; "
        f"selected in bold; rule: {d.selection_rule}):",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for w in d.worlds:
        if w.tuned_on is not None:
            continue
        for method, cands in d.candidates:
            best = ((sel or {}).get("selected", {}).get(w.id) or {}).get(method)
            rule = dict(((sel or {}).get("tuning", {}).get(w.id) or {}).get(method) or [])
            for c in cands:
                v = _tuned(record, d, w, method, c.name, ("primary",))
                name = f"**{method}/{c.name}**" if c.name == best else f"{method}/{c.name}"
                row = f"| {w.id} | {name} | {', '.join(_num(x) for x in v)} | {_num(_mean(v))} |"
                if layered:
                    deep = [_mean(_tuned(record, d, w, method, c.name, (ln, "background", "ubrmse_time")))
                            for ln in LAYERS[1:]]  # fmt: skip
                    cpu = _mean(_tuned(record, d, w, method, c.name, ("analysis_cpu_s",)))
                    score = rule.get(c.name, float("nan"))
                    row += f" {_num(deep[0])} | {_num(deep[1])} | {cpu:.2f} | {score:.4f} |"
                lines.append(row)
    return "\n".join(lines)


def _mean(v: list[float]) -> float:
    return float(np.mean(v)) if v and all(np.isfinite(v)) else float("nan")


def _goal(d: Design, record: Record, g: Goal) -> tuple[str, str]:
    """(measured, verdict) of one goal."""
    p = dict(g.params)
    w = d.world(p["world"]) if "world" in p else None
    bg = lambda ln: (ln, "background", "ubrmse_time")  # noqa: E731
    if g.kind in ("no_worse", "better"):
        parts, ok = [], True
        for ln in p["layers"]:
            mu, hw, n = paired(_held(d, record, w, CV, bg(ln)), _held(d, record, w, LK, bg(ln)))
            parts.append(f"{ln} {fmt(mu, hw, 5, signed=True)}")
            ok &= np.isfinite(hw) and (mu - hw <= 0 if g.kind == "no_worse" else mu + hw < 0)
        return f"{'; '.join(parts)} (n={n})", "met" if ok else "not met"
    if g.kind == "higher":  # the curvelet's analysis metric above the LETKF's at these layers (CI above 0)
        parts, ok = [], True
        for ln in p["layers"]:
            mu, hw, n = paired(_held(d, record, w, CV, (ln, p["metric"])), _held(d, record, w, LK, (ln, p["metric"])))
            parts.append(f"{ln} {fmt(mu, hw, 3, signed=True)}")
            ok &= bool(np.isfinite(hw) and mu - hw > 0)
        return f"{'; '.join(parts)} (n={n})", "met" if ok else "not met"
    if g.kind == "cpu_ratio":
        a, b = (
            ci(_held(d, record, w, CV, ("analysis_cpu_s",))),
            ci(_held(d, record, w, LK, ("analysis_cpu_s",))),
        )
        r = a[0] / b[0] if b[0] > 0 else float("nan")
        return f"{r:.2f} ({a[0]:.3g} s / {b[0]:.3g} s, n={a[2]})", "met" if r <= p["max"] else "not met"
    if g.kind == "ratio_ci":
        a, b = _held(d, record, w, CV, ("primary",)), _held(d, record, w, LK, ("primary",))
        r = ci(a)[0] / ci(b)[0] if ci(b)[0] > 0 else float("nan")
        mu, hw, n = paired(a, b)
        ok = r <= p["max_ratio"] and np.isfinite(hw) and mu + hw < 0
        return f"ratio {r:.3f}; difference {fmt(mu, hw, 5, signed=True)} (n={n})", "met" if ok else "not met"
    if g.kind == "count_ahead":
        parts, count = [], 0
        for wid in p["worlds"]:
            ww = d.world(wid)
            mu, hw, n = paired(_held(d, record, ww, CV, ("primary",)), _held(d, record, ww, LK, ("primary",)))
            ahead = bool(np.isfinite(hw) and mu + hw < 0)
            count += ahead
            parts.append(f"{wid} {fmt(mu, hw, 5, signed=True)}{' ahead' if ahead else ''}")
        return f"{count} of {len(p['worlds'])}: " + "; ".join(parts), "met" if count >= p[
            "min"
        ] else "not met"
    if g.kind == "range":
        parts, ok = [], True
        for ww in d.worlds:
            for m in d.reference_methods:
                if m == OL:
                    continue
                mu = ci(_held(d, record, ww, m, (p["metric"],)))[0]
                if np.isfinite(mu) and not p["lo"] <= mu <= p["hi"]:
                    ok = False
                    parts.append(f"{ww.id}/{m} {mu:.2f}")
        return ("outside: " + ", ".join(parts)) if parts else "all inside", "met" if ok else "not met"
    raise StudyError(f"study: unknown goal kind {g.kind!r}")


def goals_report(d: Design, record: Record) -> str:
    lines = ["| goal | measured (held-out seeds, mean +- 95 % CI) | verdict |", "|---|---|---|"]
    for g in d.goals:
        measured, verdict = _goal(d, record, g)
        lines.append(f"| {g.id}: {g.text} | {measured} | {verdict} |")
    return "\n".join(lines)


def report(d: Design, record: Record, sel: dict[str, Any] | None) -> str:
    parts = [
        f"Primary score: background `ubrmse_time` at 0-10 cm (m3/m3, lower is better), days "
        f"{d.score_from_day}-{d.days}; {d.members} members; `*` = CI excludes 0.",
        "",
        goals_report(d, record),
    ]
    scored = [w for w in d.worlds if w.heldout]  # a tuning-only world has nothing to report but its tuning
    parts += ["", *[world_report(d, record, w, sel) + "\n" for w in scored], tuning_report(d, sel, record)]
    return "\n".join(parts)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT / "runs" / "study18")
    p.add_argument("--resume", action="store_true", help="keep the finished runs of --root")
    p.add_argument(
        "--dry-run", action="store_true", help="list every run and its estimated time; run nothing"
    )
    p.add_argument(
        "--phase", choices=("tune", "calibrate", "score"), default="score", help="stop after this phase"
    )
    p.add_argument("--worlds", default="", help="only these world ids (comma-separated; default all)")
    p.add_argument("--methods", default="", help="tuning: only these methods' candidates")
    p.add_argument("--report-only", action="store_true")
    p.add_argument(
        "--write-docs", action="store_true", help="write the report into docs/validation.md and README.md"
    )
    p.add_argument("--docs-root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    designs = p.add_mutually_exclusive_group()
    designs.add_argument("--quick", action="store_true", help="the smoke design (tiny box, 6 days, 4 members)")
    designs.add_argument("--full", action="store_true", help="the full design (0.25 deg boxes, more seeds; ~6 h here)")
    designs.add_argument("--followup", action="store_true", help="the follow-up on the deep-layer updates (fresh seeds)")
    designs.add_argument("--deep", action="store_true", help="the second follow-up: smaller deep updates (fresh seeds)")
    designs.add_argument("--boxes", action="store_true", help="the third follow-up: the 0.25 deg boxes (fresh seeds)")
    designs.add_argument(
        "--replicate", action="store_true", help="the fourth follow-up: sparse and displaced on 10 fresh seeds"
    )
    designs.add_argument(
        "--final", action="store_true", help="the final study: the full design on fresh seeds (~4 h here)"
    )
    designs.add_argument(
        "--every-layer", action="store_true", help="the fifth follow-up: the final study selected on every layer"
    )
    designs.add_argument(
        "--deep-pattern", action="store_true", help="the sixth follow-up: a small deep gain for the deep pattern"
    )
    p.add_argument("--slots", type=int, default=2, help="runs side by side")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks per run")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per run")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--spinup-cache", type=Path, default=None, help="default ROOT/spinup-cache")
    a = p.parse_args(argv)
    d, a.suffix = _design_of(a)
    if a.suffix and a.root == ROOT / "runs" / "study18":
        a.root = ROOT / "runs" / f"study18{a.suffix}"
    try:
        d.check()
        return _main(d, a)
    except StudyError as e:
        print(e, file=sys.stderr)
        return 2


#: the follow-up designs: their flag, and the suffix of their default root and of their documentation block
_FOLLOWUPS = (
    ("followup", FOLLOWUP, "b"),
    ("deep", DEEP, "c"),
    ("boxes", BOXES, "d"),
    ("replicate", REPLICATE, "e"),
    ("final", FINAL, "f"),
    ("every_layer", EVERY_LAYER, "g"),
    ("deep_pattern", DEEP_PATTERN, "h"),
)


#: the designs whose goal table the README shows: the final study (the issue's own design), its every-layer
#: follow-up (the README sums up the others in one table, their full reports stay in docs/validation.md) and
#: the smoke design (tests)
_IN_README = (FINAL, EVERY_LAYER, QUICK)


def _design_of(a: argparse.Namespace) -> tuple[Design, str]:
    """The design the flags choose and its suffix ('' for the first study, the quick and the full design)."""
    for flag, design, suffix in _FOLLOWUPS:
        if getattr(a, flag):
            return design, suffix
    return (QUICK if a.quick else FULL if a.full else DESIGN), ""


def _main(d: Design, a: argparse.Namespace) -> int:
    root = a.root
    worlds = {w for w in a.worlds.split(",") if w}
    methods = {m for m in a.methods.split(",") if m}
    unknown = worlds - {w.id for w in d.worlds}
    if unknown:
        raise StudyError(
            f"study: unknown world {sorted(unknown)[0]} (worlds: {', '.join(w.id for w in d.worlds)})"
        )
    record = Record(root)
    ncol = {g.name: _ncol(g) for g in d.grids}
    def keep(r: Any) -> bool:
        return (not worlds or r.world in worlds) and (r.phase != "tune" or not methods or r.methods[0] in methods)

    if a.dry_run:
        sel = selection(d, record, require=False)
        runs = [
            r
            for r in tuning_runs(d, ncol) + calibration_runs(d, sel, ncol) + scoring_runs(d, sel, ncol)
            if keep(r)
        ]
        print(plan_text(runs, record, a.slots, a.ranks))
        if sel is None:
            print("(the calibration and scoring runs use the selected candidates, known after the tuning)")
        return 0
    if not a.report_only:
        if record.data["runs"] and not a.resume:
            raise StudyError(f"study: {root} holds a study; --resume continues it")
        root.mkdir(parents=True, exist_ok=True)
        register(d, root)  # before any run
        cache = a.spinup_cache or root / "spinup-cache"
        go = dict(slots=a.slots, ranks=a.ranks, cache=cache, timeout=a.timeout, nice=a.nice)
        scorer = lambda r, out: _score_run(d, r, out)  # noqa: E731
        execute([r for r in tuning_runs(d, ncol) if keep(r)], root, record, scorer, **go)
        if a.phase != "tune":
            sel = selection(d, record, require=True)
            freeze(root, "selection.json", {k: sel[k] for k in ("selected", "tuning")})
            execute([r for r in calibration_runs(d, sel, ncol) if keep(r)], root, record, scorer, **go)
            if a.phase == "score":
                sel = selection(d, record, require=True)
                missing = [
                    w.id
                    for w in d.worlds
                    if w.equal_cpu and w.id not in sel["equal_cpu"] and (not worlds or w.id in worlds)
                ]
                if missing:
                    raise StudyError(
                        f"study: calibration runs of {missing[0]} failed; see {root / 'study.json'}"
                    )
                freeze(root, "equal_cpu.json", sel["equal_cpu"])
                register(d, root)  # checked unchanged right before scoring
                execute([r for r in scoring_runs(d, sel, ncol) if keep(r)], root, record, scorer, **go)
    elif (root / "preregistration.json").exists():
        register(d, root)  # a report of a registered study is of that design
    sel = selection(d, record, require=False)
    text = report(d, record, sel)
    (root / "study.md").write_text(text + "\n")
    print(text)
    if a.write_docs:
        tag = f"{DOC_TAG}{a.suffix}"
        write_block(a.docs_root / "docs" / "validation.md", tag, text)
        if any(d is r for r in _IN_README):
            write_block(a.docs_root / "README.md", tag, goals_report(d, record))
    return 0


def _score_run(d: Design, r: Run, out: Path) -> dict[str, Any]:
    """The scores of a finished run (calibration runs: every day scored)."""
    first = 1 if r.phase == "calibrate" else d.score_from_day
    return run_scores(out, (first, r.days))


if __name__ == "__main__":
    sys.exit(main())
