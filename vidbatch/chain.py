"""Chained shots: a job whose image is a frame of another job's video, planned as a graph.

A manifest writes ``first_frame_image = "frame:shot-02"`` (see :mod:`vidbatch.manifest.frames`
for the syntax; the loader has already refused unknown jobs and cycles). Such a job's request is
complete only once ``shot-02``'s video exists, so its identity cannot be known at load time. This
module finishes it against the state:

1. **Resolve** (:func:`resolve`), jobs in dependency order. A frame can be taken when its source
   (the picked, or only, take of the shot) is itself resolved and its output file verifiably holds
   the source's current video (the state's output record, checked as ``plan`` checks a ``skip``).
   The frame is decoded from that file (:func:`vidbatch.media.extract_frame`: full size, RGB,
   deterministic PNG bytes), checked against the API's image rules, and kept beside the outputs
   as ``frames/<source>@<where>.<first 16 hex of the video's sha256>.png``. The file name carries
   the video's hash, so a frame is extracted once per video and re-read after (plan, status and
   report never decode again; a newer FFmpeg that converted colours differently cannot change
   the frame of a video already chained, and so cannot make its dependents render again). The
   dependent job becomes a copy whose image points at that PNG, with its key computed from the
   PNG's bytes (:mod:`vidbatch.identity`): re-rendering or re-picking the source gives another
   frame and so another key (the dependent is stale); an unchanged source gives the same key
   (nothing to pay).
2. **Plan** (:func:`plan`): the resolved jobs are planned as any job (:func:`vidbatch.plan.plan_jobs`).
   A source whose output is not in place but that the plan gives back without a render (a
   download or copy of a video the state knows: its file deleted, an edit undone) *promises* that
   video: a frame kept from it resolves its dependents, and the plan is made again, until no new
   promise appears (so a chain of restores bills nothing). A job that still cannot be resolved
   *waits* (``Action.WAIT``: its source renders or downloads in this run first; counted on the
   bill, as if the source changes its frame: the bill is then an upper bound) or is *blocked*
   (``Action.BLOCKED``: its source failed, is uncertain, is gone, has several takes and no pick,
   its picked take rendered again since it was picked (:func:`repicked`), or is blocked itself;
   the reason names it). Jobs come out in dependency order.

A frame that breaks the image rules, or a time past the end of the source, is a manifest problem:
``plan`` and ``run`` raise :class:`~vidbatch.errors.ManifestError` (exit 2) before any call when
it is known at plan time; mid-run, the runner's dependency step (:func:`plan` with ``only``)
fails the dependent locally, without a call.

Only ``run`` writes frame files (``write=True``, under the run lock); ``plan`` decodes a frame it
has no file for into memory and writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from . import facts, images, media, picks
from .errors import ManifestError, ManifestProblem, MediaError
from .files import write_bytes
from .identity import content_key
from .manifest import frames
from .manifest.model import ImageRef, Job, Manifest, map_images
from .plan import Action, Plan, PlannedJob, plan_jobs, verify_output
from .state import OutputRecord, RenderState, Store

log = logging.getLogger(__name__)

#: The folder, beside a source's output, that keeps the frames taken from it.
FRAMES_FOLDER = "frames"

#: A job as a plan knows it: its manifest (path as text) and its name.
JobId = tuple[str, str]


def job_id(job: Job) -> JobId:
    return (str(job.manifest), job.name)


def frame_path(source: Job, video_sha256: str, spec: frames.FrameSpec) -> Path:
    """Where the frame ``spec`` of ``source``'s video (of that sha256) is kept."""
    return source.output.parent / FRAMES_FOLDER / f"{source.output.stem}@{spec.position}.{video_sha256[:16]}.png"


def shot_of(job: Job) -> str:
    """The shot a job is a take of (its name, for a job of one take)."""
    return str(getattr(job, "shot", job.name))


def take_of(job: Job) -> int:
    return int(getattr(job, "take", 1))


def takes_and_picks(manifest: Path, jobs: Iterable[Job]) -> tuple[dict[str, dict[int, Job]], picks.Picks]:
    """``manifest``'s ``jobs`` by shot and take, and its picks, told which takes each shot has."""
    takes: dict[str, dict[int, Job]] = {}
    for job in jobs:
        takes.setdefault(shot_of(job), {})[take_of(job)] = job
    return takes, picks.load(manifest, [Take(shot, take) for shot, of_shot in takes.items() for take in of_shot])


