"""The simulator's Video Generation V2 (MiniMax-H3), over real HTTP on loopback.

Create, query, list, cancel, the expiring ``content.url``, ``usage`` and billing, refusals in
both of the contract's forms, uploads named ``mm_file://``, faults (lost create answers, a second
client on the same account), persistence, and HTTPS. No sleeps: the sim clock is moved.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

import vidbatch
from vidbatch import facts, mp4
from vidbatch.images import to_data_url
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.sim.store import DB_NAME

from .conftest import TEST_KEY
from .helpers import t2v_manifest
from .test_sim import png

H3 = "MiniMax-H3"
IMAGE_URL = "https://example.com/still.png"
VIDEO_URL = "https://example.com/motion.mp4"
AUDIO_URL = "https://example.com/voice.mp3"
DAY = 86400.0


def text(prompt: str = "waves at sunset") -> dict[str, Any]:
    return {"type": "text", "text": prompt}


def image(role: str, url: str = IMAGE_URL) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


def body(prompt: str = "waves at sunset", *media: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A v2 create body: text-to-video at 16:9 unless media are given."""
    out: dict[str, Any] = {"model": H3, "content": [text(prompt), *media]}
    out.update({"ratio": "16:9"} if not media else {"ratio": "adaptive"})
    out.update(fields)
    return out


#: One body per mode the contract names, with the task_type the simulator gives it.
MODES = {
    "text": (body("a fox in snow"), "text_to_video"),
    "first_frame": (body("walks forward", image("first_frame", to_data_url(png(), "image/png"))), "image_to_video"),
    "last_frame": (body("arrives", image("last_frame")), "last_frame_to_video"),
    "first_last": (body("crosses", image("first_frame"), image("last_frame")), "first_last_frame_to_video"),
    "reference_images": (
        body("same character", *[image("reference_image", f"https://example.com/{i}.png") for i in range(9)]),
        "reference_to_video",
    ),
    "image_video_audio": (
        body(
            "she sings",
            image("reference_image"),
            {"type": "video_url", "video_url": {"url": VIDEO_URL}, "role": "reference_video"},
            {"type": "audio_url", "audio_url": {"url": AUDIO_URL}, "role": "reference_audio"},
        ),
        "reference_to_video",
    ),
}


