"""Start-up: login, READY, minimal intents, and the command sync payload."""

from __future__ import annotations

from typing import Any

import pytest

from bots.discord.bot import DiscordBot, DiscordStartError
from core.channels import Alert
from domain.errors import ConfigError
from domain.signals import Signal
from tests.discord.conftest import BotFactory
from tests.discord.fake_discord import TOKEN, FakeDiscord
from tests.discord.helpers import signal_data

EXPECTED = {
    "subscribe",
    "unsubscribe",
    "filters",
    "delivery",
    "feedback",
    "stats",
    "recent",
    "link",
    "help",
}


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


async def test_global_sync_payload(bot: DiscordBot, fake: FakeDiscord) -> None:
    assert len(fake.command_syncs) == 1
    guild_id, payload = fake.command_syncs[0]
    assert guild_id is None
    commands = by_name(payload)
    assert set(commands) == EXPECTED

    subscribe = by_name(commands["subscribe"]["options"])
    assert subscribe["channel"]["type"] == 7
    assert subscribe["channel"]["required"] is False
    assert sorted(subscribe["channel"]["channel_types"]) == [0, 5]

    feedback = by_name(commands["feedback"]["options"])
    assert feedback["signal_id"]["type"] == 3 and feedback["signal_id"]["autocomplete"] is True
    assert feedback["signal_id"]["required"] is True
    assert [c["value"] for c in feedback["outcome"]["choices"]] == [
        "win",
        "loss",
        "breakeven",
        "skipped",
    ]
    assert feedback["return_pct"]["type"] == 10 and feedback["return_pct"]["required"] is False

    filters = by_name(commands["filters"]["options"])
    assert set(filters) == {"show", "set", "preview", "reset"}
    assert all(sub["type"] == 1 for sub in filters.values())
    preview_opts = by_name(filters["preview"]["options"])
    assert set(preview_opts) == {"filter", "days", "channel"}
    assert preview_opts["days"]["type"] == 4  # integer
    assert (preview_opts["days"]["min_value"], preview_opts["days"]["max_value"]) == (1, 365)
    set_opts = by_name(filters["set"]["options"])
    assert set(set_opts) == {
        "channel",
        "min_confidence",
        "tickers",
        "catalyst_types",
        "sectors",
        "min_rvol",
        "min_price",
        "max_price",
        "signal_types",
        "exclude_tickers",
        "clear",
    }
    assert set_opts["min_price"]["type"] == 10 and set_opts["clear"]["type"] == 3
    assert not any(o["required"] for o in set_opts.values())
    assert set_opts["min_confidence"]["type"] == 10
    assert (set_opts["min_confidence"]["min_value"], set_opts["min_confidence"]["max_value"]) == (
        0.0,
        1.0,
    )
    assert set_opts["catalyst_types"]["autocomplete"] is True

    recent = by_name(commands["recent"]["options"])
    assert (
        recent["count"]["type"],
        recent["count"]["min_value"],
        recent["count"]["max_value"],
    ) == (
        4,
        1,
        10,
    )
    assert by_name(commands["link"]["options"])["code"]["required"] is False
    assert not commands["help"].get("options")


async def test_guild_sync_is_per_guild(make_bot: BotFactory, fake: FakeDiscord) -> None:
    await make_bot(guild_ids=[111, 222])
    assert [g for g, _ in fake.command_syncs] == [111, 222]
    for _, payload in fake.command_syncs:
        assert {c["name"] for c in payload} == EXPECTED


async def test_minimal_intents_and_heartbeat(bot: DiscordBot, fake: FakeDiscord) -> None:
    assert fake.identifies[-1]["intents"] == 0  # nothing privileged, nothing at all
    await fake.wait_for(lambda: fake.heartbeats >= 1)
    assert bot.client.application_id == 910000000000000001
    assert bot.running


async def test_bad_token_fails_clearly_without_leaking_it(
    make_bot: BotFactory, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(DiscordStartError) as info:
        await make_bot(token="wrong-token-SECRET")
    assert "token" in str(info.value)
    assert "wrong-token-SECRET" not in str(info.value)
    assert "wrong-token-SECRET" not in caplog.text
    assert TOKEN not in caplog.text


async def test_start_times_out_when_gateway_never_readies(
    make_bot: BotFactory, fake: FakeDiscord
) -> None:
    fake.hold_ready = True
    with pytest.raises(DiscordStartError, match="not ready within"):
        await make_bot(ready_timeout=0.5)


async def test_constructing_connects_nothing(make_bot: BotFactory, fake: FakeDiscord) -> None:
    bot = await make_bot(start=False)
    assert fake.requests == []
    assert not bot.running
    await bot.stop()  # stopping a bot that never started is fine


async def test_missing_token_is_a_config_error(make_bot: BotFactory, fake: FakeDiscord) -> None:
    with pytest.raises(ConfigError, match="discord.token"):
        await make_bot(token="")
    assert fake.requests == []


async def test_rest_only_start_delivers_without_a_gateway(
    make_bot: BotFactory, fake: FakeDiscord
) -> None:
    bot = await make_bot(start=False)
    await bot.start(gateway=False)
    assert fake.identifies == [] and fake.command_syncs == []
    signal = Signal.parse(signal_data(signal_id="rest-only"))
    await bot.channel.send(Alert(1, 1, "channel:55", signal))
    assert len(fake.messages_to(55)) == 1
    await bot.stop()


async def test_rest_only_start_with_bad_token_fails_clearly(
    make_bot: BotFactory, fake: FakeDiscord
) -> None:
    bot = await make_bot(start=False, token="bad-token-SECRET")
    with pytest.raises(DiscordStartError, match="rejected the token") as info:
        await bot.start(gateway=False)
    assert "bad-token-SECRET" not in str(info.value)
