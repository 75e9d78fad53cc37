"""Image inputs: recognise the format, read the dimensions from the header, apply the API's limits.

The API takes JPG/PNG/WebP under 20 MB whose short side is over 300 px and whose aspect ratio lies
between 2:5 and 5:2 (limits in :mod:`vidbatch.facts`). Local files are checked here before any
money is spent and sent as data URLs; remote URLs pass through unchecked.
Dimensions come from `imagesize`, which reads headers only, so checking a 15 MB photo is cheap.
A header alone is not an image: a PNG must also hold image data (an ``IDAT`` chunk) and end (an
``IEND`` chunk), a JPEG a scan (an SOS marker) and its end (EOI), a WebP as many bytes as its
RIFF header announces; a file cut short or a bare header is refused here, not by MiniMax after
the render was paid for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path


from . import facts


# --- bounded reading of input files ----------------------------------------------------------------
# Here because images are the lowest layer that reads input files; manifests, foreach files and
# templates read through the same function (re-exported by vidbatch.manifest.source).


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket: not a file vidbatch reads."""


class FileTooLarge(OSError):
    """The file is larger than the reader's limit; ``size`` is what fstat said (or limit + 1)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"is {size} bytes; at most {limit}")
        self.size = size
        self.limit = limit


def describe_size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, never more read than that.

    Opened without blocking (a FIFO cannot hang the reader) and checked with ``fstat`` on the open
    descriptor (a symbolic link to ``/dev/zero`` is a character device, refused). Raises
    :class:`NotRegularFile`, :class:`FileTooLarge`, ``IsADirectoryError``, ``FileNotFoundError`` or
    another ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "is a folder", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{path} is not a regular file")
        if st.st_size > limit:
            raise FileTooLarge(st.st_size, limit)
        chunks: list[bytes] = []
        got = 0
        while got <= limit:  # a file growing while read still stops at the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise FileTooLarge(got, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)



@dataclass(frozen=True)
class ImageInfo:
    format: str | None  # "jpeg", "png", "webp", or None when not one of those
    width: int
    height: int
    size: int  # bytes
    sha256: str
    #: the file holds image data and is not cut short (see the module docstring)
    complete: bool = True

    @property
    def mime(self) -> str | None:
        return facts.IMAGE_FORMATS.get(self.format or "")


def sniff_format(head: bytes) -> str | None:
    """The image format from its first bytes, or None when it is not one the API takes."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def inspect_bytes(data: bytes) -> ImageInfo:
    fmt = sniff_format(data[:16])
    width = height = -1
    if fmt is not None:
        try:
            import imagesize  # here, not at the top: it imports urllib.request and http.client (0.15 s)

            width, height = imagesize.get(io.BytesIO(data))
        except (ValueError, OSError, IndexError):  # a damaged header
            width = height = -1
    return ImageInfo(fmt, width, height, len(data), hashlib.sha256(data).hexdigest(), is_complete(fmt, data))


def is_complete(fmt: str | None, data: bytes) -> bool:
    """Whether an image of format ``fmt`` holds image data and is whole (module docstring)."""
    if fmt == "png":
        return _png_complete(data)
    if fmt == "jpeg":
        sos = _jpeg_scan_start(data)
        return sos > 0 and data.rfind(b"\xff\xd9") > sos
    if fmt == "webp":
        return len(data) >= 12 and int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return True


def _jpeg_scan_start(data: bytes) -> int:
    """Where the first SOS marker of the image itself is, walking the marker segments from SOI
    (so the SOS and EOI of a thumbnail inside an APP1 EXIF segment do not count); -1 when none."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return -1


def _png_complete(data: bytes) -> bool:
    pos, has_data = 8, False
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            return False
        if kind == b"IDAT":
            has_data = has_data or length > 0
        elif kind == b"IEND":
            return has_data
        pos = end
    return False


def inspect_file(path: Path) -> ImageInfo:
    """The image at ``path``, read only if it is a regular file of at most the API's limit
    (raises :class:`FileTooLarge`, :class:`NotRegularFile` or another ``OSError``)."""
    return inspect_bytes(read_regular(path, facts.IMAGE_MAX_BYTES))


def limit_problems(info: ImageInfo) -> list[str]:
    """Why the API would refuse this image; empty when it would take it."""
    if info.format is None:
        return ["is not a JPG, PNG or WebP image"]
    problems = []
    if info.size >= facts.IMAGE_MAX_BYTES:
        problems.append(f"is {info.size / 1e6:.1f} MB; images must be under 20 MB")
    if info.width <= 0 or info.height <= 0:
        problems.append(f"is a {info.format.upper()} whose size cannot be read (damaged file?)")
        return problems
    if not info.complete:
        problems.append(
            f"is a {info.format.upper()} without its image data or cut short (a damaged or partly copied file?); "
            "export it again"
        )
        return problems
    short = min(info.width, info.height)
    if short <= facts.IMAGE_MIN_SHORT_SIDE:
        problems.append(
            f"is {info.width}x{info.height}; the short side must be over {facts.IMAGE_MIN_SHORT_SIDE} px"
        )
    ratio = info.width / info.height
    if not (facts.IMAGE_MIN_ASPECT <= ratio <= facts.IMAGE_MAX_ASPECT):
        problems.append(f"is {info.width}x{info.height}; the aspect ratio must be between 2:5 and 5:2")
    return problems


def to_data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def is_remote(ref: str) -> bool:
    return ref.startswith(("https://", "http://"))


def decode_data_url(ref: str) -> tuple[str, bytes]:
    """(mime, bytes) of a base64 data URL. Raises ValueError when it is not one."""
    if not ref.startswith("data:") or ";base64," not in ref[:64]:
        raise ValueError("not a base64 data URL")
    header, _, payload = ref.partition(",")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"base64 payload does not decode: {e}") from None
    return header[5:].split(";")[0], data


def check_image_ref(ref: str) -> list[str]:
    """Problems with an image as a request carries it: an http(s) URL passes, a data URL is
    decoded and checked against the limits, anything else is refused."""
    if is_remote(ref):
        return []
    try:
        _, data = decode_data_url(ref)
    except ValueError as e:
        return [f"must be an http(s) URL or a base64 data URL ({e})"]
    return limit_problems(inspect_bytes(data))


# --- the media of a V2 request (MiniMax-H3): images, videos, audios ---------------------------------
# Videos and audios are checked from their first bytes and their size (limits and formats in
# facts.V2_MEDIA_FORMATS, V2_MEDIA_MAX_BYTES); their content (length, codecs) is MiniMax's to judge.


def sniff_media(kind: str, head: bytes) -> str | None:
    """The format of a V2 medium of ``kind`` (``image``, ``video``, ``audio``) from its first
    bytes, or None when it is not one the API takes (:data:`facts.V2_MEDIA_FORMATS`)."""
    if kind == "image":
        return sniff_format(head)
    if kind == "video":
        if head[4:8] != b"ftyp":
            return None
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if kind == "audio":
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return "wav"
        if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
            return "mp3"
    return None


def media_mime(kind: str, fmt: str) -> str:
    """The MIME type a data URL of this medium is sent with."""
    return facts.V2_MEDIA_FORMATS[kind][fmt]


def media_size_problem(kind: str, size: int) -> str | None:
    """Why a V2 medium of ``size`` bytes is too large, or None."""
    most = facts.V2_MEDIA_MAX_BYTES[kind]
    if size > most:
        article = "an" if kind[0] in "aeiou" else "a"
        return f"is {describe_size(size)} ({size:,} bytes); {article} {kind} may be at most {most:,} bytes ({describe_size(most)})"
    return None


def media_problems(kind: str, data: bytes) -> list[str]:
    """Why the API would refuse these bytes as a V2 medium of ``kind``: its format, its size."""
    fmt = sniff_media(kind, data[:16])
    if fmt is None:
        names = ", ".join(f.upper() for f in facts.V2_MEDIA_FORMATS[kind])
        return [f"is not a {kind} the API takes ({names})"]
    too_large = media_size_problem(kind, len(data))
    return [too_large] if too_large else []
