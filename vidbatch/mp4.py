"""A structural check of MP4 files, and the simulator's per-task metadata box.

An MP4 (ISO-BMFF) file is a sequence of top-level boxes, each starting with a 32-bit big-endian
size and a four-character type; size 1 means a 64-bit size follows, size 0 means "to the end of
the file". A finished, complete download starts with ``ftyp``, holds ``moov`` (the index) and
``mdat`` (the media), and its box sizes add up exactly to the file size. That catches the usual
ways a download goes wrong (cut short, an HTML or XML error page saved as video, bytes appended)
without decoding any media, so it needs no ffmpeg.

Only box headers are read, and the reader seeks over box bodies, so checking a multi-gigabyte
file costs a few reads and no memory.

The simulator (:mod:`vidbatch.sim`) appends one ``uuid`` box carrying JSON that names the task a
video was rendered for; :func:`read_sim_metadata` reads it back, so tests can tell which task's
video landed in which output file. The box format lives here, beside the reader.
"""

from __future__ import annotations

import io
import json
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]

#: The usertype of the simulator's metadata box (a fixed, name-based UUID).
SIM_METADATA_UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/vidbatch/vidbatch/sim-metadata").bytes
#: Metadata bigger than this is not ours; never read an arbitrary box body into memory.
_SIM_METADATA_MAX = 1 << 20

_SIZE32_MAX = 0xFFFFFFFF
#: Box types seen at the top level of MP4 files. Anything else there is most likely not a box
#: at all but bytes written after the file (an error page, a second partial download).
TOP_LEVEL_TYPES = frozenset(
    "ftyp styp pdin moov moof mfra mdat free skip wide uuid meta udta sidx ssix prft emsg".split()
)


@dataclass(frozen=True)
class Box:
    """One top-level box: ``size`` counts the header; ``header_size`` is 8, or 16 with a 64-bit
    size (``uuid`` boxes' 16-byte usertype is part of the body)."""

    type: str
    offset: int
    size: int
    header_size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def read_boxes(source: PathOrFile) -> Iterator[Box]:
    """The top-level boxes of an MP4 file, as their headers declare them, in file order.

    Stops at the end of the file, after a box that claims to run past it (the caller compares
    ``box.end`` with the file size), or at a size smaller than its own header. Trailing bytes too
    few to form a header yield nothing. ``source`` is a path or a seekable binary file object,
    which is left open.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _boxes(f)
    else:
        yield from _boxes(source)


def _file_size(f: IO[bytes]) -> int:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        here = f.tell()
        size = f.seek(0, io.SEEK_END)
        f.seek(here)
        return size


def _boxes(f: IO[bytes]) -> Iterator[Box]:
    file_size = _file_size(f)
    offset = 0
    while offset + 8 <= file_size:
        f.seek(offset)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        header_size = 8
        if size == 1:
            extra = f.read(8)
            if len(extra) < 8:
                return
            (size,) = struct.unpack(">Q", extra)
            header_size = 16
        elif size == 0:
            size = file_size - offset
        box = Box(kind.decode("latin-1"), offset, size, header_size)
        yield box
        if size < header_size or box.end > file_size:
            return
        offset = box.end


def _printable_type(kind: str) -> bool:
    return all(" " <= c <= "~" for c in kind)


def check_mp4(path: PathOrFile) -> list[str]:
    """Why ``path`` is not a structurally complete MP4; an empty list when it is.

    Checked: it starts with an ``ftyp`` box, holds ``moov`` and ``mdat`` boxes, and the top-level
    box sizes add up exactly to the file size (nothing missing, nothing appended).
    """
    if isinstance(path, (str, os.PathLike)):
        with open(path, "rb") as f:
            return _check(f)
    return _check(path)


def _check(f: IO[bytes]) -> list[str]:
    file_size = _file_size(f)
    if file_size == 0:
        return ["the file is empty"]
    boxes: list[Box] = []
    for box in read_boxes(f):
        if not boxes and box.type != "ftyp":
            return [f"does not start with an MP4 'ftyp' box (first bytes {_head(f)!r}): not an MP4 file"]
        if box.type not in TOP_LEVEL_TYPES:
            shown = box.type if _printable_type(box.type) else box.type.encode("latin-1")
            return [
                f"bytes at offset {box.offset} ({shown!r}) are not an MP4 box: data appended after the "
                f"file, or a damaged file"
            ]
        if box.size < box.header_size:
            return [f"box {box.type!r} at offset {box.offset} declares {box.size} bytes, less than its header"]
        if box.end > file_size:
            return [
                f"box {box.type!r} at offset {box.offset} declares {box.size} bytes but only "
                f"{file_size - box.offset} remain: the file is truncated ({file_size} of {box.end} bytes)"
            ]
        boxes.append(box)
    if not boxes:
        return [f"{file_size} bytes, too short for an MP4 box header: not an MP4 file"]
    problems = []
    end = boxes[-1].end
    if end < file_size:
        problems.append(f"{file_size - end} bytes after the last box (ending at offset {end}): data appended?")
    types = {b.type for b in boxes}
    for needed, what in (("moov", "the index"), ("mdat", "the media data")):
        if needed not in types:
            problems.append(f"no {needed!r} box ({what}): incomplete MP4")
    return problems


def _head(f: IO[bytes]) -> bytes:
    f.seek(0)
    return f.read(12)


# --- the simulator's metadata box -------------------------------------------------------------


def sim_metadata_box(metadata: dict[str, Any]) -> bytes:
    """A top-level ``uuid`` box carrying ``metadata`` as JSON, to append after a file's last box."""
    payload = json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return struct.pack(">I4s", 8 + 16 + len(payload), b"uuid") + SIM_METADATA_UUID + payload


def free_box_header(size: int) -> bytes:
    """The header of a ``free`` box of ``size`` bytes in all (header included; at least 8).
    The body, ``size - len(header)`` bytes, is the caller's to write (zeros)."""
    if size < 8:
        raise ValueError(f"a box is at least 8 bytes, not {size}")
    if size <= _SIZE32_MAX:
        return struct.pack(">I4s", size, b"free")
    return struct.pack(">I4sQ", 1, b"free", size)


def read_sim_metadata(path: PathOrFile) -> dict[str, Any] | None:
    """The JSON the simulator embedded in a video it served, or None when there is none."""
    if isinstance(path, (str, os.PathLike)):
        with open(Path(path), "rb") as f:
            return _read_sim_metadata(f)
    return _read_sim_metadata(path)


def _read_sim_metadata(f: IO[bytes]) -> dict[str, Any] | None:
    for box in read_boxes(f):
        if box.type != "uuid" or not (box.header_size + 16 <= box.size <= _SIM_METADATA_MAX):
            continue
        f.seek(box.offset + box.header_size)
        body = f.read(box.size - box.header_size)
        if body[:16] != SIM_METADATA_UUID:
            continue
        try:
            value = json.loads(body[16:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None
    return None
