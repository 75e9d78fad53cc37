"""Names the watcher never acts on, and files it treats as manifests."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from ..files import STAGING_SUFFIX
from ..picks import PICKS_SUFFIX

MANIFEST_SUFFIXES = (".toml", ".json")
#: A file whose name ends so is an editor's or a downloader's work in progress (or our own).
TEMPORARY_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".crdownload", ".partial", STAGING_SUFFIX)
#: Names editors create to probe a folder (vim writes ``4913`` to test permissions).
TEMPORARY_NAMES = frozenset({"4913"})


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is hidden or an editor's temporary file."""
    return name.startswith((".", "#")) or name.endswith(TEMPORARY_SUFFIXES) or name in TEMPORARY_NAMES


def is_picks_file(path: Path) -> bool:
    """A manifest's picks file (``shots.picks.toml``, :mod:`vidbatch.picks`): never a manifest,
    even when a shot is literally named ``jobs`` (its table then reads as a top-level ``jobs``)."""
    return path.name.lower().endswith(PICKS_SUFFIX) and len(path.name) > len(PICKS_SUFFIX)


def looks_like_manifest(path: Path) -> bool:
    """A manifest (:func:`vidbatch.manifest.is_manifest_file`), or a .toml/.json file that
    mentions ``jobs`` but does not parse: a manifest with a syntax error, whose error must be
    shown rather than the file ignored. A picks file (:func:`is_picks_file`) is neither."""
    from ..manifest import is_manifest_file

    if is_picks_file(path):
        return False
    return is_manifest_file(path) or _unparsable_mentioning_jobs(path)


def _unparsable_mentioning_jobs(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        return False
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, ValueError):
        return False
    if "jobs" not in text:
        return False
    try:
        tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


def folder_files(folder: Path) -> list[Path]:
    """The files at the top of ``folder`` that are not hidden or temporary, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not is_temporary(p.name))


def manifest_files(folder: Path) -> list[Path]:
    """The manifests of ``folder``, as watch mode sees them (``vidbatch status .`` too)."""
    return [p for p in folder_files(folder) if looks_like_manifest(p)]
