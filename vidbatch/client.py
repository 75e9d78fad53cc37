"""The HTTP client for MiniMax's video generation API.

One :class:`Client` wraps one injectable :class:`requests.Session` (by default its own,
:func:`new_session`, which spends less CPU per call: see :class:`_Session`) and speaks the four calls of
the contract (``create``, ``query``, ``retrieve``, ``retrieve_content``) plus the download of a
finished video, and Video Generation V2's calls. Each call is written once, as steps
(:data:`Steps`), and carried out by requests (:meth:`Client._drive`, the sync methods) or by
aiohttp on an event loop (:class:`AsyncCalls`, from :meth:`Client.open_async`: the runner's wire,
where many calls in flight share one thread). Every fact about the API (hosts, paths, statuses, what each ``base_resp`` code
and HTTP status means) is read from :mod:`vidbatch.facts`; this module only turns answers into
values and exceptions.

Division of labour
------------------
*The client makes one call and says precisely what happened.* Its exception classes
(:mod:`vidbatch.errors`) name the outcome: the server failed this time, no connection was made,
rate limited (with the server's ``Retry-After``), the answer to a create was lost, the job is
invalid or flagged, the account or key was refused, the host is wrong or unreachable.

*The runner decides everything else*: retrying later, pausing creates after a rate limit, failing
the job, stopping creates, leaving a job for the next run. It reads one policy table keyed on the
classes above; the client never sleeps for long and never retries a rate limit.

*The client's own retries are brief and bounded* (:class:`RetryPolicy`, :meth:`Client._retried`):
a request is tried at most ``attempts`` times (3), with waits of full jitter over 0.25 s then
0.5 s; a gateway's ``Retry-After`` up to ``backoff_max`` (2 s) is a floor. So at most 0.75 s of
sleep per request (4 s when the server asks), and the client retries only when

- no connection could be made (:func:`request_never_sent`: refused, DNS failure, connect
  timeout) to a host that has answered before (:class:`~vidbatch.errors.ConnectFailedError`);
  the request certainly never arrived, so this holds for a create too; or
- a call other than create got a gateway answer (:data:`facts.BRIEF_RETRY_HTTP`: 502, 503, 504)
  whose ``Retry-After``, if any, fits within ``backoff_max``.

Everything else is raised at once: other 5xx and transient ``base_resp`` codes, read timeouts and
dropped connections, truncated downloads, and rate limits (HTTP 429, codes 1002/1039/1041) as
``RateLimitedError(retry_after=<Retry-After or None>)``.

*One classifier.* :func:`classify` reads the kind of an answer from the facts tables (a non-zero
``base_resp.status_code`` decides first by :data:`facts.ERROR_CODES`, else the HTTP status by
:data:`facts.API_HTTP` or, for signed URLs, :data:`facts.DOWNLOAD_HTTP`); :meth:`Client._error`
maps each :class:`facts.ErrorKind` to one exception class, in one table (:data:`ERROR_CLASSES`).

*One value per call.* A :class:`Call` (like httpx's ``Request``) carries the call's name (or
download route), method, URL, whether it goes to the API host (and so carries the key), the
attempt number and the most attempts; the steps pass it instead of loose arguments.

*A wrong host fails fast.* Until the API host has answered once, a failure to connect to it at
all is a configuration error, :class:`~vidbatch.errors.HostUnreachableError` (exit 3, "stop
creating"), raised without retrying and naming the host and where it came from (``--api-host``,
``MINIMAX_API_HOST``, the config file, the default). A redirect, 404, 405 or 501 from the API host
is :class:`~vidbatch.errors.WrongHostError`: whatever answered is not MiniMax's API.

*create has no idempotency key.* Beyond the never-sent case above, a create is never resent. When
the request may have arrived but the answer was lost (read timeout, connection closed or reset
before a complete answer, an unreadable 200 answer, a gateway's 504) the client raises ``MaybeSubmittedError``: a
second create could pay twice. On the wire a connection closed before any answer looks the same
whether or not the server acted on the request, so it is "maybe submitted" too.

*Downloads* (:meth:`Client.download`) write straight into the path they are given: ``dest`` is a
file the caller owns; it is written whole or the call raises. Each try truncates and rewrites it;
the client never renames, so staging, checking and renaming into place are the caller's
(:func:`vidbatch.files.into_place`). Routes, in order: the signed ``download_url`` (re-fetched once
with a fresh ``retrieve`` when it answers 403/404/410, i.e. expired), ``backup_download_url`` when
the metadata has one, then ``retrieve_content`` on the API host (also when ``retrieve`` itself
failed transiently). A route that fails transiently hands over to the next. Worst case per
download: 4 routes x 3 tries = 12 GETs of the video and 2 x 3 ``retrieve`` calls, with at most
0.75 s (4 s) of sleep per request. Signed URLs get no ``Authorization`` header: the key only ever goes
to the API host. A local write failure (disk full, permissions) ends the download at once with a
non-retryable ``DownloadError`` carrying the OS message: other routes would fail the same way.

*Time is injected*: ``sleep``, ``clock`` (monotonic, for durations) and ``wall_clock`` (for
``Retry-After`` dates), so tests never sleep.

*The key stays secret.* It is sent per request, as the explicit ``auth`` of each API-host call
(:class:`_Bearer`; never set on the session, whose headers would follow the session to download
hosts; explicit, so requests never swaps it for a ``~/.netrc`` entry), kept out of ``repr``, and
scrubbed from every text that
reaches a message or a log. Exceptions from requests are not chained into vidbatch errors,
because they hold the prepared request and its ``Authorization`` header; their scrubbed text is
quoted instead. Signed download URLs are logged without their query string.

The library never prints; it logs to ``logging.getLogger(__name__)`` at DEBUG per call and retry.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import logging
import os
import random
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Generator, Generic, Iterator, Mapping, NoReturn, Sequence, TypeVar, Union
from urllib.parse import SplitResult, quote, urlencode, urljoin, urlsplit

import requests
import urllib3.exceptions

from . import __version__, facts, prices
from .config import ENV_HOST, ENV_KEY  # re-exported: the variable names have one home
from .errors import (
    AccountError,
    ApiError,
    CallInfo,
    ConfigError,
    ConnectFailedError,
    ContentFlaggedError,
    CredentialsError,
    DownloadError,
    HostUnreachableError,
    InvalidRequestError,
    JobFailedError,
    TaskGoneError,
    MaybeSubmittedError,
    RateLimitedError,
    RenderFailedError,
    TransientError,
    VidbatchError,
    WrongHostError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = f"vidbatch/{__version__}"
_CHUNK = 1 << 16
Kind = facts.ErrorKind

#: The download routes, in the order they are tried.
DOWNLOAD_ROUTES = ("download", "backup_download", "retrieve_content")


class _UrlExpired(DownloadError):
    """A signed URL answered 403/404/410: fetch fresh metadata (internal; never escapes)."""


#: The one map from what happened (a facts kind) to the exception that says so. WRONG_HOST's
#: class takes the host and its source, so :meth:`Client._error` builds it by hand.
ERROR_CLASSES: dict[facts.ErrorKind, type[ApiError]] = {
    Kind.TRANSIENT: TransientError,
    Kind.RATE_LIMITED: RateLimitedError,
    Kind.INVALID_REQUEST: InvalidRequestError,
    Kind.GONE: TaskGoneError,
    Kind.CONTENT_FLAGGED: ContentFlaggedError,
    Kind.CREDENTIALS: CredentialsError,
    Kind.ACCOUNT: AccountError,
    Kind.WRONG_HOST: WrongHostError,
    Kind.URL_EXPIRED: _UrlExpired,
    Kind.DOWNLOAD_REFUSED: DownloadError,
}

#: base_resp codes a query hands back as a failed status instead of raising (1026/1027).
_FLAGGED_CODES = frozenset(c for c, fact in facts.ERROR_CODES.items() if fact.kind is Kind.CONTENT_FLAGGED)


# --- policy, values and results ---------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """The client's whole share of retrying (see the module docstring for when it applies)."""

    attempts: int = 3  # tries per request, the first included
    backoff_base: float = 0.25  # seconds; exponential with full jitter, capped at backoff_max
    backoff_max: float = 2.0  # also the longest Retry-After the client waits for itself


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    download_read: float = 120.0
    #: the optional balance call's read timeout: a host that never answers it must not hold a
    #: run up for the full ``read`` (every run reads the balance before it creates anything)
    optional_read: float = 5.0


