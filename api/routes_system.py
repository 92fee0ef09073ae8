"""Health and Prometheus metrics (no authentication: nothing here is private)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import Ctx
from api.schemas import HealthResponse
from api.ws import ConnectionManager

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "The database is unreachable"}},
)
async def health(ctx: Ctx, request: Request) -> JSONResponse:
    manager: ConnectionManager = request.app.state.ws_manager
    db_ok = await ctx.db.ping()
    body = HealthResponse(
        status="healthy" if db_ok else "degraded",
        timestamp=datetime.now(UTC),
        connected_clients=manager.connection_count,
        database="ok" if db_ok else "unavailable",
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if db_ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
