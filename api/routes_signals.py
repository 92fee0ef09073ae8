"""Signals: list (newest first, the user's stream filter applied), get by id, ingest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.exceptions import HTTPException

from api.deps import Ctx, Publisher, Reader
from api.fast_reads import body_of
from api.schemas import ErrorResponse, IngestReceipt, SignalIn, SignalOut
from api.streams import user_stream
from domain.errors import InvalidInput
from domain.signals import Signal, is_signal_id, normalize_ticker

MAX_LIMIT = 100
MAX_SEQ = 2**63 - 1

router = APIRouter(prefix="/api/v1/signals", tags=["signals"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise HTTPException(400, "since is out of range") from None


@router.get(
    "",
    response_model=list[SignalOut],
    responses={**_ERRORS, 400: {"model": ErrorResponse}},
    summary="Recent signals, newest first; with after_seq, oldest first from the cursor",
)
async def list_signals(
    ctx: Ctx,
    principal: Reader,
    limit: Annotated[int, Query(description="How many, 1 to 100.")] = 50,
    since: Annotated[
        datetime | None, Query(description="Only signals after this ISO timestamp.")
    ] = None,
    ticker: Annotated[str | None, Query(max_length=32, description="Only this ticker.")] = None,
    after_seq: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="Replay cursor: only seq above this.")
    ] = None,
) -> Response:
    """Signals that pass the caller's own stream filter (``GET /api/v1/config``).

    Without ``after_seq``: the newest ``limit``, newest first. With ``after_seq``:
    a page in ascending seq order starting after the cursor, and the
    ``X-Next-After-Seq`` header gives the cursor for the next page."""
    if limit > MAX_LIMIT:
        raise HTTPException(400, f"limit cannot exceed {MAX_LIMIT}")
    if limit < 1:
        raise HTTPException(400, "limit must be at least 1")
    symbol: str | None = None
    if ticker:
        try:
            symbol = normalize_ticker(ticker)
        except ValueError as exc:
            raise HTTPException(400, f"ticker: {exc}") from None
    stream = await user_stream(ctx, principal.user.id)
    query: dict[str, Any] = {
        "limit": limit,
        "flt": stream.filter,
        "since": _aware(since) if since is not None else None,
        "ticker": symbol,
        "after_seq": after_seq,
        "ascending": after_seq is not None,
    }
    # The newest signals are in memory; the database answers what they cannot.
    signals = ctx.recent.query(**query)
    if signals is None:
        signals = await ctx.services.signals.query(**query)
    ctx.receipts.note_many(principal.user.id, [s.seq for s in signals])
    headers: dict[str, str] = {}
    if after_seq is not None:
        last = max((s.seq or 0 for s in signals), default=after_seq)
        headers["X-Next-After-Seq"] = str(max(last, after_seq))
    return _json(signals, headers)


@router.get(
    "/{signal_id}",
    response_model=SignalOut,
    responses={**_ERRORS, 404: {"model": ErrorResponse}},
    summary="One signal by its id",
)
async def get_signal(signal_id: str, ctx: Ctx, _principal: Reader) -> Response:
    if not is_signal_id(signal_id):
        raise HTTPException(404, "no such signal: signal ids are 1-128 letters, digits and ._:-")
    signal = ctx.recent.get(signal_id) or await ctx.services.signals.get(signal_id)
    return Response(signal.public_json, media_type="application/json")


def _json(signals: list[Signal], headers: dict[str, str]) -> Response:
    """The response FastAPI would build from ``list[SignalOut]``, from each signal's
    JSON serialized once (``Signal.public_json``, the same pydantic-core bytes)."""
    return Response(body_of(signals), media_type="application/json", headers=headers)


@router.post(
    "",
    response_model=SignalOut | IngestReceipt,
    status_code=201,
    responses={
        **_ERRORS,
        200: {"model": SignalOut | IngestReceipt, "description": "Already stored (idempotent)"},
    },
    summary="Publish a signal (needs the publish scope)",
)
async def publish_signal(
    body: SignalIn, ctx: Ctx, principal: Publisher, response: Response
) -> dict[str, Any]:
    """Store, route and stream a signal. Publishing a ``signal_id`` again sends
    nothing again and answers 200. A key with the ``read`` scope gets the stored
    signal (``SignalOut``); a key without it gets only an ``IngestReceipt``
    (``signal_id``, ``seq``, ``created``), never stored content."""
    if body.timestamp is not None and body.timestamp.tzinfo is not None:
        try:
            body.timestamp.astimezone(UTC)
        except (OverflowError, ValueError):
            raise InvalidInput("timestamp: is out of range", field="timestamp") from None
    # The fields as given (no model_dump: it would walk arbitrarily deep metadata
    # before Signal.parse bounds it).
    data = {name: value for name, value in body if value is not None}
    result = await ctx.publisher.publish(data)
    if not result.created:
        response.status_code = 200
    if not principal.has("read"):
        return {
            "signal_id": result.signal.signal_id,
            "seq": result.signal.seq,
            "created": result.created,
        }
    return result.signal.to_public()
