"""The cache of expanded jobs (issue 15): a hit rebuilds exactly what a load gives, cheaply, and
any change to anything that feeds a manifest is a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidbatch import fingerprint, jobcache, project
from vidbatch.manifest import loader

from .helpers import png, write

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("jinja2", "jsonschema", "requests", "sqlite_utils")

MANIFEST = """
output_dir = "renders"
[defaults]
model = "MiniMax-Hailuo-02"
[vars]
style = "soft light"

[[jobs]]
name = "{{ id }}-{{ s }}"
prompt = "{% include 'prompts/base.j2' %} {{ action }} in {{ s }}, {{ style }}"
foreach = "rows.csv"
matrix = { s = ["spring", "winter"] }

[[jobs]]
name = "still"
model = "I2V-01"
prompt = "The still comes alive"
first_frame_image = "img/first.png"

[[jobs]]
name = "subject"
model = "S2V-01"
prompt = "The subject walks [Unknown move]"
subject_reference = "img/first.png"
"""


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A manifest with a foreach CSV, an included template reading an env var, an image used as a
    first frame and as a subject, and a state folder; cwd is the folder."""
    folder = tmp_path / "p"
    write(folder, "shots.toml", MANIFEST)
    write(folder, "rows.csv", "id,action\n1,runs\n2,sleeps\n")
    write(folder, "prompts/base.j2", "A fox ({{ env.get('LOOK', 'plain') | length }})")
    png(folder / "img" / "first.png", colour=(10, 20, 30))
    (folder / ".vidbatch").mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("LOOK", raising=False)
    return folder


@pytest.fixture
def loads(monkeypatch):
    """How many times the real loader ran."""
    calls = []
    real = loader.load_manifests

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "load_manifests", counting)
    return calls


def load(folder: Path, variables=None, **kw):
    """project.load, then what ``run`` does with the entry a miss made: write it."""
    ws = project.load([folder / "shots.toml"], variables=variables, **kw)
    if ws.cache is not None:
        ws.cache.write()
    return ws


def cache_files(folder: Path) -> list[Path]:
    return sorted((folder / ".vidbatch" / "cache").glob("*.json"))


def header(path: Path) -> dict:
    """The first line of an entry: the fingerprint of the load (and the no-op summary)."""
    return json.loads(path.read_text().split("\n", 1)[0])


def test_an_unchanged_input_hits_and_rebuilds_exactly_what_a_load_gives(project_dir, loads):
    first = load(project_dir)
    assert len(loads) == 1 and len(cache_files(project_dir)) == 1
    second = load(project_dir)
    assert len(loads) == 1, "the second load should come from the cache"
    assert second.manifests == first.manifests  # every field of every job, images, warnings, inputs
    jobs = second.jobs
    assert [j.name for j in jobs] == ["1-spring", "1-winter", "2-spring", "2-winter", "still", "subject"]
    assert jobs[4].request["first_frame_image"].path == project_dir / "img" / "first.png"
    assert jobs[4].api_request()["first_frame_image"].startswith("data:image/png;base64,")
    assert jobs[5].request["subject_reference"][0]["image"][0].sha256 == jobs[4].request["first_frame_image"].sha256
    assert second.manifests[0].warnings, "the unknown camera command warns, from the cache too"
    assert project_dir / "prompts" / "base.j2" in second.manifests[0].inputs
    assert all(type(j.output) is type(project_dir) for j in jobs)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: (d / "shots.toml").write_text((d / "shots.toml").read_text().replace("soft", "hard")), id="manifest"),
        pytest.param(lambda d: (d / "shots.toml").write_text("\n" + (d / "shots.toml").read_text()), id="manifest-line-moved"),
        pytest.param(lambda d: (d / "prompts" / "base.j2").write_text("A cat ({{ env.get('LOOK', 'plain') | length }})"), id="template"),
        pytest.param(lambda d: (d / "rows.csv").write_text("id,action\n1,runs\n2,sleeps\n3,jumps\n"), id="csv-row-added"),
        pytest.param(lambda d: (d / "rows.csv").write_text("id,action\n1,runs\n2,sleepz\n"), id="csv-row-same-size"),
    ],
)
def test_a_changed_input_misses(project_dir, loads, change):
    before = load(project_dir)
    change(project_dir)
    after = load(project_dir)
    assert len(loads) == 2
    assert [j.key for j in after.jobs] != [j.key for j in before.jobs] or after.manifests[0].warnings != before.manifests[0].warnings
    load(project_dir)
    assert len(loads) == 2, "the changed input is cached in turn"


