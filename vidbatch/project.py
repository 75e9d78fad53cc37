"""Manifests plus their state folder: the one call behind each of plan, run, status and gc.

The state folder is ``.vidbatch/`` beside the first manifest, unless ``--state`` or
``VIDBATCH_STATE`` says otherwise. Manifests that share a state folder share renders: an identical
request in two manifests is rendered once (``reuse``).

A folder named instead of a manifest stands for its manifests, as in watch mode (the state
folder is then in that folder).

Runs against the bundled simulator (``--sim``) keep a state folder and outputs of their own
(``.vidbatch/sim`` and ``<output_dir>-sim``), so simulated clips never pass for real renders;
:attr:`Workspace.sim` says so.

``run`` holds the state folder through a :class:`~vidbatch.session.Session`, the lifecycle it
shares with watch mode (lock, recovery, budget and confirm, staging cleanup, the runner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from . import chain, cuts, media, picks
from .events import Stop
from .errors import ManifestError, StateLockedError, UsageError
from .manifest.model import image_refs
from .files import sha256_file
from .plan import Action, Orphan, Plan, plan_jobs
from .state import OutputRecord, RenderRecord, Store, default_state_dir

if TYPE_CHECKING:
    from . import jobcache, ledger
    from .costing import Budget
    from .runner import RunEvent, RunOptions, RunResult

# The runner, the session, the costing and the ledger are imported by the calls that use them:
# `plan --check` of a finished manifest loads none of them (issue 15).

SIM_SUFFIX = "-sim"


#: The simulator has no rate limit unless asked; these keep a --sim demo short.
SIM_RPM = 600
SIM_POLL_INTERVAL = 0.5


@dataclass
class Workspace:
    """Manifests loaded together (:func:`load`) and the state folder they share."""

    manifests: list[Any]  # vidbatch.manifest.Manifest
    state_dir: Path
    #: runs against the bundled simulator (``--sim``): state and outputs of their own
    sim: bool = False
    #: noop (issue 15): the job cache entry a miss made; ``run`` writes it
    cache: "jobcache.Pending | None" = None

    @property
    def jobs(self) -> list[Any]:
        """Every job of every manifest, in order."""
        return [job for m in self.manifests for job in m.jobs]

    def default_options(self) -> RunOptions:
        """MiniMax's documented rate and poll interval; quicker ones for a simulated workspace."""
        from .runner import RunOptions

        return RunOptions(rpm=SIM_RPM, v2_rpm=SIM_RPM, poll_interval=SIM_POLL_INTERVAL) if self.sim else RunOptions()

    def plan(self, *, retry_failed: bool = False, force: Sequence[str] = (), resubmit_uncertain: bool = False) -> Plan:
        """What a run would do for each job, and why (:func:`plan`). Writes nothing."""
        return plan(self, retry_failed=retry_failed, force=force, resubmit_uncertain=resubmit_uncertain)

    def run(
        self,
        client: Any,
        options: RunOptions | None = None,
        *,
        on_event: Callable[[RunEvent], None] | None = None,
        confirm: Callable[[Plan], bool] | None = None,
        wait_for_lock: bool = False,
        budget: Budget | None = None,
    ) -> RunResult:
        """Render what is new or changed through ``client`` and return the result (:func:`run`).
        ``options`` default to :meth:`default_options`; ``on_event`` gets every
        :class:`~vidbatch.runner.RunEvent` (on the calling thread); ``budget``
        (:class:`~vidbatch.costing.Budget`) refuses a plan over ``--max-cost``."""
        return run(self, client, options or self.default_options(), on_event=on_event, confirm=confirm, wait_for_lock=wait_for_lock, budget=budget)

    def cancel(self, client: Any, *, names: Sequence[str] = ()) -> list[Any]:
        """Cancel the queued MiniMax-H3 tasks of these jobs (:func:`cancel`)."""
        return cancel(self, client, names=names)

    def status(self) -> list["JobStatus"]:
        """Every job's recorded state, output and error (:func:`status`)."""
        jobs, store = status(self, self.state_dir)
        if store is not None:
            store.close()
        return jobs


def load(paths: Sequence[str | Path], *, variables: Mapping[str, str] | None = None, state_dir: str | Path | None = None, sim: bool = False) -> Workspace:
    """Load and validate manifests (raises ManifestError, exit 2) and find their state folder.
    A folder stands for its manifests, as in watch mode; the state folder is beside the first
    manifest, or in the first folder."""
    from . import jobcache

    if not paths:
        raise UsageError("name at least one manifest")
    first = Path(paths[0]).expanduser().resolve()
    folder = state_folder(first if first.is_dir() else first.parent, state_dir=state_dir, sim=sim)
    # noop (issue 15): the expanded jobs come from <state>/cache when no input changed.
    # absolute, not resolved: a manifest is named as given, not by a link's target
    manifests, cache = jobcache.load(folder, [p.expanduser().absolute() for p in manifest_paths(paths)], variables)
    if sim:
        for m in manifests:
            sim_dir = m.output_dir.with_name(m.output_dir.name + SIM_SUFFIX)
            for job in m.jobs:
                job.output = sim_dir / job.output.relative_to(m.output_dir)
            for sequence in m.sequences:
                sequence.output = sim_dir / sequence.output.relative_to(m.output_dir)
            m.output_dir = sim_dir
    return Workspace(manifests, folder, sim=sim, cache=cache)


def manifest_paths(paths: Sequence[str | Path]) -> list[Path]:
    """``paths`` with each folder replaced by the manifests in it (UsageError if it has none)."""
    from .watching.paths import manifest_files

    out: list[Path] = []
    for given in map(Path, paths):
        if not given.is_dir():
            out.append(given)
            continue
        found = manifest_files(given)
        if not found:
            raise UsageError(f"no manifests in {given} (a manifest is a .toml or .json file with jobs); name one")
        out.extend(found)
    return out


def state_folder(manifest_folder: Path, *, state_dir: str | Path | None = None, sim: bool = False) -> Path:
    """The state folder of manifests in ``manifest_folder``: ``state_dir`` (``--state``), else
    ``VIDBATCH_STATE``, else ``.vidbatch`` there; ``sim`` runs use its ``sim`` subfolder."""
    folder = Path(state_dir).expanduser().resolve() if state_dir else default_state_dir(manifest_folder)
    return folder / "sim" if sim else folder


def plan(ws: Workspace, *, retry_failed: bool = False, force: Sequence[str] = (), resubmit_uncertain: bool = False) -> Plan:
    """The plan, read-only: creates no folder and writes nothing."""
    _check_force(ws, force)
    store = Store.open_for_reading(ws.state_dir)
    try:
        the_plan = cuts.plan(ws.manifests, store, retry_failed=retry_failed, force=force, resubmit_uncertain=resubmit_uncertain)
    finally:
        if store:
            store.close()
    the_plan.warnings = pick_warnings(ws.manifests)
    return the_plan


def pick_warnings(manifests: Sequence[Any]) -> list[str]:
    """What the manifests' picks files decide about shots or takes the manifests no longer have
    (:meth:`vidbatch.picks.Picks.stale`), one line each: ignored, so said, never an error.

    A picks file that cannot be read is one line per problem too: the plan of a manifest whose
    chained shots or cuts read its picks has stopped on it already (ManifestError, exit 2: which
    take a shot stands for decides what is rendered), so here it is the file of a manifest whose
    plan picks change nothing."""
    notes: list[str] = []
    for m in manifests:
        try:
            notes += picks.load(m.path, m.jobs).stale()
        except ManifestError as e:
            notes += [f"{p}; this plan does not depend on picks, but status, report and review stop on the file until it is fixed" for p in e.problems]
    return notes


def run(
    ws: Workspace,
    client: Any,
    options: RunOptions | None = None,
    *,
    on_event: Callable[[RunEvent], None] | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    wait_for_lock: bool = False,
    budget: Budget | None = None,
) -> RunResult:
    """Plan and carry out the plan, holding the state folder's run lock throughout.

    Before the first call, each :func:`pick_warnings` line (a picks file this plan does not
    depend on but cannot read, a pick of a shot the manifest no longer has) is an
    ``EventKind.WARNING`` event, as ``plan`` warns.

    ``confirm`` is asked before anything is created when the plan has billable renders; returning
    False ends the run with nothing sent (UsageError). A plan of more than
    :data:`~vidbatch.session.RUN_SIZE_LIMIT` renders needs ``options.max_renders`` or a yes from
    ``confirm``. ``budget`` (:class:`~vidbatch.costing.Budget`) refuses a plan over
    ``--max-cost`` and records the price of each create for the spend ledger.
    """
    from .events import EventKind
    from .runner import RunEvent, RunOptions
    from .session import Session

    options = options or RunOptions()
    _check_force(ws, options.force)
    with Session(ws.state_dir, client, options, on_event, wait_for_lock=wait_for_lock, budget=budget) as session:
        the_plan = session.plan(ws.manifests)
        refusal = session.admit(the_plan, confirm)
        if refusal is not None:
            raise UsageError(refusal.reason)
        the_plan.warnings = pick_warnings(ws.manifests)  # as plan shows them, one event each
        for warning in the_plan.warnings:
            session.on_event(RunEvent(EventKind.WARNING, warning))
        _check_output_folders(ws, the_plan)
        session.clean_staging(ws.manifests)
        if ws.cache is not None:  # noop (issue 15): the state folder is ours now
            ws.cache.write()
        result = session.run(the_plan)
        if result.stopped is not Stop.INTERRUPTED:  # after Ctrl-C, leave at once
            session.assemble(ws.manifests)  # the sequences whose shots are now in place: local, no call
        return result


def _check_output_folders(ws: Workspace, plan: Plan) -> None:
    """An output folder that cannot take files (permissions, a read-only file system) is refused
    before anything is created: a render paid for and then unwritable is money lost."""
    writing = {str(pj.job.manifest) for pj in plan.jobs if pj.action is not Action.SKIP}
    for m in ws.manifests:
        error = m.output_dir_error() if str(m.path) in writing else None
        if error is not None:
            raise error


#: A job's status when its output file holds the video of another request (an edit, or an edit
#: undone): its own render may be done, but the file is not it. ``run`` puts its own video back.
OUTDATED = "outdated"


@dataclass
class JobStatus:
    name: str
    manifest: str | None
    output: str | None
    record: RenderRecord | None
    output_present: bool
    #: the state's record of the file at ``output`` (which key's video it holds), if any
    held: OutputRecord | None = None
    #: the job's content key (None when listing the state without a manifest)
    key: str | None = None
    #: the prompt of the render whose video the output holds, when that is another request
    held_prompt: str | None = None
    #: what the job's render cost: its accepted creates (every try, failed ones too), priced
    cost: ledger.Tally | None = None
    #: the shot this job is a take of (its name for a job without takes), which take, and what
    #: the picks file says of it ("picked", "rejected" or "")
    shot: str = ""
    take: int = 1
    pick: str = ""
    #: why a "picked" take's pick no longer stands (it rendered again since it was picked:
    #: :func:`vidbatch.chain.stale_picks`); "" when it does, or for a take not picked
    pick_stale: str = ""

    @property
    def holds_other_version(self) -> bool:
        """The output file exists and holds another request's video than the job's."""
        return bool(self.output_present and self.held is not None and self.key is not None and self.held.key != self.key)

    @property
    def state(self) -> str:
        # "done" would say the file is this request's video; it is not (an edit undone: the
        # job's own render exists, the file holds the other version). A request never rendered
        # stays "new", whatever file is there.
        if self.holds_other_version and self.record is not None and self.record.state.value == "done":
            return OUTDATED
        return self.record.state.value if self.record else "new"

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "name": self.name,
            "shot": self.shot or self.name,
            "take": self.take,
            "pick": self.pick or None,
            "pick_stale": self.pick_stale or None,
            "manifest": self.manifest,
            "state": self.state,
            "output": self.output,
            "output_present": self.output_present,
            "key": r.key if r else None,
            "task_id": r.task_id if r else None,
            "file_id": r.file_id if r else None,
            "attempts": r.attempts if r else 0,
            "error": r.error if r else None,
            "error_code": r.error_code if r else None,
            "trace_id": r.trace_id if r else None,
            "model": r.model if r else None,
            "bytes": r.video_bytes if r else None,
            "sha256": r.video_sha256 if r else None,
            "updated_at": r.updated_at if r else None,
            "output_key": self.held.key if self.held else None,
            "output_sha256": self.held.sha256 if self.held else None,
            "output_prompt": self.held_prompt if self.holds_other_version else None,
            "cost": self.cost.to_json() if self.cost is not None else None,
        }


