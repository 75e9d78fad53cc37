"""Local media work on real files: test clips encoded with PyAV, decoded back and checked by the
colour and frame number drawn into every frame (vidbatch.media.clip_marks)."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import pytest

from vidbatch import errors, media, mp4
from vidbatch.files import is_staging
from vidbatch.sim.video import clip_bytes, make_video

RED = (200, 40, 40)
GREEN = (40, 200, 40)
BLUE = (40, 40, 200)
BUNDLED = Path(media.__file__).parent / "sim" / "assets" / "clip.mp4"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clips made once for the module: two of equal parameters, one bigger and faster."""
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "red": media.make_clip(folder / "red.mp4", 2.0, 24, (320, 180), RED, "shot-01"),
        "green": media.make_clip(folder / "green.mp4", 1.0, 24, (320, 180), GREEN, "shot-02"),
        "blue": media.make_clip(folder / "blue.mp4", 1.5, 30, (640, 360), BLUE, "shot-03"),
    }
    return {name: info.path for name, info in made.items()}


def close(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    """Within a few levels: H.264 and the YUV -> RGB conversion do not keep colours exact."""
    return all(abs(a - b) <= 8 for a, b in zip(colour, expected))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG header, checked chunk by chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    assert data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- test clips ----------------------------------------------------------------------------------


def test_make_clip_writes_a_playable_h264_mp4(clips):
    info = media.probe(clips["red"], decode=True)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 320, 180)
    assert info.frames == 48 and info.duration == pytest.approx(2.0)
    assert info.fps == Fraction(24)
    assert mp4.check_mp4(clips["red"]) == []
    types = [b.type for b in mp4.read_boxes(clips["red"])]
    assert types.index("moov") < types.index("mdat")  # faststart: a browser can play it while loading
    assert not [p for p in clips["red"].parent.iterdir() if is_staging(p.name)]


def test_make_clip_refuses_an_odd_size(tmp_path):
    with pytest.raises(media.MediaError, match="even size"):
        media.make_clip(tmp_path / "clips" / "odd.mp4", size=(321, 180))
    assert not (tmp_path / "clips").exists()


# --- extracting frames ------------------------------------------------------------------------


def test_the_last_frame_extracted_is_the_last_frame(clips):
    png = media.extract_frame(clips["red"])
    assert png_size(png) == (320, 180)
    marks = media.clip_marks(png)
    assert marks.frame == 47
    assert close(marks.colour, RED)


def test_the_first_frame(clips):
    marks = media.clip_marks(media.extract_frame(clips["red"], last=False))
    assert marks.frame == 0


@pytest.mark.parametrize(
    "at, frame",
    [(0.0, 0), (1.0, 24), (0.99, 24), (1.01, 25), (1.5, 36), (1.95, 47)],
)
def test_the_frame_at_a_time_is_the_first_at_or_after_it(clips, at, frame):
    assert media.clip_marks(media.extract_frame(clips["red"], at=at)).frame == frame


@pytest.mark.parametrize("at", [1.97, 1.999])
def test_a_time_within_the_last_frame_is_the_last_frame(clips, at):
    """No frame starts at or after 1.97 s of a 2 s clip at 24 fps, but the last one (1.958 s to
    2.0 s) is shown then: that is the frame, not an error saying the clip is 2.000 s long."""
    assert media.clip_marks(media.extract_frame(clips["red"], at=at)).frame == 47


def test_frames_are_found_between_keyframes_of_a_reordered_stream(tmp_path):
    """Like a real encoder's output: a keyframe every 12 frames, B-frames (decode order is not
    display order). Every frame is found just before its start time, and the last is the last."""
    info = media.make_clip(tmp_path / "gop.mp4", 3.0, 24, (320, 180), BLUE, "gop", keyframe_every=12, b_frames=3)
    assert info.frames == 72
    found = [media.clip_marks(media.extract_frame(info.path, at=max(0.0, n / 24 - 0.01))).frame for n in range(0, 72, 5)]
    assert found == list(range(0, 72, 5))
    assert media.clip_marks(media.extract_frame(info.path)).frame == 71


def test_a_time_past_the_end_is_a_clear_error(clips):
    with pytest.raises(media.MediaError, match=r"no frame at 2.5 s; it is 2.000 s long"):
        media.extract_frame(clips["red"], at=2.5)
    with pytest.raises(media.MediaError, match="0 or more"):
        media.extract_frame(clips["red"], at=-1)


def test_extraction_gives_the_same_bytes_every_time(clips):
    """A chained shot's identity counts these bytes: an unchanged source must cost nothing."""
    assert media.extract_frame(clips["green"]) == media.extract_frame(clips["green"])


