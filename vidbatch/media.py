"""Local video work: probe, extract a frame, join clips, posters and contact sheets, test clips.

Everything here runs on the FFmpeg libraries that PyAV's wheels bundle, so nothing has to be
installed system-wide and nothing shells out to an ``ffmpeg`` program (a fresh machine has none).
``av`` is imported inside the functions that use it: importing it costs about 0.2 s, and modules on
the path of ``vidbatch --help`` may import this one for its types.

Design notes:

- **Times come from timestamps, not headers.** A video's duration is the span from its first
  frame's start to its last frame's end, read from the packets' timestamps (or, with
  ``probe(decode=True)``, from the decoded frames), never the container's declared duration, which
  an encoder or an edit can leave wrong.
- **A frame is PNG bytes, exactly as decoded**: full resolution, converted to 8-bit RGB, written
  with :mod:`zlib` here (filter 0, level 6), so the same video gives the same bytes on every run
  and the bytes can count in a job's identity. PNG is lossless, so what a chained shot is given is
  the decoded frame itself.
- **Joining prefers copying.** :func:`concat` copies the compressed packets unchanged when every
  clip shares the parameters a decoder is set up with (:attr:`VideoInfo.join_key`: codec, profile,
  size, pixel format, time base, frame rate and the codec's configuration record, e.g. H.264's
  SPS/PPS); otherwise it decodes and re-encodes to H.264, letterboxing each clip into the first
  clip's size. Either way the timestamps run on without a gap or overlap, and audio is left out
  (MiniMax renders have none).
- **Every file written goes through** :func:`vidbatch.files.into_place`, so a crash leaves no
  half-written MP4 under the target's name.
- **Test clips** (:func:`make_clip`) are real H.264 (yuv420p, no B-frames, faststart) showing a
  flat colour, a label and the frame number, and the frame number again as a row of black and
  white blocks that survive compression, so a test can tell which frame of which clip it holds
  (:func:`clip_marks`).

Nothing here prints; failures raise :class:`~vidbatch.errors.MediaError` with the file named.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import MediaError
from .files import into_place, sha256_file, write_bytes

if TYPE_CHECKING:
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: x264 settings for everything encoded here: fast, visually clean, and playable everywhere
#: (yuv420p, no B-frames so decode order is display order).
_X264_OPTIONS = {"preset": "veryfast", "crf": "18", "bf": "0"}
_MP4_OPTIONS = {"movflags": "+faststart"}
#: How many frames before a wanted time to seek, to cover B-frame reordering.
_REORDER_MARGIN = 16
#: Bits of the frame counter drawn into test clips: up to 4095 frames.
COUNTER_BITS = 12


# --- what a video is -------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """One video stream as decoded. ``duration`` is seconds from the first frame's start to the
    last frame's end; ``frames`` counts the frames a decoder shows."""

    path: Path
    duration: float
    frames: int
    width: int
    height: int
    codec: str  # FFmpeg's codec name: "h264"
    profile: str | None  # "Constrained Baseline", "High"...
    pix_fmt: str | None  # "yuv420p"
    fps: Fraction | None  # average frame rate
    time_base: Fraction
    extradata_sha256: str  # the codec configuration record (H.264: SPS and PPS); "" when none

    @property
    def join_key(self) -> tuple[object, ...]:
        """Two clips whose keys are equal can be joined by copying their packets."""
        return (
            self.codec,
            self.profile,
            self.width,
            self.height,
            self.pix_fmt,
            self.time_base,
            self.fps,
            self.extradata_sha256,
        )


@dataclass(frozen=True)
class ConcatResult:
    path: Path
    reencoded: bool
    reason: str  # why it was re-encoded ("clip 2 is 640x360, clip 1 320x180"); "" when copied
    duration: float
    frames: int


@dataclass(frozen=True)
class RgbImage:
    """Packed 8-bit RGB pixels, row after row, no padding."""

    width: int
    height: int
    pixels: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]


