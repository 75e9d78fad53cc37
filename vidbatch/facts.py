"""The one table of facts about MiniMax's video generation API.

Everything vidbatch knows about the service lives here: hosts, models and the modes, durations
and resolutions each serves, request fields and their defaults, image limits, camera commands,
task statuses, and what each ``base_resp.status_code`` means for a client. The manifest
validator, the HTTP client and the simulator all read this module, so a fact is written once.

The source is ``shared/minimax-api.md``. Where public sources disagree, the table accepts both
forms (``Fail``/``Failed``, WebP images, string or integer ``file_id``).

:func:`check_request` applies the rules to a resolved request body. The simulator answers 2013
with its first problem; the manifest validator reports all of them with file and job context.
"""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

# --- hosts and timing -------------------------------------------------------------------------

HOST_GLOBAL = "https://api.minimax.io"
HOST_MAINLAND = "https://api.minimaxi.com"
LEGACY_HOSTS = ("https://api.minimaxi.chat", "https://api.minimax.chat")
DEFAULT_HOST = HOST_MAINLAND

#: Documented create limit: 5 requests a minute (international; mainland paid accounts get 20).
DEFAULT_RPM = 5
#: MiniMax's recommended polling interval, in seconds.
DEFAULT_POLL_INTERVAL = 10.0
#: ``download_url`` lifetime: 1 hour (mainland docs), 9 hours (older international docs).
DOWNLOAD_URL_TTL_SECONDS = 3600

PATH_CREATE = "/v1/video_generation"
PATH_QUERY = "/v1/query/video_generation"
PATH_RETRIEVE = "/v1/files/retrieve"
PATH_RETRIEVE_CONTENT = "/v1/files/retrieve_content"


# --- modes and models -------------------------------------------------------------------------


class Mode(str, enum.Enum):
    """How a render is driven; follows from which images a request carries."""

    T2V = "t2v"  # text to video
    I2V = "i2v"  # image to video (first frame)
    FL2V = "fl2v"  # first and last frame
    S2V = "s2v"  # subject reference

    @property
    def label(self) -> str:
        return MODE_LABELS[self]


MODE_LABELS = {
    Mode.T2V: "text-to-video",
    Mode.I2V: "image-to-video",
    Mode.FL2V: "first-last-frame",
    Mode.S2V: "subject-reference",
}


@dataclass(frozen=True)
class ModeSpec:
    """What one model accepts in one mode: ``durations`` maps seconds to allowed resolutions."""

    durations: Mapping[int, tuple[str, ...]]
    default_resolution: str
    default_duration: int = 6


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modes: Mapping[Mode, ModeSpec]
    camera_commands: bool = False
    fast_pretreatment: bool = False


_HAILUO = {6: ("768P", "1080P"), 10: ("768P",)}
_HAILUO_02_I2V = {6: ("512P", "768P", "1080P"), 10: ("512P", "768P")}
_GEN1 = {6: ("720P",)}
#: S2V-01 takes no duration or resolution; renders are seen as 720P, 6 s.
_S2V = ModeSpec(durations={}, default_resolution="720P")

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            "MiniMax-Hailuo-2.3",
            {Mode.T2V: ModeSpec(_HAILUO, "768P"), Mode.I2V: ModeSpec(_HAILUO, "768P")},
            camera_commands=True,
            fast_pretreatment=True,
        ),
        ModelSpec(
            "MiniMax-Hailuo-2.3-Fast",
            {Mode.I2V: ModeSpec(_HAILUO, "768P")},
            camera_commands=True,
            fast_pretreatment=True,
        ),
        ModelSpec(
            "MiniMax-Hailuo-02",
            {
                Mode.T2V: ModeSpec(_HAILUO, "768P"),
                Mode.I2V: ModeSpec(_HAILUO_02_I2V, "768P"),
                Mode.FL2V: ModeSpec(_HAILUO, "768P"),
            },
            camera_commands=True,
            fast_pretreatment=True,
        ),
        ModelSpec("T2V-01", {Mode.T2V: ModeSpec(_GEN1, "720P")}),
        ModelSpec("T2V-01-Director", {Mode.T2V: ModeSpec(_GEN1, "720P")}, camera_commands=True),
        ModelSpec("I2V-01", {Mode.I2V: ModeSpec(_GEN1, "720P")}),
        ModelSpec("I2V-01-Director", {Mode.I2V: ModeSpec(_GEN1, "720P")}, camera_commands=True),
        ModelSpec("I2V-01-live", {Mode.I2V: ModeSpec(_GEN1, "720P")}),
        ModelSpec("S2V-01", {Mode.S2V: _S2V}),
    ]
}

