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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import UsageError
from .plan import Plan, plan_jobs
from .runner import RunEvent, RunOptions, RunResult
from .session import Session, check_force
from .state import OutputRecord, RenderRecord, Store, default_state_dir

SIM_SUFFIX = "-sim"


@dataclass
class Workspace:
    manifests: list[Any]  # vidbatch.manifest.Manifest
    state_dir: Path
    #: runs against the bundled simulator (``--sim``): state and outputs of their own
    sim: bool = False

    @property
    def jobs(self) -> list[Any]:
        return [job for m in self.manifests for job in m.jobs]


def load(paths: Sequence[str | Path], *, variables: Mapping[str, str] | None = None, state_dir: str | Path | None = None, sim: bool = False) -> Workspace:
    """Load and validate manifests (raises ManifestError, exit 2) and find their state folder.
    A folder stands for its manifests, as in watch mode; the state folder is beside the first
    manifest, or in the first folder."""
    from .manifest import load_manifests

    if not paths:
        raise UsageError("name at least one manifest")
    first = Path(paths[0]).expanduser().resolve()
    manifests = load_manifests(manifest_paths(paths), variables=variables)
    folder = state_folder(first if first.is_dir() else first.parent, state_dir=state_dir, sim=sim)
    if sim:
        for m in manifests:
            sim_dir = m.output_dir.with_name(m.output_dir.name + SIM_SUFFIX)
            for job in m.jobs:
                job.output = sim_dir / job.output.relative_to(m.output_dir)
            m.output_dir = sim_dir
    return Workspace(manifests, folder, sim=sim)


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
        return plan_jobs(ws.manifests, store, retry_failed=retry_failed, force=force, resubmit_uncertain=resubmit_uncertain)
    finally:
        if store:
            store.close()


def run(
    ws: Workspace,
    client: Any,
    options: RunOptions = RunOptions(),
    *,
    on_event: Callable[[RunEvent], None] | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    wait_for_lock: bool = False,
) -> RunResult:
    """Plan and carry out the plan, holding the state folder's run lock throughout.

    ``confirm`` is asked before anything is created when the plan has billable renders; returning
    False ends the run with nothing sent.
    """
    _check_force(ws, options.force)
    with Session(ws.state_dir, client, options, on_event, wait_for_lock=wait_for_lock) as session:
        the_plan = session.plan(ws.manifests)
        refusal = session.admit(the_plan, confirm)
        if refusal is not None:
            raise UsageError(refusal.reason)
        session.clean_staging(ws.manifests)
        return session.run(the_plan)


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
        }


def status(ws: Workspace | None, state_dir: Path) -> tuple[list[JobStatus], Store | None]:
    """Every job's recorded state: the manifest's jobs when given, else everything in the state.
    The caller closes the returned store."""
    store = Store.open_for_reading(state_dir)
    if ws is None:
        if store is None:
            return [], None
        out = []
        outputs: dict[str, list[str]] = {}
        for o in store.all_outputs().values():
            outputs.setdefault(o.key, []).append(o.path)
        for rec in store.all_renders():
            paths = outputs.get(rec.key, [])
            out.append(JobStatus(rec.name or rec.key, rec.manifest, paths[0] if paths else None, rec, any(Path(p).exists() for p in paths)))
        return out, store
    records = store.get_many(j.key for j in ws.jobs) if store else {}
    held = store.all_outputs() if store else {}
    other_keys = {h.key for j in ws.jobs if (h := held.get(str(j.output))) is not None and h.key != j.key}
    others = store.get_many(other_keys) if store and other_keys else {}
    statuses = []
    for j in ws.jobs:
        rec_held = held.get(str(j.output))
        other = others.get(rec_held.key) if rec_held is not None else None
        statuses.append(JobStatus(j.name, str(j.manifest), str(j.output), records.get(j.key), j.output.exists(), rec_held, j.key, other.prompt if other else None))
    return statuses, store


def gc(ws: Workspace, *, delete_outputs: bool = False, dry_run: bool = False) -> list[Any]:
    """Drop orphans (state no job of these manifests produces any more); delete their output
    files only with ``delete_outputs``. Returns the orphans."""
    if not Store.exists(ws.state_dir):
        return []
    store = Store(ws.state_dir)
    try:
        with store.run_lock():
            orphans = plan_jobs(ws.manifests, store).orphans
            if dry_run:
                return orphans
            live_keys = {j.key for j in ws.jobs}
            keys = [o.key for o in orphans if o.key not in live_keys]
            paths = [o.path for o in orphans if o.path]
            store.forget(keys=keys, paths=paths)
            if delete_outputs:
                for p in paths:
                    Path(p).unlink(missing_ok=True)
            return orphans
    finally:
        store.close()


def _check_force(ws: Workspace, force: Sequence[str]) -> None:
    check_force(ws.jobs, force, "the manifest")
