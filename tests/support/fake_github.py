"""A loopback stand-in for GitHub's REST API for issue comments, with programmable faults, for tests.

It answers like api.github.com: Bearer token required, `per_page`/`page` pagination with Link headers that point at
`/repositories/{id}/...` (as GitHub's do, so a client must follow them rather than build page URLs), GitHub's error
JSON, the 65,536-character body limit, rate-limit headers on every answer. Every request is recorded.

Use the `fake_github` fixture, or `with FakeGitHub(prefix="/api/v3") as fake:` for an Enterprise-style URL.

PYTEST_DONT_REWRITE: this module holds no asserts, and test modules import it before pytest loads it as a plugin.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.loopback import LoopbackServer

REPOSITORY = "octo-org/octo-repo"
PR_NUMBER = 7
BOT_USER = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
MAX_BODY_CHARS = 65_536
ROUTES = ("list", "create", "update")
_DOCS = "https://docs.github.com/rest"
_DEFAULT_MESSAGES = {
    401: "Bad credentials",
    403: "Resource not accessible by integration",
    404: "Not Found",
    422: "Validation Failed",
    429: "API rate limit exceeded",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_ISSUE_COMMENTS = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/(?P<number>\d+)/comments")
_ISSUE_COMMENTS_BY_ID = re.compile(r"/repositories/(?P<repo_id>\d+)/issues/(?P<number>\d+)/comments")
_ONE_COMMENT = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/comments/(?P<id>\d+)")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent, query included
    headers: Mapping[str, str]
    body: str


@dataclass(frozen=True)
class Fault:
    status: int
    headers: Mapping[str, str]
    message: str
    after_write: bool  # do the work, then answer with the fault: the client's answer is lost
    disconnect: bool  # close the connection without any answer
    stall: float  # seconds to hang before answering (or disconnecting), to trip the client's timeout


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: object
    headers: Mapping[str, str] = field(default_factory=dict)


class FakeGitHub(LoopbackServer):
    """GitHub's issue-comments API on 127.0.0.1, port chosen by the OS; `url` is the API root (GITHUB_API_URL)."""

    def __init__(self, repository: str = REPOSITORY, *, prefix: str = "", token: str | None = None) -> None:
        self.repository = repository
        self.repo_id = 1_296_269
        self.prefix = prefix.rstrip("/")
        # Looks like a real installation token and is unique, so a search for it in any output means a leak.
        self.token = token or f"ghs_{secrets.token_hex(18)}"
        self.comments: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.link_origin: str | None = None  # override where Link headers point (to test off-host links)
        self._faults: dict[str, deque[Fault]] = {route: deque() for route in (*ROUTES, "any")}
        self._next_id = 1_000_000_001
        self._lock = threading.Lock()
        super().__init__(_Handler, path=self.prefix, poll_interval=0.02, name="fake-github")

    # -- test controls

    def add_comment(
        self, body: str, *, issue: int = PR_NUMBER, login: str = "octocat", user_type: str = "User"
    ) -> dict[str, Any]:
        with self._lock:
            return self._create(issue, body, {"login": login, "id": 583231, "type": user_type})

    def seed_human_comments(self, count: int, *, issue: int = PR_NUMBER) -> None:
        for index in range(count):
            self.add_comment(f"Looks good to me ({index})", issue=issue, login=f"reviewer{index % 7}")

    def fail_next(
        self,
        route: str,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        after_write: bool = False,
        disconnect: bool = False,
        stall: float = 0.0,
    ) -> None:
        """Make the next `times` requests on `route` ("list", "create", "update" or "any") fail this way."""
        if route not in (*ROUTES, "any"):
            raise ValueError(f"unknown route {route!r}")
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["Retry-After"] = str(retry_after)
        text = message or _DEFAULT_MESSAGES.get(status, "Error")
        fault = Fault(status, all_headers, text, after_write=after_write, disconnect=disconnect, stall=stall)
        with self._lock:
            self._faults[route].extend([fault] * times)

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()

    def delete_comment(self, comment_id: int) -> None:
        with self._lock:
            self.comments = [c for c in self.comments if c["id"] != comment_id]

    def comments_on(self, issue: int = PR_NUMBER) -> list[dict[str, Any]]:
        with self._lock:
            return [_public(c) for c in self.comments if c["_issue"] == issue]

    def bot_comments(self, issue: int = PR_NUMBER) -> list[dict[str, Any]]:
        return [c for c in self.comments_on(issue) if c["user"]["type"] == "Bot"]

    def requests_for(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    # -- the API

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: str) -> _Answer | Fault:
        with self._lock:
            self.requests.append(RecordedRequest(method, target, dict(headers), body))
            if headers.get("Authorization") != f"Bearer {self.token}":
                return _error(401, "Bad credentials")
            parts = urlsplit(target)
            if not parts.path.startswith(self.prefix + "/"):
                return _error(404, "Not Found")
            path = parts.path[len(self.prefix) :]
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: Mapping[str, str], body: str) -> _Answer | Fault:
        listing = _ISSUE_COMMENTS.fullmatch(path) or _ISSUE_COMMENTS_BY_ID.fullmatch(path)
        one = _ONE_COMMENT.fullmatch(path)
        if listing and not self._is_ours(listing):
            return _error(404, "Not Found")
        if one and not self._is_ours(one):
            return _error(404, "Not Found")
        if listing and method == "GET":
            return self._faulted("list") or self._list(int(listing["number"]), path, query)
        if listing and method == "POST":
            return self._write("create", body, lambda text: _Answer(201, _public(self._create_bot(listing, text))))
        if one and method == "PATCH":
            return self._write("update", body, lambda text: self._update(int(one["id"]), text))
        return _error(404, "Not Found")

    def _is_ours(self, match: re.Match[str]) -> bool:
        groups = match.groupdict()
        if "repo_id" in groups:
            return int(groups["repo_id"]) == self.repo_id
        return f"{groups['owner']}/{groups['repo']}".casefold() == self.repository.casefold()

    def _faulted(self, route: str) -> Fault | None:
        for queue in (self._faults[route], self._faults["any"]):
            if queue:
                return queue.popleft()
        return None

    def _write(self, route: str, body: str, apply: Callable[[str], _Answer]) -> _Answer | Fault:
        fault = self._faulted(route)
        if fault is not None and not fault.after_write:
            return fault
        text, problem = _comment_body(body)
        if problem is not None:
            return problem
        answer = apply(text)
        return fault if fault is not None else answer

    def _list(self, issue: int, path: str, query: Mapping[str, str]) -> _Answer:
        per_page = min(100, max(1, int(query.get("per_page", "30"))))
        page = max(1, int(query.get("page", "1")))
        items = [_public(c) for c in self.comments if c["_issue"] == issue]
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return _Answer(200, chunk, {"Link": self._links(issue, per_page, page, last)} if last > 1 else {})

    def _links(self, issue: int, per_page: int, page: int, last: int) -> str:
        base = f"{self.link_origin or self.origin}{self.prefix}/repositories/{self.repo_id}/issues/{issue}/comments"
        rels = []
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("prev", page - 1), ("first", 1)]
        return ", ".join(f'<{base}?{urlencode({"per_page": per_page, "page": n})}>; rel="{rel}"' for rel, n in rels)

    def _create_bot(self, match: re.Match[str], text: str) -> dict[str, Any]:
        return self._create(int(match["number"]), text, dict(BOT_USER))

    def _create(self, issue: int, body: str, user: Mapping[str, Any]) -> dict[str, Any]:
        comment_id = self._next_id
        self._next_id += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{self.repository}/pull/{issue}#issuecomment-{comment_id}",
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{issue}",
            "body": body,
            "user": dict(user),
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE",
            "_issue": issue,
        }
        self.comments.append(comment)
        return comment

    def _update(self, comment_id: int, text: str) -> _Answer:
        for comment in self.comments:
            if comment["id"] == comment_id:
                comment["body"] = text
                comment["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                return _Answer(200, _public(comment))
        return _error(404, "Not Found")


def _public(comment: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in comment.items() if not key.startswith("_")}


def _error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> _Answer:
    payload: dict[str, Any] = {"message": message, "documentation_url": _DOCS, "status": str(status)}
    if errors:
        payload["errors"] = errors
    return _Answer(status, payload)


def _comment_body(raw: str) -> tuple[str, _Answer | None]:
    try:
        data = json.loads(raw)
    except ValueError:
        return "", _error(400, "Problems parsing JSON")
    text = data.get("body") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return "", _error(422, "Invalid request.\n\nFor 'properties/body', nil is not a string.")
    if len(text) > MAX_BODY_CHARS:
        too_long = {
            "resource": "IssueComment",
            "code": "custom",
            "field": "body",
            "message": f"body is too long (maximum is {MAX_BODY_CHARS} characters)",
        }
        return "", _error(422, "Validation Failed", [too_long])
    return text, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like GitHub, so clients reuse connections as they would there
    timeout = 5  # an idle keep-alive connection must not hold a thread forever
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall between

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # silence: tests read .requests instead

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        fake = FakeGitHub.serving(self)
        answer = fake.handle(self.command, self.path, dict(self.headers.items()), body)
        if isinstance(answer, Fault):
            time.sleep(answer.stall)  # outside the fake's lock: other requests go on meanwhile
            if answer.disconnect:
                self.close_connection = True
                return
            answer = _Answer(answer.status, _error(answer.status, answer.message).payload, answer.headers)
        try:
            self._send(answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a stall fault): nothing to tell it

    def _send(self, answer: _Answer) -> None:
        data = json.dumps(answer.payload).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # A fault's own headers replace the healthy defaults, as one header each (no "4990, 0").
        headers = {**_rate_limit_headers(), **{name.lower(): value for name, value in answer.headers.items()}}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _rate_limit_headers() -> dict[str, str]:
    # Every real answer carries these; a client must not mistake a healthy budget for a limit.
    return {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4990",
        "x-ratelimit-reset": str(int(time.time()) + 3600),
        "x-ratelimit-used": "10",
        "x-ratelimit-resource": "core",
    }


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake
