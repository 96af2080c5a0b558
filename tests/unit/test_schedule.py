"""Cron slots in a time zone: each wall time fired once, across spring-forward and fall-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.workflows.schedule import Slot, next_slot

NEW_YORK = "America/New_York"  # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00
PARIS = "Europe/Paris"  # 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def slots(cron: str, zone: str | None, after: datetime, count: int) -> list[Slot]:
    """``count`` slots in a row, each found from the one before."""
    found: list[Slot] = []
    previous: datetime | Slot = after
    for _ in range(count):
        previous = next_slot(cron, zone, previous)
        found.append(previous)
    return found


def fired(found: list[Slot]) -> list[tuple[str, str]]:
    return [(slot.key(), slot.at.strftime("%Y-%m-%dT%H:%M")) for slot in found]


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # Spring forward: 02:30 does not exist on the 8th; it fires at 02:30 EST (03:30 EDT).
        (
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 3, 6, 12),
            [
                ("2026-03-07T02:30", "2026-03-07T07:30"),
                ("2026-03-08T02:30", "2026-03-08T07:30"),
                ("2026-03-09T02:30", "2026-03-09T06:30"),
            ],
        ),
        # Fall back: 02:30 happens once (after the repeated hour), now in EST.
        (
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 10, 30, 12),
            [
                ("2026-10-31T02:30", "2026-10-31T06:30"),
                ("2026-11-01T02:30", "2026-11-01T07:30"),
                ("2026-11-02T02:30", "2026-11-02T07:30"),
            ],
        ),
        # Fall back: 01:30 happens twice on the 1st; it fires at the first (EDT).
        (
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 10, 30, 12),
            [
                ("2026-10-31T01:30", "2026-10-31T05:30"),
                ("2026-11-01T01:30", "2026-11-01T05:30"),
                ("2026-11-02T01:30", "2026-11-02T06:30"),
            ],
        ),
        # Hourly over the gap: 02:00 fires at 03:00 EDT, so 03:00 itself (the same
        # instant) is not fired again.
        (
            "0 * * * *",
            NEW_YORK,
            utc(2026, 3, 8, 5, 30),
            [
                ("2026-03-08T01:00", "2026-03-08T06:00"),
                ("2026-03-08T02:00", "2026-03-08T07:00"),
                ("2026-03-08T04:00", "2026-03-08T08:00"),
                ("2026-03-08T05:00", "2026-03-08T09:00"),
            ],
        ),
        # Hourly over the repeated hour: 01:00 fires once, at its first occurrence.
        (
            "0 * * * *",
            NEW_YORK,
            utc(2026, 11, 1, 3, 30),
            [
                ("2026-11-01T00:00", "2026-11-01T04:00"),
                ("2026-11-01T01:00", "2026-11-01T05:00"),
                ("2026-11-01T02:00", "2026-11-01T07:00"),
                ("2026-11-01T03:00", "2026-11-01T08:00"),
            ],
        ),
        (
            "30 2 * * *",
            PARIS,
            utc(2026, 3, 27, 12),
            [
                ("2026-03-28T02:30", "2026-03-28T01:30"),
                ("2026-03-29T02:30", "2026-03-29T01:30"),
                ("2026-03-30T02:30", "2026-03-30T00:30"),
            ],
        ),
        (
            "30 2 * * *",
            PARIS,
            utc(2026, 10, 23, 12),
            [
                ("2026-10-24T02:30", "2026-10-24T00:30"),
                ("2026-10-25T02:30", "2026-10-25T00:30"),
                ("2026-10-26T02:30", "2026-10-26T01:30"),
            ],
        ),
        # No zone: UTC, weekdays only (Friday the 6th of March, then Monday).
        (
            "0 8 * * 1-5",
            None,
            utc(2026, 3, 6, 7, 59),
            [
                ("2026-03-06T08:00", "2026-03-06T08:00"),
                ("2026-03-09T08:00", "2026-03-09T08:00"),
                ("2026-03-10T08:00", "2026-03-10T08:00"),
            ],
        ),
        # Lord Howe springs forward by half an hour: 02:00 -> 02:30 on 2026-10-04.
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            utc(2026, 10, 2, 12),
            [
                ("2026-10-03T02:15", "2026-10-02T15:45"),
                ("2026-10-04T02:15", "2026-10-03T15:45"),
                ("2026-10-05T02:15", "2026-10-04T15:15"),
            ],
        ),
    ],
    ids=[
        "new-york-spring-daily",
        "new-york-fall-daily",
        "new-york-fall-repeated-daily",
        "new-york-spring-hourly",
        "new-york-fall-hourly",
        "paris-spring-daily",
        "paris-fall-daily",
        "utc-weekdays",
        "lord-howe-half-hour",
    ],
)
def test_slots_across_clock_changes(
    cron: str, zone: str | None, after: datetime, expected: list[tuple[str, str]]
) -> None:
    assert fired(slots(cron, zone, after, len(expected))) == expected


def test_a_slot_fires_at_an_aware_utc_instant_and_names_its_wall_time() -> None:
    slot = next_slot("30 2 * * *", NEW_YORK, utc(2026, 3, 8, 0))
    assert slot == Slot(local=datetime(2026, 3, 8, 2, 30), at=utc(2026, 3, 8, 7, 30))
    assert slot.at.tzinfo is UTC
    assert slot.local.tzinfo is None
    assert slot.key() == "2026-03-08T02:30"


def test_no_zone_is_utc() -> None:
    after = utc(2026, 3, 8, 1, 7)
    assert slots("*/20 * * * *", None, after, 5) == slots("*/20 * * * *", "UTC", after, 5)
    assert next_slot("*/20 * * * *", None, after).at == utc(2026, 3, 8, 1, 20)


# In the repeated hour (06:00 to 06:45 UTC on the 1st of November) the clock
# shows wall times that have fired already.
REPEATED = {utc(2026, 11, 1, 6, 15 * n) for n in range(4)}


@pytest.mark.parametrize(
    ("after", "unfired"),
    [(utc(2026, 11, 1, 4, 0), REPEATED), (utc(2026, 3, 8, 6, 0), set())],
    ids=["fall-back", "spring-forward"],
)
def test_every_quarter_hour_over_a_clock_change(after: datetime, unfired: set[datetime]) -> None:
    found = slots("*/15 * * * *", NEW_YORK, after, 24)
    instants = [slot.at for slot in found]
    keys = [slot.key() for slot in found]
    assert all(a < b for a, b in pairwise(instants))
    assert len(set(keys)) == len(keys)
    # Every other quarter of an hour of real time fires once.
    quarters = [after + timedelta(minutes=15 * n) for n in range(1, 29)]
    assert instants == [q for q in quarters if q not in unfired][:24]


def test_the_repeated_hour_is_not_fired_twice() -> None:
    found = slots("*/15 * * * *", NEW_YORK, utc(2026, 11, 1, 4, 50), 8)
    assert fired(found) == [
        ("2026-11-01T01:00", "2026-11-01T05:00"),
        ("2026-11-01T01:15", "2026-11-01T05:15"),
        ("2026-11-01T01:30", "2026-11-01T05:30"),
        ("2026-11-01T01:45", "2026-11-01T05:45"),
        # 01:00 to 01:45 EST (06:00 to 06:45 UTC) are the same wall times again.
        ("2026-11-01T02:00", "2026-11-01T07:00"),
        ("2026-11-01T02:15", "2026-11-01T07:15"),
        ("2026-11-01T02:30", "2026-11-01T07:30"),
        ("2026-11-01T02:45", "2026-11-01T07:45"),
    ]


def test_missed_slots_give_the_next_one_after_now_not_each_one_missed() -> None:
    last = next_slot("0 8 * * *", PARIS, utc(2026, 1, 1))
    assert last.key() == "2026-01-01T08:00"
    now = utc(2026, 4, 15, 12)  # down for three months and a half
    assert fired([next_slot("0 8 * * *", PARIS, now)]) == [("2026-04-16T08:00", "2026-04-16T06:00")]


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # In the first hour of EDT the slots of the skipped hour still fire after now.
        ("*/15 * * * *", utc(2026, 3, 8, 7, 5), ("2026-03-08T02:15", "2026-03-08T07:15")),
        ("30 2 * * *", utc(2026, 3, 8, 7, 10), ("2026-03-08T02:30", "2026-03-08T07:30")),
        # In the second 01:00 hour, its wall times have fired already (in EDT).
        ("0 * * * *", utc(2026, 11, 1, 6, 10), ("2026-11-01T02:00", "2026-11-01T07:00")),
        ("30 1 * * *", utc(2026, 11, 1, 6, 10), ("2026-11-02T01:30", "2026-11-02T06:30")),
        # Exactly at a slot's instant: the one after it.
        ("0 * * * *", utc(2026, 3, 8, 7, 0), ("2026-03-08T04:00", "2026-03-08T08:00")),
    ],
)
def test_from_an_instant_near_a_clock_change(
    cron: str, after: datetime, expected: tuple[str, str]
) -> None:
    assert fired([next_slot(cron, NEW_YORK, after)]) == [expected]


def test_an_instant_in_another_zone_is_the_same_instant() -> None:
    after = utc(2026, 3, 8, 7, 5)
    elsewhere = after.astimezone(ZoneInfo("Asia/Tokyo"))
    assert next_slot("*/15 * * * *", NEW_YORK, elsewhere) == next_slot(
        "*/15 * * * *", NEW_YORK, after
    )


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_slot("0 * * * *", NEW_YORK, datetime(2026, 3, 8, 7))


ZONES = ["UTC", NEW_YORK, PARIS, "Australia/Lord_Howe", "Asia/Kolkata"]
CRONS = ["*/15 * * * *", "0 * * * *", "30 2 * * *", "*/7 1-3 * * *", "0,30 * * * 0", "45 1 1 * *"]
YEAR = (utc(2026, 1, 1), utc(2027, 1, 1))
# The zones' clock changes in 2026, as UTC instants.
CHANGES = [
    utc(2026, 3, 8, 7),  # New York
    utc(2026, 11, 1, 6),
    utc(2026, 3, 29, 1),  # Paris
    utc(2026, 10, 25, 1),
    utc(2026, 4, 4, 15),  # Lord Howe
    utc(2026, 10, 3, 15, 30),
]
moments = st.one_of(
    st.integers(0, int((YEAR[1] - YEAR[0]).total_seconds()) - 1).map(
        lambda seconds: YEAR[0] + timedelta(seconds=seconds)
    ),
    st.builds(
        lambda change, seconds: change + timedelta(seconds=seconds),
        st.sampled_from(CHANGES),
        st.integers(-3 * 3600, 3 * 3600),
    ),
)


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), cron=st.sampled_from(CRONS), after=moments)
def test_iterated_slots_fire_at_increasing_instants_with_unique_keys(
    zone: str, cron: str, after: datetime
) -> None:
    found = slots(cron, zone, after, 500)
    assert found[0].at > after
    instants = [slot.at for slot in found]
    assert all(a < b for a, b in pairwise(instants))
    keys = [slot.key() for slot in found]
    assert len(set(keys)) == len(keys)
    for slot, following in pairwise(found):
        # From a slot or from an instant (a restart just before or after it fired):
        # the same slots.
        assert next_slot(cron, zone, slot.at - timedelta(microseconds=1)) == slot
        assert next_slot(cron, zone, slot.at) == following
