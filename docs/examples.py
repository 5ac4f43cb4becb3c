"""The example numbers the docs quote, produced by commands and checked by the tests (docs that cannot go stale).

    python docs/examples.py --run all          # run every example (minutes), store its output, rewrite the docs
    python docs/examples.py --run embedding    # one example (default, demo, embedding)
    python docs/examples.py --write            # rewrite the docs' blocks from the stored outputs
    python docs/examples.py --check            # exit 1 naming what is not current (cheap)
    python docs/examples.py --check --probes   # also rerun the probes (a few seconds each)

Each example is a command whose output a doc quotes between ``<!-- example:NAME:begin -->`` and
``<!-- example:NAME:end -->``: the default experiment (README), the demo of product files (docs/data.md),
the outside driver (docs/embedding.md, whose listing of ``docs/embedding_example.py`` is a block too).
``--run`` runs the command and stores in ``docs/examples/NAME.json`` what it printed, the configuration it
ran (resolved TOML), and the output of its *probe*: the same configuration made cheap (one or two days),
whose printed numbers move whenever the code's numbers move. ``--check`` (tests/test_doc_examples.py)
verifies that every block is what the stored output renders, that the stored configuration is today's
(changing a default fails it), and with ``--probes`` that each probe still prints what it printed when the
example ran (a code change that moves the numbers fails it). The fix is always the command that failed
check prints: ``python docs/examples.py --run NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "examples"
PY = sys.executable
MPIRUN = str(Path(sys.executable).parent / "mpirun")


sys.path.append(str(ROOT / "bench"))  # for _trees (appended: no bench module shadows another)
from _trees import landimg_parent  # noqa: E402 -- bench/ is not a package

LANDIMG = landimg_parent()


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = LANDIMG + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, env=_env(), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"examples: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def table(text: str, wall: bool = True) -> str:
    """The end-of-run table of ``python -m landimg.cycle`` in ``text`` (its output, or
    ``summary.format_table``), from its heading lines; ``wall=False`` leaves out the wall time (a probe's
    table is compared across runs)."""
    lines = text.strip("\n").splitlines()  # (the heading line starts with spaces)
    start = next(i for i, ln in enumerate(lines) if ln.startswith("method "))
    start -= start > 0 and "analysis" in lines[start - 1]  # the heading above the columns
    out = "\n".join(lines[start:]).rstrip()
    return out if wall else re.sub(r"wall [\d.]+ s on \d+ rank\(s\); ", "", out)


def _config(args: list[str]) -> str:
    """The resolved configuration (TOML) of ``--config``/``--set`` arguments, as the cycle would run it."""
    sys.path.insert(0, LANDIMG)
    from landimg.experiment.config import load_config, to_toml

    config = args[args.index("--config") + 1] if "--config" in args else None
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    return to_toml(load_config(config, sets))


# ---------------------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    """A command whose output a doc quotes.

    Attributes
    ----------
    name : str
    doc : Path
        The file holding the block ``<!-- example:NAME:begin/end -->``.
    run : callable
        ``run(workdir) -> dict`` runs the example and returns what the block needs (JSON).
    probe : callable
        ``probe(workdir) -> str``: a cheap run whose text changes when the example's numbers do.
    config_args : callable
        The cycle arguments whose resolved configuration the example ran (for the check of defaults).
    render : callable
        ``render(record) -> str``: the block's text from the stored record.
    """

    name: str
    doc: Path
    run: Callable[[Path], dict[str, Any]]
    probe: Callable[[Path], str]
    config_args: Callable[[], list[str]]
    render: Callable[[dict[str, Any]], str]


# the default experiment: what `bash ci/run.sh` prints (README) ----------------------------------------
def _default_run(work: Path) -> dict[str, Any]:
    out = work / "default"
    stdout = _run([MPIRUN, "-n", "2", PY, "-m", "mpi4py", "-m", "landimg.cycle", "--out", str(out), "--quiet"])
    figures = ROOT / "docs" / "figures"
    shutil.copyfile(out / "plots" / "metrics.png", figures / "default_metrics.png")
    shutil.copyfile(out / "plots" / "maps_0-10cm.png", figures / "default_maps_0-10cm.png")
    summary = json.loads((out / "summary.json").read_text())
    return {"table": table(stdout), "methods": summary["methods"], "timing": summary["timing_seconds"],
            "wall": summary["wall_seconds"], "ranks": summary["ranks"]}  # fmt: skip


_PROBE_SETS = ["experiment.days=1", "experiment.spinup_days=2", "output.plots=false"]


def _default_probe(work: Path) -> str:
    args = [a for s in _PROBE_SETS for a in ("--set", s)]
    return table(_run([PY, "-m", "landimg.cycle", "--out", str(work / "probe"), "--quiet", *args]), wall=False)


def _default_render(r: dict[str, Any]) -> str:
    m, t = r["methods"], r["timing"]

    def s(method: str, key: str, layer: str = "0-10cm") -> float:
        return m[method][layer][key]

    def bg(method: str) -> float:
        return m[method]["0-10cm"]["background"]["ubrmse_time"]

    above = all(bg(k) > bg("openloop") for k in ("point_enkf", "point_letkf", "curvelet_enkf"))
    return f"""```
{r["table"]}
```

