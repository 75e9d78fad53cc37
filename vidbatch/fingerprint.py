"""The fingerprint of a manifest load: everything that can change what manifests expand to.

:mod:`vidbatch.jobcache` keeps the expanded jobs of a load in
``<state>/cache/<hash of the manifest paths and --var values>.json``. This module names that file
and writes and checks its first line, the *header*: a fingerprint of every input of the load.
The jobs follow on the second line. Whether an entry still holds is answered from the header
alone with the standard library (no pathlib, typing, dataclasses or logging), because the no-op
fast path (:mod:`vidbatch.noop`) asks it before anything else is imported (issue 15).

An entry holds only when all of these are as they were:

- the vidbatch version and the source of what decides a job (facts, rules, identity, images, the
  manifest package, the JSON Schema, this module and the job cache) and of the state's
  migrations (the header names them for the fast path): :func:`code_hash`;
- the working folder (problems name files relative to it) and the manifest paths and ``--var``
  values (they also name the file);
- every file the load read (manifests, included templates, foreach files, images): path, size,
  mtime, ctime and inode; the manifests' bytes always, and any file's bytes when its stat is
  ambiguous, i.e. it was modified within :data:`AMBIGUOUS_NS` of the load (a later edit in the
  same timestamp tick could leave size and times unchanged);
- the environment variables templates read, by name (an unset one too) and a salted hash of their
  values, never the values themselves (one could be a secret). ``HOME`` always counts (``~`` in
  paths), and so do the variables that place the config file;
- the config file (its identity, or that there is none): the loader refuses a job that holds the
  API key, which may come from there. The header keeps its path; the variables that place it
  are in the environment's hash, so the same path is checked again;
- each manifest's picks file (its sha256, or that there is none): it changes no job, but the
  no-op summary says whether ``run`` has a warning about it to show.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Bump when the layout of a cache file changes: an older file is then a miss.
#: 2: jobs carry their shot and take (issue 14); 3: the config file is an input (issue 15);
#: 4: a header line, with the no-op summary, before the jobs (issue 15); 5: the picks files.
FORMAT = 5
#: A file modified this close to the load (or later) has an ambiguous stat: its bytes are hashed.
#: 2 s covers the coarsest common timestamps (FAT) and coarse kernel clocks everywhere else.
AMBIGUOUS_NS = 2_000_000_000
#: Environment variables that always count: paths may start with ``~``; the others place the
#: config file, whose API key no job may hold.
ALWAYS_READ = ("HOME", "VIDBATCH_CONFIG", "XDG_CONFIG_HOME")
#: The modules and data whose source decides what a manifest expands to, the cache itself, and
#: the state's migrations (paths inside vidbatch/).
_CODE = (
    "__init__.py", "facts.py", "rules.py", "identity.py", "images.py", "fingerprint.py", "jobcache.py", "state.py",
    "schemas/manifest.schema.json",
)
_CODE_FOLDERS = ("manifest",)
_ROOT = os.path.dirname(os.path.abspath(__file__))


def code_hash() -> str:
    """sha256 of the vidbatch version and of the source of everything that decides a job."""
    from . import __version__

    return hashlib.sha256(f"{__version__}\0{source_hash()}".encode()).hexdigest()


@functools.cache
def source_hash() -> str:
    """sha256 of the files named by ``_CODE`` and ``_CODE_FOLDERS``, as shipped."""
    names = list(_CODE)
    for folder in _CODE_FOLDERS:
        names.extend(sorted(f"{folder}/{f}" for f in os.listdir(os.path.join(_ROOT, folder)) if f.endswith(".py") and not f.startswith(".")))
    h = hashlib.sha256()
    for name in names:
        with open(os.path.join(_ROOT, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def cache_file(state_dir: str, manifests: Sequence[str], variables: Mapping[str, str] | None) -> str:
    """Where the entry for these manifests (absolute paths, as given) and ``--var`` values lives."""
    named = json.dumps([list(manifests), sorted((variables or {}).items())])
    return os.path.join(state_dir, "cache", hashlib.sha256(named.encode()).hexdigest()[:32] + ".json")


# --- reading and checking -------------------------------------------------------------------------


def read(target: str) -> tuple[dict[str, Any], bytes] | None:
    """The header of the entry at ``target`` and the bytes after it (the jobs); None when there
    is no such file or it is not an entry of this :data:`FORMAT`."""
    try:
        with open(target, "rb") as f:
            data = f.read()
    except OSError:
        return None
    first, _, rest = data.partition(b"\n")
    try:
        header = json.loads(first)
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return None
    return header, rest


def holds(header: Mapping[str, Any], manifests: Sequence[str], variables: Mapping[str, str] | None, environ: Mapping[str, str]) -> bool:
    """Whether every input ``header`` fingerprints is as it was (see the module docstring)."""
    try:
        if header["code"] != code_hash() or header["cwd"] != os.getcwd():
            return False
        if header["paths"] != list(manifests) or header["vars"] != vars_hash(variables):
            return False
        env = header["env"]
        if env["digest"] != env_digest(env["salt"], env["names"], environ):
            return False
        config = header["config"]
        if identity(config[0]) != config:
            return False
        if not all(unchanged(i) for i in header["inputs"]):
            return False
        return all(_sha256_or_none(path) == sha256 for path, sha256 in header["picks"])
    except (KeyError, TypeError, ValueError, IndexError):  # a damaged or foreign file
        return False
    except OSError:  # a picks file that cannot be read: the normal path says why
        return False


def unchanged(recorded: Sequence[Any]) -> bool:
    """Whether the file ``recorded`` (path, size, mtime, ctime, inode, sha256 or None) is as it was."""
    path, size, mtime_ns, ctime_ns, ino, sha256 = recorded
    try:
        st = os.stat(path)
    except OSError:
        return False
    if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != (size, mtime_ns, ctime_ns, ino):
        return False
    return sha256 is None or sha256_file(path) == sha256


def identity(path: str) -> list[Any]:
    """A file's path and identity (size, times, inode), or its path alone when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


