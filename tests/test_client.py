"""The HTTP client against the simulator: real HTTP on loopback, faults injected in the sim.

No sleeping: retry waits go to a recording ``sleep``, render time passes with ``sim.advance()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import resource
import signal
import socket
from pathlib import Path

import pytest
import requests

from vidbatch import facts, rules
from vidbatch.client import Client, RetryPolicy, Timeouts
from vidbatch.errors import (
    AccountError,
    ConnectFailedError,
    ContentFlaggedError,
    CredentialsError,
    DownloadError,
    HostUnreachableError,
    InvalidRequestError,
    MaybeSubmittedError,
    RateLimitedError,
    RenderFailedError,
    TransientError,
)
from vidbatch.images import to_data_url
from vidbatch.sim import SimConfig, running_simulator

from .conftest import TEST_KEY
from .helpers import OnLoop, write_png

FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_max=5.0)
T2V = {"model": "MiniMax-Hailuo-02", "prompt": "a lighthouse at dusk [Push in]"}


class Waits(list):
    """A ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def sent() -> list[requests.PreparedRequest]:
    return []


class Recording(requests.adapters.HTTPAdapter):
    """requests' adapter, noting each request it sends (both of the client's ways to a request
    end here: its own session's lean path and requests' full one)."""

    def __init__(self, sent: list[requests.PreparedRequest]) -> None:
        super().__init__(pool_maxsize=4)
        self.sent = sent

    def send(self, request, *args, **kwargs):  # type: ignore[override]
        self.sent.append(request)
        return super().send(request, *args, **kwargs)


def _recorded(session: requests.Session, sent: list[requests.PreparedRequest]) -> requests.Session:
    session.mount("http://", Recording(sent))
    return session


@pytest.fixture(params=["own session", "requests.Session", "aiohttp"])
def client(request, sim, waits, sent, monkeypatch):
    """A client on ``sim`` whose transport records every request it sends: the session the
    client makes for itself, a plain ``requests.Session`` handed to it, or its calls as
    coroutines on an event loop (aiohttp: what a run uses)."""
    if request.param == "aiohttp":
        on_loop = OnLoop(Client(sim.key, sim.base_url, retry=FAST, sleep=waits), sent, monkeypatch)
        yield on_loop
        on_loop.close()
        return
    if request.param == "own session":
        with Client(sim.key, sim.base_url, retry=FAST, sleep=waits) as c:
            _recorded(c._session, sent)
            yield c
        return
    session = _recorded(requests.Session(), sent)
    with Client(sim.key, sim.base_url, session=session, retry=FAST, sleep=waits) as c:
        yield c
    session.close()


def _image(tmp_path: Path, name: str, color: tuple[int, int, int]) -> str:
    return to_data_url(write_png(tmp_path / name, 640, 360, color).read_bytes(), "image/png")


def _render(client: Client, sim, request: dict) -> str:
    """create, then query until Success; the file_id."""
    task_id = client.create(request)
    st = client.query(task_id)
    if st.is_running:
        sim.sim.advance(sim.sim.config.latency)
        st = client.query(task_id)
    assert st.state is facts.TaskState.SUCCESS, st
    assert st.file_id
    return st.file_id


