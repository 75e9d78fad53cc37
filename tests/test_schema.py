"""The JSON Schema: valid, shipped in the package, in step with the API facts, and used."""

from __future__ import annotations

import json
import os
import re
import tomllib
from importlib import resources

import pytest
from jsonschema import Draft202012Validator

from vidbatch import facts
from vidbatch.manifest import schema as manifest_schema  # the module
from vidbatch.manifest.loader import TEMPLATED_FIELDS

from .manifest_helpers import BAD, EXAMPLES, ROOT

PACKAGED = ROOT / "vidbatch" / "schemas" / "manifest.schema.json"
TOP_LEVEL = ROOT / "schemas" / "manifest.schema.json"


@pytest.fixture(scope="module")
def schema():
    return json.loads(PACKAGED.read_text())


def test_schema_is_valid_draft_2020_12(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_top_level_schema_is_a_relative_symlink_to_the_packaged_one():
    assert TOP_LEVEL.is_symlink()
    assert not os.path.isabs(os.readlink(TOP_LEVEL))
    assert TOP_LEVEL.resolve() == PACKAGED.resolve()
    assert TOP_LEVEL.read_bytes() == PACKAGED.read_bytes()


def test_schema_ships_in_the_package_and_is_what_the_validator_uses(schema):
    shipped = resources.files("vidbatch").joinpath("schemas", "manifest.schema.json").read_text()
    assert json.loads(shipped) == schema
    assert manifest_schema.document() == schema
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "schemas/*.json" in pyproject["tool"]["setuptools"]["package-data"]["vidbatch"]


def test_job_fields_are_the_api_request_fields_plus_manifest_ones(schema):
    job = schema["$defs"]["job"]["properties"]
    assert set(job) == set(facts.REQUEST_FIELDS) | set(facts.V2_JOB_FIELDS) | {"name", "output", "takes", "matrix", "foreach"}
    defaults = schema["$defs"]["defaults"]["properties"]
    assert set(defaults) == set(job) - {"name", "matrix", "foreach"}
    assert set(TEMPLATED_FIELDS) <= set(job)


def test_field_types_agree_with_the_facts(schema):
    words = {str: "string", int: "integer", bool: "boolean"}
    defs = schema["$defs"]
    for name, kind in {**facts.REQUEST_FIELDS, **facts.V2_JOB_FIELDS}.items():
        definition = defs[name]
        if kind is list:  # subject_reference, reference_*: a list, or a string shorthand
            assert {"array", "string"} == {
                (defs[b["$ref"].split("/")[-1]] if "$ref" in b else b)["type"] for b in definition["oneOf"]
            }
            continue
        if "$ref" in definition:
            definition = defs[definition["$ref"].split("/")[-1]]
        assert definition["type"] == words[kind], name


def test_editor_suggestions_match_the_facts(schema):
    """The schema lists models and resolutions for completion only (``examples``, not ``enum``:
    facts.py decides what is valid); this keeps the suggestions from drifting."""
    assert schema["$defs"]["model"]["examples"] == list(facts.MODELS)
    assert schema["$defs"]["resolution"]["examples"] == list(facts.RESOLUTIONS)
    assert "enum" not in schema["$defs"]["model"]


def _parse(path):
    return tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())


@pytest.mark.parametrize("path", sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".toml", ".json")), ids=lambda p: p.name)
def test_examples_are_valid_against_the_schema_and_point_at_it(schema, path):
    errors = list(Draft202012Validator(schema).iter_errors(_parse(path)))
    assert errors == []
    if path.suffix == ".json":
        target = json.loads(path.read_text())["$schema"]
    else:
        m = re.match(r"#:schema (\S+)", path.read_text())
        assert m, "TOML examples start with a #:schema directive for Taplo / Even Better TOML"
        target = m.group(1)
    assert (path.parent / target).resolve() == PACKAGED.resolve()


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"jobs": [{"name": "a", "promt": "x"}]}, "additionalProperties"),
        ({"jobs": [{"name": "a", "duration": "6"}]}, "type"),
        ({"jobs": [{"prompt": "x"}]}, "required"),
        ({"jobs": []}, "minItems"),
        ({}, "required"),
        ({"jobs": [{"name": "a", "matrix": {"s": []}}]}, "minItems"),
        ({"jobs": [{"name": "a", "matrix": {}}]}, "minProperties"),
        ({"vars": {"env": 1}, "jobs": [{"name": "a"}]}, "not"),
        ({"version": 2, "jobs": [{"name": "a"}]}, "const"),
        ({"defaults": {"name": "a"}, "jobs": [{"name": "a"}]}, "additionalProperties"),
    ],
)
def test_schema_rejects(schema, doc, expected):
    validators = set()
    for error in Draft202012Validator(schema).iter_errors(doc):
        validators.add(error.validator)
        validators.update(e.validator for e in error.context or [])
    assert expected in validators


def test_bad_corpus_structural_cases_fail_the_schema(schema):
    """The structural part of the corpus is rejected by the schema alone (not by code beside it)."""
    for name in ("unknown_field.toml", "misspelled_field.toml", "wrong_type_duration.toml", "empty_matrix.toml", "no_jobs.toml", "version_2.toml"):
        assert list(Draft202012Validator(schema).iter_errors(_parse(BAD / name))), name