#: Pixel size of each resolution. 512P is not documented; the width is an estimate.
RESOLUTION_SIZES: dict[str, tuple[int, int]] = {
    "512P": (912, 512),
    "720P": (1280, 720),
    "768P": (1366, 768),
    "1080P": (1920, 1080),
}
RESOLUTIONS = tuple(RESOLUTION_SIZES)


# --- request fields ---------------------------------------------------------------------------

PROMPT_MAX_CHARS = 2000

#: Every field of a create request, with its JSON type.
REQUEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "prompt": str,
    "prompt_optimizer": bool,
    "fast_pretreatment": bool,
    "duration": int,
    "resolution": str,
    "first_frame_image": str,
    "last_frame_image": str,
    "subject_reference": list,
    "callback_url": str,
    "aigc_watermark": bool,
}

IMAGE_FIELDS = ("first_frame_image", "last_frame_image")

#: Documented defaults of optional fields. ``duration`` and ``resolution`` defaults depend on
#: the mode (see :func:`normalized_request`).
FIELD_DEFAULTS: dict[str, Any] = {
    "prompt_optimizer": True,
    "fast_pretreatment": False,
    "aigc_watermark": False,
}

#: Fields that only some modes take.
MODE_ONLY_FIELDS: dict[str, frozenset[Mode]] = {
    "duration": frozenset({Mode.T2V, Mode.I2V, Mode.FL2V}),
    "resolution": frozenset({Mode.T2V, Mode.I2V, Mode.FL2V}),
    "fast_pretreatment": frozenset({Mode.T2V, Mode.I2V}),
    "first_frame_image": frozenset({Mode.I2V, Mode.FL2V}),
    "last_frame_image": frozenset({Mode.FL2V}),
    "subject_reference": frozenset({Mode.S2V}),
}


# --- images -----------------------------------------------------------------------------------

IMAGE_FORMATS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
IMAGE_MAX_BYTES = 20 * 1024 * 1024  # "under 20 MB"
IMAGE_MIN_SHORT_SIDE = 300  # short side must be *over* 300 px
IMAGE_MIN_ASPECT = 2 / 5
IMAGE_MAX_ASPECT = 5 / 2


# --- camera commands --------------------------------------------------------------------------

#: The fifteen Director camera commands, English and Chinese, each mapped to its English form.
CAMERA_COMMANDS: dict[str, str] = {}
for _en, _zh in [
    ("Truck left", "左移"),
    ("Truck right", "右移"),
    ("Pan left", "左摇"),
    ("Pan right", "右摇"),
    ("Push in", "推进"),
    ("Pull out", "拉远"),
    ("Pedestal up", "上升"),
    ("Pedestal down", "下降"),
    ("Tilt up", "上摇"),
    ("Tilt down", "下摇"),
    ("Zoom in", "变焦推近"),
    ("Zoom out", "变焦拉远"),
    ("Shake", "晃动"),
    ("Tracking shot", "跟随"),
    ("Static shot", "固定"),
]:
    CAMERA_COMMANDS[_en] = _en
    CAMERA_COMMANDS[_zh] = _en
#: More commands than this in one bracket is allowed but not recommended.
CAMERA_MAX_PER_BRACKET = 3

#: Built once: check_camera_commands runs for every job of a manifest (10,000 in the benchmark).
_CAMERA_KNOWN = list(CAMERA_COMMANDS)
_CAMERA_LOWER = {k.lower(): k for k in _CAMERA_KNOWN}
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_BRACKET_SPLIT = re.compile(r"\s*[,，]\s*")


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


