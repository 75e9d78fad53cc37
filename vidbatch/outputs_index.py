"""Self-describing outputs: an index beside the videos saying which render each file holds.

The state database says which video each output holds; if it is lost (deleted, corrupt and moved
aside, a run with another ``--state`` or ``VIDBATCH_STATE``), a plan from an empty state would pay
for every finished video again. So every folder vidbatch writes outputs to also holds
``.vidbatch-index.json``::

    {"vidbatch_index": 1,
     "files": {"fox.mp4": {"key": "v1:...", "sha256": "...", "bytes": 123, "task_id": "...",
                           "file_id": "...", "state": "/abs/.vidbatch", "written_at": 1700000000.0}}}

- **Written with each output.** The runner records an entry every time it records an output in
  the state (download, copy, restore, adoption), after the video is in place, and adds the
  missing entries of up-to-date outputs it skips (outputs recorded before the index existed).
  The file is read, updated and replaced atomically (:mod:`vidbatch.files`); one process writes
  it from one thread. A run writes through a :class:`Writer`: rewriting a folder's whole index
  for each of 10,000 outputs would cost the run more than its network (issue 15), so entries
  are gathered and each folder's file is written at most once per :data:`FLUSH_INTERVAL` (or
  20 times as long as the last write took, for a big index), when the run goes idle and when it
  ends. A crash loses at most that interval's entries from the
  index, never from the state, and the next run writes them back as it skips those outputs. Two processes writing one folder at once (two state folders, see below)
  may lose one entry to the other's write: readers tolerate that, and the next run that skips
  the file writes its entry again.
- **Read tolerantly.** A missing, unreadable or half-valid index reads as the entries that are
  valid (none at worst): the index only ever *saves* money, it never decides alone. A plan trusts
  an entry only when the file's size and sha256 match it and the entry's key is the job's key.
- **Sharing.** A second state folder may share an output folder: it adopts the entries it finds
  (``state`` names the folder that recorded each one) instead of creating those renders again.
  Two runs *at once* (different state folders, so different run locks) could both create the
  same render before either has written the index, so a run claims each output folder it creates
  into (:func:`claim`: an advisory ``flock`` on the folder itself, so no lock file is left among
  the videos; held until the run ends); a run that finds the folder claimed creates nothing for
  it and says why (its next run adopts the other run's videos). Downloads and copies need no
  claim: they never pay. Where ``flock`` does not exist (Windows) folders are not claimed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from . import files

log = logging.getLogger(__name__)

INDEX_NAME = ".vidbatch-index.json"
FORMAT = 1
#: Seconds a :class:`Writer` may hold entries before writing them.
FLUSH_INTERVAL = 1.0
#: one writer of an index at a time in this process (the runner writes from one thread; watch
#: mode and tests may run more than one runner)
_WRITING = threading.Lock()


@dataclass(frozen=True)
class IndexEntry:
    """What one output file holds: the render's content key, the video's sha256 and size, and
    MiniMax's ids for it; ``state`` is the state folder that recorded it."""

    key: str
    sha256: str
    bytes: int
    task_id: str | None
    file_id: str | None
    state: str
    written_at: float

    @classmethod
    def from_json(cls, data: Any) -> "IndexEntry | None":
        if not isinstance(data, dict):
            return None
        try:
            key, sha, size = data["key"], data["sha256"], data["bytes"]
        except KeyError:
            return None
        if not (isinstance(key, str) and isinstance(sha, str) and isinstance(size, int)):
            return None
        task_id, file_id = data.get("task_id"), data.get("file_id")
        return cls(
            key=key,
            sha256=sha,
            bytes=size,
            task_id=task_id if isinstance(task_id, str) else None,
            file_id=file_id if isinstance(file_id, str) else None,
            state=str(data.get("state") or ""),
            written_at=float(data.get("written_at") or 0.0),
        )


def index_path(folder: Path) -> Path:
    return Path(folder) / INDEX_NAME


