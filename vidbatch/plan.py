"""Plans: what a run would do for each job of a manifest, and why. No network, no writes.

Each job gets one :class:`Action`, decided from three facts: the job's content key (its request),
the state row of that key, and the output file with its record. In order:

1. ``--force`` names the job: ``resubmit`` (or ``resume`` if a forced render is already running).
2. The key's task is running: ``resume`` (poll it; never create another).
3. The key's create was cut off: ``uncertain`` (see :mod:`vidbatch.runner` for what happens).
4. The output file holds this key's video and verifies (size; sha256 when size or mtime moved):
   ``skip``. A file with no record that matches the key's rendered video is adopted: ``skip``.
5. The key was rendered: ``reuse`` a verified copy at another path, else ``download`` it again.
   An output whose video is missing or damaged is given back *the video it held*: when a forced
   re-render gave its key a newer video since, a verified copy of the old one (same sha256) is
   copied, or the old file id downloaded (the state keeps every video of a key), never the
   newest one silently.
6. The key failed: ``failed`` (``submit`` with ``--retry-failed``). MiniMax no longer has the
   key's task or file (``gone``): ``gone``, never paid for silently (``--force NAME`` renders it
   again).
7. Otherwise ``submit`` (new) or ``resubmit`` (the output holds an older request; the changed
   fields are listed).

A lost or rebuilt state (or another state folder sharing the outputs) pays for nothing finished:
a file with no record whose folder's index (:mod:`vidbatch.outputs_index`) says it holds the job's
key, and whose size and sha256 match the entry, is adopted (``skip``).

Jobs of one plan whose requests are identical share one render: the first keeps its ``submit``,
the others become ``reuse`` *after* it (``PlannedJob.after`` names it), so the plan counts one
billable render, as the run will create one and copy it.

Verification hashes only when size or mtime changed, so a no-op plan of 10,000 finished jobs is
10,000 ``stat`` calls and one query per 500 keys.
"""

from __future__ import annotations

import difflib
import enum
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from . import facts, outputs_index, rules
from .files import sha256_file
from .outputs_index import IndexEntry
from .state import OutputRecord, RenderRecord, RenderState, Store, VideoRecord

if TYPE_CHECKING:  # pragma: no cover
    from .manifest import Job, Manifest


class Action(str, enum.Enum):
    SUBMIT = "submit"
    RESUBMIT = "resubmit"
    SKIP = "skip"
    RESUME = "resume"
    DOWNLOAD = "download"
    REUSE = "reuse"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    GONE = "gone"  # MiniMax no longer has the task or file; --force NAME renders it again
    #: a chained shot whose source renders (or downloads) first in this run (vidbatch.chain)
    WAIT = "wait"
    #: a chained shot whose source cannot give its frame in this run (failed, no pick...)
    BLOCKED = "blocked"


#: Actions that create a render, i.e. cost money. A chained shot that waits for its source is
#: counted: a new frame makes it a new request (what the plan would cost if everything upstream
#: changes: an upper bound, which the bill says).
BILLABLE = frozenset({Action.SUBMIT, Action.RESUBMIT, Action.WAIT})


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any

    def describe(self) -> str:
        if isinstance(self.before, str) and isinstance(self.after, str) and max(len(self.before), len(self.after)) > 60:
            return f"{self.field}: {word_diff(self.before, self.after)}"
        return f"{self.field}: {_short(self.before)} -> {_short(self.after)}"


@dataclass
class PlannedJob:
    job: "Job"
    action: Action
    reason: str
    record: RenderRecord | None = None
    changes: list[FieldChange] = field(default_factory=list)
    source: OutputRecord | None = None  # reuse: the verified copy to copy from
    output: OutputRecord | None = None  # the record of the file at job.output, if any
    new_mtime_ns: int | None = None  # skip: the file was re-hashed and found intact at this mtime
    adopt: bool = False  # skip: the file matched but had no record yet; the run records it
    after: str | None = None  # reuse: the job of this plan whose render it copies once downloaded
    #: reuse/download: give the output back this earlier video of its key (not the newest)
    restore: VideoRecord | None = None
    #: skip (adopt): the outputs index entry the file was verified against (no state record)
    indexed: IndexEntry | None = None

    @property
    def billable(self) -> bool:
        return self.action in BILLABLE

    def to_json(self, cwd: Path | None = None) -> dict[str, Any]:
        job = self.job
        return {
            "name": job.name,
            "shot": job.shot,
            "take": job.take,
            "manifest": display_path(job.manifest, cwd),
            "action": self.action.value,
            "reason": self.reason,
            "model": job.request.get("model"),
            "mode": job.mode.value,
            "prompt": job.request.get("prompt"),
            "output": display_path(job.output, cwd),
            "key": job.key,
            "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in self.changes],
            "task_id": self.record.task_id if self.record else None,
            "after": self.after,
            "restore": {"sha256": self.restore.sha256, "file_id": self.restore.file_id} if self.restore else None,
        }


