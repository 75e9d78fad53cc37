"""What a loaded manifest is made of: images (and other media), jobs, manifests.

A job's ``request`` is the resolved API request with its images as :class:`ImageRef` objects,
which can show themselves three ways: as identity (content hash, for the job key), as the API
value (a data URL, read from disk at send time), and for display (path and hash, never base64).

Two API generations (``Job.api``, a :class:`vidbatch.facts.Api`):

- **v1** (Hailuo and the 01 models): ``request`` is the body of ``POST /v1/video_generation``
  with ImageRefs for images; :meth:`Job.api_request` is that body, images as data URLs.
- **v2** (MiniMax-H3): ``request`` is vidbatch's *flat form* of a V2 request
  (:data:`vidbatch.facts.V2_JOB_FIELDS`): ``model``, ``prompt``, ``first_frame_image``,
  ``last_frame_image``, the lists ``reference_images``, ``reference_videos``,
  ``reference_audios`` (each medium an ImageRef, videos and audios too), ``duration``,
  ``resolution``, ``ratio``, ``callback_url``. The runner sends :meth:`Job.v2_body`:

  - ``job.v2_uploads(uploaded)``: the local media (files or data URLs written in the manifest)
    that must be uploaded first (``POST /v1/files/upload``) because inline as data URLs they would
    make the body larger than :data:`vidbatch.facts.V2_BODY_MAX_BYTES`: the largest first, until
    the rest fits. ``uploaded`` maps a medium's sha256 to the file id it was already uploaded as
    (those count as ``mm_file://`` URLs). Empty for almost every job.
  - for each, the client uploads ``ref.content()`` (the bytes, checked against the hash the key
    was computed from) as ``ref.upload_name()`` and records ``{ref.sha256: file_id}``;
  - ``job.v2_body(uploaded)``: the exact body: ``model``, ``content`` (text first, then the
    first frame, the last frame, the reference images, videos and audios, each list in its own
    order: :func:`vidbatch.rules.v2_body`), ``resolution``, ``duration``, ``ratio`` (defaults
    written out; ``adaptive`` with media), ``callback_url`` when set. Local media are read now
    and sent as data URLs, those in ``uploaded`` as ``mm_file://ID``, URLs as written. Raises
    ManifestError when the body would still be too large (uploads missing) or a file changed.

  :meth:`Job.api_request` is ``v2_body({})`` for a V2 job, so one call serves both APIs when
  nothing needs uploading. The key hashes media by content, however they travel
  (:mod:`vidbatch.identity`).

A chained shot's image is a frame of another job's video (``frame:shot-02@last``, see
:mod:`.frames`): loaded, it has no bytes yet (``sha256`` None, its identity the reference text);
:mod:`vidbatch.chain` gives the job a copy whose ref points at the extracted PNG, with its hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .. import facts, images, rules
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

    @property
    def local(self) -> bool:
        """A file or a data URL: content vidbatch holds (and may have to upload)."""
        return self.sha256 is not None

    def content(self) -> bytes:
        """The bytes of a local file (read now) or a data URL; raises ValueError for a URL.

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
                    [ManifestProblem(str(self.path), f"input cannot be read any more: {e.strerror or e}")]
                ) from None
            if hashlib.sha256(data).hexdigest() != self.sha256:
                raise ManifestError(
                    [ManifestProblem(str(self.path), "input changed since the manifest was loaded; load it again")]
                )
            return data
        if self._data_url is not None:
            return images.decode_data_url(self._data_url)[1]
        raise ValueError(f"{self.source} is a URL, not content vidbatch holds")

    def api_value(self) -> str:
        """What the API is sent: a data URL (the file is read now) or the URL (ManifestError when
        the file changed since the manifest was loaded: see :meth:`content`)."""
        if self.path is not None:
            return images.to_data_url(self.content(), self.mime or "application/octet-stream")
        if self._data_url is not None:
            return self._data_url
        return self.source

    def data_url_size(self) -> int:
        """How many bytes :meth:`api_value` is (a file: from its size now, without reading it)."""
        if self.path is not None:
            try:
                size = self.path.stat().st_size
            except OSError:
                size = 0
            return len(f"data:{self.mime or 'application/octet-stream'};base64,") + 4 * ((size + 2) // 3)
        return len(self._data_url if self._data_url is not None else self.source)

    def upload_name(self) -> str:
        """A file name to upload this content under: the file's own, else from hash and type."""
        if self.path is not None:
            return self.path.name
        ext = (self.mime or "application/octet-stream").rpartition("/")[2]
        return f"{(self.sha256 or 'upload')[:16]}.{ext}"

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


#: A medium of a V2 request (image, video or audio) is held the same way as an image.
MediaRef = ImageRef


def map_images(request: Mapping[str, Any], fn: Callable[[ImageRef], Any]) -> dict[str, Any]:
    """A copy of ``request`` with every ImageRef (every medium, of a V2 job too) replaced by
    ``fn(ref)``."""
    out = dict(request)
    for name in facts.IMAGE_FIELDS:
        value = out.get(name)
        if isinstance(value, ImageRef):
            out[name] = fn(value)
    for name in facts.V2_JOB_LIST_FIELDS:
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [fn(x) if isinstance(x, ImageRef) else x for x in value]
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
    for name in facts.V2_JOB_LIST_FIELDS:
        for n, x in enumerate(request.get(name) or ()):
            if isinstance(x, ImageRef):
                yield f"{name}[{n}]", x
    for i, subject in enumerate(request.get("subject_reference") or ()):
        if isinstance(subject, dict) and isinstance(subject.get("image"), list):
            for n, x in enumerate(subject["image"]):
                if isinstance(x, ImageRef):
                    yield f"subject_reference[{i}].image[{n}]", x


def image_refs(request: Mapping[str, Any]) -> list[ImageRef]:
    found: list[ImageRef] = []
    map_images(request, lambda ref: found.append(ref))
    return found


def _json_size(value: Any) -> int:
    """The bytes of ``value`` as JSON in its longest common spelling (``json.dumps``' defaults,
    which requests' ``json=`` uses: spaced separators, non-ASCII escaped): a size estimate that
    errs on the safe side of the API's limit."""
    return len(json.dumps(value).encode("ascii"))


@dataclass
class Job:
    """One video to render: a fully resolved, validated request and where it goes."""

    name: str
    manifest: Path  # absolute path of the manifest it came from
    index: int  # position in that manifest's expanded job list
    output: Path  # absolute, always inside the manifest's output_dir
    request: dict[str, Any]  # the API request; images are ImageRef objects
    mode: facts.Mode
    key: str  # identity.content_key(self.identity_request(), self.take)
    warnings: list[str] = field(default_factory=list)
    entry: int = 0  # which [[jobs]] table of the manifest it expanded from
    origin: str = ""  # the matrix/foreach row, e.g. "matrix season=winter"; "" for a plain job
    line: int | None = None  # line of its [[jobs]] table, when known
    #: The shot this job is a take of: its rendered ``name`` field ("" at construction means
    #: ``name``). A job without ``takes`` is the one take of its shot, and its name is the shot's.
    shot: str = ""
    #: Which take of the shot (1..identity.MAX_TAKES); part of the key, never sent to the API.
    take: int = 1

    def __post_init__(self) -> None:
        if not self.shot:
            self.shot = self.name

    @property
    def prompt(self) -> str | None:
        return self.request.get("prompt")

    @property
    def api(self) -> facts.Api:
        """Which API generation renders this job (its model's)."""
        model = facts.MODELS.get(str(self.request.get("model")))
        return model.api if model is not None else facts.Api.V1

    def frame_sources(self) -> list[tuple[str, frames.FrameSpec]]:
        """(field, frame) of each image that is a frame of another job (a chained shot)."""
        return [(name, spec) for name, ref in image_fields(self.request) if (spec := ref.frame) is not None]

    @property
    def unresolved(self) -> bool:
        """A chained shot whose frames are not extracted yet: its ``key`` stands for the request
        with the references as text, never for a render (:mod:`vidbatch.chain`)."""
        return any(ref.kind == "frame" and ref.sha256 is None for _, ref in image_fields(self.request))

    def identity_request(self) -> dict[str, Any]:
        """The request with images as content hashes (URLs as themselves): what the key hashes."""
        return map_images(self.request, ImageRef.identity)

    def api_request(self) -> dict[str, Any]:
        """The exact body for ``POST /v1/video_generation`` (a V2 job: :meth:`v2_body` with
        nothing uploaded); reads local images now."""
        if self.api is facts.Api.V2:
            return self.v2_body({})
        return map_images(self.request, ImageRef.api_value)

    def media(self) -> list[ImageRef]:
        """Every medium of the request, in the order the V2 body sends them."""
        return image_refs(self.request)

    def v2_uploads(self, uploaded: Mapping[str, str] | None = None) -> list[ImageRef]:
        """The local media to upload before :meth:`v2_body` can be sent (module docstring):
        with them inline the body would exceed the API's limit. Largest first; each medium once
        (by content), those already in ``uploaded`` (sha256 -> file id) not again."""
        uploaded = uploaded or {}
        inline = {r.sha256: r for r in self.media() if r.local and r.sha256 not in uploaded}
        sizes = {sha: ref.data_url_size() for sha, ref in inline.items()}
        stand_in = self._v2_body_with(lambda ref: "" if ref.sha256 in inline else self._url(ref, uploaded))
        total = _json_size(stand_in)
        total += sum(sizes[r.sha256] for r in self.media() if r.sha256 in inline)
        counts = {sha: sum(1 for r in self.media() if r.sha256 == sha) for sha in inline}
        needed: list[ImageRef] = []
        for sha in sorted(inline, key=lambda k: (-sizes[k] * counts[k], k)):
            if total <= facts.V2_BODY_MAX_BYTES:
                break
            ref = inline[sha]
            total -= sizes[sha] * counts[sha]
            total += len(facts.V2_FILE_URL_SCHEME) + 64  # an upload's id stands in its place
            needed.append(ref)
        return needed

    def v2_body(self, uploaded: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The exact body for ``POST /v2/video_generation`` (module docstring); reads local media
        now. ``uploaded``: sha256 -> file id of media already uploaded, sent as ``mm_file://ID``."""
        uploaded = uploaded or {}
        missing = self.v2_uploads(uploaded)
        if missing:
            names = ", ".join(r.source for r in missing)
            raise ManifestError(
                [ManifestProblem(str(self.manifest), f"the request would exceed the API's 64 MB: upload {names} first", job=self.name)]
            )
        return self._v2_body_with(lambda ref: self._url(ref, uploaded))

    @staticmethod
    def _url(ref: ImageRef, uploaded: Mapping[str, str]) -> str:
        file_id = uploaded.get(ref.sha256 or "")
        return f"{facts.V2_FILE_URL_SCHEME}{file_id}" if file_id else ref.api_value()

    def _v2_body_with(self, url: Callable[[ImageRef], Any]) -> dict[str, Any]:
        return rules.with_v2_defaults(rules.v2_body(map_images(self.request, url)))

    def display_request(self) -> dict[str, Any]:
        """JSON-able, for state and output: images by path and hash, never base64."""
        return map_images(self.request, ImageRef.display)

    def display_body(self) -> dict[str, Any]:
        """The body as it will be sent, JSON-able and short: a V2 job's ``content`` list with
        defaults written out, each local medium by path (or data URL) and hash in place of its
        URL; a v1 job's request as :meth:`display_request`."""
        if self.api is facts.Api.V2:
            return self._v2_body_with(ImageRef.display)
        return self.display_request()


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