# --- making ---------------------------------------------------------------------------------------


def header(
    manifests: Sequence[str],
    variables: Mapping[str, str] | None,
    env_names: Iterable[str],
    environ: Mapping[str, str],
    inputs: list[list[Any]],
    config: list[Any],
    noop: Any,
    picks: list[list[Any]],
) -> dict[str, Any]:
    """The header of a new entry: ``inputs`` from :func:`inputs`, ``config`` the config file's
    :func:`identity` taken before the load, ``noop`` the summary the fast path reads, ``picks``
    from :func:`picks` taken before it."""
    salt = os.urandom(16).hex()
    names = sorted(env_names)
    return {
        "format": FORMAT,
        "code": code_hash(),
        "cwd": os.getcwd(),
        "paths": list(manifests),
        "vars": vars_hash(variables),
        "env": {"names": names, "salt": salt, "digest": env_digest(salt, names, environ)},
        "inputs": inputs,
        "config": config,
        "noop": noop,
        "picks": picks,
    }


def picks(paths: Iterable[str]) -> list[list[Any]]:
    """Each picks file's path and sha256, or its path and None when there is none."""
    return [[path, _sha256_or_none(path)] for path in paths]


def _sha256_or_none(path: str) -> str | None:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


def inputs(paths: Iterable[str], named: Iterable[str], started_ns: int) -> list[list[Any]] | None:
    """The identity of each file a load begun at ``started_ns`` read, with the bytes' sha256 of
    the ``named`` manifests and of files whose stat is ambiguous; None when one changed after the
    load began (the entry would describe files the load did not see)."""
    named = set(named)
    out = []
    for path in sorted(set(paths) | named):
        st = os.stat(path)
        if st.st_mtime_ns > started_ns or st.st_ctime_ns > started_ns:
            return None
        ambiguous = max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - AMBIGUOUS_NS
        sha256 = sha256_file(path) if ambiguous or path in named else None
        out.append([path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256])
    return out


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def vars_hash(variables: Mapping[str, str] | None) -> str:
    return hashlib.sha256(json.dumps(sorted((variables or {}).items())).encode()).hexdigest()


def env_digest(salt: str, names: Sequence[str], environ: Mapping[str, str]) -> str:
    values = [[name, environ.get(name)] for name in names]
    return hashlib.sha256((salt + json.dumps(values)).encode()).hexdigest()
