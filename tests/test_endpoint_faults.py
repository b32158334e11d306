"""Promise: an endpoint that throttles, dies, stalls or talks nonsense either ends in a response after retries,
or in one clean EndpointError line that names the stage, the path and the cause, and never the API key."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate

import pytest

from simct_ci.config import Sampling, StageConfig
from simct_ci.endpoints import ChatEndpoint
from simct_ci.errors import EndpointError
from simct_ci.responses import Prompt
from simct_ci.retry import RetryPolicy, parse_retry_after
from tests.support import fault_server as fs
from tests.support.fault_server import FaultServer, echo_text

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
PROMPT = Prompt("capital", "What is the capital of France?", "closed")
KEY = "sk-test-5ecret-VALUE-123"


def make_endpoint(
    url: str,
    *,
    retry: RetryPolicy = FAST,
    timeout: float = 2.0,
    api: str = "chat",
    api_key: str | None = None,
    system_prompt: str | None = None,
    seed: int | None = 1,
    sleep=time.sleep,
) -> ChatEndpoint:
    stage = StageConfig(
        name="quantized",
        base_url=url,
        model="smollm2-q3",
        api=api,  # type: ignore[arg-type]
        api_key=api_key,
        system_prompt=system_prompt,
        timeout=timeout,
    )
    return ChatEndpoint(
        stage, Sampling(samples=3, temperature=0.5, top_p=0.9, max_tokens=32, seed=seed), retry, sleep=sleep
    )


def assert_clean(message: str, cause: str) -> None:
    assert message.startswith("stage quantized: POST /v1/chat/completions: "), message
    assert cause in message
    assert "\n" not in message and "\r" not in message
    assert KEY not in message


# -- the request itself --------------------------------------------------------------------------------------


def test_chat_request_carries_the_sampling_settings_and_a_seed_per_sample(fault_server: FaultServer) -> None:
    with make_endpoint(fault_server.url, system_prompt="Be brief.") as endpoint:
        text = endpoint.complete(PROMPT, 2)
    request = fault_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "smollm2-q3",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT.text}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 32,
        "seed": 3,  # seed 1 + sample 2
        "n": 1,
    }
    assert "authorization" not in request.headers
    assert text == echo_text(request.body) == f"echo seed=3: {PROMPT.text}"


def test_completion_api_posts_a_prompt_with_the_system_prompt_in_front(fault_server: FaultServer) -> None:
    with make_endpoint(fault_server.url, api="completion", system_prompt="Be brief.") as endpoint:
        text = endpoint.complete(PROMPT, 0)
    request = fault_server.requests[0]
    assert request.path == "/v1/completions"
    assert request.body["prompt"] == f"Be brief.\n\n{PROMPT.text}"
    assert "messages" not in request.body
    assert text == f"echo seed=1: Be brief.\n\n{PROMPT.text}"


def test_no_seed_configured_sends_no_seed(fault_server: FaultServer) -> None:
    with make_endpoint(fault_server.url, seed=None) as endpoint:
        endpoint.complete(PROMPT, 1)
    assert "seed" not in fault_server.requests[0].body


def test_api_key_goes_only_in_the_authorization_header(fault_server: FaultServer) -> None:
    with make_endpoint(fault_server.url, api_key=KEY) as endpoint:
        endpoint.complete(PROMPT, 0)
    request = fault_server.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(request.body)


# -- faults that pass after a retry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        fs.status(429),
        fs.status(429, retry_after="0"),
        fs.status(500),
        fs.status(502),
        fs.status(503),
        fs.status(504),
        fs.reset(),
        fs.timeout(1.5),
        fs.slow_body(3.0),
    ],
    ids=["429", "429-retry-after", "500", "502", "503", "504", "reset", "timeout", "slow-body"],
)
def test_transient_fault_is_retried_and_the_retry_succeeds(fault_server: FaultServer, fault: fs.Fault) -> None:
    fault_server.script(fault)
    started = time.monotonic()
    with make_endpoint(fault_server.url, timeout=0.4) as endpoint:
        text = endpoint.complete(PROMPT, 0)
    assert text == f"echo seed=1: {PROMPT.text}"
    assert [r.fault for r in fault_server.requests] == [fault.kind, "ok"]
    # Neither a stalled server nor a trickling body holds an attempt much past the timeout.
    assert time.monotonic() - started < 1.5


def test_fault_that_persists_gives_up_after_max_retries(fault_server: FaultServer) -> None:
    fault_server.script(*[fs.status(503)] * 4)
    with make_endpoint(fault_server.url) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert len(fault_server.requests) == 4  # 1 + max_retries
    # The scripted body spans two lines; the message stays one.
    assert_clean(str(caught.value), "HTTP 503: {")
    assert '{"error": "scripted 503"} second line' in str(caught.value)
    assert str(caught.value).endswith("(gave up after 4 attempts)")


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (fs.timeout(1.0), "read timed out (gave up after 2 attempts)"),
        (fs.slow_body(2.0), "timed out while reading the response body (gave up after 2 attempts)"),
    ],
    ids=["timeout", "slow-body"],
)
def test_endpoint_that_stays_slow_fails_within_its_timeouts(
    fault_server: FaultServer, fault: fs.Fault, cause: str
) -> None:
    fault_server.script(fault, fault)
    started = time.monotonic()
    retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.01)
    with make_endpoint(fault_server.url, timeout=0.3, retry=retry) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert_clean(str(caught.value), cause)
    assert time.monotonic() - started < 1.5


def test_reset_every_time_fails_with_a_connection_cause(fault_server: FaultServer) -> None:
    fault_server.script(fs.reset(), fs.reset())
    retry = RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.01)
    with make_endpoint(fault_server.url, retry=retry) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    message = str(caught.value)
    assert_clean(message, "(gave up after 2 attempts)")
    assert "connection reset by the server" in message or "closed the connection without a response" in message


def test_connection_refused_is_retried_then_reported() -> None:
    retry = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.01)
    with make_endpoint(fs.refused_url(), retry=retry) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert_clean(str(caught.value), "connection refused (gave up after 3 attempts)")


def test_server_that_comes_back_after_refusing_is_reached() -> None:
    port = fs.free_port()
    servers: list[FaultServer] = []
    starter = threading.Timer(0.3, lambda: servers.append(FaultServer(port).start()))
    starter.start()
    try:
        retry = RetryPolicy(max_retries=20, base_delay=0.05, max_delay=0.1)
        with make_endpoint(f"http://127.0.0.1:{port}/v1", retry=retry) as endpoint:
            assert endpoint.complete(PROMPT, 0) == f"echo seed=1: {PROMPT.text}"
    finally:
        starter.join()
        for server in servers:
            server.stop()


# -- Retry-After ---------------------------------------------------------------------------------------------


def test_retry_after_seconds_is_waited_for(fault_server: FaultServer) -> None:
    fault_server.script(fs.status(429, retry_after="1"))
    retry = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=5.0)  # backoff alone would be ~0 s
    started = time.monotonic()
    with make_endpoint(fault_server.url, retry=retry) as endpoint:
        endpoint.complete(PROMPT, 0)
    assert 0.95 <= time.monotonic() - started < 2.0


def test_retry_after_on_5xx_is_capped_at_max_delay(fault_server: FaultServer) -> None:
    fault_server.script(fs.status(503, retry_after="3600"))
    retry = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.3)
    started = time.monotonic()
    with make_endpoint(fault_server.url, retry=retry) as endpoint:
        endpoint.complete(PROMPT, 0)
    assert 0.28 <= time.monotonic() - started < 1.2


def test_retry_after_http_date_sets_the_delay(fault_server: FaultServer) -> None:
    fault_server.script(fs.status(503, retry_after=formatdate(time.time() + 30, usegmt=True)))
    waits: list[float] = []
    retry = RetryPolicy(max_retries=2, base_delay=0.001, max_delay=60.0)
    with make_endpoint(fault_server.url, retry=retry, sleep=waits.append) as endpoint:
        endpoint.complete(PROMPT, 0)
    assert len(waits) == 1 and 28.0 <= waits[0] <= 30.0


def test_backoff_without_retry_after_is_jittered_exponential(fault_server: FaultServer) -> None:
    fault_server.script(*[fs.status(429)] * 5)
    waits: list[float] = []
    retry = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=6.0)
    with make_endpoint(fault_server.url, retry=retry, sleep=waits.append) as endpoint:
        endpoint.complete(PROMPT, 0)
    assert len(waits) == 5
    for attempt, wait in enumerate(waits):
        assert 0.0 <= wait <= min(6.0, 2.0**attempt)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry at once
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(header, now=now) == seconds


# -- faults that retrying cannot fix -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (fs.status(400), "HTTP 400: {"),
        (fs.status(401), "HTTP 401: {"),
        (fs.status(404), "HTTP 404: {"),
        (fs.status(422), "HTTP 422: {"),
        (fs.malformed_json(), 'response is not valid JSON: {"choices": [{"message": {"content": "cut'),
        (fs.no_choices(), "response has no choices[0]: "),
        (fs.huge(declared_length=True), "response larger than 4 MiB"),
        (fs.huge(declared_length=False), "response larger than 4 MiB"),
        (fs.redirect(301), "HTTP 301: redirects are not followed; set base_url to the final URL"),
        (fs.redirect(307), "HTTP 307: redirects are not followed"),
    ],
    ids=["400", "401", "404", "422", "malformed-json", "no-choices", "huge", "huge-undeclared", "301", "307"],
)
def test_permanent_fault_fails_at_once_with_one_clean_line(
    fault_server: FaultServer, fault: fs.Fault, cause: str
) -> None:
    fault_server.script(fault)
    with make_endpoint(fault_server.url, api_key=KEY) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert len(fault_server.requests) == 1  # not retried
    assert_clean(str(caught.value), cause)
    assert len(str(caught.value)) < 400


def test_error_body_echoing_the_api_key_is_scrubbed(fault_server: FaultServer) -> None:
    fault_server.script(fs.echo_auth(401))
    with make_endpoint(fault_server.url, api_key=KEY) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert_clean(str(caught.value), "HTTP 401: ")
    assert "Bearer ***" in str(caught.value)


def test_answer_echoing_the_api_key_is_scrubbed_before_it_reaches_any_file(fault_server: FaultServer) -> None:
    fault_server.script(fs.echo_auth(200))
    with make_endpoint(fault_server.url, api_key=KEY) as endpoint:
        assert endpoint.complete(PROMPT, 0) == "you sent Bearer ***"


def test_query_string_and_userinfo_of_base_url_stay_out_of_messages(fault_server: FaultServer) -> None:
    fault_server.script(fs.status(400))
    url = f"http://user:{KEY}@127.0.0.1:{fault_server.port}/v1?api-version=1&key={KEY}"
    with make_endpoint(url) as endpoint, pytest.raises(EndpointError) as caught:
        endpoint.complete(PROMPT, 0)
    assert fault_server.requests[0].path == f"/v1/chat/completions?api-version=1&key={KEY}"
    assert_clean(str(caught.value), "HTTP 400")


# -- odd but valid content -----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "completion"])
@pytest.mark.parametrize(
    ("fault", "text"),
    [(fs.null_content(), ""), (fs.empty_content(), ""), (fs.invalid_utf8(), "caf\ufffd \ufffd\ufffd ok")],
    ids=["null-content", "empty-content", "invalid-utf8"],
)
def test_odd_content_is_kept_as_text(fault_server: FaultServer, fault: fs.Fault, text: str, api: str) -> None:
    fault_server.script(fault)
    with make_endpoint(fault_server.url, api=api) as endpoint:
        assert endpoint.complete(PROMPT, 0) == text
    assert len(fault_server.requests) == 1


def test_content_given_as_text_parts_is_joined(fault_server: FaultServer) -> None:
    fault_server.script(fs.text_parts())
    with make_endpoint(fault_server.url) as endpoint:
        assert endpoint.complete(PROMPT, 0) == "Paris"


# -- concurrency ---------------------------------------------------------------------------------------------


def test_one_endpoint_serves_many_threads_and_each_gets_its_own_answer(fault_server: FaultServer) -> None:
    fault_server.default = fs.ok(delay=0.1)
    fault_server.script_for("prompt 3", fs.status(503))  # one retry in the middle changes nobody else's answer
    prompts = [Prompt(f"p{i}", f"prompt {i}") for i in range(8)]
    with make_endpoint(fault_server.url) as endpoint, ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda p: endpoint.complete(p, 0), prompts))
    assert texts == [f"echo seed=1: prompt {i}" for i in range(8)]
    assert fault_server.max_in_flight >= 4
    assert len(fault_server.requests) == 9
