"""Metrics labels come from bounded sets: a producer inventing a new ``source`` per
signal must not grow the metrics output (and the scraper's memory) without end."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core.context import HubContext
from core.metrics import MAX_SOURCE_LABELS, OTHER_SOURCE, Metrics


def published_series(metrics: Metrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name != "catalyst_signals_published":
            continue
        for sample in family.samples:
            if sample.name == "catalyst_signals_published_total":
                out[sample.labels["source"]] = sample.value
    return out


async def test_500_sources_give_a_bounded_number_of_series(ctx: HubContext) -> None:
    for i in range(500):
        await ctx.publisher.publish(
            {"signal_id": f"s{i}", "ticker": "ABCD", "confidence": 0.5, "source": f"src-{i}"}
        )
    # A known source keeps its own series after the set is full.
    await ctx.publisher.publish({"ticker": "ABCD", "confidence": 0.5, "source": "src-0"})
    series = published_series(ctx.metrics)
    assert len(series) <= MAX_SOURCE_LABELS + 1
    assert series[OTHER_SOURCE] == 500 - MAX_SOURCE_LABELS
    assert series["src-0"] == 2
    assert sum(series.values()) == 501


def test_source_label_set_is_first_come_then_other() -> None:
    metrics = Metrics()
    labels = [metrics.source_label(f"s{i}") for i in range(MAX_SOURCE_LABELS + 10)]
    assert labels[:MAX_SOURCE_LABELS] == [f"s{i}" for i in range(MAX_SOURCE_LABELS)]
    assert set(labels[MAX_SOURCE_LABELS:]) == {OTHER_SOURCE}
    assert metrics.source_label("s0") == "s0"