class Api:
    """A v2 client in a few lines: the calls as the contract writes them."""

    def __init__(self, server: Any, key: str | None = TEST_KEY, verify: Any = True) -> None:
        self.base = server.base_url
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
        self.http.verify = verify
        if key is not None:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def create(self, request: Any) -> requests.Response:
        return self.http.post(self.base + facts.V2_PATH_CREATE, json=request, timeout=10)

    def create_id(self, request: Any) -> str:
        r = self.create(request)
        assert r.status_code == 200, r.text
        return str(r.json()["task_id"])

    def query(self, task_id: str) -> requests.Response:
        return self.http.get(f"{self.base}{facts.V2_PATH_QUERY}/{task_id}", timeout=10)

    def task(self, task_id: str) -> dict[str, Any]:
        r = self.query(task_id)
        assert r.status_code == 200, r.text
        return dict(r.json()["task"])

    def list(self, **params: Any) -> requests.Response:
        return self.http.get(self.base + facts.V2_PATH_QUERY, params=params, timeout=10)

    def listed(self, **params: Any) -> list[str]:
        r = self.list(**params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    def cancel(self, task_id: str) -> requests.Response:
        return self.http.delete(f"{self.base}{facts.V2_PATH_TASK}/{task_id}", timeout=10)

    def upload(self, data: bytes, name: str = "still.png", purpose: str = "video_generation") -> requests.Response:
        return self.http.post(
            self.base + facts.PATH_FILE_UPLOAD, files={"file": (name, data)}, data={"purpose": purpose}, timeout=10
        )

    def balance(self) -> Decimal:
        return Decimal(self.http.get(self.base + "/account/query_balance", timeout=10).json()["available_amount"])


@pytest.fixture
def slow_sim():
    """Renders take 100 s: queued for the first 50, running until 100."""
    with running_simulator(SimConfig(key=TEST_KEY, latency=100)) as server:
        yield server


def h3_price(render: Any) -> str:
    """A price for the tests: 0.13 per output second, 0.04 per reference image past the 5th."""
    assert render["usage"]["output_seconds"] == render["duration"] and render["mode"] in {m.value for m in facts.Mode}
    return str(Decimal("0.13") * render["duration"] + Decimal("0.04") * max(0, render["reference_images"] - 5))


# --- lifecycle ------------------------------------------------------------------------------------


def test_a_task_goes_queued_running_succeeded_with_the_contracts_task_shape(slow_sim):
    api = Api(slow_sim)
    task_id = api.create_id(body("a fox in snow", duration=8))
    queued = api.task(task_id)
    assert queued["status"] == "queued" and queued["id"] == task_id and queued["model"] == H3
    assert (queued["resolution"], queued["duration"], queued["ratio"]) == ("2K", 8, "16:9")
    assert queued["task_type"] == "text_to_video"
    assert queued["usage"] == {"total_seconds": 0, "input_seconds": 0, "output_seconds": 0, "input_image_count": 0}
    assert "content" not in queued and "error" not in queued
    assert queued["updated_at"] == queued["created_at"]

    slow_sim.sim.advance(60)
    running = api.task(task_id)
    assert running["status"] == "running" and running["updated_at"] == running["created_at"] + 50

    slow_sim.sim.advance(40)
    done = api.task(task_id)
    assert done["status"] == "succeeded" and done["updated_at"] == done["created_at"] + 100
    assert done["usage"] == {"total_seconds": 8, "input_seconds": 0, "output_seconds": 8, "input_image_count": 0}
    video = requests.get(done["content"]["url"], timeout=10)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    meta = mp4.read_sim_metadata(io.BytesIO(video.content))
    assert meta is not None and meta["task_id"] == task_id and meta["prompt"] == "a fox in snow"
    assert (meta["duration"], meta["resolution"], meta["api"]) == (8, "2K", "v2")


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_of_the_contract_renders(sim, mode):
    request, task_type = MODES[mode]
    api = Api(sim)
    task = api.task(api.create_id(request))
    assert task["status"] == "succeeded" and task["task_type"] == task_type
    images = sum(1 for item in request["content"] if item["type"] == "image_url")
    assert task["usage"]["input_image_count"] == images
    assert requests.get(task["content"]["url"], timeout=10).status_code == 200


def test_trigger_words_fail_or_refuse_as_in_v1(sim):
    api = Api(sim)
    failed = api.task(api.create_id(body("sim-fail please")))
    assert failed["status"] == "failed" and "content" not in failed
    assert isinstance(failed["error"]["code"], str) and "sim-fail" in failed["error"]["message"]
    assert failed["usage"]["output_seconds"] == 0  # not billed
    flagged = api.task(api.create_id(body("sim-flag-output")))
    assert flagged["status"] == "failed" and flagged["error"]["code"] == "1027"
    refused = api.create(body("sim-flag-input"))
    assert refused.status_code == 422 and refused.json()["error"]["code"] == 1026
    assert sim.sim.stats()["v2_tasks"] == 2


def test_a_task_belongs_to_the_key_that_created_it(sim):
    task_id = Api(sim).create_id(body())
    other = Api(sim, key="sk-someone-else")
    # the simulator requires TEST_KEY: any other key is refused outright
    assert other.query(task_id).status_code == 401
    with running_simulator(SimConfig()) as open_sim:  # any key: each key is its own account
        mine, theirs = Api(open_sim, key="k-one"), Api(open_sim, key="k-two")
        task_id = mine.create_id(body())
        r = theirs.query(task_id)
        assert r.status_code == 404 and r.json()["error"]["code"] == 2013
        assert theirs.cancel(task_id).status_code == 404
        assert theirs.listed() == [] and mine.listed() == [task_id]


# --- refusals ---------------------------------------------------------------------------------------

BAD_BODIES = {
    "no text": {"model": H3, "content": [image("first_frame")], "ratio": "adaptive"},
    "empty text": body("   "),
    "text too long": body("x" * (facts.V2_PROMPT_MAX_CHARS + 1)),
    "two texts": {"model": H3, "content": [text(), text()], "ratio": "16:9"},
    "adaptive text-only": body(ratio="adaptive"),
    "bad ratio": body(ratio="2:1"),
    "duration 3": body(duration=3),
    "duration 16": body(duration=16),
    "bad resolution": body(resolution="1080P"),
    "two first frames": body("x", image("first_frame"), image("first_frame")),
    "frames and references": body("x", image("first_frame"), image("reference_image")),
    "ten reference images": body("x", *[image("reference_image")] * 10),
    "audio alone": body("x", {"type": "audio_url", "audio_url": {"url": AUDIO_URL}, "role": "reference_audio"}),
    "video as first frame": body("x", {"type": "video_url", "video_url": {"url": VIDEO_URL}, "role": "first_frame"}),
    "v1 model": body(model="MiniMax-Hailuo-02"),
    "not an object": ["model", H3],
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_requests_are_refused_with_2013_and_create_nothing(sim, case):
    r = Api(sim).create(BAD_BODIES[case])
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == 2013 and error["message"].startswith("invalid params") and error["type"]
    assert "base_resp" not in r.json()
    assert sim.sim.stats()["v2_tasks"] == 0 and sim.sim.stats()["refused_creates"] == 1


def test_the_base_resp_form_answers_200_with_the_code(sim):
    with running_simulator(SimConfig(key=TEST_KEY, v2_errors="base_resp")) as server:
        api = Api(server)
        r = api.create(body(duration=3))
        assert r.status_code == 200 and r.json()["base_resp"]["status_code"] == 2013
        assert "error" not in r.json()
        ok = api.create(body())
        assert ok.json()["base_resp"]["status_code"] == 0
        missing = api.query("123")
        assert missing.status_code == 200 and missing.json()["base_resp"]["status_code"] == 2013
        assert Api(server, key=None).create(body()).json()["base_resp"]["status_code"] == 1004
        assert api.task(ok.json()["task_id"])["status"] == "succeeded"


def test_keys_are_checked_on_every_v2_call(sim):
    for api, code in ((Api(sim, key=None), 1004), (Api(sim, key="sk-wrong"), 2049)):
        for r in (api.create(body()), api.query("1"), api.list(), api.cancel("1")):
            assert r.status_code == 401 and r.json()["error"]["code"] == code
    assert sim.sim.stats()["v2_tasks"] == 0


def test_an_unknown_task_is_404_with_2013(sim):
    r = Api(sim).query("999999999999999")
    assert r.status_code == 404 and r.json()["error"]["code"] == 2013
    assert Api(sim).http.get(sim.base_url + "/v2/query/video_generation/1/2", timeout=10).status_code == 404


# --- list ---------------------------------------------------------------------------------------------


def test_list_is_newest_first_and_pages(slow_sim):
    api = Api(slow_sim)
    ids = []
    for i in range(5):
        ids.append(api.create_id(body(f"shot {i}")))
        slow_sim.sim.advance(1)
    newest_first = ids[::-1]
    assert api.listed() == newest_first
    page = api.list(page_num=2, page_size=2).json()
    assert [t["id"] for t in page["items"]] == newest_first[2:4]
    assert (page["page_num"], page["page_size"], page["total"], page["has_more"]) == (2, 2, 5, True)
    last = api.list(page_num=3, page_size=2).json()
    assert [t["id"] for t in last["items"]] == newest_first[4:] and last["has_more"] is False
    assert api.listed(page_num=4, page_size=2) == []
    # items are full TASKs
    assert api.list().json()["items"][0] == api.task(ids[-1])


def test_list_filters(slow_sim):
    api = Api(slow_sim)
    early = api.create_id(body("early"))
    slow_sim.sim.advance(60)  # early is running now
    late = api.create_id(body("late", image("first_frame")))
    assert api.listed(**{"filter.status": "queued"}) == [late]
    assert api.listed(**{"filter.status": "running"}) == [early]
    assert api.listed(**{"filter.status": "succeeded"}) == []
    assert api.listed(**{"filter.task_ids": f"{early},123"}) == [early]
    assert api.listed(**{"filter.task_ids": f"{early},{late}"}) == [late, early]
    assert api.listed(**{"filter.model": H3}) == [late, early]
    assert api.listed(**{"filter.model": "MiniMax-Hailuo-02"}) == []
    assert api.listed(**{"filter.task_type": "image_to_video"}) == [late]
    assert api.listed(**{"filter.status": "queued", "filter.task_type": "text_to_video"}) == []


def test_list_shows_only_the_last_seven_days(sim):
    api = Api(sim)
    old = api.create_id(body("old"))
    sim.sim.advance(facts.V2_LIST_DAYS * DAY - 10)
    new = api.create_id(body("new"))
    assert api.listed() == [new, old]
    sim.sim.advance(11)
    assert api.listed() == [new]
    assert api.listed(**{"filter.task_ids": old}) == []
    assert api.task(old)["status"] == "succeeded"  # still there to query by id


@pytest.mark.parametrize(
    "params", [{"page_num": 0}, {"page_size": 0}, {"page_size": 1000}, {"page_num": "x"}, {"filter.status": "done"}]
)
def test_list_refuses_bad_parameters(sim, params):
    r = Api(sim).list(**params)
    assert r.status_code == 400 and r.json()["error"]["code"] == 2013


# --- cancel, delete and billing ----------------------------------------------------------------------


def test_cancel_a_queued_task_it_is_never_billed():
    with running_simulator(SimConfig(key=TEST_KEY, latency=100, v2_price=h3_price, balance="10.00")) as server:
        api = Api(server)
        task_id = api.create_id(body("obsolete", duration=10))
        kept = api.create_id(body("kept", duration=10))
        r = api.cancel(task_id)
        assert r.status_code == 200 and r.json() == {"task_id": task_id, "status": "cancelled"}
        server.sim.advance(200)
        cancelled = api.task(task_id)
        assert cancelled["status"] == "cancelled" and "content" not in cancelled
        assert cancelled["usage"]["output_seconds"] == 0
        assert api.task(kept)["usage"]["output_seconds"] == 10
        assert api.balance() == Decimal("10.00") - Decimal("1.30")  # only the kept one was charged
        assert api.listed(**{"filter.status": "cancelled"}) == [task_id]


def test_a_running_task_cannot_be_cancelled(slow_sim):
    api = Api(slow_sim)
    task_id = api.create_id(body())
    slow_sim.sim.advance(60)
    r = api.cancel(task_id)
    assert r.status_code == 409 and r.json()["error"]["code"] == 2013 and "running" in r.json()["error"]["message"]
    slow_sim.sim.advance(40)
    assert api.task(task_id)["status"] == "succeeded"


def test_deleting_a_finished_task_removes_it_but_it_stays_billed():
    with running_simulator(SimConfig(key=TEST_KEY, v2_price=h3_price, balance="5.00")) as server:
        api = Api(server)
        task_id = api.create_id(body(duration=4))
        url = api.task(task_id)["content"]["url"]
        assert api.balance() == Decimal("4.48")
        r = api.cancel(task_id)
        assert r.status_code == 200 and r.json()["status"] == "deleted"
        assert api.query(task_id).status_code == 404
        assert api.cancel(task_id).status_code == 404
        assert api.listed() == []
        assert requests.get(url, timeout=10).status_code == 404
        assert api.balance() == Decimal("4.48")


def test_a_failed_task_is_not_billed_and_can_be_deleted():
    with running_simulator(SimConfig(key=TEST_KEY, v2_price=h3_price, balance="5.00")) as server:
        api = Api(server)
        task_id = api.create_id(body("sim-fail"))
        assert api.balance() == Decimal("5.00")
        assert api.cancel(task_id).json()["status"] == "deleted"


def test_a_create_the_balance_cannot_cover_is_refused_with_1008():
    with running_simulator(SimConfig(key=TEST_KEY, latency=100, v2_price=h3_price, balance="2.00")) as server:
        api = Api(server)
        api.create_id(body(duration=10))  # 1.30 committed while it renders
        r = api.create(body(duration=10))
        assert r.status_code == 402 and r.json()["error"]["code"] == 1008
        assert r.json()["error"]["type"] == "insufficient_balance_error"
        assert api.create(body(duration=5)).status_code == 200  # 0.65 still fits


def test_the_shipped_price_table_charges_the_balance_of_vidbatch_sim():
    from vidbatch.api import sim_v2_price

    price = sim_v2_price("global")
    with running_simulator(SimConfig(key=TEST_KEY, v2_price=price, balance="10.00")) as server:
        api = Api(server)
        api.create_id(body(duration=10))  # 2K at 0.13 USD a second, as prices.toml says
        api.create_id(MODES["reference_images"][0])  # 5 s, and 4 reference images past the 5th
        assert api.balance() == Decimal("10.00") - Decimal("1.30") - Decimal("0.65") - Decimal("0.16")
        assert api.create(body(model="MiniMax-Hailuo-02")).status_code == 400  # refused: nothing charged
        assert api.balance() == Decimal("7.89")


def test_reference_images_past_the_fifth_are_priced_by_the_given_price():
    with running_simulator(SimConfig(key=TEST_KEY, v2_price=h3_price, balance="5.00")) as server:
        api = Api(server)
        api.create_id(MODES["reference_images"][0])  # 9 images, 5 s
        assert api.balance() == Decimal("5.00") - Decimal("0.65") - Decimal("0.16")


# --- content.url ---------------------------------------------------------------------------------------


def test_content_urls_expire_and_a_new_query_gives_a_fresh_one():
    with running_simulator(SimConfig(key=TEST_KEY, url_ttl=60)) as server:
        api = Api(server)
        task_id = api.create_id(body())
        url = api.task(task_id)["content"]["url"]
        first = requests.get(url, timeout=10)
        assert first.status_code == 200
        server.sim.advance(61)
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 403 and "expired" in expired.text
        fresh = api.task(task_id)["content"]["url"]
        assert fresh != url
        again = requests.get(fresh, timeout=10)
        assert again.status_code == 200 and again.content == first.content
        forged = fresh.replace("Signature=", "Signature=0")
        assert requests.get(forged, timeout=10).status_code == 403


# --- uploads and mm_file:// ------------------------------------------------------------------------------


def test_an_uploaded_file_is_named_mm_file_for_seven_days(sim):
    api = Api(sim)
    r = api.upload(png(), "still.png")
    assert r.status_code == 200 and r.json()["base_resp"]["status_code"] == 0
    file = r.json()["file"]
    assert (file["filename"], file["bytes"], file["purpose"]) == ("still.png", len(png()), "video_generation")
    ref = f"{facts.V2_FILE_URL_SCHEME}{file['file_id']}"
    assert api.task(api.create_id(body("x", image("first_frame", ref))))["status"] == "succeeded"
    unknown = api.create(body("x", image("first_frame", f"{facts.V2_FILE_URL_SCHEME}123")))
    assert unknown.status_code == 400 and "not found" in unknown.json()["error"]["message"]
    sim.sim.advance(facts.V2_FILE_TTL_SECONDS + 1)
    assert api.create(body("x", image("first_frame", ref))).status_code == 400


def test_an_upload_of_another_account_is_not_found():
    with running_simulator(SimConfig()) as server:
        ref = f"{facts.V2_FILE_URL_SCHEME}{Api(server, key='k-one').upload(png()).json()['file']['file_id']}"
        assert Api(server, key="k-two").create(body("x", image("first_frame", ref))).status_code == 400
        assert Api(server, key="k-one").create(body("x", image("first_frame", ref))).status_code == 200


def test_an_upload_needs_a_file_and_a_purpose(sim):
    api = Api(sim)
    assert api.upload(png(), purpose="").json()["base_resp"]["status_code"] == 2013
    no_file = api.http.post(sim.base_url + facts.PATH_FILE_UPLOAD, data={"purpose": "x"}, timeout=10)
    assert no_file.json()["base_resp"]["status_code"] == 2013


# --- faults --------------------------------------------------------------------------------------------


def test_a_lost_create_answer_leaves_a_task_the_list_shows(sim):
    api = Api(sim)
    sim.sim.inject("v2_create", "drop_after_create")
    with pytest.raises(requests.ConnectionError):
        api.create(body("lost answer"))
    [task_id] = api.listed()
    assert api.task(task_id)["status"] == "succeeded"
    assert sim.sim.creates_for("lost answer") == 1


def test_a_failed_create_creates_nothing(sim):
    api = Api(sim)
    sim.sim.inject("v2_create", "http503")
    assert api.create(body()).status_code == 503
    sim.sim.inject("v2_create", "drop")
    with pytest.raises(requests.ConnectionError):
        api.create(body())
    sim.sim.inject("v2_create", "code:1002")
    r = api.create(body())
    assert r.status_code == 429 and r.json()["error"]["code"] == 1002
    sim.sim.inject("v2_create", "http429")
    r = api.create(body())
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == 1002
    assert api.listed() == [] and sim.sim.stats()["refused_creates"] == 4


def test_faults_apply_to_query_list_cancel_and_download(sim):
    api = Api(sim)
    task_id = api.create_id(body())
    sim.sim.inject("v2_query", "code:1000")
    r = api.query(task_id)
    assert r.status_code == 500 and r.json()["error"]["code"] == 1000
    sim.sim.inject("v2_list", "http500")
    assert api.list().status_code == 500
    sim.sim.inject("v2_cancel", "drop")
    with pytest.raises(requests.ConnectionError):
        api.cancel(task_id)
    assert api.task(task_id)["status"] == "succeeded"  # a dropped cancel did nothing
    url = api.task(task_id)["content"]["url"]
    whole = requests.get(url, timeout=10).content
    sim.sim.inject("v2_download", "expire")
    assert requests.get(url, timeout=10).status_code == 403
    sim.sim.inject("v2_download", "truncate", bytes=100)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10).content  # noqa: B018 (reading the body is the point)
    assert requests.get(url, timeout=10).content == whole


def test_the_faults_control_endpoint_takes_v2_calls(sim):
    r = requests.post(sim.base_url + "/_sim/faults", json={"call": "v2_create", "fault": "drop_after_create"}, timeout=10)
    assert r.status_code == 200 and r.json()["faults_pending"] == {"v2_create": 1}
    bad = requests.post(sim.base_url + "/_sim/faults", json={"call": "v2_query", "fault": "second_client"}, timeout=10)
    assert bad.status_code == 400 and "v2_create" in bad.json()["error"]


def test_lost_create_rate_loses_answers_of_tasks_that_exist():
    with running_simulator(SimConfig(key=TEST_KEY, lost_create_rate=0.5, seed=3)) as server:
        api = Api(server)
        lost = 0
        for i in range(20):
            try:
                api.create_id(body(f"shot {i}"))
            except requests.ConnectionError:
                lost += 1
        assert 3 <= lost <= 17
        assert len(api.listed()) == 20  # every create made its task


def test_a_second_client_makes_tasks_on_the_same_account(sim):
    api = Api(sim)
    mine = api.create_id(body("mine"))
    theirs = sim.sim.second_client_create(body("theirs"), key=TEST_KEY)
    r = requests.post(sim.base_url + "/_sim/second_client", json={}, timeout=10)
    assert r.status_code == 200
    assert api.listed() == [r.json()["task_id"], theirs, mine]
    # the second_client fault: a task of the other client lands just before this create's
    sim.sim.inject("v2_create", "second_client")
    created = api.create_id(body("mine again"))
    assert len(api.listed()) == 5 and api.listed()[0] == created
    # with a lost answer: two tasks of the other client, then this one, answer dropped
    sim.sim.inject("v2_create", "drop_after_create", second_client=2)
    with pytest.raises(requests.ConnectionError):
        api.create(body("lost"))
    assert len(api.listed()) == 8 and sim.sim.creates_for("lost") == 1
    assert sim.sim.stats()["v2_creates"] == 3


def test_second_client_rate(sim):
    with running_simulator(SimConfig(key=TEST_KEY, second_client_rate=1.0)) as server:
        api = Api(server)
        api.create_id(body())
        assert len(api.listed()) == 2


def test_error_rate_reaches_v2_calls():
    with running_simulator(SimConfig(key=TEST_KEY, error_rate=1.0, seed=1)) as server:
        r = Api(server).create(body())
        assert r.status_code in (500, 503)
        assert server.sim.stats()["v2_tasks"] == 0


# --- persistence ---------------------------------------------------------------------------------------


def test_v2_tasks_cancels_deletes_and_uploads_outlive_the_process(tmp_path):
    data = tmp_path / "sim"
    config = SimConfig(key=TEST_KEY, latency=100, data_dir=data)
    with running_simulator(config) as server:
        api = Api(server)
        cancelled = api.create_id(body("cancelled"))
        api.cancel(cancelled)
        rendered = api.create_id(body("rendered"))
        deleted = api.create_id(body("deleted"))
        ref = f"{facts.V2_FILE_URL_SCHEME}{api.upload(png()).json()['file']['file_id']}"
        server.sim.advance(100)
        api.cancel(deleted)
        video = requests.get(api.task(rendered)["content"]["url"], timeout=10).content
    with running_simulator(config) as server:
        api = Api(server)
        assert api.task(cancelled)["status"] == "cancelled"
        assert api.query(deleted).status_code == 404
        assert requests.get(api.task(rendered)["content"]["url"], timeout=10).content == video
        assert api.listed() == [rendered, cancelled]
        assert api.create(body("x", image("first_frame", ref))).status_code == 200


def test_a_schema_1_data_folder_gains_v2_tables(tmp_path):
    data = tmp_path / "sim"
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=data)) as server:
        r = requests.post(
            server.base_url + facts.PATH_CREATE,
            json={"model": "MiniMax-Hailuo-02", "prompt": "old"},
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=10,
        )
        v1_task = r.json()["task_id"]
    with sqlite3.connect(data / DB_NAME) as db:  # back to the first schema, v1 rows kept
        db.execute("DROP TABLE v2_tasks")
        db.execute("DROP TABLE uploads")
        db.execute("PRAGMA user_version = 1")
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=data)) as server:
        assert v1_task in server.sim.tasks
        assert Api(server).task(Api(server).create_id(body()))["status"] == "succeeded"
    with sqlite3.connect(data / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


# --- HTTPS ---------------------------------------------------------------------------------------------


def test_https_serves_v2_and_v1_with_https_download_urls(tmp_path):
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=tmp_path / "sim"), https=True) as server:
        assert server.base_url.startswith("https://") and server.ca_file is not None
        ca = str(server.ca_file)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.base_url + "/_sim/stats", timeout=10)  # not trusted without the CA
        api = Api(server, verify=ca)
        url = api.task(api.create_id(body()))["content"]["url"]
        assert url.startswith(server.base_url + "/_sim/video/")
        assert requests.get(url, verify=ca, timeout=10).status_code == 200
        s = api.http
        task_id = s.post(server.base_url + facts.PATH_CREATE, json={"model": "MiniMax-Hailuo-02", "prompt": "a"}).json()["task_id"]
        file_id = s.get(server.base_url + facts.PATH_QUERY, params={"task_id": task_id}).json()["file_id"]
        file = s.get(server.base_url + facts.PATH_RETRIEVE, params={"file_id": file_id}).json()["file"]
        assert file["download_url"].startswith("https://")
        assert requests.get(file["download_url"], verify=ca, timeout=10).status_code == 200
        ca_pem = server.ca_file.read_bytes()
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=tmp_path / "sim"), https=True) as server:
        assert server.ca_file is not None and server.ca_file.read_bytes() == ca_pem  # a restart keeps the CA
        assert requests.get(server.base_url + "/_sim/stats", verify=ca, timeout=10).status_code == 200