@dataclass(frozen=True)
class ClipMarks:
    """What :func:`clip_marks` reads off a frame of a :func:`make_clip` clip."""

    colour: tuple[int, int, int]  # the background, after compression (within a few levels)
    frame: int  # the frame number drawn in


# --- reading ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(video: Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open ``video`` for decoding; turn every FFmpeg or file error inside the block into a
    :class:`MediaError` that names the file."""
    import av

    try:
        with av.open(str(video), "r") as container:
            if not container.streams.video:
                raise MediaError(f"{video} has no video stream; pass an MP4 video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield container, stream
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(f"{video} does not exist; check the path") from None
    except av.error.FFmpegError as e:
        raise MediaError(f"{video} cannot be read as a video ({e.strerror or e}); is it a complete MP4 file?") from None
    except OSError as e:
        raise MediaError(f"{video} cannot be read: {e.strerror or e}") from None


def probe(video: Path, *, decode: bool = False) -> VideoInfo:
    """What ``video`` holds. Durations and frame counts come from the packets' timestamps, which
    is fast (no decoding); ``decode=True`` decodes every frame and counts what a player shows."""
    with _reading(video) as (container, stream):
        info, _, _ = _scan(video, container, stream, decode=decode)
    return info


def _scan(
    video: Path, container: InputContainer, stream: VideoStream, *, decode: bool
) -> tuple[VideoInfo, int, int]:
    """The stream's info and its first frame's start and last frame's end, in its time base."""
    tb = stream.time_base
    if tb is None:
        raise MediaError(f"{video} has a video stream without a time base; it cannot be timed")
    step = _frame_step(stream)
    start: int | None = None
    end: int | None = None
    count = 0
    if decode:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            count += 1
            start = frame.pts if start is None else min(start, frame.pts)
            end = max(end or 0, frame.pts + (frame.duration or step))
    else:
        for packet in container.demux(stream):
            if packet.pts is None or packet.is_discard:
                continue
            count += 1
            start = packet.pts if start is None else min(start, packet.pts)
            end = max(end or 0, packet.pts + (packet.duration or step))
    if start is None or end is None:
        raise MediaError(f"{video} has a video stream with no frames")
    ctx = stream.codec_context
    extradata = ctx.extradata or b""
    info = VideoInfo(
        path=Path(video),
        duration=float((end - start) * tb),
        frames=count,
        width=ctx.width,
        height=ctx.height,
        codec=ctx.name,
        profile=ctx.profile,
        pix_fmt=ctx.pix_fmt,
        fps=stream.average_rate or stream.guessed_rate,
        time_base=tb,
        extradata_sha256=hashlib.sha256(extradata).hexdigest() if extradata else "",
    )
    return info, start, end


def _frame_step(stream: VideoStream) -> int:
    """One frame's duration in the stream's time base, for packets that do not say."""
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    tb = stream.time_base or Fraction(1, 90000)
    return max(1, round(1 / (rate * tb)))


def extract_frame(video: Path, at: float | None = None, *, last: bool = True) -> bytes:
    """One frame of ``video`` as PNG bytes, full size, RGB, exactly as decoded: with ``at``, the
    first frame that starts at or after ``at`` seconds from the video's start (a millisecond of
    slack absorbs rounding), or the last frame when ``at`` falls within it; else the last frame
    (or the first, with ``last=False``)."""
    with _reading(video) as (container, stream):
        if at is not None:
            frame = _frame_at(video, container, stream, at)
        elif last:
            frame = _last_frame(video, container, stream)
        else:
            frame = _first(video, container, stream)
        return encode_png(to_rgb(frame))


def _first(video: Path, container: InputContainer, stream: VideoStream) -> VideoFrame:
    for frame in container.decode(stream):
        return frame
    raise MediaError(f"{video} has a video stream with no frames")


