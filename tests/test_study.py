"""Issue 18 item 9: the pre-registered study script (bench/study.py) cannot rot: its statistics against
scipy and exact cases, and a smoke study (tiny box, 6 days, 4 members, 1 training and 2 held-out seeds)
run end to end: registered before any run, tuned, calibrated, scored, reported into docs, resumed without
rerunning, and refused when the registered design changed."""

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import subprocess_env

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _study_stats as st  # noqa: E402
import study  # noqa: E402


# ---------------------------------------------------------------------- statistics
def test_confidence_intervals_and_paired_differences():
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.03, 0.004, 7), rng.normal(0.031, 0.004, 7)
    mu, hw, n = st.paired(list(a), list(b))
    lo, hi = stats.t.interval(0.95, 6, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert n == 7 and math.isclose(mu - hw, lo, rel_tol=1e-12) and math.isclose(mu + hw, hi, rel_tol=1e-12)
    mu, hw, n = st.paired([1.0, np.nan, 3.0], [0.5, 2.0, 2.0])  # the seed without a score drops out
    assert n == 2 and mu == 0.75 and np.isfinite(hw)
    assert st.ci([2.0])[1] != st.ci([2.0])[1]  # one value: no half-width (NaN)


def test_selection_and_equal_cpu_size():
    best, means = st.select({"a": [0.03, 0.032], "b": [0.029, 0.031], "c": [0.029, 0.031]})
    assert best == "b" and dict(means)["a"] == 0.031  # ties: the first listed
    with pytest.raises(st.StudyError):
        st.select({"a": [0.03, float("nan")]})
    # a power law c = 0.01 N^1.5 is recovered exactly between and beyond the calibration sizes
    pts = {n: 0.01 * n**1.5 for n in (8, 16, 32, 64)}
    assert st.members_for_cpu(pts, 0.01 * 24**1.5, 4, 128) == 24
    assert st.members_for_cpu(pts, 0.01 * 100**1.5, 4, 128) == 100
    assert st.members_for_cpu(pts, 0.01 * 500**1.5, 4, 128) == 128  # clipped
    # timing noise (CPU falling between two sizes): the fit over every size; two sizes: CPU ~ N
    noisy = {4: 0.06, 8: 0.042}
    assert st.members_for_cpu(noisy, 0.084, 2, 64) == 6  # from the segment start: 4 x 0.084 / 0.06
    assert st.members_for_cpu({8: 0.08, 16: 0.07, 32: 0.32}, 0.32, 4, 128) > 16


def test_every_layer_selection_weighs_each_layer_by_its_best():
    tables = {  # "top" wins 0-10 cm by 1 %, loses 40-100 cm by 10 %; "even" is best below and 1 % behind on top
        "0-10cm": {"top": [0.0300, 0.0300], "even": [0.0303, 0.0303]},
        "10-40cm": {"top": [0.0100, 0.0100], "even": [0.0100, 0.0100]},
        "40-100cm": {"top": [0.0055, 0.0055], "even": [0.0050, 0.0050]},
    }
    best, scores = st.select_every_layer(tables)
    assert best == "even"
    assert math.isclose(dict(scores)["top"], (1 + 1 + 1.1) / 3) and math.isclose(dict(scores)["even"], (1.01 + 2) / 3)
    assert st.select_every_layer(tables, eligible={"top"})[0] == "top"  # the other excluded (CPU bound)
    with pytest.raises(st.StudyError, match="eligible"):
        st.select_every_layer(tables, eligible=set())
    tables["10-40cm"]["top"] = [0.01, float("nan")]
    with pytest.raises(st.StudyError, match="unscored"):
        st.select_every_layer(tables)


def test_every_layer_design_bounds_the_curvelet_by_the_letkf_cpu(tmp_path):
    d = dataclasses.replace(
        study.QUICK,
        candidates=(
            (study.LK, (study.Candidate("cheap", (), ""), study.Candidate("dear", (), ""))),
            (study.CV, (study.Candidate("good", (), ""), study.Candidate("thrifty", (), ""))),
        ),
        selection="every-layer",
        cpu_bound=(("default-tiny", 0.5),),
    )
    d.check()
    rec = study.Record(tmp_path)

    def put(method, cand, seed, top, deep, cpu):
        layer = lambda v: {"background": {"ubrmse_time": v}}  # noqa: E731
        scores = {"0-10cm": layer(top), "10-40cm": layer(deep), "40-100cm": layer(deep), "analysis_cpu_s": cpu}
        rec.data["runs"][f"tune/default-tiny/{method}/{cand}/s{seed}"] = {
            "status": "ok", "scores": {"methods": {method: {**scores, "primary": top}}}
        }

    for seed in d.train_seeds:
        put(study.LK, "cheap", seed, 0.031, 0.010, 1.0)  # the LETKF's selection: best everywhere
        put(study.LK, "dear", seed, 0.032, 0.011, 4.0)
        put(study.CV, "good", seed, 0.029, 0.009, 0.6)  # best, but above half the selected LETKF's CPU
        put(study.CV, "thrifty", seed, 0.030, 0.010, 0.4)
    sel = study.selection(d, rec, require=True)
    assert sel["selected"]["default-tiny"] == {study.LK: "cheap", study.CV: "thrifty"}
    unbounded = dataclasses.replace(d, cpu_bound=())
    assert study.selection(unbounded, rec, require=True)["selected"]["default-tiny"][study.CV] == "good"
    assert "selection" not in study.FINAL.to_json() and d.to_json()["selection"] == "every-layer"


def test_higher_goal_needs_the_paired_ci_above_zero(tmp_path):
    goal = study.Goal("G8", "", "higher", (("world", "default-tiny"), ("layers", ("40-100cm",)), ("metric", "spatial_corr")))
    d = dataclasses.replace(study.QUICK, goals=(goal,))
    rec = study.Record(tmp_path)

    def scored(cv: list[float], lk: list[float]) -> str:
        for seed, a, b in zip(d.worlds[0].heldout, cv, lk, strict=True):
            rec.data["runs"][f"score/default-tiny/s{seed}"] = {"status": "ok", "scores": {"methods": {
                study.CV: {"40-100cm": {"spatial_corr": a}}, study.LK: {"40-100cm": {"spatial_corr": b}}}}}  # fmt: skip
        return study._goal(d, rec, goal)[1]

    assert scored([0.700, 0.741], [0.65, 0.69]) == "met"  # +0.050, +0.051: 12.7 x 0.0005 from 0.0505
    assert scored([0.70, 0.75], [0.65, 0.69]) == "not met"  # +0.05, +0.06: t(1 dof) x 0.005 > 0.055
    assert scored([0.70, 0.60], [0.65, 0.69]) == "not met"  # +0.05, -0.09
    assert scored([0.60, 0.62], [0.65, 0.69]) == "not met"  # lower


def test_design_is_checked():
    study.DESIGN.check()
    bad = dataclasses.replace(study.QUICK, train_seeds=(2001,))
    with pytest.raises(st.StudyError, match="training seed"):
        bad.check()
    cands = ((study.LK, (study.Candidate("x", ("curvelet_enkf.nscales=4",), ""),)),)
    with pytest.raises(st.StudyError, match="another section"):
        dataclasses.replace(study.QUICK, candidates=cands).check()


def test_dry_run_lists_every_run(capsys):
    assert study.main(["--dry-run", "--root", "/nonexistent/study"]) == 0
    out = capsys.readouterr().out
    d = study.DESIGN
    n_tune = (
        sum(len(c) for _, c in d.candidates) * len(d.train_seeds) * sum(w.tuned_on is None for w in d.worlds)
    )
    n_cal = 2 * len(d.calibration_members) * sum(w.equal_cpu for w in d.worlds)
    n_score = sum(len(w.heldout) * (1 + w.equal_cpu) for w in d.worlds)
    assert f"{n_tune + n_cal + n_score} runs (0 done)" in out and "of wall time" in out
    assert all(len(c) <= study.MAX_CANDIDATES for _, c in d.candidates)


# ---------------------------------------------------------------------- smoke study
def _has_issue18_scores() -> bool:
    from landimg.experiment import config

    return "score_from_day" in {f.name for f in dataclasses.fields(config.ExperimentConfig)} and hasattr(
        config, "WORLDS"
    )


@pytest.mark.skipif(
    not _has_issue18_scores(),
    reason="needs experiment.score_from_day, experiment.world and the "
    "temporal scores of summary.json (issue 18 items 1 and 8)",
)
def test_smoke_study_end_to_end(tmp_path):
    root, docs = tmp_path / "study", tmp_path / "repo"
    (docs / "docs").mkdir(parents=True)
    (docs / "docs" / "validation.md").write_text("# Validation\n\ntext before\n")
    (docs / "README.md").write_text("# README\n")
    cmd = [
        sys.executable,
        str(BENCH / "study.py"),
        "--quick",
        "--root",
        str(root),
        "--write-docs",
        "--docs-root",
        str(docs),
        "--nice",
        "0",
    ]
    env = dict(subprocess_env(), LANDIMG_VENV=str(Path(sys.executable).parents[1]))
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    runs = json.loads((root / "study.json").read_text())["runs"]
    assert len(runs) == 11 and all(e["status"] == "ok" for e in runs.values())
    reg = json.loads((root / "preregistration.json").read_text())
    assert reg["registered_unix"] <= min(
        e["started_unix"] for e in runs.values()
    )  # registered before any run
    assert reg["design"]["primary"] == "methods.<m>.0-10cm.background.ubrmse_time"
    sel = json.loads((root / "selection.json").read_text())
    assert sel["selected"]["default-tiny"]["point_letkf"] in ("r250", "r250-bias")
    eq = json.loads((root / "equal_cpu.json").read_text())["default-tiny"]
    assert eq["method"] in ("point_letkf", "curvelet_enkf") and 2 <= eq["members"] <= 16
    val = (docs / "docs" / "validation.md").read_text()
    assert (
        val.startswith("# Validation\n\ntext before") and "<!-- study18:begin -->" in val and "| G1:" in val
    )
    assert "point_letkf - openloop (2)" in val and "Equal analysis CPU" in val
    assert "| G2:" in (docs / "README.md").read_text()
    # resumed: every run read back, none started, the same report
    again = subprocess.run(
        [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0 and "[study] start" not in again.stdout
    assert again.stdout.split("Primary score", 1)[1] == first.stdout.split("Primary score", 1)[1]
    # without --resume a study root is refused; a changed design is refused
    assert subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60).returncode == 2
    reg["design"]["days"] = 7
    (root / "preregistration.json").write_text(json.dumps(reg))
    bad = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "differs from" in bad.stderr and "days" in bad.stderr
    shutil.rmtree(root)
