"""Quiet hours, digests and caps on Discord: the /delivery commands, digest embeds
within Discord's limits, and held alerts arriving as one digest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bots.discord.bot import DiscordBot
from bots.discord.digest import ITEM_MAX, digest_embed, split_digest
from bots.discord.render import DESCRIPTION_MAX, EMBED_MAX, TITLE_MAX
from core.channels import Alert, DestinationGone, Digest, DigestItem
from core.context import HubContext
from domain.delivery_prefs import DeliveryPrefs, HoldReason
from domain.signals import Signal
from storage.models import Delivery, DeliveryStatus
from tests.discord.fake_discord import (
    MANAGE_CHANNELS,
    MISSING_PERMISSIONS,
    SEND_MESSAGES,
    FakeDiscord,
    Sent,
)
from tests.discord.helpers import signal_data

USER = 6262
GUILD = 7373
CHANNEL = 8484
DM_CHANNEL = 9595
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


async def run(
    fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **kw: Any
) -> str:
    token = await fake.slash(name, options, user_id=kw.pop("user_id", USER), **kw)
    reply = await fake.reply(token)
    assert reply.ephemeral, reply
    return reply.content


async def delivery(fake: FakeDiscord, sub: str, options: dict[str, Any] | None = None) -> str:
    return await run(fake, "delivery", options, subcommand=sub)


def item(n: int, minutes_ago: float, **overrides: Any) -> DigestItem:
    signal = Signal.parse(signal_data(signal_id=f"d-{n}", **overrides)).with_seq(n)
    return DigestItem(n, signal, NOW - timedelta(minutes=minutes_ago))


def digest(items: list[DigestItem], **overrides: Any) -> Digest:
    destination = overrides.pop("destination", f"channel:{CHANNEL}")
    data: dict[str, Any] = {"reason": HoldReason.QUIET, "now": NOW, **overrides}
    return Digest(1, destination, tuple(items), **data)


def embed_of(sent: Sent) -> dict[str, Any]:
    embeds = sent.payload["embeds"]
    assert len(embeds) == 1
    return dict(embeds[0])


def embed_length(data: dict[str, Any]) -> int:
    """Discord's count for the 6000 limit: title, description, footer, author, fields."""
    total = len(data.get("title", "")) + len(data.get("description", ""))
    total += len(data.get("footer", {}).get("text", ""))
    total += len(data.get("author", {}).get("name", ""))
    return total + sum(len(f["name"]) + len(f["value"]) for f in data.get("fields", []))


