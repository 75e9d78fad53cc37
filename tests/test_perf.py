"""Issue 15, the parts that are correctness, not speed: what the fast paths must still guarantee.

- A no-op imports no HTTP stack, template engine, schema validator, sqlite-utils or filelock, nor
  click: the fast path (vidbatch.cli.fast, tests/test_noop.py) answers it before click loads.
- A task id is committed (visible to another connection) by the time the runner says it was
  submitted, and create answers are never queued behind other results.
- The store's plain-SQL writes return what a fresh read gives.
- The outputs index is written in batches from memory without losing another writer's entries.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vidbatch import outputs_index, project
from vidbatch.events import EventKind
from vidbatch.plan import plan_jobs
from vidbatch.policy import Call
from vidbatch.runner import RunOptions, Runner, _Inbox, _Render, _Result
from vidbatch.errors import StateError
from vidbatch.state import JOURNAL_NAME, ErrorInfo, RenderState, Store

from .fakes import FakeClient, FakeClock
from .helpers import cli, t2v_manifest

ROOT = Path(__file__).resolve().parent.parent
#: What a no-op must not import: the HTTP stack, the template engine, the schema validator,
#: sqlite-utils (only migrations need it), filelock (the run lock is a plain flock), and click and
#: the library's plan and store (the no-op fast path reads the job cache and the state itself).
HEAVY = ("requests", "urllib3", "jinja2", "jsonschema", "sqlite_utils", "filelock", "click", "vidbatch.plan", "vidbatch.state")


def _imported_by(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[str], str]:
    """Run the CLI in a child; (exit code, the HEAVY modules it imported, stderr)."""
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr))\n"
        "import json\nfrom vidbatch.cli import main\n"
        f"sys.argv = ['vidbatch'] + {args!r}\nmain()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    line = next((x for x in proc.stderr.splitlines() if x.startswith("HEAVY ")), "HEAVY null")
    return proc.returncode, json.loads(line.split(" ", 1)[1]) or [], proc.stderr


def test_a_no_op_run_and_plan_check_import_nothing_heavy(tmp_path, sim_env, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the job cache is made for one working folder
    shots = tmp_path / "shots.toml"
    shots.write_text(t2v_manifest({"a": "A red fox", "b": "A blue fox"}))
    env = {"MINIMAX_API_HOST": sim_env.base_url, "MINIMAX_API_KEY": os.environ["MINIMAX_API_KEY"]}
    first = cli("run", shots, "--poll-interval", "0", "--rpm", "60000")
    assert first.exit_code == 0, first.output
    calls = sum(sim_env.sim.calls.values())
    code, heavy, err = _imported_by(["run", str(shots), "--poll-interval", "0", "--rpm", "60000"], tmp_path, env)
    assert code == 0, err
    assert "all 2 jobs done" in err
    assert heavy == [], f"a no-op run imported {heavy}"
    code, heavy, err = _imported_by(["plan", "--check", str(shots)], tmp_path, env)
    assert code == 0, err
    assert heavy == [], f"plan --check imported {heavy}"
    assert sum(sim_env.sim.calls.values()) == calls, "a no-op makes no call"


def test_a_no_op_run_still_needs_a_key(tmp_path, sim_env, monkeypatch):
    """The client is made at its first call, but the key is checked at the start, as before."""
    shots = tmp_path / "shots.toml"
    shots.write_text(t2v_manifest({"a": "A red fox"}))
    assert cli("run", shots, "--poll-interval", "0", "--rpm", "60000").exit_code == 0
    monkeypatch.delenv("MINIMAX_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))  # no config file either
    result = cli("run", shots, "--poll-interval", "0")
    assert result.exit_code == 2 and "no MiniMax API key" in result.output, result.output


# --- the commit path ----------------------------------------------------------------------------


def test_create_answers_leave_the_inbox_before_results_that_came_first():
    inbox = _Inbox()
    renders = [_Render(f"k{i}", []) for i in range(4)]
    inbox.put_result(_Result(Call.POLL, renders[0], None, None))
    inbox.put_result(_Result(Call.DOWNLOAD, renders[1], None, None))
    inbox.put_result(_Result(Call.CREATE, renders[2], "task-2", None))
    inbox.put_result(_Result(Call.CREATE, renders[3], "task-3", None))
    order = []
    while (item := inbox.take_result()) is not None:
        order.append(item.render.key)
    assert order == ["k2", "k3", "k0", "k1"], "task ids first, in the order they came; then the rest in order"
    assert inbox.empty()


def test_a_task_id_is_durable_when_the_runner_says_it_was_submitted(tmp_path):
    """A crash right after an accepted create finds its task id: at the SUBMITTED event the next
    run would read it, committed or in the task-id journal (the commit of the scheduler's turn
    may come after the event; the journal line came before it)."""
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest({"a": "Shot A", "b": "Shot B", "c": "Shot C"}))
    store = Store(tmp_path / ".vidbatch")
    seen: dict[str, str | None] = {}

    def on_event(e):
        if e.kind == EventKind.SUBMITTED:
            other = sqlite3.connect(tmp_path / ".vidbatch" / "state.db")
            try:
                row = other.execute("select task_id, state from renders where key = ?", [e.key]).fetchone()
            finally:
                other.close()
            journaled = {json.loads(line)["task_id"] for line in (tmp_path / ".vidbatch" / JOURNAL_NAME).read_text().splitlines()}
            committed = row[0] if row and row[1] == "running" else None
            seen[e.data["task_id"]] = committed or (e.data["task_id"] if e.data["task_id"] in journaled else None)

    clock = FakeClock()
    client = FakeClient(clock).script("query", "Processing")
    ws = project.load([manifest])
    runner = Runner(store, client, RunOptions(poll_interval=5.0, rpm=60.0, concurrency=3), on_event, clock=clock, workers=0)
    assert runner.run(plan_jobs(ws.manifests, store)).exit_code == 0
    assert seen == {"task-1": "task-1", "task-2": "task-2", "task-3": "task-3"}
    assert {store.get(pj.job.key).task_id for pj in plan_jobs(ws.manifests, store).jobs} == set(seen), "and committed by the end"


# --- the store's write path ---------------------------------------------------------------------


def _seen(store: Store, key: str) -> None:
    store.record_seen(key, {"model": "MiniMax-Hailuo-02", "prompt": "x"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="x", name="shot", manifest="/m.toml")


def test_every_write_returns_what_a_fresh_read_gives(tmp_path):
    store = Store(tmp_path)
    key = "vb1:" + "a" * 64
    _seen(store, key)
    assert store.get(key) == store.record_seen(key, {}, model=None, mode=None, duration=None, resolution=None, prompt=None, name="shot", manifest="/m.toml")
    steps = [
        lambda: store.record_intent(key, name="shot", reason="new"),
        lambda: store.record_uncertain(key, ErrorInfo("cut off", call="create")),
        lambda: store.record_intent(key, name="shot"),
        lambda: store.record_submitted(key, "task-1", name="shot"),
        lambda: store.record_rendered(key, "file-1", width=1280, height=720, name="shot"),
        lambda: store.record_downloaded(key, tmp_path / "shot.mp4", size=3, sha256="b" * 64, mtime_ns=5, name="shot", manifest="/m.toml"),
        lambda: store.record_gone(key, ErrorInfo("expired", code=2013, call="retrieve", http_status=200, status_msg="invalid params", trace_id="t")),
        lambda: store.record_intent(key, name="shot", reason="--force"),
        lambda: store.record_not_submitted(key, ErrorInfo("refused", code=1004)),
        lambda: store.record_intent(key, name="shot"),
        lambda: store.record_failed(key, ErrorInfo("bad prompt", code=1026, call="create")),
    ]
    for step in steps:
        returned = step()
        assert returned == store.get(key)
    assert store.get(key).state is RenderState.FAILED and store.get(key).attempts == 4
    assert [e.event for e in store.events(key)] == [
        "seen", "submit", "uncertain", "submit", "submitted", "rendered", "downloaded", "gone", "submit", "not_submitted", "submit", "failed",
    ]
    assert store.output(tmp_path / "shot.mp4").sha256 == "b" * 64 and [v.sha256 for v in store.videos(key)] == ["b" * 64]


def test_an_illegal_transition_writes_nothing(tmp_path):
    store = Store(tmp_path)
    key = "vb1:" + "c" * 64
    _seen(store, key)
    before = (store.get(key), store.events(key))
    with pytest.raises(StateError, match="cannot go from new to rendered"):
        store.record_rendered(key, "file-1")
    with pytest.raises(StateError, match="cannot go from new to running"):
        store.record_submitted(key, "task-9")
    assert (store.get(key), store.events(key)) == before


def test_a_status_is_written_only_when_it_changes(tmp_path):
    store = Store(tmp_path)
    key = "vb1:" + "e" * 64
    _seen(store, key)
    store.record_intent(key)
    store.record_submitted(key, "task-1")
    for status in ["Preparing", "Preparing", "Queueing", "Queueing", "Processing"]:
        store.record_status(key, status)
    assert [e.detail["status"] for e in store.events(key) if e.event == "status"] == ["Preparing", "Queueing", "Processing"]


def test_a_fresh_store_needs_no_sqlite_utils_once_migrated(tmp_path):
    Store(tmp_path).close()
    code = (
        "import sys\nfrom pathlib import Path\nfrom vidbatch.state import Store\n"
        f"s = Store(Path({str(tmp_path)!r}))\ns.counts()\ns.close()\n"
        f"r = Store(Path({str(tmp_path)!r}), readonly=True)\nr.counts()\n"
        "print('sqlite_utils' in sys.modules, 'filelock' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- the outputs index, in batches --------------------------------------------------------------


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(writer: outputs_index.Writer, path: Path, key: str) -> None:
    writer.record(path, key=key, sha256="s" * 64, size=1, task_id="t", file_id="f", state_dir=path.parent / ".vidbatch")


def test_the_index_writer_writes_the_first_entry_at_once_then_once_per_interval(tmp_path):
    clock = Ticks()
    writer = outputs_index.Writer(interval=1.0, clock=clock)
    _record(writer, tmp_path / "a.mp4", "ka")
    assert set(outputs_index.read_index(tmp_path)) == {"a.mp4"}, "the first entry is written at once"
    clock.now = 0.5
    _record(writer, tmp_path / "b.mp4", "kb")
    _record(writer, tmp_path / "c.mp4", "kc")
    assert set(outputs_index.read_index(tmp_path)) == {"a.mp4"}, "then gathered for the interval"
    clock.now = 1.0
    writer.flush_due()
    assert set(outputs_index.read_index(tmp_path)) == {"a.mp4", "b.mp4", "c.mp4"}
    clock.now = 1.1
    _record(writer, tmp_path / "sub" / "d.mp4", "kd")
    writer.flush()
    assert set(outputs_index.read_index(tmp_path / "sub")) == {"d.mp4"}
    assert outputs_index.read_index(tmp_path)["b.mp4"].key == "kb"


def test_the_index_writer_waits_longer_when_its_writes_take_long(tmp_path):
    clock = Ticks()
    writer = outputs_index.Writer(interval=1.0, clock=clock)
    real_write = writer._write

    def slow_write(pending):
        real_write(pending)
        clock.now += 0.2  # a big index: each write takes 0.2 s

    writer._write = slow_write  # type: ignore[method-assign]
    _record(writer, tmp_path / "a.mp4", "ka")  # written at once, at 0 (done at 0.2)
    clock.now = 2.0
    _record(writer, tmp_path / "b.mp4", "kb")
    assert set(outputs_index.read_index(tmp_path)) == {"a.mp4"}, "20 x 0.2 s: not before 4 s"
    clock.now = 4.0
    writer.flush_due()
    assert set(outputs_index.read_index(tmp_path)) == {"a.mp4", "b.mp4"}


def test_the_index_writer_keeps_what_another_writer_added_meanwhile(tmp_path):
    clock = Ticks()
    writer = outputs_index.Writer(interval=1.0, clock=clock)
    _record(writer, tmp_path / "a.mp4", "ka")
    outputs_index.record(tmp_path / "other.mp4", key="ko", sha256="o" * 64, size=2, task_id=None, file_id=None, state_dir=tmp_path / "elsewhere")
    clock.now = 2.0
    _record(writer, tmp_path / "b.mp4", "kb")
    index = outputs_index.read_index(tmp_path)
    assert set(index) == {"a.mp4", "b.mp4", "other.mp4"} and index["other.mp4"].key == "ko"
    text = outputs_index.index_path(tmp_path).read_text()
    assert json.loads(text)["vidbatch_index"] == outputs_index.FORMAT and text.count("\n") == 5, "one line per file"


def test_an_index_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "blocked").write_text("a file where the folder should be")
    writer = outputs_index.Writer()
    _record(writer, tmp_path / "blocked" / "a.mp4", "ka")
    assert "could not update the outputs index" in caplog.text
