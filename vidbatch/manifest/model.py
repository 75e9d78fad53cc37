"""What a loaded manifest is made of: images, jobs, manifests.

A job's ``request`` is the resolved API request with its images as :class:`ImageRef` objects,
which can show themselves three ways: as identity (content hash, for the job key), as the API
value (a data URL, read from disk at send time), and for display (path and hash, never base64).

A chained shot's image is a frame of another job's video (``frame:shot-02@last``, see
:mod:`.frames`): loaded, it has no bytes yet (``sha256`` None, its identity the reference text);
:mod:`vidbatch.chain` gives the job a copy whose ref points at the extracted PNG, with its hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .. import facts, images
from ..errors import ManifestError, ManifestProblem
from ..identity import image_identity
from . import frames


@dataclass(frozen=True)
class ImageRef:
    """One image input: a local file, a data URL, or a remote URL."""

    source: str  # as written (rendered) in the manifest; a data URL is abbreviated
    path: Path | None  # absolute path of a local file, else None
    sha256: str | None  # of the bytes, for a local file or a data URL; None for a remote URL
    mime: str | None
    _data_url: str | None = field(default=None, repr=False, compare=False)

    @property
    def frame(self) -> frames.FrameSpec | None:
        """The frame of another job this image is (``frame:...``), or None."""
        return frames.parse(self.source) if frames.is_frame(self.source) else None

    @property
    def kind(self) -> str:
        """``"frame"``, ``"file"``, ``"data"`` or ``"url"``."""
        if frames.is_frame(self.source):
            return "frame"
        if self.path is not None:
            return "file"
        return "data" if self._data_url is not None else "url"

    def identity(self) -> str:
        """``sha256:<hex>`` of the content for a file or data URL; the URL itself for a remote one."""
        return image_identity(self.sha256) if self.sha256 else self.source

    def api_value(self) -> str:
        """What the API is sent: a data URL (the file is read now) or the URL.

        Raises ManifestError when the file changed since the manifest was loaded: sending other
        bytes than the job's key was computed from would record the wrong identity.
        """
        if self.path is None and frames.is_frame(self.source):
            raise ManifestError([ManifestProblem(self.source, "the frame has not been extracted yet; its source must render first")])
        if self.path is not None:
            try:
                data = self.path.read_bytes()
            except OSError as e:
                raise ManifestError(
                    [ManifestProblem(str(self.path), f"image cannot be read any more: {e.strerror or e}")]
                ) from None
            if hashlib.sha256(data).hexdigest() != self.sha256:
                raise ManifestError(
                    [ManifestProblem(str(self.path), "image changed since the manifest was loaded; load it again")]
                )
            return images.to_data_url(data, self.mime or "application/octet-stream")
        if self._data_url is not None:
            return self._data_url
        return self.source

    def display(self) -> dict[str, str] | str:
        """JSON-able and short: ``{"path", "sha256"}``, ``{"data_url", "sha256"}``, the URL, or
        for a frame ``{"frame", "path", "sha256"}`` (``{"frame"}`` before it is extracted)."""
        if frames.is_frame(self.source):
            if self.path is None:
                return {"frame": self.source}
            return {"frame": self.source, "path": str(self.path), "sha256": self.sha256 or ""}
        if self.path is not None:
            return {"path": self.source, "sha256": self.sha256 or ""}
        if self._data_url is not None:
            return {"data_url": self.source, "sha256": self.sha256 or ""}
        return self.source


def map_images(request: Mapping[str, Any], fn: Callable[[ImageRef], Any]) -> dict[str, Any]:
    """A copy of ``request`` with every ImageRef replaced by ``fn(ref)``."""
    out = dict(request)
    for name in facts.IMAGE_FIELDS:
        value = out.get(name)
        if isinstance(value, ImageRef):
            out[name] = fn(value)
    subjects = out.get("subject_reference")
    if isinstance(subjects, list):
        mapped = []
        for subject in subjects:
            if isinstance(subject, dict) and isinstance(subject.get("image"), list):
                subject = {**subject, "image": [fn(x) if isinstance(x, ImageRef) else x for x in subject["image"]]}
            mapped.append(subject)
        out["subject_reference"] = mapped
    return out


def image_fields(request: Mapping[str, Any]) -> Iterator[tuple[str, ImageRef]]:
    """(field, ref) of every image of ``request``; fields named like ``subject_reference[0].image[1]``."""
    for name in facts.IMAGE_FIELDS:
        value = request.get(name)
        if isinstance(value, ImageRef):
            yield name, value
    for i, subject in enumerate(request.get("subject_reference") or ()):
        if isinstance(subject, dict) and isinstance(subject.get("image"), list):
            for n, x in enumerate(subject["image"]):
                if isinstance(x, ImageRef):
                    yield f"subject_reference[{i}].image[{n}]", x


def image_refs(request: Mapping[str, Any]) -> list[ImageRef]:
    found: list[ImageRef] = []
    map_images(request, lambda ref: found.append(ref))
    return found


@dataclass
class Job:
    """One video to render: a fully resolved, validated request and where it goes."""

    name: str
    manifest: Path  # absolute path of the manifest it came from
    index: int  # position in that manifest's expanded job list
    output: Path  # absolute, always inside the manifest's output_dir
    request: dict[str, Any]  # the API request; images are ImageRef objects
    mode: facts.Mode
    key: str  # identity.content_key(self.identity_request())
    warnings: list[str] = field(default_factory=list)
    entry: int = 0  # which [[jobs]] table of the manifest it expanded from
    origin: str = ""  # the matrix/foreach row, e.g. "matrix season=winter"; "" for a plain job
    line: int | None = None  # line of its [[jobs]] table, when known

    @property
    def prompt(self) -> str | None:
        return self.request.get("prompt")

    def frame_sources(self) -> list[tuple[str, frames.FrameSpec]]:
        """(field, frame) of each image that is a frame of another job (a chained shot)."""
        return [(name, spec) for name, ref in image_fields(self.request) if (spec := ref.frame) is not None]

    @property
    def unresolved(self) -> bool:
        """A chained shot whose frames are not extracted yet: its ``key`` stands for the request
        with the references as text, never for a render (:mod:`vidbatch.chain`)."""
        return any(ref.kind == "frame" and ref.sha256 is None for ref in image_refs(self.request))

    def identity_request(self) -> dict[str, Any]:
        """The request with images as content hashes (URLs as themselves): what the key hashes."""
        return map_images(self.request, ImageRef.identity)

    def api_request(self) -> dict[str, Any]:
        """The exact body for ``POST /v1/video_generation``; reads local images now."""
        return map_images(self.request, ImageRef.api_value)

    def display_request(self) -> dict[str, Any]:
        """JSON-able, for state and output: images by path and hash, never base64."""
        return map_images(self.request, ImageRef.display)


@dataclass
class ShotSequence:
    """A ``[[sequences]]`` table: shots (job names) joined, in order, into the video ``output``
    (absolute, inside the manifest's output_dir); see :mod:`vidbatch.cuts`."""

    name: str
    shots: list[str]
    output: Path
    line: int | None = None


@dataclass
class Manifest:
    path: Path  # absolute
    output_dir: Path  # absolute
    jobs: list[Job]
    warnings: list[ManifestProblem] = field(default_factory=list)
    #: Every local file this manifest read: itself, included templates, foreach files, images.
    inputs: set[Path] = field(default_factory=set)
    #: The manifest's ``[prices]`` table as parsed (checked by the loader); None without one.
    #: vidbatch.costing prices this manifest's jobs with it over the config file's and shipped rows.
    prices: Mapping[str, Any] | None = None
    #: Why no output could be written into ``output_dir`` as things stand (permissions, a
    #: read-only file system), or None. Not a manifest error, because read-only commands (plan,
    #: status, report) work on a read-only copy; a command that will write outputs refuses with
    #: it before any create (see :meth:`output_dir_error`).
    output_dir_unwritable: str | None = None
    #: The manifest's sequences of shots, each joined into one video (vidbatch.cuts).
    sequences: list[ShotSequence] = field(default_factory=list)

    def output_dir_error(self) -> ManifestError | None:
        """The error (exit 2) a run or watch raises before creating anything, when outputs of this
        manifest are to be written and ``output_dir`` cannot take them; else None."""
        if self.output_dir_unwritable is None:
            return None
        return ManifestError([ManifestProblem(str(self.path), self.output_dir_unwritable, field="output_dir")])

    def job(self, name: str) -> Job | None:
        return next((j for j in self.jobs if j.name == name), None)


@dataclass
class ManifestResult:
    """The outcome of checking one manifest: a Manifest, or the problems that prevent one."""

    path: Path  # as given
    manifest: Manifest | None
    problems: list[ManifestProblem] = field(default_factory=list)
    warnings: list[ManifestProblem] = field(default_factory=list)
    inputs: set[Path] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems
