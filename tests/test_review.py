"""`vidbatch review`: the report served on loopback with pick and reject buttons (issue 14).

A project with a three-take shot is rendered by the simulator over real HTTP; the review server
runs on a free loopback port; requests are real HTTP (urllib) and, in the browser test, clicks in
headless Chromium. The static report shows the picks too."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from vidbatch import picks, project
from vidbatch.review import ReviewServer

from .helpers import cli, write
from .test_report import _open, browser, parse  # noqa: F401  (browser is a fixture)

FAST = ["--rpm", "60000", "--poll-interval", "0"]

MANIFEST = """\
output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "shot-01"
prompt = "A fox in the snow"
takes = 3

[[jobs]]
name = "shot-02"
prompt = "A hare at dusk"
"""


@pytest.fixture
def rendered(tmp_path, sim_env) -> Path:
    path = write(tmp_path, "shots.toml", MANIFEST)
    result = cli("run", path, *FAST)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def server(rendered):
    with ReviewServer(project.load([rendered])) as s:
        yield s


def post(server: ReviewServer, doc, *, token: str | None = "ok", host: str | None = None, content_type: str = "application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["X-Vidbatch-Token"] = server.token if token == "ok" else token
    if host is not None:
        headers["Host"] = host
    conn.request("POST", "/decide", body=json.dumps(doc).encode(), headers=headers)
    reply = conn.getresponse()
    body = json.loads(reply.read() or b"{}")
    conn.close()
    return reply.status, body


def get(server: ReviewServer, path: str, *, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Host": host} if host else {})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, data


def decision(shot="shot-01", take=2, what="pick", video=None):
    return {"manifest": "shots.toml", "shot": shot, "take": take, "decision": what, "video": video}


def shown(server: ReviewServer) -> dict[tuple[str, int], str | None]:
    """The video each card of the page shows, by (shot, take): what its decisions send."""
    status, body = get(server, "/")
    assert status == 200
    return {(c.attrs["data-shot"], int(c.attrs["data-take"])): c.attrs.get("data-video") for c in parse(body.decode()).find_all("article", "card")}


def test_the_page_has_buttons_for_the_takes_of_a_shot_with_several(server):
    status, body = get(server, "/")
    assert status == 200
    page = parse(body.decode())
    cards = {(c.attrs["data-shot"], int(c.attrs["data-take"])): c for c in page.find_all("article", "card")}
    assert set(cards) == {("shot-01", 1), ("shot-01", 2), ("shot-01", 3), ("shot-02", 1)}
    assert [b.attrs["data-decide"] for b in cards[("shot-01", 2)].find_all("button")] == ["pick", "reject"]
    assert cards[("shot-02", 1)].find_all("button") == []  # one take: nothing to pick
    assert server.token in body.decode()


def test_a_decision_with_the_token_writes_the_picks_file(server, rendered):
    videos = shown(server)
    status, body = post(server, decision("shot-01", 2, "pick", videos[("shot-01", 2)]))
    assert status == 200, body
    assert body == {"shot": "shot-01", "chosen": 2, "rejected": []}
    assert post(server, decision("shot-01", 3, "reject", videos[("shot-01", 3)]))[0] == 200
    p = picks.load(rendered)
    assert (p.picked("shot-01"), p.rejected("shot-01")) == (2, {3})
    assert picks.picks_path(rendered).read_text().count("pick = 2") == 1


def test_a_pick_records_the_video_the_page_showed_and_refuses_one_rendered_again_since(server, rendered):
    take2 = rendered.parent / "renders" / "shot-01.take2.mp4"
    videos = shown(server)
    assert videos[("shot-01", 2)] == hashlib.sha256(take2.read_bytes()).hexdigest()
    result = cli("run", rendered, *FAST, "--force", "shot-01.take2")  # a run renders it again after the page loaded
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(take2.read_bytes()).hexdigest() != videos[("shot-01", 2)]

    for what in ("pick", "reject"):
        status, body = post(server, decision("shot-01", 2, what, videos[("shot-01", 2)]))
        assert status == 409, body
        assert "take 2 of shot-01 was rendered again since it was shown" in body["error"] and "reload the page" in body["error"]
    assert not picks.picks_path(rendered).exists()  # nobody saw the new render: nothing recorded

    now = shown(server)[("shot-01", 2)]  # reloaded: the page shows the new render
    assert now == hashlib.sha256(take2.read_bytes()).hexdigest()
    assert post(server, decision("shot-01", 2, "pick", now))[0] == 200
    assert picks.load(rendered).shots["shot-01"].video == now
    assert post(server, decision("shot-01", 2, "clear", videos[("shot-01", 2)]))[0] == 200  # clearing forgets: no video to check


@pytest.mark.parametrize("token, host, content_type, expected", [
    (None, None, "application/json", 403),  # no token: a page that does not know it
    ("guess", None, "application/json", 403),
    ("ok", "evil.example:80", "application/json", 403),  # DNS rebinding: another name for us
    ("ok", None, "text/plain", 415),  # a cross-site form cannot send JSON with a header anyway
])
def test_writes_without_this_sessions_token_are_refused(server, rendered, token, host, content_type, expected):
    status, body = post(server, decision(), token=token, host=host, content_type=content_type)
    assert status == expected and "error" in body
    assert not picks.picks_path(rendered).exists()


@pytest.mark.parametrize("doc, words", [
    (decision("shot-9"), "no shot shot-9"),
    (decision(take=7), "shot-01 has takes 1-3"),
    (decision(what="delete"), "pick, reject or clear"),
    ({**decision(), "manifest": "other.toml"}, "no manifest"),
    ({"shot": 1}, "expected shot"),
    ({k: v for k, v in decision().items() if k != "video"}, "expected video"),  # a page from before
    (decision(video="sha256:" + "0" * 64), "expected video"),
])
def test_bad_decisions_are_400_and_change_nothing(server, rendered, doc, words):
    status, body = post(server, doc)
    assert status == 400 and words in body["error"]
    assert not picks.picks_path(rendered).exists()


def test_only_the_page_and_the_files_it_shows_are_served(server, rendered):
    status, video = get(server, "/renders/shot-01.take2.mp4")
    assert status == 200 and video == (rendered.parent / "renders" / "shot-01.take2.mp4").read_bytes()
    for path in ("/shots.toml", "/renders/../shots.toml", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/.vidbatch/state.db"):
        assert get(server, path)[0] == 404, path
    assert get(server, "/", host="attacker.example")[0] == 403


CHAINED = MANIFEST + """
[[jobs]]
name = "shot-03"
first_frame_image = "frame:shot-02"
prompt = "The hare runs on"

