"""The HTML report: every job of a manifest with its video in place, on one static page.

``vidbatch report`` (and ``run``/``watch`` with ``--report``) write one self-contained HTML file:
inline CSS and a little vanilla JavaScript, no server, no network, no external fonts or scripts,
so it opens from ``file://`` and can be zipped up with the renders and sent to someone.

Design
------
- **Data, then HTML.** :func:`build_report` turns a workspace and its state into plain
  dataclasses (:class:`Report`, :class:`ReportJob`); :func:`render_html` fills the Jinja2
  template ``templates/report.html.j2`` (autoescaped: prompts are user text and show as text);
  :func:`write_report` does both and replaces the file atomically. Tests check the data and the
  page separately.
- **Relative links.** Each ``<video src>`` (and each input image) is the output's path relative to
  the report's folder, percent-encoded, so moving or sharing the folder keeps the page working.
  A path on another drive (Windows) falls back to a ``file:`` URL.
- **What is shown comes from three facts**, as in :mod:`vidbatch.plan`: the job (its request, from
  the manifest), the state row of its key, and the file at its output path with that file's
  record. A file that holds an older request's video (the prompt changed since) is still shown,
  labelled, rather than hidden; a job with no file gets a placeholder saying why (never a broken
  player). Nothing is hashed: a report of 10,000 jobs is one query per 500 jobs, one for the
  output records, one history lookup per distinct request and one ``stat`` per output (2,000
  jobs: about half a second, plus loading the manifest).
- **Money and time.** "Renders created" counts the creates MiniMax accepted (``submitted`` events
  of the jobs' requests, every try included, failed ones too); uncertain jobs are counted apart as
  "may have been created". "Spent" is the spend ledger of the manifests (:mod:`vidbatch.ledger`):
  every accepted create at its quoted price, what of it went on renders that then failed, uncertain
  creates apart as possible spend, and, for a run's ``--report``, what this run spent; each card
  shows what its render cost. "Render time" sums, over the jobs' latest renders, submit to rendered;
  "span" is the first submit to the last download of those renders.
- **Works without JavaScript.** Every card is in the HTML and visible; the script only adds the
  state filters, the search box and the play/pause buttons (hidden until it runs), and keeps the
  filter in the URL fragment (``#state=failed&q=fox``) so a reload keeps it.
- **Live refresh.** With ``refresh=N`` (what ``run --report`` uses while jobs are in flight) the
  page reloads itself every N seconds, but not while a video plays or the search box has focus;
  without JavaScript a ``<noscript>`` meta refresh does it. :class:`ReportWriter` is the run
  callback that rewrites the page as jobs finish, at most every few seconds.

The library never prints; the CLI (:mod:`vidbatch.cli.report_cmd`) says where the page went.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Callable

from . import facts, files, ledger, rules
from .errors import MediaError, VidbatchError
from .plan import by_shot
from .state import ErrorInfo, OutputRecord, RenderRecord, RenderState, Store

if TYPE_CHECKING:  # pragma: no cover
    from .project import Workspace
    from .runner import RunEvent

log = logging.getLogger(__name__)

#: File name of the report when no ``-o`` is given; it goes in the first manifest's output_dir.
DEFAULT_NAME = "report.html"

#: A card's state when the file at its output holds another request's video (the same word as
#: ``vidbatch status``): the page shows that video under the prompt it was rendered from.
OUTDATED = "outdated"

#: The order states are listed in (summary, filters): finished first, problems next, then the rest.
STATE_ORDER: tuple[str, ...] = (
    RenderState.DONE.value,
    RenderState.RENDERED.value,
    RenderState.RUNNING.value,
    RenderState.SUBMITTING.value,
    RenderState.UNCERTAIN.value,
    RenderState.FAILED.value,
    RenderState.GONE.value,
    OUTDATED,
    RenderState.NEW.value,
)
#: States in which a run still has something to do for the job (a live page keeps refreshing).
UNFINISHED_STATES = frozenset({OUTDATED, RenderState.NEW.value, RenderState.SUBMITTING.value, RenderState.RUNNING.value, RenderState.RENDERED.value})

#: What a card shows in place of the video, by state, when there is no file to play.
PLACEHOLDERS: dict[str, str] = {
    RenderState.NEW.value: "Not rendered yet",
    RenderState.SUBMITTING.value: "Submitting…",
    RenderState.RUNNING.value: "Rendering…",
    RenderState.RENDERED.value: "Rendered, not downloaded yet",
    RenderState.UNCERTAIN.value: "Create was cut off: MiniMax may have a task for it",
    RenderState.FAILED.value: "Render failed",
    RenderState.GONE.value: "MiniMax no longer has this render (expired or another account): render it again with --force",
    RenderState.DONE.value: "Video file missing: the next run downloads it again",
}

#: Run events after which :class:`ReportWriter` rewrites the page.
REFRESH_EVENTS = frozenset({"submitted", "rendered", "downloaded", "reused", "failed", "uncertain", "error", "start", "finish", "interrupted", "account_stop"})

# The bracket syntax of camera commands is :mod:`vidbatch.facts`'s; the report only marks it up.


# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptPart:
    """A run of prompt text. ``kind``: ``text``; ``cam`` (a bracket of known camera commands);
    ``unknown`` (a bracket with something that is no camera command, likely a typo: it reaches the
    model as text); ``unsupported`` (valid commands, but the model ignores camera commands)."""

    text: str
    kind: str = "text"
    note: str = ""


@dataclass(frozen=True)
class ReportError:
    """A job's last error, as the state keeps it: its parts (see :class:`vidbatch.state.ErrorInfo`)."""

    message: str  # the headline; errors recorded before state migration m002 hold their whole text
    code: int | None = None
    trace_id: str | None = None
    #: ``failed`` and ``uncertain`` jobs' errors are the reason for their state; for other states
    #: the error is a past problem (e.g. a download that the next run retries).
    blocking: bool = True
    hint: str | None = None
    call: str | None = None
    http_status: int | None = None
    status_msg: str | None = None

    @classmethod
    def from_info(cls, info: ErrorInfo, *, blocking: bool = True) -> "ReportError":
        return cls(info.message, info.code, info.trace_id, blocking, info.hint, info.call, info.http_status, info.status_msg)

    @property
    def headline(self) -> str:
        return self.message

    @property
    def detail(self) -> str | None:
        """The ``call=... trace_id=...`` details of an API error, if any."""
        return ErrorInfo(self.message, self.code, self.trace_id, self.call, self.http_status, self.status_msg, self.hint).details