def test_png_round_trip():
    image = media.RgbImage(3, 2, bytes(range(18)))
    assert media.decode_png(media.encode_png(image)) == image


@pytest.mark.parametrize("pred", ["sub", "up", "avg", "paeth", "mixed"])
def test_png_reader_undoes_every_row_filter(clips, pred):
    """decode_png reads PNGs other encoders write (FFmpeg's, with each row filter)."""
    import av

    with av.open(str(clips["red"])) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "rgb24"
    encoder.options = {"pred": pred}
    theirs = b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))
    assert media.decode_png(theirs) == media.decode_png(media.extract_frame(clips["red"], last=False))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.mp4", b"this is not a video\n" * 10, "cannot be read as a video"),
        ("empty.mp4", b"", "cannot be read as a video"),
        ("half.mp4", clip_bytes()[:3000], "cannot be read as a video|no frames"),
    ],
)
def test_extraction_from_a_non_video_fails_cleanly(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(media.MediaError, match=message) as caught:
        media.extract_frame(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, errors.VidbatchError)
    assert caught.value.__cause__ is None  # no FFmpeg traceback chained under the message


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(media.MediaError, match="does not exist"):
        media.probe(tmp_path / "gone.mp4")


def test_a_file_without_a_video_stream_is_a_clear_error(tmp_path):
    import av

    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("aac", rate=8000)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 8000
        dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    with pytest.raises(media.MediaError, match="has no video stream"):
        media.extract_frame(path)


# --- the bundled clip and the simulator's videos ----------------------------------------------


def test_the_bundled_clip_probes_and_extracts():
    info = media.probe(BUNDLED)
    assert (info.codec, info.profile, info.pix_fmt) == ("h264", "Constrained Baseline", "yuv420p")
    assert (info.width, info.height, info.frames) == (320, 180, 48)
    assert info.duration == pytest.approx(2.0)
    assert info.extradata_sha256
    decoded = media.probe(BUNDLED, decode=True)
    assert (decoded.frames, decoded.duration) == (info.frames, pytest.approx(info.duration))
    first, last = media.extract_frame(BUNDLED, last=False), media.extract_frame(BUNDLED)
    assert png_size(first) == png_size(last) == (320, 180)
    assert first != last  # testsrc moves: the last frame is not the first one again


def test_a_simulator_video_extracts_like_its_clip(tmp_path):
    """The simulator appends a metadata box and padding after the clip; decoding ignores both."""
    plain, padded = tmp_path / "plain.mp4", tmp_path / "padded.mp4"
    plain.write_bytes(b"".join(make_video({"task_id": "t-1"}).chunks()))
    padded.write_bytes(b"".join(make_video({"task_id": "t-1"}, min_size=50_000).chunks()))
    assert padded.stat().st_size >= 50_000 > plain.stat().st_size
    assert media.extract_frame(padded) == media.extract_frame(plain)


# --- joining clips ----------------------------------------------------------------------------


def decoded(path: Path) -> media.VideoInfo:
    return media.probe(path, decode=True)


def test_clips_sharing_parameters_are_joined_without_re_encoding(clips, tmp_path):
    parts = [clips["red"], clips["green"], clips["red"]]
    out = tmp_path / "cut" / "sequence.mp4"
    result = media.concat(parts, out)
    assert result.reencoded is False and result.reason == ""
    joined = decoded(out)
    one_frame = 1 / 24
    assert joined.duration == pytest.approx(sum(decoded(p).duration for p in parts), abs=one_frame)
    assert joined.frames == 48 + 24 + 48 == result.frames
    # copied, not re-encoded: the same codec configuration as the parts
    assert joined.join_key == media.probe(clips["red"]).join_key
    assert mp4.check_mp4(out) == []
    types = [b.type for b in mp4.read_boxes(out)]
    assert types.index("moov") < types.index("mdat")
    # the timestamps run on: each part's frames are where the sum of the parts before it says
    assert media.clip_marks(media.extract_frame(out, at=1.95)).frame == 47
    at_seam = media.clip_marks(media.extract_frame(out, at=2.0))
    assert at_seam.frame == 0 and close(at_seam.colour, GREEN)
    last = media.clip_marks(media.extract_frame(out))
    assert last.frame == 47 and close(last.colour, RED)
    assert [p.name for p in out.parent.iterdir()] == ["sequence.mp4"]  # no staging file left


def test_reordered_streams_are_copied_with_continuous_timestamps(tmp_path):
    a = media.make_clip(tmp_path / "a.mp4", 1.0, 25, (320, 180), RED, "a", keyframe_every=10, b_frames=2)
    b = media.make_clip(tmp_path / "b.mp4", 0.8, 25, (320, 180), GREEN, "b", keyframe_every=10, b_frames=2)
    out = tmp_path / "ab.mp4"
    result = media.concat([a.path, b.path, a.path], out)
    assert result.reencoded is False
    joined = decoded(out)
    assert joined.frames == 25 + 20 + 25
    assert joined.duration == pytest.approx(2.8, abs=1 / 25)
    assert media.clip_marks(media.extract_frame(out, at=0.96)).frame == 24
    assert media.clip_marks(media.extract_frame(out, at=1.0)).frame == 0
    assert media.clip_marks(media.extract_frame(out, at=1.76)).frame == 19
    assert media.clip_marks(media.extract_frame(out, at=1.8)).frame == 0
    assert media.clip_marks(media.extract_frame(out)).frame == 24


def test_clips_of_different_sizes_are_re_encoded_and_still_sum(clips, tmp_path):
    parts = [clips["red"], clips["blue"], clips["green"]]
    out = tmp_path / "mixed.mp4"
    result = media.concat(parts, out)
    assert result.reencoded is True
    assert "clip 2 has width 640, clip 1 320" in result.reason
    joined = decoded(out)
    assert (joined.codec, joined.pix_fmt, joined.width, joined.height) == ("h264", "yuv420p", 320, 180)
    assert joined.duration == pytest.approx(2.0 + 1.5 + 1.0, abs=1 / 24)
    assert joined.frames == 48 + 45 + 24
    assert mp4.check_mp4(out) == []
    blue = media.clip_marks(media.extract_frame(out, at=2.0))
    assert blue.frame == 0 and close(blue.colour, BLUE)
    green = media.clip_marks(media.extract_frame(out, at=3.5))
    assert green.frame == 0 and close(green.colour, GREEN)


def test_a_bad_clip_leaves_no_output(clips, tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    bad = folder / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(media.MediaError, match="bad.mp4"):
        media.concat([clips["red"], bad], folder / "out.mp4")
    assert sorted(p.name for p in folder.iterdir()) == ["bad.mp4"]


def test_a_failed_write_names_the_output_and_leaves_nothing(clips, tmp_path, monkeypatch):
    def full_disk(dst, packets):
        raise media._WriteFailed("No space left on device")

    monkeypatch.setattr(media, "_mux", full_disk)
    folder = tmp_path / "cut"
    with pytest.raises(media.MediaError, match=r"could not write .*out.mp4: No space left on device"):
        media.concat([clips["red"], clips["green"]], folder / "out.mp4")
    assert list(folder.iterdir()) == []


def test_joining_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(media.MediaError, match="empty"):
        media.concat([], tmp_path / "out.mp4")


def test_a_join_replaces_an_older_cut(clips, tmp_path):
    out = tmp_path / "cut.mp4"
    media.concat([clips["red"]], out)
    media.concat([clips["green"], clips["green"]], out)
    assert decoded(out).frames == 48


# --- posters and contact sheets ---------------------------------------------------------------


def test_poster_is_a_frame_a_third_of_the_way_in(clips):
    png = media.poster(clips["red"])
    assert png_size(png) == (320, 180)
    assert media.clip_marks(png).frame == 16  # 2 s / 3 = 0.667 s: frame 16 starts there


def test_poster_file_is_extracted_once_per_video(clips, tmp_path, monkeypatch):
    cache = tmp_path / "posters"
    first = media.poster_file(clips["red"], cache)
    assert first.parent == cache and first.read_bytes() == media.poster(clips["red"])
    assert media.poster_file(clips["red"], cache, sha256="abc") == cache / "abc.png"  # a known hash names it
    monkeypatch.setattr(media, "poster", lambda video: pytest.fail("extracted again"))
    assert media.poster_file(clips["red"], cache) == first
    with pytest.raises(pytest.fail.Exception):
        media.poster_file(clips["green"], cache)  # another video is another poster


def test_contact_sheet_tiles_one_frame_per_video(clips):
    videos = [clips["red"], clips["blue"], clips["green"]]
    png = media.contact_sheet(videos, columns=2, thumb_width=160)
    assert png_size(png) == (2 * 160, 2 * 90)
    sheet = media.decode_png(png)
    assert close(sheet.pixel(80, 45), RED)
    assert close(sheet.pixel(160 + 80, 45), BLUE)
    assert close(sheet.pixel(80, 90 + 45), GREEN)
    assert sheet.pixel(160 + 80, 90 + 45) == (0, 0, 0)  # the empty cell


def test_contact_sheet_of_fewer_videos_than_columns_is_one_row(clips):
    assert png_size(media.contact_sheet([clips["green"]], columns=4, thumb_width=100)) == (100, 56)
