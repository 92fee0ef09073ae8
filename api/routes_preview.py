"""Filter preview: ``GET /api/v1/filters/preview``, "what would this filter have sent me?"."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import Ctx, Reader
from api.schemas import ErrorResponse, PreviewOut
from api.streams import user_stream
from domain.errors import InvalidInput
from domain.filters import SignalFilter
from domain.preview import DEFAULT_DAYS, MAX_DAYS

router = APIRouter(prefix="/api/v1/filters", tags=["filters"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}


def _filter_from(text: str | None, filters_json: str | None) -> SignalFilter | None:
    if text is not None and filters_json is not None:
        raise InvalidInput("give either filter (compact text) or filters (JSON), not both")
    if text is not None:
        return SignalFilter.from_text(text)
    if filters_json is not None:
        try:
            data = json.loads(filters_json)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            raise InvalidInput(
                'filters must be a JSON object such as {"catalyst_types":["FDA"]}',
                field="filters",
            ) from None
        return SignalFilter.from_mapping(data)
    return None


@router.get("/preview", response_model=PreviewOut, responses=_ERRORS)
async def preview_filter(
    ctx: Ctx,
    principal: Reader,
    filter_text: Annotated[
        str | None,
        Query(
            alias="filter",
            max_length=2000,
            description="A filter in compact text, e.g. `catalyst_types=FDA min_confidence=0.7`.",
        ),
    ] = None,
    filters: Annotated[
        str | None,
        Query(max_length=4000, description='The same as a JSON object: `{"tickers":["ABCD"]}`.'),
    ] = None,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = DEFAULT_DAYS,
) -> PreviewOut:
    """How many signals the filter would have matched over the last ``days`` days
    (default 30), per day, its top catalysts and tickers, and the outcomes traders
    reported on those signals. Without a filter: your stored stream filter."""
    flt = _filter_from(filter_text, filters)
    if flt is None:
        flt = (await user_stream(ctx, principal.user.id)).filter
    preview = await ctx.services.preview.preview(flt, days)
    return PreviewOut.of(flt, preview)
