"""From manifest files to validated jobs: parse, check structure, expand, render, check, key.

The pipeline for one manifest, each step collecting every problem it can before giving up:

1. read and parse (a syntax error stops here: nothing else can be trusted);
2. check the structure against the JSON Schema (problems stop here: expansion needs the shape);
3. expand each ``[[jobs]]`` table into rows (matrix x foreach);
4. for each row, a :class:`_Draft` job passes through named steps (``_Builder.steps``), each
   returning the problems it found into one collector (:class:`_Problems`): row values, name
   (unique), mode (image sources, then the defaults the mode does not take are dropped), images,
   prompt, output, then the API rules of :func:`vidbatch.rules.check_request`. A problem in the
   row values or the name stops that job; the later steps still report theirs. A MiniMax-H3 job
   (its model's API is V2) takes V2's fields: its media (frames, reference images, videos,
   audios) are checked by kind, and its rules are :func:`vidbatch.rules.check_v2_request` on the
   body it would send, each problem named by the job's own field (``reference_images[2]``); a
   field only the other API has is an error on the job, and left out when it comes from
   ``[defaults]``;
5. across every manifest checked together: no two jobs may write the same output, and no output
   (a job's or a sequence's) may overwrite a file any of them reads (:attr:`Manifest.inputs`:
   a manifest, a template, a rows file, an image); :func:`check_output_collisions` offers the
   jobs' check to callers holding loaded manifests.

Per job, fields come from three places, later winning: ``[defaults]``, then the row (a matrix or
foreach key named like a request field fills that field), then the job table itself. Template
variables likewise: ``[vars]``, then ``--var`` overrides, then the row's values, then the built-ins
``env``, ``row`` and (after the name is rendered) ``name``.

A :class:`_Session` holds what is shared across the manifests of one call: the environment, the
``--var`` overrides, the image cache (each local image is read once, however many jobs use it),
and the realpath cache for output folders.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config, facts, files, images, rules
from ..errors import ConfigError, ManifestError, ManifestProblem
from ..identity import MAX_TAKES, content_key
from ..prices import manifest_rows as price_rows
from . import frames
from . import rows as rows_mod
from . import schema
from .model import ImageRef, Job, Manifest, ManifestResult, ShotSequence, image_fields, map_images
from .source import Document, FileTooLarge, SourceError, load_document, read_problem
from .templates import RESERVED_NAMES, TemplateProblem, Templates, is_template

DEFAULT_OUTPUT_DIR = "renders"
DEFAULT_OUTPUT = "{{ name }}.mp4"
#: The default output of take N > 1 of a shot (take 1 keeps :data:`DEFAULT_OUTPUT`, so giving a
#: finished shot more takes keeps its file and its key).
DEFAULT_TAKE_OUTPUT = "{{ name }}.take{{ take }}.mp4"
#: The template variable (and matrix or foreach key) that is a job's take number.
TAKE_VARIABLE = "take"
#: The job fields whose strings are Jinja templates. Everything else is taken literally.
TEMPLATED_FIELDS = ("name", "prompt", "output", *facts.IMAGE_FIELDS, "subject_reference", *facts.V2_JOB_LIST_FIELDS)
#: Every field of a job's request: v1's, and the flat form of V2's (facts.V2_JOB_FIELDS).
JOB_REQUEST_FIELDS: dict[str, type | tuple[type, ...]] = {**facts.REQUEST_FIELDS, **facts.V2_JOB_FIELDS}
#: Fields of one API generation only. On a job of the other they are an error (from [defaults]:
#: not sent, as a default another mode does not take).
V1_ONLY_FIELDS = tuple(f for f in facts.REQUEST_FIELDS if f not in facts.V2_JOB_FIELDS)
V2_ONLY_FIELDS = tuple(f for f in facts.V2_JOB_FIELDS if f not in facts.REQUEST_FIELDS)
#: The kind of medium each V2 media field holds, and the field of each content role.
V2_FIELD_KIND = {
    "first_frame_image": "image",
    "last_frame_image": "image",
    "reference_images": "image",
    "reference_videos": "video",
    "reference_audios": "audio",
}
_ROLE_FIELD = {role: name for name, role in facts.V2_JOB_MEDIA_FIELDS.items()}
#: A name longer than this would make file names some file systems refuse (255 bytes with .mp4).
NAME_MAX_CHARS = 200
#: The longest file name (in bytes, UTF-8) most file systems take.
FILE_NAME_MAX_BYTES = 255
#: What the staging name of :func:`vidbatch.files.staging_path` adds to a file name, in bytes:
#: every output is first written as ``.NAME.XXXXXXXX.vidbatch-new``, so NAME must leave room.
STAGING_EXTRA_BYTES = len(files.staging_path(Path("x")).name) - 1
#: Longest output file name, in bytes, and so longest job name (which gets ``.mp4``).
OUTPUT_NAME_MAX_BYTES = FILE_NAME_MAX_BYTES - STAGING_EXTRA_BYTES
NAME_MAX_BYTES = OUTPUT_NAME_MAX_BYTES - len(".mp4")
#: File names Windows reserves for devices, with or without an extension (``CON``, ``nul.txt``).
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)
#: Most jobs one manifest may expand to, unless its ``max_jobs`` (or the caller's) says otherwise.
DEFAULT_MAX_JOBS = 10_000
#: The most a manifest's own ``max_jobs`` may allow (the schema's maximum): a million jobs take a
#: minute and 1-2 GB to expand; ten million would exhaust the machine's memory.
MAX_JOBS_CEILING = 1_000_000
#: Characters a name (and each folder of an output path) may not contain: path separators, and
#: what Windows and macOS refuse in file names, so a render folder can be copied anywhere.
NAME_FORBIDDEN = '/\\<>:"|?*'
#: After this many problems from one [[jobs]] table, the rest are counted, not listed.
MAX_PROBLEMS_PER_TABLE = 20

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A template that reads the take number (``{{ take }}``, ``{{ "%02d" % take }}``...).
_USES_TAKE = re.compile(r"(\{\{|\{%)[^}]*\btake\b")
#: The fields rules.mode_of decides the mode from.
_MODE_FIELDS = ("model", *facts.IMAGE_FIELDS, "subject_reference", *facts.V2_JOB_LIST_FIELDS)
_BOOL_TEXT = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


_NAME_BAD_CHAR = re.compile("[\x00-\x1f\x7f" + re.escape(NAME_FORBIDDEN) + "]")
#: Characters that make a name display as something else: C1 controls, and the bidirectional
#: overrides and isolates ("abc\u202ecod.exe" shows as "abcexe.doc").
_NAME_DECEPTIVE = re.compile("[\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def name_problem(name: str, *, max_bytes: int = NAME_MAX_BYTES) -> str | None:
    """Why ``name`` cannot be a job name (and a file name), or None. ``max_bytes``: the most
    UTF-8 bytes it may take (a job name leaves room for ``.mp4`` and the staging name)."""
    if not name:
        return "is empty"
    if len(name) > NAME_MAX_CHARS:
        return f"is {len(name)} characters long; at most {NAME_MAX_CHARS}"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError as e:
        return f"contains a lone surrogate (\\u{ord(name[e.start]):04x}), which is not text"
    if size > max_bytes:
        return (
            f"{name[:20]!r}… takes {size} bytes as a file name; at most {max_bytes}, to leave room for "
            f"the extension and the name vidbatch writes it under first ({FILE_NAME_MAX_BYTES} bytes in all)"
        )
    deceptive = _NAME_DECEPTIVE.search(name)
    if deceptive:
        return (
            f"{name!r} contains {unicodedata.name(deceptive.group(0), 'a control character')} "
            f"(U+{ord(deceptive.group(0)):04X}), which makes a file name display as something else"
        )
    if name.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_RESERVED:
        return f"{name!r} is a device name on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9), which no file there can have"
    bad = _NAME_BAD_CHAR.search(name)
    if bad:
        c = bad.group(0)
        if c in "/\\":
            return (
                f"{name!r} contains a path separator: a name is a file name, not a path "
                "(to write into a folder, set output = \"folder/{{ name }}.mp4\")"
            )
        if ord(c) < 32 or ord(c) == 127:
            return f"{name!r} contains a control character"
        return f"{name!r} contains {c!r}; names become file names, so {' '.join(NAME_FORBIDDEN)} are not allowed"
    if name[0] == ".":
        return f"{name!r} starts with a dot; names become file names, and those would be hidden or leave the folder"
    if name[0].isspace() or name[-1].isspace() or name[-1] == ".":
        return f"{name!r} starts or ends with a space or ends with a dot, which some file systems drop"
    return None


def take_name(shot: str, take: int) -> str:
    """The job name of take ``take`` of ``shot``: the shot's name for take 1, ``shot.takeN`` after."""
    return shot if take == 1 else f"{shot}.take{take}"


def output_parts(text: str) -> tuple[list[str], str | None]:
    """The folders and file name of an output path relative to output_dir, or a problem."""
    if not text:
        return [], "is empty"
    if "\\" in text:
        return [], f"{text!r} uses a backslash; separate folders with /"
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text):
        return [], f"{text!r} is absolute; outputs are relative to output_dir and stay inside it"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return [], f"{text!r} leaves output_dir: '..' is not allowed in an output path"
    if not parts or text.endswith("/"):
        return [], f"{text!r} names a folder, not a file"
    for i, part in enumerate(parts):
        problem = name_problem(part, max_bytes=OUTPUT_NAME_MAX_BYTES if i == len(parts) - 1 else FILE_NAME_MAX_BYTES)
        if problem:
            return [], f"{text!r}: {problem.replace(repr(part) + ' ', '', 1)}"
    return parts, None


def parse_text_value(field_name: str, text: str) -> Any:
    """A CSV cell's text as the type of the request field it fills. Raises ValueError."""
    expected = JOB_REQUEST_FIELDS.get(field_name)
    if expected is int:
        if not text.strip().isdigit():
            raise ValueError(f"must be a whole number, not {text!r}")
        return int(text)
    if expected is bool:
        value = _BOOL_TEXT.get(text.strip().lower())
        if value is None:
            raise ValueError(f"must be true or false, not {text!r}")
        return value
    return text


class _ImageCache:
    """Each local image is read and checked once per session, however many jobs use it."""

    def __init__(self) -> None:
        self._files: dict[Path, images.ImageInfo | str] = {}
        self._data: dict[str, ImageRef | str] = {}
        self._resolved: dict[tuple[Path, str], tuple[ImageRef | None, str | None, Path | None]] = {}

    def resolve(self, source: str, folder: Path) -> tuple[ImageRef | None, str | None, Path | None]:
        """(ref, problem, local path) for an image as written in a manifest."""
        key = (folder, source)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve(source, folder)
        return found

    def resolve_media(self, source: str, folder: Path, kind: str) -> tuple[ImageRef | None, str | None, Path | None]:
        """(ref, problem, local path) for a medium of a V2 job (``kind``: image, video, audio):
        as :meth:`resolve`, and ``mm_file://ID`` (a file the user uploaded) passes through."""
        if source.startswith(facts.V2_FILE_URL_SCHEME):
            if not source[len(facts.V2_FILE_URL_SCHEME):].strip():
                return None, f"{source} names no file: write {facts.V2_FILE_URL_SCHEME}FILE_ID", None
            return ImageRef(source, None, None, None), None, None
        if kind == "image":
            return self.resolve(source, folder)
        key = (folder, f"{kind}\0{source}")
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = self._resolve_media(source, folder, kind)
        return found

    def _resolve_media(self, source: str, folder: Path, kind: str) -> tuple[ImageRef | None, str | None, Path | None]:
        formats = facts.V2_MEDIA_FORMATS[kind]
        if images.is_remote(source):
            return ImageRef(source, None, None, None), None, None
        if source.startswith("data:"):
            try:
                _, data = images.decode_data_url(source)
            except ValueError as e:
                return None, f"{kind} data URL is not usable: {e}", None
            short = f"{source[: source.index(',') + 1]}…({len(data)} bytes)"
            problems = images.media_problems(kind, data)
            if problems:
                return None, f"{kind} {short} " + "; ".join(problems), None
            mime = formats[images.sniff_media(kind, data[:16]) or ""]
            sha = hashlib.sha256(data).hexdigest()
            url = source if source.startswith(f"data:{mime};") else images.to_data_url(data, mime)
            return ImageRef(short, None, sha, mime, _data_url=url), None, None
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", source):
            return None, f"{kind} {source} must be a local path, an http(s) URL, a data URL or {facts.V2_FILE_URL_SCHEME}FILE_ID", None
        path = Path(os.path.normpath(folder / Path(source).expanduser()))
        most = facts.V2_MEDIA_MAX_BYTES[kind]
        try:
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode) and st.st_size > most:
                return None, f"{kind} {source} " + (images.media_size_problem(kind, st.st_size) or ""), path
            data = images.read_regular(path, most)
        except FileTooLarge as e:
            return None, f"{kind} {source} " + (images.media_size_problem(kind, e.size) or ""), path
        except FileNotFoundError:
            return None, f"{kind} {source} not found ({path})", path
        except IsADirectoryError:
            return None, f"{kind} {source} is a folder, not a {kind} file ({path})", path
        except OSError as e:
            return None, f"{kind} {source} {read_problem(e, path)}", path
        fmt = images.sniff_media(kind, data[:16])
        if fmt is None:
            names = ", ".join(f.upper() for f in formats)
            return None, f"{kind} {source} is not a {kind} the API takes ({names})", path
        return ImageRef(source, path, hashlib.sha256(data).hexdigest(), formats[fmt]), None, path

    def _resolve(self, source: str, folder: Path) -> tuple[ImageRef | None, str | None, Path | None]:
        if frames.is_frame(source):  # a chained shot: the frame exists once its source renders
            try:
                spec = frames.parse(source)
            except ValueError as e:
                return None, str(e), None
            return ImageRef(spec.text, None, None, "image/png"), None, None
        if images.is_remote(source):
            return ImageRef(source, None, None, None), None, None
        if source.startswith("data:"):
            return (*self._data_url(source), None)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", source):
            return None, f"image {source} must be a local path, an http(s) URL or a data URL", None
        path = Path(os.path.normpath(folder / Path(source).expanduser()))
        info = self._files.get(path)
        if info is None:
            info = self._files[path] = self._inspect(source, path)
        if isinstance(info, str):
            return None, info, path
        limits = images.limit_problems(info)
        if limits:
            return None, f"image {source} " + "; ".join(limits), path
        return ImageRef(source, path, info.sha256, info.mime), None, path

    @staticmethod
    def _inspect(source: str, path: Path) -> images.ImageInfo | str:
        try:
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode) and st.st_size >= facts.IMAGE_MAX_BYTES:
                return _ImageCache._header_only(path, st.st_size)
            return images.inspect_file(path)  # refuses what is not a regular file, never blocks
        except FileTooLarge as e:  # grew since the stat
            return _ImageCache._header_only(path, e.size)
        except FileNotFoundError:
            return f"image {source} not found ({path})"
        except IsADirectoryError:
            return f"image {source} is a folder, not an image file ({path})"
        except OSError as e:
            return f"image {source} {read_problem(e, path)}"

    @staticmethod
    def _header_only(path: Path, size: int) -> images.ImageInfo:
        """A file over the API's limit: its header is enough to say why it is refused."""
        try:
            with path.open("rb") as f:
                head = f.read(64 * 1024)
        except OSError:
            head = b""
        info = images.inspect_bytes(head)
        return images.ImageInfo(info.format, info.width, info.height, size, "")

    def _data_url(self, source: str) -> tuple[ImageRef | None, str | None]:
        cached = self._data.get(source)
        if cached is None:
            try:
                mime, data = images.decode_data_url(source)
            except ValueError as e:
                cached = f"image data URL is not usable: {e}"
            else:
                info = images.inspect_bytes(data)
                limits = images.limit_problems(info)
                short = f"{source[: source.index(',') + 1]}…({len(data)} bytes)"
                if limits:
                    cached = f"image {short} " + "; ".join(limits)
                else:
                    cached = ImageRef(short, None, info.sha256, info.mime or mime, _data_url=source)
            self._data[source] = cached
        return (cached, None) if isinstance(cached, ImageRef) else (None, cached)


