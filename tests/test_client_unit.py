"""Pure rules of the HTTP client: waits, Retry-After, which failures prove a create was never
sent, answer parsing, configuration. Where a failure can be produced for real on loopback in
milliseconds (refused connection, read timeout, connection closed without an answer), it is."""

from __future__ import annotations

import email.utils
import logging
import socket
import ssl
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests
import urllib3.exceptions as u3

from vidbatch import facts
from vidbatch.client import (
    Client,
    RetryPolicy,
    TaskStatus,
    _Answer,
    backoff_delay,
    parse_retry_after,
    request_never_sent,
)
from vidbatch.errors import (
    CallInfo,
    ConfigError,
    ContentFlaggedError,
    CredentialsError,
    InvalidRequestError,
    MaybeSubmittedError,
    RenderFailedError,
    TransientError,
)

from .conftest import TEST_KEY

# --- waits --------------------------------------------------------------------------------------

POLICY = RetryPolicy(attempts=6, backoff_base=1.0, backoff_max=60.0, rate_limit_base=10.0)


@pytest.mark.parametrize("attempt, step", [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)])
def test_backoff_is_exponential_full_jitter_capped(attempt, step):
    assert backoff_delay(POLICY, attempt, rand=lambda: 0.0) == 0.0
    assert backoff_delay(POLICY, attempt, rand=lambda: 1.0) == step
    assert backoff_delay(POLICY, attempt, rand=lambda: 0.5) == step / 2


def test_rate_limit_starts_longer_and_always_pauses():
    assert backoff_delay(POLICY, 1, rate_limited=True, rand=lambda: 0.0) == 5.0  # half of rate_limit_base
    assert backoff_delay(POLICY, 1, rate_limited=True, rand=lambda: 1.0) == 10.0
    assert backoff_delay(POLICY, 2, rate_limited=True, rand=lambda: 1.0) == 20.0
    assert backoff_delay(POLICY, 9, rate_limited=True, rand=lambda: 1.0) == 60.0


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
def _server(answer: bytes | None) -> Iterator[str]:
    """A raw HTTP server on loopback. ``answer=None`` never accepts (the kernel still completes
    the handshake from the backlog, so the client waits for an answer that never comes);
    otherwise it reads each request, writes ``answer`` (``b""``: nothing) and closes."""
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
                conn.recv(65536)
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

FAST = RetryPolicy(attempts=2, backoff_base=0.0, rate_limit_base=0.0)


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


def test_query_answered_200_with_garbage_is_retried_then_transient():
    with _server(_http("200 OK", b"not json")) as url, _client(url) as client:
        with pytest.raises(TransientError, match="attempt 2 of 2"):
            client.query("1")


@pytest.mark.parametrize(
    "answer, cls, words",
    [
        (_http("301 Moved", b"", "Location: https://api.minimax.io/v1/x"), ConfigError, "MINIMAX_API_HOST"),
        (_http("404 Not Found", b"<html>no</html>"), ConfigError, "MINIMAX_API_HOST"),
        (_http("401 Unauthorized", b""), CredentialsError, "MINIMAX_API_KEY"),
        (_http("400 Bad Request", b"<html>bad</html>"), InvalidRequestError, "HTTP 400"),
    ],
)
def test_http_statuses_that_are_not_retried(answer, cls, words):
    with _server(answer) as url, _client(url) as client:
        with pytest.raises(cls) as info:
            client.query("1")
    assert words in str(info.value)


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
    return client._parse_query("t1", _Answer(body, CallInfo("query", 200, code, msg, "trace")), "")


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


def test_output_flagged_code_is_a_failed_status_and_a_content_flag():
    st = _status({"status": "Fail"}, code=1027, msg="generated video flagged as sensitive")
    assert st.state is facts.TaskState.FAILED
    assert st.error_message is not None and st.error_message.startswith("1027 ") and "flagged" in st.error_message
    with pytest.raises(ContentFlaggedError) as info:
        st.raise_for_failure()
    assert info.value.code == 1027
