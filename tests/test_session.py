"""The session both ``run`` and ``watch`` use: lock, recovery, plans, admission, staging cleanup.
In process, against a real SQLite state; the runner is given empty plans (no client is called)."""

from __future__ import annotations

import threading

import pytest

from vidbatch import project
from vidbatch.errors import StateLockedError, UsageError
from vidbatch.events import EventKind
from vidbatch.plan import Plan
from vidbatch.runner import RunOptions
from vidbatch.session import Session, SessionThread, check_force
from vidbatch.state import RenderState, Store

from .helpers import t2v_manifest

KEY = "vb1:" + "c" * 64


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "shots.toml").write_text(t2v_manifest({"fox": "A fox", "owl": "An owl", "bear": "A bear"}))
    return project.load([tmp_path / "shots.toml"])


class Releasing(threading.Event):
    """A ``cancelled`` event whose first wait frees the lock (the other run ended), no thread."""

    def __init__(self, holder: Session):
        super().__init__()
        self.holder = holder
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        self.holder.close()
        return False


def test_a_second_session_on_the_same_state_is_refused(tmp_path):
    with Session(tmp_path / "state", None):
        with pytest.raises(StateLockedError):
            Session(tmp_path / "state", None).open()
    with Session(tmp_path / "state", None) as again:  # released at the end of the block
        assert again.store.state_dir == tmp_path / "state"


def test_waiting_for_the_lock_says_so_once_and_takes_it_when_free(tmp_path):
    holder = Session(tmp_path, None)
    assert holder.open()
    events = []
    waiting = Session(tmp_path, None, on_event=events.append, wait_for_lock=True, cancelled=Releasing(holder))
    assert waiting.open()
    assert [e.kind for e in events] == [EventKind.WAITING] and events[0].data == {"state_dir": str(tmp_path)}
    waiting.close()


def test_a_wait_for_the_lock_can_be_called_off(tmp_path):
    holder = Session(tmp_path, None)
    assert holder.open()
    cancelled = threading.Event()
    cancelled.set()
    waiting = Session(tmp_path, None, wait_for_lock=True, cancelled=cancelled)
    assert waiting.open() is False
    with pytest.raises(RuntimeError):
        waiting.store  # noqa: B018 - nothing is held
    with pytest.raises(UsageError, match="cancelled while waiting"):
        with waiting:
            pass
    holder.close()
    assert Session(tmp_path, None).open()  # the called-off wait left nothing behind


def test_creates_cut_off_by_a_crash_become_uncertain(tmp_path, caplog):
    store = Store(tmp_path)
    store.record_seen(KEY, {"model": "MiniMax-Hailuo-02", "prompt": "p"}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="p", name="fox")
    store.record_intent(KEY, name="fox")
    store.close()
    with Session(tmp_path, None) as session:
        assert session.store.get(KEY).state == RenderState.UNCERTAIN
    assert "job fox: create was cut off by a crash; now uncertain" in caplog.text


def test_first_plans_apply_force_and_later_ones_do_not(ws):
    with Session(ws.state_dir, None, RunOptions(force=("fox",))) as session:
        first = session.plan(ws.manifests)
        later = session.plan(ws.manifests, first=False)
    assert {p.job.name: p.reason for p in first.jobs}["fox"] != {p.job.name: p.reason for p in later.jobs}["fox"]


def test_admit_bounds_every_plan_then_asks(ws):
    asked: list[int] = []

    def confirm(plan: Plan) -> bool:
        asked.append(len(plan.billable))
        return False

    with Session(ws.state_dir, None, RunOptions(max_renders=2)) as bounded:
        refusal = bounded.admit(bounded.plan(ws.manifests), confirm)
    assert refusal is not None and refusal.kind == EventKind.REFUSED and "--max-renders 2" in refusal.reason
    assert asked == [], "a refused plan is not asked about"
    with Session(ws.state_dir, None) as session:
        plan = session.plan(ws.manifests)
        declined = session.admit(plan, confirm)
        assert declined is not None and declined.kind == EventKind.DECLINED and asked == [3]
        assert session.admit(plan, lambda p: True) is None
        assert session.admit(plan) is None
        assert session.admit(Plan([], []), confirm) is None and asked == [3], "nothing billable: nothing to ask"