def _last_frame(video: Path, container: InputContainer, stream: VideoStream) -> VideoFrame:
    # Seek to the last keyframe and decode from there: a few frames, not the whole video.
    # Without an index (or if the seek lands nowhere useful) decode from the start.
    last: VideoFrame | None = None
    if stream.duration:
        import av

        try:
            container.seek((stream.start_time or 0) + stream.duration, stream=stream, backward=True)
            for frame in container.decode(stream):
                last = _later(last, frame)
        except av.error.FFmpegError:
            last = None
        if last is not None:
            return last
        container.seek(0, stream=stream, backward=True)
    for frame in container.decode(stream):
        last = _later(last, frame)
    if last is None:
        raise MediaError(f"{video} has a video stream with no frames")
    return last


def _later(a: VideoFrame | None, b: VideoFrame) -> VideoFrame:
    """Of two frames, the one shown later (decoders give display order; this makes sure)."""
    if a is None or a.pts is None or b.pts is None or b.pts >= a.pts:
        return b
    return a


def _frame_at(video: Path, container: InputContainer, stream: VideoStream, at: float) -> VideoFrame:
    if at < 0 or not math.isfinite(at):
        raise MediaError(f"cannot take a frame of {video} at {at} s; give a time of 0 or more")
    tb = stream.time_base or Fraction(1, 90000)
    step = _frame_step(stream)
    origin = stream.start_time or 0
    target = origin + Fraction(at).limit_denominator(1_000_000) / tb
    wanted = target - Fraction(1, 1000) / tb  # a millisecond of slack for rounding in `at`
    # Seeking finds a keyframe by decode time, which runs ahead of display time when frames are
    # reordered (B-frames): seek a little early, and accept only a run of frames that began
    # before the wanted time, so no frame between it and the next keyframe is skipped.
    starts = [max(origin, int(target) - _REORDER_MARGIN * step)]
    if starts[0] > origin:
        starts.append(origin)
    seen_end = Fraction(0)
    shown: VideoFrame | None = None  # the latest frame that starts before the wanted time
    for seek_to in starts:
        container.seek(seek_to, stream=stream, backward=True)
        first = True
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            if frame.pts >= wanted:
                if first and seek_to != origin:
                    break  # landed after the wanted time: start again from the beginning
                return frame
            first = False
            shown = _later(shown, frame)
            seen_end = max(seen_end, (frame.pts - origin + (frame.duration or step)) * tb)
        else:
            break  # decoded to the end without reaching the wanted time
    if shown is not None and at < seen_end:
        return shown  # no frame starts at or after `at`, but the last one is still shown then
    raise MediaError(f"{video} has no frame at {at} s; it is {float(seen_end):.3f} s long")


def to_rgb(frame: VideoFrame, width: int | None = None, height: int | None = None) -> RgbImage:
    """A decoded frame as packed RGB, scaled to ``width`` x ``height`` when given."""
    rgb = frame.reformat(width=width, height=height, format="rgb24")
    plane = rgb.planes[0]
    data = bytes(plane)
    row = rgb.width * 3
    if plane.line_size == row:
        pixels = data[: row * rgb.height]
    else:
        pixels = b"".join(data[y * plane.line_size : y * plane.line_size + row] for y in range(rgb.height))
    return RgbImage(rgb.width, rgb.height, pixels)


def _frame_from_rgb(image: RgbImage) -> VideoFrame:
    import av

    frame = av.VideoFrame(image.width, image.height, "rgb24")
    plane = frame.planes[0]
    row = image.width * 3
    if plane.line_size == row:
        plane.update(image.pixels)
    else:  # rows padded for alignment
        pad = bytes(plane.line_size - row)
        plane.update(b"".join(image.pixels[y * row : (y + 1) * row] + pad for y in range(image.height)))
    return frame


# --- PNG ---------------------------------------------------------------------------------------


