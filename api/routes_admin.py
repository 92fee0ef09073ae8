"""Admin statistics across all users (needs the ``admin`` scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Admin, Ctx
from api.schemas import ErrorResponse, GroupStatsOut

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
