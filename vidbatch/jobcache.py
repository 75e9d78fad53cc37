"""The cache of expanded, validated jobs: a no-op ``plan`` or ``run`` without loading manifests.

Loading a manifest parses it, validates it against the JSON Schema, expands its rows, renders its
templates and checks every job against the API's rules: for 10,000 jobs, most of a no-op's time,
plus the imports of Jinja and the validator. When nothing that feeds the manifests changed, the
result is the same, so :func:`load` keeps it in the state folder
(``<state>/cache/<hash of the manifest paths and --var values>.json``, plain JSON written
atomically through :mod:`vidbatch.files`, never a pickle) and rebuilds the jobs from it, importing
only :mod:`vidbatch.manifest.model` (no Jinja, no JSON Schema, no HTTP, no sqlite-utils).

The cache must never be wrong, so an entry is used only when all of these are as they were:

- the vidbatch version and the source of what decides a job (facts, rules, identity, images, the
  manifest package, the JSON Schema): :func:`code_hash`;
- the working folder (problems name files relative to it) and the manifest paths and ``--var``
  values (they also name the file);
- every file the load read (manifests, included templates, foreach files, images): path, size,
  mtime, ctime and inode; the manifests' bytes always, and any file's bytes when its stat is
  ambiguous, i.e. it was modified within :data:`AMBIGUOUS_NS` of the load (a later edit in the
  same timestamp tick could leave size and times unchanged);
- the environment variables templates read, by name (an unset one too) and a salted hash of their
  values, never the values themselves (one could be a secret). Variables no template read do not
  matter. ``HOME`` always counts (``~`` in paths), and so do the variables that place the config
  file;
- the config file (its identity, or that there is none): the loader refuses a job that holds the
  API key, which may come from there.

Anything else (a missing file, a cache that does not parse, an older format) is a miss; a miss
costs a normal load plus making the entry (:class:`Pending`), which ``run`` writes once it holds
the state folder: ``plan`` writes nothing, so ``plan --check`` is fast after a ``run``. A load
with problems is never cached, nor one an edit raced (an input changed after the load began).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import facts
from .errors import ManifestProblem
from .manifest.model import ImageRef, Job, Manifest, ShotSequence

log = logging.getLogger(__name__)

#: Bump when the layout of a cache file changes: an older file is then a miss.
FORMAT = 3  # 2: jobs carry their shot and take (issue 14); 3: the config file is an input (issue 15)
#: A file modified this close to the load (or later) has an ambiguous stat: its bytes are hashed.
#: 2 s covers the coarsest common timestamps (FAT) and coarse kernel clocks everywhere else.
AMBIGUOUS_NS = 2_000_000_000
#: Environment variables that always count: paths may start with ``~``; the others place the
#: config file, whose API key no job may hold.
ALWAYS_READ = ("HOME", "VIDBATCH_CONFIG", "XDG_CONFIG_HOME")
_IMAGE = "$image"
#: An include, import or extends that may try a file that is missing (``ignore missing``, a list
#: of names, a name computed from variables): if that file appeared later, the jobs would change,
#: and no recorded input would say so. Such manifests are not cached.
_MAY_TRY_MISSING = re.compile(
    rb"ignore\s+missing"
    rb"|\{%-?\s*(?:include|import|extends|from)\s+(?!'[^'\\]*'|\"[^\"\\]*\")"
)
#: The wall clock the ambiguity of a stat is judged by (tests move it).
clock = time.time_ns
#: The modules and data whose source decides what a manifest expands to, and this cache itself
#: (paths inside vidbatch/).
_CODE = ("__init__.py", "facts.py", "rules.py", "identity.py", "images.py", "jobcache.py", "schemas/manifest.schema.json")
_CODE_FOLDERS = ("manifest",)


def code_hash() -> str:
    """sha256 of the vidbatch version and of the source of everything that decides a job."""
    from . import __version__

    return hashlib.sha256(f"{__version__}\0{source_hash()}".encode()).hexdigest()


@functools.cache
def source_hash() -> str:
    """sha256 of the facts table, the rules, the manifest package and the JSON Schema, as shipped."""
    root = Path(__file__).parent
    files = [root / name for name in _CODE]
    for folder in _CODE_FOLDERS:
        files.extend(sorted((root / folder).glob("*.py")))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class RecordingEnviron(Mapping[str, str]):
    """The environment as templates see it, noting every name they look up (set or not)."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.read: set[str] = set(ALWAYS_READ)
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
    """Where the entry for these manifests (resolved paths) and ``--var`` values lives."""
    named = json.dumps([[str(p) for p in manifests], sorted((variables or {}).items())])
    return state_dir / "cache" / (hashlib.sha256(named.encode()).hexdigest()[:32] + ".json")


@dataclass
class Pending:
    """An entry made at a miss, written by ``run`` once it holds the state folder (``plan``
    writes nothing). Made at load time: ``run --sim`` moves outputs after the load."""

    target: Path
    text: str

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
    (ManifestError as ever) with the entry to write. ``manifests`` are resolved paths of
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


# --- checking an entry ----------------------------------------------------------------------------


def read(
    target: Path, manifests: Sequence[Path], variables: Mapping[str, str] | None, environ: Mapping[str, str]
) -> list[Manifest] | None:
    """The cached manifests when every input is as it was, else None."""
    try:
        entry = json.loads(target.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    try:
        if not _valid(entry, manifests, variables, environ):
            return None
        return [_manifest(m) for m in entry["manifests"]]
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a damaged or foreign file
        log.debug("job cache %s unreadable: %s", target, e)
        return None


def _valid(entry: dict[str, Any], manifests: Sequence[Path], variables: Mapping[str, str] | None, environ: Mapping[str, str]) -> bool:
    if entry.get("format") != FORMAT or entry["code"] != code_hash() or entry["cwd"] != os.getcwd():
        return False
    if entry["paths"] != [str(p) for p in manifests] or entry["vars"] != _vars_hash(variables):
        return False
    env = entry["env"]
    if env["digest"] != _env_digest(env["salt"], env["names"], environ):
        return False
    if entry["config"] != _config_identity():
        return False
    return all(_unchanged(i) for i in entry["inputs"])


def _unchanged(identity: list[Any]) -> bool:
    path, size, mtime_ns, ctime_ns, ino, sha256 = identity
    try:
        st = os.stat(path)
    except OSError:
        return False
    if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != (size, mtime_ns, ctime_ns, ino):
        return False
    return sha256 is None or _sha256(path) == sha256


# --- writing an entry -----------------------------------------------------------------------------


def entry(
    loaded: Sequence[Manifest],
    manifests: Sequence[Path],
    variables: Mapping[str, str] | None,
    environ: RecordingEnviron,
    started_ns: int,
    config_file: list[Any] | None = None,
) -> str | None:
    """The cache entry (JSON) for ``loaded``, the result of a load begun at ``started_ns``; None
    when an input changed after the load began, or a template may have tried a missing file or
    listed the environment."""
    if environ.listed:
        return None
    for path in {str(p) for m in loaded for p in m.inputs} | {str(p) for p in manifests}:
        with open(path, "rb") as f:
            if _MAY_TRY_MISSING.search(f.read()):
                log.debug("job cache not written: %s may include a file that is not there", path)
                return None
    named = {str(p) for p in manifests}
    paths = sorted({str(p) for m in loaded for p in m.inputs} | named)
    inputs = []
    for path in paths:
        st = os.stat(path)
        if st.st_mtime_ns > started_ns or st.st_ctime_ns > started_ns:
            log.debug("job cache not written: %s changed during the load", path)
            return None
        ambiguous = max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - AMBIGUOUS_NS
        sha256 = _sha256(path) if ambiguous or path in named else None
        inputs.append([path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256])
    salt = secrets.token_hex(16)
    names = sorted(environ.read)
    data = {
        "format": FORMAT,
        "code": code_hash(),
        "cwd": os.getcwd(),
        "paths": [str(p) for p in manifests],
        "vars": _vars_hash(variables),
        "env": {"names": names, "salt": salt, "digest": _env_digest(salt, names, environ._environ)},
        "inputs": inputs,
        "config": _config_identity() if config_file is None else config_file,
        "manifests": [_manifest_json(m) for m in loaded],
    }
    return json.dumps(data, separators=(",", ":"))


def _config_identity() -> list[Any]:
    """The config file's path and identity (size, times, inode), or its path alone when there is
    none: an API key written there, or changed, is seen."""
    from .config import config_path

    path = str(config_path())
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _vars_hash(variables: Mapping[str, str] | None) -> str:
    return hashlib.sha256(json.dumps(sorted((variables or {}).items())).encode()).hexdigest()


def _env_digest(salt: str, names: Sequence[str], environ: Mapping[str, str]) -> str:
    values = [[name, environ.get(name)] for name in names]
    return hashlib.sha256((salt + json.dumps(values)).encode()).hexdigest()


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
