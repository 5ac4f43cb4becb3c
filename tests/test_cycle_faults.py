"""Faults: signals and failures on one rank (no hang, one line), kills during cycling and the final write
(resume bitwise), corrupt restarts, output directories left by failed runs (docs/reliability.md)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _support import MPIRUN, restart_day, subprocess_env
from landimg.cycle import main
from landimg.experiment.restart import day_dir, has_restart, restart_days
from test_cycle_ranks import SMALL, assert_bitwise

SCRIPTS = Path(__file__).parent / "mpi_scripts"
pytestmark = pytest.mark.slow  # every test runs the cycle
_no_mpirun = pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun not found next to sys.executable")


def needs_mpi(test):
    """The test starts mpirun: marked ``mpi``, skipped without an mpirun."""
    return pytest.mark.mpi(_no_mpirun(test))


def _args(out, extra=()):
    args = ["--out", str(out), "--quiet"]
    for s in (*SMALL, *extra):
        args += ["--set", s]
    return args


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_args(out)) == 0
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _rank_pids(mpirun_pid: int, n: int, timeout: float = 30) -> dict[int, int]:
    """rank -> pid of the Python processes mpirun started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ranks = {}
        for pid in _descendants(mpirun_pid):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            rank = [e for e in env if e.startswith(b"PMI_RANK=")]
            if rank and b"python" in cmd:
                ranks[int(rank[0].split(b"=")[1])] = pid
        if len(ranks) == n:
            return ranks
        time.sleep(0.1)
    raise AssertionError("rank processes not found")


def _day(out: Path) -> int:
    return restart_day(out)


def _start(n: int, args: list[str], script: Path | None = None, mpi4py: bool = False) -> subprocess.Popen:
    prog = [str(script)] if script else [*(["-m", "mpi4py"] if mpi4py else []), "-m", "landimg.cycle"]
    cmd = [str(MPIRUN), "-n", str(n), sys.executable, *prog, *args]
    return subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _finish(proc: subprocess.Popen, within: float) -> tuple[int, str, float]:
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the run did not end within {within} s (a rank is hanging)")
    return proc.returncode, err, time.monotonic() - t0


def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("landimg.cycle:")]


@needs_mpi
@pytest.mark.parametrize("sig, rank", [(signal.SIGINT, 1), (signal.SIGTERM, 0)])
def test_signal_to_one_rank_stops_every_rank_at_a_safe_point_and_resumes_bitwise(
    reference, tmp_path, sig, rank
):
    out = tmp_path / "run"
    proc = _start(2, _args(out))  # plain mpirun, no -m mpi4py
    pids = _rank_pids(proc.pid, 2)
    deadline = time.monotonic() + 120
    while _day(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pids[rank], sig)
    code, err, took = _finish(proc, within=30)
    if code == 0:
        pytest.skip("the run finished before the signal arrived")
    lines = _lines(err)
    name = signal.Signals(sig).name
    assert code == 128 + sig and len(lines) == 1, err[-2000:]
    assert f"stopped by {name} after day" in lines[0] and f"--out {out} --resume" in lines[0]
    assert "Traceback" not in err and took < 30
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)


@needs_mpi
def test_sigint_during_spinup_ends_at_once_and_the_directory_is_reusable(tmp_path):
    out = tmp_path / "run"
    proc = _start(2, [a for a in _args(out, ["experiment.spinup_days=5000"]) if a != "--quiet"])
    pids = _rank_pids(proc.pid, 2)
    while "rank(s)" not in proc.stderr.readline():  # the set-up is done: the spin-up starts
        assert proc.poll() is None
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGINT)
    code, err, took = _finish(proc, within=30)
    lines = _lines(err)
    assert code != 0 and len(lines) == 1 and "interrupted by SIGINT; nothing was kept" in lines[0], err[
        -2000:
    ]
    assert took < 30 and not has_restart(out)
    from landimg.experiment.output import prepare_out_dir

    prepare_out_dir(out, resume=False, create=False)  # usable for the next run (absent, or left empty)


@needs_mpi
def test_an_exception_on_one_rank_ends_all_ranks_with_one_line_and_a_resumable_restart(reference, tmp_path):
    out = tmp_path / "run"
    proc = _start(2, _args(out), script=SCRIPTS / "fail_on_rank.py")
    code, err, _ = _finish(proc, within=60)
    lines = _lines(err)
    assert code != 0 and len(lines) == 1, err[-2000:]
    assert "error on rank 1: RuntimeError: deliberate failure on day 2" in lines[0]
    assert _day(out) == 1
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)