class _Session:
    def __init__(
        self,
        variables: Mapping[str, str] | None,
        environ: Mapping[str, str] | None,
        max_jobs: int | None = None,
        read_config: bool | None = None,
    ):
        self.overrides = dict(variables or {})
        self.environ = os.environ if environ is None else environ
        self.max_jobs = max_jobs
        self.images = _ImageCache()
        self.cwd = os.getcwd()
        self._real: dict[str, str] = {}
        self._mounts: list[tuple[str, str]] | None = None
        #: The API key, when one is set: no job's request, name or output may contain it; and
        #: where it was found, in words for that problem.
        self.secret, self.secret_source = _api_key(
            self.environ, read_config=environ is None if read_config is None else read_config
        )

    def filesystem_type(self, path: str) -> str | None:
        """The type of the file system ``path`` is on (Linux: from /proc/self/mounts), or None."""
        if self._mounts is None:
            self._mounts = []
            try:
                with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) >= 3:
                            self._mounts.append((fields[1].replace("\\040", " "), fields[2]))
            except OSError:
                pass
            self._mounts.sort(key=lambda m: len(m[0]), reverse=True)
        for mount, kind in self._mounts:
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return kind
        return None

    def display(self, path: Path | str) -> str:
        """``path`` relative to the working folder when it is inside it, else absolute."""
        rel = os.path.relpath(path, self.cwd)
        return str(path) if rel.startswith("..") else rel

    def realpath(self, path: Path | str) -> str:
        key = str(path)
        real = self._real.get(key)
        if real is None:
            real = self._real[key] = os.path.realpath(key)
        return real

    def check(self, given: str | Path) -> ManifestResult:
        path = Path(given).expanduser().resolve()
        display = self.display(path)
        result = ManifestResult(Path(given), None, inputs={path})
        try:
            doc = load_document(path)
        except SourceError as e:
            # named as given: a symbolic link to /dev/zero is "shots.toml", not "/dev/zero"
            shown = self.display(os.path.abspath(Path(given).expanduser()))
            result.problems.append(ManifestProblem(shown, e.message, line=e.line))
            return result
        structural = schema.problems(doc, display)
        if structural:
            result.problems.extend(structural)
            return result
        builder = _Builder(self, doc, display, result)
        never, not_now = builder.output_dir_problems()
        if never is not None:
            result.problems.append(ManifestProblem(display, never, field="output_dir", line=doc.line(("output_dir",))))
            return result
        builder.build()
        if result.manifest is not None:
            result.manifest.output_dir_unwritable = not_now
        return result


def _api_key(environ: Mapping[str, str], *, read_config: bool) -> tuple[str | None, str]:
    """The API key the run would use (environment, else the config file), when it is long enough
    to look for in values, and where it was found; never raises."""
    key, source = (environ.get(config.ENV_KEY) or "").strip(), f"the value of {config.ENV_KEY}"
    if not key and read_config:
        try:
            key = str(config.load_config().get("api_key", "")).strip()
            source = f"api_key in {config.config_path()}"
        except (ConfigError, OSError):
            key = ""
    return (key if len(key) >= 8 else None), source


#: File systems where no output can be written, whatever the permissions say (root can "write"
#: /proc by access(2), but cannot create a file there).
_PSEUDO_FILE_SYSTEMS = frozenset(
    {"proc", "sysfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "pstore", "bpf",
     "configfs", "fusectl", "mqueue", "binfmt_misc", "autofs", "efivarfs"}
)


class _Table:
    """One [[jobs]] table, prepared once for all the rows it expands to."""

    def __init__(self, builder: "_Builder", k: int, table: dict[str, Any]):
        self.k = k
        self.table = table
        #: defaults, then the table's own fields (matrix and foreach are not fields)
        self.values: dict[str, Any] = {**builder.defaults}
        self.origin: dict[str, str] = dict.fromkeys(builder.defaults, "defaults")
        for name, value in table.items():
            if name not in ("matrix", "foreach"):
                self.values[name] = value
                self.origin[name] = "job"
        self.output = self.values.get("output", DEFAULT_OUTPUT)
        self.line = builder.doc.line(("jobs", k))
        #: the name reads the take number: each take is then named (and is a shot) of its own
        self.name_uses_take = bool(_USES_TAKE.search(str(self.values.get("name", ""))))
        #: mode-only fields this table gets from [defaults]: dropped for jobs of other modes
        self.mode_only_defaults = [
            (name, modes) for name, modes in facts.MODE_ONLY_FIELDS.items() if self.origin.get(name) == "defaults"
        ]


class _Problems:
    """The problem collector of one manifest: every problem in the order found, except that after
    :data:`MAX_PROBLEMS_PER_TABLE` from one ``[[jobs]]`` table the rest are counted, not listed."""

    def __init__(self, into: list[ManifestProblem]):
        self.into = into
        self.in_table = 0
        self.hidden = 0

    def start_table(self) -> None:
        self.in_table = self.hidden = 0

    def add(self, problems: Iterable[ManifestProblem]) -> None:
        for problem in problems:
            self.in_table += 1
            if self.in_table > MAX_PROBLEMS_PER_TABLE:
                self.hidden += 1
            else:
                self.into.append(problem)


class _Draft:
    """One job while it is built: its fields, where each came from, and what the steps found.

    The steps of :meth:`_Builder._job` fill it in (``name``, ``mode``, ``output``, ``request``...)
    and return the problems they find; ``failed`` says whether any step found one.
    """

    __slots__ = (
        "b", "t", "row", "label", "values", "from_row", "variables", "failed",
        "name", "mode", "api", "output_text", "output", "request", "identity", "take", "shot",
    )

    def __init__(self, builder: "_Builder", t: _Table, row: rows_mod.Row, take: int = 1):
        self.b = builder
        self.t = t
        self.row = row
        self.label = f"jobs[{t.k}] ({row.label})" if row.label else f"jobs[{t.k}]"
        self.values = dict(t.values)
        self.from_row: set[str] = set()
        self.failed = False
        self.variables = {**builder.base_vars, **row.values, "env": builder.templates.environ, "row": row.values}
        self.take = take
        self.variables[TAKE_VARIABLE] = take
        self.shot: str | None = None  # the rendered name field; ``name`` adds the take (take_name)
        self.name: str | None = None
        self.mode = facts.Mode.T2V
        self.api = facts.Api.V1
        self.output_text: str | None = None
        self.output: Path | None = None
        self.request: dict[str, Any] = {}
        self.identity: dict[str, Any] = {}

    @property
    def job(self) -> str:
        """How problems name this job: its rendered name, or ``jobs[3] (row)`` until it has one."""
        return self.label if self.name is None else self.name

    def origin(self, name: str) -> str | None:
        return "row" if name in self.from_row else self.t.origin.get(name)

    def problem(self, name: str, message: str) -> ManifestProblem:
        """A problem with field ``name``, located where that field was written."""
        base = re.match(r"[a-z_]+", name)
        base_name = base.group(0) if base else name
        file, line, note = self.b._where(self.t.k, self.row, base_name, self.origin(base_name))
        return ManifestProblem(file, message + note, job=self.job, field=name, line=line)

    def render(self, name: str, source: Any, problems: list[ManifestProblem]) -> Any:
        """The rendered string, or None after a problem (added to ``problems``). Row values are
        data, not templates."""
        if not isinstance(source, str) or name in self.from_row:
            return source
        try:
            return self.b.templates.render(source, self.variables)
        except TemplateProblem as e:
            if e.undefined is not None and self.row.file is not None:
                e.message = self._missing_column(e.undefined)
            if e.file is not None:
                problems.append(
                    ManifestProblem(self.b.s.display(e.file), e.message, job=self.job, field=name, line=e.line)
                )
            else:
                problems.append(self.problem(name, e.message))
            return None

    def _missing_column(self, name: str) -> str:
        """The message for an undefined variable in a job expanded from a foreach file: the file
        lacks the column, which is what the user needs to hear (issue 10)."""
        row = self.row
        assert row.file is not None
        kind = "column" if row.from_text else "field"
        keys = [k for k in row.values if k not in (self.t.table.get("matrix") or {})]
        return (
            f"{row.file.name} has no {kind} {name!r} (its {kind}s: {', '.join(keys) or 'none'}); "
            f"add the {kind}, or define {name} in [vars] or with --var {name}=..."
        )