def status(ws: Workspace | None, state_dir: Path) -> tuple[list[JobStatus], Store | None]:
    """Every job's recorded state: the manifest's jobs when given, else everything in the state.
    The caller closes the returned store."""
    store = Store.open_for_reading(state_dir)
    from . import ledger

    costs = ledger.ledger(store).by_key() if store is not None else {}
    if ws is None:
        if store is None:
            return [], None
        out = []
        outputs: dict[str, list[str]] = {}
        for o in store.all_outputs().values():
            outputs.setdefault(o.key, []).append(o.path)
        for rec in store.all_renders():
            paths = outputs.get(rec.key, [])
            out.append(JobStatus(rec.name or rec.key, rec.manifest, paths[0] if paths else None, rec, any(Path(p).exists() for p in paths), cost=costs.get(rec.key), shot=rec.name or rec.key))
        return out, store
    jobs = [j for m in chain.resolved(ws.manifests, store) for j in m.jobs]  # chained shots by their frames
    records = store.get_many(j.key for j in jobs) if store else {}
    held = store.all_outputs() if store else {}
    other_keys = {h.key for j in jobs if (h := held.get(str(j.output))) is not None and h.key != j.key}
    others = store.get_many(other_keys) if store and other_keys else {}
    decided = {str(m.path): picks.load(m.path, m.jobs) for m in ws.manifests}
    stale = chain.stale_picks(jobs, store)
    statuses = []
    for j in jobs:
        rec_held = held.get(str(j.output))
        other = others.get(rec_held.key) if rec_held is not None else None
        pick = decided[str(j.manifest)].status(j.shot, j.take) if str(j.manifest) in decided else ""
        statuses.append(JobStatus(j.name, str(j.manifest), str(j.output), records.get(j.key), j.output.exists(), rec_held, j.key, other.prompt if other else None, costs.get(j.key), shot=j.shot, take=j.take, pick=pick, pick_stale=stale.get(chain.job_id(j), "")))
    return statuses, store


@dataclass
class GcResult:
    """What :func:`gc` dropped (or, with ``dry_run``, would drop) and which files it left alone.

    ``deleted`` are the orphans' output files removed (or to remove) with ``delete_outputs``;
    ``skipped`` pairs each file gc would not delete with why: it no longer holds the video
    vidbatch recorded there (edited, replaced, or written by someone else), or it is a take a
    person picked. ``cached`` are files
    vidbatch derived from videos and no longer needs (see :func:`gc`), removed (or to remove)."""

    orphans: list[Orphan]
    deleted: list[str]
    skipped: list[tuple[str, str]]
    dry_run: bool = False
    cached: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        """Whether gc has anything to do (drop an orphan or delete a file)."""
        return bool(self.orphans or self.cached)


def cancel(ws: Workspace, client: Any, *, names: Sequence[str] = ()) -> list[Any]:
    """Cancel the queued MiniMax-H3 tasks of the workspace's jobs (only ``names`` when given;
    UsageError for a name no job has): a list of :class:`~vidbatch.runner.CancelOutcome`. A
    running task is not cancellable and is left to finish. When no run holds the state folder
    each cancel is recorded now; else that run records it at its next poll."""
    from .runner import cancel_jobs

    jobs = ws.jobs
    if names:
        unknown = [n for n in dict.fromkeys(names) if n not in {j.name for j in jobs}]
        if unknown:
            raise UsageError(f"--job names no job of the manifests: {', '.join(unknown)}; nothing was cancelled")
        jobs = [j for j in jobs if j.name in set(names)]
    if not Store.exists(ws.state_dir):
        return cancel_jobs(None, client, jobs, record=False)
    store = Store(ws.state_dir)
    try:
        try:
            with store.run_lock():
                return cancel_jobs(store, client, jobs, record=True)
        except StateLockedError:
            return cancel_jobs(store, client, jobs, record=False)
    finally:
        store.close()


