"""Where the simulator keeps its tasks: in memory, or in a data folder that outlives the process.

MiniMax keeps a task and its file after the client that created it has gone: a run stopped with
Ctrl-C resumes its tasks, and a deleted output can be downloaded again. A simulator that forgets
everything when its process ends cannot play that part, so :class:`DiskStore` keeps, in one
SQLite file (``<data folder>/sim.sqlite3``, standard library ``sqlite3``):

- every task: its id, file id, request, account, outcome, output size and its **timeline**
  (``created_at`` on the sim's wall clock and the latency it was created with), so a task's
  progress goes on across processes: a task created with 120 s of latency by one process is
  done when another process asks 120 s later;
- the sim clock's offset (what ``advance()`` added), so times stay consistent for every process
  that opens the folder;
- the secret that signs download URLs, so a URL signed by one process is honoured (until it
  expires) by the next, and the key a simulator that accepts any key hands to its clients.

Video Generation V2 (``/v2/video_generation``, MiniMax-H3) tasks live in their own table
(``v2_tasks``, :class:`V2Task`): a v2 task can change after it is created (a DELETE cancels a
queued one, or deletes a finished one), so it carries ``cancelled_at`` and ``deleted_at``, and
its status follows from those and its timeline. Files uploaded with ``POST /v1/files/upload``
(referred to as ``mm_file://FILE_ID`` in v2 requests) are kept in ``uploads``, bytes included.

Videos are not in the database: the simulator keeps each task's video as a file in
``<data folder>/videos/<file_id>.mp4`` (written atomically, made again from the task if missing).

Safety for two processes: SQLite in WAL mode, each write one transaction, a busy timeout so a
second process waits instead of failing. A writer killed mid-write leaves the previous state
(SQLite's journal), never a half-written task. What is kept only in memory, per process: call
counters, pending faults and the RPM window (a restarted simulator starts them afresh).

Accounts: a task belongs to the key that created it, but no key is ever written: the account is
an HMAC of the key under the store's secret.

:class:`MemoryStore` is the same interface on dicts, for ``SimConfig(data_dir=None)``. Both are
read-only mappings of task id -> :class:`SimTask` (``len(sim.tasks)``, ``task_id in sim.tasks``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from .. import facts
from ..errors import StateError

#: The database file inside a data folder.
DB_NAME = "sim.sqlite3"
SCHEMA_VERSION = 2
#: Status fractions of latency: Preparing until 10 %, Queueing until 30 %, Processing after.
_STATUS_STEPS = ((0.1, facts.STATUS_PROGRESSION[0]), (0.3, facts.STATUS_PROGRESSION[1]))

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value NOT NULL)",
    """CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        file_id INTEGER NOT NULL UNIQUE,
        account TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at REAL NOT NULL,
        latency REAL NOT NULL,
        final_status TEXT NOT NULL,
        final_code INTEGER NOT NULL,
        error_message TEXT,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL
    )""",
)
#: Schema 2: Video Generation V2 tasks and uploaded files (a folder of schema 1 gains them on open).
_SCHEMA_V2 = (
    """CREATE TABLE v2_tasks (
        task_id TEXT PRIMARY KEY,
        file_id INTEGER NOT NULL UNIQUE,
        account TEXT NOT NULL,
        request TEXT NOT NULL,
        created_at REAL NOT NULL,
        latency REAL NOT NULL,
        final_status TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        charge TEXT,
        cancelled_at REAL,
        deleted_at REAL
    )""",
    "CREATE INDEX v2_tasks_account ON v2_tasks (account, created_at)",
    """CREATE TABLE uploads (
        file_id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        filename TEXT NOT NULL,
        purpose TEXT NOT NULL,
        created_at REAL NOT NULL,
        data BLOB NOT NULL
    )""",
)
_COLUMNS = (
    "task_id, file_id, account, request, created_at, latency, final_status, final_code, error_message, width, height"
)


@dataclass(frozen=True)
class SimTask:
    """One created task. Its outcome and timeline are fixed at creation."""

    task_id: str
    file_id: int
    request: dict[str, Any]
    account: str  # an HMAC of the key that created it (see the module docstring)
    created_at: float  # sim wall clock (Unix seconds plus the sim clock's offset)
    latency: float  # seconds from create to the final status
    final_status: str  # facts.STATUS_SUCCESS or facts.STATUS_FAIL
    final_code: int = 0  # base_resp code of the final query answer (1027: output flagged)
    error_message: str | None = None
    width: int = 0
    height: int = 0

    @property
    def prompt(self) -> str:
        return str(self.request.get("prompt") or "")

    @property
    def created_unix(self) -> int:
        """The file's ``created_at``."""
        return int(self.created_at)

    def status_at(self, now: float) -> str:
        """The status at sim wall-clock time ``now``: Preparing for the first 10 % of the
        latency, Queueing until 30 %, Processing until 100 %, then the outcome."""
        elapsed = now - self.created_at
        if self.latency <= 0 or elapsed >= self.latency:
            return self.final_status
        for fraction, status in _STATUS_STEPS:
            if elapsed < fraction * self.latency:
                return status
        return facts.STATUS_PROGRESSION[2]