@dataclass(frozen=True)
class Call:
    """One HTTP request of one call, as one value (httpx passes one ``Request``)."""

    name: str  # "create", "query", "retrieve", or a download route (DOWNLOAD_ROUTES)
    method: str
    url: str
    api_host: bool  # sent to the API host: carries the key; its answers read by facts.API_HTTP
    params: Mapping[str, str] | None = None
    json_body: Any = field(default=None, repr=False)
    fold: frozenset[int] = frozenset()  # base_resp codes handed to the parser instead of raised
    files: Any = field(default=None, repr=False)  # a multipart body (an upload) instead of JSON
    read_timeout: float | None = None  # instead of Timeouts.read
    attempt: int = 1
    attempts: int = 1

    @property
    def is_create(self) -> bool:
        return self.name == "create"

    @property
    def is_download(self) -> bool:
        return self.name in DOWNLOAD_ROUTES

    @property
    def tries(self) -> str:
        """`` (attempt 2 of 3)`` once a request has been retried; empty on the first try."""
        return f" (attempt {self.attempt} of {self.attempts})" if self.attempt > 1 else ""

    @property
    def loggable_url(self) -> str:
        return _loggable_url(self.url)

    def next_attempt(self) -> "Call":
        return replace(self, attempt=self.attempt + 1)


def _raise_task_failure(
    task_id: str, status: str, code: int | None, message: str | None, trace_id: str | None, *, hint: str
) -> NoReturn:
    """The error for a task that ended without a video (v1 or V2 alike): ``ContentFlaggedError``
    for 1026/1027, else ``RenderFailedError`` with ``hint``."""
    info = CallInfo("query", status_code=code, status_msg=message, trace_id=trace_id)
    if code in _FLAGGED_CODES:
        fact = facts.ERROR_CODES[code]
        raise ContentFlaggedError(f"task {task_id} failed: {fact.meaning}", info, hint=fact.hint)
    raise RenderFailedError(f"task {task_id} ended with status {status}: {_one_line(message or 'no reason given')}", info, hint=hint)


def _one_line(text: str) -> str:
    """The server's ``text`` as one printable line for a message: control characters (escape
    sequences, line breaks) written as escapes, as ``repr`` writes them; other text as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class TaskStatus:
    """A query answer. ``state`` is :func:`facts.task_state` of ``status``: ``UNKNOWN`` (a status
    not in the contract) means still running; :attr:`is_running` says so."""

    task_id: str
    status: str
    state: facts.TaskState
    file_id: str | None
    video_width: int | None
    video_height: int | None
    error_message: str | None
    trace_id: str | None
    #: ``base_resp.status_code`` when the answer carried a job-ending code (1027: output flagged).
    status_code: int | None = None

    @property
    def is_running(self) -> bool:
        return self.state in (facts.TaskState.RUNNING, facts.TaskState.UNKNOWN)

    def raise_for_failure(self) -> None:
        """Raise ``ContentFlaggedError`` (1026/1027) or ``RenderFailedError`` for a failed task."""
        if self.state is facts.TaskState.FAILED:
            _raise_task_failure(
                self.task_id, self.status, self.status_code, self.error_message, self.trace_id,
                hint="the render failed on MiniMax's side; running the job again submits a new task",
            )


@dataclass(frozen=True)
class FileInfo:
    file_id: str
    bytes: int | None
    filename: str | None
    created_at: int | None
    download_url: str | None
    backup_download_url: str | None


@dataclass(frozen=True)
class Download:
    path: Path
    bytes: int
    sha256: str


@dataclass(frozen=True)
class V2Task:
    """One task of Video Generation V2 (MiniMax-H3), as a query or the task list shows it.

    ``created_at`` is the *server's* clock (Unix seconds), which is what the exactly-once window
    is built from (see :mod:`vidbatch.runner`). ``state`` is :func:`facts.v2_task_state`;
    ``cancelled`` and ``expired`` are failures. ``usage`` is what MiniMax billed (its
    :data:`facts.V2_USAGE_FIELDS`), when the answer says. ``file_id`` is always None: a v2 success
    carries ``video_url`` (``content.url``) and there is no retrieve step."""

    task_id: str
    status: str
    state: facts.TaskState
    model: str | None = None
    created_at: float | None = None
    updated_at: float | None = None
    video_url: str | None = None
    resolution: str | None = None
    duration: int | None = None
    ratio: str | None = None
    task_type: str | None = None
    usage: Mapping[str, int] | None = None
    error_code: int | None = None
    error_message: str | None = None
    trace_id: str | None = None
    #: as :class:`TaskStatus` has them; V2 names no file (its video is ``video_url``) nor size
    file_id: None = None
    video_width: None = None
    video_height: None = None

    @property
    def is_running(self) -> bool:
        return self.state in (facts.TaskState.RUNNING, facts.TaskState.UNKNOWN)

    @property
    def cancellable(self) -> bool:
        return self.status.strip().lower() in facts.V2_CANCELLABLE_STATUSES

    def raise_for_failure(self) -> None:
        """Raise ``ContentFlaggedError`` (1026/1027) or ``RenderFailedError`` for a task that
        failed, was cancelled or expired."""
        if self.state is facts.TaskState.FAILED:
            _raise_task_failure(
                self.task_id, self.status, self.error_code, self.error_message, self.trace_id,
                hint="the render did not finish on MiniMax's side; running the job again submits a new task",
            )


@dataclass(frozen=True)
class V2Page:
    """Tasks of the V2 task list (every page asked for), and the server's clock when it answered
    (its ``Date`` header, Unix seconds; None without one)."""

    tasks: list[V2Task]
    server_time: float | None


# --- pure rules (unit-tested on their own) ----------------------------------------------------


def backoff_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter over
    ``backoff_base * 2**(attempt-1)`` capped at ``backoff_max``; ``retry_after`` is a floor."""
    step = min(policy.backoff_max, policy.backoff_base * 2.0 ** (attempt - 1))
    delay = step * rand()
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delta-seconds or an HTTP date; ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(call: Call, http_status: int, code: int | None) -> facts.ErrorKind:
    """What an answer says happened, read from the facts tables: a non-zero ``base_resp`` code
    decides first, else the HTTP status (signed URLs by their own table). A download from the API
    host (``retrieve_content``) is never "wrong host": that host answered ``retrieve`` already."""
    if code:
        return facts.error_kind(code, call.name)
    kind = facts.http_kind(http_status, signed_url=not call.api_host)
    if call.is_download and kind is Kind.WRONG_HOST:
        return Kind.DOWNLOAD_REFUSED
    return kind


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the real error in args, ``reason``,
    ``original_error`` and ``__cause__`` (``__context__`` is not followed: it is only "raised
    while handling", not "caused by")."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [*e.args, getattr(e, "reason", None), getattr(e, "original_error", None), e.__cause__]
        todo.extend(x for x in nested if isinstance(x, BaseException))


def request_never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never reached the server, so resending cannot
    duplicate it: no connection was made (refused, unreachable, DNS failure, connect timeout,
    TLS certificate refused, pool closed). Anything after a connection exists (read timeout,
    connection closed or reset, broken body) is False: the server may have the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    aiohttp = sys.modules.get("aiohttp")  # imported by AsyncCalls only: without it, no such error
    if aiohttp is not None and isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return True  # no connection was made (DNS, refused, TLS refused, connect timeout, proxy)
    for e in _causes(exc):
        # NewConnectionError (and NameResolutionError) subclass ConnectTimeoutError in urllib3.
        if isinstance(e, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ClosedPoolError)):
            return True
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
    return False


def why_unreachable(exc: BaseException) -> str:
    """A few words on why no connection was made, for a message."""
    causes = list(_causes(exc))
    if any(isinstance(e, (urllib3.exceptions.NameResolutionError, socket.gaierror)) for e in causes):
        return "its name does not resolve (DNS lookup failed)"
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return "the connection was refused (nothing listens on that port)"
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in causes):
        return "its TLS certificate was refused"
    aiohttp = sys.modules.get("aiohttp")
    if (
        isinstance(exc, requests.exceptions.ConnectTimeout)
        or any(type(e) is urllib3.exceptions.ConnectTimeoutError for e in causes)
        or (aiohttp is not None and isinstance(exc, aiohttp.ConnectionTimeoutError))
    ):
        return "the connection timed out"
    return "no connection could be made"


# --- the steps of a call, and what carries them out --------------------------------------------


@dataclass(frozen=True)
class _Send:
    """Step: send one request of an API call; answered with its :class:`_Answer`, or raises
    what the answer (or its absence) means."""

    call: Call


@dataclass(frozen=True)
class _Stream:
    """Step: GET a video into ``dest``; answered with the :class:`Download`."""

    call: Call
    dest: Path
    expected: int | None
    on_progress: Callable[[int, int | None], None] | None


@dataclass(frozen=True)
class _Pause:
    """Step: wait before trying again (the client's brief retries)."""

    seconds: float


