"""When to try a job again, and how fast to run: pure functions and a token bucket.

A policy says how many attempts a delivery gets (the first included) and how
long to wait before each retry, either as an explicit schedule or as an
exponential range. ``next_delay`` turns a policy, the number of attempts made
and a random source into the wait before the next attempt, or ``None`` when the
attempts are used up. Every wait is jittered by up to ±20% so that deliveries
failed together do not retry together; a receiver's ``Retry-After`` replaces
the scheduled wait, clamped to the policy's bounds and jittered upwards only
(never earlier than the receiver asked, unless the policy's maximum says so).

Time and chance are parameters: a test of an 8-attempt backoff passes a seeded
``random.Random`` and reads the delays, it does not wait for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.errors import PolicyError

__all__ = [
    "JITTER",
    "STANDARD_WEBHOOKS_SCHEDULE",
    "ExponentialPolicy",
    "RetryPolicy",
    "SchedulePolicy",
    "TokenBucket",
    "default_policy",
    "next_delay",
    "stored_policy",
]

JITTER = 0.2

STANDARD_WEBHOOKS_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""The waits before retries 1..7 (5s, 5m, 30m, 2h, 5h, 10h, 10h); the first attempt is immediate."""


class Random(Protocol):
    """What ``next_delay`` needs of a random source; ``random.Random`` has it."""

    def uniform(self, a: float, b: float, /) -> float: ...


@dataclass(frozen=True)
class SchedulePolicy:
    """``attempts`` attempts, waiting ``delays[i]`` seconds before retry ``i + 1``.

    When there are more retries than delays, the last delay repeats.
    """

    attempts: int
    delays: tuple[float, ...]

    def __post_init__(self) -> None:
        _check_attempts(self.attempts)
        object.__setattr__(self, "delays", tuple(self.delays))
        if not self.delays:
            raise PolicyError("a retry schedule needs at least one delay")
        if any(not math.isfinite(d) or d < 0 for d in self.delays):
            raise PolicyError("retry delays must be finite and not negative")

    @property
    def bounds(self) -> tuple[float, float]:
        return min(self.delays), max(self.delays)

    def base_delay(self, retry: int) -> float:
        return self.delays[min(retry, len(self.delays)) - 1]


@dataclass(frozen=True)
class ExponentialPolicy:
    """``attempts`` attempts, the waits growing geometrically from ``minimum`` to ``maximum``.

    The first retry waits ``minimum``, the last ``maximum``, and each wait is the
    previous one times the same factor.
    """

    attempts: int
    minimum: float
    maximum: float

    def __post_init__(self) -> None:
        _check_attempts(self.attempts)
        if not (math.isfinite(self.minimum) and math.isfinite(self.maximum)):
            raise PolicyError("an exponential retry range must be finite")
        if not 0 < self.minimum <= self.maximum:
            raise PolicyError(
                f"an exponential retry range needs 0 < minimum <= maximum, "
                f"got {self.minimum:g}s .. {self.maximum:g}s"
            )

    @property
    def bounds(self) -> tuple[float, float]:
        return self.minimum, self.maximum

    def base_delay(self, retry: int) -> float:
        retries = self.attempts - 1
        if retries <= 1:
            return self.minimum
        fraction = (retry - 1) / (retries - 1)
        return float(self.minimum * (self.maximum / self.minimum) ** fraction)


RetryPolicy = SchedulePolicy | ExponentialPolicy


def default_policy() -> SchedulePolicy:
    """The Standard Webhooks schedule: 8 attempts, now then 5s, 5m, 30m, 2h, 5h, 10h, 10h."""
    return SchedulePolicy(attempts=8, delays=STANDARD_WEBHOOKS_SCHEDULE)


def stored_policy(retry: Mapping[str, Any]) -> RetryPolicy:
    """The policy of a retry clause as a job's payload stores it:
    ``{"attempts", "backoff", "delays"}`` (``exponential`` from the first delay
    to the last; ``every`` and ``schedule`` their delays in turn).

    Raises:
        PolicyError: the clause holds no policy.
    """
    try:
        attempts = int(retry["attempts"])
        delays = tuple(float(d) for d in retry["delays"])
        exponential = retry["backoff"] == "exponential"
    except (KeyError, TypeError, ValueError):
        raise PolicyError(f"not a retry policy: {retry!r}") from None
    if exponential:
        if not delays:
            raise PolicyError("an exponential retry range needs a first and a last delay")
        return ExponentialPolicy(attempts, delays[0], delays[-1])
    return SchedulePolicy(attempts, delays)


def next_delay(
    policy: RetryPolicy,
    attempt_number: int,
    rng: Random,
    *,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait after attempt ``attempt_number`` (1-based), or None when none is left.

    Args:
        policy: the delivery's retry policy.
        attempt_number: how many attempts were made, the one that just failed included.
        rng: the random source of the jitter.
        retry_after: the receiver's ``Retry-After`` in seconds, when it sent one.
    """
    if attempt_number < 1:
        raise PolicyError(f"attempt numbers start at 1, got {attempt_number}")
    if attempt_number >= policy.attempts:
        return None
    low, high = policy.bounds
    if retry_after is not None and math.isfinite(retry_after):
        asked = min(max(retry_after, low), high)
        return min(asked * (1 + rng.uniform(0, JITTER)), high)
    return policy.base_delay(attempt_number) * (1 + rng.uniform(-JITTER, JITTER))


def _check_attempts(attempts: int) -> None:
    if attempts < 1:
        raise PolicyError(f"a retry policy needs at least 1 attempt, got {attempts}")


class TokenBucket:
    """At most ``rate`` acquisitions a second on average, in bursts of at most ``burst``.

    The bucket does not sleep: ``try_acquire`` answers at once and ``wait_time``
    says how long until a token is there, so the caller schedules the work.
    """

    def __init__(self, rate: float, *, burst: float = 1.0, clock: Callable[[], float]) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise PolicyError(f"a rate limit must be a positive number per second, got {rate}")
        if not (math.isfinite(burst) and burst >= 1):
            raise PolicyError(f"a rate limit's burst must be at least 1, got {burst}")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def _check(self, tokens: float) -> None:
        if not 0 < tokens <= self._burst:
            raise PolicyError(
                f"can take 0 < tokens <= burst ({self._burst:g}) at once, not {tokens}"
            )

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` when the bucket holds them; otherwise take nothing."""
        self._check(tokens)
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``try_acquire(tokens)`` would succeed; 0 when it would now."""
        self._check(tokens)
        self._refill()
        missing = tokens - self._tokens
        return 0.0 if missing <= 0 else missing / self._rate
