"""Routing: which active subscriptions want a signal.

The :class:`SubscriptionIndex` keeps every active subscription's compiled filter in
memory and refreshes incrementally from ``subscriptions.updated_at``, so routing a
signal against 100,000 subscriptions costs one small query plus the matching.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput
from domain.filters import CompiledFilter, SignalFilter
from domain.signals import Signal
from storage.repositories import subscriptions as subscriptions_repo

log = logging.getLogger(__name__)

#: The platform of API/WebSocket stream subscriptions: served live, not by the outbox.
STREAM_PLATFORM = "api"
STREAM_PLATFORMS = frozenset({STREAM_PLATFORM})
#: Overlap when refreshing, so rows committed with a slightly older clock are not missed.
_REFRESH_OVERLAP = timedelta(seconds=5)


class SubscriptionIndex:
    def __init__(self) -> None:
        self._entries: dict[int, tuple[str, CompiledFilter]] = {}
        self._watermark: datetime | None = None
        self._probe: tuple[int, datetime | None] | None = None
        #: Identical filters (most subscriptions keep a few common ones) share one matcher.
        self._compiled: dict[str, CompiledFilter] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _apply(self, sub_id: int, platform: str, raw: dict[str, Any], active: bool) -> None:
        if not active or platform in STREAM_PLATFORMS:
            self._entries.pop(sub_id, None)
            return
        key = json.dumps(raw, sort_keys=True, separators=(",", ":"))
        compiled = self._compiled.get(key)
        if compiled is None:
            try:
                compiled = SignalFilter.from_mapping(raw).compile()
            except InvalidInput as exc:
                log.warning(
                    "subscription %s has an invalid stored filter (%s); skipped", sub_id, exc
                )
                self._entries.pop(sub_id, None)
                return
            if len(self._compiled) > 100_000:
                self._compiled.clear()
            self._compiled[key] = compiled
        self._entries[sub_id] = (platform, compiled)

    async def refresh(self, *, session: AsyncSession) -> None:
        since = self._watermark - _REFRESH_OVERLAP if self._watermark else None
        if since is not None:
            # Cheap check first: every write bumps updated_at, so an unchanged
            # (count, newest) pair in the overlap window means nothing to reload.
            probe = await subscriptions_repo.window_probe(since, session=session)
            if probe == self._probe:
                return
            self._probe = probe
        rows = await subscriptions_repo.changed_since(since, session=session)
        for sub_id, platform, raw, active, updated_at in rows:
            self._apply(sub_id, platform, raw, active)
            if self._watermark is None or updated_at > self._watermark:
                self._watermark = updated_at
        if since is None and self._watermark is not None:
            self._probe = await subscriptions_repo.window_probe(
                self._watermark - _REFRESH_OVERLAP, session=session
            )

    def route(self, signal: Signal) -> list[int]:
        """Ids of every active subscription whose filter matches ``signal``."""
        return [sub_id for sub_id, (_platform, matcher) in self._entries.items() if matcher(signal)]