@dataclass(frozen=True)
class ReportImage:
    """An input image of the job (first/last frame, subject), linked relatively when it is a local file."""

    label: str
    src: str


@dataclass
class ReportJob:
    index: int
    name: str
    manifest: str  # the manifest's path relative to the report's folder
    state: str  # a RenderState value; "new" when the state has no row for the request
    model: str
    mode: str  # a facts.Mode value: t2v, i2v, fl2v, s2v, lf2v, r2v
    mode_label: str
    duration: int | None
    resolution: str | None
    width: int
    height: int
    prompt: str
    prompt_parts: list[PromptPart]
    output: str  # the output path relative to the report's folder, for display
    video_src: str | None  # URL relative to the report; None: show the placeholder
    video_note: str | None  # a caveat on the file shown (older request, changed since download)
    #: the prompt the video shown was rendered from, when that is not the job's prompt
    video_prompt: str | None
    placeholder: str
    video_bytes: int | None
    task_id: str | None
    file_id: str | None
    attempts: int
    renders: int  # creates accepted by MiniMax for this request, over its whole history
    error: ReportError | None
    submitted_at: float | None
    rendered_at: float | None
    downloaded_at: float | None
    images: list[ReportImage] = field(default_factory=list)
    origin: str = ""
    warnings: list[str] = field(default_factory=list)
    key: str = ""
    cost: str | None = None  # what the render cost (its accepted creates, priced); None: nothing recorded
    #: the shot this job is a take of, which take, how many takes the shot has, and what a
    #: person decided about this take in the picks file ("picked", "rejected" or "")
    shot: str = ""
    take: int = 1
    takes: int = 1
    pick: str = ""
    #: why this take's pick no longer stands ("picked take 2 was rendered again since it was
    #: picked": :func:`vidbatch.chain.stale_picks`); "" when it does, or it is not picked
    pick_stale: str = ""
    #: the video's poster frame (a PNG cached by the video's hash), relative to the report
    poster_src: str | None = None
    #: the sha256 of the video shown (``video_src``), when known: a decision under ``vidbatch
    #: review`` names it, so that a take rendered again since the page was built is not picked
    video_sha256: str | None = None

    @property
    def anchor(self) -> str:
        return f"job-{self.index + 1}"

    @property
    def decided(self) -> str:
        """What the page marks this take as: "picked", "stale" (picked, then rendered again),
        "rejected" or ""."""
        return "stale" if self.pick_stale else self.pick

    @property
    def size(self) -> str | None:
        return human_bytes(self.video_bytes) if self.video_bytes is not None else None

    @property
    def render_seconds(self) -> float | None:
        if self.submitted_at and self.rendered_at and self.rendered_at >= self.submitted_at:
            return self.rendered_at - self.submitted_at
        return None

    @property
    def search_text(self) -> str:
        """What the page's search box matches: name, prompt and error, lower-cased."""
        return " ".join(filter(None, [self.name, self.prompt, self.error.message if self.error else None])).lower()


