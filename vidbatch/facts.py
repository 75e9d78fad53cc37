"""The one table of facts about MiniMax's video generation API: data, and lookups of that data.

Everything vidbatch knows about the service lives here: hosts, models and the modes, durations
and resolutions each serves, request fields and their defaults, image limits, camera commands,
task statuses, and what each ``base_resp.status_code`` means for a client. The manifest
validator, the HTTP client and the simulator all read this module, so a fact is written once.

The source is ``shared/minimax-api.md``. Where public sources disagree, the table accepts both
forms (``Fail``/``Failed``, WebP images, string or integer ``file_id``).

This module holds no rules: the checks that read the table (a request's problems, its mode, its
normalised form, camera-command warnings) live above it in :mod:`vidbatch.rules`. It imports
nothing from vidbatch, so every other module may read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
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
#: The account's balance (from MiniMax's own CLI, for ``sk-api-`` keys; not on the video reference
#: pages): optional, an account or host that does not answer it must break nothing.
PATH_BALANCE = "/account/query_balance"


# --- modes and models -------------------------------------------------------------------------


class Mode(str, enum.Enum):
    """How a render is driven; follows from which images a request carries."""

    T2V = "t2v"  # text to video
    I2V = "i2v"  # image to video (first frame)
    FL2V = "fl2v"  # first and last frame
    S2V = "s2v"  # subject reference
    LF2V = "lf2v"  # last frame alone (Video Generation V2)
    R2V = "r2v"  # reference images, videos and audios (Video Generation V2)

    @property
    def label(self) -> str:
        return MODE_LABELS[self]


MODE_LABELS = {
    Mode.T2V: "text-to-video",
    Mode.I2V: "image-to-video",
    Mode.FL2V: "first-last-frame",
    Mode.S2V: "subject-reference",
    Mode.LF2V: "last-frame",
    Mode.R2V: "references",
}


@dataclass(frozen=True)
class ModeSpec:
    """What one model accepts in one mode: ``durations`` maps seconds to allowed resolutions."""

    durations: Mapping[int, tuple[str, ...]]
    default_resolution: str
    default_duration: int = 6


class Api(str, enum.Enum):
    """Which generation of MiniMax's video API serves a model: ``/v1/video_generation`` (Hailuo
    and the 01 models) or ``/v2/video_generation`` (MiniMax-H3). See "Video Generation V2" below."""

    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    modes: Mapping[Mode, ModeSpec]
    camera_commands: bool = False
    fast_pretreatment: bool = False
    api: Api = Api.V1


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
    # Video Generation V2: the size at 16:9; other ratios keep the short side (see
    # V2_RESOLUTION_SHORT_SIDE). 2K as 2560x1440 is an assumption: no source gives the pixels.
    "2K": (2560, 1440),
}
RESOLUTIONS = tuple(RESOLUTION_SIZES)


def models_for(mode: Mode) -> list[str]:
    """The models that serve ``mode``, in table order."""
    return [name for name, spec in MODELS.items() if mode in spec.modes]


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
#: the mode (see :func:`vidbatch.rules.normalized_request`).
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
    GONE = "gone"  # the task or file asked about is unknown to the API (expired, another account)
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

#: Codes that mean something else on a call that names an existing task or file: ``2013`` to a
#: ``query`` (task_id) or a ``retrieve`` (file_id) says the API does not know that id any more
#: (expired, or made with another account), not that the manifest is wrong. A ``v2_create``
#: (``POST /v2/video_generation``) refused with 2013 may be the key's plan, not the request.
CALL_ERROR_CODES: dict[tuple[str, int], ErrorCode] = {
    ("query", 2013): ErrorCode(2013, "task not found", ErrorKind.GONE, "MiniMax no longer has this task (expired or another account); render it again with --force NAME"),
    ("retrieve", 2013): ErrorCode(2013, "file not found", ErrorKind.GONE, "MiniMax no longer has this file (expired or another account); render it again with --force NAME"),
    # MiniMax-H3 refuses keys of token or credit plans with 2013 (see "Video Generation V2").
    ("v2_create", 2013): ErrorCode(2013, "invalid parameters", ErrorKind.INVALID_REQUEST, "fix the manifest; if `vidbatch validate` finds nothing wrong, the key may be one of a token or credit plan, which MiniMax-H3 refuses with 2013: use a pay-as-you-go key"),
}


def error_fact(code: int, call: str | None = None) -> ErrorCode | None:
    """The fact for ``code`` as an answer to ``call``: a call's own meaning first, else the code's."""
    return CALL_ERROR_CODES.get((call or "", code)) or ERROR_CODES.get(code)


#: What an HTTP status from the API host means when the body carries no ``base_resp`` code.
#: Any 2xx is an answer, not an error (the contract's errors are an HTTP error status or a
#: non-zero ``base_resp``): a create answered 201 or 202 may have made its task. A redirect, 404, 405 or 501 means the host (or a proxy in front of it) is not the API: every
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


def error_kind(code: int, call: str | None = None) -> ErrorKind:
    """The kind of a ``base_resp.status_code`` (as an answer to ``call``, when given). Unknown
    non-zero codes are transient: retrying is safe for a query, and a create that answered with
    an error code was not accepted."""
    fact = error_fact(code, call)
    return fact.kind if fact else ErrorKind.TRANSIENT


def http_kind(status: int, *, signed_url: bool = False) -> ErrorKind:
    """The kind of an HTTP status without a ``base_resp`` code, from :data:`API_HTTP` (or
    :data:`DOWNLOAD_HTTP` for a signed URL); unlisted statuses by their class: any 5xx is the
    server's failure; a 3xx is the wrong host; another 4xx is the request's fault (or, from a
    download host, a refusal)."""
    table = DOWNLOAD_HTTP if signed_url else API_HTTP
    if status in table:
        return table[status]
    if not signed_url and 200 <= status < 300:
        return ErrorKind.OK
    if status >= 500:
        return ErrorKind.TRANSIENT
    if signed_url:
        return ErrorKind.DOWNLOAD_REFUSED
    if 300 <= status < 400:
        return ErrorKind.WRONG_HOST
    return ErrorKind.INVALID_REQUEST


# --- Video Generation V2 (MiniMax-H3) -----------------------------------------------------------
# Source: "Video Generation V2" in shared/minimax-api.md (MiniMax's own CLI and the platform's
# video-generation-v2 pages). Several facts are uncertain there; each is data here, so a change is
# one edit. The request rules that read these facts live in :mod:`vidbatch.rules`.

V2_PATH_CREATE = "/v2/video_generation"
#: ``GET V2_PATH_QUERY/{task_id}`` queries one task; ``GET V2_PATH_QUERY?page_num=..`` lists tasks.
V2_PATH_QUERY = "/v2/query/video_generation"
#: ``DELETE V2_PATH_TASK/{task_id}``: cancels a queued task (not charged), deletes a finished one,
#: refuses a running one.
V2_PATH_TASK = "/v2/video_generation"
#: Upload a file once and refer to it as ``mm_file://FILE_ID`` (file ids live 7 days).
PATH_FILE_UPLOAD = "/v1/files/upload"
V2_FILE_URL_SCHEME = "mm_file://"
V2_FILE_TTL_SECONDS = 7 * 24 * 3600

V2_PROMPT_MAX_CHARS = 7000
#: Integer seconds. MiniMax's CLI accepts 4-15; one third-party schema says 5-15.
V2_DURATIONS = tuple(range(4, 16))
V2_DEFAULT_DURATION = 5
#: MiniMax's CLI accepts only ``2K``; a 2026 pricing note also prices ``768P``. Both are accepted.
V2_RESOLUTIONS = ("2K", "768P")
V2_DEFAULT_RESOLUTION = "2K"
V2_RATIOS = ("adaptive", "21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
#: Text-only requests need a concrete ratio; with frame or reference inputs the CLI sends this.
V2_RATIO_WITH_MEDIA = "adaptive"
#: The pixel size of a V2 render: the short side of each resolution, the ratio gives the long one
#: (``adaptive`` follows the input; counted as 16:9 until the video says). 768P is documented for
#: v1; 1440 for 2K is an assumption (see :data:`RESOLUTION_SIZES`).
V2_RESOLUTION_SHORT_SIDE = {"2K": 1440, "768P": 768}

#: Every top-level field of a V2 create body, with its JSON type.
V2_REQUEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "content": list,
    "resolution": str,
    "duration": int,
    "ratio": str,
    "callback_url": str,
}
#: The item types of ``content``: a text item carries ``text``; a media item carries an object
#: ``{"url": ...}`` under the key named like its type.
V2_TEXT_TYPE = "text"
V2_MEDIA_TYPES = ("image_url", "video_url", "audio_url")
#: An ``image_url`` item without a role is a first frame (MiniMax's CLI reads it so).
V2_DEFAULT_IMAGE_ROLE = "first_frame"
#: Schemes a media URL may have: public URLs, data URLs, uploaded files.
V2_URL_SCHEMES = ("https://", "http://", "data:", V2_FILE_URL_SCHEME)

#: vidbatch's flat form of a V2 request (what a manifest job writes; never the raw ``content``):
#: each media field and the role of the content items it becomes, in the order the items are
#: sent (text first, then frames, then references). Reference fields are lists.
V2_JOB_MEDIA_FIELDS: dict[str, str] = {
    "first_frame_image": "first_frame",
    "last_frame_image": "last_frame",
    "reference_images": "reference_image",
    "reference_videos": "reference_video",
    "reference_audios": "reference_audio",
}
V2_JOB_LIST_FIELDS = ("reference_images", "reference_videos", "reference_audios")
#: Every field of the flat form, with its JSON type (``prompt`` becomes the text item).
V2_JOB_FIELDS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "prompt": str,
    "first_frame_image": str,
    "last_frame_image": str,
    "reference_images": list,
    "reference_videos": list,
    "reference_audios": list,
    "duration": int,
    "resolution": str,
    "ratio": str,
    "callback_url": str,
}

#: Media a V2 request may carry, by kind: the formats (file extension -> the MIME type of its
#: data URL) and the most bytes of one item. From MiniMax's CLI (``src/utils/media.ts``): local
#: videos MP4, audios MP3 (sent as ``audio/mp3``) or WAV; images 30 MB, videos 50 MB, audios
#: 15 MB. vidbatch also takes MOV (``video/quicktime``), an assumption: the CLI does not send it.
#: Images are also held to the v1 image rules (:data:`IMAGE_FORMATS`, :data:`IMAGE_MAX_BYTES`,
#: dimensions), an assumption on the safe side: no source gives H3's image limits.
V2_MEDIA_KIND_OF_TYPE = {"image_url": "image", "video_url": "video", "audio_url": "audio"}
V2_MEDIA_FORMATS: dict[str, dict[str, str]] = {
    "image": {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"},
    "video": {"mp4": "video/mp4", "mov": "video/quicktime"},
    "audio": {"mp3": "audio/mp3", "wav": "audio/wav"},
}
V2_MEDIA_MAX_BYTES: dict[str, int] = {
    "image": 30 * 1024 * 1024,
    "video": 50 * 1024 * 1024,
    "audio": 15 * 1024 * 1024,
}

#: Each media role of a ``content`` item, and the item ``type`` that carries it.
V2_MEDIA_ROLES: dict[str, str] = {
    "first_frame": "image_url",
    "last_frame": "image_url",
    "reference_image": "image_url",
    "reference_video": "video_url",
    "reference_audio": "audio_url",
}
V2_FRAME_ROLES = frozenset({"first_frame", "last_frame"})
V2_REFERENCE_ROLES = frozenset({"reference_image", "reference_video", "reference_audio"})
#: The most items of each role in one request, and of reference items in all.
V2_MAX_ITEMS: dict[str, int] = {
    "first_frame": 1,
    "last_frame": 1,
    "reference_image": 9,
    "reference_video": 3,
    "reference_audio": 3,
}
V2_MAX_REFERENCE_ITEMS = 12

#: MiniMax-H3, the one V2 model: every mode takes every V2 duration at every V2 resolution.
#: Registered here, not in the list above, because its durations and resolutions are the V2
#: facts of this section.
_H3 = ModeSpec(
    durations={seconds: V2_RESOLUTIONS for seconds in V2_DURATIONS},
    default_resolution=V2_DEFAULT_RESOLUTION,
    default_duration=V2_DEFAULT_DURATION,
)
MODELS["MiniMax-H3"] = ModelSpec(
    "MiniMax-H3",
    {Mode.T2V: _H3, Mode.I2V: _H3, Mode.FL2V: _H3, Mode.LF2V: _H3, Mode.R2V: _H3},
    api=Api.V2,
)
#: A whole create request body, data URLs included.
V2_BODY_MAX_BYTES = 64 * 1024 * 1024

#: H3's limits (a 2026 note, not an official page).
V2_RPM = 300
V2_MAX_IN_FLIGHT = 30

#: The task list only returns tasks of the last 7 days.
V2_LIST_DAYS = 7
#: A task's ``created_at`` is whole seconds (MiniMax's CLI reads an integer; the simulator sends
#: one). vidbatch spaces its own V2 creates by more than this, so its tasks never share a second.
V2_CREATED_AT_RESOLUTION = 1.0
V2_LIST_PAGE_SIZE = 50

#: V2 task statuses. ``cancelled`` and ``expired`` are final and not a success; a queued task is
#: the only one a DELETE cancels (and a cancelled task is not charged).
V2_TASK_STATUSES: dict[str, TaskState] = {
    "queued": TaskState.RUNNING,
    "running": TaskState.RUNNING,
    "succeeded": TaskState.SUCCESS,
    "failed": TaskState.FAILED,
    "cancelled": TaskState.FAILED,
    "expired": TaskState.FAILED,
}
V2_STATUS_PROGRESSION = ("queued", "running")
V2_STATUS_SUCCESS = "succeeded"
V2_STATUS_FAIL = "failed"
V2_STATUS_CANCELLED = "cancelled"
V2_STATUS_EXPIRED = "expired"
V2_CANCELLABLE_STATUSES = frozenset({"queued"})
#: Fields of ``usage`` in a task: what was billed.
V2_USAGE_FIELDS = ("total_seconds", "input_seconds", "output_seconds", "input_image_count")


def v2_task_state(status: str | None) -> TaskState:
    return V2_TASK_STATUSES.get((status or "").strip().lower(), TaskState.UNKNOWN)