#: A call written once as the steps it takes (its requests, downloads and pauses), returning its
#: result: :meth:`Client._drive` carries them out with requests, :class:`AsyncCalls` with aiohttp.
Steps = Generator[Union[_Send, _Stream, _Pause], Any, T]


class _Stepper(Generic[T]):
    """Steps being carried out, by either transport: :meth:`next` is the next step to take (None
    once the steps have returned, their result in :attr:`result`); what taking it gave is handed
    back with :meth:`gave`, what it raised with :meth:`failed`, and raised into the steps at that
    point, as if they had made it (outside any ``except`` block of the transport, so the
    transport's own exception is neither its cause nor its context)."""

    def __init__(self, steps: Steps[T]):
        self._steps = steps
        self._value: Any = None
        self._failure: Exception | None = None

    def next(self) -> _Send | _Stream | _Pause | None:
        try:
            effect = self._steps.send(self._value) if self._failure is None else self._steps.throw(self._failure)
        except StopIteration as done:
            self.result: T = done.value
            return None
        self._value = self._failure = None
        return effect

    def gave(self, value: Any) -> None:
        self._value = value

    def failed(self, error: Exception) -> None:
        self._failure = error


@dataclass(frozen=True)
class _Reply:
    """One HTTP answer, from either transport: status, reason, headers (read case-insensitively)
    and the body (empty while a download's body is still to be streamed)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes


def _download_needs_body(call: Call, reply: _Reply) -> bool:
    """A 200 from the API host in JSON is an error report, not a video: read before judging."""
    return reply.status == 200 and call.api_host and "json" in reply.headers.get("Content-Type", "")


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 30  # as requests


class _Sink:
    """A download's bytes into its file (emptied first): written, hashed, counted, reported, and
    checked whole at the end. An empty file (a staging file just made) is not truncated:
    ext4 flushes a file truncated on open when it is closed (its guard for replace-by-truncate),
    which cost each download 20-30 us of CPU on the loop, more under load (issue 15)."""

    def __init__(self, fetch: _Stream, info: CallInfo, content_length: int | None, clock: Callable[[], float]):
        self._fetch = fetch
        self._info = info
        self._clock = clock
        self.total = fetch.expected if fetch.expected is not None else content_length
        self._digest = hashlib.sha256()
        self.size = 0
        try:
            fd = os.open(fetch.dest, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)  # O_BINARY: Windows
        except OSError as e:
            raise _write_error(fetch.dest, e, info) from None
        self._out = os.fdopen(fd, "wb")
        try:
            if os.fstat(fd).st_size:
                os.ftruncate(fd, 0)
        except OSError as e:
            self._out.close()
            raise _write_error(fetch.dest, e, info) from None

    def __enter__(self) -> "_Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()

    def write(self, chunk: bytes) -> None:
        try:
            self._out.write(chunk)
        except OSError as e:
            raise _write_error(self._fetch.dest, e, self._info) from None
        self._digest.update(chunk)
        self.size += len(chunk)
        if self._fetch.on_progress is not None:
            self._fetch.on_progress(self.size, self.total)

    def done(self, started: float) -> Download:
        call, dest = self._fetch.call, self._fetch.dest
        if self.total is not None and self.size != self.total:
            raise TransientError(f"{call.name} of {dest.name} stopped at {self.size} of {self.total} bytes{call.tries}", self._info)
        try:
            self._out.flush()
        except OSError as e:
            raise _write_error(dest, e, self._info) from None
        log.debug("%s: %s written, %d bytes in %.2fs", call.name, dest, self.size, self._clock() - started)
        return Download(path=dest, bytes=self.size, sha256=self._digest.hexdigest())


# --- the client -------------------------------------------------------------------------------


class _Secret:
    """Holds the key; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


@dataclass
class _Answer:
    body: dict[str, Any]
    info: CallInfo
    date: str | None = None  # the answer's Date header

    @property
    def server_time(self) -> float | None:
        """The Date header in Unix seconds (parsed when asked: only the task list's reader needs
        it, and parsing it for every answer cost a run 3% of its calls' CPU)."""
        return _http_date(self.date)


#: Connections the requests session keeps open per host: enough for threads sharing one client
#: (with requests' default of 10 the others connected anew for every call). The runner's calls
#: go through :class:`AsyncCalls` instead, whose aiohttp pool is unbounded (the runner bounds them).
POOL_SIZE = 64


class _Bearer(requests.auth.AuthBase):
    """The key, as the ``Authorization: Bearer`` header of the one request it is given to
    (requests drops that header on a redirect to another host). Being an explicit ``auth``, it
    also keeps requests from reading ``~/.netrc``, whose entry for the API host would otherwise
    *replace* the header with Basic credentials. Its repr never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: _Secret):
        self._key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._key.value}"
        return r

    def __repr__(self) -> str:
        return "<bearer>"


class _NoAuth(requests.auth.AuthBase):
    """No credentials (a signed URL is its own), and no ``~/.netrc`` lookup either."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


_NO_AUTH = _NoAuth()