def source_of(shot: str, takes: Mapping[str, Mapping[int, Job]], chosen: picks.Picks) -> Job | str:
    """The job whose video a frame of ``shot`` is taken from: its picked (or only) take (see
    :meth:`vidbatch.picks.Picks.chosen`); else a text saying why there is none yet."""
    of_shot = takes.get(shot, {})
    take = chosen.chosen(shot)
    if take is None or take not in of_shot:
        manifest = next(iter(of_shot.values())).manifest.name if of_shot else "MANIFEST"
        stale = chosen.picked(shot)
        if stale is not None and stale not in of_shot:  # picked when the shot had more takes
            why = f"{shot}'s picked take {stale} is gone (it has takes {picks.describe_takes(of_shot)})"
        else:
            why = f"{shot} has {len(of_shot)} takes and no pick"
        return f"{why}; pick one with `vidbatch pick {manifest} {shot} TAKE`, then run again"
    return of_shot[take]


def repicked(shot: str, source: Job, chosen: picks.Picks, video: str | None) -> str:
    """Why the picked take of ``shot`` (``source``) no longer stands for the shot: the video it
    holds, or gets back in this run, for its current request (``video``, its sha256; None when
    it is to be rendered anew) is not the one it was picked on (:meth:`vidbatch.picks.Picks.seen`).
    "" while it is, or when the pick recorded no video."""
    why = _repicked(chosen.seen(shot), take_of(source), video)
    if not why:
        return ""
    return f"{shot}'s {why}; look at the new render and pick again with `vidbatch pick {source.manifest.name} {shot} TAKE` (or `vidbatch review`), then run again"


def _repicked(seen: str | None, take: int, video: str | None) -> str:
    if seen is None or video == seen:
        return ""
    when = "was rendered again since it was picked" if video is not None else "renders again (its request changed since it was picked)"
    return f"picked take {take} {when}"


def stale_picks(jobs: Iterable[Job], store: Store | None) -> dict[JobId, str]:
    """The picked takes among ``jobs`` (every job of their manifests, chained ones resolved)
    that no longer hold the render they were picked on (:func:`repicked`), by id, with why
    ("picked take 2 was rendered again since it was picked"): ``status`` and the report show such a
    pick as stale, as ``plan`` blocks what depends on it."""
    by_manifest: dict[str, list[Job]] = {}
    for job in jobs:
        by_manifest.setdefault(str(job.manifest), []).append(job)
    found: dict[JobId, str] = {}
    outputs: dict[str, OutputRecord] | None = None
    for manifest, of_manifest in by_manifest.items():
        takes, chosen = takes_and_picks(Path(manifest), of_manifest)
        for shot, of_shot in takes.items():
            seen = chosen.seen(shot)
            source = of_shot.get(chosen.chosen(shot) or 0)
            if seen is None or source is None:
                continue
            if outputs is None:
                outputs = store.all_outputs() if store is not None else {}
            why = _repicked(seen, take_of(source), _video(source, outputs.get(str(source.output)), store))
            if why:
                found[job_id(source)] = why
    return found


@dataclass(frozen=True)
class Take:
    """A job as :mod:`vidbatch.picks` counts it: the shot it is a take of, and which take."""

    shot: str
    take: int


@dataclass(frozen=True)
class Wait:
    """Why a chained job cannot be resolved yet: ``source`` (a shot's name) gives no frame now.
    ``pick`` says the shot needs a pick (a person's decision), not a render."""

    source: str
    reason: str
    pick: bool = False


@dataclass
class Resolution:
    """The outcome of :func:`resolve`: resolved copies of chained jobs, and why the others wait."""

    #: every chained job that could be resolved, by id: a copy with its frames and final key
    jobs: dict[JobId, Job] = field(default_factory=dict)
    #: every chained job that could not, by id
    waits: dict[JobId, list[Wait]] = field(default_factory=dict)
    #: frames that break the API's image rules or cannot be taken, by the dependent job's id
    problems: dict[JobId, list[ManifestProblem]] = field(default_factory=dict)
    #: each manifest's jobs in dependency order (by manifest path)
    order: dict[str, list[str]] = field(default_factory=dict)

    def job(self, job: Job) -> Job:
        """``job`` as resolved (itself when it is not a chained job or could not be resolved)."""
        return self.jobs.get(job_id(job), job)

    def all_problems(self) -> list[ManifestProblem]:
        return [p for found in self.problems.values() for p in found]


