"""The live bus: a new seq to the signal listeners, a higher revision of a seq it
carried to the update listeners, each (seq, revision) once and never after a later one."""

from __future__ import annotations

from core.bus import LiveBus
from domain.signals import Signal, SignalStatus
from tests.fakes import signal


def _at(seq: int, revision: int = 0, **kw: object) -> Signal:
    return Signal.parse(signal(f"s{seq}", **kw)).model_copy(
        update={"seq": seq, "revision": revision}
    )


def _bus() -> tuple[LiveBus, list[tuple[int | None, int]], list[tuple[int | None, int]]]:
    bus = LiveBus()
    new: list[tuple[int | None, int]] = []
    updates: list[tuple[int | None, int]] = []
    bus.subscribe(lambda s: new.append((s.seq, s.revision)))
    bus.subscribe_updates(lambda s: updates.append((s.seq, s.revision)))
    return bus, new, updates


def test_the_original_and_each_revision_go_out_once_each() -> None:
    bus, new, updates = _bus()
    bus.publish(_at(1))
    bus.publish(_at(1))  # offered here, then seen again by the tail
    retracted = _at(1, 1, status="retracted")
    bus.publish_update(retracted)  # the local offer of the revision
    bus.publish_update(retracted)  # and the tail reading the revision log
    bus.publish(retracted)  # or the tail reading the row as it is now
    bus.publish_update(_at(1, 2))
    assert new == [(1, 0)]
    assert updates == [(1, 1), (1, 2)]
    assert bus.seen(1) and bus.seen(1, 2) and not bus.seen(1, 3) and not bus.seen(2)


def test_a_stale_revision_after_a_newer_one_goes_nowhere() -> None:
    bus, new, updates = _bus()
    bus.publish(_at(5))
    bus.publish_update(_at(5, 2))
    bus.publish_update(_at(5, 1))  # late: the newer state went out already
    bus.publish(_at(5))
    assert new == [(5, 0)] and updates == [(5, 2)]


def test_a_seq_first_carried_revised_is_new_and_its_log_entry_is_dropped() -> None:
    """The tail may read a signal only after it was revised: it goes out once, as a
    new signal in its current state."""
    bus, new, updates = _bus()
    bus.publish(_at(3, 1, status="retracted"))
    bus.publish_update(_at(3, 1, status="retracted"))
    assert new == [(3, 1)] and updates == []


def test_a_revision_of_a_signal_from_before_this_bus_is_an_update() -> None:
    bus, new, updates = _bus()
    bus.publish_update(_at(9, 1))
    bus.publish(_at(9, 1))
    bus.publish(_at(9, 2))  # the seq is known now: an update, whichever way it came
    assert new == [] and updates == [(9, 1), (9, 2)]


def test_memory_is_bounded_and_unsubscribing_works() -> None:
    bus = LiveBus(memory=2)
    got: list[int | None] = []
    updates: list[int | None] = []
    stop = bus.subscribe(lambda s: got.append(s.seq))
    stop_updates = bus.subscribe_updates(lambda s: updates.append(s.seq))
    for seq in (1, 2, 3):
        bus.publish(_at(seq))
    assert not bus.seen(1) and bus.seen(3)
    bus.publish(_at(1))  # forgotten: it goes out again
    assert got == [1, 2, 3, 1]
    stop()
    stop_updates()
    bus.publish(_at(4))
    bus.publish_update(_at(4, 1))
    assert got == [1, 2, 3, 1] and updates == []


def test_a_failing_listener_stops_no_other() -> None:
    bus = LiveBus()
    got: list[SignalStatus] = []

    def boom(_signal: Signal) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe_updates(boom)
    bus.subscribe_updates(lambda s: got.append(s.status))
    bus.publish(_at(1))
    bus.publish_update(_at(1, 1, status="retracted"))
    assert got == [SignalStatus.RETRACTED]
