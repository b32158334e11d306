"""Retry timing shared by the HTTP clients: one backoff policy and one Retry-After parser.

What to retry, and what a server's demand to wait means, stays with each client: `endpoints` caps a Retry-After
at max_delay; `github` gives up on a longer demand and also reads GitHub's own rate-limit headers.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to back off: exponential backoff, capped, with jitter.

    The backoff before retry number n (1-based: n = 1 follows the first failed attempt) is

        cap = min(max_delay, base_delay * 2 ** (n - 1))
        wait = cap * (1 - jitter * U),  U uniform in [0, 1)

    so a wait always lies in (cap * (1 - jitter), cap]. jitter = 1 is "full jitter", uniform over (0, cap], which
    spreads out clients that failed together so they do not come back together; jitter = 0 makes every wait exact
    (tests); 0.5 keeps at least half of each backoff.
    """

    max_retries: int = 4  # retries after the first attempt: a request is tried at most max_retries + 1 times
    base_delay: float = 1.0  # backoff cap before the first retry, in seconds; doubles with every retry
    max_delay: float = 60.0  # no backoff exceeds it; also the bound on a server's Retry-After (see `delay`)
    jitter: float = 1.0  # share of each backoff drawn at random, from 0 (none) to 1 (full jitter)

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"RetryPolicy.max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not (self.base_delay >= 0 and self.max_delay >= 0):  # written so that NaN fails too
            raise ValueError("RetryPolicy delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter!r}")

    @property
    def attempts(self) -> int:
        """Tries of one request, the first included."""
        return self.max_retries + 1

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based) when the server did not say how long."""
        if retry < 1:
            raise ValueError(f"retries are numbered from 1, got {retry}")
        try:
            doubled = math.ldexp(self.base_delay, retry - 1)  # base_delay * 2 ** (retry - 1), exactly
        except OverflowError:  # past ~1000 doublings of a non-zero base_delay
            doubled = math.inf
        cap = min(self.max_delay, doubled)
        return cap * (1.0 - self.jitter * random.random())

    def delay(self, retry: int, retry_after: float | None) -> float:
        """The wait before retry number `retry`: the server's Retry-After if it gave one, cut to max_delay;
        otherwise the jittered backoff."""
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        return self.backoff(retry)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header value: delta-seconds or an HTTP-date.

    None when the header is absent, empty or unreadable (NaN and infinity included). Fractions are accepted
    although the RFC says an integer; a negative number or a date in the past gives 0.0, "retry at once". All three
    HTTP-date forms are read, a date without a zone as GMT. `now` is the Unix time an HTTP-date is measured from,
    time.time() when left out.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # asctime form or "-0000": an HTTP-date is always GMT (RFC 9110, 5.6.7)
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
