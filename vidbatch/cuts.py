"""Cuts: a manifest's sequences of shots, each joined into one video. Local work, no API call.

A manifest declares::

    [[sequences]]
    name = "film"
    shots = ["shot-01", "shot-02", "shot-03"]   # in the order they play
    output = "film.mp4"                         # default NAME.mp4 in output_dir

Each shot stands for its picked (or only) take (:mod:`vidbatch.picks`). A cut is planned beside the
jobs (:func:`plan`, which wraps :func:`vidbatch.chain.plan`):

- ``build``: every shot's video is in place and the cut file is missing, damaged, or was joined
  from other videos (a shot was rendered again or picked anew);
- ``skip``: the file verifies (size, then sha256 when its mtime moved) and was joined from exactly
  the shots' current videos, in order: the state keeps each cut's inputs (the videos' sha256s;
  table ``cuts``, migration m008);
- ``wait``: a shot renders (or downloads) in this run first; the cut is built after the jobs;
- ``blocked``: a shot failed, is uncertain or gone, has several takes and no pick, or its picked
  take rendered again since it was picked (a person has not seen what the cut would hold).

:func:`build` joins the clips with :func:`vidbatch.media.concat`: the packets are copied when every
clip shares its codec parameters (MiniMax's renders of one model and resolution do), re-encoded to
H.264 otherwise; the file is written through :func:`vidbatch.files.into_place`. ``run`` builds the
cuts once its jobs are done (:meth:`vidbatch.session.Session.assemble`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import chain, media, picks
from .manifest.model import Job, Manifest, ShotSequence
from .files import sha256_file
from .plan import Action, Plan, PlannedJob, display_path
from .state import CutRecord, Store

log = logging.getLogger(__name__)


class CutAction(str, enum.Enum):
    BUILD = "build"
    SKIP = "skip"
    WAIT = "wait"
    BLOCKED = "blocked"


#: A shot's planned action that gives its video in this run (so its cut waits, then builds).
_COMING = frozenset({Action.SUBMIT, Action.RESUBMIT, Action.RESUME, Action.DOWNLOAD, Action.REUSE, Action.WAIT})


@dataclass
class PlannedCut:
    """What a run would do for one sequence, and why. ``clips`` are the videos joined, in order;
    ``inputs`` their sha256s (known when every shot is up to date)."""

    manifest: Path
    sequence: ShotSequence
    action: CutAction
    reason: str
    clips: list[Path] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.action is CutAction.SKIP

    def to_json(self, cwd: Path | None = None) -> dict[str, Any]:
        return {
            "name": self.sequence.name,
            "manifest": str(self.manifest),
            "action": self.action.value,
            "reason": self.reason,
            "output": display_path(self.sequence.output, cwd),
            "shots": list(self.sequence.shots),
            "clips": [display_path(c, cwd) for c in self.clips],
        }


@dataclass(frozen=True)
class Built:
    """A cut written: where, whether its clips were re-encoded (and why), how long it plays."""

    cut: PlannedCut
    result: media.ConcatResult
    sha256: str


def plan(
    manifests: Sequence[Manifest],
    store: Store | None,
    *,
    write: bool = False,
    retry_failed: bool = False,
    force: Iterable[str] = (),
    resubmit_uncertain: bool = False,
) -> Plan:
    """The jobs' plan (:func:`vidbatch.chain.plan`) with each manifest's sequences planned after
    them (``Plan.cuts``)."""
    the_plan = chain.plan(manifests, store, write=write, retry_failed=retry_failed, force=force, resubmit_uncertain=resubmit_uncertain)
    the_plan.cuts = plan_cuts(manifests, the_plan, store)
    return the_plan


def plan_cuts(manifests: Sequence[Manifest], the_plan: Plan, store: Store | None) -> list[PlannedCut]:
    """Each sequence of ``manifests`` against the plan of their jobs and the state's record of
    each cut. Manifests without sequences cost nothing."""
    out: list[PlannedCut] = []
    planned: dict[tuple[str, str], PlannedJob] | None = None
    for manifest in manifests:
        if not manifest.sequences:
            continue
        if planned is None:
            planned = {(str(pj.job.manifest), pj.job.name): pj for pj in the_plan.jobs}
        takes, chosen = chain.takes_and_picks(manifest.path, manifest.jobs)
        for sequence in manifest.sequences:
            out.append(_plan_one(manifest, sequence, takes, chosen, planned, store))
    return out


def _plan_one(
    manifest: Manifest,
    sequence: ShotSequence,
    takes: Mapping[str, Mapping[int, Job]],
    chosen: picks.Picks,
    planned: Mapping[tuple[str, str], PlannedJob],
    store: Store | None,
) -> PlannedCut:
    def cut(action: CutAction, reason: str, clips: list[Path] | None = None, inputs: list[str] | None = None) -> PlannedCut:
        return PlannedCut(manifest.path, sequence, action, reason, clips or [], inputs or [])

    clips: list[Path] = []
    inputs: list[str] = []
    waiting: list[str] = []
    for shot in sequence.shots:
        source = chain.source_of(shot, takes, chosen)
        if isinstance(source, str):
            return cut(CutAction.BLOCKED, source)
        pj = planned[(str(manifest.path), source.name)]
        stale = chain.repicked(shot, source, chosen, None if pj.billable or pj.action is Action.RESUME else _video_sha256(pj))
        if stale:
            return cut(CutAction.BLOCKED, stale)
        clips.append(pj.job.output)
        if pj.action is Action.SKIP:
            sha = _video_sha256(pj)
            if sha is None:
                return cut(CutAction.BUILD, f"{shot}'s video is not recorded yet; joined after the run")
            inputs.append(sha)
        elif pj.action in _COMING:
            waiting.append(shot)
        else:
            return cut(CutAction.BLOCKED, chain.blocked_reason(source.name, pj))
    if waiting:
        names = ", ".join(dict.fromkeys(waiting))
        return cut(CutAction.WAIT, f"joined once {names} {'is' if len(waiting) == 1 else 'are'} in place (local, no API call)", clips)
    record = store.cut(sequence.output) if store is not None else None
    why = _stale(sequence.output, record, inputs)
    if not why:
        return cut(CutAction.SKIP, "cut is up to date", clips, inputs)
    return cut(CutAction.BUILD, f"{why}: join {len(clips)} shots (local, no API call)", clips, inputs)


def _video_sha256(pj: PlannedJob) -> str | None:
    """The sha256 of the video an up-to-date job's output holds."""
    if pj.output is not None and pj.output.key == pj.job.key:
        return pj.output.sha256
    if pj.indexed is not None:
        return pj.indexed.sha256
    if pj.record is not None and pj.record.video_sha256:
        return pj.record.video_sha256
    return None


