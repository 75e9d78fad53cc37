"""From manifest files to validated jobs: parse, check structure, expand, render, check, key.

The pipeline for one manifest, each step collecting every problem it can before giving up:

1. read and parse (a syntax error stops here: nothing else can be trusted);
2. check the structure against the JSON Schema (problems stop here: expansion needs the shape);
3. expand each ``[[jobs]]`` table into rows (matrix x foreach);
4. for each row: merge fields, render templates, resolve images, pick the mode, drop defaults that
   do not apply to it, then apply the API rules of :func:`vidbatch.facts.check_request`;
5. across every manifest checked together: no two jobs may write the same output.

Per job, fields come from three places, later winning: ``[defaults]``, then the row (a matrix or
foreach key named like a request field fills that field), then the job table itself. Template
variables likewise: ``[vars]``, then ``--var`` overrides, then the row's values, then the built-ins
``env``, ``row`` and (after the name is rendered) ``name``.

A :class:`_Session` holds what is shared across the manifests of one call: the environment, the
``--var`` overrides, the image cache (each local image is read once, however many jobs use it),
and the realpath cache for output folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import facts, images
from ..errors import ManifestError, ManifestProblem
from ..identity import content_key
from . import rows as rows_mod
from . import schema
from .model import ImageRef, Job, Manifest, ManifestResult, map_images
from .source import Document, SourceError, load_document
from .templates import RESERVED_NAMES, TemplateProblem, Templates, is_template

DEFAULT_OUTPUT_DIR = "renders"
DEFAULT_OUTPUT = "{{ name }}.mp4"
#: The job fields whose strings are Jinja templates. Everything else is taken literally.
TEMPLATED_FIELDS = ("name", "prompt", "output", *facts.IMAGE_FIELDS, "subject_reference")
#: A name longer than this would make file names some file systems refuse (255 bytes with .mp4).
NAME_MAX_CHARS = 200
#: Characters a name (and each folder of an output path) may not contain: path separators, and
#: what Windows and macOS refuse in file names, so a render folder can be copied anywhere.
NAME_FORBIDDEN = '/\\<>:"|?*'
#: After this many problems from one [[jobs]] table, the rest are counted, not listed.
MAX_PROBLEMS_PER_TABLE = 20

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The fields facts.mode_of decides the mode from.
_MODE_FIELDS = (*facts.IMAGE_FIELDS, "subject_reference")
_BOOL_TEXT = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


_NAME_BAD_CHAR = re.compile("[\x00-\x1f\x7f" + re.escape(NAME_FORBIDDEN) + "]")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a job name (and a file name), or None."""
    if not name:
        return "is empty"
    if len(name) > NAME_MAX_CHARS:
        return f"is {len(name)} characters long; at most {NAME_MAX_CHARS}"
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
    for part in parts:
        problem = name_problem(part)
        if problem:
            return [], f"{text!r}: {problem.replace(repr(part) + ' ', '', 1)}"
    return parts, None


def parse_text_value(field_name: str, text: str) -> Any:
    """A CSV cell's text as the type of the request field it fills. Raises ValueError."""
    expected = facts.REQUEST_FIELDS.get(field_name)
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

    def _resolve(self, source: str, folder: Path) -> tuple[ImageRef | None, str | None, Path | None]:
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
            size = path.stat().st_size
            if size >= facts.IMAGE_MAX_BYTES:
                # Do not read a huge file just to refuse it: the header is enough to say why.
                with path.open("rb") as f:
                    head = f.read(64 * 1024)
                info = images.inspect_bytes(head)
                return images.ImageInfo(info.format, info.width, info.height, size, "")
            return images.inspect_file(path)
        except FileNotFoundError:
            return f"image {source} not found ({path})"
        except IsADirectoryError:
            return f"image {source} is a folder, not an image file ({path})"
        except OSError as e:
            return f"image {source} cannot be read: {e.strerror or e} ({path})"

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
    def __init__(self, variables: Mapping[str, str] | None, environ: Mapping[str, str] | None):
        self.overrides = dict(variables or {})
        self.environ = os.environ if environ is None else environ
        self.images = _ImageCache()
        self.cwd = os.getcwd()
        self._real: dict[str, str] = {}

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
            result.problems.append(ManifestProblem(display, e.message, line=e.line))
            return result
        structural = schema.problems(doc, display)
        if structural:
            result.problems.extend(structural)
            return result
        return _Builder(self, doc, display, result).build()


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
        #: mode-only fields this table gets from [defaults]: dropped for jobs of other modes
        self.mode_only_defaults = [
            (name, modes) for name, modes in facts.MODE_ONLY_FIELDS.items() if self.origin.get(name) == "defaults"
        ]


