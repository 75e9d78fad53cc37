"""The runner: carry out a plan against the API without paying twice or losing a render.

Design
------
One scheduler (the calling thread) owns the state database and decides what happens next; the
*wire* (:class:`_Wire`) makes the calls and hands results back: one asyncio event loop, run by
the scheduler's own thread while it waits, where every call is a coroutine (the client's
:class:`AsyncApiClient`, from ``Client.open_async()``; or a sync :class:`ApiClient`'s calls run on
daemon threads beside the loop), and where blocking local work (fsync, copies) is offloaded to
those threads. Results and control messages (:meth:`Runner.replan`, :meth:`Runner.stop`, from
any thread) arrive on separate channels of one inbox, so one wait serves both. Daemon threads let
Ctrl-C end the process promptly even in the middle of a long fsync. Time is a :class:`Clock`
(monotonic ``now`` and a wait that ends when something arrives): tests pass one that jumps, and
``workers=0`` drives every call to its end on the scheduler's thread, so a run is deterministic
and never sleeps.

The unit of work is a *render*: one content key, with every job (output path) that wants it. Two
jobs with identical requests cost one create; the second output is a copy of the first.

Pacing: creates are spaced evenly at ``60 / rpm`` seconds, and never more than ``concurrency``
renders are in flight (created, not yet downloaded).

Failures: what follows a failed call is decided by one table, :mod:`vidbatch.policy` (call x
error kind -> retry, pause, fail the job, stop creating, leave for the next run, uncertain),
read in one place, :meth:`Runner._on_failure`. A rate limit pauses creates for the server's
``Retry-After`` (or a backoff) and puts the job back at the front of the queue; a job-level
failure (Fail status, 1026, 1027, 2013) is recorded and the others go on; an account-level one
(1004, 1008, 2038, 2049, 2056, a wrong or unreachable host) stops new creates at once, while tasks
already in flight are still polled and downloaded. Retries are bounded per render.

Money and crashes: :meth:`Store.record_intent` is written before a create is sent; the wire,
as it gets the answer, writes its task id to the task-id journal (:class:`TaskIdJournal`) before
handing it over, and the scheduler commits it with :meth:`Store.record_submitted` in that same
step of the loop (:meth:`Runner._take_answer`); the next start
replays a journal line a crash left uncommitted. If the process dies before the journal line,
the job is ``uncertain`` on the next start (v1 has no idempotency key and no task list): it is
reported and NOT created again unless the user passes ``--resubmit-uncertain``. A create whose
answer was lost in flight (:class:`MaybeSubmittedError`) is handled the same way. If the
state database stops accepting writes (a full disk), nothing new is created, renders in flight
are still collected from memory, and every task id the state could not keep is reported
(``unsaved`` events, :attr:`RunResult.unsaved`) so that no paid render is lost silently; those
the journal kept are committed at the next start. A state database deleted or replaced under the
run is noticed within a second (:meth:`Runner._state_in_place`): nothing new is created, and the
store puts it back from its open connection, with the run lock; if it cannot, the run goes on as
when the state cannot be written, and the tasks the lost file held are reported unsaved.

Ctrl-C: the first interrupt stops creating, waits only for creates already on the wire (so their
task ids are saved), and returns; running tasks stay ``running`` in the state and the next
``run`` resumes polling them. A second interrupt returns at once.

Downloads go to a staging file beside the output (:func:`vidbatch.files.into_place`), are checked
(byte count, MP4 structure), then renamed over the output, so the previous video of a changed job
is replaced only once the new one is complete.

Chained shots (:mod:`vidbatch.chain`): a plan's ``wait`` jobs take a frame of a job rendered in
this run. The runner keeps them aside; each time a job's video is in place (downloaded, copied or
found up to date) it runs the *dependency step*, a callback the session gives it
(``dependents(store, waiting)``: resolve those jobs against the live store and plan them), and
starts every job it returns ready, as soon as its source is downloaded. A job that returns
``blocked`` (its source failed, is uncertain...) or a frame that breaks the image rules (``failed``,
no call) is not started and says why; when nothing else is left to do, jobs still waiting are left
unfinished with the reason.

Progress counts jobs, not events: one map holds each job's phase (queued, running, done...),
keyed by manifest and name, and the counters are derived from it.

The runner never prints: it reports :class:`RunEvent` objects to a callback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import functools
import gc
import heapq
import logging
import os
import queue
import shutil
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator, NamedTuple, ParamSpec, Protocol, TypeVar, Union

from . import errors, facts, interrupts, mp4, outputs_index, rules
from .events import EventKind, Stop
from .files import create_staging, into_place, put_in_place
from .plan import Action, Plan, PlannedJob
from .policy import (
    Call,
    Decision,
    Judgement,
    Limits,
    LostCreate,
    Shape,
    Verdict,
    decide,
    is_state_write_error,
    judge_lost_create,
    lost_create_window,
    v2_shape,
)
from .state import ErrorInfo, RenderState, Store, V2Intent, VideoRecord

if TYPE_CHECKING:
    from .client import Download, TaskStatus, V2Page, V2Task

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

#: Seconds between two checks that the state database is still in place (besides the one before
#: each turn's creates): a ``stat``, on the scheduler's thread.
STATE_CHECK_INTERVAL = 1.0

#: What :meth:`Runner._write` returns when the state refused the write.
_UNSAVED: Any = object()

__all__ = [
    "ApiClient",
    "AsyncApiClient",
    "CancelOutcome",
    "Cancelled",
    "Clock",
    "JobPhase",
    "Progress",
    "RunEvent",
    "RunOptions",
    "RunResult",
    "Runner",
    "SystemClock",
    "check_budget",
]


class ApiClient(Protocol):
    """The calls the runner makes; :class:`vidbatch.client.Client` is one, a test's fake another.
    The runner calls them on daemon threads, several at once (:class:`_BlockingCalls`), unless
    the client also has ``open_async()`` (see :class:`AsyncApiClient`)."""

    def create(self, request: dict[str, Any]) -> str:
        """Create a task; return its task_id."""
        ...

    def query(self, task_id: str) -> TaskStatus:
        ...

    def download(self, file_id: str | int, dest: Path) -> Download:
        """Fetch the finished video of ``file_id`` to ``dest``."""
        ...

    # Video Generation V2 (MiniMax-H3); only called for V2 jobs

    def create_v2(self, body: dict[str, Any]) -> str:
        ...

    def upload_file(self, data: bytes, filename: str) -> str:
        ...

    def query_v2(self, task_id: str) -> V2Task:
        ...

    def list_v2(self, *, created_after: float | None = None) -> V2Page:
        ...

    def cancel_v2(self, task_id: str) -> None:
        ...

    def download_v2(self, task_id: str, dest: Path, *, url: str | None = None) -> Download:
        ...


class AsyncApiClient(Protocol):
    """The runner's calls as coroutines, all on the wire's one event loop: what
    ``Client.open_async()`` returns (called with that loop running), or :class:`_BlockingCalls`
    around an :class:`ApiClient` without it. Same arguments, results and exceptions as the
    :class:`ApiClient` calls of the same names."""

    async def create(self, request: dict[str, Any]) -> str:
        ...

    async def query(self, task_id: str) -> TaskStatus:
        ...

    async def download(self, file_id: str | int, dest: Path) -> Download:
        ...

    async def create_v2(self, body: dict[str, Any]) -> str:
        ...

    async def upload_file(self, data: bytes, filename: str) -> str:
        ...

    async def query_v2(self, task_id: str) -> V2Task:
        ...

    async def list_v2(self, *, created_after: float | None = None) -> V2Page:
        ...

    async def cancel_v2(self, task_id: str) -> None:
        ...

    async def download_v2(self, task_id: str, dest: Path, *, url: str | None = None) -> Download:
        ...

    async def aclose(self) -> None:
        """Close its connections; awaited on the loop at the end of a run."""
        ...


class Clock(Protocol):
    """Time as the scheduler sees it: monotonic ``now`` and a wait that ends early when a result
    or a control message arrives. A test's clock jumps instead of sleeping."""

    def now(self) -> float:
        ...

    def wait(self, until_woken: Callable[[float], bool], seconds: float) -> bool:
        """Wait up to ``seconds``; ``until_woken(timeout)`` blocks until something arrives or the
        timeout passes and says whether something arrived. Return what it said."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wait(self, until_woken: Callable[[float], bool], seconds: float) -> bool:
        return until_woken(seconds)


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 20
    rpm: float = facts.DEFAULT_RPM
    poll_interval: float = facts.DEFAULT_POLL_INTERVAL
    retry_failed: bool = False
    force: tuple[str, ...] = ()
    max_renders: int | None = None
    resubmit_uncertain: bool = False
    #: a render's create failing transiently is tried this many times, then left ``new``
    create_rounds: int = 4
    download_rounds: int = 3
    #: polls of one task failing in a row before it is left ``running`` for the next run
    poll_rounds: int = 10
    #: rate limits one render's call may meet before it is left for the next run
    rate_limit_rounds: int = 30
    #: Video Generation V2 (MiniMax-H3) creates per minute and renders in flight: its own limits
    v2_rpm: float = facts.V2_RPM
    v2_concurrency: int = facts.V2_MAX_IN_FLIGHT
    #: longest pause after a rate limit when the server does not say how long (a ``Retry-After``
    #: is followed exactly, short or long); without one the pause starts at one create slot
    rate_limit_pause: float = 30.0

    def limits(self) -> Limits:
        return Limits(
            create_rounds=self.create_rounds,
            poll_rounds=self.poll_rounds,
            download_rounds=self.download_rounds,
            rate_limit_rounds=self.rate_limit_rounds,
            rate_limit_pause=self.rate_limit_pause,
            rate_limit_base=min(self.rate_limit_pause, 60.0 / self.rpm),
            poll_interval=self.poll_interval,
        )


@dataclass(frozen=True)
class RunEvent:
    """Something that happened during a run; ``kind`` is an :class:`EventKind` (with
    ``keep_alive``, ``idle`` says nothing is queued, in flight or waiting to be planned)."""

    kind: EventKind
    message: str
    job: str | None = None
    key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    progress: "Progress | None" = field(default=None, compare=False, repr=False)  # live counters

    def to_json(self) -> dict[str, Any]:
        return {"event": str(self.kind), "job": self.job, "key": self.key, "message": self.message, "at": round(self.at, 3), **self.data}


class JobPhase(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    GONE = "gone"  # MiniMax no longer has the task or file: only --force renders it again
    UNFINISHED = "unfinished"  # left for the next run


#: A job as the counters know it: its manifest and its name (unique within a manifest).
JobId = tuple[str, str]


def job_id(pj: PlannedJob) -> JobId:
    return (str(pj.job.manifest), pj.job.name)


class Progress:
    """Live counters, derived from one map of each job's current phase: they count jobs, never
    events, so planning a manifest again (watch mode) does not count its jobs twice."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.started_at = self._clock.now()
        self._lock = threading.Lock()
        self._jobs: dict[JobId, tuple[str, JobPhase]] = {}  # id -> (content key, phase)
        self._counts: Counter[JobPhase] = Counter()
        self._created: set[str] = set()

    def mark(self, job: JobId, key: str, phase: JobPhase, *, only_if_current: bool = False) -> None:
        """Record ``job``'s phase. ``only_if_current``: a render's outcome changes a job only
        while the job still wants that render (an edit may have given it a new one)."""
        with self._lock:
            old = self._jobs.get(job)
            if only_if_current and (old is None or old[0] != key):
                return
            if old is not None:
                self._counts[old[1]] -= 1
            self._jobs[job] = (key, phase)
            self._counts[phase] += 1

    def forget(self, manifest: str, keep: set[JobId]) -> None:
        """A manifest was planned again: drop its jobs the new plan no longer has (a running one
        stays until its render lands)."""
        with self._lock:
            for jid, (_, phase) in list(self._jobs.items()):
                if jid[0] == manifest and jid not in keep and phase is not JobPhase.RUNNING:
                    del self._jobs[jid]
                    self._counts[phase] -= 1

    def created_render(self, key: str) -> None:
        with self._lock:
            self._created.add(key)

    def names(self, *phases: JobPhase) -> list[str]:
        with self._lock:
            return [jid[1] for jid, (_, phase) in self._jobs.items() if phase in phases]

    def phase(self, job: JobId) -> JobPhase | None:
        entry = self._jobs.get(job)
        return entry[1] if entry else None

    @property
    def total(self) -> int:
        return len(self._jobs)

    @property
    def done(self) -> int:
        return self._counts[JobPhase.DONE]

    @property
    def running(self) -> int:
        return self._counts[JobPhase.RUNNING]

    @property
    def queued(self) -> int:
        return self._counts[JobPhase.QUEUED]

    @property
    def failed(self) -> int:
        return self._counts[JobPhase.FAILED]

    @property
    def uncertain(self) -> int:
        return self._counts[JobPhase.UNCERTAIN]

    @property
    def gone(self) -> int:
        return self._counts[JobPhase.GONE]

    @property
    def unfinished(self) -> int:
        return self._counts[JobPhase.UNFINISHED]

    @property
    def created(self) -> int:
        """Renders MiniMax accepted in this run (what it paid for)."""
        return len(self._created)

    @property
    def elapsed(self) -> float:
        return self._clock.now() - self.started_at


