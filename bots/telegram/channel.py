"""The Telegram delivery channel: one ``sendMessage`` per alert (or digest part),
failures classified. Both return Telegram's message id.

Limits (Telegram's published ceilings): 30 messages/s per bot, 1 message/s per
chat and, for groups and channels (negative chat ids), 20 messages/min. The
dispatcher's limiter wakes waiters one per freed slot, in order, at the moment
the slot frees, and keeps each send in Telegram's windows until Telegram has
answered it (it was counted by then), so no jitter between our send and Telegram's
count draws a 429. That also paces the sends: a burst that reached Telegram spread
out is answered spread out, and the next window's sends leave as its slots free.
(An earlier pacing window, two sends per 1/15 s, cost a whole second per fan-out
and is no longer needed.)

A 429 carries only ``retry_after``; Telegram does not say which limit it hit. Its
flood control is mostly per chat, so a 429 blocks that chat's scope and no other
chat waits for it. When several different chats are refused within a short
window, the bot as a whole is flooded and the 429 blocks the global scope instead.

Errors: 403 -> DestinationGone; ``migrate_to_chat_id`` -> DestinationMoved;
400 "chat not found" (and lost rights) -> DestinationGone; any other 400 -> the
alert (or digest part) is sent once more as plain text, then PermanentError; network errors,
timeouts and 5xx -> TransientError.

:meth:`TelegramChannel.edit` rewrites a delivered alert or digest part in place
(``editMessageText``) when its signal is retracted or corrected, classified the same
way, except: "message is not modified" is success; a message that is gone or cannot
be edited, or a chat that moved (its old messages stay behind), is PermanentError.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import ClassVar

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bots.telegram.digest import render_digest, render_digest_plain, split_digest
from bots.telegram.edit import edit_text, uneditable
from bots.telegram.render import feedback_keyboard, render_alert, render_plain
from core.channels import (
    Alert,
    Channel,
    DeliveryError,
    DestinationGone,
    DestinationMoved,
    Digest,
    Edit,
    PermanentError,
    RateLimit,
    RetryLater,
    TransientError,
)

log = logging.getLogger(__name__)

GLOBAL_LIMIT = RateLimit("global", 30, 1.0)
#: A chat's sends are rare, so one that reached Telegram late (behind others on the
#: wire) is not made up by its neighbours: the per-chat second gets this much slack.
JITTER_SECONDS = 0.05
#: BadRequest descriptions that mean the bot can never post to the chat again.
GONE_MARKERS = (
    "chat not found",
    "peer_id_invalid",
    "user not found",
    "not enough rights to send",
    "have no rights to send",
    "chat_write_forbidden",
)


def _retry_seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class FloodTracker:
    """Tells a chat's 429 from the whole bot's: ``threshold`` distinct chats refused
    within ``window`` seconds means the global limit was hit."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._window = window
        self._clock = clock
        self._recent: deque[tuple[float, str]] = deque()

    def scope_for(self, chat: str) -> str:
        now = self._clock()
        self._recent.append((now, chat))
        while self._recent and self._recent[0][0] < now - self._window:
            self._recent.popleft()
        if len({c for _t, c in self._recent}) >= self._threshold:
            return GLOBAL_LIMIT.scope
        return f"chat:{chat}"


