"""The videos the simulator serves: one bundled clip, made distinct per task.

ffmpeg is not available where vidbatch runs, so the simulator cannot encode anything. It ships
one small real clip (``assets/clip.mp4``: ffmpeg ``testsrc``, 320x180, 2 s, H.264 constrained
baseline, yuv420p, faststart, about 10 KB) and serves, per task:

    clip.mp4 | uuid box with the task's JSON metadata | optional 'free' box of zeros

Both additions are top-level boxes appended after the clip's last box, so no offset inside the
clip changes and every player still plays it, while each task's file has different bytes and
names its task (:func:`vidbatch.mp4.read_sim_metadata`). The padding (``SimConfig.video_bytes``)
lets memory benchmarks download large files; it is never held in memory, only streamed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterator

from .. import mp4

CHUNK = 64 * 1024
_ZEROS = bytes(CHUNK)


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


def make_video(metadata: dict[str, Any], min_size: int | None = None) -> VideoFile:
    """The video for one task: the clip, its metadata box, and padding up to ``min_size``."""
    head = clip_bytes() + mp4.sim_metadata_box(metadata)
    pad = 0
    if min_size is not None and min_size > len(head):
        pad = max(8, min_size - len(head))  # a box is at least its 8-byte header
    return VideoFile(head, pad)