def _leftovers(folder: Path) -> list[str]:
    """Anything but the destination itself: the client stages nothing (the caller owns dest)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- the flow -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["t2v", "i2v", "fl2v", "s2v"])
def test_full_flow(mode, tmp_path, waits):
    requests_by_mode = {
        "t2v": lambda: T2V,
        "i2v": lambda: {"model": "MiniMax-Hailuo-2.3", "first_frame_image": _image(tmp_path, "a.png", (200, 80, 40))},
        "fl2v": lambda: {
            "model": "MiniMax-Hailuo-02",
            "prompt": "day to night",
            "first_frame_image": _image(tmp_path, "a.png", (200, 80, 40)),
            "last_frame_image": _image(tmp_path, "b.png", (20, 30, 90)),
        },
        "s2v": lambda: {
            "model": "S2V-01",
            "prompt": "she waves",
            "subject_reference": [{"type": "character", "image": [_image(tmp_path, "face.png", (230, 190, 160))]}],
        },
    }
    with running_simulator(SimConfig(key=TEST_KEY, latency=120.0)) as server, Client(
        TEST_KEY, server.base_url, retry=FAST, sleep=waits
    ) as client:
        task_id = client.create(requests_by_mode[mode]())
        assert isinstance(task_id, str) and task_id in server.sim.tasks
        st = client.query(task_id)
        assert st.state is facts.TaskState.RUNNING and st.status == "Preparing" and st.file_id is None
        server.sim.advance(60)
        assert client.query(task_id).status == "Processing"
        server.sim.advance(60)
        st = client.query(task_id)
        assert st.state is facts.TaskState.SUCCESS and st.trace_id
        assert (st.video_width, st.video_height) == rules.output_size(server.sim.tasks[task_id].request)
        info = client.retrieve(st.file_id)
        assert info.file_id == st.file_id  # int64 in the file call, str in ours
        progress: list[tuple[int, int | None]] = []
        dest = tmp_path / "out" / f"{mode}.mp4"
        got = client.download(int(st.file_id), dest, on_progress=lambda done, total: progress.append((done, total)))
    data = dest.read_bytes()
    assert got.path == dest and got.bytes == len(data) == info.bytes
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert data[4:8] == b"ftyp"
    assert progress[-1] == (info.bytes, info.bytes)
    assert _leftovers(dest.parent) == [] and waits == []


def test_from_env_talks_to_the_sim(sim_env):
    with Client.from_env(retry=FAST, sleep=Waits()) as client:
        assert client.host == sim_env.base_url
        assert client.query(client.create(T2V)).state is facts.TaskState.SUCCESS


def test_headers_and_the_key_only_on_the_api_host(client, sim, sent, tmp_path):
    sim.sim.inject("download", "http503", times=FAST.attempts)
    sim.sim.inject("backup_download", "http503", times=FAST.attempts)
    client.download(_render(client, sim, T2V), tmp_path / "v.mp4")
    api = [r for r in sent if not r.path_url.startswith("/_sim/")]
    signed = [r for r in sent if r.path_url.startswith("/_sim/")]
    assert {r.path_url.split("?")[0] for r in api} == {
        facts.PATH_CREATE,
        facts.PATH_QUERY,
        facts.PATH_RETRIEVE,
        facts.PATH_RETRIEVE_CONTENT,
    }
    for r in api:
        assert r.headers["Authorization"] == f"Bearer {TEST_KEY}"
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["User-Agent"].startswith("vidbatch/")
    assert len(signed) == 2 * FAST.attempts
    for r in signed:
        assert "Authorization" not in r.headers
        assert TEST_KEY not in str(r.headers)


# --- the client's brief retries, and what it hands to the runner at once ---------------------------


@pytest.mark.parametrize("call", ["query", "retrieve"])
def test_gateway_answers_are_retried_briefly_on_reads(client, sim, waits, call):
    task_id = client.create(T2V)
    file_id = client.query(task_id).file_id
    sim.sim.inject(call, "http503", times=FAST.attempts - 1)
    if call == "query":
        assert client.query(task_id).state is facts.TaskState.SUCCESS
    else:
        assert client.retrieve(file_id).bytes
    assert sim.sim.calls[call] == FAST.attempts + (1 if call == "query" else 0)
    assert len(waits) == FAST.attempts - 1 and all(w <= FAST.backoff_max for w in waits)


def test_a_gateway_answer_to_create_is_not_retried(client, sim, waits):
    """The contract lists 503 as retryable, but a gateway may have forwarded the create: the
    client hands it to the runner (which may requeue it) instead of resending on its own."""
    sim.sim.inject("create", "http503")
    with pytest.raises(TransientError) as info:
        client.create(T2V)
    assert info.value.info.http_status == 503 and not isinstance(info.value, MaybeSubmittedError)
    assert sim.sim.calls["create"] == 1 and len(sim.sim.tasks) == 0 and waits == []


@pytest.mark.parametrize("call", ["create", "query", "retrieve"])
@pytest.mark.parametrize("fault", ["http500", "code:1000", "code:1013", "code:4242"])
def test_server_failures_are_raised_at_once_for_the_runner(client, sim, waits, call, fault):
    task_id = client.create(T2V)
    file_id = client.query(task_id).file_id
    before = sim.sim.calls[call]
    sim.sim.inject(call, fault)
    with pytest.raises(TransientError) as info:
        {"create": lambda: client.create(T2V), "query": lambda: client.query(task_id), "retrieve": lambda: client.retrieve(file_id)}[call]()
    assert type(info.value) is TransientError and info.value.retryable
    assert sim.sim.calls[call] == before + 1 and waits == []
    assert len(sim.sim.tasks) == 1  # a create refused with an error was not accepted


@pytest.mark.parametrize("call", ["create", "query", "retrieve"])
@pytest.mark.parametrize("fault, retry_after", [("http429", 1.0), ("code:1002", None), ("code:1039", None), ("code:1041", None)])
def test_rate_limits_are_raised_at_once_with_the_servers_wish(client, sim, waits, call, fault, retry_after):
    task_id = client.create(T2V)
    file_id = client.query(task_id).file_id
    before = sim.sim.calls[call]
    sim.sim.inject(call, fault)
    with pytest.raises(RateLimitedError) as info:
        {"create": lambda: client.create(T2V), "query": lambda: client.query(task_id), "retrieve": lambda: client.retrieve(file_id)}[call]()
    assert info.value.retry_after == retry_after  # the sim's 429 sends Retry-After: 1
    assert sim.sim.calls[call] == before + 1 and waits == [] and len(sim.sim.tasks) == 1


@pytest.mark.parametrize("call", ["query", "retrieve"])
def test_dropped_connection_on_a_read_is_handed_to_the_runner(client, sim, waits, call):
    file_id = _render(client, sim, T2V)
    # aiohttp sends a read (GET) once more, at once, when a kept-alive connection dies before its
    # answer (the server may have closed it as idle); a second drop is handed over as requests'
    # first is. A create (POST) is never resent: see the create tests below.
    resent = 1 if isinstance(client, OnLoop) else 0
    sim.sim.inject(call, "drop", times=1 + resent)
    with pytest.raises(TransientError, match="lost the connection") as info:
        client.query(next(iter(sim.sim.tasks))) if call == "query" else client.retrieve(file_id)
    assert type(info.value) is TransientError and waits == []
    assert sim.sim.calls[call] == {"query": 2, "retrieve": 1}[call] + resent  # _render queried once


def test_read_timeout_on_query_is_handed_to_the_runner(sim, waits):
    with Client(TEST_KEY, sim.base_url, retry=FAST, timeouts=Timeouts(read=0.2), sleep=waits) as client:
        task_id = client.create(T2V)
        sim.sim.inject("query", "slow", seconds=0.6)
        with pytest.raises(TransientError, match="timed out"):
            client.query(task_id)
    assert waits == []


# --- create: retried only when it certainly did not arrive ---------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_create_refused_by_a_host_that_answered_before_is_retried_until_it_is_back(waits):
    port = _closed_port()
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_simulator(SimConfig(key=TEST_KEY), port=port))
        servers = []

        def sleep_then_start(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == FAST.attempts - 1:  # refused until the last try, then the service is back
                servers.append(stack.enter_context(running_simulator(SimConfig(key=TEST_KEY), port=port)))

        with Client(TEST_KEY, f"http://127.0.0.1:{port}", retry=FAST, sleep=sleep_then_start) as client:
            client.query(client.create(T2V))  # the host has answered
            first.stop()  # then goes away for a moment
            task_id = client.create(T2V)
        assert list(servers[0].sim.tasks) == [task_id] and servers[0].sim.calls["create"] == 1
    assert len(waits) == FAST.attempts - 1


def test_create_refused_every_time_by_a_host_that_answered_before_ends_connect_failed(sim, waits):
    with Client(TEST_KEY, sim.base_url, retry=FAST, sleep=waits) as client:
        client.create(T2V)
        sim.stop()
        with pytest.raises(ConnectFailedError) as info:
            client.create(T2V)
    assert info.value.retryable and not isinstance(info.value, MaybeSubmittedError)
    assert len(waits) == FAST.attempts - 1 and all(w <= FAST.backoff_max for w in waits)
    assert f"attempt {FAST.attempts} of {FAST.attempts}" in str(info.value) and "call=create" in str(info.value)


def test_a_host_that_never_answered_is_unreachable_at_once(waits):
    host = f"http://127.0.0.1:{_closed_port()}"
    with Client(TEST_KEY, host, host_source="the MINIMAX_API_HOST environment variable", retry=FAST, sleep=waits) as client:
        with pytest.raises(HostUnreachableError) as info:
            client.create(T2V)
    err = info.value
    assert isinstance(err, AccountError) and err.exit_code == 3 and not err.retryable
    assert waits == []  # not retried: a typo or a closed port does not heal in a second
    text = str(err)
    assert host in text and "MINIMAX_API_HOST" in text and "refused" in text
    assert facts.HOST_GLOBAL in text and TEST_KEY not in text
    assert (err.host, err.host_source) == (host, "the MINIMAX_API_HOST environment variable")


def test_create_answer_lost_after_the_task_was_made_is_not_retried(client, sim, waits):
    sim.sim.inject("create", "drop_after_create")
    with pytest.raises(MaybeSubmittedError) as info:
        client.create(T2V)
    assert sim.sim.calls["create"] == 1 and len(sim.sim.tasks) == 1 and waits == []
    assert not info.value.retryable
    assert "console" in str(info.value)  # what to do next


def test_create_dropped_before_an_answer_is_not_retried_either(client, sim, waits):
    """The sim's "drop" reads the request and closes without answering, creating nothing. On the
    wire that is byte for byte what "drop_after_create" does, so the client cannot know that no
    task exists: it must not resend (the runner reconciles)."""
    sim.sim.inject("create", "drop")
    with pytest.raises(MaybeSubmittedError):
        client.create(T2V)
    assert sim.sim.calls["create"] == 1 and len(sim.sim.tasks) == 0 and waits == []


def test_create_read_timeout_is_maybe_submitted(sim, waits):
    with Client(TEST_KEY, sim.base_url, retry=FAST, timeouts=Timeouts(read=0.2), sleep=waits) as client:
        sim.sim.inject("create", "slow", seconds=0.6)
        with pytest.raises(MaybeSubmittedError) as info:
            client.create(T2V)
    assert "ReadTimeout" in str(info.value)
    assert sim.sim.calls["create"] == 1 and len(sim.sim.tasks) == 1 and waits == []


# --- fatal answers ------------------------------------------------------------------------------


def test_invalid_request_names_the_field(client, sim):
    with pytest.raises(InvalidRequestError) as info:
        client.create({**T2V, "duration": 7})
    text = str(info.value)
    assert "duration" in text and "status_code=2013" in text and "trace_id=" in text and "call=create" in text
    assert "trace_id=-" not in text  # the sim sends a Trace-Id; it is quoted
    assert sim.sim.calls["create"] == 1


def test_flagged_input_fails_the_job(client, sim):
    with pytest.raises(ContentFlaggedError) as info:
        client.create({**T2V, "prompt": "sim-flag-input please"})
    assert info.value.code == 1026 and "change the prompt" in str(info.value)
    assert sim.sim.calls["create"] == 1


@pytest.mark.parametrize(
    "code, cls", [(1004, CredentialsError), (1008, AccountError), (2038, AccountError), (2056, AccountError)]
)
def test_account_codes_stop_the_run(client, sim, waits, code, cls):
    sim.sim.inject("create", f"code:{code}")
    with pytest.raises(cls) as info:
        client.create(T2V)
    assert info.value.code == code and info.value.exit_code == 3
    assert info.value.hint == facts.ERROR_CODES[code].hint and info.value.hint in str(info.value)
    assert sim.sim.calls["create"] == 1 and waits == []


def test_wrong_key_hints_at_both_hosts(sim, waits):
    with Client("sk-other-region", sim.base_url, retry=FAST, sleep=waits) as client:
        with pytest.raises(CredentialsError) as info:
            client.query("1")
    text = str(info.value)
    assert "status_code=2049" in text and facts.HOST_GLOBAL in text and facts.HOST_MAINLAND in text
    assert "sk-other-region" not in text and waits == []


@pytest.mark.parametrize("fault, cls, tries", [("http503", TransientError, FAST.attempts), ("code:1033", TransientError, 1),
                                               ("http429", RateLimitedError, 1), ("code:1002", RateLimitedError, 1)])
def test_exhausted_retries_raise_for_the_runner(client, sim, waits, fault, cls, tries):
    sim.sim.inject("query", fault, times=FAST.attempts)
    with pytest.raises(cls) as info:
        client.query("1")
    assert type(info.value) is cls and info.value.retryable
    assert sim.sim.calls["query"] == tries and len(waits) == tries - 1
    if tries > 1:
        assert f"attempt {tries} of {tries}" in str(info.value)
    if cls is RateLimitedError:
        assert info.value.retry_after == (1.0 if fault == "http429" else None)


def test_failed_render_is_a_status_then_an_error(client, sim):
    st = client.query(client.create({**T2V, "prompt": "sim-fail now"}))
    assert st.state is facts.TaskState.FAILED and "sim-fail" in (st.error_message or "")
    with pytest.raises(RenderFailedError, match="sim-fail"):
        st.raise_for_failure()


def test_flagged_output_is_a_failed_status_then_a_content_flag(client, sim):
    st = client.query(client.create({**T2V, "prompt": "sim-flag-output now"}))
    assert st.state is facts.TaskState.FAILED and st.status == "Fail"
    assert st.error_message and st.error_message.startswith("1027 ") and "flagged" in st.error_message
    with pytest.raises(ContentFlaggedError) as info:
        st.raise_for_failure()
    assert info.value.code == 1027


# --- downloads ----------------------------------------------------------------------------------


def test_truncated_download_falls_back_to_the_backup_url(client, sim, waits, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "truncate", times=2)
    got = client.download(file_id, tmp_path / "v.mp4")
    assert got.bytes == (tmp_path / "v.mp4").stat().st_size == client.retrieve(file_id).bytes
    assert got.sha256 == hashlib.sha256((tmp_path / "v.mp4").read_bytes()).hexdigest()
    assert sim.sim.calls["download"] == 1 and sim.sim.calls["backup_download"] == 1 and waits == []
    assert _leftovers(tmp_path) == []


def test_gateway_answer_on_a_route_is_retried_on_that_route(client, sim, waits, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "http503", times=FAST.attempts - 1)
    client.download(file_id, tmp_path / "v.mp4")
    assert sim.sim.calls["download"] == FAST.attempts and sim.sim.calls["backup_download"] == 0
    assert len(waits) == FAST.attempts - 1


def test_a_transient_retrieve_leaves_retrieve_content(client, sim, waits, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("retrieve", "code:1000")
    got = client.download(file_id, tmp_path / "v.mp4")
    assert got.bytes == client.retrieve(file_id).bytes
    assert sim.sim.calls["download"] == 0 and sim.sim.calls["retrieve_content"] == 1


def test_a_rate_limited_route_is_raised_at_once(client, sim, waits, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("retrieve_content", "http429")
    sim.sim.inject("download", "http500")
    sim.sim.inject("backup_download", "http500")
    with pytest.raises(RateLimitedError) as info:
        client.download(file_id, tmp_path / "v.mp4")
    assert info.value.retry_after == 1.0 and waits == []


def test_expired_url_gets_a_fresh_retrieve(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "expire")
    client.download(file_id, tmp_path / "v.mp4")
    assert sim.sim.calls["retrieve"] == 2 and sim.sim.calls["download"] == 2
    assert sim.sim.calls["backup_download"] == 0


def test_url_expired_by_the_clock_gets_a_fresh_retrieve(sim, waits, tmp_path):
    with running_simulator(SimConfig(key=TEST_KEY, url_ttl=60)) as server, Client(
        TEST_KEY, server.base_url, retry=FAST, sleep=waits
    ) as client:
        file_id = _render(client, server, T2V)
        first = client.retrieve(file_id)
        server.sim.advance(120)
        # a stale URL from earlier metadata is what download() must never rely on
        assert requests.get(first.download_url, timeout=5).status_code == 403
        got = client.download(file_id, tmp_path / "v.mp4")
    assert got.bytes == first.bytes


def test_backup_url_when_the_primary_fails(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "http503", times=FAST.attempts)
    got = client.download(file_id, tmp_path / "v.mp4")
    assert got.bytes == client.retrieve(file_id).bytes
    assert sim.sim.calls["download"] == FAST.attempts and sim.sim.calls["backup_download"] == 1
    assert sim.sim.calls["retrieve_content"] == 0


def test_retrieve_content_when_every_url_fails(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "drop", times=FAST.attempts)
    sim.sim.inject("backup_download", "expire", times=1)
    got = client.download(file_id, tmp_path / "v.mp4")
    assert got.sha256 == hashlib.sha256((tmp_path / "v.mp4").read_bytes()).hexdigest()
    assert sim.sim.calls["backup_download"] == 1 and sim.sim.calls["retrieve_content"] == 1


def test_every_route_truncated_raises_and_writes_nothing_else(sim, waits, tmp_path):
    policy = RetryPolicy(attempts=2, backoff_base=0.001)
    with Client(TEST_KEY, sim.base_url, retry=policy, sleep=waits) as client:
        file_id = _render(client, sim, T2V)
        size = client.retrieve(file_id).bytes
        for call in ("download", "backup_download", "retrieve_content"):
            sim.sim.inject(call, "truncate", times=2)
        dest = tmp_path / "out" / "v.mp4"
        dest.parent.mkdir()
        dest.write_bytes(b"x" * 10**6)  # the caller's staging file, with anything in it
        with pytest.raises(DownloadError) as info:
            client.download(file_id, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v.mp4"]  # no .part or other file
    assert dest.stat().st_size < size  # truncated and rewritten on every try: never the whole video
    text = str(info.value)
    assert all(route in text for route in ("download:", "backup_download:", "retrieve_content:"))
    assert info.value.retryable  # the runner may try again later


def test_download_writes_straight_into_dest(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"old content, longer than nothing")
    inode = dest.stat().st_ino
    seen: list[bytes] = []
    got = client.download(
        file_id,
        dest,
        expected_bytes=client.retrieve(file_id).bytes,
        on_progress=lambda done, total: seen.append(dest.read_bytes()),
    )
    assert seen and not any(b.startswith(b"old") for b in seen)  # truncated before the first byte
    assert dest.stat().st_ino == inode, "written in place, not renamed over: staging is the caller's"
    assert dest.stat().st_size == got.bytes > 3 and _leftovers(tmp_path) == []


def test_wrong_expected_size_is_not_accepted(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    with pytest.raises(DownloadError, match="stopped at"):
        client.download(file_id, tmp_path / "out" / "v.mp4", expected_bytes=10**6)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["v.mp4"]  # the caller's file, and nothing else


def test_interrupted_download_leaves_only_dest(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)

    out = tmp_path / "out"

    # Ctrl-C reaches the main thread, never the wire's loop (where a KeyboardInterrupt would end
    # the loop itself): there, any exception out of the middle of a download stands for it.
    stop = RuntimeError if isinstance(client, OnLoop) else KeyboardInterrupt

    def interrupt(done: int, total: int | None) -> None:
        raise stop

    with pytest.raises(stop):
        client.download(file_id, out / "v.mp4", on_progress=interrupt)
    assert [p.name for p in out.iterdir()] == ["v.mp4"]  # no temporary file of the client's


def test_disk_full_is_a_clear_non_retryable_error(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"the older render")
    # RLIMIT_FSIZE makes writes past the limit fail with EFBIG, as a full disk fails them with ENOSPC.
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        with pytest.raises(DownloadError) as info:
            client.download(file_id, dest)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert not info.value.retryable
    assert "could not write" in str(info.value) and "too large" in str(info.value).lower()
    assert sim.sim.calls["download"] == 1 and sim.sim.calls["backup_download"] == 0
    assert _leftovers(tmp_path) == []


# --- the key stays secret -----------------------------------------------------------------------


def test_key_never_in_messages_or_logs(sim, waits, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    policy = RetryPolicy(attempts=2, backoff_base=0.001)
    with Client(TEST_KEY, sim.base_url, retry=policy, sleep=waits) as client:
        file_id = _render(client, sim, T2V)
        faults = [
            ("create", "drop_after_create"), ("create", "code:2013"), ("create", "code:1004"),
            ("query", "drop"), ("query", "http503"), ("query", "http429"), ("query", "code:2049"),
            ("retrieve", "drop"), ("download", "truncate"), ("download", "expire"),
        ]  # fmt: skip
        for call, fault in faults:
            sim.sim.inject(call, fault, times=2)
            try:
                if call == "create":
                    client.create(T2V)
                elif call == "query":
                    client.query("1")
                elif call == "retrieve":
                    client.retrieve(file_id)
                else:
                    client.download(file_id, tmp_path / "v.mp4")
            except Exception as e:  # noqa: BLE001 (collecting every error's text)
                errors.append(e)
        for call in ("download", "backup_download", "retrieve_content"):
            sim.sim.inject(call, "truncate", times=2)
        with pytest.raises(DownloadError) as info:
            client.download(file_id, tmp_path / "w.mp4")
        errors.append(info.value)
        text = repr(client) + str(vars(client))
    assert len(errors) >= 6
    for e in errors:
        text += f"{e}\n{e!r}\n{e.args!r}\n{vars(e)!r}\n"
        chained = e.__cause__ or e.__context__
        assert chained is None or not isinstance(chained, requests.RequestException)
    text += "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert len(caplog.records) > 20
    assert TEST_KEY not in text


def test_retrieve_content_answering_a_json_error_is_read_by_the_same_classifier(client, sim, waits, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "http500")
    sim.sim.inject("backup_download", "http500")
    sim.sim.inject("retrieve_content", "code:1000")
    with pytest.raises(DownloadError) as info:
        client.download(file_id, tmp_path / "v.mp4")
    text = str(info.value)
    assert "retrieve_content: retrieve_content refused: unknown error (1000)" in text
    assert info.value.retryable and info.value.code == 1000 and waits == []


# --- the wire: what each session sends, and what it reads from the environment ----------------------


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_key(client, sim, sent, tmp_path):
    """requests reads ~/.netrc for a request without an explicit auth, and its entry for the
    API host replaced the ``Authorization: Bearer`` header with Basic credentials: every call
    was refused (1004) with a hint to check a key that was right. Nor may it go to download hosts."""
    netrc = Path.home() / ".netrc"  # HOME is a temporary folder (conftest)
    netrc.write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    netrc.chmod(0o600)
    client.download(_render(client, sim, T2V), tmp_path / "v.mp4")
    signed = [r for r in sent if r.path_url.startswith("/_sim/")]
    assert signed and len(sent) > len(signed)
    for r in sent:
        assert r.headers.get("Authorization") == (None if r in signed else f"Bearer {TEST_KEY}")


def _wire(session_kind: str, sim, folder: Path) -> list[tuple[str, str, list[tuple[str, str]], bytes | str | None]]:
    sent: list[requests.PreparedRequest] = []
    session = None if session_kind == "own" else _recorded(requests.Session(), sent)
    with Client(sim.key, sim.base_url, session=session, retry=FAST, sleep=Waits()) as client:
        if session is None:
            _recorded(client._session, sent)
        client.download(_render(client, sim, T2V), folder / f"{session_kind}.mp4")
    path = [(r.path_url or "").split("?")[0] for r in sent]
    return [(r.method or "", "/_sim/download" if p.startswith("/_sim/download/") else p, sorted(r.headers.items()), r.body) for r, p in zip(sent, path)]


def test_the_own_session_sends_what_requests_sends(sim, tmp_path):
    """The session the client makes for itself skips requests' per-call merges, not anything on
    the wire: each call's method, path, headers and body are what ``requests.Session`` sends."""
    own, plain = _wire("own", sim, tmp_path), _wire("requests", sim, tmp_path)
    assert [c[:2] for c in own] == [
        ("POST", facts.PATH_CREATE),
        ("GET", facts.PATH_QUERY),
        ("GET", facts.PATH_RETRIEVE),
        ("GET", "/_sim/download"),  # the signed URL
    ]
    assert own == plain


