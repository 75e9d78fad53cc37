"""What the runner does after a call fails: one table, read by one place (``Runner._on_failure``).

The table maps (call, error kind) to a :class:`Verdict`; :func:`classify` turns an exception of
:mod:`vidbatch.errors` into its :class:`ErrorKind`, and :func:`decide` adds the two things a row
cannot know: how many rounds this render has already spent on the call (retries are bounded per
render, then the job is left for the next run) and how long to wait.

::

                    create          poll            download        copy            reconcile
    transient       RETRY           RETRY           RETRY           LEAVE           RETRY
    rate_limited    PAUSE           PAUSE           PAUSE           LEAVE           PAUSE
    maybe_submitted UNCERTAIN       RETRY           LEAVE           LEAVE           RETRY
    job_failed      FAIL_JOB        FAIL_JOB        LEAVE           LEAVE           LEAVE
    gone            LEAVE           GONE            GONE            LEAVE           LEAVE
    account         STOP_CREATING   STOP_CREATING   STOP_CREATING   LEAVE           STOP_CREATING
    config          STOP_CREATING   STOP_CREATING   STOP_CREATING   LEAVE           STOP_CREATING
    download_error  LEAVE           RETRY           RETRY           LEAVE           LEAVE
    local_write     LEAVE           LEAVE           LEAVE           LEAVE           LEAVE
    other_api       LEAVE           RETRY           LEAVE           LEAVE           LEAVE
    internal        RAISE           RAISE           RAISE           RAISE           RAISE

``reconcile`` is the task list asked after a V2 create's answer was lost (see below); LEAVE there
leaves the job ``uncertain`` *unresolved*: the next run asks the task list again.

Why these verdicts:

* A create is the only call that costs money. Only a create whose answer was lost is
  ``UNCERTAIN`` (the API has no idempotency key); every other failed create made no task, so the
  job stays ``new`` and the next run creates it.
* ``GONE``: MiniMax no longer knows the task or file (expired, another account). Asking again
  cannot help and rendering again is a new charge, so the render is recorded ``gone`` and the
  user decides (``--force NAME``). It is not the manifest's fault, so never ``FAIL_JOB``.
* ``STOP_CREATING``: the account, key or host is wrong, so every other create would fail the same
  way. A refused create goes back to the front of the queue (it stays ``new``); a poll or download
  refused for the same reason is left as it is in the state (``running``/``rendered``), and the
  next run resumes it without paying again.
* ``PAUSE`` (rate limited) waits the server's ``Retry-After`` when it gave one, exactly (a short
  one is a short pause); otherwise a backoff that starts at one create slot (``60 / rpm``) and
  doubles per rate limit in a row, up to ``rate_limit_pause``. On create the pause holds every
  create, and the job goes back to the front of the queue.
* A render that keeps failing is not retried for ever: ``RETRY`` and ``PAUSE`` are bounded per
  render and call; past the bound the verdict becomes ``LEAVE`` (nothing is lost: the state keeps
  what the next run needs).
* ``RAISE``: an exception outside the tree is a bug in vidbatch; hiding it would hide the bug.
* A create of Video Generation V2 (MiniMax-H3) whose answer was lost is ``RECONCILE``, not
  ``UNCERTAIN``: V2 has a task list, so the runner asks it which tasks were created in the window
  of that create and judges the answer with :func:`judge_lost_create` (none: create again; one
  that matches and nothing else: adopt it; otherwise: ``uncertain``, with the candidates).

The lost-create window
----------------------
:func:`lost_create_window` bounds, on the *server's* clock, when a lost create's task (if any)
was made. vidbatch keeps at most one V2 create on the wire, settles a lost one before the next V2
create is sent, and sends its next V2 create only :data:`facts.V2_CREATED_AT_RESOLUTION` after
the previous one was answered (so two of its tasks never share a ``created_at``). Then:

* **after** (hard: no task of this create can be older) is the later of (a) one resolution step
  after the ``created_at`` of the last V2 task this state recorded before the create's intent,
  and (b) the intent's local time moved to the server's clock by the skew the list answer's
  ``Date`` header shows, less :data:`CLOCK_MARGIN` (without a ``Date`` header, less
  :data:`CLOCK_MARGIN_NO_DATE`);
* **sure_after** (soft) is the intent moved to the server's clock less :data:`CLOCK_TIGHT` (the
  ``Date`` header's whole seconds): a task older than that is in the window only if the clocks
  were misjudged, so it is never *adopted* (without a ``Date`` header nothing is adopted);
* **before**: one resolution step before the ``created_at`` of the first V2 task this state
  recorded *after* the intent (only when an earlier look at the list failed and creates went
  on), else no bound (now).

A task with no ``created_at`` is counted inside the window (the safe side) and never adopted.
The list only reaches back :data:`facts.V2_LIST_DAYS` days: a create older than that cannot be
settled.

What the judgement rests on: the list shows every task of the account (of the last 7 days) as
soon as its create has been answered, and a foreign task of the same shape made in the seconds
of a lost create whose own request never arrived is indistinguishable from that create's task.
The window makes that interval as short as the clocks allow; inside it, one unrecorded task of
the right shape is adopted.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from . import errors, facts


class Call(str, enum.Enum):
    CREATE = "create"
    POLL = "poll"
    DOWNLOAD = "download"
    COPY = "copy"  # a verified video copied to another output (reuse)
    RECONCILE = "reconcile"  # the V2 task list, asked after a create's answer was lost
    #: cancelling a queued V2 task no job wants any more: best effort, outside the table (a
    #: failure is an outcome, see runner.cancel_task: the task runs on and its render is kept)
    CANCEL = "cancel"

    def __str__(self) -> str:
        return self.value


class ErrorKind(str, enum.Enum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    MAYBE_SUBMITTED = "maybe_submitted"
    JOB_FAILED = "job_failed"
    GONE = "gone"  # the API no longer knows the task or file
    ACCOUNT = "account"  # incl. credentials and an unreachable host (AccountError subclasses)
    CONFIG = "config"
    DOWNLOAD = "download_error"
    LOCAL_WRITE = "local_write"  # OSError: disk full, permissions
    OTHER_API = "other_api"  # any other VidbatchError (an answer outside the contract)
    INTERNAL = "internal"  # not a VidbatchError: a bug

    def __str__(self) -> str:
        return self.value


class Verdict(str, enum.Enum):
    RETRY = "retry"  # the same call again soon (create: back of the queue; poll: after a backoff)
    PAUSE = "pause"  # the same call again after a pause; on create, every create waits
    FAIL_JOB = "fail_job"  # record the job failed; the others go on
    GONE = "gone"  # record the render gone: only a forced render makes it again
    STOP_CREATING = "stop_creating"  # no more creates in this run; see the module docstring
    LEAVE = "leave"  # leave the job unfinished; the next run picks it up from the state
    UNCERTAIN = "uncertain"  # a create may have been paid for: never create it again silently
    RECONCILE = "reconcile"  # a V2 create's answer was lost: ask the task list what happened
    RAISE = "raise"  # a bug: let it propagate

    def __str__(self) -> str:
        return self.value


def classify(error: BaseException) -> ErrorKind:
    """The kind of ``error``, by its class in :mod:`vidbatch.errors` (most specific first)."""
    if isinstance(error, errors.RateLimitedError):
        return ErrorKind.RATE_LIMITED
    if isinstance(error, errors.TransientError):
        return ErrorKind.TRANSIENT
    if isinstance(error, errors.MaybeSubmittedError):
        return ErrorKind.MAYBE_SUBMITTED
    if isinstance(error, errors.JobFailedError):
        return ErrorKind.JOB_FAILED
    if isinstance(error, errors.TaskGoneError):
        return ErrorKind.GONE
    if isinstance(error, errors.AccountError):
        return ErrorKind.ACCOUNT
    if isinstance(error, errors.ConfigError):
        return ErrorKind.CONFIG
    if isinstance(error, errors.DownloadError):
        return ErrorKind.DOWNLOAD
    if isinstance(error, errors.VidbatchError):
        return ErrorKind.OTHER_API
    if isinstance(error, OSError):
        return ErrorKind.LOCAL_WRITE
    return ErrorKind.INTERNAL


_V = Verdict
_ROWS: dict[ErrorKind, tuple[Verdict, Verdict, Verdict, Verdict, Verdict]] = {
    #                          create            poll              download          copy      reconcile
    ErrorKind.TRANSIENT: (_V.RETRY, _V.RETRY, _V.RETRY, _V.LEAVE, _V.RETRY),
    ErrorKind.RATE_LIMITED: (_V.PAUSE, _V.PAUSE, _V.PAUSE, _V.LEAVE, _V.PAUSE),
    ErrorKind.MAYBE_SUBMITTED: (_V.UNCERTAIN, _V.RETRY, _V.LEAVE, _V.LEAVE, _V.RETRY),
    ErrorKind.JOB_FAILED: (_V.FAIL_JOB, _V.FAIL_JOB, _V.LEAVE, _V.LEAVE, _V.LEAVE),
    ErrorKind.GONE: (_V.LEAVE, _V.GONE, _V.GONE, _V.LEAVE, _V.LEAVE),
    ErrorKind.ACCOUNT: (_V.STOP_CREATING, _V.STOP_CREATING, _V.STOP_CREATING, _V.LEAVE, _V.STOP_CREATING),
    ErrorKind.CONFIG: (_V.STOP_CREATING, _V.STOP_CREATING, _V.STOP_CREATING, _V.LEAVE, _V.STOP_CREATING),
    ErrorKind.DOWNLOAD: (_V.LEAVE, _V.RETRY, _V.RETRY, _V.LEAVE, _V.LEAVE),
    ErrorKind.LOCAL_WRITE: (_V.LEAVE, _V.LEAVE, _V.LEAVE, _V.LEAVE, _V.LEAVE),
    ErrorKind.OTHER_API: (_V.LEAVE, _V.RETRY, _V.LEAVE, _V.LEAVE, _V.LEAVE),
    ErrorKind.INTERNAL: (_V.RAISE, _V.RAISE, _V.RAISE, _V.RAISE, _V.RAISE),
}
_COLUMN = {Call.CREATE: 0, Call.POLL: 1, Call.DOWNLOAD: 2, Call.COPY: 3, Call.RECONCILE: 4}

#: The table itself: (call, error kind) -> verdict.
TABLE: dict[tuple[Call, ErrorKind], Verdict] = {(call, kind): row[col] for kind, row in _ROWS.items() for call, col in _COLUMN.items()}


@dataclass(frozen=True)
class Limits:
    """How far the runner goes before it leaves a job for the next run, and how long it waits."""

    create_rounds: int = 4  # tries of one render's create that fail transiently
    poll_rounds: int = 10  # polls of one task failing in a row
    download_rounds: int = 3  # tries of one render's download
    rate_limit_rounds: int = 30  # rate limits one render's call may meet
    rate_limit_pause: float = 30.0  # longest pause after a rate limit without Retry-After
    rate_limit_base: float = 12.0  # first such pause (one create slot at the rpm in use)
    poll_interval: float = 10.0
    retry_base: float = 1.0  # a failed poll waits max(poll_interval, retry_base) * 2**n ...
    retry_max: float = 300.0  # ... up to this


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    kind: ErrorKind
    counted: Verdict  # the table's verdict, under which this failure counts against its bound
    delay: float = 0.0  # seconds to wait before the call again (RETRY, PAUSE)

    @property
    def exhausted(self) -> bool:
        """RETRY or PAUSE turned into LEAVE: the render reached the bound."""
        return self.verdict is not self.counted


def decide(
    call: Call,
    error: BaseException,
    *,
    spent: Mapping[tuple[Call, Verdict], int],
    limits: Limits,
    rate_limited_in_row: int = 1,
    task_list: bool = False,
) -> Decision:
    """The verdict on ``error`` from ``call``. ``spent`` counts the render's earlier failures per
    (call, table verdict); ``rate_limited_in_row`` counts rate limits since the last success, this
    one included (for the backoff when the server gives no ``Retry-After``). ``task_list``: the
    render's API can list its tasks (V2), so a lost create is ``RECONCILE``, not ``UNCERTAIN``."""
    kind = classify(error)
    verdict = TABLE[(call, kind)]
    if verdict is Verdict.UNCERTAIN and task_list:
        verdict = Verdict.RECONCILE
    rounds = spent.get((call, verdict), 0) + 1
    if verdict is Verdict.RETRY:
        bound = {Call.CREATE: limits.create_rounds, Call.POLL: limits.poll_rounds, Call.RECONCILE: limits.create_rounds}.get(call, limits.download_rounds)
        if rounds >= bound:
            return Decision(Verdict.LEAVE, kind, verdict)
        delay = min(limits.retry_max, max(limits.poll_interval, limits.retry_base) * 2.0 ** (rounds - 1)) if call in (Call.POLL, Call.RECONCILE) else 0.0
        return Decision(verdict, kind, verdict, delay)
    if verdict is Verdict.PAUSE:
        if rounds >= limits.rate_limit_rounds:
            return Decision(Verdict.LEAVE, kind, verdict)
        return Decision(verdict, kind, verdict, rate_limit_pause(error, limits, rate_limited_in_row))
    return Decision(verdict, kind, verdict)


def rate_limit_pause(error: BaseException, limits: Limits, in_row: int) -> float:
    """The server's ``Retry-After`` when it said (never raised to a floor), else a backoff."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return max(0.0, float(retry_after))
    return min(limits.rate_limit_pause, limits.rate_limit_base * 2.0 ** max(0, in_row - 1))


def is_state_write_error(error: BaseException) -> bool:
    """A failure to write the state database (full disk, I/O error, a store refusing)."""
    return isinstance(error, (errors.StateError, sqlite3.Error))


# --- lost V2 creates: the task list's answer, judged ---------------------------------------------

#: Seconds of doubt around a time moved to the server's clock by its ``Date`` header: the header's
#: one-second resolution, the time between the intent's write and the create leaving, latency.
CLOCK_MARGIN = 60.0
#: The same without a ``Date`` header: the local clock may be off by this much.
CLOCK_MARGIN_NO_DATE = 15 * 60.0
#: How far before the intent (on the server's clock, by the ``Date`` header) a task of the create
#: can seem to be made: the header's whole seconds and the time to read it.
CLOCK_TIGHT = 2.0


class LostCreate(str, enum.Enum):
    """What the task list says of a V2 create whose answer was lost."""

    NONE = "none"  # no task of its shape in the window: it was never created; create it again
    ADOPT = "adopt"  # exactly one task in the window, of its shape: it is this create's
    AMBIGUOUS = "ambiguous"  # other tasks in the window too: cannot tell which (if any) is ours
    UNSURE = "unsure"  # one task of its shape, but too early to be surely ours (see Window.sure)
    UNREACHABLE = "unreachable"  # older than the list reaches back: cannot tell

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Shape:
    """What the task list shows of a V2 request: None is unknown and matches anything."""

    model: str | None
    duration: int | None
    resolution: str | None
    ratio: str | None
    task_type: str | None = None

    def matches(self, task: Any) -> bool:
        for name in ("model", "duration", "resolution", "ratio", "task_type"):
            mine, theirs = getattr(self, name), getattr(task, name, None)
            if mine is not None and theirs is not None and str(mine).lower() != str(theirs).lower():
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Shape":
        return cls(*(data.get(k) for k in ("model", "duration", "resolution", "ratio", "task_type")))


def v2_shape(body: Mapping[str, Any]) -> Shape:
    """The shape of a V2 request as the task list will show its task (the contract's defaults
    filled in: duration, resolution, and ``adaptive`` for a request with media). ``body`` is a
    create body (with ``content``) or vidbatch's flat form of one (a job's request)."""
    if "content" in body:
        content: list[Any] = body["content"] if isinstance(body.get("content"), list) else []
        media = any(isinstance(item, dict) and item.get("type") != "text" for item in content)
    else:
        media = any(body.get(name) for name in facts.V2_JOB_MEDIA_FIELDS)
    ratio = body.get("ratio") or (facts.V2_RATIO_WITH_MEDIA if media else None)
    return Shape(
        model=body.get("model"),
        duration=int(body.get("duration") or facts.V2_DEFAULT_DURATION),
        resolution=body.get("resolution") or facts.V2_DEFAULT_RESOLUTION,
        ratio=ratio,
        task_type=body.get("task_type"),
    )


@dataclass(frozen=True)
class Window:
    """When a lost create's task was made, on the server's clock (``before`` None: up to now);
    ``sure_after``: a task older than this is never adopted (see the module docstring)."""

    after: float
    before: float | None = None
    sure_after: float = float("inf")

    def holds(self, created_at: float | None) -> bool:
        if created_at is None:
            return True  # cannot be placed: counted in, the safe side
        return created_at >= self.after and (self.before is None or created_at <= self.before)

    def sure(self, created_at: float | None) -> bool:
        return created_at is not None and self.holds(created_at) and created_at >= self.sure_after


def lost_create_window(
    *,
    intent_at: float,
    local_now: float,
    server_now: float | None,
    previous_created_at: float | None,
    next_created_at: float | None,
    resolution: float = facts.V2_CREATED_AT_RESOLUTION,
) -> Window:
    """The window of a lost create (see the module docstring): ``intent_at`` and ``local_now``
    on the local clock, the rest on the server's."""
    if server_now is not None:
        intent = intent_at + (server_now - local_now)
        after, sure_after = intent - CLOCK_MARGIN, intent - CLOCK_TIGHT
    else:
        after, sure_after = intent_at - CLOCK_MARGIN_NO_DATE, float("inf")
    if previous_created_at is not None:
        after = max(after, previous_created_at + resolution)
    before = None if next_created_at is None else next_created_at - resolution
    return Window(after, before, max(after, sure_after))


