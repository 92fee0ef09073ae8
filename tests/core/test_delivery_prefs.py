"""Quiet hours, digest periods and caps: parsing and the hold-or-send decision."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from domain.delivery_prefs import (
    Cap,
    DeliveryPrefs,
    Hold,
    HoldReason,
    QuietHours,
    age_text,
    next_boundary,
)
from domain.errors import InvalidInput

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_the_words_a_trader_types_round_trip() -> None:
    prefs = (
        DeliveryPrefs()
        .parse_line(f"quiet 22:00-07:00 {NY}")
        .parse_line("digest 15m")
        .parse_line("max 10/h")
    )
    assert prefs.lines() == [f"quiet 22:00-07:00 {NY}", "digest 15m", "max 10/h"]
    assert DeliveryPrefs.from_mapping(prefs.to_mapping()) == prefs
    assert prefs.parse_line("digest off").parse_line("max off").lines() == [
        f"quiet 22:00-07:00 {NY}"
    ]
    assert DeliveryPrefs().text() == "every alert at once"
    assert Cap.parse("50/d").text() == "50/d"
    assert Cap.parse("3/15m").text() == "3/15m"
    assert DeliveryPrefs().parse_line("digest 1h30m").lines() == ["digest 1h30m"]
    assert QuietHours.parse("23:30-06:00").tz == "UTC"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("quiet 25:00-07:00 UTC", "not a time of day"),
        ("quiet 22:00-07:00 Mars/Olympus", "unknown time zone"),
        ("quiet 22:00-07:00 ../../etc/passwd", "not a time zone"),
        ("quiet 22:00-22:00 UTC", "must differ"),
        ("quiet 22:00", "use a range"),
        ("digest 1m", "5m-24h"),
        ("digest 2d", "5m-24h"),
        ("digest soon", "not a duration"),
        ("max 0/h", "1-1000"),
        ("max 10", "count per period"),
        ("max 10/2d", "1m-1d"),
        ("max -1/h", "count per period"),
        ("loud 1", "unknown setting"),
        ("quiet", "give a value"),
    ],
)
def test_bad_settings_are_refused_with_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        DeliveryPrefs().parse_line(line)


def test_stored_json_is_checked_and_a_broken_row_counts_as_no_settings() -> None:
    with pytest.raises(InvalidInput, match="unknown delivery setting"):
        DeliveryPrefs.from_mapping({"quiet_hours": "22:00-07:00"})
    with pytest.raises(InvalidInput, match="string or null"):
        DeliveryPrefs.from_mapping({"digest": 15})
    assert DeliveryPrefs.stored({"quiet": "22:00-07:00 Gone/Zone"}) == DeliveryPrefs()
    assert DeliveryPrefs.from_mapping({"digest": None, "max": "5/h"}).lines() == ["max 5/h"]


def test_quiet_hours_wrap_midnight_in_their_own_zone() -> None:
    quiet = QuietHours(time(22), time(7), NY)
    # 02:00 UTC on 1 Dec is 21:00 in New York (EST, UTC-5): not quiet yet.
    assert not quiet.contains(utc(2026, 12, 1, 2, 59))
    assert quiet.contains(utc(2026, 12, 1, 3, 0))
    assert quiet.contains(utc(2026, 12, 1, 11, 59))
    assert not quiet.contains(utc(2026, 12, 1, 12, 0))
    assert quiet.ends_after(utc(2026, 12, 1, 3, 0)) == utc(2026, 12, 1, 12, 0)


def test_quiet_hours_follow_daylight_saving_time() -> None:
    quiet = QuietHours(time(22), time(7), NY)
    # The night DST starts (8 March 2026, 02:00 -> 03:00): 07:00 EDT is 11:00 UTC.
    assert quiet.ends_after(utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 11, 0)
    # The night it ends (1 November 2026): 07:00 EST is 12:00 UTC.
    assert quiet.ends_after(utc(2026, 11, 1, 5, 0)) == utc(2026, 11, 1, 12, 0)


def test_an_alert_in_quiet_hours_is_held_until_they_end() -> None:
    prefs = DeliveryPrefs(quiet=QuietHours(time(22), time(7), NY))
    assert prefs.plan(utc(2026, 12, 1, 4, 0), []) == Hold(utc(2026, 12, 1, 12, 0), HoldReason.QUIET)
    assert prefs.plan(utc(2026, 12, 1, 15, 0), []) is None


def test_a_digest_comes_on_the_period_and_never_in_quiet_hours() -> None:
    prefs = DeliveryPrefs(digest=timedelta(minutes=15))
    assert prefs.plan(utc(2026, 12, 1, 10, 7, 30), []) == Hold(
        utc(2026, 12, 1, 10, 15), HoldReason.DIGEST
    )
    assert prefs.plan(utc(2026, 12, 1, 10, 15), [], batching=False) is None
    quiet = DeliveryPrefs(digest=timedelta(hours=1), quiet=QuietHours(time(11), time(12, 30)))
    # 10:40 is before quiet hours, but the 11:00 digest would fall in them.
    assert quiet.plan(utc(2026, 12, 1, 10, 40), []) == Hold(
        utc(2026, 12, 1, 12, 30), HoldReason.DIGEST
    )


def test_a_cap_holds_until_the_oldest_message_leaves_the_window() -> None:
    prefs = DeliveryPrefs(cap=Cap(2, timedelta(hours=1)))
    now = utc(2026, 12, 1, 10, 0)
    sends = [now - timedelta(minutes=50), now - timedelta(minutes=10)]
    assert prefs.plan(now, sends[1:]) is None
    assert prefs.plan(now, sends) == Hold(now + timedelta(minutes=10), HoldReason.CAP)
    # Sends older than the window do not count.
    assert prefs.plan(now, [now - timedelta(minutes=61), now - timedelta(minutes=70)]) is None


def test_next_boundary_and_ages() -> None:
    assert next_boundary(utc(2026, 12, 1, 10, 0), timedelta(hours=1)) == utc(2026, 12, 1, 11, 0)
    assert next_boundary(utc(2026, 12, 1, 10, 59, 59), timedelta(minutes=30)) == utc(
        2026, 12, 1, 11, 0
    )
    assert [age_text(s) for s in (5, 240, 3600, 3900, 86_400 + 3 * 3600)] == [
        "just now",
        "4m ago",
        "1h ago",
        "1h 5m ago",
        "1d 3h ago",
    ]