def test_an_image_swapped_in_place_with_the_same_size_and_mtime_misses(project_dir, loads):
    image = project_dir / "img" / "first.png"
    before = load(project_dir)
    st = image.stat()
    other = project_dir / "other.png"
    for red in range(11, 256):  # another colour that compresses to the same size
        data = png(other, colour=(red, 20, 30)).read_bytes()
        if len(data) == st.st_size:
            break
    assert len(data) == st.st_size, "the test needs a same-size image"
    with open(image, "r+b") as f:  # in place: same inode
        f.write(data)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (image.stat().st_size, image.stat().st_mtime_ns, image.stat().st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    after = load(project_dir)
    assert len(loads) == 2
    assert after.jobs[4].key != before.jobs[4].key


def test_an_ambiguous_stat_is_backed_by_a_content_hash_and_an_old_one_is_not(project_dir, monkeypatch):
    load(project_dir)
    entry = header(cache_files(project_dir)[0])
    assert all(sha for *_, sha in entry["inputs"]), "files written just now are hashed"
    cache_files(project_dir)[0].unlink()
    real = jobcache.clock
    monkeypatch.setattr(jobcache, "clock", lambda: real() + 10 * fingerprint.AMBIGUOUS_NS)
    load(project_dir)
    entry = header(cache_files(project_dir)[0])
    hashed = {Path(path).name for path, *_, sha in entry["inputs"] if sha}
    assert hashed == {"shots.toml"}, "only the manifest's bytes are always hashed"


def test_a_stat_change_alone_misses_without_hashing(project_dir, loads, monkeypatch):
    real = jobcache.clock
    monkeypatch.setattr(jobcache, "clock", lambda: real() + 10 * fingerprint.AMBIGUOUS_NS)
    load(project_dir)
    real_sha256 = fingerprint.sha256_file
    hashed = []
    monkeypatch.setattr(fingerprint, "sha256_file", lambda path: hashed.append(Path(path).name) or real_sha256(path))
    (project_dir / "rows.csv").write_text("id,action\n1,runs\n2,sleeping\n")
    load(project_dir)
    assert len(loads) == 2
    assert "rows.csv" not in hashed, "a size change is seen from the stat alone"


def test_an_environment_variable_a_template_reads_misses_and_one_it_does_not_hits(project_dir, loads, monkeypatch):
    monkeypatch.setenv("UNRELATED", "a")
    before = load(project_dir)
    monkeypatch.setenv("UNRELATED", "b")
    load(project_dir)
    assert len(loads) == 1, "a variable no template reads must not invalidate"
    monkeypatch.setenv("LOOK", "sk-secret-looking-value")
    after = load(project_dir)
    assert len(loads) == 2, "setting a variable a template reads (unset before) invalidates"
    assert "(23)" in after.jobs[0].prompt and after.jobs[0].key != before.jobs[0].key
    text = cache_files(project_dir)[0].read_text()
    assert "LOOK" in text and "sk-secret-looking-value" not in text, "names in clear, values only hashed"
    load(project_dir)
    assert len(loads) == 2
    monkeypatch.setenv("LOOK", "other")
    load(project_dir)
    assert len(loads) == 3


def test_a_var_misses(project_dir, loads):
    load(project_dir, {"style": "noir"})
    load(project_dir, {"style": "noir"})
    assert len(loads) == 1
    other = load(project_dir, {"style": "pastel"})
    assert len(loads) == 2 and "pastel" in other.jobs[0].prompt


def test_a_vidbatch_version_or_source_change_misses(project_dir, loads, monkeypatch):
    import vidbatch

    load(project_dir)
    monkeypatch.setattr(vidbatch, "__version__", vidbatch.__version__ + ".post1")
    load(project_dir)
    assert len(loads) == 2
    monkeypatch.setattr(fingerprint, "source_hash", lambda: "facts-or-schema-changed")
    load(project_dir)
    assert len(loads) == 3
    load(project_dir)
    assert len(loads) == 3


def test_the_source_hash_covers_the_facts_the_rules_and_the_schema():
    fingerprint.source_hash.cache_clear()
    assert len(fingerprint.source_hash()) == 64
    covered = set(fingerprint._CODE)
    assert {"facts.py", "rules.py", "schemas/manifest.schema.json", "state.py"} <= covered, "state.py: the migrations the no-op summary names"


def test_a_working_folder_change_misses(project_dir, loads, monkeypatch, tmp_path):
    load(project_dir)
    monkeypatch.chdir(tmp_path)
    load(project_dir)
    assert len(loads) == 2, "problems name files relative to the working folder"


def test_a_damaged_or_foreign_cache_file_is_a_miss(project_dir, loads):
    first = load(project_dir)
    good = header(cache_files(project_dir)[0])
    for text in ["", "{", "[]", '{"format": 1}', json.dumps({"format": 1, "code": fingerprint.code_hash(), "cwd": os.getcwd()}), json.dumps(good), json.dumps(good) + "\n[{}]", json.dumps({**good, "inputs": 3}) + "\n[]"]:
        cache_files(project_dir)[0].write_text(text)
        assert load(project_dir).manifests == first.manifests
    assert len(loads) == 9


def test_a_manifest_with_problems_is_never_cached(project_dir):
    from vidbatch.errors import ManifestError

    (project_dir / "rows.csv").write_text("id\n1\n")  # no "action" column
    with pytest.raises(ManifestError):
        load(project_dir)
    assert cache_files(project_dir) == []


def test_an_input_changed_during_the_load_is_not_cached(project_dir, monkeypatch):
    real = jobcache.clock
    monkeypatch.setattr(jobcache, "clock", lambda: real() - 10 * fingerprint.AMBIGUOUS_NS)
    load(project_dir)
    assert cache_files(project_dir) == []


def test_plan_writes_no_cache_and_run_does(project_dir, sim_env):
    from .helpers import cli

    (project_dir / ".vidbatch").rmdir()
    shots = project_dir / "shots.toml"
    shots.write_text(shots.read_text().replace(" [Unknown move]", ""))
    assert project.load([shots]).cache is not None, "a miss makes an entry"
    assert cli("plan", shots).exit_code == 0
    assert not (project_dir / ".vidbatch").exists(), "plan writes nothing"
    assert cli("run", shots, "--poll-interval", "0", "--rpm", "60000").exit_code == 0
    assert len(cache_files(project_dir)) == 1
    ws = project.load([shots])
    assert ws.cache is None, "the entry run wrote is a hit"
    assert cli("plan", "--check", shots).exit_code == 0


def test_sim_outputs_are_moved_on_a_hit_as_on_a_load(project_dir, loads):
    first = load(project_dir, sim=True)
    second = load(project_dir, sim=True)
    assert len(loads) == 1
    assert [j.output for j in second.jobs] == [j.output for j in first.jobs]
    assert first.jobs[0].output.parent.name == "renders-sim"
    real = load(project_dir)
    assert real.jobs[0].output.parent.name == "renders"


def test_a_hit_imports_no_template_engine_validator_http_or_sqlite_utils(project_dir):
    load(project_dir)
    code = (
        "import sys\nfrom pathlib import Path\nfrom vidbatch import jobcache\n"
        "ms, pending = jobcache.load(Path('.vidbatch'), [Path('shots.toml').resolve()], None)\nassert pending is None\n"
        "print(len(ms[0].jobs), sorted(m for m in %r if m in sys.modules))\n" % (HEAVY,)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=project_dir, env=env, capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == ["6", "[]\n"]


def test_plan_check_on_a_hit_imports_no_template_engine_validator_or_http(project_dir):
    """The whole command (tests/test_perf.py checks run too)."""
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))\n"
        "from vidbatch.cli import main\nsys.argv = ['vidbatch', 'plan', '--check', '--sim', 'shots.toml']\nmain()\n"
    )
    shots = project_dir / "shots.toml"
    shots.write_text(shots.read_text().replace(" [Unknown move]", ""))  # no warnings to show
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "vidbatch", "run", "--sim", "shots.toml"], cwd=project_dir, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    proc = subprocess.run([sys.executable, "-c", code], cwd=project_dir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # up to date, from the cache run wrote
    heavy = next(line for line in proc.stderr.splitlines() if line.startswith("HEAVY"))
    assert heavy == "HEAVY []", heavy


@pytest.mark.parametrize("include", ["{% include 'extra.j2' ignore missing %}", "{% include ['extra.j2', 'prompts/base.j2'] %}"])
def test_a_manifest_that_may_include_a_missing_file_is_not_cached(project_dir, loads, include):
    """The missing file is no recorded input: if it appeared, a cached entry would be wrong."""
    shots = project_dir / "shots.toml"
    shots.write_text(shots.read_text().replace('prompt = "The still comes alive"', f'prompt = "The still comes alive {include}"'))
    before = load(project_dir)
    assert cache_files(project_dir) == []
    write(project_dir, "extra.j2", "EXTRA")
    after = load(project_dir)
    assert "EXTRA" not in before.jobs[4].prompt and "EXTRA" in after.jobs[4].prompt


def test_the_config_file_is_an_input(project_dir, loads, monkeypatch):
    """The loader refuses a job holding the API key, which may come from the config file: the
    file appearing, or its key changing, misses."""
    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    load(project_dir)
    load(project_dir)
    assert len(loads) == 1
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "vidbatch" / "config.toml"
    write(config.parent, config.name, 'api_key = "sk-from-the-config-file"\n')
    config.chmod(0o600)
    load(project_dir)
    assert len(loads) == 2, "a config file that appeared misses"
    load(project_dir)
    assert len(loads) == 2
    config.write_text('api_key = "sk-another-key-altogether"\n')
    load(project_dir)
    assert len(loads) == 3, "a changed config file misses"


def test_a_job_holding_the_config_files_key_is_refused(project_dir, monkeypatch):
    from vidbatch.errors import ManifestError

    monkeypatch.delenv("MINIMAX_API_KEY", raising=False)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "vidbatch" / "config.toml"
    write(config.parent, config.name, 'api_key = "sk-from-the-config-file"\n')
    config.chmod(0o600)
    with pytest.raises(ManifestError, match="key"):
        load(project_dir, {"style": "sk-from-the-config-file"})
    assert cache_files(project_dir) == []
