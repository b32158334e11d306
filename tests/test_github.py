"""The GitHub promise: one sticky comment per config that survives faults, outputs and summaries that parse back,
workflow commands that cannot be injected, and a token that never leaks. All against a loopback fake of GitHub."""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simct_ci import github
from simct_ci.errors import ConfigError
from simct_ci.github import (
    GitHubApiError,
    GitHubClient,
    GitHubContext,
    PullRequest,
    annotate_error,
    find_comment,
    marker_for,
    mask,
    untrusted_output,
    upsert_comment,
    warning,
    write_outputs,
    write_step_summary,
)
from simct_ci.retry import RetryPolicy
from tests.support.fake_github import PR_NUMBER, REPOSITORY, FakeGitHub

MARKER = marker_for(".github/simct.yml")


def make_client(fake: FakeGitHub, sleeps: list[float], *, token: str | None = None) -> GitHubClient:
    # jitter 0 so waits are exact; sleeps are recorded instead of slept, so Retry-After: 60 costs nothing.
    policy = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=120.0, jitter=0.0)
    return GitHubClient(fake.url, token or fake.token, policy, sleep=sleeps.append)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake_github: FakeGitHub, sleeps: list[float]):
    with make_client(fake_github, sleeps) as github_client:
        yield github_client


def upsert(client: GitHubClient, body: str, marker: str = MARKER) -> github.CommentOutcome:
    return upsert_comment(client, REPOSITORY, PR_NUMBER, body, marker)


# ---------------------------------------------------------------------------------------------------------------------
# The sticky comment


def test_first_run_creates_and_second_run_updates_the_same_comment_on_page_two(fake_github, client):
    fake_github.seed_human_comments(150)  # the bot's comment becomes the 151st: page 2 at per_page=100

    first = upsert(client, "## SimCT\nverdict: consistent")
    second = upsert(client, "## SimCT\nverdict: inconsistent")

    assert (first.action, second.action) == ("created", "updated")
    bots = fake_github.bot_comments()
    assert len(bots) == 1
    assert first.url == second.url == bots[0]["html_url"]
    assert bots[0]["body"] == f"{MARKER}\n## SimCT\nverdict: inconsistent"
    # The lookup walked GitHub's own Link (a /repositories/{id}/ URL), not a page number it made up.
    gets = [r.path for r in fake_github.requests_for("GET")]
    assert gets[-2:] == [
        f"/repos/{REPOSITORY}/issues/{PR_NUMBER}/comments?per_page=100",
        f"/repositories/{fake_github.repo_id}/issues/{PR_NUMBER}/comments?per_page=100&page=2",
    ]
    (patch,) = fake_github.requests_for("PATCH")
    assert patch.path == f"/repos/{REPOSITORY}/issues/comments/{bots[0]['id']}"
    assert len(fake_github.comments_on()) == 151


def test_a_body_that_already_starts_with_the_marker_is_not_marked_twice(fake_github, client):
    upsert(client, f"{MARKER}\nbody")
    assert fake_github.bot_comments()[0]["body"] == f"{MARKER}\nbody"


def test_two_configs_keep_two_comments(fake_github, client):
    a, b = marker_for("simct.yml"), marker_for("configs/gateway.yml")

    assert upsert(client, "A1", a).action == "created"
    assert upsert(client, "B1", b).action == "created"
    assert upsert(client, "A2", a).action == "updated"

    bodies = sorted(c["body"] for c in fake_github.bot_comments())
    assert bodies == sorted([f"{a}\nA2", f"{b}\nB1"])


def test_a_human_comment_carrying_the_marker_is_never_taken_over(fake_github, client):
    human = fake_github.add_comment(f"{MARKER}\nI quote your marker to hijack the report", login="mallory")
    quoting_bot = fake_github.add_comment(f"> {MARKER}\nquoted", login="other[bot]", user_type="Bot")

    outcome = upsert(client, "report")

    assert outcome.action == "created"
    assert fake_github.requests_for("PATCH") == []
    by_id = {c["id"]: c for c in fake_github.comments_on()}
    assert by_id[human["id"]]["body"].endswith("hijack the report")
    assert by_id[quoting_bot["id"]]["body"].endswith("quoted")
    assert len(fake_github.bot_comments()) == 2  # the quoting bot's and ours


