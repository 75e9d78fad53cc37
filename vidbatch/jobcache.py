"""The cache of expanded, validated jobs: a no-op ``plan`` or ``run`` without loading manifests.

Loading a manifest parses it, validates it against the JSON Schema, expands its rows, renders its
templates and checks every job against the API's rules: for 10,000 jobs, most of a no-op's time,
plus the imports of Jinja and the validator. When nothing that feeds the manifests changed, the
result is the same, so :func:`load` keeps it in the state folder
(``<state>/cache/<hash of the manifest paths and --var values>.json``, plain JSON written
atomically through :mod:`vidbatch.files`, never a pickle) and rebuilds the jobs from it, importing
only :mod:`vidbatch.manifest.model` (no Jinja, no JSON Schema, no HTTP, no sqlite-utils).

An entry is two lines: the header, a fingerprint of every input of the load
(:mod:`vidbatch.fingerprint` says what it covers and checks it: the cache must never be wrong),
then the jobs. The header also carries the *no-op summary* the fast path of ``run`` and
``plan --check`` reads (:mod:`vidbatch.noop`): each job's name, key and output path, and the
state migrations this code expects; it is null for manifests that path does not answer
(warnings to show, sequences, chained shots, a ``[prices]`` table).

Anything else (a missing file, a cache that does not parse, an older format) is a miss; a miss
costs a normal load plus making the entry (:class:`Pending`), which ``run`` writes once it holds
the state folder: ``plan`` writes nothing, so ``plan --check`` is fast after a ``run``. A load
with problems is never cached, nor one an edit raced (an input changed after the load began), nor
one whose templates may have tried a file that is not there or listed the environment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import facts, fingerprint
from .errors import ManifestProblem
from .manifest.model import ImageRef, Job, Manifest, ShotSequence

log = logging.getLogger(__name__)

_IMAGE = "$image"
#: An include, import or extends that may try a file that is missing (``ignore missing``, a list
#: of names, a name computed from variables): if that file appeared later, the jobs would change,
#: and no recorded input would say so. Such manifests are not cached.
_MAY_TRY_MISSING = re.compile(
    rb"ignore\s+missing"
    rb"|\{%-?\s*(?:include|import|extends|from)\s+(?!'[^'\\]*'|\"[^\"\\]*\")"
)
#: The wall clock a load is timed by, to judge which stats are ambiguous (tests move it).
clock = time.time_ns


class RecordingEnviron(Mapping[str, str]):
    """The environment as templates see it, noting every name they look up (set or not)."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.read: set[str] = set(fingerprint.ALWAYS_READ)
        #: Whether anything listed the whole environment: then no cache can say what mattered.
        self.listed = False

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._environ[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._environ

    def __iter__(self) -> Iterator[str]:
        self.listed = True
        return iter(self._environ)

    def __len__(self) -> int:
        self.listed = True
        return len(self._environ)


def cache_file(state_dir: Path, manifests: Sequence[Path], variables: Mapping[str, str] | None) -> Path:
    """Where the entry for these manifests (absolute paths) and ``--var`` values lives."""
    return Path(fingerprint.cache_file(str(state_dir), [str(p) for p in manifests], variables))


class Pending:
    """An entry made at a miss, written by ``run`` once it holds the state folder (``plan``
    writes nothing). Made at load time: ``run --sim`` moves outputs after the load."""

    def __init__(self, target: Path, text: str):
        self.target = target
        self.text = text

    def write(self) -> None:
        from . import files

        try:
            files.write_text(self.target, self.text, durable=False)
        except OSError as e:  # a cache that cannot be written costs speed, never the command
            log.debug("job cache not written: %s", e)


def load(
    state_dir: Path,
    manifests: Sequence[Path],
    variables: Mapping[str, str] | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Manifest], Pending | None]:
    """The manifests, from the cache when it is valid (then no Pending), else loaded
    (ManifestError as ever) with the entry to write. ``manifests`` are absolute paths of
    manifest files."""
    environ = os.environ if environ is None else environ
    target = cache_file(state_dir, manifests, variables)
    cached = read(target, manifests, variables, environ)
    if cached is not None:
        return cached, None
    from .manifest import load_manifests

    started = clock()
    config_file = _config_identity()  # before the load: a later edit is then seen as a change
    recording = RecordingEnviron(environ)
    loaded = load_manifests(manifests, variables=variables, environ=recording, read_config=True)
    try:
        text = entry(loaded, manifests, variables, recording, started, config_file)
    except (OSError, TypeError, ValueError) as e:  # TypeError: a value JSON cannot hold (a TOML date)
        log.debug("job cache entry not made: %s", e)
        text = None
    return loaded, (Pending(target, text) if text is not None else None)


