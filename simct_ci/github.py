"""The GitHub side of the Action: the runner's environment, the sticky pull-request comment, and the runner's
file and workflow commands.

This room receives finished Markdown and a dict of finished output strings; it knows nothing about statistics.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from simct_ci.errors import ConfigError, SimctError
from simct_ci.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
API_VERSION = "2022-11-28"
COMMENT_MAX_CHARS = 65_536  # GitHub rejects a longer comment body with 422
SUMMARY_MAX_BYTES = 1024 * 1024  # GitHub drops a step summary above 1 MiB
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: without retry headers, wait at least a minute after a secondary limit

_PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"})
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._/-]")
_MAX_ID_CHARS = 100
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TOKEN = re.compile(r"[!-~]+")  # printable ASCII without spaces: anything else is a paste error
_SUMMARY_CUT_NOTE = "\n\n*(summary truncated: GitHub shows at most 1 MiB per step)*\n"


# ---------------------------------------------------------------------------------------------------------------------
# The runner's environment


@dataclass(frozen=True)
class PullRequest:
    number: int
    from_fork: bool  # head and base repositories differ: on a pull_request event the token is then read-only


@dataclass(frozen=True)
class GitHubContext:
    """What the runner tells this step about where it runs, read once from the environment."""

    api_url: str
    repository: str | None
    event_name: str | None
    pull_request: PullRequest | None
    step_summary: Path | None
    output: Path | None
    server_url: str
    run_id: str | None

    @property
    def run_url(self) -> str | None:
        if self.repository is None or self.run_id is None:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        event_name = _env(env, "GITHUB_EVENT_NAME")
        repository = _env(env, "GITHUB_REPOSITORY")
        if repository is not None and not _is_repository(repository):
            raise ConfigError(f"GITHUB_REPOSITORY must look like owner/name, got {repository!r}")
        pull_request = _read_pull_request(env) if event_name in _PR_EVENTS else None
        if pull_request is not None and repository is None:
            raise ConfigError("GITHUB_REPOSITORY is not set, so the pull request comment has nowhere to go")
        summary = _env(env, "GITHUB_STEP_SUMMARY")
        output = _env(env, "GITHUB_OUTPUT")
        return cls(
            api_url=_base_url(env, "GITHUB_API_URL", DEFAULT_API_URL),
            repository=repository,
            event_name=event_name,
            pull_request=pull_request,
            step_summary=Path(summary) if summary else None,
            output=Path(output) if output else None,
            server_url=_base_url(env, "GITHUB_SERVER_URL", DEFAULT_SERVER_URL),
            run_id=_env(env, "GITHUB_RUN_ID"),
        )


def _env(env: Mapping[str, str], name: str) -> str | None:
    # The runner sets some variables to "" rather than leaving them out.
    value = env.get(name, "").strip()
    return value or None


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _env(env, name) or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _is_repository(value: str) -> bool:
    return _REPOSITORY.fullmatch(value) is not None and not set(value.split("/")) & {".", ".."}


def _read_pull_request(env: Mapping[str, str]) -> PullRequest:
    path = _env(env, "GITHUB_EVENT_PATH")
    if path is None:
        raise ConfigError("GITHUB_EVENT_PATH is not set, but a pull request event needs its payload")
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"GITHUB_EVENT_PATH: cannot read {path}: {error.strerror or error}") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        raise ConfigError(f"GITHUB_EVENT_PATH: {path} is not a JSON event payload") from None
    return _parse_pull_request(payload, path)


def _parse_pull_request(payload: object, path: str) -> PullRequest:
    pr = payload.get("pull_request") if isinstance(payload, dict) else None
    if not isinstance(pr, dict):
        raise ConfigError(f"GITHUB_EVENT_PATH: {path} has no pull_request object")
    number = pr.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ConfigError(f"GITHUB_EVENT_PATH: {path} has no valid pull_request.number (got {number!r})")
    head, base = _full_name(pr, "head"), _full_name(pr, "base")
    # A deleted fork leaves head.repo null: such a head is not the base repository either.
    from_fork = head is None or base is None or head.casefold() != base.casefold()
    return PullRequest(number=number, from_fork=from_fork)


def _full_name(pr: Mapping[str, Any], side: str) -> str | None:
    ref = pr.get(side)
    repo = ref.get("repo") if isinstance(ref, dict) else None
    name = repo.get("full_name") if isinstance(repo, dict) else None
    return name if isinstance(name, str) else None


# ---------------------------------------------------------------------------------------------------------------------
# The REST client


# With these, backoffs add up to at most 15 s over five attempts, each at least half its nominal length; a rate
# limit may instead ask for up to max_delay per retry, and a longer demand fails at once rather than hammering.
DEFAULT_RETRY = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=60.0, jitter=0.5)


class GitHubApiError(SimctError):
    """A GitHub API request failed for good, after its retries. The message never contains the token."""

    def __init__(self, message: str, *, status: int | None, rate_limited: bool = False, outcome_unknown: bool = False):
        super().__init__(message)
        self.status = status  # None: no answer at all (network)
        self.rate_limited = rate_limited
        # True when GitHub may have done the work although we saw no success (5xx, lost connection).
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class _RetryPlan:
    delay: float
    requested: bool  # GitHub named the delay (Retry-After, rate-limit reset): ours to honour, not to shorten


class _BearerAuth(requests.auth.AuthBase):
    # An auth object rather than a session header: requests then never swaps in ~/.netrc credentials, and it drops
    # the header when a redirect leaves the host.
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class GitHubClient:
    """A small GitHub REST client: retries, pagination, and a token that stays in the Authorization header."""

    def __init__(
        self,
        api_url: str,
        token: str,
        retry: RetryPolicy,
        *,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        token = token.strip()  # a secret pasted with its trailing newline is still the same secret
        if not token:
            raise ConfigError("the GitHub token is empty: pass github_token to post the pull request comment")
        if _TOKEN.fullmatch(token) is None:
            raise ConfigError("the GitHub token contains spaces or non-ASCII characters: check the secret's value")
        self.api_url = api_url.rstrip("/")
        self.retry = retry
        self.timeout = timeout
        self._token = token
        self._sleep = sleep
        self._session = requests.Session()
        self._session.auth = _BearerAuth(token)
        self._session.headers.update({"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION})

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one API request, retrying what can be retried; return the 2xx response or raise GitHubApiError.

        `path` is relative to api_url, or an absolute URL under it (a pagination link). A non-idempotent request
        (POST by default) is not repeated after a 5xx or a lost connection, where GitHub may already have done it;
        rate limits are always retried, since GitHub rejected the request before doing anything.
        """
        method = method.upper()
        url = self._url(path)
        where = f"{method} {urlsplit(url).path}"
        repeatable = method != "POST" if idempotent is None else idempotent
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            try:
                response = self._session.request(method, url, params=params, json=json_body, timeout=self.timeout)
            except requests.RequestException as error:
                # Only the exception's type: its text can quote the request, headers included.
                failure = GitHubApiError(
                    f"{where}: no answer from GitHub ({type(error).__name__})", status=None, outcome_unknown=True
                )
                if last or not repeatable:
                    raise failure from None
                self._wait(self.retry.backoff(attempt), where, "no answer", attempt)
                continue
            if response.ok:
                return response
            failure = self._error(where, response, attempt)
            plan = _plan_retry(response, attempt, self.retry, time.time())
            if plan is None:
                raise failure
            if plan.requested and plan.delay > self.retry.max_delay:
                raise GitHubApiError(
                    f"{where}: GitHub answered {response.status_code} and asks to wait {plan.delay:.0f} s,"
                    f" longer than the {self.retry.max_delay:g} s this run waits",
                    status=response.status_code,
                    rate_limited=failure.rate_limited,
                )
            if last or not (repeatable or failure.rate_limited):
                raise failure
            self._wait(plan.delay, where, str(response.status_code), attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def paginate(self, path: str, params: Mapping[str, str | int] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every object of a list endpoint, following GitHub's Link rel="next" until the last page."""
        url: str | None = path
        query: Mapping[str, str | int] | None = {"per_page": 100, **(params or {})}
        seen: set[str] = set()
        while url is not None:
            response = self.request("GET", url, params=query)
            items = _json(response, f"GET {urlsplit(response.url).path}")
            if not isinstance(items, list):
                raise GitHubApiError(f"GET {path}: GitHub answered something other than a list", status=None)
            yield from (item for item in items if isinstance(item, dict))
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries its own query
            if url is not None:
                if url in seen:
                    raise GitHubApiError(f"GET {path}: GitHub's pagination links go round in a circle", status=None)
                seen.add(url)

    def pause(self, retry: int) -> None:
        """Back off before retry number `retry` of an operation the caller repeats itself."""
        self._sleep(self.retry.backoff(retry))

    def _url(self, path: str) -> str:
        if not path.startswith(("http://", "https://")):
            return f"{self.api_url}/{path.lstrip('/')}"
        if not _is_under(path, self.api_url):
            # Pagination links come from the server: never carry the token to another host.
            raise GitHubApiError(
                f"GitHub sent a link outside {self.api_url} ({urlsplit(path).netloc}); not following it", status=None
            )
        return path

    def _error(self, where: str, response: requests.Response, attempt: int) -> GitHubApiError:
        status = response.status_code
        said = self._redact(_github_message(response))
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        return GitHubApiError(
            f"{where} failed: {status} {response.reason}{': ' + said if said else ''}{tries}",
            status=status,
            rate_limited=_is_rate_limit(response),
            outcome_unknown=status >= 500,
        )

    def _wait(self, delay: float, where: str, cause: str, attempt: int) -> None:
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)", where, cause, delay, attempt + 1, self.retry.attempts
        )
        self._sleep(delay)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")


