"""The runner's wire (issue 15): its calls are coroutines on ONE event loop, run by the
scheduler's own thread while it waits, blocking work goes to daemon threads beside it, and
``workers=0`` drives each coroutine at once on the scheduler's thread. Nothing here depends on timing: a wait that could hang has a generous guard,
and concurrency is proved by calls that can only finish when all of them are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

from vidbatch import errors, project
from vidbatch import runner as runner_module
from vidbatch.events import EventKind, Stop
from vidbatch.plan import plan_jobs
from vidbatch.policy import Call
from vidbatch.runner import RunEvent, RunOptions, Runner, _BlockingCalls, _Inbox, _Render, _Result, _StopRequest, _Wire
from vidbatch.state import Store

from .fakes import FakeClient, FakeClock
from .helpers import t2v_manifest

GUARD = 30.0  # seconds: only reached when the code under test is broken (it would hang)
FAST = RunOptions(poll_interval=0, rpm=60000)


def results(wire: _Wire, inbox: _Inbox, n: int) -> list[_Result]:
    """The next ``n`` results, waiting for them (bounded by GUARD)."""
    got: list[_Result] = []
    while len(got) < n:
        assert wire.wait(GUARD), f"only {len(got)} of {n} results arrived"
        while (item := wire.take()) is not None:
            got.append(item)
    return got


def other_threads() -> list[threading.Thread]:
    """Threads of this process other than the test's and the wire's daemon threads (none: the
    loop runs on the scheduler's thread)."""
    return [t for t in threading.enumerate() if t is not threading.current_thread() and not t.name.startswith("vidbatch-blocking")]


@pytest.fixture
def wire():
    inbox = _Inbox()
    w = _Wire(4, inbox, FakeClient())
    yield w, inbox
    w.close()


# --- inline (workers=0) ----------------------------------------------------------------------


def test_inline_drives_a_coroutine_at_once_on_the_callers_thread():
    inbox = _Inbox()
    w = _Wire(0, inbox, FakeClient())

    async def call() -> tuple[int, str]:
        thread = await w.offload(threading.get_ident)  # runs now, here
        return thread, await w.calls.create({"prompt": "x"})

    w.submit(Call.CREATE, _Render("k", []), call)
    assert w.busy == 1
    result = w.take()  # no wait: the result is in the inbox already
    assert result is not None and result.error is None
    assert result.value == (threading.get_ident(), "task-1")
    assert w.busy == 0 and w._loop is None


def test_inline_says_clearly_when_a_coroutine_suspends_and_closes_it():
    inbox = _Inbox()
    w = _Wire(0, inbox, FakeClient())
    closed = []

    async def suspends() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(True)

    with pytest.raises(RuntimeError, match="suspended while driven inline"):
        w.submit(Call.POLL, _Render("k", []), suspends)
    assert closed == [True], "the suspended coroutine is closed, not left pending"
    assert inbox.empty(), "a bug is raised, never handed to the failure policy as a call's error"


def test_inline_hands_a_calls_exception_to_the_scheduler():
    inbox = _Inbox()
    w = _Wire(0, inbox, FakeClient())

    async def fails() -> None:
        raise errors.TransientError("HTTP 503", errors.CallInfo("query"))

    w.submit(Call.POLL, _Render("k", []), fails)
    result = w.take()
    assert result is not None and isinstance(result.error, errors.TransientError) and result.value is None


# --- the wire: one loop, many calls in flight -------------------------------------------------


def test_many_calls_are_in_flight_at_once_on_the_schedulers_thread(wire):
    w, inbox = wire
    n = 50
    everyone_in = asyncio.Event()
    entered: list[int] = []
    in_flight = 0
    most = 0

    def make(i: int) -> Any:
        async def call() -> int:
            nonlocal in_flight, most
            entered.append(threading.get_ident())
            in_flight += 1
            most = max(most, in_flight)
            if len(entered) == n:
                everyone_in.set()
            await everyone_in.wait()  # finishes only once all n calls have started
            in_flight -= 1
            return i

        return call

    for i in range(n):
        w.submit(Call.POLL, _Render(f"k{i}", []), make(i))
    got = results(w, inbox, n)
    assert sorted(r.value for r in got) == list(range(n))
    assert most == n, "all the calls were waiting at once"
    assert set(entered) == {threading.get_ident()}, "every call ran on the thread that waits for them"
    assert other_threads() == [], "no thread of its own for the loop"
    assert w.busy == 0


def test_calls_submitted_between_waits_start_together_without_waking_anything(wire):
    w, inbox = wire

    async def answer() -> str:
        return "ok"

    w.submit(Call.POLL, _Render("first", []), answer)  # makes the loop
    assert len(results(w, inbox, 1)) == 1
    loop = w._loop
    assert loop is not None
    wakeups = []
    real = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda *a, **kw: (wakeups.append(a), real(*a, **kw))[1]  # type: ignore[method-assign]
    for i in range(49):
        w.submit(Call.POLL, _Render(f"k{i}", []), answer)
    assert inbox.empty(), "nothing runs until the scheduler waits"
    assert len(results(w, inbox, 49)) == 49
    assert wakeups == [], "49 submissions cost no wakeup of the loop: the next wait starts them"


def test_a_control_from_another_thread_ends_a_wait(wire):
    w, inbox = wire
    never = asyncio.Event()

    async def hangs() -> None:
        threading.Thread(target=inbox.put_control, args=(_StopRequest(),)).start()  # put while the loop runs
        await never.wait()

    w.submit(Call.POLL, _Render("k", []), hangs)
    assert w.wait(GUARD), "the control woke the wait (without the wakeup it would wait out GUARD)"
    assert isinstance(inbox.take_control(), _StopRequest)


def test_ctrl_c_during_a_wait_is_raised_by_the_wait_not_inside_the_loop(wire):
    w, inbox = wire
    go_on = asyncio.Event()
    steps: list[str] = []

    async def interrupted() -> str:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the loop runs a call
        steps.append("after the signal")  # the call itself goes on
        await go_on.wait()
        return "answered"

    w.submit(Call.CREATE, _Render("k", []), interrupted)
    with w.catching_ctrl_c(), pytest.raises(KeyboardInterrupt):
        w.wait(GUARD)
    assert steps == ["after the signal"], "the Ctrl-C never landed inside the call"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Python's own handler is back"
    loop = w._loop
    assert loop is not None
    loop.call_soon(go_on.set)
    (result,) = results(w, inbox, 1)  # the call still answers: a create in flight is not lost
    assert result.value == "answered" and result.error is None


def test_a_ctrl_c_between_waits_is_raised_by_the_next_wait_and_a_second_by_the_one_after(wire):
    w, inbox = wire
    with w.catching_ctrl_c():
        signal.raise_signal(signal.SIGINT)  # in a scheduler turn: nothing is raised here
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            w.wait(GUARD)
        with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C: "leave now"
            w.wait(GUARD)
        async def answers() -> str:
            return "answered"

        w.submit(Call.POLL, _Render("k", []), answers)
        assert w.wait(GUARD), "no third Ctrl-C: the wait is a wait again"
        assert [r.value for r in results(w, inbox, 1)] == ["answered"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_ends_a_wait_with_nothing_on_the_wire_at_once():
    """Before the first call (or inline) a wait is on the inbox's condition, not the loop."""
    inbox = _Inbox()
    w = _Wire(0, inbox, FakeClient())
    main = threading.get_ident()
    threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT)).start()
    started = time.monotonic()
    with w.catching_ctrl_c(), pytest.raises(KeyboardInterrupt):
        w.wait(GUARD)
    assert time.monotonic() - started < GUARD / 2, "the Ctrl-C did not end the wait"