[[sequences]]
name = "film"
shots = ["shot-02", "shot-03"]
"""


def test_the_cut_posters_contact_sheet_and_chained_frames_the_page_shows_are_served(tmp_path, sim_env):
    path = write(tmp_path, "shots.toml", CHAINED)
    result = cli("run", path, *FAST)
    assert result.exit_code == 0, result.output
    with ReviewServer(project.load([path])) as server:
        status, body = get(server, "/")
        assert status == 200
        page = parse(body.decode())
        shown = [e.attrs[a] for e in page.find_all("video") + page.find_all("img") for a in ("src", "poster") if e.attrs.get(a)]
        assert any("film.mp4" in s for s in shown) and any("sheet-" in s for s in shown) and any("frames/" in s for s in shown)
        for src in shown:
            assert get(server, "/" + src)[0] == 200, src
        assert get(server, "/posters/" + "0" * 64 + ".png")[0] == 404  # only what the page shows


def test_a_client_that_goes_away_mid_answer_prints_no_traceback(server, rendered, capfd):
    for path in ("/", "/renders/shot-01.take2.mp4"):  # a browser aborts video loads all the time
        conn = socket.create_connection(("127.0.0.1", server.port))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        conn.close()
    time.sleep(1.5)  # the page takes a moment to build: the answer then meets the reset
    assert get(server, "/")[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


def test_a_port_in_use_is_a_clear_usage_error(server, rendered):
    result = cli("review", rendered, "--port", server.port)
    assert result.exit_code == 2, result.output
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.output and "--port" in result.output


def test_decisions_posted_at_once_are_all_kept(tmp_path):
    shots = [f"s{i}" for i in range(1, 11)]
    path = write(tmp_path, "shots.toml", MANIFEST.replace('name = "shot-01"', 'name = "s{{ i }}"\nmatrix = { i = [%s] }' % ", ".join(s[1:] for s in shots)))
    statuses: list[int] = []
    with ReviewServer(project.load([path])) as server:
        threads = [threading.Thread(target=lambda shot=shot: statuses.append(post(server, decision(shot, 2))[0])) for shot in shots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == [200] * len(shots)
    chosen = picks.load(path)
    assert [s for s in shots if chosen.picked(s) != 2] == [], "each click read the file before another's write landed"


def test_the_server_listens_on_loopback_only(server):
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/"


def test_the_static_report_shows_the_picks(rendered):
    picks.decide(rendered, project.load([rendered]).jobs, "shot-01", 3, picks.Decision.PICK)
    picks.decide(rendered, project.load([rendered]).jobs, "shot-01", 1, picks.Decision.REJECT)
    result = cli("report", rendered)
    assert result.exit_code == 0, result.output
    page = parse((rendered.parent / "renders" / "report.html").read_text())
    cards = {c.attrs["id"]: c for c in page.find_all("article", "card")}
    by_take = {int(c.attrs["data-take"]): c for c in cards.values() if c.attrs["data-shot"] == "shot-01"}
    assert by_take[3].attrs.get("data-pick") == "picked" and by_take[1].attrs.get("data-pick") == "rejected"
    assert "data-pick" not in by_take[2].attrs
    assert "take 3 of 3" in by_take[3].find("p", "take").text()
    assert not any("data-decide" in b.attrs for b in page.find_all("button"))  # buttons only under review


def test_status_and_the_report_show_a_pick_whose_take_rendered_again_as_stale(rendered):
    assert cli("pick", rendered, "shot-01", "2").exit_code == 0

    def shown_pick() -> tuple[str, str, dict]:
        status = cli("status", rendered)
        assert status.exit_code == 0, status.output
        assert cli("report", rendered).exit_code == 0
        card = next(c for c in parse((rendered.parent / "renders" / "report.html").read_text()).find_all("article", "card") if c.attrs["data-take"] == "2" and c.attrs["data-shot"] == "shot-01")
        doc = json.loads(cli("status", "--json", rendered).output)
        return status.output, card, next(j for j in doc["jobs"] if j["name"] == "shot-01.take2")

    output, card, job = shown_pick()
    assert "2 done (picked), 3 done\n" in output and "pick again" not in output
    assert card.attrs["data-pick"] == "picked" and "pick again" not in card.find("p", "take").text()
    assert (job["pick"], job["pick_stale"]) == ("picked", None)

    assert cli("run", rendered, *FAST, "--force", "shot-01.take2").exit_code == 0  # the picked render is replaced
    output, card, job = shown_pick()
    assert "2 done (picked, stale), 3 done; picked take 2 was rendered again since it was picked: pick again (vidbatch pick)" in output
    assert card.attrs["data-pick"] == "stale" and "pick-stale" in card.attrs["class"]
    assert "picked take 2 was rendered again since it was picked: pick again" in card.find("p", "take").text()
    assert (job["pick"], job["pick_stale"]) == ("picked", "picked take 2 was rendered again since it was picked")
    with ReviewServer(project.load([rendered])) as server:  # the review page offers to pick it again
        page = parse(get(server, "/")[1].decode())
        card = next(c for c in page.find_all("article", "card") if c.attrs["data-take"] == "2" and c.attrs["data-shot"] == "shot-01")
        assert [b.attrs["data-decide"] for b in card.find_all("button")] == ["pick", "reject", "clear"]

    assert cli("pick", rendered, "shot-01", "2").exit_code == 0  # picked again: it stands
    output, card, job = shown_pick()
    assert "2 done (picked), 3 done\n" in output and card.attrs["data-pick"] == "picked" and job["pick_stale"] is None


def test_review_help_has_examples():
    result = cli("review", "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "127.0.0.1" in result.output


@pytest.mark.browser
def test_pick_and_reject_buttons_work_in_a_real_browser(server, rendered, browser):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    take2 = 'article[data-shot="shot-01"][data-take="2"]'
    take1 = 'article[data-shot="shot-01"][data-take="1"]'

    with page.expect_navigation():  # the page reloads once the file is written
        page.click(f"{take2} [data-decide=pick]")
    assert picks.load(rendered).picked("shot-01") == 2
    assert '["shot-01"]\npick = 2' in picks.picks_path(rendered).read_text()
    page.reload()
    assert page.get_attribute(take2, "data-pick") == "picked"
    assert "picked" in page.locator(f"{take2} .take").inner_text().lower()
    assert page.locator(f"{take2} [data-decide=pick]").count() == 0  # already the pick

    with page.expect_navigation():
        page.click(f"{take1} [data-decide=reject]")
    assert picks.load(rendered).rejected("shot-01") == {1}
    page.reload()
    assert page.get_attribute(take1, "data-pick") == "rejected"

    with page.expect_navigation():
        page.click(f"{take2} [data-decide=clear]")
    assert picks.load(rendered).picked("shot-01") is None
    page.reload()
    assert page.get_attribute(take2, "data-pick") is None

    # a take rendered again after the page loaded is not picked: the page says so, and reloads
    take3 = 'article[data-shot="shot-01"][data-take="3"]'
    result = cli("run", rendered, *FAST, "--force", "shot-01.take3")
    assert result.exit_code == 0, result.output
    messages: list[str] = []

    def answer(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    with page.expect_navigation():
        page.click(f"{take3} [data-decide=pick]")
    assert len(messages) == 1 and "take 3 of shot-01 was rendered again" in messages[0] and "Reload" in messages[0]
    assert picks.load(rendered).picked("shot-01") is None
    with page.expect_navigation():
        page.click(f"{take3} [data-decide=pick]")
    assert picks.load(rendered).shots["shot-01"].video == hashlib.sha256((rendered.parent / "renders" / "shot-01.take3.mp4").read_bytes()).hexdigest()
    assert len(messages) == 1

    # the videos the page shows come from the server, and play
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)", timeout=15_000)
    assert page.eval_on_selector_all("video", "vs => vs.filter(v => v.error || !v.videoWidth).length") == 0
    assert errors == []
    ctx.close()

