"""The HTML report: built from a real project rendered by the simulator over real HTTP, checked as
data, as HTML (parsed, not grepped where structure matters), and in headless Chromium.

The browser tests (``-m browser``) drive Debian's ``/usr/bin/chromium`` with Playwright; under
``CI=true`` a missing Chromium or Playwright fails them instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vidbatch import project, report
from vidbatch.report import ReportWriter, build_report, highlight_prompt, human_bytes, human_seconds, relative_url, write_report
from vidbatch.runner import RunEvent
from vidbatch.errors import CallInfo, RenderFailedError
from vidbatch.state import ErrorInfo, RenderRecord, Store

from .helpers import cli, write_png

FAST = ["--poll-interval", "0", "--rpm", "6000"]  # the default 5 creates a minute would pace the sim
ESCAPE_PROMPT = '<b>&"quotes"</b> <script>alert("pwned")</script>'
FAIL_PROMPT = "A lighthouse in a storm sim-fail"
FOX_PROMPT = "[Push in] A red fox trots through fresh snow at dawn, [Pan lef] breath steaming"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(jobs: dict[str, str], *, extra: str = "") -> str:
    body = "".join(f"\n[[jobs]]\nname = {_toml_string(name)}\nprompt = {_toml_string(prompt)}\n" for name, prompt in jobs.items())
    return f'output_dir = "renders"\n\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n{body}{extra}'


JOBS = {
    "fox": FOX_PROMPT,
    "broken": FAIL_PROMPT,
    "escape": ESCAPE_PROMPT,
    "city at night #2": "Neon city at night, rain on the street [Tracking shot, Zoom in]",
}
I2V_JOB = '\n[[jobs]]\nname = "from-frame"\nfirst_frame_image = "frame.png"\nprompt = "The scene comes alive [Static shot]"\n'


@pytest.fixture
def shots(tmp_path) -> Path:
    """A project folder with a manifest (not rendered yet)."""
    folder = tmp_path / "proj"
    folder.mkdir()
    write_png(folder / "frame.png")
    path = folder / "shots.toml"
    path.write_text(manifest_text(JOBS, extra=I2V_JOB))
    return path


@pytest.fixture
def rendered(shots, sim_env) -> Path:
    """The project rendered by the simulator (``broken`` fails), then one job added that is not
    rendered yet."""
    result = cli(["run", shots, *FAST])
    assert result.exit_code == 1, result.output  # one job failed
    shots.write_text(shots.read_text() + '\n[[jobs]]\nname = "later"\nprompt = "Added after the run"\n')
    return shots


# --- a small DOM for the page -----------------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list["Node | str"] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list["Node"]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.attrs.get("class", "").split())]

    def find(self, tag: str, cls: str | None = None) -> "Node | None":
        found = self.find_all(tag, cls)
        return found[0] if found else None


VOID = {"meta", "img", "input", "br", "source", "link", "hr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root


def cards_of(page: Node) -> dict[str, Node]:
    return {c.find("h3").text(): c for c in page.find_all("article", "card")}


def report_of(manifest: Path, *args: str) -> tuple[Path, Node]:
    result = cli(["report", manifest, *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("-o") + 1]) if "-o" in args else manifest.parent / "renders" / "report.html"
    assert out.exists(), result.output
    return out, parse(out.read_text(encoding="utf-8"))


def resolve_src(report_file: Path, src: str) -> Path:
    assert not src.startswith(("/", "file:", "http:", "https:")), f"not relative: {src}"
    return (report_file.parent / urllib.parse.unquote(src)).resolve()


def failed_record(manifest: Path):
    store = Store.open_for_reading(manifest.parent / ".vidbatch")
    assert store is not None
    try:
        return next(r for r in store.all_renders() if r.name == "broken")
    finally:
        store.close()


# --- the page as HTML ---------------------------------------------------------------------------------


def test_every_job_is_on_the_page_with_its_state_and_a_playable_relative_video(rendered):
    out, page = report_of(rendered)
    cards = cards_of(page)
    assert sorted(cards) == sorted([*JOBS, "from-frame", "later"])
    states = {name: c.attrs["data-state"] for name, c in cards.items()}
    assert states == {"fox": "done", "broken": "failed", "escape": "done", "city at night #2": "done", "from-frame": "done", "later": "new"}

    for name, card in cards.items():
        video = card.find("video")
        if states[name] == "done":
            assert video is not None, name
            assert video.attrs["preload"] == "metadata" and "controls" in video.attrs
            path = resolve_src(out, video.attrs["src"])
            assert path == (rendered.parent / "renders" / f"{name}.mp4").resolve()
            assert path.is_file() and path.stat().st_size > 0
            assert card.find("dd") is not None and human_bytes(path.stat().st_size) in card.text()
        else:
            assert video is None, f"{name} has no file: it must get a placeholder, not a broken player"
            assert card.find("div", "placeholder") is not None
    # the name with a space and a '#' is percent-encoded, or the browser would cut the URL at '#'
    assert cards["city at night #2"].find("video").attrs["src"] == "city%20at%20night%20%232.mp4"
    assert "Not rendered yet" in cards["later"].text()
    # the i2v job links its input image, relatively
    img = cards["from-frame"].find("div", "inputs").find("img")
    assert resolve_src(out, img.attrs["src"]) == (rendered.parent / "frame.png").resolve()


def test_failed_job_shows_its_error_code_and_trace_id(rendered):
    record = failed_record(rendered)
    assert record.trace_id and record.error_message
    _, page = report_of(rendered)
    card = cards_of(page)["broken"]
    error = card.find("div", "error")
    assert error is not None
    headline = error.find("p", "msg").text()
    assert "simulated render failure" in headline and "call=" not in headline, "the details are apart from the headline"
    assert record.error_call == "query" and "call=query" in error.find("details").text()
    assert record.trace_id in error.text()
    assert record.task_id in card.text()
    assert card.find("span", "badge").text().strip() == "failed"


def test_prompts_are_escaped_never_markup(rendered):
    out, page = report_of(rendered)
    raw = out.read_text(encoding="utf-8")
    assert 'alert("pwned")' not in raw and "<b>&" not in raw
    assert raw.count("<script>") == 1, "the page's own script is the only script element"
    card = cards_of(page)["escape"]
    assert card.find("p", "prompt").text() == ESCAPE_PROMPT
    assert ESCAPE_PROMPT.lower() in card.attrs["data-search"]
    assert card.find("b") is None and len(page.find_all("script")) == 1


def test_camera_commands_are_highlighted_and_unknown_brackets_flagged(rendered):
    _, page = report_of(rendered)
    prompt = cards_of(page)["fox"].find("p", "prompt")
    marks = {m.text(): m.attrs for m in prompt.find_all("mark")}
    assert marks["[Push in]"]["class"] == "cam"
    assert marks["[Pan lef]"]["class"] == "cam-unknown"
    assert "Pan left" in marks["[Pan lef]"]["title"], "the likely typo comes with a suggestion"
    assert prompt.text() == FOX_PROMPT
    city = cards_of(page)["city at night #2"].find("p", "prompt").find("mark")
    assert city.attrs["class"] == "cam" and city.text() == "[Tracking shot, Zoom in]"


def test_summary_counts_states_renders_and_time(rendered):
    ws = project.load([rendered])
    store = Store.open_for_reading(ws.state_dir)
    try:
        data = build_report(ws, store, rendered.parent / "renders" / "report.html")
    finally:
        store.close()
    s = data.summary
    assert s.jobs == 6
    assert s.counts == {"done": 4, "failed": 1, "new": 1}
    assert list(s.counts) == ["done", "failed", "new"], "states are listed in a fixed order"
    assert s.renders_created == 5, "every accepted create counts, the failed render's too"
    assert s.renders_timed == 4 and s.render_seconds >= 0
    assert s.span_seconds is not None and s.span_seconds >= 0
    assert s.videos_on_disk == 4 and s.bytes_on_disk == sum(p.stat().st_size for p in (rendered.parent / "renders").glob("*.mp4"))
    _, page = report_of(rendered)
    chips = {b.attrs["data-filter-state"]: b.text() for b in page.find_all("button") if "data-filter-state" in b.attrs}
    assert chips.keys() == {"done", "failed", "new"} and "4" in chips["done"]


def test_forced_rerender_counts_as_another_render(rendered, sim_env):
    assert cli(["run", rendered, *FAST, "--force", "fox"]).exit_code == 1  # broken still failed
    ws = project.load([rendered])
    data = write_report(ws, rendered.parent / "renders" / "report.html")
    fox = next(j for j in data.jobs if j.name == "fox")
    assert fox.renders == 2 and fox.attempts == 2
    assert data.summary.renders_created == 7  # 5 first time, fox again, "later" now rendered


def test_report_before_anything_ran_shows_placeholders_and_creates_no_state(shots):
    out, page = report_of(shots)
    assert out == shots.parent / "renders" / "report.html"
    assert not (shots.parent / ".vidbatch").exists(), "a report only reads the state"
    cards = cards_of(page)
    assert len(cards) == 5
    assert not page.find_all("video")
    assert all(c.attrs["data-state"] == "new" and c.find("div", "placeholder") for c in cards.values())
    assert "Nothing has been rendered" in page.find("p", "banner").text()
    # the i2v placeholder shows its first frame
    assert cards["from-frame"].find("img", "ph-img") is not None


def test_report_written_elsewhere_links_back_and_survives_moving_the_folder(rendered, tmp_path):
    elsewhere = tmp_path / "review" / "week 1" / "index.html"
    out, page = report_of(rendered, "-o", str(elsewhere))
    assert out == elsewhere
    srcs = [v.attrs["src"] for v in page.find_all("video")]
    assert len(srcs) == 4 and all(s.startswith("../../proj/renders/") for s in srcs)
    assert all(resolve_src(out, s).is_file() for s in srcs)

    # the default report sits in the output folder: move the folder, the links still work
    default_out, _ = report_of(rendered)
    moved = shutil.move(str(rendered.parent / "renders"), str(tmp_path / "shared-renders"))
    moved_report = Path(moved) / "report.html"
    page = parse(moved_report.read_text(encoding="utf-8"))
    assert all(resolve_src(moved_report, v.attrs["src"]).is_file() for v in page.find_all("video"))


def test_several_manifests_make_one_page_with_a_section_each(rendered, tmp_path):
    other = tmp_path / "other" / "more.toml"
    other.parent.mkdir()
    other.write_text(manifest_text({"owl": "An owl at dusk [Push in]"}))
    out, page = report_of(rendered, str(other), "-o", str(tmp_path / "both.html"))
    titles = [h.text() for h in page.find_all("h2", "section-title")]
    assert len(titles) == 2 and "proj/shots.toml" in titles[0] and "other/more.toml" in titles[1]
    assert len(page.find_all("article", "card")) == 7
    assert cards_of(page)["owl"].attrs["data-state"] == "new", "the other manifest shares the first one's state folder"
    assert all(resolve_src(out, v.attrs["src"]).is_file() for v in page.find_all("video"))


def test_sim_reports_go_beside_the_sim_outputs(shots, sim_env):
    assert cli(["run", "--sim", shots, *FAST, "--sim-latency", "0"]).exit_code == 1
    result = cli(["report", "--sim", shots])
    assert result.exit_code == 0, result.output
    out = shots.parent / "renders-sim" / "report.html"
    assert "renders-sim/report.html" in result.output and "4 done, 1 failed" in result.output
    page = parse(out.read_text(encoding="utf-8"))
    assert page.find("span", "sim") is not None, "a simulated report says so"
    assert len(page.find_all("video")) == 4


def test_a_report_is_simulated_when_the_workspace_says_so(shots, tmp_path):
    # Workspace.sim decides, not the state folder's name
    real = project.load([shots])
    real.sim = True  # type: ignore[attr-defined]
    assert build_report(real, None, tmp_path / "r.html").simulated
    real.sim = False  # type: ignore[attr-defined]
    real.state_dir = real.state_dir / "sim"
    assert not build_report(real, None, tmp_path / "r.html").simulated


def test_output_holding_an_older_request_is_shown_and_labelled(rendered):
    rendered.write_text(rendered.read_text().replace("fresh snow at dawn", "fresh snow at dusk"))
    _, page = report_of(rendered)
    fox = cards_of(page)["fox"]
    assert fox.attrs["data-state"] == "new", "this request was never rendered"
    assert fox.find("video") is not None
    assert "another version" in fox.find("p", "note").text()
    assert "fresh snow at dawn" in fox.find("p", "video-prompt").text(), "the video is shown under the prompt it was rendered from"


def test_help_has_examples():
    result = cli(["report", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "vidbatch report shots.toml" in result.output and "--open" in result.output


# --- write_report and ReportWriter: what run/watch --report use ------------------------------------


def test_write_report_replaces_the_page_atomically(rendered):
    ws = project.load([rendered])
    out = rendered.parent / "renders" / "report.html"
    out.write_text("old")
    inode = out.stat().st_ino
    write_report(ws, out)
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert out.stat().st_ino != inode, "a new file renamed into place, not the old one rewritten"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == [".vidbatch-index.json"], "no temp file left behind"


def test_live_page_refreshes_only_while_jobs_are_unfinished(rendered):
    ws = project.load([rendered])
    out = rendered.parent / "renders" / "report.html"
    write_report(ws, out, refresh=3)  # "later" is new: unfinished
    page = parse(out.read_text(encoding="utf-8"))
    assert page.find("body").attrs["data-refresh"] == "3"
    assert page.find("noscript").find("meta").attrs == {"http-equiv": "refresh", "content": "3"}
    write_report(ws, out)  # the final page
    page = parse(out.read_text(encoding="utf-8"))
    assert page.find("body").attrs["data-refresh"] == "" and page.find("noscript") is None


def test_report_writer_keeps_the_page_current_during_a_real_run(shots, sim_env):
    from vidbatch.client import Client
    from vidbatch.runner import RunOptions

    from .conftest import TEST_KEY

    ws = project.load([shots])
    out = shots.parent / "renders" / "report.html"
    seen: list[int] = []

    writer = ReportWriter(ws, out, min_interval=0)

    def on_event(event: RunEvent) -> None:
        writer(event)
        if event.kind == "downloaded":
            writer.flush()  # now, whatever the throttle says
            # the page written while the run holds the state folder shows the job as done
            page = parse(out.read_text(encoding="utf-8"))
            seen.append(sum(1 for c in page.find_all("article", "card") if c.attrs["data-state"] == "done"))

    with Client(TEST_KEY, sim_env.base_url) as client:
        project.run(ws, client, RunOptions(poll_interval=0, rpm=6000), on_event=on_event)
    writer.close()
    # each page shows at least the jobs downloaded so far (a turn's downloads commit together)
    assert len(seen) == 4 and all(done >= i for i, done in enumerate(seen, 1)) and seen == sorted(seen) and seen[-1] == 4, seen
    page = parse(out.read_text(encoding="utf-8"))
    assert {c.attrs["data-state"] for c in page.find_all("article", "card")} == {"done", "failed"}
    assert page.find("body").attrs["data-refresh"] == "", "the page written at close no longer reloads"


def test_report_writer_throttles_and_never_raises(shots, tmp_path, caplog):
    ws = project.load([shots])
    now = [100.0]
    out = tmp_path / "r.html"
    writer = ReportWriter(ws, out, min_interval=5, clock=lambda: now[0])
    writer(RunEvent("submitted", "task 1"))
    writer(RunEvent("status", "Processing"))  # not a change a card shows
    writer(RunEvent("downloaded", "x"))  # within 5 s of the last write: deferred
    assert writer.writes == 1
    now[0] += 6
    writer(RunEvent("failed", "x"))
    assert writer.writes == 2
    writer(RunEvent("downloaded", "x"))
    writer.flush()
    assert writer.writes == 3

    # a slow page (many jobs) is written less often: never more than a tenth of the run's time
    ticks = iter(range(1000))
    # (and a function giving the current workspace will do, as watch mode needs)
    slow = ReportWriter(lambda: ws, out, min_interval=0, clock=lambda: float(next(ticks)))  # each write "takes" 1 s
    slow(RunEvent("downloaded", "x"))
    slow(RunEvent("downloaded", "x"))
    assert slow.writes == 1 and slow._gap == 10

    blocked = ReportWriter(ws, tmp_path / "a-file" / "r.html")
    (tmp_path / "a-file").write_text("not a folder")
    blocked(RunEvent("finish", "finished"))  # logged, not raised: a report never stops a run
    assert blocked.writes == 0 and "could not write the report" in caplog.text


def test_a_report_that_cannot_be_written_is_a_message_not_a_traceback(shots, sim_env, caplog):
    """``report -o`` under a file (or on a read-only disk) ended in a Python traceback, and so
    did each write of ``run --report`` there (logged as a bug); now: one line saying why."""
    blocked = shots.parent / "a-file"
    blocked.write_text("not a folder")
    result = cli(["report", shots, "-o", blocked / "r.html"])
    assert result.exit_code == 1
    assert f"error: could not write the report {blocked / 'r.html'}" in result.output
    assert "Traceback" not in result.output
    caplog.clear()
    writer = ReportWriter(project.load([shots]), blocked / "r.html")
    writer(RunEvent("finish", "finished"))
    assert writer.writes == 0 and "could not write the report" in caplog.text
    assert "Traceback" not in caplog.text and all(r.exc_info is None for r in caplog.records)


# --- pure helpers -----------------------------------------------------------------------------------


def test_relative_url_encodes_what_a_url_must(tmp_path):
    base = tmp_path / "a"
    assert relative_url(tmp_path / "a" / "x y#1?.mp4", base) == "x%20y%231%3F.mp4"
    assert relative_url(tmp_path / "b" / "été 100%.mp4", base) == "../b/%C3%A9t%C3%A9%20100%25.mp4"
    assert relative_url(tmp_path / "a" / "sub" / "v.mp4", base) == "sub/v.mp4"


def test_highlight_prompt_classifies_brackets():
    parts = highlight_prompt("a [Push in] b [Pan lef] c [左移,Zoom out] [] d", "MiniMax-Hailuo-02")
    kinds = [(p.text, p.kind) for p in parts if p.kind != "text"]
    assert kinds == [("[Push in]", "cam"), ("[Pan lef]", "unknown"), ("[左移,Zoom out]", "cam"), ("[]", "unknown")]
    assert "Truck left" in parts[5].note, "a Chinese command is explained in English"
    assert "".join(p.text for p in parts) == "a [Push in] b [Pan lef] c [左移,Zoom out] [] d"
    old = highlight_prompt("x [Push in]", "T2V-01")
    assert old[1].kind == "unsupported", "T2V-01 takes no camera commands: the bracket is plain text to it"


def test_an_api_error_is_shown_from_its_parts():
    exc = RenderFailedError("task 1 ended with status Fail: boom", CallInfo("query", status_code=1027, status_msg="boom", trace_id="abc"), hint="run it again")
    err = report.ReportError.from_info(ErrorInfo.from_exception(exc))
    assert (err.headline, err.hint, err.detail) == ("task 1 ended with status Fail: boom", "run it again", "call=query status_code=1027 status_msg='boom' trace_id=abc")
    assert (err.code, err.trace_id, err.call) == (1027, "abc", "query")
    plain = report.ReportError("the run stopped while this job's create call was in flight")
    assert (plain.headline, plain.hint, plain.detail) == (plain.message, None, None)


def test_an_error_recorded_before_the_parts_shows_its_whole_text():
    # rows written before migration m002 keep str(exc) in error_message and no call
    record = RenderRecord.from_row({"key": "k", "state": "failed", "error_message": "boom [call=query trace_id=abc]", "error_code": 1027, "trace_id": "abc"})
    err = report.ReportError.from_info(record.error_info)
    assert (err.headline, err.hint, err.detail, err.code) == ("boom [call=query trace_id=abc]", None, None, 1027)


def test_human_units():
    assert [human_bytes(n) for n in (0, 999, 1000, 1_536_000, 3 * 10**9)] == ["0 B", "999 B", "1.0 kB", "1.5 MB", "3.0 GB"]
    assert [human_seconds(s) for s in (None, 8.44, 42, 125, 3725, 90000)] == ["–", "8.4 s", "42 s", "2 m 05 s", "1 h 02 m", "1 d 01 h"]


def test_no_external_resources_in_the_page(rendered):
    out, page = report_of(rendered)
    raw = out.read_text(encoding="utf-8")
    assert "http://" not in raw and "https://" not in raw and "//cdn" not in raw
    assert not page.find_all("link")
    assert all("src" not in s.attrs for s in page.find_all("script"))


# --- in a real browser --------------------------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        _missing("Debian's chromium is not installed (apt-get install chromium)")
    return path  # type: ignore[return-value]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser, report_file: Path, **context):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report_file.as_uri())
    return page, errors


def _visible_names(page) -> list[str]:
    return page.eval_on_selector_all(".card:not([hidden]) h3", "els => els.map(e => e.textContent.trim())")


@pytest.mark.browser
def test_report_in_headless_chromium(rendered, browser, tmp_path):
    out, _ = report_of(rendered)
    page, errors = _open(browser, out)
    names = sorted([*JOBS, "from-frame", "later"])

    # every job is there, and the failed one's error is visible
    assert sorted(_visible_names(page)) == names
    error = page.locator("#job-2 .error")
    assert error.is_visible() and "simulated render failure" in error.inner_text()
    assert page.locator("#job-3 .prompt").inner_text() == ESCAPE_PROMPT

    # every <video> loads its file: metadata read, no media error
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)", timeout=15_000)
    videos = page.eval_on_selector_all("video", "vs => vs.map(v => ({src: v.currentSrc, ready: v.readyState, error: v.error && v.error.code, w: v.videoWidth}))")
    assert len(videos) == 4
    for v in videos:
        assert v["error"] is None and v["ready"] >= 1 and v["w"] > 0, v
        assert v["src"].startswith("file://")
        assert Path(urllib.request.url2pathname(urllib.parse.urlparse(v["src"]).path)).is_file()
    assert page.locator(".card.st-new .placeholder").is_visible()

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # state filters
    page.click("[data-filter-state=failed]")
    assert _visible_names(page) == ["broken"]
    assert page.get_attribute("[data-filter-state=failed]", "aria-pressed") == "true"
    page.click("[data-filter-state=new]")
    assert sorted(_visible_names(page)) == ["broken", "later"]
    assert "state=failed,new" in page.evaluate("location.hash")
    page.reload()  # the filter lives in the URL fragment
    assert sorted(_visible_names(page)) == ["broken", "later"]
    page.click("[data-filter-all]")
    assert sorted(_visible_names(page)) == names

    # search over name and prompt
    page.fill("#search", "fox")
    assert _visible_names(page) == ["fox"]
    page.fill("#search", "rain street")
    assert _visible_names(page) == ["city at night #2"]
    page.fill("#search", "<script>")
    assert _visible_names(page) == ["escape"]
    page.fill("#search", "nothing like this")
    assert _visible_names(page) == [] and page.locator("#no-match").is_visible()
    page.fill("#search", "")
    page.click("[data-filter-state=done]")
    page.fill("#search", "night")
    assert _visible_names(page) == ["city at night #2"]
    assert errors == []


@pytest.mark.browser
def test_report_is_readable_without_javascript(rendered, browser):
    out, _ = report_of(rendered)
    page, _ = _open(browser, out, java_script_enabled=False)
    assert len(_visible_names(page)) == 6
    assert page.locator("#job-2 .error").is_visible()
    assert not page.locator("#search").is_visible(), "controls that need the script stay hidden"
    assert page.locator("[data-filter-state=failed]").is_visible(), "the counts by state still show"


@pytest.mark.browser
def test_live_page_reloads_itself(rendered, browser):
    ws = project.load([rendered])
    out = rendered.parent / "renders" / "report.html"
    write_report(ws, out, refresh=1)
    page, errors = _open(browser, out)
    page.evaluate("window.__marker = 1")
    page.wait_for_function("window.__marker === undefined", timeout=5_000)
    assert errors == []


def test_report_never_overwrites_a_video_or_a_manifest(tmp_path, sim_env):
    manifest = tmp_path / "shots.toml"
    manifest.write_text('output_dir = "renders"\n[[jobs]]\nname = "a"\nmodel = "MiniMax-Hailuo-02"\nprompt = "A fox"\n')
    assert cli(["run", manifest, *FAST]).exit_code == 0
    video = tmp_path / "renders" / "a.mp4"
    before, text = video.read_bytes(), manifest.read_text()
    for target in (video, manifest):
        out = cli(["report", manifest, "-o", target])
        assert out.exit_code == 2, out.output
        assert "cannot be written" in out.output
    out = cli(["run", manifest, *FAST, "--report", video])
    assert out.exit_code == 2, out.output
    assert video.read_bytes() == before and manifest.read_text() == text
    assert cli(["report", manifest, "-o", tmp_path / "page.html"]).exit_code == 0
