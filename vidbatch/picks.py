"""Picks: which take of each shot a person chose, and which takes they rejected.

A shot rendered in several takes (``takes = 3`` in a manifest) needs a decision that only a person
can make after looking: which take is the one. That decision is project data, not cache, so it
lives in a plain file beside the manifest that a team can read, diff and commit, not (only) in the
state database::

    shots.toml          the manifest
    shots.picks.toml    its picks (``<manifest stem>.picks.toml``)

The file is TOML, one table per shot (quoted, since shot names may hold any letter)::

    # Picks for shots.toml: the chosen take of each shot, and rejected takes.
    ["shot-03"]
    pick = 2
    video = "sha256:9f2c..."
    reject = [1, 3]

- ``pick``: the chosen take (1..:data:`MAX_TAKES`), or absent;
- ``video``: the sha256 of the picked take's video when it was picked (the file at its output),
  or absent (picked before it had one, or a file written before vidbatch recorded it);
- ``reject``: takes dropped from review, or absent; the picked take is never also rejected.

A pick is a decision about the render a person looked at, not about a take number: once the
picked take's render is no longer that video (its prompt was edited and it rendered again, or it
was forced), :meth:`Picks.seen` no longer matches the take's video, and what depends on the pick
(chained shots, cuts; :mod:`vidbatch.chain`, :mod:`vidbatch.cuts`) is blocked until someone
picks again. A pick without ``video`` holds for whatever the take renders, as it always did.

``vidbatch pick`` and ``vidbatch review`` write it (atomically, through :mod:`vidbatch.files`,
reading the file again just before each change so a hand edit is never overwritten by a stale
copy); a person may edit it too. It is rewritten in one canonical form (shots sorted by name), so
comments in it are not kept. A missing file means no picks. A bad file is a
:class:`~vidbatch.errors.ManifestError` (exit 2) naming the file, the line and the shot.

Which take is *chosen* (:meth:`Picks.chosen`): the picked take, or, for a shot that has only one
take, that take; otherwise None (the shot waits for a pick). The shot's takes come from the jobs
given to :func:`load` (anything with ``shot`` and ``take`` attributes, such as
:class:`vidbatch.manifest.Job`); a shot the picks were not told about has the one take 1, as every
job without ``takes`` does.

This module knows nothing of manifests beyond their path: it sits below them, so the manifest
loader, the plan and the runner can all read picks.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import files
from .errors import ManifestError, ManifestProblem, UsageError, VideoChangedError
from .identity import MAX_TAKES

#: How a picks file writes the picked take's video (``video = "sha256:<64 hex>"``).
_VIDEO = re.compile(r"sha256:([0-9a-f]{64})")

__all__ = [
    "CURRENT",
    "Decision",
    "MAX_TAKES",
    "PICKS_SUFFIX",
    "Picks",
    "ShotPicks",
    "TakeJob",
    "load",
    "picks_path",
    "takes_by_shot",
    "decide",
    "update",
    "video_sha256",
]

#: What a picks file's name ends with; it starts with its manifest's stem.
PICKS_SUFFIX = ".picks.toml"
#: A picks file larger than this is not a picks file (a thousand shots take about 40 KB).
PICKS_MAX_BYTES = 4 * 1024 * 1024


class TakeJob(Protocol):
    """What :func:`load` needs of a job: the shot it is a take of, and which take."""

    @property
    def shot(self) -> str: ...

    @property
    def take(self) -> int: ...


@dataclass(frozen=True)
class ShotPicks:
    """One shot's decisions: the picked take (or None), the rejected takes, and the sha256 of
    the picked take's video when it was picked (None: not known)."""

    pick: int | None = None
    rejected: frozenset[int] = frozenset()
    video: str | None = None

    def __bool__(self) -> bool:
        return self.pick is not None or bool(self.rejected)


def picks_path(manifest: Path) -> Path:
    """The picks file of ``manifest``: ``shots.toml`` -> ``shots.picks.toml``, in its folder."""
    manifest = Path(manifest)
    return manifest.with_name(manifest.stem + PICKS_SUFFIX)


def takes_by_shot(jobs: Iterable[TakeJob]) -> dict[str, tuple[int, ...]]:
    """Each shot's take numbers, ascending, from jobs that carry ``shot`` and ``take``."""
    found: dict[str, set[int]] = {}
    for job in jobs:
        found.setdefault(job.shot, set()).add(job.take)
    return {shot: tuple(sorted(takes)) for shot, takes in found.items()}


