"""The simulator's model of the MiniMax video API: tasks, a clock, rate limits and faults.

:class:`Simulator` holds all state and answers each call as a :class:`Reply`, a plain value the
HTTP layer (:mod:`vidbatch.sim.server`) writes to the socket. Keeping HTTP out of this module
keeps the rules in one readable place and lets the HTTP layer stay dumb.

Design points:

- **Sim clock.** ``now()`` is the wall clock (``time.time()``) plus an offset that ``advance()``
  moves, so tests walk a task through Preparing, Queueing and Processing, or expire a download
  URL, without sleeping. Wall-clock based, so a task's progress goes on across processes.
- **Task progression.** A task's outcome (Success or Fail) and its latency are fixed when it is
  created; its status is derived from the sim-clock time since creation: Preparing for the first
  10 % of the latency, Queueing until 30 %, Processing until 100 %, then the outcome. With
  latency 0 the first query already sees the outcome.
- **Persistence.** Tasks, the clock offset and the URL-signing secret live in a
  :class:`~vidbatch.sim.store.TaskStore`: in memory, or with ``SimConfig(data_dir=...)`` in a
  folder that a later simulator process opens again, as a client finds MiniMax again after a
  crash. A task's video is made from the task on first need and kept (in memory, and in the
  data folder's ``videos/``), so it is served again byte for byte.
- **Facts.** Request rules, statuses, error codes and output sizes come from
  :mod:`vidbatch.facts`, so the simulator refuses what the real API refuses with the same code.
- **Trigger words.** A prompt containing ``sim-flag-input`` is refused with 1026, ``sim-fail``
  renders to Fail with an ``error_message``, ``sim-flag-output`` renders to Fail with base_resp
  1027. Manifests can thus exercise every outcome without injecting faults.
- **Faults.** ``inject()`` queues faults for the next calls of one kind; ``error_rate`` adds random
  transient ones. A fault is taken when a call arrives, before auth: like a gateway failing
  before the service sees the request. A refused or faulted create creates nothing, except
  ``drop_after_create``, which creates the task and loses the answer. ``slow`` applies the call
  at once and delays only the answer, as a slow network would.
- **Accounts.** A task belongs to the key that created it; any other key gets "not found". The
  key itself is never stored, only an HMAC of it.
- **Video Generation V2.** ``/v2/video_generation`` (MiniMax-H3) tasks go ``queued`` (the first
  half of the latency), ``running``, then ``succeeded`` or ``failed``; a DELETE cancels a queued
  task (never billed), refuses a running one and deletes a finished one. ``content.url`` is a
  signed URL that expires like v1's. The list call returns the account's tasks of the last 7
  days, newest first, filtered and paged. Refusals come in either of the contract's two forms
  (``SimConfig.v2_errors``): an HTTP error status with a JSON ``error`` body, or HTTP 200 with a
  non-zero ``base_resp``. ``usage`` is what was billed (only a succeeded task is); with
  ``SimConfig.v2_price`` each succeeded task is charged against ``SimConfig.balance``.
- **A second client.** :meth:`Simulator.second_client_create` (and the ``second_client`` fault,
  ``second_client_rate``) create v2 tasks on the same account as another client would, so that
  a client's recovery from a lost create answer meets tasks it did not make.
- **Thread safety.** One lock guards counters, the fault queues, the video cache and the random
  source; the store guards itself. Validation (which decodes images) and streaming happen
  outside the lock.
"""

from __future__ import annotations

import collections
from decimal import Decimal
import hashlib
import hmac
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import facts, rules
from .store import SimTask, TaskStore, Upload, V2Task, open_store
from .video import VideoFile, make_video

#: Every call the simulator counts, by the name ``inject()`` and ``stats()`` use.
CALLS = (
    "create",
    "query",
    "retrieve",
    "retrieve_content",
    "download",
    "backup_download",
    "query_balance",
    "upload",
    "v2_create",
    "v2_query",
    "v2_list",
    "v2_cancel",
    "v2_download",
)
#: Calls answered with the video's bytes.
FILE_CALLS = frozenset({"retrieve_content", "download", "backup_download", "v2_download"})
#: Calls that reach a signed download URL (no Authorization header, no base_resp).
URL_CALLS = frozenset({"download", "backup_download", "v2_download"})
#: Video Generation V2's API calls: refused in the form ``SimConfig.v2_errors`` says.
V2_CALLS = frozenset({"v2_create", "v2_query", "v2_list", "v2_cancel"})
#: Calls that create a task.
CREATE_CALLS = frozenset({"create", "v2_create"})

#: Fault name -> the calls it applies to. ``code:NNNN`` (any call) is parsed separately.
FAULTS: dict[str, frozenset[str]] = {
    "http500": frozenset(CALLS),
    "http503": frozenset(CALLS),
    "http429": frozenset(CALLS),
    "drop": frozenset(CALLS),
    "drop_after_create": CREATE_CALLS,
    "second_client": frozenset({"v2_create"}),
    "slow": frozenset(CALLS),
    "truncate": FILE_CALLS,
    "expire": URL_CALLS,
}
#: What ``error_rate`` draws from: transient faults a client must retry through.
_RANDOM_FAULTS = ("http500", "http503", "code:1000", "code:1013", "code:1033")
_RANDOM_URL_FAULTS = ("http500", "http503")

#: Trigger words in a prompt.
FLAG_INPUT = "sim-flag-input"
FLAG_OUTPUT = "sim-flag-output"
FAIL_WORD = "sim-fail"

FILENAME = "output_aigc.mp4"
RPM_WINDOW = 60.0
#: Videos kept in memory, most recently served first; any other is made again when asked for.
VIDEO_CACHE_SIZE = 256