class _Builder:
    """Expands and checks one parsed, structurally valid manifest."""

    def __init__(self, session: _Session, doc: Document, display: str, result: ManifestResult):
        self.s = session
        self.doc = doc
        self.display = display
        self.result = result
        self.problems = _Problems(result.problems)
        self.folder = doc.path.parent
        data = doc.data
        out_dir = Path(data.get("output_dir", DEFAULT_OUTPUT_DIR)).expanduser()
        self.output_dir = Path(os.path.normpath(self.folder / out_dir))
        self.output_dir_str = str(self.output_dir)
        self.real_output_dir = session.realpath(self.output_dir)
        self.defaults: dict[str, Any] = data.get("defaults", {})
        self.templates = Templates(self.folder, session.environ)
        self.jobs: list[Job] = []
        self.names: dict[str, tuple[str, int | None]] = {}
        #: each shot's outputs so far, by take: takes of one shot may not share a file
        self.take_outputs: dict[str, dict[str, int]] = {}
        self.camera_cache: dict[str, list[str]] = {}
        limit = session.max_jobs if session.max_jobs is not None else data.get("max_jobs", DEFAULT_MAX_JOBS)
        self.max_jobs: int = limit
        self.jobs_left = limit
        #: image files not found, per table field and folder: reported as one problem per group
        self.missing_images: dict[tuple[str, Path], list[tuple[_Draft, str, str]]] = {}
        self.base_vars: dict[str, Any] = {**self.templates.globals, **data.get("vars", {})}
        for key, value in session.overrides.items():
            if not _VAR_NAME.match(key) or key in RESERVED_NAMES or key == TAKE_VARIABLE:
                self.problems.add([self._problem(None, "--var", f"{key!r} cannot be a variable name (reserved or not an identifier)")])
                continue
            self.base_vars[key] = value
        if TAKE_VARIABLE in data.get("vars", {}):
            self.problems.add([self._problem(
                None, f"vars.{TAKE_VARIABLE}",
                f"{TAKE_VARIABLE!r} is each job's take number (set by takes = N, or by a matrix or foreach key named "
                f"{TAKE_VARIABLE}); rename this variable",
                line=self.doc.line(("vars", TAKE_VARIABLE)),
            )])
        #: The steps that turn one expanded row into a job, in order. A step returns the problems
        #: it found; after a problem from a step marked True, the later steps cannot run.
        self.steps: tuple[tuple[Callable[[_Draft], list[ManifestProblem]], bool], ...] = (
            (self._step_row_values, True),
            (self._step_name, True),
            (self._step_mode, False),
            (self._step_images, False),
            (self._step_prompt, False),
            (self._step_output, False),
            (self._step_api_rules, False),
        )

    # -- problems -------------------------------------------------------------------------------

    def _problem(
        self, job: str | None, field_name: str | None, message: str, *, file: str | None = None, line: int | None = None
    ) -> ManifestProblem:
        return ManifestProblem(file or self.display, message, job=job, field=field_name, line=line)

    def _where(self, k: int, row: rows_mod.Row, field_name: str, origin: str | None) -> tuple[str, int | None, str]:
        """(file, line, note) locating a field of the job expanded from jobs[k] and ``row``."""
        if origin == "defaults":
            note = " (from [defaults])" if self.doc.format == "toml" else " (from defaults)"
            return self.display, self.doc.line(("defaults", field_name)), note
        if origin == "row":
            if row.file is not None:
                return self.s.display(row.file), row.line, f" (from {row.label})"
            return self.display, self.doc.line(("jobs", k)), f" (from {row.label})"
        if origin == "job":
            return self.display, self.doc.line(("jobs", k, field_name)), ""
        return self.display, self.doc.line(("jobs", k)), ""

    def output_dir_problems(self) -> tuple[str | None, str | None]:
        """(why output_dir can never hold files, why it cannot now), each None when it can; checked
        without creating anything, on the folder or the nearest of its parents that exists.

        Never: it is a file, lies under a file, or on a file system that holds no files (/proc):
        a manifest error for every command. Not now: permissions or a read-only file system; read
        commands still work (on a read-only copy of a project), a run refuses before any create
        (:meth:`Manifest.output_dir_error`)."""
        target = self.output_dir
        existing = target
        while not os.path.lexists(existing) and existing.parent != existing:
            existing = existing.parent
        shown = self.s.display(target)
        if not os.path.isdir(existing):
            if existing == target:
                return f"{shown} is a file, not a folder; point output_dir at a folder (or move the file)", None
            return f"{shown} cannot be created: {self.s.display(existing)} is a file, not a folder", None
        kind = self.s.filesystem_type(self.s.realpath(existing))
        at = shown if existing == target else f"{shown} cannot be created: {self.s.display(existing)}"
        if kind in _PSEUDO_FILE_SYSTEMS:
            return f"{at} is on the {kind} file system, which holds no files; choose another output_dir", None
        if not os.access(existing, os.W_OK | os.X_OK):
            return None, f"{at} is not writable by you; choose another output_dir or change its permissions"
        try:
            if os.statvfs(existing).f_flag & os.ST_RDONLY:
                return None, f"{at} is on a read-only file system; choose another output_dir"
        except OSError:
            pass
        return None, None

    # -- building -------------------------------------------------------------------------------

    def build(self) -> ManifestResult:
        for k, table in enumerate(self.doc.data["jobs"]):
            if self.jobs_left < 0 or self.templates.budget.exhausted:
                break  # already reported: expanding further would only repeat it, slowly
            self.problems.start_table()
            self._expand_table(k, table)
            self._report_missing_images()
            if self.problems.hidden:
                self.result.problems.append(
                    ManifestProblem(
                        self.display,
                        f"{self.problems.hidden} more problems in jobs expanded from this table are not shown",
                        job=schema.job_label(self.doc, k),
                        line=self.doc.line(("jobs", k)),
                    )
                )
        self.result.inputs |= self.templates.files_read
        self._check_chains()
        sequences = self._sequences()
        price_table = self.doc.data.get("prices")
        if price_table is not None:
            try:
                price_rows(price_table, self.display)
            except ManifestError as e:
                self.result.problems.extend(e.problems)
        if not self.result.problems:
            self.result.manifest = Manifest(
                self.doc.path, self.output_dir, self.jobs, self.result.warnings, self.result.inputs, prices=price_table, sequences=sequences
            )
        return self.result

    def _sequences(self) -> list[ShotSequence]:
        """The ``[[sequences]]`` tables: unique names, shots that name jobs (shots) of this
        manifest, an output inside output_dir that no job writes."""
        out: list[ShotSequence] = []
        shots = list(dict.fromkeys(str(getattr(job, "shot", job.name)) for job in self.jobs))
        job_outputs = {str(job.output): job.name for job in self.jobs}
        seen: dict[str, int] = {}
        for i, table in enumerate(self.doc.data.get("sequences") or []):
            name = table["name"]
            where = ("sequences", i)

            def problem(field_name: str | None, message: str) -> None:
                line = self.doc.line((*where, field_name)) if field_name else None
                self.result.problems.append(self._problem(f"sequence {name}", field_name, message, line=line or self.doc.line(where)))

            bad = self._text_problem(name) or name_problem(name)
            if bad:
                problem("name", bad)
                continue
            if name in seen:
                problem("name", f"{name!r} is also the name of sequences[{seen[name]}]; sequence names must be unique")
                continue
            seen[name] = i
            for ref in frames.unknown([frames.Reference(name, "shots", frames.FrameSpec(shot)) for shot in table["shots"]], shots):
                problem("shots", ref[1].replace(f"{frames.PREFIX}{ref[0].spec.job}@last", repr(ref[0].spec.job)))
            text = table.get("output", f"{name}.mp4")
            parts, message = output_parts(text)
            if message:
                problem("output", message)
                continue
            output = Path(os.path.join(self.output_dir_str, *parts))
            real_parent = self.s.realpath(str(output.parent))
            if real_parent != self.real_output_dir and not real_parent.startswith(self.real_output_dir + os.sep):
                problem("output", f"{text!r} would be written outside output_dir")
                continue
            if str(output) in job_outputs:
                problem("output", f"{self.s.display(output)} is also the output of job {job_outputs[str(output)]}; give the sequence another name or output")
                continue
            out.append(ShotSequence(name, list(table["shots"]), output, self.doc.line(where)))
        return out

    def _check_chains(self) -> None:
        """Chained shots (``frame:SHOT``): every reference names a job of this manifest, and no
        job takes a frame from itself, directly or round about (the cycle is named)."""
        references = [frames.Reference(job.name, name, spec) for job in self.jobs for name, spec in job.frame_sources()]
        if not references:
            return
        by_name = {job.name: job for job in self.jobs}
        shots: dict[str, str] = {}  # shot -> its first job (a shot of several takes has several)
        for job in self.jobs:
            shots.setdefault(str(getattr(job, "shot", job.name)), job.name)

        def line(job: str, field_name: str | None) -> int | None:
            entry = by_name[job].entry
            base = (field_name or "").split("[")[0]
            return (self.doc.line(("jobs", entry, base)) if base else None) or by_name[job].line

        for ref, message in frames.unknown(references, list(shots)):
            self.result.problems.append(self._problem(ref.job, ref.field, message, line=line(ref.job, ref.field)))
        # the graph of shots: a shot takes a frame of another (whichever of its takes is chosen)
        edges: dict[str, list[str]] = {}
        first_job: dict[str, str] = {}
        for ref in references:
            shot = str(getattr(by_name[ref.job], "shot", ref.job))
            first_job.setdefault(shot, ref.job)
            edges.setdefault(shot, []).append(ref.spec.job)
        for loop in frames.cycles(edges):
            job_name = first_job[loop[0]]
            fields = sorted({r.field for r in references if r.job == job_name and r.spec.job == loop[1]})
            self.result.problems.append(
                self._problem(
                    job_name,
                    fields[0] if fields else None,
                    f"the chained shots form a cycle: {' -> '.join(loop)} (each takes a frame of the next); "
                    "a shot cannot start from a frame of itself or of a shot that starts from it",
                    line=line(job_name, fields[0] if fields else None),
                )
            )

    def _expand_table(self, k: int, table: dict[str, Any]) -> None:
        t = _Table(self, k, table)
        # Fields that are taken literally must not look like templates: say so once per table.
        literal: list[ManifestProblem] = []
        for fname, value in t.values.items():
            if fname not in TEMPLATED_FIELDS and isinstance(value, str) and is_template(value):
                file, line, note = self._where(k, rows_mod.SINGLE[0], fname, t.origin[fname])
                literal.append(self._problem(
                    schema.job_label(self.doc, k),
                    fname,
                    f"is not templated (only {', '.join(TEMPLATED_FIELDS[:3])} and image paths are); "
                    f"to vary {fname} per job, use a matrix or foreach key named {fname}{note}",
                    file=file,
                    line=line,
                ))
        self.problems.add(literal)
        try:
            rows = rows_mod.expand(
                table.get("matrix"),
                table.get("foreach"),
                self.folder,
                self.result.inputs,
                max_rows=self.jobs_left,
                secret=self.s.secret,
            )
        except rows_mod.TooManyRows as e:
            needed = self.max_jobs - self.jobs_left + e.count
            self.jobs_left = -1
            if needed <= MAX_JOBS_CEILING:
                advice = f"If you mean it, set max_jobs = {needed} at the top of the manifest"
            else:
                advice = f"A manifest may expand to at most {MAX_JOBS_CEILING:,} jobs; split it into several"
            self.problems.add([self._problem(
                schema.job_label(self.doc, k),
                e.field,
                f"{e.message}: at most {self.max_jobs:,} jobs per manifest. {advice}",
                line=self.doc.line(("jobs", k, e.field)),
            )])
            return
        except rows_mod.RowsProblem as e:
            at_file = self.s.display(e.file) if e.file else None
            at_line = e.line if e.file else self.doc.line(("jobs", k, e.field))
            self.problems.add([self._problem(schema.job_label(self.doc, k), e.field, e.message, file=at_file, line=at_line)])
            return
        self.jobs_left -= len(rows)
        if literal:
            return
        for row in rows:
            if self.templates.budget.exhausted:
                self.result.problems.append(
                    self._problem(schema.job_label(self.doc, k), None, self.templates.budget.exhausted, line=t.line)
                )
                break
            takes = self._takes(t, row)
            if isinstance(takes, ManifestProblem):
                self.problems.add([takes])
                continue
            self.jobs_left -= len(takes) - 1
            if self.jobs_left < 0:
                self.problems.add([self._problem(
                    schema.job_label(self.doc, k), "takes",
                    f"with their takes, the jobs would be more than {self.max_jobs:,} (at most that many per manifest). "
                    "If you mean it, raise max_jobs at the top of the manifest",
                    line=t.line,
                )])
                return
            for take in takes:
                self._job(t, row, take)

    def _takes(self, t: _Table, row: rows_mod.Row) -> list[int] | ManifestProblem:
        """The take numbers one row renders: 1..``takes`` (the job's, else the row's, else
        [defaults]'), or the one take a matrix or foreach key named ``take`` gives it."""
        def number(name: str, value: Any) -> int | ManifestProblem:
            if row.from_text and isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TAKES:
                file, line, _ = self._where(t.k, row, name, "row")
                return self._problem(
                    f"jobs[{t.k}] ({row.label})", name,
                    f"must be a take number from 1 to {MAX_TAKES}, not {value!r} (from {row.label})", file=file, line=line,
                )
            return value

        if TAKE_VARIABLE in row.values:
            take = number(TAKE_VARIABLE, row.values[TAKE_VARIABLE])
            if isinstance(take, int) and t.origin.get("takes") == "job" and t.values["takes"] != 1:
                return self._problem(
                    schema.job_label(self.doc, t.k), "takes",
                    f"this job has takes = {t.values['takes']} and a {row.label.split(' ')[0] or 'row'} key named "
                    f"{TAKE_VARIABLE}, which sets one take's number; keep one of them",
                    line=self.doc.line(("jobs", t.k, "takes")),
                )
            return take if isinstance(take, ManifestProblem) else [take]
        count: Any = t.values.get("takes", 1)
        if "takes" in row.values and t.origin.get("takes") != "job" and row.values["takes"] != "":
            count = number("takes", row.values["takes"])
            if isinstance(count, ManifestProblem):
                return count
        return list(range(1, count + 1))

    def _job(self, t: _Table, row: rows_mod.Row, take: int = 1) -> None:
        """One take of one row of a table through every step; a job when none found a problem."""
        draft = _Draft(self, t, row, take)
        for step, stops in self.steps:
            found = step(draft)
            if found:
                draft.failed = True
                self.problems.add(found)
                if stops:
                    return
        if draft.failed or draft.output is None or draft.name is None or draft.output_text is None:
            return
        self.jobs.append(
            Job(
                name=draft.name,
                manifest=self.doc.path,
                index=len(self.jobs),
                output=draft.output,
                request=draft.request,
                mode=draft.mode,
                key=content_key(draft.identity, draft.take),
                warnings=self._warnings(draft, draft.request, draft.output_text),
                entry=t.k,
                origin=row.label,
                line=t.line,
                shot=draft.shot or draft.name,
                take=draft.take,
            )
        )

    # -- the steps ------------------------------------------------------------------------------

    def _step_row_values(self, d: _Draft) -> list[ManifestProblem]:
        """A matrix or foreach key named like a request field fills that field, unless the job
        table sets it; CSV text becomes the field's type. An empty cell fills nothing."""
        for name, value in d.row.values.items():
            if name in JOB_REQUEST_FIELDS and d.t.origin.get(name) != "job":
                if d.row.from_text:
                    if value == "":
                        continue
                    try:
                        value = parse_text_value(name, value)
                    except ValueError as e:
                        file, line, _ = self._where(d.t.k, d.row, name, "row")
                        return [self._problem(d.label, name, str(e), file=file, line=line)]
                d.values[name] = value
                d.from_row.add(name)
        return []

    def _step_name(self, d: _Draft) -> list[ManifestProblem]:
        """The name first: everything after it can say which job it is about. Unique per manifest."""
        problems: list[ManifestProblem] = []
        name = d.render("name", d.values["name"], problems)
        if name is None:
            return problems
        bad = self._text_problem(name) or name_problem(name)
        if bad:
            return [d.problem("name", bad)]
        # A name that reads the take number is already one name per take: each take is then a
        # shot of its own, named as written; otherwise take N > 1 of the shot is NAME.takeN.
        names_takes = d.t.name_uses_take
        if names_takes and d.take == 2:  # once per table row group, not once per take
            file, line, _ = self._where(d.t.k, d.row, "name", d.origin("name"))
            self.result.warnings.append(ManifestProblem(
                file,
                f"the name uses {{{{ {TAKE_VARIABLE} }}}}, so each take is listed and picked as a shot of its own; "
                f"leave {TAKE_VARIABLE} out of the name to list them as takes of one shot",
                job=schema.job_label(self.doc, d.t.k), field="name", line=line,
            ))
        shot, name = name, (name if names_takes else take_name(name, d.take))
        if name in self.names:
            other, other_line = self.names[name]
            at = f" (line {other_line})" if other_line else ""
            return [
                d.problem(
                    "name",
                    f"{name!r} is also the name of {other}{at}; names must be unique after expansion "
                    "(put a matrix or foreach variable in the name)",
                )
            ]
        self.names[name] = (d.label if d.take == 1 else f"take {d.take} of {shot} ({d.label})", d.t.line)
        d.name = name
        d.shot = shot
        d.variables["name"] = shot
        return []

    def _step_mode(self, d: _Draft) -> list[ManifestProblem]:
        """Image sources, then the mode they imply, then drop the defaults that mode does not take.
        An image whose template failed is None from here on: reported, never resolved."""
        problems: list[ManifestProblem] = []
        values = d.values
        self._drop_other_api_defaults(d)
        for fname in facts.IMAGE_FIELDS:
            if fname in values:
                text = d.render(fname, values[fname], problems)
                if text == "":
                    del values[fname]  # e.g. an optional CSV column left empty
                else:
                    values[fname] = text
        if "subject_reference" in values:
            subjects = self._subjects(d, problems)
            if subjects is None:
                del values["subject_reference"]
            else:
                values["subject_reference"] = subjects
        for fname in facts.V2_JOB_LIST_FIELDS:
            if fname in values:
                self._render_list(d, fname, problems)
        if problems:  # a failed image template still counts as present for the mode
            d.mode = rules.mode_of({n: True if values.get(n, False) is None else values.get(n) for n in _MODE_FIELDS})
        else:
            d.mode = rules.mode_of(values)
        if d.api is facts.Api.V1:
            for fname, modes in d.t.mode_only_defaults:
                if d.mode not in modes and fname in values and fname not in d.from_row:
                    del values[fname]  # a default that does not apply to this job's mode is not sent
        return problems

    def _drop_other_api_defaults(self, d: _Draft) -> None:
        """The job's API generation (its model's); defaults of fields only the other one has are
        not sent (a manifest may mix v1 and MiniMax-H3 jobs under one [defaults])."""
        model = facts.MODELS.get(str(d.values.get("model")))
        d.api = model.api if model is not None else facts.Api.V1
        for fname in V1_ONLY_FIELDS if d.api is facts.Api.V2 else V2_ONLY_FIELDS:
            if fname in d.values and d.origin(fname) == "defaults":
                del d.values[fname]

    def _render_list(self, d: _Draft, fname: str, problems: list[ManifestProblem]) -> None:
        """A V2 reference list: each entry rendered, empty ones dropped (a string is a list of
        one); a list left empty is no list."""
        value = d.values[fname]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return  # the API rules report the type
        rendered = [d.render(fname, x, problems) if isinstance(x, str) else x for x in value]
        kept = [x for x in rendered if x != ""]
        if kept:
            d.values[fname] = kept
        else:
            del d.values[fname]

    def _step_images(self, d: _Draft) -> list[ManifestProblem]:
        """Local images read, checked against the API's limits and hashed."""
        problems: list[ManifestProblem] = []
        values = d.values
        if d.api is facts.Api.V2:
            return self._v2_media(d)
        for fname in facts.IMAGE_FIELDS:
            if isinstance(values.get(fname), str):
                values[fname] = self._image(d, fname, values[fname], problems)
        for i, subject in enumerate(values.get("subject_reference") or []):
            if isinstance(subject, dict) and isinstance(subject.get("image"), list):
                subject["image"] = [
                    self._image(d, f"subject_reference[{i}].image[{n}]", src, problems) if isinstance(src, str) else src
                    for n, src in enumerate(subject["image"])
                ]
        return problems

    def _v2_media(self, d: _Draft) -> list[ManifestProblem]:
        """A V2 job's media: frames and reference images by the image rules, reference videos
        and audios by their format and size (facts.V2_MEDIA_FORMATS, V2_MEDIA_MAX_BYTES); each
        read, checked and hashed once; public URLs and ``mm_file://`` ids pass through."""
        problems: list[ManifestProblem] = []
        values = d.values
        for fname, kind in V2_FIELD_KIND.items():
            value = values.get(fname)
            if isinstance(value, str) and fname in facts.IMAGE_FIELDS:
                values[fname] = self._image(d, fname, value, problems, kind=kind)
            elif isinstance(value, list):
                out: list[Any] = []
                for n, src in enumerate(value):
                    at = f"{fname}[{n}]"
                    if isinstance(src, str):
                        out.append(self._image(d, at, src, problems, kind=kind))
                    elif src is None:
                        out.append(None)  # its template failed: reported
                    else:
                        problems.append(d.problem(at, f"must be a path, an http(s) URL, a data URL or {facts.V2_FILE_URL_SCHEME}FILE_ID, not {type(src).__name__}"))
                        out.append(None)
                values[fname] = out
        return problems

    def _step_prompt(self, d: _Draft) -> list[ManifestProblem]:
        """The prompt rendered and stripped; an empty prompt is no prompt."""
        problems: list[ManifestProblem] = []
        if "prompt" in d.values:
            prompt = d.render("prompt", d.values["prompt"], problems)
            if isinstance(prompt, str):
                prompt = prompt.strip()
                if prompt:
                    d.values["prompt"] = prompt
                else:
                    del d.values["prompt"]
        return problems

    def _step_output(self, d: _Draft) -> list[ManifestProblem]:
        """The output path: rendered, inside output_dir."""
        problems: list[ManifestProblem] = []
        assert d.name is not None  # the name step stops the job without one
        if d.t.output == DEFAULT_OUTPUT:
            # the common case, without a trip through Jinja
            text = d.name + ".mp4"  # take N > 1 of a shot: NAME.takeN.mp4
        else:
            text = d.render("output", d.t.output, problems)
        if isinstance(text, str):
            bad = self._text_problem(text)
            if bad:
                return [d.problem("output", bad)]
            # the default output differs with the name; a template must tell takes apart itself
            other = d.take if d.t.output == DEFAULT_OUTPUT else self.take_outputs.setdefault(d.shot or d.name, {}).setdefault(text, d.take)
            if other != d.take:
                return [d.problem(
                    "output",
                    f"{text!r} is also take {other}'s output: every take of a shot needs its own file; put "
                    f"{{{{ take }}}} in output (for example {d.t.output.replace('.mp4', '')}.take{{{{ take }}}}.mp4)"
                    if isinstance(d.t.output, str) else f"{text!r} is also take {other}'s output",
                )]
            d.output_text = text
            d.output = self._output(d, text, problems)
        return problems

    def _step_api_rules(self, d: _Draft) -> list[ManifestProblem]:
        """The API's rules, on the request as it would be sent (unresolved images as placeholders),
        after the text checks: no value carries the API key, a NUL or a lone surrogate."""
        v2 = d.api is facts.Api.V2
        fields, foreign = (facts.V2_JOB_FIELDS, V1_ONLY_FIELDS) if v2 else (facts.REQUEST_FIELDS, V2_ONLY_FIELDS)
        d.request = {fname: d.values[fname] for fname in fields if fname in d.values}
        d.identity = map_images(d.request, ImageRef.identity)
        problems: list[ManifestProblem] = [
            d.problem(fname, self._foreign_field(fname, d.values.get("model"), v2)) for fname in foreign if fname in d.values
        ]
        for fname, text in _strings(d.identity):
            message = self._text_problem(text)
            if message:
                problems.append(d.problem(fname, message))
        if problems:
            return problems
        if v2:
            return self._v2_rules(d)
        for p in rules.check_request(_placeholders(d.identity) if d.failed else d.identity):
            message = p.message
            if p.field == "model" and message == "is required":
                message = "is required: set model on the job or in [defaults]"
            problems.append(d.problem(p.field, message))
        return problems

    @staticmethod
    def _foreign_field(fname: str, model: Any, v2: bool) -> str:
        if v2:
            takes = ", ".join(f for f in facts.V2_JOB_FIELDS if f != "model")
            return f"is not a field of {model} (Video Generation V2), which takes {takes}"
        v2_models = ", ".join(m.name for m in facts.MODELS.values() if m.api is facts.Api.V2)
        if model is None:
            first = next(m.name for m in facts.MODELS.values() if m.api is facts.Api.V2)
            return (
                f"is a field of Video Generation V2 ({v2_models}), and this job has no model: "
                f'set model = "{first}" on the job or in [defaults]'
            )
        return f"is a field of Video Generation V2 ({v2_models}), not of {model}"

    def _v2_rules(self, d: _Draft) -> list[ManifestProblem]:
        """The V2 rules (:func:`vidbatch.rules.check_v2_request`) on the body the job would send,
        its local media as their hashes; each problem named by the job's own field."""
        identity = _placeholders(d.identity, "sha256:unresolved") if d.failed else d.identity
        problems: list[ManifestProblem] = []
        for p in rules.check_v2_request(rules.v2_body(identity), local=True):
            message = p.message
            if p.role is None:
                name = p.field
            elif p.role == facts.V2_TEXT_TYPE:
                name = "prompt"
                if "prompt" not in identity:
                    message = (
                        f"is required: a {identity.get('model')} job always has a prompt "
                        f"(up to {facts.V2_PROMPT_MAX_CHARS} characters)"
                    )
            else:
                name = _ROLE_FIELD[p.role]
                if name in facts.V2_JOB_LIST_FIELDS and p.item is not None:
                    name = f"{name}[{p.item}]"
            problems.append(d.problem(name, message))
        return problems

    # -- helpers of the steps -------------------------------------------------------------------

    def _text_problem(self, text: str) -> str | None:
        secret = self.s.secret
        if secret is not None and secret in text:
            return (
                f"contains the API key ({self.s.secret_source}); it must never reach a request, a name "
                "or a file. Remove it from the variable, environment variable or row that put it there"
            )
        if "\x00" in text:
            return "contains a NUL character; remove it"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"contains a lone surrogate (\\u{ord(text[e.start]):04x}), which is not text (an undecodable --var or environment variable?)"
        return None

    def _subjects(self, d: _Draft, problems: list[ManifestProblem]) -> list[Any] | None:
        value = d.values["subject_reference"]
        if isinstance(value, str):
            text = d.render("subject_reference", value, problems)
            return None if text == "" else [{"type": "character", "image": [text]}]
        if not isinstance(value, list):
            return value  # type: ignore[no-any-return]  # check_request reports the type
        out = []
        for subject in value:
            if isinstance(subject, dict) and isinstance(subject.get("image"), list):
                subject = {**subject, "image": [d.render("subject_reference", src, problems) for src in subject["image"]]}
            out.append(subject)
        return out

    def _image(
        self, d: _Draft, fname: str, source: str, problems: list[ManifestProblem], *, kind: str | None = None
    ) -> ImageRef | None:
        """The medium ``source`` of field ``fname``: an image of a v1 job (``kind`` None), else a
        V2 medium of ``kind``."""
        if kind is None:
            ref, message, path = self.s.images.resolve(source, self.folder)
        else:
            ref, message, path = self.s.images.resolve_media(source, self.folder, kind)
        if path is not None:
            self.result.inputs.add(path)
        if message:
            if path is not None and not os.path.lexists(path):
                # Reported per folder at the end of the table: a wrong folder in a template
                # would otherwise give one near-identical line per row.
                self.missing_images.setdefault((fname, path.parent), []).append((d, source, message))
                d.failed = True
            else:
                problems.append(d.problem(fname, message))
        return ref

    def _report_missing_images(self) -> None:
        """One problem per field and folder of the images not found in the table just built,
        listing the rows (and their CSV lines) that name them."""
        for (fname, folder), found in self.missing_images.items():
            if len(found) == 1:
                d, _, message = found[0]
                self.problems.add([d.problem(fname, message)])
                continue
            d = found[0][0]
            first = d.problem(fname, "")
            where = "the folder does not exist" if not os.path.isdir(folder) else "the folder exists"
            listed = "; ".join(f"{x.row.label or x.job}: {source}" for x, source, _ in found[:12])
            more = f"; and {len(found) - 12} more" if len(found) > 12 else ""
            self.problems.add([
                ManifestProblem(
                    first.file,
                    f"{len(found)} images not found in {self.s.display(folder)} ({where}): {listed}{more}. "
                    "Check the folder and file names in the template",
                    job=schema.job_label(self.doc, d.t.k),
                    field=fname,
                    line=self.doc.line(("jobs", d.t.k, fname)) if d.origin(fname) == "job" else first.line,
                )
            ])
        self.missing_images.clear()

    def _output(self, d: _Draft, text: str, problems: list[ManifestProblem]) -> Path | None:
        if "/" not in text and "\\" not in text and text not in ("", ".", ".."):
            bad = name_problem(text)  # the common case: a file name in output_dir itself
            if bad is None:
                return Path(self.output_dir_str + os.sep + text)
        parts, message = output_parts(text)
        if message:
            problems.append(d.problem("output", message))
            return None
        parent = os.path.join(self.output_dir_str, *parts[:-1])
        real_parent = self.s.realpath(parent)
        if real_parent != self.real_output_dir and not real_parent.startswith(self.real_output_dir + os.sep):
            problems.append(
                d.problem(
                    "output",
                    f"{text!r} would be written outside output_dir: {self.s.display(parent)} leads to {real_parent}",
                )
            )
            return None
        return Path(os.path.join(parent, parts[-1]))

    def _warnings(self, d: _Draft, request: dict[str, Any], output_text: str) -> list[str]:
        messages: list[str] = []
        prompt = request.get("prompt")
        if isinstance(prompt, str) and any(c in prompt for c in rules.CAMERA_BRACKET_CHARS):
            messages.extend(self._camera_warnings(prompt, request.get("model")))
        if not output_text.lower().endswith(".mp4"):
            messages.append(f"output {output_text} does not end in .mp4; MiniMax renders MP4 video")
        for message in messages:
            field_name = "output" if message.startswith("output ") else "prompt"
            file, line, _ = self._where(d.t.k, d.row, field_name, d.origin(field_name))
            self.result.warnings.append(ManifestProblem(file, message, job=d.name, field=field_name, line=line))
        return messages

    def _camera_warnings(self, prompt: str, model_name: Any) -> list[str]:
        # Brackets repeat across the jobs of a table while prompts differ: check each bracket once.
        messages: list[str] = []
        brackets = rules.camera_brackets(prompt)
        for text in [b.text for b in brackets] + rules.full_width_brackets(prompt):
            found = self.camera_cache.get(text)
            if found is None:
                found = self.camera_cache[text] = [w.message for w in rules.check_camera_commands(text)]
            messages.extend(found)
        model = facts.MODELS.get(str(model_name))
        if model is not None and not model.camera_commands:
            known = [c for b in brackets for c in b.commands if c in facts.CAMERA_COMMANDS]
            if known:
                with_camera = ", ".join(m.name for m in facts.MODELS.values() if m.camera_commands)
                messages.append(
                    f"{model.name} does not take camera commands: [{known[0]}] will reach it as text "
                    f"(models that do: {with_camera})"
                )
        return messages


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field, text) of every string in a request, fields named like ``subject_reference[0].image[1]``."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