In this world the filters' temporal ubRMSE is {"*above*" if above else "not all above"} the open loop's
(0-10 cm background: open loop {bg("openloop"):.4f}, point EnKF {bg("point_enkf"):.4f}, LETKF
{bg("point_letkf"):.4f}, curvelet EnKF {bg("curvelet_enkf"):.4f} m3/m3). Most of the filters' excess came from
their deep-layer increments: an adaptive inflation of every layer over-dispersed the 40-100 cm ensemble, whose
increments were then too large for its errors and fed noise back to the surface forecast; inflating only the
observed layers (`inflation_layers = "observed"`, the default since) removed most of it, while the revisit
cycle (a correction every 2-3 days) explains almost none of it (docs/validation.md, "Temporal skill of the
filters"). The spatial scores, dominated by the static pattern, do not show this.

![Daily metrics of the default experiment](docs/figures/default_metrics.png)

*Daily spatial correlation, ubRMSE and bias per layer (`runs/default-*/plots/metrics.png` of `bash ci/run.sh`).*

The curvelet EnKF takes the 0-10 cm spatial correlation from {s("openloop", "spatial_corr"):.2f} (open loop) to
{s("curvelet_enkf", "spatial_corr"):.2f} (LETKF: {s("point_letkf", "spatial_corr"):.2f}; point EnKF:
{s("point_enkf", "spatial_corr"):.2f}) and the spatial ubRMSE from {s("openloop", "ubrmse_spatial"):.3f} to
{s("curvelet_enkf", "ubrmse_spatial"):.3f} m3/m3 in this 20-day run, which includes the first days of assimilation;
the deeper layers change through the model and the analysis' ensemble cross-covariances between layers (10-40 cm: open loop
{s("openloop", "spatial_corr", "10-40cm"):.2f}, curvelet EnKF {s("curvelet_enkf", "spatial_corr", "10-40cm"):.2f}).
`summary.json` also holds the observation-space diagnostics (O-B, O-A, spread at the observations, rank
histograms; plots `spread_error.png`, `rank_histograms.png`) and a timing breakdown (this run, on
{r["ranks"]} ranks of the 2-core machine: {t["model"]:.0f} s of {r["wall"]:.0f} s in the column model, spin-up
included; {t["forcing"]:.0f} s weather, {t["perturbations"]:.0f} s perturbations, {t["analysis"]:.0f} s analyses,
{t["plots"]:.0f} s plots; `timing_seconds`, and the same in CPU seconds in `timing_cpu_seconds`)."""


# the demo of product files (docs/data.md) ----------------------------------------------------------------
def _demo_dir(work: Path) -> Path:
    demo = work / "D"
    if not demo.exists():
        _run([PY, "-m", "landimg.data", "demo", "--out", str(demo)])
    return demo


def _demo_run(work: Path) -> dict[str, Any]:
    demo = _demo_dir(work)
    stdout = _run([PY, "-m", "landimg.cycle", "--config", str(demo / "config.toml"), "--out", str(work / "R"),
                   "--quiet"])  # fmt: skip
    return {"table": table(stdout, wall=False)}


#: The demo's probe is the run tests/test_data_cycle.py makes anyway (6-hourly analyses): it compares its
#: table with the stored one, at no extra cost.
DEMO_PROBE_SETS = ["analysis.interval_hours=6"]


def _demo_probe(work: Path) -> str:
    demo = _demo_dir(work)
    cmd = [PY, "-m", "landimg.cycle", "--config", str(demo / "config.toml"), "--out", str(work / "probe"),
           "--quiet", *[a for s in DEMO_PROBE_SETS for a in ("--set", s)]]  # fmt: skip
    return table(_run(cmd), wall=False)


def _demo_config_args() -> list[str]:
    """The demo's configuration, with its files where a fresh ``demo`` writes them (paths do not matter)."""
    sys.path.insert(0, LANDIMG)
    from landimg.data.demo import demo_config

    text = demo_config("D", dirs={k: f"D/{k}" for k in ("smap", "gldas", "ismn")})
    path = Path(tempfile.mkdtemp(prefix="landimg-examples-")) / "config.toml"
    path.write_text(text)
    return ["--config", str(path)]


def _demo_render(r: dict[str, Any]) -> str:
    return f"```\n{r['table']}\n```"


# the outside driver (docs/embedding.md) -------------------------------------------------------------------
_EMBEDDING = ROOT / "docs" / "embedding_example.py"


def _embedding_run(work: Path) -> dict[str, Any]:
    return {"output": _run([PY, str(_EMBEDDING)]).strip(), "source": _EMBEDDING.read_text()}


def _embedding_probe(work: Path) -> str:
    return _run([PY, str(_EMBEDDING)]).strip()  # the example is small: its probe is itself


