"""The state cache: what has been submitted, rendered and written, in one SQLite file.

Layout (``.vidbatch/state.db`` beside the manifest by default; WAL mode; readable with plain
``sqlite3`` and ``sqlite-utils``):

- ``jobs``: one row per *content key* (:mod:`vidbatch.identity`), i.e. per distinct request. It
  holds the request as shown to people (images by path and sha256, never base64 and never the
  key), the lifecycle ``state``, MiniMax's ``task_id`` and ``file_id``, attempts, the last error
  (code, message, Trace-Id), timestamps and the sha256/size of the rendered video.
- ``outputs``: one row per output *file path*: which key's video the file holds, its size, sha256
  and mtime when written. Plans verify files against it. Several paths may hold one key (reuse).
- ``events``: append-only history of every transition, so ``status`` can tell a job's story.

A job's state is a :class:`JobState`; :data:`TRANSITIONS` is the one table of legal moves, and
the store refuses any other. The write methods are intents (``record_submitted``,
``record_downloaded``...), each one transaction, so a crash leaves either the old row or the new.

Crash safety rests on two writes: ``record_intent`` *before* a create is sent, and
``record_submitted`` the moment its task_id arrives. A row found in ``submitting`` when a run
starts (the run lock guarantees no live run owns it) was cut off mid-create: whether MiniMax
accepted it is unknowable, so it becomes ``uncertain`` and is never re-created silently.

Schema changes are migrations (``sqlite_utils.Migrations``), applied on open, one function per
change, never edited once released.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import sqlite_utils
from sqlite_utils import Migrations

from .errors import StateError, StateLockedError

log = logging.getLogger(__name__)

STATE_DIR_NAME = ".vidbatch"
DB_NAME = "state.db"
LOCK_NAME = "run.lock"


class JobState(str, enum.Enum):
    NEW = "new"  # known, never (successfully) submitted
    SUBMITTING = "submitting"  # intent recorded; the create call is (or was) in flight
    UNCERTAIN = "uncertain"  # a create may or may not have been accepted: never re-created silently
    RUNNING = "running"  # MiniMax has the task; poll it
    RENDERED = "rendered"  # the task succeeded; the file is not downloaded (yet, or any more)
    DONE = "done"  # the video was downloaded and verified at least once
    FAILED = "failed"  # the render cannot succeed as written (Fail, 1026, 1027, 2013)


S = JobState
#: The one table of legal state changes.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.NEW: frozenset({S.SUBMITTING}),
    S.SUBMITTING: frozenset({S.RUNNING, S.NEW, S.FAILED, S.UNCERTAIN}),
    S.UNCERTAIN: frozenset({S.SUBMITTING, S.RUNNING, S.NEW}),
    S.RUNNING: frozenset({S.RENDERED, S.FAILED}),
    S.RENDERED: frozenset({S.DONE, S.SUBMITTING}),  # submitting: the file can no longer be fetched
    S.DONE: frozenset({S.SUBMITTING}),  # --force
    S.FAILED: frozenset({S.SUBMITTING}),  # --retry-failed
}


def now() -> float:
    return time.time()


migrations = Migrations("vidbatch")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    # The first schema: jobs by content key, output files by path, and an append-only history.
    db["jobs"].create(
        {
            "key": str,
            "request": str,  # JSON, images by path + sha256
            "model": str,
            "mode": str,
            "duration": int,
            "resolution": str,
            "prompt": str,
            "name": str,  # the job's name when last planned (names are not part of the key)
            "manifest": str,  # the manifest that last planned it
            "state": str,
            "task_id": str,
            "file_id": str,
            "attempts": int,
            "error_code": int,
            "error_message": str,
            "trace_id": str,
            "video_width": int,
            "video_height": int,
            "video_bytes": int,
            "video_sha256": str,
            "created_at": float,
            "updated_at": float,
            "submitted_at": float,
            "rendered_at": float,
            "downloaded_at": float,
        },
        pk="key",
        not_null={"state"},
        defaults={"attempts": 0},
    )
    db["jobs"].create_index(["state"])
    db["jobs"].create_index(["task_id"])
    db["outputs"].create(
        {
            "path": str,
            "key": str,
            "name": str,
            "manifest": str,
            "size": int,
            "sha256": str,
            "mtime_ns": int,
            "written_at": float,
        },
        pk="path",
        foreign_keys=[("key", "jobs", "key")],
    )
    db["outputs"].create_index(["key"])
    db["events"].create(
        {
            "id": int,
            "key": str,
            "at": float,
            "event": str,
            "from_state": str,
            "to_state": str,
            "name": str,
            "detail": str,
        },
        pk="id",
    )
    db["events"].create_index(["key", "id"])


@dataclass
class JobRecord:
    key: str
    request_json: str  # the ``request`` column; decoded on demand by ``request``
    model: str | None
    mode: str | None
    duration: int | None
    resolution: str | None
    prompt: str | None
    name: str | None
    manifest: str | None
    state: JobState
    task_id: str | None
    file_id: str | None
    attempts: int
    error_code: int | None
    error_message: str | None
    trace_id: str | None
    video_width: int | None
    video_height: int | None
    video_bytes: int | None
    video_sha256: str | None
    created_at: float | None
    updated_at: float | None
    submitted_at: float | None
    rendered_at: float | None
    downloaded_at: float | None

    def __post_init__(self) -> None:
        self.state = JobState(self.state)
        self.attempts = self.attempts or 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "JobRecord":
        return cls(*(row.get("request" if name == "request_json" else name) for name in _JOB_FIELDS))

    @property
    def request(self) -> dict[str, Any]:
        """The request as shown to people (images by path and sha256)."""
        return json.loads(self.request_json or "{}")

    @property
    def error(self) -> str | None:
        if not self.error_message:
            return None
        code = f" (code {self.error_code})" if self.error_code else ""
        trace = f" [trace_id={self.trace_id}]" if self.trace_id else ""
        return f"{self.error_message}{code}{trace}"


@dataclass
class OutputRecord:
    path: str
    key: str
    name: str | None
    manifest: str | None
    size: int
    sha256: str
    mtime_ns: int
    written_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "OutputRecord":
        return cls(**{name: row.get(name) for name in _OUTPUT_FIELDS})


_JOB_FIELDS = tuple(f.name for f in fields(JobRecord))
#: the jobs columns in JobRecord's field order, so a row builds a record positionally
_JOB_SELECT = "select " + ", ".join("request" if n == "request_json" else n for n in _JOB_FIELDS) + " from jobs"
_OUTPUT_FIELDS = tuple(f.name for f in fields(OutputRecord))


@dataclass
class Event:
    id: int
    key: str
    at: float
    event: str
    from_state: str | None
    to_state: str | None
    name: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class ErrorInfo:
    """An error as the state keeps it. Never holds the API key (messages are built without it)."""

    message: str
    code: int | None = None
    trace_id: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> "ErrorInfo":
        info = getattr(exc, "info", None)
        return cls(
            message=str(exc),
            code=getattr(info, "status_code", None),
            trace_id=getattr(info, "trace_id", None),
        )


def default_state_dir(manifest_folder: Path) -> Path:
    """``VIDBATCH_STATE``, else ``.vidbatch`` in the manifest's folder."""
    env = os.environ.get("VIDBATCH_STATE")
    if env:
        return Path(env).expanduser().resolve()
    return Path(manifest_folder).resolve() / STATE_DIR_NAME