class _Session(requests.Session):
    """The ``requests.Session`` a client makes for itself: requests' own steps, minus the work
    that a call of this client never needs, which was most of the client's CPU per call on a
    first run of small calls (issue 15; ``benchmarks/bench_client.py``).

    :meth:`request` with an explicit ``auth`` (the client always gives one: :class:`_Bearer` or
    :class:`_NoAuth`) and a JSON body or none is prepared with the same
    :class:`requests.PreparedRequest` steps :meth:`requests.Session.request` takes (URL, headers
    over the session's, body, auth) and sent through the same adapter (connection pool, proxy,
    TLS, timeouts, and requests' exceptions). What it skips:

    - the environment (proxies, ``NO_PROXY``, the CA bundle) is read once per scheme and host,
      not twice per call: a change made after the client first calls a host is not seen;
    - the session's cookie jar is not copied per call: its cookies are sent and a
      ``Set-Cookie`` is kept as requests would, at no cost while there are none (MiniMax sets
      none);
    - no response hooks (this session has none) and no ``elapsed``;
    - a redirect (followed for downloads only) goes through requests' own
      :meth:`~requests.Session.resolve_redirects`.

    Anything else (a multipart upload, ``data``, per-call cookies, proxies or hooks, no
    ``auth``) takes requests' full path, :meth:`requests.Session.request`."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        if proxies:
            return dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert if cert is None or isinstance(cert, str) else tuple(cert))
        settings = self._environment.get(key)
        if settings is None:
            settings = self._environment[key] = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
        return {**settings, "proxies": dict(settings["proxies"])}

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        if (
            auth is None
            or any(x is not None for x in (data, files, cookies, proxies, hooks, verify, cert))
            or self.auth is not None
            or self.params
            or any(self.hooks.values())
        ):
            return super().request(
                method, url, params=params, data=data, headers=headers, cookies=cookies, files=files, auth=auth,
                timeout=timeout, allow_redirects=allow_redirects, proxies=proxies, hooks=hooks, stream=stream,
                verify=verify, cert=cert, json=json,
            )  # fmt: skip
        prep = requests.PreparedRequest()
        prep.prepare_method(method)
        if isinstance(params, dict) and "?" not in url and all(isinstance(x, str) for kv in params.items() for x in kv):
            # as requests encodes a dict of strings, minus its type checks (a tenth of a GET's preparing)
            url, params = f"{url}?{urlencode(params)}", ""
        prep.prepare_url(url, params)
        prep.prepare_headers({**self.headers, **(headers or {})})
        prep.prepare_body(None, None, json)
        if self.cookies:
            prep.prepare_cookies(self.cookies)
        prep.prepare_auth(auth, url)
        prep.hooks = {"response": []}
        settings = self.merge_environment_settings(prep.url or "", {}, stream, None, None)
        resp = self.get_adapter(prep.url or "").send(prep, timeout=timeout, **settings)
        if "Set-Cookie" in resp.headers:
            requests.cookies.extract_cookies_to_jar(self.cookies, prep, resp.raw)
        if allow_redirects and resp.is_redirect:
            prep.prepare_cookies(self.cookies)  # resolve_redirects carries cookies across the hops
            hops = [resp, *self.resolve_redirects(resp, prep, timeout=timeout, **settings)]
            resp = hops.pop()
            resp.history = hops
        if not settings["stream"]:
            resp.content  # noqa: B018  read now, as requests does: a broken body fails the call itself
        return resp


def new_session(*, ca_file: str | Path | None = None) -> requests.Session:
    """The session a :class:`Client` makes for itself (:class:`_Session`, pooled for the
    runner's threads). With ``ca_file`` it trusts that CA and nothing else, and reads nothing
    from the environment (``REQUESTS_CA_BUNDLE`` would otherwise win over it): the simulator's
    HTTPS client (:meth:`vidbatch.api.Simulator.client`)."""
    session = _Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_file is not None:
        session.trust_env = False
        session.verify = str(ca_file)
    return session


class Client:
    """MiniMax video API client.

    It keeps no per-call state, so threads may share one client; what they then share is
    the session's connection pool, which urllib3 makes thread-safe, and one flag that the API host
    has answered (set once, never cleared).

    ``host_source`` says where ``host`` came from, in words for a message ("--api-host", "the
    MINIMAX_API_HOST environment variable", "the config file <path>", "the default"), and
    ``key_source`` where the key came from (``MINIMAX_API_KEY``, the default, or the config file's
    path), so that a refused key is looked for where it is.
    """

    def __init__(
        self,
        api_key: str,
        host: str = facts.DEFAULT_HOST,
        *,
        host_source: str | None = None,
        key_source: str | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        if not api_key or api_key != api_key.strip() or any(c.isspace() or ord(c) < 32 for c in api_key):
            # requests would quote the whole header value, key included, in its InvalidHeader message.
            raise ConfigError(f"the API key is empty or contains whitespace; check {ENV_KEY}")
        host = host.strip().rstrip("/")
        if host_source is None:
            host_source = "the default" if host == facts.DEFAULT_HOST else "the host given to the client"
        if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).netloc:
            raise ConfigError(
                f"API host {host!r} (from {host_source}) is not a URL; use {facts.HOST_GLOBAL} or "
                f"{facts.HOST_MAINLAND} (--api-host or {ENV_HOST})"
            )
        self._key = _Secret(api_key)
        self._bearer = _Bearer(self._key)
        self.host = host
        self.host_source = host_source
        #: Where to check the key, in words for a hint: the variable, or the config file's api_key.
        self.key_where = ENV_KEY if key_source in (None, ENV_KEY) else f"api_key in {key_source}"
        self.retry = retry
        self.timeouts = timeouts
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._owns_session = session is None
        self._session = session if session is not None else new_session()
        #: The API host has answered (any HTTP status) since this client was made: from then on
        #: a failure to connect is a hiccup, not a wrong host.
        self.host_answered = False
        #: (task id, status) pairs already warned about as unknown: a run polls each task every
        #: few seconds, and the warning is worth one line per task and status, not one per poll.
        self._unknown_warned: set[tuple[str, str]] = set()

    @classmethod
    def from_env(cls, host: str | None = None, *, host_given_by: str = "--api-host", **kwargs: Any) -> "Client":
        """A client for the key and host found by :func:`vidbatch.config.credentials`: the
        ``host`` given (its source named by ``host_given_by``), the environment
        (``MINIMAX_API_KEY``, ``MINIMAX_API_HOST``), then the config file (readable by its owner
        only), then :data:`facts.DEFAULT_HOST`."""
        from . import config

        found = config.credentials(host, host_given_by=host_given_by)
        if not found.key:
            raise ConfigError(config.missing_key_message())
        return cls(found.key, found.host, host_source=found.host_source, key_source=found.key_source, **kwargs)

    def __repr__(self) -> str:
        return f"Client(host={self.host!r})"

    def close(self) -> None:
        """Close the session if this client made it (an injected session belongs to its owner)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the four calls -----------------------------------------------------------------------
    #
    # Each call is written once, as *steps* (a generator of the requests, downloads and pauses it
    # needs, see :data:`Steps`); :meth:`_drive` carries them out with requests, one at a time on
    # the caller's thread, and :class:`AsyncCalls` with aiohttp on an event loop (the runner's
    # wire). What an answer means, the retries and the download routes are the same for both.

    def create(self, request: dict[str, Any]) -> str:
        """Submit a render; returns MiniMax's task id. Raises ``MaybeSubmittedError`` when the
        request may have been accepted but the answer was lost (never retried)."""
        return self._drive(self._create(request))

    def query(self, task_id: str) -> TaskStatus:
        """The task's status. A failed task is returned, not raised (see :meth:`TaskStatus.raise_for_failure`);
        so is an answer with ``base_resp`` 1026/1027 (output flagged), as a failed status."""
        return self._drive(self._query(task_id))

    def retrieve(self, file_id: str | int) -> FileInfo:
        """File metadata, with a fresh signed ``download_url``."""
        return self._drive(self._retrieve(file_id))

    def query_balance(self, region: prices.Region | None = None) -> prices.Balance | None:
        """The account's balance (``GET /account/query_balance``), in ``region``'s currency (the
        host's by default); None when it cannot be read. Optional by design: one try, and any
        error (a key or host without the call, a timeout) means "no balance", never an
        exception, so a run never depends on it."""
        return self._drive(self._query_balance(region))

    def create_v2(self, body: dict[str, Any]) -> str:
        """Create a V2 task (``POST /v2/video_generation``); returns its task id. Like
        :meth:`create`: never resent once it may have arrived (``MaybeSubmittedError``); the
        runner then asks the task list (:meth:`list_v2`) whether the task exists."""
        return self._drive(self._create_v2(body))

    def query_v2(self, task_id: str) -> V2Task:
        """One V2 task (``GET /v2/query/video_generation/{task_id}``). A failed, cancelled or
        expired task is returned, not raised (:meth:`V2Task.raise_for_failure`)."""
        return self._drive(self._query_v2(task_id))

    def list_v2(
        self,
        *,
        status: str | None = None,
        task_ids: Sequence[str] = (),
        model: str | None = None,
        task_type: str | None = None,
        created_after: float | None = None,
        page_size: int = facts.V2_LIST_PAGE_SIZE,
        max_pages: int = 400,
    ) -> V2Page:
        """The V2 task list (tasks of the last :data:`facts.V2_LIST_DAYS` days), every page, with
        the contract's filters. ``created_after`` (server clock) lets paging stop early, but only
        on evidence: a page sorted newest first whose oldest task is older than it (a list sorted
        any other way is read to the end). More than ``max_pages`` pages raise ``ApiError``: too
        many tasks to tell which are new."""
        return self._drive(
            self._list_v2(status=status, task_ids=task_ids, model=model, task_type=task_type,
                          created_after=created_after, page_size=page_size, max_pages=max_pages)
        )  # fmt: skip

    def cancel_v2(self, task_id: str) -> None:
        """``DELETE /v2/video_generation/{task_id}``: a queued task is cancelled (and not
        charged), a finished one deleted; a running one is refused (raised as the classifier
        says; check the task's status first, see :func:`vidbatch.runner.cancel_tasks`)."""
        self._drive(self._cancel_v2(task_id))

    def upload_file(self, data: bytes, filename: str, *, purpose: str = "video_generation") -> str:
        """Upload media once (``POST /v1/files/upload``, multipart ``file`` and ``purpose``) for a
        V2 request too big to carry it inline; returns the file id, sent as ``mm_file://ID``. Safe
        to repeat: an upload whose answer was lost only leaves an unused file (they live 7 days)."""
        return self._drive(self._upload_file(data, filename, purpose))

    def download_v2(self, task_id: str, dest: Path, *, url: str | None = None, expected_bytes: int | None = None) -> Download:
        """Fetch a finished V2 video (``task.content.url``) into ``dest`` (a file the caller owns,
        as :meth:`download`). Without ``url`` the task is queried for one; a URL that answers
        403/404/410 (expired) is refreshed by querying the task again, once. The URL is signed:
        it never gets the key."""
        return self._drive(self._download_v2(task_id, Path(dest), url, expected_bytes))

    def download(
        self,
        file_id: str | int,
        dest: Path,
        *,
        expected_bytes: int | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Download:
        """Fetch a finished video into ``dest``.

        ``dest`` is a file the caller owns; it is written whole or the call raises. Each try
        truncates and rewrites it, so after a failure it may hold part of a video: stage it and
        rename it into place yourself (:func:`vidbatch.files.into_place`).

        ``expected_bytes`` defaults to the metadata's ``file.bytes``. ``on_progress(done, total)``
        is called as bytes arrive; it restarts from 0 when a try starts over. Routes are tried in
        the order the module docstring gives; ``DownloadError`` lists why each one failed. A rate
        limit is raised at once (``RateLimitedError``); so are account, credential and host errors
        of ``retrieve``, and a local write failure.
        """
        return self._drive(self._download(str(file_id), Path(dest), expected_bytes, on_progress))

    def open_async(self) -> "AsyncCalls":
        """The calls above as coroutines on the running event loop, over one aiohttp session of
        their own (close it with :meth:`AsyncCalls.aclose` on that loop). The runner's wire uses
        them: many calls in flight on one thread cost a fraction of a thread each (issue 15)."""
        return AsyncCalls(self)

    # --- the steps of each call -----------------------------------------------------------------

    def _create(self, request: dict[str, Any]) -> Steps[str]:
        call = self._api_call("create", "POST", facts.PATH_CREATE, json_body=request)
        return (yield from self._retried(call, lambda c: self._ask(c, lambda a, _: _parse_create(a))))

    def _query(self, task_id: str) -> Steps[TaskStatus]:
        call = self._api_call("query", "GET", facts.PATH_QUERY, params={"task_id": task_id}, fold=_FLAGGED_CODES)
        return (yield from self._retried(call, lambda c: self._ask(c, lambda a, c: self._parse_query(task_id, a, c))))

    def _retrieve(self, file_id: str | int) -> Steps[FileInfo]:
        call = self._api_call("retrieve", "GET", facts.PATH_RETRIEVE, params={"file_id": str(file_id)})
        return (yield from self._retried(call, lambda c: self._ask(c, lambda a, c: _parse_retrieve(str(file_id), a, c))))

    def _query_balance(self, region: prices.Region | None) -> Steps[prices.Balance | None]:
        call = replace(self._api_call("query_balance", "GET", prices.PATH_BALANCE), read_timeout=self.timeouts.optional_read)
        try:
            answer: _Answer = yield _Send(call)
        except VidbatchError as e:
            log.info("account balance not available: %s", e)
            return None
        return prices.parse_balance(answer.body, region or prices.region_for_host(self.host))

    def _create_v2(self, body: dict[str, Any]) -> Steps[str]:
        call = self._api_call("create", "POST", facts.V2_PATH_CREATE, json_body=body)
        return (yield from self._retried(call, lambda c: self._ask(c, lambda a, _: _parse_create(a))))

    def _query_v2(self, task_id: str) -> Steps[V2Task]:
        call = self._api_call("query", "GET", f"{facts.V2_PATH_QUERY}/{quote(str(task_id), safe='')}")
        return (yield from self._retried(call, lambda c: self._ask(c, lambda a, c: self._parse_v2_query(str(task_id), a, c))))

    def _list_v2(
        self,
        *,
        status: str | None,
        task_ids: Sequence[str],
        model: str | None,
        task_type: str | None,
        created_after: float | None,
        page_size: int,
        max_pages: int,
    ) -> Steps[V2Page]:
        params: dict[str, str] = {"page_size": str(page_size)}
        for name, value in (("status", status), ("model", model), ("task_type", task_type)):
            if value:
                params[f"filter.{name}"] = value
        if task_ids:
            params["filter.task_ids"] = ",".join(task_ids)
        tasks: list[V2Task] = []
        server_time: float | None = None
        for page in range(1, max_pages + 1):
            call = self._api_call("list", "GET", facts.V2_PATH_QUERY, params={**params, "page_num": str(page)})
            answer = yield from self._retried(call, lambda c: self._ask(c, lambda a, _: a))
            if server_time is None:
                server_time = answer.server_time
            items = answer.body.get("items")
            if items is None:
                items = (answer.body.get("data") or {}).get("items") if isinstance(answer.body.get("data"), dict) else None
            if not isinstance(items, list):
                raise TransientError(f"list answered without an items list{call.tries}", answer.info)
            got = [self._v2_task(item, answer.info) for item in items if isinstance(item, dict)]
            tasks.extend(got)
            if not _more_pages(answer.body, page, page_size, len(items)):
                break
            stamps = [t.created_at for t in got]
            if created_after is not None and stamps and None not in stamps:
                newest_first = all(a >= b for a, b in zip(stamps, stamps[1:]))  # type: ignore[operator]
                if newest_first and stamps[-1] < created_after:  # type: ignore[operator]
                    break
        else:
            raise ApiError(
                f"the task list has more than {max_pages} pages of {page_size}; too many tasks to tell which are new",
                CallInfo("list"),
                hint="check the task list on the MiniMax console",
            )
        return V2Page(tasks, server_time)

    def _cancel_v2(self, task_id: str) -> Steps[None]:
        call = self._api_call("cancel", "DELETE", f"{facts.V2_PATH_TASK}/{quote(str(task_id), safe='')}")
        yield from self._retried(call, lambda c: self._ask(c, lambda a, _: a))

    def _upload_file(self, data: bytes, filename: str, purpose: str) -> Steps[str]:
        call = self._api_call("upload", "POST", facts.PATH_FILE_UPLOAD, files={"file": (filename, data), "purpose": (None, purpose)})
        answer = yield from self._retried(call, lambda c: self._ask(c, lambda a, _: a))
        file = answer.body.get("file")
        file_id = file.get("file_id") if isinstance(file, dict) else answer.body.get("file_id")
        if file_id in (None, ""):
            raise TransientError(f"upload of {filename} answered without a file_id", answer.info)
        return str(file_id)

    def _download_v2(self, task_id: str, dest: Path, url: str | None, expected_bytes: int | None) -> Steps[Download]:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _write_error(dest, e, CallInfo("download")) from None
        for fresh in (False, True):
            if url is None or fresh:
                task = yield from self._query_v2(task_id)
                if not task.video_url:
                    raise DownloadError(
                        f"task {task_id} has no video URL (status {task.status})",
                        CallInfo("download", trace_id=task.trace_id),
                        hint="run again later to download it without rendering again",
                    )
                url = task.video_url
            call = Call("download", "GET", url, api_host=False)
            try:
                return (yield from self._retried(call, lambda c: self._fetch(c, dest, expected_bytes, None)))
            except _UrlExpired as e:
                if fresh:
                    raise DownloadError(
                        f"the video URL of task {task_id} was refused even after a fresh query: {e}",
                        e.info,
                        hint="the render is done and paid for; run again later to download it without rendering again",
                    ) from None
                log.debug("download of task %s: URL expired, querying the task again", task_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def _download(
        self, file_id: str, dest: Path, expected_bytes: int | None, on_progress: Callable[[int, int | None], None] | None
    ) -> Steps[Download]:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _write_error(dest, e, CallInfo("download")) from None
        failures: list[tuple[str, ApiError]] = []
        meta = yield from self._metadata(file_id, failures)
        expected = expected_bytes if expected_bytes is not None else (meta.bytes if meta else None)

        def via(route: str) -> Steps[Download | None]:
            if route == "retrieve_content":
                url: str | None = f"{self.host}{facts.PATH_RETRIEVE_CONTENT}?{urlencode({'file_id': file_id})}"
            elif meta is None:
                return None
            else:
                url = meta.download_url if route == "download" else meta.backup_download_url
            if not url:
                return None
            # Only the API host gets the key; signed URLs never do.
            call = Call(route, "GET", url, api_host=route == "retrieve_content")
            try:
                return (yield from self._retried(call, lambda c: self._fetch(c, dest, expected, on_progress)))
            except RateLimitedError:
                raise  # the runner pauses every worker; another route would be rate limited too
            except (TransientError, DownloadError, JobFailedError) as e:
                if isinstance(e, DownloadError) and not e.retryable:
                    raise  # a local write failure: no other route can help
                failures.append((route, e))
                return None

        got = yield from via("download")
        if got is None and failures and isinstance(failures[-1][1], _UrlExpired):
            log.debug("download of file %s: URL expired, fetching fresh metadata", file_id)
            fresh = yield from self._metadata(file_id, failures)
            if fresh is not None:  # else the fresh retrieve failed: go on with the other routes
                meta = fresh
                got = yield from via("download")
        for route in ("backup_download", "retrieve_content"):
            if got is None:
                got = yield from via(route)
        if got is not None:
            return got
        raise DownloadError(
            f"could not download file {file_id} to {dest}; every route failed:"
            + "".join(f"\n    {route}: {e}" for route, e in failures),
            failures[-1][1].info if failures else CallInfo("download"),
            hint="the render is done and paid for; run again later to download it without rendering again",
        )

    def _metadata(self, file_id: str, failures: list[tuple[str, ApiError]]) -> Steps[FileInfo | None]:
        """``retrieve`` for a download; a transient failure is noted and leaves ``retrieve_content``
        (which needs no metadata) to try. Rate limits, account, key and host errors propagate."""
        try:
            return (yield from self._retrieve(file_id))
        except RateLimitedError:
            raise
        except TransientError as e:
            failures.append(("retrieve", e))
            return None

    def _parse_v2_query(self, task_id: str, answer: _Answer, call: Call) -> V2Task:
        task = answer.body.get("task")
        if not isinstance(task, dict):
            raise TransientError(f"query of task {task_id} answered without a task{call.tries}", answer.info)
        parsed = self._v2_task(task, answer.info, task_id)
        if parsed.state is facts.TaskState.SUCCESS and not parsed.video_url:
            raise TransientError(f"query of task {task_id} answered {parsed.status} without content.url{call.tries}", answer.info)
        return parsed

    def _v2_task(self, task: Mapping[str, Any], info: CallInfo, task_id: str | None = None) -> V2Task:
        status = str(task.get("status") or "")
        state = facts.v2_task_state(status)
        tid = str(task.get("id") or task.get("task_id") or task_id or "")
        if state is facts.TaskState.UNKNOWN:
            self._warn_unknown("task", tid, status)
        error: Mapping[str, Any] = task["error"] if isinstance(task.get("error"), dict) else {}
        content: Mapping[str, Any] = task["content"] if isinstance(task.get("content"), dict) else {}
        usage = task.get("usage")
        message = error.get("message")
        return V2Task(
            task_id=tid,
            status=status,
            state=state,
            model=task.get("model") or None,
            created_at=_timestamp(task.get("created_at")),
            updated_at=_timestamp(task.get("updated_at")),
            video_url=content.get("url") or None,
            resolution=task.get("resolution") or None,
            duration=_int_or_none(task.get("duration")),
            ratio=task.get("ratio") or None,
            task_type=task.get("task_type") or None,
            usage={k: v for k in facts.V2_USAGE_FIELDS if (v := _int_or_none(usage.get(k))) is not None} if isinstance(usage, dict) else None,
            error_code=_int_or_none(error.get("code")) or None,
            error_message=self._scrub(str(message)) if message else None,
            trace_id=info.trace_id,
        )

    def _api_call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        fold: frozenset[int] = frozenset(),
        files: Any = None,
    ) -> Call:
        return Call(name, method, self.host + path, api_host=True, params=params, json_body=json_body, fold=fold, files=files)

    def _parse_query(self, task_id: str, answer: _Answer, call: Call | None = None) -> TaskStatus:
        body, info = answer.body, answer.info
        status = str(body.get("status") or "")
        code = info.status_code or 0
        error_message = self._scrub(str(body["error_message"])) if body.get("error_message") else None
        if code:  # a folded job-ending code: the task failed
            fact = facts.ERROR_CODES[code]
            detail = info.status_msg if info.status_msg and info.status_msg != fact.meaning else None
            error_message = f"{code} {fact.meaning}" + (f": {detail}" if detail else "")
            state = facts.TaskState.FAILED
            status = status or facts.STATUS_FAIL
        else:
            state = facts.task_state(status)
        if state is facts.TaskState.UNKNOWN:
            self._warn_unknown("query", task_id, status)
        file_id = body.get("file_id")
        file_id = str(file_id) if file_id not in (None, "", 0, "0") else None
        if state is facts.TaskState.SUCCESS and file_id is None:
            # Nothing to download yet; asking again is the only way forward.
            tries = call.tries if call else ""
            raise TransientError(f"query of task {task_id} answered Success without a file_id{tries}", info)
        return TaskStatus(
            task_id=str(body.get("task_id") or task_id),
            status=status,
            state=state,
            file_id=file_id,
            video_width=_int_or_none(body.get("video_width")),
            video_height=_int_or_none(body.get("video_height")),
            error_message=error_message,
            trace_id=info.trace_id,
            status_code=code or None,
        )

    def _warn_unknown(self, what: str, task_id: str, status: str) -> None:
        """Warn that ``status`` is not in the contract (so the task counts as still running),
        once per task and status."""
        if (task_id, status) not in self._unknown_warned:
            self._unknown_warned.add((task_id, status))
            log.warning("%s %s: unknown status %r, treated as still running", what, task_id, status)

    # --- one request, with the client's few retries -------------------------------------------

    def _retried(self, call: Call, once: Callable[[Call], Steps[T]]) -> Steps[T]:
        """The steps of ``once`` for ``call``, tried again only as the module docstring allows."""
        call = replace(call, attempt=1, attempts=self.retry.attempts)
        while True:
            try:
                return (yield from once(call))
            except TransientError as e:
                wait = self._brief_wait(call, e)
                if wait is None:
                    raise
                log.debug("%s: retrying in %.3fs after: %s", call.name, wait, e)
            yield _Pause(wait)
            call = call.next_attempt()

    def _brief_wait(self, call: Call, error: TransientError) -> float | None:
        """Seconds to wait before trying ``call`` again, or ``None``: raise ``error`` now."""
        if call.attempt >= call.attempts or isinstance(error, RateLimitedError):
            return None
        never_sent = isinstance(error, ConnectFailedError)
        gateway = not call.is_create and error.info.http_status in facts.BRIEF_RETRY_HTTP
        if not (never_sent or gateway):
            return None
        if error.retry_after is not None and error.retry_after > self.retry.backoff_max:
            return None  # the server asks for a long pause: the runner's to take, not a worker's
        return backoff_delay(self.retry, call.attempt, retry_after=error.retry_after)

    @staticmethod
    def _ask(call: Call, parse: Callable[[_Answer, Call], T]) -> Steps[T]:
        """One request of an API call, its answer parsed."""
        answer: _Answer = yield _Send(call)
        return parse(answer, call)

    @staticmethod
    def _fetch(
        call: Call, dest: Path, expected: int | None, on_progress: Callable[[int, int | None], None] | None
    ) -> Steps[Download]:
        """One GET of a video streamed into ``dest``."""
        got: Download = yield _Stream(call, dest, expected, on_progress)
        return got

    def _drive(self, steps: Steps[T]) -> T:
        """Carry out ``steps`` here and now, with requests: each request, download and pause in
        turn (see :class:`_Stepper`)."""
        stepper = _Stepper(steps)
        while (effect := stepper.next()) is not None:
            try:
                if isinstance(effect, _Send):
                    stepper.gave(self._send(effect.call))
                elif isinstance(effect, _Stream):
                    stepper.gave(self._stream(effect))
                else:
                    self._sleep(effect.seconds)
            except Exception as e:  # noqa: BLE001 - handed to the steps, which decide
                stepper.failed(e)
        return stepper.result

    def _send(self, call: Call) -> _Answer:
        """Send one request of an API call and judge its answer."""
        started = self._clock()
        try:
            resp = self._session.request(
                call.method,
                call.url,
                params=call.params,
                json=call.json_body,
                files=call.files,
                headers=self._headers(json_body=call.files is None),
                auth=self._bearer,
                timeout=(self.timeouts.connect, call.read_timeout or self.timeouts.read),
                allow_redirects=False,
            )
            reply = _Reply(resp.status_code, resp.reason or "", resp.headers, resp.content)
        except requests.exceptions.InvalidURL as e:
            failure: Exception = self._bad_url(call, e)
        except requests.RequestException as e:
            failure = self._transport_error(call, e)
        else:
            return self._judge(call, reply, started)
        # Raised outside the except block so the requests exception (which holds the prepared
        # request, Authorization header included) is neither the cause nor the context.
        raise failure

    def _bad_url(self, call: Call, exc: Exception) -> ConfigError:
        return ConfigError(f"{call.name}: bad API URL ({self._scrub(str(exc))}); check the host {self.host} (from {self.host_source})")

    def _judge(self, call: Call, reply: _Reply, started: float) -> _Answer:
        """Turn one HTTP answer into a parsed body or the exception it calls for."""
        self.host_answered = True
        info = CallInfo(call.name, http_status=reply.status, trace_id=self._trace_id(reply))
        body, parse_problem = _json_object(reply.content)
        self._read_base_resp(body, info)
        log.debug(
            "%s: %s %s -> HTTP %s status_code=%s trace_id=%s (%.2fs)%s",
            call.name,
            call.method,
            call.loggable_url,
            reply.status,
            info.status_code,
            info.trace_id,
            self._clock() - started,
            call.tries,
        )
        date = reply.headers.get("Date")
        if info.status_code and info.status_code in call.fold:
            return _Answer(body or {}, info, date)
        answered = facts.http_kind(reply.status) is Kind.OK  # any 2xx: an answer, not an error
        if call.name == "cancel" and not info.status_code and answered and (reply.status in (202, 204) or not reply.content):
            return _Answer(body or {}, info, date)  # a DELETE may answer without a body (the contract gives none)
        if call.is_create and not info.status_code and reply.status == 504:
            # the gateway forwarded the create and gave up waiting: the API may have made the task
            raise MaybeSubmittedError("create answered HTTP 504 (a gateway timed out waiting for the API); a task may exist", info, hint=_MAYBE_HINT)
        if info.status_code or not answered:  # a non-zero code says more than the HTTP status
            raise self._error(call, info, reply)
        if body is None:
            if call.is_create:
                raise MaybeSubmittedError(
                    f"create answered HTTP {reply.status} with {parse_problem}; a task may exist", info, hint=_MAYBE_HINT
                )
            raise TransientError(f"{call.name} answered HTTP {reply.status} with {parse_problem}{call.tries}", info)
        return _Answer(body, info, date)

    def _read_base_resp(self, body: dict[str, Any] | None, info: CallInfo) -> None:
        """The error code of an answer: ``base_resp`` (every call), else a top-level
        ``error: {code, message}`` (V2 errors sent with an HTTP error status)."""
        base = body.get("base_resp") if isinstance(body, dict) else None
        if isinstance(base, dict):
            info.status_code = _int_or_none(base.get("status_code"))
            info.status_msg = self._scrub(str(base.get("status_msg") or "")) or None
            return
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and _int_or_none(error.get("code")):
            info.status_code = _int_or_none(error.get("code"))
            info.status_msg = self._scrub(str(error.get("message") or "")) or None

    def _error(self, call: Call, info: CallInfo, resp: _Reply) -> ApiError:
        """The one place an answer becomes an exception: :func:`classify` says what happened,
        :data:`ERROR_CLASSES` which class says it."""
        kind = classify(call, resp.status, info.status_code)
        code = info.status_code
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), now=self._wall_clock())
        if code:
            v2_create = call.is_create and urlsplit(call.url).path.endswith(facts.V2_PATH_CREATE)
            fact = facts.error_fact(code, "v2_create" if v2_create else call.name)
            message = f"{call.name} refused: {fact.meaning if fact else 'undocumented error code'} ({code})"
            # the facts' hints name the variable; a key from the config file is checked there
            hint = (fact.hint if fact else "").replace(f"check {ENV_KEY}", f"check {self.key_where}")
        else:
            message = f"{call.name} answered HTTP {resp.status} {self._scrub(resp.reason)}".rstrip()
            hint = {
                Kind.RATE_LIMITED: "lower --rpm",
                Kind.CREDENTIALS: f"check {self.key_where} and that it belongs to {self.host} (from {self.host_source})",
            }.get(kind, "")
        if kind is Kind.URL_EXPIRED:
            message += ": the signed URL has expired or is invalid"
        if kind is Kind.WRONG_HOST:
            where = self._scrub(resp.headers.get("Location", ""))
            return WrongHostError(
                f"{message}{' to ' + where if where else ''}: {self.host} (from {self.host_source}) "
                "does not answer like MiniMax's API",
                info,
                host=self.host,
                host_source=self.host_source,
                hint=self._host_fix(),
            )
        cls = ERROR_CLASSES.get(kind, TransientError)
        if issubclass(cls, TransientError):
            message += call.tries
        if cls is RateLimitedError:
            return RateLimitedError(message, info, retry_after=retry_after, hint=hint)
        err = cls(message, info, hint=hint)
        if isinstance(err, TransientError):
            err.retry_after = retry_after
        return err

    def _transport_error(self, call: Call, exc: Exception) -> ApiError:
        """No answer at all: which of "never sent", "host unreachable", "maybe submitted" or a
        dropped connection it was."""
        what = f"{type(exc).__name__}: {self._scrub(str(exc))}"
        info = CallInfo(call.name, detail={"exception": type(exc).__name__})
        never_sent = request_never_sent(exc)
        if never_sent and call.api_host and not self.host_answered:
            return HostUnreachableError(
                f"cannot reach the API host {self.host} (from {self.host_source}): {why_unreachable(exc)}",
                info,
                host=self.host,
                host_source=self.host_source,
                hint=self._host_fix(),
            )
        if never_sent:
            return ConnectFailedError(f"{call.name} could not connect{call.tries}: {what}", info)
        if call.is_create:
            return MaybeSubmittedError(
                f"create was sent but its answer was lost ({what}); a task may exist", info, hint=_MAYBE_HINT
            )
        kind = "timed out" if isinstance(exc, (requests.Timeout, TimeoutError)) else "lost the connection"
        return TransientError(f"{call.name} {kind}{call.tries}: {what}", info)

    def _host_fix(self) -> str:
        """What to do about a wrong host, by where it came from."""
        hosts = f"MiniMax's hosts are {facts.HOST_GLOBAL} (global) and {facts.HOST_MAINLAND} (mainland China)"
        source = self.host_source
        if source == "the default":
            how = f"is the network (or a proxy) up? Or choose the host with --api-host or {ENV_HOST}"
        elif source.startswith("the config file "):
            how = f"fix api_host in {source[len('the config file ') :]}, or override it with --api-host or {ENV_HOST}"
        elif ENV_HOST in source:
            how = f"fix or unset {ENV_HOST}"
        elif source == "--api-host":
            how = "fix --api-host"
        else:
            how = f"set it with --api-host or {ENV_HOST}"
        return f"check the API host: {how}; {hosts}"

    # --- downloads ----------------------------------------------------------------------------

    def _stream(self, fetch: _Stream) -> Download:
        """One GET streamed into ``fetch.dest`` (truncated first) and checked, with requests."""
        call = fetch.call
        info = CallInfo(call.name)
        started = self._clock()
        try:
            with self._session.request(
                call.method,
                call.url,
                headers=self._headers(json_body=call.api_host),
                auth=self._bearer if call.api_host else _NO_AUTH,
                stream=True,
                timeout=(self.timeouts.connect, self.timeouts.download_read),
            ) as resp:
                head = _Reply(resp.status_code, resp.reason or "", resp.headers, b"")
                if _download_needs_body(call, head):
                    head = replace(head, content=resp.content)
                self._check_download_answer(call, head, info)
                with _Sink(fetch, info, _int_or_none(resp.headers.get("Content-Length")), self._clock) as sink:
                    for chunk in resp.iter_content(_CHUNK):
                        sink.write(chunk)
                    return sink.done(started)
        except requests.RequestException as e:
            failure = self._transport_error(call, e)
        raise failure  # outside the except block: see _send

    def _check_download_answer(self, call: Call, reply: _Reply, info: CallInfo) -> None:
        """Whether a download's answer is the video (its body not read yet, unless
        :func:`_download_needs_body` says it is the API host's JSON)."""
        if call.api_host:
            self.host_answered = True
        info.http_status = reply.status
        info.trace_id = self._trace_id(reply)
        log.debug("%s: GET %s -> HTTP %s%s", call.name, call.loggable_url, reply.status, call.tries)
        if reply.status == 200:
            if _download_needs_body(call, reply):
                # The API host reports errors as JSON with a base_resp, even on HTTP 200.
                body, problem = _json_object(reply.content)
                self._read_base_resp(body, info)
                if info.status_code:
                    raise self._error(call, info, reply)
                raise DownloadError(f"{call.name} answered JSON instead of the video ({problem or 'no error code'})", info)
            return
        raise self._error(call, info, reply)

    # --- small helpers ------------------------------------------------------------------------

    def _headers(self, *, json_body: bool = True) -> dict[str, str]:
        """The headers of a request, but the key (which :class:`_Bearer` adds to API-host calls).
        A multipart upload (``json_body`` False) lets requests set its own Content-Type."""
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT} if json_body else {"User-Agent": USER_AGENT}

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.value, "<key>") if self._key.value else text

    def _trace_id(self, reply: _Reply) -> str | None:
        value = reply.headers.get("Trace-Id")
        return self._scrub(value) if value else None


