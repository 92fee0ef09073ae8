"""The one sliding window: at most N events in any ``period`` seconds.

The API edge uses it directly (``hit``); the dispatcher's limiter builds on it.
"""

from __future__ import annotations

from core.ratelimit import MIN_WAIT, SlidingWindow


def test_hit_allows_n_per_period_and_records_them() -> None:
    window = SlidingWindow(2, 1.0)
    assert window.hit(10.0) == 0.0
    assert window.hit(10.25) == 0.0
    assert list(window.stamps) == [10.0, 10.25]
    assert window.hit(10.5) == 0.5  # until the oldest leaves, at 11.0
    assert list(window.stamps) == [10.0, 10.25]  # a refused event is not recorded


def test_an_event_leaves_exactly_one_period_later() -> None:
    window = SlidingWindow(1, 1.0)
    assert window.hit(10.0) == 0.0
    assert window.hit(10.75) == 0.25
    assert window.hit(11.0) == 0.0
    assert list(window.stamps) == [11.0]


def test_a_refusal_never_reads_as_allowed() -> None:
    window = SlidingWindow(1, 1.0)
    window.hit(0.0)
    # The oldest event leaves in 0.0005 s; the caller is still told to wait.
    assert window.hit(0.9995) == MIN_WAIT == 0.001
    assert window.hit(0.5) == 0.5


def test_wait_time_and_free_do_not_record() -> None:
    window = SlidingWindow(1, 2.0)
    assert window.free(0.0) and window.wait_time(0.0) == 0.0
    assert window.stamps == type(window.stamps)()
    window.hit(0.0)
    assert not window.free(0.5)
    assert window.wait_time(0.5) == 1.5
    assert window.free(2.0)


def test_idle_once_the_newest_event_has_left() -> None:
    window = SlidingWindow(3, 1.0)
    assert window.idle(0.0)
    window.hit(0.0)
    window.hit(0.5)
    assert not window.idle(1.0)  # 0.5 is still in
    assert not window.idle(1.25)
    assert window.idle(1.5)
