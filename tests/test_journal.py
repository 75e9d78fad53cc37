"""The task-id journal (issue 15): a create's task id is written by the worker that got the answer,
before the scheduler commits it, so a crash in between leaves the render ``running``, not
``uncertain``, and nothing is paid twice. In-process runner (fake client, inline workers, real
SQLite), and the store alone."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time

import pytest

from vidbatch import errors
from vidbatch.events import EventKind, Stop
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.state import JOURNAL_NAME, ErrorInfo, RenderState, Store

from .conftest import TEST_KEY
from .helpers import cli, cli_subprocess, creates, t2v_manifest
from .test_runner_unit import Harness, run_until_the_disk_fills


class Crash(BaseException):
    """The process dying: nothing after it runs, no handler takes it."""


class CrashingStore(Store):
    """Dies in the middle of committing a task id (after the journal line, before the commit)."""

    def record_submitted(self, *a, **kw):
        raise Crash()


def journal_lines(h: Harness) -> list[str]:
    path = h.tmp_path / ".vidbatch" / JOURNAL_NAME
    return path.read_text().splitlines() if path.exists() else []


def test_a_task_id_answered_but_not_committed_is_running_at_the_next_start_and_not_paid_again(tmp_path):
    h = Harness(tmp_path, {"a": "A red fox"})
    store = CrashingStore(tmp_path / ".vidbatch")
    with pytest.raises(Crash):
        h.run(store)
    assert h.client.count("create") == 1
    assert store.get(h.plan().jobs[0].job.key).state is RenderState.SUBMITTING  # the database alone would say "uncertain"
    assert len(journal_lines(h)) == 1
    store.close()

    after = Store(tmp_path / ".vidbatch")  # the next process
    recovered_from_crash = after.mark_interrupted_submissions()
    assert recovered_from_crash == [], "nothing is left uncertain"
    record = after.get(h.plan().jobs[0].job.key)
    assert record.state is RenderState.RUNNING and record.task_id == "task-1"
    assert after.events(record.key)[-1].detail == {"task_id": "task-1", "from": "journal"}
    assert journal_lines(h) == [], "a replayed journal is emptied"

    h.store = after
    result = h.run()
    assert result.exit_code == 0
    assert h.client.count("create") == 1, "the journaled task is polled and downloaded, never created again"
    assert h.output("a").exists()


def test_without_a_journal_line_the_cut_off_create_stays_uncertain(tmp_path):
    h = Harness(tmp_path, {"a": "A red fox"})
    store = CrashingStore(tmp_path / ".vidbatch")
    with pytest.raises(Crash):
        h.run(store)
    (tmp_path / ".vidbatch" / JOURNAL_NAME).unlink()  # as if the process died before the line was written
    store.close()
    after = Store(tmp_path / ".vidbatch")
    assert [r.key for r in after.mark_interrupted_submissions()] == [h.plan().jobs[0].job.key]
    assert after.get(h.plan().jobs[0].job.key).state is RenderState.UNCERTAIN


def test_an_older_create_of_the_same_key_in_the_journal_is_not_taken_for_the_one_cut_off(tmp_path):
    store = Store(tmp_path / ".vidbatch")
    store.record_seen("k1", {"prompt": "p"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="p", name="a")
    first = store.record_intent("k1", name="a")
    store.journal.note("k1", first.attempts, "task-old")
    store.record_submitted("k1", "task-old", name="a")
    store.record_failed("k1", ErrorInfo("the render failed"), name="a")
    store.record_intent("k1", name="a")  # a second create of the key, cut off before any answer
    store.close()

    after = Store(tmp_path / ".vidbatch")
    marked = after.mark_interrupted_submissions()
    assert [r.key for r in marked] == ["k1"]
    assert after.get("k1").state is RenderState.UNCERTAIN and after.get("k1").task_id is None


def test_a_line_cut_off_by_the_crash_is_skipped_and_the_whole_ones_are_replayed(tmp_path):
    store = Store(tmp_path / ".vidbatch")
    for key in ("k1", "k2"):
        store.record_seen(key, {"prompt": key}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt=key, name=key)
        store.record_intent(key, name=key)
    store.journal.note("k1", 1, "task-1")
    store.close()
    with open(tmp_path / ".vidbatch" / JOURNAL_NAME, "ab") as f:
        f.write(b'{"key":"k2","attempt":1,"task_')  # the write the crash cut short

    after = Store(tmp_path / ".vidbatch")
    marked = after.mark_interrupted_submissions()
    assert after.get("k1").state is RenderState.RUNNING and after.get("k1").task_id == "task-1"
    assert [r.key for r in marked] == ["k2"] and after.get("k2").state is RenderState.UNCERTAIN


def test_after_a_normal_run_the_journal_is_empty_and_private(tmp_path):
    three = Harness(tmp_path, {"a": "Shot A", "b": "Shot B", "c": "Shot C"}, concurrency=1)
    result = three.run()
    assert result.exit_code == 0 and three.client.count("create") == 3
    path = three.tmp_path / ".vidbatch" / JOURNAL_NAME
    assert path.read_bytes() == b""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_task_ids_the_full_disk_kept_from_the_database_are_recovered_at_the_next_start(tmp_path):
    h, store, result = run_until_the_disk_fills(tmp_path)
    assert result.stopped is Stop.STATE and result.unsaved == {"task-1": "a"}
    assert len(journal_lines(h)) == 1, "a task id the database refused stays in the journal"
    store.close()

    after = Store(tmp_path / ".vidbatch")  # the disk was freed; the next run
    after.mark_interrupted_submissions()
    key = h.plan().jobs[0].job.key
    assert after.get(key).task_id == "task-1"
    h.store = after
    h.events.clear()
    assert h.run().exit_code == 0
    assert h.client.count("create") == 3, "a: never created again; b and c: created now"
    assert all(h.output(n).exists() for n in "abc")


# --- a real process, killed between the journal line and the commit -------------------------------


def _wait_for(check, what: str, seconds: float = 60.0) -> None:
    """A hang guard, not a pass condition: the test's steps are ordered by what it observes."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _state_of(db, name: str) -> str | None:
    if not db.exists():
        return None
    conn = sqlite3.connect(db, timeout=30)
    try:
        row = conn.execute("select state from renders where name = ?", [name]).fetchone()
    except sqlite3.OperationalError:  # tables not made yet
        return None
    finally:
        conn.close()
    return row[0] if row else None