def test_a_sync_clients_calls_run_off_the_loop_thread(wire):
    w, inbox = wire
    seen: dict[str, int] = {}

    class Recording(FakeClient):
        def create(self, request: dict[str, Any]) -> str:
            seen["create"] = threading.get_ident()
            return super().create(request)

    calls = _BlockingCalls(Recording(), w.offload)

    async def call() -> str:
        seen["loop"] = threading.get_ident()
        return await calls.create({"prompt": "x"})

    w.submit(Call.CREATE, _Render("k", []), call)
    (result,) = results(w, inbox, 1)
    assert result.value == "task-1"
    assert seen["loop"] == threading.get_ident(), "the loop ran on the thread that waited"
    assert seen["create"] != seen["loop"], "the blocking call ran on a thread of its own"


def test_closing_the_wire_cancels_calls_still_on_it_and_closes_its_loop(wire):
    w, inbox = wire
    started, cancelled = threading.Event(), []

    async def never_answers() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    w.submit(Call.DOWNLOAD, _Render("k", []), never_answers)
    assert not w.wait(0) and started.is_set()  # the wait started it; it never answers
    loop = w._loop
    assert loop is not None
    w.close()
    assert cancelled == [True]
    assert loop.is_closed() and w._loop is None
    assert inbox.empty(), "a call cancelled by the close reports nothing"