def test_with_duplicates_the_oldest_marked_comment_is_the_sticky_one(fake_github, client):
    older = fake_github.add_comment(f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    newer = fake_github.add_comment(f"{MARKER}\nolder duplicate", login="github-actions[bot]", user_type="Bot")

    assert upsert(client, "fresh").action == "updated"

    by_id = {c["id"]: c["body"] for c in fake_github.comments_on()}
    assert by_id[older["id"]] == f"{MARKER}\nfresh"
    assert by_id[newer["id"]] == f"{MARKER}\nolder duplicate"


def test_every_request_carries_the_bearer_token_and_api_headers(fake_github, client):
    upsert(client, "x")
    upsert(client, "y")
    assert len(fake_github.requests) == 4
    for request in fake_github.requests:
        assert request.headers["Authorization"] == f"Bearer {fake_github.token}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"


def test_enterprise_api_url_with_a_path_prefix_is_honoured(sleeps, tmp_path):
    with FakeGitHub(prefix="/api/v3") as enterprise:
        enterprise.seed_human_comments(120)
        context = GitHubContext.from_env({"GITHUB_API_URL": enterprise.url + "/", "GITHUB_EVENT_NAME": "push"})
        assert context.api_url == enterprise.url
        assert context.api_url.endswith("/api/v3")
        with GitHubClient(
            context.api_url, enterprise.token, RetryPolicy(max_retries=4, jitter=0), sleep=sleeps.append
        ) as client:
            assert upsert(client, "one").action == "created"
            assert upsert(client, "two").action == "updated"
        assert all(r.path.startswith("/api/v3/") for r in enterprise.requests)
        assert any("page=2" in r.path for r in enterprise.requests)
        assert len(enterprise.bot_comments()) == 1


def test_find_comment_returns_none_on_an_empty_pull_request(client):
    assert find_comment(client, REPOSITORY, PR_NUMBER, MARKER) is None


# ---------------------------------------------------------------------------------------------------------------------
# Faults that end in a "failed" outcome, never an exception


def test_read_only_token_on_a_fork_pr_gives_a_failed_outcome(fake_github, client):
    fake_github.fail_next("create", 403)

    outcome = upsert(client, "report")

    assert outcome.action == "failed"
    assert outcome.url is None
    assert "403" in outcome.reason
    assert "fork" in outcome.reason
    assert "Resource not accessible by integration" in outcome.reason
    assert len(fake_github.requests_for("POST")) == 1  # a plain 403 is not worth retrying
    assert fake_github.bot_comments() == []


def test_read_only_token_on_update_gives_a_failed_outcome(fake_github, client):
    fake_github.add_comment(f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    fake_github.fail_next("update", 403)

    outcome = upsert(client, "new")

    assert (outcome.action, "403" in outcome.reason) == ("failed", True)
    assert fake_github.bot_comments()[0]["body"] == f"{MARKER}\nold"


def test_not_found_gives_a_failed_outcome(fake_github, client):
    fake_github.fail_next("list", 404)
    outcome = upsert(client, "report")
    assert outcome.action == "failed"
    assert "404" in outcome.reason
    assert len(fake_github.requests) == 1


def test_a_repository_the_token_cannot_see_gives_a_failed_outcome(fake_github, client):
    outcome = upsert_comment(client, "someone-else/private", PR_NUMBER, "report", MARKER)
    assert outcome.action == "failed"
    assert "404" in outcome.reason


def test_a_body_over_65536_characters_gives_a_failed_outcome(fake_github, client):
    outcome = upsert(client, "x" * 70_000)

    assert outcome.action == "failed"
    assert "422" in outcome.reason
    assert "65,536" in outcome.reason
    assert "too long" in outcome.reason  # GitHub's own words are passed on
    assert len(fake_github.requests_for("POST")) == 1


def test_a_wrong_token_gives_a_failed_outcome(fake_github, sleeps):
    with make_client(fake_github, sleeps, token="ghs_not-the-right-one") as wrong:
        outcome = upsert(wrong, "report")
    assert outcome.action == "failed"
    assert "401" in outcome.reason
    assert "Bad credentials" in outcome.reason


def test_a_pagination_link_to_another_host_is_not_followed(fake_github, client):
    with FakeGitHub() as elsewhere:
        fake_github.link_origin = elsewhere.origin
        fake_github.seed_human_comments(101)

        outcome = upsert(client, "report")

        assert outcome.action == "failed"
        assert "outside" in outcome.reason
        assert elsewhere.requests == []  # the token never went there


# ---------------------------------------------------------------------------------------------------------------------
# Faults that are retried


def test_429_is_retried_after_retry_after(fake_github, client, sleeps):
    fake_github.fail_next("create", 429, retry_after=7)

    outcome = upsert(client, "report")

    assert outcome.action == "created"
    assert sleeps == [7.0]
    assert len(fake_github.requests_for("POST")) == 2
    assert len(fake_github.bot_comments()) == 1


def test_secondary_rate_limit_403_is_retried_after_retry_after(fake_github, client, sleeps):
    fake_github.fail_next("list", 403, retry_after=3, message="You have exceeded a secondary rate limit.")

    assert upsert(client, "report").action == "created"
    assert sleeps == [3.0]


def test_secondary_rate_limit_without_headers_waits_a_minute(fake_github, client, sleeps):
    fake_github.fail_next("update", 403, message="You have exceeded a secondary rate limit. Please wait.")
    fake_github.add_comment(f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")

    assert upsert(client, "new").action == "updated"
    assert sleeps == [60.0]


def test_retry_after_as_an_http_date_is_honoured(fake_github, client, sleeps):
    fake_github.fail_next("list", 429, retry_after=email.utils.formatdate(time.time() + 20, usegmt=True))

    assert upsert(client, "report").action == "created"
    assert 17 <= sleeps[0] <= 21


def test_exhausted_primary_rate_limit_waits_until_the_reset(fake_github, client, sleeps):
    reset = int(time.time()) + 30
    limit = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    fake_github.fail_next("list", 403, headers=limit, message="API rate limit exceeded for installation ID 1.")

    assert upsert(client, "report").action == "created"
    assert 28 <= sleeps[0] <= 32


def test_a_wait_longer_than_the_cap_fails_fast_instead_of_hammering(fake_github, client, sleeps):
    fake_github.fail_next("list", 429, retry_after=3600)

    outcome = upsert(client, "report")

    assert outcome.action == "failed"
    assert "rate limit" in outcome.reason
    assert "3600 s" in outcome.reason
    assert sleeps == []
    assert len(fake_github.requests) == 1


def test_500_is_retried_with_exponential_backoff(fake_github, client, sleeps):
    fake_github.fail_next("list", 500, times=3)

    assert upsert(client, "report").action == "created"
    assert sleeps == [0.01, 0.02, 0.04]


def test_500_is_retried_with_real_sleeps(fake_github):
    fake_github.fail_next("any", 502, times=2)
    started = time.monotonic()
    with GitHubClient(
        fake_github.url, fake_github.token, RetryPolicy(max_retries=4, base_delay=0.01, jitter=0.5)
    ) as client:
        assert upsert(client, "report").action == "created"
    assert time.monotonic() - started < 2


def test_persistent_500_ends_in_a_failed_outcome_after_every_attempt(fake_github, client, sleeps):
    fake_github.fail_next("list", 500, times=10)

    outcome = upsert(client, "report")

    assert outcome.action == "failed"
    assert "500" in outcome.reason
    assert "after 4 attempts" in outcome.reason
    assert len(fake_github.requests) == 4
    assert len(sleeps) == 3


def test_a_dropped_connection_is_retried(fake_github, client):
    fake_github.fail_next("list", disconnect=True)
    assert upsert(client, "report").action == "created"
    assert len(fake_github.requests_for("GET")) == 2


def test_a_hanging_github_times_out_and_is_retried(fake_github, sleeps):
    fake_github.fail_next("list", stall=1.0, disconnect=True)
    policy = RetryPolicy(max_retries=2, base_delay=0.01, jitter=0)
    with GitHubClient(fake_github.url, fake_github.token, policy, timeout=0.2, sleep=sleeps.append) as client:
        started = time.monotonic()
        assert upsert(client, "report").action == "created"
    assert time.monotonic() - started < 1.0  # gave up on the hung request instead of waiting it out
    assert sleeps == [0.01]


def test_patch_is_retried_on_503(fake_github, client, sleeps):
    fake_github.add_comment(f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    fake_github.fail_next("update", 503, times=2)

    assert upsert(client, "new").action == "updated"
    assert len(fake_github.requests_for("PATCH")) == 3
    assert fake_github.bot_comments()[0]["body"] == f"{MARKER}\nnew"


def test_a_lost_answer_to_post_does_not_create_a_duplicate(fake_github, client):
    fake_github.fail_next("create", 502, after_write=True)  # GitHub created it, then the answer was lost

    outcome = upsert(client, "report")

    assert outcome.action == "created"
    (comment,) = fake_github.bot_comments()
    assert outcome.url == comment["html_url"]
    assert len(fake_github.requests_for("POST")) == 1  # looked again instead of posting twice


def test_a_comment_deleted_between_lookup_and_edit_is_created_again(fake_github, client):
    old = fake_github.add_comment(f"{MARKER}\nold", login="github-actions[bot]", user_type="Bot")
    fake_github.fail_next("update", 404)  # what GitHub answers once the comment is gone
    fake_github.delete_comment(old["id"])

    outcome = upsert(client, "new")

    assert outcome.action == "created"
    (comment,) = fake_github.bot_comments()
    assert comment["body"] == f"{MARKER}\nnew"


def test_a_post_that_failed_before_writing_is_posted_again(fake_github, client):
    fake_github.fail_next("create", 500)
    assert upsert(client, "report").action == "created"
    assert len(fake_github.requests_for("POST")) == 2
    assert len(fake_github.bot_comments()) == 1


def test_a_plain_client_request_raises_a_typed_error(fake_github, client):
    fake_github.fail_next("list", 404)
    with pytest.raises(GitHubApiError) as caught:
        client.request("GET", f"/repos/{REPOSITORY}/issues/{PR_NUMBER}/comments")
    assert caught.value.status == 404
    assert not caught.value.rate_limited


# ---------------------------------------------------------------------------------------------------------------------
# The token never leaks


def test_the_token_never_appears_in_errors_logs_or_output(fake_github, sleeps, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's debug lines included
    wrong_token = "ghs_WRONGtokenWRONGtokenWRONG"
    texts: list[str] = []
    with make_client(fake_github, sleeps) as client:
        texts.append(repr(client))
        for fault in [
            {"route": "create", "status": 403},
            {"route": "list", "status": 404},
            {"route": "list", "status": 429, "retry_after": 9999},
            {"route": "list", "status": 500, "times": 9},
            {"route": "list", "disconnect": True, "times": 9},
            {"route": "create", "status": 500, "times": 9, "message": f"echo {fake_github.token}"},
        ]:
            fake_github.fail_next(**fault)
            texts.append(upsert(client, "report").reason)
            fake_github.clear_faults()
        fake_github.fail_next("list", 500, times=9)
        with pytest.raises(GitHubApiError) as caught:
            client.request("GET", f"/repos/{REPOSITORY}/issues/{PR_NUMBER}/comments")
        texts += [str(caught.value), repr(caught.value)]
    with make_client(fake_github, sleeps, token=wrong_token) as wrong:
        texts.append(upsert(wrong, "report").reason)
    with pytest.raises(ConfigError) as bad:
        GitHubClient(fake_github.url, f"ghs_half {fake_github.token}", github.DEFAULT_RETRY)
    texts.append(str(bad.value))

    out = capsys.readouterr()
    everything = "\n".join([*texts, out.out, out.err, caplog.text])
    assert "failed" in everything  # the scenarios did fail and say so
    assert "retrying" in caplog.text  # and the retry log lines were written
    assert fake_github.token not in everything
    assert wrong_token not in everything
    # On the wire it travels only in the Authorization header.
    for request in fake_github.requests:
        assert fake_github.token not in request.path + request.body


def test_a_token_pasted_with_a_newline_still_works(fake_github, sleeps):
    with make_client(fake_github, sleeps, token=fake_github.token + "\n") as client:
        assert upsert(client, "report").action == "created"


def test_an_empty_token_is_a_config_error(fake_github):
    with pytest.raises(ConfigError, match="empty"):
        GitHubClient(fake_github.url, "  ", github.DEFAULT_RETRY)


# ---------------------------------------------------------------------------------------------------------------------
# Markers


def test_markers_are_hidden_sanitised_and_distinct():
    assert marker_for(".github/simct.yml") == "<!-- simct-action:.github/simct.yml -->"
    hostile = marker_for("x --> <img src=x> @team\n")
    assert re.fullmatch(r"<!-- simct-action:[A-Za-z0-9._/-]+ -->", hostile)
    assert hostile.count("-->") == 1
    assert marker_for("a b") != marker_for("a_b")
    assert marker_for("a") != marker_for("ab")
    assert len(marker_for("y" * 500)) < 150
    assert marker_for("y" * 500) != marker_for("y" * 501)
    with pytest.raises(ValueError):
        marker_for("")


def test_a_marker_that_is_not_a_hidden_comment_is_refused(client):
    with pytest.raises(ValueError):
        upsert_comment(client, REPOSITORY, PR_NUMBER, "body", "simct-action:visible")


# ---------------------------------------------------------------------------------------------------------------------
# Context


def pull_request_event(head: str | None, base: str = REPOSITORY, number: int = PR_NUMBER) -> dict:
    """A trimmed but real-shaped `pull_request` webhook payload."""

    def repo(full_name: str, fork: bool) -> dict:
        owner = full_name.split("/")[0]
        return {
            "id": 1296269,
            "name": full_name.split("/")[1],
            "full_name": full_name,
            "private": False,
            "owner": {"login": owner, "type": "Organization"},
            "fork": fork,
            "html_url": f"https://github.com/{full_name}",
        }

    head_repo = repo(head, fork=head != base) if head is not None else None
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{base}/pulls/{number}",
            "id": 1785471153,
            "number": number,
            "state": "open",
            "title": "Quantize the serving model",
            "user": {"login": "contributor", "type": "User"},
            "head": {
                "label": "contributor:q3",
                "ref": "q3",
                "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                "repo": head_repo,
            },
            "base": {
                "label": "octo-org:main",
                "ref": "main",
                "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
                "repo": repo(base, fork=False),
            },
            "draft": False,
        },
        "repository": repo(base, False),
        "sender": {"login": "contributor", "type": "User"},
    }


def runner_env(tmp_path: Path, event: dict | None, event_name: str = "pull_request") -> dict[str, str]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "1658821493",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
    }
    if event is not None:
        event_path = tmp_path / "event.json"
        event_path.write_text(json.dumps(event), encoding="utf-8")
        env["GITHUB_EVENT_PATH"] = str(event_path)
    return env


def test_context_of_a_pull_request_from_the_same_repository(tmp_path):
    context = GitHubContext.from_env(runner_env(tmp_path, pull_request_event(head=REPOSITORY)))

    assert context.pull_request == PullRequest(number=PR_NUMBER, from_fork=False)
    assert context.repository == REPOSITORY
    assert context.event_name == "pull_request"
    assert context.api_url == "https://api.github.com"
    assert context.step_summary == tmp_path / "summary.md"
    assert context.output == tmp_path / "output.txt"
    assert context.run_url == f"https://github.com/{REPOSITORY}/actions/runs/1658821493"


def test_context_of_a_fork_pull_request(tmp_path):
    context = GitHubContext.from_env(runner_env(tmp_path, pull_request_event(head="contributor/octo-repo")))
    assert context.pull_request == PullRequest(number=PR_NUMBER, from_fork=True)


def test_context_of_a_pull_request_whose_fork_was_deleted(tmp_path):
    context = GitHubContext.from_env(runner_env(tmp_path, pull_request_event(head=None)))
    assert context.pull_request is not None
    assert context.pull_request.from_fork


def test_context_outside_a_pull_request_has_no_pull_request(tmp_path):
    env = runner_env(tmp_path, None, event_name="push")
    env["GITHUB_API_URL"] = ""  # the runner sometimes sets empty values
    context = GitHubContext.from_env(env)
    assert context.pull_request is None
    assert context.api_url == "https://api.github.com"
    assert GitHubContext.from_env({}).run_url is None


@pytest.mark.parametrize(
    ("event_file", "needle"),
    [
        (None, "GITHUB_EVENT_PATH is not set"),
        ("missing.json", "cannot read"),
        ("not json {", "not a JSON event payload"),
        ('{"action": "opened"}', "no pull_request object"),
        ('{"pull_request": {"number": "7"}}', "pull_request.number"),
        (b"\xff\xfe\x00garbage", "not a JSON event payload"),
    ],
)
def test_a_bad_event_file_on_a_pull_request_is_a_config_error(tmp_path, event_file, needle):
    env = runner_env(tmp_path, None)
    if event_file == "missing.json":
        env["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    elif event_file is not None:
        path = tmp_path / "event.json"
        path.write_bytes(event_file if isinstance(event_file, bytes) else event_file.encode())
        env["GITHUB_EVENT_PATH"] = str(path)

    with pytest.raises(ConfigError) as caught:
        GitHubContext.from_env(env)

    assert "GITHUB_EVENT_PATH" in str(caught.value)
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("GITHUB_API_URL", "api.github.com"), ("GITHUB_REPOSITORY", "no-slash"), ("GITHUB_REPOSITORY", "../x")],
)
def test_a_malformed_runner_variable_is_a_config_error_naming_it(tmp_path, name, value):
    env = runner_env(tmp_path, pull_request_event(head=REPOSITORY))
    env[name] = value
    with pytest.raises(ConfigError, match=name):
        GitHubContext.from_env(env)


# ---------------------------------------------------------------------------------------------------------------------
# Outputs and summary


def parse_outputs(path: Path) -> dict[str, str]:
    """Read GITHUB_OUTPUT the way the Linux runner does: lines end at "\n" only (a lone "\r" is data);
    `name=value`, or `name<<DELIMITER` then value lines up to a line that is exactly DELIMITER."""
    text = path.read_bytes().decode("utf-8")  # no universal newlines: they would turn "\r" into a line end
    outputs: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for value_line in lines:
                if value_line == delimiter:
                    break
                value.append(value_line)
            else:
                raise AssertionError(f"no closing delimiter for {name}")
            outputs[name] = "\n".join(value)
        else:
            name, single = line.split("=", 1)
            outputs[name] = single
    return outputs


def test_outputs_parse_back_with_multiline_values(tmp_path):
    path = tmp_path / "output.txt"
    path.write_text("earlier=kept\n", encoding="utf-8")
    outputs = {
        "verdict": "inconsistent",
        "p_values": '{"quantized": 0.0123, "gateway": 0.61}',
        "report_path": "out/report.md",
        "summary": "line one\nEOF\n\nline=three<<x\n",
        "empty": "",
    }

    write_outputs(path, outputs)

    assert parse_outputs(path) == {"earlier": "kept", **outputs}


def test_the_delimiter_never_collides_with_the_value(tmp_path, monkeypatch):
    drawn = iter(["a" * 32, "b" * 32])
    monkeypatch.setattr(github.secrets, "token_hex", lambda _n: next(drawn))
    path = tmp_path / "output.txt"
    value = f"before\nghadelimiter_{'a' * 32}\nafter"

    write_outputs(path, {"tricky": value})

    assert f"tricky<<ghadelimiter_{'b' * 32}\n" in path.read_text(encoding="utf-8")
    assert parse_outputs(path) == {"tricky": value}


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True), st.text(max_size=200), max_size=5)
)
def test_any_outputs_round_trip(tmp_path_factory, outputs):
    path = tmp_path_factory.getbasetemp() / "round-trip-output.txt"
    path.unlink(missing_ok=True)
    write_outputs(path, outputs)
    assert parse_outputs(path) == outputs