def test_a_run_killed_before_it_could_commit_a_task_id_keeps_it_through_the_journal(tmp_path):
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest({"a": "A shot whose task id is only in the journal"}))
    db, journal = tmp_path / ".vidbatch" / "state.db", tmp_path / ".vidbatch" / JOURNAL_NAME
    args = ["run", manifest, "--poll-interval", "0", "--rpm", "60000"]
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        server.sim.inject("create", "slow", seconds=1.0)  # the create stays on the wire a second
        proc = cli_subprocess(args, env=env)
        try:
            _wait_for(lambda: _state_of(db, "a") == "submitting", "the intent")
            locker = sqlite3.connect(db, timeout=30)
            locker.execute("BEGIN IMMEDIATE")  # the run's commit of the task id must now wait
            _wait_for(lambda: journal.exists() and journal.read_text().strip() != "", "the journal line")
        finally:
            proc.kill()
            proc.communicate(timeout=60)
        locker.rollback()
        locker.close()
        assert _state_of(db, "a") == "submitting", "the database alone never saw the task id"
        assert creates(server) == 1
        task_id = json.loads(journal.read_text())["task_id"]
        planned = json.loads(cli(["plan", manifest, "--json"], env=env).output)  # reads the journal, writes nothing
        assert [(j["name"], j["action"], j["task_id"]) for j in planned["jobs"]] == [("a", "resume", task_id)]
        assert planned["summary"]["billable"] == 0
        assert _state_of(db, "a") == "submitting" and journal.read_text() != ""

        again = cli(args, env=env)
        assert again.exit_code == 0, again.output
        assert creates(server) == 1, "the journaled task is collected, not created again"
        assert (tmp_path / "renders" / "a.mp4").exists()
        assert _state_of(db, "a") == "done"
        assert journal.read_text() == ""


# --- checkpoints off the scheduler's thread ------------------------------------------------------