#: Builds a task given a fresh (task_id, file_id); the store retries with new ids on a clash.
TaskFactory = Callable[[str, int], SimTask]

#: A v2 task is ``queued`` for this fraction of its latency, then ``running`` until it is done.
V2_QUEUED_FRACTION = 0.5


@dataclass(frozen=True)
class V2Task:
    """One Video Generation V2 task. Its outcome and timeline are fixed at creation; a DELETE
    sets ``cancelled_at`` (a queued task) or ``deleted_at`` (a finished one)."""

    task_id: str
    file_id: int  # names its video file (cache, download URL); not shown to clients
    request: dict[str, Any]
    account: str
    created_at: float
    latency: float
    final_status: str  # facts.V2_STATUS_SUCCESS or facts.V2_STATUS_FAIL
    error_code: str | None = None  # the task's ``error.code`` when it fails (a string, as MiniMax's CLI reads it)
    error_message: str | None = None
    #: What the task costs when it succeeds (a decimal string), from ``SimConfig.v2_price``; None: not priced.
    charge: str | None = None
    cancelled_at: float | None = None
    deleted_at: float | None = None

    @property
    def prompt(self) -> str:
        """The text of the request's ``text`` item."""
        for item in self.request.get("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                return str(item.get("text") or "")
        return ""

    def status_at(self, now: float) -> str:
        """``queued`` for the first half of the latency, ``running`` until it is done, then the
        outcome; ``cancelled`` from a cancel on (only a queued task is ever cancelled)."""
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return facts.V2_STATUS_CANCELLED
        elapsed = now - self.created_at
        if self.latency <= 0 or elapsed >= self.latency:
            return self.final_status
        if elapsed < V2_QUEUED_FRACTION * self.latency:
            return facts.V2_STATUS_PROGRESSION[0]
        return facts.V2_STATUS_PROGRESSION[1]

    def updated_at(self, now: float) -> float:
        """When the status seen at ``now`` began."""
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return self.cancelled_at
        elapsed = now - self.created_at
        if self.latency <= 0:
            return self.created_at
        if elapsed >= self.latency:
            return self.created_at + self.latency
        if elapsed >= V2_QUEUED_FRACTION * self.latency:
            return self.created_at + V2_QUEUED_FRACTION * self.latency
        return self.created_at


@dataclass(frozen=True)
class Upload:
    """A file uploaded with ``POST /v1/files/upload``, referred to as ``mm_file://FILE_ID``."""

    file_id: int
    account: str
    filename: str
    purpose: str
    created_at: float
    data: bytes


V2TaskFactory = Callable[[str, int], V2Task]
_Task = TypeVar("_Task", SimTask, V2Task)


def _new_ids() -> tuple[str, int]:
    """Ids that look like MiniMax's (15 digits) and are random, so that neither two processes
    sharing a folder nor a state database kept from another simulator can confuse two tasks."""
    task_id = 100_000_000_000_000 + secrets.randbelow(400_000_000_000_000)
    file_id = 500_000_000_000_000 + secrets.randbelow(400_000_000_000_000)
    return str(task_id), file_id


class TaskStore(Mapping[str, SimTask]):
    """What the simulator keeps: tasks by id and by file id, the clock offset, the secret."""

    secret: bytes
    #: The key to hand clients when the simulator accepts any key.
    client_key: str

    def account_of(self, key: str) -> str:
        return hmac.new(self.secret, b"account:" + key.encode(), hashlib.sha256).hexdigest()[:32]

    def add(self, build: TaskFactory) -> SimTask:
        raise NotImplementedError

    def by_file(self, file_id: int) -> SimTask | None:
        raise NotImplementedError

    def all_tasks(self) -> list[SimTask]:
        """Every task, oldest first."""
        return [self[task_id] for task_id in self]

    def clock_offset(self) -> float:
        raise NotImplementedError

    def advance(self, seconds: float) -> float:
        """Add ``seconds`` to the clock offset; the new offset."""
        raise NotImplementedError

    def close(self) -> None:
        """Release files; the store reopens them if used again."""

    # -- Video Generation V2 --

    def v2_add(self, build: V2TaskFactory) -> V2Task:
        raise NotImplementedError

    def v2_get(self, task_id: str) -> V2Task | None:
        """The v2 task, deleted or not."""
        raise NotImplementedError

    def v2_by_file(self, file_id: int) -> V2Task | None:
        raise NotImplementedError

    def v2_tasks(self, account: str | None = None) -> list[V2Task]:
        """Every v2 task (of ``account``, when given), deleted ones included, oldest first."""
        raise NotImplementedError

    def v2_mark(self, task_id: str, *, cancelled_at: float | None = None, deleted_at: float | None = None) -> V2Task:
        """Record a cancel or a delete of a v2 task; the task as it is now."""
        raise NotImplementedError

    def upload_add(self, account: str, filename: str, purpose: str, created_at: float, data: bytes) -> Upload:
        raise NotImplementedError

    def upload_get(self, file_id: int) -> Upload | None:
        raise NotImplementedError


class MemoryStore(TaskStore):
    """Tasks in dicts: gone with the process (``SimConfig(data_dir=None)``)."""

    def __init__(self) -> None:
        self.secret = secrets.token_bytes(32)
        self.client_key = "sim-" + secrets.token_hex(8)
        self._tasks: dict[str, SimTask] = {}
        self._files: dict[int, SimTask] = {}
        self._offset = 0.0
        self._lock = threading.Lock()
        self._v2: dict[str, V2Task] = {}
        self._uploads: dict[int, Upload] = {}

    def __getitem__(self, task_id: str) -> SimTask:
        return self._tasks[task_id]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, build: TaskFactory) -> SimTask:
        with self._lock:
            while True:
                task_id, file_id = _new_ids()
                if task_id not in self._tasks and file_id not in self._files:
                    break
            task = build(task_id, file_id)
            self._tasks[task_id] = self._files[file_id] = task
        return task

    def by_file(self, file_id: int) -> SimTask | None:
        return self._files.get(file_id)

    def clock_offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    def v2_add(self, build: V2TaskFactory) -> V2Task:
        with self._lock:
            while True:
                task_id, file_id = _new_ids()
                if task_id not in self._v2 and file_id not in self._files:
                    break
            task = build(task_id, file_id)
            self._v2[task_id] = task
        return task

    def v2_get(self, task_id: str) -> V2Task | None:
        return self._v2.get(task_id)

    def v2_by_file(self, file_id: int) -> V2Task | None:
        with self._lock:
            return next((t for t in self._v2.values() if t.file_id == file_id), None)

    def v2_tasks(self, account: str | None = None) -> list[V2Task]:
        with self._lock:
            return [t for t in self._v2.values() if account is None or t.account == account]

    def v2_mark(self, task_id: str, *, cancelled_at: float | None = None, deleted_at: float | None = None) -> V2Task:
        with self._lock:
            task = self._v2[task_id]
            if cancelled_at is not None:
                task = dataclasses.replace(task, cancelled_at=cancelled_at)
            if deleted_at is not None:
                task = dataclasses.replace(task, deleted_at=deleted_at)
            self._v2[task_id] = task
            return task

    def upload_add(self, account: str, filename: str, purpose: str, created_at: float, data: bytes) -> Upload:
        with self._lock:
            while True:
                file_id = _new_ids()[1]
                if file_id not in self._uploads:
                    break
            upload = Upload(file_id, account, filename, purpose, created_at, data)
            self._uploads[file_id] = upload
        return upload

    def upload_get(self, file_id: int) -> Upload | None:
        return self._uploads.get(file_id)