# --- the runner on the wire --------------------------------------------------------------------


class AsyncFake:
    """What ``Client.open_async()`` returns, over a FakeClient's scripts: each call lets the loop
    run (a real suspension), then answers; records the threads it ran on and its close."""

    def __init__(self, fake: FakeClient):
        self.fake = fake
        self.threads: set[int] = set()
        self.closed_on: int | None = None

    def __getattr__(self, name: str) -> Any:
        sync = getattr(self.fake, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            self.threads.add(threading.get_ident())
            return sync(*args, **kwargs)

        return call

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.closed_on = threading.get_ident()


class OpensAsync(FakeClient):
    """A FakeClient that has ``open_async``, as the real Client will."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[AsyncFake] = []
        self.opened_on: list[tuple[int, bool]] = []

    def open_async(self) -> AsyncFake:
        running = asyncio.get_running_loop() is not None  # raises off a running loop
        self.opened_on.append((threading.get_ident(), running))
        self.opened.append(AsyncFake(self))
        return self.opened[-1]


def make_plan(tmp_path: Path, prompts: dict[str, str]) -> tuple[Store, Any]:
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest(prompts))
    ws = project.load([manifest])
    store = Store(ws.state_dir)
    return store, plan_jobs(ws.manifests, store)


def test_the_runner_uses_open_async_on_its_loop_and_awaits_aclose_at_the_end(tmp_path):
    store, plan = make_plan(tmp_path, {f"s{i}": f"Shot {i}" for i in range(8)})
    client = OpensAsync()
    result = Runner(store, client, FAST, workers=4).run(plan)
    assert result.exit_code == 0 and result.progress.done == 8
    (calls,) = client.opened
    ((opened_on, running),) = client.opened_on
    assert running and calls.threads == {opened_on}, "opened with the loop running, and every call ran there"
    assert opened_on == threading.get_ident(), "the loop ran on the scheduler's thread"
    assert calls.closed_on == opened_on, "aclose was awaited on the loop at the end of the run"
    assert other_threads() == []


def test_inline_runs_ignore_open_async(tmp_path):
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    client = OpensAsync()
    assert Runner(store, client, FAST, clock=FakeClock(), workers=0).run(plan).exit_code == 0
    assert client.opened == [] and client.count("create") == 1


def test_the_journal_line_is_written_before_the_task_id_is_committed_on_the_same_thread(tmp_path):
    store, plan = make_plan(tmp_path, {f"s{i}": f"Shot {i}" for i in range(20)})
    order: list[tuple[str, str, str]] = []
    runner = Runner(store, FakeClient(), FAST, workers=4)
    note, committed = runner._journal.note, runner._journal.committed

    def noting(key: str, attempt: int, task_id: str) -> None:
        note(key, attempt, task_id)
        order.append(("journal", task_id, threading.current_thread().name))

    def committing(task_id: str) -> None:
        committed(task_id)
        order.append(("committed", task_id, threading.current_thread().name))

    runner._journal.note = noting  # type: ignore[method-assign]
    runner._journal.committed = committing  # type: ignore[method-assign]
    assert runner.run(plan).exit_code == 0
    assert len(order) == 40
    for task_id in {t for _, t, _ in order}:
        steps = [(what, thread) for what, t, thread in order if t == task_id]
        me = threading.current_thread().name
        assert steps == [("journal", me), ("committed", me)], task_id


class AnswersTogether:
    """Calls over a FakeClient's scripts where job A's create and job B's first poll answer in
    the same step of the loop, A's first (one future releases both); B's poll then looks at A's
    row in the database through a connection of its own (it sees only what is committed)."""

    def __init__(self, fake: FakeClient, db: Path):
        self.fake, self.db = fake, db
        self.seen: list[tuple[str, str | None]] = []
        self._gate: asyncio.Future[None] | None = None
        self._create_waits = asyncio.Event()

    def _the_gate(self) -> asyncio.Future[None]:
        if self._gate is None:
            self._gate = asyncio.get_running_loop().create_future()
        return self._gate

    async def create(self, request: dict[str, Any]) -> str:
        if "Shot A" in request["prompt"]:
            gate = self._the_gate()
            self._create_waits.set()
            await gate
        return self.fake.create(request)

    async def query(self, task_id: str) -> Any:
        if not self.seen:
            await self._create_waits.wait()  # A's create awaits the gate first: it is woken first
            gate = self._the_gate()
            asyncio.get_running_loop().call_soon(gate.set_result, None)
            await gate  # woken in the same step of the loop as A's create, right after it
            with contextlib.closing(sqlite3.connect(self.db)) as conn:
                self.seen.append(conn.execute("select state, task_id from renders where name = 'a'").fetchone())
        return self.fake.query(task_id)

    async def download(self, file_id: str | int, dest: Path) -> Any:
        return self.fake.download(file_id, dest)

    async def aclose(self) -> None:
        pass


def test_a_creates_task_id_is_committed_as_its_answer_arrives_before_the_loop_runs_anything_else(tmp_path):
    """Issue 15: through the inbox, a create's answer waited for the rest of the loop's turn
    (other calls' answers, downloads) before the scheduler committed it: up to 11 ms at p99
    under load, the window in which a crash leaves it only in the journal. Now it is committed
    in the step of the loop in which it arrives."""
    store, plan = make_plan(tmp_path, {"b": "Shot B", "a": "Shot A"})
    fake = OpensAsync()
    calls = AnswersTogether(fake, store.path)
    fake.open_async = lambda: calls  # type: ignore[method-assign]
    result = Runner(store, fake, RunOptions(poll_interval=0, rpm=60000, concurrency=2), workers=4).run(plan)
    assert result.exit_code == 0 and result.progress.done == 2
    ((state, task_id),) = calls.seen
    assert (state, task_id) == ("running", store.get(plan_key(plan, "a")).task_id), "A's task id was not committed when the next call went on"


def test_a_failure_while_taking_a_creates_answer_on_the_loop_is_raised_by_the_run_and_the_task_id_kept(tmp_path):
    store, plan = make_plan(tmp_path, {"a": "Shot A"})

    def on_event(event: RunEvent) -> None:
        if event.kind is EventKind.SUBMITTED:
            raise RuntimeError("the progress display broke")

    runner = Runner(store, FakeClient(), FAST, on_event, workers=4)
    with pytest.raises(RuntimeError, match="progress display broke"):
        runner.run(plan)
    record = store.get(plan_key(plan, "a"))
    assert record.state.value == "running" and record.task_id == "task-1", "committed before the event was told"
    assert runner._wire._loop is None


def plan_key(plan: Any, name: str) -> str:
    return next(pj.job.key for pj in plan.jobs if pj.job.name == name)


def test_a_failed_call_on_the_wire_reaches_the_scheduler_as_before(tmp_path):
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    client = FakeClient().script("create", errors.TransientError("HTTP 503", errors.CallInfo("create")))
    events: list[RunEvent] = []
    result = Runner(store, client, FAST, events.append, workers=4).run(plan)
    assert result.exit_code == 0 and client.count("create") == 2
    assert [e.kind for e in events if e.kind in (EventKind.RETRY, EventKind.DOWNLOADED)] == [EventKind.RETRY, EventKind.DOWNLOADED]


def test_a_bug_in_a_call_on_the_wire_is_raised_by_the_run_and_the_wire_closes(tmp_path):
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    client = OpensAsync().script("query", ValueError("a bug"))
    runner = Runner(store, client, FAST, workers=4)
    with pytest.raises(ValueError, match="a bug"):
        runner.run(plan)
    assert client.opened[0].closed_on is not None and runner._wire._loop is None


def test_a_bad_download_on_the_wire_leaves_no_staging_file(tmp_path):
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    client = FakeClient().script("download", b"not a video", b"not a video", b"not a video")
    result = Runner(store, client, FAST, workers=4).run(plan)
    assert result.unfinished == ["a"]
    assert client.count("download") == 3
    assert list((tmp_path / "renders").iterdir()) == []


def test_a_download_stopped_while_its_staging_file_is_made_leaves_no_staging_file(tmp_path, monkeypatch):
    """The staging file is made by a wire thread; a run that ends while the thread works (the
    download's coroutine cancelled at the wire's close) must not leave the file the thread makes
    after it."""
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    runner = Runner(store, FakeClient(), FAST, workers=4)
    closed, made = threading.Event(), threading.Event()
    real_close, real_make, real_create = _Wire.close, runner_module.create_staging, runner_module._Staging.create

    def close(self: _Wire, *args: Any, **kwargs: Any) -> None:
        try:
            real_close(self, *args, **kwargs)
        finally:
            closed.set()

    def make_after_the_run(target: Path) -> Path:
        runner.stop()  # the run ends while this thread works
        assert closed.wait(30)
        return real_make(target)

    def create(self: Any, target: Path) -> Path:
        try:
            return real_create(self, target)
        finally:
            made.set()

    monkeypatch.setattr(_Wire, "close", close)
    monkeypatch.setattr(runner_module, "create_staging", make_after_the_run)
    monkeypatch.setattr(runner_module._Staging, "create", create)
    runner.run(plan)
    assert made.wait(30)
    assert list((tmp_path / "renders").iterdir()) == []
    assert store.get(plan.jobs[0].job.key).state.value == "rendered"  # the next run downloads it


def test_a_run_started_inside_a_running_event_loop_works(tmp_path):
    """A notebook's cell (or any coroutine) calling the blocking API: the caller's loop is set
    aside while the run's own loop runs, and is running again afterwards."""
    store, plan = make_plan(tmp_path, {f"s{i}": f"Shot {i}" for i in range(4)})

    async def cell() -> tuple[int, bool]:
        outer = asyncio.get_running_loop()
        result = Runner(store, FakeClient(), FAST, workers=4).run(plan)
        await asyncio.sleep(0)  # the caller's loop goes on
        return result.exit_code, asyncio.get_running_loop() is outer

    assert asyncio.run(cell()) == (0, True)
    assert store.get(plan.jobs[0].job.key).state.value == "done"


def test_a_wait_left_by_a_ctrl_c_from_another_handler_does_not_end_a_later_wait(wire):
    """With a SIGINT handler of the application's (not Python's), the wait leaves it alone and
    the KeyboardInterrupt escapes the loop; the wait it cut short must not end the next one
    when its own timer fires (it would return early with nothing, a busy loop)."""
    w, inbox = wire

    def raising(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    async def interrupted() -> None:
        signal.raise_signal(signal.SIGINT)

    async def answers_later() -> str:
        await asyncio.sleep(0.2)  # after the first wait's timer (0.05 s, set earlier on the same loop)
        return "answered"

    previous = signal.signal(signal.SIGINT, raising)
    try:
        w.submit(Call.POLL, _Render("k", []), interrupted)
        assert w._loop is not None
        w._loop.set_exception_handler(lambda loop, context: None)  # the interrupted call's task, when collected
        with pytest.raises(KeyboardInterrupt):
            w.wait(0.05)
    finally:
        signal.signal(signal.SIGINT, previous)
    w.busy -= 1  # the interrupted call never reports
    w.submit(Call.POLL, _Render("k2", []), answers_later)
    assert w.wait(GUARD), "the later wait ended at the first one's timer, with nothing to take"
    (result,) = results(w, inbox, 1)
    assert result.value == "answered"


def test_a_ctrl_c_that_lands_in_a_weakref_callback_still_stops_the_run(tmp_path):
    """Python's own SIGINT handler raises KeyboardInterrupt wherever the interpreter happens to
    be, and one raised inside a weakref callback or a ``__del__`` is printed and dropped: a first
    Ctrl-C was lost that way (a freed asyncio task's WeakSet callback, issue 15; the run polled
    on). For the whole run the runner takes SIGINT itself, and its next wait raises it."""
    store, plan = make_plan(tmp_path, {"a": "Shot A"})
    refs: list[weakref.ref[Any]] = []

    class Freed:
        pass

    def on_event(event: RunEvent) -> None:
        if event.kind is EventKind.SUBMIT:  # in a scheduler turn, as its create goes on the wire
            freed = Freed()
            refs.append(weakref.ref(freed, lambda ref: signal.raise_signal(signal.SIGINT)))
            del freed  # the callback runs now, and the Ctrl-C lands inside it

    result = Runner(store, OpensAsync(), FAST, on_event, workers=4).run(plan)
    assert result.stopped is Stop.INTERRUPTED and result.exit_code == 130
    assert store.get(plan.jobs[0].job.key).task_id is not None, "the create went, and its task id is saved"
    assert result.progress.done == 0, "the run stopped at its next wait"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "Python's own handler is back"


def test_a_wait_cut_short_by_an_escaping_ctrl_c_leaves_no_pending_task_when_the_wire_closes(wire):
    """The wait's own task, left behind by a KeyboardInterrupt that escaped the loop (an
    application's SIGINT handler), is cancelled: closing the wire before its timer fires does
    not destroy it pending (asyncio reports that as an error when it is collected)."""
    w, inbox = wire

    def raising(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    async def interrupted() -> None:
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, raising)
    try:
        w.submit(Call.POLL, _Render("k", []), interrupted)
        loop = w._loop
        assert loop is not None
        loop.set_exception_handler(lambda loop, context: None)  # the interrupted call's task, when collected
        with pytest.raises(KeyboardInterrupt):
            w.wait(GUARD)  # its timer would fire long after the close
    finally:
        signal.signal(signal.SIGINT, previous)
    left = [t for t in asyncio.all_tasks(loop) if "_until_woken" in repr(t.get_coro())]
    assert len(left) == 1
    w.close()
    assert left[0].done(), "the wait's task was left pending when the loop closed"


def test_a_sync_clients_calls_get_every_thread_and_async_calls_a_few_for_local_work():
    """A sync client's calls each hold a thread while they wait on the network: they get all the
    wire's threads (8 calls, each waiting for the other 7, all finish). With async calls the
    threads only do local work (fsync, rename, copies): LOCAL_WORK_THREADS of them (issue 15:
    32 idle threads cost CPU at every download)."""
    inbox = _Inbox()
    w = _Wire(8, inbox, FakeClient())
    barrier = threading.Barrier(8)

    def blocking() -> bool:
        barrier.wait(timeout=GUARD)  # reached only when 8 threads run at once
        return True

    try:
        for i in range(8):
            w.submit(Call.COPY, _Render(f"k{i}", []), functools.partial(w.offload, blocking))
        got = results(w, inbox, 8)
    finally:
        w.close()
    assert [r.error for r in got] == [None] * 8

    w = _Wire(8, _Inbox(), OpensAsync())
    w.submit(Call.COPY, _Render("k", []), functools.partial(w.offload, blocking_nothing))
    try:
        assert w._threads is not None and w._threads._size == runner_module.LOCAL_WORK_THREADS < 8
    finally:
        w.close()


def blocking_nothing() -> None:
    pass
