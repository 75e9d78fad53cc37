"""The HTTP client for MiniMax's video generation API.

One :class:`Client` wraps one injectable :class:`requests.Session` and speaks the four calls of
the contract (``create``, ``query``, ``retrieve``, ``retrieve_content``) plus the download of a
finished video. Every fact about the API (hosts, paths, statuses, what each ``base_resp`` code
means) is read from :mod:`vidbatch.facts`; this module decides only how to act on them.

Design
------
*One attempt, one verdict.* :meth:`Client._attempt` sends one request and :meth:`Client._judge`
turns the answer into either a parsed body or one exception from :mod:`vidbatch.errors`. The
retry loop (tenacity, built in :meth:`Client._retrying`) then needs one rule: retry
``TransientError`` and its subclass ``RateLimitedError``, never anything else. After the last
attempt the last ``TransientError`` is raised as is, so the runner can requeue the job.

*Verdicts.* A non-zero ``base_resp.status_code`` decides first, by :func:`facts.error_action`:
RETRY (and unknown codes) -> ``TransientError``, RATE_LIMITED -> ``RateLimitedError``,
FAIL_JOB -> ``ContentFlaggedError`` (1026/1027) or ``InvalidRequestError`` (2013), STOP_RUN ->
``CredentialsError`` (1004/2049) or ``AccountError``. Without one, the HTTP status: 429 ->
``RateLimitedError``; 408 and 5xx -> ``TransientError``; 401/403 -> ``CredentialsError``;
a redirect, 404 or 405 -> ``ConfigError`` (the host is wrong, every call would fail); other 4xx ->
``InvalidRequestError``.

*Waits* (:func:`backoff_delay`): exponential, capped at ``backoff_max``, with full jitter.
Rate limits (HTTP 429 and the codes ``facts`` marks ``RATE_LIMITED``) start from the longer
``rate_limit_base`` and keep at least half of the exponential step, so a rate limit always
pauses. A ``Retry-After`` header is a floor; when the server asks for a pause longer than
``backoff_max`` the client stops retrying and raises ``RateLimitedError(retry_after=...)`` at
once, so a worker is not parked for an hour inside a call.

*create has no idempotency key.* A create is retried only when the request certainly did not
reach the server (:func:`request_never_sent`: connection refused, DNS failure, connect timeout)
or when the server answered "no" (a retryable HTTP status or ``base_resp`` code). When the
request may have arrived but the answer was lost (read timeout, connection closed or reset
before a complete answer, a broken body, an unreadable 200 answer) the client raises
``MaybeSubmittedError`` and does not retry: a second create could pay twice. On the wire a
connection closed before any answer looks the same whether or not the server acted on the
request, so it is treated as "maybe submitted" too. (A 502/504 from a gateway could in principle
follow a request it forwarded; the contract lists them as errors to retry, and so does vidbatch.)

*Downloads* (:meth:`Client.download`) stream into ``.{name}.{random}.part`` beside the
destination, hashing as they go; the byte count is checked against the file's metadata, the
file is fsynced and then renamed over the destination with :func:`os.replace`. A partial file
never sits at the destination and the temporary file is removed on every way out (``finally``,
so Ctrl-C too). Routes, in order: the signed ``download_url`` (re-fetched once with a fresh
``retrieve`` when it answers 403/404/410, i.e. expired), ``backup_download_url`` when the
metadata has one, then ``retrieve_content`` on the API host. Each route gets the same retry
policy for transient failures (truncation, dropped connections, 5xx). Signed URLs get no
``Authorization`` header: the key only ever goes to the API host. A local write failure (disk
full, permissions) ends the download at once with a non-retryable ``DownloadError`` carrying the
OS message: other routes would fail the same way.

*The key stays secret.* It is sent per request (never set on the session, whose headers would
follow the session to download hosts), kept out of ``repr``, and scrubbed from every text that
reaches a message or a log. Exceptions from requests are not chained into vidbatch errors,
because they hold the prepared request and its ``Authorization`` header; their scrubbed text is
quoted instead. Signed download URLs are logged without their query string.

The library never prints; it logs to ``logging.getLogger(__name__)`` at DEBUG per call and retry.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_any

from . import __version__, facts
from .config import ENV_HOST, ENV_KEY  # re-exported: the variable names have one home
from .errors import (
    AccountError,
    ApiError,
    CallInfo,
    ConfigError,
    ContentFlaggedError,
    CredentialsError,
    DownloadError,
    InvalidRequestError,
    JobFailedError,
    MaybeSubmittedError,
    RateLimitedError,
    RenderFailedError,
    TransientError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = f"vidbatch/{__version__}"

#: Download answers that mean "this signed URL is no longer valid": fetch fresh metadata.
URL_EXPIRED_HTTP = frozenset({403, 404, 410})
_CHUNK = 1 << 16

#: ``facts`` says what a code means for a client (its Action); these pick the exception class for
#: the job-ending and run-stopping ones. Codes not listed get JobFailedError / AccountError.
_JOB_ERRORS: dict[int, type[JobFailedError]] = {
    1026: ContentFlaggedError,
    1027: ContentFlaggedError,
    2013: InvalidRequestError,
}
_RUN_ERRORS: dict[int, type[AccountError]] = {1004: CredentialsError, 2049: CredentialsError}


# --- policy and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # total tries per call for retryable failures
    backoff_base: float = 1.0  # seconds; exponential with full jitter, capped at backoff_max
    backoff_max: float = 60.0
    rate_limit_base: float = 10.0  # first pause after 429/1002/1039/1041 (longer than the normal base)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0
    download_read: float = 120.0


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
        if self.state is not facts.TaskState.FAILED:
            return
        info = CallInfo("query", status_code=self.status_code, status_msg=self.error_message, trace_id=self.trace_id)
        if self.status_code in _FLAGGED_CODES:
            fact = facts.ERROR_CODES[self.status_code]
            raise ContentFlaggedError(f"task {self.task_id} failed: {fact.meaning}", info, hint=fact.hint)
        raise RenderFailedError(
            f"task {self.task_id} ended with status {self.status}: {self.error_message or 'no reason given'}",
            info,
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


# --- pure rules (unit-tested on their own) ----------------------------------------------------


def backoff_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    rate_limited: bool = False,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Full jitter over ``base * 2**(attempt-1)`` capped at ``backoff_max``; a rate limit uses
    ``rate_limit_base`` and never less than half the step; ``retry_after`` is a floor.
    """
    base = policy.rate_limit_base if rate_limited else policy.backoff_base
    step = min(policy.backoff_max, base * 2 ** (attempt - 1))
    delay = step * (0.5 + rand() / 2) if rate_limited else step * rand()
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
    for e in _causes(exc):
        # NewConnectionError (and NameResolutionError) subclass ConnectTimeoutError in urllib3.
        if isinstance(e, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ClosedPoolError)):
            return True
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
    return False


