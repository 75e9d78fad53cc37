"""Test doubles for the runner: a scripted API client (no HTTP) and a clock that jumps.

``FakeClient`` answers each call from a script: per call (``create``, ``query``, ``download``,
and Video Generation V2's ``create_v2``, ``query_v2``, ``list_v2``, ``cancel_v2``,
``download_v2``), a queue of answers; an answer is a value to return, an exception to raise, or a
function of the call's argument. When a call's script is empty the default answer is a success: a
create gets ``task-N``, a query says ``Success`` with ``file-<task>``, a download writes a small
valid MP4 (which names its file id, so a test can tell which render landed where).

For V2 the fake keeps an account's task list, as the API does: ``create_v2`` adds a task (with a
server ``created_at`` from its own clock, one second per create), ``list_v2`` shows them newest
first, ``cancel_v2`` cancels a queued one. ``lost_answer`` is a scripted create that makes the
task and loses the answer; ``second_client`` makes a task as another program on the account would.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from vidbatch import errors, facts, policy
from vidbatch.client import Download, TaskStatus, V2Page, V2Task


def mp4_bytes(label: str) -> bytes:
    """The smallest file :func:`vidbatch.mp4.check_mp4` accepts, carrying ``label``."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    return box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"moov", b"") + box(b"mdat", label.encode())


def status(task_id: str, state: str = "Success", *, file_id: str | None = None, code: int | None = None) -> TaskStatus:
    """A query answer; ``state`` is MiniMax's status string (Queueing, Processing, Success, Fail)."""
    return TaskStatus(
        task_id=task_id,
        status=state,
        state=facts.task_state(state),
        file_id=(file_id or f"file-{task_id}") if state == "Success" else None,
        video_width=1366,
        video_height=768,
        error_message="render failed" if state == "Fail" else None,
        trace_id="trace-1",
        status_code=code,
    )


Answer = Any  # a value, an exception (raised), or a callable of the call's argument