# ---- /delivery ---------------------------------------------------------------------
async def test_delivery_set_show_and_clear(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    await run(fake, "subscribe")
    assert "at once" in await delivery(fake, "show")

    text = await delivery(fake, "quiet", {"hours": "22:00-07:00", "timezone": "America/New_York"})
    assert text.startswith("Saved.") and "`quiet 22:00-07:00 America/New_York`" in text
    assert "`digest 15m`" in await delivery(fake, "digest", {"period": "15m"})
    assert "`max 10/h`" in await delivery(fake, "max", {"limit": "10/h"})

    shown = await delivery(fake, "show")
    for line in ("quiet 22:00-07:00 America/New_York", "digest 15m", "max 10/h"):
        assert f"`{line}`" in shown
    prefs = await ctx.services.delivery.get("discord", f"dm:{USER}")
    assert prefs.lines() == ["quiet 22:00-07:00 America/New_York", "digest 15m", "max 10/h"]

    # One string with the zone works too; "off" (or "-") clears one setting.
    await delivery(fake, "quiet", {"hours": "23:30-06:00 Europe/Berlin"})
    assert "`quiet 23:30-06:00 Europe/Berlin`" in await delivery(fake, "show")
    assert "quiet" not in await delivery(fake, "quiet", {"hours": "off", "timezone": "UTC"})
    await delivery(fake, "digest", {"period": "-"})
    assert "at once" in await delivery(fake, "max", {"limit": "OFF"})
    assert (await ctx.services.delivery.get("discord", f"dm:{USER}")).empty


@pytest.mark.parametrize(
    ("sub", "options", "expected"),
    [
        ("quiet", {"hours": "22:00-07:00", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ("quiet", {"hours": "25:00-07:00"}, "is not a time of day like 22:00"),
        ("quiet", {"hours": "22:00"}, "use a range and a time zone"),
        ("max", {"limit": "0/h"}, "the count must be 1-1000"),
        ("max", {"limit": "lots"}, "use a count per period"),
        ("digest", {"period": "1m"}, "the period must be 5m-24h"),
        ("digest", {"period": "soon"}, "is not a duration"),
    ],
)
async def test_delivery_bad_input_says_what_is_allowed(
    bot: DiscordBot,
    fake: FakeDiscord,
    ctx: HubContext,
    sub: str,
    options: dict[str, Any],
    expected: str,
) -> None:
    await run(fake, "subscribe")
    await delivery(fake, "digest", {"period": "1h"})
    text = await delivery(fake, sub, options)
    assert expected in text and "Traceback" not in text and "Saved" not in text
    prefs = await ctx.services.delivery.get("discord", f"dm:{USER}")
    assert prefs.lines() == ["digest 1h"]  # unchanged


async def test_delivery_needs_a_subscription(bot: DiscordBot, fake: FakeDiscord) -> None:
    assert "subscribe first" in await delivery(fake, "show")
    assert "subscribe first" in await delivery(fake, "digest", {"period": "15m"})


async def test_channel_delivery_needs_manage_channels(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    manager = {CHANNEL: MANAGE_CHANNELS}
    await run(fake, "subscribe", {"channel": CHANNEL}, guild_id=GUILD, channels=manager)
    where: dict[str, Any] = {"guild_id": GUILD, "subcommand": "max"}
    refused = await run(
        fake,
        "delivery",
        {"limit": "5/h", "channel": CHANNEL},
        channels={CHANNEL: SEND_MESSAGES},
        user_id=5,
        **where,
    )
    assert "Manage Channels" in refused
    assert (await ctx.services.delivery.get("discord", f"channel:{CHANNEL}")).empty
    ok = await run(
        fake, "delivery", {"limit": "5/h", "channel": CHANNEL}, channels=manager, **where
    )
    assert "Saved" in ok and f"<#{CHANNEL}>" in ok
    # Anyone in the channel may look.
    shown = await run(
        fake,
        "delivery",
        {"channel": CHANNEL},
        guild_id=GUILD,
        subcommand="show",
        channels={CHANNEL: SEND_MESSAGES},
        user_id=5,
    )
    assert "`max 5/h`" in shown


async def test_delivery_is_in_the_synced_tree_and_help(bot: DiscordBot, fake: FakeDiscord) -> None:
    _guild, payload = fake.command_syncs[0]
    group = next(c for c in payload if c["name"] == "delivery")
    subs = {s["name"]: s for s in group["options"]}
    assert set(subs) == {"show", "quiet", "digest", "max"}
    assert all(s["type"] == 1 for s in subs.values())
    options = {name: {o["name"]: o for o in s.get("options", [])} for name, s in subs.items()}
    assert set(options["quiet"]) == {"hours", "timezone", "channel"}
    assert options["quiet"]["hours"]["required"] is True
    assert options["quiet"]["timezone"]["autocomplete"] is True
    assert set(options["digest"]) == {"period", "channel"}
    assert set(options["max"]) == {"limit", "channel"}
    assert set(options["show"]) == {"channel"}
    assert options["max"]["channel"]["type"] == 7
    assert "/delivery show|quiet|digest|max" in await run(fake, "help")


async def test_timezone_autocomplete(bot: DiscordBot, fake: FakeDiscord) -> None:
    token = await fake.slash(
        "delivery",
        {"hours": "22:00-07:00", "timezone": "new_y"},
        user_id=USER,
        subcommand="quiet",
        focused="timezone",
    )
    names = [c["value"] for c in await fake.choices(token)]
    assert names[0] == "America/New_York"
    assert 0 < len(names) <= 25


# ---- digest embeds -------------------------------------------------------------------
async def test_send_digest_posts_one_embed_newest_first(bot: DiscordBot, fake: FakeDiscord) -> None:
    items = [
        item(3, 2, ticker="NVDA", signal_type="SELL", headline="Guidance *cut*", price=None),
        item(2, 12, ticker="TSLA", catalyst_type="M&A", headline="Merger talk", url=None),
        item(1, 125, ticker="AAPL", confidence=0.9),
    ]
    message_id = await bot.channel.send_digest(digest(items, omitted=3))
    sent = fake.messages_to(CHANNEL)
    assert len(sent) == 1 and message_id == sent[0].message["id"]
    assert "components" not in sent[0].payload or not sent[0].payload["components"]
    data = embed_of(sent[0])
    assert data["title"] == "🌙 While your quiet hours were on · 3 alerts"
    lines = data["description"].split("\n\n")
    assert lines == [
        "🔴 SELL **NVDA** · FDA · 82% · 2m ago\n[Guidance \\*cut\\*](https://example.com/news/1)",
        "🟢 BUY **TSLA** · M&A · 82% · $3.42 · 12m ago\nMerger talk",
        "🟢 BUY **AAPL** · FDA · 90% · $3.42 · 2h 5m ago\n"
        "[FDA approves lead drug](https://example.com/news/1)",
    ]
    assert data["footer"]["text"].startswith("3 older held alerts were left out")


@pytest.mark.parametrize(
    ("reason", "title"),
    [(HoldReason.DIGEST, "🗞 Digest · 1 alert"), (HoldReason.CAP, "⏳ Over your cap · 1 alert")],
)
def test_the_title_says_why_it_was_held(reason: HoldReason, title: str) -> None:
    data = digest_embed(digest([item(1, 5)], reason=reason)).to_dict()
    assert data.get("title") == title and "footer" not in data


async def test_large_digest_splits_into_parts_within_limits(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    items = [
        item(n, n, ticker=f"T{n:02d}", headline=(f"H{n:02d} " + "word " * 80)[:400])
        for n in range(80)
    ]
    assert all(len(i.signal.headline or "") == 400 for i in items)
    parts = bot.channel.digest_parts(digest(items, omitted=2, reason=HoldReason.DIGEST))
    assert len(parts) > 2
    for part in parts:
        await bot.channel.send_digest(part)
    sent = fake.messages_to(CHANNEL)
    assert len(sent) == len(parts)
    seen: list[str] = []
    for k, message in enumerate(sent, 1):
        data = embed_of(message)
        assert len(data["title"]) <= TITLE_MAX
        assert len(data["description"]) <= DESCRIPTION_MAX
        assert embed_length(data) <= EMBED_MAX
        assert data["title"].endswith(f"(part {k}/{len(parts)})")
        count = len(parts[k - 1].items)
        assert data["title"] == f"🗞 Digest · {count} alerts (part {k}/{len(parts)})"
        assert ("footer" in data) == (k == 1)  # the omitted note: first part only
        seen += [block.split("**")[1] for block in data["description"].split("\n\n")]
    assert seen == [f"T{n:02d}" for n in range(80)]  # each exactly once, in order


def test_one_item_always_fits_and_a_long_link_gives_way() -> None:
    long_link = item(1, 1, url="https://example.com/" + "p" * 2000, headline="x" * 500)
    block = digest_embed(digest([long_link])).description or ""
    assert len(block) <= ITEM_MAX and "https://" not in block and "x" * 400 in block
    # Not valid as a signal, but a digest must still fit: clipped, never rejected.
    huge = Signal.model_construct(**{**long_link.signal.model_dump(), "headline": "y" * 9000})
    parts = split_digest(digest([DigestItem(2, huge, NOW), long_link]))
    assert len(parts) == 1 and len(digest_embed(parts[0])) <= EMBED_MAX
    assert len(digest_embed(parts[0]).description or "") <= 2 * ITEM_MAX + 2
    assert split_digest(digest([])) == [digest([])]


async def test_send_digest_to_a_dm_and_errors_like_send(bot: DiscordBot, fake: FakeDiscord) -> None:
    fake.dm_channels[USER] = DM_CHANNEL
    await bot.channel.send_digest(digest([item(1, 3)], destination=f"dm:{USER}"))
    assert fake.dm_opened == [USER] and len(fake.messages_to(DM_CHANNEL)) == 1
    fake.fail_messages(CHANNEL, MISSING_PERMISSIONS)
    with pytest.raises(DestinationGone, match="forbidden"):
        await bot.channel.send_digest(digest([item(2, 3)]))


async def test_send_returns_the_message_id(bot: DiscordBot, fake: FakeDiscord) -> None:
    signal = Signal.parse(signal_data(signal_id="id-1")).with_seq(1)
    first = await bot.channel.send(Alert(1, 1, f"channel:{CHANNEL}", signal))
    second = await bot.channel.send(Alert(2, 1, f"channel:{CHANNEL}", signal))
    assert [first, second] == [s.message["id"] for s in fake.messages_to(CHANNEL)]
    assert first != second and first.isdigit()


# ---- through the real dispatcher -----------------------------------------------------
async def _wait(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():
            await asyncio.sleep(0.05)


async def _statuses(ctx: HubContext) -> list[tuple[DeliveryStatus, str | None]]:
    async with ctx.db.session() as session:
        rows = (await session.execute(select(Delivery).order_by(Delivery.id))).scalars().all()
        return [(row.status, row.message_id) for row in rows]


async def test_alerts_held_in_quiet_hours_arrive_as_one_digest(
    bot: DiscordBot, fake: FakeDiscord, ctx: HubContext
) -> None:
    ref = await ctx.services.accounts.resolve("discord", USER)
    await ctx.services.subscriptions.subscribe("discord", f"dm:{USER}", ref.id)
    fake.dm_channels[USER] = DM_CHANNEL
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    quiet = f"{start:%H:%M}-{end:%H:%M} UTC"
    assert DeliveryPrefs().with_setting("quiet", quiet).quiet is not None
    await ctx.services.delivery.set("discord", f"dm:{USER}", "quiet", quiet)
    ctx.dispatcher.register(bot.channel)
    await ctx.dispatcher.start()
    for n, ticker in enumerate(("AAPL", "MSFT")):
        stamp = (now + timedelta(seconds=n)).isoformat()
        await ctx.publisher.publish(signal_data(ticker=ticker, timestamp=stamp))

    async def held() -> bool:
        rows = await _statuses(ctx)
        return len(rows) == 2 and all(s == DeliveryStatus.HELD for s, _m in rows)

    await _wait(held)
    assert fake.messages_to(DM_CHANNEL) == []
    # Quiet hours off: what they held comes at once, as one digest.
    await delivery(fake, "quiet", {"hours": "off"})

    async def sent() -> bool:
        return all(s == DeliveryStatus.SENT for s, _m in await _statuses(ctx))

    await _wait(sent)
    messages = fake.messages_to(DM_CHANNEL)
    assert len(messages) == 1
    data = embed_of(messages[0])
    assert data["title"] == "🌙 While your quiet hours were on · 2 alerts"
    assert data["description"].index("**MSFT**") < data["description"].index("**AAPL**")
    assert {m for _s, m in await _statuses(ctx)} == {messages[0].message["id"]}