def _is_under(url: str, base: str) -> bool:
    link, api = urlsplit(url), urlsplit(base)
    same_origin = (link.scheme, link.netloc.lower()) == (api.scheme, api.netloc.lower())
    return same_origin and (link.path + "/").startswith(api.path.rstrip("/") + "/")


def _is_rate_limit(response: requests.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    headers = response.headers
    limited_headers = "Retry-After" in headers or headers.get("x-ratelimit-remaining") == "0"
    return limited_headers or "rate limit" in _github_message(response).lower()


def _plan_retry(response: requests.Response, attempt: int, policy: RetryPolicy, now: float) -> _RetryPlan | None:
    """How long to wait before retrying a failed response; None when retrying cannot help (4xx that is no limit)."""
    status = response.status_code
    if status < 500 and not _is_rate_limit(response):
        return None
    requested = _requested_wait(response.headers, now)
    if requested is not None:
        return _RetryPlan(requested, requested=True)
    if status == 403:  # a secondary limit that names no delay
        return _RetryPlan(SECONDARY_LIMIT_WAIT, requested=True)
    return _RetryPlan(policy.backoff(attempt), requested=False)


def _requested_wait(headers: Mapping[str, str], now: float) -> float | None:
    """The wait GitHub asks for: Retry-After first, else the reset of an exhausted primary rate limit."""
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if retry_after is not None:
        return retry_after
    if headers.get("x-ratelimit-remaining") == "0":
        with contextlib.suppress(ValueError):
            # One second more: the reset is rounded to seconds and the runner's clock is not GitHub's.
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now) + 1.0
    return None