class DiskStore(TaskStore):
    """Tasks in ``<folder>/sim.sqlite3``, shared safely by every process that opens the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / DB_NAME
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('client_key', ?)", ("sim-" + secrets.token_hex(8),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('clock_offset', 0.0)")
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        self.secret = bytes.fromhex(str(meta["secret"]))
        self.client_key = str(meta["client_key"])

    # -- the connection --

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as e:
                raise StateError(
                    f"cannot open the simulator's data folder {self.folder}: {e}; give it a folder you can write to"
                ) from None
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: never corrupt, at worst lose the last commit on power loss
                self._migrate(db)
            except sqlite3.DatabaseError as e:
                db.close()
                raise StateError(
                    f"{self.path} is not a simulator data file ({e}); give the simulator an empty folder"
                ) from None
            self._db = db
        return self._db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA:
                    db.execute(statement)
            if version < 2:
                for statement in _SCHEMA_V2:
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} was written by a newer vidbatch (simulator schema {version}); "
                    "upgrade vidbatch or give the simulator another data folder"
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its start (BEGIN IMMEDIATE)."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- the mapping --

    def __getitem__(self, task_id: str) -> SimTask:
        rows = self._read(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (str(task_id),))
        if not rows:
            raise KeyError(task_id)
        return _task(rows[0])

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._read("SELECT task_id FROM tasks ORDER BY rowid")])

    def __len__(self) -> int:
        return int(self._read("SELECT count(*) FROM tasks")[0][0])

    def all_tasks(self) -> list[SimTask]:
        return [_task(row) for row in self._read(f"SELECT {_COLUMNS} FROM tasks ORDER BY rowid")]

    # -- the rest --

    def _insert_new(self, build: Callable[[str, int], _Task], sql: str, row: Callable[[_Task], tuple[Any, ...]]) -> _Task:
        """Build a task from freshly drawn ids and insert it as ``row(task)``; an id already taken
        (by another process, say) draws again."""
        while True:
            task = build(*_new_ids())
            try:
                with self._write() as db:
                    db.execute(sql, row(task))
                return task
            except sqlite3.IntegrityError:
                continue

    def add(self, build: TaskFactory) -> SimTask:
        return self._insert_new(
            build,
            f"INSERT INTO tasks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            lambda task: (
                task.task_id,
                task.file_id,
                task.account,
                json.dumps(task.request, sort_keys=True, separators=(",", ":")),
                task.created_at,
                task.latency,
                task.final_status,
                task.final_code,
                task.error_message,
                task.width,
                task.height,
            ),
        )

    def by_file(self, file_id: int) -> SimTask | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM tasks WHERE file_id = ?", (file_id,))
        return _task(rows[0]) if rows else None

    def clock_offset(self) -> float:
        return float(self._read("SELECT value FROM meta WHERE name = 'clock_offset'")[0][0])

    def advance(self, seconds: float) -> float:
        with self._write() as db:
            db.execute("UPDATE meta SET value = value + ? WHERE name = 'clock_offset'", (seconds,))
            return float(db.execute("SELECT value FROM meta WHERE name = 'clock_offset'").fetchone()[0])

    # -- Video Generation V2 --

    def v2_add(self, build: V2TaskFactory) -> V2Task:
        return self._insert_new(
            build,
            f"INSERT INTO v2_tasks ({_V2_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            lambda task: (
                task.task_id,
                task.file_id,
                task.account,
                json.dumps(task.request, sort_keys=True, separators=(",", ":")),
                task.created_at,
                task.latency,
                task.final_status,
                task.error_code,
                task.error_message,
                task.charge,
                task.cancelled_at,
                task.deleted_at,
            ),
        )

    def v2_get(self, task_id: str) -> V2Task | None:
        rows = self._read(f"SELECT {_V2_COLUMNS} FROM v2_tasks WHERE task_id = ?", (str(task_id),))
        return _v2_task(rows[0]) if rows else None

    def v2_by_file(self, file_id: int) -> V2Task | None:
        rows = self._read(f"SELECT {_V2_COLUMNS} FROM v2_tasks WHERE file_id = ?", (file_id,))
        return _v2_task(rows[0]) if rows else None

    def v2_tasks(self, account: str | None = None) -> list[V2Task]:
        if account is None:
            rows = self._read(f"SELECT {_V2_COLUMNS} FROM v2_tasks ORDER BY rowid")
        else:
            rows = self._read(f"SELECT {_V2_COLUMNS} FROM v2_tasks WHERE account = ? ORDER BY rowid", (account,))
        return [_v2_task(row) for row in rows]

    def v2_mark(self, task_id: str, *, cancelled_at: float | None = None, deleted_at: float | None = None) -> V2Task:
        with self._write() as db:
            if cancelled_at is not None:
                db.execute("UPDATE v2_tasks SET cancelled_at = ? WHERE task_id = ?", (cancelled_at, task_id))
            if deleted_at is not None:
                db.execute("UPDATE v2_tasks SET deleted_at = ? WHERE task_id = ?", (deleted_at, task_id))
            row = db.execute(f"SELECT {_V2_COLUMNS} FROM v2_tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise KeyError(task_id)
        return _v2_task(row)

    def upload_add(self, account: str, filename: str, purpose: str, created_at: float, data: bytes) -> Upload:
        while True:
            upload = Upload(_new_ids()[1], account, filename, purpose, created_at, data)
            try:
                with self._write() as db:
                    db.execute(
                        "INSERT INTO uploads (file_id, account, filename, purpose, created_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                        (upload.file_id, account, filename, purpose, created_at, data),
                    )
                return upload
            except sqlite3.IntegrityError:
                continue

    def upload_get(self, file_id: int) -> Upload | None:
        rows = self._read(
            "SELECT file_id, account, filename, purpose, created_at, data FROM uploads WHERE file_id = ?", (file_id,)
        )
        if not rows:
            return None
        fid, account, filename, purpose, created_at, data = rows[0]
        return Upload(int(fid), account, filename, purpose, float(created_at), bytes(data))

    def __repr__(self) -> str:
        return f"<DiskStore {self.path}>"


def _task(row: tuple[Any, ...]) -> SimTask:
    task_id, file_id, account, request, created_at, latency, final_status, final_code, error_message, width, height = row
    return SimTask(
        task_id=task_id,
        file_id=int(file_id),
        request=json.loads(request),
        account=account,
        created_at=float(created_at),
        latency=float(latency),
        final_status=final_status,
        final_code=int(final_code),
        error_message=error_message,
        width=int(width),
        height=int(height),
    )


_V2_COLUMNS = (
    "task_id, file_id, account, request, created_at, latency, final_status, error_code, error_message, charge, "
    "cancelled_at, deleted_at"
)


def _v2_task(row: tuple[Any, ...]) -> V2Task:
    (task_id, file_id, account, request, created_at, latency, final_status, error_code, error_message, charge,
     cancelled_at, deleted_at) = row  # fmt: skip
    return V2Task(
        task_id=task_id,
        file_id=int(file_id),
        request=json.loads(request),
        account=account,
        created_at=float(created_at),
        latency=float(latency),
        final_status=final_status,
        error_code=error_code,
        error_message=error_message,
        charge=charge,
        cancelled_at=None if cancelled_at is None else float(cancelled_at),
        deleted_at=None if deleted_at is None else float(deleted_at),
    )


def open_store(data_dir: Path | None) -> TaskStore:
    """The store for ``SimConfig.data_dir``: in memory for None, else the folder's database."""
    return MemoryStore() if data_dir is None else DiskStore(Path(data_dir))