def resolve(
    manifests: Sequence[Manifest],
    store: Store | None,
    *,
    write: bool = False,
    promised: Mapping[JobId, str] | None = None,
    forced: Collection[str] = (),
    busy: Collection[str] = (),
) -> Resolution:
    """Resolve every chained job of ``manifests`` against ``store`` (see the module docstring).
    ``write``: keep extracted frames as files (``run``); else frames without a file are decoded
    into memory only. ``promised``: sources whose output is not in place but is given back in
    this run without a render, with the sha256 of the video it gets; a frame of one is taken
    from its kept file (:func:`frame_path`), when there is one. ``forced``: names of jobs
    rendered again in this run (``--force``), and ``busy``: keys of renders in flight in this run:
    what takes a frame of one waits for its new video. Manifests without chained jobs cost nothing."""
    result = Resolution()
    outputs: dict[str, OutputRecord] | None = None
    for manifest in manifests:
        edges = _edges(manifest.jobs)
        if not edges:
            continue
        if outputs is None:
            outputs = store.all_outputs() if store is not None else {}
        by_name = {job.name: job for job in manifest.jobs}
        takes, chosen = takes_and_picks(manifest.path, manifest.jobs)
        # a frame names a shot; the graph is over jobs (each take of a shot takes the same frame)
        job_edges = {name: [j.name for shot in sources for j in takes.get(shot, {}).values()] for name, sources in edges.items()}
        names = frames.order(list(by_name), job_edges)
        result.order[str(manifest.path)] = names
        for name in names:
            if name in edges:
                _resolve_one(by_name[name], takes, chosen, outputs, result, write, store, promised or {}, forced, busy)
    return result


def _edges(jobs: Iterable[Job]) -> dict[str, list[str]]:
    """Each chained job's name -> the shots it takes frames from (a text-to-video job has no
    image, so costs one comparison: a no-op plan of 10,000 jobs stays fast)."""
    edges: dict[str, list[str]] = {}
    for job in jobs:
        if job.mode is facts.Mode.T2V:
            continue
        sources = [spec.job for _, spec in job.frame_sources()]
        if sources:
            edges[job.name] = sources
    return edges


def resolved(manifests: Sequence[Manifest], store: Store | None) -> list[Manifest]:
    """``manifests`` with each chained job that can be resolved replaced by its resolved copy
    (for status, report and gc: a chained shot's render is known by its frame). Never decodes
    into a file and never raises for a bad frame: such a job stays as loaded."""
    resolution = resolve(manifests, store)
    if not resolution.jobs:
        return list(manifests)
    return [dataclasses.replace(m, jobs=[resolution.job(j) for j in m.jobs]) if str(m.path) in resolution.order else m for m in manifests]


def _resolve_one(
    job: Job,
    takes: Mapping[str, Mapping[int, Job]],
    chosen: picks.Picks,
    outputs: Mapping[str, OutputRecord],
    result: Resolution,
    write: bool,
    store: Store | None,
    promised: Mapping[JobId, str],
    forced: Collection[str],
    busy: Collection[str],
) -> None:
    waits: list[Wait] = []
    problems: list[ManifestProblem] = []
    taken: dict[str, ImageRef] = {}
    for fname, spec in job.frame_sources():
        if spec.text in taken:
            continue
        source = source_of(spec.job, takes, chosen)
        if isinstance(source, str):
            waits.append(Wait(spec.job, source, pick=True))
            continue
        source = result.job(source)
        out = outputs.get(str(source.output))
        stale = repicked(spec.job, source, chosen, _video(source, out, store)) if chosen.seen(spec.job) else ""
        if stale:
            waits.append(Wait(spec.job, stale, pick=True))
            continue
        if job_id(source) in result.waits or job_id(source) in result.problems:
            waits.append(Wait(spec.job, f"waits for {spec.job}, which waits for its own source"))
            continue
        if source.name in forced or source.key in busy:  # a new video, so a new frame: known once it is in place
            waits.append(Wait(spec.job, f"waits for {spec.job}, which renders again in this run"))
            continue
        if out is not None and out.key == source.key and verify_output(source.output, out)[0]:
            try:
                path, data = _frame(source, out.sha256, spec, write)
            except MediaError as e:
                problems.append(_problem(job, fname, f"cannot take {spec.describe()}: {e}"))
                continue
        else:
            # given back in this run without a render: its video's frame, when it was kept
            sha = promised.get(job_id(source))
            kept = None if sha is None else _kept_frame(frame_path(source, sha, spec))
            if sha is None or kept is None:
                waits.append(Wait(spec.job, f"waits for {spec.job}"))
                continue
            path, data = frame_path(source, sha, spec), kept
        info = images.inspect_bytes(data)
        limits = images.limit_problems(info)
        if limits:
            problems.append(
                _problem(job, fname, f"{spec.describe()} ({path.name}) " + "; ".join(limits) + f"; the API would refuse it, so {job.name} cannot start from it")
            )
            continue
        taken[spec.text] = ImageRef(spec.text, path, info.sha256, facts.IMAGE_FORMATS["png"])
    jid = job_id(job)
    if problems:
        result.problems[jid] = problems
        return
    if waits:
        result.waits[jid] = waits
        return

    def resolved(ref: ImageRef) -> ImageRef:
        return taken.get(ref.source, ref) if ref.kind == "frame" else ref

    request = map_images(job.request, resolved)
    key = content_key(map_images(request, ImageRef.identity), take_of(job))
    result.jobs[jid] = dataclasses.replace(job, request=request, key=key)