def test_during_a_run_the_log_is_checkpointed_by_a_thread_of_its_own_and_sqlites_own_resume_after(tmp_path):
    store = Store(tmp_path / ".vidbatch")
    db = store.path
    autocheckpoint = lambda: store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # noqa: E731
    assert autocheckpoint() == 1000
    with store.checkpoints_elsewhere(interval=0.01):
        assert autocheckpoint() == 0, "no commit of the run waits for a checkpoint"
        before = db.stat().st_size
        with store.transaction():
            for i in range(500):
                key = f"k{i}"
                store.record_seen(key, {"prompt": "x" * 2000 + key}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt=key, name=key)
        # the pages reach the database file only through the checkpointing thread
        _wait_for(lambda: db.stat().st_size > before, "a background checkpoint")
    assert autocheckpoint() == 1000
    assert not [t for t in threading.enumerate() if t.name == "vidbatch-checkpoint"]
    store.close()
    assert len(Store(tmp_path / ".vidbatch").all_renders()) == 500


def test_when_no_second_connection_can_open_the_database_sqlite_keeps_its_own_checkpoints(tmp_path):
    store = Store(tmp_path / ".vidbatch")
    store.path.unlink()  # deleted under the run (the runner puts it back: see test_runner_unit)
    with store.checkpoints_elsewhere(interval=0.01):
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert not store.path.exists(), "the checkpointer never makes a database file"
    store.close()


def test_a_runner_given_a_plan_made_before_any_replay_collects_the_journaled_task(tmp_path):
    h = Harness(tmp_path, {"a": "A red fox"})
    store = CrashingStore(tmp_path / ".vidbatch")
    with pytest.raises(Crash):
        h.run(store)
    store.close()
    h.store = Store(tmp_path / ".vidbatch")  # no session: nothing replayed before the plan
    plan = h.plan(resubmit_uncertain=True)
    assert [(pj.action.value, pj.record.task_id) for pj in plan.jobs] == [("resume", "task-1")]
    result = h.make_runner().run(plan)
    assert result.exit_code == 0
    assert h.client.count("create") == 1 and h.output("a").exists()


# --- one commit per scheduler turn (the writes of a turn are grouped) ----------------------------


