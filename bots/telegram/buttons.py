"""The Win / Loss / Skip buttons under each alert.

A press records the outcome for the presser's hub user, ``answerCallbackQuery``
confirms it, and the keyboard is edited to mark the choice. Pressing another
button changes the recorded outcome.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import CallbackQueryHandler, ContextTypes

from bots.telegram.render import BUTTONS, feedback_keyboard, parse_callback_data
from core.context import HubContext
from domain.errors import HubError
from domain.signals import Signal

log = logging.getLogger(__name__)

PLATFORM = "telegram"
_LABELS = {outcome: label for label, outcome in BUTTONS}


class FeedbackButtons:
    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx

    def handler(self) -> CallbackQueryHandler:  # type: ignore[type-arg]
        return CallbackQueryHandler(self.on_press, pattern=r"^fb:")

    async def _signal(self, seq: int) -> Signal | None:
        return await self._ctx.services.signals.by_seq(seq)

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        parsed = parse_callback_data(query.data)
        if parsed is None:
            await query.answer("This button is no longer valid.")
            return
        outcome, seq = parsed
        signal = await self._signal(seq)
        if signal is None:
            await query.answer("That signal is no longer available.", show_alert=True)
            return
        try:
            user = await self._ctx.services.accounts.resolve(PLATFORM, query.from_user.id)
            info = await self._ctx.services.feedback.record(user.id, signal.signal_id, outcome)
        except HubError as err:
            await query.answer(str(err)[:190], show_alert=True)
            return
        label = _LABELS[outcome]
        verb = "Changed to" if info.updated else "Recorded"
        await query.answer(f"{verb} {label} for {signal.ticker}. See /stats")
        try:
            await query.edit_message_reply_markup(feedback_keyboard(seq, chosen=outcome))
        except BadRequest as err:
            if "not modified" not in err.message.lower():
                log.info("could not mark the choice on the keyboard: %s", err.message)
        except TelegramError as err:
            log.info("could not mark the choice on the keyboard: %s", err.__class__.__name__)
