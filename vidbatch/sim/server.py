"""The simulator's HTTP layer: routes requests to :class:`~vidbatch.sim.state.Simulator` and writes
its :class:`~vidbatch.sim.state.Reply` to the socket, faults included.

Built on the standard library's ``ThreadingHTTPServer`` (one thread per connection) so the
simulator adds no dependency. It speaks HTTP/1.1 with keep-alive, like the real service behind a
``requests.Session``; every answer carries ``Content-Length``, so a "drop" or "truncate" fault is
seen by the client exactly as a real broken connection would be.

``stop()`` ends everything the server started before it returns: it stops accepting, cuts every
open connection (idle keep-alive ones included), wakes any answer a ``slow`` fault is holding back
(that answer is dropped) and joins every connection's thread. So a stopped simulator really stops
answering, and no thread of it lives on to log or write into whatever runs next.

Routes:

====================================  ======================================================
``POST /v1/video_generation``         create (``facts.PATH_CREATE``)
``GET /v1/query/video_generation``    query
``GET /v1/files/retrieve``            file metadata with signed, expiring download URLs
``GET /v1/files/retrieve_content``    the file's bytes
``GET /account/query_balance``        the account's balance (``SimConfig.balance``)
``GET /_sim/download/<id>/<name>``    signed download URL (no Authorization needed)
``GET /_sim/backup/<id>/<name>``      signed backup download URL
``GET /_sim/stats``                   ``Simulator.stats()`` as JSON (control: no auth)
``POST /_sim/advance``                ``{"seconds": N}`` moves the sim clock (control)
``POST /_sim/faults``                 ``{"call", "fault", "times", ...params}`` (control)
====================================  ======================================================

One INFO line per API call goes to the ``vidbatch.sim`` logger: method, path (signed-URL query
strings left out), HTTP status, base_resp code, fault and Trace-Id. Headers are never logged, so
the key cannot leak into a log.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from .. import facts
from .state import Reply, SimConfig, Simulator

log = logging.getLogger("vidbatch.sim")

#: ``vidbatch.prices.PATH_BALANCE``, written again because the simulator may not import
#: ``prices`` (it reads the user's config file); tests/test_money.py checks the two agree.
PATH_BALANCE = "/account/query_balance"
_API_ROUTES = {
    ("POST", facts.PATH_CREATE): "create",
    ("GET", facts.PATH_QUERY): "query",
    ("GET", facts.PATH_RETRIEVE): "retrieve",
    ("GET", facts.PATH_RETRIEVE_CONTENT): "retrieve_content",
    ("GET", PATH_BALANCE): "query_balance",
}
_URL_ROUTES = {"download": "download", "backup": "backup_download"}
#: Bodies larger than this are refused before reading (data-URL images are under 20 MB, base64 grows 4/3).
_MAX_BODY = 64 * 1024 * 1024
#: Idle keep-alive connections are closed after this many seconds.
_IDLE_TIMEOUT = 60.0


class _Server(ThreadingHTTPServer):
    # Daemon threads, so that a thread stuck beyond stop()'s join never holds the interpreter
    # open; stop() still joins them, tracked here (ThreadingMixIn only tracks non-daemon ones).
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: socketserver's 5 overflowed when a run opened its 32+ connections at
    # once, and the kernel reset some of them (creates "sent, answer lost": uncertain).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.open_connections: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.connections_lock = threading.Lock()
        #: Set by stop(): wakes delayed answers, and cuts a connection whose thread starts late.
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One named thread per connection, tracked until it ends so stop() can join it."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"vidbatch-sim:{self.server_address[1]}:connection",
            daemon=True,
        )
        with self.connections_lock:
            self.handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.handler_threads.discard(threading.current_thread())

    def live_handler_threads(self) -> list[threading.Thread]:
        with self.connections_lock:
            return [t for t in self.handler_threads if t.is_alive()]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The base class prints a traceback to stderr; a client going away mid-answer is routine."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "vidbatch-sim"
    timeout = _IDLE_TIMEOUT
    # Headers and body go out in separate writes; with Nagle's algorithm and delayed ACKs each
    # small answer would wait ~40 ms.
    disable_nagle_algorithm = True

    # -- connection bookkeeping (so stop() can close keep-alive connections) --

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)
            if self.server.stopping.is_set():  # accepted just before stop(): end it at once
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The simulator logs its own line per call (without signed-URL query strings)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """The base class writes errors (timeouts, bad request lines) to stderr; log them instead."""
        log.debug("http %s: %s", self.address_string(), format % args)

    # -- routing --

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            raw = self._read_body()
        except ValueError as e:
            self._send(Reply(status=413, json={"error": str(e)}))
            self.close_connection = True
            return
        if url.path.startswith("/_sim/"):
            parts = url.path.split("/")  # ["", "_sim", kind, file_id, name]
            call = _URL_ROUTES.get(parts[2]) if len(parts) == 5 and method in ("GET", "HEAD") else None
            if call:
                params["file_id"] = parts[3]
                self._answer(call, method, url.path, params, None)
            else:
                self._control(method, url.path, raw)
            return
        call = _API_ROUTES.get((method, url.path))
        if call is None:
            self._send(Reply(status=404, json={"error": f"no route {method} {url.path}"}))
            return
        body: Any = None
        if call == "create":
            try:
                body = json.loads(raw or b"null")
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None  # answered as 2013 by the simulator
        log_path = url.path + (f"?{url.query}" if url.query else "")
        self._answer(call, method, log_path, params, body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError(f"request body of {length} bytes is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if host:
            return f"http://{host}"
        address, port = self.server.server_address[:2]
        name = address.decode() if isinstance(address, bytes) else address
        return f"http://{name}:{port}"

    def _answer(self, call: str, method: str, log_path: str, params: dict[str, str], body: Any) -> None:
        reply = self.server.sim.handle(
            call,
            params=params,
            body=body,
            authorization=self.headers.get("Authorization"),
            base_url=self._base_url(),
        )
        trace_id = secrets.token_hex(16)
        if reply.delay > 0 and self.server.stopping.wait(reply.delay):
            reply.drop = True  # the simulator stopped while this answer was held back
        status = "dropped" if reply.drop else str(reply.status)
        log.info(
            "%s %s %s %s base_resp=%s%s trace=%s",
            call,
            method,
            log_path,
            status,
            "-" if reply.base_code is None else reply.base_code,
            f" fault={reply.fault}" if reply.fault else "",
            trace_id,
        )
        if reply.drop:
            self._drop()
            return
        reply.headers.setdefault("Trace-Id", trace_id)
        self._send(reply, head_only=method == "HEAD")

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: Reply, head_only: bool = False) -> None:
        if reply.video is not None:
            length = reply.video.size
        else:
            payload = (json.dumps(reply.json) if reply.json is not None else reply.text).encode("utf-8")
            length = len(payload)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head_only:
            return
        try:
            if reply.video is not None:
                for chunk in reply.video.chunks(reply.truncate_at):
                    self.wfile.write(chunk)
            else:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client went away mid-answer, or stop() closed the connection
            self.close_connection = True
            return
        if reply.truncate_at is not None:
            self._drop()

    # -- control endpoints --

    def _control(self, method: str, path: str, raw: bytes) -> None:
        sim = self.server.sim
        try:
            args = json.loads(raw) if raw else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            if (method, path) == ("GET", "/_sim/stats"):
                answer: dict[str, Any] = sim.stats()
            elif (method, path) == ("POST", "/_sim/advance"):
                sim.advance(float(args.get("seconds", 0)))
                answer = {"clock": sim.now()}
            elif (method, path) == ("POST", "/_sim/faults"):
                args = dict(args)
                call, fault, times = args.pop("call", ""), args.pop("fault", ""), int(args.pop("times", 1))
                sim.inject(str(call), str(fault), times, **args)
                answer = {"faults_pending": sim.stats()["faults_pending"]}
            else:
                self._send(Reply(status=404, json={"error": f"no control endpoint {method} {path}"}))
                return
        except (ValueError, TypeError) as e:
            self._send(Reply(status=400, json={"error": str(e)}))
            return
        self._send(Reply(json=answer))


class SimServer:
    """A simulator serving HTTP on a loopback port, in a background thread."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self._httpd = _Server((host, port), sim)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = str(bound_host)
        self.port = int(bound_port)
        self.base_url = f"http://{self.host}:{self.port}"
        #: The key to send: the configured one, or (when the sim takes any) the one its store made up.
        self.key = sim.client_key
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"vidbatch-sim:{self.port}",
            daemon=True,
        )
        self._stopped = False

    def start(self, wait: float = 10.0) -> None:
        """Serve in the background; return once the server answers (or raise after ``wait`` s)."""
        self._thread.start()
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
                conn.request("GET", "/_sim/stats")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)

    def stop(self, wait: float = 10.0) -> None:
        """Stop serving, close every connection (idle keep-alive ones included) and wait up to
        ``wait`` s for every connection's thread to end; a held-back (``slow``) answer is dropped."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        with self._httpd.connections_lock:
            self._httpd.stopping.set()
            connections = list(self._httpd.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + wait
        for thread in self._httpd.live_handler_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = self._httpd.live_handler_threads()
        if stuck:
            log.warning("simulator on port %d stopped with %d connection thread(s) still running", self.port, len(stuck))
        self._httpd.server_close()

    def handler_threads(self) -> list[threading.Thread]:
        """The threads still serving a connection (none once ``stop()`` has returned)."""
        return self._httpd.live_handler_threads()

    def __repr__(self) -> str:
        return f"<SimServer {self.base_url}>"


@contextlib.contextmanager
def running_simulator(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimServer]:
    """A simulator serving real HTTP on ``host:port`` (port 0: a free one) for the ``with`` block.

    With ``config.data_dir`` its tasks outlive the block: a later simulator on the same folder,
    in this process or another, answers for them (see :mod:`vidbatch.sim.store`)."""
    sim = Simulator(config)
    try:
        server = SimServer(sim, host, port)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        sim.close()