def by_shot(items: Iterable[Any], job: Callable[[Any], "Job"] = lambda x: x) -> list[tuple[str | None, list[Any]]]:
    """``items`` (jobs, or anything ``job`` maps to one) grouped by shot, each group where its
    first take is: ``(shot, takes)`` for a shot with several takes, ``(None, [item])`` for a
    one-take job. How plan, status and the report list takes under their shot."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for item in items:
        j = job(item)
        groups.setdefault((str(j.manifest), j.shot), []).append(item)
    return [(shot, group) if len(group) > 1 else (None, group) for (_, shot), group in groups.items()]


@dataclass
class Orphan:
    """Something the state knows that no job of the planned manifests produces any more."""

    key: str
    name: str | None
    state: str | None
    path: str | None  # an output file recorded for it, if any

    def to_json(self, cwd: Path | None = None) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "state": self.state, "path": display_path(Path(self.path), cwd) if self.path else None}


@dataclass
class Plan:
    jobs: list[PlannedJob]
    orphans: list[Orphan]
    #: the manifests' sequences joined into cuts: local steps, no API call (vidbatch.cuts.PlannedCut)
    cuts: list[Any] = field(default_factory=list)
    #: what is wrong but changes nothing planned, in words (a pick of a shot no longer there)
    warnings: list[str] = field(default_factory=list)
    #: manifests planned to nothing (watch mode: deleted or renamed away): their work not yet
    #: created is dropped, as an edit's would be
    gone: list[Path] = field(default_factory=list)

    @property
    def manifests(self) -> set[Path]:
        """The manifests whose work this plan replaces: those of its jobs, and the gone ones."""
        return {p.job.manifest for p in self.jobs} | set(self.gone)

    @property
    def up_to_date(self) -> bool:
        return all(p.action is Action.SKIP for p in self.jobs) and all(c.up_to_date for c in self.cuts)

    @property
    def billable(self) -> list[PlannedJob]:
        return [p for p in self.jobs if p.billable]

    def summary(self) -> dict[str, Any]:
        actions = Counter(p.action.value for p in self.jobs)
        renders: Counter[tuple[str, str, str | None, int | None]] = Counter()
        for p in self.billable:
            s = rules.summarize(p.job.identity_request())
            renders[(s.model, s.mode.value, s.resolution, s.duration)] += 1
        return {
            "jobs": len(self.jobs),
            "actions": {a.value: actions.get(a.value, 0) for a in Action if actions.get(a.value)},
            "billable": sum(renders.values()),
            "renders": [
                {"model": m, "mode": mode, "resolution": r, "duration": d, "count": n}
                for (m, mode, r, d), n in sorted(renders.items(), key=lambda kv: (-kv[1], str(kv[0])))
            ],
            "orphans": len(self.orphans),
            **({"cuts": dict(Counter(c.action.value for c in self.cuts))} if self.cuts else {}),
            "up_to_date": self.up_to_date,
        }

    def to_json(self, cwd: Path | None = None) -> dict[str, Any]:
        return {
            "jobs": [p.to_json(cwd) for p in self.jobs],
            "orphans": [o.to_json(cwd) for o in self.orphans],
            **({"cuts": [c.to_json(cwd) for c in self.cuts]} if self.cuts else {}),
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            "summary": self.summary(),
        }


def verify_output(path: Path, record: OutputRecord) -> tuple[bool, str]:
    """Is the file at ``path`` still the video ``record`` says it holds? Hashes only when the
    size or mtime moved. Returns (ok, why-not)."""
    ok, why, _ = _verify(path, record)
    return ok, why


def _verify(path: Path, record: OutputRecord) -> tuple[bool, str, int | None]:
    """verify_output, plus the file's mtime when it had to be re-hashed (and was intact)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False, "output file is missing", None
    except OSError as e:
        return False, f"output file cannot be read ({e.strerror})", None
    if st.st_size != record.size:
        return False, f"output file is damaged or replaced (size {st.st_size}, expected {record.size})", None
    if st.st_mtime_ns == record.mtime_ns:
        return True, "", None
    if sha256_file(path) != record.sha256:
        return False, "output file content changed (sha256 differs from the rendered video)", None
    return True, "", st.st_mtime_ns


