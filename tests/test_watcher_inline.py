"""The watcher's loop, in process and on one thread: a session that plans inline (no runner, no
client), a fake observer (no watchdog), a fake clock for the debounce. What the loop does with
each kind of change, each runner event and each way a session ends."""

from __future__ import annotations

import os
import signal
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from vidbatch.errors import StateLockedError, UsageError
from vidbatch.plan import Plan
from vidbatch.runner import Progress, RunEvent, RunOptions
from vidbatch.session import Session
from vidbatch.watch import Watcher, WatchEvent, _Handler

from .helpers import t2v_manifest, write_png

PROMPTS = {"fox": "A red fox", "owl": "An owl", "bear": "A bear"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class InlineSession:
    """A SessionThread that plans at once on the calling thread and reports the runner's
    ``start`` for each plan, as the runner would."""

    def __init__(self, session: Session):
        self.session = session
        self.plans: list[Plan] = []
        self.error: BaseException | None = None
        self.alive = True
        self.stopped = False
        self.progress = Progress()

    def start(self) -> None:
        assert self.session.open()

    def wait_ready(self) -> None:
        pass

    def replan(self, make_plan: Callable[[], Plan]) -> None:
        plan = make_plan()
        self.plans.append(plan)
        summary = plan.summary()
        self.session.on_event(RunEvent("start", f"{len(plan.jobs)} jobs", data=summary))

    def stop(self, timeout: float) -> None:
        self.stopped = True
        self.session.close()


class FakeObserver:
    def __init__(self) -> None:
        self.scheduled: dict[str, Any] = {}
        self.started = self.stopped = False
        self.refuse: set[str] = set()

    def schedule(self, handler: Any, path: str, recursive: bool = False) -> Any:
        if path in self.refuse:
            raise OSError("no such folder")
        watch = SimpleNamespace(path=path, recursive=recursive, handler=handler)
        self.scheduled[path] = watch
        return watch

    def unschedule(self, watch: Any) -> None:
        del self.scheduled[watch.path]

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def join(self, timeout: float) -> None:
        pass


class Harness:
    def __init__(self, folder: Path, options: RunOptions = RunOptions(), **kw: Any):
        self.folder = folder.resolve()
        self.clock = Clock()
        self.events: list[RunEvent] = []
        self.observer = FakeObserver()
        self.watcher = Watcher(
            folder, None, options, debounce=0.5, on_event=self.events.append, observer_factory=lambda: self.observer,
            clock=self.clock, session_thread=InlineSession, **kw,
        )
        self.session: InlineSession = self.watcher._session

    def start(self) -> Harness:
        self.watcher.start()
        return self

    def changed(self, *paths: Path) -> str | None:
        """The observer reports ``paths``; once the folder is quiet, the batch is handled."""
        assert self.watcher.step(("fs", *(p.resolve() for p in paths))) is None
        self.clock.now += 0.5
        return self.watcher.step(None)

    def of(self, kind: str) -> list[RunEvent]:
        return [e for e in self.events if e.kind == kind]

    def plans_of(self, name: str) -> list[RunEvent]:
        return [e for e in self.of("start") if e.data.get("manifest") == str(self.folder / name)]


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "shots"
    f.mkdir()
    return f


def test_start_up_plans_every_manifest_notes_the_rest_and_reports_the_broken(folder):
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    (folder / "broken.toml").write_text('[[jobs]]\nname = "owl\n')
    (folder / "notes.txt").write_text("not a manifest")
    (folder / ".hidden.toml").write_text("x")
    h = Harness(folder).start()
    watching = h.of("watching")[0]
    assert isinstance(watching, WatchEvent)
    assert watching.data["manifests"] == [str(folder.resolve() / "shots.toml")]
    assert "1 manifest (shots.toml)" in watching.message
    assert h.of("ignored")[0].data["paths"] == [str(folder.resolve() / "notes.txt")]
    assert "broken.toml is invalid" in h.of("invalid")[0].message
    plan = h.plans_of("shots.toml")[0]
    assert plan.data["actions"] == {"submit": 3} and plan.data["in_flight"] == 0
    assert plan.message == "shots.toml: plan: 3 submit (3 to render)"
    assert h.observer.started and str(h.folder) in h.observer.scheduled


def test_an_empty_folder_says_none_yet(folder):
    h = Harness(folder).start()
    assert "0 manifests (none yet)" in h.of("watching")[0].message
    assert not h.of("ignored")


def test_an_edit_plans_again_without_the_start_up_options(folder):
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest(PROMPTS))
    h = Harness(folder, RunOptions(force=("fox",))).start()
    assert len(h.session.plans) == 1
    manifest.write_text(t2v_manifest({**PROMPTS, "owl": "An owl at night"}))
    h.changed(manifest)
    change = h.of("changed")[-1]
    assert change.message == "shots.toml changed" and change.data["new"] is False
    assert len(h.plans_of("shots.toml")) == 2
    assert h.session.session.options.force == ("fox",)  # given, yet not applied to the second plan
    reasons = {p.job.name: p.reason for p in h.session.plans[-1].jobs}
    first = {p.job.name: p.reason for p in h.session.plans[0].jobs}
    assert first["fox"] != reasons["fox"]


