"""The simulator, over real HTTP on loopback, driven the way MiniMax's guide drives the real API.

No sleeps: the sim clock is moved with ``advance()`` wherever time matters.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import urllib.parse
import zlib

import pytest
import requests

from vidbatch import facts, mp4, rules
from vidbatch.images import to_data_url
from vidbatch.sim import SimConfig, running_simulator

from .conftest import TEST_KEY


def png(width: int = 640, height: int = 360) -> bytes:
    """A valid RGB PNG, written by hand (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes([30, 120, 200]) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


IMAGE = to_data_url(png(), "image/png")
REQUESTS = {
    "t2v": {"model": "MiniMax-Hailuo-2.3", "prompt": "a fox runs through snow [Pan left]", "duration": 6},
    "i2v": {"model": "MiniMax-Hailuo-02", "prompt": "a lake", "first_frame_image": IMAGE, "resolution": "512P"},
    "fl2v": {"model": "MiniMax-Hailuo-02", "first_frame_image": IMAGE, "last_frame_image": IMAGE},
    "s2v": {"model": "S2V-01", "prompt": "she waves", "subject_reference": [{"type": "character", "image": [IMAGE]}]},
}


def session(key: str | None = TEST_KEY) -> requests.Session:
    s = requests.Session()
    if key is not None:
        s.headers["Authorization"] = f"Bearer {key}"
    return s


def create(server, body, key: str | None = TEST_KEY) -> dict:
    r = session(key).post(server.base_url + facts.PATH_CREATE, json=body, timeout=10)
    assert r.status_code == 200
    return r.json()


def query(server, task_id, key: str | None = TEST_KEY) -> dict:
    return session(key).get(server.base_url + facts.PATH_QUERY, params={"task_id": task_id}, timeout=10).json()


def retrieve(server, file_id, key: str | None = TEST_KEY) -> dict:
    return session(key).get(server.base_url + facts.PATH_RETRIEVE, params={"file_id": file_id}, timeout=10).json()


def render(server, body) -> tuple[dict, dict]:
    """create + query (done at once with latency 0): the query answer and the retrieve answer."""
    created = create(server, body)
    assert created["base_resp"]["status_code"] == 0, created
    done = query(server, created["task_id"])
    assert done["status"] == "Success", done
    return done, retrieve(server, done["file_id"])


# --- the documented client flow ---------------------------------------------------------------


@pytest.mark.parametrize("mode", list(REQUESTS))
def test_documented_flow_gives_a_valid_mp4(mode, tmp_path):
    """MiniMax's guide: create, poll query every 10 s until Success, retrieve, GET download_url."""
    body = REQUESTS[mode]
    with running_simulator(SimConfig(key=TEST_KEY, latency=45)) as server:
        api = session()
        r = api.post(server.base_url + "/v1/video_generation", json=body, timeout=10)
        assert r.headers["Trace-Id"]
        task_id = r.json()["task_id"]
        assert isinstance(task_id, str) and task_id.isdigit()

        seen = []
        while True:
            answer = api.get(server.base_url + "/v1/query/video_generation", params={"task_id": task_id}).json()
            assert answer["base_resp"]["status_code"] == 0
            seen.append(answer["status"])
            if answer["status"] in ("Success", "Fail"):
                break
            server.sim.advance(10)  # the guide's time.sleep(10)
        assert seen[0] == "Preparing" and seen[-1] == "Success"
        assert set(seen) <= {"Preparing", "Queueing", "Processing", "Success"}
        file_id = answer["file_id"]
        assert isinstance(file_id, str)
        assert (answer["video_width"], answer["video_height"]) == rules.output_size(body)

        file = api.get(server.base_url + "/v1/files/retrieve", params={"file_id": file_id}).json()["file"]
        assert file["file_id"] == int(file_id)
        assert file["filename"] == "output_aigc.mp4" and file["purpose"] == "video_generation"
        download = requests.get(file["download_url"], timeout=10)  # no Authorization: a signed URL
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "video/mp4"
        out = tmp_path / "out.mp4"
        out.write_bytes(download.content)
        assert out.stat().st_size == file["bytes"]
        assert mp4.check_mp4(out) == []
        meta = mp4.read_sim_metadata(out)
        assert meta["task_id"] == task_id and meta["model"] == body["model"]
        if mode == "s2v":
            assert (meta["resolution"], meta["duration"]) == ("720P", 6)

        content = api.get(server.base_url + "/v1/files/retrieve_content", params={"file_id": file_id})
        assert content.headers["Content-Type"] == "video/mp4"
        assert content.content == download.content


def test_each_task_has_its_own_video(sim, tmp_path):
    videos = {}
    for prompt in ("first", "second"):
        done, file = render(sim, {"model": "T2V-01", "prompt": prompt})
        videos[done["task_id"]] = requests.get(file["file"]["download_url"], timeout=10).content
    (id1, v1), (id2, v2) = videos.items()
    assert v1 != v2
    for task_id, data in videos.items():
        path = tmp_path / f"{task_id}.mp4"
        path.write_bytes(data)
        assert mp4.check_mp4(path) == []
        assert mp4.read_sim_metadata(path)["task_id"] == task_id
    assert sim.sim.creates_for("first") == 1 and sim.sim.creates_for("ir") == 1  # "first" only


def test_backup_url_and_file_id_as_int(sim):
    done, _ = render(sim, REQUESTS["t2v"])
    file = retrieve(sim, int(done["file_id"]))["file"]
    backup = requests.get(file["backup_download_url"], timeout=10)
    assert backup.status_code == 200 and len(backup.content) == file["bytes"]
    assert sim.sim.calls["backup_download"] == 1 and sim.sim.calls["download"] == 0


def test_padded_video_streams_at_the_requested_size(tmp_path):
    with running_simulator(SimConfig(video_bytes=3_000_000)) as server:
        done, file = render_any_key(server)
        assert file["file"]["bytes"] == 3_000_000
        out = tmp_path / "big.mp4"
        with requests.get(file["file"]["download_url"], stream=True, timeout=10) as r, open(out, "wb") as f:
            for chunk in r.iter_content(65536):
                f.write(chunk)
        assert out.stat().st_size == 3_000_000
        assert mp4.check_mp4(out) == []
        assert mp4.read_sim_metadata(out)["task_id"] == done["task_id"]


def render_any_key(server):
    """render() with the server's key (for simulators that accept any key)."""
    api = session(server.key)
    task_id = api.post(server.base_url + facts.PATH_CREATE, json=REQUESTS["t2v"]).json()["task_id"]
    done = api.get(server.base_url + facts.PATH_QUERY, params={"task_id": task_id}).json()
    return done, api.get(server.base_url + facts.PATH_RETRIEVE, params={"file_id": done["file_id"]}).json()


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,field",
    [
        ({"model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 10, "resolution": "1080P"}, "resolution"),
        ({**REQUESTS["s2v"], "duration": 6}, "duration"),
        ({"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "x"}, "first_frame_image"),
        ({"model": "MiniMax-Hailuo-2.3", "prompt": "x" * 2001}, "prompt"),
        ({"model": "I2V-01", "first_frame_image": to_data_url(png(200, 200), "image/png")}, "first_frame_image"),
        ({"model": "I2V-01", "first_frame_image": "data:text/plain;base64,aGVsbG8="}, "first_frame_image"),
        ({"model": "Hailuo-9000", "prompt": "x"}, "model"),
        ({"model": "T2V-01", "prompt": "x", "resolutoin": "720P"}, "resolutoin"),
        # as a V2 create is, and as the manifest refuses it: MiniMax posts a challenge there first
        ({"model": "T2V-01", "prompt": "x", "callback_url": "not a url"}, "callback_url"),
    ],
)
def test_invalid_requests_are_refused_with_2013(sim, body, field):
    answer = create(sim, body)
    assert answer["base_resp"]["status_code"] == 2013
    assert answer["base_resp"]["status_msg"].startswith(f"invalid params, {field}: ")
    assert "task_id" not in answer
    assert sim.sim.stats()["tasks"] == 0


def test_status_message_matches_the_real_wording(sim):
    answer = create(sim, {"model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 10, "resolution": "1080P"})
    assert answer["base_resp"]["status_msg"] == (
        "invalid params, resolution: MiniMax-Hailuo-02 text-to-video at 10 s takes 768P, not 1080P"
    )


def test_body_that_is_not_json_is_2013(sim):
    r = session().post(sim.base_url + facts.PATH_CREATE, data=b"{not json", timeout=10)
    assert r.json()["base_resp"]["status_code"] == 2013


@pytest.mark.parametrize(
    "authorization,code",
    [(None, 1004), ("Basic abc", 1004), ("Bearer ", 1004), ("Bearer sk-wrong", 2049)],
)
def test_bad_credentials(sim, authorization, code):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for call, method, path in (
        ("create", "POST", facts.PATH_CREATE),
        ("query", "GET", facts.PATH_QUERY + "?task_id=1"),
        ("retrieve", "GET", facts.PATH_RETRIEVE + "?file_id=1"),
    ):
        r = requests.request(method, sim.base_url + path, json=REQUESTS["t2v"], headers=headers, timeout=10)
        assert r.status_code == 200, call
        assert r.json()["base_resp"]["status_code"] == code, call
    assert sim.sim.stats()["tasks"] == 0


def test_rpm_limit_on_a_rolling_minute():
    with running_simulator(SimConfig(key=TEST_KEY, rpm=2)) as server:
        codes = [create(server, REQUESTS["t2v"])["base_resp"]["status_code"] for _ in range(3)]
        assert codes == [0, 0, 1002]
        server.sim.advance(61)
        assert create(server, REQUESTS["t2v"])["base_resp"]["status_code"] == 0
        assert server.sim.stats()["creates"] == 3


def test_tasks_belong_to_the_key_that_created_them():
    with running_simulator(SimConfig()) as server:  # any key is accepted
        task_id = create(server, REQUESTS["t2v"], key="alice")["task_id"]
        assert query(server, task_id, key="alice")["status"] == "Success"
        other = query(server, task_id, key="bob")
        assert other["base_resp"]["status_code"] == 2013 and "status" not in other
        file_id = query(server, task_id, key="alice")["file_id"]
        assert retrieve(server, file_id, key="bob")["base_resp"]["status_code"] == 2013


def test_unknown_task_and_file(sim):
    assert query(sim, "123")["base_resp"]["status_code"] == 2013
    assert retrieve(sim, "456")["base_resp"]["status_code"] == 2013


# --- outcomes and time ------------------------------------------------------------------------


def test_status_progression_follows_the_sim_clock():
    with running_simulator(SimConfig(key=TEST_KEY, latency=100)) as server:
        task_id = create(server, REQUESTS["t2v"])["task_id"]
        statuses = []
        for step in (0, 15, 20, 64):
            server.sim.advance(step)
            answer = query(server, task_id)
            statuses.append(answer["status"])
            assert "file_id" not in answer
        assert statuses == ["Preparing", "Queueing", "Processing", "Processing"]
        assert retrieve(server, "1")["base_resp"]["status_code"] == 2013
        server.sim.advance(1)
        answer = query(server, task_id)
        assert answer["status"] == "Success" and answer["file_id"]


@pytest.mark.parametrize(
    "prompt,code,message",
    [("a sim-fail shot", 0, True), ("a sim-flag-output shot", 1027, False)],
)
def test_trigger_words_end_in_fail(sim, prompt, code, message):
    task_id = create(sim, {"model": "T2V-01", "prompt": prompt})["task_id"]
    answer = query(sim, task_id)
    assert answer["status"] == "Fail"
    assert answer["base_resp"]["status_code"] == code
    assert ("error_message" in answer) is message
    assert "file_id" not in answer


def test_flagged_input_is_refused_with_1026(sim):
    answer = create(sim, {"model": "T2V-01", "prompt": "sim-flag-input please"})
    assert answer["base_resp"]["status_code"] == 1026
    assert sim.sim.creates_for("sim-flag-input") == 0


def test_fail_rate():
    with running_simulator(SimConfig(key=TEST_KEY, fail_rate=1.0)) as server:
        assert query(server, create(server, REQUESTS["t2v"])["task_id"])["status"] == "Fail"


def test_download_url_expires_and_retrieve_renews_it():
    with running_simulator(SimConfig(key=TEST_KEY, url_ttl=60)) as server:
        done, file = render(server, REQUESTS["t2v"])
        url = file["file"]["download_url"]
        server.sim.advance(61)
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 403 and b"expired" in expired.content
        assert requests.get(file["file"]["backup_download_url"], timeout=10).status_code == 403
        fresh = retrieve(server, done["file_id"])["file"]["download_url"]
        assert fresh != url and requests.get(fresh, timeout=10).status_code == 200


def test_tampered_download_url_is_refused(sim):
    _, file = render(sim, REQUESTS["t2v"])
    url = urllib.parse.urlsplit(file["file"]["download_url"])
    params = dict(urllib.parse.parse_qsl(url.query))
    params["Expires"] = str(int(params["Expires"]) + 86400)
    forged = url._replace(query=urllib.parse.urlencode(params)).geturl()
    assert requests.get(forged, timeout=10).status_code == 403


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault,status", [("http500", 500), ("http503", 503), ("http429", 429)])
def test_http_faults_then_recovery(sim, fault, status):
    sim.sim.inject("create", fault, times=2)
    api = session()
    for _ in range(2):
        r = api.post(sim.base_url + facts.PATH_CREATE, json=REQUESTS["t2v"], timeout=10)
        assert r.status_code == status and r.headers["Trace-Id"]
        if fault == "http429":
            assert r.headers["Retry-After"] == "1"
    assert sim.sim.stats()["tasks"] == 0
    assert create(sim, REQUESTS["t2v"])["base_resp"]["status_code"] == 0
    assert sim.sim.calls["create"] == 3


def test_code_fault_has_the_real_message(sim):
    sim.sim.inject("query", "code:1008")
    base = query(sim, "1")["base_resp"]
    assert base == {"status_code": 1008, "status_msg": facts.ERROR_CODES[1008].meaning}


def test_drop_create_creates_nothing(sim):
    sim.sim.inject("create", "drop")
    with pytest.raises(requests.ConnectionError):
        session().post(sim.base_url + facts.PATH_CREATE, json=REQUESTS["t2v"], timeout=10)
    assert sim.sim.stats()["tasks"] == 0 and sim.sim.calls["create"] == 1


def test_drop_after_create_creates_the_task(sim):
    sim.sim.inject("create", "drop_after_create")
    body = {"model": "T2V-01", "prompt": "maybe submitted"}
    with pytest.raises(requests.ConnectionError):
        session().post(sim.base_url + facts.PATH_CREATE, json=body, timeout=10)
    assert sim.sim.creates_for("maybe submitted") == 1


def test_slow_answer_trips_a_client_timeout(sim):
    sim.sim.inject("query", "slow", seconds=0.01)
    assert query(sim, "1")["base_resp"]["status_code"] == 2013  # a short delay still answers
    sim.sim.inject("query", "slow", seconds=3600)  # far beyond any client timeout: no race
    with pytest.raises(requests.Timeout):
        session().get(sim.base_url + facts.PATH_QUERY, params={"task_id": "1"}, timeout=0.2)


def test_stop_ends_every_connection_thread_even_a_slow_answer(caplog):
    """Issue 9: a handler thread held back by 'slow' outlived its server and logged into the next
    test. stop() must wake it and join it: nothing of the server runs after stop() returns."""
    caplog.set_level(logging.INFO, logger="vidbatch.sim")
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        server.sim.inject("query", "slow", seconds=3600)
        with pytest.raises(requests.Timeout):
            session().get(server.base_url + facts.PATH_QUERY, params={"task_id": "1"}, timeout=0.2)
        idle = session()  # and an idle keep-alive connection
        assert idle.get(server.base_url + "/_sim/stats", timeout=5).status_code == 200
        assert server.handler_threads(), "the slow answer's thread is still waiting"
    assert server.handler_threads() == []
    assert not [t for t in threading.enumerate() if t.name.startswith(f"vidbatch-sim:{server.port}")]
    slow = [r.getMessage() for r in caplog.records if "fault=slow" in r.getMessage()]
    assert len(slow) == 1 and " dropped " in slow[0], "logged once, before stop() returned"


@pytest.mark.parametrize("call", ["download", "backup_download", "retrieve_content"])
def test_truncate_sends_fewer_bytes_than_content_length(sim, call):
    done, file = render(sim, REQUESTS["t2v"])
    sim.sim.inject(call, "truncate")
    if call == "retrieve_content":
        url = f"{sim.base_url}{facts.PATH_RETRIEVE_CONTENT}?file_id={done['file_id']}"
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
    else:
        url = file["file"]["download_url" if call == "download" else "backup_download_url"]
        headers = {}
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", f"{parts.path}?{parts.query}", headers=headers)
    response = conn.getresponse()
    assert int(response.getheader("Content-Length")) == file["file"]["bytes"]
    with pytest.raises(http.client.IncompleteRead) as e:
        response.read()
    assert 0 < len(e.value.partial) < file["file"]["bytes"]
    conn.close()
    # the next download is whole again
    assert len(session().get(url).content) == file["file"]["bytes"]


def test_expire_fault(sim):
    _, file = render(sim, REQUESTS["t2v"])
    sim.sim.inject("download", "expire")
    assert requests.get(file["file"]["download_url"], timeout=10).status_code == 403
    assert requests.get(file["file"]["download_url"], timeout=10).status_code == 200


@pytest.mark.parametrize(
    "call,fault,params",
    [
        ("nonsense", "drop", {}),
        ("create", "explode", {}),
        ("query", "drop_after_create", {}),
        ("create", "truncate", {}),
        ("create", "expire", {}),
        ("query", "slow", {}),
        ("query", "code:abc", {}),
    ],
)
def test_invalid_faults_are_refused(sim, call, fault, params):
    with pytest.raises(ValueError):
        sim.sim.inject(call, fault, **params)


def test_error_rate_gives_transient_faults():
    with running_simulator(SimConfig(key=TEST_KEY, error_rate=1.0, seed=7)) as server:
        api = session()
        outcomes = set()
        for _ in range(20):
            r = api.post(server.base_url + facts.PATH_CREATE, json=REQUESTS["t2v"], timeout=10)
            outcomes.add(r.status_code if r.status_code != 200 else r.json()["base_resp"]["status_code"])
        assert outcomes <= {500, 503, 1000, 1013, 1033} and len(outcomes) > 1
        assert server.sim.stats()["tasks"] == 0


# --- control endpoints, logging, lifecycle ----------------------------------------------------


def test_http_control_endpoints():
    with running_simulator(SimConfig(key=TEST_KEY, latency=50)) as server:
        task_id = create(server, REQUESTS["t2v"])["task_id"]
        r = requests.post(server.base_url + "/_sim/faults", json={"call": "query", "fault": "http503", "times": 2})
        assert r.status_code == 200 and r.json()["faults_pending"] == {"query": 2}
        bad = requests.post(server.base_url + "/_sim/faults", json={"call": "query", "fault": "bad"})
        assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]
        api = session()
        url = f"{server.base_url}{facts.PATH_QUERY}?task_id={task_id}"
        statuses = [api.get(url).status_code for _ in range(3)]
        assert statuses == [503, 503, 200]
        assert requests.post(server.base_url + "/_sim/advance", json={"seconds": 50}).status_code == 200
        assert query(server, task_id)["status"] == "Success"
        stats = requests.get(server.base_url + "/_sim/stats").json()
        assert stats["calls"]["query"] == 4 and stats["creates"] == 1 and stats["faults_pending"] == {}


def test_log_has_one_line_per_call_and_never_the_key(sim, caplog):
    caplog.set_level(logging.INFO, logger="vidbatch.sim")
    render(sim, REQUESTS["t2v"])
    create(sim, {"model": "nope"})
    lines = [r.getMessage() for r in caplog.records if r.name == "vidbatch.sim"]
    assert len(lines) == 4
    assert lines[0].startswith("create POST /v1/video_generation 200 base_resp=0")
    assert "base_resp=2013" in lines[3]
    assert not any(TEST_KEY in line for line in lines)


def test_stopped_simulator_refuses_connections():
    with running_simulator() as server:
        api = session(server.key)
        assert api.get(server.base_url + "/_sim/stats", timeout=5).status_code == 200  # keep-alive open
    with pytest.raises(requests.ConnectionError):
        api.get(server.base_url + "/_sim/stats", timeout=5)


def test_sim_command_as_a_subprocess():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidbatch", "sim", "--port", "0", "--key", TEST_KEY, "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")

        class Server:
            pass

        server = Server()
        server.base_url = base_url
        done, file = render(server, REQUESTS["t2v"])
        assert requests.get(file["file"]["download_url"], timeout=10).status_code == 200
        stats = requests.get(base_url + "/_sim/stats", timeout=5).json()
        assert stats["creates"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err
    assert f"MINIMAX_API_HOST={base_url}" in err
    call_lines = [line for line in err.splitlines() if " create POST " in line]
    assert len(call_lines) == 1 and TEST_KEY not in call_lines[0]


def test_a_fault_can_wait_for_n_calls_before_applying(sim):
    import requests

    sim.sim.inject("query", "http500", times=1, after=2)
    url = f"{sim.base_url}/v1/query/video_generation?task_id=1"
    headers = {"Authorization": f"Bearer {sim.key}"}
    codes = [requests.get(url, headers=headers, timeout=5).status_code for _ in range(4)]
    assert codes == [200, 200, 500, 200]
