"""Publish -> first and publish -> last delivery per channel, on every backend: each
observed once per signal and channel, from the publish time to the send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import metrics as metrics_module
from core.channels import Alert, RetryLater
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.metrics import Metrics
from core.settings import DispatcherSettings
from storage.repositories import delivery_stats
from tests.fakes import RecordingChannel, signal
from tests.storage.test_digests import _quiet_around
from tests.storage.test_dispatcher import _sub

FIRST = "catalyst_signal_first_delivery_seconds"
LAST = "catalyst_signal_last_delivery_seconds"
#: How far ahead of the publisher's (real) clock the dispatcher's runs.
AHEAD = 1.5


class Clock:
    """Real UTC time plus an offset the test moves."""

    def __init__(self, ahead: float = AHEAD) -> None:
        self.ahead = ahead

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.ahead)


def _dispatcher(ctx: HubContext, metrics: Metrics, clock: Clock) -> Dispatcher:
    return Dispatcher(ctx.db, DispatcherSettings(), metrics=metrics, clock=clock)


def _value(metrics: Metrics, name: str, channel: str, suffix: str = "count") -> float:
    value = metrics.registry.get_sample_value(f"{name}_{suffix}", {"channel": channel})
    return value or 0.0


def _bucket(metrics: Metrics, name: str, le: str) -> float | None:
    return metrics.registry.get_sample_value(f"{name}_bucket", {"channel": "fake", "le": le})


def _counts(metrics: Metrics, channel: str = "fake") -> tuple[float, float]:
    return _value(metrics, FIRST, channel), _value(metrics, LAST, channel)


async def test_one_signal_to_three_subscriptions_is_observed_once_per_channel(
    any_ctx: HubContext,
) -> None:
    metrics = Metrics()
    dispatcher = _dispatcher(any_ctx, metrics, Clock())
    fake, other = RecordingChannel("fake"), RecordingChannel("other")
    dispatcher.register(fake)
    dispatcher.register(other)
    for dest in ("a", "b", "c"):
        await _sub(any_ctx, dest)
    await _sub(any_ctx, "z", platform="other")
    started = datetime.now(UTC)
    await any_ctx.publisher.publish(signal("fan-1"))

    assert await dispatcher.run_once("fake") == 3
    assert len(fake.sent) == 3
    assert _counts(metrics) == (1, 1)
    assert _counts(metrics, "other") == (0, 0)
    assert await dispatcher.run_once("other") == 1
    assert _counts(metrics, "other") == (1, 1)
    # Plausible: the clock the sends are stamped with runs AHEAD of the publish.
    elapsed = (datetime.now(UTC) - started).total_seconds()
    for name in (FIRST, LAST):
        value = _value(metrics, name, "fake", "sum")
        assert AHEAD <= value <= AHEAD + elapsed, (name, value)
        assert _bucket(metrics, name, "1.0") == 0 and _bucket(metrics, name, "5.0") == 1
    assert _value(metrics, LAST, "fake", "sum") >= _value(metrics, FIRST, "fake", "sum")

    # A second signal: observed once more each; the first is not observed again.
    await any_ctx.publisher.publish(signal("fan-2", ticker="TSLA"))
    assert await dispatcher.run_once("fake") == 3
    assert _counts(metrics) == (2, 2)


async def test_last_waits_for_the_alert_still_to_go(any_ctx: HubContext) -> None:
    refused: list[str] = []

    def slow_c(alert: Alert) -> None:
        if alert.destination == "c" and not refused:
            refused.append(alert.destination)
            raise RetryLater(0.05, scope="chat:c")

    metrics = Metrics()
    clock = Clock()
    dispatcher = _dispatcher(any_ctx, metrics, clock)
    channel = RecordingChannel(behaviour=slow_c)
    dispatcher.register(channel)
    for dest in ("a", "b", "c"):
        await _sub(any_ctx, dest)
    await any_ctx.publisher.publish(signal("late-1"))

    await dispatcher.run_once("fake")
    assert channel.sent_to("c") == [] and len(channel.sent) == 2
    assert _counts(metrics) == (1, 0)  # c is still to go

    clock.ahead += 60  # the retry is due, a minute later
    assert await dispatcher.run_once("fake") == 1
    assert channel.sent_to("c") == ["late-1"]
    assert _counts(metrics) == (1, 1)
    assert _value(metrics, LAST, "fake", "sum") >= AHEAD + 60


async def test_alerts_held_for_a_digest_and_edits_are_not_waited_for(
    any_ctx: HubContext,
) -> None:
    metrics = Metrics()
    clock = Clock()
    dispatcher = _dispatcher(any_ctx, metrics, clock)
    channel = RecordingChannel()
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await _sub(any_ctx, "quiet")
    await any_ctx.services.delivery.apply("fake", "quiet", _quiet_around(clock()))
    await any_ctx.publisher.publish(signal("held-1"))

    assert await dispatcher.run_once("fake") == 2
    assert channel.sent_to("a") == ["held-1"]
    assert _counts(metrics) == (1, 1)  # "quiet" waits for its digest by choice

    await any_ctx.publisher.publish(signal("held-1", price=12.5))  # a correction: an edit
    assert await dispatcher.run_once("fake") == 1
    assert len(channel.edits) == 1
    assert _counts(metrics) == (1, 1)


async def test_a_failed_query_costs_the_observation_not_the_round(
    any_ctx: HubContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> set[int]:
        raise ConnectionError("database went away")

    monkeypatch.setattr(delivery_stats, "signals_with_alerts_to_go", broken)
    metrics = Metrics()
    dispatcher = _dispatcher(any_ctx, metrics, Clock())
    channel = RecordingChannel()
    dispatcher.register(channel)
    await _sub(any_ctx, "a")
    await any_ctx.publisher.publish(signal("broken-1"))
    assert await dispatcher.run_once("fake") == 1
    assert len(channel.sent) == 1
    assert _counts(metrics) == (1, 0)
    assert "last-delivery times not measured" in caplog.text


def test_first_deliveries_are_remembered_per_channel_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "FIRST_SEEN_SIGNALS", 3)
    metrics = Metrics()
    assert [metrics.first_sent("fake", seq) for seq in (1, 2, 1, 3)] == [True, True, False, True]
    assert metrics.first_sent("other", 1)
    assert metrics.first_sent("fake", 4)  # forgets 1, the oldest
    assert not metrics.first_sent("fake", 2)
    assert metrics.first_sent("fake", 1)