def test_an_unknown_force_name_ends_the_start(folder):
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    h = Harness(folder, RunOptions(force=("zebra",)))
    with pytest.raises(UsageError, match="--force names no job of the manifests in .*: zebra"):
        h.start()


def test_paths_are_debounced_into_one_batch(folder):
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest(PROMPTS))
    h = Harness(folder).start()
    w = h.watcher
    assert w.step(("fs", manifest.resolve())) is None
    h.clock.now += 0.3
    assert w.step(("fs", manifest.resolve(), (folder / "x.tmp").resolve())) is None  # a temporary name: not news
    assert not h.of("changed")
    h.clock.now += 0.3
    assert w.step(None) is None
    assert not h.of("changed"), "the second event pushed the batch back"
    h.clock.now += 0.2
    w.step(None)
    assert len(h.of("changed")) == 1 and h.of("changed")[0].data["paths"] == [str(manifest.resolve())]


def test_an_input_change_names_the_file_and_its_reader(folder):
    write_png(folder / "images" / "a.png")
    (folder / "i2v.toml").write_text(
        'output_dir = "renders"\n\n[[jobs]]\nname = "a"\nmodel = "I2V-01"\nprompt = "Job a"\nfirst_frame_image = "images/a.png"\n'
    )
    h = Harness(folder).start()
    write_png(folder / "images" / "a.png", color=(1, 2, 3))
    h.changed(folder / "images" / "a.png")
    assert h.of("changed")[-1].message == "images/a.png changed (read by i2v.toml)"
    first, second = h.session.plans
    assert first.jobs[0].job.key != second.jobs[0].job.key, "the new image makes a new request"


def test_a_new_manifest_a_collision_and_its_resolution(folder):
    (folder / "a.toml").write_text(t2v_manifest({"fox": "A fox"}))
    h = Harness(folder).start()
    (folder / "b.toml").write_text(t2v_manifest({"fox": "Another fox"}))
    h.changed(folder / "b.toml")
    assert h.of("changed")[-1].message == "new manifest b.toml"
    invalid = h.of("invalid")[-1]
    assert "b.toml is invalid" in invalid.message and "also written by job fox" in invalid.message
    assert not h.plans_of("b.toml")

    # an unrelated change retries the broken manifest quietly: the same error is not said again
    (folder / "notes.txt").write_text("x")
    h.changed(folder / "notes.txt")
    assert len(h.of("invalid")) == 1 and h.of("ignored")[-1].data["paths"] == [str(folder.resolve() / "notes.txt")]

    # removing the manifest it collided with resumes it
    (folder / "a.toml").unlink()
    h.changed(folder / "a.toml")
    assert h.of("removed")[-1].message.startswith("a.toml is gone")
    assert h.plans_of("b.toml")[-1].data["actions"] == {"submit": 1}
    assert [str(p) for p in h.watcher._folder.resumable()] == [str(folder.resolve() / "b.toml")]


def test_a_manifest_renamed_to_a_name_that_sorts_first_plans_at_once(folder):
    """``mv shots.toml a.toml``: one batch holds both names. The old name must be forgotten
    before the new one loads, or the new one collides with its own outputs under its old name
    and waits, reported invalid, for some unrelated change."""
    (folder / "shots.toml").write_text(t2v_manifest({"fox": "A fox"}))
    h = Harness(folder).start()
    os.rename(folder / "shots.toml", folder / "a.toml")
    h.changed(folder / "shots.toml", folder / "a.toml")
    assert not h.of("invalid")
    assert h.of("removed")[-1].message.startswith("shots.toml is gone")
    assert h.plans_of("a.toml")[-1].data["actions"] == {"submit": 1}

    # the same when a deleted manifest frees the outputs a broken one wanted
    (folder / "b.toml").write_text(t2v_manifest({"fox": "A fox"}))
    h.changed(folder / "b.toml")
    assert "also written by job fox" in h.of("invalid")[-1].message
    (folder / "a.toml").unlink()
    h.changed(folder / "a.toml")
    assert h.plans_of("b.toml")[-1].data["actions"] == {"submit": 1}