def read(
    target: Path, manifests: Sequence[Path], variables: Mapping[str, str] | None, environ: Mapping[str, str]
) -> list[Manifest] | None:
    """The cached manifests when every input is as it was, else None."""
    found = fingerprint.read(str(target))
    if found is None:
        return None
    header, body = found
    if not fingerprint.holds(header, [str(p) for p in manifests], variables, environ):
        return None
    try:
        return [_manifest(m) for m in json.loads(body)]
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a damaged or foreign file
        log.debug("job cache %s unreadable: %s", target, e)
        return None


def entry(
    loaded: Sequence[Manifest],
    manifests: Sequence[Path],
    variables: Mapping[str, str] | None,
    environ: RecordingEnviron,
    started_ns: int,
    config_file: list[Any] | None = None,
) -> str | None:
    """The cache entry (two lines of JSON) for ``loaded``, the result of a load begun at
    ``started_ns``; None when an input changed after the load began, or a template may have tried
    a missing file or listed the environment."""
    if environ.listed:
        return None
    named = [str(p) for p in manifests]
    paths = {str(p) for m in loaded for p in m.inputs} | set(named)
    for path in paths:
        with open(path, "rb") as f:
            if _MAY_TRY_MISSING.search(f.read()):
                log.debug("job cache not written: %s may include a file that is not there", path)
                return None
    inputs = fingerprint.inputs(paths, named, started_ns)
    if inputs is None:
        log.debug("job cache not written: an input changed during the load")
        return None
    config = _config_identity() if config_file is None else config_file
    from .picks import picks_path

    try:  # before the summary reads them: an edit in between is then seen as a change
        picks = fingerprint.picks(str(picks_path(m.path)) for m in loaded)
    except OSError as e:
        log.debug("job cache not written: %s", e)
        return None
    head = fingerprint.header(named, variables, environ.read, environ._environ, inputs, config, noop_summary(loaded), picks)
    body = [_manifest_json(m) for m in loaded]
    return json.dumps(head, separators=(",", ":")) + "\n" + json.dumps(body, separators=(",", ":"))


def _config_identity() -> list[Any]:
    """The config file's path and identity, or its path alone when there is none: an API key
    written there, or changed, is seen."""
    from .config import config_path

    return fingerprint.identity(str(config_path()))


def noop_summary(loaded: Sequence[Manifest]) -> dict[str, Any] | None:
    """What the no-op fast path (:mod:`vidbatch.noop`) needs of these manifests: each manifest's
    path and output folder, each job's manifest (index), name, key and output path in plan order,
    and the names of the state migrations this code applies. None when that path must not answer
    for them: warnings to show, sequences to join, chained shots, a ``[prices]`` table, or a picks
    file that ``run`` warns about (one it cannot read, a pick of a shot the manifest no longer
    has; the header keeps each picks file as it was, :func:`vidbatch.fingerprint.picks`)."""
    from . import picks
    from .errors import ManifestError
    from .state import migrations

    for m in loaded:
        if m.warnings or m.sequences or m.prices or any(j.warnings or j.frame_sources() for j in m.jobs):
            return None
    for m in loaded:
        try:
            if picks.load(m.path, m.jobs).stale():
                return None
        except ManifestError:
            return None
    return {
        "migrations": migrations.names,
        "manifests": [[str(m.path), str(m.output_dir)] for m in loaded],
        "jobs": [[i, j.name, j.key, str(j.output)] for i, m in enumerate(loaded) for j in m.jobs],
    }


# --- jobs to JSON and back ------------------------------------------------------------------------