def _embedding_render(r: dict[str, Any]) -> str:
    first = re.search(r"n_obs=(\d+) nan_masked=(\d+).*?mean abs error ([\d.]+) -> ([\d.]+)", r["output"])
    n_obs, masked, before, after = first.groups() if first else ("?", "?", "?", "?")
    return f"""It printed (`.venv/bin/python docs/embedding_example.py`; the same on any number of ranks):

```
{r["output"]}
```

For each of the two analyses: {n_obs} observations used and {masked} land cells masked by the swath gap,
the increment rms, and the mean absolute error of the 0-5 cm ensemble mean against the nature run
({before} -> {after} m3/m3 at the first analysis); then the restart check."""


def _embedding_source_render(r: dict[str, Any]) -> str:
    return f"```python\n{_EMBEDDING.read_text().rstrip()}\n```"


EXAMPLES: dict[str, Example] = {
    "default": Example("default", ROOT / "README.md", _default_run, _default_probe, lambda: [], _default_render),
    "demo": Example("demo", ROOT / "docs" / "data.md", _demo_run, _demo_probe, _demo_config_args, _demo_render),
    "embedding": Example("embedding", ROOT / "docs" / "embedding.md", _embedding_run, _embedding_probe,
                         lambda: [], _embedding_render),
}  # fmt: skip
#: Blocks rendered from the sources themselves (no run): name -> (doc, render).
LISTINGS: dict[str, tuple[Path, Callable[[dict[str, Any]], str]]] = {
    "embedding-source": (ROOT / "docs" / "embedding.md", _embedding_source_render),
}


# ---------------------------------------------------------------------------------------------- blocks
def _markers(name: str) -> tuple[str, str]:
    return f"<!-- example:{name}:begin -->", f"<!-- example:{name}:end -->"


def read_block(doc: Path, name: str) -> str | None:
    """The text between the markers of ``name`` in ``doc`` (None when absent)."""
    begin, end = _markers(name)
    text = doc.read_text()
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def write_block(doc: Path, name: str, body: str) -> None:
    """Replace the block ``name`` of ``doc`` (it must have the markers)."""
    begin, end = _markers(name)
    text = doc.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"examples: {doc} has no {begin} ... {end} block")
    pre, rest = text.split(begin, 1)
    doc.write_text(f"{pre}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}")


def load(name: str) -> dict[str, Any]:
    """The stored record of example ``name``."""
    return json.loads((STORE / f"{name}.json").read_text())


def run(name: str) -> None:
    """Run example ``name`` and its probe, store the record, rewrite its block."""
    ex = EXAMPLES[name]
    with tempfile.TemporaryDirectory(prefix=f"landimg-example-{name}-") as tmp:
        work = Path(tmp)
        record = {"name": name, "config": _config(ex.config_args()), "result": ex.run(work),
                  "probe": ex.probe(work)}  # fmt: skip
    STORE.mkdir(exist_ok=True)
    (STORE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    write_block(ex.doc, name, ex.render(record["result"]))


def write_all() -> None:
    for name, ex in EXAMPLES.items():
        write_block(ex.doc, name, ex.render(load(name)["result"]))
    for name, (doc, render) in LISTINGS.items():
        write_block(doc, name, render({}))


def check(probes: bool = False) -> list[str]:
    """What is not current, one line each with the command that fixes it (empty: all current)."""
    problems = []
    for name, ex in EXAMPLES.items():
        fix = f"run: python docs/examples.py --run {name}"
        try:
            record = load(name)
        except FileNotFoundError:
            problems.append(f"{name}: no stored output docs/examples/{name}.json; {fix}")
            continue
        if read_block(ex.doc, name) != ex.render(record["result"]).strip("\n"):
            problems.append(f"{name}: the block in {ex.doc.relative_to(ROOT)} is not what the stored output "
                            f"renders; run: python docs/examples.py --write")  # fmt: skip
        if record["config"] != _config(ex.config_args()):
            problems.append(f"{name}: the configuration changed since the example ran (a default moved); {fix}")
        if probes:
            with tempfile.TemporaryDirectory(prefix=f"landimg-probe-{name}-") as tmp:
                if ex.probe(Path(tmp)) != record["probe"]:
                    problems.append(f"{name}: the probe prints other numbers (the code's results moved); {fix}")
    for name, (doc, render) in LISTINGS.items():
        if read_block(doc, name) != render({}).strip("\n"):
            problems.append(f"{name}: {doc.relative_to(ROOT)} does not list the current source; "
                            "run: python docs/examples.py --write")  # fmt: skip
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", nargs="+", metavar="NAME", help=f"all, or some of {', '.join(EXAMPLES)}")
    ap.add_argument("--write", action="store_true", help="rewrite the blocks from the stored outputs")
    ap.add_argument("--check", action="store_true", help="exit 1 if a block is not current")
    ap.add_argument("--probes", action="store_true", help="with --check: rerun the probes too")
    a = ap.parse_args(argv)
    if a.run:
        for name in EXAMPLES if a.run == ["all"] else a.run:
            run(name)
        write_all()
    if a.write:
        write_all()
    if a.check:
        problems = check(a.probes)
        for p in problems:
            print(f"examples: {p}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
