"""The user's API/WebSocket stream subscription, safe against first-use races.

``SubscriptionService.stream`` creates the row on first use; two requests of a
new user at once can both try to insert it, and the loser gets an IntegrityError
from the unique (platform, destination) constraint. The row exists by then, so
one retry reads it.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from core.context import HubContext
from core.filters import SignalFilter
from core.services.subscriptions import SubscriptionInfo


async def user_stream(ctx: HubContext, user_id: int) -> SubscriptionInfo:
    try:
        return await ctx.services.subscriptions.stream(user_id)
    except IntegrityError:
        return await ctx.services.subscriptions.stream(user_id)


async def set_user_filter(ctx: HubContext, user_id: int, flt: SignalFilter) -> SignalFilter:
    await user_stream(ctx, user_id)
    return await ctx.services.subscriptions.set_stream_filter(user_id, flt)