def _placeholders(identity: dict[str, Any], stand_in: str = "unresolved") -> dict[str, Any]:
    """Unresolved images (already reported) stand in as a string, so the API rules still run."""
    for name in facts.IMAGE_FIELDS:
        if name in identity and identity[name] is None:
            identity[name] = stand_in
    for name in facts.V2_JOB_LIST_FIELDS:
        if isinstance(identity.get(name), list):
            identity[name] = [stand_in if x is None else x for x in identity[name]]
    subjects = identity.get("subject_reference")
    if isinstance(subjects, list):
        identity["subject_reference"] = [
            {**s, "image": ["unresolved" if x is None else x for x in s["image"]]}
            if isinstance(s, dict) and isinstance(s.get("image"), list)
            else s
            for s in subjects
        ]
    return identity


# --- public entry points ------------------------------------------------------------------------


def check_manifests(
    paths: Iterable[str | Path],
    *,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    max_jobs: int | None = None,
    read_config: bool | None = None,
) -> list[ManifestResult]:
    """Load and check every manifest; never raises ManifestError. A result with problems has no
    manifest. Also checks that no two jobs, in any of the manifests, write the same output.
    ``max_jobs``: most jobs each manifest may expand to, overriding its own ``max_jobs``
    (default :data:`DEFAULT_MAX_JOBS`). ``read_config``: look for the API key in the config file
    too (default: only when ``environ`` is the process's own)."""
    session = _Session(variables, environ, max_jobs, read_config)
    results: list[ManifestResult] = []
    seen_paths: set[Path] = set()
    for given in paths:
        real = Path(given).expanduser().resolve()
        if real in seen_paths:
            continue  # the same manifest named twice is checked once
        seen_paths.add(real)
        results.append(session.check(given))
    _check_outputs(session, results)
    return results


