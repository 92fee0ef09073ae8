"""``catalyst doctor``'s platform checks, through the libraries the bots use.

Telegram: ``getMe`` (the token) and ``getWebhookInfo`` (a webhook only in webhook
mode, and the configured one). Discord: the REST login (``GET /users/@me``), then
for each of ``discord.guild_ids`` the guild and the bot's member, whose roles must
grant View Channel, Send Messages and Embed Links. Every request is bounded by
``seconds`` (per request); no message here ever quotes a token.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from core.settings import DiscordSettings, TelegramSettings
from hub.doctor_checks import CheckResult, describe_error, fail, masked_url, ok, skip

if TYPE_CHECKING:
    import discord

NOT_ENABLED = "not enabled"

TELEGRAM_TOKEN_FIX = (
    "set telegram.token (CATALYST_TELEGRAM__TOKEN) to the token @BotFather gave the bot "
    "(/mybots → API Token); /revoke there makes a new one"
)
DISCORD_TOKEN_FIX = (
    "set discord.token (CATALYST_DISCORD__TOKEN) to the bot token from the Discord "
    "Developer Portal (your application → Bot → Reset Token)"
)
#: What the bot needs in each guild: (discord.Permissions attribute, the name Discord shows).
DISCORD_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
)
DISCORD_PERMISSION_BITS = (1 << 10) | (1 << 11) | (1 << 14)


def _unreachable(
    name: str, where: str, exc: BaseException, seconds: float, *, timed_out: bool = False
) -> CheckResult:
    if timed_out or isinstance(exc, TimeoutError):
        detail = f"no answer from {where} within {seconds:g}s"
    else:
        detail = f"cannot reach {where}: {describe_error(exc)}"
    return fail(name, detail, "check this machine's network access (and proxy settings) to it")


# ---- Telegram ------------------------------------------------------------------
async def check_telegram(settings: TelegramSettings, seconds: float) -> list[CheckResult]:
    if not settings.enabled:
        return [skip("telegram", NOT_ENABLED)]
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, TelegramError, TimedOut
    from telegram.request import HTTPXRequest

    where = f"the Telegram Bot API at {masked_url(settings.base_url)}"
    token = settings.token.get_secret_value().strip()
    if not token:
        return [fail("telegram", "telegram.token is empty", TELEGRAM_TOKEN_FIX)]
    request = HTTPXRequest(
        connect_timeout=seconds, read_timeout=seconds, write_timeout=seconds, pool_timeout=seconds
    )
    bot = Bot(
        token,
        base_url=settings.base_url,
        base_file_url=settings.base_file_url,
        request=request,
        get_updates_request=request,
    )
    try:
        try:
            async with asyncio.timeout(seconds):
                me = await bot.get_me()
        except InvalidToken:  # 401 (or 404: a wrong base_url looks the same)
            detail = f"{where} rejected the token (getMe: Unauthorized)"
            return [
                fail("telegram", detail, TELEGRAM_TOKEN_FIX),
                skip("telegram webhook", "needs a valid token"),
            ]
        except (TimeoutError, NetworkError) as exc:
            late = isinstance(exc, TimedOut)
            return [_unreachable("telegram", where, exc, seconds, timed_out=late)]
        except TelegramError as exc:
            return [fail("telegram", f"getMe failed: {exc.message}", TELEGRAM_TOKEN_FIX)]
        results = [ok("telegram", f"the token is valid: @{me.username} (id {me.id})")]
        try:
            async with asyncio.timeout(seconds):
                info = await bot.get_webhook_info()
        except (TimeoutError, NetworkError) as exc:
            late = isinstance(exc, TimedOut)
            return [*results, _unreachable("telegram webhook", where, exc, seconds, timed_out=late)]
        except TelegramError as exc:
            detail = f"getWebhookInfo failed: {exc.message}"
            return [*results, fail("telegram webhook", detail, "try again later")]
        results.append(_webhook_result(settings, info.url, info.last_error_message))
        return results
    finally:
        await request.shutdown()


def _webhook_result(settings: TelegramSettings, url: str, last_error: str | None) -> CheckResult:
    name = "telegram webhook"
    if settings.mode == "polling":
        if not url:
            return ok(name, "polling mode, and no webhook is set")
        return fail(
            name,
            f"polling mode, but a webhook is set ({masked_url(url)}): Telegram then refuses "
            "getUpdates (409 Conflict)",
            "another deployment may run this bot in webhook mode: stop it or give it another "
            "token; else delete the webhook (https://api.telegram.org/bot<token>/deleteWebhook; "
            'catalyst run in polling mode also deletes it), or set telegram.mode = "webhook"',
        )
    configured = settings.webhook_url
    if url == configured:
        detail = f"webhook mode, set to the configured {masked_url(url)}"
        if last_error:
            detail += f" (Telegram's last delivery error: {last_error[:120]})"
        return ok(name, detail)
    if not url:
        return fail(
            name,
            "webhook mode, but no webhook is set "
            f"(telegram.webhook_url is {masked_url(configured)})",
            "start the hub (catalyst run sets the webhook when it starts); if another "
            "deployment polls with this token, stop it",
        )
    return fail(
        name,
        f"webhook mode, but the webhook is {masked_url(url)}, not telegram.webhook_url "
        f"{masked_url(configured)}",
        "another deployment may use this token: stop it, or correct telegram.webhook_url "
        "(CATALYST_TELEGRAM__WEBHOOK_URL); catalyst run sets the configured URL when it starts",
    )


# ---- Discord -------------------------------------------------------------------
async def check_discord(settings: DiscordSettings, seconds: float) -> list[CheckResult]:
    if not settings.enabled:
        return [skip("discord", NOT_ENABLED)]
    import discord

    token = settings.token.get_secret_value().strip()
    if not token:
        return [fail("discord", "discord.token is empty", DISCORD_TOKEN_FIX)]
    where = "the Discord API"
    client = discord.Client(intents=discord.Intents.none(), max_ratelimit_timeout=30.0)
    try:
        try:
            async with asyncio.timeout(seconds):
                await client.login(token)
        except discord.LoginFailure:
            detail = "Discord rejected the token (401 Unauthorized)"
            return [fail("discord", detail, DISCORD_TOKEN_FIX)]
        except discord.HTTPException as exc:
            detail = f"the login failed: Discord answered {exc.status} {exc.code or ''}".strip()
            return [fail("discord", detail, "try again later; see discordstatus.com")]
        except Exception as exc:
            return [_unreachable("discord", where, exc, seconds)]
        user = client.user
        assert user is not None  # set by login
        results = [ok("discord", f"the token is valid: {user.name} (id {user.id})")]
        if not settings.guild_ids:
            results.append(skip("discord guilds", "no discord.guild_ids configured"))
        for guild_id in settings.guild_ids:
            results.append(await _guild(client, guild_id, user.id, seconds))
        return results
    finally:
        await client.close()


async def _guild(client: discord.Client, guild_id: int, bot_id: int, seconds: float) -> CheckResult:
    import discord

    name = f"discord guild {guild_id}"
    invite = (
        "https://discord.com/oauth2/authorize?client_id="
        f"{client.application_id or bot_id}&scope=bot+applications.commands"
        f"&permissions={DISCORD_PERMISSION_BITS}&guild_id={guild_id}"
    )
    try:
        async with asyncio.timeout(seconds):
            guild = await client.fetch_guild(guild_id, with_counts=False)
            member = await guild.fetch_member(bot_id)
    except (discord.Forbidden, discord.NotFound) as exc:
        detail = f"the bot is not in this guild (Discord answered {exc.status} {exc.text})"
        return fail(name, detail, f"invite the bot with {invite}, or correct discord.guild_ids")
    except discord.HTTPException as exc:
        detail = f"reading the guild failed: Discord answered {exc.status} {exc.code or ''}"
        return fail(name, detail.strip(), "try again later; see discordstatus.com")
    except Exception as exc:
        return _unreachable(name, "the Discord API", exc, seconds)
    permissions = member.guild_permissions
    missing = [label for attr, label in DISCORD_PERMISSIONS if not getattr(permissions, attr)]
    if missing:
        return fail(
            name,
            f"{guild.name}: the bot lacks {', '.join(missing)}",
            f"in {guild.name}, Server Settings → Roles: give the bot's role "
            f"{', '.join(missing)} (or re-invite it with {invite})",
        )
    needed = ", ".join(label for _attr, label in DISCORD_PERMISSIONS)
    return ok(name, f"{guild.name}: the bot is in it with {needed}")
