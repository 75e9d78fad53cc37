"""The pure parts of watch mode, in process: no threads, no watchdog, no clock but a fake one."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vidbatch import project
from vidbatch.watching.debounce import IDLE_WAIT, Debouncer
from vidbatch.watching.folder import WatchedFolder, output_collisions
from vidbatch.watching.paths import is_temporary, looks_like_manifest

from .helpers import t2v_manifest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_manifest(path: Path, *, inputs: tuple[Path, ...] = (), outputs: dict[str, str] | None = None, output_dir: Path | None = None) -> Any:
    """What WatchedFolder reads of a Manifest: path, inputs, output_dir and jobs (output, key)."""
    out_dir = output_dir or path.parent / "renders"
    m = SimpleNamespace(path=path, inputs=set(inputs), output_dir=out_dir, jobs=[])
    for name, key in (outputs or {}).items():
        m.jobs.append(SimpleNamespace(name=name, key=key, output=out_dir / f"{name}.mp4", manifest=path, line=1))
    return m


# --- debouncing -----------------------------------------------------------------------------


def test_debouncer_hands_out_one_batch_once_quiet():
    clock = Clock()
    d = Debouncer(0.5, clock)
    assert d.wait_time() == IDLE_WAIT and d.take() == set()
    d.add([Path("a")])
    assert d.wait_time() == 0.5
    clock.now += 0.4
    d.add([Path("b")])  # a second write pushes the batch back
    clock.now += 0.4
    assert d.take() == set()
    assert d.wait_time() == pytest.approx(0.1)
    clock.now += 0.1
    assert d.take() == {Path("a"), Path("b")}
    assert d.take() == set() and d.wait_time() == IDLE_WAIT


def test_debouncer_hands_out_a_batch_that_never_goes_quiet():
    """A file written without pause (a log in the folder, a long copy) must not hold back, for
    as long as it is written, the edit of a manifest that came with it: a batch waits at most
    LONGEST_WAIT (or ``quiet``, if longer) after its first path."""
    clock = Clock()
    d = Debouncer(0.5, clock)
    d.add([Path("shots.toml")])
    start = clock.now
    batch: set[Path] = set()
    while not batch and clock.now - start < 60:
        clock.now += 0.2
        d.add([Path("build.log")])
        batch = d.take()
    assert batch == {Path("shots.toml"), Path("build.log")}
    assert clock.now - start == pytest.approx(3.0, abs=0.21)  # LONGEST_WAIT
    assert d.wait_time() == IDLE_WAIT
    d.add([Path("build.log")])  # the next batch has its own bound
    assert d.wait_time() == 0.5


def test_debouncer_ignores_an_empty_add():
    clock = Clock()
    d = Debouncer(0.5, clock)
    d.add([])
    clock.now += 10
    assert d.take() == set() and d.wait_time() == IDLE_WAIT
    d.add([Path("a")])
    clock.now += 0.2
    d.add(iter(()))  # nothing new: the deadline stays
    clock.now += 0.3
    assert d.take() == {Path("a")}


def test_debouncer_wait_time_never_negative():
    clock = Clock()
    d = Debouncer(0.5, clock)
    d.add([Path("a")])
    clock.now += 5
    assert d.wait_time() == 0.0


# --- names and manifests --------------------------------------------------------------------


def test_temporary_names():
    for name in (".hidden", "#a.toml#", "a.toml~", "x.swp", "4913", ".a.mp4.1234.vidbatch-new", "a.crdownload"):
        assert is_temporary(name), name
    for name in ("a.toml", "renders", "4914", "swp.toml"):
        assert not is_temporary(name), name


def test_looks_like_manifest(tmp_path):
    def write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    assert looks_like_manifest(write("ok.toml", t2v_manifest({"a": "A fox"})))
    assert looks_like_manifest(write("ok.json", '{"jobs": []}'))
    assert looks_like_manifest(write("broken.toml", '[[jobs]]\nname = "owl\n'))  # shows its error
    assert looks_like_manifest(write("broken.json", '{"jobs": [}'))
    assert not looks_like_manifest(write("pyproject.toml", '[project]\nname = "x"\n'))  # parses, no jobs
    assert not looks_like_manifest(write("other.json", '{"name": "jobs"}'))  # mentions jobs, parses, not one
    assert not looks_like_manifest(write("notes.toml", "not = [valid"))  # does not parse, no jobs
    assert not looks_like_manifest(write("jobs.csv", "jobs,x\n"))
    assert not looks_like_manifest(write("bad.toml", "").with_name("missing.toml"))
    (tmp_path / "dir.toml").mkdir()
    assert not looks_like_manifest(tmp_path / "dir.toml")
    (tmp_path / "latin1.toml").write_bytes(b"jobs = \xff[")
    assert not looks_like_manifest(tmp_path / "latin1.toml")


# --- the folder: dependency map, ignoring, triage -------------------------------------------


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "shots"
    root.mkdir()
    return WatchedFolder(root, root / ".vidbatch")


def test_loaded_manifest_maps_its_inputs_and_outputs(folder):
    root = folder.folder
    m = fake_manifest(root / "a.toml", inputs=(root / "images" / "x.png", root / "rows.csv"), outputs={"fox": "k1"})
    folder.loaded(m)
    assert folder.readers(root / "images" / "x.png") == {m.path}
    assert folder.readers(root / "a.toml") == {m.path}  # a manifest reads itself
    assert folder.readers(root / "images") == {m.path}  # a folder of inputs came or went
    assert folder.readers(root / "other.png") == set()
    assert folder.wanted[root / "renders" / "fox.mp4"] == (m, "k1")
    assert folder.current == (m,)
    assert folder.inputs(m.path) == {root / "images" / "x.png", root / "rows.csv", m.path, root / "a.picks.toml"}  # and its picks file

    # a reload that reads something else drops the old input
    m2 = fake_manifest(root / "a.toml", inputs=(root / "rows.csv",), outputs={"fox": "k2"})
    folder.loaded(m2)
    assert folder.readers(root / "images" / "x.png") == set()
    assert folder.wanted[root / "renders" / "fox.mp4"] == (m2, "k2")


def test_shared_inputs_keep_their_other_reader(folder):
    root = folder.folder
    shared = root / "common.png"
    a = fake_manifest(root / "a.toml", inputs=(shared,))
    b = fake_manifest(root / "b.toml", inputs=(shared,), output_dir=root / "renders-b")
    folder.loaded(a)
    folder.loaded(b)
    assert folder.readers(shared) == {a.path, b.path}
    assert folder.forget(a.path)
    assert folder.readers(shared) == {b.path}
    assert folder.current == (b,)
    assert not folder.forget(a.path)  # never known (any more)


def test_a_failed_load_keeps_its_inputs_and_adds_what_it_tried(folder):
    root = folder.folder
    path = root / "a.toml"
    folder.loaded(fake_manifest(path, inputs=(root / "x.png",)))
    assert folder.failed(path, "missing y.png", [root / "y.png"]) is False  # a new error
    assert folder.readers(root / "y.png") == {path} and folder.readers(root / "x.png") == {path}
    assert folder.failed(path, "missing y.png", [root / "y.png"]) is True  # the same again
    assert folder.failed(path, "another error") is False
    assert folder.resumable() == []  # loaded once, broken now
    folder.loaded(fake_manifest(path))
    assert folder.resumable() == [path] and path not in folder.broken


def test_a_manifest_never_loaded_can_fail_and_be_forgotten(folder):
    path = folder.folder / "a.toml"
    folder.failed(path, "syntax")
    assert folder.readers(path) == {path}
    assert folder.forget(path)
    assert folder.readers(path) == set() and not folder.broken


def test_first_plan_and_notes(folder):
    root = folder.folder
    assert folder.first_plan(root / "a.toml") is True
    assert folder.first_plan(root / "a.toml") is False
    assert folder.note([root / "x.txt", root / "y.txt"]) == [root / "x.txt", root / "y.txt"]
    assert folder.note([root / "x.txt", root / "z.txt"]) == [root / "z.txt"]


def test_unread_and_outside_folders(folder, tmp_path):
    root = folder.folder
    outside = tmp_path / "common" / "c.png"
    m = fake_manifest(root / "a.toml", inputs=(root / "x.png", outside), outputs={"fox": "k"})
    folder.loaded(m)
    files = [root / "a.toml", root / "x.png", root / "notes.txt", root / "renders" / "fox.mp4"]
    assert folder.unread(files) == [root / "notes.txt"]
    assert folder.outside_folders() == {tmp_path / "common"}


def test_what_is_ignored(folder, tmp_path):
    root = folder.folder
    m = fake_manifest(root / "a.toml", outputs={"fox": "k"})
    here = fake_manifest(root / "b.toml", outputs={"owl": "k2"}, output_dir=root)  # outputs beside the manifests
    folder.loaded(m)
    folder.loaded(here)
    assert folder.ignored(tmp_path / "elsewhere.toml")
    assert folder.ignored(root / ".a.toml.swp") and folder.ignored(root / "sub" / ".hidden" / "x.png")
    assert folder.ignored(root / ".vidbatch" / "state.db")
    assert folder.ignored(root / "renders" / "fox.mp4") and folder.ignored(root / "renders" / "anything")
    assert folder.ignored(root / "owl.mp4")  # an output, even in the folder itself
    assert not folder.ignored(root / "c.toml")
    assert not folder.ignored(root / "images" / "x.png")


def test_our_own_streams_and_report_are_ignored_even_when_a_manifest_reads_them(tmp_path):
    root = tmp_path / "shots"
    root.mkdir()
    events = root / "events.json"
    with open(events, "w") as out:
        folder = WatchedFolder(root, root / ".vidbatch", written=[root / "report.json"], streams=[out.fileno(), 999])  # 999: closed
    os.link(events, root / "same.json")  # the same file under another name: found by device and inode
    (root / "other.json").write_text("{}")
    assert folder.ignored(events) and folder.ignored(root / "same.json") and folder.ignored(root / "report.json")
    assert not folder.ignored(root / "other.json") and not folder.ignored(root / "gone.json")
    folder.loaded(fake_manifest(root / "a.toml", inputs=(events, root / "report.json")))
    assert not folder.interesting(events) and not folder.interesting(root / "report.json")
    assert folder.interesting(root / "other.json")


def test_what_is_interesting(folder, tmp_path):
    root = folder.folder
    outside = tmp_path / "common" / "c.png"
    folder.loaded(fake_manifest(root / "a.toml", inputs=(outside, root / "images" / "x.png")))
    assert folder.interesting(outside)  # read by a manifest, though outside the folder
    assert folder.interesting(root / "new.toml")  # top level: may be a new manifest
    assert folder.interesting(root / "images")  # a folder of inputs came or went
    assert not folder.interesting(root / "sub" / "y.png")
    assert not folder.interesting(root / "x.tmp")
    folder.failed(root / "b.toml", "missing sub/y.png")
    assert folder.interesting(root / "sub" / "y.png")  # anything may be what a broken manifest lacks


def test_triage(folder):
    root = folder.folder
    (root / "images").mkdir()
    (root / "images" / "x.png").write_bytes(b"png")
    (root / "notes.txt").write_text("hi")
    (root / "new.toml").write_text(t2v_manifest({"a": "A fox"}))
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("deep")
    a = fake_manifest(root / "a.toml", inputs=(root / "images" / "x.png",))
    folder.loaded(a)
    folder.failed(root / "broken.toml", "error")
    batch = folder.triage({root / "images" / "x.png", root / "notes.txt", root / "new.toml", root / "gone.txt", root / "sub" / "deep.txt"})
    assert batch.touched == {a.path: [root / "images" / "x.png"], root / "broken.toml": [], root / "new.toml": [root / "new.toml"]}
    assert list(batch.touched) == sorted(batch.touched)
    assert batch.new == {root / "new.toml"}
    assert batch.ignored == [root / "notes.txt"]  # top-level files only, that exist
    assert folder.triage({root / "notes.txt"}).ignored == []  # noted once


def test_triage_of_a_removed_manifest(folder):
    root = folder.folder
    a = fake_manifest(root / "a.toml")
    folder.loaded(a)
    batch = folder.triage({a.path}, is_manifest=lambda p: pytest.fail("a known manifest is not sniffed"))
    assert batch.touched == {a.path: [a.path]} and not batch.new


def test_stale_outputs(folder):
    root = folder.folder
    a = fake_manifest(root / "a.toml", outputs={"fox": "new-key"})
    folder.loaded(a)
    out = root / "renders" / "fox.mp4"
    assert folder.stale(out, "old-key") is a
    assert folder.stale(out, "new-key") is None
    assert folder.stale(root / "renders" / "owl.mp4", "k") is None
    folder.failed(a.path, "broken now")
    assert folder.stale(out, "old-key") is None  # not planned until fixed


def test_output_collisions_use_the_manifest_check(tmp_path):
    (tmp_path / "a.toml").write_text(t2v_manifest({"fox": "A fox"}))
    (tmp_path / "b.toml").write_text(t2v_manifest({"fox": "Another fox", "owl": "An owl"}))
    (tmp_path / "c.toml").write_text(t2v_manifest({"cat": "A cat"}).replace('"renders"', '"renders-c"'))
    a, b, c = (project.load([tmp_path / n]).manifests[0] for n in ("a.toml", "b.toml", "c.toml"))
    problems = output_collisions(b, [a, c])
    assert [(p.job, p.field) for p in problems] == [("fox", "output")]
    assert "also written by job fox of" in problems[0].message and "a.toml" in problems[0].message
    assert output_collisions(c, [a, b]) == []
    assert output_collisions(a, []) == []


def test_the_manifests_of_a_folder(tmp_path):
    from vidbatch.watching.paths import folder_files, manifest_files

    (tmp_path / "b.toml").write_text(t2v_manifest({"a": "A fox"}))
    (tmp_path / "a.json").write_text('{"jobs": []}')
    (tmp_path / ".hidden.toml").write_text(t2v_manifest({"a": "A fox"}))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.toml").write_text(t2v_manifest({"a": "A fox"}))
    assert folder_files(tmp_path) == [tmp_path / "a.json", tmp_path / "b.toml", tmp_path / "notes.txt"]
    assert manifest_files(tmp_path) == [tmp_path / "a.json", tmp_path / "b.toml"]
