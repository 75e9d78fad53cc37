"""MiniMax-H3 (Video Generation V2) in manifests: the V2 rules, the body a job sends, its key,
and bad H3 manifests through the real CLI (exit 2, the named field, zero API calls)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from vidbatch import facts, identity, rules
from vidbatch.manifest import load_manifest

from .helpers import cli, png, png_bytes, write

H3 = "MiniMax-H3"
U = "https://example.com/u"


def mp4_bytes(size: int = 2048) -> bytes:
    """Enough of an MP4 for the header check: an ``ftyp`` box, then filler."""
    return struct.pack(">I", 24) + b"ftypisom" + b"\0\0\0\0isomiso2" + b"\0" * max(0, size - 24)


def mp3_bytes(size: int = 1024) -> bytes:
    return b"ID3\x04\0\0\0\0\0\0" + b"\0" * max(0, size - 10)


def wav_bytes(size: int = 1024) -> bytes:
    return b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + b"\0" * max(0, size - 16)


def body(**flat) -> dict:
    return rules.v2_body({"model": H3, "prompt": "a fox", **flat})


def fields(problems) -> list[str]:
    return [p.field for p in problems]


# --- the V2 rules on the wire -------------------------------------------------------------------


def test_a_good_body_of_every_mode_passes_and_has_its_mode():
    url = "https://example.com/a.png"
    cases = {
        facts.Mode.T2V: body(ratio="16:9"),
        facts.Mode.I2V: body(first_frame_image=url),
        facts.Mode.FL2V: body(first_frame_image=url, last_frame_image=url),
        facts.Mode.LF2V: body(last_frame_image=url),
        facts.Mode.R2V: body(reference_images=[url], reference_videos=["mm_file://77"], reference_audios=["https://e.com/a.mp3"]),
    }
    for mode, b in cases.items():
        assert rules.check_v2_request(b) == [], mode
        assert rules.mode_of(b) is mode


def test_the_body_is_in_the_documented_order():
    b = body(reference_audios=["a"], reference_videos=["v"], reference_images=["i1", "i2"], duration=6)
    assert [(i["type"], i.get("role")) for i in b["content"]] == [
        ("text", None),
        ("image_url", "reference_image"),
        ("image_url", "reference_image"),
        ("video_url", "reference_video"),
        ("audio_url", "reference_audio"),
    ]
    assert b["content"][2] == {"type": "image_url", "image_url": {"url": "i2"}, "role": "reference_image"}
    assert rules.with_v2_defaults(b) == {**b, "resolution": "2K", "ratio": "adaptive"}


@pytest.mark.parametrize(
    "b, field, fragment",
    [
        (body(ratio="16:9", prompt=""), "content[0].text", "must not be empty"),
        (body(ratio="16:9", prompt="x" * 7001), "content[0].text", "at most 7000"),
        ({"model": H3, "content": [], "ratio": "16:9"}, "content", "exactly one text item"),
        (body(), "ratio", "concrete ratio"),
        (body(ratio="adaptive"), "ratio", "concrete ratio"),
        (body(ratio="5:4"), "ratio", "must be one of"),
        (body(ratio="16:9", duration=3), "duration", "4 to 15 seconds, not 3"),
        (body(ratio="16:9", duration=16), "duration", "not 16"),
        (body(ratio="16:9", resolution="1080P"), "resolution", "takes 2K, 768P, not 1080P"),
        (body(reference_images=[U] * 10), "content", "10 reference images; at most 9"),
        (body(reference_videos=[U] * 4, reference_images=[U]), "content", "4 reference videos; at most 3"),
        (body(reference_images=[U] * 7, reference_videos=[U] * 3, reference_audios=[U] * 3), "content", "13 reference items"),
        (body(first_frame_image=U, reference_images=[U]), "content", "mixes frames"),
        (body(reference_audios=[U]), "content", "no reference image or video"),
        (body(first_frame_image="ftp://x"), "content[1].image_url.url", "must be a public http(s) URL"),
        (body(first_frame_image="mm_file://"), "content[1].image_url.url", "names no file"),
        (body(ratio="16:9", callback_url="ftp://x"), "callback_url", "http"),
        ({**body(ratio="16:9"), "prompt_optimizer": True}, "prompt_optimizer", "unknown field"),
        ({**body(ratio="16:9"), "model": "MiniMax-Hailuo-02"}, "model", "served by POST /v1/video_generation"),
        ({"model": H3, "content": [{"type": "text", "text": "x"}, {"type": "video_url", "video_url": {"url": "u"}, "role": "first_frame"}]}, "content[1].role", "reference_video"),
        ({"model": H3, "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": "u"}]}, "content[1].image_url", "object"),
    ],
)
def test_each_rule_refuses_with_the_field(b, field, fragment):
    problems = rules.check_v2_request(b)
    assert problems, b
    assert any(p.field == field and fragment in p.message for p in problems), problems


def test_an_image_without_a_role_is_a_first_frame():
    b = {"model": H3, "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "https://e/a.png"}}]}
    assert rules.check_v2_request(b) == [] and rules.mode_of(b) is facts.Mode.I2V
    normal = rules.normalized_v2_body(b)
    assert normal["content"][1]["role"] == "first_frame"


def test_the_body_size_limit_and_data_url_media_checks():
    big = "data:video/mp4;base64," + "A" * (facts.V2_BODY_MAX_BYTES + 10)
    assert "body" in fields(rules.check_v2_request(body(reference_images=["https://e/a.png"], reference_videos=[big])))
    assert rules.check_v2_request(body(reference_images=["https://e/a.png"]), body_bytes=facts.V2_BODY_MAX_BYTES + 1)[0].field == "body"
    mp4 = "data:video/mp4;base64," + base64.b64encode(mp4_bytes()).decode()
    png_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    assert rules.check_v2_request(body(reference_images=[png_url], reference_videos=[mp4]), check_media=True) == []
    not_video = "data:video/mp4;base64," + base64.b64encode(b"hello there, not a video").decode()
    problems = rules.check_v2_request(body(reference_images=[png_url], reference_videos=[not_video]), check_media=True)
    assert [(p.field, p.role, p.item) for p in problems] == [("content[2].video_url.url", "reference_video", 0)]
    assert "is not a video the API takes (MP4, MOV)" in problems[0].message


def test_v1_refuses_h3_as_the_real_api_would():
    problems = rules.check_request({"model": H3, "prompt": "a fox"})
    assert fields(problems) == ["model"] and "Video Generation V2" in problems[0].message


def test_summary_counts_reference_images_for_the_price():
    s = rules.summarize({"model": H3, "prompt": "x", "reference_images": ["sha256:a"] * 7, "duration": 9})
    assert (s.model, s.mode, s.duration, s.resolution, s.extra) == (H3, facts.Mode.R2V, 9, "2K", {"reference_images": 7})


# --- identity --------------------------------------------------------------------------------------


def test_h3_keys_are_tagged_and_follow_the_contract():
    flat = {"model": H3, "prompt": "a fox", "ratio": "16:9"}
    key = identity.content_key(flat)
    assert key.startswith("vb1-v2:") and len(key) == len("vb1-v2:") + 64
    # defaults written out or not, callback or not, flat form or body: one key
    assert identity.content_key({**flat, "duration": 5, "resolution": "2K", "callback_url": "https://e/cb"}) == key
    assert identity.content_key(rules.v2_body(flat)) == key
    # anything the video depends on changes it
    assert identity.content_key({**flat, "duration": 6}) != key
    assert identity.content_key({**flat, "ratio": "9:16"}) != key
    refs = {"model": H3, "prompt": "a fox", "reference_images": ["sha256:1", "sha256:2"]}
    swapped = {**refs, "reference_images": ["sha256:2", "sha256:1"]}
    assert identity.content_key(refs) != identity.content_key(swapped)  # "image 1" means the first
    # v1 keys are unchanged by V2's arrival
    assert identity.content_key({"model": "T2V-01", "prompt": "a fox"}) == (
        "vb1:" + __import__("hashlib").sha256(identity.canonical_json(rules.normalized_request({"model": "T2V-01", "prompt": "a fox"})).encode()).hexdigest()
    )


# --- a job's body ----------------------------------------------------------------------------------


def _h3_manifest(tmp_path: Path, job: str) -> Path:
    return write(tmp_path, "h3.toml", f'output_dir = "out"\n[[jobs]]\nname = "a"\nmodel = "{H3}"\nprompt = "a fox"\n{job}\n')


def test_a_job_builds_the_exact_v2_body_with_data_urls(tmp_path):
    png(tmp_path / "a.png")
    (tmp_path / "clip.mp4").write_bytes(mp4_bytes())
    (tmp_path / "voice.mp3").write_bytes(mp3_bytes())
    path = _h3_manifest(tmp_path, 'reference_images = ["a.png", "https://e.com/b.png"]\nreference_videos = "clip.mp4"\nreference_audios = ["voice.mp3"]\nduration = 7')
    job = load_manifest(path).jobs[0]
    assert job.api is facts.Api.V2 and job.mode is facts.Mode.R2V
    assert job.v2_uploads() == []
    b = job.v2_body()
    assert job.api_request() == b
    assert rules.check_v2_request(b, check_media=True) == []
    assert [i.get("role") for i in b["content"]] == [None, "reference_image", "reference_image", "reference_video", "reference_audio"]
    assert b["content"][1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode((tmp_path / "a.png").read_bytes()).decode()
    assert b["content"][2]["image_url"]["url"] == "https://e.com/b.png"
    assert b["content"][3]["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert b["content"][4]["audio_url"]["url"].startswith("data:audio/mp3;base64,")
    assert {k: v for k, v in b.items() if k != "content"} == {"model": H3, "duration": 7, "resolution": "2K", "ratio": "adaptive"}
    assert job.key.startswith("vb1-v2:")
    # uploaded media travel as mm_file ids; the key does not change
    sha = job.media()[2].sha256
    assert job.v2_body({sha: "555"})["content"][3]["video_url"]["url"] == "mm_file://555"


def test_media_too_big_for_the_body_are_listed_for_upload(tmp_path, monkeypatch):
    (tmp_path / "clip.mp4").write_bytes(mp4_bytes(40_000))
    (tmp_path / "small.mp4").write_bytes(mp4_bytes(3_000))
    png(tmp_path / "a.png")
    path = _h3_manifest(tmp_path, 'reference_images = ["a.png"]\nreference_videos = ["small.mp4", "clip.mp4"]')
    job = load_manifest(path).jobs[0]
    monkeypatch.setattr(facts, "V2_BODY_MAX_BYTES", 30_000)
    need = job.v2_uploads()
    assert [r.path.name for r in need] == ["clip.mp4"]
    assert need[0].content() == (tmp_path / "clip.mp4").read_bytes() and need[0].upload_name() == "clip.mp4"
    with pytest.raises(Exception, match="upload clip.mp4 first"):
        job.v2_body()
    b = job.v2_body({need[0].sha256: "9"})
    assert len(json.dumps(b)) <= 30_000 and b["content"][3]["video_url"]["url"] == "mm_file://9"
    assert job.v2_uploads({need[0].sha256: "9"}) == []


# --- bad H3 manifests through the real CLI ---------------------------------------------------------

HEADER = 'output_dir = "renders"\n\n[[jobs]]\nname = "shot"\n'


def _media(folder: Path) -> None:
    """The files the cases name: good ones, and a few bad ones."""
    png(folder / "ok.png")
    png(folder / "small.png", 200, 200)
    (folder / "clip.mp4").write_bytes(mp4_bytes())
    (folder / "voice.mp3").write_bytes(mp3_bytes())
    (folder / "notes.mp4").write_text("not a video at all, just notes\n")
    with open(folder / "huge.wav", "wb") as f:  # sparse: over the 15 MB audio limit, costs no disk
        f.write(wav_bytes(64))
        f.truncate(facts.V2_MEDIA_MAX_BYTES["audio"] + 1)


def _refs(n: int, name: str = "ok.png") -> str:
    return "[" + ", ".join(f'"{name}"' for _ in range(n)) + "]"


H3_JOB = f'model = "{H3}"\nprompt = "a fox in the snow"\n'

#: (id, job lines after the name, field, message fragment). Each is one rule of the contract.
BAD_H3 = [
    ("text-only-without-ratio", H3_JOB, "ratio", "a text-only request needs a concrete ratio"),
    ("text-only-adaptive", H3_JOB + 'ratio = "adaptive"\n', "ratio", "adaptive follows an input image"),
    ("unknown-ratio", H3_JOB + 'ratio = "5:4"\n', "ratio", "must be one of adaptive, 21:9"),
    ("duration-too-short", H3_JOB + 'ratio = "16:9"\nduration = 3\n', "duration", "MiniMax-H3 takes 4 to 15 seconds, not 3"),
    ("duration-too-long", H3_JOB + 'ratio = "16:9"\nduration = 20\n', "duration", "not 20"),
    ("v1-resolution", H3_JOB + 'ratio = "16:9"\nresolution = "1080P"\n', "resolution", "takes 2K, 768P, not 1080P"),
    ("no-prompt", f'model = "{H3}"\nratio = "16:9"\n', "prompt", "is required: a MiniMax-H3 job always has a prompt"),
    ("prompt-too-long", f'model = "{H3}"\nratio = "16:9"\nprompt = "{"x" * 7001}"\n', "prompt", "is 7001 characters; the API takes at most 7000"),
    ("ten-reference-images", H3_JOB + f"reference_images = {_refs(10)}\n", "reference_images", "has 10 reference images; at most 9"),
    ("four-reference-videos", H3_JOB + f'reference_images = ["ok.png"]\nreference_videos = {_refs(4, "clip.mp4")}\n', "reference_videos", "has 4 reference videos; at most 3"),
    (
        "thirteen-references",
        H3_JOB + f'reference_images = {_refs(9)}\nreference_videos = {_refs(3, "clip.mp4")}\nreference_audios = ["voice.mp3"]\n',
        "reference_audios",
        "has 13 reference items (images, videos and audios); at most 12 in all",
    ),
    ("frames-and-references", H3_JOB + 'first_frame_image = "ok.png"\nreference_images = ["ok.png"]\n', "reference_images", "mixes frames (first frame) and references"),
    ("audio-alone", H3_JOB + 'reference_audios = ["voice.mp3"]\n', "reference_audios", "has reference audio but no reference image or video"),
    ("v1-field-on-h3", H3_JOB + 'ratio = "16:9"\nprompt_optimizer = false\n', "prompt_optimizer", "is not a field of MiniMax-H3 (Video Generation V2)"),
    ("subject-reference-on-h3", H3_JOB + 'subject_reference = "ok.png"\n', "subject_reference", "is not a field of MiniMax-H3"),
    ("ratio-on-hailuo", 'model = "MiniMax-Hailuo-02"\nprompt = "a fox"\nratio = "16:9"\n', "ratio", "is a field of Video Generation V2 (MiniMax-H3), not of MiniMax-Hailuo-02"),
    ("references-on-hailuo", 'model = "MiniMax-Hailuo-02"\nprompt = "a fox"\nreference_images = ["ok.png"]\n', "reference_images", "is a field of Video Generation V2"),
    # with no model, "not of None" hid the missing model: the message says to set it
    ("ratio-without-model", 'prompt = "a fox"\nratio = "16:9"\n', "ratio", 'and this job has no model: set model = "MiniMax-H3" on the job or in [defaults]'),
    ("video-that-is-not", H3_JOB + 'reference_images = ["ok.png"]\nreference_videos = ["notes.mp4"]\n', "reference_videos[0]", "video notes.mp4 is not a video the API takes (MP4, MOV)"),
    ("audio-too-large", H3_JOB + 'reference_images = ["ok.png"]\nreference_audios = ["huge.wav"]\n', "reference_audios[0]", "(15,728,641 bytes); an audio may be at most 15,728,640 bytes (15.0 MB)"),
    ("reference-image-too-small", H3_JOB + 'reference_images = ["ok.png", "small.png"]\n', "reference_images[1]", "is 200x200; the short side must be over 300 px"),
    ("reference-video-missing", H3_JOB + 'reference_images = ["ok.png"]\nreference_videos = ["gone.mp4"]\n', "reference_videos[0]", "video gone.mp4 not found"),
    ("reference-on-ftp", H3_JOB + 'reference_images = ["ftp://example.com/a.png"]\n', "reference_images[0]", "must be a local path, an http(s) URL or a data URL"),
    ("empty-file-id", H3_JOB + 'reference_images = ["mm_file://"]\n', "reference_images[0]", "names no file"),
    ("video-as-frame", H3_JOB + 'first_frame_image = "clip.mp4"\n', "first_frame_image", "is not a JPG, PNG or WebP image"),
]


def _bad(tmp_path: Path, lines: str) -> tuple[Path, str]:
    folder = tmp_path / "work"
    folder.mkdir()
    _media(folder)
    text = HEADER + lines
    return write(folder, "h3.toml", text), text


def _line(text: str, field: str) -> int:
    base = field.split("[")[0]
    lines = text.splitlines()
    written = [i for i, line in enumerate(lines, 1) if line.startswith(f"{base} =")]
    return written[0] if written else lines.index("[[jobs]]") + 1  # a field not written: the job's table


def _says(stderr: str, where: str, fragment: str) -> bool:
    """Some line of ``stderr`` names the place (file, line, job, field) and says ``fragment``."""
    return any(where in line and fragment in line.split(where, 1)[1] for line in stderr.splitlines())


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_bad_h3_corpus_is_large_and_each_case_its_own():
    assert len(BAD_H3) >= 15
    assert len({c[0] for c in BAD_H3}) == len({c[3] for c in BAD_H3}) == len(BAD_H3)


@pytest.mark.parametrize("case", BAD_H3, ids=lambda c: c[0])
def test_bad_h3_manifest_exits_2_naming_file_line_job_and_field(case, tmp_path, sim_env, monkeypatch):
    _, lines, field, fragment = case
    path, text = _bad(tmp_path, lines)
    monkeypatch.chdir(path.parent)
    before = _tree(path.parent)
    where = f"h3.toml:{_line(text, field)}: job shot: field {field}: "

    result = cli("validate", "h3.toml")
    assert result.exit_code == 2, result.output
    assert _says(result.stderr, where, fragment), result.stderr
    assert "Traceback" not in result.output

    # run, against a simulator that counts every call: none is made, nothing is written
    result = cli("run", "h3.toml", "--rpm", "60000", "--poll-interval", "0", "--yes")
    assert result.exit_code == 2, result.output
    assert _says(result.stderr, where, fragment)
    assert sum(sim_env.sim.calls.values()) == 0, "a bad manifest never reaches the API"

    # run --sim: the bundled simulator, started by the CLI; refused before it starts
    result = cli("run", "--sim", "h3.toml", "--rpm", "60000", "--poll-interval", "0")
    assert result.exit_code == 2, result.output
    assert _says(result.stderr, where, fragment)
    assert "Traceback" not in result.output
    assert _tree(path.parent) == before, "a bad manifest writes nothing"


def test_a_v1_only_default_is_not_sent_to_h3_jobs_and_an_h3_default_not_to_v1_jobs(tmp_path):
    png(tmp_path / "ok.png")
    path = write(
        tmp_path,
        "mixed.toml",
        '[defaults]\nprompt_optimizer = false\nratio = "9:16"\nreference_images = ["ok.png"]\n\n'
        f'[[jobs]]\nname = "h3"\nmodel = "{H3}"\nprompt = "a fox"\n\n'
        '[[jobs]]\nname = "hailuo"\nmodel = "MiniMax-Hailuo-02"\nprompt = "a fox"\n',
    )
    h3, hailuo = load_manifest(path).jobs
    assert "prompt_optimizer" not in h3.request and h3.request["ratio"] == "9:16" and h3.mode is facts.Mode.R2V
    assert hailuo.request == {"model": "MiniMax-Hailuo-02", "prompt": "a fox", "prompt_optimizer": False}
    assert hailuo.key.startswith("vb1:") and h3.key.startswith("vb1-v2:")


# --- good H3 manifests: every mode validates, renders and is priced ----------------------------------

GOOD_H3 = f"""output_dir = "renders"

