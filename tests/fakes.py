"""Test doubles for the runner: a scripted API client (no HTTP) and a clock that jumps.

``FakeClient`` answers each call from a script: per call (``create``, ``query``, ``download``),
a queue of answers; an answer is a value to return, an exception to raise, or a function of the
call's argument. When a call's script is empty the default answer is a success: a create gets
``task-N``, a query says ``Success`` with ``file-<task>``, a download writes a small valid MP4
(which names its file id, so a test can tell which render landed where).
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from vidbatch import facts
from vidbatch.client import Download, TaskStatus


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
        self._script: dict[str, deque[Answer]] = {"create": deque(), "query": deque(), "download": deque()}
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
