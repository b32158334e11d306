"""A loopback OpenAI-compatible server that misbehaves on request, and remembers every request it got.

Each request takes the next behaviour from a script (a global FIFO, or a FIFO for prompts containing a
given text); with nothing scripted it answers normally with `echo_text(body)`, which is deterministic.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.support.loopback import LoopbackHTTPServer, LoopbackServer

HUGE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Fault:
    """One scripted behaviour. Build them with the functions below rather than by hand."""

    kind: str
    status: int = 200
    retry_after: str | None = None
    seconds: float = 0.0
    declared_length: bool = True


def ok(delay: float = 0.0) -> Fault:
    return Fault("ok", seconds=delay)


def status(code: int, retry_after: str | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


def echo_auth(code: int = 401) -> Fault:
    """An error whose body repeats the Authorization header, as careless gateways do."""
    return Fault("echo_auth", status=code)


def redirect(code: int = 301) -> Fault:
    return Fault("redirect", status=code)


def text_parts() -> Fault:
    """Chat content as a list of text parts, as some gateways send it."""
    return Fault("text_parts")


def reset() -> Fault:
    """Close the socket with a TCP RST, without answering."""
    return Fault("reset")


def timeout(seconds: float) -> Fault:
    """Answer (normally) only after `seconds`; meant to be longer than the client's timeout."""
    return Fault("timeout", seconds=seconds)


def slow_body(seconds: float) -> Fault:
    """Send the headers at once, then drip a normal body over `seconds`."""
    return Fault("slow_body", seconds=seconds)


def malformed_json() -> Fault:
    return Fault("malformed_json")


def no_choices() -> Fault:
    return Fault("no_choices")


def null_content() -> Fault:
    return Fault("null_content")


def empty_content() -> Fault:
    return Fault("empty_content")


def huge(declared_length: bool = True) -> Fault:
    """A 5 MiB body, with a Content-Length or (declared_length=False) streamed until the socket closes."""
    return Fault("huge", declared_length=declared_length)


def invalid_utf8() -> Fault:
    return Fault("invalid_utf8")


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when the body was not JSON
    fault: str  # the behaviour the server chose for it


def user_text(body: Any) -> str:
    """The prompt of a chat or completion request body."""
    if not isinstance(body, dict):
        return ""
    if "prompt" in body:
        return str(body["prompt"])
    messages = body.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else ""


def echo_text(body: Any) -> str:
    """What an ok answer contains: the same request gives the same text, different seeds give different ones."""
    seed = body.get("seed") if isinstance(body, dict) else None
    return f"echo seed={seed}: {user_text(body)}"


def answer(body: Any, path: str, content: Any) -> dict[str, Any]:
    if path.endswith("/chat/completions"):
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}}
    else:
        choice = {"index": 0, "text": content}
    return {"id": "fault-1", "object": "chat.completion", "choices": [{**choice, "finish_reason": "stop"}]}


class FaultServer(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        self._queue: deque[Fault] = deque()
        self.default = ok()  # what unscripted requests get
        self._by_text: list[tuple[str, deque[Fault]]] = []
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        super().__init__(_Handler, port=port, path="/v1", poll_interval=0.01, server_class=_QuietServer)

    def script(self, *faults: Fault) -> None:
        """Behaviours for the next requests, in order, whatever their prompt."""
        with self._lock:
            self._queue.extend(faults)

    def script_for(self, text: str, *faults: Fault) -> None:
        """Behaviours for the next requests whose prompt contains `text` (checked before the global script)."""
        with self._lock:
            self._by_text.append((text, deque(faults)))

    def requests_for(self, text: str) -> list[RecordedRequest]:
        return [r for r in self.requests if text in user_text(r.body)]

    def stop(self) -> None:
        self.stopping.set()  # handlers sleeping out a delay or a slow body end now instead of answering late
        super().stop()

    def _next_fault(self, body: Any) -> Fault:
        text = user_text(body)
        with self._lock:
            for needle, queue in self._by_text:
                if needle in text and queue:
                    return queue.popleft()
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest, delta: int) -> None:
        with self._lock:
            if delta > 0:
                self.requests.append(request)
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)


