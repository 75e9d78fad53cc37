"""Pure rules of the HTTP client: waits, Retry-After, which failures prove a create was never
sent, the classifier, answer parsing, configuration. Where a failure can be produced for real on
loopback in milliseconds (refused connection, read timeout, connection closed without an answer),
it is; otherwise a scripted session stands in for ``requests.Session``. Nothing sleeps."""

from __future__ import annotations

import email.utils
import logging
import socket
import ssl
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
import requests
import urllib3.exceptions as u3

from vidbatch import errors, facts
from vidbatch.client import (
    ERROR_CLASSES,
    Call,
    Client,
    RetryPolicy,
    TaskStatus,
    Timeouts,
    _Answer,
    backoff_delay,
    classify,
    parse_retry_after,
    request_never_sent,
    why_unreachable,
)
from vidbatch.errors import (
    AccountError,
    CallInfo,
    ConfigError,
    ConnectFailedError,
    ContentFlaggedError,
    CredentialsError,
    HostUnreachableError,
    InvalidRequestError,
    MaybeSubmittedError,
    RateLimitedError,
    RenderFailedError,
    TransientError,
    WrongHostError,
)

from .conftest import TEST_KEY
from .helpers import OnLoop

# --- waits --------------------------------------------------------------------------------------

POLICY = RetryPolicy(attempts=6, backoff_base=1.0, backoff_max=60.0)


@pytest.mark.parametrize("attempt, step", [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)])
def test_backoff_is_exponential_full_jitter_capped(attempt, step):
    assert backoff_delay(POLICY, attempt, rand=lambda: 0.0) == 0.0
    assert backoff_delay(POLICY, attempt, rand=lambda: 1.0) == step
    assert backoff_delay(POLICY, attempt, rand=lambda: 0.5) == step / 2


def test_the_default_policy_is_brief_and_bounded():
    """The client's whole share of retrying: at most 3 tries and 0.75 s of sleep per request."""
    policy = RetryPolicy()
    assert policy.attempts == 3
    worst = sum(backoff_delay(policy, attempt, rand=lambda: 1.0) for attempt in range(1, policy.attempts))
    assert worst == 0.75


def test_retry_after_is_a_floor_not_a_ceiling():
    assert backoff_delay(POLICY, 1, retry_after=7.0, rand=lambda: 0.0) == 7.0
    assert backoff_delay(POLICY, 6, retry_after=1.0, rand=lambda: 1.0) == 32.0


def test_parse_retry_after():
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(date, now=2_000_000) == 0.0