@dataclass
class Picks:
    """The picks of one manifest, as read from its picks file (see the module docstring).

    Changing methods (:meth:`pick`, :meth:`reject`, :meth:`clear`) change this object only;
    :meth:`save` writes it. Writers that may race a person's edit use :func:`update`.
    """

    path: Path  # the picks file (it may not exist)
    shots: dict[str, ShotPicks] = field(default_factory=dict)
    #: Each shot's take numbers, when known (from the jobs given to :func:`load`).
    takes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    # --- reading ---------------------------------------------------------------------------

    def takes_of(self, shot: str) -> tuple[int, ...]:
        """The shot's take numbers; ``(1,)`` for a shot these picks were not told about."""
        return self.takes.get(shot, (1,))

    def picked(self, shot: str) -> int | None:
        """The take a person picked for ``shot``, as written (it may no longer exist)."""
        return self.shots.get(shot, ShotPicks()).pick

    def chosen(self, shot: str) -> int | None:
        """The take of ``shot`` to use: the picked one while it exists, else the only take of a
        one-take shot, else None (several takes and no pick: the shot waits for a pick)."""
        takes = self.takes_of(shot)
        pick = self.picked(shot)
        if pick is not None and pick in takes:
            return pick
        if len(takes) == 1:  # one take: nothing to choose, even under a pick left from more takes
            return takes[0]
        return None

    def seen(self, shot: str) -> str | None:
        """The sha256 of the video the chosen take of ``shot`` was picked on: the pick stands for
        that render only. None when the pick recorded none (picked before its take had a video,
        or an older file), and for a one-take shot (its only take is chosen, picked or not)."""
        entry = self.shots.get(shot, ShotPicks())
        takes = self.takes_of(shot)
        if len(takes) == 1 or entry.pick not in takes:
            return None
        return entry.video

    def rejected(self, shot: str) -> frozenset[int]:
        """The takes of ``shot`` a person rejected."""
        return self.shots.get(shot, ShotPicks()).rejected

    def status(self, shot: str, take: int) -> str:
        """``"picked"``, ``"rejected"`` or ``""``: what a person decided about one take."""
        entry = self.shots.get(shot, ShotPicks())
        if entry.pick == take:
            return "picked"
        return "rejected" if take in entry.rejected else ""

    def stale(self) -> list[str]:
        """Decisions that name a shot or take the manifest no longer has, in words (for warnings).
        Only meaningful when :func:`load` was given the manifest's jobs."""
        notes = []
        for shot, entry in sorted(self.shots.items()):
            if shot not in self.takes:
                notes.append(f"{self.path.name}: shot {shot} is not in the manifest (renamed or removed?); its decisions are ignored: rename or delete its table")
                continue
            gone = sorted(t for t in ({entry.pick} if entry.pick else set()) | entry.rejected if t not in self.takes[shot])
            if gone:
                takes = describe_takes(self.takes[shot])
                notes.append(f"{self.path.name}: shot {shot} has no take {', '.join(map(str, gone))} any more (it has takes {takes}); ignored: pick again, or delete it")
        return notes

    # --- changing --------------------------------------------------------------------------

    def pick(self, shot: str, take: int, video: str | None = None) -> None:
        """Choose ``take`` of ``shot`` (un-rejecting it if it was rejected); ``video``: the sha256
        of the take's video as the person saw it, None when it has none yet."""
        _check_take(take)
        entry = self.shots.get(shot, ShotPicks())
        self.shots[shot] = ShotPicks(take, entry.rejected - {take}, video)

    def reject(self, shot: str, take: int) -> None:
        """Drop ``take`` of ``shot`` from review (un-picking it if it was the pick)."""
        _check_take(take)
        entry = self.shots.get(shot, ShotPicks())
        self.shots[shot] = _without_pick(entry, take, entry.rejected | {take})

    def clear(self, shot: str, take: int | None = None) -> None:
        """Forget what was decided about ``take`` of ``shot`` (picked or rejected), or about the
        whole shot when ``take`` is None."""
        if take is None:
            self.shots.pop(shot, None)
            return
        entry = self.shots.get(shot, ShotPicks())
        self.shots[shot] = _without_pick(entry, take, entry.rejected - {take})

    # --- writing ---------------------------------------------------------------------------

    def to_toml(self, manifest_name: str = "") -> str:
        """The canonical text of the file: a header comment, then shots sorted by name."""
        lines = [
            f"# Picks for {manifest_name or 'this manifest'}: the chosen take of each shot, and rejected takes.",
            "# Written by `vidbatch pick` and `vidbatch review`; safe to edit and commit (comments are not kept).",
        ]
        if any(entry.video for entry in self.shots.values()):
            lines.append("# video: what the picked take's video was when picked; once it renders again, pick again.")
        for shot in sorted(self.shots):
            entry = self.shots[shot]
            if not entry:
                continue
            lines += ["", f"[{_toml_string(shot)}]"]
            if entry.pick is not None:
                lines.append(f"pick = {entry.pick}")
                if entry.video is not None:
                    lines.append(f'video = "sha256:{entry.video}"')
            if entry.rejected:
                lines.append(f"reject = [{', '.join(str(t) for t in sorted(entry.rejected))}]")
        return "\n".join(lines) + "\n"

    def save(self, manifest_name: str = "") -> None:
        """Write the file atomically (staged beside it, then renamed); an empty set of picks
        still writes the file, so a cleared pick shows in ``git diff``."""
        files.write_text(self.path, self.to_toml(manifest_name))