@dataclass
class ReportSummary:
    jobs: int
    counts: dict[str, int]  # by state, in STATE_ORDER, only states that occur
    renders_created: int  # creates MiniMax accepted for these jobs' requests, every try included
    maybe_created: int  # uncertain requests: a create may or may not have been accepted
    render_seconds: float  # summed over the latest renders: submit -> rendered
    renders_timed: int  # how many renders that sum covers
    span_seconds: float | None  # first submit -> last download, of the latest renders
    bytes_on_disk: int  # videos shown on the page
    videos_on_disk: int
    spend: "ReportSpend | None" = None  # None: nothing was spent on these manifests

    @property
    def unfinished(self) -> int:
        return sum(n for s, n in self.counts.items() if s in UNFINISHED_STATES)


@dataclass(frozen=True)
class ReportSpend:
    """The spend ledger of the report's manifests, as the page shows it (amounts with currency)."""

    spent: str  # every accepted create so far
    creates: int
    failed: str | None  # of which renders that then failed
    possible: str | None  # uncertain creates: may have been spent
    this_run: str | None = None  # since the run writing the report started (``--report``)

    @classmethod
    def of(cls, book: ledger.Ledger, since: float | None = None) -> "ReportSpend | None":
        if not book.entries:
            return None
        run = ledger.Tally.of(e for e in book.entries if since is not None and e.at >= since and e.kind is ledger.SpendKind.ACCEPTED)
        return cls(
            spent=book.spent.describe(),
            creates=book.spent.creates,
            failed=book.failed.describe() if book.failed.creates else None,
            possible=f"{book.possible.describe()} ({book.possible.creates})" if book.possible.creates else None,
            this_run=run.describe() if since is not None else None,
        )


@dataclass
class ReportCut:
    """A sequence of the manifest: its joined video (when built), its shots and a contact sheet
    (one frame per shot's chosen take, when every shot has a video)."""

    name: str
    manifest: str
    shots: list[str]
    output: str  # relative to the report's folder, for display
    video_src: str | None
    poster_src: str | None
    sheet_src: str | None
    duration: float | None
    note: str  # "up to date", "not joined yet", "joined from other videos than the shots' now"


@dataclass
class Report:
    title: str
    manifests: list[str]  # paths relative to the report's folder
    state_dir: str
    simulated: bool
    generated_at: float
    jobs: list[ReportJob]
    summary: ReportSummary
    has_state: bool  # False: nothing was ever run with this state folder
    #: the review server's session token (``vidbatch review``): the page then has pick and
    #: reject buttons that post it; None for the static page
    review_token: str | None = None
    #: the manifests' sequences, shown at the top (their cuts, contact sheets)
    cuts: list[ReportCut] = field(default_factory=list)

    @property
    def multiple_manifests(self) -> bool:
        return len(self.manifests) > 1

    @property
    def bracket_kinds(self) -> set[str]:
        """Which kinds of bracket occur in the prompts (the page explains only those)."""
        return {p.kind for j in self.jobs for p in j.prompt_parts if p.kind != "text"}

    def sections(self) -> list[tuple[str, list[ReportJob]]]:
        """Jobs grouped by manifest, in manifest order."""
        groups: dict[str, list[ReportJob]] = {}
        for j in self.jobs:
            groups.setdefault(j.manifest, []).append(j)
        return list(groups.items())


# --- building it --------------------------------------------------------------------------------


def default_report_path(ws: "Workspace") -> Path:
    """``report.html`` in the first manifest's output_dir: the page travels with the videos it
    shows, and ``--sim`` runs (outputs in ``<output_dir>-sim``) get a report of their own."""
    return Path(ws.manifests[0].output_dir) / DEFAULT_NAME


