"""The runner: carry out a plan against the API without paying twice or losing a render.

Design
------
One scheduler (the calling thread) owns the state database and decides what happens next; a small
pool of daemon worker threads makes the HTTP calls and hands results back through a queue. Daemon
workers let Ctrl-C end the process promptly even in the middle of a long download.

The unit of work is a *render*: one content key, with every job (output path) that wants it. Two
jobs with identical requests cost one create; the second output is a copy of the first.

Pacing: creates are spaced evenly at ``60 / rpm`` seconds, and never more than ``concurrency``
renders are in flight (created, not yet downloaded). A 1002/429 answer pauses creates and puts the
job back at the front of the queue; it never fails the job.

Money and crashes: :meth:`Store.record_intent` is written before a create is sent and
:meth:`Store.record_submitted` the moment its task_id arrives. If the process dies in between, the
job is ``uncertain`` on the next start (the API has no idempotency key and no way to list tasks):
it is reported and NOT created again unless the user passes ``--resubmit-uncertain``. A create
whose answer was lost in flight (:class:`MaybeSubmittedError`) is handled the same way.

Ctrl-C: the first interrupt stops creating, waits only for creates already on the wire (so their
task ids are saved), and returns; running tasks stay ``running`` in the state and the next
``run`` resumes polling them. A second interrupt returns at once.

Failures: a job-level failure (Fail status, 1026, 1027, 2013) is recorded and the others go on.
An account-level failure (1004, 1008, 2038, 2049, 2056) stops new creates at once; tasks already
in flight are still polled and downloaded. Downloads go to a hidden staging file beside the
output, are checked (byte count, MP4 structure), then renamed over the output, so the previous
video of a changed job is replaced only once the new one is complete.

The runner never prints: it reports :class:`RunEvent` objects to a callback.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import queue
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import errors, facts, mp4, rules
from .plan import Action, Plan, PlannedJob
from .state import ErrorInfo, JobState, Store

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".vidbatch-new"


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 20
    rpm: float = facts.DEFAULT_RPM
    poll_interval: float = facts.DEFAULT_POLL_INTERVAL
    retry_failed: bool = False
    force: tuple[str, ...] = ()
    max_renders: int | None = None
    resubmit_uncertain: bool = False
    #: a job whose create keeps failing transiently is put back this many times, then left ``new``
    create_rounds: int = 4
    download_rounds: int = 3
    #: pause after a rate-limit answer when the server does not say how long
    rate_limit_pause: float = 30.0


@dataclass(frozen=True)
class RunEvent:
    """Something that happened during a run. ``kind`` is one of:
    start, skip, submit, submitted, status, rendered, downloaded, reused, failed, uncertain,
    rate_limited, retry, error, account_stop, interrupted, finish; and with ``keep_alive``,
    idle (nothing queued, in flight or waiting to be planned, after some activity)."""

    kind: str
    message: str
    job: str | None = None
    key: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    progress: "Progress | None" = field(default=None, compare=False, repr=False)  # live counters

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "job": self.job, "key": self.key, "message": self.message, "at": round(self.at, 3), **self.data}


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    running: int = 0
    queued: int = 0
    failed: int = 0
    uncertain: int = 0
    created: int = 0  # creates accepted by MiniMax in this run (what it paid for)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at


@dataclass
class RunResult:
    progress: Progress
    stopped: str | None = None  # "account" or "interrupted"
    stop_message: str | None = None
    failed: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.stopped == "interrupted":
            return errors.EXIT_INTERRUPTED
        if self.stopped == "account":
            return errors.EXIT_ACCOUNT
        if self.failed or self.uncertain or self.unfinished:
            return errors.EXIT_JOBS_FAILED
        return errors.EXIT_OK


@dataclass
class _Render:
    """One content key and every planned job that wants its video."""

    key: str
    targets: list[PlannedJob]
    task_id: str | None = None
    file_id: str | None = None
    create_rounds: int = 0
    download_rounds: int = 0
    poll_failures: int = 0

    @property
    def name(self) -> str:
        return self.targets[0].job.name


class _Pool:
    """Daemon worker threads: a stuck HTTP call never keeps the process alive after Ctrl-C."""

    def __init__(self, size: int):
        self.tasks: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.busy = 0
        for i in range(size):
            threading.Thread(target=self._work, name=f"vidbatch-worker-{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            tag, render, fn = self.tasks.get()
            try:
                result: Any = fn()
                error: BaseException | None = None
            except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which decides
                result, error = None, e
            self.results.put((tag, render, result, error))

    def submit(self, tag: str, render: _Render, fn: Callable[[], Any]) -> None:
        self.busy += 1
        self.tasks.put((tag, render, fn))

    def get(self, timeout: float) -> tuple[str, _Render, Any, BaseException | None] | None:
        try:
            item = self.results.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if item[0] not in ("replan", "stop"):  # control messages are not worker results
            self.busy -= 1
        return item


class Runner:
    def __init__(self, store: Store, client: Any, options: RunOptions = RunOptions(), on_event: Callable[[RunEvent], None] | None = None):
        self.store = store
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda e: None)
        self.progress = Progress()
        self.result = RunResult(self.progress)
        self._pool = _Pool(max(4, min(options.concurrency, 32)))
        self._creates: deque[_Render] = deque()
        self._polls: list[tuple[float, int, _Render]] = []  # heap of (due, seq, render)
        self._seq = 0
        self._in_flight: set[str] = set()  # keys created (or being created) and not yet downloaded
        self._creating: set[str] = set()  # keys whose create call is on the wire
        self._next_create_at = 0.0
        self._paused_until = 0.0
        self._stop_creates = False
        self._keep_alive = False
        self._stopping = False
        self._idle_announced = True  # "idle" is announced after activity, not at an empty start

    # --- public -------------------------------------------------------------------------

    def run(self, plan: Plan | None = None, *, keep_alive: bool = False) -> RunResult:
        """Carry out ``plan``. With ``keep_alive`` (watch mode) the runner stays up when idle,
        taking new plans from :meth:`replan`, until :meth:`stop`."""
        self._keep_alive = keep_alive
        try:
            if plan is not None:
                self._take_plan(plan)
            self._loop()
        except KeyboardInterrupt:
            self._interrupt()
        finally:
            self._finish()
        return self.result

    def replan(self, make_plan: Callable[[Store], Plan]) -> None:
        """Thread-safe: have the scheduler call ``make_plan(store)`` and start what it adds.
        Renders already queued or in flight are left as they are (never cancelled or created
        again); their results stay in the state for reuse."""
        self._pool.results.put(("replan", None, make_plan, None))

    def stop(self) -> None:
        """Thread-safe: behave as on a first Ctrl-C (stop creating, save creates on the wire)."""
        self._pool.results.put(("stop", None, None, None))

    def _take_plan(self, plan: Plan) -> None:
        self._supersede_queued(plan)
        active = self._active_keys()
        fresh = [pj for pj in plan.jobs if pj.job.key not in active]
        plan = Plan(fresh, plan.orphans)
        renders = self._group(plan)
        self.progress.total += len(fresh)
        self._emit("start", f"{len(fresh)} jobs, {len(plan.billable)} to render", data=plan.summary())
        self._record_seen(renders.values())
        with self.store.db.atomic():  # one transaction for the bookkeeping of up-to-date jobs
            for render in renders.values():
                self._start(render)

    def _active_keys(self) -> set[str]:
        return self._in_flight | {r.key for r in self._creates}

    def _supersede_queued(self, plan: Plan) -> None:
        """A new plan of a manifest replaces that manifest's jobs in renders still waiting to be
        created: work an edit made obsolete is dropped before it is paid for, and a renamed job
        gets its new output path. Renders already created are never touched."""
        manifests = {pj.job.manifest for pj in plan.jobs}
        wanted: dict[str, list[PlannedJob]] = {}
        for pj in plan.jobs:
            if pj.action in (Action.SUBMIT, Action.RESUBMIT):
                wanted.setdefault(pj.job.key, []).append(pj)
        for render in list(self._creates):
            kept = [pj for pj in render.targets if pj.job.manifest not in manifests]
            new = wanted.pop(render.key, [])
            self.progress.total += len(kept) + len(new) - len(render.targets)
            if kept or new:
                render.targets = kept + new
                continue
            self._creates.remove(render)
            self.progress.queued -= 1
            self._emit("dropped", "no longer wanted after an edit; not created", render)

    # --- setup --------------------------------------------------------------------------

    def _group(self, plan: Plan) -> dict[str, _Render]:
        renders: dict[str, _Render] = {}
        for pj in plan.jobs:
            renders.setdefault(pj.job.key, _Render(pj.job.key, [])).targets.append(pj)
        # the job that decides a render's fate is the one with the most work to do
        order = [Action.RESUME, Action.RESUBMIT, Action.SUBMIT, Action.DOWNLOAD, Action.REUSE, Action.UNCERTAIN, Action.FAILED, Action.SKIP]
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
        for pj in render.targets:
            if pj.action is Action.SKIP:
                self._skip(pj)
        pending = [pj for pj in render.targets if pj.action is not Action.SKIP]
        if not pending:
            return
        render.targets = pending
        action = lead.action
        if action in (Action.SUBMIT, Action.RESUBMIT):
            self.progress.queued += 1
            self._creates.append(render)
        elif action is Action.RESUME:
            assert lead.record is not None
            render.task_id = lead.record.task_id
            self._in_flight.add(render.key)
            self.progress.running += 1
            self._schedule_poll(render, 0.0)
        elif action is Action.DOWNLOAD:
            assert lead.record is not None
            render.file_id = lead.record.file_id
            self._in_flight.add(render.key)
            self.progress.running += 1
            self._download(render)
        elif action is Action.REUSE:
            src = lead.source
            assert src is not None
            self._pool.submit(
                "reuse",
                render,
                lambda: [(pj, self._copy(Path(src.path), pj.job.output, src.size, src.sha256)) for pj in render.targets],
            )
        elif action is Action.FAILED:
            self._count_failed(render)
            self._emit("failed", lead.reason, render, previously=True)
        elif action is Action.UNCERTAIN:
            self._count_uncertain(render)
            self._emit("uncertain", lead.reason, render)

    def _skip(self, pj: PlannedJob) -> None:
        self.progress.done += 1
        job = pj.job
        if pj.adopt:
            st = job.output.stat()
            rec = self.store.get(job.key)
            assert rec is not None and rec.video_sha256
            if rec.state is JobState.DONE:
                self.store.record_downloaded(job.key, job.output, size=st.st_size, sha256=rec.video_sha256, mtime_ns=st.st_mtime_ns, name=job.name, manifest=str(job.manifest), event="adopted")
        elif pj.new_mtime_ns is not None:  # re-hashed intact by the plan: remember the new mtime
            self.store.record_output_checked(job.output, mtime_ns=pj.new_mtime_ns)
        self._emit("skip", pj.reason, job_name=job.name, key=job.key)

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            self._dispatch_creates(now)
            self._dispatch_polls(now)
            idle = not (self._creates and not self._stop_creates) and not self._polls and self._pool.busy == 0
            if idle and not self._keep_alive:
                return
            if idle and not self._idle_announced and self._pool.results.empty():
                self._idle_announced = True
                self._emit("idle", "nothing queued or in flight")
            item = self._pool.get(self._wait_time(time.monotonic()))
            while item is not None:
                if item[0] == "stop":
                    self._interrupt()
                    return
                self._handle(*item)
                item = self._pool.get(0)

    def _wait_time(self, now: float) -> float:
        due = [1.0]
        if self._polls:
            due.append(self._polls[0][0] - now)
        if self._creates and not self._stop_creates and len(self._in_flight) < self.options.concurrency:
            due.append(max(self._next_create_at, self._paused_until) - now)
        return max(0.0, min(due))

    def _dispatch_creates(self, now: float) -> None:
        while self._creates and not self._stop_creates and len(self._in_flight) < self.options.concurrency:
            if now < max(self._next_create_at, self._paused_until):
                return
            render = self._creates.popleft()
            self.progress.queued -= 1
            try:  # reads the images: before the intent, so a failure here cannot look like a lost create
                request = render.targets[0].job.api_request()
            except errors.VidbatchError as e:
                self.result.unfinished.extend(pj.job.name for pj in render.targets)
                self._emit("error", f"not submitted: {e}", render)
                continue
            self._next_create_at = max(now, self._next_create_at) + 60.0 / self.options.rpm
            reason = render.targets[0].reason
            self.store.record_intent(render.key, name=render.name, reason=reason)
            self._in_flight.add(render.key)
            self._creating.add(render.key)
            self.progress.running += 1
            self._emit("submit", reason, render)
            self._pool.submit("create", render, lambda request=request: self.client.create(request))

    def _dispatch_polls(self, now: float) -> None:
        while self._polls and self._polls[0][0] <= now:
            _, _, render = heapq.heappop(self._polls)
            self._pool.submit("poll", render, lambda task_id=render.task_id: self.client.query(task_id))

    def _schedule_poll(self, render: _Render, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._polls, (time.monotonic() + delay, self._seq, render))

    # --- results ------------------------------------------------------------------------

    def _handle(self, tag: str, render: _Render, result: Any, error: BaseException | None) -> None:
        if isinstance(error, KeyboardInterrupt):
            raise error
        self._idle_announced = False
        if tag == "replan":
            self._take_plan(result(self.store))
            return
        handler = {"create": self._on_created, "poll": self._on_polled, "download": self._on_downloaded, "reuse": self._on_reused}[tag]
        handler(render, result, error)

    def _on_created(self, render: _Render, task_id: str | None, error: BaseException | None) -> None:
        self._creating.discard(render.key)
        if error is None:
            assert task_id is not None
            render.task_id = task_id
            self.store.record_submitted(render.key, task_id, name=render.name)
            self.progress.created += 1
            self._emit("submitted", f"task {task_id}", render, task_id=task_id)
            self._schedule_poll(render, self.options.poll_interval)
            return
        self._leave_flight(render)
        info = ErrorInfo.from_exception(error)
        if isinstance(error, errors.MaybeSubmittedError):
            self.store.record_uncertain(render.key, info, name=render.name)
            self._count_uncertain(render)
            self._emit("uncertain", f"create answer lost; MiniMax may have a task for it: {error}", render)
        elif isinstance(error, errors.JobFailedError):
            self.store.record_failed(render.key, info, name=render.name)
            self._count_failed(render)
            self._emit("failed", str(error), render, code=info.code)
        elif isinstance(error, (errors.AccountError, errors.ConfigError)):
            # the account, key or host is wrong: every other create would fail the same way
            self.store.record_not_submitted(render.key, info, name=render.name)
            self._requeue(render, front=True)
            self._account_stop(error)
        elif isinstance(error, errors.RateLimitedError):
            self.store.record_not_submitted(render.key, info, name=render.name)
            pause = max(error.retry_after or 0.0, self.options.rate_limit_pause)
            self._paused_until = time.monotonic() + pause
            self._requeue(render, front=True)
            self._emit("rate_limited", f"rate limited; pausing creates for {pause:.0f} s", render, pause=pause)
        elif isinstance(error, errors.TransientError) and render.create_rounds + 1 < self.options.create_rounds:
            render.create_rounds += 1
            self.store.record_not_submitted(render.key, info, name=render.name)
            self._requeue(render, front=False)
            self._emit("retry", f"create failed, will try again: {error}", render)
        elif isinstance(error, errors.VidbatchError):
            self.store.record_not_submitted(render.key, info, name=render.name)
            self.result.unfinished.extend(pj.job.name for pj in render.targets)
            self._emit("error", f"create failed; the next run will try again: {error}", render)
        else:
            self.store.record_not_submitted(render.key, ErrorInfo(f"internal error: {error!r}"), name=render.name)
            raise error

    def _on_polled(self, render: _Render, status: Any, error: BaseException | None) -> None:
        if error is not None:
            if isinstance(error, errors.AccountError):
                self._account_stop(error)
            if isinstance(error, errors.JobFailedError):
                self._fail(render, error)
                return
            if not isinstance(error, errors.VidbatchError):
                raise error
            render.poll_failures += 1
            if isinstance(error, errors.AccountError) and render.poll_failures >= 3:
                self._leave_flight(render)
                self.result.unfinished.extend(pj.job.name for pj in render.targets)
                return
            delay = min(300.0, max(self.options.poll_interval, 1.0) * 2**render.poll_failures)
            self._emit("retry", f"poll failed, will poll again in {delay:.0f} s: {error}", render)
            self._schedule_poll(render, delay)
            return
        render.poll_failures = 0
        self.store.record_status(render.key, status.status, name=render.name)
        if status.state is facts.TaskState.SUCCESS:
            render.file_id = status.file_id
            self.store.record_rendered(render.key, status.file_id, width=status.video_width, height=status.video_height, name=render.name)
            self._emit("rendered", f"file {status.file_id}", render, file_id=status.file_id)
            self._download(render)
        elif status.state is facts.TaskState.FAILED:
            try:
                status.raise_for_failure()
            except errors.JobFailedError as e:
                self._fail(render, e)
        else:
            self._emit("status", status.status, render, status=status.status)
            self._schedule_poll(render, self.options.poll_interval)

    def _download(self, render: _Render) -> None:
        target = render.targets[0].job.output
        file_id = render.file_id
        self._pool.submit("download", render, lambda: self._fetch(file_id, target))

    def _fetch(self, file_id: str | None, target: Path) -> tuple[Path, int, str]:
        """Worker side: download to a staging file, verify, rename over the output."""
        with _into_place(target) as staging:
            got = self.client.download(file_id, staging)
            problems = mp4.check_mp4(staging)
            if problems:
                raise errors.DownloadError(
                    "downloaded file is not a valid MP4: " + "; ".join(problems),
                    errors.CallInfo("download", detail={"file_id": file_id}),
                )
        return target, got.bytes, got.sha256

    def _on_downloaded(self, render: _Render, result: tuple[Path, int, str] | None, error: BaseException | None) -> None:
        if error is not None:
            if not isinstance(error, (errors.VidbatchError, OSError)):
                raise error
            render.download_rounds += 1
            self.store.record_error(render.key, ErrorInfo.from_exception(error), name=render.name, event="download_failed")
            if isinstance(error, errors.DownloadError) and error.retryable and render.download_rounds < self.options.download_rounds:
                self._emit("retry", f"download failed, trying again: {error}", render)
                self._download(render)
                return
            self._leave_flight(render)
            self.result.unfinished.extend(pj.job.name for pj in render.targets)
            self._emit("error", f"download failed; the render is kept and the next run downloads it again: {error}", render)
            return
        assert result is not None
        path, size, sha = result
        self._record_output(render.targets[0], path, size, sha, "downloaded")
        for pj in render.targets[1:]:
            self._pool.submit("reuse", _Render(render.key, [pj]), lambda pj=pj: self._copy(path, pj.job.output, size, sha))
        self._leave_flight(render)

    def _copy(self, source: Path, target: Path, size: int, sha: str) -> tuple[Path, int, str]:
        """Worker side: copy a verified video to another output, atomically."""
        with _into_place(target) as staging:
            shutil.copyfile(source, staging)
            if staging.stat().st_size != size:
                raise errors.DownloadError(f"copy of {source} is incomplete", errors.CallInfo("copy"))
        return target, size, sha

    def _on_reused(self, render: _Render, result: Any, error: BaseException | None) -> None:
        if error is not None:
            if not isinstance(error, (errors.VidbatchError, OSError)):
                raise error
            self.result.unfinished.extend(pj.job.name for pj in render.targets)
            self._emit("error", f"copy failed: {error}", render)
            return
        pairs = result if isinstance(result, list) else [(render.targets[0], result)]
        for pj, (path, size, sha) in pairs:
            self._record_output(pj, path, size, sha, "reused")

    def _record_output(self, pj: PlannedJob, path: Path, size: int, sha: str, event: str) -> None:
        job = pj.job
        st = path.stat()
        self.store.record_downloaded(job.key, path, size=size, sha256=sha, mtime_ns=st.st_mtime_ns, name=job.name, manifest=str(job.manifest), event=event)
        self.progress.done += 1
        self._emit(event, str(path), job_name=job.name, key=job.key, path=str(path), bytes=size, sha256=sha)

    # --- outcomes -----------------------------------------------------------------------

    def _fail(self, render: _Render, error: BaseException) -> None:
        self._leave_flight(render)
        info = ErrorInfo.from_exception(error)
        self.store.record_failed(render.key, info, name=render.name)
        self._count_failed(render)
        self._emit("failed", str(error), render, code=info.code)

    def _count_failed(self, render: _Render) -> None:
        self.progress.failed += len(render.targets)
        self.result.failed.extend(pj.job.name for pj in render.targets)

    def _count_uncertain(self, render: _Render) -> None:
        self.progress.uncertain += len(render.targets)
        self.result.uncertain.extend(pj.job.name for pj in render.targets)

    def _leave_flight(self, render: _Render) -> None:
        if render.key in self._in_flight:
            self._in_flight.discard(render.key)
            self.progress.running -= 1

    def _requeue(self, render: _Render, *, front: bool) -> None:
        self.progress.queued += 1
        (self._creates.appendleft if front else self._creates.append)(render)

    def _account_stop(self, error: BaseException) -> None:
        if self._stop_creates:
            return
        self._stop_creates = True
        self.result.stopped = "account"
        self.result.stop_message = str(error)
        self._emit("account_stop", f"stopping new renders: {error}; tasks already running are still collected")

    def _interrupt(self) -> None:
        """First Ctrl-C: stop creating, save the task ids of creates on the wire, return."""
        self._stop_creates = True
        self.result.stopped = "interrupted"
        self._emit("interrupted", "interrupted: no new renders; saving the creates already sent")
        deadline = time.monotonic() + 15.0
        try:
            while self._creating and time.monotonic() < deadline:
                item = self._pool.get(0.2)
                if item is None:
                    continue
                tag, render, result, error = item
                if tag == "create":
                    self._on_created(render, result, error)
                elif tag in ("download", "reuse") and error is None:
                    self._handle(tag, render, result, error)  # the file is in place: record it
                # polls are dropped: their tasks stay "running" in the state and are resumed
        except KeyboardInterrupt:
            pass  # second Ctrl-C: leave now; those creates become "uncertain" on the next start

    def _finish(self) -> None:
        # renders not finished in this run stay resumable in the state
        for render in self._creates:
            self.result.unfinished.extend(pj.job.name for pj in render.targets)
        for _, _, render in self._polls:
            self.result.unfinished.extend(pj.job.name for pj in render.targets)
        self._emit("finish", "finished", data={"stopped": self.result.stopped, "created": self.progress.created})

    # --- events -------------------------------------------------------------------------

    def _emit(self, kind: str, message: str, render: _Render | None = None, *, job_name: str | None = None, key: str | None = None, data: dict | None = None, **extra: Any) -> None:
        if render is not None:
            job_name, key = render.name, render.key
        self.on_event(RunEvent(kind, message, job_name, key, {**(data or {}), **extra}, progress=self.progress))


@contextlib.contextmanager
def _into_place(target: Path) -> Iterator[Path]:
    """A staging file beside ``target`` to write and check; renamed over ``target`` only when the
    block succeeds, removed in every case, so the output is never partial."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_path(target)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def _staging_path(target: Path) -> Path:
    """A hidden file beside ``target``, unique to one download or copy: two renders of one
    output (a job edited while its older render was still running) may land at the same time."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{STAGING_SUFFIX}")


def check_budget(plan: Plan, max_renders: int | None) -> None:
    """Refuse a plan that would create more renders than the user allowed."""
    if max_renders is not None and len(plan.billable) > max_renders:
        raise errors.UsageError(
            f"the plan would create {len(plan.billable)} renders, more than --max-renders {max_renders}; "
            "check the manifest (a template typo can multiply jobs), then raise --max-renders"
        )


def clean_staging(paths: Iterable[Path]) -> None:
    """Remove staging files a killed run left beside outputs."""
    for folder in {p.parent for p in paths}:
        if folder.is_dir():
            for stale in folder.glob(f".*{STAGING_SUFFIX}"):
                stale.unlink(missing_ok=True)
            for stale in folder.glob(".*.part"):
                stale.unlink(missing_ok=True)