def _video(source: Job, out: OutputRecord | None, store: Store | None) -> str | None:
    """The sha256 of the video ``source`` holds, or gets back in this run, for its current
    request: its output's (a missing file is downloaded again), else its key's render (an edit
    undone); None when it is to be rendered anew."""
    if out is not None and out.key == source.key:
        return out.sha256
    record = store.get(source.key) if store is not None and not source.unresolved else None
    if record is not None and record.state in (RenderState.DONE, RenderState.RENDERED):
        return record.video_sha256
    return None


def _frame(source: Job, video_sha256: str, spec: frames.FrameSpec, write: bool) -> tuple[Path, bytes]:
    """(file, PNG bytes) of the frame ``spec`` of ``source``'s video: read when kept, else
    decoded (and kept, with ``write``)."""
    path = frame_path(source, video_sha256, spec)
    kept = _kept_frame(path)
    if kept is not None:
        return path, kept
    data = media.extract_frame(source.output, spec.at, last=not spec.first)
    if write:
        try:
            write_bytes(path, data, durable=False)  # derived from the video: lost, it is taken again
        except OSError as e:
            raise MediaError(f"cannot keep {spec.describe()} as {path}: {e.strerror or e}") from None
        log.info("took %s into %s", spec.describe(), path)
    return path, data


def _kept_frame(path: Path) -> bytes | None:
    """The PNG bytes of the frame kept at ``path``, or None (none, or not a complete PNG)."""
    try:
        data = images.read_regular(path, facts.IMAGE_MAX_BYTES)
    except OSError:
        return None
    return data if images.sniff_format(data[:16]) == "png" and images.is_complete("png", data) else None


def _problem(job: Job, fname: str, message: str) -> ManifestProblem:
    return ManifestProblem(str(job.manifest), message, job=job.name, field=fname, line=job.line)


# --- planning ---------------------------------------------------------------------------------

#: What a source's planned action means for a job that takes a frame of it.
_WAITS = frozenset({Action.SUBMIT, Action.RESUBMIT, Action.RESUME, Action.DOWNLOAD, Action.REUSE, Action.SKIP, Action.WAIT})