def build_report(ws: "Workspace", store: Store | None, out: Path, *, now: float | None = None, since: float | None = None) -> Report:
    """The report of every job of ``ws`` as it stands in ``store`` (None: nothing ran yet), with
    links relative to the folder of ``out`` (the report file, which need not exist). ``since``:
    when the run writing it started, for what this run spent."""
    base = Path(os.path.abspath(out)).parent
    jobs = [job for _, group in by_shot(ws.jobs) for job in group]  # takes together, under their shot
    jobs = _chained(ws, store, jobs)
    records = store.get_many(j.key for j in jobs) if store else {}
    outputs = store.all_outputs() if store else {}
    renders_by_key = {key: _renders_created(store, key) for key in dict.fromkeys(j.key for j in jobs)} if store else {}

    other_keys = {o.key for j in jobs if (o := outputs.get(str(j.output))) is not None and o.key != j.key}
    others = store.get_many(other_keys) if store and other_keys else {}
    costs = ledger.ledger(store).by_key() if store else {}
    report_jobs = [
        _job(i, job, records.get(job.key), outputs.get(str(job.output)), renders_by_key.get(job.key, 0), base, others, costs.get(job.key))
        for i, job in enumerate(jobs)
    ]
    _add_posters(report_jobs, jobs, outputs, base)
    summary = _summary(report_jobs, records, renders_by_key)
    if store:
        summary.spend = ReportSpend.of(ledger.ledger(store, manifests=[m.path for m in ws.manifests]), since)
    _add_picks(ws, report_jobs, jobs, store)
    manifest_paths = [_relative_display(Path(m.path), base) for m in ws.manifests]
    title = ", ".join(Path(m.path).name for m in ws.manifests)
    report = Report(
        title=title,
        manifests=manifest_paths,
        state_dir=_relative_display(ws.state_dir, base),
        simulated=ws.sim,
        generated_at=now if now is not None else time.time(),
        jobs=report_jobs,
        summary=summary,
        has_state=store is not None,
    )
    report.cuts = _cuts(ws, store, jobs, outputs, base)
    return report


# --- chained shots, posters, cuts (issue 14) -------------------------------------------------------

def _chained(ws: "Workspace", store: Store | None, jobs: list[Any]) -> list[Any]:
    """``jobs`` with each chained shot whose source's frame is known replaced by its resolved
    copy, so its card shows the render of that frame (and the frame as its first image)."""
    from . import chain

    if store is None:
        return jobs
    manifests = chain.resolved(ws.manifests, store)
    if all(a is b for a, b in zip(manifests, ws.manifests)):
        return jobs  # no chained shot resolved: nothing to replace
    resolved = {chain.job_id(j): j for m in manifests for j in m.jobs}
    return [resolved.get(chain.job_id(job), job) for job in jobs]


def _known_sha256(path: Path, out: OutputRecord | None, key: str | None = None) -> str | None:
    """The sha256 of the video at ``path`` as recorded, when its record still describes the file
    (same size and mtime: nothing is hashed here)."""
    if out is None or (key is not None and out.key != key):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return out.sha256 if (st.st_size, st.st_mtime_ns) == (out.size, out.mtime_ns) else None


def _poster(video: Path, sha256: str | None, base: Path) -> str | None:
    """The poster frame of ``video``, extracted once per video (cached by its hash beside the
    report), as a URL relative to the report; None when the video is unknown or unreadable."""
    from . import media

    if sha256 is None:
        return None
    try:
        return relative_url(media.poster_file(video, base / media.POSTERS_FOLDER, sha256=sha256), base)
    except (MediaError, OSError) as e:
        log.info("no poster for %s: %s", video, e)
        return None


def _add_posters(report_jobs: list[ReportJob], jobs: list[Any], outputs: dict[str, OutputRecord], base: Path) -> None:
    for card, job in zip(report_jobs, jobs):
        if card.video_src is not None:
            card.poster_src = _poster(Path(job.output), _known_sha256(Path(job.output), outputs.get(str(job.output)), job.key), base)


