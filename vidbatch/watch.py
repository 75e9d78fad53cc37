"""Watch mode: keep the manifests of a folder rendered while people drop and edit them.

``vidbatch watch DIR`` plans and runs every manifest in ``DIR`` at start, then re-plans a manifest
whenever it, or any file it read (an included template, a CSV/JSON of rows, an image), changes.
Its picks file (``shots.toml`` -> ``shots.picks.toml``, written by ``vidbatch pick``, the review
page or by hand) counts as read: a new pick plans the manifest again, so the chained shots of the
re-picked shot render from its frame and its cuts are joined again, while every other job plans to
``skip``.

Threads
-------
- The **watcher** (the thread that calls :meth:`Watcher.run`, the CLI's main thread) owns the
  watch state (:class:`~vidbatch.watching.folder.WatchedFolder`): it takes file-system events from
  a queue, debounces them (:class:`~vidbatch.watching.debounce.Debouncer`), reloads manifests and
  hands plans to the session. Ctrl-C lands here.
- The **session** thread (:class:`~vidbatch.session.SessionThread`) owns the state folder: the
  :class:`~vidbatch.session.Session` there opens the store, holds the run lock for the whole watch
  (a concurrent ``vidbatch run`` on the same state exits with code 4, and two watchers never
  fight), recovers cut-off creates and runs one long-lived runner. Plans are made *on that
  thread*, against the live store, so a plan always sees what is already in flight.
- watchdog's **observer** thread only turns events into paths on the watcher's queue.

The runner's events come back through the same ``on_event`` callback as the watcher's own
:class:`WatchEvent` objects; the callback is called from two threads but never concurrently.

What a change does
------------------
Paths that arrive within ``debounce`` seconds of each other (editors write a file in several
steps) are handled as one batch once the folder has been quiet that long, or at the latest
:data:`~vidbatch.watching.debounce.LONGEST_WAIT` seconds after the first (a file written without
pause, a log in the folder, must not hold an edit back). For each manifest the
batch touches, the manifest is loaded again and a plan for it alone is handed to the runner. The
runner starts only what is not already queued or in flight, so an edit never cancels or creates
again a render that is running: it is paid for, it is still polled and downloaded, and its result
stays in the state for reuse if the edit is undone. New work is queued beside it.

If such an older render lands on an output after a newer plan wanted another video there, the
watcher notices (the written key is not the one the manifest wants now) and plans the manifest
again, which downloads or reuses the current video without a new render.

``--force``, ``--retry-failed`` and ``--resubmit-uncertain`` apply to the plans made at start
only: re-applying them on every save would render forced jobs again at each edit of an unrelated
line. ``--max-renders`` and ``budget`` (``--max-cost``) bound every plan, as in ``run`` and
checked by the same session step before any call (a template typo that multiplies jobs is
refused, and said so, while the rest of the folder goes on). ``confirm`` is asked about start-up plans only,
because a question later would block the runner while it has tasks to collect.

The dependency map
------------------
``path -> manifests that read it`` (:mod:`vidbatch.watching.folder`). A manifest that fails to
load is reported and the watcher goes on; saving a fix, or adding the missing file it names,
resumes it. Deleting a manifest stops planning it (its running renders are still collected); a
rename is a delete plus a new manifest, which plans to ``skip`` what is already rendered. Inputs
outside ``DIR`` are watched through their own folders.

Manifests are the ``.toml``/``.json`` files at the top of ``DIR`` whose top level has ``jobs``
(:func:`~vidbatch.manifest.is_manifest_file`), plus those that mention ``jobs`` but do not parse
(a manifest with a syntax error must show its error, not vanish). A picks file
(``*.picks.toml``) is never a manifest, even when a shot is named ``jobs``. Other files are noted
once.

What is ignored
---------------
Our own writes must never trigger a plan, nor be taken for a manifest: the state folder, every
manifest's output folder and output files, the report (``written``), the process's stdout and
stderr when they are redirected to a file (``--json > events.json`` in the folder: found by
device and inode), and any path with a hidden or temporary part (``.*``, ``#*``, ``*~``, ``*.swp``,
``*.tmp``, ``*.part``, ``*.vidbatch-new``, vim's ``4913``...). An atomic save (write a temporary
file, rename it over the manifest) arrives as a move whose destination is the manifest; the
temporary name itself is ignored, or gone by the time the batch is handled. A file that a
manifest read is always watched, whatever its name.

Account errors stop new renders (as in ``run``); the watcher then waits until the renders in
flight are collected and ends the session (exit 3). So does a state database that can no longer
be written or was lost (the state folder, or the watched folder with it, deleted or moved): exit 1.
The watched folder itself deleted or moved away ends the session at once (exit 2).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from watchdog.events import FileSystemEventHandler

from . import interrupts, project
from .costing import Budget
from .errors import EXIT_ACCOUNT, EXIT_INTERRUPTED, EXIT_JOBS_FAILED, EXIT_OK, EXIT_USAGE, ManifestError
from .events import EventKind, Stop
from .plan import Plan
from .runner import Progress, RunEvent, RunOptions
from .session import Session, SessionThread, check_force
from .watching.debounce import Debouncer
from .watching.folder import WatchedFolder, output_collisions
from .watching.paths import (
    MANIFEST_SUFFIXES,
    TEMPORARY_NAMES,
    TEMPORARY_SUFFIXES,
    folder_files,
    is_temporary,
    looks_like_manifest,
)

__all__ = ["DEFAULT_DEBOUNCE", "MANIFEST_SUFFIXES", "TEMPORARY_NAMES", "TEMPORARY_SUFFIXES", "WatchEvent", "WatchResult", "Watcher", "is_temporary"]

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 0.5
#: How long a stop waits for the session to save the creates already on the wire.
STOP_TIMEOUT = 30.0
#: The process's own streams: events and messages go there, into the folder when redirected.
STDOUT, STDERR = 1, 2


@dataclass(frozen=True)
class WatchEvent(RunEvent):
    """Something the watcher (not the runner) reports. ``kind`` is one of:

    - ``waiting``: another run holds the state folder (``--wait``);
    - ``watching``: the session started (``data``: folder, state_dir, manifests);
    - ``ignored``: files of the folder that are not manifests, each noted once (``paths``);
    - ``changed``: a batch touched a manifest (``manifest``, ``paths``; ``new`` for a new one);
    - ``invalid``: a manifest failed to load; watching goes on (``manifest``, ``problems``);
    - ``warning``: a manifest loaded with a warning (``manifest``, ``problem``);
    - ``removed``: a manifest was deleted or renamed away (``manifest``);
    - ``refused``: a plan was over ``--max-renders`` or ``--max-cost`` and was not started
      (``manifest``; the message says why, in ``run``'s words);
    - ``declined``: ``confirm`` said no to a start-up plan (``manifest``);
    - ``stale``: an older render landed on an output; the manifest is planned again.

    The runner's own events (:class:`RunEvent`) come through the same callback; its ``start`` is
    given ``manifest`` and ``in_flight`` (jobs of the plan already queued or rendering), and
    ``idle`` says everything settled.
    """


@dataclass
class WatchResult:
    progress: Progress
    stopped: Stop  # INTERRUPTED (Ctrl-C), ACCOUNT, STATE, GONE (the folder), or STOPPED (stop() was called)
    state_dir: Path
    manifests: list[Path]  # loaded when the session ended, for the resume hint
    stop_message: str | None = None

    @property
    def exit_code(self) -> int:
        return {Stop.INTERRUPTED: EXIT_INTERRUPTED, Stop.ACCOUNT: EXIT_ACCOUNT, Stop.STATE: EXIT_JOBS_FAILED, Stop.GONE: EXIT_USAGE}.get(self.stopped, EXIT_OK)


class Watcher:
    """Watch ``folder`` and keep its manifests rendered; see the module docstring.

    ``client`` is a :class:`~vidbatch.client.Client` (or anything with its methods).
    ``observer_factory`` makes the watchdog observer (a ``PollingObserver`` for file systems
    without native events); ``clock`` times the debounce; ``session_thread`` keeps the
    :class:`~vidbatch.session.Session` (tests pass one that plans inline, without a thread);
    ``budget`` (:class:`~vidbatch.costing.Budget`) refuses any plan over ``--max-cost``;
    ``written`` names the other files the caller writes while watching (the report): like the
    process's stdout and stderr, they are never a manifest nor a change.
    """

    def __init__(
        self,
        folder: str | Path,
        client: Any,
        options: RunOptions = RunOptions(),
        *,
        variables: Mapping[str, str] | None = None,
        state_dir: str | Path | None = None,
        sim: bool = False,
        debounce: float = DEFAULT_DEBOUNCE,
        on_event: Callable[[RunEvent], None] | None = None,
        confirm: Callable[[Any, Plan], bool] | None = None,
        wait_for_lock: bool = False,
        observer_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        session_thread: Callable[[Session], Any] = SessionThread,
        budget: Budget | None = None,
        written: Iterable[Path] = (),
    ):
        self.folder = Path(folder).expanduser().resolve()
        self.options = options
        self.variables = dict(variables or {})
        self.sim = sim
        self.confirm = confirm
        self._state_dir_option = state_dir
        self.state_dir = project.state_folder(self.folder, state_dir=state_dir, sim=sim)
        self._on_event = on_event or (lambda e: None)
        self._observer_factory = observer_factory
        self._emit_lock = threading.Lock()
        #: what the loop takes, from any thread and from the SIGINT handler (a SimpleQueue's put is
        #: reentrant: safe in a signal handler, even while the loop is inside get)
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._session = session_thread(Session(self.state_dir, client, options, self._on_run_event, wait_for_lock=wait_for_lock, budget=budget))
        self._folder = WatchedFolder(self.folder, self.state_dir, written=written, streams=(STDOUT, STDERR))
        self._debouncer = Debouncer(debounce, clock)
        self._planning: tuple[Path, int] | None = None  # set by a plan, read by its "start" event
        self._stopping: Stop | None = None  # ACCOUNT or STATE: no new renders; end once settled
        self._stop_message: str | None = None
        self._observer: Any = None
        self._extra_watches: dict[Path, Any] = {}  # folder outside ``folder`` -> ObservedWatch

    # --- public -------------------------------------------------------------------------------

    def run(self) -> WatchResult:
        """Watch until :meth:`stop`, Ctrl-C, or an account error: :meth:`start`, then
        :meth:`step` with each item of the queue until it says why the session ends. Raises
        StateLockedError (exit 4) when another run holds the state folder, UsageError for a
        ``--force`` naming no job."""
        stopped = Stop.STOPPED
        try:
            self.start()
            # A Ctrl-C from here on is an item of the queue, taken between two steps (during
            # start, a wait for the lock among them, it raises as usual); after the loop, as
            # the session stops, a second one raises again: leave now.
            with interrupts.noted(lambda: self._queue.put(("interrupt",))):
                while (ended := self.step(self._next())) is None:
                    pass
            stopped = ended
        except KeyboardInterrupt:
            stopped = Stop.INTERRUPTED
        finally:
            self._shut_down()
        return WatchResult(self._session.progress, stopped, self.state_dir, self._folder.resumable(), self._stop_message)

    def start(self) -> None:
        """Open the session (state folder, lock), start watching, load and plan every manifest."""
        self._session.start()
        self._session.wait_ready()
        self._start_observer()
        self._start_up()

    def stop(self) -> None:
        """Thread-safe: end the session as :meth:`run` would on Ctrl-C, but with exit code 0."""
        self._queue.put(("stop",))

    def workspace(self) -> project.Workspace:
        """Thread-safe: the manifests that currently load, with the state folder (for reports)."""
        return project.Workspace(list(self._folder.current), self.state_dir, sim=self.sim)

    # --- the loop -----------------------------------------------------------------------------

    def _next(self) -> tuple[Any, ...] | None:
        try:
            return self._queue.get(timeout=self._debouncer.wait_time())
        except queue.Empty:
            return None

    def step(self, item: tuple[Any, ...] | None) -> Stop | None:
        """Take one item of the queue (None: the wait ran out), handle a batch that is due, and
        say why the session ends, or None to go on."""
        kind, *args = item or (None,)
        if kind == "stop":
            return Stop.STOPPED
        if kind == "interrupt":
            return Stop.INTERRUPTED
        if kind == "fs":
            self._debouncer.add(p for p in args if self._folder.interesting(p))
        elif kind == "stopping":
            self._stopping, self._stop_message = args
        elif kind == "idle" and self._stopping is not None:
            return self._stopping
        if not self.folder.is_dir():  # its watch follows the old folder: nothing more to see here
            self._stop_message = f"the watched folder {self.folder} is gone (deleted or moved away); running tasks are saved"
            return Stop.GONE
        batch = self._debouncer.take()
        if batch:
            self._handle(batch)
        if not self._session.alive:
            if self._session.error is not None:
                raise self._session.error
            return Stop.STOPPED
        return None

    def _start_observer(self) -> None:
        if self._observer_factory is None:
            from watchdog.observers import Observer

            self._observer_factory = Observer
        self._observer = self._observer_factory()
        self._observer.schedule(_Handler(self._queue.put), str(self.folder), recursive=True)
        self._observer.start()

    def _start_up(self) -> None:
        files = [p for p in folder_files(self.folder) if not self._folder.ignored(p)]
        loaded = [m for m in (self._load(p) for p in files if looks_like_manifest(p)) if m is not None]
        check_force((job for m in loaded for job in m.jobs), self.options.force, f"the manifests in {self.folder}")
        others = self._folder.note(self._folder.unread(files))
        self._session.session.clean_staging(loaded)  # left by a killed run; the session holds the lock
        names = ", ".join(self._rel(m.path) for m in loaded) or "none yet"
        self._emit(WatchEvent(
            EventKind.WATCHING,
            f"watching {self.folder}: {len(loaded)} manifest{'' if len(loaded) == 1 else 's'} ({names}); state in {self.state_dir}",
            data={"folder": str(self.folder), "state_dir": str(self.state_dir), "manifests": [str(m.path) for m in loaded]},
        ))
        if others:
            self._note_ignored(others)
        for m in loaded:
            self._plan(m, first=self._folder.first_plan(m.path))

    def _shut_down(self) -> None:
        if self._observer is not None:
            self._observer.stop()
        try:
            self._session.stop(STOP_TIMEOUT)
            if self._observer is not None:
                self._observer.join(5.0)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: leave now; creates cut off become "uncertain" on the next start

    # --- what a batch means -------------------------------------------------------------------

    def _handle(self, paths: set[Path]) -> None:
        batch = self._folder.triage(paths)
        if batch.ignored:
            self._note_ignored(batch.ignored)
        # Gone manifests first: a renamed one (or one a broken manifest collided with) must stop
        # claiming its outputs before the others load.
        for m, changed in sorted(batch.touched.items(), key=lambda item: item[0].exists()):
            self._changed(m, changed, m in batch.new)

    def _changed(self, path: Path, changed: list[Path], new: bool) -> None:
        if not path.exists():
            if self._folder.forget(path):
                self._sync_extra_watches()
                self._emit(WatchEvent(
                    EventKind.REMOVED,
                    f"{self._rel(path)} is gone: no longer planned; its renders not yet created are dropped (those already running are still collected)",
                    data={"manifest": str(path)},
                ))
                self._drop(path)
            return
        quiet = not changed  # a retry of a broken manifest that nothing of its own triggered
        if not quiet:
            shown = [self._rel(p) for p in changed if p != path]
            what = f"new manifest {self._rel(path)}" if new else (
                f"{', '.join(shown)} changed (read by {self._rel(path)})" if shown else f"{self._rel(path)} changed"
            )
            self._emit(WatchEvent(EventKind.CHANGED, what, data={"manifest": str(path), "paths": [str(p) for p in changed], "new": new}))
        manifest = self._load(path, quiet=quiet)
        if manifest is not None:
            self._plan(manifest, first=self._folder.first_plan(manifest.path))

    # --- loading and planning -----------------------------------------------------------------

    def _load(self, path: Path, *, quiet: bool = False) -> Any:
        """Load one manifest and note it; report and note a failure. Returns the Manifest, or
        None."""
        try:
            manifest = project.load([path], variables=self.variables, state_dir=self._state_dir_option, sim=self.sim).manifests[0]
            problems = output_collisions(manifest, self._folder.others(path))
            if problems:
                raise ManifestError(problems)
        except ManifestError as e:
            same = self._folder.failed(path, str(e), getattr(e, "inputs", ()))
            self._sync_extra_watches()
            if not (quiet and same):
                self._emit(WatchEvent(
                    EventKind.INVALID,
                    f"{self._rel(path)} is invalid; not planned until it is fixed (watching goes on):\n{e}",
                    data={"manifest": str(path), "problems": [p.to_json() for p in e.problems]},
                ))
            return None
        self._folder.loaded(manifest)
        self._sync_extra_watches()
        for problem in manifest.warnings:
            self._emit(WatchEvent(EventKind.WARNING, f"warning: {problem}", data={"manifest": str(path), "problem": problem.to_json()}))
        for note in project.pick_warnings([manifest]):  # as plan and run say them (its picks file is one of its inputs)
            self._emit(WatchEvent(EventKind.WARNING, f"warning: {note}", data={"manifest": str(path)}))
        return manifest

    def _plan(self, manifest: Any, *, first: bool = False) -> None:
        """Hand the session a plan for this manifest alone; it starts only what is not running.
        Thread-safe (the session's thread plans again after a stale output). ``confirm`` is asked
        about start-up plans only: a question later would block the runner while it has tasks to
        collect."""
        session: Session = self._session.session
        confirm = self.confirm
        ask = (lambda plan: confirm(manifest, plan)) if first and confirm is not None else None

        def make_plan() -> Plan:  # runs on the session's thread
            plan = session.plan([manifest], first=first)
            refusal = session.admit(plan, ask)
            if refusal is not None:
                if refusal.kind == EventKind.REFUSED:
                    self._emit(WatchEvent(EventKind.REFUSED, f"{self._rel(manifest.path)}: not started: {refusal.reason}", data={"manifest": str(manifest.path)}))
                else:
                    self._emit(WatchEvent(EventKind.DECLINED, f"{self._rel(manifest.path)}: not started; save it again to plan it", data={"manifest": str(manifest.path)}))
                plan = Plan([], [])
            self._planning = (manifest.path, len(plan.jobs))
            return plan

        self._session.replan(make_plan)

    def _drop(self, path: Path) -> None:
        """Hand the session an empty plan for a manifest that is gone: what it queued and is not
        created yet is dropped before it is paid for (and its jobs leave the counts)."""

        def make_plan() -> Plan:  # runs on the session's thread
            self._planning = (path, 0)
            return Plan([], [], gone=[path])

        self._session.replan(make_plan)

    # --- the runner's events (on the session's thread) ----------------------------------------

    def _on_run_event(self, e: RunEvent) -> None:
        """Annotate plans, spot stale outputs, pass on."""
        if e.kind == "start" and self._planning is not None:
            path, planned = self._planning
            self._planning = None
            in_flight = planned - e.data.get("jobs", 0)
            e = replace(e, message=self._plan_message(path, e.data, in_flight), data={**e.data, "manifest": str(path), "in_flight": in_flight})
        elif e.kind in ("downloaded", "reused") and "path" in e.data:
            self._emit(e)
            self._check_written(Path(e.data["path"]), e.key)
            return
        elif e.kind == "account_stop":
            self._queue.put(("stopping", Stop.ACCOUNT, e.message))
        elif e.kind == "state_error":
            self._queue.put(("stopping", Stop.STATE, e.message))
        elif e.kind == "idle":
            e = replace(e, message=f"settled; watching {self.folder} for changes")
            self._queue.put(("idle",))
        elif e.kind == "waiting":
            e = WatchEvent(e.kind, e.message, data=e.data)
        self._emit(e)

    def _check_written(self, output: Path, key: str | None) -> None:
        """As an output is written: if its manifest now wants another video there, plan it again
        (queued before the runner can go idle, so "idle" means settled)."""
        manifest = self._folder.stale(output, key)
        if manifest is None:
            return
        self._emit(WatchEvent(
            EventKind.STALE,
            f"{self._rel(output)} received a render made before {self._rel(manifest.path)} changed; planning it again",
            data={"manifest": str(manifest.path), "path": str(output)},
        ))
        self._plan(manifest)

    def _plan_message(self, path: Path, summary: Mapping[str, Any], in_flight: int) -> str:
        actions = summary.get("actions", {})
        parts = [f"{n} {a}" for a, n in actions.items()]
        if in_flight:
            parts.append(f"{in_flight} already queued or rendering")
        text = ", ".join(parts) or "nothing to start"
        billable = summary.get("billable", 0)
        return f"{self._rel(path)}: plan: {text}" + (f" ({billable} to render)" if billable else "")

    # --- watchdog -----------------------------------------------------------------------------

    def _sync_extra_watches(self) -> None:
        """Inputs outside the folder are watched through their own folders (not recursively)."""
        if self._observer is None:
            return
        wanted = self._folder.outside_folders()
        for folder in set(self._extra_watches) - wanted:
            self._observer.unschedule(self._extra_watches.pop(folder))
        for folder in wanted - set(self._extra_watches):
            try:
                self._extra_watches[folder] = self._observer.schedule(_Handler(self._queue.put), str(folder), recursive=False)
            except OSError as e:  # the folder does not exist (yet): the load error says so
                log.debug("cannot watch %s: %s", folder, e)

    # --- reporting ----------------------------------------------------------------------------

    def _note_ignored(self, paths: list[Path]) -> None:
        names = [self._rel(p) for p in paths]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        self._emit(WatchEvent(EventKind.IGNORED, f"not manifests, ignored: {shown}", data={"paths": [str(p) for p in paths]}))

    def _emit(self, event: RunEvent) -> None:
        with self._emit_lock:
            self._on_event(event)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return str(path)


class _Handler(FileSystemEventHandler):
    """watchdog handler: every event that can mean new content, as paths on the watcher's queue."""

    #: inotify also reports opens, reads and a folder's "modified" for each file written in it;
    #: none of those means new content (the file's own event does).
    _SKIP = frozenset({"opened", "closed_no_write"})

    def __init__(self, put: Callable[[tuple[Any, ...]], None]):
        super().__init__()
        self._put = put

    def dispatch(self, event: Any) -> None:
        if event.event_type in self._SKIP or (event.is_directory and event.event_type in ("modified", "attrib", "closed")):
            return
        paths = [event.src_path] + ([event.dest_path] if getattr(event, "dest_path", "") else [])
        self._put(("fs", *(Path(os.fsdecode(p)) for p in paths)))
