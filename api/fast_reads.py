"""The hot read, ``GET /api/v1/signals``, answered below FastAPI's routing.

A profile of REST reads under load showed the database gone from the path (the
newest signals are in memory, :mod:`core.recent`) and about two thirds of the
event loop's time in the framework: routing, dependency solving, the exception
middleware. This ASGI middleware answers the common request itself, from the
same parts the FastAPI route uses (the cached credential check, the caller's
stream filter, the in-memory window, each signal's JSON serialized once), with
the same bytes and headers.

It answers only the plain success: a ``Bearer`` credential that is valid and may
``read``, a query of nothing but well-formed ``limit``, ``ticker`` and
``after_seq``, a window that can answer exactly, a caller under the rate limit.
Anything else (a missing or bad credential, ``since``, a bad value, a repeated
parameter, an answer that needs the database, a 429) goes on to the FastAPI
route unchanged, which gives every error its usual status and message and
counts failed authentications and the rate limit as always. It sits inside the
edge middleware (body limits, the failed-authentication gate) and CORS.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import rate_key
from api.ratelimit import KeyedRateLimiter
from api.streams import user_stream
from core.context import HubContext
from domain.signals import Signal, normalize_ticker

PATH = "/api/v1/signals"
MAX_LIMIT = 100
MAX_SEQ = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}\Z")
_PARAMS = frozenset({"limit", "ticker", "after_seq"})


def body_of(signals: list[Signal]) -> bytes:
    """The JSON array FastAPI would build from ``list[SignalOut]``."""
    return b"[" + b",".join([s.public_json for s in signals]) + b"]"


def _query(raw: bytes) -> dict[str, Any] | None:
    """``limit``, ``ticker`` (normalized) and ``after_seq`` when the query string holds
    nothing else and every value is well formed; None otherwise (the route decides)."""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not _PARAMS.issuperset(names):
        return None
    given = dict(pairs)
    out: dict[str, Any] = {"limit": 50, "ticker": None, "after_seq": None}
    if "limit" in given:
        if not _DIGITS.match(given["limit"]) or not 1 <= int(given["limit"]) <= MAX_LIMIT:
            return None
        out["limit"] = int(given["limit"])
    if "after_seq" in given:
        if not _DIGITS.match(given["after_seq"]) or int(given["after_seq"]) > MAX_SEQ:
            return None
        out["after_seq"] = int(given["after_seq"])
    if "ticker" in given:
        text = given["ticker"]
        if not text or len(text) > 32:
            return None
        try:
            out["ticker"] = normalize_ticker(text)
        except ValueError:
            return None
    return out


def _bearer(scope: Scope) -> str | None:
    found: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if found is not None:
                return None  # two Authorization headers: the route decides
            try:
                found = value.decode("ascii")
            except UnicodeDecodeError:
                return None
    if found is None:
        return None
    scheme, _, credential = found.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


class FastSignalReads:
    """ASGI middleware: answers the plain ``GET /api/v1/signals`` itself."""

    def __init__(self, app: ASGIApp, *, ctx: HubContext, limiter: KeyedRateLimiter) -> None:
        self.app = app
        self.ctx = ctx
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "GET"
            or not await self._answer(scope, send)
        ):
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        """True when the response was sent; False to let the route handle it."""
        query = _query(scope.get("query_string", b""))
        credential = _bearer(scope) if query is not None else None
        if query is None or credential is None:
            return False
        ctx = self.ctx
        principal = await ctx.auth.authenticate(credential)
        if principal is None or not principal.has("read"):
            return False
        stream = await user_stream(ctx, principal.user.id)
        after_seq = query["after_seq"]
        signals = ctx.recent.query(
            limit=query["limit"],
            flt=stream.filter,
            ticker=query["ticker"],
            after_seq=after_seq,
            ascending=after_seq is not None,
        )
        if signals is None:
            return False  # the database answers, through the route
        if self.limiter.hit(rate_key(principal)) > 0:
            return False  # the route answers 429 (it counts this request again: over anyway)
        ctx.receipts.note_many(principal.user.id, [s.seq for s in signals])
        body = body_of(signals)
        headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        if after_seq is not None:
            last = max((s.seq or 0 for s in signals), default=after_seq)
            headers.append((b"x-next-after-seq", str(max(last, after_seq)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True