def test_a_deleted_manifest_never_known_is_not_reported(folder):
    h = Harness(folder).start()
    (folder / "gone.toml").write_text(t2v_manifest({"fox": "A fox"}))
    h.watcher.step(("fs", (folder / "gone.toml").resolve()))
    (folder / "gone.toml").unlink()
    h.clock.now += 1
    h.watcher.step(None)
    assert not h.of("removed") and not h.of("changed")


def test_warnings_of_a_manifest_are_reported(folder):
    (folder / "shots.toml").write_text(t2v_manifest({"fox": "A fox [Dolly zoom]"}))
    h = Harness(folder).start()
    assert any("Dolly zoom" in e.message for e in h.of("warning"))


def test_over_the_budget_is_refused_and_the_watch_goes_on(folder):
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    h = Harness(folder, RunOptions(max_renders=2)).start()
    assert "shots.toml: not started: the plan would create 3 renders" in h.of("refused")[0].message
    assert h.session.plans[-1].jobs == []
    assert h.plans_of("shots.toml")[-1].message == "shots.toml: plan: nothing to start"


def test_confirm_is_asked_about_start_up_plans_only(folder):
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest(PROMPTS))
    asked: list[str] = []

    def confirm(m: Any, plan: Plan) -> bool:
        asked.append(m.path.name)
        return False

    h = Harness(folder, confirm=confirm).start()
    assert asked == ["shots.toml"]
    assert h.of("declined")[0].message == "shots.toml: not started; save it again to plan it"
    manifest.write_text(t2v_manifest({**PROMPTS, "fox": "A blue fox"}))
    h.changed(manifest)
    assert asked == ["shots.toml"] and h.session.plans[-1].billable


def test_inputs_outside_the_folder_are_watched_through_their_folder(folder, tmp_path):
    write_png(tmp_path / "common" / "c.png")
    manifest = folder / "i2v.toml"
    text = 'output_dir = "renders"\n\n[[jobs]]\nname = "c"\nmodel = "I2V-01"\nprompt = "Job c"\nfirst_frame_image = "{}"\n'
    manifest.write_text(text.format("../common/c.png"))
    h = Harness(folder).start()
    common = str((tmp_path / "common").resolve())
    assert h.observer.scheduled[common].recursive is False
    # the input moves into the folder: the outside watch goes
    write_png(folder / "c.png")
    manifest.write_text(text.format("c.png"))
    h.changed(manifest)
    assert common not in h.observer.scheduled
    # a missing folder cannot be watched yet: the load error says so, the watch goes on
    h.observer.refuse.add(str((tmp_path / "later").resolve()))
    manifest.write_text(text.format("../later/c.png"))
    h.changed(manifest)
    assert "i2v.toml is invalid" in h.of("invalid")[-1].message


def test_a_stale_output_plans_its_manifest_again(folder):
    (folder / "shots.toml").write_text(t2v_manifest({"fox": "A fox"}))
    h = Harness(folder).start()
    output = str(folder.resolve() / "renders" / "fox.mp4")
    wanted_key = h.session.plans[0].jobs[0].job.key
    h.session.session.on_event(RunEvent("downloaded", "ok", job="fox", key=wanted_key, data={"path": output}))
    assert not h.of("stale") and len(h.session.plans) == 1
    h.session.session.on_event(RunEvent("reused", "ok", job="fox", key="vb1:old", data={"path": output}))
    assert h.of("stale")[0].message == "renders/fox.mp4 received a render made before shots.toml changed; planning it again"
    assert len(h.session.plans) == 2
    assert [e.kind for e in h.events[-3:]] == ["reused", "stale", "start"]


def test_an_account_stop_ends_the_session_once_settled(folder):
    h = Harness(folder).start()
    w = h.watcher
    w._on_run_event(RunEvent("idle", "idle"))
    assert h.of("idle")[0].message == f"settled; watching {h.folder} for changes"
    assert w.step(w._queue.get_nowait()) is None, "idle alone does not end the session"
    w._on_run_event(RunEvent("account_stop", "insufficient balance"))
    assert w.step(w._queue.get_nowait()) is None
    w._on_run_event(RunEvent("idle", "idle"))
    assert w.step(w._queue.get_nowait()) == "account"
    assert w._stop_message == "insufficient balance"