def test_a_bad_output_name_writes_nothing(tmp_path):
    path = tmp_path / "output.txt"
    with pytest.raises(ValueError):
        write_outputs(path, {"good": "1", "bad name": "2"})
    assert not path.exists()


def test_step_summary_appends(tmp_path):
    path = tmp_path / "summary.md"
    write_step_summary(path, "# one")
    write_step_summary(path, "# two\n")
    assert path.read_text(encoding="utf-8") == "# one\n# two\n"


def test_step_summary_is_cut_at_one_mebibyte(tmp_path, capsys):
    path = tmp_path / "summary.md"
    write_step_summary(path, "a" * 1_000_000)
    write_step_summary(path, "é" * 100_000)  # two bytes each: the cut must not split one

    data = path.read_bytes()
    assert len(data) <= 1024 * 1024
    assert data.decode("utf-8").endswith("*(summary truncated: GitHub shows at most 1 MiB per step)*\n")
    assert capsys.readouterr().out.startswith("::warning::")


# ---------------------------------------------------------------------------------------------------------------------
# Workflow commands


def test_annotations_escape_data_and_properties(capsys):
    annotate_error("stage quantized: p=0.01, 50% inconsistent\r\nsee summary", title="SimCT: quantized, 2/3")
    warning("100% sure")
    assert capsys.readouterr().out.splitlines() == [
        "::error title=SimCT%3A quantized%2C 2/3::stage quantized: p=0.01, 50%25 inconsistent%0D%0Asee summary",
        "::warning::100%25 sure",
    ]


def test_a_message_cannot_start_a_second_command(capsys):
    annotate_error("bad\n::set-env name=PATH::/evil\n::add-mask::x")
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("::error::bad%0A::set-env")


def test_mask_registers_the_secret_and_each_of_its_lines(capsys):
    mask("sk-abc%def")
    mask("line-one\nline-two")
    mask("")
    assert capsys.readouterr().out.splitlines() == [
        "::add-mask::sk-abc%25def",
        "::add-mask::line-one%0Aline-two",
        "::add-mask::line-one",
        "::add-mask::line-two",
    ]


def test_untrusted_output_is_wrapped_in_stop_commands(capsys):
    with untrusted_output():
        print("::error::injected by the model")
    with pytest.raises(RuntimeError), untrusted_output():
        raise RuntimeError("boom")

    lines = capsys.readouterr().out.splitlines()
    start = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[0])
    assert start is not None
    assert lines[1:] == ["::error::injected by the model", f"::{start[1]}::", lines[3], lines[4]]
    second = re.fullmatch(r"::stop-commands::([0-9a-f]{32})", lines[3])
    assert second is not None
    assert second[1] != start[1]  # a fresh token each time
    assert lines[4] == f"::{second[1]}::"  # resumed even though the block raised