def _matches_video(path: Path, record: RenderRecord) -> bool:
    """An unrecorded file that is byte-for-byte the key's rendered video (e.g. state was rebuilt)."""
    if not record.video_sha256 or not record.video_bytes:
        return False
    try:
        if path.stat().st_size != record.video_bytes:
            return False
    except OSError:
        return False
    return sha256_file(path) == record.video_sha256


def _verified_copy(path: Path, key: str, outputs_by_key: dict[str, list[OutputRecord]], sha256: str | None = None) -> OutputRecord | None:
    """A verified output of ``key`` at another path; of that very video when ``sha256`` is given
    (a key has several videos once it was forced)."""
    for other in outputs_by_key.get(key, []):
        if sha256 is not None and other.sha256 != sha256:
            continue
        if Path(other.path) != path and verify_output(Path(other.path), other)[0]:
            return other
    return None


def _indexed(path: Path, key: str, indexes: dict[Path, dict[str, IndexEntry]]) -> IndexEntry | None:
    """The outputs index entry saying the unrecorded file at ``path`` holds ``key``'s video,
    when the file's size and sha256 prove it. ``indexes`` caches each folder's index."""
    if path.parent not in indexes:
        indexes[path.parent] = outputs_index.read_index(path.parent)
    entry = indexes[path.parent].get(path.name)
    if entry is None or entry.key != key:
        return None
    try:
        if path.stat().st_size != entry.bytes:
            return None
    except OSError:
        return None
    return entry if sha256_file(path) == entry.sha256 else None


