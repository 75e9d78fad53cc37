"""Helpers shared by the integration tests: manifests on disk, the CLI, and checks on outputs."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Sequence

from click.testing import CliRunner, Result

from vidbatch.cli import main


def write_png(path: Path, width: int = 640, height: int = 360, color: tuple[int, int, int] = (200, 80, 40)) -> Path:
    """A valid RGB PNG of one colour, written without any imaging library."""
    row = b"\x00" + bytes(color) * width
    raw = zlib.compress(row * height, 9)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def t2v_manifest(prompts: dict[str, str], *, extra_defaults: str = "", header: str = "") -> str:
    """A text-to-video manifest with one job per (name, prompt)."""
    jobs = "\n".join(f'[[jobs]]\nname = "{name}"\nprompt = "{prompt}"\n' for name, prompt in prompts.items())
    return f'{header}output_dir = "renders"\n\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n{extra_defaults}\n{jobs}'


def cli(args: Sequence[str], *, env: dict[str, str] | None = None) -> Result:
    """Run the real CLI in-process (stdin is not a terminal, so nothing asks)."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def cli_subprocess(args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, **kw: Any) -> subprocess.Popen:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vidbatch", *map(str, args)], env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def creates(sim) -> int:
    return sim.sim.calls["create"]


def api_calls(sim) -> int:
    return sum(sim.sim.calls.values())


def all_bytes_under(folder: Path) -> bytes:
    out = b""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out += p.read_bytes()
    return out
