"""Takes: `takes = N` renders N takes of one shot, each its own render, file and key (issue 14).

Fast tests of the loader and the key, then the real CLI against the simulator over loopback HTTP:
three takes make three creates and three different files, a fourth costs one, and no take number
ever reaches a request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidbatch import picks
from vidbatch.errors import ManifestError
from vidbatch.identity import content_key
from vidbatch.manifest import load_manifest

from .helpers import cli, creates, write

FAST = ["--rpm", "60000", "--poll-interval", "0"]

BASE = """\
output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"
"""


def manifest(tmp_path: Path, body: str, name: str = "shots.toml") -> Path:
    return write(tmp_path, name, BASE + body)


def problems_of(path: Path, **kw) -> list:
    with pytest.raises(ManifestError) as e:
        load_manifest(path, **kw)
    return e.value.problems


# --- the loader and the key ---------------------------------------------------------------------------


def test_takes_make_one_job_per_take_with_its_own_file_and_key(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "shot-03"\nprompt = "a fox"\ntakes = 3\n')
    jobs = load_manifest(path).jobs
    assert [(j.name, j.shot, j.take, j.output.name) for j in jobs] == [
        ("shot-03", "shot-03", 1, "shot-03.mp4"),
        ("shot-03.take2", "shot-03", 2, "shot-03.take2.mp4"),
        ("shot-03.take3", "shot-03", 3, "shot-03.take3.mp4"),
    ]
    assert len({j.key for j in jobs}) == 3
    assert all(j.request == jobs[0].request for j in jobs)  # the same request; only the key differs
    assert all("take" not in json.dumps(j.api_request()) for j in jobs)


def test_take_one_keeps_the_key_a_job_without_takes_always_had(tmp_path):
    one = load_manifest(manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "a fox"\n', "one.toml")).jobs[0]
    three = load_manifest(manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "a fox"\ntakes = 3\n', "three.toml")).jobs
    assert one.key == content_key(one.identity_request()) == three[0].key
    assert three[1].key == content_key(one.identity_request(), 2) != one.key


def test_render_json_names_each_jobs_shot_and_take(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\ntakes = 2\n')
    doc = json.loads(cli("render", "--json", path).output)
    assert [(j["name"], j["shot"], j["take"]) for j in doc["manifests"][0]["jobs"]] == [("s", "s", 1), ("s.take2", "s", 2)]


def test_takes_in_defaults_apply_to_every_job_and_a_job_can_say_otherwise(tmp_path):
    path = write(tmp_path, "m.toml", BASE + 'takes = 2\n\n[[jobs]]\nname = "a"\nprompt = "x"\n\n[[jobs]]\nname = "b"\nprompt = "y"\ntakes = 1\n')
    assert [j.name for j in load_manifest(path).jobs] == ["a", "a.take2", "b"]


def test_a_matrix_take_counts_as_a_take_instead_of_one_render_copied(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "shot"\nprompt = "a fox"\nmatrix = { take = [1, 2, 3] }\n')
    jobs = load_manifest(path).jobs
    assert [(j.name, j.shot, j.take) for j in jobs] == [("shot", "shot", 1), ("shot.take2", "shot", 2), ("shot.take3", "shot", 3)]
    assert len({j.key for j in jobs}) == 3
    assert picks.takes_by_shot(jobs) == {"shot": (1, 2, 3)}


def test_a_foreach_column_can_give_each_shot_its_takes(tmp_path):
    write(tmp_path, "shots.csv", "id,takes\n01,2\n02,\n03,1\n")
    path = manifest(tmp_path, '[[jobs]]\nname = "shot-{{ id }}"\nprompt = "shot {{ id }}"\nforeach = "shots.csv"\n')
    assert [j.name for j in load_manifest(path).jobs] == ["shot-01", "shot-01.take2", "shot-02", "shot-03"]


def test_an_output_template_tells_takes_apart_with_take(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\ntakes = 2\noutput = "{{ name }}/take-{{ take }}.mp4"\n')
    assert [j.output.relative_to(tmp_path / "renders").as_posix() for j in load_manifest(path).jobs] == ["s/take-1.mp4", "s/take-2.mp4"]


def test_an_output_template_without_take_is_refused_with_the_fix(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\ntakes = 3\noutput = "clips/{{ name }}.mp4"\n')
    found = problems_of(path)
    assert len(found) == 2  # takes 2 and 3
    p = found[0]
    assert (p.job, p.field, p.line) == ("s.take2", "output", 9)
    assert "also take 1's output" in p.message and "clips/{{ name }}.take{{ take }}.mp4" in p.message


@pytest.mark.parametrize("value, words", [("0", "must be at least 1, not 0"), ("21", "21 is greater than the maximum of 20"), ('"3"', "must be an integer, not a string")])
def test_takes_out_of_range_is_a_manifest_error(tmp_path, value, words):
    path = manifest(tmp_path, f'[[jobs]]\nname = "s"\nprompt = "x"\ntakes = {value}\n')
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "shots.toml:8" in result.output and "field takes" in result.output
    assert words in result.output


@pytest.mark.parametrize("cell", ["0", "25", "two"])
def test_a_bad_take_in_a_row_names_the_row(tmp_path, cell):
    write(tmp_path, "rows.csv", f"id,take\na,1\nb,{cell}\n")
    path = manifest(tmp_path, '[[jobs]]\nname = "s-{{ id }}"\nprompt = "x"\nforeach = "rows.csv"\n')
    p = problems_of(path)[0]
    assert (Path(p.file).name, p.line, p.field) == ("rows.csv", 3, "take")
    assert "take number from 1 to 20" in p.message


def test_takes_and_a_take_variable_together_are_refused(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\ntakes = 2\nmatrix = { take = [1, 2] }\n')
    p = problems_of(path)[0]
    assert p.field == "takes" and "keep one of them" in p.message


def test_take_is_not_a_variable_name_for_vars_or_var(tmp_path):
    path = write(tmp_path, "m.toml", BASE + '\n[vars]\ntake = "x"\n\n[[jobs]]\nname = "s"\nprompt = "x"\n')
    p = problems_of(path)[0]
    assert p.field == "vars.take" and "take number" in p.message
    plain = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\n', "plain.toml")
    assert problems_of(plain, variables={"take": "2"})[0].field == "--var"


def test_a_shot_named_like_another_shots_take_is_a_clash(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "x"\ntakes = 2\n\n[[jobs]]\nname = "s.take2"\nprompt = "y"\n')
    p = problems_of(path)[0]
    assert p.job == "jobs[1]" and "'s.take2' is also the name of take 2 of s (jobs[0])" in p.message


def test_takes_count_toward_max_jobs(tmp_path):
    path = write(tmp_path, "m.toml", 'max_jobs = 5\n' + BASE + '\n[[jobs]]\nname = "s-{{ i }}"\nprompt = "x"\ntakes = 3\nmatrix = { i = [1, 2] }\n')
    p = problems_of(path)[0]
    assert p.field == "takes" and "more than 5" in p.message


# --- against the simulator ---------------------------------------------------------------------------


def test_three_takes_make_three_creates_and_files_and_a_fourth_costs_one(tmp_path, sim_env):
    path = manifest(tmp_path, '[[jobs]]\nname = "shot-03"\nprompt = "A fox in the snow"\ntakes = 3\n')
    result = cli("run", path, *FAST)
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 3
    renders = tmp_path / "renders"
    videos = [renders / n for n in ("shot-03.mp4", "shot-03.take2.mp4", "shot-03.take3.mp4")]
    contents = [v.read_bytes() for v in videos]
    assert len(set(contents)) == 3  # three different renders, not one copied

    path.write_text(path.read_text().replace("takes = 3", "takes = 4"))
    plan = cli("plan", path)
    assert "1 submit" in plan.output and "3 skip" in plan.output, plan.output
    result = cli("run", path, *FAST)
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 4
    assert [v.read_bytes() for v in videos] == contents  # the first three untouched
    assert (renders / "shot-03.take4.mp4").read_bytes() not in contents

    assert cli("run", path, *FAST).exit_code == 0
    assert creates(sim_env) == 4  # nothing changed, nothing created

    bodies = [task.request for task in sim_env.sim.tasks.all_tasks()]
    assert len(bodies) == 4
    assert all(set(body) == {"model", "prompt"} for body in bodies), bodies
    assert all("take" not in json.dumps(body) for body in bodies)


def test_giving_a_finished_shot_more_takes_keeps_its_file_and_renders_only_the_new_ones(tmp_path, sim_env):
    path = manifest(tmp_path, '[[jobs]]\nname = "s"\nprompt = "A hare"\n')
    assert cli("run", path, *FAST).exit_code == 0
    first = (tmp_path / "renders" / "s.mp4").read_bytes()
    path.write_text(path.read_text() + "takes = 3\n")
    result = cli("run", path, *FAST)
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 3
    assert (tmp_path / "renders" / "s.mp4").read_bytes() == first


def test_plan_and_status_show_takes_under_their_shot(tmp_path, sim_env):
    path = manifest(tmp_path, '[[jobs]]\nname = "a"\nprompt = "x"\n\n[[jobs]]\nname = "s"\nprompt = "A fox"\ntakes = 2\n')
    lines = cli("plan", path).output.splitlines()
    assert lines[:4] == [
        "  submit    a        never rendered",
        "  s: 2 takes",
        "    submit    s        never rendered",
        "    submit    s.take2  never rendered",
    ]
    doc = json.loads(cli("plan", "--json", path).output)
    assert [(j["name"], j["shot"], j["take"]) for j in doc["jobs"]] == [("a", "a", 1), ("s", "s", 1), ("s.take2", "s", 2)]

    assert cli("run", path, *FAST).exit_code == 0
    assert cli("pick", path, "s", "2").exit_code == 0
    out = cli("status", path).output
    lines = out.splitlines()
    assert lines[lines.index("takes:") + 1] == "  s  1 done, 2 done (picked)"
    jobs = json.loads(cli("status", "--json", path).output)["jobs"]
    assert [(j["shot"], j["take"], j["pick"]) for j in jobs] == [("a", 1, None), ("s", 1, None), ("s", 2, "picked")]


def test_a_name_that_uses_take_makes_each_take_a_shot_named_as_written(tmp_path):
    path = manifest(tmp_path, '[[jobs]]\nname = "hero-take{{ take }}"\nprompt = "x"\nmatrix = { take = [1, 2, 3] }\n')
    jobs = load_manifest(path).jobs
    assert [(j.name, j.shot, j.take, j.output.name) for j in jobs] == [
        ("hero-take1", "hero-take1", 1, "hero-take1.mp4"),
        ("hero-take2", "hero-take2", 2, "hero-take2.mp4"),
        ("hero-take3", "hero-take3", 3, "hero-take3.mp4"),
    ]
    assert len({j.key for j in jobs}) == 3  # still three renders, not one copied
    result = cli("validate", path)
    assert result.exit_code == 0
    assert "shots.toml:6: job jobs[0]: field name: the name uses {{ take }}, so each take is listed and picked as a shot of its own" in result.output
    assert result.output.count("the name uses") == 1


def test_status_without_a_manifest_makes_no_shot_of_unrelated_jobs(tmp_path, sim_env):
    path = manifest(tmp_path, '[[jobs]]\nname = "a"\nprompt = "x"\n\n[[jobs]]\nname = "b"\nprompt = "A fox"\n')
    assert cli("run", path, *FAST).exit_code == 0
    out = cli("status", "--state", tmp_path / ".vidbatch")
    assert out.exit_code == 0, out.output
    assert "takes:" not in out.output, "the state alone does not know a manifest's shots"
    jobs = json.loads(cli("status", "--json", "--state", tmp_path / ".vidbatch").output)["jobs"]
    assert sorted((j["shot"], j["take"]) for j in jobs) == [("a", 1), ("b", 1)]
