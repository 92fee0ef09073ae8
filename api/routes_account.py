"""The caller's own things: stream config, trade outcomes, stats, tokens, account linking.

Every handler works on ``principal.user`` only; nothing takes a user id from the
request, so one user can never read or write another's data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from starlette.exceptions import HTTPException

from api.deps import (
    UNAUTHORIZED,
    AnyPrincipal,
    BearerCredentials,
    Ctx,
    FeedbackWriter,
    Reader,
    enforce_rate_limit,
)
from api.schemas import (
    ConfigResponse,
    ConfigUpdated,
    ErrorResponse,
    FeedbackIn,
    FeedbackOut,
    FilterModel,
    HintOut,
    LinkRequest,
    LinkResponse,
    OutcomeStatsOut,
    StatsOut,
    TokenRequest,
    TokenResponse,
    UserConfig,
)
from api.streams import update_user_filter, user_stream
from api.ws import ConnectionManager
from core.auth import KEY_PREFIX

router = APIRouter(prefix="/api/v1", tags=["account"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}


def _manager(request: Request) -> ConnectionManager:
    manager: ConnectionManager = request.app.state.ws_manager
    return manager


@router.get("/config", response_model=ConfigResponse, responses=_ERRORS)
async def get_config(ctx: Ctx, principal: Reader) -> ConfigResponse:
    """The filter applied to your REST queries and WebSocket stream."""
    stream = await user_stream(ctx, principal.user.id)
    return ConfigResponse(
        user_id=principal.user.id, filters=FilterModel.of(stream.filter), active=stream.active
    )


@router.post("/config", response_model=ConfigUpdated, responses=_ERRORS)
async def update_config(
    config: UserConfig, ctx: Ctx, principal: Reader, request: Request
) -> ConfigUpdated:
    """Change your stored stream filter: only the fields given (``null`` clears one).
    It is what REST reads and new WebSocket connections start with; open connections
    keep the filter they subscribed with."""
    changes = config.filters.model_dump(exclude_unset=True)
    stored = await update_user_filter(ctx, principal.user.id, changes)
    return ConfigUpdated(
        status="updated",
        user_id=principal.user.id,
        config=UserConfig(filters=FilterModel.of(stored)),
    )


@router.post(
    "/feedback", response_model=FeedbackOut, responses={**_ERRORS, 404: {"model": ErrorResponse}}
)
async def submit_feedback(body: FeedbackIn, ctx: Ctx, principal: FeedbackWriter) -> FeedbackOut:
    """Record (or change) your trade outcome for a signal."""
    outcome, return_pct = body.outcome, body.return_pct
    if not isinstance(outcome, str):
        if outcome.return_pct is not None:
            return_pct = outcome.return_pct
        outcome = outcome.outcome
    info = await ctx.services.feedback.record(
        principal.user.id, body.signal_id, outcome, return_pct
    )
    return FeedbackOut(
        status="received",
        signal_id=info.signal_id,
        outcome=info.outcome,
        return_pct=info.return_pct,
        updated=info.updated,
    )


@router.get("/stats", response_model=StatsOut, responses=_ERRORS)
async def get_stats(ctx: Ctx, principal: Reader) -> StatsOut:
    """Your signals received (chat deliveries, WebSocket and REST; see the README) and
    trade outcome statistics."""
    user_id = principal.user.id
    stats = await ctx.services.feedback.user_stats(user_id)
    # This process's counts not yet stored (core.receipts stores them every few seconds).
    stats = replace(stats, signals_received=stats.signals_received + ctx.receipts.pending(user_id))
    return StatsOut.for_user(user_id, stats)


@router.get("/stats/hints", response_model=list[HintOut], responses=_ERRORS)
async def get_outcome_hints(ctx: Ctx, principal: Reader) -> list[HintOut]:
    """The lines alerts carry: per catalyst type and confidence bucket with at least
    ``stats.min_sample`` executed trades reported (every trader's reports). Look a
    signal up by its ``catalyst_type`` and the bucket its ``confidence`` falls in."""
    return [
        HintOut(
            catalyst_type=catalyst,
            confidence_bucket=bucket,
            line=line,
            stats=OutcomeStatsOut.of(stats),
        )
        for catalyst, bucket, stats, line in await ctx.hints.lines()
    ]


@router.get(
    "/stats/chart.png",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/png": {}}, "description": "A PNG image."}},
)
async def get_stats_chart(ctx: Ctx, principal: Reader) -> Response:
    """Your ``/stats`` as a PNG: win rate and average return by catalyst type (every
    trader's reports, the sample size on each bar) and your cumulative reported return."""
    png = await ctx.services.feedback.chart(principal.user.id, principal.user.name)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses={**_ERRORS, 400: {"model": ErrorResponse}},
)
async def issue_token(
    ctx: Ctx,
    request: Request,
    credentials: BearerCredentials,
    body: Annotated[TokenRequest | None, Body()] = None,
) -> TokenResponse:
    """Exchange an API key (in the body or the Authorization header) for a short-lived JWT
    carrying the key's scopes. The JWT stops working when the key is revoked."""
    key = (body.api_key if body is not None else None) or (
        credentials.credentials if credentials is not None else None
    )
    if not key:
        raise HTTPException(
            401, "send the API key as api_key or as a Bearer credential", UNAUTHORIZED
        )
    if not key.startswith(KEY_PREFIX):
        raise HTTPException(400, f"exchange an API key (it starts with {KEY_PREFIX}), not a token")
    principal = await ctx.auth.authenticate_key(key)
    if principal is None:
        raise HTTPException(401, "invalid or revoked API key", UNAUTHORIZED)
    enforce_rate_limit(request, principal)
    token, expires_in = ctx.auth.issue_token(principal)
    return TokenResponse(access_token=token, token_type="bearer", expires_in=expires_in)


@router.post(
    "/link", response_model=LinkResponse, responses={**_ERRORS, 404: {"model": ErrorResponse}}
)
async def link_account(body: LinkRequest, ctx: Ctx, principal: AnyPrincipal) -> LinkResponse:
    """Redeem a code from the chat bots' /link so one user owns both accounts."""
    user = await ctx.services.accounts.redeem_link_code(body.code, principal.user.id)
    return LinkResponse(status="linked", user_id=user.id, name=user.name)