def diff_requests(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    changes = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append(FieldChange(name, before.get(name), after.get(name)))
    return changes


def plan_jobs(
    manifests: Sequence["Manifest"],
    store: Store | None,
    *,
    retry_failed: bool = False,
    force: Iterable[str] = (),
    resubmit_uncertain: bool = False,
) -> Plan:
    """The plan for every job of ``manifests`` against ``store`` (None: nothing rendered yet)."""
    jobs = [job for m in manifests for job in m.jobs]
    force = set(force)
    records = store.get_many(j.key for j in jobs) if store else {}
    if store and any(r.state is RenderState.SUBMITTING for r in records.values()):
        # a create answered before a crash, its task id kept in the journal: the start of the
        # next run commits it (Store.replay_journal), so it is collected, never created again
        for key, (_, task_id) in store.journaled().items():
            if key in records:
                records[key] = replace(records[key], state=RenderState.RUNNING, task_id=task_id)
    outputs = store.all_outputs() if store else {}
    outputs_by_key: dict[str, list[OutputRecord]] = {}
    for rec in outputs.values():
        outputs_by_key.setdefault(rec.key, []).append(rec)
    old_records = store.get_many({o.key for o in (outputs.get(str(j.output)) for j in jobs) if o} - set(records)) if store else {}
    all_records = {**old_records, **records}

    def videos(key: str) -> list[VideoRecord]:
        return store.videos(key) if store else []

    indexes: dict[Path, dict[str, IndexEntry]] = {}
    planned = []
    for job in jobs:
        out = outputs.get(str(job.output))
        pj = _plan_one(job, records.get(job.key), out, outputs_by_key, all_records, job.name in force, retry_failed, resubmit_uncertain, videos, indexes)
        pj.output = out
        planned.append(pj)
    _share_identical(planned)
    return Plan(planned, _orphans(manifests, jobs, store, outputs) if store else [])


def _plan_one(
    job: "Job",
    rec: RenderRecord | None,
    out: OutputRecord | None,
    outputs_by_key: dict[str, list[OutputRecord]],
    records: dict[str, RenderRecord],
    forced: bool,
    retry_failed: bool,
    resubmit_uncertain: bool,
    videos: Callable[[str], list[VideoRecord]] = lambda key: [],
    indexes: dict[Path, dict[str, IndexEntry]] | None = None,
) -> PlannedJob:
    path = job.output
    state = rec.state if rec else None

    if rec is not None and rec.state is RenderState.RUNNING:
        return PlannedJob(job, Action.RESUME, f"task {rec.task_id} is rendering; poll it", rec)
    if forced:
        return PlannedJob(job, Action.RESUBMIT, "forced with --force", rec)
    if state in (RenderState.SUBMITTING, RenderState.UNCERTAIN):
        if resubmit_uncertain:
            return PlannedJob(job, Action.SUBMIT, "create was cut off; submitting again (--resubmit-uncertain)", rec)
        if state is RenderState.SUBMITTING and job.api is facts.Api.V2:  # settled by the runner (runner.py)
            return PlannedJob(job, Action.UNCERTAIN, "a create was cut off before its answer: the run asks MiniMax's task list whether it made the task", rec)
        return PlannedJob(job, Action.UNCERTAIN, "a create was cut off before its answer: MiniMax may have a task for it", rec)

    damage = ""
    if out is not None and out.key == job.key:
        ok, damage, moved = _verify(path, out)
        if ok:
            return PlannedJob(job, Action.SKIP, "output is up to date", rec, new_mtime_ns=moved)
    elif out is None and rec is not None and path.exists() and _matches_video(path, rec):
        return PlannedJob(job, Action.SKIP, "output matches the rendered video", rec, adopt=True)
    if out is None and state in (None, RenderState.NEW, RenderState.GONE, RenderState.FAILED) and path.exists():
        entry = _indexed(path, job.key, {} if indexes is None else indexes)
        if entry is not None:
            return PlannedJob(job, Action.SKIP, "output holds this job's video (verified against its folder's index); adopted, no new render", rec, adopt=True, indexed=entry)

    if out is not None and out.key == job.key and rec is not None and rec.video_sha256 and out.sha256 != rec.video_sha256:
        restored = _restore(job, rec, out, damage, outputs_by_key, videos)
        if restored is not None:
            return restored

    if rec is not None and state in (RenderState.DONE, RenderState.RENDERED, RenderState.GONE):
        copy = _verified_copy(path, job.key, outputs_by_key, rec.video_sha256 if rec.video_sha256 else None) or _verified_copy(path, job.key, outputs_by_key)
        if copy is not None:
            return PlannedJob(job, Action.REUSE, f"identical request already rendered as {copy.name or copy.path}", rec, source=copy)
        if rec.file_id and state is not RenderState.GONE:
            if out is not None and out.key != job.key and path.exists():
                why = f"output holds another version of this job (rendered for {out.name or 'an earlier request'})"
            else:
                why = damage or ("output file is missing" if state is RenderState.DONE else "rendered; not downloaded yet")
            return PlannedJob(job, Action.DOWNLOAD, f"{why}: download again, no new render", rec)

    if rec is not None and state is RenderState.GONE:
        task = rec.task_id or "of this job"
        return PlannedJob(job, Action.GONE, f"MiniMax no longer has task {task} (expired or another account); render it again with --force {job.name}", rec)
    if rec is not None and state is RenderState.FAILED and not retry_failed:
        return PlannedJob(job, Action.FAILED, f"failed: {rec.error or 'no message'} (retry with --retry-failed)", rec)

    if out is not None and out.key != job.key:
        old = records.get(out.key)
        changes = diff_requests(old.request, job.display_request()) if old else []
        what = ", ".join(c.field for c in changes) or "request"
        return PlannedJob(job, Action.RESUBMIT, f"{what} changed since {out.name or 'the output'} was rendered", rec, changes=changes)
    if rec is not None and state is RenderState.FAILED:
        return PlannedJob(job, Action.SUBMIT, f"retrying failed job (was: {rec.error or 'no message'})", rec)
    note = "; the file now at the output path will be replaced" if path.exists() else ""
    return PlannedJob(job, Action.SUBMIT, f"never rendered{note}", rec)


def _restore(job: "Job", rec: RenderRecord, out: OutputRecord, damage: str, outputs_by_key: dict[str, list[OutputRecord]], videos: Callable[[str], list[VideoRecord]]) -> PlannedJob | None:
    """The output held an earlier video of its key than the newest (the key was forced since):
    give it back that video, from a verified copy or by its file id. None: that video is no
    longer known, so the newest is the only one to give."""
    copy = _verified_copy(job.output, job.key, outputs_by_key, out.sha256)
    held = next((v for v in videos(job.key) if v.sha256 == out.sha256), None)
    if held is None:
        held = VideoRecord(job.key, None, None, out.sha256, out.size)
    why = damage or "output file is missing"
    if copy is not None:
        return PlannedJob(job, Action.REUSE, f"{why}: copying back the video it held from {copy.name or copy.path}", rec, source=copy, restore=held)
    if held.file_id:
        return PlannedJob(job, Action.DOWNLOAD, f"{why}: downloading again the video it held (file {held.file_id}, task {held.task_id}), no new render", rec, restore=held)
    return None


def _share_identical(planned: list[PlannedJob]) -> None:
    """Later billable jobs with the request of an earlier one copy its render: one create."""
    leads: dict[str, PlannedJob] = {}
    for pj in planned:
        if not pj.billable:
            continue
        lead = leads.setdefault(pj.job.key, pj)
        if lead is not pj:
            pj.action = Action.REUSE
            pj.reason = f"identical request to {lead.job.name}: copied once it renders, no second render"
            pj.after = lead.job.name
            pj.changes = []


def _orphans(manifests: Sequence["Manifest"], jobs: list["Job"], store: Store, outputs: dict[str, OutputRecord]) -> list[Orphan]:
    """What these manifests once produced and no job wants now: output files at paths no job
    writes holding a video no job wants, and renders no job wants whose job name is gone. The earlier render of a job that is still there (an
    edited prompt) is not an orphan: it is the cache that makes undoing the edit free."""
    manifest_paths = {str(m.path) for m in manifests}
    keys = {j.key for j in jobs}
    names = {j.name for j in jobs}
    paths = {str(j.output) for j in jobs}
    summaries = {key: (name, state, manifest) for key, name, state, manifest in store.render_summaries()}
    orphans: list[Orphan] = []
    listed: set[str] = set()
    for out in outputs.values():
        # a file whose video a job still wants is never an orphan, wherever it lies: paths that
        # disagree with the recorded ones (a moved output_dir, another --state) must not make gc
        # delete paid renders
        if out.manifest in manifest_paths and out.path not in paths and out.key not in keys:
            name, state, owner = summaries.get(out.key, (None, None, None))
            if owner is not None and owner not in manifest_paths:
                continue  # another manifest's job planned this render since (a job moved there)
            orphans.append(Orphan(out.key, out.name or name, state, out.path))
            listed.add(out.key)
    in_use = {out.key for out in outputs.values() if out.path in paths}
    for key, (name, state, manifest) in summaries.items():
        if manifest in manifest_paths and key not in keys and key not in listed and key not in in_use and name not in names:
            orphans.append(Orphan(key, name, state, None))
    return orphans


def word_diff(before: str, after: str, context: int = 4) -> str:
    """The part of a long text that changed, word by word, with a few words around it:
    ``...a red fox [trots -> runs] through the forest...``. Two truncated strings that look the
    same tell a reader nothing."""
    a, b = before.split(), after.split()
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops:  # only whitespace moved
        return "whitespace changed"
    i1, j1 = ops[0][1], ops[0][3]
    i2, j2 = ops[-1][2], ops[-1][4]
    head = a[max(0, i1 - context):i1]
    tail = a[i2:i2 + context]
    old, new = " ".join(a[i1:i2]) or "(nothing)", " ".join(b[j1:j2]) or "(nothing)"
    old, new = (_clip(old), _clip(new))
    text = " ".join([*head, f"[{old} -> {new}]", *tail])
    return ("..." if i1 > context else "") + text + ("..." if i2 + context < len(a) else "")


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width // 2 - 2] + " ... " + text[-(width // 2 - 3):]


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, dict) and "sha256" in value:
        value = f"{value.get('path')} (sha256 {str(value['sha256'])[:12]})"
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= width else text[: width - 3] + '..."'


def display_path(path: Path, cwd: Path | None) -> str:
    """``path`` relative to ``cwd`` when it lies under it (as plans and cuts print it), else whole."""
    if cwd is None:
        return str(path)
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)
