"""The API's rules, applied to requests and prompts; the data they read is :mod:`vidbatch.facts`.

- :func:`check_request`: every way a resolved request body breaks the API's rules, in field order.
  The simulator answers 2013 with the first problem; the manifest validator reports all of them
  with file and job context.
- :func:`mode_of`, :func:`normalized_request`, :func:`output_size`, :func:`summarize`: what a
  request means (its mode, its form with every default written out, its pixel size, its billing
  shape). A job's identity is computed over :func:`normalized_request` (:mod:`vidbatch.identity`).
- :func:`camera_brackets`, :func:`check_camera_commands`: the ``[...]`` camera commands of a
  prompt, and warnings about words that are not commands.

Layering: this module sits above :mod:`vidbatch.facts` (pure data) and :mod:`vidbatch.images`
(image limits), and below everything that validates (manifest loader, simulator, report).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import images
from .facts import (
    V2_BODY_MAX_BYTES,
    V2_DEFAULT_IMAGE_ROLE,
    V2_FILE_URL_SCHEME,
    V2_FRAME_ROLES,
    V2_JOB_MEDIA_FIELDS,
    V2_MAX_ITEMS,
    V2_MAX_REFERENCE_ITEMS,
    V2_MEDIA_KIND_OF_TYPE,
    V2_MEDIA_ROLES,
    V2_MEDIA_TYPES,
    V2_PATH_CREATE,
    V2_PROMPT_MAX_CHARS,
    V2_RATIO_WITH_MEDIA,
    V2_RATIOS,
    V2_REFERENCE_ROLES,
    V2_REQUEST_FIELDS,
    V2_RESOLUTION_SHORT_SIDE,
    V2_TEXT_TYPE,
    V2_URL_SCHEMES,
    Api,
    CAMERA_COMMANDS,
    CAMERA_MAX_PER_BRACKET,
    FIELD_DEFAULTS,
    IMAGE_FIELDS,
    MODE_ONLY_FIELDS,
    MODELS,
    PATH_CREATE,
    PROMPT_MAX_CHARS,
    REQUEST_FIELDS,
    RESOLUTION_SIZES,
    Mode,
    models_for,
)

# --- camera commands --------------------------------------------------------------------------

#: Built once: check_camera_commands runs for every job of a manifest (10,000 in the benchmark).
_CAMERA_KNOWN = list(CAMERA_COMMANDS)
_CAMERA_LOWER = {k.lower(): k for k in _CAMERA_KNOWN}
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_BRACKET_SPLIT = re.compile(r"\s*[,，、]\s*")
#: Full-width brackets (【Push in】, ［推进］): easy to type with a Chinese input method, but
#: MiniMax reads camera commands only between ASCII brackets.
_FULL_WIDTH_BRACKET = re.compile(r"[【［]([^【】［］\[\]]*)[】］]")
#: Characters a prompt needs for :func:`check_camera_commands` to find anything.
CAMERA_BRACKET_CHARS = "[【［"


@dataclass(frozen=True)
class CameraWarning:
    bracket: str
    message: str


@dataclass(frozen=True)
class CameraBracket:
    """One ``[...]`` group of a prompt: where it stands and the commands written in it."""

    start: int
    end: int
    text: str  # with the brackets
    commands: tuple[str, ...]


def camera_brackets(prompt: str) -> list[CameraBracket]:
    """Every bracketed group of a prompt, in order (known commands or not)."""
    return [
        CameraBracket(m.start(), m.end(), m.group(0), tuple(p for p in _BRACKET_SPLIT.split(m.group(1).strip()) if p))
        for m in _BRACKET.finditer(prompt)
    ]


def camera_commands_in(prompt: str) -> list[list[str]]:
    """The bracketed groups of a prompt, each as a list of its comma-separated commands."""
    return [list(b.commands) for b in camera_brackets(prompt)]


def full_width_brackets(prompt: str) -> list[str]:
    """Every group between full-width brackets (【...】, ［...］), brackets included."""
    return [m.group(0) for m in _FULL_WIDTH_BRACKET.finditer(prompt)]


def _near_command(part: str) -> str | None:
    near = difflib.get_close_matches(part, _CAMERA_KNOWN, n=1, cutoff=0.5) or difflib.get_close_matches(
        part.lower(), list(_CAMERA_LOWER), n=1, cutoff=0.5
    )
    return _CAMERA_LOWER.get(near[0], near[0]) if near else None


def check_camera_commands(prompt: str) -> list[CameraWarning]:
    """Warn about bracketed words that are not camera commands, over-full brackets, and camera
    commands (or near misses) between full-width brackets, which the model reads as text."""
    warnings: list[CameraWarning] = []
    for m in _FULL_WIDTH_BRACKET.finditer(prompt):
        written = [p for p in _BRACKET_SPLIT.split(m.group(1).strip()) if p]
        commands = [p if p in CAMERA_COMMANDS else _near_command(p) for p in written]
        if any(commands):
            fixed = ", ".join(c or p for c, p in zip(commands, written))
            warnings.append(
                CameraWarning(
                    m.group(0),
                    f"{m.group(0)} uses full-width brackets, so it will reach the model as text; "
                    f"camera commands go between [ and ]: [{fixed}]",
                )
            )
    known, lower = _CAMERA_KNOWN, _CAMERA_LOWER
    for group in camera_brackets(prompt):
        bracket, parts = group.text, group.commands
        for part in parts:
            if part in CAMERA_COMMANDS:
                continue
            if part.lower() in lower:
                warnings.append(
                    CameraWarning(bracket, f"{part!r} is written {lower[part.lower()]!r} in the API docs")
                )
                continue
            near = difflib.get_close_matches(part, known, n=1, cutoff=0.5) or difflib.get_close_matches(
                part.lower(), list(lower), n=1, cutoff=0.5
            )
            hint = f"; did you mean [{lower.get(near[0], near[0])}]?" if near else ""
            warnings.append(
                CameraWarning(bracket, f"{bracket} is not a camera command and will reach the model as text{hint}")
            )
        if len(parts) > CAMERA_MAX_PER_BRACKET:
            warnings.append(
                CameraWarning(
                    bracket,
                    f"{bracket} has {len(parts)} commands; MiniMax recommends at most "
                    f"{CAMERA_MAX_PER_BRACKET} in one bracket",
                )
            )
    return warnings



# --- request rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field, and a sentence a user can act on.

    A problem of a V2 body's ``content`` also says which content role it is about (``text`` for
    the prompt, else a key of :data:`~vidbatch.facts.V2_MEDIA_ROLES`) and, for one item, its
    position among the items of that role: the manifest loader names its own field from them
    (``reference_images[2]``), the simulator answers with ``field``."""

    field: str
    message: str
    role: str | None = None
    item: int | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def api_of(request: Mapping[str, Any]) -> Api:
    """Which API generation a request is for: its model's (a known model); else V2 when it
    carries ``content`` (a V2 body), else V1."""
    model = MODELS.get(str(request.get("model")))
    if model is not None:
        return model.api
    return Api.V2 if "content" in request else Api.V1