class FakeClient:
    """A scripted :class:`vidbatch.runner.ApiClient`. ``calls`` lists (call, argument, time)."""

    def __init__(self, clock: Any = None) -> None:
        self._script: dict[str, deque[Answer]] = {
            c: deque() for c in ("create", "query", "download", "create_v2", "query_v2", "list_v2", "cancel_v2", "download_v2")
        }
        #: V2: the account's tasks (id -> task), their server clock, and tasks still queued
        self.v2_tasks: dict[str, V2Task] = {}
        self.v2_bodies: dict[str, dict[str, Any]] = {}
        self.server_clock = 1_700_000_000.0
        self.queued: set[str] = set()
        self.uploads: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._clock = clock
        self._tasks = 0
        self.calls: list[tuple[str, Any, float]] = []
        self.requests: list[dict[str, Any]] = []

    def script(self, call: str, *answers: Answer) -> "FakeClient":
        self._script[call].extend(answers)
        return self

    def times(self, call: str) -> list[float]:
        return [t for c, _, t in self.calls if c == call]

    def count(self, call: str) -> int:
        return len(self.times(call))

    def _next(self, call: str, arg: Any, default: Callable[[Any], Any]) -> Any:
        with self._lock:
            self.calls.append((call, arg, self._clock.now() if self._clock else 0.0))
            answer: Any = self._script[call].popleft() if self._script[call] else default
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer()
        return answer(arg) if callable(answer) else answer

    def create(self, request: dict[str, Any]) -> str:
        self.requests.append(request)

        def new_task(_: Any) -> str:
            with self._lock:
                self._tasks += 1
                return f"task-{self._tasks}"

        return str(self._next("create", request, new_task))

    def query(self, task_id: str) -> TaskStatus:
        answer = self._next("query", task_id, status)
        return answer if isinstance(answer, TaskStatus) else status(task_id, answer)

    def download(self, file_id: str | int, dest: Path) -> Download:
        def write(fid: Any) -> Download:
            return write_video(dest, mp4_bytes(str(fid)))

        answer = self._next("download", str(file_id), write)
        if isinstance(answer, bytes):  # a scripted body (a damaged file, say)
            return write_video(dest, answer)
        assert isinstance(answer, Download)
        return answer


    # --- Video Generation V2 ------------------------------------------------------------------

    def make_v2_task(self, body: dict[str, Any], *, status: str = "succeeded") -> str:
        """Add a task to the account's list as the API would on a create; its id."""
        with self._lock:
            self._tasks += 1
            self.server_clock += 1.0
            task_id = f"v2task-{self._tasks}"
            shape = policy.v2_shape(body)
            self.v2_tasks[task_id] = V2Task(
                task_id=task_id,
                status=status,
                state=facts.v2_task_state(status),
                model=shape.model,
                created_at=self.server_clock,
                duration=shape.duration,
                resolution=shape.resolution,
                ratio=shape.ratio,
                video_url=f"https://cdn.example/{task_id}.mp4" if status == "succeeded" else None,
                usage={"total_seconds": shape.duration or 0, "input_seconds": 0, "output_seconds": shape.duration or 0, "input_image_count": 0},
            )
            self.v2_bodies[task_id] = body
            if status == "queued":
                self.queued.add(task_id)
            return task_id

    def lost_answer(self, body: dict[str, Any]) -> str:
        """A scripted create_v2 answer: the task is made, the answer is lost."""
        self.make_v2_task(body)
        raise errors.MaybeSubmittedError("create answer lost (fake)", errors.CallInfo("create"))

    def second_client(self, body: dict[str, Any] | None = None) -> str:
        """A task made on the account by another program (by default text-to-video, 16:9)."""
        return self.make_v2_task(body or {"model": "MiniMax-H3", "content": [{"type": "text", "text": "someone else"}], "ratio": "16:9"})

    def v2_prompts(self) -> list[str]:
        """The prompt of every V2 task, in creation order."""
        return [str(next((i.get("text") for i in b.get("content", []) if i.get("type") == "text"), "")) for b in self.v2_bodies.values()]

    def upload_file(self, data: bytes, filename: str) -> str:
        with self._lock:
            self.uploads.append((filename, len(data)))
            return f"{len(self.uploads)}"

    def create_v2(self, body: dict[str, Any]) -> str:
        self.requests.append(body)
        return str(self._next("create_v2", body, self.make_v2_task))

    def query_v2(self, task_id: str) -> V2Task:
        def current(tid: str) -> V2Task:
            task = self.v2_tasks.get(tid)
            if task is None:
                raise errors.TaskGoneError(f"task {tid} not found", errors.CallInfo("query", status_code=2013))
            return task

        answer = self._next("query_v2", task_id, current)
        return answer if isinstance(answer, V2Task) else current(task_id)

    def list_v2(self, *, created_after: float | None = None) -> V2Page:
        def page(_: Any) -> V2Page:
            tasks = sorted(self.v2_tasks.values(), key=lambda t: t.created_at or 0.0, reverse=True)
            return V2Page(tasks, server_time=self.server_clock + 0.5)

        answer = self._next("list_v2", created_after, page)
        assert isinstance(answer, V2Page)
        return answer

    def cancel_v2(self, task_id: str) -> None:
        def cancel(tid: str) -> None:
            task = self.v2_tasks[tid]
            if tid not in self.queued:
                raise errors.InvalidRequestError(f"task {tid} is {task.status} and cannot be cancelled", errors.CallInfo("cancel", status_code=2013))
            self.queued.discard(tid)
            self.v2_tasks[tid] = V2Task(tid, "cancelled", facts.TaskState.FAILED, model=task.model, created_at=task.created_at)

        self._next("cancel_v2", task_id, cancel)

    def download_v2(self, task_id: str, dest: Path, *, url: str | None = None) -> Download:
        answer = self._next("download_v2", task_id, lambda tid: write_video(dest, mp4_bytes(str(tid))))
        if isinstance(answer, bytes):
            return write_video(dest, answer)
        assert isinstance(answer, Download)
        return answer


def write_video(dest: Path, data: bytes) -> Download:
    dest.write_bytes(data)
    return Download(dest, len(data), hashlib.sha256(data).hexdigest())


class FakeClock:
    """Monotonic time that jumps: a wait with nothing to wake it moves time on at once.
    ``real_wait`` lets results of real worker threads arrive first (for tests with real HTTP)."""

    def __init__(self, start: float = 1000.0, *, real_wait: float = 0.0, limit: float = 10_000_000.0) -> None:
        self.t = start
        self.start = start
        self.real_wait = real_wait
        self.limit = limit
        self.waited = 0.0

    def now(self) -> float:
        return self.t

    def wait(self, until_woken: Callable[[float], bool], seconds: float) -> bool:
        if until_woken(self.real_wait):
            return True
        self.t += seconds
        self.waited += seconds
        if self.t - self.start > self.limit:
            raise AssertionError("the runner waited for ever (fake clock limit)")
        return False

    def elapsed(self) -> float:
        return self.t - self.start
