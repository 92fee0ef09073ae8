"""Delivery to Discord: the core Channel contract over discord.py's public API.

Destinations are ``dm:<user id>`` (the DM channel is opened once with
:meth:`discord.Client.create_dm`, then cached) and ``channel:<channel id>``; a post
is :meth:`discord.PartialMessageable.send` on :meth:`discord.Client.get_partial_messageable`,
so no request fetches the channel first.

Rate limits: Discord allows a bot 50 requests/s in all, and 5 posts per 5 s in
one channel. Posts and DM opens share the 50/s by need: the dispatcher takes one
global slot (and the destination's) for a send's first request, and a send that
had to open the DM first takes a second global slot from the same limiter
(:meth:`attach_limiter`) right before its post leaves. So when every DM channel is known, posts may use
all 50/s. discord.py's HTTP client also keeps the per-route buckets from the
``X-RateLimit-*`` headers and sleeps through short 429s; what it gives up on is
classified here so the dispatcher can act:

* 429 (``discord.RateLimited`` or a 429 discord.py stopped retrying) -> RetryLater
* 50007 cannot DM, 10003 unknown channel, any 404, any 403 -> DestinationGone
  (the subscription is deactivated with the reason, so it is never retried and
  never burns the invalid-request budget)
* 401 (token revoked) -> RetryLater for the whole channel, so it is not hammered
* 5xx, network errors -> TransientError; any other 4xx -> PermanentError

An alert goes out as its embed with outcome buttons; a digest part (core/channels.py
:class:`~core.channels.Digest`) as one embed (bots/discord/digest.py). Both sends
return the posted message's id.

:meth:`DiscordChannel.edit` changes such a message in place when its signal is
corrected or retracted (:meth:`discord.PartialMessage.edit` on the same partial
channel): the alert's embed again (a retracted one loses its buttons) or the digest
part re-rendered. It opens a DM and is classified like a send, except that
10008 Unknown Message (the message was deleted) is a PermanentError.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import ClassVar

import aiohttp
import discord

from bots.discord.digest import digest_embed, split_digest
from bots.discord.render import signal_embed
from bots.discord.views import outcome_view
from core.channels import (
    Alert,
    Channel,
    DeliveryError,
    DestinationGone,
    Digest,
    Edit,
    PermanentError,
    RateLimit,
    RetryLater,
    TransientError,
)
from core.ratelimit import CURRENT_PERMIT, ScopedLimiter

log = logging.getLogger(__name__)

CANNOT_DM = 50007
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
GONE_CODES = frozenset({CANNOT_DM, UNKNOWN_CHANNEL, 10013, 50001})
#: Used when a 429 carries no usable retry-after.
DEFAULT_RETRY_AFTER = 1.0
#: A rejected token fails every send; pause the whole channel rather than spend the
#: invalid-request budget (10,000 401/403/429 in 10 minutes bans the IP).
UNAUTHORIZED_PAUSE = 60.0


def parse_destination(destination: str) -> tuple[str, int]:
    """``("dm", user_id)`` or ``("channel", channel_id)``; PermanentError otherwise."""
    kind, _, raw = destination.partition(":")
    if kind not in ("dm", "channel") or not raw.isdigit() or len(raw) > 20:
        raise PermanentError(f"not a Discord destination: {destination[:64]!r}")
    return kind, int(raw)


def parse_message_id(message_id: str) -> int:
    if not message_id.isdigit() or len(message_id) > 20:
        raise PermanentError(f"not a Discord message id: {message_id[:64]!r}")
    return int(message_id)


def dm_destination(user_id: int) -> str:
    return f"dm:{user_id}"


def channel_destination(channel_id: int) -> str:
    return f"channel:{channel_id}"


class DiscordChannel(Channel):
    platform: ClassVar[str] = "discord"

    def __init__(
        self,
        client: discord.Client,
        *,
        requests_per_second: int = 50,
        per_destination: tuple[int, float] = (5, 5.0),
        dm_cache_size: int = 10_000,
    ) -> None:
        self._client = client
        #: The bot's whole budget, shared by posts and DM opens.
        self._global = RateLimit("global", requests_per_second, 1.0)
        self._per_destination = per_destination
        self._limiter: ScopedLimiter | None = None
        self._dm_channels: OrderedDict[int, int] = OrderedDict()
        self._dm_cache_size = dm_cache_size
        #: Called after a DM channel is opened, to keep it across restarts.
        self.on_dm_opened: Callable[[int, int], Awaitable[None]] | None = None

    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        """One global slot and the destination's channel bucket. A DM still to be
        opened takes a second global slot for its post itself (see send)."""
        calls, period = self._per_destination
        return (self._global, RateLimit(destination, calls, period))

    def attach_limiter(self, limiter: ScopedLimiter) -> None:
        """Draw DM opens from ``limiter`` (the dispatcher's, at register)."""
        self._limiter = limiter

    def bind(self, client: discord.Client) -> None:
        """Send through ``client`` from now on (the bot replaced its client)."""
        self._client = client

    def cached_dm_channel(self, user_id: int) -> int | None:
        return self._dm_channels.get(user_id)

    def remember_dm_channel(self, user_id: int, channel_id: int) -> None:
        """Cache a DM channel seen elsewhere (an interaction from a DM), saving an open."""
        self._dm_channels[user_id] = channel_id
        self._dm_channels.move_to_end(user_id)
        while len(self._dm_channels) > self._dm_cache_size:
            self._dm_channels.popitem(last=False)

    async def send(self, alert: Alert) -> str:
        """Post the alert's embed with its outcome buttons; the message's id."""
        # The view's buttons are DynamicItems (bots/discord/views.py), so discord.py
        # keeps no per-message state for it after the send.
        return await self._deliver(
            alert.destination,
            partial(
                self._post,
                embed=signal_embed(alert.signal, alert.hint),
                view=outcome_view(alert.signal),
            ),
        )

    def digest_parts(self, digest: Digest) -> list[Digest]:
        """Parts that each fit one embed (bots/discord/digest.py)."""
        return split_digest(digest)

    async def send_digest(self, digest: Digest) -> str:
        """Post one digest part as one embed; the message's id."""
        return await self._deliver(
            digest.destination, partial(self._post, embed=digest_embed(digest))
        )

    async def edit(self, edit: Edit) -> None:
        """Edit the delivered message to the signal's current state: the digest part
        again if it was one, else the alert (buttons kept unless it is retracted)."""
        message_id = parse_message_id(edit.message_id)
        view: discord.ui.View | None = None
        if edit.digest is not None:
            embed = digest_embed(edit.digest)
        else:
            embed = signal_embed(edit.signal, edit.hint)
            view = None if edit.signal.retracted else outcome_view(edit.signal)
        await self._deliver(
            edit.destination, partial(self._edit, message_id, embed=embed, view=view)
        )

    async def _deliver(self, destination: str, request: Callable[[int], Awaitable[str]]) -> str:
        """``request(channel id)`` for ``destination`` (opening the DM first if
        needed), classifying failures."""
        kind, target = parse_destination(destination)
        if self._client.user is None or self._client.is_closed():
            raise TransientError("the Discord bot is not connected")
        try:
            opened = kind == "dm" and target not in self._dm_channels
            channel_id = await self._dm_channel(target) if kind == "dm" else target
            if opened and self._limiter is not None:
                # The DM open was the dispatcher's request: answered now, so Discord
                # has counted it; its slot frees a second from now, not from when it
                # was queued (else the posts behind it land in the same window: 429).
                opening = CURRENT_PERMIT.get()
                if opening is not None:
                    self._limiter.settle(opening, final=True)
                # The dispatcher's slot went with the DM open, which left at
                # once; the post is a second request: its own slot, as it leaves.
                permit = await self._limiter.acquire((self._global,), first=True)
                try:
                    return await request(channel_id)
                finally:
                    self._limiter.settle(permit)
            return await request(channel_id)
        except discord.RateLimited as exc:
            raise RetryLater(exc.retry_after, destination) from None
        except discord.HTTPException as exc:
            error = classify(exc, destination)
            if kind == "dm" and isinstance(error, DestinationGone):
                self._dm_channels.pop(target, None)
            raise error from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise TransientError(
                f"network error talking to Discord: {exc.__class__.__name__}"
            ) from None

    async def _post(
        self, channel_id: int, *, embed: discord.Embed, view: discord.ui.View | None = None
    ) -> str:
        messageable = self._client.get_partial_messageable(channel_id)
        if view is None:
            message = await messageable.send(embed=embed)
        else:
            message = await messageable.send(embed=embed, view=view)
        return str(message.id)

    async def _edit(
        self,
        message_id: int,
        channel_id: int,
        *,
        embed: discord.Embed,
        view: discord.ui.View | None,
    ) -> str:
        messageable = self._client.get_partial_messageable(channel_id)
        # view=None removes the buttons; a view replaces them.
        message = await messageable.get_partial_message(message_id).edit(embed=embed, view=view)
        return str(message.id)

    async def _dm_channel(self, user_id: int) -> int:
        channel_id = self._dm_channels.get(user_id)
        if channel_id is not None:
            self._dm_channels.move_to_end(user_id)
            return channel_id
        channel_id = (await self._client.create_dm(discord.Object(id=user_id))).id
        self.remember_dm_channel(user_id, channel_id)
        if self.on_dm_opened is not None:
            try:
                await self.on_dm_opened(user_id, channel_id)
            except Exception:  # the send goes on; the DM is just opened again later
                log.warning("could not store the DM channel of user %s", user_id, exc_info=True)
        return channel_id


def _retry_after(exc: discord.HTTPException) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        try:
            return max(0.0, float(headers[name]))
        except (KeyError, TypeError, ValueError):
            continue
    return DEFAULT_RETRY_AFTER


def _is_global(exc: discord.HTTPException) -> bool:
    headers = getattr(exc.response, "headers", None) or {}
    if str(headers.get("X-RateLimit-Global", "")).lower() == "true":
        return True
    if headers.get("X-RateLimit-Scope") == "global":
        return True
    # No Via header: Cloudflare answered, not Discord; everything waits.
    return not headers.get("Via")


def classify(exc: discord.HTTPException, destination: str) -> DeliveryError:
    """The DeliveryError for an HTTP failure sending to ``destination``."""
    status = exc.status
    detail = f"{status} {exc.code}: {exc.text}"[:200] if exc.code else f"{status}"
    if status == 429:
        scope = "global" if _is_global(exc) else destination
        return RetryLater(_retry_after(exc), scope, reason=f"Discord 429 ({scope})")
    if status == 401:
        log.error("Discord rejected the bot token (401); pausing deliveries")
        return RetryLater(
            UNAUTHORIZED_PAUSE, "global", reason="Discord rejected the bot token (401)"
        )
    if exc.code == UNKNOWN_MESSAGE:
        return PermanentError(f"message deleted (Discord {detail})")
    if exc.code == CANNOT_DM:
        return DestinationGone(f"cannot DM this user (Discord {detail})")
    if exc.code in GONE_CODES or status == 404:
        return DestinationGone(f"unknown or inaccessible channel (Discord {detail})")
    if status == 403:
        return DestinationGone(f"forbidden: the bot may not post there (Discord {detail})")
    if status >= 500:
        return TransientError(f"Discord server error {detail}")
    return PermanentError(f"Discord rejected the message ({detail})")