def encode_png(image: RgbImage) -> bytes:
    """8-bit RGB PNG, no filter, zlib level 6: deterministic bytes for the same pixels."""
    row = image.width * 3
    raw = b"".join(b"\x00" + image.pixels[y * row : (y + 1) * row] for y in range(image.height))
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decode_png(data: bytes) -> RgbImage:
    """Pixels of an 8-bit RGB (or RGBA, alpha dropped), non-interlaced PNG such as
    :func:`encode_png` writes; enough to check frames in tests, not a general PNG reader."""
    if not data.startswith(PNG_SIGNATURE):
        raise MediaError("not a PNG image")
    pos = len(PNG_SIGNATURE)
    idat = []
    width = height = channels = 0
    while pos + 8 <= len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour_type not in (2, 6) or interlace:
                raise MediaError("only 8-bit RGB/RGBA non-interlaced PNGs can be read here")
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        cur = _unfilter(line[0], bytearray(line[1:]), prev, channels)
        out += cur if channels == 3 else b"".join(cur[i : i + 3] for i in range(0, stride, 4))
        prev = cur
    return RgbImage(width, height, bytes(out))


def _unfilter(kind: int, cur: bytearray, prev: bytearray, bpp: int) -> bytearray:
    if kind == 0:
        return cur
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            pred = a
        elif kind == 2:
            pred = b
        elif kind == 3:
            pred = (a + b) // 2
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        else:
            raise MediaError(f"PNG row filter {kind} is not defined")
        cur[i] = (cur[i] + pred) & 0xFF
    return cur


# --- posters and contact sheets ----------------------------------------------------------------


def poster(video: Path) -> bytes:
    """A frame that stands for ``video`` (the one at a third of its length), as PNG."""
    return encode_png(to_rgb(_poster_frame(video, probe(video))))


def _poster_frame(video: Path, info: VideoInfo) -> VideoFrame:
    with _reading(video) as (container, stream):
        if info.frames > 1:
            return _frame_at(video, container, stream, info.duration / 3)
        return _first(video, container, stream)


#: The folder beside a report that keeps poster frames and contact sheets, named by content
#: (:mod:`vidbatch.report`); ``vidbatch gc`` deletes those no video or cut needs any more.
POSTERS_FOLDER = "posters"


def sheet_file_name(inputs: Sequence[str]) -> str:
    """The file name of the contact sheet of the videos of these sha256s, in order."""
    import json

    return "sheet-" + hashlib.sha256(json.dumps(list(inputs)).encode()).hexdigest()[:32] + ".png"


def poster_file(video: Path, cache_dir: Path, *, sha256: str | None = None) -> Path:
    """The poster of ``video`` as a PNG in ``cache_dir``, named by the video's SHA-256 (pass
    ``sha256`` when already known), extracted only the first time: a video's poster never changes."""
    digest = sha256 or _sha256_file(video)
    target = Path(cache_dir) / f"{digest}.png"
    if not target.is_file():
        write_bytes(target, poster(video), durable=False)  # a cache: losing it to a power cut is harmless
    return target


def _sha256_file(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        raise MediaError(f"{path} cannot be read: {e.strerror or e}") from None


def contact_sheet(videos: Sequence[Path], columns: int = 4, thumb_width: int = 240) -> bytes:
    """One frame per video (its poster frame), scaled to ``thumb_width`` and tiled left to right,
    top to bottom, ``columns`` to a row, as one PNG. Cells are as tall as the first video's
    thumbnail; a video of another shape is letterboxed into its cell on black."""
    if not videos:
        raise MediaError("a contact sheet needs at least one video")
    if columns < 1 or thumb_width < 2:
        raise MediaError("a contact sheet needs columns >= 1 and thumb_width >= 2")
    thumbs: list[RgbImage] = []
    cell_h = 0
    for video in videos:
        info = probe(video)
        if not cell_h:
            cell_h = max(2, round(thumb_width * info.height / info.width))
        w, h = _fit(info.width, info.height, thumb_width, cell_h)
        thumbs.append(to_rgb(_poster_frame(video, info), w, h))
    cols = min(columns, len(thumbs))
    rows = -(-len(thumbs) // cols)
    sheet = RgbCanvas(cols * thumb_width, rows * cell_h)
    for i, thumb in enumerate(thumbs):
        x = (i % cols) * thumb_width + (thumb_width - thumb.width) // 2
        y = (i // cols) * cell_h + (cell_h - thumb.height) // 2
        sheet.paste(thumb, x, y)
    return encode_png(sheet.image())


def _fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest size with ``width:height``'s shape inside the box."""
    scale = min(box_w / width, box_h / height)
    return max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale)))