def mode_of(request: Mapping[str, Any]) -> Mode:
    """The mode follows from the images a request carries (for V2: the roles of its media, in a
    body or in vidbatch's flat form, see :func:`v2_roles`)."""
    if "content" in request or api_of(request) is Api.V2:
        return _v2_mode(v2_roles(request))
    if request.get("subject_reference"):
        return Mode.S2V
    if request.get("last_frame_image"):
        return Mode.FL2V
    if request.get("first_frame_image"):
        return Mode.I2V
    return Mode.T2V


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", bool: "boolean", list: "array"}
    return names.get(t, str(t)) if isinstance(t, type) else " or ".join(names[x] for x in t)


def _field_problems(request: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]]) -> list[Problem]:
    """Fields ``request`` has that ``fields`` does not list, or of the wrong JSON type."""
    problems: list[Problem] = []
    for name, value in request.items():
        expected = fields.get(name)
        if expected is None:
            near = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(Problem(name, f"unknown field{hint}"))
        elif value is None:
            problems.append(Problem(name, "must not be null"))
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            kind = _type_name(expected)
            problems.append(Problem(name, f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not {type(value).__name__}"))
    return problems


def _unknown_model(model_name: str) -> Problem:
    near = difflib.get_close_matches(model_name, list(MODELS), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; known models: {', '.join(MODELS)}"
    return Problem("model", f"unknown model {model_name!r}{hint}")


def check_request(request: Mapping[str, Any], *, check_images: bool = False) -> list[Problem]:
    """Every way ``request`` breaks the API's rules, in field order; empty when the API would take it.

    Image *content* (format, size, dimensions) is checked only with ``check_images``, for data URLs;
    remote URLs cannot be checked locally.
    """
    known = MODELS.get(str(request.get("model")))
    if known is not None and known.api is not Api.V1:  # first: its fields are V2's, not unknown
        return [
            Problem(
                "model",
                f"{known.name} is served by Video Generation V2 (POST {V2_PATH_CREATE}), "
                f"not POST {PATH_CREATE}",
            )
        ]
    problems = _field_problems(request, REQUEST_FIELDS)
    if problems:
        return problems

    model_name = request.get("model")
    if not model_name:
        return [Problem("model", "is required")]
    model = MODELS.get(model_name)
    if model is None:
        return [_unknown_model(model_name)]

    if request.get("subject_reference") and (request.get("first_frame_image") or request.get("last_frame_image")):
        problems.append(Problem("subject_reference", "cannot be combined with first_frame_image or last_frame_image"))
        return problems
    mode = mode_of(request)
    spec = model.modes.get(mode)
    if spec is None:
        if mode is Mode.T2V and model.modes.keys() & {Mode.I2V}:
            problems.append(Problem("first_frame_image", f"is required: {model_name} only does image-to-video"))
        else:
            serving = ", ".join(models_for(mode))
            problems.append(Problem("model", f"{model_name} does not do {mode.label}; models that do: {serving}"))
        return problems

    prompt = request.get("prompt")
    if mode is Mode.T2V and not (prompt or "").strip():
        problems.append(Problem("prompt", "is required for text-to-video"))
    if prompt is not None and len(prompt) > PROMPT_MAX_CHARS:
        problems.append(Problem("prompt", f"is {len(prompt)} characters; the API takes at most {PROMPT_MAX_CHARS}"))

    for name, modes in MODE_ONLY_FIELDS.items():
        if name in request and mode not in modes:
            problems.append(Problem(name, f"is not part of {mode.label}"))
    if request.get("fast_pretreatment") and not model.fast_pretreatment:
        problems.append(Problem("fast_pretreatment", f"is not supported by {model_name}"))
    problems.extend(_callback_problems(request))

    if mode is not Mode.S2V:
        duration = request.get("duration", spec.default_duration)
        if "duration" not in [p.field for p in problems]:
            if duration not in spec.durations:
                allowed = ", ".join(f"{d}" for d in spec.durations)
                problems.append(
                    Problem("duration", f"{model_name} {mode.label} takes {allowed} seconds, not {duration}")
                )
            else:
                resolution = request.get("resolution", spec.default_resolution)
                allowed_res = spec.durations[duration]
                if resolution not in allowed_res:
                    problems.append(
                        Problem(
                            "resolution",
                            f"{model_name} {mode.label} at {duration} s takes {', '.join(allowed_res)}, "
                            f"not {resolution}",
                        )
                    )

    if mode is Mode.S2V:
        problems.extend(_check_subject_reference(request["subject_reference"]))

    if check_images:
        for name in IMAGE_FIELDS:
            if isinstance(request.get(name), str):
                problems.extend(Problem(name, m) for m in images.check_image_ref(request[name]))
        for i, subject in enumerate(request.get("subject_reference") or []):
            for j, ref in enumerate(subject.get("image") or [] if isinstance(subject, dict) else []):
                if isinstance(ref, str):
                    problems.extend(
                        Problem(f"subject_reference[{i}].image[{j}]", m) for m in images.check_image_ref(ref)
                    )
    return problems


def _callback_problems(request: Mapping[str, Any]) -> list[Problem]:
    """A ``callback_url`` MiniMax cannot POST its challenge to (v1 and V2 alike)."""
    callback = request.get("callback_url")
    if callback is not None and not str(callback).startswith(("https://", "http://")):
        return [Problem("callback_url", "must be an http:// or https:// URL")]
    return []


def _check_subject_reference(value: list[Any]) -> list[Problem]:
    field_name = "subject_reference"
    if len(value) != 1:
        return [Problem(field_name, f"takes exactly one subject, not {len(value)}")]
    subject = value[0]
    if not isinstance(subject, dict):
        return [Problem(field_name, 'each subject must be an object {"type": "character", "image": [...]}')]
    problems: list[Problem] = []
    if subject.get("type") != "character":
        problems.append(Problem(f"{field_name}[0].type", f"must be 'character', not {subject.get('type')!r}"))
    imgs = subject.get("image")
    if not isinstance(imgs, list) or len(imgs) != 1 or not isinstance(imgs[0], str):
        problems.append(Problem(f"{field_name}[0].image", "must be a list of exactly one image URL or data URL"))
    return problems


def normalized_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request with every applicable default written out and inapplicable fields dropped.

    Two requests that the API would treat alike normalise alike: this is what a job's identity is
    computed over (:mod:`vidbatch.identity`). Assumes :func:`check_request` found no problem.
    A V2 request (a body, or vidbatch's flat form) normalises to :func:`normalized_v2_body`.
    """
    if api_of(request) is Api.V2:
        return normalized_v2_body(request if "content" in request else v2_body(request))
    out = dict(request)
    mode = mode_of(request)
    model = MODELS.get(str(request.get("model")))
    spec = model.modes.get(mode) if model else None
    for name, default in FIELD_DEFAULTS.items():
        out.setdefault(name, default)
    if spec is not None and mode is not Mode.S2V:
        out.setdefault("duration", spec.default_duration)
        out.setdefault("resolution", spec.default_resolution)
    for name, modes in MODE_ONLY_FIELDS.items():
        if mode not in modes and out.get(name) == FIELD_DEFAULTS.get(name):
            out.pop(name, None)
    if mode is Mode.S2V:
        out.pop("duration", None)
        out.pop("resolution", None)
    out.pop("callback_url", None)  # where status pushes go does not change the video
    return out


def output_size(request: Mapping[str, Any]) -> tuple[int, int]:
    """The pixel size a render of ``request`` comes out at."""
    if api_of(request) is Api.V2:
        return v2_output_size(request)
    norm = normalized_request(request)
    res = norm.get("resolution")
    if res is None:
        model = MODELS.get(str(request.get("model")))
        spec = model.modes.get(mode_of(request)) if model else None
        res = spec.default_resolution if spec else "720P"
    return RESOLUTION_SIZES.get(res, RESOLUTION_SIZES["720P"])


@dataclass
class RequestSummary:
    """Billing-relevant shape of a request (for plan summaries)."""

    model: str
    mode: Mode
    duration: int | None
    resolution: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(request: Mapping[str, Any]) -> RequestSummary:
    """What a render of ``request`` is billed by. A V2 request's ``extra`` counts its reference
    images (``reference_images``: H3 bills each one past the fifth)."""
    norm = normalized_request(request)
    extra: dict[str, Any] = {}
    if "content" in norm:
        extra["reference_images"] = v2_roles(norm).count("reference_image")
    return RequestSummary(
        model=str(norm.get("model")),
        mode=mode_of(norm),
        duration=norm.get("duration"),
        resolution=norm.get("resolution"),
        extra=extra,
    )


# --- Video Generation V2 (MiniMax-H3) ---------------------------------------------------------
# A V2 request exists in two forms. The *body* is what ``POST /v2/video_generation`` takes: a
# ``content`` list of one text item and media items with roles. The *flat form* is how vidbatch
# (and a manifest) writes one: ``prompt``, ``first_frame_image``, ``last_frame_image`` and the
# lists ``reference_images``, ``reference_videos``, ``reference_audios``, beside ``duration``,
# ``resolution``, ``ratio`` and ``callback_url`` (facts.V2_JOB_FIELDS). :func:`v2_body` turns the
# flat form into the body, in one documented order; :func:`check_v2_request` checks a body.


def v2_roles(request: Mapping[str, Any]) -> list[str]:
    """The role of each media item of a V2 request, in order: of a body's ``content`` (an
    ``image_url`` without a role is a first frame; items that are not media are skipped), or of
    the media fields of the flat form (one per list entry)."""
    content = request.get("content")
    if isinstance(content, list):
        roles = []
        for item in content:
            if isinstance(item, dict) and item.get("type") in V2_MEDIA_TYPES:
                role = item.get("role")
                if role is None and item.get("type") == "image_url":
                    role = V2_DEFAULT_IMAGE_ROLE
                roles.append(str(role))
        return roles
    roles = []
    for name, role in V2_JOB_MEDIA_FIELDS.items():
        value = request.get(name)
        if isinstance(value, list):
            roles.extend([role] * len(value))
        elif value:
            roles.append(role)
    return roles


def _v2_mode(roles: list[str]) -> Mode:
    found = set(roles)
    if found & V2_REFERENCE_ROLES:
        return Mode.R2V
    if "first_frame" in found:
        return Mode.FL2V if "last_frame" in found else Mode.I2V
    return Mode.LF2V if "last_frame" in found else Mode.T2V


def v2_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The V2 create body of a request in the flat form, its media values taken as the URLs to
    send (a public URL, a data URL, ``mm_file://ID``, or any stand-in such as an identity).

    ``content`` is in this order, always: the text item (the prompt), the first frame, the last
    frame, then the reference images, videos and audios, each list in its own order. The other
    fields are copied as given (no defaults: :func:`with_v2_defaults` writes them); fields not of
    the flat form are left out (a manifest refuses them before)."""
    content: list[dict[str, Any]] = []
    prompt = request.get("prompt")
    if prompt is not None:
        content.append({"type": V2_TEXT_TYPE, "text": prompt})
    for name, role in V2_JOB_MEDIA_FIELDS.items():
        value = request.get(name)
        if value is None:
            continue
        kind = V2_MEDIA_ROLES[role]
        for url in value if isinstance(value, list) else [value]:
            content.append({"type": kind, kind: {"url": url}, "role": role})
    body: dict[str, Any] = {"model": request.get("model"), "content": content}
    for name in ("resolution", "duration", "ratio", "callback_url"):
        if name in request:
            body[name] = request[name]
    return body


def with_v2_defaults(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the defaults the API would apply written out: the mode's duration and
    resolution, and ``ratio`` ``adaptive`` when the request carries media (a text-only request
    has no default ratio: it must say one)."""
    out = dict(body)
    model = MODELS.get(str(body.get("model")))
    spec = model.modes.get(mode_of(body)) if model is not None else None
    if spec is not None:
        out.setdefault("duration", spec.default_duration)
        out.setdefault("resolution", spec.default_resolution)
    if v2_roles(body):
        out.setdefault("ratio", V2_RATIO_WITH_MEDIA)
    return out


_V2_ROLE_ORDER = {role: i for i, role in enumerate(V2_JOB_MEDIA_FIELDS.values())}


def normalized_v2_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A V2 body as its identity sees it (:mod:`vidbatch.identity`): defaults written out
    (:func:`with_v2_defaults`), every image item with its role, the items in the order of
    :func:`v2_body` (text, frames, references; each role's items in their own order, which the
    prompt may refer to), ``callback_url`` dropped. Assumes :func:`check_v2_request` found no
    problem."""
    out = with_v2_defaults(body)
    out.pop("callback_url", None)
    items = []
    for i, item in enumerate(body.get("content") or []):
        if isinstance(item, dict) and item.get("type") == "image_url" and "role" not in item:
            item = {**item, "role": V2_DEFAULT_IMAGE_ROLE}
        rank = -1 if not isinstance(item, dict) or item.get("type") == V2_TEXT_TYPE else _V2_ROLE_ORDER.get(str(item.get("role")), 99)
        items.append((rank, i, item))
    out["content"] = [item for _, _, item in sorted(items, key=lambda x: (x[0], x[1]))]
    return out


def v2_output_size(request: Mapping[str, Any]) -> tuple[int, int]:
    """The pixel size of a V2 render: the resolution's short side, the ratio's long one (an
    ``adaptive`` ratio follows the input; counted as 16:9)."""
    norm = normalized_request(request)
    short = V2_RESOLUTION_SHORT_SIDE.get(str(norm.get("resolution")), 1440)
    ratio = str(norm.get("ratio") or "16:9")
    w, _, h = (ratio if ratio in V2_RATIOS and ratio != "adaptive" else "16:9").partition(":")
    a, b = int(w), int(h)
    if a >= b:
        return (round(short * a / b / 2) * 2, short)
    return (short, round(short * b / a / 2) * 2)


def _seconds(durations: Mapping[int, Any]) -> str:
    """``4 to 15`` for a run of whole seconds, else ``6, 10``."""
    values = sorted(durations)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]} to {values[-1]}"
    return ", ".join(str(v) for v in values)


def _v2_url_problem(url: str, kind: str, *, local: bool, check_media: bool) -> str | None:
    """Why a media item's URL would be refused, or None."""
    if local and url.startswith("sha256:"):
        return None
    if not url.startswith(V2_URL_SCHEMES):
        return f"must be a public http(s) URL, a data URL or {V2_FILE_URL_SCHEME}FILE_ID, not {url[:40]!r}"
    if url.startswith(V2_FILE_URL_SCHEME):
        return None if url[len(V2_FILE_URL_SCHEME):].strip() else f"names no file: write {V2_FILE_URL_SCHEME}FILE_ID"
    if url.startswith("data:"):
        if not check_media:
            return None
        try:
            _, data = images.decode_data_url(url)
        except ValueError as e:
            return f"is not a usable data URL ({e})"
        problems = images.media_problems(kind, data)
        return "; ".join(problems) if problems else None
    return None


def check_v2_request(
    body: Mapping[str, Any],
    *,
    check_media: bool = False,
    local: bool = False,
    body_bytes: int | None = None,
) -> list[Problem]:
    """Every way a V2 create body breaks the API's rules; empty when the API would take it.

    The rules, from facts: known top-level fields of their JSON types; a known V2 model; a
    ``content`` list of exactly one non-empty text item of at most 7000 characters and media
    items of the types and roles of ``V2_MEDIA_ROLES`` whose URLs are public, data or
    ``mm_file://`` URLs; at most one first and one last frame, 9 reference images, 3 videos,
    3 audios and 12 references in all; frames and references not mixed; reference audio only
    with a reference image or video; a duration and resolution the model's mode takes; a known
    ratio, concrete for a text-only request; the body at most 64 MB (``body_bytes`` when the
    caller knows the size on the wire, else the compact JSON's).

    ``check_media``: also decode data URLs and check their format and size per kind (the
    simulator does). ``local``: the body is vidbatch's identity form, whose local media are
    ``sha256:<hex>`` stand-ins the manifest loader checked itself, and whose size on the wire is
    decided when it is sent (media that would not fit are uploaded): neither is checked here.
    """
    if not isinstance(body, Mapping):
        return [Problem("body", "must be a JSON object")]
    problems = _field_problems(body, V2_REQUEST_FIELDS)
    if problems:
        return problems
    model_name = body.get("model")
    if not model_name:
        return [Problem("model", "is required")]
    model = MODELS.get(model_name)
    if model is None:
        return [_unknown_model(model_name)]
    if model.api is not Api.V2:
        v2 = ", ".join(m.name for m in MODELS.values() if m.api is Api.V2)
        return [Problem("model", f"{model_name} is served by POST {PATH_CREATE}, not Video Generation V2 (which serves {v2})")]
    content = body.get("content")
    if content is None:
        return [Problem("content", "is required: one text item, and media items with roles", role=V2_TEXT_TYPE)]

    problems = _v2_item_problems(content, local=local, check_media=check_media)
    if problems:
        return problems
    problems = _v2_content_problems(content)

    roles = v2_roles(body)
    mode = _v2_mode(roles)
    spec = model.modes.get(mode)
    if spec is None:
        problems.append(Problem("model", f"{model_name} does not do {mode.label}"))
        return problems
    duration = body.get("duration", spec.default_duration)
    if duration not in spec.durations:
        problems.append(Problem("duration", f"{model_name} takes {_seconds(spec.durations)} seconds, not {duration}"))
    else:
        resolution = body.get("resolution", spec.default_resolution)
        if resolution not in spec.durations[duration]:
            allowed = ", ".join(spec.durations[duration])
            problems.append(Problem("resolution", f"{model_name} at {duration} s takes {allowed}, not {resolution}"))
    ratio = body.get("ratio")
    concrete = [r for r in V2_RATIOS if r != V2_RATIO_WITH_MEDIA]
    if ratio is not None and ratio not in V2_RATIOS:
        problems.append(Problem("ratio", f"must be one of {', '.join(V2_RATIOS)}, not {ratio!r}"))
    elif not roles and ratio in (None, V2_RATIO_WITH_MEDIA):
        problems.append(
            Problem(
                "ratio",
                f"a text-only request needs a concrete ratio ({', '.join(concrete)}); "
                f"{V2_RATIO_WITH_MEDIA} follows an input image or video, and there is none: set one, e.g. 16:9",
            )
        )
    problems.extend(_callback_problems(body))
    if not problems and not local:
        size = body_bytes
        if size is None:
            size = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > V2_BODY_MAX_BYTES:
            problems.append(
                Problem(
                    "body",
                    f"is {images.describe_size(size)}; a V2 request takes at most "
                    f"{images.describe_size(V2_BODY_MAX_BYTES)}: send large media as public URLs or "
                    f"{V2_FILE_URL_SCHEME} ids of uploaded files instead of data URLs",
                )
            )
    return problems


def _v2_item_problems(content: list[Any], *, local: bool, check_media: bool) -> list[Problem]:
    """The shape of each ``content`` item: its type, keys, role and URL."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(content):
        at = f"content[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(at, 'must be an object {"type": ...}'))
            continue
        kind = item.get("type")
        if kind == V2_TEXT_TYPE:
            extra = sorted(set(item) - {"type", "text"})
            if extra:
                problems.append(Problem(f"{at}.{extra[0]}", "unknown field of a text item (it has type and text)", role=V2_TEXT_TYPE))
            elif not isinstance(item.get("text"), str):
                problems.append(Problem(f"{at}.text", "must be a string", role=V2_TEXT_TYPE))
            continue
        if kind not in V2_MEDIA_TYPES:
            types = ", ".join((V2_TEXT_TYPE, *V2_MEDIA_TYPES))
            problems.append(Problem(f"{at}.type", f"must be one of {types}, not {kind!r}"))
            continue
        role = item.get("role", V2_DEFAULT_IMAGE_ROLE if kind == "image_url" else None)
        roles = [r for r, t in V2_MEDIA_ROLES.items() if t == kind]
        if role not in roles:
            problems.append(Problem(f"{at}.role", f"a {kind} item's role is {' or '.join(roles)}, not {role!r}"))
            continue
        n = seen[role] = seen.get(role, -1) + 1
        extra = sorted(set(item) - {"type", "role", kind})
        media = item.get(kind)
        if extra:
            problems.append(Problem(f"{at}.{extra[0]}", f"unknown field of a {kind} item (it has type, {kind} and role)", role=role, item=n))
        elif not isinstance(media, dict) or set(media) != {"url"} or not isinstance(media["url"], str):
            problems.append(Problem(f"{at}.{kind}", 'must be an object {"url": "..."}', role=role, item=n))
        else:
            message = _v2_url_problem(media["url"], V2_MEDIA_KIND_OF_TYPE[kind], local=local, check_media=check_media)
            if message:
                problems.append(Problem(f"{at}.{kind}.url", message, role=role, item=n))
    return problems


def _role_words(role: str, count: int) -> str:
    """``reference images``, ``first frame``: a role as a user says it."""
    words = role.replace("_", " ")
    return words if count == 1 else words + "s"


def _v2_content_problems(content: list[dict[str, Any]]) -> list[Problem]:
    """What the items say together: one text, how many of each role, which roles mix."""
    problems: list[Problem] = []
    texts = [(i, item["text"]) for i, item in enumerate(content) if item.get("type") == V2_TEXT_TYPE]
    if len(texts) != 1:
        problems.append(Problem("content", f"needs exactly one text item (the prompt), not {len(texts)}", role=V2_TEXT_TYPE))
    else:
        i, text = texts[0]
        if not text.strip():
            problems.append(Problem(f"content[{i}].text", "must not be empty: every V2 request has a prompt", role=V2_TEXT_TYPE))
        elif len(text) > V2_PROMPT_MAX_CHARS:
            problems.append(
                Problem(f"content[{i}].text", f"is {len(text)} characters; the API takes at most {V2_PROMPT_MAX_CHARS}", role=V2_TEXT_TYPE)
            )
    roles = v2_roles({"content": content})
    for role, most in V2_MAX_ITEMS.items():
        count = roles.count(role)
        if count > most:
            problems.append(Problem("content", f"has {count} {_role_words(role, count)}; at most {most}", role=role))
    references = [r for r in roles if r in V2_REFERENCE_ROLES]
    if len(references) > V2_MAX_REFERENCE_ITEMS:
        problems.append(
            Problem(
                "content",
                f"has {len(references)} reference items (images, videos and audios); at most {V2_MAX_REFERENCE_ITEMS} in all",
                role=references[-1],
            )
        )
    frames = [r for r in roles if r in V2_FRAME_ROLES]
    if frames and references:
        problems.append(
            Problem(
                "content",
                f"mixes frames ({', '.join(_role_words(r, 1) for r in dict.fromkeys(frames))}) and references "
                f"({', '.join(_role_words(r, 1) for r in dict.fromkeys(references))}); a request takes one or the other",
                role=references[0],
            )
        )
    if "reference_audio" in roles and not {"reference_image", "reference_video"} & set(roles):
        problems.append(
            Problem(
                "content",
                "has reference audio but no reference image or video; audio is a reference only beside one of those",
                role="reference_audio",
            )
        )
    return problems