def _github_message(response: requests.Response) -> str:
    """GitHub's own explanation of an error ("message" plus each "errors" entry), one line, bounded."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message", ""))]
    for item in data.get("errors") or []:
        parts.append(str(item.get("message") or item.get("code") or "") if isinstance(item, dict) else str(item))
    text = " ".join(" ".join(part.split()) for part in parts if part)
    return text[:300]


def _json(response: requests.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise GitHubApiError(f"{where}: GitHub's answer is not JSON", status=response.status_code) from None


# ---------------------------------------------------------------------------------------------------------------------
# The sticky comment

CommentAction = Literal["created", "updated", "failed"]


@dataclass(frozen=True)
class CommentOutcome:
    action: CommentAction
    url: str | None
    reason: str  # one line for a human; for "failed", what went wrong and what to do


def marker_for(config_id: str) -> str:
    """The hidden first line that tags this config's comment, so several configs keep separate comments."""
    if not config_id:
        raise ValueError("config_id must not be empty")
    safe = _UNSAFE_ID_CHARS.sub("_", config_id)[:_MAX_ID_CHARS]
    if safe != config_id:
        # Replacing or cutting characters could make two ids equal ("a b", "a_b"): a digest keeps them apart.
        safe = f"{safe}-{hashlib.sha256(config_id.encode('utf-8')).hexdigest()[:8]}"
    return f"<!-- simct-action:{safe} -->"