class _Job:
    """The state of one job while it is built: its fields, where each came from, its problems."""

    __slots__ = ("b", "t", "row", "label", "values", "from_row", "variables", "failed")

    def __init__(self, builder: "_Builder", t: _Table, row: rows_mod.Row):
        self.b = builder
        self.t = t
        self.row = row
        self.label = f"jobs[{t.k}] ({row.label})" if row.label else f"jobs[{t.k}]"
        self.values = dict(t.values)
        self.from_row: set[str] = set()
        self.failed = False
        self.variables = {**builder.base_vars, **row.values, "env": builder.templates.environ, "row": row.values}

    def origin(self, name: str) -> str | None:
        return "row" if name in self.from_row else self.t.origin.get(name)

    def problem(self, job: str, name: str, message: str) -> None:
        self.failed = True
        base = re.match(r"[a-z_]+", name)
        base_name = base.group(0) if base else name
        file, line, note = self.b._where(self.t.k, self.row, base_name, self.origin(base_name))
        self.b._problem(job, name, message + note, file=file, line=line)

    def render(self, job: str, name: str, source: Any) -> Any:
        """The rendered string, or None after a problem. Row values are data, not templates."""
        if not isinstance(source, str) or name in self.from_row:
            return source
        try:
            return self.b.templates.render(source, self.variables)
        except TemplateProblem as e:
            if e.file is not None:
                self.failed = True
                self.b._problem(job, name, e.message, file=self.b.s.display(e.file), line=e.line)
            else:
                self.problem(job, name, e.message)
            return None