@pytest.mark.parametrize("made_by", ["Client", "vidbatch.simulator"])
def test_the_own_session_takes_the_lean_path(made_by, tmp_path, monkeypatch):
    """The point of the client's own session (issue 15): no cookie and setting merges per call,
    no ~/.netrc lookup, and the environment read once per host, not per call. The simulator's
    client (``run --sim``, the demo) has it too."""
    import requests.sessions

    import vidbatch

    def refused(*args, **kwargs):
        raise AssertionError("requests' per-call path was taken")

    reads: list[str] = []
    real = requests.sessions.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", lambda url, **kw: reads.append(url) or real(url, **kw))
    monkeypatch.setattr(requests.Session, "prepare_request", refused)
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", refused)
    with vidbatch.simulator() as sim:
        server = sim.server
        made = Client(sim.key, sim.url, retry=FAST, sleep=Waits()) if made_by == "Client" else sim.client()
        with made as client:
            for n in range(3):
                client.download(_render(client, server, T2V), tmp_path / f"{n}.mp4")
    assert len(reads) == 2  # the API host; its download URLs (streamed): read once each


def test_a_signed_url_that_redirects_is_followed(client, sim, sent, tmp_path):
    from .test_client_unit import _http, _server

    file_id = _render(client, sim, T2V)
    signed = client.retrieve(file_id).download_url
    before = len(sent)
    with _server(_http("302 Found", b"", f"Location: {signed}")) as hop:
        got = client.download_v2("t", tmp_path / "v.mp4", url=f"{hop}/v.mp4")
    assert [r.url for r in sent[before:]] == [f"{hop}/v.mp4", signed]
    assert all("Authorization" not in r.headers for r in sent[before:])
    assert got.bytes == client.retrieve(file_id).bytes and (tmp_path / "v.mp4").read_bytes()[4:8] == b"ftyp"


