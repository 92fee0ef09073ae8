"""Request dependencies: the hub context, the calling principal, scope checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from api.errors import RateLimited
from api.ratelimit import KeyedRateLimiter
from core.auth import Principal
from core.context import HubContext

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (catalyst_...) or a JWT from POST /api/v1/auth/token.",
)

UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def get_ctx(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.ctx
    return ctx


async def _ctx(request: Request) -> HubContext:
    """``get_ctx`` as a dependency: async, or FastAPI would run it in a worker thread
    (a thread hop on every request)."""
    return get_ctx(request)


def rate_key(principal: Principal) -> tuple[str, int]:
    """What the REST limit counts against: the API key, else the user (a JWT without one)."""
    if principal.key_id is not None:
        return ("key", principal.key_id)
    return ("user", principal.user.id)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            401,
            "missing credentials: send 'Authorization: Bearer <API key or token>'",
            UNAUTHORIZED,
        )
    ctx = get_ctx(request)
    principal = await ctx.auth.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(401, "invalid, expired or revoked API key or token", UNAUTHORIZED)
    enforce_rate_limit(request, principal)
    return principal


def enforce_rate_limit(request: Request, principal: Principal) -> None:
    """Count one request against the caller's key; 429 with Retry-After when over."""
    limiter: KeyedRateLimiter = request.app.state.rest_limiter
    wait = limiter.hit(rate_key(principal))
    if wait > 0:
        raise RateLimited(
            wait,
            f"rate limit exceeded: at most {limiter.max_events} requests per minute per key; "
            "retry after the Retry-After seconds",
        )


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the principal if it holds ``scope`` (exactly: ``admin`` does
    not imply the others)."""

    async def _check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.has(scope):
            raise HTTPException(403, f"this key lacks the {scope!r} scope")
        return principal

    _check.__name__ = f"require_{scope}"
    return _check


Ctx = Annotated[HubContext, Depends(_ctx)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Reader = Annotated[Principal, Depends(require("read"))]
FeedbackWriter = Annotated[Principal, Depends(require("feedback"))]
Publisher = Annotated[Principal, Depends(require("publish"))]
Admin = Annotated[Principal, Depends(require("admin"))]
AnyPrincipal = Annotated[Principal, Depends(get_principal)]