class TelegramChannel(Channel):
    platform: ClassVar[str] = "telegram"

    def __init__(
        self,
        bot: Bot,
        *,
        flood: FloodTracker | None = None,
        digest_ttl: timedelta | None = None,
    ) -> None:
        self._bot = bot
        self._flood = flood or FloodTracker()
        #: How old a held alert may be before a digest leaves it out (named in the
        #: digest's "left out" line); None when the owner does not say.
        self._digest_ttl = digest_ttl

    @staticmethod
    def is_group(destination: str) -> bool:
        """Groups, supergroups and channels have negative ids (or an ``@username``)."""
        return destination.startswith(("-", "@"))

    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        limits = [GLOBAL_LIMIT]
        if self.is_group(destination):
            limits.append(RateLimit(f"group:{destination}", 20, 60.0))
        limits.append(RateLimit(f"chat:{destination}", 1, 1.0 + JITTER_SECONDS))
        return tuple(limits)

    @staticmethod
    def _chat_id(destination: str) -> int | str:
        try:
            return int(destination)
        except ValueError:
            return destination  # "@channelusername"

    async def send(self, alert: Alert) -> str:
        """The alert with its feedback keyboard; returns Telegram's message id."""
        return await self._send(
            alert.destination,
            render_alert(alert.signal, alert.hint),
            render_plain(alert.signal, alert.hint),
            keyboard=feedback_keyboard(alert.signal.seq),
            what=f"delivery {alert.delivery_id}",
        )

    def digest_parts(self, digest: Digest) -> list[Digest]:
        return split_digest(digest, self._digest_ttl)

    async def send_digest(self, digest: Digest) -> str:
        """One digest part, without a keyboard; returns Telegram's message id."""
        return await self._send(
            digest.destination,
            render_digest(digest, self._digest_ttl),
            render_digest_plain(digest, self._digest_ttl),
            keyboard=None,
            what=f"a digest part for subscription {digest.subscription_id}",
            quiet_links=True,
        )

    async def _send(
        self,
        destination: str,
        markup: str,
        plain: str,
        *,
        keyboard: InlineKeyboardMarkup | None,
        what: str,
        quiet_links: bool = False,
    ) -> str:
        """Send HTML, or once more as plain text when Telegram rejects the HTML."""
        chat_id = self._chat_id(destination)
        try:
            message = await self._bot.send_message(
                chat_id,
                markup,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard,
                disable_web_page_preview=True,
            )
            return str(message.message_id)
        except BadRequest as exc:
            if self._gone(exc):
                raise DestinationGone(f"telegram: {exc.message}") from None
            log.warning(
                "telegram rejected the HTML of %s (%s); sending plain text", what, exc.message
            )
        except TelegramError as exc:
            raise self._classify(destination, exc) from None
        try:  # once, as plain text: a broken entity never loses a message
            message = await self._bot.send_message(
                chat_id,
                plain,
                reply_markup=keyboard,
                disable_web_page_preview=True if quiet_links else None,
            )
        except BadRequest as exc:
            if self._gone(exc):
                raise DestinationGone(f"telegram: {exc.message}") from None
            raise PermanentError(f"telegram rejected the message: {exc.message}") from None
        except TelegramError as exc:
            raise self._classify(destination, exc) from None
        return str(message.message_id)

    async def edit(self, edit: Edit) -> None:
        """Rewrite the delivered message: the digest part again when it was one (no
        keyboard), else the alert from ``edit.signal`` (the feedback keyboard stays
        unless the signal was retracted)."""
        try:
            message_id = int(edit.message_id)
        except ValueError:
            raise PermanentError(f"not a telegram message id: {edit.message_id!r}") from None
        if edit.digest is not None:
            markup = render_digest(edit.digest, self._digest_ttl)
            plain = render_digest_plain(edit.digest, self._digest_ttl)
            keyboard = None
        else:
            markup = render_alert(edit.signal, edit.hint)
            plain = render_plain(edit.signal, edit.hint)
            keyboard = None if edit.signal.retracted else feedback_keyboard(edit.signal.seq)
        await edit_text(
            self._bot,
            self._chat_id(edit.destination),
            message_id,
            markup,
            plain,
            keyboard=keyboard,
            classify=lambda exc: self._classify_edit(edit.destination, exc),
            quiet_links=edit.digest is not None,
        )

    def _classify_edit(self, destination: str, exc: TelegramError) -> DeliveryError | None:
        """The error that ends an edit; None for a rejected payload (try plain text)."""
        if isinstance(exc, BadRequest):
            if self._gone(exc):
                return DestinationGone(f"telegram: {exc.message}")
            if uneditable(exc):
                return PermanentError(f"telegram cannot edit the message: {exc.message}")
            return None
        if isinstance(exc, ChatMigrated):
            return PermanentError(f"telegram: the chat moved to {exc.new_chat_id}")
        return self._classify(destination, exc)

    @staticmethod
    def _gone(exc: BadRequest) -> bool:
        text = exc.message.lower()
        return any(marker in text for marker in GONE_MARKERS)

    def _classify(self, destination: str, exc: TelegramError) -> DeliveryError:
        if isinstance(exc, RetryAfter):
            return RetryLater(
                _retry_seconds(exc.retry_after),
                self._flood.scope_for(destination),
                f"telegram 429: retry after {_retry_seconds(exc.retry_after):g}s",
            )
        if isinstance(exc, ChatMigrated):
            return DestinationMoved(str(exc.new_chat_id))
        if isinstance(exc, Forbidden):
            return DestinationGone(f"telegram 403: {exc.message}")
        if isinstance(exc, InvalidToken):
            # The bot token is wrong or revoked: every send fails until fixed; keep retrying.
            return TransientError("telegram refused the bot token (401/404)")
        if isinstance(exc, NetworkError):  # includes TimedOut and 5xx
            return TransientError(f"telegram: {exc.message}")
        return TransientError(f"telegram: {exc.__class__.__name__}: {exc.message}")