class AsyncCalls:
    """:class:`Client`'s calls as coroutines on one event loop (the runner's wire): the client's
    own steps, carried out with aiohttp instead of requests. What an answer means, the retries,
    the download routes and the key's handling are the client's; only the transport differs.

    Made by :meth:`Client.open_async` on the loop's thread; every call and :meth:`aclose` run on
    that loop. The environment is read as requests reads it, through the client's session
    (proxies, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, a session's own ``verify`` and ``cert``), once
    per scheme and host. Cookies are kept and sent back as requests does (in a jar of its own); it
    never reads ``~/.netrc``.
    Redirects of downloads are followed here, the key going to the API host only."""

    def __init__(self, client: Client):
        import asyncio  # here, not at the top: with aiohttp 0.4 s to import, and only a run needs them

        import aiohttp
        import yarl  # aiohttp's URLs

        self._client = client
        self._asyncio = asyncio
        self._aiohttp = aiohttp
        self._yarl = yarl
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # the runner bounds its calls in flight
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # kept and sent back as requests does, IP hosts too
            trust_env=False,
        )
        self._environment: dict[tuple[str, str], tuple[str | None, ssl.SSLContext | bool]] = {}
        self._api_origin = urlsplit(client.host)[:2]

    async def aclose(self) -> None:
        await self._session.close()

    async def create(self, request: dict[str, Any]) -> str:
        return await self._run(self._client._create(request))

    async def query(self, task_id: str) -> TaskStatus:
        return await self._run(self._client._query(task_id))

    async def retrieve(self, file_id: str | int) -> FileInfo:
        return await self._run(self._client._retrieve(file_id))

    async def create_v2(self, body: dict[str, Any]) -> str:
        return await self._run(self._client._create_v2(body))

    async def query_v2(self, task_id: str) -> V2Task:
        return await self._run(self._client._query_v2(task_id))

    async def list_v2(
        self,
        *,
        status: str | None = None,
        task_ids: Sequence[str] = (),
        model: str | None = None,
        task_type: str | None = None,
        created_after: float | None = None,
        page_size: int = facts.V2_LIST_PAGE_SIZE,
        max_pages: int = 400,
    ) -> V2Page:
        return await self._run(
            self._client._list_v2(status=status, task_ids=task_ids, model=model, task_type=task_type,
                                  created_after=created_after, page_size=page_size, max_pages=max_pages)
        )  # fmt: skip

    async def cancel_v2(self, task_id: str) -> None:
        await self._run(self._client._cancel_v2(task_id))

    async def upload_file(self, data: bytes, filename: str, *, purpose: str = "video_generation") -> str:
        return await self._run(self._client._upload_file(data, filename, purpose))

    async def download(
        self,
        file_id: str | int,
        dest: Path,
        *,
        expected_bytes: int | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Download:
        return await self._run(self._client._download(str(file_id), Path(dest), expected_bytes, on_progress))

    async def download_v2(self, task_id: str, dest: Path, *, url: str | None = None, expected_bytes: int | None = None) -> Download:
        return await self._run(self._client._download_v2(task_id, Path(dest), url, expected_bytes))

    # --- carrying out the steps ---------------------------------------------------------------

    async def _run(self, steps: Steps[T]) -> T:
        """As :meth:`Client._drive`, each step awaited."""
        stepper = _Stepper(steps)
        while (effect := stepper.next()) is not None:
            try:
                if isinstance(effect, _Send):
                    stepper.gave(await self._send(effect.call))
                elif isinstance(effect, _Stream):
                    stepper.gave(await self._stream(effect))
                elif self._client._sleep is time.sleep:
                    await self._asyncio.sleep(effect.seconds)
                else:
                    self._client._sleep(effect.seconds)  # an injected sleep (a test's) returns at once
            except Exception as e:  # noqa: BLE001 - handed to the steps, which decide
                stepper.failed(e)
        return stepper.result

    async def _send(self, call: Call) -> _Answer:
        client, aiohttp = self._client, self._aiohttp
        started = client._clock()
        url = call.url
        if call.params:
            url += ("&" if "?" in url else "?") + urlencode(call.params)
        try:
            async with self._session.request(
                call.method, self._url(url), allow_redirects=False, **self._options(call, url, call.read_timeout or client.timeouts.read)
            ) as resp:
                reply = _Reply(resp.status, resp.reason or "", resp.headers, await resp.read())
        except aiohttp.InvalidURL as e:
            failure: Exception = client._bad_url(call, e)
        except (aiohttp.ClientError, TimeoutError) as e:  # asyncio's TimeoutError is the builtin
            failure = client._transport_error(call, e)
        else:
            return client._judge(call, reply, started)
        raise failure  # outside the except block: see Client._send

    async def _stream(self, fetch: _Stream) -> Download:
        client, aiohttp, call = self._client, self._aiohttp, fetch.call
        info = CallInfo(call.name)
        started = client._clock()
        url = call.url
        try:
            for hop in range(_MAX_REDIRECTS + 1):
                resp = await self._session.request("GET", self._url(url), allow_redirects=False, **self._options(call, url, client.timeouts.download_read))
                location = resp.headers.get("Location")
                if resp.status not in _REDIRECTS or not location or hop == _MAX_REDIRECTS:
                    break
                resp.release()
                url = urljoin(url, location)
            try:
                head = _Reply(resp.status, resp.reason or "", resp.headers, b"")
                if _download_needs_body(call, head):
                    head = replace(head, content=await resp.read())
                client._check_download_answer(call, head, info)
                with _Sink(fetch, info, _int_or_none(resp.headers.get("Content-Length")), client._clock) as sink:
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        sink.write(chunk)
                    return sink.done(started)
            finally:
                resp.release()
        except (aiohttp.ClientError, TimeoutError) as e:  # asyncio's TimeoutError is the builtin
            failure = client._transport_error(call, e)
        raise failure  # outside the except block: see Client._send

    def _url(self, url: str) -> Any:
        """``url`` as sent: already encoded (our own URLs are built encoded, and a signed URL's
        signature must reach its host byte for byte)."""
        return self._yarl.URL(url, encoded=True)

    def _options(self, call: Call, url: str, read_timeout: float) -> dict[str, Any]:
        client, aiohttp = self._client, self._aiohttp
        parts = urlsplit(url)
        proxy, tls = self._transport(url, parts)
        headers = client._headers(json_body=call.api_host if call.is_download else call.files is None)
        if call.api_host and parts[:2] == self._api_origin:
            headers["Authorization"] = f"Bearer {client._key.value}"
        options: dict[str, Any] = {
            "headers": headers,
            "proxy": proxy,
            "ssl": tls,
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=client.timeouts.connect, sock_read=read_timeout),
        }
        if call.files is not None:
            form = aiohttp.FormData()
            for name, (filename, content) in call.files.items():
                if filename:
                    form.add_field(name, content, filename=filename)
                else:
                    form.add_field(name, content)
            options["data"] = form
        elif call.json_body is not None:
            options["data"] = json.dumps(call.json_body, allow_nan=False).encode()
        return options

    def _transport(self, url: str, parts: SplitResult) -> tuple[str | None, ssl.SSLContext | bool]:
        """The proxy and TLS settings of ``url``'s host (``parts``: the URL split), as requests
        would choose them."""
        key = (parts.scheme, parts.netloc)
        found = self._environment.get(key)
        if found is None:
            settings = self._client._session.merge_environment_settings(url, {}, None, None, None)
            proxy = requests.utils.select_proxy(url, settings.get("proxies") or {})
            tls: ssl.SSLContext | bool = True
            if parts.scheme == "https":
                tls = _tls_context(settings.get("verify", True), settings.get("cert"))
            found = self._environment[key] = (proxy, tls)
        return found