def test_waiting_for_the_lock_is_a_watch_event(folder):
    h = Harness(folder)
    h.session.session.on_event(RunEvent("waiting", "another run is using it", data={"state_dir": "x"}))
    assert isinstance(h.events[0], WatchEvent) and h.events[0].kind == "waiting"


def test_other_runner_events_pass_through(folder):
    h = Harness(folder).start()
    e = RunEvent("submitted", "task 1", job="fox")
    h.watcher._on_run_event(e)
    h.watcher._on_run_event(RunEvent("start", "a plan nobody annotated", data={"jobs": 0}))
    assert h.events[-2] is e and h.events[-1].message == "a plan nobody annotated"


def test_the_ways_a_session_ends(folder):
    h = Harness(folder).start()
    assert h.watcher.step(("stop",)) == "stopped"
    h.session.alive = False
    assert h.watcher.step(None) == "stopped"
    h.session.error = StateLockedError(folder / "lock")
    with pytest.raises(StateLockedError):
        h.watcher.step(None)


def test_run_returns_when_stopped(folder):
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    h = Harness(folder, sim=True)
    h.watcher.stop()
    result = h.watcher.run()
    assert result.stopped == "stopped" and result.exit_code == 0
    assert result.manifests == [folder.resolve() / "shots.toml"]
    assert h.session.stopped and h.observer.stopped
    ws = h.watcher.workspace()
    assert ws.sim and [m.path for m in ws.manifests] == [folder.resolve() / "shots.toml"]
    assert ws.manifests[0].output_dir.name == "renders-sim"


def test_ctrl_c_while_starting_is_an_interrupt_and_a_second_one_leaves_at_once(folder):
    h = Harness(folder)

    def interrupted(*a: Any) -> None:
        raise KeyboardInterrupt

    h.session.wait_ready = interrupted  # type: ignore[method-assign]
    h.session.stop = interrupted  # type: ignore[method-assign]
    result = h.watcher.run()
    assert result.stopped == "interrupted" and result.exit_code == 130


def test_a_ctrl_c_between_steps_ends_the_session_even_where_python_would_drop_it(folder):
    """While the loop runs, a Ctrl-C is an item of the queue: one that lands in a weakref
    callback (where Python's own handler's KeyboardInterrupt is printed and dropped) still ends
    the session as interrupted; Python's handler is back after."""
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    h = Harness(folder)
    refs: list[weakref.ref[Any]] = []
    waits: list[float | None] = []
    wait_time = h.watcher._debouncer.wait_time

    class Freed:
        pass

    def ctrl_c_then_wait() -> float | None:
        waits.append(wait_time())
        if len(waits) == 1:
            freed = Freed()
            refs.append(weakref.ref(freed, lambda ref: signal.raise_signal(signal.SIGINT)))
            del freed  # the callback runs now, and the Ctrl-C lands inside it
        else:
            h.watcher.stop()  # the Ctrl-C was lost: end the test instead of waiting forever
        return 5.0

    h.watcher._debouncer.wait_time = ctrl_c_then_wait  # type: ignore[method-assign]
    result = h.watcher.run()
    assert result.stopped == "interrupted" and result.exit_code == 130
    assert len(waits) == 1 and h.session.stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class FsEvent(SimpleNamespace):
    pass


def test_the_watchdog_handler_passes_on_what_can_mean_new_content(tmp_path):
    got: list[tuple[Any, ...]] = []
    handler = _Handler(got.append)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    handler.dispatch(FsEvent(event_type="opened", is_directory=False, src_path=a))
    handler.dispatch(FsEvent(event_type="closed_no_write", is_directory=False, src_path=a))
    handler.dispatch(FsEvent(event_type="modified", is_directory=True, src_path=a))
    assert got == []
    handler.dispatch(FsEvent(event_type="modified", is_directory=False, src_path=a))
    handler.dispatch(FsEvent(event_type="moved", is_directory=False, src_path=a, dest_path=b))
    handler.dispatch(FsEvent(event_type="created", is_directory=True, src_path=os.fsencode(b)))
    assert got == [("fs", Path(a)), ("fs", Path(a), Path(b)), ("fs", Path(b))]