class RefusingCommits:
    """A connection whose COMMITs fail (a full disk) once ``refuse`` is set; the rest is SQLite's."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self.refuse = False
        self.commits = 0

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.commits += 1
            if self.refuse:
                raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def refusing_store(path) -> Store:
    store = Store(path)
    store.conn = RefusingCommits(store.conn)  # type: ignore[assignment]
    return store


def test_a_task_id_written_in_a_group_stays_in_the_journal_until_the_group_is_committed(tmp_path):
    store = Store(tmp_path / ".vidbatch")
    store.record_seen("k1", {"prompt": "k1"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="k1", name="k1")
    store.record_intent("k1", name="k1")
    store.journal.note("k1", 1, "task-1")
    assert store.begin_group()
    store.record_submitted("k1", "task-1", name="k1")
    store.journal.clear()
    assert len(store.journal.entries()) == 1, "not committed yet: a crash now must find the task id in the journal"
    store.end_group()
    store.journal.clear()
    assert store.journal.entries() == []
    assert Store(tmp_path / ".vidbatch").get("k1").task_id == "task-1"


def test_a_group_whose_commit_fails_is_rolled_back_and_keeps_its_task_ids_in_the_journal(tmp_path):
    store = refusing_store(tmp_path / ".vidbatch")
    store.record_seen("k1", {"prompt": "k1"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="k1", name="k1")
    store.record_intent("k1", name="k1")
    store.journal.note("k1", 1, "task-1")
    store.begin_group()
    store.record_submitted("k1", "task-1", name="k1")
    store.conn.refuse = True
    with pytest.raises(errors.StateError, match="is full"):
        store.end_group()
    store.conn.refuse = False
    assert not store.conn.in_transaction
    assert store.get("k1").state is RenderState.SUBMITTING
    store.journal.clear()
    assert [e[2] for e in store.journal.entries()] == ["task-1"]


def test_the_writes_of_a_scheduler_turn_are_one_commit(tmp_path):
    h = Harness(tmp_path, {n: f"Shot {n}" for n in "abcdef"}, concurrency=6)
    store = refusing_store(tmp_path / ".vidbatch")
    result = h.run(store)
    assert result.exit_code == 0 and h.client.count("create") == 6
    # per job: intent, task id, status, rendered, downloaded: 32 commits with the plan's two if
    # each were its own; a turn commits its task ids first, then the rest
    assert store.conn.commits < 25, store.conn.commits


def test_a_turn_whose_commit_fails_reports_its_task_ids_unsaved_and_the_next_start_recovers_them(tmp_path):
    h = Harness(tmp_path, {"a": "Shot A", "b": "Shot B", "c": "Shot C"}, concurrency=2)
    store = refusing_store(tmp_path / ".vidbatch")
    real_submitted = store.record_submitted

    def record_submitted(*a, **kw):
        record = real_submitted(*a, **kw)
        store.conn.refuse = True  # the disk fills while the turn that wrote the task id is open
        return record

    store.record_submitted = record_submitted  # type: ignore[method-assign]
    result = h.run(store)
    assert result.stopped is Stop.STATE
    created = {e.data["task_id"]: e.job for e in h.of(EventKind.SUBMITTED)}
    assert created and len(created) == h.client.count("create") < 3, "nothing new once the state fails"
    assert result.unsaved == created
    assert {e.data["task_id"] for e in h.of(EventKind.UNSAVED)} == set(created)
    assert all(h.output(name).exists() for name in created.values()), "collected from memory"
    assert {json.loads(line)["task_id"] for line in journal_lines(h)} == set(created)
    store.close()

    after = Store(tmp_path / ".vidbatch")  # the disk was freed; the next run
    after.mark_interrupted_submissions()
    h.store = after
    h.events.clear()
    assert h.run().exit_code == 0
    assert h.client.count("create") == 3, "the renders created before: never created again; the rest: created now"


def test_intents_whose_commit_fails_are_never_sent_and_stay_new(tmp_path):
    h = Harness(tmp_path, {"a": "Shot A", "b": "Shot B"}, concurrency=2)
    store = refusing_store(tmp_path / ".vidbatch")
    real_intent = store.record_intent

    def record_intent(*a, **kw):
        record = real_intent(*a, **kw)
        store.conn.refuse = True  # the commit of the turn's intents will fail
        return record

    store.record_intent = record_intent  # type: ignore[method-assign]
    result = h.run(store)
    assert h.client.count("create") == 0
    assert result.stopped is Stop.STATE and sorted(result.unfinished) == ["a", "b"]
    store.conn.refuse = False
    assert {store.get(pj.job.key).state for pj in h.plan().jobs} == {RenderState.NEW}


def test_a_ctrl_c_after_an_intent_is_written_and_before_its_create_is_sent_keeps_the_intent_out(tmp_path):
    h = Harness(tmp_path, {"a": "Shot A", "b": "Shot B", "c": "Shot C"}, concurrency=3)
    store = Store(tmp_path / ".vidbatch")
    real_intent = store.record_intent
    intents = []

    def record_intent(*a, **kw):
        intents.append(real_intent(*a, **kw))
        if len(intents) == 2:
            raise KeyboardInterrupt  # b's intent is written in its turn's group; its create is not sent
        return intents[-1]

    store.record_intent = record_intent  # type: ignore[method-assign]
    result = h.run(store)
    assert len(intents) == 2 and h.client.count("create") == 1
    assert result.stopped is Stop.INTERRUPTED
    assert h.states() == {"a": "running", "b": "new", "c": "new"}, "no intent kept without its create"
    assert store.mark_interrupted_submissions() == [], "so the next start finds nothing uncertain"


def test_a_ctrl_c_in_the_middle_of_a_write_rolls_back_its_turn_and_keeps_no_half_write(tmp_path):
    h = Harness(tmp_path, {"a": "Shot A"})
    store = Store(tmp_path / ".vidbatch")

    def record_downloaded(key, path, **kw):
        store._output(path, key, size=kw["size"], sha256=kw["sha256"], mtime_ns=kw["mtime_ns"], name=kw["name"], manifest=kw["manifest"])
        raise KeyboardInterrupt  # between the output's row and the render's

    store.record_downloaded = record_downloaded  # type: ignore[method-assign]
    result = h.run(store)
    assert result.stopped is Stop.INTERRUPTED
    key = h.plan().jobs[0].job.key
    # the turn's writes are rolled back (inline, the poll's and the download's share a turn)
    assert store.get(key).state in (RenderState.RUNNING, RenderState.RENDERED) and store.get(key).task_id == "task-1"
    assert store.outputs_for(key) == [], "no half-made write: an output row without its render done"
