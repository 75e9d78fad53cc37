"""Input hardening (issue 11 items 6-13, issue 10 section 5), beside the adversarial corpus:
the behaviours the corpus cannot show (what still works, what the messages say, the limits'
overrides), in-process and fast."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from vidbatch import config, images, rules
from vidbatch.errors import ConfigError, ManifestError
from vidbatch.manifest import check_manifests, load_manifest
from vidbatch.manifest import loader, source, templates

from .conftest import TEST_KEY
from .helpers import cli, jpeg, png, png_bytes, t2v_manifest, write

HEADER = 'output_dir = "renders"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n'


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # problems name files relative to the working folder


def messages(path: Path, **kw) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load_manifest(path, **kw)
    return [str(p) for p in e.value.problems]


# --- templates (item 6) ------------------------------------------------------------------------


def test_ordinary_templates_still_render_within_the_budget(tmp_path):
    write(tmp_path, "p.j2", "{{ subject|title }} at {{ hour }}h")
    m = write(tmp_path, "m.toml", HEADER + """
        [[jobs]]
        name = "s{{ n }}"
        prompt = "{% include 'p.j2' %}; {{ ('ab' * 3)|center(10) }} {{ 2 ** 10 }} {{ range(3)|join('-') }} {{ 'x' ~ n }}"
        matrix = { n = [1, 2], subject = ["owl"], hour = [6] }
    """)
    jobs = load_manifest(m).jobs
    assert [j.request["prompt"] for j in jobs] == [
        f"Owl at 6h;   ababab   1024 0-1-2 x{n}" for n in (1, 2)
    ]


def test_ordinary_uses_of_what_can_multiply_its_arguments_still_render(tmp_path):
    m = write(tmp_path, "m.toml", HEADER + """
        [[jobs]]
        name = "a"
        prompt = \"\"\"{{ '{} and {b}'.format(1, b='two') }} {{ '%s-%s' % (1, 2) }} {{ '%(a)s' % dict(a=3) }} \
{{ 'a b'.replace(' ', '_') }} {{ ', '.join(['x', 'y']) }} {{ 'l1\\nl2'|indent(2) }} {{ 'aaa bbb'|wordwrap(3, wrapstring='/') }} \
{{ range(3)|map('string')|join('-') }} {% set z %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ z }} {{ [[1], [2]] }}\"\"\"
    """)
    (job,) = load_manifest(m).jobs
    assert job.request["prompt"] == "1 and two 1-2 3 a_b x, y l1\n  l2 aaa/bbb 0-1-2 012 [[1], [2]]"


def test_a_costly_template_is_refused_naming_file_line_job_and_field(tmp_path):
    m = write(tmp_path, "m.toml", HEADER + '[[jobs]]\nname = "a"\nprompt = "{{ \'x\'|center(2000000000) }}"\n')
    (problem,) = messages(m)
    assert problem.startswith("m.toml:6: job a: field prompt: template too costly")


def test_one_manifests_budget_stops_its_expansion_early(tmp_path):
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    m = write(tmp_path, "m.toml", HEADER + f'[[jobs]]\nname = "s{{{{ n }}}}"\nprompt = "{loop}"\nmatrix = {{ n = {list(range(500))} }}\n')
    results = check_manifests([m])
    shown = [p.message for p in results[0].problems]
    # each job's render is stopped at its own bound; the manifest's total stops the expansion
    # long before 500 of them, and says so
    assert any("budget together" in s for s in shown)
    assert len(shown) <= loader.MAX_PROBLEMS_PER_TABLE + 2
    assert templates.EXPANSION_MAX_STEPS // templates.MAX_STEPS < 500


def test_a_costly_manifest_does_not_stop_the_others_of_a_folder(tmp_path):
    bad = write(tmp_path, "bad.toml", HEADER + '[[jobs]]\nname = "a"\nprompt = "{{ 7 ** (10 ** 9) }}"\n')
    good = write(tmp_path, "good.toml", HEADER + '[[jobs]]\nname = "b"\nprompt = "fine"\n')
    bad_result, good_result = check_manifests([bad, good])
    assert bad_result.manifest is None and "too costly" in bad_result.problems[0].message
    assert good_result.manifest is not None and [j.name for j in good_result.manifest.jobs] == ["b"]


def test_templates_cannot_read_the_key_variable_in_any_way(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    for expr in ("env.MINIMAX_API_KEY", "env['MINIMAX_API_KEY']", "env.get('MINIMAX_API_KEY', 'x')"):
        m = write(tmp_path, "m.toml", HEADER + f'[[jobs]]\nname = "a"\nprompt = "{{{{ {expr} }}}}"\n')
        (problem,) = messages(m)
        assert "cannot read MINIMAX_API_KEY" in problem and TEST_KEY not in problem


def test_the_key_from_a_row_is_refused_without_echoing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    write(tmp_path, "rows.csv", f"id,prompt\n1,look {TEST_KEY}\n")
    m = write(tmp_path, "m.toml", HEADER + '[[jobs]]\nname = "s{{ id }}"\nforeach = "rows.csv"\n')
    (problem,) = messages(m)
    assert "contains the API key" in problem and TEST_KEY not in problem


def test_the_config_files_key_in_a_prompt_is_blamed_on_the_config_file(tmp_path, monkeypatch):
    """The problem said "(the value of MINIMAX_API_KEY)" for a key that came from the config file,
    with that variable unset."""
    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    cfg = write(tmp_path, "c.toml", f'api_key = "{TEST_KEY}"\n')
    cfg.chmod(0o600)
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    m = write(tmp_path, "m.toml", HEADER + f'[[jobs]]\nname = "a"\nprompt = "look {TEST_KEY}"\n')
    (problem,) = messages(m)
    assert f"contains the API key (api_key in {cfg})" in problem and TEST_KEY not in problem


def test_the_key_in_a_matrix_is_refused_without_echoing_it(tmp_path, monkeypatch):
    """A matrix row's label shows its values ("matrix token=..."): the problem that refused the
    key used to print it there, and a job whose templates left the value unused kept it in its
    origin (``render --json``, the job cache)."""
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    m = write(tmp_path, "m.toml", HEADER + f'[[jobs]]\nname = "s-{{{{ token }}}}"\nprompt = "x"\nmatrix = {{ token = ["{TEST_KEY}"] }}\n')
    (problem,) = messages(m)
    assert "contains the API key" in problem and "token=<API key>" in problem and TEST_KEY not in problem
    m = write(tmp_path, "m.toml", HEADER + f'[[jobs]]\nname = "s"\nprompt = "x"\nmatrix = {{ unused = ["{TEST_KEY}"] }}\n')
    (job,) = load_manifest(m).jobs
    assert job.origin == "matrix unused=<API key>"


# --- files (item 7) -----------------------------------------------------------------------------


def test_read_regular_refuses_what_is_not_a_file_and_stops_at_its_limit(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(source.NotRegularFile):
        source.read_regular(tmp_path / "pipe", 10)  # returns at once: opened without blocking
    with pytest.raises(source.NotRegularFile):
        source.read_regular("/dev/zero", 10)
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(source.FileTooLarge):
        source.read_regular(tmp_path / "f", 10)
    assert source.read_regular(tmp_path / "f", 11) == b"x" * 11


# --- expansion (item 8) -------------------------------------------------------------------------


def _matrix_manifest(tmp_path: Path, extra: str = "") -> Path:
    return write(tmp_path, "m.toml", extra + HEADER + '[[jobs]]\nname = "s{{ a }}-{{ b }}"\nprompt = "x"\nmatrix = { a = ' + str(list(range(120))) + ", b = " + str(list(range(100))) + " }\n")


def test_an_expansion_past_the_default_cap_is_refused_before_it_is_built(tmp_path):
    (problem,) = messages(_matrix_manifest(tmp_path))
    assert "expands to 12,000 jobs (120 a x 100 b)" in problem
    assert "at most 10,000 jobs per manifest" in problem and "max_jobs = 12000" in problem


def test_max_jobs_in_the_manifest_or_from_the_caller_allows_more(tmp_path):
    assert len(load_manifest(_matrix_manifest(tmp_path, "max_jobs = 12000\n")).jobs) == 12000
    assert len(load_manifest(_matrix_manifest(tmp_path), max_jobs=12000).jobs) == 12000
    (problem,) = messages(_matrix_manifest(tmp_path, "max_jobs = 12000\n"), max_jobs=100)
    assert "at most 100 jobs" in problem


def test_a_manifests_own_max_jobs_has_a_ceiling_and_is_never_advised_past_it(tmp_path):
    # max_jobs = 10000000000, as the message used to advise, expanded until memory ran out
    axes = ", ".join(f"v{i} = {list(range(100))}" for i in range(5))
    body = HEADER + '[[jobs]]\nname = "s{{ v0 }}-{{ v1 }}-{{ v2 }}-{{ v3 }}-{{ v4 }}"\nprompt = "x"\nmatrix = { ' + axes + " }\n"
    (problem,) = messages(write(tmp_path, "m.toml", body))
    assert "expands to 10,000,000,000 jobs" in problem and "max_jobs = 10000000000" not in problem
    assert "at most 1,000,000 jobs; split it" in problem
    (problem,) = messages(write(tmp_path, "m.toml", "max_jobs = 10000000000\n" + body))
    assert "m.toml:1: field max_jobs: 10000000000 is greater than the maximum of 1000000" in problem


def test_the_cap_counts_every_table_of_a_manifest(tmp_path):
    tables = "".join(f'[[jobs]]\nname = "t{k}-{{{{ n }}}}"\nprompt = "x"\nmatrix = {{ n = {list(range(6))} }}\n' for k in range(3))
    m = write(tmp_path, "m.toml", "max_jobs = 15\n" + HEADER + tables)
    (problem,) = messages(m)
    assert "jobs[2]" in problem or "t2" in problem
    assert "max_jobs = 18" in problem


# --- values and names (items 9-11) --------------------------------------------------------------


def test_names_are_measured_in_bytes_with_room_for_the_staging_name(tmp_path):
    assert loader.STAGING_EXTRA_BYTES == len(".x.12345678.vidbatch-new") - 1
    ok = "镜" * (loader.NAME_MAX_BYTES // 3)
    assert loader.name_problem(ok) is None
    assert "bytes as a file name" in (loader.name_problem(ok + "镜") or "")


@pytest.mark.parametrize("name", ["CON", "nul.txt", "Com1", "lpt9.mp4", "abc\u202ecod.exe", "a\u2066b", "a\x85b"])
def test_device_names_and_deceptive_characters_are_refused(name):
    assert loader.name_problem(name) is not None


@pytest.mark.parametrize("name", ["console", "null", "com10", "👩\u200d🚀-launch", "شات-1", "镜头一"])
def test_ordinary_names_near_those_are_accepted(name):
    assert loader.name_problem(name) is None


def test_output_folder_checks_create_nothing(tmp_path):
    m = write(tmp_path, "m.toml", HEADER.replace('"renders"', '"a/b/c"') + '[[jobs]]\nname = "s"\nprompt = "x"\n')
    assert load_manifest(m).output_dir == tmp_path / "a" / "b" / "c"
    assert not (tmp_path / "a").exists()


def test_camera_commands_in_full_width_brackets_are_warned_about(tmp_path):
    m = write(tmp_path, "m.toml", HEADER + '[[jobs]]\nname = "s"\nprompt = "A cat 【Push in】 then ［推近］ 【重要】"\n')
    warnings = load_manifest(m).jobs[0].warnings
    assert any("【Push in】 uses full-width brackets" in w and "[Push in]" in w for w in warnings)
    assert any("［推近］" in w for w in warnings)
    assert not any("重要" in w for w in warnings)
    assert rules.check_camera_commands("【重要】 [Push in]") == []


def test_images_need_their_data(tmp_path):
    whole = png_bytes()
    assert images.inspect_bytes(whole).complete
    assert not images.inspect_bytes(whole[:-12]).complete  # no IEND
    jpeg(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    assert images.inspect_bytes(data).complete
    assert not images.inspect_bytes(data[: data.index(b"\xff\xda")]).complete
    assert "without its image data" in " ".join(images.limit_problems(images.inspect_bytes(whole[:-12])))



def _with_exif_thumbnail(photo: bytes, thumbnail: bytes) -> bytes:
    """``photo`` with an APP1 EXIF segment holding ``thumbnail`` (a whole JPEG), as cameras write."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">HI", 0, 0)  # an empty IFD0
    body = b"Exif\x00\x00" + tiff + thumbnail
    return photo[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + photo[2:]


def test_a_photo_cut_short_is_refused_though_its_exif_thumbnail_is_whole(tmp_path):
    jpeg(tmp_path / "big.jpg", 640, 480)
    jpeg(tmp_path / "thumb.jpg", 160, 120)
    photo = _with_exif_thumbnail((tmp_path / "big.jpg").read_bytes(), (tmp_path / "thumb.jpg").read_bytes())
    assert images.inspect_bytes(photo).complete
    scan = photo.rindex(b"\xff\xda")
    (tmp_path / "cut.jpg").write_bytes(photo[: scan + 40])  # a partly copied file: the thumbnail is whole
    write(tmp_path, "m.toml", t2v_manifest({"a": "a cat"}, extra_defaults='first_frame_image = "cut.jpg"'))
    result = cli("validate", tmp_path / "m.toml")
    assert result.exit_code == 2, result.output
    assert "first_frame_image" in result.output and "cut.jpg" in result.output and "cut short" in result.output


# --- the key (item 13) --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk-ключ-0123456789", "sk-abc\r\nX-Evil: 1", "sk-\x7fabc"])
def test_a_key_no_header_can_carry_is_refused_without_echoing_it(monkeypatch, key):
    monkeypatch.setenv("MINIMAX_API_KEY", key)
    with pytest.raises(ConfigError) as e:
        config.credentials()
    assert "MINIMAX_API_KEY" in str(e.value)
    assert key.strip() not in str(e.value) and "ключ" not in str(e.value)
    assert e.value.exit_code == 2


# --- issue 10 section 5 ------------------------------------------------------------------------


def test_a_missing_csv_column_is_named_with_the_columns_there_are(tmp_path):
    write(tmp_path, "shots.csv", "id,duration\n1,6\n")
    m = write(tmp_path, "m.toml", HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "{{ action }}"\nforeach = "shots.csv"\n')
    (problem,) = messages(m)
    assert "shots.csv has no column 'action' (its columns: id, duration)" in problem
    assert "did you mean" not in problem


def test_images_missing_from_one_folder_are_one_problem_listing_the_rows(tmp_path):
    for n in range(1, 4):
        png(tmp_path / "frames" / f"{n:02}.png")
    write(tmp_path, "shots.csv", "id\n" + "".join(f"{n:02}\n" for n in range(1, 13)))
    m = write(tmp_path, "m.toml", HEADER + """
        [[jobs]]
        name = "s{{ id }}"
        prompt = "x"
        model = "I2V-01"
        first_frame_image = "frame/{{ id }}.png"
        foreach = "shots.csv"
    """)
    (problem,) = messages(m)
    assert "12 images not found in frame (the folder does not exist)" in problem
    assert "shots.csv line 2: frame/01.png" in problem and "shots.csv line 13: frame/12.png" in problem


def test_an_output_folder_without_permission_is_left_to_the_commands_that_write(tmp_path, monkeypatch):
    # read commands work on a read-only copy of a project; a run refuses before any create
    m = write(tmp_path, "m.toml", HEADER + '[[jobs]]\nname = "s"\nprompt = "x"\n')
    assert load_manifest(m).output_dir_error() is None
    monkeypatch.setattr(loader.os, "access", lambda *a, **k: False)
    manifest = load_manifest(m)
    error = manifest.output_dir_error()
    assert error is not None and error.exit_code == 2
    assert "renders cannot be created" in str(error) and "not writable" in str(error)