@dataclass
class SimConfig:
    """How the simulated service behaves. Times are sim-clock seconds."""

    key: str | None = None  # the Bearer key required; None = accept any non-empty key
    latency: float = 0.0  # from create to the final status
    rpm: int | None = None  # creates allowed per rolling 60 s; None = unlimited
    fail_rate: float = 0.0  # fraction of tasks that end in status "Fail"
    error_rate: float = 0.0  # fraction of calls answered with a random transient fault
    url_ttl: float = float(facts.DOWNLOAD_URL_TTL_SECONDS)  # download_url lifetime
    video_bytes: int | None = None  # pad each video (with a 'free' box) to at least this size
    seed: int | None = None  # for the random rates
    #: Where tasks are kept across processes (see :mod:`.store`); None = in memory, gone at exit.
    data_dir: Path | None = None
    #: Unix time, the base of the sim clock; injectable so a test can let time pass between
    #: two simulator processes without sleeping.
    wall_clock: Callable[[], float] = time.time
    #: What ``GET /account/query_balance`` answers as ``available_amount`` (a decimal string, in
    #: the region's currency); None: the route answers 404, as a host or key without it would.
    balance: str | None = "100.00"
    #: The region the simulator plays: whose prices apply to its renders (``global``: USD,
    #: ``mainland``: CNY). A loopback host cannot say; the CLI reads it here.
    region: str = "global"
    #: How v2 calls refuse: ``"http"`` (an HTTP error status with a JSON ``error`` body) or
    #: ``"base_resp"`` (HTTP 200 with a non-zero ``base_resp``); the contract allows both.
    v2_errors: str = "http"
    #: Fraction of creates (v1 and v2) whose task is made and whose answer is lost (the
    #: connection is cut), as the ``drop_after_create`` fault does.
    lost_create_rate: float = 0.0
    #: Fraction of v2 creates just before which a second client makes a task on the same account.
    second_client_rate: float = 0.0
    #: What a succeeded v2 task costs, as a decimal string in the region's currency, given the
    #: render (``model``, ``mode`` (a facts.Mode value), ``resolution``, ``duration``, ``ratio``,
    #: ``task_type``, ``reference_images``, ``usage``); None: not charged. The simulator knows no
    #: prices itself: whoever starts it passes them in (``vidbatch sim`` and
    #: ``vidbatch.simulator()`` pass the price table's, see ``vidbatch.api.sim_v2_price``).
    v2_price: Callable[[Mapping[str, Any]], str | None] | None = None


@dataclass
class Reply:
    """One answer, for the HTTP layer to write. ``json`` or ``video`` or ``text`` is the body."""

    status: int = 200
    json: dict[str, Any] | None = None
    video: VideoFile | None = None
    text: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (after applying the call)
    truncate_at: int | None = None  # send the full Content-Length but only this many body bytes
    delay: float = 0.0  # real seconds to wait before answering
    fault: str | None = None  # the fault that shaped this reply, for the log

    @property
    def base_code(self) -> int | None:
        base = (self.json or {}).get("base_resp")
        return base.get("status_code") if isinstance(base, dict) else None


@dataclass
class _Fault:
    name: str
    params: dict[str, Any]
    remaining: int
    after: int = 0  # calls to let through before the fault applies


def _base_resp(code: int = 0, message: str | None = None) -> dict[str, Any]:
    if message is None:
        fact = facts.ERROR_CODES.get(code)
        message = fact.meaning if fact else "unknown error"
    return {"status_code": code, "status_msg": message}


def error_reply(code: int, message: str | None = None) -> Reply:
    """MiniMax's way of refusing: HTTP 200 with a non-zero base_resp."""
    return Reply(json={"base_resp": _base_resp(code, message)})


