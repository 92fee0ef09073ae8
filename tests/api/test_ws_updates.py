"""``signal_update``: a signal the stream carried, corrected or retracted by its
producer (publishing the same ``signal_id`` again), goes to every connection whose
filter matches it, as ``{"type": "signal_update", "data": <the signal as it is
now>}``: once, whichever process stored the revision; not counted as a new signal
received, moving no resume cursor; a replay sends the current state as ``signal``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from core.publisher import Publisher
from storage.database import Database
from tests.api.conftest import Hub, HubFactory, auth, recv_json
from tests.api.test_ws_resume import _during_replay, _only_client, _until, _until_resumed


async def _next(ws: Any, within: float = 5.0) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message = await recv_json(ws, within)
        if message["type"] != "heartbeat":
            return message


async def _connect(hub: Hub, name: str, filters: dict[str, Any] | None = None) -> Any:
    _user, key = await hub.user(name)
    ws = await hub.connect(key)
    assert (await _next(ws))["type"] == "welcome"
    if filters is not None:
        await ws.send(json.dumps({"type": "subscribe", "filters": filters, "persist": False}))
        assert (await _next(ws))["type"] == "subscribed"
    return ws


@contextlib.asynccontextmanager
async def _live(hub: Hub) -> AsyncIterator[None]:
    """Run what a serving process runs to see other processes' signals (the test hub
    does not): the NOTIFY listener, if any, and the tail."""
    listener = hub.ctx.listener
    if listener is not None:
        await listener.start()
    await hub.ctx.tail.start()
    try:
        yield
    finally:
        await hub.ctx.tail.stop()
        if listener is not None:
            await listener.stop()


async def _revise_elsewhere(hub: Hub, data: dict[str, Any]) -> None:
    """Publish ``data`` from another process: its own pool, no live feed here."""
    db = Database(hub.ctx.db.url)
    db.connect()
    try:
        result = await Publisher(db).publish(data)
        assert result.revised
    finally:
        await db.dispose()


async def _nothing_before(hub: Hub, ws: Any, ticker: str = "ABCD") -> None:
    """Publish a marker signal: it must be the next message ``ws`` gets."""
    marker = await hub.publish(signal_id=f"marker-{ticker}", ticker=ticker)
    assert await _next(ws) == {"type": "signal", "data": marker}


async def test_a_retraction_reaches_the_clients_whose_filter_matches(hub: Hub) -> None:
    wants = await _connect(hub, "wants", {"tickers": ["ABCD"]})
    other = await _connect(hub, "other", {"tickers": ["WXYZ"]})
    stored = await hub.publish(signal_id="x1", headline="Phase 3 win")
    assert await _next(wants) == {"type": "signal", "data": stored}
    assert stored["status"] == "active" and stored["revision"] == 0

    result = await hub.ctx.publisher.publish({"signal_id": "x1", "status": "retracted"})
    assert result.revised
    update = await _next(wants)
    assert update == {"type": "signal_update", "data": result.signal.to_public()}
    assert update["data"] == {**stored, "status": "retracted", "revision": 1}

    await _nothing_before(hub, wants)  # once
    await _nothing_before(hub, other, "WXYZ")  # neither the signal nor its retraction


async def test_a_correction_sends_the_corrected_signal(hub: Hub) -> None:
    ws = await _connect(hub, "alice")
    stored = await hub.publish(signal_id="c1", headline="old headline")
    assert (await _next(ws))["data"] == stored
    await hub.publish(signal_id="c1", headline="new headline")
    update = await _next(ws)
    assert update["type"] == "signal_update"
    assert update["data"] == {**stored, "headline": "new headline", "revision": 1}
    await hub.ctx.publisher.publish({"signal_id": "c1", "status": "retracted"})
    update = await _next(ws)
    assert update["type"] == "signal_update"
    assert update["data"]["revision"] == 2 and update["data"]["status"] == "retracted"
    assert update["data"]["headline"] == "new headline"
    await _nothing_before(hub, ws)


async def test_republishing_identical_data_sends_nothing(hub: Hub) -> None:
    ws = await _connect(hub, "alice")
    stored = await hub.publish(signal_id="same", headline="unchanged")
    assert (await _next(ws))["data"] == stored
    again = await hub.publish(signal_id="same", headline="unchanged")
    assert again == stored
    await hub.ctx.publisher.publish({"signal_id": "same", "status": "retracted"})
    assert (await _next(ws))["type"] == "signal_update"
    # A retracted signal stays retracted: publishing it again changes nothing.
    await hub.ctx.publisher.publish({"signal_id": "same", "status": "retracted"})
    await hub.publish(signal_id="same", headline="changed after the retraction")
    await _nothing_before(hub, ws)


async def test_an_update_is_not_a_signal_received_and_moves_no_cursor(hub: Hub) -> None:
    first = await hub.publish(signal_id="u1")
    _user, key = await hub.user("late-comer")
    ws = await hub.connect(key)
    assert (await _next(ws))["type"] == "welcome"

    async def received() -> int:
        stats = (await hub.http.get("/api/v1/stats", headers=auth(key))).json()
        return int(stats["signals_received"])

    await hub.ctx.publisher.publish({"signal_id": "u1", "status": "retracted"})
    update = await _next(ws)
    assert update["type"] == "signal_update" and update["data"]["seq"] == first["seq"]
    assert await received() == 0  # an update of u1, not u1 received
    newest = await hub.publish(signal_id="u2")
    assert (await _next(ws))["data"] == newest
    assert await received() == 1
    await hub.ctx.publisher.publish({"signal_id": "u2", "headline": "fixed"})
    assert (await _next(ws))["type"] == "signal_update"
    assert await received() == 1

    # The cursor is still the newest signal's: nothing to replay after it...
    await ws.send(json.dumps({"type": "resume", "after_seq": newest["seq"]}))
    replayed, resumed = await _until_resumed(ws)
    assert replayed == [] and resumed["last_seq"] == newest["seq"]
    # ...and a replay from before sends the current state as a plain signal.
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    replayed, resumed = await _until_resumed(ws)
    assert [m["data"]["signal_id"] for m in replayed] == ["u1"]  # u2 it got live
    assert replayed[0]["data"]["status"] == "retracted"
    assert replayed[0]["data"]["revision"] == 1
    assert resumed["last_seq"] == newest["seq"]


async def test_an_update_during_a_replay_after_its_read_follows_the_old_state(hub: Hub) -> None:
    stored = await hub.publish(signal_id="r1")
    ws = await _connect(hub, "alice")
    client = _only_client(hub)

    async def nothing() -> None:
        return None

    async def retract() -> None:
        await hub.ctx.publisher.publish({"signal_id": "r1", "status": "retracted"})
        await _until(
            lambda: (
                client.side_buffer is not None
                and any(rev == 1 for _seq, rev, _text in client.side_buffer)
            ),
            "the update in the side buffer",
        )

    _during_replay(hub, nothing, retract)  # the page is read before the retraction
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    messages = []
    while (message := await _next(ws))["type"] != "resumed":
        messages.append(message)
    assert messages == [
        {"type": "signal", "data": stored},
        {"type": "signal_update", "data": {**stored, "status": "retracted", "revision": 1}},
    ]
    assert message["last_seq"] == stored["seq"] and message["replayed"] == 1


async def test_an_update_during_a_replay_before_its_read_is_not_sent_twice(hub: Hub) -> None:
    stored = await hub.publish(signal_id="r1")
    ws = await _connect(hub, "alice")
    client = _only_client(hub)

    async def retract() -> None:
        await hub.ctx.publisher.publish({"signal_id": "r1", "status": "retracted"})
        await _until(
            lambda: client.side_buffer is not None and len(client.side_buffer) == 1,
            "the update in the side buffer",
        )

    async def nothing() -> None:
        return None

    _during_replay(hub, retract, nothing)  # the page is read after the retraction
    await ws.send(json.dumps({"type": "resume", "after_seq": 0}))
    replayed, resumed = await _until_resumed(ws)
    assert replayed == [
        {"type": "signal", "data": {**stored, "status": "retracted", "revision": 1}}
    ]
    assert resumed["replayed"] == 1
    await _nothing_before(hub, ws)


async def test_a_revision_stored_by_another_process_reaches_the_stream(hub: Hub) -> None:
    async with _live(hub):
        ws = await _connect(hub, "alice")
        stored = await hub.publish(signal_id="p1")
        assert (await _next(ws))["data"] == stored
        await _revise_elsewhere(hub, {"signal_id": "p1", "status": "retracted"})
        update = await _next(ws)  # found by this process's tail, in its poll
        assert update == {
            "type": "signal_update",
            "data": {**stored, "status": "retracted", "revision": 1},
        }
        # A revision here goes out once though the tail reads it again.
        await hub.publish(signal_id="p2")
        assert (await _next(ws))["type"] == "signal"
        await hub.publish(signal_id="p2", headline="fixed")
        assert (await _next(ws))["data"]["headline"] == "fixed"
        await hub.ctx.tail.poll_once()  # the tail reads the revision log row too
        await _nothing_before(hub, ws)


async def test_on_postgresql_a_notification_brings_another_process_revision(
    make_hub: HubFactory, fresh_pg_url: str
) -> None:
    # The safety poll far off: only the NOTIFY of the revision can wake the tail in time.
    hub = await make_hub(
        database={"url": fresh_pg_url}, live={"poll_seconds": 60, "fallback_poll_seconds": 60}
    )
    async with _live(hub):
        assert hub.ctx.listener is not None
        ws = await _connect(hub, "alice")
        stored = await hub.publish(signal_id="n1")
        assert (await _next(ws))["data"] == stored
        await _revise_elsewhere(hub, {"signal_id": "n1", "headline": "corrected elsewhere"})
        update = await _next(ws, within=10)
        assert update["type"] == "signal_update"
        assert update["data"] == {**stored, "headline": "corrected elsewhere", "revision": 1}
        await _nothing_before(hub, ws)