class _Builder:
    """Expands and checks one parsed, structurally valid manifest."""

    def __init__(self, session: _Session, doc: Document, display: str, result: ManifestResult):
        self.s = session
        self.doc = doc
        self.display = display
        self.result = result
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
        self.camera_cache: dict[str, list[str]] = {}
        self._table_problems = 0
        self._table_hidden = 0
        self.base_vars: dict[str, Any] = {**self.templates.globals, **data.get("vars", {})}
        for key, value in session.overrides.items():
            if not _VAR_NAME.match(key) or key in RESERVED_NAMES:
                self._problem(None, "--var", f"{key!r} cannot be a variable name (reserved or not an identifier)")
                continue
            self.base_vars[key] = value

    # -- problems -------------------------------------------------------------------------------

    def _problem(
        self, job: str | None, field_name: str | None, message: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        self._table_problems += 1
        if self._table_problems > MAX_PROBLEMS_PER_TABLE:
            self._table_hidden += 1
            return
        self.result.problems.append(ManifestProblem(file or self.display, message, job=job, field=field_name, line=line))

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

    # -- building -------------------------------------------------------------------------------

    def build(self) -> ManifestResult:
        for k, table in enumerate(self.doc.data["jobs"]):
            self._table_problems = self._table_hidden = 0
            self._expand_table(k, table)
            if self._table_hidden:
                self.result.problems.append(
                    ManifestProblem(
                        self.display,
                        f"{self._table_hidden} more problems in jobs expanded from this table are not shown",
                        job=schema.job_label(self.doc, k),
                        line=self.doc.line(("jobs", k)),
                    )
                )
        self.result.inputs |= self.templates.files_read
        if not self.result.problems:
            self.result.manifest = Manifest(
                self.doc.path, self.output_dir, self.jobs, self.result.warnings, self.result.inputs
            )
        return self.result

    def _expand_table(self, k: int, table: dict[str, Any]) -> None:
        t = _Table(self, k, table)
        # Fields that are taken literally must not look like templates: say so once per table.
        stop = False
        for fname, value in t.values.items():
            if fname not in TEMPLATED_FIELDS and isinstance(value, str) and is_template(value):
                file, line, note = self._where(k, rows_mod.SINGLE[0], fname, t.origin[fname])
                self._problem(
                    schema.job_label(self.doc, k),
                    fname,
                    f"is not templated (only {', '.join(TEMPLATED_FIELDS[:3])} and image paths are); "
                    f"to vary {fname} per job, use a matrix or foreach key named {fname}{note}",
                    file=file,
                    line=line,
                )
                stop = True
        try:
            rows = rows_mod.expand(table.get("matrix"), table.get("foreach"), self.folder, self.result.inputs)
        except rows_mod.RowsProblem as e:
            file = self.s.display(e.file) if e.file else None
            line = e.line if e.file else self.doc.line(("jobs", k, e.field))
            self._problem(schema.job_label(self.doc, k), e.field, e.message, file=file, line=line)
            return
        if stop:
            return
        for row in rows:
            self._job(t, row)

    def _job(self, t: _Table, row: rows_mod.Row) -> None:
        j = _Job(self, t, row)
        values = j.values
        for name, value in row.values.items():
            if name in facts.REQUEST_FIELDS and t.origin.get(name) != "job":
                if row.from_text:
                    if value == "":
                        continue  # an empty cell fills nothing
                    try:
                        value = parse_text_value(name, value)
                    except ValueError as e:
                        file, line, _ = self._where(t.k, row, name, "row")
                        self._problem(j.label, name, str(e), file=file, line=line)
                        return
                values[name] = value
                j.from_row.add(name)

        # 1. the name: everything after it can say which job it is about
        name = j.render(j.label, "name", values["name"])
        if name is None:
            return
        bad = name_problem(name)
        if bad:
            j.problem(j.label, "name", bad)
            return
        if name in self.names:
            other, other_line = self.names[name]
            at = f" (line {other_line})" if other_line else ""
            j.problem(
                j.label,
                "name",
                f"{name!r} is also the name of {other}{at}; names must be unique after expansion "
                "(put a matrix or foreach variable in the name)",
            )
            return
        self.names[name] = (j.label, t.line)
        j.variables["name"] = name

        # 2. image sources, then the mode they imply, then drop defaults the mode does not take
        # (an image whose template failed is None from here on: reported, never resolved)
        for fname in facts.IMAGE_FIELDS:
            if fname in values:
                text = j.render(name, fname, values[fname])
                if text == "":
                    del values[fname]  # e.g. an optional CSV column left empty
                else:
                    values[fname] = text
        if "subject_reference" in values:
            subjects = self._subjects(j, name)
            if subjects is None:
                del values["subject_reference"]
            else:
                values["subject_reference"] = subjects
        if j.failed:  # a failed image template still counts as present for the mode
            mode = facts.mode_of({n: True if values.get(n, False) is None else values.get(n) for n in _MODE_FIELDS})
        else:
            mode = facts.mode_of(values)
        for fname, modes in t.mode_only_defaults:
            if mode not in modes and fname in values and fname not in j.from_row:
                del values[fname]  # a default that does not apply to this job's mode is not sent

        # 3. images: read, checked against the API's limits, hashed
        for fname in facts.IMAGE_FIELDS:
            if isinstance(values.get(fname), str):
                values[fname] = self._image(j, name, fname, values[fname])
        for i, subject in enumerate(values.get("subject_reference") or []):
            if isinstance(subject, dict) and isinstance(subject.get("image"), list):
                subject["image"] = [
                    self._image(j, name, f"subject_reference[{i}].image[{n}]", src) if isinstance(src, str) else src
                    for n, src in enumerate(subject["image"])
                ]

        # 4. prompt and output
        if "prompt" in values:
            prompt = j.render(name, "prompt", values["prompt"])
            if isinstance(prompt, str):
                prompt = prompt.strip()
                if prompt:
                    values["prompt"] = prompt
                else:
                    del values["prompt"]  # an empty prompt is no prompt
        if t.output == DEFAULT_OUTPUT:
            output_text = name + ".mp4"  # the common case, without a trip through Jinja
        else:
            output_text = j.render(name, "output", t.output)
        output = self._output(j, name, output_text) if isinstance(output_text, str) else None

        # 5. the API's rules, on the request as it would be sent
        request = {fname: values[fname] for fname in facts.REQUEST_FIELDS if fname in values}
        identity = map_images(request, ImageRef.identity)
        for p in facts.check_request(_placeholders(identity) if j.failed else identity):
            message = p.message
            if p.field == "model" and message == "is required":
                message = "is required: set model on the job or in [defaults]"
            j.problem(name, p.field, message)
        if j.failed or output is None:
            return

        self.jobs.append(
            Job(
                name=name,
                manifest=self.doc.path,
                index=len(self.jobs),
                output=output,
                request=request,
                mode=mode,
                key=content_key(identity),
                warnings=self._warnings(j, name, request, output_text),
                entry=t.k,
                origin=row.label,
                line=t.line,
            )
        )

    def _subjects(self, j: _Job, name: str) -> list[Any] | None:
        value = j.values["subject_reference"]
        if isinstance(value, str):
            text = j.render(name, "subject_reference", value)
            return None if text == "" else [{"type": "character", "image": [text]}]
        if not isinstance(value, list):
            return value  # check_request reports the type
        out = []
        for subject in value:
            if isinstance(subject, dict) and isinstance(subject.get("image"), list):
                subject = {**subject, "image": [j.render(name, "subject_reference", src) for src in subject["image"]]}
            out.append(subject)
        return out

    def _image(self, j: _Job, name: str, fname: str, source: str) -> ImageRef | None:
        ref, message, path = self.s.images.resolve(source, self.folder)
        if path is not None:
            self.result.inputs.add(path)
        if message:
            j.problem(name, fname, message)
        return ref

    def _output(self, j: _Job, name: str, text: str) -> Path | None:
        if "/" not in text and "\\" not in text and text not in ("", ".", ".."):
            bad = name_problem(text)  # the common case: a file name in output_dir itself
            if bad is None:
                return Path(self.output_dir_str + os.sep + text)
        parts, message = output_parts(text)
        if message:
            j.problem(name, "output", message)
            return None
        parent = os.path.join(self.output_dir_str, *parts[:-1])
        real_parent = self.s.realpath(parent)
        if real_parent != self.real_output_dir and not real_parent.startswith(self.real_output_dir + os.sep):
            j.problem(
                name,
                "output",
                f"{text!r} would be written outside output_dir: {self.s.display(parent)} leads to {real_parent}",
            )
            return None
        return Path(os.path.join(parent, parts[-1]))

    def _warnings(self, j: _Job, name: str, request: dict[str, Any], output_text: str) -> list[str]:
        messages: list[str] = []
        prompt = request.get("prompt")
        if isinstance(prompt, str) and "[" in prompt:
            messages.extend(self._camera_warnings(prompt, request.get("model")))
        if not output_text.lower().endswith(".mp4"):
            messages.append(f"output {output_text} does not end in .mp4; MiniMax renders MP4 video")
        for message in messages:
            field_name = "output" if message.startswith("output ") else "prompt"
            file, line, _ = self._where(j.t.k, j.row, field_name, j.origin(field_name))
            self.result.warnings.append(ManifestProblem(file, message, job=name, field=field_name, line=line))
        return messages

    def _camera_warnings(self, prompt: str, model_name: Any) -> list[str]:
        # Brackets repeat across the jobs of a table while prompts differ: check each bracket once.
        messages: list[str] = []
        brackets = facts.camera_brackets(prompt)
        for bracket in brackets:
            found = self.camera_cache.get(bracket.text)
            if found is None:
                found = self.camera_cache[bracket.text] = [w.message for w in facts.check_camera_commands(bracket.text)]
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


def _placeholders(identity: dict[str, Any]) -> dict[str, Any]:
    """Unresolved images (already reported) stand in as a string, so the API rules still run."""
    for name in facts.IMAGE_FIELDS:
        if name in identity and identity[name] is None:
            identity[name] = "unresolved"
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
) -> list[ManifestResult]:
    """Load and check every manifest; never raises ManifestError. A result with problems has no
    manifest. Also checks that no two jobs, in any of the manifests, write the same output."""
    session = _Session(variables, environ)
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


