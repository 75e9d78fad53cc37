"""vidbatch's exceptions: one tree, and the exit code each one ends a command with.

::

    VidbatchError                      exit 1 unless a subclass says otherwise
    ├── UsageError                     exit 2: a bad option or argument
    │   └── VideoChangedError          exit 2: a decision about a take's video that is no longer its
    │                                  video (it rendered again since it was shown)
    ├── ConfigError                    exit 2: missing API key, unreadable config file
    ├── ManifestError                  exit 2: the manifest cannot be turned into valid requests
    ├── StateError                     exit 1: the state database is unusable
    │   └── StateLockedError           exit 4: another vidbatch run holds the state folder
    ├── MediaError                     exit 1: a video (or frame) could not be read, decoded or written
    └── ApiError                       a call to MiniMax (or the simulator) did not succeed
        ├── TransientError             the server failed this time: 5xx, 408, 1000/1001/1013..., a dropped
        │   │                          connection or timeout on a read, a truncated download
        │   ├── ConnectFailedError     no connection was made (refused, DNS, connect timeout) to a host that
        │   │                          answered before: the request never arrived, resending is safe
        │   └── RateLimitedError       too many requests: 429, 1002, 1039, 1041; never retried by the
        │                              client, ``retry_after`` carries the server's wish
        ├── MaybeSubmittedError        a create may have reached the server but its answer was lost;
        │                              retrying could pay twice, so the caller decides
        ├── JobFailedError             this job cannot succeed as written; others go on
        │   ├── InvalidRequestError    2013 invalid parameters, another 4xx
        │   ├── ContentFlaggedError    1026 input / 1027 output flagged as sensitive
        │   └── RenderFailedError      the task ended with status Fail/Failed
        ├── TaskGoneError              the API no longer knows a task or file (2013 on query or
        │                              retrieve: expired, or made with another account); asking
        │                              again cannot help, rendering again would pay again
        ├── AccountError               exit 3: stop creating; nothing else will succeed (1008, 2038, 2056)
        │   ├── CredentialsError       exit 3: the key is wrong or for the other region (1004, 2049, 401/403)
        │   └── WrongHostError         exit 3: the API host is not MiniMax's API (3xx, 404, 405, 501)
        │       └── HostUnreachableError  exit 3: the API host never answered in this process (DNS
        │                              failure, connection refused, connect timeout): a typo or a
        │                              closed port, not a hiccup
        └── DownloadError              the video could not be fetched (after every fallback)

The client only *says what happened*; what to do next (retry now, pause, fail the job, stop
creating, leave it for the next run) is the runner's policy, keyed on these classes.

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


class VideoChangedError(UsageError):
    """A decision (a pick, a reject) made on a take's video that the take no longer holds: it
    rendered again between showing and deciding. Nothing was recorded; show the new render and
    decide again."""


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

    def __init__(self, lock_path: Path | str, advice: str = "wait for it to finish, or pass --wait to queue behind it"):
        self.lock_path = str(lock_path)
        super().__init__(f"another vidbatch run is using this state folder (lock {self.lock_path}); {advice}")


# --- local video work -------------------------------------------------------------------------


class MediaError(VidbatchError):
    """A video could not be read, decoded or written (:mod:`vidbatch.media`), or a frame could not
    be taken from it. Not retryable: the file itself is the problem."""


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
    """Retrying the same call is safe and may succeed; ``retry_after`` is the server's wish, if any.
    The client has already spent its few quick retries (see :mod:`vidbatch.client`)."""

    retryable = True
    retry_after: float | None = None


class ConnectFailedError(TransientError):
    """No connection could be made (connection refused, DNS failure, connect timeout, certificate
    refused) to a host that answered earlier in this process. The request certainly never reached
    the server, so resending it, even a create, cannot pay twice."""


class RateLimitedError(TransientError):
    """Too many requests (HTTP 429, codes 1002/1039/1041). Retrying is safe after ``retry_after``
    seconds (the server's ``Retry-After``; ``None`` when it gave none). The client never retries a
    rate limit itself: it raises at once so the caller can pause every worker, not just one."""

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


class TaskGoneError(ApiError):
    """MiniMax no longer knows this task or file (``2013`` on ``query`` or ``retrieve``): it
    expired, or it was made with another account's key. Not the manifest's fault, and not
    retryable; rendering the job again is a new (paid) render, so only the user decides it."""


class AccountError(ApiError):
    """The account cannot create renders now (balance, verification, usage limit). Stop creating."""

    exit_code = EXIT_ACCOUNT


class CredentialsError(AccountError):
    """The key was refused (wrong key, or a key of the other region's host)."""


class WrongHostError(AccountError):
    """What answered at the API host is not MiniMax's API (a redirect, 404, 405, 501): every call
    would fail the same way, so stop creating. ``host`` and ``host_source`` say which host was used
    and where it came from (``--api-host``, ``MINIMAX_API_HOST``, the config file, the default)."""

    def __init__(self, message: str, info: CallInfo, *, host: str, host_source: str, hint: str = ""):
        self.host = host
        self.host_source = host_source
        super().__init__(message, info, hint=hint)


class HostUnreachableError(WrongHostError):
    """The API host could not be reached at all (DNS failure, connection refused, connect timeout)
    and has not answered once in this process: a configuration error (a typo in the host, a closed
    port), not a network hiccup, so it is not retried. Exit code 3, like any reason to stop
    creating. Once the host has answered, the same failure is a ``ConnectFailedError``."""


class DownloadError(ApiError):
    """The finished video could not be downloaded after every fallback. The task is done and paid
    for: a later run downloads it again without a new render, as long as MiniMax keeps the file."""

    retryable = True
