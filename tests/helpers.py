"""The one home of the helpers the tests share: folders, images, manifests, the CLI, checks on
outputs. Importing it has no side effects (the JPEG encoder of ``examples/make_images.py`` is
loaded on first use). ``tests/manifest_helpers.py`` re-exports some of these names for the
manifest tests."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence
from urllib.parse import urlsplit

from click.testing import CliRunner, Result

from vidbatch.client import AsyncCalls, Client

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BAD = Path(__file__).resolve().parent / "bad_manifests"

RGB = tuple[int, int, int]


# --- images ---------------------------------------------------------------------------------------


def png_bytes(width: int = 640, height: int = 360, colour: RGB = (90, 120, 200)) -> bytes:
    """A valid RGB PNG of one colour, built without any imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = zlib.compress((b"\x00" + bytes(colour) * width) * height, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def png(path: Path, width: int = 640, height: int = 360, colour: RGB = (90, 120, 200)) -> Path:
    """Write a one-colour PNG at ``path`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height, colour))
    return path


def write_png(path: Path, width: int = 640, height: int = 360, color: RGB = (200, 80, 40)) -> Path:
    """:func:`png` with the colour the integration tests have always used."""
    return png(path, width, height, color)


@functools.cache
def _example_images() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vidbatch_example_images", EXAMPLES / "make_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jpeg(path: Path, width: int = 360, height: int = 640, colour: RGB = (200, 160, 120)) -> Path:
    """A baseline JPEG of one colour, by the examples' own encoder."""
    written: Path = _example_images().write_jpeg(path, width, height, lambda bx, by: colour)
    return written


# --- manifests ------------------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    """Write dedented ``text`` to ``folder/name``."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def t2v_manifest(prompts: dict[str, str], *, extra_defaults: str = "", header: str = "") -> str:
    """A text-to-video manifest with one job per (name, prompt)."""
    jobs = "\n".join(f'[[jobs]]\nname = "{name}"\nprompt = "{prompt}"\n' for name, prompt in prompts.items())
    return f'{header}output_dir = "renders"\n\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n{extra_defaults}\n{jobs}'


# --- the CLI --------------------------------------------------------------------------------------


def cli(*args: Any, env: dict[str, Any] | None = None) -> Result:
    """Run the real CLI in-process (stdin is not a terminal, so nothing asks). Takes the
    arguments either as one list, ``cli(["plan", path])``, or one by one, ``cli("plan", path)``."""
    from vidbatch.cli import main

    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = tuple(args[0])
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def cli_subprocess(args: Sequence[Any], *, env: dict[str, str] | None = None, cwd: Path | None = None, **kw: Any) -> subprocess.Popen[str]:
    """``python -m vidbatch ARGS`` in a child process, stdout and stderr piped as text."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vidbatch", *map(str, args)], env=full_env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# --- checks ---------------------------------------------------------------------------------------


def json_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def creates(sim: Any) -> int:
    return int(sim.sim.calls["create"])


def api_calls(sim: Any) -> int:
    return sum(sim.sim.calls.values())


def all_bytes_under(folder: Path) -> bytes:
    out = b""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out += p.read_bytes()
    return out


class Traced:
    """What a test reads of a request aiohttp sent (as of a ``requests.PreparedRequest``)."""

    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers, self.body = method, url, headers, None
        parts = urlsplit(url)
        self.path_url = parts.path + (f"?{parts.query}" if parts.query else "")


class OnLoop:
    """A client whose calls run as :class:`AsyncCalls` (aiohttp) on an event loop of their own,
    as the runner's wire runs them, behind the client's own methods: every test of the
    ``client`` fixture drives this transport too. Calls ``AsyncCalls`` lacks go to the client."""

    def __init__(self, client: Client, sent: list | None = None, monkeypatch=None) -> None:
        import aiohttp

        if monkeypatch is not None:  # each request aiohttp sends is noted in ``sent``

            async def on_start(session, context, params) -> None:
                sent.append(Traced(params.method, str(params.url), dict(params.headers)))

            trace = aiohttp.TraceConfig()
            trace.on_request_start.append(on_start)
            real_init = aiohttp.ClientSession.__init__
            monkeypatch.setattr(
                aiohttp.ClientSession,
                "__init__",
                lambda s, *a, **kw: real_init(s, *a, **{**kw, "trace_configs": [*kw.get("trace_configs", ()), trace]}),
            )
        self.client = client
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.calls = self._on_loop(self._open())

    async def _open(self) -> AsyncCalls:
        return self.client.open_async()

    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def __getattr__(self, name: str):
        if name.startswith("_") or not hasattr(AsyncCalls, name):
            return getattr(self.client, name)
        return lambda *args, **kw: self._on_loop(getattr(self.calls, name)(*args, **kw))

    def __enter__(self) -> "OnLoop":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._on_loop(self.calls.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        self.client.close()
