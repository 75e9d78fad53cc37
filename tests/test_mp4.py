"""The MP4 structure check and the simulator's metadata box, on real files."""

from __future__ import annotations

import io
import struct

import pytest

from vidbatch import mp4
from vidbatch.sim.video import clip_bytes, make_video


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip_bytes())
    return path


def box(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def test_bundled_clip_is_a_valid_mp4(clip):
    assert mp4.check_mp4(clip) == []
    types = [b.type for b in mp4.read_boxes(clip)]
    assert types[0] == "ftyp"
    assert {"moov", "mdat"} <= set(types)
    # faststart: the index comes before the media
    assert types.index("moov") < types.index("mdat")


def test_box_sizes_add_up_to_the_file(clip):
    boxes = list(mp4.read_boxes(clip))
    assert boxes[0].offset == 0
    assert all(a.end == b.offset for a, b in zip(boxes, boxes[1:]))
    assert boxes[-1].end == clip.stat().st_size


def test_truncated_file_fails(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) - 100])
    problems = mp4.check_mp4(cut)
    assert len(problems) == 1
    assert "truncated" in problems[0] and "'mdat'" in problems[0]


def test_garbage_appended_fails(clip, tmp_path):
    for tail in (b"xyz", b"<html>oops</html>\n" * 10):
        extra = tmp_path / "extra.mp4"
        extra.write_bytes(clip.read_bytes() + tail)
        problems = mp4.check_mp4(extra)
        assert problems, tail
        assert len(problems) == 1 and "appended" in problems[0]


def test_non_mp4_fails(tmp_path):
    page = tmp_path / "page.mp4"
    page.write_bytes(b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>')
    problems = mp4.check_mp4(page)
    assert problems == [problems[0]] and "not an MP4 file" in problems[0]


@pytest.mark.parametrize("content,expected", [(b"", "empty"), (b"abc", "too short")])
def test_empty_and_tiny_files_fail(tmp_path, content, expected):
    path = tmp_path / "tiny.mp4"
    path.write_bytes(content)
    assert expected in mp4.check_mp4(path)[0]


def test_missing_moov_fails(tmp_path):
    path = tmp_path / "nomoov.mp4"
    path.write_bytes(box(b"ftyp", b"isom\0\0\2\0isom") + box(b"mdat", b"\0" * 32))
    assert mp4.check_mp4(path) == ["no 'moov' box (the index): incomplete MP4"]


def test_file_object_and_64_bit_sizes():
    body = b"\0" * 40
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + len(body)) + body
    data = box(b"ftyp", b"isom\0\0\2\0") + box(b"moov", b"\0" * 8) + large
    f = io.BytesIO(data)
    assert mp4.check_mp4(f) == []
    last = list(mp4.read_boxes(f))[-1]
    assert (last.type, last.header_size, last.end) == ("mdat", 16, len(data))


def test_huge_sparse_file_is_checked_without_reading_it(tmp_path):
    """check_mp4 seeks over bodies: a 5 GB file (sparse on disk) is checked in a few reads."""
    path = tmp_path / "huge.mp4"
    head = clip_bytes()
    pad = 5 * 1024**3
    with open(path, "wb") as f:
        f.write(head + mp4.free_box_header(pad))
        f.truncate(len(head) + pad)
    assert mp4.check_mp4(path) == []
    assert list(mp4.read_boxes(path))[-1].size == pad


def test_sim_metadata_round_trip(tmp_path):
    meta = {"task_id": "1", "file_id": "2", "model": "T2V-01", "prompt": "ünï", "resolution": "720P", "duration": 6}
    video = make_video(meta, min_size=50_000)
    path = tmp_path / "v.mp4"
    path.write_bytes(b"".join(video.chunks()))
    assert path.stat().st_size == video.size == 50_000
    assert mp4.check_mp4(path) == []
    assert mp4.read_sim_metadata(path) == meta


def test_no_sim_metadata_in_a_plain_clip(clip):
    assert mp4.read_sim_metadata(clip) is None
