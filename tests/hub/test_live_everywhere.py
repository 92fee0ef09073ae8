"""One-process ``catalyst run`` passes signals published by other processes (the
CLI, a second hub) to its WebSocket clients, in seq order, interleaved with its own."""

from __future__ import annotations

import json
from pathlib import Path

import websockets

from hub.build import build_context
from hub.runtime import Hub
from tests.api.conftest import recv_type
from tests.conftest import settings_for


async def test_signals_from_another_process_reach_this_process_websocket_clients(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path,
        api={"port": 0},
        scheduler={"enabled": False},
        live={"poll_seconds": 0.05},
    )
    hub = Hub(settings)
    ctx = await hub.start()
    other = build_context(settings)  # what `catalyst publish` builds, in its own process
    try:
        user = await ctx.services.accounts.create_user("watcher")
        key, _ = await ctx.auth.create_key(user.id, ("read",))
        url = f"ws://127.0.0.1:{hub.api_server.port}/ws?token={key}"
        async with websockets.connect(url, open_timeout=5) as ws:
            await recv_type(ws, "welcome")
            seqs = []
            for i in range(3):
                theirs = await other.publisher.publish(
                    {"signal_id": f"cli-{i}", "ticker": "CLIX", "confidence": 0.9}
                )
                ours = await ctx.publisher.publish(
                    {"signal_id": f"own-{i}", "ticker": "OWNX", "confidence": 0.9}
                )
                seqs += [theirs.signal.seq, ours.signal.seq]
            got = []
            while len(got) < 6:
                frame = await recv_type(ws, "signal", within=5)
                data = frame.get("data") or frame.get("signal") or frame
                got.append(data["seq"])
            assert got == seqs == sorted(seqs), json.dumps(got)
    finally:
        await other.db.dispose()
        await hub.stop()
