"""The videos the simulator serves: a small real H.264 clip per task, whose frames differ by task.

Each task's file is::

    clip.mp4 | uuid box with the task's JSON metadata | optional 'free' box of zeros

The metadata box and the padding are top-level boxes appended after the clip's last box, so no
offset inside the clip changes and every player still plays it, while the file names its task
(:func:`vidbatch.mp4.read_sim_metadata`). The padding (``SimConfig.video_bytes``) lets memory
benchmarks download large files; it is never held in memory, only streamed.

The clip: with PyAV installed (a dependency of vidbatch; its wheels bundle FFmpeg and
libx264, no ffmpeg on the machine needed) each task gets its own clip, 640x360, 2 s at 12 fps,
H.264 constrained baseline, yuv420p, faststart, a few KB: a background colour drawn from the
task id, the task id's last digits, a frame counter and a bar that moves, so a chain of renders
or a contact sheet shows which task and which frame is which. 640x360 because a chained shot
sends a frame of its source's video as an image, and MiniMax takes images whose short side is
over 300 px (a 320x180 frame would be refused). Encoding takes a few tens of
milliseconds, once per task: the simulator caches the result (in memory, and on disk in its data
folder, so a file served again by a later process is byte for byte the one served before).

Without PyAV (or if encoding fails) every task gets the one bundled clip (``assets/clip.mp4``:
ffmpeg ``testsrc``, 320x180, 2 s, about 10 KB); files still differ per task by their metadata box,
but their frames are too small to chain.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .. import files, mp4

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_ZEROS = bytes(CHUNK)

WIDTH, HEIGHT = 640, 360
#: How much larger than the 320x180 design every drawing is.
_SCALE = WIDTH // 320
FPS, SECONDS = 12, 2

#: 3x5 pixel digits, one string of five rows per digit.
_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}


@functools.cache
def clip_bytes() -> bytes:
    """The bundled clip, read once."""
    return resources.files(__package__).joinpath("assets", "clip.mp4").read_bytes()


@dataclass(frozen=True)
class VideoFile:
    """One task's video: ``head`` (clip and metadata box) in memory, then ``pad`` bytes of a
    ``free`` box streamed as zeros."""

    head: bytes
    pad: int = 0

    @property
    def size(self) -> int:
        return len(self.head) + self.pad

    def chunks(self, limit: int | None = None) -> Iterator[bytes]:
        """The file's bytes in chunks; only the first ``limit`` bytes when given."""
        remaining = self.size if limit is None else min(limit, self.size)
        pieces: list[bytes] = [self.head]
        if self.pad:
            pieces.append(mp4.free_box_header(self.pad))
        for piece in pieces:
            for i in range(0, len(piece), CHUNK):
                if remaining <= 0:
                    return
                chunk = piece[i : i + min(CHUNK, remaining)]
                remaining -= len(chunk)
                yield chunk
        if self.pad:
            zeros = self.pad - len(mp4.free_box_header(self.pad))
            while zeros > 0 and remaining > 0:
                n = min(zeros, remaining, CHUNK)
                zeros -= n
                remaining -= n
                yield _ZEROS[:n]


def make_video(metadata: dict[str, Any], min_size: int | None = None, *, cache: Path | None = None) -> VideoFile:
    """The video for one task: its clip, its metadata box, and padding up to ``min_size``.

    ``cache``: a file keeping the clip and metadata box; read when present, else written."""
    head = _cached_head(cache)
    if head is None:
        head = task_clip(str(metadata.get("task_id", ""))) + mp4.sim_metadata_box(metadata)
        if cache is not None:
            try:
                files.write_bytes(cache, head)
            except OSError as e:  # a cache that cannot be written is only slower
                log.warning("cannot keep the simulator's video in %s: %s", cache, e)
    pad = 0
    if min_size is not None and min_size > len(head):
        pad = max(8, min_size - len(head))  # a box is at least its 8-byte header
    return VideoFile(head, pad)