def gc(ws: Workspace, *, delete_outputs: bool = False, dry_run: bool = False, confirm: Callable[[GcResult], bool] | None = None) -> GcResult:
    """Drop orphans: state that no job of these manifests wants any more (a content key a job
    still wants is never an orphan, whatever paths say). With ``delete_outputs``, also delete an
    orphan's output file, but only while it still holds the recorded video (size and SHA-256
    match); any other file is kept and listed in ``skipped``.

    Cached files derived from videos are deleted too once nothing needs them (``cached``, see
    :func:`_unneeded_cache`): chained shots' frames (``frames/`` beside outputs) and the report's
    posters and contact sheets (``posters/`` in an output folder, beside a manifest, or in the
    review page's folder). One is kept while its video is still recorded at an output (a job's,
    or another manifest's of the same state) or a cut, a job's request uses it, or a sequence's
    cut or current takes need it. Only files named as vidbatch names them are considered.

    ``confirm`` is asked with what would be done before anything is; returning False (or
    ``dry_run``) changes nothing. The run lock is held throughout (exit 4 if a run holds it)."""
    if not Store.exists(ws.state_dir):
        return GcResult([], [], [], dry_run)
    store = Store(ws.state_dir)
    try:
        with store.run_lock():
            manifests = chain.resolved(ws.manifests, store)  # a chained shot's render is wanted too
            orphans = plan_jobs(manifests, store).orphans
            wanted = {j.key for m in manifests for j in m.jobs}
            orphans = [o for o in orphans if o.key not in wanted]  # the rule, held here too
            deleted: list[str] = []
            skipped: list[tuple[str, str]] = []
            recorded = store.all_outputs()
            if delete_outputs:
                picked = _picked_takes(manifests)
                for o in orphans:
                    if not o.path or not Path(o.path).exists():
                        continue
                    why = picked.get(o.name or "") or _not_the_recorded_video(Path(o.path), recorded.get(o.path))
                    if why:
                        skipped.append((o.path, why))
                    else:
                        deleted.append(o.path)
            cached = _unneeded_cache(manifests, store, recorded, orphans)
            result = GcResult(orphans, deleted, skipped, dry_run, cached)
            if not result.changes or dry_run:
                return result
            if confirm is not None and not confirm(result):
                result.dry_run = True  # declined: nothing was changed
                return result
            # a render whose video still lies at a path a job writes (the earlier version of an
            # edited job) keeps its row: it is what makes undoing the edit free; so does one still
            # recorded at an output gc keeps (another manifest's copy of the same request)
            job_paths = {str(j.output) for m in manifests for j in m.jobs}
            dropped = {o.path for o in orphans if o.path}
            in_use = {out.key for out in recorded.values() if out.path in job_paths or out.path not in dropped}
            if orphans:
                store.forget(keys=[o.key for o in orphans if o.key not in in_use], paths=[o.path for o in orphans if o.path])
            for p in deleted + cached:
                Path(p).unlink(missing_ok=True)
            return result
    except StateLockedError as e:  # a run holds the lock; gc has no --wait to offer
        raise StateLockedError(e.lock_path, "wait for it to finish, then run gc again") from None
    finally:
        store.close()


#: How vidbatch names what it derives from videos: a chained shot's frame
#: (:func:`vidbatch.chain.frame_path`), a poster (:func:`vidbatch.media.poster_file`) and a
#: contact sheet (:func:`vidbatch.media.sheet_file_name`). Any other file there is never touched.
_FRAME_NAME = re.compile(r".+@.+\.([0-9a-f]{16})\.png")
_POSTER_NAME = re.compile(r"([0-9a-f]{64})\.png")
_SHEET_NAME = re.compile(r"sheet-[0-9a-f]{32}\.png")