[defaults]
model = "{H3}"

[[jobs]]
name = "text"
prompt = "A glide over a meadow at dawn"
ratio = "21:9"
duration = 8

[[jobs]]
name = "first"
prompt = "The meadow wakes"
first_frame_image = "a.png"

[[jobs]]
name = "first-last"
prompt = "The sun climbs"
first_frame_image = "a.png"
last_frame_image = "b.png"
resolution = "768P"
duration = 10

[[jobs]]
name = "last"
prompt = "It ends in light"
last_frame_image = "b.png"
duration = 4

[[jobs]]
name = "references"
prompt = "The woman of image 1 walks through image 2"
reference_images = ["a.png", "b.png", "https://example.com/3.png", "https://example.com/4.png", "https://example.com/5.png", "https://example.com/6.png", "https://example.com/7.png"]
duration = 6
ratio = "9:16"

[[jobs]]
name = "image-video-audio"
prompt = "She sings the song of the audio, moving as in the video"
reference_images = ["a.png"]
reference_videos = ["clip.mp4"]
reference_audios = ["voice.mp3", "https://example.com/take2.wav"]
duration = 15
"""

#: name -> (mode, content roles after the text, price USD, price CNY): per output second at the
#: resolution (2K: 0.13 USD / 0.80 CNY; 768P: 0.08 / 0.50), plus each reference image past the 5th
#: (0.04 / 0.20).
GOOD_H3_EXPECTED = {
    "text": (facts.Mode.T2V, [], "1.04", "6.40"),
    "first": (facts.Mode.I2V, ["first_frame"], "0.65", "4.00"),
    "first-last": (facts.Mode.FL2V, ["first_frame", "last_frame"], "0.80", "5.00"),
    "last": (facts.Mode.LF2V, ["last_frame"], "0.52", "3.20"),
    "references": (facts.Mode.R2V, ["reference_image"] * 7, "0.86", "5.20"),
    "image-video-audio": (facts.Mode.R2V, ["reference_image", "reference_video", "reference_audio", "reference_audio"], "1.95", "12.00"),
}


@pytest.fixture
def good_h3(tmp_path, monkeypatch):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", colour=(10, 200, 30))
    (tmp_path / "clip.mp4").write_bytes(mp4_bytes())
    (tmp_path / "voice.mp3").write_bytes(mp3_bytes())
    monkeypatch.chdir(tmp_path)
    return write(tmp_path, "h3.toml", GOOD_H3)


def test_good_h3_manifest_of_every_mode_validates(good_h3):
    result = cli("validate", "h3.toml")
    assert result.exit_code == 0, result.output
    assert "h3.toml: 6 jobs OK" in result.output
    modes = {job.name: job.mode for job in load_manifest(good_h3).jobs}
    assert modes == {name: want[0] for name, want in GOOD_H3_EXPECTED.items()}
    assert set(modes.values()) == set(facts.MODELS[H3].modes)


def test_render_shows_each_v2_body(good_h3):
    result = cli("render", "--json", "h3.toml")
    assert result.exit_code == 0, result.output
    jobs = {j["name"]: j for j in json.loads(result.stdout)["manifests"][0]["jobs"]}
    for name, (mode, roles, _, _) in GOOD_H3_EXPECTED.items():
        body = jobs[name]["body"]
        assert jobs[name]["mode"] == mode.value and jobs[name]["key"].startswith("vb1-v2:")
        assert body["content"][0] == {"type": "text", "text": jobs[name]["prompt"]}
        assert [i["role"] for i in body["content"][1:]] == roles
        assert {"model", "content", "duration", "resolution", "ratio"} <= set(body)
        assert "base64" not in json.dumps(body)  # local media by path and hash
    assert jobs["first"]["body"]["content"][1]["image_url"]["url"] == {"path": "a.png", "sha256": jobs["first"]["body"]["content"][1]["image_url"]["url"]["sha256"]}
    assert jobs["image-video-audio"]["body"]["content"][4]["audio_url"]["url"] == "https://example.com/take2.wav"
    assert (jobs["text"]["body"]["ratio"], jobs["first"]["body"]["ratio"]) == ("21:9", "adaptive")
    text = cli("render", "h3.toml").stdout
    assert "request  POST /v2/video_generation model=MiniMax-H3" in text
    assert "content  reference_video  clip.mp4 (sha256:" in text and "content  last_frame  b.png (sha256:" in text


@pytest.mark.parametrize("region, column, currency", [("global", 2, "USD"), ("mainland", 3, "CNY")])
def test_plan_prices_every_h3_job_per_second_and_per_extra_reference_image(good_h3, region, column, currency):
    from decimal import Decimal

    result = cli("plan", "--json", "--region", region, "h3.toml")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    costs = {j["name"]: j["cost"] for j in doc["jobs"]}
    for name, expected in GOOD_H3_EXPECTED.items():
        assert (costs[name]["price"], costs[name]["currency"]) == (expected[column], currency), name
    charges = {c["per"]: c["quantity"] for c in costs["references"]["charges"]}
    assert charges == {"second": 6, "reference_image": 2}
    total = sum(Decimal(e[column]) for e in GOOD_H3_EXPECTED.values())
    assert Decimal(doc["summary"]["cost"]["total"]) == total and doc["summary"]["cost"]["unpriced"] == 0
    text = cli("plan", "--region", region, "h3.toml").stdout
    assert f"1 x MiniMax-H3 r2v 2K 6s 7 reference images  {GOOD_H3_EXPECTED['references'][column]} {currency}" in text
    assert f"Total: {total} {currency}" in text


def test_the_simulator_refuses_h3_on_v1_as_the_real_api_would(sim):
    import requests

    from .conftest import TEST_KEY

    answer = requests.post(
        sim.base_url + facts.PATH_CREATE,
        json={"model": H3, "prompt": "a fox", "ratio": "16:9"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    ).json()
    assert answer["base_resp"]["status_code"] == 2013
    assert answer["base_resp"]["status_msg"].startswith("invalid params, model: MiniMax-H3 is served by Video Generation V2")
    assert "task_id" not in answer and sim.sim.stats()["tasks"] == 0


def test_the_job_cache_keeps_an_h3_job_whole(good_h3):
    from vidbatch import jobcache
    from vidbatch.manifest.model import map_images

    for job in load_manifest(good_h3).jobs:
        again = jobcache._request(json.loads(json.dumps(jobcache._request_json(job.request))))
        assert again == job.request, job.name
        assert identity.content_key(map_images(again, lambda r: r.identity())) == job.key