def _tls_context(verify: Any, cert: Any) -> ssl.SSLContext | bool:
    """requests' ``verify`` and ``cert`` as an SSL context (``False``: not verified)."""
    if verify is False:
        return False
    where = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True or verify is None else str(verify)
    context = ssl.create_default_context(capath=where) if os.path.isdir(where) else ssl.create_default_context(cafile=where)
    if cert:
        context.load_cert_chain(*(cert if isinstance(cert, (tuple, list)) else (cert,)))
    return context


_MAYBE_HINT = (
    "the API has no idempotency key, so vidbatch does not resubmit on its own: check the task list on "
    "the MiniMax console, then submit again if no task exists"
)


def _parse_create(answer: _Answer) -> str:
    task_id = answer.body.get("task_id")
    if task_id in (None, ""):
        raise MaybeSubmittedError(
            "create answered success without a task_id; a task may exist", answer.info, hint=_MAYBE_HINT
        )
    return str(task_id)


def _parse_retrieve(file_id: str, answer: _Answer, call: Call) -> FileInfo:
    file = answer.body.get("file")
    if not isinstance(file, dict):
        raise TransientError(f"retrieve of file {file_id} answered without file metadata{call.tries}", answer.info)
    return FileInfo(
        file_id=str(file.get("file_id") or file_id),
        bytes=_int_or_none(file.get("bytes")),
        filename=file.get("filename"),
        created_at=_int_or_none(file.get("created_at")),
        download_url=file.get("download_url") or None,
        backup_download_url=file.get("backup_download_url") or None,
    )