@dataclass
class RunResult:
    progress: Progress
    stopped: Stop | None = None
    stop_message: str | None = None
    failed: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    #: jobs whose task or file MiniMax no longer has (``--force NAME`` renders them again)
    gone: list[str] = field(default_factory=list)
    #: task ids MiniMax gave that the state could not save (task_id -> job name)
    unsaved: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.stopped is Stop.INTERRUPTED:
            return errors.EXIT_INTERRUPTED
        if self.stopped is Stop.ACCOUNT:
            return errors.EXIT_ACCOUNT
        if self.failed or self.uncertain or self.unfinished or self.gone or self.unsaved or self.stopped is Stop.STATE:
            return errors.EXIT_JOBS_FAILED
        return errors.EXIT_OK


@dataclass
class _Render:
    """One content key and every planned job that wants its video."""

    key: str
    targets: list[PlannedJob]
    task_id: str | None = None
    file_id: str | None = None
    #: give the targets back this earlier video of the key (a restore), not the render's newest
    restore: VideoRecord | None = None
    #: failures so far per (call, verdict of the table): retries and pauses are bounded per render
    spent: Counter[tuple[Call, Verdict]] = field(default_factory=Counter)
    #: which API generation serves it (V2: MiniMax-H3)
    api: facts.Api = facts.Api.V1
    #: V2: the video's signed URL from the last query (refreshed by querying again when expired)
    video_url: str | None = None
    #: V2: an edit made it obsolete while its task was in flight: cancel it if still queued,
    #: else let it finish and keep the render in the state without writing any output
    obsolete: bool = False
    cancelled: bool = False

    @property
    def v2(self) -> bool:
        return self.api is facts.Api.V2

    @property
    def name(self) -> str:
        return self.targets[0].job.name if self.targets else self.key