# --- was a create sent? -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _server(answer: bytes | None, seen: list[bytes] | None = None) -> Iterator[str]:
    """A raw HTTP server on loopback. ``answer=None`` never accepts (the kernel still completes
    the handshake from the backlog, so the client waits for an answer that never comes);
    otherwise it reads each request (noting it in ``seen``), writes ``answer`` (``b""``:
    nothing) and closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                got = conn.recv(65536)
                if seen is not None:
                    seen.append(got)
                conn.sendall(answer or b"")
                conn.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=serve, daemon=True)
    if answer is not None:
        thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        listener.close()


def _http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _raised(url: str, timeout: tuple[float, float] = (1.0, 0.2)) -> requests.RequestException:
    with pytest.raises(requests.RequestException) as info:
        requests.post(url + facts.PATH_CREATE, json={}, timeout=timeout)
    return info.value


def test_refused_connection_was_never_sent():
    exc = _raised(f"http://127.0.0.1:{_free_port()}")
    assert type(exc) is requests.ConnectionError
    assert request_never_sent(exc)


def test_read_timeout_may_have_been_sent():
    with _server(None) as url:
        exc = _raised(url)
    assert isinstance(exc, requests.ReadTimeout)
    assert not request_never_sent(exc)


def test_connection_closed_without_answer_may_have_been_sent():
    with _server(b"") as url:
        exc = _raised(url)
    assert type(exc) is requests.ConnectionError  # ('Connection aborted.', RemoteDisconnected(...))
    assert not request_never_sent(exc)


def _aio_raised(url: str, read: float = 0.2) -> Exception:
    """What aiohttp (the runner's transport, :class:`vidbatch.client.AsyncCalls`) raises for a
    create to ``url``."""
    import asyncio

    import aiohttp

    async def post() -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=1.0, sock_read=read)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url + facts.PATH_CREATE, json={}) as resp:
                await resp.read()

    with pytest.raises(Exception) as info:
        asyncio.run(post())
    return info.value


def test_on_aiohttp_a_refused_connection_was_never_sent():
    exc = _aio_raised(f"http://127.0.0.1:{_free_port()}")
    assert request_never_sent(exc)
    assert "refused" in why_unreachable(exc)


@pytest.mark.parametrize("answer", [None, b""], ids=["no answer in time", "closed without an answer"])
def test_on_aiohttp_a_request_that_got_no_answer_may_have_been_sent(answer):
    with _server(answer) as url:
        exc = _aio_raised(url)
    assert not request_never_sent(exc)


@pytest.mark.parametrize("answer, error", [(None, "MaybeSubmittedError"), (b"", "MaybeSubmittedError"), (_http("503 Busy", b"{}"), "TransientError"), (_http("504 Gateway Time-out", b"<html></html>"), "MaybeSubmittedError")])
def test_on_aiohttp_a_create_is_judged_as_on_requests(answer, error):
    """The same steps over both transports: a create whose answer was lost is maybe submitted
    (never resent), on the wire as in a plain call."""
    import asyncio

    with _server(answer) as url:
        client = Client(TEST_KEY, url, retry=FAST, sleep=lambda s: None, timeouts=Timeouts(read=0.2))

        async def create() -> Exception:
            calls = client.open_async()
            try:
                with pytest.raises(Exception) as info:
                    await calls.create({"model": "MiniMax-Hailuo-02", "prompt": "p"})
            finally:
                await calls.aclose()
            return info.value

        on_loop = asyncio.run(create())
        with pytest.raises(Exception) as plain:
            client.create({"model": "MiniMax-Hailuo-02", "prompt": "p"})
    assert type(on_loop).__name__ == type(plain.value).__name__ == error
    assert TEST_KEY not in str(on_loop)


URL = "/v1/video_generation"


@pytest.mark.parametrize(
    "exc, never_sent",
    [
        # How requests' HTTPAdapter.send wraps urllib3's errors (requests 2.3x, urllib3 2.x):
        (requests.ConnectTimeout(u3.MaxRetryError(None, URL, u3.ConnectTimeoutError(None, "timed out"))), True),
        (requests.ConnectionError(u3.MaxRetryError(None, URL, u3.NewConnectionError(None, "refused"))), True),
        (
            requests.ConnectionError(
                u3.MaxRetryError(None, URL, u3.NameResolutionError("api.minimax.io", None, OSError("no DNS")))
            ),
            True,
        ),
        (
            requests.exceptions.ProxyError(
                u3.MaxRetryError(None, URL, u3.ProxyError("cannot connect", u3.NewConnectionError(None, "refused")))
            ),
            True,
        ),
        (
            requests.exceptions.SSLError(
                u3.MaxRetryError(None, URL, u3.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed")))
            ),
            True,
        ),
        (requests.ConnectionError(u3.ClosedPoolError(None, "pool closed")), True),
        (requests.ReadTimeout(u3.ReadTimeoutError(None, URL, "read timed out")), False),
        (requests.ConnectionError(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))), False),
        (requests.exceptions.ChunkedEncodingError(u3.ProtocolError("Connection broken: IncompleteRead")), False),
        (requests.exceptions.ContentDecodingError(u3.DecodeError("bad gzip")), False),
        (requests.exceptions.SSLError(u3.SSLError("decryption failed or bad record mac")), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_never_sent_classification(exc, never_sent):
    assert request_never_sent(exc) is never_sent


# --- answers the simulator does not give -------------------------------------------------------

FAST = RetryPolicy(attempts=2, backoff_base=0.0)


def _client(url: str) -> Client:
    return Client(TEST_KEY, url, retry=FAST, sleep=lambda s: None)


@pytest.mark.parametrize(
    "answer", [_http("200 OK", b"<html>oops</html>"), _http("200 OK", b'{"base_resp": {"status_code": 0}}')]
)
def test_create_answered_200_without_a_task_id_is_maybe_submitted(answer):
    with _server(answer) as url, _client(url) as client:
        with pytest.raises(MaybeSubmittedError) as info:
            client.create({"model": "T2V-01", "prompt": "x"})
    assert "a task may exist" in str(info.value) and "http=200" in str(info.value)


def test_query_answered_200_with_garbage_is_transient_at_once():
    with _server(_http("200 OK", b"not json")) as url, _client(url) as client:
        with pytest.raises(TransientError, match="HTTP 200 with a body that is not JSON") as info:
            client.query("1")
    assert "attempt" not in str(info.value)  # not retried by the client: the runner decides


@pytest.mark.parametrize(
    "answer, cls, words",
    [
        (_http("301 Moved", b"", "Location: https://api.minimax.io/v1/x"), WrongHostError, "MINIMAX_API_HOST"),
        (_http("404 Not Found", b"<html>no</html>"), WrongHostError, "MINIMAX_API_HOST"),
        (_http("405 Method Not Allowed", b""), WrongHostError, "does not answer like MiniMax's API"),
        (_http("501 Not Implemented", b""), WrongHostError, "does not answer like MiniMax's API"),
        (_http("401 Unauthorized", b""), CredentialsError, "MINIMAX_API_KEY"),
        (_http("400 Bad Request", b"<html>bad</html>"), InvalidRequestError, "HTTP 400"),
    ],
)
def test_http_statuses_that_are_not_retried(answer, cls, words):
    with _server(answer) as url, _client(url) as client:
        with pytest.raises(cls) as info:
            client.query("1")
    assert words in str(info.value)
    if cls is WrongHostError:
        assert isinstance(info.value, AccountError) and info.value.exit_code == 3  # stop creating
        assert url in str(info.value) and info.value.host == url


def test_a_reason_phrase_that_echoes_the_key_is_scrubbed():
    """The reason phrase of the status line is the server's text like a status_msg: a gateway
    that echoes the Authorization header there used to put the key in the message (and the state,
    status and the report, which keep it)."""
    with _server(_http(f"401 Unauthorized: Bearer {TEST_KEY}", b"")) as url, _client(url) as client:
        with pytest.raises(CredentialsError) as info:
            client.create({"model": "T2V-01", "prompt": "x"})
    assert "HTTP 401 Unauthorized: Bearer <key>" in str(info.value)
    assert TEST_KEY not in str(info.value) and TEST_KEY not in repr(vars(info.value))


# --- configuration ------------------------------------------------------------------------------


def test_missing_key_says_how_to_set_it():
    with pytest.raises(ConfigError) as info:
        Client.from_env()
    assert "export MINIMAX_API_KEY=" in str(info.value)
    assert "--sim" in str(info.value)


def test_from_env_host_precedence(monkeypatch):
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    assert Client.from_env().host == facts.DEFAULT_HOST
    monkeypatch.setenv("MINIMAX_API_HOST", facts.HOST_GLOBAL + "/")
    assert Client.from_env().host == facts.HOST_GLOBAL
    assert Client.from_env("http://127.0.0.1:9/").host == "http://127.0.0.1:9"


@pytest.mark.parametrize("key", [TEST_KEY + "\n", " " + TEST_KEY, "sk-a b", ""])
def test_unusable_key_is_refused_without_echoing_it(key):
    # requests would put the whole header value, key included, in an InvalidHeader message.
    with pytest.raises(ConfigError) as info:
        Client(key, facts.HOST_GLOBAL)
    assert key.strip() == "" or key.strip() not in str(info.value)


def test_host_must_be_a_url():
    with pytest.raises(ConfigError, match="api.minimax.io"):
        Client(TEST_KEY, "api.minimax.io")


def test_repr_hides_the_key():
    client = Client(TEST_KEY, facts.HOST_GLOBAL)
    assert TEST_KEY not in repr(client)
    assert TEST_KEY not in repr(vars(client))


# --- query answers ------------------------------------------------------------------------------


def _status(body: dict, code: int | None = None, msg: str | None = None) -> TaskStatus:
    client = Client(TEST_KEY, facts.HOST_GLOBAL)
    return client._parse_query("t1", _Answer(body, CallInfo("query", 200, code, msg, "trace")))


@pytest.mark.parametrize("status", ["Preparing", "Queueing", "Pending", "Processing", "processing"])
def test_running_statuses(status):
    st = _status({"status": status})
    assert st.state is facts.TaskState.RUNNING and st.is_running
    st.raise_for_failure()  # not failed: nothing to raise


def test_unknown_status_is_running_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="vidbatch.client"):
        st = _status({"status": "Rendering"})
    assert st.state is facts.TaskState.UNKNOWN and st.is_running
    assert "Rendering" in caplog.text


def test_an_unknown_status_is_warned_about_once_per_task_not_at_every_poll(caplog):
    """A run polls every task every 10 s: one line per poll per task flooded the terminal (and a
    V2 task list repeats every task it lists); the warning says it once per task and status."""
    client = Client(TEST_KEY, facts.HOST_GLOBAL)
    info = CallInfo("query", 200, None, None, "trace")
    with caplog.at_level(logging.WARNING, logger="vidbatch.client"):
        for _ in range(3):
            assert client._parse_query("t1", _Answer({"status": "Rendering"}, info)).is_running
            assert client._v2_task({"id": "t2", "status": "paused"}, info).is_running
        client._parse_query("t1", _Answer({"status": "Upscaling"}, info))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3, warned
    assert ["Rendering" in w for w in warned] == [True, False, False] and "Upscaling" in warned[2]


def test_success_exposes_file_id_as_string():
    st = _status({"status": "Success", "file_id": 123456789012345, "video_width": 1920, "video_height": 1080})
    assert st.state is facts.TaskState.SUCCESS
    assert (st.file_id, st.video_width, st.video_height) == ("123456789012345", 1920, 1080)


@pytest.mark.parametrize("status", ["Fail", "Failed"])
def test_failed_status_is_returned_then_raised_on_request(status):
    st = _status({"status": status, "error_message": "the model gave up"})
    assert st.state is facts.TaskState.FAILED and not st.is_running
    with pytest.raises(RenderFailedError) as info:
        st.raise_for_failure()
    assert "the model gave up" in str(info.value) and "trace_id=trace" in str(info.value)


def test_a_failure_message_with_control_characters_stays_one_printable_line():
    """The reason a task failed is the server's text, printed in the run's event line, status and
    history: escape sequences (a terminal title, a cleared screen) and line breaks (a forged
    "vidbatch: all 1 jobs done" line) used to reach the terminal as they came; now they are shown
    escaped, as a status_msg is, and other text (a mainland message in Chinese) as it is."""
    st = _status({"status": "Fail", "error_message": "渲染失败 \x1b]0;owned\x07\x1b[2J\r\nvidbatch: all 1 jobs done"})
    with pytest.raises(RenderFailedError) as info:
        st.raise_for_failure()
    first = str(info.value).split(" [call=")[0]
    assert first.endswith(": 渲染失败 \\x1b]0;owned\\x07\\x1b[2J\\r\\nvidbatch: all 1 jobs done")
    assert first.isprintable()


def test_output_flagged_code_is_a_failed_status_and_a_content_flag():
    st = _status({"status": "Fail"}, code=1027, msg="generated video flagged as sensitive")
    assert st.state is facts.TaskState.FAILED
    assert st.error_message is not None and st.error_message.startswith("1027 ") and "flagged" in st.error_message
    with pytest.raises(ContentFlaggedError) as info:
        st.raise_for_failure()
    assert info.value.code == 1027


# --- the classifier: facts kinds, one map to classes ------------------------------------------


def test_every_kind_but_ok_has_exactly_one_class():
    assert set(ERROR_CLASSES) == set(facts.ErrorKind) - {facts.ErrorKind.OK}


API_CALL = Call("create", "POST", "https://api.minimax.io/v1/video_generation", api_host=True)
SIGNED = Call("download", "GET", "https://cdn.example/v.mp4?sig=1", api_host=False)
CONTENT = Call("retrieve_content", "GET", "https://api.minimax.io/v1/files/retrieve_content", api_host=True)


@pytest.mark.parametrize(
    "code, cls",
    [
        (1000, TransientError), (1001, TransientError), (1013, TransientError), (4242, TransientError),
        (1002, RateLimitedError), (1039, RateLimitedError), (1041, RateLimitedError),
        (1026, ContentFlaggedError), (1027, ContentFlaggedError), (2013, InvalidRequestError),
        (1004, CredentialsError), (2049, CredentialsError), (1008, AccountError), (2038, AccountError),
        (2056, AccountError),
    ],
)  # fmt: skip
def test_a_code_decides_before_the_http_status(code, cls):
    for status in (200, 429, 500, 503):
        assert ERROR_CLASSES[classify(API_CALL, status, code)] is cls


@pytest.mark.parametrize(
    "status, api, signed, content",
    [
        (301, WrongHostError, errors.DownloadError, errors.DownloadError),
        (400, InvalidRequestError, errors.DownloadError, InvalidRequestError),
        (401, CredentialsError, errors.DownloadError, CredentialsError),
        (403, CredentialsError, "expired", CredentialsError),
        (404, WrongHostError, "expired", errors.DownloadError),
        (405, WrongHostError, errors.DownloadError, errors.DownloadError),
        (408, TransientError, TransientError, TransientError),
        (410, InvalidRequestError, "expired", InvalidRequestError),
        (429, RateLimitedError, RateLimitedError, RateLimitedError),
        (500, TransientError, TransientError, TransientError),
        (501, WrongHostError, TransientError, errors.DownloadError),
        (502, TransientError, TransientError, TransientError),
        (599, TransientError, TransientError, TransientError),
    ],
)
def test_http_statuses_by_where_they_came_from(status, api, signed, content):
    assert ERROR_CLASSES[classify(API_CALL, status, None)] is api
    got = ERROR_CLASSES[classify(SIGNED, status, None)]
    assert got.__name__ == "_UrlExpired" if signed == "expired" else got is signed
    assert ERROR_CLASSES[classify(CONTENT, status, None)] is content


def test_call_value_counts_its_tries():
    call = Call("create", "POST", "https://api.minimax.io/v1/video_generation", api_host=True, json_body={"p": 1}, attempts=3)
    assert call.is_create and not call.is_download and call.tries == ""
    again = call.next_attempt()
    assert (again.attempt, again.tries) == (2, " (attempt 2 of 3)") and call.attempt == 1
    assert "json_body" not in repr(call)  # request bodies (images) stay out of logs
    assert SIGNED.loggable_url == "https://cdn.example/v.mp4"


# --- a scripted session: connection failures and headers no simulator gives -------------------


class ScriptedSession(requests.Session):
    """Answers each request with the next item of ``script``: an exception to raise, or
    ``(status, body, headers)``. Records every call's (method, url)."""

    def __init__(self, script: list) -> None:
        super().__init__()
        self.script = list(script)
        self.seen: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.seen.append((method, url))
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        status, body, headers = item
        resp = requests.Response()
        resp.status_code, resp._content, resp.url = status, body, url
        resp.headers.update(headers)
        resp.reason = "scripted"
        return resp


HOST = "https://api.minimax.io"


def _refused() -> requests.ConnectionError:
    cause = u3.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    cause.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(u3.MaxRetryError(None, URL, cause))


def _no_dns() -> requests.ConnectionError:
    return requests.ConnectionError(u3.MaxRetryError(None, URL, u3.NameResolutionError("api.minimax.oi", None, OSError("no DNS"))))


OK_CREATE = (200, b'{"task_id": "t1", "base_resp": {"status_code": 0}}', {})


class Waits(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.mark.parametrize(
    "source, fix",
    [
        ("--api-host", "fix --api-host"),
        ("the MINIMAX_API_HOST environment variable", "fix or unset MINIMAX_API_HOST"),
        ("the config file /home/u/.config/vidbatch/config.toml", "fix api_host in /home/u/.config/vidbatch/config.toml"),
        ("the default", "is the network (or a proxy) up?"),
    ],
)
@pytest.mark.parametrize("failure, why", [(_refused, "refused"), (_no_dns, "does not resolve")])
def test_unreachable_before_any_answer_is_a_wrong_host_at_once(source, fix, failure, why):
    session, waits = ScriptedSession([failure()]), Waits()
    client = Client(TEST_KEY, HOST, host_source=source, session=session, sleep=waits)
    with pytest.raises(HostUnreachableError) as info:
        client.create({"model": "T2V-01", "prompt": "x"})
    text = str(info.value)
    assert f"cannot reach the API host {HOST} (from {source})" in text and why in text and fix in text
    assert info.value.exit_code == 3 and isinstance(info.value, AccountError)
    assert len(session.seen) == 1 and waits == []  # no retry, no sleep
    assert info.value.__cause__ is None and info.value.__context__ is None and TEST_KEY not in text


def test_unreachable_after_an_answer_is_a_hiccup_retried_briefly():
    session, waits = ScriptedSession([OK_CREATE, _refused(), _refused(), OK_CREATE]), Waits()
    client = Client(TEST_KEY, HOST, session=session, retry=RetryPolicy(), sleep=waits)
    assert client.create({"prompt": "a"}) == "t1"
    assert client.create({"prompt": "b"}) == "t1"  # resent: the refused create never arrived
    assert len(session.seen) == 4 and len(waits) == 2 and sum(waits) <= 0.75


def test_unreachable_after_an_answer_ends_connect_failed():
    session, waits = ScriptedSession([OK_CREATE, _refused(), _refused(), _refused()]), Waits()
    client = Client(TEST_KEY, HOST, session=session, sleep=waits)
    client.create({"prompt": "a"})
    with pytest.raises(ConnectFailedError, match="attempt 3 of 3") as info:
        client.create({"prompt": "b"})
    assert info.value.retryable and len(waits) == 2


@pytest.mark.parametrize("path", ["/v1/video_generation", "/v2/video_generation"])
def test_a_gateway_timeout_on_create_is_maybe_submitted_not_requeued(path):
    """504: the gateway forwarded the create and gave up waiting for the API, which may have made
    the task; creating again could pay twice, as after a read timeout of our own."""
    session, waits = ScriptedSession([(504, b"<html>Gateway Time-out</html>", {})]), Waits()
    client = Client(TEST_KEY, HOST, session=session, sleep=waits)
    with pytest.raises(MaybeSubmittedError) as info:
        if path.startswith("/v2"):
            client.create_v2({"model": "MiniMax-H3", "content": [{"type": "text", "text": "x"}], "ratio": "16:9"})
        else:
            client.create({"model": "T2V-01", "prompt": "x"})
    assert info.value.info.http_status == 504 and len(session.seen) == 1 and waits == []


def test_gateway_retry_after_within_reach_is_waited_for():
    busy = (503, b"", {"Retry-After": "1"})
    session, waits = ScriptedSession([busy, (200, b'{"status": "Processing"}', {})]), Waits()
    client = Client(TEST_KEY, HOST, session=session, sleep=waits)
    assert client.query("t1").status == "Processing"
    assert waits == [1.0]


def test_gateway_retry_after_beyond_reach_is_handed_to_the_runner():
    session, waits = ScriptedSession([(503, b"", {"Retry-After": "120"})]), Waits()
    client = Client(TEST_KEY, HOST, session=session, sleep=waits)
    with pytest.raises(TransientError) as info:
        client.query("t1")
    assert info.value.retry_after == 120.0 and waits == [] and len(session.seen) == 1


def test_retry_after_dates_are_read_with_the_injected_wall_clock():
    date = email.utils.formatdate(1_000_045, usegmt=True)
    session = ScriptedSession([(429, b"", {"Retry-After": date})])
    client = Client(TEST_KEY, HOST, session=session, sleep=Waits(), wall_clock=lambda: 1_000_000.0)
    with pytest.raises(RateLimitedError) as info:
        client.query("t1")
    assert info.value.retry_after == pytest.approx(45.0) and len(session.seen) == 1


# --- the wire: proxies and cookies, as requests does them -------------------------------------------

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
CREATED = _http("200 OK", OK_CREATE[1], "Content-Type: application/json")


def _clients(host: str) -> list[Any]:
    """A client with the session it makes for itself, one given a plain ``requests.Session``,
    and one whose calls run on an event loop (aiohttp: what a run uses): all must behave as
    requests does."""
    return [
        Client(TEST_KEY, host, sleep=Waits()),
        Client(TEST_KEY, host, session=requests.Session(), sleep=Waits()),
        OnLoop(Client(TEST_KEY, host, sleep=Waits())),
    ]


@pytest.fixture
def no_proxies(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_a_proxy_from_the_environment_is_used(no_proxies, monkeypatch):
    seen: list[bytes] = []
    with _server(CREATED, seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        for client in _clients("http://api.minimax.invalid"):
            with client:
                assert client.create({"model": "MiniMax-Hailuo-02", "prompt": "p"}) == "t1"
    assert len(seen) == 3
    for request in seen:
        assert request.startswith(b"POST http://api.minimax.invalid/v1/video_generation HTTP/1.1\r\n")
        assert f"Authorization: Bearer {TEST_KEY}".encode() in request


def test_no_proxy_from_the_environment_is_honoured(no_proxies, monkeypatch):
    seen: list[bytes] = []
    with _server(CREATED, seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        for client in _clients(f"http://127.0.0.1:{_free_port()}"):
            with client, pytest.raises(HostUnreachableError, match="refused"):
                client.create({"model": "MiniMax-Hailuo-02", "prompt": "p"})
    assert seen == []  # straight to the (closed) API port, not through the proxy


def test_cookies_are_kept_and_sent_back_as_requests_does(no_proxies):
    seen: list[bytes] = []
    answer = _http("200 OK", OK_CREATE[1], "Content-Type: application/json", "Set-Cookie: lb=node-7; Path=/")
    with _server(answer, seen) as url:
        for client in _clients(url):
            with client:
                client.create({"model": "MiniMax-Hailuo-02", "prompt": "p"})
                client.create({"model": "MiniMax-Hailuo-02", "prompt": "p"})
    assert len(seen) == 6
    assert [b"Cookie: lb=node-7" in r for r in seen] == [False, True] * 3


def test_the_auth_that_carries_the_key_never_shows_it():
    client = Client(TEST_KEY, HOST)
    bearer = client._bearer
    assert TEST_KEY not in repr(bearer) and TEST_KEY not in str(bearer) and TEST_KEY not in repr(vars(client))
    prepared = bearer(requests.Request("GET", HOST + facts.PATH_QUERY).prepare())
    assert prepared.headers["Authorization"] == f"Bearer {TEST_KEY}"  # and only there
