"""The user's API/WebSocket stream subscription (created on first use; the core
service handles two first uses racing)."""

from __future__ import annotations

from core.context import HubContext
from core.filters import SignalFilter
from core.services.subscriptions import SubscriptionInfo


async def user_stream(ctx: HubContext, user_id: int) -> SubscriptionInfo:
    return await ctx.services.subscriptions.stream(user_id)


async def set_user_filter(ctx: HubContext, user_id: int, flt: SignalFilter) -> SignalFilter:
    await user_stream(ctx, user_id)
    return await ctx.services.subscriptions.set_stream_filter(user_id, flt)
