"""The simulator's videos: with PyAV, each task gets its own frames (colour, task digits, frame
counter), still a small valid H.264 MP4; without it, the bundled clip. Cached per task."""

from __future__ import annotations

import requests

from vidbatch import mp4
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.sim import video as sim_video

from .conftest import TEST_KEY
from .test_sim import REQUESTS, create, query, retrieve

import av


def render_file(server, tmp_path, name: str, prompt: str) -> tuple[str, bytes]:
    task_id = create(server, {**REQUESTS["t2v"], "prompt": prompt})["task_id"]
    file = retrieve(server, query(server, task_id)["file_id"])["file"]
    data = requests.get(file["download_url"], timeout=10).content
    assert len(data) == file["bytes"]
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(data)
    assert mp4.check_mp4(path) == []
    assert mp4.read_sim_metadata(path)["task_id"] == task_id
    return task_id, data


def decoded_luma(path) -> list[bytes]:
    """The Y plane of every frame, rows without the decoder's line padding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", sim_video.WIDTH, sim_video.HEIGHT)
        assert stream.codec_context.profile == "Constrained Baseline"
        planes = []
        for frame in container.decode(stream):
            y = frame.planes[0]
            raw = bytes(y)
            planes.append(b"".join(raw[r * y.line_size : r * y.line_size + sim_video.WIDTH] for r in range(sim_video.HEIGHT)))
    return planes


def distance(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a[::7], b[::7])) / len(a[::7])


def test_each_task_has_its_own_frames_and_every_frame_its_counter(tmp_path):
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        first_id, _ = render_file(server, tmp_path, "first", "first shot")
        second_id, _ = render_file(server, tmp_path, "second", "second shot")
    first, second = decoded_luma(tmp_path / "first.mp4"), decoded_luma(tmp_path / "second.mp4")
    assert len(first) == len(second) == sim_video.FPS * sim_video.SECONDS
    drawn = [planes[0] for planes in sim_video.frames(first_id)]
    for index, plane in enumerate(first):  # each decoded frame is nearest the frame drawn for it
        nearest = min(range(len(drawn)), key=lambda i: distance(plane, drawn[i]))
        assert nearest == index
    assert sim_video._colour(first_id) != sim_video._colour(second_id)
    assert first[0] != second[0], "two tasks, two pictures (their ids are drawn too)"


def test_a_task_clip_is_the_same_bytes_every_time():
    assert sim_video.task_clip("123456789012345") == sim_video.task_clip("123456789012345")
    assert sim_video.task_clip("123456789012345") != sim_video.task_clip("123456789012346")


def test_without_pyav_or_when_encoding_fails_the_bundled_clip_is_served(monkeypatch, tmp_path):
    # monkeypatch.context(), not undo(): undo would also drop conftest's isolated HOME
    with monkeypatch.context() as patch:
        patch.setattr(sim_video, "_pyav", lambda: None)
        assert sim_video.task_clip("1") == sim_video.clip_bytes()

    def broken(task_id: str) -> bytes:
        raise av.error.ValueError(22, "simulated encoder failure")

    monkeypatch.setattr(sim_video, "_encode", broken)
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        _, data = render_file(server, tmp_path, "plain", "a shot")
    assert data.startswith(sim_video.clip_bytes())


def test_a_persisted_video_is_served_again_from_the_data_folder(monkeypatch, tmp_path):
    data_dir = tmp_path / "server"
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=data_dir)) as first:
        task_id, original = render_file(first, tmp_path, "a", "kept")
        file_id = query(first, task_id)["file_id"]
    cached = data_dir / "videos" / f"{file_id}.mp4"
    assert cached.read_bytes() == original

    def must_not_encode(task_id: str) -> bytes:
        raise AssertionError("served again from the cache, not encoded again")

    with monkeypatch.context() as patch, running_simulator(SimConfig(key=TEST_KEY, data_dir=data_dir)) as second:
        patch.setattr(sim_video, "_encode", must_not_encode)
        file = retrieve(second, file_id)["file"]
        assert requests.get(file["download_url"], timeout=10).content == original

    cached.write_bytes(b"")  # a damaged cache file is made again, never served
    with running_simulator(SimConfig(key=TEST_KEY, data_dir=data_dir)) as third:
        file = retrieve(third, file_id)["file"]
        assert requests.get(file["download_url"], timeout=10).content == original
    assert cached.read_bytes() == original