class Store:
    """The state database of one state folder. Not thread-safe: one thread writes."""

    def __init__(self, state_dir: Path, *, readonly: bool = False):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.readonly = readonly
        if readonly:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path)
        try:
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self.db.enable_wal()
                self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            self.db.execute("PRAGMA busy_timeout=10000")
            if migrations.pending(self.db):
                if readonly:
                    raise StateError(
                        f"{self.path} needs a schema upgrade; run `vidbatch run` or `vidbatch status` to apply it"
                    )
                migrations.apply(self.db)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StateError(f"{self.path} is not a usable vidbatch state database ({e}); move it aside") from e

    @staticmethod
    def exists(state_dir: Path) -> bool:
        return (Path(state_dir) / DB_NAME).exists()

    @classmethod
    def open_for_reading(cls, state_dir: Path) -> "Store | None":
        """The store if it exists, without creating anything (for plan and status); else None."""
        if not cls.exists(state_dir):
            return None
        try:
            return cls(state_dir, readonly=True)
        except StateError:
            return cls(state_dir)  # a pending migration: apply it (schema only, no semantic change)

    def close(self) -> None:
        self.db.conn.close()

    # --- locking --------------------------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the run lock of this state folder. The OS releases it if the process dies, so a
        crash never leaves a stale lock. Without ``wait`` a held lock raises StateLockedError."""
        import filelock

        lock = filelock.FileLock(str(self.state_dir / LOCK_NAME))
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except filelock.Timeout:
            raise StateLockedError(self.state_dir / LOCK_NAME) from None
        try:
            yield
        finally:
            lock.release()

    # --- reading --------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.db.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _records(self, where: str, params: Sequence[Any] = ()) -> list[JobRecord]:
        return [JobRecord(*row) for row in self.db.conn.execute(f"{_JOB_SELECT} {where}", params)]

    def get(self, key: str) -> JobRecord | None:
        rows = self._records("where key = ?", [key])
        return rows[0] if rows else None

    def get_many(self, keys: Iterable[str]) -> dict[str, JobRecord]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, JobRecord] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for record in self._records(f"where key in ({','.join('?' * len(chunk))})", chunk):
                out[record.key] = record
        return out

    def all_jobs(self) -> list[JobRecord]:
        return self._records("order by created_at")

    def job_summaries(self) -> list[tuple[str, str | None, str, str | None]]:
        """(key, name, state, manifest) of every job: the cheap listing orphans are found in."""
        return self.db.conn.execute("select key, name, state, manifest from jobs").fetchall()

    def jobs_in(self, *states: JobState) -> list[JobRecord]:
        return self._records(f"where state in ({','.join('?' * len(states))})", [s.value for s in states])

    def output(self, path: Path | str) -> OutputRecord | None:
        rows = self._rows("select * from outputs where path = ?", [str(path)])
        return OutputRecord.from_row(rows[0]) if rows else None

    def all_outputs(self) -> dict[str, OutputRecord]:
        return {r["path"]: OutputRecord.from_row(r) for r in self._rows("select * from outputs")}

    def outputs_for(self, key: str) -> list[OutputRecord]:
        return [OutputRecord.from_row(r) for r in self._rows("select * from outputs where key = ? order by written_at desc", [key])]

    def events(self, key: str | None = None, *, limit: int | None = None) -> list[Event]:
        where, args = ("key = ?", [key]) if key else (None, [])
        rows = self.db["events"].rows_where(where, args, order_by="id desc" if limit else "id", limit=limit)
        out = [
            Event(r["id"], r["key"], r["at"], r["event"], r["from_state"], r["to_state"], r["name"], json.loads(r["detail"] or "{}"))
            for r in rows
        ]
        return list(reversed(out)) if limit else out

    def counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self.db.query("select state, count(*) as n from jobs group by state")}

    # --- writing --------------------------------------------------------------------------

    def _event(self, key: str, event: str, from_state: JobState | None, to_state: JobState | None, name: str | None, detail: Mapping[str, Any] | None) -> None:
        self.db["events"].insert(
            {
                "key": key,
                "at": now(),
                "event": event,
                "from_state": from_state.value if from_state else None,
                "to_state": to_state.value if to_state else None,
                "name": name,
                "detail": json.dumps(dict(detail or {}), sort_keys=True),
            }
        )

    def _transition(self, key: str, to: JobState, event: str, *, name: str | None = None, detail: Mapping[str, Any] | None = None, **values: Any) -> JobRecord:
        with self.db.atomic():
            current = self.get(key)
            if current is None:
                raise StateError(f"no job with key {key} in {self.path}")
            if to is not current.state and to not in TRANSITIONS[current.state]:
                raise StateError(f"job {name or key}: cannot go from {current.state.value} to {to.value}")
            stamp = now()
            self.db["jobs"].update(key, {"state": to.value, "updated_at": stamp, **values})
            self._event(key, event, current.state, to, name, detail)
        record = self.get(key)
        assert record is not None
        return record

    def record_seen(self, key: str, request: Mapping[str, Any], *, model: str | None, mode: str | None, duration: int | None, resolution: str | None, prompt: str | None, name: str | None = None, manifest: str | None = None) -> JobRecord:
        """Make sure a row exists for ``key`` (state ``new`` when first seen); keep its name current."""
        with self.db.atomic():
            existing = self.get(key)
            if existing is not None:
                if (existing.name, existing.manifest) != (name, manifest):
                    self.db["jobs"].update(key, {"name": name, "manifest": manifest})
                    existing.name, existing.manifest = name, manifest
                return existing
            stamp = now()
            self.db["jobs"].insert(
                {
                    "key": key,
                    "request": json.dumps(dict(request), sort_keys=True, ensure_ascii=False),
                    "model": model,
                    "mode": mode,
                    "duration": duration,
                    "resolution": resolution,
                    "prompt": prompt,
                    "name": name,
                    "manifest": manifest,
                    "state": JobState.NEW.value,
                    "attempts": 0,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            self._event(key, "seen", None, JobState.NEW, name, None)
        record = self.get(key)
        assert record is not None
        return record

    def record_seen_many(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """``record_seen`` for many jobs in one transaction: each mapping holds the keyword
        arguments of :meth:`record_seen` plus ``key`` and ``request``. Existing rows only get
        their name and manifest brought up to date."""
        with self.db.atomic():
            for job in jobs:
                self.record_seen(**job)

    def record_intent(self, key: str, *, name: str | None = None, reason: str | None = None) -> JobRecord:
        """Written *before* a create is sent: a crash from here on leaves the job ``submitting``."""
        current = self.get(key)
        attempts = (current.attempts if current else 0) + 1
        return self._transition(
            key,
            JobState.SUBMITTING,
            "submit",
            name=name,
            detail={"reason": reason} if reason else None,
            attempts=attempts,
            task_id=None,
            file_id=None,
            error_code=None,
            error_message=None,
            trace_id=None,
        )

    def record_submitted(self, key: str, task_id: str, *, name: str | None = None) -> JobRecord:
        return self._transition(key, JobState.RUNNING, "submitted", name=name, detail={"task_id": task_id}, task_id=task_id, submitted_at=now())

    def record_not_submitted(self, key: str, error: ErrorInfo, *, name: str | None = None) -> JobRecord:
        """The create certainly was not accepted (the server answered no): back to ``new``."""
        return self._transition(key, JobState.NEW, "not_submitted", name=name, detail={"error": error.message}, **_error_values(error))

    def record_uncertain(self, key: str, error: ErrorInfo, *, name: str | None = None) -> JobRecord:
        return self._transition(key, JobState.UNCERTAIN, "uncertain", name=name, detail={"error": error.message}, **_error_values(error))

    def record_status(self, key: str, status: str, *, name: str | None = None) -> None:
        """A poll answer; only a change of MiniMax status is kept in the history."""
        last = self.events(key, limit=1)
        if last and last[0].event == "status" and last[0].detail.get("status") == status:
            return
        with self.db.atomic():
            self.db["jobs"].update(key, {"updated_at": now()})
            self._event(key, "status", None, None, name, {"status": status})

    def record_rendered(self, key: str, file_id: str, *, width: int | None = None, height: int | None = None, name: str | None = None) -> JobRecord:
        return self._transition(key, JobState.RENDERED, "rendered", name=name, detail={"file_id": file_id}, file_id=file_id, video_width=width, video_height=height, rendered_at=now(), error_code=None, error_message=None, trace_id=None)

    def record_failed(self, key: str, error: ErrorInfo, *, name: str | None = None) -> JobRecord:
        return self._transition(key, JobState.FAILED, "failed", name=name, detail={"error": error.message, "code": error.code}, **_error_values(error))

    def record_error(self, key: str, error: ErrorInfo, *, name: str | None = None, event: str = "error") -> None:
        """A problem that leaves the state as it is (a download that will be retried)."""
        with self.db.atomic():
            self.db["jobs"].update(key, {"updated_at": now(), **_error_values(error)})
            self._event(key, event, None, None, name, {"error": error.message, "code": error.code})

    def record_downloaded(self, key: str, path: Path, *, size: int, sha256: str, mtime_ns: int, name: str | None, manifest: str | None, event: str = "downloaded") -> JobRecord:
        """A verified video now sits at ``path``; the job is ``done``."""
        with self.db.atomic():
            self.db["outputs"].upsert(
                {"path": str(path), "key": key, "name": name, "manifest": manifest, "size": size, "sha256": sha256, "mtime_ns": mtime_ns, "written_at": now()},
                pk="path",
            )
            record = self._transition(
                key,
                JobState.DONE,
                event,
                name=name,
                detail={"path": str(path), "bytes": size, "sha256": sha256},
                video_bytes=size,
                video_sha256=sha256,
                downloaded_at=now(),
                error_code=None,
                error_message=None,
                trace_id=None,
            )
        return record

    def record_output_checked(self, path: Path, *, mtime_ns: int) -> None:
        """A file was re-hashed and found intact after its mtime changed (e.g. it was copied)."""
        self.db["outputs"].update(str(path), {"mtime_ns": mtime_ns})

    def mark_interrupted_submissions(self) -> list[JobRecord]:
        """Rows left ``submitting`` by a run that died mid-create become ``uncertain``.
        Call only while holding the run lock."""
        stale = self.jobs_in(JobState.SUBMITTING)
        for record in stale:
            self.record_uncertain(
                record.key,
                ErrorInfo("the run stopped while this job's create call was in flight; MiniMax may or may not have accepted it"),
            )
        return stale

    def forget(self, keys: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        with self.db.atomic():
            for path in paths:
                self.db["outputs"].delete_where("path = ?", [str(path)])
            for key in keys:
                self.db["outputs"].delete_where("key = ?", [key])
                self.db["events"].delete_where("key = ?", [key])
                self.db["jobs"].delete_where("key = ?", [key])


def _error_values(error: ErrorInfo) -> dict[str, Any]:
    return {"error_code": error.code, "error_message": error.message, "trace_id": error.trace_id}
