"""Structural checks: the manifest against ``schemas/manifest.schema.json``.

The JSON Schema is the single description of the format: which keys exist where, their types,
what is required, what may not be empty. This module does not restate any of it; it runs the
schema (Draft 2020-12) and turns each validation error into a :class:`ManifestProblem` a person
can act on: the job, the field path, the line, and "did you mean" for a misspelled key.

Rules about *values* the API takes (models, durations, resolutions) are not in the schema; they
live in :mod:`vidbatch.facts` and are applied by :mod:`vidbatch.rules` after expansion, once
every template is rendered.
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from typing import Any, Iterable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..errors import ManifestProblem
from .source import Document

SCHEMA_RESOURCE = ("schemas", "manifest.schema.json")


@functools.cache
def document() -> dict[str, Any]:
    """The manifest schema, read from the installed package."""
    text = resources.files("vidbatch").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(document())


def field_names(definition: str) -> list[str]:
    """The keys a ``$defs`` object (``job``, ``defaults``) allows, in schema order."""
    return list(document()["$defs"][definition]["properties"])


def _type_word(t: str, fmt: str) -> str:
    words = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "array": "an array" if fmt == "json" else "an array [...]",
        "object": "an object" if fmt == "json" else "a table",
        "null": "null",
    }
    return words.get(t, t)


def _instance_type(value: Any, fmt: str) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object" if fmt == "json" else "a table"
    return "null" if value is None else type(value).__name__


def _field_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def problems(doc: Document, display: str) -> list[ManifestProblem]:
    """Every structural problem of ``doc``, in document order."""
    if not isinstance(doc.data, dict):
        kind = "an object" if doc.format == "json" else "a table"
        return [ManifestProblem(display, f"the top level must be {kind} with a jobs list, not {_instance_type(doc.data, doc.format)}")]
    out = []
    errors = sorted(validator().iter_errors(doc.data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        out.extend(_translate(error, doc, display))
    return out


def job_label(doc: Document, index: int) -> str:
    job = doc.data["jobs"][index] if isinstance(doc.data.get("jobs"), list) else None
    name = job.get("name") if isinstance(job, dict) else None
    if isinstance(name, str) and name and "{" not in name:
        return name
    return f"jobs[{index}]"


def _translate(error: ValidationError, doc: Document, display: str) -> list[ManifestProblem]:
    if error.validator in ("oneOf", "anyOf") and error.context:
        deeper = _branch_error(error)
        if deeper is not None:
            return _translate(deeper, doc, display)
    path = list(error.absolute_path)
    job = None
    rel = path
    if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
        job = job_label(doc, path[1])
        rel = path[2:]

    def make(message: str, at: list[Any] | None = None) -> ManifestProblem:
        where = path if at is None else at
        field_parts = where[2:] if job is not None else where
        return ManifestProblem(
            display, message, job=job, field=_field_path(field_parts) or None, line=doc.line(tuple(where)) or None
        )

    v, fmt = error.validator, doc.format
    if v == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        found = []
        for key in error.instance:
            if key not in allowed:
                found.append(make(_unknown_key_message(key, path, rel, allowed, fmt), path + [key]))
        return found
    if v == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        msgs = []
        for key in missing:
            if key == "name":
                msgs.append(make("is required: every job needs a name (it also names the output file)", path + [key]))
            elif key == "jobs":
                hint = "add at least one [[jobs]] table" if fmt == "toml" else 'add a "jobs" list'
                msgs.append(make(f"no jobs: {hint}", path + [key]))
            else:
                msgs.append(make("is required", path + [key]))
        return msgs
    if v == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_type_word(t, fmt) for t in expected)
        message = f"must be {words}, not {_instance_type(error.instance, fmt)}"
        if path == ["jobs"] and isinstance(error.instance, dict) and fmt == "toml":
            message += ": write [[jobs]] (double brackets) for each job"
        return [make(message)]
    if v == "minItems":
        if path == ["jobs"]:
            return [make("is empty: add at least one job")]
        return [make("is empty: an empty list would expand to no jobs")]
    if v == "minProperties":
        return [make("is empty: give it at least one variable with a list of values")]
    if v == "minLength":
        return [make("must not be empty")]
    if v == "minimum":
        return [make(f"must be at least {error.validator_value}, not {error.instance}")]
    if v == "const" and path == ["version"]:
        return [make(f"version {error.instance!r} is not supported: this vidbatch reads version 1 manifests")]
    if v == "pattern" and rel and rel[-1] == "callback_url":
        return [make("must be an http:// or https:// URL")]
    if v in ("pattern", "not") and _in_property_names(error):
        key = error.instance
        if v == "not":
            return [make(f"{key!r} is reserved for templates (env, row); pick another variable name", path + [key])]
        return [
            make(
                f"{key!r} is not a usable variable name: letters, digits and underscores, not starting with a digit",
                path + [key],
            )
        ]
    if v in ("oneOf", "anyOf"):
        kinds = []
        for sub in error.validator_value:
            target = sub
            if "$ref" in sub:
                target = _local_ref(sub["$ref"])
            t = target.get("type")
            if isinstance(t, str):
                kinds.append(_type_word(t, fmt))
        return [make(f"must be {' or '.join(dict.fromkeys(kinds)) or 'something else'}, not {_instance_type(error.instance, fmt)}")]
    return [make(error.message)]


def _local_ref(ref: str) -> dict[str, Any]:
    node: Any = document()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    found: dict[str, Any] = node
    return found


def _in_property_names(error: ValidationError) -> bool:
    return "propertyNames" in error.absolute_schema_path


def _branch_error(error: ValidationError) -> ValidationError | None:
    """For a oneOf whose value has the type of one branch, the error inside that branch."""
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        by_branch.setdefault(sub.schema_path[0] if sub.schema_path else -1, []).append(sub)
    for branch, errs in by_branch.items():
        if not any(e.validator == "type" and not e.relative_path for e in errs):
            return best_match(errs)
    return None


def _unknown_key_message(key: str, path: list[Any], rel: list[Any], allowed: list[str], fmt: str) -> str:
    near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not near:
        near = difflib.get_close_matches(key.replace("-", "_").lower(), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    where = "job" if path[:1] == ["jobs"] else ("[defaults]" if path == ["defaults"] else "manifest")
    if not path and key in field_names("job"):
        table = "[defaults] or a [[jobs]] table" if fmt == "toml" else '"defaults" or a job'
        return f"unknown top-level key {key!r}: job fields belong in {table}"
    if path == ["defaults"] and key in ("name", "matrix", "foreach"):
        return f"{key!r} cannot be a default: set it on each job"
    if not near and len(allowed) <= 20:
        return f"unknown field {key!r} in {where}; known fields: {', '.join(allowed)}"
    return f"unknown field {key!r} in {where}{hint}"