# --- the client -------------------------------------------------------------------------------


class _Secret:
    """Holds the key; its repr never shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _UrlExpired(DownloadError):
    """A signed URL answered 403/404/410: fetch fresh metadata (internal; never escapes)."""


@dataclass
class _Answer:
    body: dict[str, Any]
    info: CallInfo


class Client:
    """MiniMax video API client.

    It keeps no per-call state, so worker threads may share one client; what they then share is
    the session's connection pool, which urllib3 makes thread-safe.
    """

    def __init__(
        self,
        api_key: str,
        host: str = facts.DEFAULT_HOST,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not api_key or api_key != api_key.strip() or any(c.isspace() or ord(c) < 32 for c in api_key):
            # requests would quote the whole header value, key included, in its InvalidHeader message.
            raise ConfigError(f"the API key is empty or contains whitespace; check {ENV_KEY}")
        host = host.strip().rstrip("/")
        if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).netloc:
            raise ConfigError(
                f"API host {host!r} is not a URL; use {facts.HOST_GLOBAL} or {facts.HOST_MAINLAND} ({ENV_HOST})"
            )
        self._key = _Secret(api_key)
        self.host = host
        self.retry = retry
        self.timeouts = timeouts
        self._sleep = sleep
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    @classmethod
    def from_env(cls, host: str | None = None, **kwargs: Any) -> "Client":
        """A client for the key and host found by :func:`vidbatch.config.credentials`: the
        ``host`` given, the environment (``MINIMAX_API_KEY``, ``MINIMAX_API_HOST``), then the
        config file (readable by its owner only), then :data:`facts.DEFAULT_HOST`."""
        from . import config

        found = config.credentials(host)
        if not found.key:
            raise ConfigError(config.missing_key_message())
        return cls(found.key, found.host, **kwargs)

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

    def create(self, request: dict) -> str:
        """Submit a render; returns MiniMax's task id. Raises ``MaybeSubmittedError`` when the
        request may have been accepted but the answer was lost (never retried)."""
        return self._call("create", "POST", facts.PATH_CREATE, json_body=request, parse=_parse_create)

    def query(self, task_id: str) -> TaskStatus:
        """The task's status. A failed task is returned, not raised (see :meth:`TaskStatus.raise_for_failure`);
        so is an answer with ``base_resp`` 1026/1027 (output flagged), as a failed status."""
        return self._call(
            "query",
            "GET",
            facts.PATH_QUERY,
            params={"task_id": task_id},
            fold=_FLAGGED_CODES,
            parse=lambda answer, tries: self._parse_query(task_id, answer, tries),
        )

    def retrieve(self, file_id: str | int) -> FileInfo:
        """File metadata, with a fresh signed ``download_url``."""
        return self._call(
            "retrieve",
            "GET",
            facts.PATH_RETRIEVE,
            params={"file_id": str(file_id)},
            parse=lambda answer, tries: _parse_retrieve(str(file_id), answer, tries),
        )

    def _parse_query(self, task_id: str, answer: _Answer, tries: str) -> TaskStatus:
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
            log.warning("query %s: unknown status %r, treated as still running", task_id, status)
        file_id = body.get("file_id")
        file_id = str(file_id) if file_id not in (None, "", 0, "0") else None
        if state is facts.TaskState.SUCCESS and file_id is None:
            # Nothing to download yet; asking again is the only way forward.
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

    def download(
        self,
        file_id: str | int,
        dest: Path,
        *,
        expected_bytes: int | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Download:
        """Fetch a finished video to ``dest`` (replaced only once the new file is complete).

        ``expected_bytes`` defaults to the metadata's ``file.bytes``. ``on_progress(done, total)``
        is called as bytes arrive; it restarts from 0 when an attempt is retried. Routes are tried
        in the order the module docstring gives; ``DownloadError`` lists why each one failed.
        Errors of the first ``retrieve`` (file unknown, credentials) propagate as they are.
        """
        file_id, dest = str(file_id), Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._write_error(dest, e, CallInfo("download")) from None
        meta = self.retrieve(file_id)
        expected = expected_bytes if expected_bytes is not None else meta.bytes
        failures: list[tuple[str, ApiError]] = []

        def via(route: str) -> Download | None:
            if route == "retrieve_content":
                url: str | None = f"{self.host}{facts.PATH_RETRIEVE_CONTENT}?{urlencode({'file_id': file_id})}"
            else:
                url = meta.download_url if route == "download" else meta.backup_download_url
            if not url:
                return None
            auth = route == "retrieve_content"  # the API host; signed URLs never get the key
            try:
                return self._download_route(route, url, auth, dest, expected, on_progress)
            except (TransientError, DownloadError, JobFailedError) as e:
                if isinstance(e, DownloadError) and not e.retryable:
                    raise  # a local write failure: no other route can help
                failures.append((route, e))
                return None

        got = via("download")
        if got is None and failures and isinstance(failures[-1][1], _UrlExpired):
            log.debug("download of file %s: URL expired, fetching fresh metadata", file_id)
            try:
                meta = self.retrieve(file_id)
            except (TransientError, JobFailedError) as e:
                failures.append(("retrieve", e))
            else:
                got = via("download")
        got = got or via("backup_download") or via("retrieve_content")
        if got is not None:
            return got
        raise DownloadError(
            f"could not download file {file_id} to {dest}; every route failed:"
            + "".join(f"\n    {route}: {e}" for route, e in failures),
            failures[-1][1].info if failures else CallInfo("download"),
            hint="the render is done and paid for; run again later to download it without rendering again",
        )

    # --- one call, with retries ---------------------------------------------------------------

    def _call(
        self,
        call: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        fold: frozenset[int] = frozenset(),
        parse: Callable[[_Answer, str], T],
    ) -> T:
        """Send, check and ``parse`` one call, retrying ``TransientError`` per the policy. ``parse``
        runs inside the attempt, so an answer it finds incomplete is retried too; ``fold`` lists
        codes handed to ``parse`` instead of raised."""
        for attempt in self._retrying(call):
            with attempt:
                tries = f" (attempt {attempt.retry_state.attempt_number} of {self.retry.attempts})"
                return parse(self._attempt(call, method, path, params, json_body, fold, tries), tries)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _retrying(self, call: str) -> Retrying:
        return Retrying(
            stop=stop_any(stop_after_attempt(self.retry.attempts), self._server_pause_too_long),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(call, state),
            reraise=True,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_delay(
            self.retry,
            state.attempt_number,
            rate_limited=isinstance(exc, RateLimitedError),
            retry_after=getattr(exc, "retry_after", None),
        )

    def _server_pause_too_long(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and retry_after > self.retry.backoff_max

    def _log_retry(self, call: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.debug("%s: retrying in %.3fs after: %s", call, wait, exc)

    def _attempt(
        self,
        call: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        fold: frozenset[int],
        tries: str,
    ) -> _Answer:
        started = time.monotonic()
        try:
            resp = self._session.request(
                method,
                self.host + path,
                params=params,
                json=json_body,
                headers=self._headers(auth=True),
                timeout=(self.timeouts.connect, self.timeouts.read),
                allow_redirects=False,
            )
        except requests.exceptions.InvalidURL as e:
            failure: Exception = ConfigError(f"{call}: bad API URL ({self._scrub(str(e))}); check {ENV_HOST}")
        except requests.RequestException as e:
            failure = self._transport_error(call, e, tries)
        else:
            return self._judge(call, method, path, resp, fold, tries, started)
        # Raised outside the except block so the requests exception (which holds the prepared
        # request, Authorization header included) is neither the cause nor the context.
        raise failure

    def _judge(
        self,
        call: str,
        method: str,
        path: str,
        resp: requests.Response,
        fold: frozenset[int],
        tries: str,
        started: float,
    ) -> _Answer:
        """Turn one HTTP answer into a parsed body or the exception it calls for."""
        info = CallInfo(call, http_status=resp.status_code, trace_id=self._trace_id(resp))
        body, parse_problem = _json_object(resp)
        base = body.get("base_resp") if isinstance(body, dict) else None
        if isinstance(base, dict):
            info.status_code = _int_or_none(base.get("status_code"))
            info.status_msg = self._scrub(str(base.get("status_msg") or "")) or None
        log.debug(
            "%s: %s %s -> HTTP %s status_code=%s trace_id=%s (%.2fs)%s",
            call,
            method,
            path,
            resp.status_code,
            info.status_code,
            info.trace_id,
            time.monotonic() - started,
            tries,
        )
        if info.status_code:  # a non-zero code says more than the HTTP status
            if info.status_code in fold:
                return _Answer(body or {}, info)
            raise self._code_error(call, info, resp, tries)
        if resp.status_code != 200:
            raise self._http_error(call, info, resp, tries)
        if body is None:
            if call == "create":
                raise MaybeSubmittedError(
                    f"create answered HTTP 200 with {parse_problem}; a task may exist", info, hint=_MAYBE_HINT
                )
            raise TransientError(f"{call} answered HTTP 200 with {parse_problem}{tries}", info)
        return _Answer(body, info)

    def _transport_error(self, call: str, exc: requests.RequestException, tries: str) -> ApiError:
        what = f"{type(exc).__name__}: {self._scrub(str(exc))}"
        info = CallInfo(call, detail={"exception": type(exc).__name__})
        if call == "create" and not request_never_sent(exc):
            return MaybeSubmittedError(
                f"create was sent but its answer was lost ({what}); a task may exist", info, hint=_MAYBE_HINT
            )
        kind = "timed out" if isinstance(exc, requests.Timeout) else "failed to connect or lost the connection"
        return TransientError(f"{call} {kind}{tries}: {what}", info)

    def _code_error(self, call: str, info: CallInfo, resp: requests.Response, tries: str = "") -> ApiError:
        code = info.status_code or 0
        fact = facts.ERROR_CODES.get(code)
        meaning = fact.meaning if fact else "undocumented error code"
        hint = fact.hint if fact else ""
        message = f"{call} refused: {meaning} ({code})"
        action = facts.error_action(code)
        if action is facts.Action.FAIL_JOB:
            return _JOB_ERRORS.get(code, JobFailedError)(message, info, hint=hint)
        if action is facts.Action.STOP_RUN:
            return _RUN_ERRORS.get(code, AccountError)(message, info, hint=hint)
        if action is facts.Action.RATE_LIMITED:
            return RateLimitedError(message + tries, info, retry_after=_retry_after(resp), hint=hint)
        return _transient(message + tries, info, _retry_after(resp), hint)  # RETRY, and unknown codes

    def _http_error(self, call: str, info: CallInfo, resp: requests.Response, tries: str) -> ApiError | ConfigError:
        status = resp.status_code
        message = f"{call} answered HTTP {status} {resp.reason or ''}".rstrip()
        if status == 429:
            return RateLimitedError(message + tries, info, retry_after=_retry_after(resp), hint="lower --rpm")
        if status in facts.RETRYABLE_HTTP or status >= 500:  # any 5xx: the server failed, not the request
            return _transient(message + tries, info, _retry_after(resp), "")
        if status in (401, 403):
            return CredentialsError(message, info, hint=f"check {ENV_KEY} and that it belongs to {self.host}")
        if 300 <= status < 400 or status in (404, 405):
            # Every call would fail the same way: the host (or a proxy in front of it) is wrong.
            where = self._scrub(resp.headers.get("Location", ""))
            return ConfigError(
                f"{message}{' to ' + where if where else ''} [{info.describe()}]; check the API host "
                f"{self.host} ({ENV_HOST}); MiniMax's are {facts.HOST_GLOBAL} and {facts.HOST_MAINLAND}"
            )
        return InvalidRequestError(message, info)

    # --- downloads ----------------------------------------------------------------------------

    def _download_route(
        self,
        route: str,
        url: str,
        auth: bool,
        dest: Path,
        expected: int | None,
        on_progress: Callable[[int, int | None], None] | None,
    ) -> Download:
        for attempt in self._retrying(route):
            with attempt:
                tries = f" (attempt {attempt.retry_state.attempt_number} of {self.retry.attempts})"
                return self._download_once(route, url, auth, dest, expected, on_progress, tries)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _download_once(
        self,
        route: str,
        url: str,
        auth: bool,
        dest: Path,
        expected: int | None,
        on_progress: Callable[[int, int | None], None] | None,
        tries: str,
    ) -> Download:
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.part"
        info = CallInfo(route)
        try:
            return self._stream(route, url, auth, dest, tmp, expected, on_progress, tries, info)
        except requests.RequestException as e:
            failure = TransientError(
                f"{route} of {dest.name} failed{tries}: {type(e).__name__}: {self._scrub(str(e))}", info
            )
        finally:
            tmp.unlink(missing_ok=True)  # gone already after os.replace; else a partial file
        raise failure  # outside the except block: see _attempt

    def _stream(
        self,
        route: str,
        url: str,
        auth: bool,
        dest: Path,
        tmp: Path,
        expected: int | None,
        on_progress: Callable[[int, int | None], None] | None,
        tries: str,
        info: CallInfo,
    ) -> Download:
        """One GET streamed into ``tmp``, checked, then renamed to ``dest``."""
        started = time.monotonic()
        with self._session.get(
            url,
            headers=self._headers(auth=auth),
            stream=True,
            timeout=(self.timeouts.connect, self.timeouts.download_read),
        ) as resp:
            info.http_status = resp.status_code
            info.trace_id = self._trace_id(resp)
            log.debug("%s: GET %s -> HTTP %s%s", route, _loggable_url(url), resp.status_code, tries)
            self._check_download_answer(route, resp, info, tries)
            total = expected if expected is not None else _int_or_none(resp.headers.get("Content-Length"))
            digest = hashlib.sha256()
            done = 0
            try:
                out = open(tmp, "xb")
            except OSError as e:
                raise self._write_error(dest, e, info) from None
            with out:
                for chunk in resp.iter_content(_CHUNK):
                    try:
                        out.write(chunk)
                    except OSError as e:
                        raise self._write_error(dest, e, info) from None
                    digest.update(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
                if total is not None and done != total:
                    raise TransientError(f"{route} of {dest.name} stopped at {done} of {total} bytes{tries}", info)
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as e:
                    raise self._write_error(dest, e, info) from None
        try:
            os.replace(tmp, dest)
        except OSError as e:
            raise self._write_error(dest, e, info) from None
        _fsync_dir(dest.parent)
        log.debug("%s: %s complete, %d bytes in %.2fs", route, dest, done, time.monotonic() - started)
        return Download(path=dest, bytes=done, sha256=digest.hexdigest())

    def _check_download_answer(self, route: str, resp: requests.Response, info: CallInfo, tries: str) -> None:
        status = resp.status_code
        if status == 200:
            if route == "retrieve_content" and "json" in resp.headers.get("Content-Type", ""):
                # The API host reports errors as JSON with a base_resp, even on HTTP 200.
                body, problem = _json_object(resp)
                base = (body or {}).get("base_resp") or {}
                info.status_code = _int_or_none(base.get("status_code"))
                info.status_msg = self._scrub(str(base.get("status_msg") or "")) or None
                if info.status_code:
                    raise self._code_error(route, info, resp, tries)
                raise DownloadError(f"{route} answered JSON instead of the video ({problem or 'no error code'})", info)
            return
        if status in URL_EXPIRED_HTTP and route != "retrieve_content":
            raise _UrlExpired(f"{route} answered HTTP {status}: the signed URL has expired or is invalid", info)
        if status == 429:
            raise RateLimitedError(f"{route} answered HTTP 429{tries}", info, retry_after=_retry_after(resp))
        if status in facts.RETRYABLE_HTTP or status >= 500:
            raise _transient(f"{route} answered HTTP {status}{tries}", info, _retry_after(resp), "")
        raise DownloadError(f"{route} answered HTTP {status} {resp.reason or ''}".rstrip(), info)

    def _write_error(self, dest: Path, exc: OSError, info: CallInfo) -> DownloadError:
        err = DownloadError(
            f"could not write the video to {dest.parent}: {exc.strerror or exc}",
            info,
            hint="free some disk space (or fix the folder's permissions) and run again",
        )
        err.retryable = False  # the disk, not the network: retrying now would fail the same way
        return err

    # --- small helpers ------------------------------------------------------------------------

    def _headers(self, *, auth: bool) -> dict[str, str]:
        """Built per request and never bound to a name, so no frame's locals show the key."""
        if not auth:
            return {"User-Agent": USER_AGENT}
        return {
            "Authorization": f"Bearer {self._key.value}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.value, "<key>") if self._key.value else text

    def _trace_id(self, resp: requests.Response) -> str | None:
        value = resp.headers.get("Trace-Id")
        return self._scrub(value) if value else None


_FLAGGED_CODES = frozenset(code for code, cls in _JOB_ERRORS.items() if cls is ContentFlaggedError)
_MAYBE_HINT = (
    "the API has no idempotency key, so vidbatch does not resubmit on its own: check the task list on "
    "the MiniMax console, then submit again if no task exists"
)


def _parse_create(answer: _Answer, tries: str) -> str:
    task_id = answer.body.get("task_id")
    if task_id in (None, ""):
        raise MaybeSubmittedError(
            "create answered success without a task_id; a task may exist", answer.info, hint=_MAYBE_HINT
        )
    return str(task_id)


def _parse_retrieve(file_id: str, answer: _Answer, tries: str) -> FileInfo:
    file = answer.body.get("file")
    if not isinstance(file, dict):
        raise TransientError(f"retrieve of file {file_id} answered without file metadata{tries}", answer.info)
    return FileInfo(
        file_id=str(file.get("file_id") or file_id),
        bytes=_int_or_none(file.get("bytes")),
        filename=file.get("filename"),
        created_at=_int_or_none(file.get("created_at")),
        download_url=file.get("download_url") or None,
        backup_download_url=file.get("backup_download_url") or None,
    )


def _transient(message: str, info: CallInfo, retry_after: float | None, hint: str) -> TransientError:
    err = TransientError(message, info, hint=hint)
    err.retry_after = retry_after  # type: ignore[attr-defined]  # read by the wait rule like RateLimitedError's
    return err


def _retry_after(resp: requests.Response) -> float | None:
    return parse_retry_after(resp.headers.get("Retry-After"))


def _json_object(resp: requests.Response) -> tuple[dict[str, Any] | None, str]:
    """The body as a JSON object, or ``None`` and what was wrong with it. Reading a broken body
    can raise requests' ``ChunkedEncodingError``/``ConnectionError``: callers treat those as
    transport failures."""
    try:
        body = json.loads(resp.content or b"")
    except ValueError:
        return None, f"a body that is not JSON ({len(resp.content or b'')} bytes)"
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


def _loggable_url(url: str) -> str:
    """A signed URL without its query string (the signature is a credential for that file)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _fsync_dir(path: Path) -> None:
    """Make the rename durable; not every platform can open a directory, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