def test_staging_files_a_killed_run_left_are_removed(ws):
    out = ws.jobs[0].output
    out.parent.mkdir(parents=True)
    stale = out.with_name(f".{out.name}.0123abcd.vidbatch-new")
    stale.write_bytes(b"partial")
    part = out.with_name(f".{stale.name}.0123abcd4567.part")  # a killed download of vidbatch 0.1.0's client
    part.write_bytes(b"partial")
    keep = out.with_name("keep.mp4")
    keep.write_bytes(b"video")
    with Session(ws.state_dir, None) as session:
        session.clean_staging(ws.manifests)
    assert not stale.exists() and not part.exists() and keep.exists()


def test_the_runner_is_made_when_first_needed(ws):
    events = []
    with Session(ws.state_dir, None, on_event=events.append) as session:
        before = session.progress
        assert session.progress is not before, "no runner yet: a fresh count each time"
        result = session.run(Plan([], []))
        assert session.progress is result.progress and session.runner is session.runner
        assert result.exit_code == 0 and events, "the runner's events reach on_event"


def test_progress_while_serving_is_the_latest_an_event_carried(ws):
    from vidbatch.runner import JobPhase, Progress, RunEvent

    events = []
    session = Session(ws.state_dir, None, on_event=events.append)
    live = Progress()
    live.mark(("m.toml", "a"), "vb1:a", JobPhase.DONE)
    session._relay(RunEvent("status", "x"))
    assert session.progress is not live
    session._relay(RunEvent("downloaded", "x", progress=live))
    assert session.progress is live and len(events) == 2


def test_check_force_names_the_unknown_once_in_order():
    jobs = [type("J", (), {"name": n}) for n in ("fox", "owl")]
    check_force(jobs, ("fox",), "the manifest")
    with pytest.raises(UsageError, match="--force names no job of the manifest: zebra, ant$"):
        check_force(jobs, ("zebra", "fox", "ant", "zebra"), "the manifest")


def test_project_run_refuses_over_budget_and_when_declined(ws):
    with pytest.raises(UsageError, match="--max-renders 1"):
        project.run(ws, None, RunOptions(max_renders=1))
    with pytest.raises(UsageError, match="cancelled; nothing was sent"):
        project.run(ws, None, confirm=lambda plan: False)
    assert Store(ws.state_dir).all_renders() == [], "nothing was recorded"


# --- on a thread of its own (watch mode) ----------------------------------------------------


def test_session_thread_serves_replans_until_stopped(ws):
    events = []
    thread = SessionThread(Session(ws.state_dir, None, on_event=events.append))
    thread.start()
    thread.wait_ready()
    planned = threading.Event()

    def make_plan() -> Plan:
        planned.set()
        return Plan([], [])

    thread.replan(make_plan)
    assert planned.wait(30)
    thread.stop(30)
    assert not thread.alive and thread.error is None
    assert Session(ws.state_dir, None).open(), "the lock was released"


def test_session_thread_hands_over_a_lock_error(ws):
    with Session(ws.state_dir, None):
        thread = SessionThread(Session(ws.state_dir, None))
        thread.start()
        with pytest.raises(StateLockedError):
            thread.wait_ready()
        thread.stop(30)
        assert not thread.alive


def test_session_thread_stopped_while_waiting_for_the_lock(ws):
    with Session(ws.state_dir, None):
        events = []
        thread = SessionThread(Session(ws.state_dir, None, on_event=events.append, wait_for_lock=True))
        thread.start()
        thread.stop(30)
        assert not thread.alive and thread.error is None
        with pytest.raises(UsageError):
            thread.wait_ready()