def _write_error(dest: Path, exc: OSError, info: CallInfo) -> DownloadError:
    err = DownloadError(
        f"could not write the video to {dest.parent}: {exc.strerror or exc}",
        info,
        hint="free some disk space (or fix the folder's permissions) and run again",
    )
    err.retryable = False  # the disk, not the network: retrying now would fail the same way
    return err


def _json_object(content: bytes) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or ``None`` and what was wrong with it."""
    try:
        body = json.loads(content or b"")
    except ValueError:
        return None, f"a body that is not JSON ({len(content or b'')} bytes)"
    if not isinstance(body, dict):
        return None, "a JSON body that is not an object"
    return body, ""


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> float | None:
    """A task time as Unix seconds: seconds or milliseconds (as number or digits), or ISO 8601."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when.timestamp()
    return number / 1000.0 if number > 1e11 else number


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() if when is not None and when.tzinfo is not None else None


def _more_pages(body: Mapping[str, Any], page: int, page_size: int, got: int) -> bool:
    """Whether the task list has a page after ``page``: its own word (``has_more``, ``total``)
    when it gives one, else a full page."""
    if got == 0:
        return False
    if isinstance(body.get("has_more"), bool):
        return bool(body["has_more"])
    total = _int_or_none(body.get("total"))
    if total is not None:
        return page * page_size < total
    return got >= page_size


def _loggable_url(url: str) -> str:
    """A URL without its query string (a signed URL's signature is a credential for that file)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
