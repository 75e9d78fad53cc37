"""Watch mode: keep the manifests of a folder rendered while people drop and edit them.

``vidbatch watch DIR`` plans and runs every manifest in ``DIR`` at start, then re-plans a manifest
whenever it, or any file it read (an included template, a CSV/JSON of rows, an image), changes.

Threads
-------
- The **watcher** (the thread that calls :meth:`Watcher.run`, the CLI's main thread) owns every
  piece of watch state below: it takes file-system events from a queue, debounces them, reloads
  manifests and asks the runner for new plans. Ctrl-C lands here.
- The **runner** thread owns the state folder: it opens the :class:`~vidbatch.state.Store`, takes
  the run lock for the whole session (a concurrent ``vidbatch run`` on the same state exits with
  code 4, and two watchers never fight), and runs one long-lived
  :class:`~vidbatch.runner.Runner` with ``keep_alive``. Plans are computed *on that thread*
  (``Runner.replan``), against the live store, so a plan always sees what is already in flight.
  SQLite connections and file locks both belong to the thread that made them, which is why the
  store never leaves it.
- watchdog's **observer** thread only turns events into paths on the watcher's queue.

The runner's events come back through the same ``on_event`` callback as the watcher's own
:class:`WatchEvent` objects; the callback is called from two threads but never concurrently.

What a change does
------------------
Paths that arrive within ``debounce`` seconds of each other (editors write a file in several
steps) are handled as one batch once the folder has been quiet that long. For each manifest the
batch touches, the manifest is loaded again and a plan for it alone is handed to the runner. The
runner starts only what is not already queued or in flight, so an edit never cancels or creates
again a render that is running: it is paid for, it is still polled and downloaded, and its result
stays in the state for reuse if the edit is undone. New work is queued beside it.

If such an older render lands on an output after a newer plan wanted another video there, the
watcher notices (the written key is not the one the manifest wants now) and plans the manifest
again, which downloads or reuses the current video without a new render.

``--force``, ``--retry-failed`` and ``--resubmit-uncertain`` apply to the plans made at start
only: re-applying them on every save would render forced jobs again at each edit of an unrelated
line. ``--max-renders`` bounds every plan (a template typo that multiplies jobs is refused, and
said so, while the rest of the folder goes on). ``confirm`` is asked about start-up plans only,
because a question later would block the runner while it has tasks to collect.

The dependency map
------------------
``path -> manifests that read it``, from :attr:`Manifest.inputs` and rebuilt for a manifest on
each load. A manifest that fails to load keeps its last-known inputs, plus the files the failed
load tried to read (an image that does not exist yet), so saving a fix, or adding the missing
file, resumes it; its error is reported and the watcher goes on. Deleting a manifest stops
planning it (its running renders are still collected); a rename is a delete plus a new manifest,
which plans to ``skip`` what is already rendered. Inputs outside ``DIR`` are watched through
their own folders.

Manifests are the ``.toml``/``.json`` files at the top of ``DIR`` whose top level has ``jobs``
(:func:`~vidbatch.manifest.is_manifest_file`), plus those that mention ``jobs`` but do not parse
(a manifest with a syntax error must show its error, not vanish). Other files are noted once.

What is ignored
---------------
Our own writes must never trigger a plan: the state folder, every manifest's output folder and
output files, and any path with a hidden or temporary part (``.*``, ``#*``, ``*~``, ``*.swp``,
``*.tmp``, ``*.part``, ``*.vidbatch-new``, vim's ``4913``...). An atomic save (write a temporary
file, rename it over the manifest) arrives as a move whose destination is the manifest; the
temporary name itself is ignored, or gone by the time the batch is handled. A file that a
manifest read is always watched, whatever its name.

Account errors stop new renders (as in ``run``); the watcher then waits until the renders in
flight are collected and ends the session (exit 3).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from watchdog.events import FileSystemEventHandler

from . import project
from .errors import EXIT_ACCOUNT, EXIT_INTERRUPTED, EXIT_OK, ManifestError, ManifestProblem, StateLockedError, UsageError
from .plan import Plan, plan_jobs
from .runner import STAGING_SUFFIX, Progress, RunEvent, RunOptions, Runner, check_budget, clean_staging
from .state import Store

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 0.5
MANIFEST_SUFFIXES = (".toml", ".json")
#: A file whose name ends so is an editor's or a downloader's work in progress (or our own).
TEMPORARY_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".crdownload", ".partial", STAGING_SUFFIX)
#: Names editors create to probe a folder (vim writes ``4913`` to test permissions).
TEMPORARY_NAMES = frozenset({"4913"})
#: How long a stop waits for the runner to save the creates already on the wire.
STOP_TIMEOUT = 30.0


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is hidden or an editor's temporary file."""
    return name.startswith((".", "#")) or name.endswith(TEMPORARY_SUFFIXES) or name in TEMPORARY_NAMES


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
    - ``refused``: a plan was over ``--max-renders`` and was not started (``manifest``);
    - ``declined``: ``confirm`` said no to a start-up plan (``manifest``);
    - ``stale``: an older render landed on an output; the manifest is planned again.

    The runner's own events (:class:`RunEvent`) come through the same callback; its ``start`` is
    given ``manifest`` and ``in_flight`` (jobs of the plan already queued or rendering), and
    ``idle`` says everything settled.
    """


@dataclass
class WatchResult:
    progress: Progress
    stopped: str  # "interrupted", "account" or "stopped" (stop() was called)
    state_dir: Path
    manifests: list[Path]  # loaded when the session ended, for the resume hint
    stop_message: str | None = None

    @property
    def exit_code(self) -> int:
        return {"interrupted": EXIT_INTERRUPTED, "account": EXIT_ACCOUNT}.get(self.stopped, EXIT_OK)


class Watcher:
    """Watch ``folder`` and keep its manifests rendered; see the module docstring.

    ``client`` is a :class:`~vidbatch.client.Client` (or anything with its methods).
    ``observer_factory`` makes the watchdog observer (a ``PollingObserver`` for file systems
    without change notification). ``confirm(manifest, plan)`` is asked before a start-up plan with
    billable renders is started.
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
    ):
        self.folder = Path(folder).expanduser().resolve()
        self.client = client
        self.options = options
        self.variables = dict(variables or {})
        self.sim = sim
        self.debounce = debounce
        self.confirm = confirm
        self.wait_for_lock = wait_for_lock
        self._state_dir_option = state_dir
        self.state_dir = project.state_folder(self.folder, state_dir=state_dir, sim=sim)
        self._on_event = on_event or (lambda e: None)
        self._observer_factory = observer_factory
        self._emit_lock = threading.Lock()
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        # runner thread hand-over
        self._runner: Runner | None = None
        self._runner_ready = threading.Event()  # set once the runner exists, or its thread gave up
        self._closing = threading.Event()
        self._runner_error: BaseException | None = None
        self._planning: tuple[Path, int] | None = None  # set by a plan, read by its "start" event
        # watcher-thread state
        self._manifests: dict[Path, Any] = {}  # path -> last Manifest that loaded
        self._broken: dict[Path, str] = {}  # path -> error text of its last load
        self._inputs: dict[Path, set[Path]] = {}  # manifest -> files it read (last known)
        self._readers: dict[Path, set[Path]] = {}  # file -> manifests that read it
        #: output file -> (Manifest, the key it wants there). Read by the runner thread, so it is
        #: never changed in place: each load builds a new dict and swaps it in.
        self._wanted: dict[Path, tuple[Any, str]] = {}
        self._workspace = project.Workspace([], self.state_dir)  # swapped whole, like _wanted
        self._planned: set[Path] = set()  # manifests that had their start-up plan
        self._noted: set[Path] = set()
        self._extra_watches: dict[Path, Any] = {}  # folder outside ``folder`` -> ObservedWatch
        self._observer: Any = None
        self._stop_message: str | None = None

    # --- public -------------------------------------------------------------------------------

    def run(self) -> WatchResult:
        """Watch until :meth:`stop`, Ctrl-C, or an account error. Raises StateLockedError (exit 4)
        when another run holds the state folder, UsageError for a ``--force`` naming no job."""
        runner_thread = threading.Thread(target=self._run_runner, name="vidbatch-runner", daemon=True)
        runner_thread.start()
        stopped = "stopped"
        try:
            self._await_runner()
            self._start_observer()
            self._start_up()
            stopped = self._loop(runner_thread)
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            self._shut_down(runner_thread)
        progress = self._runner.progress if self._runner else Progress()
        resumable = sorted(set(self._manifests) - set(self._broken))
        return WatchResult(progress, stopped, self.state_dir, resumable, self._stop_message)

    def stop(self) -> None:
        """Thread-safe: end the session as :meth:`run` would on Ctrl-C, but with exit code 0."""
        self._queue.put(("stop",))

    def workspace(self) -> project.Workspace:
        """Thread-safe: the manifests that currently load, with the state folder (for reports)."""
        return self._workspace

    # --- runner thread ------------------------------------------------------------------------

    def _run_runner(self) -> None:
        try:
            store = Store(self.state_dir)
        except BaseException as e:  # noqa: BLE001 - handed to the watcher thread
            self._runner_error = e
            self._runner_ready.set()
            return
        try:
            with contextlib.ExitStack() as held:
                if not self._take_lock(store, held):
                    return  # the session ended while waiting for the lock
                for record in store.mark_interrupted_submissions():
                    log.warning("job %s: create was cut off by a crash; now uncertain", record.name or record.key)
                self._runner = Runner(store, self.client, self.options, self._on_run_event)
                self._runner_ready.set()
                self._runner.run(None, keep_alive=True)  # until stop(); see _shut_down
        except BaseException as e:  # noqa: BLE001 - handed to the watcher thread
            self._runner_error = e
        finally:
            self._runner_ready.set()
            store.close()

    def _take_lock(self, store: Store, held: contextlib.ExitStack) -> bool:
        """Hold the run lock in ``held``; with ``wait_for_lock``, poll for it (a blocking wait
        could not be cut short by Ctrl-C). False if the session ended first."""
        announced = False
        while True:
            try:
                held.enter_context(store.run_lock())
                return True
            except StateLockedError:
                if not self.wait_for_lock:
                    raise
            if not announced:
                announced = True
                self._emit(WatchEvent("waiting", f"another run is using {self.state_dir}; waiting for it to finish", data={"state_dir": str(self.state_dir)}))
            if self._closing.wait(0.5):
                return False

    def _await_runner(self) -> None:
        while not self._runner_ready.wait(0.2):
            pass
        if self._runner is None:
            assert self._runner_error is not None
            raise self._runner_error

    def _on_run_event(self, e: RunEvent) -> None:
        """The runner's events, on its thread: annotate plans, spot stale outputs, pass on."""
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
            self._queue.put(("account", e.message))
        elif e.kind == "idle":
            e = replace(e, message=f"settled; watching {self.folder} for changes")
            self._queue.put(("idle",))
        self._emit(e)

    def _plan_message(self, path: Path, summary: Mapping[str, Any], in_flight: int) -> str:
        actions = summary.get("actions", {})
        parts = [f"{n} {a}" for a, n in actions.items()]
        if in_flight:
            parts.append(f"{in_flight} already queued or rendering")
        text = ", ".join(parts) or "nothing to start"
        billable = summary.get("billable", 0)
        return f"{self._rel(path)}: plan: {text}" + (f" ({billable} to render)" if billable else "")

    # --- the watcher thread -------------------------------------------------------------------

    def _start_observer(self) -> None:
        if self._observer_factory is None:
            from watchdog.observers import Observer

            self._observer_factory = Observer
        self._observer = self._observer_factory()
        self._observer.schedule(_Handler(self._queue.put), str(self.folder), recursive=True)
        self._observer.start()

    def _start_up(self) -> None:
        files = sorted(p for p in self.folder.iterdir() if p.is_file() and not is_temporary(p.name))
        loaded = [m for m in (self._load(p) for p in files if _looks_like_manifest(p)) if m is not None]
        unknown = set(self.options.force) - {job.name for m in loaded for job in m.jobs}
        if unknown:
            raise UsageError(f"--force names no job of the manifests in {self.folder}: {', '.join(sorted(unknown))}")
        others = [p for p in files if p not in self._readers and p not in self._wanted]
        self._noted.update(others)
        clean_staging(job.output for m in loaded for job in m.jobs)  # left by a killed run; we hold the lock
        names = ", ".join(self._rel(m.path) for m in loaded) or "none yet"
        self._emit(WatchEvent(
            "watching",
            f"watching {self.folder}: {len(loaded)} manifest{'' if len(loaded) == 1 else 's'} ({names}); state in {self.state_dir}",
            data={"folder": str(self.folder), "state_dir": str(self.state_dir), "manifests": [str(m.path) for m in loaded]},
        ))
        if others:
            self._note_ignored(others)
        for m in loaded:
            self._plan_changed(m)

    def _loop(self, runner_thread: threading.Thread) -> str:
        pending: set[Path] = set()
        deadline: float | None = None
        account_stopped = False
        while True:
            timeout = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None:
                kind = item[0]
                if kind == "stop":
                    return "stopped"
                if kind == "fs":
                    fresh = {p for p in item[1:] if self._interesting(p)}
                    if fresh:
                        pending |= fresh
                        deadline = time.monotonic() + self.debounce
                elif kind == "account":
                    account_stopped = True
                    self._stop_message = item[1]
                elif kind == "idle" and account_stopped:
                    return "account"
            if deadline is not None and time.monotonic() >= deadline:
                batch, pending, deadline = pending, set(), None
                self._handle(batch)
            if not runner_thread.is_alive():
                if self._runner_error is not None:
                    raise self._runner_error
                return "stopped"

    def _shut_down(self, runner_thread: threading.Thread) -> None:
        self._closing.set()
        if self._observer is not None:
            self._observer.stop()
        try:
            self._runner_ready.wait(STOP_TIMEOUT)  # a lock wait ends within half a second
            if self._runner is not None:
                self._runner.stop()
            runner_thread.join(STOP_TIMEOUT)
            if self._observer is not None:
                self._observer.join(5.0)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: leave now; creates cut off become "uncertain" on the next start

    # --- deciding what a batch of changed paths means -----------------------------------------

    def _interesting(self, path: Path) -> bool:
        """Cheap, per event: could this path matter? (The batch decides what it means.)"""
        if path in self._readers:
            return True
        if self._ignored(path):
            return False
        if path.parent == self.folder or self._broken:
            return True
        return any(p.is_relative_to(path) for p in self._readers)  # a folder of inputs came or went

    def _ignored(self, path: Path) -> bool:
        try:
            rel = path.relative_to(self.folder)
        except ValueError:
            return True  # outside the folder and read by no manifest
        if any(is_temporary(part) for part in rel.parts):
            return True
        if path.is_relative_to(self.state_dir) or path in self._wanted:
            return True
        for m in self._manifests.values():
            out = m.output_dir
            if out != self.folder and not self.folder.is_relative_to(out) and path.is_relative_to(out):
                return True
        return False

    def _handle(self, batch: set[Path]) -> None:
        touched: dict[Path, list[Path]] = {}
        new: set[Path] = set()
        unexplained: list[Path] = []
        for path in sorted(batch):
            readers = set(self._readers.get(path, ()))
            for inp, who in self._readers.items():
                if inp != path and inp.is_relative_to(path):
                    readers |= who
            if not readers and path.parent == self.folder and _looks_like_manifest(path):
                readers = {path}
                new.add(path)
            if readers:
                for m in readers:
                    touched.setdefault(m, []).append(path)
            elif path.exists():
                unexplained.append(path)
        # Any change may be what a broken manifest lacked (a file it names, the removal of a
        # manifest whose outputs it collided with): retry them quietly, reporting only a new error.
        for m in set(self._broken) - set(touched):
            touched[m] = []
        ignored = [p for p in unexplained if p.parent == self.folder and p.is_file() and p not in self._noted]
        if ignored:
            self._noted.update(ignored)
            self._note_ignored(ignored)
        for m in sorted(touched):
            self._changed(m, touched[m], m in new)

    def _changed(self, path: Path, changed: list[Path], new: bool) -> None:
        if not path.exists():
            if path in self._inputs:
                self._forget(path)
                self._emit(WatchEvent(
                    "removed",
                    f"{self._rel(path)} is gone: no longer planned (renders of it already running are still collected)",
                    data={"manifest": str(path)},
                ))
            return
        quiet = not changed  # a retry of a broken manifest that nothing of its own triggered
        if not quiet:
            shown = [self._rel(p) for p in changed if p != path]
            what = f"new manifest {self._rel(path)}" if new else (
                f"{', '.join(shown)} changed (read by {self._rel(path)})" if shown else f"{self._rel(path)} changed"
            )
            self._emit(WatchEvent("changed", what, data={"manifest": str(path), "paths": [str(p) for p in changed], "new": new}))
        manifest = self._load(path, quiet=quiet)
        if manifest is not None:
            self._plan_changed(manifest)

    def _plan_changed(self, manifest: Any) -> None:
        """Plan a manifest that was (re)loaded; its first plan of the session is the start-up one."""
        first = manifest.path not in self._planned
        self._planned.add(manifest.path)
        self._plan(manifest, first=first)

    def _check_written(self, output: Path, key: str | None) -> None:
        """On the runner thread, as an output is written: if its manifest now wants another video
        there, plan it again (queued before the runner can go idle, so "idle" means settled)."""
        wanted = self._wanted.get(output)
        if wanted is None or wanted[1] == key or wanted[0].path in self._broken:
            return
        manifest = wanted[0]
        self._emit(WatchEvent(
            "stale",
            f"{self._rel(output)} received a render made before {self._rel(manifest.path)} changed; planning it again",
            data={"manifest": str(manifest.path), "path": str(output)},
        ))
        self._plan(manifest)

    # --- loading and planning -----------------------------------------------------------------

    def _load(self, path: Path, *, quiet: bool = False) -> Any:
        """Load one manifest and update the maps; report and remember a failure. Returns the
        Manifest, or None."""
        before = self._inputs.get(path, set())
        try:
            manifest = project.load([path], variables=self.variables, state_dir=self._state_dir_option, sim=self.sim).manifests[0]
            self._check_outputs(manifest)
        except ManifestError as e:
            tried = set(getattr(e, "inputs", ()))
            self._set_inputs(path, before | tried | {path})
            text = str(e)
            if not (quiet and self._broken.get(path) == text):
                self._emit(WatchEvent(
                    "invalid",
                    f"{self._rel(path)} is invalid; not planned until it is fixed (watching goes on):\n{text}",
                    data={"manifest": str(path), "problems": [p.to_json() for p in e.problems]},
                ))
            self._broken[path] = text
            return None
        self._broken.pop(path, None)
        self._manifests[path] = manifest
        self._set_inputs(path, set(manifest.inputs) | {path})
        self._rebuild_wanted()
        for problem in manifest.warnings:
            self._emit(WatchEvent("warning", f"warning: {problem}", data={"manifest": str(path), "problem": problem.to_json()}))
        return manifest

    def _check_outputs(self, manifest: Any) -> None:
        """Two manifests of the folder must not write one file (loaded alone, they cannot tell)."""
        problems = []
        for job in manifest.jobs:
            owner = self._wanted.get(job.output)
            if owner is not None and owner[0].path != manifest.path:
                problems.append(ManifestProblem(
                    self._rel(manifest.path),
                    f"output {self._rel(job.output)} is also written by {self._rel(owner[0].path)}; give one of them another output",
                    job=job.name,
                    field="output",
                    line=job.line,
                ))
        if problems:
            raise ManifestError(problems)

    def _plan(self, manifest: Any, *, first: bool = False) -> None:
        """Hand the runner a plan for this manifest alone; it starts only what is not running.
        Thread-safe (the runner thread plans again after a stale output)."""
        assert self._runner is not None
        opts = self.options

        def make_plan(store: Store) -> Plan:  # runs on the runner thread
            plan = plan_jobs(
                [manifest],
                store,
                retry_failed=opts.retry_failed and first,
                force=opts.force if first else (),
                resubmit_uncertain=opts.resubmit_uncertain and first,
            )
            try:
                check_budget(plan, opts.max_renders)
            except UsageError as e:
                self._emit(WatchEvent("refused", f"{self._rel(manifest.path)}: not started: {e}", data={"manifest": str(manifest.path)}))
                plan = Plan([], [])
            if first and plan.billable and self.confirm is not None and not self.confirm(manifest, plan):
                self._emit(WatchEvent("declined", f"{self._rel(manifest.path)}: not started; save it again to plan it", data={"manifest": str(manifest.path)}))
                plan = Plan([], [])
            self._planning = (manifest.path, len(plan.jobs))
            return plan

        self._runner.replan(make_plan)

    def _set_inputs(self, manifest: Path, inputs: set[Path]) -> None:
        for old in self._inputs.get(manifest, set()) - inputs:
            readers = self._readers.get(old)
            if readers is not None:
                readers.discard(manifest)
                if not readers:
                    del self._readers[old]
        for new in inputs:
            self._readers.setdefault(new, set()).add(manifest)
        self._inputs[manifest] = inputs
        self._sync_extra_watches()

    def _forget(self, manifest: Path) -> None:
        self._set_inputs(manifest, set())
        del self._inputs[manifest]
        self._manifests.pop(manifest, None)
        self._broken.pop(manifest, None)
        self._rebuild_wanted()

    def _rebuild_wanted(self) -> None:
        self._wanted = {job.output: (m, job.key) for m in self._manifests.values() for job in m.jobs}
        self._workspace = project.Workspace(list(self._manifests.values()), self.state_dir)

    def _sync_extra_watches(self) -> None:
        """Inputs outside the folder are watched through their own folders (not recursively)."""
        if self._observer is None:
            return
        wanted = {p.parent for p in self._readers if not p.is_relative_to(self.folder)}
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
        self._emit(WatchEvent("ignored", f"not manifests, ignored: {shown}", data={"paths": [str(p) for p in paths]}))

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


def _looks_like_manifest(path: Path) -> bool:
    """A manifest, or a .toml/.json file that mentions ``jobs`` but does not parse: a manifest
    with a syntax error, whose error must be shown rather than the file ignored."""
    from .manifest import is_manifest_file

    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES or not path.is_file():
        return False
    if is_manifest_file(path):
        return True
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, ValueError):
        return False
    if "jobs" not in text:
        return False
    try:
        tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False
