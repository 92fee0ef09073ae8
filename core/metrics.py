"""Prometheus metrics, held in a registry owned by the hub (nothing global at import).

Every label value comes from a bounded set, so no client input can grow the number
of series: channels, states, roles and message types are fixed by the code, and
``source`` (chosen by producers) keeps its own value for the first
MAX_SOURCE_LABELS distinct sources seen by the process, then counts as ``other``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Distinct ``source`` label values kept per process; later ones count as OTHER_SOURCE.
MAX_SOURCE_LABELS = 50
OTHER_SOURCE = "other"
#: Buckets of the publish -> first / last delivery histograms: 10 ms to 10 min.
FAN_OUT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Signals per platform remembered as having had their first delivery observed.
FIRST_SEEN_SIGNALS = 10_000


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._sources: set[str] = set()
        self._sources_lock = threading.Lock()
        self.signals_published = Counter(
            "catalyst_signals_published_total",
            "Signals stored and routed",
            ["source"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "catalyst_deliveries_total",
            "Delivery attempts by final or intermediate state",
            ["channel", "state"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "catalyst_delivery_latency_seconds",
            "From publish to a successful send",
            ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.first_delivery = Histogram(
            "catalyst_signal_first_delivery_seconds",
            "From publish to a signal's first alert sent on the channel",
            ["channel"],
            buckets=FAN_OUT_BUCKETS,
            registry=self.registry,
        )
        self.last_delivery = Histogram(
            "catalyst_signal_last_delivery_seconds",
            "From publish to the send that left a signal no alert still to go on the "
            "channel (deliveries held for a digest do not count)",
            ["channel"],
            buckets=FAN_OUT_BUCKETS,
            registry=self.registry,
        )
        #: Per platform, the signal seqs whose first delivery was observed (bounded,
        #: the oldest forgotten first).
        self._first_seen: dict[str, OrderedDict[int, None]] = {}
        self.claims_lost = Counter(
            "catalyst_delivery_claims_lost_total",
            "Delivery results not recorded because the claim had been lost (lease "
            "expired and another worker took the delivery)",
            ["channel"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "catalyst_leader",
            "1 while this process leads the named work (job, receiver, gateway, sender)",
            ["role"],
            registry=self.registry,
        )
        self.ws_connections = Gauge(
            "catalyst_websocket_connections",
            "Open WebSocket connections",
            registry=self.registry,
        )
        self.ws_messages_sent = Counter(
            "catalyst_websocket_messages_sent_total",
            "Messages queued to WebSocket clients",
            ["type"],
            registry=self.registry,
        )

    def source_label(self, source: str) -> str:
        """The ``source`` label for a published signal: itself while the set of
        sources seen has room (or already holds it), else ``other``."""
        with self._sources_lock:
            if source in self._sources:
                return source
            if len(self._sources) < MAX_SOURCE_LABELS:
                self._sources.add(source)
                return source
        return OTHER_SOURCE

    def first_sent(self, channel: str, seq: int) -> bool:
        """True the first time signal ``seq`` is reported sent on ``channel`` (of the
        last FIRST_SEEN_SIGNALS signals; one sender per platform calls this, from
        its event loop)."""
        seen = self._first_seen.setdefault(channel, OrderedDict())
        if seq in seen:
            return False
        seen[seq] = None
        if len(seen) > FIRST_SEEN_SIGNALS:
            seen.popitem(last=False)
        return True

    def render(self) -> bytes:
        return generate_latest(self.registry)