def _killed_at_random(out: Path, extra: list[str] = (), within: float = 1.0) -> int:
    """Start a run and SIGKILL it ``uniform(0, within)`` s after its first restart appears."""
    cmd = [sys.executable, "-m", "landimg.cycle", *_args(out, extra)]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _day(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, within))  # anywhere in the following day(s), writes included
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def test_kill_at_a_random_point_then_resume_is_bitwise(reference, tmp_path):
    within = 1.0
    for attempt in range(4):  # a faster run may finish before the kill: try again with a shorter delay
        out = tmp_path / f"run{attempt}"
        _killed_at_random(out, within=within)
        if not (out / "summary.json").exists():
            break
        within /= 3.0
    else:
        pytest.skip("the run finished before the kill four times")
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)
    assert not list(out.rglob(".*.tmp")) and restart_days(out) == [3]  # the previous restarts removed
    assert sorted(p.name for p in out.iterdir()) == ["analysis.nc", "metrics.nc", "restart", "summary.json"]


@pytest.mark.parametrize("where", ["summary.json", "analysis.nc"])
def test_kill_during_the_final_write_then_resume_is_bitwise(reference, tmp_path, where):
    """Killed while summary.json is written, or while the last day is appended to analysis.nc (after the
    twin holds it, before it replaces the file): the files are whole, and the resumed run ends bitwise."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "kill_in_final_write.py"), where, *_args(out)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "summary.json").exists()
    if where == "summary.json":
        assert list(out.glob(".summary.json.*.tmp")) and restart_day(out) == 3
    else:  # the visible file still holds days 1-2, whole; the restart is day 2's
        import netCDF4

        with netCDF4.Dataset(out / "analysis.nc") as ds:
            assert len(ds.dimensions["time"]) == 2
        assert restart_day(out) == 2
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)
    assert not list(out.rglob(".*.tmp")) and not list(out.glob(".*.nc.*"))


def test_corrupt_restart_is_one_line_naming_the_last_good_day(reference, tmp_path, capsys):
    """A truncated manifest, a missing shard, a corrupt shard (SHA-256): one line naming the file and the
    previous restart, exit 2; removing the bad restart continues from the previous one, bitwise."""
    from landimg.cycle import run
    from landimg.experiment.config import load_config

    out = tmp_path / "run"
    run(load_config(None, SMALL), out, progress=False, stop_after_days=2)
    assert restart_days(out) == [1, 2]
    bad = day_dir(out, 2)
    manifest = bad / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])  # truncated
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "Traceback" not in err
    assert f"{manifest} is corrupt (JSONDecodeError" in err
    assert f"last good day 1 is in {day_dir(out, 1)}: remove {bad} to continue from there" in err
    manifest.write_text(text)
    shard = bad / "shard-00000.npz"
    good = shard.read_bytes()
    shard.unlink()
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"landimg.cycle: error: restart shard {shard} is missing; last good day 1 is in {day_dir(out, 1)}: "
        f"remove {bad} to continue from there"
    ]
    shard.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])  # one bit flipped: same size
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"landimg.cycle: error: restart shard {shard} is corrupt (its SHA-256 differs from the manifest's); "
        f"last good day 1 is in {day_dir(out, 1)}: remove {bad} to continue from there"
    ]
    import shutil

    shutil.rmtree(bad)  # what the message says to do
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)


def test_a_restart_of_an_older_schema_is_refused_naming_both(tmp_path, capsys):
    """A schema-1 restart (restart.npz) and a manifest of another schema: one line naming both versions."""
    import json

    from landimg.cycle import run
    from landimg.experiment.config import load_config
    from landimg.experiment.restart import save_restart

    out = tmp_path / "old"
    (out / "restart").mkdir(parents=True)
    save_restart(out / "restart" / "restart.npz", {"day": 2, "config_toml": ""})
    assert main(["--out", str(out), "--resume", "--quiet"]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"landimg.cycle: error: restart {out / 'restart' / 'restart.npz'} is restart schema 1 (one file gathered "
        "on rank 0); this landimg reads restart schema 2 (sharded): finish that run with the landimg that wrote "
        "it, or start a new run"
    ]
    new = tmp_path / "new"
    run(load_config(None, SMALL), new, progress=False, stop_after_days=1)
    manifest = day_dir(new, 1) / "manifest.json"
    tree = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**tree, "schema": 3}))
    assert main(["--out", str(new), "--resume", "--quiet"]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"landimg.cycle: error: restart {day_dir(new, 1)} is restart schema 3; this landimg reads restart schema 2"
    ]


def test_resume_names_only_the_keys_the_user_changed(reference, tmp_path, capsys):
    args = ["--out", str(reference), "--resume", "--quiet", "--set", "experiment.days=10"]
    for s in SMALL:
        if not s.startswith("experiment.days"):
            args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--resume: experiment.days differ(s)" in err


@needs_mpi
def test_a_layout_the_ranks_cannot_make_is_one_line(tmp_path):
    """3 ranks are not G x 2; 3 member groups cannot share 2 members (exit 2, nothing written)."""
    out = tmp_path / "run"
    for extra, line in (
        (["parallel.column_blocks=2"], ("parallel.column_blocks = 2 does not divide the 3 ranks: run on G x 2 "
         "ranks (G member groups), or set column_blocks to a divisor of the rank count")),
        (["ensemble.members=2", "parallel.column_blocks=1"], ("3 ranks with parallel.column_blocks = 1 make 3 "
         "member groups for ensemble.members = 2: use more column blocks (or \"auto\")")),
    ):  # fmt: skip
        code, err, _ = _finish(_start(3, _args(out, extra)), within=60)
        assert code == 2 and _lines(err) == [f"landimg.cycle: error: {line}"], err[-2000:]
        assert not out.exists()


def test_the_restart_holds_no_image_and_no_gathered_state(reference):
    """Restart schema 2: the small daily record (no image of any day), every part in its shard; rank 0's
    record does not grow with the image size."""
    from landimg.experiment.history import History
    from landimg.shards import read_manifest

    man = read_manifest(day_dir(reference, 3))
    assert man["schema"] == 2 and man["day"] == 3 and man["outputs_days"] == 3
    assert man["layout"] == {"ranks": 1, "member_groups": 1, "column_blocks": 1}
    record = man["keys"]["whole"]
    assert {"record::n_obs", "record::station_obs", "record::point_enkf::scores"} <= set(record)
    assert not [k for k in record if k.startswith("record::") and k.rsplit("::", 1)[-1] in ("mean", "spread", "truth", "obs")]
    h = History.empty(3, 8, ["openloop"], 5)  # 3 days, 8 stations, 5 members: a few numbers per day
    assert max(np.asarray(v).size for v in h.to_tree().values()) <= 3 * 9  # days x (9 scores) at most


@needs_mpi
@pytest.mark.parametrize("mpi4py", [False, True])
def test_an_input_error_under_mpi_is_one_line_exactly_once(tmp_path, mpi4py):
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not netCDF")
    out = tmp_path / "run"
    for _ in range(3):  # the line used to be lost in some runs under -m mpi4py (another rank aborted first)
        proc = _start(2, _args(out, [f'obs.file="{bad}"']), mpi4py=mpi4py)
        code, err, _ = _finish(proc, within=60)
        assert code == 2 and len(_lines(err)) == 1 and "not a readable netCDF file" in err, err[-2000:]
        assert not out.exists()


def test_an_input_problem_found_mid_run_is_one_line_exit_2_and_resumable(
    reference, tmp_path, capsys, monkeypatch
):
    from landimg.experiment import setup

    calls = []
    real = setup.Observer.__call__

    def observe(self, *args):
        calls.append(1)
        if len(calls) > 2:  # the third analysis: day 2
            raise ValueError("obs.nc: sm record 1: 3 value(s) outside the plausible range")
        return real(self, *args)

    out = tmp_path / "run"
    monkeypatch.setattr(setup.Observer, "__call__", observe)
    assert main(_args(out)) == 2
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1 and "Traceback" not in err
    assert "obs.nc: sm record 1" in err and "found during day 2; the restart after day 1 is kept" in err
    monkeypatch.setattr(setup.Observer, "__call__", real)
    assert main(["--out", str(out), "--resume", "--quiet"]) == 0
    assert_bitwise(reference, out)
