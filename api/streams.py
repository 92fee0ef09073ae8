"""The user's API/WebSocket stream subscription.

Reading it never writes (:class:`core.streams.StreamFilters`: a user without a row
has the default, empty filter); the row is created only where a write is wanted
anyway, when the filter is set (the core service handles two first uses racing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.context import HubContext
from core.services.subscriptions import SubscriptionInfo
from domain.filters import SignalFilter


async def user_stream(ctx: HubContext, user_id: int) -> SubscriptionInfo:
    """The user's stream as REST reads and WebSocket connects apply it. No write: on
    SQLite one would queue every reader behind the single write lock."""
    return await ctx.streams.get(user_id)


async def set_user_filter(ctx: HubContext, user_id: int, flt: SignalFilter) -> SignalFilter:
    try:
        return await ctx.services.subscriptions.set_stream_filter(user_id, flt)
    finally:
        ctx.streams.forget(user_id)


async def update_user_filter(
    ctx: HubContext, user_id: int, changes: Mapping[str, Any]
) -> SignalFilter:
    """Change only the given fields of the user's stored filter (None clears one), in
    one transaction, so two updates of different fields never undo each other."""
    try:
        return await ctx.services.subscriptions.update_stream_filter(user_id, changes)
    finally:
        ctx.streams.forget(user_id)
