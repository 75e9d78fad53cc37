"""The corpus of bad manifests: each one exits 2 through the real CLI with its own clear message.

Each case names what the message must contain, and where the problem must be located: the file
(the manifest, or the CSV a row came from), the line when it can be known, the job (its name, or
``jobs[N]`` before the name renders) and the field.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from .manifest_helpers import BAD, cli


@dataclass(frozen=True)
class Case:
    file: str
    fragment: str
    job: str | None = None
    field: str | None = None
    line: int | None = None
    shown: str | None = None  # the file the problem points at, when not the manifest itself


CASES = [
    # syntax
    Case("toml_syntax.toml", "TOML syntax error", line=5),
    Case("json_syntax.json", "JSON syntax error", line=3),
    Case("json_duplicate_key.json", "JSON key 'prompt' appears twice", line=3),
    Case("unknown_extension.yaml", "use a .toml or .json file"),
    # structure (the JSON Schema)
    Case("unknown_field.toml", "unknown field 'colour' in job; known fields: name, prompt", "fox", "colour", 6),
    Case("misspelled_field.toml", "did you mean 'prompt'?", "fox", "promt", 5),
    Case("misspelled_top_level.toml", "did you mean 'output_dir'?", None, "output-dir", 2),
    Case("misspelled_json.json", "did you mean 'resolution'?", "fox", "resolutoin", 7),
    Case("job_field_at_top_level.toml", "job fields belong in [defaults] or a [[jobs]] table", None, "model", 2),
    Case("wrong_type_duration.toml", "must be an integer, not a string", "fox", "duration", 6),
    Case("wrong_type_bool.json", "must be true or false, not a string", None, "defaults.prompt_optimizer", 2),
    Case("jobs_not_array.toml", "write [[jobs]] (double brackets)", None, "jobs"),
    Case("no_jobs.toml", "no jobs: add at least one [[jobs]] table", None, "jobs"),
    Case("version_2.toml", "version 2 is not supported", None, "version", 1),
    Case("empty_matrix.toml", "is empty: an empty list would expand to no jobs", "jobs[0]", "matrix.season", 6),
    Case("callback_not_url.toml", "must be an http:// or https:// URL", "fox", "callback_url", 5),
    Case("reserved_variable.toml", "'env' is reserved", None, "vars.env", 2),
    # the API's rules (vidbatch.facts)
    Case("unknown_model.toml", "unknown model 'MiniMax-Hailuo-03'; did you mean 'MiniMax-Hailuo-02'?", "fox", "model", 4),
    Case("missing_model.toml", "is required: set model on the job or in [defaults]", "fox", "model", 2),
    Case("impossible_duration.toml", "T2V-01 text-to-video takes 6 seconds, not 10", "fox", "duration", 6),
    Case(
        "impossible_resolution.toml",
        "MiniMax-Hailuo-02 text-to-video at 10 s takes 768P, not 1080P (from matrix resolution=1080P)",
        "fox-1080P",
        "resolution",
        6,
    ),
    Case("model_needs_image.toml", "is required: I2V-01 only does image-to-video", "fox", "first_frame_image", 2),
    Case("model_wrong_mode.toml", "S2V-01 does not do image-to-video; models that do:", "fox", "model", 4),
    Case("field_not_for_mode.toml", "is not part of subject-reference", "face", "duration", 7),
    Case("fast_pretreatment_unsupported.toml", "is not supported by T2V-01", "fox", "fast_pretreatment", 5),
    Case("subject_two_images.toml", "exactly one image", "face", "subject_reference[0].image", 6),
    Case("prompt_too_long.toml", "is 2141 characters; the API takes at most 2000", "fox", "prompt", 5),
    Case("long_prompt_template.toml", "is 2549 characters; the API takes at most 2000", "fox", "prompt", 8),
    # MiniMax-H3 (Video Generation V2)
    Case("h3_text_without_ratio.toml", "a text-only request needs a concrete ratio", "fox", "ratio", 2),
    Case("h3_frames_and_references.toml", "mixes frames (first frame) and references", "fox", "reference_images", 7),
    Case("h3_audio_alone.toml", "has reference audio but no reference image or video", "fox", "reference_audios", 6),
    Case("h3_v1_field.toml", "is not a field of MiniMax-H3 (Video Generation V2)", "fox", "prompt_optimizer", 7),
    Case("h3_ten_reference_images.toml", "has 10 reference images; at most 9", "fox", "reference_images", 6),
    Case("h3_ratio_on_hailuo.toml", "is a field of Video Generation V2 (MiniMax-H3), not of MiniMax-Hailuo-02", "fox", "ratio", 6),
    # images
    Case("missing_image.toml", "image images/nope.png not found", "fox", "first_frame_image", 4),
    Case("unreadable_image.toml", "image images/folder.png is a folder", "fox", "first_frame_image", 5),
    Case("too_small_image.toml", "images/small.png is 200x200; the short side must be over 300 px", "fox", "first_frame_image", 5),
    Case("bad_aspect_image.toml", "images/narrow.png is 320x1000; the aspect ratio", "fox", "first_frame_image", 5),
    Case("not_an_image.toml", "images/notes.png is not a JPG, PNG or WebP image", "fox", "last_frame_image", 6),
    Case("bad_data_url.toml", "data URL is not usable", "fox", "first_frame_image", 4),
    Case("ftp_image.toml", "must be a local path, an http(s) URL or a data URL", "fox", "first_frame_image", 4),
    # templates
    Case("undefined_variable.toml", "undefined variable 'seasn'; did you mean 'season'?", "fox", "prompt", 8),
    Case("template_syntax.toml", "template syntax error", "fox", "prompt", 4),
    Case("sandbox_escape.toml", "the template sandbox refused it", "fox", "prompt", 5),
    Case("include_outside.toml", "template '../conftest.py' not found in the manifest's folder", "fox", "prompt", 5),
    Case("env_not_set.toml", "environment variable VIDBATCH_TEST_SURELY_UNSET is not set", "fox", "prompt", 5),
    Case("not_templated_field.toml", "is not templated", "fox", "model", 7),
    # names and outputs
    Case("name_traversal.toml", "contains a path separator", "jobs[0]", "name", 3),
    Case("name_bad_char.toml", "'fox:winter' contains ':'", "jobs[0] (matrix season=winter)", "name", 2),
    Case("output_traversal.toml", "leaves output_dir: '..' is not allowed", "fox", "output", 5),
    Case("output_absolute.toml", "'/tmp/fox.mp4' is absolute", "fox", "output", 5),
    Case("duplicate_outputs.toml", "renders/winter.mp4 is also written by job fox-winter", "wolf-winter", "output", 11),
    Case("duplicate_names.toml", "'fox' is also the name of jobs[0] (matrix season=spring)", "jobs[0] (matrix season=winter)", "name", 3),
    # expansion
    Case("matrix_foreach_clash.toml", "variable 'season' is set by both matrix and foreach", "jobs[0]", "matrix", 5),
    Case("empty_foreach.toml", "foreach file empty.csv has no rows", "jobs[0]", "foreach", shown="empty.csv"),
    Case("foreach_missing.toml", "foreach file shots-that-do-not-exist.csv not found", "jobs[0]", "foreach", 5),
    Case("csv_ragged.toml", "ragged.csv line 3 has 3 cells; the header has 2", "jobs[0]", "foreach", 3, shown="ragged.csv"),
    Case(
        "csv_bad_duration.toml",
        "must be a whole number, not '6s'",
        "jobs[0] (bad_duration.csv line 3)",
        "duration",
        3,
        shown="bad_duration.csv",
    ),
]


def test_the_corpus_is_large_and_every_file_has_a_case():
    manifests = {p.name for p in BAD.iterdir() if p.is_file() and p.suffix in (".toml", ".json", ".yaml")}
    assert manifests == {c.file for c in CASES}
    assert len(CASES) >= 25
    assert len({c.fragment for c in CASES}) == len(CASES), "each case has its own message"


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """A copy of the corpus (a sibling conftest.py too, for the include escape), run from its parent."""
    folder = tmp_path / "bad_manifests"
    shutil.copytree(BAD, folder, symlinks=True)
    (tmp_path / "conftest.py").write_text("SECRET = 'must never be read'\n")
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_bad_manifest_exits_2_with_its_message(case: Case, corpus: Path):
    before = sorted(p.relative_to(corpus.parent) for p in corpus.parent.rglob("*"))
    result = cli("validate", f"bad_manifests/{case.file}")
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert case.fragment in err
    shown = f"bad_manifests/{case.shown or case.file}"
    assert shown + (f":{case.line}:" if case.line else ":") in err
    if case.job:
        assert f": job {case.job}:" in err
    if case.field:
        assert f": field {case.field}:" in err
    assert "nothing was sent or written" in err
    assert "must never be read" not in result.output
    assert "Traceback" not in result.output
    # nothing written: no output folder, no state folder, no file anywhere
    assert sorted(p.relative_to(corpus.parent) for p in corpus.parent.rglob("*")) == before


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_bad_manifest_fails_render_too(case: Case, corpus: Path):
    result = cli("render", f"bad_manifests/{case.file}")
    assert result.exit_code == 2
    assert case.fragment in result.stderr
    assert result.stdout == ""


def test_json_output_lists_the_problems(corpus: Path):
    import json

    result = cli("validate", "--json", "bad_manifests/unknown_model.toml", "bad_manifests/missing_image.toml")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    first, second = doc["manifests"]
    assert first["problems"] == [
        {
            "file": "bad_manifests/unknown_model.toml",
            "line": 4,
            "job": "fox",
            "field": "model",
            "message": "unknown model 'MiniMax-Hailuo-03'; did you mean 'MiniMax-Hailuo-02'?",
        }
    ]
    assert second["problems"][0]["field"] == "first_frame_image"


def test_every_bad_manifest_is_reported_in_one_run(corpus: Path):
    files = [f"bad_manifests/{c.file}" for c in CASES]
    result = cli("validate", *files)
    assert result.exit_code == 2
    for case in CASES:
        assert case.fragment in result.stderr, case.file
