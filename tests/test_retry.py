"""The shared retry timing: backoff doubles from base_delay up to max_delay, jitter only ever shortens a wait and
by at most its share, and a Retry-After header reads as seconds, an HTTP-date, or nothing at all."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simct_ci import endpoints, github, retry
from simct_ci.retry import RetryPolicy, parse_retry_after

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch):
    """Pin the random draw U of the jitter formula: `draws(u)` makes every backoff use that U."""

    def pin(u: float) -> None:
        monkeypatch.setattr(retry.random, "random", lambda: u)

    return pin


# -- the policy ----------------------------------------------------------------------------------------------


def test_defaults_are_four_retries_doubling_from_one_second_to_a_minute_with_full_jitter() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_delay, policy.max_delay, policy.jitter) == (4, 1.0, 60.0, 1.0)
    assert policy.attempts == 5


def test_the_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RetryPolicy().max_retries = 9  # type: ignore[misc]


@pytest.mark.parametrize("retries", [0, 1, 7])
def test_attempts_count_the_first_try(retries: int) -> None:
    assert RetryPolicy(max_retries=retries).attempts == retries + 1


def test_backoff_without_jitter_doubles_from_base_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0, jitter=0.0)
    assert [policy.backoff(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize("n", [65, 1_000, 1_100, 10**9])
def test_a_huge_retry_number_is_capped_and_does_not_overflow(n: int) -> None:
    assert RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.0).backoff(n) == 30.0
    assert RetryPolicy(base_delay=1e300, max_delay=math.inf, jitter=0.0).backoff(n) == math.inf
    assert RetryPolicy(base_delay=0.0, max_delay=30.0, jitter=0.0).backoff(n) == 0.0


def test_a_tiny_base_delay_keeps_doubling_past_64_retries() -> None:
    policy = RetryPolicy(base_delay=1e-300, max_delay=60.0, jitter=0.0)
    assert policy.backoff(66) == 2 * policy.backoff(65) == 4 * policy.backoff(64)
    assert policy.backoff(2000) == 60.0


@pytest.mark.parametrize(
    ("jitter", "u", "wait"),
    [
        (0.0, 0.999, 8.0),  # no jitter: the draw does not matter
        (0.5, 0.0, 8.0),  # the draw's low end keeps the whole backoff
        (0.5, 0.5, 6.0),
        (0.5, 0.999, 4.004),  # ... its high end keeps just over half
        (1.0, 0.0, 8.0),
        (1.0, 0.75, 2.0),
        (1.0, 0.999, 0.008),  # full jitter goes down to almost nothing
    ],
)
def test_jitter_takes_its_share_of_the_backoff_times_the_draw(draws, jitter: float, u: float, wait: float) -> None:
    draws(u)
    assert RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=jitter).backoff(4) == pytest.approx(wait)


@given(
    n=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=1000.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_every_backoff_lies_between_its_jittered_floor_and_its_cap(n: int, base: float, cap: float, jitter: float):
    policy = RetryPolicy(base_delay=base, max_delay=cap, jitter=jitter)
    nominal = min(cap, base * 2.0 ** (n - 1))
    wait = policy.backoff(n)
    assert nominal * (1 - jitter) <= wait <= nominal <= cap
    if nominal >= 1e-9:
        assert wait > 0  # even full jitter draws from (0, nominal]: it never turns a backoff into a busy loop


def test_full_jitter_spreads_waits_over_the_whole_range() -> None:
    random.seed(20151021)
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0, jitter=1.0)
    waits = [policy.backoff(3) for _ in range(2_000)]
    assert all(0.0 < wait <= 4.0 for wait in waits)
    assert min(waits) < 0.1 and max(waits) > 3.9  # both ends are reached, not one fixed point
    assert 1.8 < sum(waits) / len(waits) < 2.2  # uniform: the mean is half the cap


def test_half_jitter_never_goes_below_half() -> None:
    random.seed(7)
    policy = RetryPolicy(base_delay=2.0, max_delay=60.0, jitter=0.5)
    waits = [policy.backoff(2) for _ in range(2_000)]
    assert all(2.0 < wait <= 4.0 for wait in waits)
    assert min(waits) < 2.1 and max(waits) > 3.9


def test_a_server_retry_after_wins_over_the_backoff_but_not_over_max_delay(draws) -> None:
    draws(0.0)
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(1, 0.0) == 0.0  # "now" is an answer, not a missing one
    assert policy.delay(1, 3600.0) == 10.0
    assert policy.delay(3, None) == 4.0 == policy.backoff(3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
        ({"base_delay": -0.1}, "negative"),
        ({"max_delay": -1.0}, "negative"),
        ({"base_delay": math.nan}, "negative"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": math.nan}, "jitter"),
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, -1])
def test_retries_are_numbered_from_one(n: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().backoff(n)


def test_both_clients_use_the_shared_policy() -> None:
    assert endpoints.RetryPolicy is RetryPolicy
    assert github.RetryPolicy is RetryPolicy
    # GitHub keeps its own numbers: five attempts, each backoff at least half its nominal length.
    assert RetryPolicy(max_retries=4, base_delay=1.0, max_delay=60.0, jitter=0.5) == github.DEFAULT_RETRY


# -- Retry-After ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("120", 120.0),
        (" 42\t", 42.0),
        ("2.5", 2.5),
        ("86400", 86400.0),  # a long demand is returned as is: capping it is the caller's decision
    ],
)
def test_delta_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("header", ["-3", "-0.5", "-86400"])
def test_a_negative_delay_means_retry_at_once(header: str) -> None:
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),  # IMF-fixdate, the form servers send
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wed, 21 Oct 2015 09:28:10 +0200", 10.0),  # a zone other than GMT is honoured
        ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),  # obsolete RFC 850 form
        ("Wed Oct 21 07:28:10 2015", 10.0),  # obsolete asctime form: no zone, and HTTP means GMT
        ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # now
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry at once
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_http_date_is_measured_from_the_clock_when_now_is_left_out() -> None:
    seconds = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert seconds is not None and 28.0 <= seconds <= 30.0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "soon",
        "30s",
        "nan",
        "inf",
        "-inf",
        "1e999",  # overflows to infinity
        "Wed, 32 Oct 2015 07:28:10 GMT",  # no such day
        "Wed, 21 Oct 2015 25:61:00 GMT",
        "21 Oct",
        "\x00\x7f",
    ],
)
def test_an_absent_or_unreadable_header_gives_none(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


@given(st.text(max_size=60))
def test_any_header_gives_a_finite_non_negative_wait_or_none(header: str) -> None:
    seconds = parse_retry_after(header, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0.0)
