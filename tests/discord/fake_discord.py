"""A fake Discord: REST API + gateway on 127.0.0.1 that a real discord.py client talks to.

Point discord.py at it with :meth:`FakeDiscord.patch` (``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``). It speaks the wire protocol: HELLO ->
IDENTIFY -> READY on the gateway (heartbeats ACK'd), then INTERACTION_CREATE
dispatches that tests inject; on REST it answers login, application info,
command sync (recorded), interaction callbacks and follow-ups, DM channel
creation and channel messages (recorded), edits of those messages (``PATCH
/channels/{id}/messages/{id}``: recorded in :attr:`FakeDiscord.edits`, the stored
message updated, 404 10008 for a message it does not hold), and returns configured
errors (429 with ``retry_after`` and ``Via``, 403 50007, 404 10003, 5xx).

Guilds added with :meth:`FakeDiscord.add_guild` answer ``GET /guilds/{id}`` (with
the roles), ``GET /guilds/{id}/roles`` and ``GET /guilds/{id}/members/{user id}``:
the bot is a member holding one role with the given permissions. A guild the bot
is not in answers 403 50001 (Missing Access); another member, 404 10007.

``enforce_limits=True`` makes it enforce Discord's rate limits as sliding windows:
50 requests per second per bot (``global_limit``) over authenticated REST calls,
and 5 posts per 5 s per channel (``route_limit``). Channel posts carry the
bucket headers (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``,
``-Reset-After``, ``-Bucket``); a request over a limit gets 429 with
``Retry-After``, ``X-RateLimit-Scope``/``-Global`` and a body with
``retry_after`` and ``global``. :attr:`FakeDiscord.rate_limited` counts them,
:attr:`FakeDiscord.refused_by` by limit, and every post records its arrival
time (:attr:`Sent.at`, ``time.monotonic()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from aiohttp import WSMsgType, web

from tests.aiohttp_server import serve

APP_ID = 910000000000000001
BOT_ID = 910000000000000002
TOKEN = "fake-discord-token.XYZ"
MANAGE_CHANNELS = 1 << 4
SEND_MESSAGES = 1 << 11
VIEW_CHANNEL = 1 << 10
EMBED_LINKS = 1 << 14
ADMINISTRATOR = 1 << 3
JSON = "application/json"

BOT_USER: dict[str, Any] = {
    "id": str(BOT_ID),
    "username": "catalyst-hub",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
    "verified": True,
    "mfa_enabled": False,
}


def user_payload(user_id: int) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": f"trader{user_id % 10_000}",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "public_flags": 0,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()


#: What a field cleared with null becomes in a message.
_EMPTY: dict[str, Any] = {"content": "", "embeds": [], "components": [], "flags": 0}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": JSON, **(headers or {})},
    )


@dataclass
class Failure:
    """An error the fake answers instead of succeeding."""

    status: int
    code: int = 0
    message: str = "error"
    retry_after: float = 0.0
    is_global: bool = False
    via: bool = True

    def response(self) -> web.Response:
        if self.status == 429:
            headers = {
                "Retry-After": f"{self.retry_after:g}",
                "X-RateLimit-Scope": "global" if self.is_global else "user",
            }
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            if self.via:
                headers["Via"] = "1.1 google"
            body = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
            }
            return _json(body, 429, headers)
        return _json({"message": self.message, "code": self.code}, self.status)


CANNOT_DM = Failure(403, 50007, "Cannot send messages to this user")
UNKNOWN_CHANNEL = Failure(404, 10003, "Unknown Channel")
MISSING_PERMISSIONS = Failure(403, 50013, "Missing Permissions")
SERVER_ERROR = Failure(503, 0, "Service Unavailable")
UNKNOWN_MESSAGE = Failure(404, 10008, "Unknown Message")


@dataclass
class Sent:
    channel_id: int
    payload: dict[str, Any]
    message: dict[str, Any]
    #: When the post arrived (time.monotonic()).
    at: float = 0.0


@dataclass
class Edited:
    """One edit of a posted message: the PATCH body and the message after it."""

    channel_id: int
    message_id: str
    payload: dict[str, Any]
    message: dict[str, Any]


@dataclass
class Guild:
    """A guild the bot is in: ``@everyone`` (id = the guild's) and the bot's own role."""

    guild_id: int
    name: str
    #: Permission bits of the bot's role, and of @everyone.
    bot_permissions: int
    everyone_permissions: int = 0
    owner_id: int = 1

    @property
    def bot_role_id(self) -> int:
        return self.guild_id + 1

    def _role(self, role_id: int, name: str, permissions: int, position: int) -> dict[str, Any]:
        role: dict[str, Any] = {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": role_id != self.guild_id,
            "mentionable": False,
            "flags": 0,
        }
        if role_id != self.guild_id:
            role["tags"] = {"bot_id": str(BOT_ID)}
        return role

    def roles(self) -> list[dict[str, Any]]:
        return [
            self._role(self.guild_id, "@everyone", self.everyone_permissions, 0),
            self._role(self.bot_role_id, "catalyst-hub", self.bot_permissions, 1),
        ]

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.guild_id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": self.roles(),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def member(self) -> dict[str, Any]:
        return {
            "user": BOT_USER,
            "nick": None,
            "avatar": None,
            "roles": [str(self.bot_role_id)],
            "joined_at": _now(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }


class _Windows:
    """Sliding windows by key: the limits ``enforce_limits`` applies."""

    def __init__(self) -> None:
        self.stamps: dict[str, deque[float]] = defaultdict(deque)

    def used(self, key: str, period: float, now: float) -> deque[float]:
        q = self.stamps[key]
        while q and q[0] <= now - period:
            q.popleft()
        return q


def rate_limited(
    retry_after: float, *, is_global: bool, bucket: str | None, limit: int
) -> web.Response:
    """Discord's 429: headers, and a body with ``retry_after`` and ``global``."""
    headers = {
        "Retry-After": f"{retry_after:.3f}",
        "X-RateLimit-Scope": "global" if is_global else "user",
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    if bucket is not None:
        headers.update(_bucket_headers(bucket, limit, 0, retry_after))
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return _json(body, 429, headers)


def _bucket_headers(bucket: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
    }


@dataclass
class InteractionLog:
    payload: dict[str, Any]
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Reply:
    """What the user sees as the answer to an interaction."""

    #: The message's content, or its first embed's description when it has none.
    content: str
    ephemeral: bool
    deferred: bool
    raw: dict[str, Any]
    #: Uploaded files: (filename, content type, bytes).
    files: list[tuple[str, str, bytes]] = field(default_factory=list)

    def embeds(self) -> list[dict[str, Any]]:
        data = self.raw.get("data", self.raw) if "type" in self.raw else self.raw
        return list(data.get("embeds") or [])


class FakeDiscord:
    def __init__(
        self,
        token: str = TOKEN,
        *,
        enforce_limits: bool = False,
        global_limit: tuple[int, float] = (50, 1.0),
        route_limit: tuple[int, float] = (5, 5.0),
    ) -> None:
        self.token = token
        self.enforce_limits = enforce_limits
        self.global_limit = global_limit
        self.route_limit = route_limit
        #: 429s answered by the enforced limits, in all and by limit ("global", "route").
        self.rate_limited = 0
        self.refused_by: Counter[str] = Counter()
        self._windows = _Windows()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1_000_000_000_000_000_000)
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.command_syncs: list[tuple[int | None, list[dict[str, Any]]]] = []
        self.identifies: list[dict[str, Any]] = []
        self.heartbeats = 0
        #: When true, IDENTIFY is never answered with READY (a stuck gateway).
        self.hold_ready = False
        self.sent: list[Sent] = []
        self.edits: list[Edited] = []
        #: Posted messages by id, as they are now (edits applied).
        self.messages: dict[str, dict[str, Any]] = {}
        self.dm_opened: list[int] = []
        self.dm_channels: dict[int, int] = {}
        self.interactions: dict[str, InteractionLog] = {}
        self.failures: dict[tuple[str, int], deque[Failure]] = defaultdict(deque)
        self._sessions: list[web.WebSocketResponse] = []
        self._seq: dict[int, int] = {}
        self._changed = asyncio.Event()
        #: Guilds the bot is in, by id (:meth:`add_guild`).
        self.guilds: dict[int, Guild] = {}

    # ---- lifecycle ------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner, self.port = await serve(app)

    async def close(self) -> None:
        for ws in list(self._sessions):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> yarl.URL:
        return yarl.URL(f"ws://127.0.0.1:{self.port}/gateway")

    def patch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(discord.http.Route, "BASE", self.base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", self.gateway_url)

    # ---- waiting --------------------------------------------------------
    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every request and event)."""
        try:
            async with asyncio.timeout(within):
                while not (result := predicate()):
                    event = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), 0.25)
                return result
        except TimeoutError:
            raise AssertionError("fake Discord: timed out waiting for a condition") from None

    # ---- configuration --------------------------------------------------
    def fail_messages(self, channel_id: int, failure: Failure, times: int = 1) -> None:
        self.failures[("messages", channel_id)].extend([failure] * times)

    def fail_edits(self, channel_id: int, failure: Failure, times: int = 1) -> None:
        self.failures[("edits", channel_id)].extend([failure] * times)

    def fail_dm_open(self, user_id: int, failure: Failure, times: int = 1) -> None:
        self.failures[("dm", user_id)].extend([failure] * times)

    def add_guild(
        self,
        guild_id: int,
        *,
        permissions: int = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS,
        everyone: int = 0,
        name: str = "Traders",
    ) -> Guild:
        """Put the bot in a guild, its role holding ``permissions`` (and @everyone ``everyone``)."""
        guild = self.guilds[guild_id] = Guild(guild_id, name, permissions, everyone)
        return guild

    def _failure(self, kind: str, key: int) -> Failure | None:
        queue = self.failures.get((kind, key))
        return queue.popleft() if queue else None

    def messages_to(self, channel_id: int) -> list[Sent]:
        return [s for s in self.sent if s.channel_id == channel_id]

    # ---- gateway --------------------------------------------------------
    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(payload))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._seq[id(ws)] = 0
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                op = data.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(ws, data["d"])
                elif op == 6:
                    await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
        finally:
            if ws in self._sessions:
                self._sessions.remove(ws)
            self._touch()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.hold_ready:
            return
        await self._dispatch_to(
            ws,
            "READY",
            {
                "v": 10,
                "user": BOT_USER,
                "guilds": [],
                "session_id": f"session-{len(self.identifies)}",
                "resume_gateway_url": str(self.gateway_url),
                "application": {"id": str(APP_ID), "flags": 0},
            },
        )
        self._sessions.append(ws)
        self._touch()

    async def _dispatch_to(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        self._seq[id(ws)] += 1
        await self._send(ws, {"op": 0, "t": event, "s": self._seq[id(ws)], "d": data})

    async def dispatch(self, event: str, data: Any) -> None:
        await self.wait_for(lambda: self._sessions)
        for ws in list(self._sessions):
            await self._dispatch_to(ws, event, data)

    # ---- REST -----------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path))
        # Interaction callbacks and webhooks are authorised by their token in the path.
        needs_auth = not path.startswith(("/interactions/", "/webhooks/"))
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        body: Any = None
        if request.content_type.startswith("multipart/"):
            body = await _multipart(request)
        elif request.can_read_body:
            body = await request.json()
        if self.enforce_limits and needs_auth:
            refused = self._over_global_limit()
            if refused is not None:
                self._touch()
                return refused
        try:
            return await self._route(request.method, path, body)
        finally:
            self._touch()

    async def _route(self, method: str, path: str, body: Any) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/users/@me"):
            return _json(BOT_USER)
        if method == "GET" and path in ("/oauth2/applications/@me", "/applications/@me"):
            return _json(self._app_info())
        if method == "GET" and path in ("/gateway", "/gateway/bot"):
            return _json(
                {
                    "url": str(self.gateway_url),
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if method == "PUT" and parts[0] == "applications" and parts[-1] == "commands":
            guild_id = int(parts[3]) if len(parts) == 5 and parts[2] == "guilds" else None
            self.command_syncs.append((guild_id, body))
            return _json([self._registered(c, guild_id) for c in body])
        if method == "POST" and parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[2], body)
        if parts[0] == "webhooks" and len(parts) >= 3:
            return self._webhook(method, parts, body)
        if method == "GET" and parts[0] == "guilds" and (found := self._guild(parts)) is not None:
            return found
        if (method, path) == ("POST", "/users/@me/channels"):
            return self._open_dm(int(body["recipient_id"]))
        if method == "POST" and parts[0] == "channels" and parts[-1] == "messages":
            return self._post_message(int(parts[1]), body)
        if method == "PATCH" and len(parts) == 4 and parts[::2] == ["channels", "messages"]:
            return self._edit_message(int(parts[1]), parts[3], body)
        self.unhandled.append((method, path))
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "Catalyst Signal Hub",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload(1),
            "verify_key": "0" * 64,
            "flags": 0,
        }

    def _registered(self, command: dict[str, Any], guild_id: int | None) -> dict[str, Any]:
        out = {
            "id": str(next(self._ids)),
            "application_id": str(APP_ID),
            "version": "1",
            "default_member_permissions": None,
            "nsfw": False,
            "type": 1,
            "description": "",
            "options": [],
            **command,
        }
        if guild_id is not None:
            out["guild_id"] = str(guild_id)
        return out

    def _message(self, channel_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(next(self._ids)),
            "channel_id": str(channel_id),
            "type": 0,
            "content": body.get("content") or "",
            "author": BOT_USER,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "flags": body.get("flags") or 0,
        }

    def _callback(self, token: str, body: dict[str, Any]) -> web.Response:
        log = self.interactions.get(token)
        if log is None:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if log.callbacks:
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
            )
        log.callbacks.append(body)
        kind = body["type"]
        if kind == 8:  # autocomplete result
            return web.Response(status=204)
        data = body.get("data") or {}
        flags = data.get("flags") or 0
        message = self._message(int(log.payload.get("channel_id") or 0), data)
        return _json(
            {
                "interaction": {
                    "id": log.payload["id"],
                    "type": log.payload["type"],
                    "response_message_id": message["id"],
                    "response_message_loading": kind == 5,
                    "response_message_ephemeral": bool(flags & 64),
                },
                "resource": {"type": kind, "message": message},
            }
        )

    def _webhook(self, method: str, parts: list[str], body: Any) -> web.Response:
        token = parts[2]
        log = self.interactions.get(token)
        if log is None:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        channel_id = int(log.payload.get("channel_id") or 0)
        if method == "POST" and len(parts) == 3:
            log.followups.append(body)
            return _json(self._message(channel_id, body))
        if method == "PATCH" and len(parts) == 5:
            log.edits.append(body)
            return _json(self._message(channel_id, body))
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _guild(self, parts: list[str]) -> web.Response | None:
        """GET /guilds/{id}, /guilds/{id}/roles, /guilds/{id}/members/{user id};
        None for any other guild route (left unhandled)."""
        rest = parts[2:]
        member = len(rest) == 2 and rest[0] == "members"
        if len(parts) < 2 or (rest not in ([], ["roles"]) and not member):
            return None
        guild = self.guilds.get(int(parts[1])) if parts[1].isdigit() else None
        if guild is None:
            return _json({"message": "Missing Access", "code": 50001}, 403)
        if not rest:
            return _json(guild.payload())
        if rest == ["roles"]:
            return _json(guild.roles())
        if rest[1] != str(BOT_ID):
            return _json({"message": "Unknown Member", "code": 10007}, 404)
        return _json(guild.member())

    def _open_dm(self, user_id: int) -> web.Response:
        failure = self._failure("dm", user_id)
        if failure is not None:
            return failure.response()
        self.dm_opened.append(user_id)
        channel_id = self.dm_channels.setdefault(user_id, next(self._ids))
        return _json(
            {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "recipients": [user_payload(user_id)],
            }
        )

    def _over_global_limit(self) -> web.Response | None:
        """Count a request against the global limit, or refuse it (429, global)."""
        limit, period = self.global_limit
        now = time.monotonic()
        used = self._windows.used("global", period, now)
        if len(used) >= limit:
            self.rate_limited += 1
            self.refused_by["global"] += 1
            return rate_limited(used[0] + period - now, is_global=True, bucket=None, limit=limit)
        used.append(now)
        return None

    def _post_message(self, channel_id: int, body: dict[str, Any]) -> web.Response:
        failure = self._failure("messages", channel_id)
        if failure is not None:
            return failure.response()
        now = time.monotonic()
        headers = {
            "X-RateLimit-Bucket": "messages-bucket",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset-After": "1.0",
        }
        if self.enforce_limits:
            limit, period = self.route_limit
            bucket = f"messages-{channel_id}"
            used = self._windows.used(bucket, period, now)
            if len(used) >= limit:
                self.rate_limited += 1
                self.refused_by["route"] += 1
                return rate_limited(
                    used[0] + period - now, is_global=False, bucket=bucket, limit=limit
                )
            used.append(now)
            reset_after = used[0] + period - now
            headers = _bucket_headers(bucket, limit, limit - len(used), reset_after)
        message = self._message(channel_id, body)
        self.sent.append(Sent(channel_id, body, message, at=now))
        self.messages[message["id"]] = dict(message)
        return _json(message, headers=headers)

    def _edit_message(self, channel_id: int, message_id: str, body: dict[str, Any]) -> web.Response:
        """Discord's message edit: only the fields sent change (``components: []``
        removes the buttons); a message not posted in that channel is 10008."""
        failure = self._failure("edits", channel_id)
        if failure is not None:
            return failure.response()
        current = self.messages.get(message_id)
        if current is None or current["channel_id"] != str(channel_id):
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        for key in ("content", "embeds", "components", "flags"):
            if key in body:
                current[key] = body[key] if body[key] is not None else _EMPTY[key]
        current["edited_timestamp"] = _now()
        self.edits.append(Edited(channel_id, message_id, body, dict(current)))
        return _json(current)

    # ---- injecting interactions -----------------------------------------
    def _base_interaction(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        member_permissions: int,
        message: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        interaction_id = next(self._ids)
        token = f"itoken-{interaction_id}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "token": token,
            "version": 1,
            "data": data,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 8 * 1024 * 1024,
            "app_permissions": str(SEND_MESSAGES | VIEW_CHANNEL),
        }
        if guild_id is not None:
            channel_id = channel_id or next(self._ids)
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                context=0,
                authorizing_integration_owners={"0": str(guild_id)},
                channel_id=str(channel_id),
                channel={
                    "id": str(channel_id),
                    "type": 0,
                    "guild_id": str(guild_id),
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "permissions": str(member_permissions),
                },
                member={
                    "user": user_payload(user_id),
                    "roles": [],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "pending": False,
                    "permissions": str(member_permissions),
                },
            )
        else:
            channel_id = channel_id or self.dm_channels.setdefault(user_id, next(self._ids))
            payload.update(
                context=1,
                authorizing_integration_owners={"1": str(user_id)},
                channel_id=str(channel_id),
                channel={
                    "id": str(channel_id),
                    "type": 1,
                    "last_message_id": None,
                    "recipients": [user_payload(user_id)],
                },
                user=user_payload(user_id),
            )
        if message is not None:
            payload["message"] = message
        self.interactions[token] = InteractionLog(payload)
        return payload

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int,
        subcommand: str | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        channels: dict[int, int] | None = None,
        member_permissions: int = SEND_MESSAGES | VIEW_CHANNEL,
        focused: str | None = None,
        channel_type: int = 0,
    ) -> str:
        """Inject a slash command (or, with ``focused``, its autocomplete); returns the token.

        ``channels`` maps channel ids used as option values to the caller's permission
        bits there (Discord resolves them into ``data.resolved.channels``).
        """
        opts = [
            {
                "name": key,
                "type": _option_type(value, key == "channel"),
                "value": str(value) if key == "channel" else value,
                **({"focused": True} if key == focused else {}),
            }
            for key, value in (options or {}).items()
        ]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data: dict[str, Any] = {
            "id": str(next(self._ids)),
            "name": name,
            "type": 1,
            "options": opts,
        }
        if channels:
            data["resolved"] = {
                "channels": {
                    str(cid): {
                        "id": str(cid),
                        "name": f"alerts-{cid % 1000}",
                        "type": channel_type,
                        "permissions": str(perms),
                        "parent_id": None,
                        "flags": 0,
                    }
                    for cid, perms in channels.items()
                }
            }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        payload = self._base_interaction(
            4 if focused else 2,
            data,
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            member_permissions=member_permissions,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["token"])

    async def press(self, sent: Sent, custom_id: str, *, user_id: int) -> str:
        """Inject a button press on a message the bot sent (a DM); returns the token."""
        data = {"custom_id": custom_id, "component_type": 2}
        payload = self._base_interaction(
            3,
            data,
            user_id=user_id,
            guild_id=None,
            channel_id=sent.channel_id,
            member_permissions=0,
            message=sent.message,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["token"])

    async def reply(self, token: str, within: float = 5.0) -> Reply:
        """The answer the user sees, following a deferral to its follow-up."""
        log = self.interactions[token]
        await self.wait_for(lambda: log.callbacks, within)
        first = log.callbacks[0]
        if first["type"] == 5:
            await self.wait_for(lambda: log.followups or log.edits, within)
            body = (log.followups or log.edits)[0]
            flags = body.get("flags") or (first.get("data") or {}).get("flags") or 0
            return Reply(_text(body), bool(flags & 64), True, body, body.get("_files", []))
        data = first.get("data") or {}
        flags = data.get("flags") or 0
        return Reply(_text(data), bool(flags & 64), False, first, first.get("_files", []))

    async def choices(self, token: str, within: float = 5.0) -> list[dict[str, Any]]:
        log = self.interactions[token]
        await self.wait_for(lambda: log.callbacks, within)
        assert log.callbacks[0]["type"] == 8, log.callbacks[0]
        return list(log.callbacks[0]["data"]["choices"])


def _text(message: dict[str, Any]) -> str:
    if message.get("content"):
        return str(message["content"])
    embeds = message.get("embeds") or []
    return str(embeds[0].get("description") or "") if embeds else ""


async def _multipart(request: web.Request) -> dict[str, Any]:
    """A request with files, as Discord takes it: the JSON in ``payload_json`` and
    each file as ``files[n]``, matched to ``attachments[].id`` = n. The files land
    in the body as ``_files``: (filename, content type, bytes)."""
    body: dict[str, Any] = {}
    files: list[tuple[str, str, bytes]] = []
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "payload_json":
            body.update(json.loads(await part.text()))
        elif part.name and part.name.startswith("files["):
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files.append((part.filename or "", content_type, bytes(await part.read())))
    message = body.get("data", body)  # an interaction callback wraps the message
    names = {str(a.get("id")): a.get("filename") for a in message.get("attachments", [])}
    for index, (filename, _type, _data) in enumerate(files):
        assert names.get(str(index)) == filename, (names, filename)
    body["_files"] = files
    return body


def _option_type(value: Any, is_channel: bool) -> int:
    if is_channel:
        return 7
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def custom_ids(sent: Sent) -> list[str]:
    return [
        component["custom_id"]
        for row in sent.payload.get("components", [])
        for component in row.get("components", [])
        if "custom_id" in component
    ]