def plan(
    manifests: Sequence[Manifest],
    store: Store | None,
    *,
    write: bool = False,
    only: Iterable[JobId] | None = None,
    retry_failed: bool = False,
    force: Iterable[str] = (),
    resubmit_uncertain: bool = False,
    busy: Collection[str] = (),
) -> Plan:
    """The plan of ``manifests``, chained shots resolved, jobs in dependency order (see the
    module docstring). A frame that breaks the image rules raises ManifestError, unless ``only``
    is given (the runner's dependency step): then only those jobs are returned, and a bad frame
    fails its job (``Action.FAILED``, no record) instead. A source named in ``force`` (rendered
    again in this run), or whose key is ``busy`` (the runner's renders in flight), gives no frame
    yet: what takes one waits for its new video."""
    loaded = manifests
    force = set(force)
    promised: dict[JobId, str] = {}
    while True:
        resolution = resolve(loaded, store, write=write, promised=promised, forced=force, busy=busy)
        if only is None and resolution.problems:
            raise ManifestError(resolution.all_problems())
        if resolution.jobs:
            manifests = [dataclasses.replace(m, jobs=[resolution.job(j) for j in m.jobs]) if str(m.path) in resolution.order else m for m in loaded]
        base = plan_jobs(manifests, store, retry_failed=retry_failed, force=force, resubmit_uncertain=resubmit_uncertain)
        more = _promises(base, resolution) if resolution.waits else {}
        if more.keys() <= promised.keys():
            break
        promised |= more  # a source given back without a render: what waited on it may now be known
    if not resolution.order:
        return base if only is None else Plan([pj for pj in base.jobs if job_id(pj.job) in set(only)], base.orphans)
    planned = {job_id(pj.job): pj for pj in base.jobs}
    ordered: list[PlannedJob] = []
    for manifest in manifests:
        names = resolution.order.get(str(manifest.path)) or [j.name for j in manifest.jobs]
        for name in names:
            pj = planned[(str(manifest.path), name)]
            jid = job_id(pj.job)
            if jid in resolution.problems:
                _hold(pj, Action.FAILED, "; ".join(p.message for p in resolution.problems[jid]))
            elif jid in resolution.waits:
                _wait(pj, resolution.waits[jid], planned, str(manifest.path), busy)
            ordered.append(pj)
    if only is not None:
        wanted = set(only)
        ordered = [pj for pj in ordered if job_id(pj.job) in wanted]
    return Plan(ordered, base.orphans)


def _promises(base: Plan, resolution: Resolution) -> dict[JobId, str]:
    """The sources that waiting jobs wait on and that ``base`` gives back without a render (a
    download or a copy of a video the state knows), each with the sha256 of the video it gets."""
    awaited = {(manifest, wait.source) for (manifest, _), waits in resolution.waits.items() for wait in waits}
    found: dict[JobId, str] = {}
    for pj in base.jobs:
        if (str(pj.job.manifest), shot_of(pj.job)) not in awaited:
            continue
        sha = None
        if pj.restore is not None and pj.action in (Action.DOWNLOAD, Action.REUSE):
            sha = pj.restore.sha256
        elif pj.action is Action.DOWNLOAD and pj.record is not None:
            sha = pj.record.video_sha256  # the render's file again (None: never downloaded)
        elif pj.action is Action.REUSE and pj.source is not None:
            sha = pj.source.sha256  # a verified copy (not one made after a render of this run)
        if sha:
            found[job_id(pj.job)] = sha
    return found


def _wait(pj: PlannedJob, waits: list[Wait], planned: Mapping[JobId, PlannedJob], manifest: str, busy: Collection[str]) -> None:
    """Make ``pj`` wait for its sources, or be blocked by the first that cannot give a frame. A
    source whose render is ``busy`` in this run waits whatever its row says (mid-create it reads
    as a create cut off)."""
    for wait in waits:
        if wait.pick:
            _hold(pj, Action.BLOCKED, wait.reason)
            return
        source = planned.get((manifest, wait.source))
        if source is None or source.action in _WAITS or source.job.key in busy:
            continue
        _hold(pj, Action.BLOCKED, blocked_reason(wait.source, source))
        return
    names = ", ".join(dict.fromkeys(w.source for w in waits))
    _hold(pj, Action.WAIT, f"waits for {names}: starts once its video is in place in this run")


def blocked_reason(name: str, source: PlannedJob) -> str:
    """Why a job cannot take a frame of ``name`` (planned as ``source``) in this run."""
    action = source.action
    if action is Action.FAILED:
        if source.record is None:  # its own frame was refused, locally
            return f"{name} cannot start: {source.reason}"
        return f"{name} failed ({source.record.error or 'no message'}); it renders again with --retry-failed"
    if action is Action.UNCERTAIN:
        return f"{name}'s create was cut off (uncertain); see --resubmit-uncertain"
    if action is Action.GONE:
        return f"MiniMax no longer has {name}'s video; render it again with --force {name}"
    if action is Action.BLOCKED:
        return f"{name} cannot start: {source.reason}"
    return f"{name} is {action.value}: {source.reason}"


def _hold(pj: PlannedJob, action: Action, reason: str) -> None:
    pj.action = action
    pj.reason = reason
    pj.changes = []
    pj.after = None
    pj.source = None
    pj.restore = None
