"""One OpenAI-compatible client: a request per (prompt, sample), retries with backoff, bounded time and size.

Every way an endpoint can fail ends as either a string (the response) or an `EndpointError` whose one-line
message names the stage, the URL path and the cause, and never the API key.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions

from simct_ci.errors import EndpointError
from simct_ci.retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from simct_ci.config import Sampling, StageConfig
    from simct_ci.responses import Prompt

MAX_BODY_BYTES = 4 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_CONNECT_TIMEOUT = 10.0  # a healthy server accepts at once; the read timeout is what covers generation
_BODY_EXCERPT = 200
_READ_CHUNK = 64 * 1024


class Endpoint(Protocol):
    """What collection needs from an endpoint; tests and other transports can stand in."""

    def complete(self, prompt: Prompt, sample: int) -> str: ...

    def close(self) -> None: ...


class _TransientError(Exception):
    """An attempt failed in a way that may pass: retry it (after `retry_after` seconds if the server said so)."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class _PermanentError(Exception):
    """An attempt failed in a way that retrying will not fix."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class ChatEndpoint:
    """Client of one live stage. Thread-safe: each worker thread gets its own `requests.Session`."""

    def __init__(
        self,
        stage: StageConfig,
        sampling: Sampling,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if stage.base_url is None:
            raise ValueError(f"stage {stage.name} has no base_url: it is a recorded stage")
        self.stage = stage
        self.sampling = sampling
        self.retry = retry if retry is not None else RetryPolicy(max_retries=stage.max_retries)
        self._sleep = sleep
        self._route = "completions" if stage.api == "completion" else "chat/completions"
        self.url = _join_url(stage.base_url, self._route)
        self.path = urlsplit(self.url).path  # the only part of the URL that errors show: no query, no userinfo
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------------------------

    def complete(self, prompt: Prompt, sample: int) -> str:
        """The response text for one sample of one prompt; raises EndpointError once retries are used up."""
        payload = self.payload(prompt, sample)
        attempts = self.retry.attempts
        for attempt in range(attempts):
            try:
                return self._attempt(payload)
            except _PermanentError as failure:
                raise self._error(failure.cause) from None
            except _TransientError as failure:
                if attempt + 1 == attempts:
                    raise self._error(f"{failure.cause} (gave up after {attempts} attempts)") from None
                self._sleep(self.retry.delay(attempt + 1, failure.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover

    def payload(self, prompt: Prompt, sample: int) -> dict[str, Any]:
        """The JSON body of the request; each sample gets its own seed so samples differ but reruns repeat."""
        s = self.sampling
        body: dict[str, Any] = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "n": 1,
        }
        if self.stage.model is not None:
            body["model"] = self.stage.model
        # Omitted rather than sent as null: some gateways reject a null seed.
        if s.seed is not None:
            body["seed"] = s.seed + sample
        system = self.stage.system_prompt
        if self.stage.api == "completion":
            # A plain completion has no roles: the system prompt, if any, becomes the start of the text.
            body["prompt"] = f"{system}\n\n{prompt.text}" if system else prompt.text
        else:
            messages = [{"role": "system", "content": system}] if system else []
            messages.append({"role": "user", "content": prompt.text})
            body["messages"] = messages
        return body

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> ChatEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one attempt ----------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.stage.api_key:
            headers["Authorization"] = f"Bearer {self.stage.api_key}"
        return headers

    def _attempt(self, payload: dict[str, Any]) -> str:
        timeout = self.stage.timeout
        try:
            response = self._session().post(
                self.url,
                data=json.dumps(payload).encode(),
                headers=self._headers(),
                timeout=(min(MAX_CONNECT_TIMEOUT, timeout), timeout),
                stream=True,  # the body is read by _read_body, which bounds its size and its duration
                # A redirected POST turns into a GET (301/302) or lands on another host without the key:
                # either way the base_url is wrong, and saying so beats a confusing 405 later.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise _TransientError(_connection_cause(exc, "timed out")) from None
        except requests.ConnectionError as exc:
            raise _TransientError(_connection_cause(exc, "connection failed")) from None
        except requests.RequestException as exc:
            raise _PermanentError(f"request failed ({type(exc).__name__})") from None
        try:
            body = _read_body(response, deadline=time.monotonic() + timeout)
        finally:
            response.close()
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _TransientError(_status_cause(status, body), parse_retry_after(response.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise _PermanentError(f"HTTP {status}: redirects are not followed; set base_url to the final URL")
        if not 200 <= status < 300:
            raise _PermanentError(_status_cause(status, body))
        text = _extract_text(body, chat=self.stage.api != "completion")
        if self.stage.api_key:
            # A gateway that echoes the request into the answer must not carry the key into files.
            text = text.replace(self.stage.api_key, "***")
        return text

    def _error(self, cause: str) -> EndpointError:
        message = f"stage {self.stage.name}: POST {self.path}: {cause}"
        key = self.stage.api_key
        if key:
            # A server may echo the Authorization header in an error body; it must not reach any log.
            message = message.replace(key, "***")
        return EndpointError(message)


def _join_url(base_url: str, route: str) -> str:
    """base_url + route, keeping any query string (some gateways put an api-version there) at the end."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/") + "/" + route
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _read_body(response: requests.Response, *, deadline: float) -> bytes:
    """The whole body, refusing more than MAX_BODY_BYTES and a body that trickles in past the deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _PermanentError("response larger than 4 MiB")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            # read1 returns what has arrived instead of waiting for a full chunk, so a dripping body
            # cannot stretch one read past the deadline check.
            chunk = response.raw.read1(_READ_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _PermanentError("response larger than 4 MiB")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _TransientError("timed out while reading the response body")
    except urllib3.exceptions.ReadTimeoutError:
        raise _TransientError("read timed out") from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise _TransientError(_connection_cause(exc, "connection lost while reading the response body")) from None
    return b"".join(chunks)


def _extract_text(body: bytes, *, chat: bool) -> str:
    # Invalid UTF-8 from a model is data, not a reason to fail the request.
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        raise _PermanentError(f"response is not valid JSON: {_excerpt(text)}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _PermanentError(f"response has no choices[0]: {_excerpt(text)}")
    first = choices[0]
    if chat:
        message = first.get("message")
        if not isinstance(message, dict):
            raise _PermanentError(f"response has no choices[0].message: {_excerpt(text)}")
        content, where = message.get("content"), "choices[0].message.content"
    else:
        content, where = first.get("text"), "choices[0].text"
    if content is None:
        return ""  # a model that stopped at once answered with nothing; the engine compares that like any text
    if isinstance(content, list):
        content = _join_text_parts(content)
    if not isinstance(content, str):
        raise _PermanentError(f"{where} is {type(content).__name__}, not a string")
    return content


def _join_text_parts(parts: list[Any]) -> str | None:
    """Content given as parts ([{"type": "text", "text": ...}]), as some gateways send it; None if not all text."""
    texts = [part.get("text") for part in parts if isinstance(part, dict)]
    if len(texts) != len(parts) or not all(isinstance(text, str) for text in texts):
        return None
    return "".join(texts)


def _status_cause(status: int, body: bytes) -> str:
    excerpt = _excerpt(body.decode("utf-8", errors="replace"))
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"


def _excerpt(text: str) -> str:
    """First 200 characters on one line, so a message stays one line whatever the server sent."""
    return " ".join(text.split())[:_BODY_EXCERPT]


def _connection_cause(exc: BaseException, default: str) -> str:
    """A short cause from an exception chain; never str(exc), which carries the full URL."""
    chain = _exception_chain(exc)
    # Most specific first: urllib3's NewConnectionError is (for history's sake) a ConnectTimeoutError too.
    causes: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
        (ConnectionRefusedError, "connection refused"),
        (http.client.RemoteDisconnected, "server closed the connection without a response"),
        (ConnectionResetError, "connection reset by the server"),
        (urllib3.exceptions.NameResolutionError, "host name not resolved"),
        (urllib3.exceptions.ReadTimeoutError, "read timed out"),
        (requests.ReadTimeout, "read timed out"),
        ((requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError), "connect timed out"),
        (TimeoutError, "timed out"),
    )
    for kind, cause in causes:
        if any(isinstance(link, kind) for link in chain):
            return cause
    return default


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """exc and every exception it wraps (requests and urllib3 nest them in args, reason, cause, context)."""
    chain: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        linked = [*current.args, current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending.extend(link for link in linked if isinstance(link, BaseException))
    return chain
