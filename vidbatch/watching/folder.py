"""What the watcher knows about its folder, and what a change there means. No threads, no I/O
beyond asking whether a path exists or is a file.

The dependency map
------------------
``file -> manifests that read it`` (and back), from :attr:`Manifest.inputs`, rebuilt for a
manifest on each load. A manifest that fails to load keeps its last-known inputs, plus the files
the failed load tried to read (an image that does not exist yet), so saving a fix, or adding the
missing file, resumes it. A manifest always reads itself, and its picks file
(``shots.toml`` -> ``shots.picks.toml``, :func:`vidbatch.picks.picks_path`), whether or not it
exists yet: a pick changes which take a chained shot takes its frame from and which take a cut
joins, so a new pick plans the manifest again (its other jobs plan to ``skip``).

Our own writes
--------------
A change to a file this process writes never plans anything and such a file is never a manifest
(:meth:`WatchedFolder.ignored`): the state folder, the outputs and their folders, the
``written`` files (the ``--report`` page) and the files open at its ``streams`` (stdout and
stderr redirected into the folder: ``vidbatch watch . --json > events.json`` would otherwise
read its own events as a broken manifest, report that, and so change it again, forever). A
stream is compared by device and inode, not by name: the name it was opened under is not known.

Outputs
-------
``output file -> (Manifest, the key it wants there)``: our own writes are ignored by it, a render
that lands on an output is checked against it (:meth:`WatchedFolder.stale`), and a new manifest may
not write an output another one writes (:func:`output_collisions`). The runner's thread reads it,
so it is never changed in place: each change builds a new dict and swaps it in (as ``current``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ManifestProblem
from ..picks import picks_path
from .paths import is_temporary, looks_like_manifest


def output_collisions(manifest: Any, others: Sequence[Any]) -> list[ManifestProblem]:
    """Jobs of ``manifest`` that write an output a job of ``others`` writes (loaded alone, a
    manifest cannot tell). The manifest package's own check, applied to manifests loaded apart."""
    # TODO(manifest owner): a public vidbatch.manifest.check_output_collisions(manifests) would
    # spare us the private names below.
    from ..manifest.loader import _check_outputs, _Session
    from ..manifest.model import ManifestResult

    results = [ManifestResult(m.path, m) for m in others] + [ManifestResult(manifest.path, manifest)]
    _check_outputs(_Session(None, None), results)
    return results[-1].problems


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _stream_files(fds: Iterable[int]) -> set[tuple[int, int]]:
    """The files open at ``fds`` (device, inode); a closed one (``>&-``) is none."""
    files = set()
    for fd in fds:
        try:
            files.add(_file_id(os.fstat(fd)))
        except OSError:
            pass
    return files


def _own_files(manifest: Path) -> set[Path]:
    """What a manifest always reads: itself and its picks file (which may not exist yet)."""
    return {manifest, picks_path(manifest)}


@dataclass
class Batch:
    """What a batch of changed paths means."""

    #: manifest -> the changed paths that concern it; an empty list for a broken manifest retried
    #: quietly (any change may be what it lacked)
    touched: dict[Path, list[Path]] = field(default_factory=dict)
    #: manifests nobody knew of: dropped in, or renamed into place
    new: set[Path] = field(default_factory=set)
    #: files at the top of the folder that are not manifests, not reported before
    ignored: list[Path] = field(default_factory=list)


class WatchedFolder:
    def __init__(self, folder: Path, state_dir: Path, *, written: Iterable[Path] = (), streams: Iterable[int] = ()):
        """``written``: files this process writes besides state and outputs (the report);
        ``streams``: its file descriptors that may be redirected into the folder (stdout, stderr)."""
        self.folder = folder
        self.state_dir = state_dir
        self._written = {p.expanduser().resolve() for p in written}
        self._streams = _stream_files(streams)
        self.manifests: dict[Path, Any] = {}  # path -> last Manifest that loaded
        self.broken: dict[Path, str] = {}  # path -> error text of its last load
        self._inputs: dict[Path, set[Path]] = {}  # manifest -> files it read (last known)
        self._readers: dict[Path, set[Path]] = {}  # file -> manifests that read it
        self.wanted: Mapping[Path, tuple[Any, str]] = {}  # swapped whole, never changed in place
        self.current: tuple[Any, ...] = ()  # the manifests that load; swapped whole
        self._planned: set[Path] = set()
        self._noted: set[Path] = set()

    # --- what happened ------------------------------------------------------------------------

    def loaded(self, manifest: Any) -> None:
        """``manifest`` loaded: it is current, reads its inputs, wants its outputs."""
        self.broken.pop(manifest.path, None)
        self.manifests[manifest.path] = manifest
        self._set_inputs(manifest.path, set(manifest.inputs) | _own_files(manifest.path))
        self._rebuild()

    def failed(self, path: Path, error: str, tried: Iterable[Path] = ()) -> bool:
        """``path`` failed to load with ``error``, reading ``tried``. True when the error is the
        same as last time (a quiet retry need not say it again)."""
        self._set_inputs(path, self._inputs.get(path, set()) | set(tried) | _own_files(path))
        same = self.broken.get(path) == error
        self.broken[path] = error
        return same

    def forget(self, path: Path) -> bool:
        """``path`` is gone: stop planning it. False if it was never known."""
        if path not in self._inputs:
            return False
        self._set_inputs(path, set())
        del self._inputs[path]
        self.manifests.pop(path, None)
        self.broken.pop(path, None)
        self._rebuild()
        return True

    def first_plan(self, path: Path) -> bool:
        """Whether this is the manifest's first plan of the session (the start-up one)."""
        first = path not in self._planned
        self._planned.add(path)
        return first

    def note(self, paths: Iterable[Path]) -> list[Path]:
        """Of ``paths`` (files that are not manifests), those not reported before; now they are."""
        fresh = [p for p in paths if p not in self._noted]
        self._noted.update(fresh)
        return fresh

    # --- questions ----------------------------------------------------------------------------

    def readers(self, path: Path) -> set[Path]:
        """Manifests that read ``path``, or anything under it (a folder of inputs came or went)."""
        readers = set(self._readers.get(path, ()))
        for inp, who in self._readers.items():
            if inp != path and inp.is_relative_to(path):
                readers |= who
        return readers

    def inputs(self, manifest: Path) -> set[Path]:
        return set(self._inputs.get(manifest, ()))

    def unread(self, files: Iterable[Path]) -> list[Path]:
        """Of ``files``, those no manifest reads or writes."""
        return [p for p in files if p not in self._readers and p not in self.wanted]

    def outside_folders(self) -> set[Path]:
        """Folders of inputs outside the watched folder (watched on their own, not recursively)."""
        return {p.parent for p in self._readers if not p.is_relative_to(self.folder)}

    def ignored(self, path: Path) -> bool:
        """Paths whose changes mean nothing: outside the folder, temporary or hidden, and our own
        writes (the state folder, our outputs and output folders, our report and streams)."""
        if self.ours(path):
            return True
        try:
            rel = path.relative_to(self.folder)
        except ValueError:
            return True  # outside the folder and read by no manifest
        if any(is_temporary(part) for part in rel.parts):
            return True
        if path.is_relative_to(self.state_dir) or path in self.wanted:
            return True
        for m in self.manifests.values():
            out = m.output_dir
            if out != self.folder and not self.folder.is_relative_to(out) and path.is_relative_to(out):
                return True
        return False

    def ours(self, path: Path) -> bool:
        """Whether this process writes ``path`` besides state and outputs: a ``written`` file, or
        the file open at one of the ``streams`` (the same device and inode, whatever its name)."""
        if path in self._written:
            return True
        if not self._streams:
            return False
        try:
            return _file_id(path.stat()) in self._streams
        except OSError:  # gone, or never there
            return False

    def interesting(self, path: Path) -> bool:
        """Cheap, per event: could this path matter? (The batch decides what it means.) A file a
        manifest read is always watched, whatever its name, unless we write it ourselves."""
        if self.ours(path):
            return False
        if path in self._readers:
            return True
        if self.ignored(path):
            return False
        if path.parent == self.folder or self.broken:
            return True
        return any(p.is_relative_to(path) for p in self._readers)  # a folder of inputs came or went

    def triage(self, batch: Iterable[Path], is_manifest: Callable[[Path], bool] = looks_like_manifest) -> Batch:
        """Which manifests a batch of changed paths touches, which are new, what to note."""
        out = Batch()
        unexplained: list[Path] = []
        for path in sorted(batch):
            readers = self.readers(path)
            if not readers and path.parent == self.folder and is_manifest(path):
                readers = {path}
                out.new.add(path)
            if readers:
                for m in readers:
                    out.touched.setdefault(m, []).append(path)
            elif path.exists():
                unexplained.append(path)
        # Any change may be what a broken manifest lacked (a file it names, the removal of a
        # manifest whose outputs it collided with): retry them quietly.
        for m in set(self.broken) - set(out.touched):
            out.touched[m] = []
        out.touched = dict(sorted(out.touched.items()))
        out.ignored = self.note(p for p in unexplained if p.parent == self.folder and p.is_file())
        return out

    def stale(self, output: Path, key: str | None) -> Any | None:
        """The manifest to plan again when a render of ``key`` landed on ``output`` but the
        manifest now wants another video there; else None."""
        wanted = self.wanted.get(output)
        if wanted is None or wanted[1] == key or wanted[0].path in self.broken:
            return None
        return wanted[0]

    def others(self, path: Path) -> list[Any]:
        """The manifests that load, other than ``path``."""
        return [m for p, m in self.manifests.items() if p != path]

    def resumable(self) -> list[Path]:
        """Manifests whose last load succeeded."""
        return sorted(set(self.manifests) - set(self.broken))

    # --- bookkeeping --------------------------------------------------------------------------

    def _set_inputs(self, manifest: Path, inputs: set[Path]) -> None:
        for old in self._inputs.get(manifest, set()) - inputs:
            readers = self._readers.get(old)
            if readers is not None:
                readers.discard(manifest)
                if not readers:
                    del self._readers[old]
        for new in inputs:
            self._readers.setdefault(new, set()).add(manifest)
        self._inputs[manifest] = inputs

    def _rebuild(self) -> None:
        self.wanted = {job.output: (m, job.key) for m in self.manifests.values() for job in m.jobs}
        self.current = tuple(self.manifests.values())