def find_comment(client: GitHubClient, repository: str, pr_number: int, marker: str) -> dict[str, Any] | None:
    """The oldest comment on the pull request written by a bot whose first line is exactly `marker`."""
    path = f"/repos/{_checked_repository(repository)}/issues/{int(pr_number)}/comments"
    return next((comment for comment in client.paginate(path) if _is_sticky(comment, marker)), None)


def upsert_comment(client: GitHubClient, repository: str, pr_number: int, body: str, marker: str) -> CommentOutcome:
    """Update this marker's comment or create it. GitHub failures give a "failed" outcome, never an exception."""
    _check_marker(marker)
    text = body if _first_line(body) == marker else f"{marker}\n{body}"
    repository = _checked_repository(repository)
    try:
        existing = find_comment(client, repository, pr_number, marker)
        if existing is not None:
            updated = _update_comment(client, repository, existing, text)
            if updated is not None:
                return CommentOutcome("updated", _html_url(updated), f"updated comment {existing['id']}")
        created = _create_comment(client, repository, pr_number, text, marker)
        return CommentOutcome("created", _html_url(created), f"created comment {created.get('id')}")
    except GitHubApiError as error:
        return CommentOutcome("failed", None, _failure_reason(error))


def _update_comment(
    client: GitHubClient, repository: str, existing: Mapping[str, Any], text: str
) -> dict[str, Any] | None:
    """The edited comment, or None when it vanished between lookup and edit (someone deleted it)."""
    path = f"/repos/{repository}/issues/comments/{int(existing['id'])}"
    try:
        updated = _json(client.request("PATCH", path, json_body={"body": text}), f"PATCH {path}")
    except GitHubApiError as error:
        if error.status == 404:
            return None
        raise
    return {**existing, **updated} if isinstance(updated, dict) else dict(existing)


def _create_comment(client: GitHubClient, repository: str, pr_number: int, text: str, marker: str) -> dict[str, Any]:
    path = f"/repos/{repository}/issues/{int(pr_number)}/comments"
    attempt = 1
    while True:
        try:
            created = _json(client.request("POST", path, json_body={"body": text}), f"POST {path}")
            return created if isinstance(created, dict) else {}
        except GitHubApiError as error:
            if not error.outcome_unknown or attempt >= client.retry.attempts:
                raise
        client.pause(attempt)
        attempt += 1
        # The answer was lost, not necessarily the comment: look before posting a duplicate.
        found = find_comment(client, repository, pr_number, marker)
        if found is not None:
            return found


def _is_sticky(comment: Mapping[str, Any], marker: str) -> bool:
    # Only a bot's comment qualifies, so a person quoting the marker cannot hijack (or hide) the report.
    user = comment.get("user")
    body = comment.get("body")
    is_bot = isinstance(user, dict) and user.get("type") == "Bot"
    return is_bot and isinstance(body, str) and _first_line(body) == marker and "id" in comment


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].removesuffix("\r")


