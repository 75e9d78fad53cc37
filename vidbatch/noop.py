"""Is there nothing to do? The no-op fast path of ``run`` and ``plan --check`` (issue 15).

make answers "is it built?" in milliseconds, so a no-op should cost what checking the files
costs: read the job cache, make one query, stat each output. :func:`check` does that, with the
standard library only (``json``, ``hashlib``, ``sqlite3``, ``os``; no click, no pathlib, no
dataclasses, not the store or the plan), before the command line loads anything else.

It is conservative: it answers :class:`Finished` only when the normal path (load, plan and, for
``run``, the session and the runner) would conclude that there is nothing to do *and would
write nothing*; for any doubt it raises :class:`Declined`, and the normal path runs as if this
module did not exist. ``Finished`` holds only when every one of these holds:

- the manifests are files and the job cache's entry for them holds (:mod:`vidbatch.fingerprint`),
  with a no-op summary: no warnings to show, no sequences, no chained shots, no ``[prices]``;
- the state database exists, in WAL mode, with every migration this code applies;
- every job's render is ``done``, its output file is recorded as holding the job's key, and the
  file's size and mtime are the recorded ones (a changed mtime would be re-hashed and recorded);

and for ``run`` also:

- the run lock is free (it is held while checking, so no run changes the state meanwhile);
- the task-id journal is empty (the start replays its lines), no render is ``submitting``
  (recovery would mark it) or waits for its lost V2 create to be looked for in the task list;
  the state row of each render names the job that plans it (else the runner renames it);
- each output folder's index (:mod:`vidbatch.outputs_index`) has the job's entry (else the runner
  writes it), and no staging file lies in it (else the session deletes it);
- the API key (``MINIMAX_API_KEY``, else the config file's) is printable ASCII without a space, the host
  (``MINIMAX_API_HOST``, else the config file's), if set, is a plain URL, and the config file, if
  any, is one :mod:`vidbatch.config` reads without an error and holds no ``[prices]``: then
  finding the key, the host and the price table cannot fail.

The state is read with plain ``sqlite3`` (read-only), with the few queries below: importing the
store costs more than the rest of a no-op of 100 jobs. ``tests/test_noop.py`` runs each case
both ways and compares what the commands print and exit with.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Mapping, Sequence

from . import fingerprint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The state database, run lock and task-id journal in a state folder, and the state folder
#: beside a manifest (vidbatch.state's DB_NAME, LOCK_NAME, JOURNAL_NAME and STATE_DIR_NAME).
DB_NAME, LOCK_NAME, JOURNAL_NAME, STATE_DIR_NAME = "state.db", "run.lock", "task-ids.journal", ".vidbatch"
#: The outputs index beside the outputs (vidbatch.outputs_index.INDEX_NAME).
INDEX_NAME = ".vidbatch-index.json"
#: What staging files beside the outputs carry in their names (vidbatch.files.STAGING_SUFFIX).
STAGING_MARK = ".vidbatch-new"
#: A host whose region can be told without doubt (a parse that could fail is left to the normal path).
_PLAIN_HOST = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")
#: Renders the start of a run would touch: rows left ``submitting`` (recovery), and ``uncertain``
#: rows whose lost V2 create is still to be looked for in the task list.
_UNSETTLED = (
    "select exists(select 1 from renders where state = 'submitting') or exists("
    "select 1 from renders r join events e on e.key = r.key "
    "where r.state = 'uncertain' and e.event = 'uncertain' and e.detail like '%reconcile%')"
)
_OUTPUTS = (
    "select o.path, o.key, o.size, o.mtime_ns, o.sha256, r.state, r.name, r.manifest "
    "from outputs o left join renders r on r.key = o.key"
)


class Declined(Exception):
    """Not provably a no-op: the normal path decides. The message says why (for tests and
    readers; the command prints nothing of it)."""


class Finished:
    """Every job is done and its output in place, as recorded: what ``run`` reports of it."""

    __slots__ = ("jobs", "distinct", "output_dirs")

    def __init__(self, jobs: int, distinct: int, output_dirs: list[str]):
        #: the jobs planned (a manifest named twice counts twice, as in the plan)
        self.jobs = jobs
        #: the jobs by manifest and name (the run's progress counts these)
        self.distinct = distinct
        #: each manifest's output folder, absolute
        self.output_dirs = output_dirs


def check(manifests: Sequence[str], variables: Mapping[str, str] | None, *, run: bool, environ: Mapping[str, str] | None = None) -> Finished:
    """Finished when ``run`` (or, ``run`` False, ``plan --check``) of ``manifests`` as given on
    the command line, with these ``--var`` values and the default state folder, has nothing to do
    and writes nothing; else :class:`Declined`."""
    environ = os.environ if environ is None else environ
    if environ.get("VIDBATCH_STATE"):
        raise Declined("VIDBATCH_STATE names the state folder")
    if run:
        _check_credentials(environ)
    paths = [_absolute(p) for p in manifests]
    if not paths:
        raise Declined("no manifest named")
    state_dir = os.path.join(os.path.dirname(os.path.realpath(paths[0])), STATE_DIR_NAME)
    summary = _summary(state_dir, paths, variables, environ)
    if not run:
        return _finished(state_dir, summary, run=False)
    try:
        lock = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDWR)
    except OSError as e:
        raise Declined(f"no run lock to take ({e.strerror})") from None
    try:
        import fcntl

        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Declined("another run holds the state folder") from None
        return _finished(state_dir, summary, run=True)
    finally:
        os.close(lock)  # drops the flock


def _check_credentials(environ: Mapping[str, str]) -> None:
    """The key and host ``run`` finds (vidbatch.config.credentials) and the price table it loads
    (vidbatch.prices.load_table) come without a doubt: from the environment alone when there is
    no config file; else the config file is read by :mod:`vidbatch.config` itself (its rules are
    its own; importing it costs about 20 ms) and must hold no ``[prices]``."""
    if environ.get("VIDBATCH_CONFIG") or _config_file_may_exist(environ):
        key, host = _from_config_file()
    else:
        key, host = (environ.get("MINIMAX_API_KEY") or "").strip(), environ.get("MINIMAX_API_HOST")
    if not key or not all(" " < c <= "~" for c in key):
        raise Declined("no plain API key")
    if host and not _PLAIN_HOST.fullmatch(host.strip()):
        raise Declined("the API host is not a plain URL")


def _config_file_may_exist(environ: Mapping[str, str]) -> bool:
    """Whether vidbatch.config.config_path() may name a file (without its import: vidbatch.config
    decides whenever this is true)."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    try:
        os.stat(os.path.join(base, "vidbatch", "config.toml"))
    except FileNotFoundError:
        return False  # none: what vidbatch.config.read_config reads as no settings
    except OSError:
        return True
    return True


def _from_config_file() -> tuple[str | None, str | None]:
    """(key, host) as ``run`` finds them with a config file (or VIDBATCH_CONFIG) in play."""
    from . import config
    from .errors import VidbatchError

    try:
        if "prices" in config.read_config():
            raise Declined("the config file has prices")
        found = config.credentials()
    except VidbatchError as e:
        raise Declined(f"the config file: {e}") from None
    return found.key, found.host


def _absolute(given: str) -> str:
    """``Path(given).expanduser().absolute()`` as a string, without pathlib, for a manifest file
    (a folder stands for its manifests: the normal path lists them)."""
    if not given or given.startswith("~") or given.startswith("//"):
        raise Declined(f"a path the normal path spells: {given!r}")
    if not os.path.isfile(given):
        raise Declined(f"{given} is not a manifest file")
    parts = [p for p in given.split("/") if p and p != "."]
    if given.startswith("/"):
        return "/" + "/".join(parts)
    cwd = os.getcwd()
    return os.path.join(cwd, *parts) if parts else cwd


def _summary(state_dir: str, paths: list[str], variables: Mapping[str, str] | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The job cache's no-op summary for these manifests, when its entry holds."""
    found = fingerprint.read(fingerprint.cache_file(state_dir, paths, variables))
    if found is None:
        raise Declined("no job cache entry")
    header = found[0]
    if not fingerprint.holds(header, paths, variables, environ):
        raise Declined("the job cache entry does not hold (an input changed)")
    summary = header.get("noop")
    if not isinstance(summary, dict):
        raise Declined("the manifests have warnings, sequences, chained shots or prices")
    return summary


def _finished(state_dir: str, summary: dict[str, Any], *, run: bool) -> Finished:
    """The state's side of :func:`check`: every job of ``summary`` done, in place, as recorded
    (for ``run``, held under the run lock, with nothing the runner would write)."""
    db = os.path.join(state_dir, DB_NAME)
    if not os.path.isfile(db):
        raise Declined("no state database")
    if run and not (os.access(db, os.W_OK) and os.access(state_dir, os.W_OK)):
        raise Declined("the state cannot be written: the normal path says so")
    if run and _size(os.path.join(state_dir, JOURNAL_NAME)):
        raise Declined("the task-id journal has lines: the start replays them")
    try:
        conn = sqlite3.connect(_read_only_uri(db), uri=True)
    except sqlite3.Error as e:
        raise Declined(f"the state database does not open: {e}") from None
    try:
        outputs = _read_state(conn, summary["migrations"], run=run)
    except sqlite3.Error as e:
        raise Declined(f"the state database cannot be read: {e}") from None
    finally:
        conn.close()
    manifests: list[list[str]] = summary["manifests"]
    jobs: list[list[Any]] = summary["jobs"]
    seen_keys: set[str] = set()
    folders: dict[str, dict[str, Any]] = {}
    for m, name, key, output in jobs:
        row = outputs.get(output)
        if row is None or row[1] != key:
            raise Declined(f"job {name}: its output is not recorded as holding its render")
        _, _, size, mtime_ns, sha256, state, rec_name, rec_manifest = row
        if state != "done":
            raise Declined(f"job {name}: its render is {state or 'not recorded'}")
        try:
            st = os.stat(output)
        except OSError:
            raise Declined(f"job {name}: its output file is missing") from None
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise Declined(f"job {name}: its output file changed (size or mtime)")
        if not run:
            continue
        if key not in seen_keys:  # the render's row is named after the first job that plans it
            seen_keys.add(key)
            if (rec_name, rec_manifest) != (name, manifests[m][0]):
                raise Declined(f"job {name}: the state names its render after another job")
        folder, file = os.path.split(output)
        if folder not in folders:
            folders[folder] = _index(folder)
        entry = folders[folder].get(file)
        if not (isinstance(entry, dict) and entry.get("key") == key and entry.get("sha256") == sha256 and isinstance(entry.get("bytes"), int)):
            raise Declined(f"job {name}: the outputs index beside it lacks its entry")
    if run:
        for folder in folders:
            if any(f.startswith(".") and STAGING_MARK in f for f in os.listdir(folder)):
                raise Declined(f"staging files to clean in {folder}")
    distinct = len({(m, name) for m, name, _, _ in jobs})
    return Finished(len(jobs), distinct, [output_dir for _, output_dir in manifests])


def _read_state(conn: sqlite3.Connection, migrations: list[str], *, run: bool) -> dict[str, tuple[Any, ...]]:
    """Each output path's record with its render's state and names, after checking the state
    needs no migration (nor, for ``run``, a change of journal mode or any recovery)."""
    applied = {row[0] for row in conn.execute("select name from _sqlite_migrations where migration_set = 'vidbatch'")}
    if not set(migrations) <= applied:
        raise Declined("the state needs a migration")
    if run:
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            raise Declined("the state is not in WAL mode yet")
        if conn.execute(_UNSETTLED).fetchone()[0]:
            raise Declined("a render's create is unsettled (submitting, or a V2 create to look for)")
    return {row[0]: row for row in conn.execute(_OUTPUTS)}


def _size(path: str) -> int:
    """The size of the file at ``path``; 0 when there is none."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _read_only_uri(path: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9/._+-]+", path):
        from urllib.parse import quote

        path = quote(path)
    return f"file:{path}?mode=ro"


def _index(folder: str) -> dict[str, Any]:
    """The entries of ``folder``'s outputs index, as vidbatch.outputs_index.read_index reads it."""
    try:
        with open(os.path.join(folder, INDEX_NAME), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}
