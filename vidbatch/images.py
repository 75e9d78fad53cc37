"""Image inputs: recognise the format, read the dimensions from the header, apply the API's limits.

The API takes JPG/PNG/WebP under 20 MB whose short side is over 300 px and whose aspect ratio lies
between 2:5 and 5:2 (limits in :mod:`vidbatch.facts`). Local files are checked here before any
money is spent and sent as data URLs; remote URLs pass through unchecked.
Dimensions come from `imagesize`, which reads headers only, so checking a 15 MB photo is cheap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import imagesize

from . import facts


@dataclass(frozen=True)
class ImageInfo:
    format: str | None  # "jpeg", "png", "webp", or None when not one of those
    width: int
    height: int
    size: int  # bytes
    sha256: str

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
            width, height = imagesize.get(io.BytesIO(data))
        except (ValueError, OSError, IndexError):  # a damaged header
            width = height = -1
    return ImageInfo(fmt, width, height, len(data), hashlib.sha256(data).hexdigest())


def inspect_file(path: Path) -> ImageInfo:
    return inspect_bytes(Path(path).read_bytes())


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
