"""Admin endpoints (need the ``admin`` scope): statistics across all users, and the
operator's view and actions (a signal's delivery trace, channel health, dead
letters and their retry). The logic is :mod:`core.services.operator`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.exceptions import HTTPException

from api.deps import Admin, Ctx
from api.schemas import ErrorResponse, GroupStatsOut
from api.schemas_operator import (
    ChannelOut,
    ChannelsOut,
    DeadLetterOut,
    RetryIn,
    RetryOut,
    SignalTraceOut,
)
from api.ws import ConnectionManager
from core.services.operator import MAX_DEAD_LIST, StreamStats
from domain.signals import is_signal_id

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}


@router.get("/stats/catalysts", response_model=list[GroupStatsOut], responses=_ERRORS)
async def stats_by_catalyst(ctx: Ctx, _admin: Admin) -> list[GroupStatsOut]:
    """Outcomes of every user grouped by catalyst type: which catalysts pay."""
    return [GroupStatsOut.of(g) for g in await ctx.services.feedback.by_catalyst()]


@router.get("/stats/confidence", response_model=list[GroupStatsOut], responses=_ERRORS)
async def stats_by_confidence(ctx: Ctx, _admin: Admin) -> list[GroupStatsOut]:
    """Outcomes of every user grouped by signal confidence bucket."""
    return [GroupStatsOut.of(g) for g in await ctx.services.feedback.by_confidence()]


@router.get(
    "/signals/{signal_id}/deliveries",
    response_model=SignalTraceOut,
    responses={**_ERRORS, 404: {"model": ErrorResponse}},
    summary="A signal and every delivery it made: where each went and what became of it",
)
async def signal_trace(signal_id: str, ctx: Ctx, _admin: Admin) -> SignalTraceOut:
    """Every outbox row of the signal (alerts and edits), oldest first. Rows that
    ended unsent (expired, dead, canceled) carry when (``ended_at``) and why."""
    if not is_signal_id(signal_id):
        raise HTTPException(404, "no such signal: signal ids are 1-128 letters, digits and ._:-")
    return SignalTraceOut.of(await ctx.services.operator.trace(signal_id))


@router.get("/channels", response_model=ChannelsOut, responses=_ERRORS)
async def channels(ctx: Ctx, request: Request, _admin: Admin) -> ChannelsOut:
    """Per delivery channel: active subscriptions, outbox rows by status in the last
    hour and day, send latency, and (this process's) 429s and blocked scopes; then
    the WebSocket stream's connections in this process."""
    manager: ConnectionManager | None = getattr(request.app.state, "ws_manager", None)
    stream = None
    if manager is not None:
        clients = manager.clients()
        stream = StreamStats(len(clients), len({c.user_id for c in clients}))
    stats = await ctx.services.operator.channels(stream)
    return ChannelsOut(generated_at=datetime.now(UTC), channels=[ChannelOut.of(s) for s in stats])


@router.get("/deliveries/dead", response_model=list[DeadLetterOut], responses=_ERRORS)
async def dead_letters(
    ctx: Ctx,
    _admin: Admin,
    channel: Annotated[
        str | None, Query(max_length=16, description="Only this channel, e.g. telegram.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_DEAD_LIST, description="How many, newest first.")
    ] = 100,
) -> list[DeadLetterOut]:
    """Deliveries given up on (``dead``), newest first."""
    rows = await ctx.services.operator.dead_letters(channel, limit)
    return [DeadLetterOut.of(r) for r in rows]


@router.post(
    "/deliveries/retry",
    response_model=RetryOut,
    responses={**_ERRORS, 422: {"model": ErrorResponse}},
    summary="Put dead deliveries back through the outbox",
)
async def retry_dead(body: RetryIn, ctx: Ctx, admin: Admin) -> RetryOut:
    """Dead rows go back to ``pending`` (attempts reset, due now) and the dispatcher
    sends them under its rate limits. Rows not dead, older than the dispatcher's TTL
    (they would only expire again), of an inactive subscription or a retracted
    signal are skipped with the reason. Recorded in the admin actions."""
    result = await ctx.services.operator.retry(
        admin.user.name,
        delivery_ids=body.delivery_ids,
        channel=body.channel if body.delivery_ids is None else None,
    )  # the service wakes the dispatcher (ctx.dispatcher) when it put rows back
    return RetryOut.of(result)
