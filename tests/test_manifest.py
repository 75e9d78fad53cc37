"""Manifests: loading, expansion, templating, images, identity, outputs, and the two commands."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidbatch import facts, images
from vidbatch.errors import ManifestError
from vidbatch.manifest import (
    ImageRef,
    Job,
    Manifest,
    check_manifests,
    group_problems,
    is_manifest_file,
    load_manifest,
    load_manifests,
    name_problem,
)
from vidbatch.manifest.loader import output_parts

from .manifest_helpers import EXAMPLES, ROOT, cli, jpeg, png, png_bytes, write

EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".toml", ".json"))


def problems_of(path: Path, **kw) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path, **kw)
    return [str(p) for p in info.value.problems]


def t2v(tmp_path: Path, body: str, name: str = "m.toml") -> Path:
    return write(tmp_path, name, '[defaults]\nmodel = "MiniMax-Hailuo-02"\n' + body)


# --- examples -------------------------------------------------------------------------------------


def test_there_are_several_examples():
    names = {p.name for p in EXAMPLE_FILES}
    assert {"t2v-matrix.toml", "storyboard.toml", "first-last.toml", "subject.json", "templated.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_validates_through_the_cli(path: Path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("validate", str(path.relative_to(ROOT)))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"examples/{path.name}: ")
    assert " OK" in result.stdout
    assert "warning" not in result.stderr  # examples show good practice


def test_all_examples_validate_together(monkeypatch):
    """Checked together, so their outputs must not collide either."""
    monkeypatch.chdir(ROOT)
    result = cli("validate", *(str(p.relative_to(ROOT)) for p in EXAMPLE_FILES))
    assert result.exit_code == 0, result.output
    assert result.stdout.count(" OK") == len(EXAMPLE_FILES)


def test_examples_cover_every_mode_and_feature():
    manifests = load_manifests(EXAMPLE_FILES, environ={})
    modes = {job.mode for m in manifests for job in m.jobs}
    assert modes == set(facts.Mode)
    by_name = {m.path.name: m for m in manifests}
    assert len(by_name["t2v-matrix.toml"].jobs) == 8
    storyboard = by_name["storyboard.toml"]
    assert EXAMPLES / "storyboard.csv" in storyboard.inputs
    assert [j.request.get("duration") for j in storyboard.jobs] == [6, 10, None]  # from the CSV column
    assert EXAMPLES / "prompts" / "hero.j2" in by_name["templated.toml"].inputs
    assert all(j.mode is facts.Mode.FL2V for j in by_name["first-last.toml"].jobs)


def test_example_images_are_small_and_valid():
    for path in (EXAMPLES / "images").iterdir():
        info = images.inspect_file(path)
        assert images.limit_problems(info) == [], path
        assert info.size < 20_000, path


def test_render_shows_final_requests_without_base64(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("render", "examples/storyboard.toml")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "shot-02  image-to-video  (storyboard.csv line 3)" in out
    assert "output   examples/renders/storyboard/shot-02.mp4" in out
    assert "prompt   Clouds roll across the green valley below, 35mm film, warm grade [Pan right]" in out
    assert "first_frame_image=images/shot-02.png (sha256:" in out
    assert "duration=10" in out
    assert "key      vb1:" in out
    assert "base64" not in out and "iVBOR" not in out


def test_render_json(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("render", "--json", "examples/subject.json", "examples/first-last.toml")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    subject, first_last = doc["manifests"]
    assert subject["path"] == "examples/subject.json"
    job = subject["jobs"][0]
    assert job["name"] == "portrait-cafe"
    assert job["mode"] == "s2v"
    assert job["output"] == "examples/renders/subject/portrait-cafe.mp4"
    image = job["request"]["subject_reference"][0]["image"][0]
    assert image["path"] == "images/face.jpg" and len(image["sha256"]) == 64
    assert "duration" not in job["request"]
    fl = first_last["jobs"][0]["request"]
    assert fl["first_frame_image"]["path"] == "images/first.png"
    assert "data:" not in result.stdout


def test_render_job_filter(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = cli("render", "--json", "--job", "fox-winter-*", "examples/t2v-matrix.toml")
    names = [j["name"] for j in json.loads(result.stdout)["manifests"][0]["jobs"]]
    assert names == ["fox-winter-768P", "fox-winter-1080P"]


def test_help_texts_have_examples():
    for command in ("validate", "render"):
        result = cli(command, "--help")
        assert result.exit_code == 0
        assert "Examples:" in result.stdout and f"vidbatch {command} " in result.stdout
        assert "--var KEY=VALUE" in result.stdout


def test_cli_module_imports_only_click():
    code = "import sys, vidbatch.cli.manifest_cmds, vidbatch.cli.options; print(sorted(m for m in ('jinja2', 'jsonschema', 'vidbatch.manifest') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- identity -------------------------------------------------------------------------------------


def key_of(tmp_path: Path, text: str, name: str = "m.toml", **kw) -> str:
    manifest = load_manifest(write(tmp_path, name, text), **kw)
    assert len(manifest.jobs) == 1
    return manifest.jobs[0].key


BASE = """
[[jobs]]
name = "fox"
model = "MiniMax-Hailuo-02"
prompt = "A fox"
"""


def test_key_ignores_name_output_formatting_comments_and_unused_vars(tmp_path):
    key = key_of(tmp_path, BASE)
    assert key.startswith("vb1:")
    assert key_of(tmp_path, BASE.replace('name = "fox"', 'name = "renamed"')) == key
    assert key_of(tmp_path, BASE + 'output = "elsewhere/{{ name }}.mp4"\n') == key
    reordered = '# a comment\n[vars]\nunused = "x"\n\n[[jobs]]\nprompt   =   "A fox"   # the prompt\nmodel = "MiniMax-Hailuo-02"\nname = "fox"\n'
    assert key_of(tmp_path, reordered) == key
    assert key_of(tmp_path, 'output_dir = "other"\n' + BASE) == key


def test_key_normalises_explicit_defaults(tmp_path):
    key = key_of(tmp_path, BASE)
    explicit = BASE + 'prompt_optimizer = true\nduration = 6\nresolution = "768P"\nfast_pretreatment = false\n'
    assert key_of(tmp_path, explicit) == key
    via_defaults = '[defaults]\nduration = 6\nprompt_optimizer = true\n' + BASE
    assert key_of(tmp_path, via_defaults) == key


def test_key_follows_what_the_api_would_render(tmp_path):
    key = key_of(tmp_path, BASE)
    assert key_of(tmp_path, BASE.replace("A fox", "A wolf")) != key
    assert key_of(tmp_path, BASE + "duration = 10\n") != key
    assert key_of(tmp_path, BASE + "prompt_optimizer = false\n") != key
    assert key_of(tmp_path, BASE.replace("{{", "")) == key


def test_key_follows_image_bytes_not_paths(tmp_path):
    png(tmp_path / "a.png", colour=(1, 2, 3))
    text = '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\n'
    key = key_of(tmp_path, text)
    # the same bytes elsewhere: same key
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    assert key_of(tmp_path, text.replace("a.png", "sub/b.png")) == key
    # the same bytes as a data URL: same key
    data_url = images.to_data_url((tmp_path / "a.png").read_bytes(), "image/png")
    assert key_of(tmp_path, text.replace("a.png", data_url)) == key
    # other bytes: another key
    png(tmp_path / "a.png", colour=(1, 2, 4))
    assert key_of(tmp_path, text) != key


def test_subject_reference_shorthand_equals_list_form(tmp_path):
    jpeg(tmp_path / "face.jpg")
    short = '[[jobs]]\nname = "x"\nmodel = "S2V-01"\nprompt = "hi"\nsubject_reference = "face.jpg"\n'
    full = short.replace('"face.jpg"', '[{ type = "character", image = ["face.jpg"] }]')
    a, b = key_of(tmp_path, short), key_of(tmp_path, full)
    assert a == b
    job = load_manifest(tmp_path / "m.toml").jobs[0]
    assert job.mode is facts.Mode.S2V
    [subject] = job.request["subject_reference"]
    assert subject["type"] == "character" and isinstance(subject["image"][0], ImageRef)


# --- precedence and expansion ---------------------------------------------------------------------


def test_variable_precedence_vars_then_var_option_then_rows(tmp_path):
    path = t2v(
        tmp_path,
        """
        [vars]
        a = "vars"
        b = "vars"
        c = "vars"

        [[jobs]]
        name = "j-{{ c }}"
        prompt = "{{ a }} {{ b }} {{ c }}"
        matrix = { c = ["row"] }
        """.replace("        ", ""),
    )
    job = load_manifest(path, variables={"b": "cli", "c": "cli"}).jobs[0]
    assert job.prompt == "vars cli row"
    assert job.name == "j-row"


def test_row_keys_fill_request_fields_but_the_job_wins(tmp_path):
    path = t2v(
        tmp_path,
        '[[jobs]]\nname = "a-{{ duration }}-{{ resolution }}"\nprompt = "fox"\nresolution = "768P"\n'
        'matrix = { duration = [6, 10], resolution = ["1080P"] }\n',
    )
    jobs = load_manifest(path).jobs
    # duration comes from the matrix; the job's own resolution wins over the matrix key (which is
    # still a variable): 10 s at 1080P would have been refused
    assert [(j.name, j.request["duration"], j.request["resolution"]) for j in jobs] == [
        ("a-6-1080P", 6, "768P"),
        ("a-10-1080P", 10, "768P"),
    ]


def test_rows_override_defaults(tmp_path):
    path = write(
        tmp_path,
        "m.toml",
        """
        [defaults]
        model = "T2V-01"
        [[jobs]]
        name = "{{ model }}"
        prompt = "fox"
        matrix = { model = ["T2V-01-Director", "MiniMax-Hailuo-02"] }
        """,
    )
    assert [j.request["model"] for j in load_manifest(path).jobs] == ["T2V-01-Director", "MiniMax-Hailuo-02"]


def test_matrix_is_a_cartesian_product_in_written_order(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "{{ b }}-{{ a }}"\nprompt = "p"\nmatrix = { b = [1, 2], a = ["x", "y", "z"] }\n')
    manifest = load_manifest(path)
    assert [j.name for j in manifest.jobs] == ["1-x", "1-y", "1-z", "2-x", "2-y", "2-z"]
    assert [j.index for j in manifest.jobs] == list(range(6))
    assert manifest.jobs[1].origin == "matrix b=1, a=y"


def test_matrix_times_foreach(tmp_path):
    write(tmp_path, "rows.csv", "id,action\n1,runs\n2,sleeps\n")
    path = t2v(tmp_path, '[[jobs]]\nname = "{{ id }}-{{ s }}"\nprompt = "A fox {{ action }} in {{ s }}"\nforeach = "rows.csv"\nmatrix = { s = ["spring", "winter"] }\n')
    jobs = load_manifest(path).jobs
    assert [j.name for j in jobs] == ["1-spring", "1-winter", "2-spring", "2-winter"]
    assert jobs[3].prompt == "A fox sleeps in winter"
    assert jobs[3].origin == "rows.csv line 3, matrix s=winter"


@pytest.mark.parametrize(
    "name, text",
    [
        ("rows.csv", "id,action,duration\n1,runs,10\n2,sleeps,\n"),
        ("rows.tsv", "id\taction\tduration\n1\truns\t10\n2\tsleeps\t\n"),
        ("rows.json", '[{"id": 1, "action": "runs", "duration": 10}, {"id": 2, "action": "sleeps"}]'),
        ("rows.jsonl", '{"id": 1, "action": "runs", "duration": 10}\n\n{"id": 2, "action": "sleeps"}\n'),
    ],
)
def test_foreach_file_formats(tmp_path, name, text):
    write(tmp_path, name, text)
    path = t2v(tmp_path, f'[[jobs]]\nname = "shot-{{{{ id }}}}"\nprompt = "A fox {{{{ action }}}}"\nforeach = "{name}"\n')
    manifest = load_manifest(path)
    assert [(j.name, j.prompt, j.request.get("duration")) for j in manifest.jobs] == [
        ("shot-1", "A fox runs", 10),
        ("shot-2", "A fox sleeps", None),
    ]
    assert tmp_path / name in manifest.inputs


def test_inline_foreach_and_row_variable(tmp_path):
    path = t2v(
        tmp_path,
        '[[jobs]]\nname = "{{ row[\'shot id\'] }}"\nprompt = "p"\nforeach = [{ "shot id" = "a" }, { "shot id" = "b" }]\n',
    )
    assert [j.name for j in load_manifest(path).jobs] == ["a", "b"]


def test_csv_text_becomes_typed_fields(tmp_path):
    write(tmp_path, "rows.csv", "n,prompt_optimizer,aigc_watermark,duration\n1,false,yes,6\n2,TRUE,0,\n")
    path = t2v(tmp_path, '[[jobs]]\nname = "n{{ n }}"\nprompt = "p"\nforeach = "rows.csv"\n')
    requests = [j.request for j in load_manifest(path).jobs]
    assert requests[0]["prompt_optimizer"] is False and requests[0]["aigc_watermark"] is True
    assert requests[0]["duration"] == 6
    assert requests[1]["prompt_optimizer"] is True and requests[1]["aigc_watermark"] is False
    assert "duration" not in requests[1]


def test_a_csv_row_is_one_row_whatever_its_cells_hold_and_is_named_by_its_first_line(tmp_path):
    # U+2028 and a form feed are line ends to str.splitlines, not to CSV; a quoted cell spans lines
    write(tmp_path, "rows.csv", 'id,action\n1,runs\u2028fast\n2,"sleeps\nlong"\n3,hops\x0chigh\n')
    path = t2v(tmp_path, '[[jobs]]\nname = "s{{ id }}"\nprompt = "A fox {{ action }}"\nforeach = "rows.csv"\n')
    jobs = load_manifest(path).jobs
    assert [(j.name, j.prompt, j.origin) for j in jobs] == [
        ("s1", "A fox runs\u2028fast", "rows.csv line 2"),
        ("s2", "A fox sleeps\nlong", "rows.csv line 3"),
        ("s3", "A fox hops\x0chigh", "rows.csv line 5"),
    ]


def test_a_csv_quote_left_open_is_an_error_not_the_rest_of_the_file_in_one_cell(tmp_path):
    write(tmp_path, "rows.csv", 'id,action\n1,runs\n2,"sleeps\n3,hops\n4,eats\n')
    path = t2v(tmp_path, '[[jobs]]\nname = "s{{ id }}"\nprompt = "A fox {{ action }}"\nforeach = "rows.csv"\n')
    (problem,) = problems_of(path)
    assert "rows.csv:3:" in problem and "a quoted cell is never closed" in problem


def test_row_values_are_data_not_templates(tmp_path):
    write(tmp_path, "rows.csv", "id,prompt\n1,{{ secret }}\n")
    path = t2v(tmp_path, '[[jobs]]\nname = "s{{ id }}"\nforeach = "rows.csv"\n')
    assert load_manifest(path).jobs[0].prompt == "{{ secret }}"


def test_defaults_that_do_not_apply_to_the_mode_are_not_sent(tmp_path):
    jpeg(tmp_path / "face.jpg")
    path = write(
        tmp_path,
        "m.toml",
        """
        [defaults]
        model = "S2V-01"
        duration = 6
        resolution = "768P"
        fast_pretreatment = true
        [[jobs]]
        name = "face"
        prompt = "She smiles"
        subject_reference = "face.jpg"
        """,
    )
    job = load_manifest(path).jobs[0]
    assert set(job.request) == {"model", "prompt", "subject_reference"}
    assert set(job.api_request()) == {"model", "prompt", "subject_reference"}


def test_fields_set_only_where_written(tmp_path):
    job = load_manifest(t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "p"\n')).jobs[0]
    assert job.request == {"model": "MiniMax-Hailuo-02", "prompt": "p"}


def test_empty_prompt_after_rendering_is_no_prompt(tmp_path):
    png(tmp_path / "a.png")
    path = write(tmp_path, "m.toml", '[vars]\nx = ""\n[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\nprompt = "  {{ x }}  "\n')
    assert "prompt" not in load_manifest(path).jobs[0].request


# --- templates ------------------------------------------------------------------------------------


def test_env_only_when_asked(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ env.LOOK }} / {{ env.get(\'NOPE\', \'fallback\') }}"\n')
    assert load_manifest(path, environ={"LOOK": "noir"}).jobs[0].prompt == "noir / fallback"
    # never implicitly: a variable named like an environment variable is undefined
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ LOOK }}"\n')
    assert "undefined variable 'LOOK'" in problems_of(path, environ={"LOOK": "noir"})[0]


def test_env_cannot_be_listed_or_printed(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ env }}"\n')
    assert "SECRET" not in load_manifest(path, environ={"KEY": "SECRET"}).jobs[0].prompt
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ env | list }}"\n')
    assert "SECRET" not in " ".join(problems_of(path, environ={"KEY": "SECRET"}))
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ env._environ }}"\n')
    assert "sandbox" in problems_of(path, environ={"KEY": "SECRET"})[0]


def test_os_environ_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDBATCH_TEST_LOOK", "sepia")
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "{{ env.VIDBATCH_TEST_LOOK }}"\n')
    assert load_manifest(path).jobs[0].prompt == "sepia"


def test_name_is_available_to_output_prompt_and_images(tmp_path):
    png(tmp_path / "img" / "hero.png")
    path = write(
        tmp_path,
        "m.toml",
        '[[jobs]]\nname = "hero"\nmodel = "I2V-01"\nprompt = "shot {{ name }}"\nfirst_frame_image = "img/{{ name }}.png"\noutput = "{{ name }}/take.mp4"\n',
    )
    job = load_manifest(path).jobs[0]
    assert job.prompt == "shot hero"
    assert job.output == tmp_path / "renders" / "hero" / "take.mp4"
    assert job.request["first_frame_image"].path == tmp_path / "img" / "hero.png"


def test_include_reads_from_the_manifest_folder_and_is_an_input(tmp_path):
    write(tmp_path, "prompts/base.j2", "{{ animal | upper }} at {{ name }}\n")
    path = t2v(tmp_path, '[vars]\nanimal = "fox"\n[[jobs]]\nname = "j"\nprompt = "{% include \'prompts/base.j2\' %} [Pan left]"\n')
    manifest = load_manifest(path)
    assert manifest.jobs[0].prompt == "FOX at j [Pan left]"
    assert tmp_path / "prompts" / "base.j2" in manifest.inputs


def test_a_variable_an_imported_macro_cannot_see_is_explained_not_suggested_as_itself(tmp_path):
    write(tmp_path, "m.j2", "{% macro hi() %}hello {{ who }}{% endmacro %}")
    path = t2v(tmp_path, '[vars]\nwho = "fox"\n[[jobs]]\nname = "a"\nprompt = "{% import \'m.j2\' as m %}{{ m.hi() }}"\n')
    (problem,) = problems_of(path)
    assert "did you mean 'who'" not in problem
    assert "undefined variable 'who' in an imported template" in problem and "with context" in problem
    path = t2v(tmp_path, '[vars]\nwho = "fox"\n[[jobs]]\nname = "a"\nprompt = "{% import \'m.j2\' as m with context %}{{ m.hi() }}"\n')
    assert load_manifest(path).jobs[0].prompt == "hello fox"


def test_include_through_a_symlink_out_of_the_folder_fails(tmp_path):
    outside = write(tmp_path, "outside/secret.j2", "SECRET")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link.j2").symlink_to(outside)
    path = t2v(tmp_path / "m", '[[jobs]]\nname = "j"\nprompt = "{% include \'link.j2\' %}"\n')
    [problem] = problems_of(path)
    assert "template 'link.j2' not found in the manifest's folder" in problem
    assert "SECRET" not in problem


def test_include_syntax_error_points_into_the_included_file(tmp_path):
    write(tmp_path, "p.j2", "line one\n{{ broken \n")
    path = t2v(tmp_path, '[[jobs]]\nname = "j"\nprompt = "{% include \'p.j2\' %}"\n')
    [problem] = problems_of(path)
    assert "p.j2:2: job j: field prompt: template syntax error" in problem


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ a }}-{{b}}", "1-x"),
        ("{{ a }}\n", "1"),
        ("pre {{ a }} {{ b | upper }}", "pre 1 X"),
        ("{{- a -}} {{ b }}", "1x"),
        ("{{ '{{' }}", "{{"),
        ("{% if a == 1 %}one{% endif %}", "one"),
        ("{# note #}{{ a }}", "1"),
        ("{{ a }}}}", "1}}"),
    ],
)
def test_plain_substitutions_render_like_jinja(tmp_path, template, expected):
    from vidbatch.manifest.templates import Templates

    templates = Templates(tmp_path, {})
    variables = {**templates.globals, "a": 1, "b": "x"}
    assert templates.render(template, variables) == expected
    assert templates.env.from_string(template).render(a=1, b="x") == expected


def test_each_distinct_template_compiles_once(tmp_path, monkeypatch):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from vidbatch.manifest.templates import Templates

    compiled: list[str] = []
    original = Templates.compile

    def counting(self, source):
        before = self.compilations
        result = original(self, source)
        if self.compilations != before:
            compiled.append(source)
        return result

    jinja_calls: list[str] = []
    original_jinja = ImmutableSandboxedEnvironment.compile

    def counting_jinja(self, source, *a, **kw):
        jinja_calls.append(source)
        return original_jinja(self, source, *a, **kw)

    monkeypatch.setattr(Templates, "compile", counting)
    monkeypatch.setattr(ImmutableSandboxedEnvironment, "compile", counting_jinja)
    write(tmp_path, "style.j2", "{{ s | title }}")
    path = t2v(
        tmp_path,
        '[[jobs]]\nname = "{{ s }}-{{ n }}"\nprompt = "{% include \'style.j2\' %} {{ n }}"\noutput = "{{ s }}/{{ name }}.mp4"\n'
        'matrix = { s = ["a", "b", "c"], n = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }\n',
    )
    assert len(load_manifest(path).jobs) == 30
    assert sorted(compiled) == sorted(["{{ s }}-{{ n }}", "{% include 'style.j2' %} {{ n }}", "{{ s }}/{{ name }}.mp4"])
    assert len(jinja_calls) == 2  # the prompt and style.j2; the others are plain substitutions


# --- images ---------------------------------------------------------------------------------------


def test_each_image_is_read_once(tmp_path, monkeypatch):
    reads: list[Path] = []
    original = images.inspect_file
    monkeypatch.setattr(images, "inspect_file", lambda p: reads.append(p) or original(p))
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", colour=(9, 9, 9))
    path = write(
        tmp_path,
        "m.toml",
        '[[jobs]]\nname = "{{ i }}-{{ img }}"\nmodel = "I2V-01"\nfirst_frame_image = "{{ img }}.png"\n'
        'matrix = { i = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], img = ["a", "b"] }\n'
        '[[jobs]]\nname = "again"\nmodel = "MiniMax-Hailuo-02"\nfirst_frame_image = "./a.png"\nlast_frame_image = "b.png"\n',
    )
    manifest = load_manifest(path)
    assert len(manifest.jobs) == 21
    assert sorted(p.name for p in reads) == ["a.png", "b.png"]
    assert {tmp_path / "a.png", tmp_path / "b.png"} <= manifest.inputs


def test_image_ref_forms(tmp_path):
    png(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    data_url = images.to_data_url(data, "image/png")
    path = write(
        tmp_path,
        "m.json",
        json.dumps(
            {
                "defaults": {"model": "MiniMax-Hailuo-02"},
                "jobs": [
                    {"name": "file", "first_frame_image": "a.png"},
                    {"name": "data", "first_frame_image": data_url},
                    {"name": "url", "first_frame_image": "https://example.com/a.png"},
                ],
            }
        ),
    )
    file_job, data_job, url_job = load_manifest(path).jobs
    ref = file_job.request["first_frame_image"]
    assert (ref.kind, ref.source, ref.path, ref.mime) == ("file", "a.png", tmp_path / "a.png", "image/png")
    assert ref.identity() == "sha256:" + ref.sha256
    assert ref.display() == {"path": "a.png", "sha256": ref.sha256}
    assert file_job.api_request()["first_frame_image"] == data_url
    assert data_job.request["first_frame_image"].identity() == ref.identity()
    assert data_job.api_request()["first_frame_image"] == data_url
    shown = data_job.display_request()["first_frame_image"]
    assert shown["sha256"] == ref.sha256 and len(shown["data_url"]) < 80
    assert url_job.request["first_frame_image"].identity() == "https://example.com/a.png"
    assert url_job.api_request()["first_frame_image"] == "https://example.com/a.png"
    assert url_job.display_request()["first_frame_image"] == "https://example.com/a.png"
    for job in (file_job, data_job, url_job):
        text = json.dumps(job.display_request())
        assert base64.b64encode(data[:30]).decode()[:20] not in text


def test_api_value_refuses_an_image_changed_since_loading(tmp_path):
    png(tmp_path / "a.png")
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\n')
    job = load_manifest(path).jobs[0]
    png(tmp_path / "a.png", colour=(0, 0, 0))
    with pytest.raises(ManifestError, match="changed since the manifest was loaded"):
        job.api_request()


def test_job_and_manifest_shapes(tmp_path):
    png(tmp_path / "a.png")
    path = write(tmp_path, "m.toml", 'output_dir = "out"\n[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\nprompt = "p"\n')
    manifest = load_manifest(str(path))
    assert isinstance(manifest, Manifest)
    assert manifest.path == path and manifest.output_dir == tmp_path / "out"
    assert manifest.inputs == {path, tmp_path / "a.png"}
    job = manifest.jobs[0]
    assert isinstance(job, Job)
    assert (job.name, job.manifest, job.index, job.output, job.mode) == ("x", path, 0, tmp_path / "out" / "x.mp4", facts.Mode.I2V)
    from vidbatch.identity import content_key

    assert job.key == content_key(job.identity_request())
    assert job.identity_request()["first_frame_image"].startswith("sha256:")
    assert job.api_request()["first_frame_image"].startswith("data:image/png;base64,")
    json.dumps(job.display_request())


def test_subject_and_frames_by_path_in_json_manifest(tmp_path):
    jpeg(tmp_path / "face.jpg")
    path = write(tmp_path, "m.json", '{"jobs": [{"name": "s", "model": "S2V-01", "subject_reference": "face.jpg"}]}')
    body = load_manifest(path).jobs[0].api_request()
    assert body["subject_reference"][0]["image"][0].startswith("data:image/jpeg;base64,")


# --- names and outputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ok",
    [
        ("fox", True),
        ("fox winter 02", True),
        ("狐狸-冬", True),
        ("a..b", True),
        ("", False),
        (".", False),
        ("..", False),
        (".hidden", False),
        ("a/b", False),
        ("a\\b", False),
        ("a:b", False),
        ("a\nb", False),
        ("a\x00b", False),
        (" lead", False),
        ("trail.", False),
        ("x" * 201, False),
    ],
)
def test_name_rules(name, ok):
    assert (name_problem(name) is None) == ok


@pytest.mark.parametrize(
    "text, parts",
    [
        ("a.mp4", ["a.mp4"]),
        ("dir/sub/a.mp4", ["dir", "sub", "a.mp4"]),
        ("./dir//a.mp4", ["dir", "a.mp4"]),
        ("../a.mp4", None),
        ("dir/../../a.mp4", None),
        ("/abs/a.mp4", None),
        ("~/a.mp4", None),
        ("C:/a.mp4", None),
        ("dir\\a.mp4", None),
        ("dir/", None),
        ("", None),
    ],
)
def test_output_rules(text, parts):
    got, problem = output_parts(text)
    assert (got if problem is None else None) == parts


def test_output_cannot_escape_through_a_symlink(tmp_path):
    (tmp_path / "renders").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "renders" / "link").symlink_to(tmp_path / "elsewhere")
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "p"\noutput = "link/{{ name }}.mp4"\n')
    [problem] = problems_of(path)
    assert "would be written outside output_dir" in problem and "field output" in problem


def test_output_dir_may_be_absolute(tmp_path):
    target = tmp_path / "videos"
    path = write(tmp_path / "m", "m.toml", f'output_dir = "{target}"\n[[jobs]]\nname = "x"\nmodel = "T2V-01"\nprompt = "p"\n')
    assert load_manifest(path).jobs[0].output == target / "x.mp4"


def test_duplicate_outputs_across_manifests(tmp_path):
    a = write(tmp_path, "a.toml", 'output_dir = "out"\n[[jobs]]\nname = "fox"\nmodel = "T2V-01"\nprompt = "p"\n')
    b = write(tmp_path, "b.toml", 'output_dir = "out"\n[[jobs]]\nname = "other"\nmodel = "T2V-01"\nprompt = "q"\noutput = "fox.mp4"\n')
    assert len(load_manifest(a).jobs) == 1 and len(load_manifest(b).jobs) == 1
    with pytest.raises(ManifestError) as info:
        load_manifests([a, b])
    [problem] = info.value.problems
    assert problem.job == "other" and problem.field == "output" and problem.file.endswith("b.toml")
    assert "is also written by job fox of" in problem.message and "a.toml" in problem.message
    # naming the same manifest twice is not a conflict
    assert len(load_manifests([a, a])) == 1


def test_an_output_that_is_a_folder_of_another_output_is_refused(tmp_path):
    # paid for, then never placed: one of the two renders could not be written
    path = t2v(
        tmp_path,
        '[[jobs]]\nname = "a"\nprompt = "p"\noutput = "x"\n'
        '[[jobs]]\nname = "b"\nprompt = "q"\noutput = "x/y/b.mp4"\n'
        '[[jobs]]\nname = "c"\nprompt = "r"\noutput = "z/c.mp4"\n'
        '[[jobs]]\nname = "d"\nprompt = "s"\noutput = "z"\n'
        '[[jobs]]\nname = "e"\nprompt = "t"\noutput = "x2/e.mp4"\n'
        '[[jobs]]\nname = "f"\nprompt = "u"\noutput = "x2/f.mp4"\n',
    )
    b, d = problems_of(path)
    assert "job b: field output: output " in b and "renders/x/y/b.mp4 would go into " in b
    assert b.endswith("renders/x, which job a writes as a file; give one of them another name or output")
    assert "job d: field output: output " in d and "renders/z is a folder job c writes " in d and "renders/z/c.mp4 into" in d


def test_an_output_over_an_input_is_refused_before_anything_is_sent(tmp_path, monkeypatch):
    # output_dir "." puts outputs beside the manifest: a run would replace the manifest, the rows
    # file, the template and the image it reads with videos
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "first.png")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "hero.png").symlink_to(tmp_path / "first.png")
    write(tmp_path, "rows.csv", "id,image\n01,links/hero.png\n")
    write(tmp_path, "prompt.j2", "A fox")
    write(
        tmp_path,
        "m.toml",
        """
        output_dir = "."
        [defaults]
        model = "MiniMax-Hailuo-02"
        [[jobs]]
        name = "shot-{{ id }}"
        prompt = "{% include 'prompt.j2' %}"
        first_frame_image = "{{ image }}"
        foreach = "rows.csv"
        [[jobs]]
        name = "a"
        prompt = "p"
        output = "m.toml"
        [[jobs]]
        name = "b"
        prompt = "p"
        output = "./rows.csv"
        [[jobs]]
        name = "c"
        prompt = "p"
        output = "prompt.j2"
        [[jobs]]
        name = "d"
        prompt = "p"
        output = "first.png"
        [[sequences]]
        name = "film"
        shots = ["shot-01"]
        output = "links/hero.png"
        """,
    )
    write(tmp_path, "n.toml", 'output_dir = "."\n[[jobs]]\nname = "z"\nmodel = "T2V-01"\nprompt = "p"\noutput = "m.toml"\n')
    result = cli("validate", "m.toml", "n.toml")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ") or " would overwrite " in line]
    assert len(errors) == 6, result.stderr
    assert "m.toml:9: job a: field output: output m.toml would overwrite the manifest m.toml itself; " in result.stderr
    assert "job b: field output: output rows.csv would overwrite rows.csv, an included template or rows file this manifest reads" in result.stderr
    assert "job c: field output: output prompt.j2 would overwrite prompt.j2, an included template or rows file" in result.stderr
    # the image is read through a symbolic link: the file it leads to is the input too
    assert (
        "job d: field output: output first.png would overwrite links/hero.png, the first_frame_image of job shot-01 "
        "(the same file, through a symbolic link); a run would replace it with a video" in result.stderr
    )
    assert "job sequence film: field output: output links/hero.png would overwrite links/hero.png, the first_frame_image" in result.stderr
    # one manifest's output over another's input
    assert "n.toml:2: job z: field output: output m.toml would overwrite the manifest m.toml; a run would replace it with a video" in result.stderr
    assert "nothing was sent or written" in result.stderr
    assert (tmp_path / "m.toml").read_text(encoding="utf-8").startswith('output_dir = "."')


def test_an_output_over_an_input_in_another_case_warns(tmp_path):
    path = write(tmp_path, "m.toml", 'output_dir = "."\n[[jobs]]\nname = "a"\nmodel = "T2V-01"\nprompt = "p"\noutput = "M.toml"\n')
    [result] = check_manifests([path])
    if (tmp_path / "M.toml").exists():  # a case-insensitive file system: the same file
        assert any("would overwrite the manifest" in p.message for p in result.problems)
    else:
        assert result.ok
        assert any("differs from the manifest" in w.message and "only in case" in w.message for w in result.warnings)


def test_outputs_differing_only_in_case_warn(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "{{ n }}"\nprompt = "p {{ n }}"\nmatrix = { n = ["Fox", "fox"] }\n')
    [result] = check_manifests([path])
    assert result.ok
    assert any("only in case" in w.message for w in result.warnings)


# --- problems: all of them, located -----------------------------------------------------------------


def test_all_problems_are_collected_with_lines(tmp_path):
    path = write(
        tmp_path,
        "m.toml",
        """
        [defaults]
        model = "MiniMax-Hailuo-02"

        [[jobs]]
        name = "a"
        prompt = "p"
        duration = 7

        [[jobs]]
        name = "b"
        prompt = "{{ nope }}"

        [[jobs]]
        name = "c/d"
        prompt = "p"
        """,
    )
    problems = problems_of(path)
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:7: ")  # outside the working folder: an absolute path
    assert ":7: job a: field duration: MiniMax-Hailuo-02 text-to-video takes 6, 10 seconds, not 7" in problems[0]
    assert ":11: job b: field prompt: undefined variable 'nope'" in problems[1]
    assert ":14: job jobs[2]: field name:" in problems[2]


def test_json_problems_have_exact_lines(tmp_path):
    path = write(
        tmp_path,
        "m.json",
        """
        {
          "defaults": {"model": "T2V-01"},
          "jobs": [
            {"name": "a", "prompt": "p"},
            {
              "name": "b",
              "prompt": "p",
              "duration": 10
            }
          ]
        }
        """,
    )
    [problem] = problems_of(path)
    assert ":8: job b: field duration: T2V-01 text-to-video takes 6 seconds, not 10" in problem


def test_problems_from_defaults_point_at_defaults(tmp_path):
    path = write(tmp_path, "m.toml", '[defaults]\nmodel = "T2V-01"\nduration = 10\n\n[[jobs]]\nname = "a"\nprompt = "p"\n')
    [problem] = problems_of(path)
    assert ":3: job a: field duration:" in problem and "(from [defaults])" in problem


def test_problems_of_one_table_are_capped(tmp_path):
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "j{{ n }}"\nmodel = "T2V-01"\nprompt = "p"\nduration = 10\nmatrix = { n = ' + str(list(range(100))) + " }\n")
    problems = problems_of(path)
    assert len(problems) == 21
    assert "80 more problems in jobs expanded from this table are not shown" in problems[-1]


def test_manifest_error_carries_the_inputs_read(tmp_path):
    png(tmp_path / "a.png")
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\nprompt = "{{ nope }}"\n[[jobs]]\nname = "y"\nmodel = "I2V-01"\nfirst_frame_image = "missing.png"\n')
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert info.value.inputs >= {path, tmp_path / "missing.png"}


def test_reserved_override_is_refused(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "p"\n')
    assert "'env' cannot be a variable name" in problems_of(path, variables={"env": "x"})[0]


def test_group_problems():
    from vidbatch.errors import ManifestProblem

    a = ManifestProblem("m.toml", "msg", job="j1", field="prompt", line=3)
    b = ManifestProblem("m.toml", "msg", job="j2", field="prompt", line=3)
    c = ManifestProblem("m.toml", "other", job="j3", field="prompt", line=3)
    assert group_problems([a, b, c]) == [(a, 1), (c, 0)]


# --- warnings ---------------------------------------------------------------------------------------


def test_camera_warnings_name_the_job_and_the_nearest_command(tmp_path):
    path = t2v(
        tmp_path,
        '[[jobs]]\nname = "fox-{{ n }}"\nprompt = "A fox [Push out] then [Pan left, Tilt up, Zoom in, Shake]"\nmatrix = { n = [1, 2] }\n'
        '[[jobs]]\nname = "old"\nmodel = "T2V-01"\nprompt = "A fox [Pan left]"\n',
    )
    manifest = load_manifest(path)
    messages = [(w.job, w.field, w.message) for w in manifest.warnings]
    assert ("fox-1", "prompt", "[Push out] is not a camera command and will reach the model as text; did you mean [Pull out]?") in messages
    assert any(job == "fox-2" and "has 4 commands" in m for job, _, m in messages)
    assert any(job == "old" and "T2V-01 does not take camera commands" in m for job, _, m in messages)
    assert manifest.jobs[0].warnings == [m for j, _, m in messages if j == "fox-1"]


def test_validate_shows_warnings_and_strict_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t2v(tmp_path, '[[jobs]]\nname = "fox-{{ n }}"\nprompt = "A fox [Push out]"\nmatrix = { n = [1, 2, 3] }\n')
    result = cli("validate", "m.toml")
    assert result.exit_code == 0
    assert result.stdout == "m.toml: 3 jobs OK (3 warnings)\n"
    assert "warning: m.toml:5: job fox-1: field prompt: [Push out] is not a camera command" in result.stderr
    assert "(and 2 more jobs)" in result.stderr
    assert cli("validate", "--strict", "m.toml").exit_code == 2
    assert cli("validate", "--quiet", "m.toml").stdout == ""


def test_var_option_parsing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t2v(tmp_path, '[vars]\nlook = "a"\n[[jobs]]\nname = "x"\nprompt = "{{ look }}"\n')
    result = cli("render", "--json", "--var", "look=b=c", "m.toml")
    assert json.loads(result.stdout)["manifests"][0]["jobs"][0]["prompt"] == "b=c"
    result = cli("render", "--var", "look", "m.toml")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
    result = cli("render", "--var", "1x=2", "m.toml")
    assert result.exit_code == 2 and "not a variable name" in result.output


def test_parse_vars_last_wins():
    from vidbatch.cli.options import parse_vars

    assert parse_vars(["a=1", "b=", "a=2"]) == {"a": "2", "b": ""}


# --- nothing written ----------------------------------------------------------------------------------


def test_validating_a_broken_manifest_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "a.png")
    write(tmp_path, "bad.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\nduration = 10\n')
    before = sorted(tmp_path.rglob("*"))
    for command in ("validate", "render"):
        result = cli(command, "bad.toml")
        assert result.exit_code == 2
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "renders").exists() and not (tmp_path / ".vidbatch").exists()


def test_loading_a_good_manifest_writes_nothing_either(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "p"\n')
    before = sorted(tmp_path.rglob("*"))
    assert cli("validate", "m.toml").exit_code == 0
    assert cli("render", "m.toml").exit_code == 0
    assert sorted(tmp_path.rglob("*")) == before


# --- watch-mode sniffing ---------------------------------------------------------------------------


def test_is_manifest_file(tmp_path):
    assert is_manifest_file(t2v(tmp_path, '[[jobs]]\nname = "x"\nprompt = "p"\n'))
    assert is_manifest_file(write(tmp_path, "j.json", '{"jobs": []}'))
    assert not is_manifest_file(write(tmp_path, "pyproject.toml", '[project]\nname = "jobs"\n'))
    assert not is_manifest_file(write(tmp_path, "broken.toml", "jobs = [ nope"))
    assert not is_manifest_file(write(tmp_path, "list.json", '["jobs"]'))
    assert not is_manifest_file(write(tmp_path, "shots.csv", "jobs\n1\n"))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe jobs \x00")
    assert not is_manifest_file(tmp_path / "bin.toml")
    assert not is_manifest_file(tmp_path / "missing.toml")
    (tmp_path / "dir.toml").mkdir()
    assert not is_manifest_file(tmp_path / "dir.toml")


def test_unreadable_image_is_reported(tmp_path, monkeypatch):
    # tests run as root in CI, where chmod 0 reads fine: the OS refusal is injected instead
    png(tmp_path / "a.png")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images, "inspect_file", refuse)
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\n')
    assert "cannot be read" in problems_of(path)[0]


def test_folder_in_place_of_an_image_is_reported(tmp_path):
    (tmp_path / "a.png").mkdir()
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "a.png"\n')
    assert "is a folder, not an image file" in problems_of(path)[0]


def test_huge_image_is_refused_without_reading_it(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.write(png_bytes())
        f.seek(facts.IMAGE_MAX_BYTES + 10)
        f.write(b"\0")
    monkeypatch.setattr(images, "inspect_file", lambda p: pytest.fail("read the whole file"))
    path = write(tmp_path, "m.toml", '[[jobs]]\nname = "x"\nmodel = "I2V-01"\nfirst_frame_image = "big.png"\n')
    assert "images must be under 20 MB" in problems_of(path)[0]


def test_many_duplicate_outputs_are_counted_not_listed(tmp_path):
    path = t2v(tmp_path, '[[jobs]]\nname = "j{{ n }}"\nprompt = "p"\noutput = "same.mp4"\nmatrix = { n = ' + str(list(range(50))) + " }\n")
    problems = problems_of(path)
    assert len(problems) == 21
    assert problems[-1].endswith("29 more jobs write an output already written")