class RgbCanvas:
    """A mutable RGB picture to paint rectangles and paste images on."""

    def __init__(self, width: int, height: int, colour: tuple[int, int, int] = (0, 0, 0)):
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(colour) * (width * height))

    def fill(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.width, x + w), min(self.height, y + h)
        if x0 >= x1 or y0 >= y1:
            return
        run = bytes(colour) * (x1 - x0)
        for row in range(y0, y1):
            i = (row * self.width + x0) * 3
            self.pixels[i : i + len(run)] = run

    def paste(self, image: RgbImage, x: int, y: int) -> None:
        row = image.width * 3
        for r in range(image.height):
            i = ((y + r) * self.width + x) * 3
            self.pixels[i : i + row] = image.pixels[r * row : (r + 1) * row]

    def image(self) -> RgbImage:
        return RgbImage(self.width, self.height, bytes(self.pixels))


# --- joining -----------------------------------------------------------------------------------


def concat(clips: Sequence[Path], out: Path) -> ConcatResult:
    """Join ``clips`` in order into one MP4 at ``out`` (faststart), copying their packets when they
    share codec parameters and re-encoding to H.264 otherwise; timestamps run on continuously."""
    import av

    if not clips:
        raise MediaError(f"nothing to join into {out}: the list of clips is empty")
    scans = []
    for clip in clips:
        with _reading(clip) as (container, stream):
            scans.append(_scan(clip, container, stream, decode=False))
    reason = _why_reencode([info for info, _, _ in scans])
    with into_place(out) as staging:
        try:
            with av.open(str(staging), "w", format="mp4", container_options=_MP4_OPTIONS) as dst:
                if reason:
                    _join_reencoding(scans, dst)
                else:
                    _join_copying(scans, dst)
        except (av.error.FFmpegError, OSError, _WriteFailed) as e:
            why = e.args[0] if isinstance(e, _WriteFailed) else (e.strerror or str(e))
            raise MediaError(f"could not write {out}: {why}; check the folder is writable and has room") from None
        joined = probe(staging)
    log.info("joined %d clips into %s (%s)", len(clips), out, f"re-encoded: {reason}" if reason else "copied")
    return ConcatResult(Path(out), bool(reason), reason, joined.duration, joined.frames)


def _why_reencode(infos: Sequence[VideoInfo]) -> str:
    """Empty when every clip can be copied; otherwise the first difference, in words."""
    first = infos[0]
    names = ("codec", "profile", "width", "height", "pixel format", "time base", "frame rate", "codec configuration")
    for n, info in enumerate(infos[1:], start=2):
        for name, a, b in zip(names, first.join_key, info.join_key):
            if a != b:
                if name == "codec configuration":
                    return f"clip {n} has another {name} than clip 1"
                return f"clip {n} has {name} {b}, clip 1 {a}"
    return ""


def _join_copying(scans: Sequence[tuple[VideoInfo, int, int]], dst: OutputContainer) -> None:
    out_stream = None
    offset = 0  # where the next clip starts, in the (shared) time base
    last_dts: int | None = None
    for info, start, end in scans:
        with _reading(info.path) as (container, stream):
            if out_stream is None:
                out_stream = dst.add_stream_from_template(stream)
            shift = offset - start
            for packet in container.demux(stream):
                if packet.pts is None or packet.is_discard:
                    continue
                packet.pts += shift
                packet.dts = (packet.dts if packet.dts is not None else packet.pts - shift) + shift
                if last_dts is not None and packet.dts <= last_dts:
                    packet.dts = last_dts + 1  # never let decode order run backwards at a seam
                last_dts = packet.dts
                packet.stream = out_stream
                _mux(dst, [packet])
        offset += end - start


def _join_reencoding(scans: Sequence[tuple[VideoInfo, int, int]], dst: OutputContainer) -> None:
    import av

    first = scans[0][0]
    width, height = first.width & ~1, first.height & ~1
    out_tb = Fraction(1, 90000)  # fine enough for clips of any frame rate to keep their timing
    out_stream = dst.add_stream("libx264", rate=first.fps or Fraction(25), options=_X264_OPTIONS)
    out_stream.width, out_stream.height, out_stream.pix_fmt = width, height, "yuv420p"
    out_stream.codec_context.time_base = out_tb
    offset = Fraction(0)  # seconds already written
    durations: dict[int, int] = {}  # pts -> duration of frames sent to the encoder
    for info, start, end in scans:
        with _reading(info.path) as (container, stream):
            tb = info.time_base
            graph = av.filter.Graph()
            graph.link_nodes(
                graph.add_buffer(template=stream),
                graph.add("scale", f"{width}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2"),
                graph.add("pad", f"{width}:{height}:(ow-iw)/2:(oh-ih)/2:black"),
                graph.add("setsar", "1"),
                graph.add("format", "yuv420p"),
                graph.add("buffersink"),
            ).configure()
            step = _frame_step(stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                seconds = offset + (frame.pts - start) * tb
                duration = (frame.duration or step) * tb
                graph.vpush(frame)
                scaled = graph.vpull()
                scaled.pts = round(seconds / out_tb)
                scaled.time_base = out_tb
                scaled.duration = round(duration / out_tb)
                durations[scaled.pts] = scaled.duration
                _mux_encoded(dst, out_stream.encode(scaled), durations)
        offset += (end - start) * tb
    _mux_encoded(dst, out_stream.encode(None), durations)


def _mux_encoded(dst: OutputContainer, packets: list[Packet[VideoStream]], durations: dict[int, int]) -> None:
    # The encoder does not always carry a frame's duration to its packet, and the muxer would then
    # guess the last frame's length from its neighbours; give every packet its frame's duration.
    for packet in packets:
        if packet.pts is not None and packet.pts in durations:
            packet.duration = durations.pop(packet.pts)
    _mux(dst, packets)


class _WriteFailed(MediaError):
    """Writing the joined file failed while a clip was open for reading; :func:`concat` names the
    output, so the message does not blame the clip."""


def _mux(dst: OutputContainer, packets: Sequence[Packet[VideoStream]]) -> None:
    import av

    try:
        dst.mux(list(packets))
    except (av.error.FFmpegError, OSError) as e:
        raise _WriteFailed(e.strerror or str(e)) from None


# --- test clips --------------------------------------------------------------------------------

# A 3x5 pixel font: 15 bits per glyph, rows top to bottom, most significant bit left.
_GLYPHS = {
    ch: int(bits.replace(" ", ""), 2)
    for ch, bits in {
        "0": "111 101 101 101 111", "1": "010 110 010 010 111", "2": "111 001 111 100 111",
        "3": "111 001 111 001 111", "4": "101 101 111 001 001", "5": "111 100 111 001 111",
        "6": "111 100 111 101 111", "7": "111 001 001 001 001", "8": "111 101 111 101 111",
        "9": "111 101 111 001 111", "A": "010 101 111 101 101", "B": "110 101 110 101 110",
        "C": "011 100 100 100 011", "D": "110 101 101 101 110", "E": "111 100 110 100 111",
        "F": "111 100 110 100 100", "G": "011 100 101 101 011", "H": "101 101 111 101 101",
        "I": "111 010 010 010 111", "J": "001 001 001 101 010", "K": "101 101 110 101 101",
        "L": "100 100 100 100 111", "M": "101 111 111 101 101", "N": "110 101 101 101 101",
        "O": "010 101 101 101 010", "P": "110 101 110 100 100", "Q": "010 101 101 110 011",
        "R": "110 101 110 101 101", "S": "011 100 010 001 110", "T": "111 010 010 010 010",
        "U": "101 101 101 101 111", "V": "101 101 101 101 010", "W": "101 101 111 111 101",
        "X": "101 101 010 101 101", "Y": "101 101 010 010 010", "Z": "111 001 010 100 111",
        "-": "000 000 111 000 000", "_": "000 000 000 000 111", ".": "000 000 000 000 010",
        "#": "101 111 101 111 101", ":": "000 010 000 010 000", "/": "001 001 010 100 100",
    }.items()
}


@dataclass(frozen=True)
class _Layout:
    """Where :func:`make_clip` draws, so :func:`clip_marks` reads the same places."""

    width: int
    height: int

    @property
    def block(self) -> int:
        return max(4, min(self.width // (COUNTER_BITS + 2), self.height // 6) // 2 * 2)

    def bit_origin(self, bit: int) -> tuple[int, int]:
        b = self.block
        return b + bit * b, self.height - 2 * b

    @property
    def colour_probe(self) -> tuple[int, int]:
        return self.width // 2, self.height // 2


def _draw_frame(layout: _Layout, colour: tuple[int, int, int], text: str, number: int, base: bytes) -> bytes:
    canvas = RgbCanvas.__new__(RgbCanvas)
    canvas.width, canvas.height, canvas.pixels = layout.width, layout.height, bytearray(base)
    b = layout.block
    for bit in range(COUNTER_BITS):
        x, y = layout.bit_origin(bit)
        on = number >> (COUNTER_BITS - 1 - bit) & 1
        canvas.fill(x, y, b, b, (255, 255, 255) if on else (0, 0, 0))
    ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)
    scale = max(1, b // 4)
    x = b
    for ch in text.upper():
        if x + 3 * scale > layout.width - b:
            break
        glyph = _GLYPHS.get(ch, 0)
        for r in range(5):
            for c in range(3):
                if glyph >> (14 - r * 3 - c) & 1:
                    canvas.fill(x + c * scale, b + r * scale, scale, scale, ink)
        x += 4 * scale
    return bytes(canvas.pixels)


def make_clip(
    path: Path,
    seconds: float = 2.0,
    fps: int = 24,
    size: tuple[int, int] = (320, 180),
    colour: tuple[int, int, int] = (40, 90, 200),
    label: str = "",
    *,
    keyframe_every: int = 0,
    b_frames: int = 0,
) -> VideoInfo:
    """Write a small, playable H.264 MP4: ``colour`` with ``label`` and the frame number drawn in
    at the top left, and the frame number as a row of blocks at the bottom (see :func:`clip_marks`).
    Width and height must be even (yuv420p). ``keyframe_every`` (frames; 0 is x264's default of
    250) and ``b_frames`` shape the stream like a real encoder's output, for tests of seeking."""
    import av

    width, height = size
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise MediaError(f"a test clip must have an even size of at least 32x32, not {width}x{height}")
    count = max(1, round(seconds * fps))
    if count >= 1 << COUNTER_BITS:
        raise MediaError(f"a test clip can have at most {(1 << COUNTER_BITS) - 1} frames")
    layout = _Layout(width, height)
    base = bytes(colour) * (width * height)
    with into_place(path) as staging:
        with av.open(str(staging), "w", format="mp4", container_options=_MP4_OPTIONS) as dst:
            options = {**_X264_OPTIONS, "bf": str(b_frames)}
            if keyframe_every:
                options.update(g=str(keyframe_every), keyint_min=str(keyframe_every), sc_threshold="0")
            stream = dst.add_stream("libx264", rate=fps, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for n in range(count):
                rgb = _draw_frame(layout, colour, f"{label} {n}".strip(), n, base)
                frame = _frame_from_rgb(RgbImage(width, height, rgb))
                frame.pts = n
                frame.time_base = Fraction(1, fps)
                dst.mux(stream.encode(frame.reformat(format="yuv420p")))
            dst.mux(stream.encode(None))
    return probe(path)


def clip_marks(png: bytes) -> ClipMarks:
    """The background colour and frame number of a frame of a :func:`make_clip` clip."""
    image = decode_png(png)
    layout = _Layout(image.width, image.height)
    number = 0
    half = layout.block // 2
    for bit in range(COUNTER_BITS):
        x, y = layout.bit_origin(bit)
        number = number << 1 | (sum(image.pixel(x + half, y + half)) > 382)
    return ClipMarks(image.pixel(*layout.colour_probe), number)
