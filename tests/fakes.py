"""Test doubles for the core: a Channel that records sends and fails on demand."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import ClassVar

from core.channels import Alert, Channel, Digest, Edit, RateLimit


class RecordingChannel(Channel):
    """Records every alert. ``behaviour(alert)`` may raise a DeliveryError to simulate
    a platform failure; ``limits`` are returned for every destination."""

    platform: ClassVar[str] = "fake"

    def __init__(
        self,
        platform: str = "fake",
        *,
        limits: Callable[[str], Sequence[RateLimit]] | None = None,
        behaviour: Callable[[Alert], None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.platform = platform  # type: ignore[misc]
        self.sent: list[Alert] = []
        self.attempts: list[Alert] = []
        self._limits = limits
        self.behaviour = behaviour
        self.delay = delay
        self.event = asyncio.Event()
        self.digests: list[Digest] = []
        #: Items per digest part (None: one part), to exercise splitting.
        self.per_part: int | None = None
        #: ``digest_behaviour(digest)`` may raise a DeliveryError, like ``behaviour``.
        self.digest_behaviour: Callable[[Digest], None] | None = None
        self._ids = itertools.count(1)
        self.edits: list[Edit] = []

    def digest_parts(self, digest: Digest) -> list[Digest]:
        if self.per_part is None:
            return [digest]
        chunks = [
            digest.items[i : i + self.per_part]
            for i in range(0, len(digest.items), self.per_part)
        ]
        return [
            dataclasses.replace(digest, items=chunk, part=n, parts=len(chunks))
            for n, chunk in enumerate(chunks, 1)
        ]

    async def send_digest(self, digest: Digest) -> str | None:
        if self.digest_behaviour is not None:
            self.digest_behaviour(digest)
        self.digests.append(digest)
        self.event.set()
        return f"m{next(self._ids)}"

    async def edit(self, edit: Edit) -> None:
        self.edits.append(edit)
        self.event.set()

    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        return self._limits(destination) if self._limits else ()

    async def send(self, alert: Alert) -> str | None:
        self.attempts.append(alert)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.behaviour is not None:
            self.behaviour(alert)
        self.sent.append(alert)
        self.event.set()
        return f"m{next(self._ids)}"

    def sent_to(self, destination: str) -> list[str]:
        return [a.signal.signal_id for a in self.sent if a.destination == destination]


def signal(signal_id: str, **kw: object) -> dict[str, object]:
    data: dict[str, object] = {
        "signal_id": signal_id,
        "ticker": "AAPL",
        "signal_type": "BUY",
        "confidence": 0.8,
        "catalyst_type": "FDA",
        "price": 10.0,
        "rvol": 2.0,
        "sector": "Healthcare",
        "headline": "Test headline",
    }
    data.update(kw)
    return data


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``predicate()`` holds (fails the test after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