def _cuts(ws: "Workspace", store: Store | None, jobs: list[Any], outputs: dict[str, OutputRecord], base: Path) -> list[ReportCut]:
    """Each sequence's cut and contact sheet (see :class:`ReportCut`)."""
    from . import chain, media

    found: list[ReportCut] = []
    by_id = {chain.job_id(j): j for j in jobs}
    for manifest in ws.manifests:
        if not getattr(manifest, "sequences", None):
            continue
        takes, chosen = chain.takes_and_picks(manifest.path, (by_id.get(chain.job_id(job), job) for job in manifest.jobs))
        for sequence in manifest.sequences:
            clips: list[tuple[Path, str | None]] = []
            for shot in sequence.shots:
                source = chain.source_of(shot, takes, chosen)
                if not isinstance(source, str):
                    clips.append((Path(source.output), _known_sha256(Path(source.output), outputs.get(str(source.output)), source.key)))
            inputs = [sha for _, sha in clips]
            sheet = None
            if clips and len(clips) == len(sequence.shots) and all(inputs):
                sheet = _contact_sheet([p for p, _ in clips], [s for s in inputs if s], base)
            record = store.cut(sequence.output) if store is not None else None
            video = Path(sequence.output)
            sha = _known_sha256(video, None if record is None else OutputRecord(record.path, "", None, None, record.size, record.sha256, record.mtime_ns, record.built_at))
            exists = video.exists()
            if not exists:
                note = "not joined yet: `vidbatch run` joins it once every shot has a video"
            elif record is not None and record.inputs == inputs:
                note = "up to date"
            else:
                note = "joined from other videos than the shots have now; `vidbatch run` joins it again"
            duration = None
            if exists:
                try:
                    duration = media.probe(video).duration
                except MediaError:
                    duration = None
            found.append(
                ReportCut(
                    name=sequence.name,
                    manifest=_relative_display(Path(manifest.path), base),
                    shots=list(sequence.shots),
                    output=_relative_display(video, base),
                    video_src=relative_url(video, base) if exists else None,
                    poster_src=_poster(video, sha, base) if exists else None,
                    sheet_src=sheet,
                    duration=duration,
                    note=note,
                )
            )
    return found


def _contact_sheet(clips: list[Path], inputs: list[str], base: Path) -> str | None:
    """The contact sheet of ``clips`` (one frame per shot), made once per set of videos (cached
    by their hashes, in order, in :data:`vidbatch.media.POSTERS_FOLDER`), as a URL relative to
    the report."""
    from . import media

    target = base / media.POSTERS_FOLDER / media.sheet_file_name(inputs)
    if not target.is_file():
        try:
            files.write_bytes(target, media.contact_sheet(clips), durable=False)
        except (MediaError, OSError) as e:
            log.info("no contact sheet of %s: %s", ", ".join(map(str, clips)), e)
            return None
    return relative_url(target, base)


def _add_picks(ws: "Workspace", report_jobs: list[ReportJob], jobs: list[Any], store: Store | None) -> None:
    """Each card's shot, take, the shot's number of takes and the picks file's decision on it
    (a pick of a render the take no longer holds is stale)."""
    from . import chain
    from . import picks as picks_mod

    by_manifest = {str(m.path): picks_mod.load(m.path, m.jobs) for m in ws.manifests}
    stale = chain.stale_picks(jobs, store)
    for card, job in zip(report_jobs, jobs):
        card.shot = getattr(job, "shot", "") or job.name
        card.take = getattr(job, "take", 1)
        found = by_manifest.get(str(job.manifest))
        if found is not None:
            card.takes = len(found.takes_of(card.shot))
            card.pick = found.status(card.shot, card.take)
            card.pick_stale = stale.get(chain.job_id(job), "") if card.pick == "picked" else ""
        if card.takes > 1 and card.video_src is not None and card.video_sha256 is None:
            # a file the state has no record of (replaced by hand): what is picked is what is shown
            card.video_sha256 = picks_mod.video_sha256(Path(job.output))


def render_html(report: Report, *, refresh: float | None = None) -> str:
    """The page. ``refresh``: reload every so many seconds while any job is unfinished."""
    live = bool(refresh) and report.summary.unfinished > 0
    html: str = _template().render(
        report=report,
        refresh=max(1, round(refresh)) if live and refresh else None,
        state_order=[s for s in STATE_ORDER if s in report.summary.counts],
    )
    return html


