"""vidbatch's exceptions: one tree, and the exit code each one ends a command with.

::

    VidbatchError                      exit 1 unless a subclass says otherwise
    ├── UsageError                     exit 2: a bad option or argument
    ├── ConfigError                    exit 2: missing API key, unreadable config file
    ├── ManifestError                  exit 2: the manifest cannot be turned into valid requests
    ├── StateError                     exit 1: the state database is unusable
    │   └── StateLockedError           exit 4: another vidbatch run holds the state folder
    └── ApiError                       a call to MiniMax (or the simulator) did not succeed
        ├── TransientError             retry is safe: timeouts, dropped connections, 5xx, 1000/1001/1013...
        │   └── RateLimitedError       retry is safe, after a longer pause: 429, 1002, 1039, 1041
        ├── MaybeSubmittedError        a create may have reached the server but its answer was lost;
        │                              retrying could pay twice, so the caller decides
        ├── JobFailedError             this job cannot succeed as written; others go on
        │   ├── InvalidRequestError    2013 invalid parameters
        │   ├── ContentFlaggedError    1026 input / 1027 output flagged as sensitive
        │   └── RenderFailedError      the task ended with status Fail/Failed
        ├── AccountError               exit 3: stop creating; nothing else will succeed (1008, 2038, 2056)
        │   └── CredentialsError       exit 3: the key is wrong or for the other region (1004, 2049)
        └── DownloadError              the video could not be fetched (after every fallback)

Every ``ApiError`` carries the call, the HTTP status, MiniMax's ``status_code`` and
``status_msg``, and the ``Trace-Id`` to quote to MiniMax support. ``retryable`` says whether
trying the same call again is safe. Messages never contain the API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

EXIT_OK = 0
EXIT_JOBS_FAILED = 1
EXIT_USAGE = 2
EXIT_ACCOUNT = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130


class VidbatchError(Exception):
    """Root of every error vidbatch raises on purpose."""

    exit_code = EXIT_JOBS_FAILED
    retryable = False


class UsageError(VidbatchError):
    exit_code = EXIT_USAGE


class ConfigError(VidbatchError):
    """Configuration is missing or unsafe (for example no API key)."""

    exit_code = EXIT_USAGE


# --- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong in a manifest, located as precisely as can be known."""

    file: str
    message: str
    job: str | None = None  # the job's rendered name, or "jobs[3]" before the name renders
    field: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "job": self.job, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        parts = [where]
        if self.job:
            parts.append(f"job {self.job}")
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join(parts) + f": {self.message}"


class ManifestError(VidbatchError):
    """The manifest is invalid. Nothing was sent, and nothing was written to state or outputs."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: Sequence[ManifestProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = "\n".join(str(p) for p in self.problems)
        tail = f"\n{count} problems; nothing was sent or written." if count > 1 else ""
        super().__init__(head + tail)


# --- state ------------------------------------------------------------------------------------


class StateError(VidbatchError):
    """The state database cannot be used as it is."""


class StateLockedError(StateError):
    exit_code = EXIT_LOCKED

    def __init__(self, lock_path: Path | str):
        self.lock_path = str(lock_path)
        super().__init__(
            f"another vidbatch run is using this state folder (lock {self.lock_path}); "
            "wait for it to finish, or pass --wait to queue behind it"
        )


# --- API --------------------------------------------------------------------------------------


@dataclass
class CallInfo:
    """Where an API error happened."""

    call: str  # "create", "query", "retrieve", "retrieve_content", "download"
    http_status: int | None = None
    status_code: int | None = None
    status_msg: str | None = None
    trace_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        bits = [f"call={self.call}"]
        if self.http_status is not None:
            bits.append(f"http={self.http_status}")
        if self.status_code is not None:
            bits.append(f"status_code={self.status_code}")
        if self.status_msg:
            bits.append(f"status_msg={self.status_msg!r}")
        bits.append(f"trace_id={self.trace_id or '-'}")
        return " ".join(bits)


class ApiError(VidbatchError):
    """A MiniMax call failed. ``info`` says which call and how."""

    def __init__(self, message: str, info: CallInfo, *, hint: str = ""):
        self.info = info
        self.hint = hint
        text = f"{message} [{info.describe()}]"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)

    @property
    def code(self) -> int | None:
        return self.info.status_code


class TransientError(ApiError):
    """Retrying the same call is safe and may succeed; ``retry_after`` is the server's wish, if any."""

    retryable = True
    retry_after: float | None = None


class RateLimitedError(TransientError):
    """Too many requests. Retrying is safe after ``retry_after`` seconds (when the server said)."""

    def __init__(self, message: str, info: CallInfo, *, retry_after: float | None = None, hint: str = ""):
        self.retry_after = retry_after
        super().__init__(message, info, hint=hint)


class MaybeSubmittedError(ApiError):
    """A create was sent, but its answer never arrived. The API has no idempotency key, so whether
    a task (and a charge) exists is unknowable: retrying blindly could pay twice. Not retryable."""


class JobFailedError(ApiError):
    """This job cannot succeed as written; the rest of the run goes on. Not retryable."""


class InvalidRequestError(JobFailedError):
    pass


class ContentFlaggedError(JobFailedError):
    pass


class RenderFailedError(JobFailedError):
    pass


class AccountError(ApiError):
    """The account cannot create renders now (balance, verification, usage limit). Stop creating."""

    exit_code = EXIT_ACCOUNT


class CredentialsError(AccountError):
    """The key was refused (wrong key, or a key of the other region's host)."""


class DownloadError(ApiError):
    """The finished video could not be downloaded after every fallback. The task is done and paid
    for: a later run downloads it again without a new render, as long as MiniMax keeps the file."""

    retryable = True