def _check_marker(marker: str) -> None:
    is_comment = marker.startswith("<!--") and marker.endswith("-->") and "-->" not in marker[4:-3]
    if not is_comment or "\n" in marker or "\r" in marker:
        raise ValueError(f"a marker must be a one-line hidden HTML comment, got {marker!r}")


def _checked_repository(repository: str) -> str:
    if not _is_repository(repository):
        raise ValueError(f"repository must look like owner/name, got {repository!r}")
    return repository


def _html_url(comment: object) -> str | None:
    url = comment.get("html_url") if isinstance(comment, dict) else None
    return url if isinstance(url, str) else None


def _failure_reason(error: GitHubApiError) -> str:
    hints = {
        401: "GitHub rejected the token: it is missing, expired or revoked.",
        403: "The token may not write to this pull request: grant `pull-requests: write`;"
        " on a pull request from a fork the GITHUB_TOKEN is read-only.",
        404: "GitHub found no such repository or pull request, or the token cannot see it.",
        422: f"GitHub rejected the comment; its body is limited to {COMMENT_MAX_CHARS:,} characters.",
    }
    hint = "GitHub's rate limit held." if error.rate_limited else hints.get(error.status or 0, "")
    return f"{hint} ({error})" if hint else str(error)


# ---------------------------------------------------------------------------------------------------------------------
# Runner file commands and workflow commands


def write_step_summary(path: str | Path, markdown: str) -> None:
    """Append Markdown to the job summary, cut to GitHub's 1 MiB so the whole summary is not dropped."""
    target = Path(path)
    used = target.stat().st_size if target.exists() else 0
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    room = SUMMARY_MAX_BYTES - used
    if len(text.encode("utf-8")) > room:
        keep = max(0, room - len(_SUMMARY_CUT_NOTE.encode("utf-8")))
        text = text.encode("utf-8")[:keep].decode("utf-8", errors="ignore") + _SUMMARY_CUT_NOTE if keep else ""
        warning("The job summary reached GitHub's 1 MiB limit and was truncated.")
    with target.open("a", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_outputs(path: str | Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs in the multiline `name<<DELIMITER` form, which takes any value."""
    chunks = []
    for name, value in outputs.items():
        if _OUTPUT_NAME.fullmatch(name) is None:
            raise ValueError(f"invalid output name {name!r}")
        if not isinstance(value, str):
            raise TypeError(f"output {name!r} must be a string, got {type(value).__name__}")
        delimiter = _delimiter_for(value)
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    # Validate everything first: a half-written outputs file is worse than none.
    with Path(path).open("a", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(chunks))


def _delimiter_for(value: str) -> str:
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            return delimiter


def annotate_error(message: str, title: str | None = None) -> None:
    _command("error", message, {"title": title} if title else {})


def warning(message: str, title: str | None = None) -> None:
    _command("warning", message, {"title": title} if title else {})


def mask(secret: str) -> None:
    """Ask the runner to hide `secret` in the log; do this before anything that could print it."""
    # The log is masked line by line, so each line of a multi-line secret is registered too.
    parts = dict.fromkeys([secret, *secret.splitlines()])
    for part in parts:
        if part.strip():
            _command("add-mask", part)


@contextlib.contextmanager
def untrusted_output() -> Iterator[None]:
    """While inside, the runner reads no workflow commands in the log, whatever model output is printed."""
    # A fresh random token: text printed inside cannot know it, so cannot switch commands back on.
    token = secrets.token_hex(16)
    _emit(f"::stop-commands::{token}")
    try:
        yield
    finally:
        _emit(f"::{token}::")


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, message: str, properties: Mapping[str, str] | None = None) -> None:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in (properties or {}).items())
    _emit(f"::{name}{' ' + props if props else ''}::{escape_data(message)}")


def _emit(line: str) -> None:
    # stdout, flushed: the runner reads commands there, in order with everything else the step prints.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
