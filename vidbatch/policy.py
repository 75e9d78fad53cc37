"""What the runner does after a call fails: one table, read by one place (``Runner._on_failure``).

The table maps (call, error kind) to a :class:`Verdict`; :func:`classify` turns an exception of
:mod:`vidbatch.errors` into its :class:`ErrorKind`, and :func:`decide` adds the two things a row
cannot know: how many rounds this render has already spent on the call (retries are bounded per
render, then the job is left for the next run) and how long to wait.

::

                    create          poll            download        copy
    transient       RETRY           RETRY           RETRY           LEAVE
    rate_limited    PAUSE           PAUSE           PAUSE           LEAVE
    maybe_submitted UNCERTAIN       RETRY           LEAVE           LEAVE
    job_failed      FAIL_JOB        FAIL_JOB        LEAVE           LEAVE
    gone            LEAVE           GONE            GONE            LEAVE
    account         STOP_CREATING   STOP_CREATING   STOP_CREATING   LEAVE
    config          STOP_CREATING   STOP_CREATING   STOP_CREATING   LEAVE
    download_error  LEAVE           RETRY           RETRY           LEAVE
    local_write     LEAVE           LEAVE           LEAVE           LEAVE
    other_api       LEAVE           RETRY           LEAVE           LEAVE
    internal        RAISE           RAISE           RAISE           RAISE

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
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from typing import Mapping

from . import errors


class Call(str, enum.Enum):
    CREATE = "create"
    POLL = "poll"
    DOWNLOAD = "download"
    COPY = "copy"  # a verified video copied to another output (reuse)

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


_ROWS: dict[ErrorKind, tuple[Verdict, Verdict, Verdict, Verdict]] = {
    #                          create                 poll                   download               copy
    ErrorKind.TRANSIENT: (Verdict.RETRY, Verdict.RETRY, Verdict.RETRY, Verdict.LEAVE),
    ErrorKind.RATE_LIMITED: (Verdict.PAUSE, Verdict.PAUSE, Verdict.PAUSE, Verdict.LEAVE),
    ErrorKind.MAYBE_SUBMITTED: (Verdict.UNCERTAIN, Verdict.RETRY, Verdict.LEAVE, Verdict.LEAVE),
    ErrorKind.JOB_FAILED: (Verdict.FAIL_JOB, Verdict.FAIL_JOB, Verdict.LEAVE, Verdict.LEAVE),
    ErrorKind.GONE: (Verdict.LEAVE, Verdict.GONE, Verdict.GONE, Verdict.LEAVE),
    ErrorKind.ACCOUNT: (Verdict.STOP_CREATING, Verdict.STOP_CREATING, Verdict.STOP_CREATING, Verdict.LEAVE),
    ErrorKind.CONFIG: (Verdict.STOP_CREATING, Verdict.STOP_CREATING, Verdict.STOP_CREATING, Verdict.LEAVE),
    ErrorKind.DOWNLOAD: (Verdict.LEAVE, Verdict.RETRY, Verdict.RETRY, Verdict.LEAVE),
    ErrorKind.LOCAL_WRITE: (Verdict.LEAVE, Verdict.LEAVE, Verdict.LEAVE, Verdict.LEAVE),
    ErrorKind.OTHER_API: (Verdict.LEAVE, Verdict.RETRY, Verdict.LEAVE, Verdict.LEAVE),
    ErrorKind.INTERNAL: (Verdict.RAISE, Verdict.RAISE, Verdict.RAISE, Verdict.RAISE),
}
_COLUMN = {Call.CREATE: 0, Call.POLL: 1, Call.DOWNLOAD: 2, Call.COPY: 3}

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


def decide(call: Call, error: BaseException, *, spent: Mapping[tuple[Call, Verdict], int], limits: Limits, rate_limited_in_row: int = 1) -> Decision:
    """The verdict on ``error`` from ``call``. ``spent`` counts the render's earlier failures per
    (call, table verdict); ``rate_limited_in_row`` counts rate limits since the last success, this
    one included (for the backoff when the server gives no ``Retry-After``)."""
    kind = classify(error)
    verdict = TABLE[(call, kind)]
    rounds = spent.get((call, verdict), 0) + 1
    if verdict is Verdict.RETRY:
        bound = {Call.CREATE: limits.create_rounds, Call.POLL: limits.poll_rounds}.get(call, limits.download_rounds)
        if rounds >= bound:
            return Decision(Verdict.LEAVE, kind, verdict)
        delay = min(limits.retry_max, max(limits.poll_interval, limits.retry_base) * 2.0 ** (rounds - 1)) if call is Call.POLL else 0.0
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