@dataclass(frozen=True)
class Judgement:
    outcome: LostCreate
    task: Any = None  # the adopted task (ADOPT)
    candidates: tuple[str, ...] = ()  # ids of the unrecorded tasks in the window

    def describe(self) -> str:
        ids = ", ".join(self.candidates) or "none"
        return {
            LostCreate.NONE: "the task list shows no task of this request's shape in the window: it was never created",
            LostCreate.ADOPT: f"the task list shows exactly one new task in the window, of this request's shape: {ids}",
            LostCreate.AMBIGUOUS: f"the task list shows tasks this state did not create in the window, so which (if any) is this job's cannot be told: {ids}",
            LostCreate.UNSURE: f"the task list shows one new task of this request's shape, made before the create by the clocks as far as they can be read, so it may be someone else's: {ids}",
            LostCreate.UNREACHABLE: "the create is older than the task list reaches back",
        }[self.outcome]


def judge_lost_create(tasks: Sequence[Any], *, recorded: Collection[str], shape: Shape, window: Window, reachable: bool = True) -> Judgement:
    """What ``tasks`` (the task list: objects with ``task_id``, ``created_at`` and the shape's
    fields) say of a lost create of ``shape`` in ``window``, ``recorded`` being every task id the
    state knows. The candidates are the unrecorded tasks in the window; among them, none of our
    shape: it was never created; exactly one, of our shape and surely after the create's intent:
    adopt it; anything else: ambiguous (or unsure)."""
    if not reachable:
        return Judgement(LostCreate.UNREACHABLE)
    candidates = [t for t in tasks if t.task_id not in recorded and window.holds(t.created_at)]
    ids = tuple(t.task_id for t in candidates)
    matching = [t for t in candidates if shape.matches(t)]
    if not matching:
        return Judgement(LostCreate.NONE, candidates=ids)
    if len(candidates) > 1:
        return Judgement(LostCreate.AMBIGUOUS, candidates=ids)
    if not window.sure(matching[0].created_at):
        return Judgement(LostCreate.UNSURE, candidates=ids)
    return Judgement(LostCreate.ADOPT, matching[0], ids)