def load(manifest: Path, jobs: Iterable[TakeJob] = ()) -> Picks:
    """The picks of ``manifest`` (an empty set when it has no picks file). ``jobs``: the
    manifest's jobs, which tell :meth:`Picks.chosen` how many takes each shot has.

    Raises :class:`~vidbatch.errors.ManifestError` when the file cannot be read or is not a picks
    file, naming the file, the line and the shot."""
    path = picks_path(manifest)
    return Picks(path, _read(path), takes_by_shot(jobs))


def update(manifest: Path, change: Callable[[Picks], None], jobs: Iterable[TakeJob] = ()) -> Picks:
    """Read the picks file afresh, apply ``change(picks)``, and save: the way a writer (the CLI,
    the review server) changes picks without overwriting an edit made since it last read them."""
    current = load(manifest, jobs)
    change(current)
    current.save(Path(manifest).name)
    return current


class Decision(enum.Enum):
    """What a person decides about one take (or, for CLEAR without a take, a whole shot)."""

    PICK = "pick"
    REJECT = "reject"
    CLEAR = "clear"


class _Current(enum.Enum):
    VIDEO = "the take's video as it is now"


#: :func:`decide`'s ``shown`` when the person looks at the take's file as it is now (``vidbatch
#: pick``): the pick records that file's video.
CURRENT = _Current.VIDEO


def decide(
    manifest: Path,
    jobs: Iterable[TakeJob],
    shot: str,
    take: int | None,
    decision: Decision,
    *,
    shown: str | None | _Current = CURRENT,
) -> Picks:
    """Record ``decision`` about ``take`` of ``shot`` in the picks file of ``manifest`` and return
    the picks as saved. ``jobs``: the manifest's jobs; a shot or take they do not have is a
    :class:`~vidbatch.errors.UsageError` (exit 2), and the file is left as it was. ``take`` may
    be None only to clear a whole shot.

    A pick records the sha256 of the video at the take's ``output`` (jobs such as
    :class:`vidbatch.manifest.Job` carry it; with ``--sim``, the simulated one): the render the
    person looked at. A take with no video there yet is picked without one.

    ``shown``: the sha256 of the video the person decided on, when it was shown earlier than
    now (a page, ``vidbatch review``), or None when it had none yet. A pick or a reject whose
    take no longer holds that video (it rendered again in between) is a
    :class:`~vidbatch.errors.VideoChangedError` and nothing is written: the person never saw
    what the take is now."""
    jobs = list(jobs)
    takes = takes_by_shot(jobs)
    name = Path(manifest).name
    if shot not in takes:
        known = ", ".join(sorted(takes)[:20]) + (", ..." if len(takes) > 20 else "")
        raise UsageError(f"{name} has no shot {shot} (its shots: {known or 'none'})")
    if take is None and decision is not Decision.CLEAR:
        raise UsageError(f"which take of {shot} to {decision.value}? Give its number (takes: {describe_takes(takes[shot])})")
    if take is not None and take not in takes[shot]:
        raise UsageError(f"shot {shot} has takes {describe_takes(takes[shot])}; there is no take {take}")
    video = None
    if decision is not Decision.CLEAR:
        job = next(j for j in jobs if j.shot == shot and j.take == take)
        video = video_sha256(getattr(job, "output", None))
        if shown is not CURRENT and video != shown:
            if video is None:
                what = "no longer has the video shown"
            else:
                what = "was rendered since it was shown" if shown is None else "was rendered again since it was shown"
            raise VideoChangedError(f"take {take} of {shot} {what}; nothing was {decision.value}ed: reload the page, look at the take as it is now, and decide again")

    def change(picks: Picks) -> None:
        if decision is Decision.PICK:
            assert take is not None
            picks.pick(shot, take, video)
        elif decision is Decision.REJECT:
            assert take is not None
            picks.reject(shot, take)
        else:
            picks.clear(shot, take)

    return update(manifest, change, jobs)


def describe_takes(takes: Iterable[int]) -> str:
    """``1-3`` for a run of take numbers, else ``1, 2, 5``."""
    ordered = sorted(takes)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


def video_sha256(output: Path | None) -> str | None:
    """The sha256 (hex) of the video at ``output``, or None when there is none to read."""
    if output is None:
        return None
    try:
        return files.sha256_file(output)
    except OSError:  # not rendered (or not downloaded) yet: nothing was seen
        return None


# --- reading the file ------------------------------------------------------------------------


