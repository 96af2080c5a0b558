"""Retry policies, jitter, Retry-After clamping and the token bucket, on fake time."""

from __future__ import annotations

import random

import pytest

from connectors import PolicyError
from engine.jobs.policy import (
    STANDARD_WEBHOOKS_SCHEDULE,
    ExponentialPolicy,
    SchedulePolicy,
    TokenBucket,
    default_policy,
    next_delay,
    stored_policy,
)


class Fixed:
    """A random source that always answers one end of the range, or its middle."""

    def __init__(self, where: str) -> None:
        self.where = where

    def uniform(self, a: float, b: float, /) -> float:
        return {"low": a, "high": b, "middle": (a + b) / 2}[self.where]


def test_default_policy_is_the_standard_webhooks_schedule() -> None:
    policy = default_policy()
    assert policy.attempts == 8
    middle = Fixed("middle")
    delays = [next_delay(policy, n, middle) for n in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert STANDARD_WEBHOOKS_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)


@pytest.mark.parametrize("attempt", range(1, 8))
def test_jitter_stays_within_twenty_percent(attempt: int) -> None:
    policy = default_policy()
    base = STANDARD_WEBHOOKS_SCHEDULE[attempt - 1]
    assert next_delay(policy, attempt, Fixed("low")) == pytest.approx(base * 0.8)
    assert next_delay(policy, attempt, Fixed("high")) == pytest.approx(base * 1.2)
    rng = random.Random(attempt)
    seen = [next_delay(policy, attempt, rng) for _ in range(200)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in seen)
    assert len(set(seen)) > 100, "the jitter spreads the delays"


def test_a_seeded_random_source_gives_the_same_delays() -> None:
    policy = default_policy()
    first = [next_delay(policy, n, random.Random(7)) for n in range(1, 8)]
    second = [next_delay(policy, n, random.Random(7)) for n in range(1, 8)]
    assert first == second


def test_a_schedule_repeats_its_last_delay_and_stops_at_the_attempt_count() -> None:
    policy = SchedulePolicy(attempts=5, delays=(1, 2))
    delays = [next_delay(policy, n, Fixed("middle")) for n in range(1, 7)]
    assert delays == [1, 2, 2, 2, None, None]


def test_a_single_attempt_never_retries() -> None:
    assert next_delay(SchedulePolicy(attempts=1, delays=(5,)), 1, Fixed("middle")) is None


def test_exponential_range_grows_geometrically_from_minimum_to_maximum() -> None:
    policy = ExponentialPolicy(attempts=5, minimum=10, maximum=10_000)
    delays = [next_delay(policy, n, Fixed("middle")) for n in range(1, 6)]
    assert delays[:4] == pytest.approx([10, 100, 1000, 10_000])
    assert delays[4] is None


def test_exponential_with_one_retry_waits_the_minimum() -> None:
    policy = ExponentialPolicy(attempts=2, minimum=5, maximum=3600)
    assert next_delay(policy, 1, Fixed("middle")) == 5
    assert next_delay(policy, 2, Fixed("middle")) is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(120, 120), (1, 5), (0, 5), (-3, 5), (10**9, 36000)],
)
def test_retry_after_is_clamped_to_the_policy_bounds(retry_after: float, expected: float) -> None:
    delay = next_delay(default_policy(), 2, Fixed("low"), retry_after=retry_after)
    assert delay == expected


def test_retry_after_is_jittered_upwards_only_and_never_past_the_maximum() -> None:
    policy = ExponentialPolicy(attempts=4, minimum=1, maximum=100)
    assert next_delay(policy, 1, Fixed("high"), retry_after=50) == pytest.approx(60)
    assert next_delay(policy, 1, Fixed("high"), retry_after=90) == 100
    assert next_delay(policy, 1, Fixed("low"), retry_after=50) == 50


def test_retry_after_does_not_extend_the_attempt_count() -> None:
    assert next_delay(default_policy(), 8, Fixed("middle"), retry_after=10) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: SchedulePolicy(attempts=0, delays=(1,)),
        lambda: SchedulePolicy(attempts=3, delays=()),
        lambda: SchedulePolicy(attempts=3, delays=(1, -1)),
        lambda: SchedulePolicy(attempts=3, delays=(float("inf"),)),
        lambda: ExponentialPolicy(attempts=3, minimum=0, maximum=10),
        lambda: ExponentialPolicy(attempts=3, minimum=20, maximum=10),
        lambda: ExponentialPolicy(attempts=3, minimum=1, maximum=float("nan")),
    ],
)
def test_an_invalid_policy_is_refused(make: object) -> None:
    with pytest.raises(PolicyError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("retry", "policy"),
    [
        (
            {"attempts": 5, "backoff": "exponential", "delays": [1, 60]},
            ExponentialPolicy(5, 1.0, 60.0),
        ),
        ({"attempts": 3, "backoff": "every", "delays": [30]}, SchedulePolicy(3, (30.0,))),
        (
            {"attempts": 4, "backoff": "schedule", "delays": [5, 300, 1800]},
            SchedulePolicy(4, (5.0, 300.0, 1800.0)),
        ),
    ],
)
def test_a_stored_retry_clause_is_its_policy(retry: dict[str, object], policy: object) -> None:
    assert stored_policy(retry) == policy


@pytest.mark.parametrize(
    "retry",
    [
        {},
        {"attempts": 3, "backoff": "exponential"},
        {"attempts": "three", "backoff": "every", "delays": [1]},
        {"attempts": 3, "backoff": "exponential", "delays": []},
        {"attempts": 0, "backoff": "every", "delays": [1]},
        {"attempts": 3, "backoff": "schedule", "delays": [-1]},
        {"attempts": 3, "backoff": "every", "delays": None},
    ],
)
def test_a_stored_retry_clause_that_is_no_policy_is_refused(retry: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        stored_policy(retry)


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(PolicyError, match="start at 1"):
        next_delay(default_policy(), 0, Fixed("middle"))


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_rate_and_no_more() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=2, clock=time)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    assert bucket.wait_time() == pytest.approx(0.5)
    time.now += 0.25
    assert not bucket.try_acquire()
    assert bucket.wait_time() == pytest.approx(0.25)
    time.now += 0.25
    assert bucket.wait_time() == 0
    assert bucket.try_acquire()


def test_token_bucket_counts_over_a_long_run() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=10, burst=5, clock=time)
    granted = 0
    for _ in range(10_000):  # 100 fake seconds in steps of 10ms
        time.now += 0.01
        while bucket.try_acquire():
            granted += 1
    assert 1000 <= granted <= 1005


def test_token_bucket_bursts_after_idling_but_never_beyond_the_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=1, burst=3, clock=time)
    time.now += 3600
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    time = FakeTime()
    bucket = TokenBucket(rate=1, clock=time)
    assert bucket.try_acquire()
    time.now -= 100
    assert not bucket.try_acquire()
    time.now += 1
    assert bucket.try_acquire()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0.5)])
def test_token_bucket_refuses_a_bad_rate(rate: float, burst: float) -> None:
    with pytest.raises(PolicyError):
        TokenBucket(rate=rate, burst=burst, clock=FakeTime())


def test_token_bucket_refuses_more_tokens_than_the_burst() -> None:
    bucket = TokenBucket(rate=1, burst=2, clock=FakeTime())
    with pytest.raises(PolicyError):
        bucket.try_acquire(3)