def read_index(folder: Path) -> dict[str, IndexEntry]:
    """The valid entries of ``folder``'s index by file name; {} when there is none or it is unreadable."""
    try:
        data = json.loads(index_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        if not isinstance(e, FileNotFoundError):
            log.info("ignoring the outputs index in %s: %s", folder, e)
        return {}
    listed = data.get("files") if isinstance(data, dict) else None
    if not isinstance(listed, dict):
        return {}
    out: dict[str, IndexEntry] = {}
    for name, raw in listed.items():
        entry = IndexEntry.from_json(raw)
        if isinstance(name, str) and entry is not None:
            out[name] = entry
    return out


def lookup(path: Path) -> IndexEntry | None:
    """The entry of the file at ``path`` in its folder's index, if any."""
    return read_index(Path(path).parent).get(Path(path).name)


def record(path: Path, *, key: str, sha256: str, size: int, task_id: str | None, file_id: str | None, state_dir: Path) -> None:
    """Say in its folder's index that the file at ``path`` holds this video (atomic; raises
    OSError when the folder cannot be written)."""
    path = Path(path)
    _write(path.parent, {path.name: IndexEntry(key, sha256, size, task_id, file_id, str(state_dir), time.time())})


def _write(folder: Path, new: dict[str, IndexEntry]) -> None:
    """Merge ``new`` entries (by file name) into ``folder``'s index, atomically."""
    with _WRITING:
        lines = {name: _line(name, entry) for name, entry in read_index(folder).items()}
        lines.update((name, _line(name, entry)) for name, entry in new.items())
        files.write_text(index_path(folder), _text(lines), durable=False)


def _line(name: str, entry: IndexEntry) -> str:
    """One file's entry as a line of the index (the C encoder: ``indent`` would use Python's)."""
    return f"{json.dumps(name)}: {json.dumps(asdict(entry), sort_keys=True)}"


def _text(lines: dict[str, str]) -> str:
    """The index file: one line per output file, in name order."""
    body = ",\n".join(lines[name] for name in sorted(lines))
    return f'{{"vidbatch_index": {FORMAT}, "files": {{\n{body}\n}}}}\n'


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Writer:
    """The index writes of one run: :meth:`record` gathers entries, and each folder's file is
    written once :data:`FLUSH_INTERVAL` has passed since the last write (longer for a big index:
    see :meth:`flush_due`), or at :meth:`flush`.
    The first entry is written at once. Each folder's entries are kept in memory once read (each
    as its line of the file), and read again only when the file is not the one this writer last
    wrote (another process wrote it). A folder that cannot be written is logged, never raised:
    the index only ever saves money."""

    def __init__(self, interval: float = FLUSH_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._pending: dict[Path, dict[str, IndexEntry]] = {}
        #: per folder: the lines of its index as last written, and that file's identity
        self._written: dict[Path, tuple[dict[str, str], tuple[int, int, int] | None]] = {}
        self._written_at = -float("inf")
        self._took = 0.0  # seconds the last write took

    def record(self, path: Path, *, key: str, sha256: str, size: int, task_id: str | None, file_id: str | None, state_dir: Path) -> None:
        path = Path(path)
        entry = IndexEntry(key, sha256, size, task_id, file_id, str(state_dir), time.time())
        self._pending.setdefault(path.parent, {})[path.name] = entry
        self.flush_due()

    def flush_due(self) -> None:
        """Write what is gathered if the interval has passed since the last write: the interval,
        or 20 times what the last write took, whichever is longer. A folder's whole index is
        written each time, so at ten thousand outputs a write every second would cost the run
        more and more; this keeps the index's share of a run's time under 5%."""
        if self._pending and self._clock() - self._written_at >= max(self._interval, 20 * self._took):
            self.flush()

    def flush(self) -> None:
        """Write every folder's gathered entries now."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        self._written_at = started = self._clock()
        try:
            self._write(pending)
        finally:
            self._took = self._clock() - started

    def _write(self, pending: dict[Path, dict[str, IndexEntry]]) -> None:
        for folder, entries in pending.items():
            try:
                self._flush(folder, entries)
            except OSError as e:
                self._written.pop(folder, None)
                log.warning("could not update the outputs index in %s: %s", folder, e)

    def _flush(self, folder: Path, new: dict[str, IndexEntry]) -> None:
        target = index_path(folder)
        with _WRITING:
            lines, identity = self._written.get(folder, ({}, None))
            if identity is None or _identity(target) != identity:
                lines = {name: _line(name, entry) for name, entry in read_index(folder).items()}
            lines.update((name, _line(name, entry)) for name, entry in new.items())
            files.write_text(target, _text(lines), durable=False)
            self._written[folder] = (lines, _identity(target))


class Claim:
    """An output folder claimed by this process (see :func:`claim`); ``release`` ends it."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def claim(folder: Path) -> Claim | None:
    """Claim ``folder`` for creating renders into it: a :class:`Claim` to release when the run
    ends, or None when another process (or another run in this one) holds it. A folder that
    cannot be made or opened is not refused here: writing into it fails later with its own
    message."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks on folders
        return Claim(None)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as e:
        log.info("could not claim %s: %s", folder, e)
        return Claim(None)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return Claim(fd)
