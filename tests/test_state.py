"""The state store: legal transitions only, history kept, migrations from both ends, the lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vidbatch.errors import CallInfo, InvalidRequestError, StateError, StateLockedError
from vidbatch.state import TRANSITIONS, ErrorInfo, RenderState, Store, migrations

from .conftest import TEST_KEY

KEY = "vb1:" + "b" * 64
FROZEN = Path(__file__).parent / "data" / "state_m001.sql"


def seen(store: Store, key: str = KEY):
    return store.record_seen(key, {"model": "MiniMax-Hailuo-02", "prompt": "p"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="p", name="job")


def submitted(store: Store) -> None:
    """Seen, its create intended and accepted as task 123."""
    seen(store)
    store.record_intent(KEY, name="job")
    store.record_submitted(KEY, "123", name="job")


def test_full_lifecycle_is_recorded_as_history(tmp_path):
    store = Store(tmp_path)
    submitted(store)
    store.record_status(KEY, "Queueing")
    store.record_status(KEY, "Queueing")  # unchanged status: not repeated
    store.record_status(KEY, "Processing")
    store.record_rendered(KEY, "456", width=1366, height=768)
    record = store.record_downloaded(KEY, tmp_path / "x.mp4", size=10, sha256="f" * 64, mtime_ns=1, name="job", manifest="m.toml")
    assert record.state is RenderState.DONE and record.task_id == "123" and record.file_id == "456"
    assert [e.event for e in store.events(KEY)] == ["seen", "submit", "submitted", "status", "status", "rendered", "downloaded"]
    assert store.output(tmp_path / "x.mp4").sha256 == "f" * 64


def statuses(store: Store) -> list[str]:
    return [e.detail["status"] for e in store.events(KEY) if e.event == "status"]


def test_an_unchanged_status_is_not_repeated_by_another_store_nor_lost_to_a_rollback(tmp_path):
    first = Store(tmp_path)
    submitted(first)
    first.record_status(KEY, "Queueing")
    first.close()
    store = Store(tmp_path)  # remembers nothing: reads the last event
    store.record_status(KEY, "Queueing")
    assert statuses(store) == ["Queueing"]
    assert store.begin_group()
    store.record_status(KEY, "Processing")
    store.conn.execute("ROLLBACK")  # what a failed commit leaves
    with pytest.raises(StateError):
        store.end_group()
    store.record_status(KEY, "Processing")
    assert statuses(store) == ["Queueing", "Processing"], "the status the rollback lost is written again"


def test_many_renders_are_seen_with_a_read_per_500_not_per_render(tmp_path):
    store = Store(tmp_path)
    seen(store, "vb1:" + "0" * 64)  # one that exists already, under another job's name
    renders = [
        {"key": f"vb1:{i:064d}", "request": {"model": "MiniMax-Hailuo-02", "prompt": f"p{i}"}, "model": "MiniMax-Hailuo-02",
         "mode": "t2v", "duration": 6, "resolution": "768P", "prompt": f"p{i}", "name": f"job-{i}", "manifest": "m.toml"}
        for i in range(1200)
    ]
    reads: list[str] = []
    store.conn.set_trace_callback(lambda sql: reads.append(sql) if sql.lstrip().lower().startswith("select") else None)
    store.record_seen_many([*renders, renders[5]])  # a key twice: seen once
    store.conn.set_trace_callback(None)
    assert len(reads) == 3  # 1,200 keys, 500 at a time
    assert store.counts() == {"new": 1200}
    assert store.get("vb1:" + "0" * 64).name == "job-0"  # brought up to date
    assert [e.event for e in store.events(renders[5]["key"])] == ["seen"]


@pytest.mark.parametrize("state", list(RenderState))
def test_every_illegal_transition_is_refused(tmp_path, state):
    store = Store(tmp_path)
    seen(store)
    store.db["renders"].update(KEY, {"state": state.value})
    illegal = set(RenderState) - TRANSITIONS[state] - {state}
    for target in illegal:
        with pytest.raises(StateError, match=f"cannot go from {state.value} to {target.value}"):
            store._transition(KEY, target, "test")
    assert store.get(KEY).state is state


def test_a_run_cut_off_mid_create_leaves_the_job_uncertain(tmp_path):
    store = Store(tmp_path)
    seen(store)
    store.record_intent(KEY, name="job")
    store.close()
    store = Store(tmp_path)  # as the next run would
    cut = store.mark_interrupted_submissions()
    assert [r.key for r in cut] == [KEY]
    record = store.get(KEY)
    assert record.state is RenderState.UNCERTAIN and "may or may not" in record.error_message


def test_errors_are_kept_with_code_and_trace_id(tmp_path):
    store = Store(tmp_path)
    seen(store)
    store.record_intent(KEY)
    store.record_failed(KEY, ErrorInfo("invalid params, duration", code=2013, trace_id="abc"))
    record = store.get(KEY)
    assert record.error == "invalid params, duration (code 2013) [trace_id=abc]"


def test_an_api_error_is_stored_as_its_parts(tmp_path):
    store = Store(tmp_path)
    seen(store)
    store.record_intent(KEY)
    exc = InvalidRequestError("create refused: invalid params", CallInfo("create", http_status=200, status_code=2013, status_msg="invalid params, duration", trace_id="t-1"), hint="check the duration")
    store.record_not_submitted(KEY, ErrorInfo.from_exception(exc))
    row = store.db.execute("select error_call, error_http_status, error_code, error_status_msg, error_message, error_hint, trace_id from renders").fetchone()
    assert row == ("create", 200, 2013, "invalid params, duration", "create refused: invalid params", "check the duration", "t-1")
    assert store.get(KEY).error == str(exc), "status shows the error as the exception read"
    assert store.events(KEY)[-1].detail == {"error": "create refused: invalid params", "code": 2013, "call": "create"}


def test_an_unexpected_exception_is_stored_by_its_class_only():
    class Leaky(Exception):
        pass

    info = ErrorInfo.from_exception(Leaky(f"headers={{'Authorization': 'Bearer {TEST_KEY}'}}"))
    assert TEST_KEY not in repr(info) and "Leaky" in info.message and info.call is None


def test_migrations_on_a_blank_database(tmp_path):
    store = Store(tmp_path)
    assert [m.name for m in migrations.applied(store.db)] == [m.name for m in migrations._migrations]
    assert {"renders", "outputs", "events"} <= set(store.db.table_names())
    assert {"error_call", "error_http_status", "error_status_msg", "error_hint"} <= set(store.db["renders"].columns_dict)
    assert store.db.execute("select * from jobs").fetchall() == [], "the old table name reads as a view"
    assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_migrations_on_a_database_frozen_at_the_first_schema(tmp_path):
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript(FROZEN.read_text())
    conn.close()
    store = Store(tmp_path)
    assert migrations.pending(store.db) == []
    record = store.get("vb1:" + "a" * 64)
    assert record.state is RenderState.RUNNING and record.task_id == "106916112212032" and record.name == "fox"
    # and the old row goes on through today's transitions
    store.record_rendered(record.key, "1")
    assert store.get(record.key).state is RenderState.RENDERED


def test_reading_creates_nothing(tmp_path):
    assert Store.open_for_reading(tmp_path / "nothing") is None
    assert not (tmp_path / "nothing").exists()


def test_garbage_database_gets_a_clear_error(tmp_path):
    (tmp_path / "state.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a usable vidbatch state database"):
        Store(tmp_path)


def test_lock_is_exclusive_and_released(tmp_path):
    a, b = Store(tmp_path), Store(tmp_path)
    with a.run_lock():
        with pytest.raises(StateLockedError):
            with b.run_lock():
                pass
    with b.run_lock():
        pass
