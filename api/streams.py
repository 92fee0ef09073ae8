"""The user's API/WebSocket stream subscription (created on first use; the core
service handles two first uses racing)."""

from __future__ import annotations

from core.context import HubContext
from core.filters import SignalFilter
from core.router import STREAM_PLATFORM
from core.services.subscriptions import SubscriptionInfo


async def user_stream(ctx: HubContext, user_id: int) -> SubscriptionInfo:
    """Read first: only a missing or inactive stream needs the service's write
    transaction (on SQLite it takes the write lock, which every WebSocket connect
    and REST read would otherwise contend for with publishing)."""
    info = await ctx.services.subscriptions.get(STREAM_PLATFORM, str(user_id))
    if info is not None and info.active and info.user_id == user_id:
        return info
    return await ctx.services.subscriptions.stream(user_id)


async def set_user_filter(ctx: HubContext, user_id: int, flt: SignalFilter) -> SignalFilter:
    await user_stream(ctx, user_id)
    return await ctx.services.subscriptions.set_stream_filter(user_id, flt)