@functools.lru_cache(maxsize=1)
def _template() -> Any:
    """The page template, compiled once per process (a live report is rendered again and again)."""
    import jinja2  # only when a report is made: keeps `vidbatch --help` light

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vidbatch", "templates"),
        autoescape=True,  # every value is user text unless the template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human_seconds"] = human_seconds
    env.filters["human_bytes"] = human_bytes
    env.filters["local_time"] = local_time
    env.filters["iso_time"] = iso_time
    return env.get_template("report.html.j2")


def write_report(ws: "Workspace", out: Path | str, *, refresh: float | None = None, since: float | None = None) -> Report:
    """Build the report from the state as it is now and write it to ``out`` atomically (a browser
    never sees half a page). Safe to call while a run holds the state folder: it only reads.
    Creates ``out``'s folder if needed. Returns what it wrote; a page that cannot be written (a
    file where its folder should be, a read-only or full disk) is a :class:`VidbatchError`."""
    out = Path(out)
    store = Store.open_for_reading(ws.state_dir)
    try:
        check_report_path(ws, out, store)
        report = build_report(ws, store, out, since=since)
    finally:
        if store is not None:
            store.close()
    html = render_html(report, refresh=refresh)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Staged and renamed like every file vidbatch writes; not fsynced: the page is rewritten often and rebuilt on demand.
        files.write_text(out, html, durable=False)
    except OSError as e:
        why = "a file stands where a folder should be" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror or e
        raise VidbatchError(f"could not write the report {out}: {why}; check that its folder can be made and written to") from None
    return report


def check_report_path(ws: "Workspace", out: Path | str, store: Store | None = None) -> None:
    """UsageError when the page would replace a file it must never replace: a manifest, a job's
    output or a sequence's cut, or a video the state records (a typo in ``-o`` must not cost a
    render)."""
    from .errors import UsageError

    target = Path(out).expanduser().resolve()
    kept = [*(m.path for m in ws.manifests), *(j.output for j in ws.jobs), *(s.output for m in ws.manifests for s in m.sequences)]
    kept += list(store.all_outputs()) if store is not None else []
    if any(Path(p).expanduser().resolve() == target for p in kept):
        raise UsageError(f"the report cannot be written to {out}: that is a manifest or a video vidbatch keeps; choose another file (e.g. report.html)")


