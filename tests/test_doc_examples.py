"""The docs' example numbers are current (docs/examples.py): every block is what the stored output of its
command renders, the stored configuration is today's (a moved default fails here), and -- slow -- each
example's probe still prints what it printed when the example ran (moved numbers fail here). The message
names the command that regenerates them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _examples():
    spec = importlib.util.spec_from_file_location("doc_examples", DOCS / "examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_blocks_and_configurations_are_current():
    problems = _examples().check(probes=False)
    assert not problems, "\n".join(problems)


def test_a_moved_default_or_an_edited_block_is_caught(tmp_path, monkeypatch):
    ex = _examples()
    record = ex.load("default")
    store = tmp_path / "examples"
    store.mkdir()
    for name in ex.EXAMPLES:
        (store / f"{name}.json").write_text(json.dumps(ex.load(name)))
    monkeypatch.setattr(ex, "STORE", store)
    assert ex.check() == []
    moved = dict(record, config=record["config"].replace("days = 20", "days = 21"))
    (store / "default.json").write_text(json.dumps(moved))
    assert ex.check() == [
        "default: the configuration changed since the example ran (a default moved); "
        "run: python docs/examples.py --run default"
    ]
    edited = dict(record, result={**record["result"], "table": record["result"]["table"].replace("0.", "9.", 1)})
    (store / "default.json").write_text(json.dumps(edited))
    assert ex.check()[0].startswith("default: the block in README.md is not what the stored output renders")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "embedding"])
def test_the_probes_print_what_they_printed(name, tmp_path):
    ex = _examples()
    assert ex.EXAMPLES[name].probe(tmp_path) == ex.load(name)["probe"], (
        f"the numbers of the example {name!r} moved: run python docs/examples.py --run {name}"
    )
