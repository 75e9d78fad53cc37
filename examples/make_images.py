#!/usr/bin/env python3
"""Write the example images: small, valid PNG and JPEG files, in pure Python (no Pillow).

    python examples/make_images.py            # (re)writes examples/images/*

The pictures are simple on purpose (gradients, a disc, blocks of colour) so each file stays a few
kilobytes; they satisfy the API's limits (short side over 300 px, aspect ratio within 2:5..5:2).

``write_png`` and ``write_jpeg`` are importable: the tests use them to make images on the fly.
The JPEG writer is a minimal baseline encoder for pictures whose 8x8 blocks are each one colour:
such a block has only a DC coefficient, so no DCT is needed and every block is "DC + end of block".
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from typing import Callable, Sequence

RGB = tuple[int, int, int]


# --- PNG ------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, pixel: Callable[[int, int], RGB]) -> bytes:
    """An 8-bit RGB PNG; each row uses whichever of the None/Sub/Up filters compresses best."""
    raw = bytearray()
    prev = bytes(width * 3)
    for y in range(height):
        row = bytes(c for x in range(width) for c in pixel(x, y))
        sub = bytes((row[i] - (row[i - 3] if i >= 3 else 0)) & 0xFF for i in range(len(row)))
        up = bytes((row[i] - prev[i]) & 0xFF for i in range(len(row)))
        candidates = [(0, row), (1, sub), (2, up)]
        kind, data = min(candidates, key=lambda c: sum(b if b < 128 else 256 - b for b in c[1]))
        raw.append(kind)
        raw += data
        prev = row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b"")


def solid_png_bytes(width: int, height: int, colour: RGB) -> bytes:
    """A one-colour PNG, built without a per-pixel function (fast: the tests make many)."""
    raw = (b"\x00" + bytes(colour) * width) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def write_png(path: Path, width: int, height: int, pixel: Callable[[int, int], RGB]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height, pixel))
    return path


# --- JPEG (baseline, one colour per 8x8 block) ---------------------------------------------------

# Standard DC tables (ITU T.81 Annex K.3): code lengths 1..16, then the symbols.
_DC_LUMA = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
_DC_CHROMA = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
# An AC table holding only end-of-block (symbol 0x00): every block here has no AC coefficients.
_AC_EOB_ONLY = ([1] + [0] * 15, [0])


def _huffman_codes(table: tuple[list[int], list[int]]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length), canonical order as JPEG defines it."""
    counts, symbols = table
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length, count in enumerate(counts, 1):
        for _ in range(count):
            codes[symbols[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def write(self, value: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc = self.n = 0

    def flush(self) -> bytes:
        if self.n:
            self.write((1 << (8 - self.n)) - 1, 8 - self.n)  # pad with ones
        return bytes(self.out)


def _ycbcr(rgb: RGB) -> tuple[int, int, int]:
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(max(0, min(255, round(v))) for v in (y, cb, cr))  # type: ignore[return-value]


def jpeg_bytes(width: int, height: int, block_colour: Callable[[int, int], RGB]) -> bytes:
    """A baseline JPEG whose 8x8 block (bx, by) is the colour ``block_colour(bx, by)``.
    ``width`` and ``height`` must be multiples of 8."""
    if width % 8 or height % 8:
        raise ValueError("width and height must be multiples of 8")
    quant = [8] + [16] * 63  # DC step 8: a block's DC coefficient is exactly (value - 128)
    dc_codes = [_huffman_codes(_DC_LUMA), _huffman_codes(_DC_CHROMA), _huffman_codes(_DC_CHROMA)]
    ac_codes = _huffman_codes(_AC_EOB_ONLY)
    bits = _BitWriter()
    previous = [0, 0, 0]
    for by in range(height // 8):
        for bx in range(width // 8):
            for c, value in enumerate(_ycbcr(block_colour(bx, by))):
                dc = value - 128
                diff = dc - previous[c]
                previous[c] = dc
                size = abs(diff).bit_length()
                code, length = dc_codes[c][size]
                bits.write(code, length)
                if size:
                    bits.write(diff if diff > 0 else diff + (1 << size) - 1, size)
                code, length = ac_codes[0]
                bits.write(code, length)

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    def dht(cls_id: int, table: tuple[list[int], list[int]]) -> bytes:
        return segment(0xC4, bytes([cls_id]) + bytes(table[0]) + bytes(table[1]))

    out = bytearray(b"\xff\xd8")
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, bytes([0]) + bytes(quant) + bytes([1]) + bytes(quant))
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1]))
    out += dht(0x00, _DC_LUMA) + dht(0x01, _DC_CHROMA) + dht(0x10, _AC_EOB_ONLY) + dht(0x11, _AC_EOB_ONLY)
    out += segment(0xDA, bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]))
    out += bits.flush()
    out += b"\xff\xd9"
    return bytes(out)


