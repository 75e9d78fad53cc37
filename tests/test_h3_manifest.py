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

from .helpers import png, png_bytes, write

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
