"""What a run reports: event kinds and outcomes as values, shared by the runner, the watcher,
the CLI's progress display and the report. Free strings across layers drift; these do not.

``EventKind`` is a ``str`` enum, so ``kind == "submitted"`` still holds and JSON lines carry the
plain value.
"""

from __future__ import annotations

import enum


class EventKind(str, enum.Enum):
    # the runner's
    START = "start"
    SKIP = "skip"
    SUBMIT = "submit"
    SUBMITTED = "submitted"
    STATUS = "status"
    RENDERED = "rendered"
    DOWNLOADED = "downloaded"
    REUSED = "reused"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    RATE_LIMITED = "rate_limited"
    RETRY = "retry"
    ERROR = "error"
    ACCOUNT_STOP = "account_stop"
    INTERRUPTED = "interrupted"
    DROPPED = "dropped"
    IDLE = "idle"
    FINISH = "finish"
    STATE_ERROR = "state_error"  # the state database could not be written: creating stopped
    UNSAVED = "unsaved"  # a task id the state could not keep: the user must note it
    CANCELLED = "cancelled"  # a queued MiniMax-H3 task no job wants any more was cancelled (not charged)
    WAIT = "wait"  # a chained shot waits for its source to render in this run
    BLOCKED = "blocked"  # a chained shot cannot start in this run (its source failed, no pick...)
    JOINED = "joined"  # a sequence of shots was joined into its cut (local, no API call)
    # the watcher's
    WAITING = "waiting"
    WATCHING = "watching"
    IGNORED = "ignored"
    CHANGED = "changed"
    INVALID = "invalid"
    WARNING = "warning"
    REMOVED = "removed"
    REFUSED = "refused"
    DECLINED = "declined"
    STALE = "stale"

    def __str__(self) -> str:
        return self.value


class Stop(str, enum.Enum):
    """Why a run or a watch session ended early (``None`` when it ran to the end)."""

    ACCOUNT = "account"  # the account, key or host refused: creating stopped
    INTERRUPTED = "interrupted"  # Ctrl-C
    STOPPED = "stopped"  # stop() was called (watch)
    STATE = "state"  # the state database could not be written: creating stopped
    GONE = "gone"  # the watched folder was deleted or moved away (watch)

    def __str__(self) -> str:
        return self.value
