"""The state cache: what has been submitted, rendered and written, in one SQLite file.

Words: a *job* is an entry of a manifest (it has a name and an output path); a *render* is one
distinct request to MiniMax, identified by its content key (:mod:`vidbatch.identity`). Several
jobs with identical requests share one render; the state keeps renders, and the outputs that
hold their videos.

Layout (``.vidbatch/state.db`` beside the manifest by default; WAL mode; readable with plain
``sqlite3`` and ``sqlite-utils``):

- ``renders``: one row per content key. It holds the request as shown to people (images by path
  and sha256, never base64 and never the key), the lifecycle ``state``, MiniMax's ``task_id`` and
  ``file_id``, attempts, the last error as its parts (``error_call``, ``error_http_status``,
  ``error_code``, ``error_status_msg``, ``error_message``, ``error_hint``, ``trace_id``),
  timestamps and the sha256/size of the rendered video. (A view named ``jobs`` shows the same
  rows under the table's name before migration m003, for queries written against it.)
- ``outputs``: one row per output *file path*: which key's video the file holds, its size, sha256
  and mtime when written. Plans verify files against it. Several paths may hold one key (reuse).
- ``videos`` (m004): every video a key has had (task_id, file_id, sha256, bytes). A forced
  re-render gives a key a new video, but an output keeps the one it holds: a missing output is
  restored to *its* video (by sha256, from a copy or its file id), never to the newest.
- ``events``: append-only history of every transition, so ``status`` can tell a job's story.

A render MiniMax no longer knows (``2013`` on query or retrieve: expired, or another account's
task) is ``gone``: only ``--force NAME`` renders it again. A state lost or rebuilt recognises
finished outputs through the index beside them (:mod:`vidbatch.outputs_index`,
``record_adopted``), and a run notices its database file deleted or replaced under it
(:meth:`Store.in_place`) and puts it back from its open connection (:meth:`Store.put_back`).

A render's state is a :class:`RenderState`; :data:`TRANSITIONS` is the one table of legal moves,
and the store refuses any other. The write methods are intents (``record_submitted``,
``record_downloaded``...), each one transaction, so a crash leaves either the old row or the new.

Speed (issue 15): a no-op imports no sqlite-utils, and the write path is prepared plain SQL, one
statement per change (sqlite-utils asks SQLite about the schema again on every ``update``); a
transition reads the row once and returns it updated in memory. During a run the write-ahead log
is checkpointed by a thread of its own (:meth:`Store.checkpoints_elsewhere`), so no commit of the
scheduler waits for the database file's fsync.

Crash safety rests on two writes: ``record_intent`` *before* a create is sent, and the task id
the moment it arrives. The coroutine that got the answer (on the runner's wire) appends it to the
task-id journal (:class:`TaskIdJournal`, ``task-ids.journal`` beside the database: one ``write``
to a file open for appending, under the journal's own lock), and the scheduler commits it with
``record_submitted`` when it takes the answer. A crash between the two loses nothing: the next
start replays the journal first (:meth:`Store.replay_journal`). A row still found in
``submitting`` after that (the run lock guarantees no live run owns it) was cut off mid-create:
whether MiniMax accepted it is unknowable, so it becomes ``uncertain`` and is never re-created
silently. The journal's write reaches the operating system at once, as a WAL commit with
``synchronous=NORMAL`` does: both survive the process dying, neither a power cut.

Sharing the file:

- Schema changes are migrations (``sqlite_utils.Migrations``), applied on open, one function per
  change, never edited once released. They run under the run lock, so two processes opening a
  fresh folder at once cannot both create the tables. Whether any is pending is one plain query
  (:meth:`_MigrationSet.pending_names`): sqlite-utils is imported only to apply them, or when
  someone reads :attr:`Store.db`.
- A read-only store (``plan``, ``status``, ``report``) never writes: it opens the file with
  ``mode=ro`` (``immutable`` on a read-only folder), and when the file needs migrations it
  migrates a copy in memory; the next ``run`` upgrades the file itself.
- Another SQLite client (``sqlite3``, ``sqlite-utils``, a DB browser) may hold the write lock;
  every statement waits up to :data:`BUSY_TIMEOUT` seconds for it. Any SQLite failure leaves the
  store as a :class:`~vidbatch.errors.StateError` whose advice fits the cause (lock, full disk,
  read-only folder, damaged file), never as a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Concatenate, Iterable, Iterator, Mapping, ParamSpec, Sequence, TypeVar

from .errors import ApiError, CallInfo, StateError, StateLockedError, VidbatchError

if TYPE_CHECKING:  # pragma: no cover
    import filelock
    import sqlite_utils

log = logging.getLogger(__name__)

STATE_DIR_NAME = ".vidbatch"
DB_NAME = "state.db"
LOCK_NAME = "run.lock"
JOURNAL_NAME = "task-ids.journal"
#: Seconds a statement waits for another connection's write lock before the store gives up with a
#: StateError (tests pass a short ``busy_timeout`` to Store instead).
BUSY_TIMEOUT = 20.0
#: Seconds between a run's checkpoints of the write-ahead log (:meth:`Store.checkpoints_elsewhere`).
CHECKPOINT_INTERVAL = 1.0
#: SQLite's own checkpoint threshold (pages), restored after a run.
_AUTOCHECKPOINT = 1000


class RenderState(str, enum.Enum):
    NEW = "new"  # known, never (successfully) submitted
    SUBMITTING = "submitting"  # intent recorded; the create call is (or was) in flight
    UNCERTAIN = "uncertain"  # a create may or may not have been accepted: never re-created silently
    RUNNING = "running"  # MiniMax has the task; poll it
    RENDERED = "rendered"  # the task succeeded; the file is not downloaded (yet, or any more)
    DONE = "done"  # the video was downloaded and verified at least once
    FAILED = "failed"  # the render cannot succeed as written (Fail, 1026, 1027, 2013 on create)
    GONE = "gone"  # MiniMax no longer knows its task or file (expired, another account): --force


S = RenderState
#: The one table of legal state changes.
TRANSITIONS: dict[RenderState, frozenset[RenderState]] = {
    S.NEW: frozenset({S.SUBMITTING, S.DONE}),  # done: adopted from an outputs index (lost state)
    S.SUBMITTING: frozenset({S.RUNNING, S.NEW, S.FAILED, S.UNCERTAIN}),
    S.UNCERTAIN: frozenset({S.SUBMITTING, S.RUNNING, S.NEW}),
    S.RUNNING: frozenset({S.RENDERED, S.FAILED, S.GONE, S.NEW}),  # new: a queued V2 task cancelled as obsolete
    S.RENDERED: frozenset({S.DONE, S.SUBMITTING, S.GONE}),  # submitting: the file can no longer be fetched
    S.DONE: frozenset({S.SUBMITTING, S.GONE}),  # --force; gone: a download found the file expired
    S.FAILED: frozenset({S.SUBMITTING}),  # --retry-failed
    S.GONE: frozenset({S.SUBMITTING, S.DONE}),  # --force; done: a verified copy was adopted
}


def now() -> float:
    return time.time()


class _MigrationSet:
    """The ``vidbatch`` set of sqlite-utils migrations, registered without importing sqlite-utils.

    Registering (``@migrations()``) only lists the functions; :meth:`pending_names` asks the
    database with one plain query which ones it has applied (sqlite-utils' own table,
    ``_sqlite_migrations``). The real ``sqlite_utils.Migrations`` is made when first needed
    (:meth:`apply`, :meth:`pending`, :meth:`applied`), so a store that needs none never imports it.
    """

    name = "vidbatch"
    table = "_sqlite_migrations"

    def __init__(self) -> None:
        self._functions: list[tuple[Callable[[sqlite_utils.Database], None], dict[str, Any]]] = []
        self._real: Any = None

    def __call__(self, **options: Any) -> Callable[[Callable[[sqlite_utils.Database], None]], Callable[[sqlite_utils.Database], None]]:
        """``@migrations()`` registers the function below it (sqlite-utils' options pass through)."""

        def register(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
            if self._real is not None:
                self._real(**options)(fn)
            self._functions.append((fn, options))
            return fn

        return register

    @property
    def names(self) -> list[str]:
        return [options.get("name") or fn.__name__ for fn, options in self._functions]

    def pending_names(self, conn: sqlite3.Connection) -> list[str]:
        """The names of the migrations ``conn``'s database has not applied (reads, never writes)."""
        if conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", [self.table]).fetchone() is None:
            return self.names
        done = {row[0] for row in conn.execute(f"select name from {self.table} where migration_set = ?", [self.name])}
        return [name for name in self.names if name not in done]

    def _set(self) -> Any:
        if self._real is None:
            from sqlite_utils import Migrations

            real = Migrations(self.name)
            for fn, options in self._functions:
                real(**options)(fn)
            self._real = real
        return self._real

    def apply(self, db: sqlite_utils.Database, **options: Any) -> None:
        self._set().apply(db, **options)

    def pending(self, db: sqlite_utils.Database) -> list[Any]:
        return list(self._set().pending(db))

    def applied(self, db: sqlite_utils.Database) -> list[Any]:
        return list(self._set().applied(db))

    @property
    def _migrations(self) -> list[Any]:
        return list(self._set()._migrations)


migrations = _MigrationSet()


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    # The first schema: jobs by content key, output files by path, and an append-only history.
    db.table("jobs").create(
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
    db.table("jobs").create_index(["state"])
    db.table("jobs").create_index(["task_id"])
    db.table("outputs").create(
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
    db.table("outputs").create_index(["key"])
    db.table("events").create(
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
    db.table("events").create_index(["key", "id"])


@migrations()
def m002_error_parts(db: sqlite_utils.Database) -> None:
    # Errors were kept as one text (str of the exception) that the report parsed back with a
    # regex. Keep their parts instead: which call failed, the HTTP status, MiniMax's status_msg
    # and the hint (error_code, error_message and trace_id exist already). Rows written before
    # keep their whole text in error_message and NULL in error_call, and read as before.
    for column, kind in (("error_call", str), ("error_http_status", int), ("error_status_msg", str), ("error_hint", str)):
        db.table("jobs").add_column(column, kind)


@migrations()
def m003_jobs_are_renders(db: sqlite_utils.Database) -> None:
    # "job" means a manifest entry everywhere else; a row of this table is one render (one
    # distinct request, shared by every job that asks for it). Rename the table and its indexes,
    # keeping the rows; SQLite updates the outputs' foreign key. A view keeps the old name
    # readable for queries people wrote against it (the README invites sqlite3).
    db.execute("ALTER TABLE jobs RENAME TO renders")
    for column in ("state", "task_id"):
        db.execute(f"DROP INDEX IF EXISTS idx_jobs_{column}")
        db.table("renders").create_index([column], index_name=f"idx_renders_{column}")
    db.execute("CREATE VIEW jobs AS SELECT * FROM renders")


@migrations()
def m004_video_history(db: sqlite_utils.Database) -> None:
    # A render's row keeps only its newest video, so a forced re-render of a key rewrote which
    # video every output of that key was said to hold, and a missing output was restored to the
    # newest video instead of the one it held. Keep every video a key has had: (key, task_id,
    # file_id, sha256, bytes), one row per distinct file, so an output is restored to its own.
    # Rows: each render's current video, and the videos outputs hold that differ from it (their
    # task and file ids are no longer known: NULL).
    db.table("videos").create(
        {"id": int, "key": str, "task_id": str, "file_id": str, "sha256": str, "bytes": int, "at": float},
        pk="id",
    )
    db.table("videos").create_index(["key", "sha256"], unique=True)
    db.execute(
        "INSERT OR IGNORE INTO videos (key, task_id, file_id, sha256, bytes, at) "
        "SELECT key, task_id, file_id, video_sha256, video_bytes, coalesce(downloaded_at, updated_at) FROM renders WHERE video_sha256 IS NOT NULL"
    )
    db.execute(
        "INSERT OR IGNORE INTO videos (key, task_id, file_id, sha256, bytes, at) "
        "SELECT key, NULL, NULL, sha256, size, written_at FROM outputs WHERE sha256 IS NOT NULL"
    )


@dataclass(frozen=True)
class VideoRecord:
    """One video a render has had: MiniMax's ids for it and what the file is."""

    key: str
    task_id: str | None
    file_id: str | None
    sha256: str
    bytes: int | None


@migrations()
def m005_spend_ledger(db: sqlite_utils.Database) -> None:
    # Money: every create MiniMax accepted is a spend entry, every create whose answer was lost a
    # possible one (see vidbatch.ledger). A run writes the price of each render it may create in
    # price_quotes before its first create; a trigger on the history turns each `submitted` and
    # `uncertain` event into a spend row, with that price, in the very transaction that records
    # the event: the entry is durable the moment the task id is, and a crash can neither lose it
    # nor write it twice (one event, one row: event_id is unique). The runner is not involved.
    # Spend rows are never deleted (gc forgets renders and their history, not what they cost).
    db.table("price_quotes").create(
        {"key": str, "amount": str, "currency": str, "region": str, "quoted_at": float, "origin": str},
        pk="key",
    )
    db.table("spend").create(
        {
            "id": int,
            "event_id": int,
            "at": float,
            "key": str,
            "task_id": str,
            "kind": str,  # "accepted" or "possible" (the create's answer was lost)
            "name": str,
            "manifest": str,
            "model": str,
            "mode": str,
            "resolution": str,
            "duration": int,
            "amount": str,  # decimal text; NULL when no price was known when the create was made
            "currency": str,
            "region": str,
            "priced_at": float,
            "price_origin": str,
            "billed_amount": str,  # the figure the API reported, where it reports one
        },
        pk="id",
        not_null={"event_id", "at", "key", "kind"},
    )
    db.table("spend").create_index(["event_id"], unique=True)
    db.table("spend").create_index(["at"])
    db.execute(
        """
        CREATE TRIGGER spend_from_events AFTER INSERT ON events
        WHEN NEW.event IN ('submitted', 'uncertain')
        BEGIN
            INSERT OR IGNORE INTO spend (event_id, at, key, task_id, kind, name, manifest, model, mode,
                resolution, duration, amount, currency, region, priced_at, price_origin)
            SELECT NEW.id, NEW.at, NEW.key, json_extract(NEW.detail, '$.task_id'),
                CASE NEW.event WHEN 'submitted' THEN 'accepted' ELSE 'possible' END,
                COALESCE(NEW.name, r.name), r.manifest, r.model, r.mode, r.resolution, r.duration,
                q.amount, q.currency, q.region, q.quoted_at, q.origin
            FROM (SELECT NEW.key AS key) AS k
            LEFT JOIN renders AS r ON r.key = k.key
            LEFT JOIN price_quotes AS q ON q.key = k.key;
        END
        """
    )
    # Creates made before this migration are in the history already: they become entries too,
    # with no price kept (the ledger prices them when read, and says so).
    db.execute(
        """
        INSERT INTO spend (event_id, at, key, task_id, kind, name, manifest, model, mode, resolution, duration)
        SELECT e.id, e.at, e.key, json_extract(e.detail, '$.task_id'),
            CASE e.event WHEN 'submitted' THEN 'accepted' ELSE 'possible' END,
            COALESCE(e.name, r.name), r.manifest, r.model, r.mode, r.resolution, r.duration
        FROM events AS e LEFT JOIN renders AS r ON r.key = e.key
        WHERE e.event IN ('submitted', 'uncertain')
        ORDER BY e.id
        """
    )
    db.execute(
        """
        CREATE VIEW spend_by_day AS
        SELECT date(at, 'unixepoch') AS day, manifest, model, resolution, currency, kind,
            count(*) AS creates, sum(amount IS NULL) AS unpriced,
            CASE WHEN count(COALESCE(billed_amount, amount)) > 0
                THEN printf('%.2f', sum(CAST(COALESCE(billed_amount, amount) AS REAL))) END AS amount
        FROM spend GROUP BY day, manifest, model, resolution, currency, kind
        ORDER BY day, manifest, model, resolution, kind
        """
    )


@migrations()
def m008_cuts(db: sqlite_utils.Database) -> None:
    # Cuts (issue 14): a manifest's sequence of shots joined into one video, locally. A cut is
    # joined again only when a shot's video changed, so the state keeps, per cut file, the sha256
    # of each clip it was joined from (a JSON list, in order) and what the file is (size, sha256,
    # mtime: verified like an output).
    db.table("cuts").create(
        {"path": str, "manifest": str, "name": str, "inputs": str, "sha256": str, "size": int, "mtime_ns": int, "reencoded": str, "built_at": float},
        pk="path",
    )


@dataclass(frozen=True)
class CutRecord:
    """A cut as last joined: from which videos (``inputs``, sha256s in order) and what the file is."""

    path: str
    manifest: str | None
    name: str | None
    inputs: list[str]
    sha256: str
    size: int
    mtime_ns: int
    reencoded: str | None  # why the clips were re-encoded; None when copied
    built_at: float


@dataclass(frozen=True)
class V2Intent:
    """A V2 create whose answer never arrived (see :meth:`Store.open_v2_intents`): its render,
    the history event of the intent (its id orders it among recorded tasks; ``at`` is local Unix
    time) and the shape its task would show in the task list."""

    key: str
    name: str | None
    state: "RenderState"
    event_id: int
    at: float
    shape: dict[str, Any]


@migrations()
def m006_v2_usage(db: sqlite_utils.Database) -> None:
    # Video Generation V2 (MiniMax-H3) says what it billed for a task (`usage`: seconds and
    # reference images). Keep it on the task's spend entries, as JSON, for the money features.
    db.table("spend").add_column("usage", str)


@dataclass(frozen=True)
class ErrorInfo:
    """An error as the state keeps it: its parts, never its text parsed back.

    Never holds the API key: API errors' parts are built by the client without it, other
    vidbatch errors' messages are too, and of any other exception only the class name is kept
    (its text or ``repr`` might hold anything, a request with its headers included)."""

    message: str
    code: int | None = None  # MiniMax's status_code
    trace_id: str | None = None
    call: str | None = None  # "create", "query", "retrieve", "download"...
    http_status: int | None = None
    status_msg: str | None = None  # MiniMax's status_msg
    hint: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> "ErrorInfo":
        if isinstance(exc, ApiError):
            info = exc.info
            return cls(
                message=_api_message(exc),
                code=info.status_code,
                trace_id=info.trace_id,
                call=info.call,
                http_status=info.http_status,
                status_msg=info.status_msg,
                hint=exc.hint or None,
            )
        if isinstance(exc, VidbatchError):
            return cls(str(exc))
        return cls(f"internal error ({type(exc).__name__}); run again with VIDBATCH_DEBUG=1 to see it")

    @property
    def details(self) -> str | None:
        """``call=create http=400 status_code=2013 ... trace_id=...`` of an API error, else None."""
        if self.call is None:
            return None
        return CallInfo(self.call, self.http_status, self.code, self.status_msg, self.trace_id).describe()

    def text(self) -> str:
        """The error as one text, as the exception read (``status`` and ``plan`` show it)."""
        details = self.details
        if details is None:  # not an API error, or a row written before m002
            code = f" (code {self.code})" if self.code else ""
            trace = f" [trace_id={self.trace_id}]" if self.trace_id else ""
            return f"{self.message}{code}{trace}"
        return f"{self.message} [{details}]" + (f"\n  hint: {self.hint}" if self.hint else "")


def _api_message(exc: ApiError) -> str:
    """The message an ApiError was made with, without the call details and hint it appends."""
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    text = str(exc)
    suffix = f" [{exc.info.describe()}]" + (f"\n  hint: {exc.hint}" if exc.hint else "")
    return text[: -len(suffix)] if text.endswith(suffix) else text


@dataclass
class RenderRecord:
    key: str
    request_json: str  # the ``request`` column; decoded on demand by ``request``
    model: str | None
    mode: str | None
    duration: int | None
    resolution: str | None
    prompt: str | None
    name: str | None  # the name of the job that last planned this render
    manifest: str | None
    state: RenderState
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
    error_call: str | None = None
    error_http_status: int | None = None
    error_status_msg: str | None = None
    error_hint: str | None = None

    def __post_init__(self) -> None:
        self.state = RenderState(self.state)
        self.attempts = self.attempts or 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "RenderRecord":
        return cls(*(row.get("request" if name == "request_json" else name) for name in _RENDER_FIELDS))  # type: ignore[arg-type]

    @property
    def request(self) -> dict[str, Any]:
        """The request as shown to people (images by path and sha256)."""
        return dict(json.loads(self.request_json or "{}"))

    @property
    def error_info(self) -> ErrorInfo | None:
        """The last error, as its parts."""
        if not self.error_message:
            return None
        return ErrorInfo(
            self.error_message,
            code=self.error_code,
            trace_id=self.trace_id,
            call=self.error_call,
            http_status=self.error_http_status,
            status_msg=self.error_status_msg,
            hint=self.error_hint,
        )

    @property
    def error(self) -> str | None:
        """The last error as one text."""
        info = self.error_info
        return info.text() if info else None


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
        return cls(**{name: row.get(name) for name in _OUTPUT_FIELDS})  # type: ignore[arg-type]


_RENDER_FIELDS = tuple(f.name for f in fields(RenderRecord))
#: the renders columns in RenderRecord's field order, so a row builds a record positionally
_RENDER_SELECT = "select " + ", ".join("request" if n == "request_json" else n for n in _RENDER_FIELDS) + " from renders"
_OUTPUT_FIELDS = tuple(f.name for f in fields(OutputRecord))
_ERROR_COLUMNS = ("error_code", "error_message", "trace_id", "error_call", "error_http_status", "error_status_msg", "error_hint")
_NO_ERROR: dict[str, Any] = dict.fromkeys(_ERROR_COLUMNS)
#: a renders column -> the RenderRecord attribute holding it, where the names differ
_RENDER_ATTRIBUTE = {"request": "request_json"}
_RENDER_COLUMNS = tuple("request" if n == "request_json" else n for n in _RENDER_FIELDS)
_RENDER_INSERT = f"insert into renders ({', '.join(_RENDER_COLUMNS)}) values ({', '.join('?' * len(_RENDER_COLUMNS))})"


#: the encoder of an event's detail (made once: ``json.dumps`` with options makes one per call)
_DETAIL_JSON = json.JSONEncoder(sort_keys=True)


@functools.lru_cache(maxsize=64)
def _assignments(columns: tuple[str, ...]) -> str:
    """``a = ?, b = ?`` for an update (the few column sets the store writes, made once each)."""
    return ", ".join(f"{c} = ?" for c in columns)


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


def default_state_dir(manifest_folder: Path) -> Path:
    """``VIDBATCH_STATE``, else ``.vidbatch`` in the manifest's folder."""
    env = os.environ.get("VIDBATCH_STATE")
    if env:
        return Path(env).expanduser().resolve()
    return Path(manifest_folder).resolve() / STATE_DIR_NAME


# --- SQLite failures as StateErrors ---------------------------------------------------------------


def state_error(path: Path, error: sqlite3.Error | OSError, *, busy_timeout: float = BUSY_TIMEOUT) -> StateError:
    """A StateError whose advice fits what went wrong with the database at ``path``."""
    if isinstance(error, OSError):
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StateError(f"the state folder {path.parent} is not writable ({error.strerror or error}); pass --state to use another folder, or fix its permissions")
        if error.errno == errno.ENOSPC:
            return StateError(f"the disk under the state folder {path.parent} is full (free space on it, or pass --state to use another folder)")
        return StateError(f"cannot use the state folder {path.parent} ({error.strerror or error}); check its permissions and free space, or pass --state to use another folder")
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return StateError(
            f"the state database {path} stayed locked by another connection for {busy_timeout:g} s "
            "(an open sqlite3 or sqlite-utils session, or a database browser, holding a write transaction?); "
            "end that transaction or close the program, then run again"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StateError(f"the disk holding {path} is full; free some space and run again (the state is intact)")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "readonly" in text:
        return StateError(
            f"cannot write or open the state database {path} ({text}); check that its folder exists and is writable "
            "(plan and status only read it), or pass --state to use another folder"
        )
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return StateError(f"the disk failed while using {path} ({text}); check the disk and run again")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or type(error) is sqlite3.DatabaseError:
        return StateError(f"{path} is not a usable vidbatch state database ({text}); move it aside and run again to start a new state")
    return StateError(f"the state database {path} failed ({text}); run again, and report this if it persists")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(method: Callable[Concatenate["Store", _P], _R]) -> Callable[Concatenate["Store", _P], _R]:
    """A Store method whose SQLite failures leave it as a StateError (never a traceback)."""

    @functools.wraps(method)
    def wrapper(self: "Store", /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise state_error(self.path, e, busy_timeout=self.busy_timeout) from e

    return wrapper


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    return fcntl


class _FileLock:
    """An exclusive ``flock`` on a lock file, re-entrant within its object, as ``filelock``'s
    (whose import costs a no-op more than the rest of it, issue 15). The OS drops it when the
    process dies. Two objects on one path exclude each other, in one process too."""

    available = hasattr(os, "O_RDWR") and _fcntl() is not None

    class Timeout(Exception):
        pass

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._depth = 0

    def acquire(self, timeout: float = -1) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        fcntl = _fcntl()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if timeout >= 0 else 0))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self.Timeout(self.path) from None
                time.sleep(0.05)
            except BaseException:
                os.close(fd)
                raise
        self._fd, self._depth = fd, 1

    def retake(self) -> None:
        """Held, but its file was deleted (or replaced): lock the file now at the path instead,
        without waiting (Timeout: another process holds that one), and let the old one go."""
        if self._fd is None:
            return
        fd, old = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), self._fd
        try:
            _fcntl().flock(fd, _fcntl().LOCK_EX | _fcntl().LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.Timeout(self.path) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        os.close(old)

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth == 0:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


class TaskIdJournal:
    """Task ids written the moment their create is answered, by the coroutine that got the
    answer (on the runner's wire), before the scheduler commits them to the database (issue 15: at thousands of
    creates a minute the scheduler may be busy for milliseconds, and a crash then would leave
    a paid task ``uncertain``). One JSON line per answer, ``{"key", "attempt", "task_id"}``:
    ``attempt`` is the render's ``attempts`` after its intent, so an older create of the same
    key is never taken for the one cut off. Thread-safe. A line that cannot be written (a full
    disk) is logged, and the database commit still follows, as before the journal.

    The journal is emptied only when every task id written to it by this object is committed
    (:meth:`committed`, called by :meth:`Store.record_submitted`): otherwise the next start
    replays it."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._uncommitted: dict[str, bytes] = {}  # task id -> its line
        self._dirty = True  # what an earlier process left is unknown until the first clear

    def note(self, key: str, attempt: int, task_id: str) -> None:
        line = (json.dumps({"key": key, "attempt": attempt, "task_id": task_id}, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._uncommitted[task_id] = line
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(self._fd, line)
                self._dirty = True
            except OSError as e:
                log.warning("could not journal task %s: %s (the state database still records it)", task_id, e)

    def committed(self, task_id: str) -> None:
        with self._lock:
            self._uncommitted.pop(task_id, None)

    def entries(self) -> list[tuple[str, int, str]]:
        """(key, attempt, task_id) of every whole line, oldest first (a line cut off by a crash,
        or anything else that does not parse, is skipped)."""
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for raw in lines:
            try:
                entry = json.loads(raw)
                found.append((str(entry["key"]), int(entry["attempt"]), str(entry["task_id"])))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def clear(self) -> None:
        """Empty the journal if every task id this object wrote is committed."""
        with self._lock:
            if self._uncommitted or not self._dirty:
                return
            try:
                if self._fd is not None:
                    os.ftruncate(self._fd, 0)
                else:
                    os.truncate(self.path, 0)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not empty %s: %s (its lines are replayed harmlessly next time)", self.path, e)
                return
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def put_back(self) -> None:
        """The journal's file was deleted: write the lines not yet committed to a new one at
        its path (where the next start replays them); later lines go there too. Raises OSError."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._uncommitted:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.write(self._fd, b"".join(self._uncommitted.values()))


class _Transaction:
    """:meth:`Store.transaction` (a class, not a generator: every write of a run enters one,
    and a generator-based context manager cost several times more)."""

    __slots__ = ("store", "savepoint")

    def __init__(self, store: "Store") -> None:
        self.store = store
        self.savepoint: str | None = None

    def __enter__(self) -> None:
        store = self.store
        if store._grouping:
            return  # the group is all or nothing: its owner rolls it back if a write fails
        if store.conn.in_transaction:
            store._savepoints += 1
            self.savepoint = f"vidbatch_{store._savepoints}"
            store.conn.execute(f"SAVEPOINT {self.savepoint}")
            return
        try:
            store.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise state_error(store.path, e, busy_timeout=store.busy_timeout) from e

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        store, name = self.store, self.savepoint
        if store._grouping:
            return
        if name is None:
            if kind is not None:
                store._roll_back()
            else:
                store._commit()
            return
        if kind is None:
            store.conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        # an error such as a RAISE(ROLLBACK) trigger may have ended the whole transaction
        if store.conn.in_transaction:
            store.conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            store.conn.execute(f"RELEASE SAVEPOINT {name}")
        else:
            store._forget_uncommitted()
        store._last_status.clear()  # this write's status may be undone


class Store:
    """The state database of one state folder. Not thread-safe: one thread writes.

    ``readonly``: never write (plan, status, report). ``busy_timeout``: seconds to wait for
    another connection's write lock (default :data:`BUSY_TIMEOUT`)."""

    def __init__(self, state_dir: Path, *, readonly: bool = False, busy_timeout: float | None = None):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.readonly = readonly
        self.busy_timeout = BUSY_TIMEOUT if busy_timeout is None else busy_timeout
        self._lock: "_FileLock | filelock.BaseFileLock | None" = None
        try:
            conn = self._connect_readonly() if readonly else self._connect()
        except sqlite3.Error as e:
            raise state_error(self.path, e, busy_timeout=self.busy_timeout) from e
        except OSError as e:
            raise state_error(self.path, e) from e
        self.conn = conn
        self._savepoints = 0
        #: what to do once the open transaction is committed (dropped if it is rolled back)
        self._after_commit: list[Callable[[], None]] = []
        #: a group of writes is open (begin_group): its writes take no savepoints
        self._grouping = False
        #: by key, the MiniMax status of the last event this store wrote (None: not a status), so
        #: a poll that changes nothing costs no read (see record_status); forgotten on a rollback
        self._last_status: dict[str, str | None] = {}
        self._inode = self._file_identity()
        #: task ids written by the worker that got them, before they are committed here
        self.journal = TaskIdJournal(self.state_dir / JOURNAL_NAME)

    @functools.cached_property
    def db(self) -> sqlite_utils.Database:
        """The connection as a ``sqlite_utils.Database``, for the few readers that want one (the
        store itself writes plain SQL: this imports sqlite-utils on first use)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # --- opening --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            if _journal_mode(conn) != "wal" or migrations.pending_names(conn):
                # A fresh or older file: set it up under the run lock, so two processes opening
                # it at once cannot both create tables (the second finds them made).
                with self._setup_lock():
                    conn.execute("PRAGMA journal_mode=wal")
                    if migrations.pending_names(conn):
                        _apply_migrations(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _setup_lock(self) -> Iterator[None]:
        with self._holding(self.busy_timeout):
            yield

    def _connect_readonly(self) -> sqlite3.Connection:
        """Open without writing a byte of the database; a file that needs migrations is migrated
        in a copy in memory."""
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self.busy_timeout)
        try:
            conn.execute("select count(*) from sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            # A WAL database in a folder that cannot be written (no -shm file can be made):
            # with no -wal file there is nothing but the file to read, and nobody can change it.
            if Path(f"{self.path}-wal").exists():
                raise
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=self.busy_timeout)
        conn.execute("PRAGMA query_only=ON")
        if not migrations.pending_names(conn):
            return conn
        log.info("%s needs a schema upgrade: reading a migrated copy (the next run upgrades the file)", self.path)
        memory = sqlite3.connect(":memory:")
        try:
            conn.backup(memory)
        finally:
            conn.close()
        _apply_migrations(memory)
        memory.execute("PRAGMA query_only=ON")
        return memory

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def in_place(self) -> bool:
        """Whether the database file this store writes to is still the one at its path (one
        ``stat``). A file deleted (or replaced) under a run takes every write of the run with
        it, and the next run would pay again: see :meth:`put_back`."""
        return self._inode is None or self.readonly or self._file_identity() == self._inode

    def put_back(self) -> None:
        """The database file was deleted under this store (:meth:`in_place` is False): make the
        folder again, take the run lock again (if this store held it), copy the open database
        into a new file with SQLite's backup, rename it into place and write to it from now on;
        the task-id journal's uncommitted lines are written again too. Call outside a
        transaction. Raises StateError, with the open database as it was, if the folder cannot
        be made, another run holds the new lock, or another file is at the path (a database
        someone put there is never overwritten)."""
        fresh = self.state_dir / f".{DB_NAME}.put-back"
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if isinstance(self._lock, _FileLock):
                try:
                    self._lock.retake()
                except _FileLock.Timeout:
                    raise StateLockedError(self.state_dir / LOCK_NAME) from None
            if self.path.exists():
                raise StateError(f"the state database {self.path} was replaced by another file while this run was using it; that file is left as it is")
            self.journal.put_back()
            fresh.unlink(missing_ok=True)
            copy = sqlite3.connect(fresh)
            try:
                self.conn.backup(copy)
                copy.execute("PRAGMA journal_mode=wal")
            finally:
                copy.close()
            os.replace(fresh, self.path)
            conn = self._connect()  # as every store's: a WAL copy of an up-to-date schema needs no set-up
        except (sqlite3.Error, OSError) as e:
            with contextlib.suppress(OSError):
                fresh.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise state_error(self.path, e) from e
            raise state_error(self.path, e, busy_timeout=self.busy_timeout) from e
        old, self.conn = self.conn, conn
        old.close()
        self.__dict__.pop("db", None)  # a sqlite_utils.Database around the old connection
        self._inode = self._file_identity()

    @staticmethod
    def exists(state_dir: Path) -> bool:
        return (Path(state_dir) / DB_NAME).exists()

    @classmethod
    def open_for_reading(cls, state_dir: Path) -> "Store | None":
        """The store if it exists, read-only and creating nothing (for plan, status and report);
        else None."""
        if not cls.exists(state_dir):
            return None
        return cls(state_dir, readonly=True)

    def close(self) -> None:
        self.journal.close()
        self.conn.close()

    @contextlib.contextmanager
    def checkpoints_elsewhere(self, interval: float = CHECKPOINT_INTERVAL) -> Iterator[None]:
        """While the block runs, the write-ahead log is copied into the database file by a thread
        of its own (``wal_checkpoint(PASSIVE)`` on its own connection, every ``interval``
        seconds), not by whichever commit crosses SQLite's 1,000-page mark: that commit waits for
        the database file's fsync, which a busy disk stretched to 2.6 s on the run's one
        scheduling thread (issue 15). A passive checkpoint never blocks a writer; one that fails
        is logged and tried again. SQLite's own checkpoints resume after the block."""
        if self.readonly:
            yield
            return
        stop = threading.Event()
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=rw"  # never makes a file
        try:  # opened here, used only by the thread: without it SQLite keeps its own checkpoints
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, check_same_thread=False)
        except sqlite3.Error as e:
            log.info("keeping SQLite's own checkpoints of %s: %s", self.path, e)
            yield
            return

        def checkpoint() -> None:
            try:
                while not stop.wait(interval):
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as e:
                        log.info("a background checkpoint of %s failed: %s", self.path, e)
            finally:
                conn.close()

        try:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as e:
            conn.close()
            log.info("keeping SQLite's own checkpoints of %s: %s", self.path, e)
            yield
            return
        worker = threading.Thread(target=checkpoint, name="vidbatch-checkpoint", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=self.busy_timeout)
            try:
                self.conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
            except sqlite3.Error as e:
                log.info("could not restore SQLite's checkpoints of %s: %s", self.path, e)

    # --- locking --------------------------------------------------------------------------

    def _file_lock(self) -> "_FileLock | filelock.BaseFileLock":
        if self._lock is None:
            path = str(self.state_dir / LOCK_NAME)
            if _FileLock.available:
                self._lock = _FileLock(path)
            else:  # pragma: no cover - Windows: no flock
                import filelock

                self._lock = filelock.FileLock(path)
        return self._lock

    @contextlib.contextmanager
    def _holding(self, timeout: float) -> Iterator[None]:
        """Hold the lock file (``timeout`` seconds to wait for it; -1: as long as it takes)."""
        lock = self._file_lock()
        try:
            lock.acquire(timeout=timeout)
        except OSError as e:  # a read-only folder: no lock file can be made
            raise state_error(self.path, e) from e
        except Exception as e:  # the lock's Timeout (filelock's has its own class)
            if type(e).__name__ != "Timeout":
                raise
            raise StateLockedError(self.state_dir / LOCK_NAME) from None
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def run_lock(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the run lock of this state folder. The OS releases it if the process dies, so a
        crash never leaves a stale lock. Without ``wait`` a held lock raises StateLockedError."""
        with self._holding(-1 if wait else 0):
            yield

    def transaction(self) -> "_Transaction":
        """One write transaction (a savepoint when nested: its writes are undone alone when it
        fails, and the outer goes on). It begins IMMEDIATE: the write lock is waited for (the
        busy timeout) before anything is read, so a read-then-write cannot fail halfway on a
        snapshot another connection made stale."""
        return _Transaction(self)

    def begin_group(self) -> bool:
        """Begin a group of writes to commit together, once, with :meth:`end_group`: the
        runner's writes of one scheduler turn (issue 15: a transaction per write cost a run
        more than its network). The group is all or nothing: its writes take no savepoints of
        their own, so whoever began it rolls it back (:meth:`roll_back_group`) if any write in
        it fails or anything else stops it. False, and nothing begun, inside a transaction.
        Raises StateError if it cannot begin."""
        if self.conn.in_transaction:
            return False
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise state_error(self.path, e, busy_timeout=self.busy_timeout) from e
        self._grouping = True
        return True

    def end_group(self) -> None:
        """Commit the group :meth:`begin_group` began. Raises StateError, with the group rolled
        back, if the commit fails or SQLite ended the group early."""
        self._grouping = False
        if not self.conn.in_transaction:
            self._forget_uncommitted()
            raise StateError(f"the state database {self.path} dropped a group of writes (a write failed inside it); run again, and report this if it persists")
        self._commit()

    def roll_back_group(self) -> None:
        """Undo the group :meth:`begin_group` began: nothing written in it is kept."""
        self._grouping = False
        self._roll_back()

    def _commit(self) -> None:
        """Commit the open transaction, then do what waited for it; roll back if it fails."""
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._roll_back()
            raise state_error(self.path, e, busy_timeout=self.busy_timeout) from e
        done, self._after_commit = self._after_commit, []
        for action in done:
            action()

    def _roll_back(self) -> None:
        self._forget_uncommitted()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _forget_uncommitted(self) -> None:
        """The open transaction is gone: nothing waits for its commit, and what it wrote is not so."""
        self._after_commit.clear()
        self._last_status.clear()

    def when_committed(self, action: Callable[[], None]) -> None:
        """Call ``action`` once what was written so far is committed: at once outside a
        transaction; never if the transaction is rolled back."""
        if self.conn.in_transaction:
            self._after_commit.append(action)
        else:
            action()

    # --- reading --------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _records(self, where: str, params: Sequence[Any] = ()) -> list[RenderRecord]:
        return [RenderRecord(*row) for row in self.conn.execute(f"{_RENDER_SELECT} {where}", params)]

    @_guarded
    def get(self, key: str) -> RenderRecord | None:
        rows = self._records("where key = ?", [key])
        return rows[0] if rows else None

    @_guarded
    def get_many(self, keys: Iterable[str]) -> dict[str, RenderRecord]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, RenderRecord] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for record in self._records(f"where key in ({','.join('?' * len(chunk))})", chunk):
                out[record.key] = record
        return out

    @_guarded
    def all_renders(self) -> list[RenderRecord]:
        return self._records("order by created_at")

    @_guarded
    def render_summaries(self) -> list[tuple[str, str | None, str, str | None]]:
        """(key, name, state, manifest) of every render: the cheap listing orphans are found in."""
        return self.conn.execute("select key, name, state, manifest from renders").fetchall()

    @_guarded
    def renders_in(self, *states: RenderState) -> list[RenderRecord]:
        return self._records(f"where state in ({','.join('?' * len(states))})", [s.value for s in states])

    @_guarded
    def output(self, path: Path | str) -> OutputRecord | None:
        rows = self._rows("select * from outputs where path = ?", [str(path)])
        return OutputRecord.from_row(rows[0]) if rows else None

    @_guarded
    def all_outputs(self) -> dict[str, OutputRecord]:
        return {r["path"]: OutputRecord.from_row(r) for r in self._rows("select * from outputs")}

    @_guarded
    def outputs_for(self, key: str) -> list[OutputRecord]:
        return [OutputRecord.from_row(r) for r in self._rows("select * from outputs where key = ? order by written_at desc", [key])]

    @_guarded
    def videos(self, key: str) -> list[VideoRecord]:
        """Every video ``key`` has had, newest first."""
        rows = self._rows("select key, task_id, file_id, sha256, bytes from videos where key = ? order by at desc, id desc", [key])
        return [VideoRecord(**r) for r in rows]

    @_guarded
    def events(self, key: str | None = None, *, limit: int | None = None) -> list[Event]:
        sql = "select id, key, at, event, from_state, to_state, name, detail from events"
        args: list[Any] = []
        if key:
            sql, args = sql + " where key = ?", [key]
        sql += " order by id desc" if limit else " order by id"
        if limit:
            sql, args = sql + " limit ?", [*args, limit]
        out = [Event(i, k, at, event, a, b, name, json.loads(detail or "{}")) for i, k, at, event, a, b, name, detail in self.conn.execute(sql, args)]
        return list(reversed(out)) if limit else out

    @_guarded
    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("select state, count(*) from renders group by state").fetchall())

    # --- writing --------------------------------------------------------------------------

    def _event(self, key: str, event: str, from_state: RenderState | None, to_state: RenderState | None, name: str | None, detail: Mapping[str, Any] | None) -> None:
        self.conn.execute(
            "insert into events (key, at, event, from_state, to_state, name, detail) values (?, ?, ?, ?, ?, ?, ?)",
            [key, now(), event, from_state.value if from_state else None, to_state.value if to_state else None, name, _DETAIL_JSON.encode(dict(detail or {}))],
        )
        self._last_status[key] = detail.get("status") if event == "status" and detail else None

    def _update(self, key: str, values: Mapping[str, Any]) -> None:
        """Set columns of the render ``key`` (names from this module, never from input)."""
        self.conn.execute(f"update renders set {_assignments(tuple(values))} where key = ?", [*values.values(), key])

    @_guarded
    def _transition(self, /, key: str, to: RenderState, event: str, *, name: str | None = None, detail: Mapping[str, Any] | None = None, **values: Any) -> RenderRecord:
        with self.transaction():
            return self._move(self.get(key), key, to, event, name=name, detail=detail, **values)

    def _move(self, /, record: RenderRecord | None, key: str, to: RenderState, event: str, *, name: str | None, detail: Mapping[str, Any] | None, **values: Any) -> RenderRecord:
        """The body of a transition, inside the caller's transaction, from the row it read:
        check the move, write the row and its event, and return the row as written (without
        reading it again)."""
        if record is None:
            raise StateError(f"no render with key {key} in {self.path}")
        if to is not record.state and to not in TRANSITIONS[record.state]:
            raise StateError(f"job {name or key}: cannot go from {record.state.value} to {to.value}")
        changes = {"state": to.value, "updated_at": now(), **values}
        self._update(key, changes)
        self._event(key, event, record.state, to, name, detail)
        for column, value in changes.items():
            setattr(record, _RENDER_ATTRIBUTE.get(column, column), value)
        record.state = to
        return record

    @_guarded
    def record_seen(self, key: str, request: Mapping[str, Any], *, model: str | None, mode: str | None, duration: int | None, resolution: str | None, prompt: str | None, name: str | None = None, manifest: str | None = None) -> RenderRecord:
        """Make sure a row exists for ``key`` (state ``new`` when first seen); keep the name of
        the job that asks for it current."""
        with self.transaction():
            return self._seen(self.get(key), key, request, model=model, mode=mode, duration=duration, resolution=resolution, prompt=prompt, name=name, manifest=manifest)

    @_guarded
    def record_seen_many(self, renders: Sequence[Mapping[str, Any]]) -> None:
        """``record_seen`` for many renders in one transaction: each mapping holds the keyword
        arguments of :meth:`record_seen` plus ``key`` and ``request``. Existing rows only get
        their name and manifest brought up to date. The rows are read 500 at a time."""
        with self.transaction():
            rows = self.get_many(render["key"] for render in renders)
            for render in renders:
                key = render["key"]
                rows[key] = self._seen(rows.get(key), **render)

    def _seen(self, existing: RenderRecord | None, key: str, request: Mapping[str, Any], *, model: str | None, mode: str | None, duration: int | None, resolution: str | None, prompt: str | None, name: str | None = None, manifest: str | None = None) -> RenderRecord:
        """The body of :meth:`record_seen`, from the row it read (``existing``)."""
        if existing is not None:
            if (existing.name, existing.manifest) != (name, manifest):
                self._update(key, {"name": name, "manifest": manifest})
                existing.name, existing.manifest = name, manifest
            return existing
        stamp = now()
        record = RenderRecord(
            key, json.dumps(dict(request), sort_keys=True, ensure_ascii=False), model, mode, duration, resolution, prompt,
            name, manifest, RenderState.NEW, None, None, 0, None, None, None, None, None, None, None, stamp, stamp, None, None, None,
        )
        self.conn.execute(_RENDER_INSERT, [record.state.value if f == "state" else getattr(record, f) for f in _RENDER_FIELDS])
        self._event(key, "seen", None, RenderState.NEW, name, None)
        return record

    @_guarded
    def record_intent(self, key: str, *, name: str | None = None, reason: str | None = None, v2_shape: Mapping[str, Any] | None = None) -> RenderRecord:
        """Written *before* a create is sent: a crash from here on leaves the render ``submitting``.
        A V2 create keeps the shape its task will show in the task list (``v2_shape``), so a
        lost answer can be looked for there (:meth:`open_v2_intents`)."""
        detail: dict[str, Any] = {"reason": reason} if reason else {}
        if v2_shape is not None:
            detail["v2_shape"] = dict(v2_shape)
        with self.transaction():
            current = self.get(key)
            attempts = (current.attempts if current else 0) + 1
            return self._move(current, key, RenderState.SUBMITTING, "submit", name=name, detail=detail or None, attempts=attempts, task_id=None, file_id=None, **_NO_ERROR)

    def record_submitted(self, key: str, task_id: str, *, name: str | None = None, from_journal: bool = False) -> RenderRecord:
        """``from_journal``: the task id was found in the task-id journal at the next start."""
        detail = {"task_id": task_id, "from": "journal"} if from_journal else {"task_id": task_id}
        record = self._transition(key, RenderState.RUNNING, "submitted", name=name, detail=detail, task_id=task_id, submitted_at=now())
        self.when_committed(functools.partial(self.journal.committed, task_id))  # in a group: at its commit
        return record

    def record_not_submitted(self, key: str, error: ErrorInfo, *, name: str | None = None) -> RenderRecord:
        """The create certainly was not accepted (the server answered no): back to ``new``."""
        return self._transition(key, RenderState.NEW, "not_submitted", name=name, detail=_error_detail(error), **_error_values(error))

    def record_uncertain(self, key: str, error: ErrorInfo, *, name: str | None = None, extra: Mapping[str, Any] | None = None) -> RenderRecord:
        """``extra`` goes into the history (a V2 create: the candidate task ids, or that the task
        list could not be asked yet: ``{"reconcile": "pending"}``)."""
        return self._transition(key, RenderState.UNCERTAIN, "uncertain", name=name, detail={**_error_detail(error), **(extra or {})}, **_error_values(error))

    @_guarded
    def record_status(self, key: str, status: str, *, name: str | None = None) -> None:
        """A poll answer; only a change of MiniMax status is kept in the history."""
        if key in self._last_status:
            last = self._last_status[key]
        else:
            row = self.conn.execute("select event, detail from events where key = ? order by id desc limit 1", [key]).fetchone()
            last = json.loads(row[1] or "{}").get("status") if row is not None and row[0] == "status" else None
        if last == status:
            return
        with self.transaction():
            self._update(key, {"updated_at": now()})
            self._event(key, "status", None, None, name, {"status": status})

    def record_rendered(self, key: str, file_id: str, *, width: int | None = None, height: int | None = None, name: str | None = None) -> RenderRecord:
        return self._transition(key, RenderState.RENDERED, "rendered", name=name, detail={"file_id": file_id}, file_id=file_id, video_width=width, video_height=height, rendered_at=now(), **_NO_ERROR)

    def record_failed(self, key: str, error: ErrorInfo, *, name: str | None = None) -> RenderRecord:
        return self._transition(key, RenderState.FAILED, "failed", name=name, detail=_error_detail(error), **_error_values(error))

    @_guarded
    def record_error(self, key: str, error: ErrorInfo, *, name: str | None = None, event: str = "error") -> None:
        """A problem that leaves the state as it is (a download that will be retried)."""
        with self.transaction():
            self._update(key, {"updated_at": now(), **_error_values(error)})
            self._event(key, event, None, None, name, _error_detail(error))

    def _video(self, key: str, sha256: str, size: int, task_id: str | None, file_id: str | None) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO videos (key, task_id, file_id, sha256, bytes, at) VALUES (?, ?, ?, ?, ?, ?)",
            [key, task_id, file_id, sha256, size, now()],
        )

    def _output(self, path: Path, key: str, *, size: int, sha256: str, mtime_ns: int, name: str | None, manifest: str | None) -> None:
        self.conn.execute(
            "insert into outputs (path, key, name, manifest, size, sha256, mtime_ns, written_at) values (?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (path) do update set key = excluded.key, name = excluded.name, manifest = excluded.manifest, "
            "size = excluded.size, sha256 = excluded.sha256, mtime_ns = excluded.mtime_ns, written_at = excluded.written_at",
            [str(path), key, name, manifest, size, sha256, mtime_ns, now()],
        )

    @_guarded
    def record_restored(self, key: str, path: Path, *, size: int, sha256: str, mtime_ns: int, name: str | None, manifest: str | None) -> None:
        """An output was given back the video it held (an earlier video of ``key`` than the
        render's newest): only the output's record changes, never the render's."""
        with self.transaction():
            self._output(path, key, size=size, sha256=sha256, mtime_ns=mtime_ns, name=name, manifest=manifest)
            self._event(key, "restored", None, None, name, {"path": str(path), "bytes": size, "sha256": sha256})

    @_guarded
    def record_adopted(self, key: str, path: Path, *, size: int, sha256: str, mtime_ns: int, task_id: str | None, file_id: str | None, name: str | None, manifest: str | None, source: str) -> RenderRecord:
        """A finished video this state did not know (a lost or rebuilt state, another state
        folder) was found at ``path`` through an outputs index and verified by sha256: the render
        is ``done`` without paying for it again."""
        with self.transaction():
            self._output(path, key, size=size, sha256=sha256, mtime_ns=mtime_ns, name=name, manifest=manifest)
            self._video(key, sha256, size, task_id, file_id)
            record = self.get(key)
            if record is not None and record.state is RenderState.DONE:
                self._event(key, "adopted", None, None, name, {"path": str(path), "sha256": sha256, "from": source})
                return record
            return self._transition(
                key, RenderState.DONE, "adopted", name=name, detail={"path": str(path), "sha256": sha256, "from": source},
                task_id=task_id, file_id=file_id, video_bytes=size, video_sha256=sha256, downloaded_at=now(), **_NO_ERROR,
            )

    def record_gone(self, key: str, error: ErrorInfo, *, name: str | None = None) -> RenderRecord:
        """MiniMax no longer knows the render's task or file: only a forced render makes it again."""
        return self._transition(key, RenderState.GONE, "gone", name=name, detail=_error_detail(error), **_error_values(error))

    @_guarded
    def record_downloaded(self, key: str, path: Path, *, size: int, sha256: str, mtime_ns: int, name: str | None, manifest: str | None, event: str = "downloaded") -> RenderRecord:
        """A verified video now sits at ``path``; the render is ``done``."""
        with self.transaction():
            self._output(path, key, size=size, sha256=sha256, mtime_ns=mtime_ns, name=name, manifest=manifest)
            current = self.get(key)
            if current is not None:
                self._video(key, sha256, size, current.task_id, current.file_id)
            return self._move(
                current,
                key,
                RenderState.DONE,
                event,
                name=name,
                detail={"path": str(path), "bytes": size, "sha256": sha256},
                video_bytes=size,
                video_sha256=sha256,
                downloaded_at=now(),
                **_NO_ERROR,
            )

    @_guarded
    def cut(self, path: Path | str) -> CutRecord | None:
        """The record of the cut at ``path`` (None: never joined, or a state older than cuts)."""
        try:
            rows = self._rows("select * from cuts where path = ?", [str(path)])
        except sqlite3.OperationalError:  # a read-only look at a state not yet migrated
            return None
        if not rows:
            return None
        row = rows[0]
        return CutRecord(**{**row, "inputs": json.loads(row["inputs"])})

    @_guarded
    def record_cut(self, path: Path, *, manifest: str | None, name: str | None, inputs: Sequence[str], sha256: str, size: int, mtime_ns: int, reencoded: str | None) -> None:
        """A cut was joined from ``inputs`` (its clips' sha256s, in order) into ``path``."""
        with self.transaction():
            self.db.table("cuts").upsert(
                {"path": str(path), "manifest": manifest, "name": name, "inputs": json.dumps(list(inputs)), "sha256": sha256, "size": size, "mtime_ns": mtime_ns, "reencoded": reencoded, "built_at": now()},
                pk="path",
            )

    @_guarded
    def record_output_checked(self, path: Path, *, mtime_ns: int) -> None:
        """A file was re-hashed and found intact after its mtime changed (e.g. it was copied)."""
        with self.transaction():
            self.conn.execute("update outputs set mtime_ns = ? where path = ?", [mtime_ns, str(path)])

    def replay_journal(self) -> list[RenderRecord]:
        """Commit the task ids a run journaled but did not live to commit: rows still
        ``submitting`` at the journaled attempt become ``running`` with their task. Then the
        journal is emptied. Call only while holding the run lock."""
        recovered = []
        for record, task_id in self.journaled().values():
            recovered.append(self.record_submitted(record.key, task_id, name=record.name, from_journal=True))
        self.journal.clear()
        return recovered

    @_guarded
    def journaled(self) -> dict[str, tuple[RenderRecord, str]]:
        """By key: the rows still ``submitting`` whose task id the journal holds for their current
        attempt, with that task id (what :meth:`replay_journal` commits; this only reads). Lines
        of rows committed already, or of an older create of the key, are left out."""
        found = {}
        for key, attempt, task_id in self.journal.entries():
            record = self.get(key)
            if record is not None and record.state is RenderState.SUBMITTING and record.attempts == attempt:
                found[key] = (record, task_id)
        return found

    def mark_interrupted_submissions(self) -> list[RenderRecord]:
        """Rows left ``submitting`` by a run that died mid-create become ``uncertain``, except
        those whose task id the journal kept (:meth:`replay_journal`, done first) and V2
        creates (their intent kept a shape): the runner asks the task list about those
        (:meth:`open_v2_intents`). Call only while holding the run lock."""
        for record in self.replay_journal():
            log.info("job %s: task %s of a create cut off by a crash was found in the journal", record.name or record.key, record.task_id)
        open_v2 = {intent.key for intent in self.open_v2_intents()}
        stale = [r for r in self.renders_in(RenderState.SUBMITTING) if r.key not in open_v2]
        for record in stale:
            self.record_uncertain(
                record.key,
                ErrorInfo("the run stopped while this job's create call was in flight; MiniMax may or may not have accepted it"),
            )
        return stale

    # --- V2 creates whose answer was lost (the runner's exactly-once creates) -----------------

    @_guarded
    def open_v2_intents(self) -> list["V2Intent"]:
        """V2 creates the task list has not settled: rows ``submitting`` whose intent kept a
        shape, and rows ``uncertain`` whose last word is ``{"reconcile": "pending"}`` (the task
        list could not be asked). Oldest intent first."""
        rows = self._rows(
            "select r.key, r.name, r.state, e.id, e.at, e.detail from renders r "
            "join events e on e.id = (select max(id) from events where key = r.key and event = 'submit') "
            "where r.state in ('submitting', 'uncertain') order by e.id"
        )
        found = []
        for row in rows:
            shape = json.loads(row["detail"] or "{}").get("v2_shape")
            if shape is None:
                continue
            if row["state"] == RenderState.UNCERTAIN.value:
                last = self.events(row["key"], limit=1)
                if not (last and last[0].event == "uncertain" and last[0].detail.get("reconcile") == "pending"):
                    continue
            found.append(V2Intent(row["key"], row["name"], RenderState(row["state"]), row["id"], row["at"], dict(shape)))
        return found

    @_guarded
    def recorded_task_ids(self) -> list[tuple[int | None, str]]:
        """Every task id this state was given, with the id of the history event that recorded
        it (None for a row whose history was not kept), oldest first."""
        rows = self.conn.execute(
            "select id, json_extract(detail, '$.task_id') from events where event = 'submitted' "
            "and json_extract(detail, '$.task_id') is not null order by id"
        ).fetchall()
        found: list[tuple[int | None, str]] = [(int(i), str(t)) for i, t in rows]
        known = {t for _, t in found}
        found += [(None, str(t)) for (t,) in self.conn.execute("select task_id from renders where task_id is not null") if str(t) not in known]
        return found

    @_guarded
    def last_submitted_at(self) -> float | None:
        """When the newest task id was recorded (Unix time), or None."""
        row = self.conn.execute("select max(at) from events where event = 'submitted'").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def record_adopted_task(self, key: str, task_id: str, *, name: str | None = None, why: str = "") -> RenderRecord:
        """A lost V2 create's task, found in the task list: the render is ``running`` with it,
        recorded as ``submitted`` (so the spend ledger counts it once, as accepted)."""
        return self._transition(key, RenderState.RUNNING, "submitted", name=name, detail={"task_id": task_id, "adopted": why or True}, task_id=task_id, submitted_at=now(), **_NO_ERROR)

    def record_cancelled(self, key: str, task_id: str, *, name: str | None = None, on_request: bool = False) -> RenderRecord:
        """A queued V2 task was cancelled (MiniMax does not charge it). Cancelled because no job
        wants it any more: back to ``new`` (wanted again, it is created again). Cancelled on
        request (``vidbatch cancel``): ``failed``, so a plain run does not pay for it again."""
        if on_request:
            error = ErrorInfo(
                f"task {task_id} was cancelled on request before it started (not charged)",
                call="cancel",
                hint="`vidbatch run --retry-failed` (or --force NAME) creates it again",
            )
            return self._transition(key, RenderState.FAILED, "cancelled", name=name, detail={"task_id": task_id, **_error_detail(error)}, **_error_values(error))
        return self._transition(key, RenderState.NEW, "cancelled", name=name, detail={"task_id": task_id, "why": "no job wants it any more"}, task_id=None, **_NO_ERROR)

    @_guarded
    def forget(self, keys: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        with self.transaction():
            for path in paths:
                self.conn.execute("delete from outputs where path = ?", [str(path)])
            for key in keys:
                self._last_status.pop(key, None)
                for table in ("outputs", "videos", "events", "renders"):
                    self.conn.execute(f"delete from {table} where key = ?", [key])


def _journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _apply_migrations(conn: sqlite3.Connection) -> None:
    import sqlite_utils

    migrations.apply(sqlite_utils.Database(conn))


def _error_values(error: ErrorInfo) -> dict[str, Any]:
    return {
        "error_code": error.code,
        "error_message": error.message,
        "trace_id": error.trace_id,
        "error_call": error.call,
        "error_http_status": error.http_status,
        "error_status_msg": error.status_msg,
        "error_hint": error.hint,
    }


def _error_detail(error: ErrorInfo) -> dict[str, Any]:
    """What the history keeps of an error (status shows it in a job's story)."""
    detail: dict[str, Any] = {"error": error.message}
    if error.code is not None:
        detail["code"] = error.code
    if error.call is not None:
        detail["call"] = error.call
    return detail