class _QuietServer(LoopbackHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-answer is the point of this server, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do, so connection reuse is exercised

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and delayed ACKs add 40 ms to each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send_json(200, {"object": "list", "data": [{"id": "fault", "object": "model"}]})

    def do_POST(self) -> None:
        server = FaultServer.serving(self)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        fault = server._next_fault(body)
        request = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body, fault.kind)
        server._record(request, +1)
        try:
            self._behave(fault, body, server)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first, as intended by timeouts and size caps
        finally:
            server._record(request, -1)

    def _behave(self, fault: Fault, body: Any, server: FaultServer) -> None:
        kind = fault.kind
        if kind in ("ok", "timeout"):
            if fault.seconds and server.stopping.wait(fault.seconds):
                return
            self._send_json(200, answer(body, self.path, echo_text(body)))
        elif kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            # Two lines, as proxies' error pages have: messages built from it must still be one line.
            error = json.dumps({"error": f"scripted {fault.status}"}) + "\r\nsecond line\n"
            self._send(fault.status, error.encode(), "application/json", headers)
        elif kind == "echo_auth":
            seen = self.headers.get("Authorization", "")
            if fault.status == 200:
                self._send_json(200, answer(body, self.path, f"you sent {seen}"))
            else:
                self._send_json(fault.status, {"error": f"invalid credentials: {seen}"})
        elif kind == "redirect":
            self._send(fault.status, b"", "text/plain", {"Location": "/v2/chat/completions"})
        elif kind == "text_parts":
            parts = [{"type": "text", "text": "Par"}, {"type": "text", "text": "is"}]
            self._send_json(200, answer(body, self.path, parts))
        elif kind == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif kind == "slow_body":
            self._drip(json.dumps(answer(body, self.path, echo_text(body))).encode(), fault.seconds, server)
        elif kind == "malformed_json":
            self._send(200, b'{"choices": [{"message": {"content": "cut', "application/json")
        elif kind == "no_choices":
            self._send_json(200, {"id": "x", "object": "chat.completion", "usage": {}})
        elif kind == "null_content":
            self._send_json(200, answer(body, self.path, None))
        elif kind == "empty_content":
            self._send_json(200, answer(body, self.path, ""))
        elif kind == "huge":
            self._huge(body, fault.declared_length)
        elif kind == "invalid_utf8":
            content = self.path.endswith("/chat/completions")
            prefix = b'{"choices": [{"message": {"content": "' if content else b'{"choices": [{"text": "'
            suffix = b'"}}]}' if content else b'"}]}'
            self._send(200, prefix + b"caf\xe9 \xff\xfe ok" + suffix, "application/json")
        else:  # pragma: no cover - a typo in a test
            raise ValueError(f"unknown fault {kind!r}")

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json", headers)

    def _send(self, code: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _drip(self, payload: bytes, seconds: float, server: FaultServer) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.flush()
        pieces = 20
        step = -(-len(payload) // pieces)
        for start in range(0, len(payload), step):
            if server.stopping.wait(seconds / pieces):
                return
            self.wfile.write(payload[start : start + step])
            self.wfile.flush()

    def _huge(self, body: Any, declared_length: bool) -> None:
        payload = json.dumps(answer(body, self.path, "x" * HUGE_BYTES)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if declared_length:
            self.send_header("Content-Length", str(len(payload)))
        else:
            self.send_header("Connection", "close")  # the body ends when the socket does
            self.close_connection = True
        self.end_headers()
        for start in range(0, len(payload), 256 * 1024):
            self.wfile.write(payload[start : start + 256 * 1024])


def refused_url() -> str:
    """The URL of a loopback port nobody listens on: connecting to it is refused."""
    port = free_port()
    return f"http://127.0.0.1:{port}/v1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(name="fault_server")
def fault_server_fixture() -> Iterator[FaultServer]:
    """A started FaultServer, stopped after the test; import this name into a test module to use it."""
    with FaultServer() as server:
        yield server
