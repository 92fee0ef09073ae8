"""Prometheus metrics, held in a registry owned by the hub (nothing global at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