def _stale(path: Path, record: CutRecord | None, inputs: list[str]) -> str:
    """Why the cut at ``path`` must be joined again; "" when it holds exactly ``inputs``."""
    if record is None:
        return "never joined" if not path.exists() else "never joined here (the file there is not a recorded cut)"
    if record.inputs != inputs:
        changed = [n + 1 for n, (a, b) in enumerate(zip(record.inputs, inputs)) if a != b]
        if len(record.inputs) != len(inputs):
            return "the list of shots changed"
        return f"the video of shot {', '.join(map(str, changed))} in the sequence changed"
    try:
        st = path.stat()
    except OSError:
        return "cut file is missing"
    if st.st_size != record.size:
        return "cut file is damaged or replaced"
    if st.st_mtime_ns != record.mtime_ns and sha256_file(path) != record.sha256:
        return "cut file content changed"
    return ""


def build(cut: PlannedCut, store: Store) -> Built:
    """Join ``cut``'s clips into its output and record what it was joined from. Raises
    :class:`~vidbatch.errors.MediaError` (the clip or the output named)."""
    result = media.concat(cut.clips, cut.sequence.output)
    st = cut.sequence.output.stat()
    sha = sha256_file(cut.sequence.output)
    store.record_cut(
        cut.sequence.output,
        manifest=str(cut.manifest),
        name=cut.sequence.name,
        inputs=cut.inputs,
        sha256=sha,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        reencoded=result.reason or None,
    )
    log.info("joined %s from %d clips (%s)", cut.sequence.output, len(cut.clips), result.reason or "copied")
    return Built(cut, result, sha)