def _check_outputs(session: _Session, results: list[ManifestResult]) -> None:
    writers: dict[str, tuple[ManifestResult, Job]] = {}
    folded: dict[str, tuple[ManifestResult, Job]] = {}
    for result in results:
        if result.manifest is None:
            continue
        hidden = 0
        for job in result.manifest.jobs:
            parent, file_name = os.path.split(str(job.output))
            real = os.path.join(session.realpath(parent), file_name)
            if real in writers:
                if len(result.problems) >= MAX_PROBLEMS_PER_TABLE:
                    hidden += 1
                    continue
                other_result, other = writers[real]
                where = (
                    f"job {other.name}" if other_result is result else f"job {other.name} of {session.display(other.manifest)}"
                )
                result.problems.append(
                    ManifestProblem(
                        session.display(job.manifest),
                        f"output {session.display(job.output)} is also written by {where}; "
                        "give one of them another name or output",
                        job=job.name,
                        field="output",
                        line=job.line,
                    )
                )
                continue
            writers[real] = (result, job)
            fold = real.casefold()
            if fold in folded and folded[fold][1].output != job.output:
                other = folded[fold][1]
                result.warnings.append(
                    ManifestProblem(
                        session.display(job.manifest),
                        f"output {session.display(job.output)} differs from job {other.name}'s "
                        f"{session.display(other.output)} only in case; they collide on macOS and Windows",
                        job=job.name,
                        field="output",
                    )
                )
            folded.setdefault(fold, (result, job))
        if hidden:
            result.problems.append(
                ManifestProblem(session.display(result.manifest.path), f"{hidden} more jobs write an output already written")
            )
    for result in results:
        if result.problems:
            result.manifest = None


def load_manifests(
    paths: Iterable[str | Path],
    *,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Every manifest, loaded and checked together. Raises ManifestError with the problems of all
    of them (its ``inputs`` attribute: every local file that was read, for watch mode)."""
    results = check_manifests(paths, variables=variables, environ=environ)
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
) -> Manifest:
    """One manifest, loaded and checked. Raises ManifestError listing every problem found."""
    return load_manifests([path], variables=variables, environ=environ)[0]


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
