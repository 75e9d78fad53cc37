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
    ContentFlaggedError,
    CredentialsError,
    DownloadError,
    InvalidRequestError,
    MaybeSubmittedError,
    RateLimitedError,
    RenderFailedError,
    TransientError,
)
from vidbatch.images import to_data_url
from vidbatch.sim import SimConfig, running_simulator

from .conftest import TEST_KEY
from .helpers import write_png

FAST = RetryPolicy(attempts=6, backoff_base=0.001, backoff_max=5.0, rate_limit_base=0.001)
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


@pytest.fixture
def client(sim, waits, sent):
    """A client on ``sim`` whose session records every request it sends (a response hook)."""
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **kw: sent.append(r.request))
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
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


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
    sim.sim.inject("download", "http500", times=FAST.attempts)
    sim.sim.inject("backup_download", "http500", times=FAST.attempts)
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


# --- faults recovered ---------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["create", "query", "retrieve"])
@pytest.mark.parametrize(
    "fault", ["http500", "http503", "code:1000", "code:1013", "code:1002", "code:1041", "code:4242"]
)
def test_transient_faults_are_retried(client, sim, waits, call, fault):
    task_id = client.create(T2V) if call != "create" else None
    file_id = client.query(task_id).file_id if call == "retrieve" else None
    sim.sim.inject(call, fault, times=2)
    if call == "create":
        task_id = client.create(T2V)
        assert len(sim.sim.tasks) == 1  # the server said "no" twice: nothing was created twice
    elif call == "query":
        assert client.query(task_id).state is facts.TaskState.SUCCESS
    else:
        assert client.retrieve(file_id).bytes
    assert sim.sim.calls[call] == 3
    assert len(waits) == 2


def test_429_honours_retry_after(client, sim, waits):
    sim.sim.inject("create", "http429", times=2)
    client.create(T2V)
    assert len(waits) == 2 and all(w >= 1.0 for w in waits)  # the sim sends Retry-After: 1
    assert len(sim.sim.tasks) == 1


def test_retry_after_longer_than_backoff_max_is_handed_to_the_caller(sim, waits):
    with Client(TEST_KEY, sim.base_url, retry=RetryPolicy(backoff_max=0.5), sleep=waits) as client:
        sim.sim.inject("query", "http429")
        with pytest.raises(RateLimitedError) as info:
            client.query("123")
    assert info.value.retry_after == 1.0 and waits == [] and sim.sim.calls["query"] == 1


@pytest.mark.parametrize("call", ["query", "retrieve"])
def test_dropped_connection_is_retried_for_reads(client, sim, call):
    file_id = _render(client, sim, T2V)
    sim.sim.inject(call, "drop")
    if call == "query":
        assert client.query(next(iter(sim.sim.tasks))).file_id == file_id
    else:
        assert client.retrieve(file_id).file_id == file_id
    assert sim.sim.calls[call] == {"query": 3, "retrieve": 2}[call]  # _render queried once


def test_read_timeout_on_query_is_retried(sim, waits):
    with Client(TEST_KEY, sim.base_url, retry=FAST, timeouts=Timeouts(read=0.2), sleep=waits) as client:
        task_id = client.create(T2V)
        sim.sim.inject("query", "slow", seconds=0.6)
        assert client.query(task_id).state is facts.TaskState.SUCCESS
    assert len(waits) == 1


# --- create: retried only when it certainly did not arrive ---------------------------------------


def test_create_refused_connection_is_retried_until_the_server_is_up(waits):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = []
    with contextlib.ExitStack() as stack:

        def sleep_then_start(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 2:  # two refused attempts, then the service comes up on that port
                servers.append(stack.enter_context(running_simulator(SimConfig(key=TEST_KEY), port=port)))

        with Client(TEST_KEY, f"http://127.0.0.1:{port}", retry=FAST, sleep=sleep_then_start) as client:
            task_id = client.create(T2V)
        assert list(servers[0].sim.tasks) == [task_id] and servers[0].sim.calls["create"] == 1


def test_create_refused_every_time_ends_transient(waits):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(TEST_KEY, f"http://127.0.0.1:{port}", retry=FAST, sleep=waits) as client:
        with pytest.raises(TransientError) as info:
            client.create(T2V)
    assert not isinstance(info.value, MaybeSubmittedError)
    assert len(waits) == FAST.attempts - 1
    assert "attempt 6 of 6" in str(info.value) and "call=create" in str(info.value)


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


@pytest.mark.parametrize("fault, cls", [("http503", TransientError), ("code:1033", TransientError),
                                        ("http429", RateLimitedError), ("code:1002", RateLimitedError)])
def test_exhausted_retries_raise_for_the_runner(client, sim, waits, fault, cls):
    sim.sim.inject("query", fault, times=FAST.attempts)
    with pytest.raises(cls) as info:
        client.query("1")
    assert type(info.value) is cls and info.value.retryable
    assert sim.sim.calls["query"] == FAST.attempts and len(waits) == FAST.attempts - 1
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


def test_truncated_download_is_retried(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    sim.sim.inject("download", "truncate", times=2)
    got = client.download(file_id, tmp_path / "v.mp4")
    assert got.bytes == (tmp_path / "v.mp4").stat().st_size == client.retrieve(file_id).bytes
    assert sim.sim.calls["download"] == 3 and sim.sim.calls["backup_download"] == 0
    assert _leftovers(tmp_path) == []


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
    sim.sim.inject("download", "http500", times=FAST.attempts)
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


def test_every_route_truncated_leaves_nothing_behind(sim, waits, tmp_path):
    policy = RetryPolicy(attempts=2, backoff_base=0.001, rate_limit_base=0.001)
    with Client(TEST_KEY, sim.base_url, retry=policy, sleep=waits) as client:
        file_id = _render(client, sim, T2V)
        for call in ("download", "backup_download", "retrieve_content"):
            sim.sim.inject(call, "truncate", times=2)
        dest = tmp_path / "out" / "v.mp4"
        dest.parent.mkdir()
        dest.write_bytes(b"the older render")
        with pytest.raises(DownloadError) as info:
            client.download(file_id, dest)
    assert dest.read_bytes() == b"the older render"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v.mp4"]
    text = str(info.value)
    assert all(route in text for route in ("download:", "backup_download:", "retrieve_content:"))
    assert info.value.retryable  # the runner may try again later


def test_new_download_replaces_an_older_file(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"old")
    seen: list[bytes] = []
    got = client.download(
        file_id,
        dest,
        expected_bytes=client.retrieve(file_id).bytes,
        on_progress=lambda done, total: seen.append(dest.read_bytes()),
    )
    assert seen and set(seen) == {b"old"}  # untouched while the new file streams
    assert dest.stat().st_size == got.bytes > 3


def test_wrong_expected_size_is_not_accepted(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)
    with pytest.raises(DownloadError, match="stopped at"):
        client.download(file_id, tmp_path / "out" / "v.mp4", expected_bytes=10**6)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupted_download_removes_its_temp_file(client, sim, tmp_path):
    file_id = _render(client, sim, T2V)

    out = tmp_path / "out"

    def interrupt(done: int, total: int | None) -> None:
        assert _leftovers(out) != []  # streaming into a temp file beside the target
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.download(file_id, out / "v.mp4", on_progress=interrupt)
    assert list(out.iterdir()) == []


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
    assert dest.read_bytes() == b"the older render" and _leftovers(tmp_path) == []


# --- the key stays secret -----------------------------------------------------------------------


def test_key_never_in_messages_or_logs(sim, waits, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    policy = RetryPolicy(attempts=2, backoff_base=0.001, rate_limit_base=0.001)
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