def check_camera_commands(prompt: str) -> list[CameraWarning]:
    """Warn about bracketed words that are not camera commands, and over-full brackets."""
    warnings: list[CameraWarning] = []
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


# --- task statuses ----------------------------------------------------------------------------


class TaskState(str, enum.Enum):
    """What a query's ``status`` means to a client."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UNKNOWN = "unknown"  # not a documented value: treated as running, with a warning


#: Official: Preparing, Queueing, Processing, Success, Fail. Seen elsewhere: Pending, Failed.
#: Callbacks send lowercase values, so matching is case-insensitive.
TASK_STATUSES: dict[str, TaskState] = {
    "preparing": TaskState.RUNNING,
    "queueing": TaskState.RUNNING,
    "pending": TaskState.RUNNING,
    "processing": TaskState.RUNNING,
    "success": TaskState.SUCCESS,
    "fail": TaskState.FAILED,
    "failed": TaskState.FAILED,
}
#: The sequence the simulator plays, in the official spelling.
STATUS_PROGRESSION = ("Preparing", "Queueing", "Processing")
STATUS_SUCCESS = "Success"
STATUS_FAIL = "Fail"


def task_state(status: str | None) -> TaskState:
    return TASK_STATUSES.get((status or "").strip().lower(), TaskState.UNKNOWN)


# --- error codes ------------------------------------------------------------------------------


class ErrorKind(str, enum.Enum):
    """What an answer says happened, as data. The client maps each kind to one class of
    :mod:`vidbatch.errors`; what to do next (retry, pause, fail the job, stop) is the runner's
    policy, not a fact about the API."""

    OK = "ok"
    TRANSIENT = "transient"  # the server failed this time; the same call may succeed later
    RATE_LIMITED = "rate_limited"  # too many requests (RPM, tokens, connections); never the job's fault
    INVALID_REQUEST = "invalid_request"  # the request is wrong as written
    CONTENT_FLAGGED = "content_flagged"  # input or output flagged as sensitive
    CREDENTIALS = "credentials"  # the key was refused (wrong key, or the other region's)
    ACCOUNT = "account"  # the account cannot create now (balance, verification, usage limit)
    WRONG_HOST = "wrong_host"  # whatever answered is not MiniMax's API
    URL_EXPIRED = "url_expired"  # a signed download URL is no longer valid: fetch fresh metadata
    DOWNLOAD_REFUSED = "download_refused"  # a download host refused the file for another reason


@dataclass(frozen=True)
class ErrorCode:
    code: int
    meaning: str
    kind: ErrorKind
    hint: str = ""


ERROR_CODES: dict[int, ErrorCode] = {
    e.code: e
    for e in [
        ErrorCode(0, "success", ErrorKind.OK),
        ErrorCode(1000, "unknown error", ErrorKind.TRANSIENT),
        ErrorCode(1001, "request timeout", ErrorKind.TRANSIENT),
        ErrorCode(1002, "rate limit exceeded", ErrorKind.RATE_LIMITED, "lower --rpm"),
        ErrorCode(
            1004,
            "not authorized: the key does not match",
            ErrorKind.CREDENTIALS,
            "check MINIMAX_API_KEY",
        ),
        ErrorCode(1008, "insufficient balance", ErrorKind.ACCOUNT, "top up the account, then run again"),
        ErrorCode(1013, "internal error", ErrorKind.TRANSIENT),
        ErrorCode(1024, "internal error", ErrorKind.TRANSIENT),
        ErrorCode(1026, "input flagged as sensitive", ErrorKind.CONTENT_FLAGGED, "change the prompt or image"),
        ErrorCode(1027, "generated video flagged as sensitive", ErrorKind.CONTENT_FLAGGED, "change the prompt"),
        ErrorCode(1033, "system error", ErrorKind.TRANSIENT),
        ErrorCode(1039, "token limit", ErrorKind.RATE_LIMITED),
        ErrorCode(1041, "connection limit", ErrorKind.RATE_LIMITED, "lower --concurrency"),
        ErrorCode(2013, "invalid parameters", ErrorKind.INVALID_REQUEST, "fix the manifest"),
        ErrorCode(
            2038,
            "real-name verification required",
            ErrorKind.ACCOUNT,
            "complete verification on the MiniMax console",
        ),
        ErrorCode(
            2049,
            "invalid api key",
            ErrorKind.CREDENTIALS,
            f"a key only works on its region's host: global keys on {HOST_GLOBAL}, "
            f"mainland keys on {HOST_MAINLAND}; set MINIMAX_API_HOST or --api-host",
        ),
        ErrorCode(2056, "usage limit exceeded", ErrorKind.ACCOUNT, "wait for the limit to reset or raise it"),
    ]
}

#: What an HTTP status from the API host means when the body carries no ``base_resp`` code.
#: A redirect, 404, 405 or 501 means the host (or a proxy in front of it) is not the API: every
#: call would fail the same way. Statuses not listed: other 3xx like 301, other 4xx like 400,
#: other 5xx like 500 (see :func:`http_kind`).
API_HTTP: dict[int, ErrorKind] = {
    200: ErrorKind.OK,
    401: ErrorKind.CREDENTIALS,
    403: ErrorKind.CREDENTIALS,
    404: ErrorKind.WRONG_HOST,
    405: ErrorKind.WRONG_HOST,
    408: ErrorKind.TRANSIENT,
    429: ErrorKind.RATE_LIMITED,
    501: ErrorKind.WRONG_HOST,
}

#: What an HTTP status from a signed download URL (object storage) means: 403/404/410 are the
#: storage's way of saying the signature expired.
DOWNLOAD_HTTP: dict[int, ErrorKind] = {
    200: ErrorKind.OK,
    403: ErrorKind.URL_EXPIRED,
    404: ErrorKind.URL_EXPIRED,
    408: ErrorKind.TRANSIENT,
    410: ErrorKind.URL_EXPIRED,
    429: ErrorKind.RATE_LIMITED,
}

#: Gateway answers worth a quick second try of a call that is safe to repeat (never a create:
#: the contract lists them as retryable, but a gateway may have forwarded the create).
BRIEF_RETRY_HTTP = frozenset({502, 503, 504})


def error_kind(code: int) -> ErrorKind:
    """The kind of a ``base_resp.status_code``. Unknown non-zero codes are transient: retrying
    is safe for a query, and a create that answered with an error code was not accepted."""
    fact = ERROR_CODES.get(code)
    return fact.kind if fact else ErrorKind.TRANSIENT


def http_kind(status: int, *, signed_url: bool = False) -> ErrorKind:
    """The kind of an HTTP status without a ``base_resp`` code, from :data:`API_HTTP` (or
    :data:`DOWNLOAD_HTTP` for a signed URL); unlisted statuses by their class: any 5xx is the
    server's failure; a 3xx is the wrong host; another 4xx is the request's fault (or, from a
    download host, a refusal)."""
    table = DOWNLOAD_HTTP if signed_url else API_HTTP
    if status in table:
        return table[status]
    if status >= 500:
        return ErrorKind.TRANSIENT
    if signed_url:
        return ErrorKind.DOWNLOAD_REFUSED
    if 300 <= status < 400:
        return ErrorKind.WRONG_HOST
    return ErrorKind.INVALID_REQUEST


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


def models_for(mode: Mode) -> list[str]:
    return [name for name, spec in MODELS.items() if mode in spec.modes]


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
        from . import images

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


def _check_subject_reference(value: list) -> list[Problem]:
    field_name = "subject_reference"
    if len(value) != 1:
        return [Problem(field_name, f"takes exactly one subject, not {len(value)}")]
    subject = value[0]
    if not isinstance(subject, dict):
        return [Problem(field_name, 'each subject must be an object {"type": "character", "image": [...]}')]
    problems = []
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