def _cached_head(cache: Path | None) -> bytes | None:
    if cache is None:
        return None
    try:
        head = cache.read_bytes()
    except OSError:
        return None
    return head if head[4:8] == b"ftyp" else None  # never serve a damaged cache file


def task_clip(task_id: str) -> bytes:
    """The clip for one task: encoded with PyAV when it is installed, else the bundled clip."""
    if _pyav() is None:
        return clip_bytes()
    try:
        return _encode(task_id)
    except Exception:  # PyAV raises its own error tree; any failure falls back to the bundled clip
        log.warning("encoding the simulator's video with PyAV failed; serving the bundled clip", exc_info=True)
        return clip_bytes()


@functools.cache
def _pyav() -> Any:
    """The ``av`` module, or None when PyAV is not installed (imported once, on first need:
    importing it costs a third of a second)."""
    try:
        import av
    except ImportError:
        log.info("PyAV is not installed: every simulated video is the bundled clip")
        return None
    return av


def _colour(task_id: str) -> tuple[int, int, int]:
    """A Y'CbCr background drawn from the task id: mid brightness, any hue."""
    digest = hashlib.sha256(task_id.encode()).digest()
    return 70 + digest[0] % 100, 40 + digest[1] % 176, 40 + digest[2] % 176


def _draw_number(plane: bytearray, text: str, x: int, y: int, scale: int, value: int) -> None:
    """Draw ``text`` (digits) into a luma plane with its top left at (x, y)."""
    run = bytes([value]) * scale
    for k, char in enumerate(text):
        for row, bits in enumerate(_DIGITS.get(char, _DIGITS["0"])):
            for col, bit in enumerate(bits):
                if bit == "1":
                    left = x + (k * 4 + col) * scale
                    for dy in range(scale):
                        offset = (y + row * scale + dy) * WIDTH + left
                        plane[offset : offset + scale] = run


def frames(task_id: str) -> Iterator[tuple[bytes, bytes, bytes]]:
    """The Y, Cb and Cr planes of each frame of the task's clip (pure Python, no numpy)."""
    luma, cb, cr = _colour(task_id)
    ink = 235 if luma < 128 else 16
    background = bytearray([luma]) * (WIDTH * HEIGHT)
    k = _SCALE
    _draw_number(background, task_id[-6:].rjust(6, "0"), 12 * k, HEIGHT - 12 * k - 5 * 6 * k, 6 * k, ink)
    chroma_cb = bytes([cb]) * (WIDTH * HEIGHT // 4)
    chroma_cr = bytes([cr]) * (WIDTH * HEIGHT // 4)
    bar = bytes([ink]) * (6 * k)
    for index in range(FPS * SECONDS):
        plane = bytearray(background)
        _draw_number(plane, f"{index:03d}", 12 * k, 12 * k, 10 * k, ink)
        left = 200 * k + index * (WIDTH - 200 * k - 6 * k) // (FPS * SECONDS - 1)
        for row in range(12 * k, 12 * k + 5 * 10 * k):
            plane[row * WIDTH + left : row * WIDTH + left + 6 * k] = bar
        yield bytes(plane), chroma_cb, chroma_cr


def _encode(task_id: str) -> bytes:
    """The task's frames as a small H.264 MP4 (faststart needs a real file: a temporary one)."""
    av = _pyav()
    fd, name = tempfile.mkstemp(prefix="vidbatch-sim-", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(name, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream(
                "libx264",
                rate=FPS,
                # one thread and no lookahead: the same bytes for the same task, and fastest to start
                options={"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "crf": "28", "threads": "1"},
            )
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            for index, planes in enumerate(frames(task_id)):
                frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
                for plane, data in zip(frame.planes, planes):
                    plane.update(data)
                frame.pts = index
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return Path(name).read_bytes()
    finally:
        os.unlink(name)