def write_jpeg(path: Path, width: int, height: int, block_colour: Callable[[int, int], RGB]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(width, height, block_colour))
    return path


# --- pictures -------------------------------------------------------------------------------------


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = max(0.0, min(1.0, t))
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def sky(width: int, height: int, top: RGB, bottom: RGB, sun: RGB, sun_at: tuple[float, float], ground: RGB | None = None):
    """A vertical gradient with a disc (a sun or moon) and an optional flat ground: a pixel function."""
    cx, cy = sun_at[0] * width, sun_at[1] * height
    r2 = (min(width, height) * 0.12) ** 2
    horizon = height * 0.72

    def pixel(x: int, y: int) -> RGB:
        if ground is not None and y >= horizon:
            return ground
        if (x - cx) ** 2 + (y - cy) ** 2 <= r2:
            return sun
        return _mix(top, bottom, y / height)

    return pixel


def blocks(colours: Sequence[RGB], *, stripes: int = 6, vertical: bool = False):
    """Bands of colour in 8x8-block units: a block-colour function for :func:`jpeg_bytes`."""

    def colour(bx: int, by: int) -> RGB:
        t = by if vertical else bx
        return colours[(t // stripes) % len(colours)]

    return colour


def face(width_blocks: int, height_blocks: int):
    """A blocky portrait: background, a face-coloured oval, two eyes. For a subject reference."""
    cx, cy = width_blocks / 2, height_blocks * 0.42

    def colour(bx: int, by: int) -> RGB:
        dx, dy = (bx + 0.5 - cx) / (width_blocks * 0.3), (by + 0.5 - cy) / (height_blocks * 0.22)
        if dx * dx + dy * dy <= 1:
            if abs(by + 0.5 - (cy - height_blocks * 0.04)) < 1 and abs(abs(bx + 0.5 - cx) - width_blocks * 0.12) < 1.2:
                return (40, 30, 30)
            return (224, 180, 150)
        if by > height_blocks * 0.7:
            return (60, 90, 140)
        return (200, 210, 220)

    return colour


def main(folder: Path) -> None:
    images = folder / "images"
    dawn = ((40, 60, 120), (250, 170, 120), (255, 240, 200))
    # storyboard frames, landscape 640x360
    write_png(images / "shot-01.png", 640, 360, sky(640, 360, *dawn, (0.25, 0.55), (50, 80, 50)))
    write_png(images / "shot-02.png", 640, 360, sky(640, 360, (90, 140, 210), (200, 225, 250), (255, 250, 220), (0.5, 0.3), (70, 110, 60)))
    write_png(images / "shot-03.png", 640, 360, sky(640, 360, (20, 20, 60), (220, 90, 60), (255, 200, 120), (0.75, 0.62), (40, 40, 50)))
    # first and last frame of one shot
    write_png(images / "first.png", 640, 360, sky(640, 360, *dawn, (0.2, 0.7), (50, 80, 50)))
    write_png(images / "last.png", 640, 360, sky(640, 360, (90, 140, 210), (200, 225, 250), (255, 250, 220), (0.8, 0.2), (70, 110, 60)))
    # a portrait, as a JPEG: the subject reference, and a vertical first frame
    write_jpeg(images / "face.jpg", 360, 640, face(360 // 8, 640 // 8))
    write_jpeg(images / "hero.jpg", 640, 360, blocks([(30, 60, 110), (60, 100, 160), (120, 160, 210), (230, 200, 150)], stripes=12, vertical=True))
    for path in sorted(images.iterdir()):
        print(f"{path.relative_to(folder.parent) if folder.parent in path.parents else path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
