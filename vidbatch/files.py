"""Every file vidbatch writes goes through here: written beside its target, checked, renamed.

One staging name for every writer (downloads, copies of a verified video, the HTML report, any
index or cache file): ``.{name}.{random}.vidbatch-new`` in the target's folder. A writer that
dies (crash, Ctrl-C, full disk) leaves at most such a hidden file, never a partial target, and
:func:`clean_staging` removes what a killed process left, by that one pattern.

Atomicity is :func:`os.replace` within one folder; durability is ``fsync`` of the file before the
rename and of the folder after it, so a power cut cannot leave a renamed but empty file.
:func:`sha256_file` is how a file vidbatch wrote (or will check) is identified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterable, Iterator

STAGING_SUFFIX = ".vidbatch-new"


def staging_path(target: Path) -> Path:
    """A hidden file beside ``target``, unique to one writer: two writers of one target (an
    edited job's older render landing while the newer one does) never share a staging file."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{STAGING_SUFFIX}")


def is_staging(name: str) -> bool:
    return name.startswith(".") and name.endswith(STAGING_SUFFIX)


@contextlib.contextmanager
def into_place(target: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a staging path beside ``target`` for the block to write and check; rename it over
    ``target`` only when the block succeeds, remove it in every case. (A writer that cannot hold a
    ``with`` block across its steps, the runner's downloads on an event loop, uses the same two
    steps: :func:`new_staging`, then :func:`put_in_place`, removing the staging file itself.)"""
    staging = new_staging(target)
    try:
        yield staging
        put_in_place(staging, target, durable=durable)
    finally:
        staging.unlink(missing_ok=True)


def new_staging(target: Path) -> Path:
    """The staging path of a new writer of ``target``, its folder made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return staging_path(target)


def create_staging(target: Path) -> Path:
    """:func:`new_staging`, the file made too (empty, exclusively: ``O_EXCL``, mode 0o666 less the
    umask), for a writer that opens it later. Blocking: off any event loop."""
    staging = new_staging(target)
    os.close(_create_new(staging))
    return staging


def _create_new(path: Path) -> int:
    """A descriptor for writing the new file ``path``, created exclusively (``O_EXCL``) with mode
    0o666 less the umask, like any file a user makes. ``O_BINARY``: on Windows a descriptor opens
    in text mode otherwise, and would write CRLF."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def put_in_place(staging: Path, target: Path, *, durable: bool = True) -> None:
    """Rename a written and checked ``staging`` file over ``target``; ``durable``: fsync the file
    before the rename and the folder after it. It blocks on the disk: off any event loop."""
    if durable and staging.exists():
        _fsync_file(staging)
    os.replace(staging, target)
    if durable:
        fsync_dir(target.parent)


@contextlib.contextmanager
def open_into_place(target: Path, mode: str = "wb", *, encoding: str | None = None, durable: bool = True) -> Iterator[IO]:  # type: ignore[type-arg]
    """Open a new staging file for writing; it replaces ``target`` when the block succeeds.
    The file is created with ``O_EXCL`` and mode 0o666 less the umask, like any file a user makes."""
    with into_place(target, durable=durable) as staging:
        fd = _create_new(staging)
        binary = "b" in mode
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else (encoding or "utf-8"), newline=None if binary else "\n") as f:
            yield f
            f.flush()


def write_text(target: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    with open_into_place(target, "w", durable=durable) as f:
        f.write(text)


def write_bytes(target: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``target`` with ``data`` atomically."""
    with open_into_place(target, "wb", durable=durable) as f:
        f.write(data)


def clean_staging(paths: Iterable[Path]) -> None:
    """Remove staging files a killed process left in the folders of ``paths``, and the partial
    downloads into them (``.{staging name}.{random}.part``) that vidbatch 0.1.0's client left."""
    for folder in {p.parent for p in paths}:
        if folder.is_dir():
            for pattern in (f".*{STAGING_SUFFIX}", f".*{STAGING_SUFFIX}.*.part"):
                for stale in folder.glob(pattern):
                    stale.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of the file at ``path``, read in blocks. Raises OSError."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
