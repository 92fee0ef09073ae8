"""Editing a delivered message in place (``editMessageText``), once, HTML first.

Used by ``TelegramChannel.edit`` when a signal is retracted or corrected. Like a
send, HTML that Telegram rejects is tried once more as plain text. Telegram's
"message is not modified" means the message already reads as asked: success.
Which other failures end the edit is the channel's call (``classify``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from core.channels import DeliveryError, PermanentError

log = logging.getLogger(__name__)

#: BadRequest descriptions that mean this message can never be edited.
UNEDITABLE_MARKERS = (
    "message to edit not found",
    "message can't be edited",
    "message_id_invalid",
    "there is no text in the message to edit",
)

#: Maps a failed edit to the error to raise, or None to try plain text once.
Classify = Callable[[TelegramError], DeliveryError | None]


def not_modified(exc: TelegramError) -> bool:
    return isinstance(exc, BadRequest) and "message is not modified" in exc.message.lower()


def uneditable(exc: BadRequest) -> bool:
    text = exc.message.lower()
    return any(marker in text for marker in UNEDITABLE_MARKERS)


async def edit_text(
    bot: Bot,
    chat_id: int | str,
    message_id: int,
    markup: str,
    plain: str,
    *,
    keyboard: InlineKeyboardMarkup | None,
    classify: Classify,
    quiet_links: bool = False,
) -> None:
    """Edit the message to ``markup`` (HTML), or once more to ``plain`` when Telegram
    rejects the HTML. ``keyboard=None`` removes the message's inline keyboard."""
    try:
        await bot.edit_message_text(
            markup,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard,
            disable_web_page_preview=True,
        )
        return
    except TelegramError as exc:
        if not_modified(exc):
            return
        error = classify(exc)
        if error is not None:
            raise error from None
        log.warning(
            "telegram rejected the HTML of an edit to message %s (%s); editing to plain text",
            message_id,
            exc.message,
        )
    try:  # once, as plain text: a broken entity never leaves the old text standing
        await bot.edit_message_text(
            plain,
            chat_id=chat_id,
            message_id=message_id,
            reply_markup=keyboard,
            disable_web_page_preview=True if quiet_links else None,
        )
    except TelegramError as exc:
        if not_modified(exc):
            return
        error = classify(exc) or PermanentError(f"telegram rejected the edit: {exc.message}")
        raise error from None