class _Staging:
    """A download's staging file, made by a wire thread (:func:`files.create_staging`) and
    removed if the download is abandoned: at once if it is made, else by the thread as soon as
    it has made it, so a download cancelled while the thread works leaves nothing behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._abandoned = False

    def create(self, target: Path) -> Path:
        """Blocking (on a wire thread): make the staging file of ``target``."""
        staging = create_staging(target)
        with self._lock:
            if not self._abandoned:
                self._path = staging
                return staging
        staging.unlink(missing_ok=True)
        return staging

    def abandon(self) -> None:
        """The download failed or was cancelled: its staging file goes, now or once made."""
        with self._lock:
            self._abandoned = True
            path, self._path = self._path, None
        if path is not None:
            path.unlink(missing_ok=True)


class _Placed(NamedTuple):
    """A video put in place at an output by the wire's threads: its size, SHA-256 and the mtime
    the file had right after the rename (stat there, not on the scheduler's thread)."""

    path: Path
    size: int
    sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class _Result:
    call: Call
    render: _Render
    value: Any
    error: BaseException | None


@dataclass(frozen=True)
class _Replan:
    make_plan: Callable[[Store], Plan]


@dataclass(frozen=True)
class _StopRequest:
    pass


_Control = Union[_Replan, _StopRequest]


@dataclass
class _Group:
    """The state writes of one scheduler turn, committed together (see Runner._grouped)."""

    #: task ids recorded in the group: if its commit fails, they are reported unsaved
    task_ids: list[tuple[_Render, str]] = field(default_factory=list)
    #: its transaction is open (begun by its first write: a turn that writes nothing costs nothing)
    begun: bool = False
    #: the commit failed: nothing written in the group was kept
    failed: bool = False
    #: the events of the turn, delivered once its writes are committed (see Runner._emit)
    events: list[RunEvent] = field(default_factory=list)
    #: an exception (a Ctrl-C, a bug) left a write in it half made: it cannot be committed
    torn: bool = False


class _Inbox:
    """What wakes the scheduler: the wire's results and control messages, on separate channels
    of one inbox, so one wait serves both (the wire's loop while it runs, through :attr:`wake`
    for controls from other threads; this condition before its first call). The answers of creates
    (those driven inline; on the loop they skip the inbox, :attr:`_Wire.on_create`) come out
    first: a task id is only in the journal until it is saved, so it never waits behind other
    jobs' polls and downloads (issue 15: the answer-to-commit window). A ``queue.SimpleQueue`` here and for the
    workers' tasks cost no less CPU and made that window 2-5 times longer (workers woke faster
    and kept the scheduler from the interpreter)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._created: deque[_Result] = deque()
        self._results: deque[_Result] = deque()
        self._controls: deque[_Control] = deque()
        #: set by the wire while its loop runs: ends a wait of the scheduler from any thread
        self.wake: Callable[[], None] | None = None

    def put_result(self, item: _Result) -> None:
        with self._cond:
            (self._created if item.call is Call.CREATE else self._results).append(item)
            self._cond.notify()

    def put_control(self, item: _Control) -> None:
        with self._cond:
            self._controls.append(item)
        self.poke()

    def poke(self) -> None:
        """End the current wait, whichever it is (this condition's, or the loop's through
        :attr:`wake`): a control came, or a Ctrl-C (then from a signal handler, on the
        scheduler's own thread between two of its bytecodes, to look at ``stop``, see
        :meth:`wait`; the condition's lock is reentrant, so that is safe while the scheduler
        holds it)."""
        with self._cond:
            self._cond.notify()
            wake = self.wake
        if wake is not None:
            wake()

    def wait(self, timeout: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Until something arrives, ``stop()`` is true, or ``timeout``; whether either happened."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._created or self._results or self._controls) or stop(), max(0.0, timeout))

    def take_result(self, *, created: bool | None = None) -> _Result | None:
        """See :meth:`_Wire.take`."""
        with self._cond:
            if self._created:
                return None if created is False else self._created.popleft()
            return self._results.popleft() if self._results and not created else None

    def take_control(self) -> _Control | None:
        with self._cond:
            return self._controls.popleft() if self._controls else None

    def empty(self) -> bool:
        with self._cond:
            return not (self._created or self._results or self._controls)

    def has_results(self) -> bool:
        with self._cond:
            return bool(self._created or self._results)


class _CreateQueue:
    """Renders waiting for their create: one FIFO per API, so a V2 render held by its own limits
    does not hold back the V1 renders behind it (nor the reverse), and finding the next create
    looks at two heads, not the whole queue (issue 15: scanning it on every turn of the loop
    made a first run of 10,000 jobs quadratic). Across APIs, renders keep the order they were
    queued in (a render put back at the front goes before all)."""

    def __init__(self) -> None:
        self._fifos: dict[facts.Api, deque[tuple[int, _Render]]] = {api: deque() for api in facts.Api}
        self._last = 0
        self._first = 0

    def append(self, render: _Render) -> None:
        self._last += 1
        self._fifos[render.api].append((self._last, render))

    def appendleft(self, render: _Render) -> None:
        self._first -= 1
        self._fifos[render.api].appendleft((self._first, render))

    def heads(self) -> list[_Render]:
        """The first render of each API, in queue order."""
        return [render for _, render in sorted(fifo[0] for fifo in self._fifos.values() if fifo)]

    def popleft(self, api: facts.Api) -> _Render:
        return self._fifos[api].popleft()[1]

    def remove(self, render: _Render) -> None:
        fifo = self._fifos[render.api]
        del fifo[next(i for i, (_, r) in enumerate(fifo) if r is render)]

    def apis(self) -> set[facts.Api]:
        return {api for api, fifo in self._fifos.items() if fifo}

    def __iter__(self) -> Iterator[_Render]:
        return (render for _, render in heapq.merge(*self._fifos.values()))

    def __len__(self) -> int:
        return sum(len(fifo) for fifo in self._fifos.values())


#: A call handed to the wire: makes the coroutine (or other awaitable) that does the call.
_Work = Callable[[], Awaitable[Any]]


class _SuspendedInline(RuntimeError):
    """A coroutine driven inline (``workers=0``) waited for something: a bug of the caller."""


def _run_inline(awaitable: Awaitable[T]) -> T:
    """Drive ``awaitable`` to its end on this thread, without an event loop. It must not suspend:
    every call it awaits has to answer at once (a sync client's calls, :meth:`_Wire.offload`
    inline), which is what makes ``workers=0`` deterministic."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    close = getattr(steps, "close", None)
    if close is not None:
        close()
    raise _SuspendedInline(
        f"{awaitable!r} suspended while driven inline (workers=0): something it awaits is asynchronous; "
        "inline mode needs a client whose calls answer at once, or workers > 0"
    )


class _DaemonThreads(concurrent.futures.Executor):
    """Blocking work off the event loop (a sync client's calls, fsync, copies) on up to ``size``
    daemon threads, started as work needs them. Not a ``ThreadPoolExecutor``: since Python 3.9
    its threads are joined at interpreter exit, so one stuck blocking download would keep the
    process alive after Ctrl-C. ``submit`` is called from the loop's thread only."""

    def __init__(self, size: int):
        self._size = max(1, size)
        self._work: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        #: one token per thread waiting for work (a SimpleQueue: a Semaphore's Python-level
        #: condition cost the loop's thread 5% of its time at hundreds of downloads a second)
        self._idle: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._started = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._work.put((future, functools.partial(fn, *args, **kwargs)))
        try:
            self._idle.get_nowait()  # an idle thread takes it
        except queue.Empty:
            if self._started < self._size:
                self._started += 1
                threading.Thread(target=self._serve, name=f"vidbatch-blocking-{self._started}", daemon=True).start()
        return future

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                    future.set_exception(e)
            del item, future, fn  # no reference to a result outlives its call
            self._idle.put(None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let idle threads end; a thread stuck in a call ends with the process (daemon)."""
        for _ in range(self._started):
            self._work.put(None)
        self._started = 0


class _BlockingCalls:
    """An :class:`AsyncApiClient` made of a sync :class:`ApiClient` (a test's fake, or a client
    without ``open_async``): each call runs through ``offload``, on a daemon thread when the wire
    runs (the loop is never blocked), at once when it is inline."""

    def __init__(self, client: ApiClient, offload: Callable[..., Awaitable[Any]]):
        self._client = client
        self._offload = offload

    async def create(self, request: dict[str, Any]) -> str:
        task_id: str = await self._offload(self._client.create, request)
        return task_id

    async def query(self, task_id: str) -> TaskStatus:
        status: TaskStatus = await self._offload(self._client.query, task_id)
        return status

    async def download(self, file_id: str | int, dest: Path) -> Download:
        got: Download = await self._offload(self._client.download, file_id, dest)
        return got

    async def create_v2(self, body: dict[str, Any]) -> str:
        task_id: str = await self._offload(self._client.create_v2, body)
        return task_id

    async def upload_file(self, data: bytes, filename: str) -> str:
        file_id: str = await self._offload(self._client.upload_file, data, filename)
        return file_id

    async def query_v2(self, task_id: str) -> V2Task:
        task: V2Task = await self._offload(self._client.query_v2, task_id)
        return task

    async def list_v2(self, *, created_after: float | None = None) -> V2Page:
        page: V2Page = await self._offload(functools.partial(self._client.list_v2, created_after=created_after))
        return page

    async def cancel_v2(self, task_id: str) -> None:
        await self._offload(self._client.cancel_v2, task_id)

    async def download_v2(self, task_id: str, dest: Path, *, url: str | None = None) -> Download:
        got: Download = await self._offload(functools.partial(self._client.download_v2, task_id, dest, url=url))
        return got

    async def aclose(self) -> None:
        """Nothing: the sync client belongs to whoever made it (and closes it)."""


async def _call_now(fn: Callable[..., T], *args: Any) -> T:
    """An ``offload`` that runs ``fn`` at once, on the caller's thread (inline)."""
    return fn(*args)


def _run_until_complete(loop: asyncio.AbstractEventLoop, aw: Awaitable[T]) -> T:
    """``loop.run_until_complete(aw)``, also when the caller is itself inside a running loop (a
    run started from a notebook's cell or a coroutine): that loop is blocked by this call anyway,
    so it is set aside while ours runs (the event-loop implementers' API) and put back after."""
    outer = asyncio._get_running_loop()
    if outer is None:
        return loop.run_until_complete(aw)
    asyncio._set_running_loop(None)
    try:
        return loop.run_until_complete(aw)
    finally:
        asyncio._set_running_loop(outer)


#: Threads for the local work of a run whose calls are async (see _Wire._start). Issue 15,
#: 5,000-10,000 jobs alternated with 32 threads, 9 pairs: every pair faster (121-177 jobs/s
#: against 100-166), about 0.5 ms less CPU per job (32 idle threads: a thread woken per download).
LOCAL_WORK_THREADS = 4


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Wire:
    """Where the runner's calls run: coroutines on ONE event loop, driven by the scheduler's own
    thread while it waits (:meth:`wait`), with daemon threads beside it for blocking work
    (:meth:`offload`). The loop and the scheduler never run at the same time, so they never
    fight over the interpreter: with the loop on a thread of its own, every SQLite statement of
    the scheduler (each releases the GIL) handed the interpreter to the loop and waited up to a
    switch interval to get it back, calls took 3-4 times longer to answer and a task id 4-5
    times longer to be committed (issue 15). One loop also costs a quarter of the CPU per job of
    a thread per blocking call.

    The scheduler hands calls over with :meth:`submit` and takes results from the inbox
    (:meth:`take`), except creates' answers: :attr:`on_create` takes each in the step of the loop
    that read it. Calls submitted in one turn are started together by the next wait. Controls
    from other threads (:meth:`Runner.replan`, :meth:`Runner.stop`) wake a wait through the
    loop's self-pipe. On the main thread, for the whole run (:meth:`catching_ctrl_c`), a Ctrl-C
    is taken by a handler of the wire's and raised by the scheduler's current or next wait, so
    it never lands inside the loop's callbacks, nor anywhere Python would drop it.

    With ``size`` 0 every call is driven at once on the scheduler's thread (deterministic tests);
    it must not suspend (:func:`_run_inline`). Daemon threads let Ctrl-C end the process promptly
    even in the middle of a long fsync."""

    def __init__(self, size: int, inbox: _Inbox, client: ApiClient):
        self._inbox = inbox
        self._client = client
        self._inline = size == 0
        self._size = size
        self.busy = 0
        self._queued: deque[tuple[Call, _Render, _Work]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: _DaemonThreads | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._calls: AsyncApiClient | None = _BlockingCalls(client, _call_now) if self._inline else None
        #: the future a wait awaits: set by a result, a control or a Ctrl-C
        self._waiter: asyncio.Future[None] | None = None
        #: one item per Ctrl-C not yet raised by a wait (appended by the signal handler: a
        #: deque's append and popleft are single steps, which the handler cannot split)
        self._ctrl_cs: deque[None] = deque()
        #: set by the runner: takes the result of a create on the loop, as it arrives (see
        #: :meth:`_carry`); None: it goes to the inbox with the others
        self.on_create: Callable[[_Result], None] | None = None
        #: what ``on_create`` raised, raised by the wait it happened in
        self._failure: BaseException | None = None
        #: ``on_create`` took a result during the current wait
        self._answered = False

    @property
    def calls(self) -> AsyncApiClient:
        """The client's calls as coroutines; for the coroutines the wire runs."""
        assert self._calls is not None, "the wire is not running"
        return self._calls

    # --- the scheduler's side ------------------------------------------------------------

    def submit(self, call: Call, render: _Render, fn: _Work) -> None:
        """Run ``fn()`` (a coroutine) on the wire; its result or exception reaches the inbox."""
        self.busy += 1
        if self._inline:
            self._inbox.put_result(self._drive_inline(call, render, fn))
            return
        if self._loop is None:
            self._start()
        self._queued.append((call, render, fn))

    def take(self, *, created: bool | None = None) -> _Result | None:
        """The next result, the answers of creates first; with ``created``, only those; with
        ``created=False``, only the others, and none while a create's answer waits."""
        item = self._inbox.take_result(created=created)
        if item is not None:
            self.busy -= 1
        return item

    def wait(self, timeout: float) -> bool:
        """Run the calls until a result or a control arrives, or ``timeout`` passes; whether
        something arrived. Calls submitted since the last wait start first. A Ctrl-C taken by
        :meth:`catching_ctrl_c` since the last wait, or during this one, is raised here (one per
        wait: a second Ctrl-C is raised by the next)."""
        self._raise_ctrl_c()
        loop = self._loop
        if loop is None:  # nothing on the wire (or inline): only a control or a Ctrl-C can come
            arrived = self._inbox.wait(timeout, stop=lambda: bool(self._ctrl_cs))
        else:
            self._start_queued()
            self._answered = False
            waiting = loop.create_task(self._until_woken(max(0.0, timeout)))
            try:
                _run_until_complete(loop, waiting)
            except BaseException:
                waiting.cancel()  # cut short (a KeyboardInterrupt of an application's handler): ends at the next run of the loop
                raise
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            arrived = self._answered or not self._inbox.empty()
        self._raise_ctrl_c()
        return arrived

    def catching_ctrl_c(self) -> contextlib.AbstractContextManager[None]:
        """For the block (a run), on the main thread with Python's own SIGINT handler: a Ctrl-C
        is noted and ends the current wait, which raises it (:func:`interrupts.noted`: raised
        anywhere else, it could be dropped). An application's own handler is left alone."""
        return interrupts.noted(self._note_ctrl_c)

    def _note_ctrl_c(self) -> None:
        self._ctrl_cs.append(None)
        self._inbox.poke()

    def _raise_ctrl_c(self) -> None:
        if self._ctrl_cs:
            self._ctrl_cs.popleft()
            raise KeyboardInterrupt

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` on a daemon thread and await it (inline: run it now)."""
        if self._inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def close(self, timeout: float = 5.0) -> None:
        """End of a run: cancel calls still on the wire (their tasks stay as the state says;
        nobody waits for them), await the calls' ``aclose``, close the loop. Bounded by
        ``timeout``: a stuck call is left to its daemon thread."""
        if self._inline:
            _run_inline(self.calls.aclose())
            return
        loop, threads, calls = self._loop, self._threads, self._calls
        if loop is None or threads is None or calls is None:
            return
        self._loop = self._threads = self._calls = None
        self._inbox.wake = None
        self.on_create = None  # a create answering while the wire closes: nobody takes it now (the journal has it)
        self._queued.clear()
        try:
            _run_until_complete(loop, asyncio.wait_for(self._wind_down(calls), timeout))
        except Exception as e:  # noqa: BLE001 - a close that fails loses nothing the run made
            log.warning("could not close the API client's connections: %r", e)
        finally:
            loop.close()
            threads.shutdown(wait=False)

    def _start(self) -> None:
        """Make the loop and open the calls on it (``open_async`` must be called with the loop
        running); what opening raises is raised here."""
        loop = asyncio.new_event_loop()
        open_async: Callable[[], AsyncApiClient] | None = getattr(self._client, "open_async", None)
        # With async calls the threads only do local work (fsync and rename, copies, reading
        # media): a few are enough, and with fewer, each wakes less often. A sync client's calls
        # each hold a thread for as long as they take, so they get all ``size``.
        self._threads = _DaemonThreads(min(self._size, LOCAL_WORK_THREADS) if open_async is not None else self._size)

        async def open_calls() -> AsyncApiClient:
            return open_async() if open_async is not None else _BlockingCalls(self._client, self.offload)

        try:
            self._calls = _run_until_complete(loop, open_calls())
        except BaseException:
            loop.close()
            self._threads.shutdown(wait=False)
            self._threads = None
            raise
        self._loop = loop
        self._inbox.wake = functools.partial(self._wake_from, loop)

    # --- the loop's side -----------------------------------------------------------------

    def _start_queued(self) -> None:
        loop = self._loop
        assert loop is not None
        while self._queued:
            call, render, fn = self._queued.popleft()
            task = loop.create_task(self._carry(call, render, fn))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _until_woken(self, timeout: float) -> None:
        """Until :meth:`_wake` or ``timeout``; with something in the inbox already, one turn
        of the loop (the calls just started take their first step)."""
        loop = asyncio.get_running_loop()
        if self._ctrl_cs or not self._inbox.empty():  # a Ctrl-C may have come before this step
            return
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self._waiter is waiter:  # not a later wait's (after a Ctrl-C left this one behind)
                self._waiter = None

    def _wake(self) -> None:
        """On the loop: end the current wait, if any."""
        if self._waiter is not None:
            _settle(self._waiter)

    def _wake_from(self, loop: asyncio.AbstractEventLoop) -> None:
        """From any thread (a control): end the current wait, or the next (which finds the
        control first anyway)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(self._wake)

    async def _carry(self, call: Call, render: _Render, fn: _Work) -> None:
        try:
            value: Any = await fn()
            error: BaseException | None = None
        except asyncio.CancelledError:
            raise  # the wire is closing: nobody waits for this result
        except (KeyboardInterrupt, SystemExit):
            raise  # not a failure of the call (a SIGINT handler of the application's): out of the wait
        except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which decides
            value, error = None, e
        result = _Result(call, render, value, error)
        if call is Call.CREATE and self.on_create is not None:
            # Taken now, in this step of the loop: the scheduler is parked in its wait, and the
            # task id is committed before the loop runs anything else (issue 15: through the
            # inbox it waited for the rest of the loop's turn, up to 11 ms at p99 under load).
            self.busy -= 1
            self._answered = True
            try:
                self.on_create(result)
            except BaseException as e:  # noqa: BLE001 - raised by the wait, on the scheduler's side
                self._failure = self._failure or e
        else:
            self._inbox.put_result(result)
        self._wake()

    async def _wind_down(self, calls: AsyncApiClient) -> None:
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=1.0)
        await calls.aclose()

    @staticmethod
    def _drive_inline(call: Call, render: _Render, fn: _Work) -> _Result:
        try:
            value = _run_inline(fn())
        except _SuspendedInline:
            raise  # a bug, not a failure of the call: the policy must not judge it
        except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which decides
            return _Result(call, render, None, e)
        return _Result(call, render, value, None)


class Runner:
    def __init__(
        self,
        store: Store,
        client: ApiClient,
        options: RunOptions = RunOptions(),
        on_event: Callable[[RunEvent], None] | None = None,
        *,
        clock: Clock | None = None,
        workers: int | None = None,
        dependents: Callable[[Store, list[PlannedJob], set[str]], Plan] | None = None,
    ):
        """``clock`` defaults to the system's; ``workers`` (the wire's threads for blocking work:
        a sync client's calls, fsyncs, copies) to ``concurrency`` (4..32), of which a client with
        async calls uses :data:`LOCAL_WORK_THREADS` at most; 0 runs every call on the scheduler's thread. ``dependents`` is the dependency step of chained
        shots (see the module docstring); without it, ``wait`` jobs are left unfinished."""
        self.store = store
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda e: None)
        self.clock: Clock = clock or SystemClock()
        self.progress = Progress(self.clock)
        self.result = RunResult(self.progress)
        self._limits = options.limits()
        self._inbox = _Inbox()
        self._wire = _Wire(max(4, min(options.concurrency, 32)) if workers is None else workers, self._inbox, client)
        self._wire.on_create = self._take_answer
        self._creates = _CreateQueue()
        self._timers: list[tuple[float, int, Call, _Render]] = []  # heap of (due, seq, call, render)
        self._seq = 0
        self._in_flight: set[str] = set()  # keys created (or being created) and not yet downloaded
        self._creating: set[str] = set()  # keys whose create call is on the wire
        self._next_create_at = 0.0
        self._paused_until = 0.0
        self._rate_limits_in_row: Counter[Call] = Counter()  # per call, since its last success
        self._stop_creates = False
        self._keep_alive = False
        self._idle_announced = True  # "idle" is announced after activity, not at an empty start
        self._state_error: BaseException | None = None
        #: the state database was deleted under the run and could not be put back: the task ids
        #: of renders it leaves unfinished are kept nowhere else (reported unsaved at the end)
        self._state_lost = False
        self._next_state_check = 0.0  # clock time of the loop's next _state_in_place
        #: the state writes of this scheduler turn, while they are being made (see _grouped)
        self._open_group: _Group | None = None
        #: output folders this run creates renders for, claimed against runs of other state folders
        self._claims: dict[Path, Any] = {}
        #: the outputs index entries of this run, written in batches (see outputs_index.Writer)
        self._indexes = outputs_index.Writer()
        self._journal = store.journal
        #: the outputs indexes read while skipping up-to-date jobs, by folder
        self._index_cache: dict[str, dict[str, outputs_index.IndexEntry]] = {}
        #: (task_id, file_id) of renders this run created or polled to the end, by key
        self._ids: dict[str, tuple[str | None, str | None]] = {}
        #: V2: renders whose lost create the task list is being asked about, by key; while any
        #: is, no V2 create is sent (see _v2_wire_busy)
        self._reconciling: dict[str, _Render] = {}
        self._next_v2_create_at = 0.0
        #: no V2 create before this (monotonic): one created_at step after the last one answered
        self._v2_wire_free_at = 0.0
        self._v2_in_flight: set[str] = set()
        #: V2 renders in flight by key: a replan may make one obsolete (then it is cancelled)
        self._v2_renders: dict[str, _Render] = {}
        #: V2 media uploaded in this run: sha256 -> file id (sent as mm_file://ID)
        self._uploaded: dict[str, str] = {}
        #: chained shots waiting for a source rendered in this run, and the step that starts them
        self._dependents = dependents
        self._waiting: dict[JobId, PlannedJob] = {}
        self._dependents_due = False

    # --- public -------------------------------------------------------------------------

    def run(self, plan: Plan | None = None, *, keep_alive: bool = False) -> RunResult:
        """Carry out ``plan``. With ``keep_alive`` (watch mode) the runner stays up when idle,
        taking new plans from :meth:`replan`, until :meth:`stop`."""
        self._keep_alive = keep_alive
        # The plan's objects live as long as the run: the cyclic collector need not walk them
        # again (a full collection over 10,000 jobs' objects stalled every thread ~0.1 s).
        gc.freeze()
        # a Ctrl-C is raised by a wait, never elsewhere; one during the clean-up (a second Ctrl-C
        # soon after the first) is noted and not raised, so the clean-up is never cut short
        with self._wire.catching_ctrl_c():
            try:
                try:
                    with self.store.checkpoints_elsewhere():  # no commit of the scheduler waits for a checkpoint
                        self._write(self.store.replay_journal)  # done by the session already; a plan may count on it
                        self._take_open_intents()
                        if plan is not None:
                            self._take_plan(plan)
                        self._loop()
                except KeyboardInterrupt:
                    self._interrupt()
            finally:
                self._indexes.flush()
                self._release_claims()
                self._state_in_place()  # a run interrupted (or done) within a second of losing it
                self._settle_journal()
                self._finish()
                gc.unfreeze()
                self._wire.close()
        return self.result

    def _settle_journal(self) -> None:
        """Empty the task-id journal if every task id in it is committed; otherwise it is kept
        (a write refused, a crash), and the next start replays it."""
        self._journal.clear()

    def replan(self, make_plan: Callable[[Store], Plan]) -> None:
        """Thread-safe: have the scheduler call ``make_plan(store)`` and start what it adds.
        Renders already queued or in flight are left as they are (never cancelled or created
        again); their results stay in the state for reuse."""
        self._inbox.put_control(_Replan(make_plan))

    def stop(self) -> None:
        """Thread-safe: behave as on a first Ctrl-C (stop creating, save creates on the wire)."""
        self._inbox.put_control(_StopRequest())

    # --- planning -----------------------------------------------------------------------

    def _take_plan(self, plan: Plan) -> None:
        self._supersede_queued(plan)
        self._cancel_obsolete(plan)
        for manifest in {str(m) for m in plan.manifests}:
            self.progress.forget(manifest, {job_id(pj) for pj in plan.jobs})
        self._attach_to_reconciling(plan)
        active = self._active_keys()
        fresh = [pj for pj in plan.jobs if pj.job.key not in active]
        plan = Plan(fresh, plan.orphans, gone=plan.gone)
        self._emit(EventKind.START, f"{len(fresh)} job{'' if len(fresh) == 1 else 's'}, {len(plan.billable)} to render", data=plan.summary())
        plan = self._set_aside_chained(plan)
        renders = self._group(plan)
        self._save(self._record_seen, renders.values())
        try:
            with self.store.transaction():  # one transaction for the bookkeeping of up-to-date jobs
                for render in renders.values():
                    self._start(render)
        except Exception as e:  # the commit itself failed
            if not is_state_write_error(e):
                raise
            self._state_failed(e)

    def _set_aside_chained(self, plan: Plan) -> Plan:
        """The plan without its chained shots that wait (kept for the dependency step) or are
        blocked (not started, with the reason); a new plan of a manifest replaces its waiting jobs."""
        manifests = {str(m) for m in plan.manifests}
        for jid in [jid for jid in self._waiting if jid[0] in manifests]:
            del self._waiting[jid]
        rest = []
        for pj in plan.jobs:
            if pj.action is Action.WAIT:
                self._waiting[job_id(pj)] = pj
                self.progress.mark(job_id(pj), pj.job.key, JobPhase.QUEUED)
                self._emit(EventKind.WAIT, pj.reason, job_name=pj.job.name)
            elif pj.action is Action.BLOCKED:
                self._not_started(pj)
            else:
                rest.append(pj)
        self._dependents_due = bool(self._waiting)  # a source found up to date may already serve them
        return Plan(rest, plan.orphans)

    def _not_started(self, pj: PlannedJob, reason: str | None = None) -> None:
        self.progress.mark(job_id(pj), pj.job.key, JobPhase.UNFINISHED)
        self._emit(EventKind.BLOCKED, f"not started: {reason or pj.reason}", job_name=pj.job.name)

    def _start_dependents(self, *, final: bool = False) -> bool:
        """The dependency step: plan the waiting chained shots against the live store and start
        those whose frames are ready. ``final`` (nothing else left to do): jobs still waiting are
        left unfinished. Returns whether anything was started."""
        self._dependents_due = False
        if not self._waiting:
            return False
        waiting = list(self._waiting.values())
        if self._dependents is None:
            plan = Plan(waiting, [])
        else:
            try:
                plan = self._dependents(self.store, waiting, self._active_keys())
            except errors.VidbatchError as e:  # a frame that cannot be kept, a state that cannot be read
                for pj in waiting:
                    self._not_started(pj, str(e))
                self._waiting.clear()
                return False
        ready = []
        for pj in plan.jobs:
            jid = job_id(pj)
            if jid not in self._waiting:
                continue
            if pj.action is Action.WAIT:
                self._waiting[jid] = pj
                if final:
                    del self._waiting[jid]
                    self._not_started(pj, f"{pj.reason.split(':')[0]}, which did not finish in this run")
                continue
            del self._waiting[jid]
            if pj.action is Action.BLOCKED:
                self._not_started(pj)
            elif pj.action is Action.FAILED and pj.record is None:  # its frame breaks the image rules
                self.progress.mark(jid, pj.job.key, JobPhase.FAILED)
                self._emit(EventKind.FAILED, f"not submitted: {pj.reason}", job_name=pj.job.name)
            else:
                ready.append(pj)
        active = self._active_keys()
        ready = [pj for pj in ready if pj.job.key not in active]
        if not ready:
            return False
        renders = self._group(Plan(ready, []))
        self._save(self._record_seen, renders.values())
        for render in renders.values():
            self._start(render)
        return True

    def _active_keys(self) -> set[str]:
        return self._in_flight | {r.key for r in self._creates} | set(self._reconciling)

    def _supersede_queued(self, plan: Plan) -> None:
        """A new plan of a manifest replaces that manifest's jobs in renders still waiting to be
        created: work an edit made obsolete is dropped before it is paid for, and a renamed job
        gets its new output path. Renders already created are never touched."""
        manifests = plan.manifests
        wanted: dict[str, list[PlannedJob]] = {}
        for pj in plan.jobs:
            if pj.action in (Action.SUBMIT, Action.RESUBMIT):
                wanted.setdefault(pj.job.key, []).append(pj)
        for render in list(self._creates):
            kept = [pj for pj in render.targets if pj.job.manifest not in manifests]
            new = wanted.pop(render.key, [])
            if kept or new:
                render.targets = kept + new
                self._mark(render, JobPhase.QUEUED, planning=True)
                continue
            self._creates.remove(render)
            self._emit(EventKind.DROPPED, "no longer wanted after an edit; not created", render)

    def _group(self, plan: Plan) -> dict[str, _Render]:
        renders: dict[str, _Render] = {}
        for pj in plan.jobs:
            # a restore gives an output an earlier video of its key: a unit of work of its own
            group = pj.job.key if pj.restore is None else f"{pj.job.key}#{pj.restore.sha256}"
            renders.setdefault(group, _Render(pj.job.key, [], restore=pj.restore, api=pj.job.api)).targets.append(pj)
        # the job that decides a render's fate is the one with the most work to do
        order = [Action.RESUME, Action.RESUBMIT, Action.SUBMIT, Action.DOWNLOAD, Action.REUSE, Action.UNCERTAIN, Action.GONE, Action.FAILED, Action.SKIP]
        for render in renders.values():
            render.targets.sort(key=lambda pj: order.index(pj.action))
        return renders

    def _record_seen(self, renders: Iterable[_Render]) -> None:
        """Make sure every render has a state row named after its lead job, in one transaction;
        rows the plan already read and whose name is current cost nothing."""
        seen = []
        for render in renders:
            lead = render.targets[0]
            job, record = lead.job, lead.record
            if record is not None and (record.name, record.manifest) == (job.name, str(job.manifest)):
                continue
            summary = rules.summarize(job.identity_request())
            seen.append(
                dict(
                    key=render.key,
                    request=job.display_request(),
                    model=summary.model,
                    mode=summary.mode.value,
                    duration=summary.duration,
                    resolution=summary.resolution,
                    prompt=job.request.get("prompt"),
                    name=job.name,
                    manifest=str(job.manifest),
                )
            )
        if seen:
            self.store.record_seen_many(seen)

    def _start(self, render: _Render) -> None:
        lead = render.targets[0]
        if render.v2 and lead.action is Action.UNCERTAIN and lead.record is not None and lead.record.state is RenderState.SUBMITTING:
            self._mark(render, JobPhase.QUEUED, planning=True)  # its lost create is being looked for
            return
        for pj in render.targets:
            if pj.action is Action.SKIP:
                self._skip(pj)
        pending = [pj for pj in render.targets if pj.action is not Action.SKIP]
        if not pending:
            return
        render.targets = pending
        action = lead.action
        if action in (Action.SUBMIT, Action.RESUBMIT):
            busy = sorted({str(folder) for pj in render.targets if not self._claim(folder := pj.job.output.parent)})
            if busy:
                self._mark(render, JobPhase.UNFINISHED, planning=True)
                self._emit(
                    EventKind.ERROR,
                    f"not created: another vidbatch run (with another state folder) is writing to {', '.join(busy)}; "
                    "run again when it has finished: its videos are adopted, not paid again",
                    render,
                )
                return
            self._mark(render, JobPhase.QUEUED, planning=True)
            self._creates.append(render)
        elif action is Action.RESUME:
            assert lead.record is not None
            render.task_id = lead.record.task_id
            self._enter_flight(render, planning=True)
            self._schedule(Call.POLL, render, 0.0)
        elif action is Action.DOWNLOAD:
            assert lead.record is not None
            render.file_id = render.restore.file_id if render.restore else lead.record.file_id
            if render.restore is None:
                self._enter_flight(render, planning=True)
            else:  # not the render's own download: never blocks or counts as its flight
                self._mark(render, JobPhase.RUNNING, planning=True)
            self._download(render)
        elif action is Action.REUSE:
            src = lead.source
            assert src is not None
            self._mark(render, JobPhase.RUNNING, planning=True)
            self._wire.submit(Call.COPY, render, functools.partial(self._copy_to, list(render.targets), Path(src.path), src.size, src.sha256))
        elif action is Action.FAILED:
            self._mark(render, JobPhase.FAILED, planning=True)
            rec = lead.record
            self._emit(EventKind.FAILED, lead.reason, render, previously=True, code=rec.error_code if rec else None, trace_id=rec.trace_id if rec else None)
        elif action is Action.UNCERTAIN:
            self._mark(render, JobPhase.UNCERTAIN, planning=True)
            self._emit(EventKind.UNCERTAIN, lead.reason, render)
        elif action is Action.GONE:
            self._mark(render, JobPhase.GONE, planning=True)
            self._emit(EventKind.ERROR, lead.reason, render, gone=True, previously=True)

    def _claim(self, folder: Path) -> bool:
        """Claim an output folder for creates (see outputs_index.claim); False: another run has it."""
        if folder not in self._claims:
            lock = outputs_index.claim(folder)
            if lock is None:
                return False
            self._claims[folder] = lock
        return True

    def _release_claims(self) -> None:
        for lock in self._claims.values():
            try:
                lock.release()
            except OSError as e:  # pragma: no cover - a vanished folder
                log.info("could not release %s: %s", lock, e)
        self._claims.clear()

    def _skip(self, pj: PlannedJob) -> None:
        job = pj.job
        self.progress.mark(job_id(pj), job.key, JobPhase.DONE)
        self._dependents_due = bool(self._waiting)
        if pj.adopt and pj.indexed is not None:  # a lost or another state's output, proved by sha256
            st = job.output.stat()
            entry = pj.indexed
            self._save(
                self.store.record_adopted, job.key, job.output, size=st.st_size, sha256=entry.sha256, mtime_ns=st.st_mtime_ns,
                task_id=entry.task_id, file_id=entry.file_id, name=job.name, manifest=str(job.manifest), source=entry.state,
            )
        elif pj.adopt:
            st = job.output.stat()
            rec = self.store.get(job.key)
            assert rec is not None and rec.video_sha256
            if rec.state is RenderState.DONE:
                self._save(self.store.record_downloaded, job.key, job.output, size=st.st_size, sha256=rec.video_sha256, mtime_ns=st.st_mtime_ns, name=job.name, manifest=str(job.manifest), event="adopted")
        elif pj.new_mtime_ns is not None:  # re-hashed intact by the plan: remember the new mtime
            self._save(self.store.record_output_checked, job.output, mtime_ns=pj.new_mtime_ns)
        if pj.indexed is None:
            self._index_if_missing(pj)
        self._emit(EventKind.SKIP, pj.reason, job_name=job.name, key=job.key)

    def _index_if_missing(self, pj: PlannedJob) -> None:
        """An up-to-date output recorded before outputs were indexed (or whose index was lost)
        gets its entry, so that losing this state later costs nothing either."""
        job, out, rec = pj.job, pj.output, pj.record
        sha = out.sha256 if out is not None and out.key == job.key else (rec.video_sha256 if pj.adopt and rec else None)
        if sha is None:
            return
        folder, name = os.path.split(job.output)  # strings: cheaper than Path keys, per skipped job
        if folder not in self._index_cache:
            self._index_cache[folder] = outputs_index.read_index(Path(folder))
        entry = self._index_cache[folder].get(name)
        if entry is not None and entry.key == job.key and entry.sha256 == sha:
            return
        own = rec is not None and rec.video_sha256 == sha
        size = out.size if out is not None and out.key == job.key else (rec.video_bytes if rec and rec.video_bytes else 0)
        self._index(job.output, job.key, sha, size, rec.task_id if own and rec else None, rec.file_id if own and rec else None)

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            if self._dependents_due:
                self._start_dependents()
            now = self.clock.now()
            if now >= self._next_state_check:
                self._state_in_place()
            self._dispatch_creates(now)
            self._dispatch_timers(now)
            idle = not (self._creates and not self._stop_creates) and not self._timers and self._wire.busy == 0
            if idle and self._waiting and self._inbox.empty():
                if self._start_dependents(final=True):
                    continue
            if idle and not self._keep_alive:
                return
            if idle:
                self._indexes.flush()
                self._settle_journal()  # watch: a long life of creates does not grow it
            else:
                self._indexes.flush_due()
            if idle and not self._idle_announced and self._inbox.empty():
                self._idle_announced = True
                self._emit(EventKind.IDLE, "nothing queued or in flight")
            self.clock.wait(self._wire.wait, self._wait_time(self.clock.now()))
            self._handle_results()
            while (control := self._inbox.take_control()) is not None:
                if isinstance(control, _StopRequest):
                    self._interrupt()
                    return
                self._idle_announced = False
                self._take_plan(control.make_plan(self.store))

    def _take_answer(self, result: _Result) -> None:
        """A create's answer, taken on the wire's loop as it arrives (the scheduler is parked in
        its wait: nothing of its own is half done): handled at once, in a group of its own, so
        its task id is committed before the loop goes on with other calls (answer-to-commit)."""
        assert self._open_group is None, "a wait is never inside a group of writes"
        with self._grouped():
            self._handle(result)

    def _handle_results(self) -> None:
        """Take in what the wire finished, a group of writes at a time (:meth:`_grouped`): the
        answers of creates first, committed together; then the rest, until another create is
        answered (its task id is not kept waiting behind other jobs' writes: answer-to-commit).
        On the loop, creates' answers do not come here: :meth:`_take_answer` takes them as they
        arrive; driven inline (``workers=0``) they all do."""
        while True:
            with self._grouped():
                while (result := self._wire.take(created=True)) is not None:
                    self._handle(result)
            with self._grouped():
                while (result := self._wire.take(created=False)) is not None:
                    self._handle(result)
            if not self._inbox.has_results():
                return

    def _wait_time(self, now: float) -> float:
        due = [1.0]
        if self._timers:
            due.append(self._timers[0][0] - now)
        if self._creates and not self._stop_creates and len(self._in_flight) < self.options.concurrency:
            due.append(self._create_due(now) - now)
        return max(0.0, min(due))

    def _dispatch_creates(self, now: float) -> None:
        """Send the creates that are due: their intents are committed together first (one
        transaction for the turn), and no create is sent before its intent is committed."""
        assert self._open_group is None, "intents are committed before their creates are sent"
        sends: list[tuple[_Render, _Work]] = []
        try:
            with self._grouped(keep_on_error=False) as group:
                self._record_intents(now, sends)
        except BaseException:  # a Ctrl-C: the intents are rolled back, and nothing was sent
            self._unsend(sends)
            raise
        if group.failed:  # no intent was kept, so no create may go
            self._unsend(sends)
            return
        for render, work in sends:
            self._emit(EventKind.SUBMIT, render.targets[0].reason, render)
            self._wire.submit(Call.CREATE, render, work)

    def _unsend(self, sends: list[tuple[_Render, _Work]]) -> None:
        """Creates whose intents were not kept go back to the queue, in order: they stay new."""
        for render, _ in reversed(sends):
            self._leave_flight(render)
            self._creating.discard(render.key)
            self._requeue(render, front=True)

    def _record_intents(self, now: float, sends: list[tuple[_Render, _Work]]) -> None:
        checked = False  # the state database is checked once a turn: its intents commit together, before any create goes
        while self._creates and not self._stop_creates and len(self._in_flight) < self.options.concurrency:
            render = self._next_create(now)
            if render is None:
                return
            if not checked and not self._state_in_place():
                return
            checked = True
            self._creates.popleft(render.api)
            job = render.targets[0].job
            try:  # reads the images: before the intent, so a failure here cannot look like a lost create
                # (a V2 body is built on the wire, after any upload: see _create_v2)
                request = None if render.v2 else job.api_request()
            except errors.VidbatchError as e:
                self._mark(render, JobPhase.UNFINISHED)
                self._emit(EventKind.ERROR, f"not submitted: {e}", render)
                continue
            if render.v2:
                self._next_v2_create_at = max(now, self._next_v2_create_at) + 60.0 / self.options.v2_rpm
            else:
                self._next_create_at = max(now, self._next_create_at) + 60.0 / self.options.rpm
            reason = render.targets[0].reason
            shape = v2_shape(job.request).to_json() if render.v2 else None
            intent = self._write(self.store.record_intent, render.key, name=render.name, reason=reason, v2_shape=shape)
            if intent is _UNSAVED:
                self._creates.appendleft(render)  # no intent saved, so no create sent: stays new
                return
            self._enter_flight(render)
            self._creating.add(render.key)
            if render.v2:
                sends.append((render, functools.partial(self._create_v2, job, intent.attempts)))
            else:
                assert request is not None
                sends.append((render, functools.partial(self._create_v1, request, render.key, intent.attempts)))

    async def _create_v1(self, request: dict[str, Any], key: str, attempt: int) -> str:
        """Wire side: create, and journal the task id before handing it to the scheduler (on the
        loop, right after the answer: no other step comes between them)."""
        task_id = await self._wire.calls.create(request)
        self._journal.note(key, attempt, task_id)
        return task_id

    async def _create_v2(self, job: Any, attempt: int) -> str:
        """Wire side: upload the media the body cannot carry inline (once per content: file ids
        are kept for the run), build the V2 body, create, journal the task id. Only one V2
        create runs at a time, so the upload map needs no lock. A failure before ``create_v2``
        is never a lost create. Reading the media (files, base64) is blocking work: offloaded."""
        calls, offload = self._wire.calls, self._wire.offload
        for ref in await offload(job.v2_uploads, self._uploaded):
            self._uploaded[ref.sha256] = await calls.upload_file(await offload(ref.content), ref.upload_name())
        task_id = await calls.create_v2(await offload(job.v2_body, self._uploaded))
        self._journal.note(job.key, attempt, task_id)
        return task_id

    # --- V2 pacing: its own rate and in-flight limit, one create on the wire ------------------

    def _v2_wire_busy(self) -> bool:
        """A V2 create is on the wire, or a lost one is being looked for in the task list: the
        next V2 create waits, so no two of vidbatch's own creates can be confused there."""
        return bool(self._reconciling) or any(key in self._v2_in_flight for key in self._creating)

    def _can_create(self, render: _Render, now: float) -> bool:
        if now < self._paused_until:
            return False
        if not render.v2:
            return now >= self._next_create_at
        limit = min(self.options.concurrency, self.options.v2_concurrency)
        return now >= max(self._next_v2_create_at, self._v2_wire_free_at) and len(self._v2_in_flight) < limit and not self._v2_wire_busy()

    def _next_create(self, now: float) -> _Render | None:
        """The first render that may be created now (the head of its API's queue)."""
        return next((render for render in self._creates.heads() if self._can_create(render, now)), None)

    def _create_due(self, now: float) -> float:
        """When the next create may go, as far as pacing says (a busy V2 wire wakes the loop
        through its result)."""
        apis = self._creates.apis()
        due = [self._next_create_at] if facts.Api.V1 in apis else []
        v2_limit = min(self.options.concurrency, self.options.v2_concurrency)
        if facts.Api.V2 in apis and len(self._v2_in_flight) < v2_limit and not self._v2_wire_busy():
            due.append(max(self._next_v2_create_at, self._v2_wire_free_at))
        return max(min(due, default=now + 3600.0), self._paused_until)

    def _state_in_place(self) -> bool:
        """Is the state database still the file this run writes? Asked before each turn's
        creates, and by the loop at most every :data:`STATE_CHECK_INTERVAL` seconds (a run with
        nothing left to create still polls). One deleted under the run would take every task id
        with it, and the next run would pay again; its lock file goes with it, and another run
        could start on the same manifests. So no new render is created, and the store puts the
        database back from its open connection with the run lock (:meth:`Store.put_back`): the
        renders already paid for are collected into it, and the next run resumes the rest. If it
        cannot be put back, the run goes on as when the state cannot be written
        (:meth:`_state_failed`), and the task ids it leaves unfinished are reported unsaved."""
        self._next_state_check = self.clock.now() + STATE_CHECK_INTERVAL
        if self._state_lost or self.store.in_place():
            return not self._state_lost
        self._stop_creates = True
        lost = f"the state folder {self.store.state_dir} lost its database {self.store.path.name} (deleted or replaced) while this run was using it"
        try:
            self.store.put_back()
        except errors.StateError as e:
            self._state_lost = True
            self._state_failed(errors.StateError(f"{lost}, and it could not be put back: {e}"))
            return False
        if self.result.stopped is None:
            self.result.stopped = Stop.STATE
        self.result.stop_message = (
            f"{lost}; it was put back from the run's open database and the run lock taken again; "
            "no new renders were created after it; run again to finish the jobs left"
        )
        self._emit(EventKind.STATE_ERROR, f"{lost}; put back from the run's open database (run lock taken again); no new renders; tasks already running are still collected")
        self._idle_announced = False  # watch: "idle" once they are, and the session ends
        return False

    def _dispatch_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, call, render = heapq.heappop(self._timers)
            if render.cancelled:
                continue
            if call is Call.POLL:
                task_id = render.task_id
                assert task_id is not None
                self._wire.submit(Call.POLL, render, functools.partial(self._poll, task_id, render.v2))
            elif call is Call.RECONCILE:
                self._ask_task_list(render)
            else:
                self._download(render)

    async def _poll(self, task_id: str, v2: bool) -> TaskStatus | V2Task:
        calls = self._wire.calls
        return await (calls.query_v2(task_id) if v2 else calls.query(task_id))

    def _schedule(self, call: Call, render: _Render, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (self.clock.now() + delay, self._seq, call, render))

    # --- results ------------------------------------------------------------------------

    def _handle(self, result: _Result) -> None:
        if isinstance(result.error, KeyboardInterrupt):
            raise result.error
        self._idle_announced = False
        if result.render.cancelled:
            return  # a poll of a task cancelled meanwhile: the state says so already
        if result.call is Call.CANCEL:
            if result.error is not None:
                raise result.error  # cancel_task returns outcomes: an exception is a bug
            self._on_cancel_answered(result.render, result.value)
            return
        if result.error is not None:
            self._on_failure(result.call, result.render, result.error)
            return
        self._rate_limits_in_row[result.call] = 0
        if result.call is Call.CREATE:
            self._on_created(result.render, result.value)
        elif result.call is Call.RECONCILE:
            self._on_reconciled(result.render, result.value)
        elif result.call is Call.POLL:
            self._on_polled(result.render, result.value)
        elif result.call is Call.DOWNLOAD:
            self._on_downloaded(result.render, result.value)
        else:
            self._on_copied(result.render, result.value)

    def _on_created(self, render: _Render, task_id: str) -> None:
        self._creating.discard(render.key)
        if render.v2:
            self._v2_wire_freed()
        render.task_id = task_id
        self._ids[render.key] = (task_id, None)
        self.progress.created_render(render.key)
        if not self._save(self.store.record_submitted, render.key, task_id, name=render.name):
            self._unsaved(render, task_id)
        elif self._open_group is not None and self._open_group.begun:
            self._open_group.task_ids.append((render, task_id))  # saved once the group is committed
        self._emit(EventKind.SUBMITTED, f"task {task_id}", render, task_id=task_id)
        self._schedule(Call.POLL, render, self.options.poll_interval)
        if render.obsolete:  # an edit made it obsolete while its create was on the wire
            self._cancel(render)

    def _on_polled(self, render: _Render, status: TaskStatus | V2Task) -> None:
        render.spent = Counter({k: n for k, n in render.spent.items() if k[0] is not Call.POLL})  # in a row
        self._save(self.store.record_status, render.key, status.status, name=render.name)
        if render.v2 and render.obsolete and status.status == facts.V2_STATUS_CANCELLED:
            self._on_cancel_answered(render, (Cancelled.CANCELLED, f"task {render.task_id} cancelled before it started: MiniMax does not charge it"))
            return  # our own cancel, seen by a poll before its answer
        if render.v2 and not status.is_running:
            self._on_v2_finished(render, status)  # type: ignore[arg-type]
        if status.state is facts.TaskState.SUCCESS:
            file_id = render.task_id if render.v2 else status.file_id
            assert file_id is not None
            render.file_id = file_id
            self._ids[render.key] = (render.task_id, file_id)
            self._save(self.store.record_rendered, render.key, file_id, width=status.video_width, height=status.video_height, name=render.name)
            self._emit(EventKind.RENDERED, "video ready" if render.v2 else f"file {file_id}", render, file_id=file_id)
            if render.obsolete:  # no job wants it now: kept in the state (rendered), no output written
                self._leave_flight(render)
                self._emit(EventKind.STATUS, "rendered after an edit made it obsolete: kept in the state, not downloaded", render, status=status.status)
                return
            self._download(render)
        elif status.state is facts.TaskState.FAILED:
            try:
                status.raise_for_failure()
            except errors.JobFailedError as e:
                self._fail(render, e)
        else:
            self._emit(EventKind.STATUS, status.status, render, status=status.status)
            self._schedule(Call.POLL, render, self.options.poll_interval)

    def _download(self, render: _Render) -> None:
        target = render.targets[0].job.output
        file_id = render.file_id
        assert file_id is not None
        # a V2 render's file id is its task id: the video is the task's content.url
        url = render.video_url if render.v2 else None
        self._wire.submit(Call.DOWNLOAD, render, functools.partial(self._fetch, file_id, target, render.v2, url))

    async def _fetch(self, file_id: str, target: Path, v2: bool, url: str | None) -> _Placed:
        """Wire side: download to a staging file, then verify it and rename it over the output
        (:func:`vidbatch.files.into_place`'s steps; the placing fsyncs, so it is offloaded). The
        staging file is removed in every case it was not renamed, a cancelled download's too."""
        calls = self._wire.calls
        made = _Staging()
        try:
            # made by a thread: creating a file here cost the scheduler's thread 0.1-0.8 ms of
            # CPU per job on the loop (issue 15: ext4's journal), and a slow disk would stall it
            staging = await self._wire.offload(made.create, target)
            got = await (calls.download_v2(file_id, staging, url=url) if v2 else calls.download(file_id, staging))
            return await self._wire.offload(self._place_video, file_id, staging, target, got.bytes, got.sha256)
        except BaseException:  # renamed, there is nothing left to remove (an unlink of nothing cost a call per job)
            made.abandon()
            raise

    @staticmethod
    def _place_video(file_id: str, staging: Path, target: Path, size: int, sha: str) -> _Placed:
        """Blocking: check a downloaded video's MP4 structure, then put it in place durably."""
        problems = mp4.check_mp4(staging)
        if problems:
            raise errors.DownloadError(
                "downloaded file is not a valid MP4: " + "; ".join(problems),
                errors.CallInfo("download", detail={"file_id": file_id}),
            )
        put_in_place(staging, target)
        return _Placed(target, size, sha, target.stat().st_mtime_ns)

    def _on_downloaded(self, render: _Render, placed: _Placed) -> None:
        self._record_output(render.targets[0], render.key, placed, EventKind.DOWNLOADED, render.restore)
        path, size, sha = placed.path, placed.size, placed.sha256
        for pj in render.targets[1:]:
            self._wire.submit(Call.COPY, _Render(render.key, [pj], restore=render.restore), functools.partial(self._copy_to, [pj], path, size, sha))
        if render.restore is None:
            self._leave_flight(render)

    async def _copy_to(self, targets: list[PlannedJob], source: Path, size: int, sha: str) -> list[tuple[PlannedJob, _Placed]]:
        """Wire side: copy a verified video to the outputs of ``targets`` (blocking: offloaded)."""
        return await self._wire.offload(lambda: [(pj, self._copy(source, pj.job.output, size, sha)) for pj in targets])

    @staticmethod
    def _copy(source: Path, target: Path, size: int, sha: str) -> _Placed:
        """Blocking: copy a verified video to another output, atomically."""
        with into_place(target) as staging:
            shutil.copyfile(source, staging)
            if staging.stat().st_size != size:
                raise errors.DownloadError(f"copy of {source} is incomplete", errors.CallInfo("copy"))
        return _Placed(target, size, sha, target.stat().st_mtime_ns)

    def _on_copied(self, render: _Render, pairs: list[tuple[PlannedJob, _Placed]]) -> None:
        for pj, placed in pairs:
            self._record_output(pj, render.key, placed, EventKind.REUSED, render.restore)

    def _record_output(self, pj: PlannedJob, key: str, placed: _Placed, kind: EventKind, restore: VideoRecord | None = None) -> None:
        job = pj.job
        path, size, sha, mtime_ns = placed
        if restore is not None:  # the output's own earlier video: the render's record stays as it is
            self._save(self.store.record_restored, job.key, path, size=size, sha256=sha, mtime_ns=mtime_ns, name=job.name, manifest=str(job.manifest))
            task_id, file_id = restore.task_id, restore.file_id
        else:
            self._save(self.store.record_downloaded, job.key, path, size=size, sha256=sha, mtime_ns=mtime_ns, name=job.name, manifest=str(job.manifest), event=str(kind))
            rec = pj.record
            task_id, file_id = self._ids.get(job.key, (rec.task_id if rec else None, rec.file_id if rec else None))
        self._index(path, job.key, sha, size, task_id, file_id)
        self.progress.mark(job_id(pj), key, JobPhase.DONE, only_if_current=True)
        self._dependents_due = bool(self._waiting)  # a chained shot may take a frame of it now
        extra: dict[str, Any] = {"path": str(path), "bytes": size, "sha256": sha}
        if restore is not None:
            extra["restored"] = True
        self._emit(kind, str(path), job_name=job.name, key=job.key, data=extra)

    def _index(self, path: Path, key: str, sha: str, size: int, task_id: str | None, file_id: str | None) -> None:
        """Say in the output folder's index which video the file holds (see outputs_index): a
        lost state, or another state folder, then recognises it instead of paying again."""
        self._indexes.record(path, key=key, sha256=sha, size=size, task_id=task_id, file_id=file_id, state_dir=self.store.state_dir)

    # --- V2: lost creates settled through the task list (exactly-once creates) ----------------
    #
    # A V2 create whose answer was lost (in this run, or cut off by a crash: its row stays
    # ``submitting`` with the shape its task would show) is looked for in the task list before
    # any other V2 create is sent. policy.judge_lost_create says what the list shows: no task of
    # its shape in the window (create it again), exactly one new task and of its shape (adopt
    # it: poll, download), anything else (uncertain, with the candidate task ids).

    def _v2_wire_freed(self) -> None:
        """A V2 create was answered or settled: the next one waits one ``created_at`` step, so
        two of vidbatch's tasks never share a second (the window's bounds rely on it)."""
        self._v2_wire_free_at = self.clock.now() + facts.V2_CREATED_AT_RESOLUTION

    def _take_open_intents(self) -> None:
        """At the start: every V2 create the state left unsettled is looked for first, and the
        first V2 create waits one ``created_at`` step after the last task id recorded (by an
        earlier process, perhaps killed a moment ago)."""
        try:
            last = self.store.last_submitted_at()
            if last is not None:
                wait = last + facts.V2_CREATED_AT_RESOLUTION - time.time()
                self._v2_wire_free_at = self.clock.now() + max(0.0, min(wait, facts.V2_CREATED_AT_RESOLUTION))
            intents = self.store.open_v2_intents()
        except Exception as e:
            if not is_state_write_error(e):
                raise
            self._state_failed(e)
            return
        for intent in intents:
            if intent.key not in self._reconciling:
                render = _Render(intent.key, [], api=facts.Api.V2)
                self._reconciling[intent.key] = render
                self._ask_task_list(render, intent)

    def _attach_to_reconciling(self, plan: Plan) -> None:
        """Jobs of a plan that want a render whose lost create is being looked for wait for it."""
        for pj in plan.jobs:
            render = self._reconciling.get(pj.job.key)
            if render is None or pj.action not in (Action.UNCERTAIN, Action.SUBMIT, Action.RESUBMIT):
                continue
            render.targets = [t for t in render.targets if job_id(t) != job_id(pj)] + [pj]
            render.targets.sort(key=lambda t: t.action is Action.UNCERTAIN)  # a create wish leads
            self.progress.mark(job_id(pj), pj.job.key, JobPhase.QUEUED)

    def _reconcile(self, render: _Render) -> None:
        """A V2 create's answer was lost in this run: hold the V2 wire and ask the task list."""
        self._reconciling[render.key] = render
        self._ask_task_list(render)

    def _ask_task_list(self, render: _Render, intent: V2Intent | None = None) -> None:
        if intent is None:
            intent = next((i for i in self.store.open_v2_intents() if i.key == render.key), None)
        if intent is None:  # settled meanwhile (cannot happen while we hold the lock)
            self._reconciling.pop(render.key, None)
            return
        recorded = self.store.recorded_task_ids()
        unsaved = frozenset(self.result.unsaved)
        self._wire.submit(Call.RECONCILE, render, functools.partial(self._judge_lost_create, intent, recorded, unsaved))

    async def _judge_lost_create(self, intent: V2Intent, recorded: list[tuple[int | None, str]], unsaved: frozenset[str]) -> tuple[V2Intent, Judgement]:
        """Wire side: one read of the task list (paged), judged by the policy."""
        page = await self._wire.calls.list_v2(created_after=intent.at - 86400.0)  # a day of clock doubt
        local_now = time.time()
        created = {t.task_id: t.created_at for t in page.tasks}
        before = [c for event, t in recorded if event is not None and event < intent.event_id and (c := created.get(t)) is not None]
        after = [c for event, t in recorded if event is not None and event > intent.event_id and (c := created.get(t)) is not None]
        window = lost_create_window(
            intent_at=intent.at,
            local_now=local_now,
            server_now=page.server_time,
            previous_created_at=max(before, default=None),
            next_created_at=min(after, default=None),
        )
        reachable = local_now - intent.at < facts.V2_LIST_DAYS * 86400 - 3600
        judgement = judge_lost_create(page.tasks, recorded={t for _, t in recorded} | unsaved, shape=Shape.from_json(intent.shape), window=window, reachable=reachable)
        return intent, judgement

    def _on_reconciled(self, render: _Render, value: tuple[V2Intent, Judgement]) -> None:
        intent, judgement = value
        self._reconciling.pop(render.key, None)
        self._v2_wire_freed()
        self._leave_flight(render)
        name = render.name if render.targets else intent.name
        data = {"outcome": str(judgement.outcome), "candidates": list(judgement.candidates)}
        if judgement.outcome is LostCreate.NONE:
            self._save(self.store.record_not_submitted, render.key, ErrorInfo(judgement.describe(), call="list"), name=name)
            wants = bool(render.targets) and not render.obsolete  # jobs of this run want it (else a later run creates it)
            self._emit(EventKind.RETRY, f"lost create settled: {judgement.describe()}; " + ("creating it again" if wants else "it stays new"), render, job_name=name, data=data)
            busy = sorted({str(pj.job.output.parent) for pj in render.targets if not self._claim(pj.job.output.parent)})
            if wants and busy:  # as _start: another state folder's run is creating into that folder
                self._mark(render, JobPhase.UNFINISHED)
                self._emit(EventKind.ERROR, f"not created: another vidbatch run (with another state folder) is writing to {', '.join(busy)}; run again when it has finished", render)
            elif wants and render.spent[(Call.CREATE, Verdict.RECONCILE)] < self._limits.create_rounds:
                self._requeue(render, front=True)
            elif wants:
                self._leave(render, Call.CREATE, errors.MaybeSubmittedError("create answers lost too many times", errors.CallInfo("create")))
        elif judgement.outcome is LostCreate.ADOPT:
            task = judgement.task
            self._save(self.store.record_adopted_task, render.key, task.task_id, name=name, why=judgement.describe())
            render.task_id = task.task_id
            self._ids[render.key] = (task.task_id, None)
            self.progress.created_render(render.key)
            self._emit(EventKind.SUBMITTED, f"task {task.task_id} (adopted: {judgement.describe()})", render, job_name=name, task_id=task.task_id, data=data)
            if render.targets:
                self._enter_flight(render)
                self._schedule(Call.POLL, render, 0.0)
                if render.obsolete:
                    self._cancel(render)
        else:
            message = f"create answer lost; {judgement.describe()}"
            self._save(self.store.record_uncertain, render.key, ErrorInfo(message, call="list"), name=name, extra={"candidates": list(judgement.candidates)})
            self._mark(render, JobPhase.UNCERTAIN)
            self._emit(EventKind.UNCERTAIN, message, render, job_name=name, data=data)

    def _reconcile_unresolved(self, render: _Render, error: BaseException, *, stop: bool) -> None:
        """The task list could not be asked: the job is ``uncertain`` until the next run asks it."""
        self._reconciling.pop(render.key, None)
        self._v2_wire_freed()
        self._leave_flight(render)
        info = ErrorInfo.from_exception(error)
        message = f"create answer lost and the task list could not be asked ({info.message}); the next run asks it again"
        self._save(self.store.record_uncertain, render.key, ErrorInfo(message, info.code, info.trace_id, "list", info.http_status, info.status_msg, None), name=render.name, extra={"reconcile": "pending"})
        self._mark(render, JobPhase.UNCERTAIN)
        self._emit(EventKind.UNCERTAIN, message, render)
        if stop:
            self._account_stop(error)

    def _cancel_obsolete(self, plan: Plan) -> None:
        """A new plan of a manifest leaves a V2 render in flight that no job wants any more:
        cancel its task if it is still queued (MiniMax does not charge a cancelled task); a
        running one finishes and its render is kept in the state (see _on_polled)."""
        manifests = plan.manifests
        wanted = {pj.job.key for pj in plan.jobs}
        for render in list(self._v2_renders.values()) + [r for r in self._reconciling.values() if r.targets]:
            if render.obsolete or render.key in wanted or not render.targets:
                continue
            if any(pj.job.manifest not in manifests for pj in render.targets):
                continue  # another manifest's job still wants it
            render.obsolete = True
            if render.task_id is not None and render.key in self._v2_renders:
                self._cancel(render)

    def _cancel(self, render: _Render) -> None:
        task_id = render.task_id
        assert task_id is not None
        self._wire.submit(Call.CANCEL, render, lambda: _cancel_task(self._wire.calls, task_id))

    def _on_cancel_answered(self, render: _Render, value: tuple[Cancelled, str]) -> None:
        result, message = value
        if render.cancelled:
            return  # recorded already (a poll saw it first)
        if result is not Cancelled.CANCELLED:
            self._emit(EventKind.STATUS, f"no longer wanted after an edit; {message}", render, cancel=str(result))
            return
        from . import ledger

        task_id = render.task_id
        assert task_id is not None
        render.cancelled = True
        self._leave_flight(render)
        self._save(self.store.record_cancelled, render.key, task_id, name=render.name)
        self._save(ledger.record_usage, self.store, task_id, dict.fromkeys(facts.V2_USAGE_FIELDS, 0))
        self._emit(EventKind.CANCELLED, f"no longer wanted after an edit; {message}", render, task_id=task_id)

    def _on_v2_finished(self, render: _Render, task: V2Task) -> None:
        """A V2 task ended: keep its video URL and what MiniMax billed for it (``usage``)."""
        render.video_url = task.video_url
        if task.usage and render.task_id:
            from . import ledger

            self._save(ledger.record_usage, self.store, render.task_id, task.usage)

    # --- failures: the one place that reads the policy table -----------------------------

    def _on_failure(self, call: Call, render: _Render, error: BaseException) -> None:
        decision = decide(call, error, spent=render.spent, limits=self._limits, rate_limited_in_row=self._rate_limits_in_row[call] + 1, task_list=render.v2)
        render.spent[(call, decision.counted)] += 1
        if decision.verdict is Verdict.PAUSE:
            self._rate_limits_in_row[call] += 1
        if call is Call.CREATE:
            self._creating.discard(render.key)
            if render.v2:
                self._v2_wire_freed()
            if decision.verdict not in (Verdict.UNCERTAIN, Verdict.FAIL_JOB, Verdict.RECONCILE):  # those record their own state
                self._leave_flight(render)
                # from_exception never stores repr() of an unknown error: it may hold the key
                self._save(self.store.record_not_submitted, render.key, ErrorInfo.from_exception(error), name=render.name)
        elif call is Call.DOWNLOAD and decision.verdict is not Verdict.RAISE:
            self._save(self.store.record_error, render.key, ErrorInfo.from_exception(error), name=render.name, event="download_failed")
        self._carry_out(decision, call, render, error)

    def _carry_out(self, decision: Decision, call: Call, render: _Render, error: BaseException) -> None:
        verdict = decision.verdict
        if verdict is Verdict.RAISE:
            raise error
        if verdict is Verdict.RECONCILE:
            self._emit(EventKind.RETRY, f"create answer lost; asking the task list whether MiniMax made the task: {error}", render)
            self._reconcile(render)
            return
        if call is Call.RECONCILE and verdict not in (Verdict.RETRY, Verdict.PAUSE):
            self._reconcile_unresolved(render, error, stop=verdict is Verdict.STOP_CREATING)
            return
        if verdict is Verdict.RETRY:
            if call is Call.CREATE:
                self._requeue(render, front=False)
                self._emit(EventKind.RETRY, f"create failed, will try again: {error}", render)
            else:
                self._schedule(call, render, decision.delay)
                self._emit(EventKind.RETRY, f"{call} failed, will try again in {decision.delay:.0f} s: {error}", render, delay=decision.delay)
        elif verdict is Verdict.PAUSE:
            if call is Call.CREATE:
                self._paused_until = self.clock.now() + decision.delay
                self._requeue(render, front=True)
                self._emit(EventKind.RATE_LIMITED, f"rate limited; pausing creates for {decision.delay:.0f} s", render, pause=decision.delay)
            else:
                self._schedule(call, render, decision.delay)
                self._emit(EventKind.RATE_LIMITED, f"rate limited; {call} again in {decision.delay:.0f} s", render, pause=decision.delay)
        elif verdict is Verdict.FAIL_JOB:
            self._fail(render, error)
        elif verdict is Verdict.GONE:
            self._gone(render, call, error)
        elif verdict is Verdict.UNCERTAIN:
            self._leave_flight(render)
            self._save(self.store.record_uncertain, render.key, ErrorInfo.from_exception(error), name=render.name)
            self._mark(render, JobPhase.UNCERTAIN)
            self._emit(EventKind.UNCERTAIN, f"create answer lost; MiniMax may have a task for it: {error}", render)
        elif verdict is Verdict.STOP_CREATING:
            if call is Call.CREATE:  # the account, key or host is wrong: every other create would fail the same way
                self._requeue(render, front=True)
            else:
                self._leave(render, call, error)
            self._account_stop(error)
        else:
            self._leave(render, call, error)

    def _leave(self, render: _Render, call: Call, error: BaseException) -> None:
        self._leave_flight(render)
        self._mark(render, JobPhase.UNFINISHED)
        next_run = {
            Call.CREATE: "the next run will try again",
            Call.POLL: "the task stays running and the next run polls it again",
            Call.DOWNLOAD: "the render is kept and the next run downloads it again",
            Call.COPY: "the next run copies it again",
        }[call]
        self._emit(EventKind.ERROR, f"{call} failed; {next_run}: {error}", render)

    # --- outcomes -----------------------------------------------------------------------

    def _fail(self, render: _Render, error: BaseException) -> None:
        self._leave_flight(render)
        info = ErrorInfo.from_exception(error)
        self._save(self.store.record_failed, render.key, info, name=render.name)
        self._mark(render, JobPhase.FAILED)
        self._emit(EventKind.FAILED, str(error), render, code=info.code, trace_id=info.trace_id)

    def _gone(self, render: _Render, call: Call, error: BaseException) -> None:
        """MiniMax no longer knows the task or file: record the render ``gone`` (a restore of an
        earlier video leaves the render as it is) and say how to render it again."""
        if render.restore is None:
            self._leave_flight(render)
        info = ErrorInfo.from_exception(error)
        what = f"task {render.task_id}" if call is Call.POLL else f"file {render.file_id}"
        names = ", ".join(dict.fromkeys(pj.job.name for pj in render.targets))
        message = f"MiniMax no longer has {what} (expired or another account); render it again with --force {names}"
        if render.restore is None:
            self._save(self.store.record_gone, render.key, ErrorInfo(message, info.code, info.trace_id, info.call, info.http_status, info.status_msg, None), name=render.name)
        self._mark(render, JobPhase.GONE)
        self._emit(EventKind.ERROR, message, render, gone=True, code=info.code, trace_id=info.trace_id)

    def _mark(self, render: _Render, phase: JobPhase, *, planning: bool = False) -> None:
        """Set the phase of the render's jobs; an outcome (not ``planning``) changes only jobs
        that still want this render."""
        for pj in render.targets:
            self.progress.mark(job_id(pj), render.key, phase, only_if_current=not planning)

    def _enter_flight(self, render: _Render, *, planning: bool = False) -> None:
        self._in_flight.add(render.key)
        if render.v2:
            self._v2_in_flight.add(render.key)
            self._v2_renders[render.key] = render
        self._mark(render, JobPhase.RUNNING, planning=planning)

    def _leave_flight(self, render: _Render) -> None:
        self._in_flight.discard(render.key)
        self._v2_in_flight.discard(render.key)
        if self._v2_renders.get(render.key) is render:
            del self._v2_renders[render.key]

    def _requeue(self, render: _Render, *, front: bool) -> None:
        self._mark(render, JobPhase.QUEUED)
        (self._creates.appendleft if front else self._creates.append)(render)

    def _account_stop(self, error: BaseException) -> None:
        if self._stop_creates:
            return
        self._stop_creates = True
        self.result.stopped = Stop.ACCOUNT
        self.result.stop_message = str(error)
        self._emit(EventKind.ACCOUNT_STOP, f"stopping new renders: {error}; tasks already running are still collected")

    def _unsaved(self, render: _Render, task_id: str) -> None:
        self.result.unsaved[task_id] = render.name
        self._emit(EventKind.UNSAVED, f"task {task_id} was created but could not be saved; note it", render, task_id=task_id)

    @contextlib.contextmanager
    def _grouped(self, *, keep_on_error: bool = True) -> Iterator[_Group]:
        """The state writes made inside, one scheduler turn's, in one transaction (issue 15:
        six transactions per job cost more than the job's calls), begun by the first of them
        (:meth:`_write`), and all or nothing (:meth:`Store.begin_group`). The task ids of
        creates are journaled before any of this, and marked committed in the journal only
        when the group is, so a crash or a rollback loses none. If a write in it fails, or its
        commit, the group is rolled back and the run goes on as after any refused write
        (:meth:`_group_failed`). An exception inside (a Ctrl-C, a bug) commits the writes
        made before it, unless it came in the middle of one (``torn``) or not
        ``keep_on_error`` (intents whose creates were not sent): then it rolls them back. The
        turn's events are delivered at the end, after the commit. Nested, the inner group is
        the outer one's."""
        if self._open_group is not None:
            yield self._open_group
            return
        group = self._open_group = _Group()
        try:
            yield group
        except BaseException:
            self._open_group = None
            if group.begun and keep_on_error and not group.torn:
                try:  # the writes before the exception are whole: keep them, and let it go on
                    self.store.end_group()
                except errors.StateError as e:
                    log.warning("state write failed: %s", e)  # the task ids stay in the journal
            elif group.begun:
                self.store.roll_back_group()
            self._deliver(group.events)
            raise
        self._open_group = None
        if group.begun:
            try:
                self.store.end_group()
            except Exception as e:
                if not is_state_write_error(e):
                    raise
                self._group_failed(group, e)
        self._deliver(group.events)

    def _group_failed(self, group: _Group, error: BaseException) -> None:
        """A turn's group of writes was rolled back: nothing in it was kept. No new creates
        (:meth:`_state_failed`); its task ids are reported unsaved (the journal keeps them)."""
        group.begun, group.failed = False, True
        self._state_failed(error)
        for render, task_id in group.task_ids:
            self._unsaved(render, task_id)
        group.task_ids.clear()

    def _begin_group(self, group: _Group) -> None:
        """Open the turn's transaction before its first write (if it cannot be, each write goes
        alone, as each can)."""
        try:
            group.begun = self.store.begin_group()
        except Exception as e:
            if not is_state_write_error(e):
                raise
            self._state_failed(e)

    def _save(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """A state write (see :meth:`_write`): whether it was saved."""
        return self._write(write, *args, **kwargs) is not _UNSAVED

    def _write(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A state write: what it returns, or ``_UNSAVED``. If the database refuses (full disk...),
        the run goes on from memory without creating anything new; the task ids it could not
        save are reported."""
        group = self._open_group
        if group is not None and not group.begun and self._state_error is None:
            self._begin_group(group)
        try:
            return write(*args, **kwargs)
        except BaseException as e:
            if not is_state_write_error(e):
                if group is not None:
                    group.torn = True
                raise
            if group is not None and group.begun:  # the turn's writes go with it
                self.store.roll_back_group()
                self._group_failed(group, e)
            else:
                self._state_failed(e)
            return _UNSAVED

    def _state_failed(self, error: BaseException) -> None:
        log.warning("state write failed: %s", error)
        if self._state_error is not None:
            return
        self._state_error = error
        self._stop_creates = True
        if self.result.stopped is None:
            self.result.stopped = Stop.STATE
        self.result.stop_message = f"the state database could not be written ({error})"
        self._emit(EventKind.STATE_ERROR, f"the state database could not be written: {error}; no new renders; tasks already running are still collected")
        self._idle_announced = False  # watch: "idle" once they are, and the session ends

    def _report_lost_tasks(self) -> None:
        """The state database is gone: every task it held that the run did not finish (running,
        or rendered and not downloaded) is kept nowhere else. Those it finished are in their
        outputs' index, which the next run adopts."""
        try:
            records = self.store.renders_in(RenderState.RUNNING, RenderState.RENDERED)
        except errors.StateError as e:
            log.warning("could not list the tasks of the lost state: %s", e)
            return
        for record in records:
            if record.task_id is not None and record.task_id not in self.result.unsaved:
                self.result.unsaved[record.task_id] = record.name or record.key
                self._emit(EventKind.UNSAVED, f"task {record.task_id} is saved nowhere (the state database was lost); note it", job_name=record.name, key=record.key, task_id=record.task_id)

    def _interrupt(self) -> None:
        """First Ctrl-C (or stop()): stop creating, save the task ids of creates on the wire, return."""
        self._stop_creates = True
        self.result.stopped = Stop.INTERRUPTED
        self._emit(EventKind.INTERRUPTED, "interrupted: no new renders; saving the creates already sent")
        deadline = self.clock.now() + 15.0
        try:
            while self._creating and self.clock.now() < deadline:
                self.clock.wait(self._wire.wait, 0.2)
                while (result := self._wire.take()) is not None:
                    if result.call is Call.CREATE or (result.call in (Call.DOWNLOAD, Call.COPY) and result.error is None):
                        self._handle(result)  # a task id to save, or a file in place to record
                    # polls are dropped: their tasks stay "running" in the state and are resumed
        except KeyboardInterrupt:
            pass  # second Ctrl-C: leave now; those creates become "uncertain" on the next start

    def _finish(self) -> None:
        # renders not finished in this run stay resumable in the state
        p = self.progress
        self.result.failed = p.names(JobPhase.FAILED)
        self.result.uncertain = p.names(JobPhase.UNCERTAIN)
        self.result.unfinished = p.names(JobPhase.QUEUED, JobPhase.RUNNING, JobPhase.UNFINISHED)
        self.result.gone = p.names(JobPhase.GONE)
        if self._state_lost:
            self._report_lost_tasks()
        if self._state_error is not None:
            unsaved = ", ".join(f"{task} ({name})" for task, name in self.result.unsaved.items())
            self.result.stop_message = (
                f"the state database could not be written ({self._state_error}); no new renders were created after it"
                + (f"; task ids NOT saved, note them: {unsaved}" if unsaved else "")
                + "; free disk space (or fix the state folder) and run again"
            )
        data: dict[str, Any] = {
            "stopped": str(self.result.stopped) if self.result.stopped else None,
            "created": p.created,
            "jobs": p.total,
            "done": p.done,
            "failed": p.failed,
            "uncertain": p.uncertain,
            "gone": p.gone,
            "unfinished": len(self.result.unfinished),
        }
        if self.result.unsaved:
            data["unsaved"] = dict(self.result.unsaved)
        self._emit(EventKind.FINISH, "finished", data=data)

    # --- events -------------------------------------------------------------------------

    def _emit(self, kind: EventKind, message: str, render: _Render | None = None, *, job_name: str | None = None, key: str | None = None, data: dict[str, Any] | None = None, **extra: Any) -> None:
        """Tell ``on_event``. Inside a scheduler turn's group of writes the event waits for their
        commit: whoever reads the state on an event finds what the event says."""
        if render is not None:
            job_name, key = render.name, render.key
        event = RunEvent(kind, message, job_name, key, {**(data or {}), **extra}, progress=self.progress)
        if self._open_group is not None:
            self._open_group.events.append(event)
        else:
            self.on_event(event)

    def _deliver(self, events: list[RunEvent]) -> None:
        for event in events:
            self.on_event(event)


# --- cancelling queued V2 tasks ---------------------------------------------------------------


class Cancelled(str, enum.Enum):
    """What became of a request to cancel a job's task."""

    CANCELLED = "cancelled"  # it was queued: cancelled, and MiniMax does not charge it
    RUNNING = "running"  # it is rendering: not cancellable; it finishes and its render is kept
    FINISHED = "finished"  # it ended already (succeeded, failed...): nothing to cancel
    NO_TASK = "no_task"  # the job has no task in flight
    NOT_V2 = "not_v2"  # a v1 task: the v1 API has no cancel
    ERROR = "error"  # the API could not be asked; the task is as it was

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CancelOutcome:
    name: str
    key: str
    task_id: str | None
    result: Cancelled
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"job": self.name, "key": self.key, "task_id": self.task_id, "result": str(self.result), "message": self.message}


def cancel_task(client: ApiClient, task_id: str) -> tuple[Cancelled, str]:
    """Cancel V2 task ``task_id`` if it is queued. The task is queried first, because the
    contract's DELETE *deletes* a finished task (its video with it) and refuses a running one;
    a task that starts between the query and the DELETE is reported running. A failure is an
    ``ERROR`` outcome (the task runs on, nothing is lost), but an account or credentials error
    (a refused key, a wrong host), which every other task would meet too, is raised: ``vidbatch
    cancel`` then stops with exit 3, as ``run`` does.

    The CLI's form (``vidbatch cancel``, sync). The runner cancels on its wire with the same
    logic, :func:`_cancel_task`: here that coroutine is driven inline over the sync client, whose
    calls answer at once, so there is one copy of the decisions and each side keeps its own
    client (offloading this function instead would make the runner's cancels, alone of its
    calls, go through the sync HTTP stack)."""
    return _run_inline(_cancel_task(_BlockingCalls(client, _call_now), task_id, raise_account=True))


async def _cancel_task(calls: AsyncApiClient, task_id: str, *, raise_account: bool = False) -> tuple[Cancelled, str]:
    """:func:`cancel_task` over the runner's calls (see there); the runner's own cancels (after
    an edit) never raise: ``raise_account`` is the CLI's."""
    try:
        task = await calls.query_v2(task_id)
        if not task.cancellable:
            if task.is_running:
                return Cancelled.RUNNING, f"task {task_id} is {task.status}: it cannot be cancelled; it finishes and its render is kept"
            return Cancelled.FINISHED, f"task {task_id} has ended ({task.status}): nothing to cancel"
        try:
            await calls.cancel_v2(task_id)
        except errors.JobFailedError:  # refused: it started meanwhile
            return Cancelled.RUNNING, f"task {task_id} started before it could be cancelled; it finishes and its render is kept"
    except errors.VidbatchError as e:
        if raise_account and isinstance(e, errors.AccountError):
            raise
        return Cancelled.ERROR, f"task {task_id} could not be cancelled: {e}"
    return Cancelled.CANCELLED, f"task {task_id} cancelled before it started: MiniMax does not charge it"


def cancel_jobs(store: Store | None, client: ApiClient, jobs: Iterable[Any], *, record: bool) -> list[CancelOutcome]:
    """``vidbatch cancel``: cancel the queued V2 task of each of ``jobs`` (a key several jobs
    share is cancelled once). With ``record`` (the caller holds the run lock) each cancel is
    written to the state (the job becomes ``failed``: a plain run does not create it again) and
    its spend entry says nothing was billed; without it, the run that holds the state records
    the cancelled status at its next poll."""
    from . import ledger

    outcomes: list[CancelOutcome] = []
    seen: dict[str, CancelOutcome] = {}
    jobs = list(jobs)
    records = store.get_many(job.key for job in jobs) if store is not None else {}
    for job in jobs:
        if job.key in seen:
            first = seen[job.key]
            outcomes.append(CancelOutcome(job.name, job.key, first.task_id, first.result, f"{first.message} (shared with {first.name})"))
            continue
        rec = records.get(job.key)
        task_id = rec.task_id if rec is not None and rec.state is RenderState.RUNNING else None
        if job.api is not facts.Api.V2:
            outcome = CancelOutcome(job.name, job.key, task_id, Cancelled.NOT_V2, "not a MiniMax-H3 job: the v1 API cannot cancel a task")
        elif task_id is None:
            outcome = CancelOutcome(job.name, job.key, None, Cancelled.NO_TASK, f"no task in flight ({rec.state.value if rec else 'never run'})")
        else:
            result, message = cancel_task(client, task_id)
            if result is Cancelled.CANCELLED and record and store is not None:
                store.record_cancelled(job.key, task_id, name=job.name, on_request=True)
                ledger.record_usage(store, task_id, dict.fromkeys(facts.V2_USAGE_FIELDS, 0))
            outcome = CancelOutcome(job.name, job.key, task_id, result, message)
        seen[job.key] = outcome
        outcomes.append(outcome)
    return outcomes


def check_budget(plan: Plan, max_renders: int | None) -> None:
    """Refuse a plan that would create more renders than the user allowed."""
    if max_renders is not None and len(plan.billable) > max_renders:
        raise errors.UsageError(
            f"the plan would create {len(plan.billable)} renders, more than --max-renders {max_renders}; "
            "check the manifest (a template typo can multiply jobs), then raise --max-renders"
        )