def _unneeded_cache(manifests: Sequence[Any], store: Store, recorded: Mapping[str, OutputRecord], orphans: Sequence[Orphan]) -> list[str]:
    """The frames, posters and contact sheets (see :func:`gc`) that nothing needs once
    ``orphans`` are dropped. ``manifests`` are resolved (:func:`vidbatch.chain.resolved`)."""
    jobs = [j for m in manifests for j in m.jobs]
    job_paths = {str(j.output) for j in jobs}
    dropping = {o.path for o in orphans if o.path}
    # the videos still recorded once the orphans are gone; a job's output always counts
    videos = {rec.sha256 for path, rec in recorded.items() if (path not in dropping or path in job_paths) and rec.sha256}
    sheets: set[str] = set()
    for m in manifests:
        if not m.sequences:
            continue
        takes, chosen = chain.takes_and_picks(m.path, m.jobs)
        for sequence in m.sequences:
            cut = store.cut(sequence.output)
            if cut is not None:
                videos.add(cut.sha256)
                sheets.add(media.sheet_file_name(cut.inputs))
            clips = [chain.source_of(shot, takes, chosen) for shot in sequence.shots]
            held = [None if isinstance(c, str) else recorded.get(str(c.output)) for c in clips]
            if all(h is not None and not isinstance(c, str) and h.key == c.key for c, h in zip(clips, held)):
                sheets.add(media.sheet_file_name([h.sha256 for h in held if h is not None]))
    used = {ref.path for j in jobs for ref in image_refs(j.request) if ref.path is not None}
    frame_dirs = {Path(j.output).parent / chain.FRAMES_FOLDER for j in jobs} | {Path(p).parent / chain.FRAMES_FOLDER for p in dropping}
    poster_dirs = {Path(m.output_dir) / media.POSTERS_FOLDER for m in manifests} | {Path(m.path).parent / media.POSTERS_FOLDER for m in manifests}
    if manifests:  # the review page's folder (vidbatch.review): every output and manifest lies below it
        import os

        poster_dirs.add(Path(os.path.commonpath([str(m.output_dir) for m in manifests] + [str(Path(m.path).parent) for m in manifests])) / media.POSTERS_FOLDER)
    short = {v[:16] for v in videos}
    unneeded: list[str] = []
    for path in _files_in(frame_dirs):
        found = _FRAME_NAME.fullmatch(path.name)
        if found and found.group(1) not in short and path not in used:
            unneeded.append(str(path))
    for path in _files_in(poster_dirs):
        poster = _POSTER_NAME.fullmatch(path.name)
        if (poster and poster.group(1) not in videos) or (_SHEET_NAME.fullmatch(path.name) and path.name not in sheets):
            unneeded.append(str(path))
    return unneeded


def _files_in(folders: Iterable[Path]) -> list[Path]:
    """The regular files (not links) directly in ``folders``, sorted, once each."""
    found: set[Path] = set()
    for folder in folders:
        try:
            found.update(p for p in folder.iterdir() if p.is_file() and not p.is_symlink())
        except OSError:  # no such folder (nothing derived there yet)
            continue
    return sorted(found)


def _picked_takes(manifests: Sequence[Any]) -> dict[str, str]:
    """Why gc keeps the file of a take a person picked, by the take's job name (``shot`` or
    ``shot.takeN``): a shot whose takes were lowered leaves its extra takes orphans, and the
    picked one among them is a person's choice that raising takes again should find."""
    kept: dict[str, str] = {}
    for m in manifests:
        chosen = picks.load(m.path)
        for shot, entry in chosen.shots.items():
            if entry.pick is not None:
                name = shot if entry.pick == 1 else f"{shot}.take{entry.pick}"
                kept[name] = f"the picked take of {shot} in {chosen.path.name} (clear the pick to let gc delete it)"
    return kept


def _not_the_recorded_video(path: Path, out: OutputRecord | None) -> str:
    """Why ``path`` must not be deleted as the orphan's video, or "" when it is that video."""
    if out is None:
        return "no record of what it holds"
    try:
        size = path.stat().st_size
        if size != out.size or sha256_file(path) != out.sha256:
            return "it no longer holds the recorded video (changed since vidbatch wrote it)"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return ""


def _check_force(ws: Workspace, force: Sequence[str]) -> None:
    if not force:
        return
    from .session import check_force

    check_force(ws.jobs, force, "the manifest")
