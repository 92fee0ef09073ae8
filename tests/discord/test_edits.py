"""Retractions and corrections on Discord: the marked embeds, digest items that stay
within the limits once marked, and DiscordChannel.edit changing delivered messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bots.discord.bot import DiscordBot
from bots.discord.digest import (
    SEPARATOR,
    digest_description,
    digest_embed,
    item_block,
    split_digest,
)
from bots.discord.render import (
    COLOURS,
    DESCRIPTION_MAX,
    EMBED_MAX,
    RETRACTED_COLOUR,
    TITLE_MAX,
    WITHDRAWN,
    signal_description,
    signal_embed,
)
from core.channels import (
    Alert,
    DestinationGone,
    Digest,
    DigestItem,
    Edit,
    PermanentError,
    RateLimit,
    RetryLater,
    TransientError,
)
from core.ratelimit import ScopedLimiter
from domain.delivery_prefs import HoldReason
from domain.signals import Signal, SignalStatus, SignalType
from tests.discord.fake_discord import (
    MISSING_PERMISSIONS,
    SERVER_ERROR,
    TOKEN,
    UNKNOWN_MESSAGE,
    Failure,
    FakeDiscord,
)
from tests.discord.helpers import signal_data

USER = 3131
DM_CHANNEL = 3232
CHANNEL = 3333
OTHER_CHANNEL = 3434
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
HEADLINE = "Approval [fast] *track* ~~maybe~~"


def make(**overrides: Any) -> Signal:
    return Signal.parse(signal_data(**overrides)).with_seq(1)


def retracted(signal: Signal, revision: int = 1) -> Signal:
    return signal.model_copy(update={"status": SignalStatus.RETRACTED, "revision": revision})


def corrected(signal: Signal, revision: int = 1, **fields: Any) -> Signal:
    return signal.model_copy(update={"revision": revision, **fields})


def item(n: int, minutes_ago: float, **overrides: Any) -> DigestItem:
    signal = make(signal_id=f"e-{n}", **overrides)
    return DigestItem(n, signal, NOW - timedelta(minutes=minutes_ago))


def with_signal(entry: DigestItem, signal: Signal) -> DigestItem:
    return DigestItem(entry.delivery_id, signal, entry.matched_at, entry.hint)


def digest(items: list[DigestItem], destination: str = f"channel:{CHANNEL}") -> Digest:
    return Digest(1, destination, tuple(items), HoldReason.DIGEST, NOW)


def edit_of(destination: str, message_id: str, signal: Signal, part: Digest | None = None) -> Edit:
    return Edit(1, 1, destination, message_id, signal, part)


def buttons(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


# ---- rendering -------------------------------------------------------------------
def test_a_retracted_embed_is_grey_struck_and_says_so() -> None:
    signal = retracted(make(signal_id="r-1", headline=HEADLINE))
    data = signal_embed(signal, "FDA: 3 W / 1 L").to_dict()
    assert data["title"] == "❌ RETRACTED · AAPL · BUY"
    assert data["color"] == RETRACTED_COLOUR
    assert data["description"] == (
        "~~[Approval \\[fast\\] \\*track\\* \\~\\~maybe\\~\\~](https://example.com/news/1)~~\n"
        + WITHDRAWN
    )
    assert WITHDRAWN == "The source withdrew this signal."
    assert [f["name"] for f in data["fields"]] == [
        "Confidence",
        "Catalyst",
        "Price",
        "RVOL",
        "Sector",
    ]  # no outcome hint on a withdrawn signal
    assert data["footer"]["text"] == "signal r-1 · test"  # not "corrected"
    plain = signal_embed(retracted(make(headline="Plain *one*", url=None))).description
    assert plain == f"~~Plain \\*one\\*~~\n{WITHDRAWN}"
    assert signal_embed(retracted(make(headline=None, url=None))).description == WITHDRAWN


def test_a_corrected_embed_keeps_its_colour_and_says_which_revision() -> None:
    signal = corrected(make(signal_id="c-1", signal_type="SELL"), revision=2, price=4.5)
    data = signal_embed(signal).to_dict()
    assert data["title"] == "AAPL · SELL"
    assert data["color"] == COLOURS[SignalType.SELL]
    assert data["footer"]["text"] == "signal c-1 · test · ✏️ corrected, revision 2"
    assert {f["name"]: f["value"] for f in data["fields"]}["Price"] == "$4.50"
    assert "corrected" not in signal_embed(make()).to_dict()["footer"]["text"]


def test_a_retracted_embed_stays_within_discord_limits() -> None:
    signal = retracted(
        make(
            signal_id="x" * 128,
            ticker="ABCDEFGHIJKLMNO",
            headline="h" * 500,
            url="https://example.com/" + "p" * 2000,
            sector="s" * 64,
            catalyst_type="C" * 32,
            source="q" * 64,
        )
    )
    embed = signal_embed(signal, "hint " * 300)
    assert len(embed) <= EMBED_MAX and len(embed.title or "") <= TITLE_MAX
    description = embed.description or ""
    assert len(description) <= DESCRIPTION_MAX
    assert description.startswith("~~[hhh") and description.endswith(f")~~\n{WITHDRAWN}")
    # However little room is left, the withdrawn line survives and the limit holds.
    for limit in (10, 40, 60, 2100):
        text = signal_description(signal, limit)
        assert len(text) <= limit and text.startswith(("~~", WITHDRAWN[:9]))


def test_digest_items_are_struck_when_retracted_and_marked_when_corrected() -> None:
    first, second, third = item(3, 2, ticker="NVDA"), item(2, 12, url=None), item(1, 30)
    part = digest(
        [
            with_signal(first, retracted(first.signal)),
            with_signal(second, corrected(second.signal, revision=3)),
            third,
        ]
    )
    blocks = (digest_embed(part).description or "").split(SEPARATOR)
    assert blocks == [
        "❌ ~~🟢 BUY **NVDA** · FDA · 82% · $3.42 · 2m ago~~ · retracted\n"
        "~~[FDA approves lead drug](https://example.com/news/1)~~",
        "🟢 BUY **AAPL** · FDA · 82% · $3.42 · 12m ago · ✏️ corrected\nFDA approves lead drug",
        "🟢 BUY **AAPL** · FDA · 82% · $3.42 · 30m ago\n"
        "[FDA approves lead drug](https://example.com/news/1)",
    ]
    hinted = DigestItem(9, retracted(make(headline="x *y*", url=None)), NOW, "FDA: 1 W")
    assert item_block(digest([hinted]), hinted).endswith("\n~~x \\*y\\*~~")  # hint dropped


def test_parts_still_fit_once_every_item_is_retracted() -> None:
    """Short items (a header line each) grow the most when marked: a part packed by
    their unmarked size would overflow once they are all retracted."""
    items = [item(n, n, ticker=f"T{n:03d}", headline=None, url=None) for n in range(300)]
    parts = split_digest(digest(items))
    assert len(parts) > 2
    for part in parts:
        for marked in (retracted, corrected):
            changed = Digest(
                part.subscription_id,
                part.destination,
                tuple(with_signal(i, marked(i.signal)) for i in part.items),
                part.reason,
                part.now,
                part=part.part,
                parts=part.parts,
            )
            description = digest_description(changed)
            assert len(description) <= DESCRIPTION_MAX
            # Nothing clipped or shortened: every item exactly as marked.
            expected = SEPARATOR.join(item_block(changed, i) for i in changed.items)
            assert description == expected


def test_a_correction_that_lengthens_headlines_shortens_items_not_cuts_them() -> None:
    items = [item(n, n, ticker=f"L{n}", headline="short") for n in range(30)]
    (part,) = split_digest(digest(items))
    longer = [with_signal(i, corrected(i.signal, headline="w " * 240)) for i in part.items]
    description = digest_description(digest(longer))
    assert len(description) <= DESCRIPTION_MAX
    blocks = description.split(SEPARATOR)
    assert [b.split("**")[1] for b in blocks] == [f"L{n}" for n in range(30)]
    assert "w w" in blocks[0] and "\n" not in blocks[-1]  # the last ones lost their headline
    assert all("✏️ corrected" in b for b in blocks)


# ---- DiscordChannel.edit ------------------------------------------------------------
async def test_retracting_edits_the_sent_alert_and_removes_its_buttons(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    signal = make(signal_id="ed-1", headline=HEADLINE)
    other = await bot.channel.send(Alert(1, 1, f"channel:{CHANNEL}", make(signal_id="ed-0")))
    message_id = await bot.channel.send(Alert(2, 1, f"channel:{CHANNEL}", signal))
    assert buttons(fake.messages[message_id]) == ["csh:o:w:ed-1", "csh:o:l:ed-1", "csh:o:s:ed-1"]

    await bot.channel.edit(edit_of(f"channel:{CHANNEL}", message_id, retracted(signal)))
    assert [(e.channel_id, e.message_id) for e in fake.edits] == [(CHANNEL, message_id)]
    assert ("PATCH", f"/channels/{CHANNEL}/messages/{message_id}") in fake.requests
    assert len(fake.sent) == 2  # edited in place, nothing posted
    message = fake.messages[message_id]
    embed = message["embeds"][0]
    assert embed["title"].startswith("❌ RETRACTED")
    assert embed["color"] == RETRACTED_COLOUR
    assert embed["description"].startswith("~~[Approval \\[fast\\]")
    assert embed["description"].endswith(WITHDRAWN)
    assert message["components"] == [] and message["edited_timestamp"]
    assert fake.messages[other]["embeds"][0]["title"] == "AAPL · BUY"  # untouched
    assert bot.client.persistent_views == []


async def test_a_correction_keeps_the_buttons_and_may_be_repeated(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    signal = make(signal_id="ed-2")
    message_id = await bot.channel.send(Alert(1, 1, f"channel:{CHANNEL}", signal))
    fixed = corrected(signal, revision=1, price=5.0)
    for _ in range(2):  # editing to the same content again is fine
        await bot.channel.edit(edit_of(f"channel:{CHANNEL}", message_id, fixed))
    assert len(fake.edits) == 2
    message = fake.messages[message_id]
    assert buttons(message) == ["csh:o:w:ed-2", "csh:o:l:ed-2", "csh:o:s:ed-2"]
    embed = message["embeds"][0]
    assert embed["footer"]["text"].endswith("✏️ corrected, revision 1")
    assert {f["name"]: f["value"] for f in embed["fields"]}["Price"] == "$5.00"
    assert embed["color"] == COLOURS[SignalType.BUY]
    assert bot.client.persistent_views == []  # dynamic items: nothing kept per message


async def test_a_dm_alert_is_edited_in_the_cached_dm_channel(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    fake.dm_channels[USER] = DM_CHANNEL
    signal = make(signal_id="ed-3")
    message_id = await bot.channel.send(Alert(1, 1, f"dm:{USER}", signal))
    await bot.channel.edit(edit_of(f"dm:{USER}", message_id, retracted(signal)))
    assert fake.dm_opened == [USER]  # opened for the send only
    assert [(e.channel_id, e.message_id) for e in fake.edits] == [(DM_CHANNEL, message_id)]


async def test_an_edit_that_opens_the_dm_draws_a_second_slot(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    """The message was sent before a restart that lost every DM channel: the edit
    opens the DM first, and that second request takes its own global slot."""
    fake.dm_channels[USER] = DM_CHANNEL
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{fake.base}/channels/{DM_CHANNEL}/messages",
            json={"embeds": [{"title": "AAPL · BUY"}]},
            headers={"Authorization": f"Bot {TOKEN}"},
        )
        message_id = str((await response.json())["id"])
    assert bot.channel.cached_dm_channel(USER) is None
    limiter = ScopedLimiter(clock=lambda: 1.0)
    bot.channel.attach_limiter(limiter)
    destination = f"dm:{USER}"
    permit = await limiter.acquire(bot.channel.limits_for(destination))
    await bot.channel.edit(edit_of(destination, message_id, retracted(make(signal_id="ed-4"))))
    limiter.settle(permit)
    assert fake.dm_opened == [USER]
    assert len(limiter.stamps(RateLimit("global", 50, 1.0))) == 2
    assert [(e.channel_id, e.message_id) for e in fake.edits] == [(DM_CHANNEL, message_id)]
    assert bot.channel.cached_dm_channel(USER) == DM_CHANNEL


async def test_a_digest_part_is_re_rendered_with_the_retracted_item_struck(
    bot: DiscordBot, fake: FakeDiscord
) -> None:
    items = [item(3, 2, ticker="NVDA"), item(2, 12, ticker="TSLA"), item(1, 30, ticker="MSFT")]
    (part,) = bot.channel.digest_parts(digest(items))
    message_id = await bot.channel.send_digest(part)
    before = fake.messages[message_id]["embeds"][0]
    withdrawn = retracted(items[1].signal)
    changed = Digest(
        part.subscription_id,
        part.destination,
        (items[0], with_signal(items[1], withdrawn), items[2]),
        part.reason,
        part.now,
    )
    await bot.channel.edit(edit_of(part.destination, message_id, withdrawn, changed))
    assert [e.message_id for e in fake.edits] == [message_id] and len(fake.sent) == 1
    after = fake.messages[message_id]["embeds"][0]
    assert after["title"] == before["title"] == "🗞 Digest · 3 alerts"
    old_blocks = before["description"].split(SEPARATOR)
    new_blocks = after["description"].split(SEPARATOR)
    assert new_blocks[0] == old_blocks[0] and new_blocks[2] == old_blocks[2]
    assert new_blocks[1].startswith("❌ ~~🟢 BUY **TSLA**")
    assert new_blocks[1].endswith("~~") and "retracted" in new_blocks[1]
    assert not fake.messages[message_id]["components"]


async def test_a_deleted_message_is_permanent(bot: DiscordBot, fake: FakeDiscord) -> None:
    signal = make(signal_id="ed-5")
    message_id = await bot.channel.send(Alert(1, 1, f"channel:{CHANNEL}", signal))
    with pytest.raises(PermanentError, match="message deleted"):
        await bot.channel.edit(edit_of(f"channel:{CHANNEL}", "123456789", signal))
    with pytest.raises(PermanentError, match="message deleted"):  # not in that channel
        await bot.channel.edit(edit_of(f"channel:{OTHER_CHANNEL}", message_id, signal))
    fake.fail_edits(CHANNEL, UNKNOWN_MESSAGE)
    with pytest.raises(PermanentError, match="message deleted"):
        await bot.channel.edit(edit_of(f"channel:{CHANNEL}", message_id, signal))
    with pytest.raises(PermanentError, match="not a Discord message id"):
        await bot.channel.edit(edit_of(f"channel:{CHANNEL}", "abc", signal))
    assert fake.edits == []


@pytest.mark.parametrize(
    ("failure", "error", "words"),
    [
        (Failure(429, retry_after=31.0), RetryLater, "rate limited"),
        (Failure(429, retry_after=7.0, via=False), RetryLater, "429 (global)"),
        (MISSING_PERMISSIONS, DestinationGone, "forbidden"),
        (SERVER_ERROR, TransientError, "server error"),
        (Failure(400, 50035, "Invalid Form Body"), PermanentError, "rejected"),
    ],
)
async def test_edit_errors_are_classified_like_sends(
    bot: DiscordBot, fake: FakeDiscord, failure: Failure, error: type[Exception], words: str
) -> None:
    signal = make(signal_id="ed-6")
    message_id = await bot.channel.send(Alert(1, 1, f"channel:{CHANNEL}", signal))
    fake.fail_edits(CHANNEL, failure)
    with pytest.raises(error) as info:
        await bot.channel.edit(edit_of(f"channel:{CHANNEL}", message_id, retracted(signal)))
    assert words in str(info.value)
    if isinstance(info.value, RetryLater):
        assert info.value.retry_after == pytest.approx(failure.retry_after, abs=1.0)
        assert info.value.scope == (f"channel:{CHANNEL}" if failure.via else "global")
    assert fake.messages[message_id]["components"]  # unchanged