def test_the_ca_bundle_from_the_environment_is_trusted(monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with running_simulator(SimConfig(key=TEST_KEY), https=True) as server:
        with Client(TEST_KEY, server.base_url, sleep=Waits()) as client, pytest.raises(
            HostUnreachableError, match="TLS certificate"
        ):
            client.create(T2V)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
        with Client(TEST_KEY, server.base_url, sleep=Waits()) as client:
            assert client.query(client.create(T2V)).state is facts.TaskState.SUCCESS


@pytest.mark.parametrize("trust", ["REQUESTS_CA_BUNDLE", "a session with the CA file"])
def test_the_calls_on_a_loop_trust_what_requests_trusts(trust, monkeypatch, tmp_path):
    """aiohttp reads no environment of its own here: the wire takes the CA (and proxies) that
    requests would take for the same host, from the client's session."""
    from vidbatch.client import new_session

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with running_simulator(SimConfig(key=TEST_KEY), https=True) as server:
        untrusting = OnLoop(Client(TEST_KEY, server.base_url, sleep=Waits()), [], monkeypatch)
        try:
            with pytest.raises(HostUnreachableError, match="TLS certificate"):
                untrusting.create(T2V)
        finally:
            untrusting.close()
        session = None
        if trust == "REQUESTS_CA_BUNDLE":
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
        else:
            session = new_session(ca_file=server.ca_file)
        sent: list = []
        client = OnLoop(Client(TEST_KEY, server.base_url, session=session, sleep=Waits()), sent, monkeypatch)
        try:
            file_id = _render(client, server, T2V)
            got = client.download(file_id, tmp_path / "v.mp4")
        finally:
            client.close()
        assert got.bytes == (tmp_path / "v.mp4").stat().st_size > 0
        assert all(r.url.startswith("https://") for r in sent) and len(sent) == 4