def _xml_error(status: int, code: str, message: str) -> Reply:
    """How an object store answers a bad signed URL."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    )
    return Reply(status=status, text=body, content_type="application/xml")


def parse_fault(call: str, fault: str) -> str:
    """Validate a fault for a call; the canonical fault name. Raises ValueError with the choices."""
    if call not in CALLS:
        raise ValueError(f"unknown call {call!r}; calls: {', '.join(CALLS)}")
    if fault.startswith("code:"):
        try:
            code = int(fault[5:])
        except ValueError:
            raise ValueError(f"fault {fault!r}: write code:NNNN with a number, e.g. code:1002") from None
        if code == 0:
            raise ValueError("fault code:0 is success, not a fault")
        return f"code:{code}"
    calls = FAULTS.get(fault)
    if calls is None:
        raise ValueError(f"unknown fault {fault!r}; faults: {', '.join(FAULTS)}, code:NNNN")
    if call not in calls:
        raise ValueError(f"fault {fault!r} applies to {', '.join(sorted(calls))}, not {call}")
    return fault


class Simulator:
    """The in-process state of a simulated MiniMax account; thread-safe."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.calls: collections.Counter[str] = collections.Counter()
        #: Every task of the store (a read-only mapping task id -> SimTask), from every process
        #: that used the same ``data_dir``.
        self.tasks: TaskStore = open_store(self.config.data_dir)
        self._lock = threading.Lock()
        self._random = random.Random(self.config.seed)
        self._faults: dict[str, collections.deque[_Fault]] = {c: collections.deque() for c in CALLS}
        self._recent_creates: collections.deque[float] = collections.deque()
        self._recent_v2_creates: collections.deque[float] = collections.deque()
        self._v2_creates = 0
        self._creates = 0
        self._refused_creates = 0
        self._videos: collections.OrderedDict[int, VideoFile] = collections.OrderedDict()

    @property
    def client_key(self) -> str:
        """The key a client should send: the configured one, else one the store made up (kept
        with the tasks, so a later process on the same ``data_dir`` finds them under it)."""
        return self.config.key if self.config.key is not None else self.tasks.client_key

    def close(self) -> None:
        """Release the store's files (it reopens them if used again)."""
        self.tasks.close()

    # --- clock, control, inspection ------------------------------------------------------------

    def now(self) -> float:
        """The sim clock: Unix time plus everything ``advance()`` added (kept in the store)."""
        return self.config.wall_clock() + self.tasks.clock_offset()

    def advance(self, seconds: float) -> None:
        """Move the sim clock forward: tasks progress, URLs expire, the RPM window slides."""
        if seconds < 0:
            raise ValueError("the sim clock only moves forward")
        self.tasks.advance(seconds)

    def inject(self, call: str, fault: str, times: int = 1, **params: Any) -> None:
        """Answer the next ``times`` calls of ``call`` with ``fault`` (see the module docstring
        and ``FAULTS``). ``slow`` takes ``seconds=``; ``truncate`` takes an optional ``bytes=``
        (how many body bytes to send; default half). Any fault takes ``after=N``: the next N calls
        go through untouched before the fault applies. On ``v2_create``, ``second_client=N`` makes
        N tasks of a second client on the same account just before the create (the
        ``second_client`` fault alone makes one and lets the create through)."""
        name = parse_fault(call, fault)
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        if name == "slow":
            if "seconds" not in params:
                raise ValueError("fault 'slow' needs seconds=, e.g. inject('query', 'slow', seconds=0.5)")
            params["seconds"] = float(params["seconds"])
        after = int(params.pop("after", 0))
        if after < 0:
            raise ValueError(f"after must be 0 or more, not {after}")
        with self._lock:
            self._faults[call].append(_Fault(name, dict(params), times, after))

    def stats(self) -> dict[str, Any]:
        """Counters of this simulator; ``tasks`` counts every task of the store (earlier processes
        on the same ``data_dir`` included), ``creates`` only the ones this simulator created."""
        tasks, v2_tasks = len(self.tasks), len(self.tasks.v2_tasks())
        with self._lock:
            return {
                "calls": {c: self.calls[c] for c in CALLS},
                "tasks": tasks,
                "creates": self._creates,
                "refused_creates": self._refused_creates,
                "v2_tasks": v2_tasks,
                "v2_creates": self._v2_creates,
                "faults_pending": {c: sum(f.remaining for f in q) for c, q in self._faults.items() if q},
                "clock": self.now(),
            }

    def creates_for(self, prompt_substring: str) -> int:
        """How many tasks (v1 and v2) were created whose prompt contains ``prompt_substring``."""
        v1 = sum(prompt_substring in t.prompt for t in self.tasks.all_tasks())
        return v1 + sum(prompt_substring in t.prompt for t in self.tasks.v2_tasks())

    # --- dispatch -------------------------------------------------------------------------------

    def handle(
        self,
        call: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        authorization: str | None = None,
        base_url: str = "",
    ) -> Reply:
        """Answer one call. ``params`` are the query parameters (for URL calls also ``file_id``
        from the path); ``base_url`` is where download URLs point."""
        params = params or {}
        with self._lock:
            self.calls[call] += 1
            fault = self._take_fault(call)
        reply = self._fault_reply(call, fault) if fault else None
        if reply is None:
            if fault and call == "v2_create":
                # a second client's tasks land in the same window, just before this create's
                others = int(fault.params.get("second_client", 1 if fault.name == "second_client" else 0))
                for _ in range(others):
                    self.second_client_create()
            if call == "create":
                reply = self._create(body, authorization)
            elif call == "query":
                reply = self._query(params, authorization)
            elif call == "retrieve":
                reply = self._retrieve(params, authorization, base_url)
            elif call == "retrieve_content":
                reply = self._retrieve_content(params, authorization)
            elif call == "query_balance":
                reply = self._query_balance(authorization)
            elif call == "upload":
                reply = self._upload(body, authorization)
            elif call in V2_CALLS:
                reply = self._v2_call(call, params, body, authorization, base_url)
            elif call == "v2_download":
                reply = self._v2_download(params)
            elif call in URL_CALLS:
                reply = self._download(call, params)
            else:
                raise ValueError(f"unknown call {call!r}")
            if fault:
                reply.fault = fault.name
                if fault.name == "slow":
                    reply.delay = fault.params["seconds"]
                elif fault.name == "drop_after_create":
                    reply.drop = True
                elif fault.name == "truncate" and reply.video is not None:
                    size = reply.video.size
                    reply.truncate_at = max(0, min(size - 1, int(fault.params.get("bytes", size // 2))))
        return reply

    def _take_fault(self, call: str) -> _Fault | None:
        queue = self._faults[call]
        if queue:
            fault = queue[0]
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return _Fault(fault.name, fault.params, 1)
        if self.config.error_rate > 0 and self._random.random() < self.config.error_rate:
            choices = _RANDOM_URL_FAULTS if call in URL_CALLS else _RANDOM_FAULTS
            return _Fault(self._random.choice(choices), {}, 1)
        if call in CREATE_CALLS and self.config.lost_create_rate > 0:
            if self._random.random() < self.config.lost_create_rate:
                return _Fault("drop_after_create", {}, 1)
        return None

    def _fault_reply(self, call: str, fault: _Fault) -> Reply | None:
        """The answer a fault puts in place of the call's; None when the call goes ahead."""
        name = fault.name
        if name in ("http500", "http503"):
            status = int(name[4:])
            phrase = {500: "Internal Server Error", 503: "Service Temporarily Unavailable"}[status]
            page = f"<html><head><title>{status} {phrase}</title></head><body><h1>{phrase}</h1></body></html>\n"
            reply = Reply(status=status, text=page, content_type="text/html")
        elif name == "http429":
            body = _v2_error_body(1002, None) if call in V2_CALLS else {"base_resp": _base_resp(1002)}
            reply = Reply(status=429, json=body, headers={"Retry-After": "1"})
        elif name.startswith("code:"):
            reply = self._v2_error(int(name[5:])) if call in V2_CALLS else error_reply(int(name[5:]))
        elif name == "drop":
            reply = Reply(drop=True)
        elif name == "expire":
            reply = _xml_error(403, "AccessDenied", "Request has expired.")
        else:
            return None
        if call in CREATE_CALLS:
            with self._lock:
                self._refused_creates += 1
        reply.fault = name
        return reply

    # --- the calls ------------------------------------------------------------------------------

    def _auth(self, authorization: str | None) -> tuple[str, Reply | None]:
        scheme, _, key = (authorization or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "", error_reply(
                1004, "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
            )
        if self.config.key is not None and not hmac.compare_digest(key.encode(), self.config.key.encode()):
            return "", error_reply(2049, "invalid api key")
        return key, None

    def _refuse_create(self, code: int, message: str | None = None) -> Reply:
        with self._lock:
            self._refused_creates += 1
        return error_reply(code, message)

    def _create(self, body: Any, authorization: str | None) -> Reply:
        key, refusal = self._auth(authorization)
        if refusal:
            with self._lock:
                self._refused_creates += 1
            return refusal
        with self._lock:
            if self.config.rpm is not None:
                now = self.now()
                while self._recent_creates and self._recent_creates[0] <= now - RPM_WINDOW:
                    self._recent_creates.popleft()
                if len(self._recent_creates) >= self.config.rpm:
                    self._refused_creates += 1
                    return error_reply(1002, "rate limit exceeded(RPM)")
                self._recent_creates.append(now)
        if not isinstance(body, dict):
            return self._refuse_create(2013, "invalid params, the request body must be a JSON object")
        problems = rules.check_request(body, check_images=True)
        if problems:
            return self._refuse_create(2013, f"invalid params, {problems[0]}")
        prompt = str(body.get("prompt") or "")
        if FLAG_INPUT in prompt:
            return self._refuse_create(1026, "input new_sensitive: the prompt or image was flagged")
        width, height = rules.output_size(body)
        final_status, final_code, error_message = facts.STATUS_SUCCESS, 0, None
        if FLAG_OUTPUT in prompt:
            final_status, final_code = facts.STATUS_FAIL, 1027
        elif FAIL_WORD in prompt:
            final_status = facts.STATUS_FAIL
            error_message = f"simulated render failure (the prompt contains {FAIL_WORD!r})"
        elif self.config.fail_rate > 0:
            with self._lock:
                failed = self._random.random() < self.config.fail_rate
            if failed:
                final_status = facts.STATUS_FAIL
                error_message = "video generation failed (simulated, fail_rate)"
        account, created_at = self.tasks.account_of(key), self.now()

        def build(task_id: str, file_id: int) -> SimTask:
            return SimTask(
                task_id=task_id,
                file_id=file_id,
                request=dict(body),
                account=account,
                created_at=created_at,
                latency=self.config.latency,
                final_status=final_status,
                final_code=final_code,
                error_message=error_message,
                width=width,
                height=height,
            )

        task = self.tasks.add(build)
        with self._lock:
            self._creates += 1
        return Reply(json={"task_id": task.task_id, "base_resp": _base_resp(0, "success")})

    def _query_balance(self, authorization: str | None) -> Reply:
        """The account's balance, as MiniMax's ``/account/query_balance`` answers it (amounts as
        strings); 404 when configured without one."""
        _, refusal = self._auth(authorization)
        if refusal:
            return refusal
        amount = self.balance()
        if amount is None:
            return Reply(status=404, json={"error": "no route GET /account/query_balance"})
        return Reply(
            json={
                "available_amount": amount,
                "cash_balance": amount,
                "voucher_balance": "0.00",
                "credit_balance": "0.00",
                "owed_amount": "0.00",
                "balance_alert_switch": False,
                "balance_alert_threshold": "0.00",
                "base_resp": _base_resp(0),
            }
        )

    def _query(self, params: Mapping[str, str], authorization: str | None) -> Reply:
        key, refusal = self._auth(authorization)
        if refusal:
            return refusal
        task_id = str(params.get("task_id") or "")
        task = self.tasks.get(task_id)
        if task is None or task.account != self.tasks.account_of(key):
            return error_reply(2013, f"invalid params, task_id: task {task_id!r} not found")
        status = task.status_at(self.now())
        answer: dict[str, Any] = {"task_id": task.task_id, "status": status}
        base = _base_resp(0, "success")
        if status == facts.STATUS_SUCCESS:
            answer.update(file_id=str(task.file_id), video_width=task.width, video_height=task.height)
        elif status == facts.STATUS_FAIL:
            if task.error_message:
                answer["error_message"] = task.error_message
            if task.final_code:
                base = _base_resp(task.final_code)
        answer["base_resp"] = base
        return Reply(json=answer)

    def _finished_file(self, params: Mapping[str, str], key: str | None) -> tuple[SimTask, VideoFile] | None:
        """The successful task whose file ``params["file_id"]`` names (string or int) and its
        video, if the key may see it; ``key=None`` skips the owner check (signed URLs carry no key)."""
        raw = str(params.get("file_id") or "").strip()
        if not raw.isdigit():
            return None
        task = self.tasks.by_file(int(raw))
        if task is None or (key is not None and task.account != self.tasks.account_of(key)):
            return None
        if task.status_at(self.now()) != facts.STATUS_SUCCESS:
            return None
        return task, self._video(task)

    def _video(self, task: SimTask | V2Task) -> VideoFile:
        """The task's video, from the cache or made again (the same bytes every time)."""
        with self._lock:
            video = self._videos.get(task.file_id)
            if video is not None:
                self._videos.move_to_end(task.file_id)
                return video
        cache = None if self.config.data_dir is None else Path(self.config.data_dir) / "videos" / f"{task.file_id}.mp4"
        metadata = self._metadata(task) if isinstance(task, SimTask) else _v2_metadata(task)
        video = make_video(metadata, self.config.video_bytes, cache=cache)
        with self._lock:
            self._videos[task.file_id] = video
            while len(self._videos) > VIDEO_CACHE_SIZE:
                self._videos.popitem(last=False)
        return video

    @staticmethod
    def _metadata(task: SimTask) -> dict[str, Any]:
        norm = rules.normalized_request(task.request)
        spec = facts.MODELS[task.request["model"]].modes[rules.mode_of(task.request)]
        return {
            "task_id": task.task_id,
            "file_id": str(task.file_id),
            "model": task.request["model"],
            "prompt": task.prompt,
            "resolution": norm.get("resolution", spec.default_resolution),
            "duration": norm.get("duration", spec.default_duration),
        }

    def _file_not_found(self, params: Mapping[str, str]) -> Reply:
        return error_reply(2013, f"invalid params, file_id: file {params.get('file_id')!r} not found")

    def _retrieve(self, params: Mapping[str, str], authorization: str | None, base_url: str) -> Reply:
        key, refusal = self._auth(authorization)
        if refusal:
            return refusal
        found = self._finished_file(params, key)
        if found is None:
            return self._file_not_found(params)
        task, video = found
        expires = math.ceil(self.now() + self.config.url_ttl)
        urls = {
            name: f"{base_url}/_sim/{kind}/{task.file_id}/{FILENAME}?Expires={expires}"
            f"&Signature={self._signature(kind, task.file_id, expires)}"
            for name, kind in (("download_url", "download"), ("backup_download_url", "backup"))
        }
        file = {
            "file_id": task.file_id,
            "bytes": video.size,
            "created_at": task.created_unix,
            "filename": FILENAME,
            "purpose": "video_generation",
            **urls,
        }
        return Reply(json={"file": file, "base_resp": _base_resp(0, "success")})

    def _retrieve_content(self, params: Mapping[str, str], authorization: str | None) -> Reply:
        key, refusal = self._auth(authorization)
        if refusal:
            return refusal
        found = self._finished_file(params, key)
        if found is None:
            return self._file_not_found(params)
        return _video_reply(found[1])

    def _signature(self, kind: str, file_id: int, expires: int) -> str:
        return hmac.new(self.tasks.secret, f"{kind}/{file_id}/{expires}".encode(), hashlib.sha256).hexdigest()[:40]

    def _download(self, call: str, params: Mapping[str, str]) -> Reply:
        kind = "download" if call == "download" else "backup"
        try:
            file_id, expires = int(params.get("file_id", "")), int(params.get("Expires", ""))
        except ValueError:
            return _xml_error(403, "AccessDenied", "Missing or malformed signature parameters.")
        if not hmac.compare_digest(self._signature(kind, file_id, expires), str(params.get("Signature", ""))):
            return _xml_error(403, "SignatureDoesNotMatch", "The request signature does not match.")
        if self.now() > expires:
            return _xml_error(403, "AccessDenied", "Request has expired.")
        found = self._finished_file({"file_id": str(file_id)}, None)
        if found is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        return _video_reply(found[1])

    # --- Video Generation V2 ----------------------------------------------------------------------

    def second_client_create(self, body: Mapping[str, Any] | None = None, key: str | None = None) -> str:
        """Create a v2 task as a second client on the same account would (the account of ``key``,
        by default the key this simulator hands its clients); its task id. No fault, no rate
        limit, no check: the task is simply there, as one made by another program would be."""
        if body is None:
            body = {
                "model": _V2_MODEL,
                "content": [{"type": "text", "text": "a task made by a second client"}],
                "ratio": "16:9",
            }
        account = self.tasks.account_of(key if key is not None else self.client_key)
        return self._v2_new_task(body, account).task_id

    def _v2_error(self, code: int, message: str | None = None, *, status: int | None = None) -> Reply:
        """A v2 refusal in the form ``SimConfig.v2_errors`` says; ``status`` overrides the HTTP
        status the code would get (404 for a task that is not there, 409 for a running one)."""
        if self.config.v2_errors == "base_resp":
            return error_reply(code, message)
        http = status if status is not None else _V2_HTTP_STATUS.get(code, 400)
        return Reply(status=http, json=_v2_error_body(code, message))

    def _v2_ok(self, answer: dict[str, Any]) -> Reply:
        """A v2 success: in the base_resp form with ``base_resp`` 0, in the HTTP form without."""
        if self.config.v2_errors == "base_resp":
            answer["base_resp"] = _base_resp(0, "success")
        return Reply(json=answer)

    def _v2_call(
        self, call: str, params: Mapping[str, str], body: Any, authorization: str | None, base_url: str
    ) -> Reply:
        key, refusal = self._auth(authorization)
        if refusal:
            base = (refusal.json or {})["base_resp"]
            if call == "v2_create":
                with self._lock:
                    self._refused_creates += 1
            return self._v2_error(base["status_code"], base["status_msg"])
        account = self.tasks.account_of(key)
        if call == "v2_create":
            return self._v2_create(body, account)
        if call == "v2_list":
            return self._v2_list(params, account, base_url)
        task_id = str(params.get("task_id") or "")
        task = self.tasks.v2_get(task_id)
        if task is None or task.account != account or task.deleted_at is not None:
            return self._v2_error(2013, f"invalid params, task_id: task {task_id!r} not found", status=404)
        if call == "v2_query":
            return self._v2_ok({"task": self._v2_task_json(task, base_url)})
        return self._v2_cancel(task)

    def _v2_refuse_create(self, code: int, message: str | None = None) -> Reply:
        with self._lock:
            self._refused_creates += 1
        return self._v2_error(code, message)

    def _v2_create(self, body: Any, account: str) -> Reply:
        with self._lock:
            if self.config.rpm is not None:
                now = self.now()
                while self._recent_v2_creates and self._recent_v2_creates[0] <= now - RPM_WINDOW:
                    self._recent_v2_creates.popleft()
                if len(self._recent_v2_creates) >= self.config.rpm:
                    self._refused_creates += 1
                    return self._v2_error(1002, "rate limit exceeded(RPM)")
                self._recent_v2_creates.append(now)
        if not isinstance(body, dict):
            return self._v2_refuse_create(2013, "invalid params, the request body must be a JSON object")
        problems = v2_problems(body) or self._mm_file_problems(body, account)
        if problems:
            return self._v2_refuse_create(2013, f"invalid params, {problems[0]}")
        prompt = _v2_prompt(body)
        if FLAG_INPUT in prompt:
            return self._v2_refuse_create(1026, "input new_sensitive: the prompt or media was flagged")
        charge = self._v2_charge(body)
        if charge is not None and self.config.balance is not None:
            if self._v2_available() - self._v2_committed() < charge:
                return self._v2_refuse_create(1008, "insufficient balance")
        with self._lock:
            second = self.config.second_client_rate > 0 and self._random.random() < self.config.second_client_rate
        if second:
            self.second_client_create()
        task = self._v2_new_task(body, account)
        with self._lock:
            self._creates += 1
            self._v2_creates += 1
        return self._v2_ok({"task_id": task.task_id})

    def _v2_new_task(self, body: Mapping[str, Any], account: str) -> V2Task:
        prompt = _v2_prompt(body)
        final_status, error_code, error_message = facts.V2_STATUS_SUCCESS, None, None
        if FLAG_OUTPUT in prompt:
            final_status, error_code = facts.V2_STATUS_FAIL, "1027"
            error_message = "output new_sensitive: the generated video was flagged"
        elif FAIL_WORD in prompt:
            final_status, error_code = facts.V2_STATUS_FAIL, "1000"
            error_message = f"simulated render failure (the prompt contains {FAIL_WORD!r})"
        elif self.config.fail_rate > 0:
            with self._lock:
                failed = self._random.random() < self.config.fail_rate
            if failed:
                final_status, error_code = facts.V2_STATUS_FAIL, "1000"
                error_message = "video generation failed (simulated, fail_rate)"
        charge = self._v2_charge(body)
        created_at = self.now()

        def build(task_id: str, file_id: int) -> V2Task:
            return V2Task(
                task_id=task_id,
                file_id=file_id,
                request=dict(body),
                account=account,
                created_at=created_at,
                latency=self.config.latency,
                final_status=final_status,
                error_code=error_code,
                error_message=error_message,
                charge=None if charge is None else str(charge),
            )

        return self.tasks.v2_add(build)

    def _mm_file_problems(self, body: Mapping[str, Any], account: str) -> list[str]:
        """``mm_file://FILE_ID`` references that name no live upload of this account."""
        problems = []
        for i, item in enumerate(body.get("content") or []):
            url = _v2_item_url(item)
            if url is None or not url.startswith(facts.V2_FILE_URL_SCHEME):
                continue
            raw = url[len(facts.V2_FILE_URL_SCHEME) :]
            upload = self.tasks.upload_get(int(raw)) if raw.isdigit() else None
            if (
                upload is None
                or upload.account != account
                or self.now() - upload.created_at > facts.V2_FILE_TTL_SECONDS
            ):
                problems.append(f"content[{i}]: file {raw!r} not found (uploaded files live 7 days)")
        return problems

    def _v2_charge(self, body: Mapping[str, Any]) -> Decimal | None:
        """What a success of ``body`` costs, from ``SimConfig.v2_price``; None: not priced."""
        if self.config.v2_price is None:
            return None
        render = {
            "model": body.get("model"),
            "mode": rules.mode_of(body).value,
            **_v2_shape(body),
            "reference_images": rules.v2_roles(body).count("reference_image"),
            "usage": _v2_usage(body, billed=True),
        }
        price = self.config.v2_price(render)
        return None if price is None else Decimal(price)

    def _v2_available(self) -> Decimal:
        """The balance after every succeeded v2 task's charge (deleted ones too: they rendered)."""
        now = self.now()
        spent = sum(
            (Decimal(t.charge) for t in self.tasks.v2_tasks() if t.charge and t.status_at(now) == facts.V2_STATUS_SUCCESS),
            Decimal(0),
        )
        return Decimal(self.config.balance or "0") - spent

    def _v2_committed(self) -> Decimal:
        """What the tasks still queued or running will cost if they succeed."""
        now = self.now()
        return sum(
            (
                Decimal(t.charge)
                for t in self.tasks.v2_tasks()
                if t.charge and t.status_at(now) in facts.V2_STATUS_PROGRESSION
            ),
            Decimal(0),
        )

    def balance(self) -> str | None:
        """What ``/account/query_balance`` answers as ``available_amount``: ``SimConfig.balance``
        less every succeeded v2 task's charge (when ``v2_price`` is set)."""
        if self.config.balance is None:
            return None
        if self.config.v2_price is None:
            return self.config.balance
        return f"{self._v2_available():.2f}"

    def _v2_task_json(self, task: V2Task, base_url: str) -> dict[str, Any]:
        """The contract's TASK for ``task`` as it is now."""
        now = self.now()
        status = task.status_at(now)
        answer: dict[str, Any] = {
            "id": task.task_id,
            "model": task.request.get("model"),
            "status": status,
            "created_at": int(task.created_at),
            "updated_at": int(task.updated_at(now)),
            **_v2_shape(task.request),
            "usage": _v2_usage(task.request, billed=status == facts.V2_STATUS_SUCCESS),
        }
        if status == facts.V2_STATUS_SUCCESS:
            expires = math.ceil(now + self.config.url_ttl)
            signature = self._signature(_V2_URL_KIND, task.file_id, expires)
            url = f"{base_url}/_sim/{_V2_URL_KIND}/{task.file_id}/{V2_FILENAME}?Expires={expires}&Signature={signature}"
            answer["content"] = {"url": url}
        elif status == facts.V2_STATUS_FAIL:
            answer["error"] = {"code": task.error_code or "1000", "message": task.error_message or "failed"}
        return answer

    def _v2_list(self, params: Mapping[str, str], account: str, base_url: str) -> Reply:
        """The account's tasks of the last ``V2_LIST_DAYS`` days, newest first, filtered, paged."""
        try:
            page_num = int(params.get("page_num") or 1)
            page_size = int(params.get("page_size") or facts.V2_LIST_PAGE_SIZE)
        except ValueError:
            return self._v2_error(2013, "invalid params, page_num and page_size must be integers")
        if page_num < 1 or not 1 <= page_size <= V2_LIST_MAX_PAGE_SIZE:
            return self._v2_error(
                2013, f"invalid params, page_num must be 1 or more and page_size 1 to {V2_LIST_MAX_PAGE_SIZE}"
            )
        status = params.get("filter.status") or None
        if status is not None and status not in facts.V2_TASK_STATUSES:
            return self._v2_error(2013, f"invalid params, filter.status: unknown status {status!r}")
        ids = {i.strip() for i in (params.get("filter.task_ids") or "").split(",") if i.strip()}
        model = params.get("filter.model") or None
        task_type = params.get("filter.task_type") or None
        now = self.now()
        since = now - facts.V2_LIST_DAYS * 86400
        found = []
        for task in reversed(self.tasks.v2_tasks(account)):
            if task.deleted_at is not None or task.created_at < since:
                continue
            if ids and task.task_id not in ids:
                continue
            if model is not None and task.request.get("model") != model:
                continue
            if status is not None and task.status_at(now) != status:
                continue
            if task_type is not None and _v2_task_type(task.request) != task_type:
                continue
            found.append(task)
        found.sort(key=lambda t: t.created_at, reverse=True)
        page = found[(page_num - 1) * page_size : page_num * page_size]
        return self._v2_ok(
            {
                "items": [self._v2_task_json(t, base_url) for t in page],
                "page_num": page_num,
                "page_size": page_size,
                "total": len(found),
                "has_more": page_num * page_size < len(found),
            }
        )

    def _v2_cancel(self, task: V2Task) -> Reply:
        """Queued: cancelled (never billed). Running: refused. Finished: deleted."""
        now = self.now()
        status = task.status_at(now)
        if status in facts.V2_CANCELLABLE_STATUSES:
            self.tasks.v2_mark(task.task_id, cancelled_at=now)
            return self._v2_ok({"task_id": task.task_id, "status": facts.V2_STATUS_CANCELLED})
        if facts.v2_task_state(status) is facts.TaskState.RUNNING:
            return self._v2_error(
                2013, f"invalid params, task {task.task_id} is {status} and cannot be cancelled", status=409
            )
        self.tasks.v2_mark(task.task_id, deleted_at=now)
        return self._v2_ok({"task_id": task.task_id, "status": "deleted"})

    def _v2_download(self, params: Mapping[str, str]) -> Reply:
        try:
            file_id, expires = int(params.get("file_id", "")), int(params.get("Expires", ""))
        except ValueError:
            return _xml_error(403, "AccessDenied", "Missing or malformed signature parameters.")
        if not hmac.compare_digest(self._signature(_V2_URL_KIND, file_id, expires), str(params.get("Signature", ""))):
            return _xml_error(403, "SignatureDoesNotMatch", "The request signature does not match.")
        if self.now() > expires:
            return _xml_error(403, "AccessDenied", "Request has expired.")
        task = self.tasks.v2_by_file(file_id)
        if task is None or task.deleted_at is not None or task.status_at(self.now()) != facts.V2_STATUS_SUCCESS:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        return _video_reply(self._video(task))

    def _upload(self, form: Any, authorization: str | None) -> Reply:
        """``POST /v1/files/upload`` (multipart: ``file`` and ``purpose``, parsed by the HTTP
        layer into ``{"filename", "purpose", "data"}``): the file, to be named ``mm_file://ID``."""
        key, refusal = self._auth(authorization)
        if refusal:
            return refusal
        if not isinstance(form, dict) or not isinstance(form.get("data"), bytes):
            return error_reply(2013, "invalid params, send multipart/form-data with a 'file' part and a 'purpose'")
        purpose = str(form.get("purpose") or "")
        if not purpose:
            return error_reply(2013, "invalid params, purpose is required")
        upload = self.tasks.upload_add(
            self.tasks.account_of(key), str(form.get("filename") or "file"), purpose, self.now(), form["data"]
        )
        return Reply(json={"file": _upload_json(upload), "base_resp": _base_resp(0, "success")})


def _video_reply(video: VideoFile) -> Reply:
    return Reply(
        video=video,
        content_type="video/mp4",
        headers={"Content-Disposition": f'attachment; filename="{FILENAME}"'},
    )


# --- Video Generation V2: module helpers --------------------------------------------------------

#: The model a second client's default task uses: the first one Video Generation V2 serves.
_V2_MODEL = next(name for name, spec in facts.MODELS.items() if spec.api is facts.Api.V2)
#: The kind of signed URL a v2 task's ``content.url`` is (``/_sim/video/<file>/<name>``).
_V2_URL_KIND = "video"
V2_FILENAME = "output.mp4"
#: The largest page the list call serves (the contract does not say; the CLI's default is 50).
V2_LIST_MAX_PAGE_SIZE = 100
#: HTTP statuses of v2 refusals in the "http" form. The contract says only "an HTTP error
#: status with a JSON body"; these follow what MiniMax's CLI reads (401/403 credentials, 402
#: balance, 408/504 timeouts, 429 limits). A task that is not there answers 404 and a running
#: one that cannot be cancelled 409, both with code 2013 in the body.
_V2_HTTP_STATUS: dict[int, int] = {
    1000: 500,
    1001: 408,
    1002: 429,
    1004: 401,
    1008: 402,
    1013: 500,
    1024: 500,
    1026: 422,
    1027: 422,
    1033: 500,
    1039: 429,
    1041: 429,
    2013: 400,
    2038: 403,
    2049: 401,
    2056: 429,
}
_V2_ERROR_TYPES: dict[int, str] = {
    1002: "rate_limit_error",
    1004: "authentication_error",
    1008: "insufficient_balance_error",
    1026: "unprocessable_entity_error",
    1039: "rate_limit_error",
    1041: "rate_limit_error",
    2013: "invalid_request_error",
    2049: "authentication_error",
    2056: "rate_limit_error",
}


def _v2_error_body(code: int, message: str | None) -> dict[str, Any]:
    """The JSON body of a v2 refusal in the "http" form."""
    if message is None:
        fact = facts.ERROR_CODES.get(code)
        message = fact.meaning if fact else "unknown error"
    return {"error": {"code": code, "message": message, "type": _V2_ERROR_TYPES.get(code, "api_error")}}


def v2_problems(body: Mapping[str, Any]) -> list[str]:
    """Every way a v2 create body breaks the contract's rules, data URLs decoded and checked."""
    return [str(p) for p in rules.check_v2_request(body, check_media=True)]


def _v2_prompt(body: Mapping[str, Any]) -> str:
    for item in body.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            return str(item.get("text") or "")
    return ""


def _v2_item_url(item: Any) -> str | None:
    """The URL a media item of ``content`` carries (``{"type": "image_url", "image_url": {"url": ...}}``)."""
    if not isinstance(item, dict):
        return None
    holder = item.get(str(item.get("type")))
    url = holder.get("url") if isinstance(holder, dict) else None
    return url if isinstance(url, str) else None


#: The simulator's ``task_type`` of each V2 mode (the contract names the field, not its values).
_V2_TASK_TYPES: dict[facts.Mode, str] = {
    facts.Mode.T2V: "text_to_video",
    facts.Mode.I2V: "image_to_video",
    facts.Mode.FL2V: "first_last_frame_to_video",
    facts.Mode.LF2V: "last_frame_to_video",
    facts.Mode.R2V: "reference_to_video",
}


def _v2_task_type(body: Mapping[str, Any]) -> str:
    return _V2_TASK_TYPES.get(rules.mode_of(body), "video_generation")


def _v2_shape(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request's resolution, duration, ratio and task type, defaults written out."""
    roles = rules.v2_roles(body)
    return {
        "resolution": body.get("resolution", facts.V2_DEFAULT_RESOLUTION),
        "duration": body.get("duration", facts.V2_DEFAULT_DURATION),
        "ratio": body.get("ratio", facts.V2_RATIO_WITH_MEDIA if roles else None),
        "task_type": _v2_task_type(body),
    }


def _v2_usage(body: Mapping[str, Any], *, billed: bool) -> dict[str, int]:
    """``usage``: what was billed, all zeros for a task that was not (yet) billed. Output seconds
    are the duration; the simulator cannot measure reference media, so input seconds are 0."""
    if not billed:
        return {name: 0 for name in facts.V2_USAGE_FIELDS}
    output = int(body.get("duration", facts.V2_DEFAULT_DURATION))
    images = sum(1 for role in rules.v2_roles(body) if facts.V2_MEDIA_ROLES.get(role) == "image_url")
    return {"total_seconds": output, "input_seconds": 0, "output_seconds": output, "input_image_count": images}


def _v2_metadata(task: V2Task) -> dict[str, Any]:
    """What the task's video says about it (``vidbatch.mp4.read_sim_metadata``)."""
    shape = _v2_shape(task.request)
    return {
        "task_id": task.task_id,
        "file_id": str(task.file_id),
        "model": task.request.get("model"),
        "prompt": task.prompt,
        "resolution": shape["resolution"],
        "duration": shape["duration"],
        "ratio": shape["ratio"],
        "api": "v2",
    }


def _upload_json(upload: Upload) -> dict[str, Any]:
    return {
        "file_id": upload.file_id,
        "bytes": len(upload.data),
        "created_at": int(upload.created_at),
        "filename": upload.filename,
        "purpose": upload.purpose,
    }
