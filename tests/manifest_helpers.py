"""Helpers for the manifest tests: image writers, manifest writers, the CLI runner."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BAD = Path(__file__).resolve().parent / "bad_manifests"


def _load_image_writer():
    spec = importlib.util.spec_from_file_location("vidbatch_example_images", EXAMPLES / "make_images.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_images = _load_image_writer()


def png(path: Path, width: int = 640, height: int = 360, colour: tuple[int, int, int] = (90, 120, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height, colour))
    return path


def jpeg(path: Path, width: int = 360, height: int = 640, colour: tuple[int, int, int] = (200, 160, 120)) -> Path:
    return _images.write_jpeg(path, width, height, lambda bx, by: colour)


def png_bytes(width: int = 640, height: int = 360, colour: tuple[int, int, int] = (90, 120, 200)) -> bytes:
    return _images.solid_png_bytes(width, height, colour)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def cli(*args: str, env: dict[str, Any] | None = None) -> Result:
    from vidbatch.cli import main

    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
