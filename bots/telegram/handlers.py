"""Telegram commands: thin calls into the core services.

Private chats, groups and channels all work. In groups only administrators (or
the configured ``admin_user_ids``) may subscribe, unsubscribe or change filters
and delivery settings (/quiet, /digest, /max: bots/telegram/delivery_commands.py);
anyone may read them. ``CommandHandler`` ignores ``/cmd@otherbot`` because the bot
knows its own username from ``getMe``; channel posts (which CommandHandler does not
see) go through :meth:`TelegramHandlers.channel_command`, which applies
the same rule.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Chat, InputFile, Message, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bots.telegram import texts
from bots.telegram.buttons import FeedbackButtons
from bots.telegram.delivery_commands import DeliveryCommands, destination
from core.context import HubContext
from core.services import UserRef
from core.settings import TelegramSettings
from domain.errors import HubError
from domain.filters import SignalFilter
from domain.preview import split_days

log = logging.getLogger(__name__)

PLATFORM = "telegram"
RECENT_DEFAULT = 5
RECENT_MAX = 10
#: Telegram's limit on a photo's caption.
CAPTION_MAX = 1024

Context = ContextTypes.DEFAULT_TYPE
Command = Callable[[Update, list[str]], Awaitable[str | None]]


def _args(message: Message) -> list[str]:
    return (message.text or "").split()[1:]


class TelegramHandlers:
    def __init__(self, ctx: HubContext, settings: TelegramSettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._buttons = FeedbackButtons(ctx)
        self._delivery = DeliveryCommands(ctx, self._may_manage)
        self._commands: dict[str, Command] = {
            "start": self.start,
            "help": self.help,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "filters": self.show_filters,
            "set": self.set,
            "reset": self.reset,
            **self._delivery.commands(),
            "feedback": self.feedback,
            "stats": self.stats,
            "recent": self.recent,
            "preview": self.preview,
            "link": self.link,
        }

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        for name, command in self._commands.items():
            application.add_handler(CommandHandler(name, self._wrap(command)))
        application.add_handler(
            MessageHandler(filters.UpdateType.CHANNEL_POST & filters.COMMAND, self.channel_command)
        )
        application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self.migrated))
        application.add_handler(
            ChatMemberHandler(self.membership_changed, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        application.add_handler(self._buttons.handler())
        application.add_error_handler(self.on_error)

    # ---- plumbing -------------------------------------------------------
    def _wrap(self, command: Command) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
        async def callback(update: Update, context: Context) -> None:
            await self._run(command, update)

        return callback

    async def _run(self, command: Command, update: Update) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            reply = await command(update, _args(message))
        except HubError as err:
            reply = texts.esc(str(err))
        except TelegramError as err:
            log.warning("telegram command failed: %s", err.__class__.__name__)
            reply = "Telegram did not answer; please try again."
        except Exception:
            # only the command word: arguments may hold a link code
            log.exception("telegram command %s failed", (message.text or "?").split()[0][:40])
            reply = "Something went wrong on our side; please try again in a minute."
        if reply:
            await message.reply_text(
                reply, parse_mode=ParseMode.HTML, disable_web_page_preview=True
            )

    async def channel_command(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        word = message.text.split(maxsplit=1)[0][1:]
        name, _, target = word.partition("@")
        if target and target.lower() != (context.bot.username or "").lower():
            return  # addressed to another bot
        command = self._commands.get(name.lower())
        if command is not None:
            await self._run(command, update)

    async def on_error(self, update: object, context: Context) -> None:
        err = context.error
        log.error(
            "telegram update failed: %s: %s",
            err.__class__.__name__,
            err,
            exc_info=(type(err), err, err.__traceback__) if err is not None else None,
        )

    async def _user(self, update: Update) -> UserRef:
        """The hub user behind the sender; a channel (no sender) is its own user."""
        user = update.effective_user
        chat = update.effective_chat
        account = user.id if user is not None else (chat.id if chat is not None else 0)
        return await self._ctx.services.accounts.resolve(PLATFORM, account)

    _destination = staticmethod(destination)

    async def _may_manage(self, update: Update) -> bool:
        chat = update.effective_chat
        message = update.effective_message
        if chat is None or message is None:
            return False
        if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
            return True  # only a channel's admins can post in it
        if message.sender_chat is not None and message.sender_chat.id == chat.id:
            return True  # an anonymous administrator
        user = update.effective_user
        if user is None:
            return False
        if user.id in self._settings.admin_user_ids:
            return True
        try:
            member = await chat.get_member(user.id)
        except TelegramError as err:
            log.warning("getChatMember failed in %s: %s", chat.id, err.__class__.__name__)
            return False
        return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

    # ---- commands -------------------------------------------------------
    async def start(self, update: Update, args: list[str]) -> str:
        if not args:
            return texts.WELCOME
        user = await self._user(update)
        merged = await self._ctx.services.accounts.redeem_link_code(args[0], user.id)
        return (
            f"🔗 Linked. Your accounts are now one hub user (<code>{texts.esc(merged.name)}</code>)"
            ": subscriptions and stats are shared."
        )

    async def help(self, update: Update, args: list[str]) -> str:
        return texts.help_text()

    async def subscribe(self, update: Update, args: list[str]) -> str:
        if not await self._may_manage(update):
            return texts.ADMINS_ONLY
        user = await self._user(update)
        info, changed = await self._ctx.services.subscriptions.subscribe(
            PLATFORM, self._destination(update), user.id
        )
        if not changed:
            return "This chat is already subscribed. " + texts.filter_text(info.filter)
        return (
            "✅ Subscribed: alerts will arrive in this chat.\n"
            + texts.filter_text(info.filter)
            + "\nNarrow them with /set, e.g. <code>/set min_confidence 0.7</code>"
        )

    async def unsubscribe(self, update: Update, args: list[str]) -> str:
        if not await self._may_manage(update):
            return texts.ADMINS_ONLY
        removed = await self._ctx.services.subscriptions.unsubscribe(
            PLATFORM, self._destination(update)
        )
        if removed:
            return "Unsubscribed: no more alerts here. /subscribe brings them back."
        return "This chat was not subscribed."

    async def show_filters(self, update: Update, args: list[str]) -> str:
        flt = await self._ctx.services.subscriptions.get_filter(PLATFORM, self._destination(update))
        return texts.filter_text(flt)

    async def set(self, update: Update, args: list[str]) -> str:
        message = update.effective_message
        assert message is not None
        parts = (message.text or "").split(maxsplit=2)
        if len(parts) < 2:
            return texts.set_usage()
        if not await self._may_manage(update):
            return texts.ADMINS_ONLY
        field = parts[1].strip().lower()
        value = parts[2] if len(parts) > 2 else None
        flt = await self._ctx.services.subscriptions.set_field(
            PLATFORM, self._destination(update), field, value
        )
        action = f"{field} set" if value and value.strip() else f"{field} cleared"
        preview = await self._ctx.services.preview.preview(flt)
        return (
            f"✅ {texts.esc(action)}.\n"
            + texts.filter_text(flt)
            + "\n"
            + texts.esc(preview.summary_line())
        )

    async def reset(self, update: Update, args: list[str]) -> str:
        if not await self._may_manage(update):
            return texts.ADMINS_ONLY
        flt = await self._ctx.services.subscriptions.reset_filter(
            PLATFORM, self._destination(update)
        )
        return "✅ Filters reset. " + texts.filter_text(flt)

    async def feedback(self, update: Update, args: list[str]) -> str:
        if len(args) < 2 or len(args) > 3:
            return texts.FEEDBACK_USAGE
        user = await self._user(update)
        info = await self._ctx.services.feedback.record(
            user.id, args[0], args[1], args[2] if len(args) > 2 else None
        )
        ret = "" if info.return_pct is None else f" ({info.return_pct:+g}%)"
        verb = "updated" if info.updated else "recorded"
        return f"✅ Outcome {verb}: {texts.esc(info.outcome)}{ret} for <code>{texts.esc(info.signal_id)}</code>"

    async def stats(self, update: Update, args: list[str]) -> str | None:
        """The numbers as text, and the chart (core/charts.py) as a photo under them."""
        user = await self._user(update)
        feedback = self._ctx.services.feedback
        text = texts.stats_text(await feedback.user_stats(user.id))
        message = update.effective_message
        if message is None or len(text) > CAPTION_MAX:
            return text
        png = await feedback.chart(user.id, user.name)
        await message.reply_photo(
            InputFile(png, filename="stats.png"), caption=text, parse_mode=ParseMode.HTML
        )
        return None

    async def recent(self, update: Update, args: list[str]) -> str:
        count = RECENT_DEFAULT
        if args:
            if len(args) > 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= RECENT_MAX:
                return texts.RECENT_USAGE.format(max=RECENT_MAX)
            count = int(args[0])
        signals, flt = await self._ctx.services.signals.recent_for_destination(
            PLATFORM, self._destination(update), count
        )
        return texts.recent_text(signals, filtered=flt is not None)

    async def preview(self, update: Update, args: list[str]) -> str:
        """``/preview [filter] [7d]``: what the filter (default: this chat's) would
        have matched lately, and how those signals went."""
        rest, days = split_days(" ".join(args))
        if rest:
            flt = SignalFilter.from_text(rest)
        else:  # this chat's filter; before /subscribe, every signal
            info = await self._ctx.services.subscriptions.get(PLATFORM, self._destination(update))
            flt = info.filter if info is not None and info.active else SignalFilter()
        preview = await self._ctx.services.preview.preview(flt, days)
        return texts.preview_text(preview, flt, given=bool(rest))

    async def link(self, update: Update, args: list[str]) -> str:
        chat = update.effective_chat
        if chat is None or chat.type != Chat.PRIVATE:
            return "Use /link in a private chat with me, so the code stays yours."
        user = await self._user(update)
        code = await self._ctx.services.accounts.issue_link_code(user.id, PLATFORM)
        message = update.effective_message
        assert message is not None
        username = message.get_bot().username
        return (
            f"🔗 Your link code: <code>{code}</code> (valid 15 minutes)\n"
            f"Redeem it from Discord or the API, or open another Telegram account's chat with "
            f"https://t.me/{username}?start={code}"
        )

    # ---- service messages ------------------------------------------------
    async def membership_changed(self, update: Update, context: Context) -> None:
        """The bot's own membership changed: a user blocked it, or a group or channel
        removed it. Deactivate that chat's subscription now rather than at the next
        failed send (and never resubscribe on its own when the bot is let back in)."""
        change = update.my_chat_member
        if change is None:
            return
        status = change.new_chat_member.status
        if status not in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
            return
        chat = change.chat
        private = chat.type == ChatType.PRIVATE
        reason = "bot blocked by the user" if private else "bot removed from chat"
        if await self._ctx.services.subscriptions.deactivate(PLATFORM, str(chat.id), reason):
            log.info("telegram chat %s: %s; subscription deactivated", chat.id, reason)

    async def migrated(self, update: Update, context: Context) -> None:
        """A group became a supergroup: its subscription follows the new chat id."""
        message = update.effective_message
        if message is None:
            return
        if message.migrate_to_chat_id:
            old, new = message.chat.id, message.migrate_to_chat_id
        elif message.migrate_from_chat_id:
            old, new = message.migrate_from_chat_id, message.chat.id
        else:
            return
        if await self._ctx.services.subscriptions.move(PLATFORM, str(old), str(new)):
            log.info("telegram group %s migrated to %s; subscription moved", old, new)
