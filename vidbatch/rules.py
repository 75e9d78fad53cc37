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
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import images
from .facts import (
    CAMERA_COMMANDS,
    CAMERA_MAX_PER_BRACKET,
    FIELD_DEFAULTS,
    IMAGE_FIELDS,
    MODE_ONLY_FIELDS,
    MODELS,
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
    """One thing wrong with a request: the field, and a sentence a user can act on."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def mode_of(request: Mapping[str, Any]) -> Mode:
    """The mode follows from the images a request carries."""
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


def check_request(request: Mapping[str, Any], *, check_images: bool = False) -> list[Problem]:
    """Every way ``request`` breaks the API's rules, in field order; empty when the API would take it.

    Image *content* (format, size, dimensions) is checked only with ``check_images``, for data URLs;
    remote URLs cannot be checked locally.
    """
    problems: list[Problem] = []
    for name, value in request.items():
        expected = REQUEST_FIELDS.get(name)
        if expected is None:
            near = difflib.get_close_matches(name, list(REQUEST_FIELDS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(Problem(name, f"unknown field{hint}"))
        elif value is None:
            problems.append(Problem(name, "must not be null"))
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            kind = _type_name(expected)
            problems.append(Problem(name, f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not {type(value).__name__}"))
    if problems:
        return problems

    model_name = request.get("model")
    if not model_name:
        return [Problem("model", "is required")]
    model = MODELS.get(model_name)
    if model is None:
        near = difflib.get_close_matches(model_name, list(MODELS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; known models: {', '.join(MODELS)}"
        return [Problem("model", f"unknown model {model_name!r}{hint}")]

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
    """
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
    norm = normalized_request(request)
    return RequestSummary(
        model=str(norm.get("model")),
        mode=mode_of(norm),
        duration=norm.get("duration"),
        resolution=norm.get("resolution"),
    )