def test_https_survives_a_client_that_does_not_speak_tls():
    with running_simulator(SimConfig(key=TEST_KEY), https=True) as server:
        with pytest.raises(requests.ConnectionError):
            requests.get(server.base_url.replace("https://", "http://") + "/_sim/stats", timeout=10)
        assert requests.get(server.base_url + "/_sim/stats", verify=str(server.ca_file), timeout=10).ok


def test_the_sim_command_serves_https_and_says_where_the_ca_is(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidbatch", "sim", "--port", "0", "--https", "--data", str(tmp_path / "sim")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("https://127.0.0.1:")
        lines = [proc.stderr.readline() for _ in range(3)]
        ca_line = next(line for line in lines if "CA" in line)
        ca_file = tmp_path / "sim" / "tls" / "ca.pem"
        assert str(ca_file) in ca_line and "REQUESTS_CA_BUNDLE" in ca_line and "NODE_EXTRA_CA_CERTS" in ca_line
        assert requests.get(base_url + "/_sim/stats", verify=str(ca_file), timeout=10).ok
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_vidbatch_renders_over_https_through_the_python_api(tmp_path):
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest({"fox": "A fox in the snow"}))
    ws = vidbatch.load([manifest])
    with vidbatch.simulator(tmp_path / "simdata", https=True) as sim:
        assert sim.url.startswith("https://127.0.0.1:") and sim.ca_file == tmp_path / "simdata" / "tls" / "ca.pem"
        with sim.client() as client:
            result = ws.run(client, vidbatch.RunOptions(rpm=60000, poll_interval=0))
        assert result.exit_code == 0
        assert sim.server.sim.stats()["calls"]["download"] == 1
    meta = mp4.read_sim_metadata(tmp_path / "renders" / "fox.mp4")
    assert meta is not None and meta["prompt"] == "A fox in the snow"