def _manifest_json(m: Manifest) -> dict[str, Any]:
    return {
        "path": str(m.path),
        "output_dir": str(m.output_dir),
        "inputs": sorted(str(p) for p in m.inputs),
        "prices": m.prices,
        "warnings": [[w.file, w.message, w.job, w.field, w.line] for w in m.warnings],
        "jobs": [
            [j.name, j.index, _relative(j.output, m.output_dir), _request_json(j.request), j.mode.value, j.key, j.warnings, j.entry, j.origin, j.line, j.shot, j.take]
            for j in m.jobs
        ],
        "sequences": [[q.name, q.shots, _relative(q.output, m.output_dir), q.line] for q in m.sequences],
    }


def _manifest(data: dict[str, Any]) -> Manifest:
    path = Path(data["path"])
    output_dir = Path(data["output_dir"])
    modes = {mode.value: mode for mode in facts.Mode}
    child = _child_maker(output_dir)
    jobs = [
        Job(
            name=name,
            manifest=path,
            index=index,
            output=child(output),
            request=_request(request),
            mode=modes[mode],
            key=key,
            warnings=warnings,
            entry=entry,
            origin=origin,
            line=line,
            shot=shot,
            take=take,
        )
        for name, index, output, request, mode, key, warnings, entry, origin, line, shot, take in data["jobs"]
    ]
    return Manifest(
        path,
        output_dir,
        jobs,
        [ManifestProblem(file, message, job, field, line) for file, message, job, field, line in data["warnings"]],
        {Path(p) for p in data["inputs"]},
        prices=data.get("prices"),
        sequences=[ShotSequence(name, shots, child(output), line) for name, shots, output, line in data.get("sequences", [])],
    )


def _relative(output: Path, output_dir: Path) -> str:
    """``output`` relative to ``output_dir`` (always inside it), else absolute."""
    text, base = str(output), str(output_dir) + os.sep
    return text[len(base):] if text.startswith(base) else text


def _child_maker(base: Path) -> Callable[[str], Path]:
    """A function from a path relative to ``base`` (or absolute) to the Path: ``base / rel``.

    Parsing 10,000 paths is a third of a cached load; on CPython 3.11 a plain file name is joined
    onto ``base``'s parsed parts without parsing (checked once against the plain way), elsewhere
    the plain way is used.
    """
    fast = getattr(type(base), "_from_parsed_parts", None)
    parts = getattr(base, "_parts", None)
    if sys.version_info[:2] == (3, 11) and fast is not None and isinstance(parts, list):
        drv, root = base._drv, base._root  # type: ignore[attr-defined]

        def child(rel: str) -> Path:
            if os.sep in rel or rel in ("", ".", "..") or (os.altsep and os.altsep in rel):
                return base / rel
            return fast(drv, root, [*parts, rel])  # type: ignore[no-any-return]

        probe = "probe.mp4"
        if child(probe) == base / probe and str(child(probe)) == str(base / probe):
            return child
    return lambda rel: base / rel


def _image_json(ref: ImageRef) -> dict[str, Any]:
    return {_IMAGE: [ref.source, None if ref.path is None else str(ref.path), ref.sha256, ref.mime, ref._data_url]}


def _request_json(request: dict[str, Any]) -> dict[str, Any]:
    from .manifest.model import map_images

    return map_images(request, _image_json)


def _request(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_request_json`: ImageRefs where the image fields hold tagged values."""
    for name in facts.IMAGE_FIELDS:
        value = data.get(name)
        if isinstance(value, dict) and _IMAGE in value:
            data[name] = _image(value)
    for name in facts.V2_JOB_LIST_FIELDS:  # a MiniMax-H3 job's reference media
        if isinstance(data.get(name), list):
            data[name] = [_image(x) if isinstance(x, dict) and _IMAGE in x else x for x in data[name]]
    for subject in data.get("subject_reference") or ():
        if isinstance(subject, dict) and isinstance(subject.get("image"), list):
            subject["image"] = [_image(x) if isinstance(x, dict) and _IMAGE in x else x for x in subject["image"]]
    return data


def _image(value: dict[str, Any]) -> ImageRef:
    source, path, sha256, mime, data_url = value[_IMAGE]
    return ImageRef(source, None if path is None else Path(path), sha256, mime, _data_url=data_url)