@dataclass(frozen=True)
class _Collision:
    """Job ``job`` of ``manifest`` writes the file ``other`` of ``other_manifest`` already writes:
    the same file (``case_only`` False), or one whose path differs only in letter case; or
    (``nested``) one of the two outputs is a folder the other is written into; or (``input``,
    ``other`` None) the file is one ``other_manifest`` reads: itself, an included template, a
    rows file, an image."""

    manifest: Manifest
    job: Job
    other_manifest: Manifest
    other: Job | None
    case_only: bool
    nested: bool = False
    input: Path | None = None


def _inputs(manifests: list[Manifest], realpath: Callable[[str], str]) -> dict[str, tuple[Manifest, Path]]:
    """Every local file ``manifests`` read (:attr:`Manifest.inputs`), by real path: the name it is
    read by, its folder's symbolic links followed (writing an output there replaces that name),
    and the file a symbolic link at that name leads to."""
    found: dict[str, tuple[Manifest, Path]] = {}
    for manifest in manifests:
        for path in sorted(manifest.inputs):
            parent, file_name = os.path.split(str(path))
            for real in (os.path.join(realpath(parent), file_name), realpath(str(path))):
                found.setdefault(real, (manifest, path))
    return found


def _same_file(a: str, b: Path) -> bool:
    """Whether two paths name one file here (a case-insensitive file system folds their case)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _collisions(manifests: Iterable[Manifest], realpath: Callable[[str], str]) -> Iterator[_Collision]:
    """Every job that writes over a file one of ``manifests`` reads, or an output an earlier job
    (of any of them) already writes, by real path (symbolic links followed), in order; then, once
    per path, case-only clashes (a case-only clash with an input is one when the file system here
    takes both paths for the same file)."""
    manifests = list(manifests)
    inputs = _inputs(manifests, realpath)
    folded_inputs = {real.casefold(): read for real, read in inputs.items()}
    writers: dict[str, tuple[Manifest, Job]] = {}
    folders: dict[str, tuple[Manifest, Job]] = {}  # every folder outputs are written into: its first job
    folded: dict[str, tuple[Manifest, Job]] = {}
    for manifest in manifests:
        for job in manifest.jobs:
            parent, file_name = os.path.split(str(job.output))
            real = os.path.join(realpath(parent), file_name)
            read = inputs.get(real) or folded_inputs.get(real.casefold())
            if read is not None:
                case_only = real not in inputs and not _same_file(real, read[1])
                yield _Collision(manifest, job, read[0], None, case_only, input=read[1])
                if not case_only:
                    continue
            if real in writers:
                yield _Collision(manifest, job, *writers[real], case_only=False)
                continue
            outer = folders.get(real)  # an earlier job writes into this output, as a folder
            up = os.path.dirname(real)
            while outer is None and up not in folders:  # or this job writes into an earlier one's output
                outer = writers.get(up)
                folders[up] = (manifest, job)
                up, last = os.path.dirname(up), up
                if up == last:
                    break
            if outer is not None:
                yield _Collision(manifest, job, *outer, case_only=False, nested=True)
                continue
            writers[real] = (manifest, job)
            fold = real.casefold()
            if fold in folded and folded[fold][1].output != job.output:
                yield _Collision(manifest, job, *folded[fold], case_only=True)
            folded.setdefault(fold, (manifest, job))


def _input_label(path: Path, reader: Manifest, writer: Manifest, display: Callable[[Path | str], str]) -> str:
    """The input ``path`` of ``reader`` in words, for a problem of ``writer``: the manifest, the
    image of a job, or another file it reads."""
    same = reader is writer
    if path == reader.path:
        return f"the manifest {display(path)}" + (" itself" if same else "")
    for job in reader.jobs:
        for field_name, ref in image_fields(job.request):
            if ref.path == path:
                return f"{display(path)}, the {field_name} of job {job.name}" + ("" if same else f" of {display(reader.path)}")
    return f"{display(path)}, an included template or rows file {'this manifest' if same else display(reader.path)} reads"


def _overwrite_problem(
    writer: Manifest, output: Path, read: tuple[Manifest, Path], display: Callable[[Path | str], str], **where: Any
) -> ManifestProblem:
    """The problem of an output (``where``: its job, line) that would replace the input ``read``."""
    linked = " (the same file, through a symbolic link)" if os.path.normpath(output) != os.path.normpath(read[1]) else ""
    return ManifestProblem(
        display(writer.path),
        f"output {display(output)} would overwrite {_input_label(read[1], read[0], writer, display)}{linked}; a run "
        "would replace it with a video. Give it another output (or the manifest another output_dir)",
        field="output",
        **where,
    )


def _collision_problem(c: _Collision, display: Callable[[Path | str], str]) -> ManifestProblem:
    if c.input is not None:
        return _overwrite_problem(c.manifest, c.job.output, (c.other_manifest, c.input), display, job=c.job.name, line=c.job.line)
    assert c.other is not None
    where = f"job {c.other.name}" if c.other_manifest is c.manifest else f"job {c.other.name} of {display(c.other.manifest)}"
    if c.nested and Path(c.other.output).is_relative_to(c.job.output):
        message = (
            f"output {display(c.job.output)} is a folder {where} writes {display(c.other.output)} into, so it "
            "cannot be written as a file; give one of them another name or output"
        )
    elif c.nested:
        message = (
            f"output {display(c.job.output)} would go into {display(c.other.output)}, which {where} writes as a "
            "file; give one of them another name or output"
        )
    else:
        message = f"output {display(c.job.output)} is also written by {where}; give one of them another name or output"
    return ManifestProblem(
        display(c.job.manifest),
        message,
        job=c.job.name,
        field="output",
        line=c.job.line,
    )


def check_output_collisions(manifests: Iterable[Manifest]) -> list[ManifestProblem]:
    """The problems of jobs that write a file an earlier job, of the same manifest or an earlier
    one in ``manifests``, already writes, or a file one of ``manifests`` reads. Paths are compared
    after following symbolic links, and shown relative to the working folder when inside it.

    Each manifest loaded alone has no such problem within itself; give this every manifest that
    shares output folders (a watched folder's) to find the clashes between them. A problem names
    the later job; the earlier one keeps its output.
    """
    session = _Session(None, {})
    return [
        _collision_problem(c, session.display)
        for c in _collisions(manifests, session.realpath)
        if not c.case_only
    ]


def _check_outputs(session: _Session, results: list[ManifestResult]) -> None:
    """The collisions between the manifests of one call become problems (at most
    :data:`MAX_PROBLEMS_PER_TABLE` per manifest, the rest counted) and case-only ones warnings, as
    does a sequence's output that would overwrite an input; a manifest with problems is then none."""
    by_manifest = {id(r.manifest): r for r in results if r.manifest is not None}
    hidden: dict[int, int] = {}
    for c in _collisions((r.manifest for r in results if r.manifest is not None), session.realpath):
        result = by_manifest[id(c.manifest)]
        if c.case_only:
            if c.input is not None:
                other = _input_label(c.input, c.other_manifest, c.manifest, session.display)
            else:
                assert c.other is not None
                other = f"job {c.other.name}'s {session.display(c.other.output)}"
            result.warnings.append(
                ManifestProblem(
                    session.display(c.job.manifest),
                    f"output {session.display(c.job.output)} differs from {other} only in case; "
                    "they collide on macOS and Windows",
                    job=c.job.name,
                    field="output",
                )
            )
        elif len(result.problems) >= MAX_PROBLEMS_PER_TABLE:
            hidden[id(result)] = hidden.get(id(result), 0) + 1
        else:
            result.problems.append(_collision_problem(c, session.display))
    loaded = [r.manifest for r in results if r.manifest is not None]
    inputs = _inputs(loaded, session.realpath)

    def real(path: Path) -> str:
        parent, file_name = os.path.split(str(path))
        return os.path.join(session.realpath(parent), file_name)

    # every job's output, then each cut's as it is met: a cut must not replace any of them
    writers = {real(job.output): (manifest, f"job {job.name}") for manifest in loaded for job in manifest.jobs}
    for manifest in loaded:
        for sequence in manifest.sequences:  # a cut is an output too
            where = real(sequence.output)
            read = inputs.get(where)
            if read is not None:
                by_manifest[id(manifest)].problems.append(_overwrite_problem(
                    manifest, sequence.output, read, session.display, job=f"sequence {sequence.name}", line=sequence.line
                ))
            elif where in writers:
                writer, what = writers[where]
                by_manifest[id(manifest)].problems.append(ManifestProblem(
                    session.display(manifest.path),
                    f"output {session.display(sequence.output)} is also written by {what}"
                    + ("" if writer is manifest else f" of {session.display(writer.path)}")
                    + "; give one of them another name or output",
                    job=f"sequence {sequence.name}", field="output", line=sequence.line,
                ))
            else:
                writers[where] = (manifest, f"sequence {sequence.name}")
    for result in results:
        if result.manifest is not None and id(result) in hidden:
            result.problems.append(
                ManifestProblem(
                    session.display(result.manifest.path),
                    f"{hidden[id(result)]} more jobs write an output already written",
                )
            )
    for result in results:
        if result.problems:
            result.manifest = None


def load_manifests(
    paths: Iterable[str | Path],
    *,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    max_jobs: int | None = None,
    read_config: bool | None = None,
) -> list[Manifest]:
    """Every manifest, loaded and checked together. Raises ManifestError with the problems of all
    of them (its ``inputs`` attribute: every local file that was read, for watch mode)."""
    results = check_manifests(paths, variables=variables, environ=environ, max_jobs=max_jobs, read_config=read_config)
    problems = [p for r in results for p in r.problems]
    if problems:
        error = ManifestError(problems)
        error.inputs = set().union(*(r.inputs for r in results))  # type: ignore[attr-defined]
        raise error
    return [r.manifest for r in results if r.manifest is not None]


def load_manifest(
    path: str | Path,
    *,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    max_jobs: int | None = None,
) -> Manifest:
    """One manifest, loaded and checked. Raises ManifestError listing every problem found."""
    return load_manifests([path], variables=variables, environ=environ, max_jobs=max_jobs)[0]


def group_problems(problems: Iterable[ManifestProblem]) -> list[tuple[ManifestProblem, int]]:
    """Identical problems of many jobs (same file, line, field, message) as (first, how many more).

    A warning in a matrix job table repeats for every combination; showing it once with a count
    keeps the output readable.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for p in problems:
        key = (p.file, p.line, p.field, p.message)
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [p, 0]
    return [(p, n) for p, n in groups.values()]