def _read(path: Path) -> dict[str, ShotPicks]:
    try:
        with open(path, "rb") as f:
            data = f.read(PICKS_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise _error(path, f"cannot be read: {e.strerror or e}") from None
    if len(data) > PICKS_MAX_BYTES:
        raise _error(path, f"is larger than {PICKS_MAX_BYTES // (1024 * 1024)} MB; a picks file is a few lines per shot")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _error(path, f"is not UTF-8 text (byte {e.start})") from None
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(at.group(1)) if at else None
        raise _error(path, f"is not valid TOML: {re.sub(r' *[(]at line .*$', '', message)}", line=line) from None
    locate = _Locator(text)
    problems: list[ManifestProblem] = []
    shots: dict[str, ShotPicks] = {}
    for shot, table in parsed.items():
        entry, found = _shot(path, shot, table, locate)
        problems += found
        if entry is not None:
            shots[shot] = entry
    if problems:
        raise ManifestError(problems)
    return shots


def _shot(path: Path, shot: str, table: Any, locate: _Locator) -> tuple[ShotPicks | None, list[ManifestProblem]]:
    def problem(message: str, key: str | None = None) -> ManifestProblem:
        return ManifestProblem(str(path), message, job=shot, field=key, line=locate.line(shot, key))

    if not isinstance(table, dict):
        return None, [problem(f"must be a table of the shot's picks (pick = 2, reject = [1]), not {table!r}")]
    problems = []
    unknown = sorted(set(table) - {"pick", "video", "reject"})
    for key in unknown:
        problems.append(problem(f"unknown key {key!r}; a shot's table holds pick = TAKE, video = \"sha256:...\" and reject = [TAKES]", key))
    pick = table.get("pick")
    if pick is not None and _take_problem(pick):
        problems.append(problem(f"{_take_problem(pick)}", "pick"))
        pick = None
    video = table.get("video")
    if video is not None:
        found = _VIDEO.fullmatch(video) if isinstance(video, str) else None
        if found is None:
            problems.append(problem(f'video must be "sha256:" and 64 hex digits (the picked take\'s video), not {video!r}; delete the line to keep the pick for any render', "video"))
        elif "pick" not in table:
            problems.append(problem("video names the picked take's video, but there is no pick; delete it or add pick = TAKE", "video"))
        video = found.group(1) if found is not None else None
    raw_reject = table.get("reject", [])
    rejected: set[int] = set()
    if not isinstance(raw_reject, list):
        problems.append(problem(f"reject must be a list of take numbers (reject = [1, 3]), not {raw_reject!r}", "reject"))
    else:
        for take in raw_reject:
            bad = _take_problem(take)
            if bad:
                problems.append(problem(f"{take!r} in the list {bad}", "reject"))
            else:
                rejected.add(take)
    if pick is not None and pick in rejected:
        problems.append(problem(f"take {pick} is both picked and rejected; keep one", "reject"))
    return ShotPicks(pick, frozenset(rejected), video if pick is not None else None), problems


def _take_problem(take: Any) -> str | None:
    if isinstance(take, bool) or not isinstance(take, int):
        return f"must be a take number (a whole number 1..{MAX_TAKES}), not {take!r}"
    if not 1 <= take <= MAX_TAKES:
        return f"must be a take number from 1 to {MAX_TAKES}, not {take}"
    return None


def _without_pick(entry: ShotPicks, take: int, rejected: Iterable[int]) -> ShotPicks:
    """``entry`` with ``rejected`` as its rejected takes, un-picked if ``take`` was its pick."""
    if entry.pick == take:
        return ShotPicks(None, frozenset(rejected))
    return ShotPicks(entry.pick, frozenset(rejected), entry.video)


def _check_take(take: int) -> None:
    bad = _take_problem(take)
    if bad:
        raise ValueError(f"take {bad}")


class _Locator:
    """The line a shot's table (or a key in it) was written on. Lines are only for messages, so a
    shot written in an unusual way (an inline table, dotted keys) gets the first line naming it."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: dict[str, int] = {}
        for number, line in enumerate(self.lines, 1):
            stripped = line.strip()
            if stripped.startswith("[") and not stripped.startswith("[["):
                try:
                    key = next(iter(tomllib.loads(stripped + "\n")))
                except (tomllib.TOMLDecodeError, StopIteration):
                    continue
                self.headers.setdefault(key, number)

    def line(self, shot: str, key: str | None = None) -> int | None:
        start = self.headers.get(shot)
        if start is None:
            return next((n for n, line in enumerate(self.lines, 1) if shot in line), None)
        if key is None:
            return start
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1].strip()
            if line.startswith("["):
                break
            if pattern.match(line):
                return number
        return start


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _error(path: Path, message: str, *, line: int | None = None) -> ManifestError:
    return ManifestError([ManifestProblem(str(path), f"picks file {message}", line=line)])

