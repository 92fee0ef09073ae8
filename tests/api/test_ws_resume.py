"""``resume`` (api/ws_resume.py), its races made deterministic.

The contract (examples/README.md): the matching signals after ``after_seq`` are
replayed, then the stream goes on live: no gap, no duplicate, in seq order, and
nothing the client already got live on this connection is sent again.

Live signals that arrive *while* the replay reads the log wait in a side buffer.
Instead of hoping a concurrent publisher hits that window, these tests publish
from inside the replay's own read (the signal service's ``query``, wrapped), so
every run exercises it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from api.ws_client import Client
from tests.api.conftest import Hub, recv_json


async def _until_resumed(ws: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The signals sent before the ``resumed`` answer, and that answer."""
    signals: list[dict[str, Any]] = []
    while True:
        message = await recv_json(ws)
        if message["type"] == "resumed":
            return signals, message
        if message["type"] == "signal":
            signals.append(message)


async def _messages_until(ws: Any, last_id: str) -> list[dict[str, Any]]:
    """Every message (heartbeats aside) up to the signal ``last_id``."""
    out: list[dict[str, Any]] = []
    while True:
        message = await recv_json(ws)
        if message["type"] == "heartbeat":
            continue
        out.append(message)
        if message["type"] == "signal" and message["data"]["signal_id"] == last_id:
            return out


def _signal_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["data"]["signal_id"] for m in messages if m["type"] == "signal"]


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def _only_client(hub: Hub) -> Client:
    (client,) = hub.server.manager.clients()
    return client


def _during_replay(
    hub: Hub, before_read: Callable[[], Awaitable[None]], after_read: Callable[[], Awaitable[None]]
) -> list[int]:
    """Wrap the signal service's ``query`` so the first replay page runs
    ``before_read`` before it reads the log and ``after_read`` after it (before the
    replay sees the page). Returns the list of after_seq cursors the replay read."""
    service = hub.ctx.services.signals
    real_query = service.query
    cursors: list[int] = []

    async def query(**kwargs: Any) -> Any:
        if not kwargs.get("ascending"):
            return await real_query(**kwargs)
        cursors.append(kwargs["after_seq"])
        first = len(cursors) == 1
        if first:
            await before_read()
        page = await real_query(**kwargs)
        if first:
            await after_read()
        return page

    service.query = query  # type: ignore[method-assign]
    return cursors


async def test_signals_published_during_the_replay_arrive_once_in_order(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    for i in range(3):
        await hub.publish(signal_id=f"missed{i}")
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "welcome"
    client = _only_client(hub)
    seqs: dict[str, int] = {}

    async def publish_buffered(signal_id: str) -> None:
        signal = await hub.publish(signal_id=signal_id)
        seqs[signal_id] = signal["seq"]
        # The live broadcast has put it in the resume's side buffer (not sent it).
        await _until(
            lambda: (
                client.side_buffer is not None
                and any(seq == signal["seq"] for seq, _, _ in client.side_buffer)
            ),
            f"{signal_id} in the side buffer",
        )

    async def before_read() -> None:
        # Buffered *and* in the page the replay is about to read: must come once.
        await publish_buffered("both")

    async def after_read() -> None:
        # Buffered only: the page was read before it existed. Dropping the buffer
        # loses it; draining it without the cursor would send it out of order.
        await publish_buffered("buffered0")
        await publish_buffered("buffered1")

    cursors = _during_replay(hub, before_read, after_read)
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    replayed, resumed = await _until_resumed(ws)
    await hub.publish(signal_id="live")
    after = await _messages_until(ws, "live")

    assert cursors and cursors[0] == 0
    assert _signal_ids(replayed) == [
        "missed0",
        "missed1",
        "missed2",
        "both",
        "buffered0",
        "buffered1",
    ], "a signal buffered during the replay was lost, repeated or reordered"
    signal_seqs = [m["data"]["seq"] for m in replayed]
    assert signal_seqs == sorted(signal_seqs), "out of seq order"
    assert resumed == {
        "type": "resumed",
        "after_seq": 0,
        "replayed": 4,
        "last_seq": seqs["buffered1"],
    }
    assert _signal_ids(after) == ["live"]
    assert client.side_buffer is None


async def test_resume_skips_what_the_client_already_got_live(hub: Hub) -> None:
    _user, key = await hub.user("alice")
    before = [await hub.publish(signal_id=f"before{i}") for i in range(3)]
    ws = await hub.connect(key)
    assert (await recv_json(ws))["type"] == "welcome"
    await hub.publish(signal_id="live0")
    got_live = await _messages_until(ws, "live0")
    assert _signal_ids(got_live) == ["live0"]
    newest = (await hub.publish(signal_id="live1"))["seq"]
    assert _signal_ids(await _messages_until(ws, "live1")) == ["live1"]

    # An older cursor than what it got live: the replay covers before1, before2 (never
    # sent on this connection) but not live0 and live1, which it already has.
    cursor = before[0]["seq"]
    await ws.send(json.dumps({"type": "resume", "after_seq": cursor}))
    replayed, resumed = await _until_resumed(ws)
    await hub.publish(signal_id="live2")
    after = await _messages_until(ws, "live2")

    assert _signal_ids(replayed) == ["before1", "before2"]
    assert resumed == {"type": "resumed", "after_seq": cursor, "replayed": 2, "last_seq": newest}
    assert _signal_ids(after) == ["live2"], "a signal got live was sent again, or live2 lost"