class ReportWriter:
    """A run callback that keeps a report current: pass it (or chain it) as ``on_event``.

    It rewrites the page after events that change a card (submitted, rendered, downloaded,
    failed...), at most once every ``min_interval`` seconds, and never more often than ten times
    the last write took: a page of 10,000 jobs takes seconds to build, and the run it reports on
    must not spend more than a tenth of its time on it. Events in between are not lost: the next
    write (or :meth:`flush`, or :meth:`close`) includes them. The page reloads itself every
    ``refresh`` seconds while jobs are unfinished. Call :meth:`close` when the run ends for the
    final page (which no longer reloads). A failure to write is logged, never raised: a report
    must not stop a run. Thread-safe.

    ::

        writer = ReportWriter(ws, Path("renders/report.html"))
        try:
            project.run(ws, client, options, on_event=lambda e: (reporter(e), writer(e)))
        finally:
            writer.close()

    In watch mode, where manifests come and go, pass a function that returns the current
    workspace instead of a workspace.
    """

    def __init__(
        self,
        ws: "Workspace | Callable[[], Workspace]",
        out: Path | str,
        *,
        min_interval: float = 2.0,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ws = ws  # or a function returning the current one (watch reloads manifests)
        self.out = Path(out)
        self.min_interval = min_interval
        self.refresh = refresh
        self.clock = clock
        self.writes = 0
        self._last: float | None = None  # when the last write ended
        self._gap = min_interval  # the wait before the next write
        self._dirty = False
        self._failed: str | None = None  # why the last write failed, said once
        self._lock = threading.Lock()
        self.since = time.time()  # the run starts now: the page shows what it spent

    def __call__(self, event: "RunEvent") -> None:
        if event.kind not in REFRESH_EVENTS:
            return
        with self._lock:
            self._dirty = True
            if self._last is None or self.clock() - self._last >= self._gap or event.kind == "finish":
                self._write(self.refresh)

    def flush(self) -> None:
        """Write now if anything changed since the last write."""
        with self._lock:
            if self._dirty:
                self._write(self.refresh)

    def close(self) -> None:
        """The final page: written once more, without live refresh."""
        with self._lock:
            self._write(None)

    def _write(self, refresh: float | None) -> None:
        started = self.clock()
        try:
            ws = self.ws() if callable(self.ws) else self.ws
            write_report(ws, self.out, refresh=refresh, since=self.since)
            self.writes += 1
        except VidbatchError as e:  # the page cannot be written there: say so (once), keep rendering
            if str(e) != self._failed:
                log.warning("%s", e)
            self._failed = str(e)
        except Exception:  # noqa: BLE001 - the report is a side view; log the bug, keep rendering
            log.exception("could not write the report %s", self.out)
        self._last = self.clock()
        self._gap = max(self.min_interval, 10 * (self._last - started))
        self._dirty = False


def _job(index: int, job: Any, rec: RenderRecord | None, out: OutputRecord | None, renders: int, base: Path, others: dict[str, RenderRecord] | None = None, cost: ledger.Tally | None = None) -> ReportJob:
    summary = rules.summarize(job.identity_request())
    state = rec.state.value if rec else RenderState.NEW.value
    width, height = (rec.video_width, rec.video_height) if rec and rec.video_width and rec.video_height else rules.output_size(job.identity_request())
    prompt = job.request.get("prompt") or ""
    model = str(job.request.get("model") or summary.model)
    mode = job.mode if isinstance(job.mode, facts.Mode) else facts.Mode(job.mode)

    output = Path(job.output)
    video_src, video_note, video_prompt, size, video_sha256 = None, None, None, None, None
    try:
        st = output.stat()
    except OSError:
        st = None
    if st is not None:
        video_src = relative_url(output, base)
        size = st.st_size
        video_sha256 = _known_sha256(output, out)
        if out is not None and out.key != job.key:
            if state == RenderState.DONE.value:  # as `vidbatch status` says: not this request's video
                state = OUTDATED
            other = (others or {}).get(out.key)
            video_prompt = other.prompt if other is not None else None
            video_note = "this file holds another version of this job (rendered from the prompt below, not the job's); the next run puts this version's video in place"
        elif out is not None and rec is not None and rec.video_sha256 and out.sha256 != rec.video_sha256:
            video_note = "an earlier render of this request (it was rendered again since, e.g. with --force)"
        elif out is not None and out.size != st.st_size:
            video_note = "the file changed since it was downloaded"
        elif out is None:
            video_note = "this file is not recorded in the state"
    placeholder = PLACEHOLDERS.get(state, "No video")
    if state == RenderState.RUNNING.value and rec and rec.task_id:
        placeholder = f"Rendering… (task {rec.task_id})"

    info = rec.error_info if rec else None
    error = ReportError.from_info(info, blocking=state in (RenderState.FAILED.value, RenderState.UNCERTAIN.value)) if info else None

    return ReportJob(
        index=index,
        name=job.name,
        manifest=_relative_display(Path(job.manifest), base),
        state=state,
        model=model,
        mode=mode.value,
        mode_label=mode.label,
        duration=summary.duration,
        resolution=summary.resolution,
        width=int(width),
        height=int(height),
        prompt=prompt,
        prompt_parts=highlight_prompt(prompt, model),
        output=_relative_display(output, base),
        video_src=video_src,
        video_note=video_note,
        video_prompt=video_prompt,
        placeholder=placeholder,
        video_bytes=size,
        task_id=rec.task_id if rec else None,
        file_id=rec.file_id if rec else None,
        attempts=rec.attempts if rec else 0,
        renders=renders,
        error=error,
        submitted_at=rec.submitted_at if rec else None,
        rendered_at=rec.rendered_at if rec else None,
        downloaded_at=rec.downloaded_at if rec else None,
        images=_images(job.request, base),
        origin=getattr(job, "origin", "") or "",
        warnings=list(getattr(job, "warnings", []) or []),
        key=job.key,
        cost=cost.describe() if cost is not None else None,
        video_sha256=video_sha256,
    )


def _summary(jobs: list[ReportJob], records: dict[str, RenderRecord], renders_by_key: dict[str, int]) -> ReportSummary:
    counts = Counter(j.state for j in jobs)
    keys = {j.key for j in jobs}
    latest = [records[k] for k in keys if k in records]
    timed = [r.rendered_at - r.submitted_at for r in latest if r.submitted_at and r.rendered_at and r.rendered_at >= r.submitted_at]
    starts = [r.submitted_at for r in latest if r.submitted_at and r.downloaded_at]
    ends = [r.downloaded_at for r in latest if r.submitted_at and r.downloaded_at]
    shown = [j for j in jobs if j.video_src and j.video_bytes is not None]
    return ReportSummary(
        jobs=len(jobs),
        counts={s: counts[s] for s in STATE_ORDER if counts.get(s)},
        renders_created=sum(renders_by_key.values()),
        maybe_created=sum(1 for r in latest if r.state is RenderState.UNCERTAIN),
        render_seconds=sum(timed),
        renders_timed=len(timed),
        span_seconds=(max(ends) - min(starts)) if starts else None,
        bytes_on_disk=sum(j.video_bytes or 0 for j in shown),
        videos_on_disk=len(shown),
    )


def _renders_created(store: Store, key: str) -> int:
    return sum(1 for e in store.events(key) if e.event == "submitted")


def _images(request: dict[str, Any], base: Path) -> list[ReportImage]:
    """The job's local input images; remote URLs are not linked (the page makes no network
    requests) and data URLs are not copied in (they would bloat the page)."""
    found: list[ReportImage] = []

    def add(label: str, ref: Any) -> None:
        path = getattr(ref, "path", None)
        if path is not None and Path(path).exists():
            found.append(ReportImage(label, relative_url(Path(path), base)))

    add("first frame", request.get("first_frame_image"))
    add("last frame", request.get("last_frame_image"))
    for subject in request.get("subject_reference") or []:
        if isinstance(subject, dict):
            for ref in subject.get("image") or []:
                add("subject", ref)
    return found


# --- small pure helpers ---------------------------------------------------------------------------


def highlight_prompt(prompt: str, model: str | None = None) -> list[PromptPart]:
    """Split a prompt into text and camera-command brackets, each bracket classified (see
    :class:`PromptPart`). The checks are :func:`vidbatch.rules.check_camera_commands`'s."""
    spec = facts.MODELS.get(model or "")
    supports = spec.camera_commands if spec else True
    parts: list[PromptPart] = []
    pos = 0
    for group in rules.camera_brackets(prompt):
        if group.start > pos:
            parts.append(PromptPart(prompt[pos : group.start]))
        bracket, commands = group.text, group.commands
        warnings = [w.message for w in rules.check_camera_commands(bracket)]
        if not commands or any(c not in facts.CAMERA_COMMANDS for c in commands):
            note = "; ".join(warnings) or f"{bracket} is not a camera command and will reach the model as text"
            parts.append(PromptPart(bracket, "unknown", note))
        elif not supports:
            parts.append(PromptPart(bracket, "unsupported", f"{model} does not take camera commands: it reads {bracket} as text"))
        else:
            english = ", ".join(dict.fromkeys(facts.CAMERA_COMMANDS[c] for c in commands))
            note = "; ".join([f"camera: {english}", *warnings])
            parts.append(PromptPart(bracket, "cam", note))
        pos = group.end
    if pos < len(prompt):
        parts.append(PromptPart(prompt[pos:]))
    return parts


def relative_url(target: Path, base_dir: Path) -> str:
    """``target`` as a URL relative to ``base_dir``, percent-encoded (spaces, ``#``, ``?``, ``%``,
    non-ASCII). Across drives (Windows) there is no relative path: a ``file:`` URL instead."""
    try:
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(base_dir))
    except ValueError:
        return Path(os.path.abspath(target)).as_uri()
    return urllib.parse.quote(PurePath(rel).as_posix(), safe="/")


def _relative_display(path: Path, base: Path) -> str:
    try:
        return PurePath(os.path.relpath(os.path.abspath(path), base)).as_posix()
    except ValueError:
        return str(path)


def human_bytes(n: int | float) -> str:
    """1536000 -> "1.5 MB" (decimal units, as file browsers show sizes)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_seconds(seconds: float | None) -> str:
    """125 -> "2 m 05 s"; 3725 -> "1 h 02 m"; 8.4 -> "8.4 s"."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def local_time(ts: float | None) -> str:
    """A Unix time as local "YYYY-MM-DD HH:MM" (the page's ``<time datetime>`` carries UTC)."""
    if ts is None:
        return "–"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def iso_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def counts_line(summary: ReportSummary) -> str:
    """"12 jobs: 10 done, 1 failed, 1 new" (for the CLI)."""
    parts = ", ".join(f"{n} {s}" for s, n in summary.counts.items())
    return f"{summary.jobs} job{'s' if summary.jobs != 1 else ''}" + (f": {parts}" if parts else "")
