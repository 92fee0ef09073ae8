"""Delivery settings commands: ``/delivery``, ``/quiet``, ``/digest`` and ``/max``.

Thin calls into :class:`core.services.delivery_prefs.DeliveryPrefsService`; a bad
value comes back as its :class:`~domain.errors.InvalidInput` message (the handlers
show it). Changing a setting follows the same rule as ``/set``: in groups only
administrators may; anyone may read the settings with ``/delivery``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update

from bots.telegram import texts
from core.context import HubContext

PLATFORM = "telegram"

Command = Callable[[Update, list[str]], Awaitable[str | None]]


def destination(update: Update) -> str:
    """The chat the command came from, as a subscription destination."""
    chat = update.effective_chat
    assert chat is not None
    return str(chat.id)


class DeliveryCommands:
    def __init__(self, ctx: HubContext, may_manage: Callable[[Update], Awaitable[bool]]) -> None:
        self._ctx = ctx
        self._may_manage = may_manage

    def commands(self) -> dict[str, Command]:
        return {
            "delivery": self.show,
            "quiet": self.quiet,
            "digest": self.digest,
            "max": self.cap,
        }

    async def show(self, update: Update, args: list[str]) -> str:
        prefs = await self._ctx.services.delivery.get(PLATFORM, destination(update))
        return texts.delivery_text(prefs)

    async def quiet(self, update: Update, args: list[str]) -> str:
        return await self._change(update, "quiet", args)

    async def digest(self, update: Update, args: list[str]) -> str:
        return await self._change(update, "digest", args)

    async def cap(self, update: Update, args: list[str]) -> str:
        return await self._change(update, "max", args)

    async def _change(self, update: Update, name: str, args: list[str]) -> str:
        """``/quiet 22:00-07:00 America/New_York``, ``/digest 15m``, ``/max 10/h`` or
        ``... off``. Held alerts are planned again under the new settings."""
        if not args:
            return texts.DELIVERY_USAGE[name]
        if not await self._may_manage(update):
            return texts.ADMINS_ONLY
        value = " ".join(args)
        prefs = await self._ctx.services.delivery.set(PLATFORM, destination(update), name, value)
        return texts.delivery_changed(name, value, prefs)
