"""examples/signal_client.py against the real server, as a user would run it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.api.conftest import HubFactory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "signal_client.py"


async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 10)).decode()
        if not line:
            raise AssertionError(f"stream ended before {needle!r}; got {seen}")
        seen.append(line)
        if needle in line:
            return


async def test_example_client_subscribes_pongs_and_prints(make_hub: HubFactory) -> None:
    hub = await make_hub(api={"heartbeat_seconds": 0.1, "heartbeat_timeout_seconds": 0.4})
    _user, key = await hub.user("trader")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--api-key",
        key,
        "--url",
        hub.ws_url,
        "--min-confidence",
        "0.7",
        "--catalyst",
        "FDA",
        "--catalyst",
        "M&A",
        "--max-signals",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    logs: list[str] = []
    try:
        await read_until(proc.stderr, "filters:", logs)
        await hub.publish(signal_id="low", catalyst_type="FDA", confidence=0.5)
        await hub.publish(signal_id="other", catalyst_type="EARNINGS", confidence=0.9)
        await hub.publish(signal_id="first", ticker="ABCD", catalyst_type="FDA", confidence=0.9)
        lines: list[str] = []
        await read_until(proc.stdout, "ABCD", lines)
        # Several heartbeat timeouts pass: the client keeps answering with pongs.
        await asyncio.sleep(1.0)
        assert hub.server.manager.connection_count == 1
        await hub.publish(signal_id="second", ticker="WXYZ", catalyst_type="M&A", confidence=0.8)
        await read_until(proc.stdout, "WXYZ", lines)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = "".join(logs) + (await proc.stderr.read()).decode()
    assert "reconnecting" not in stderr and "server error" not in stderr
    assert len(lines) == 2 and "FDA" in lines[0] and "M&A" in lines[1]
    assert key not in stderr


async def test_example_client_reports_a_bad_key(make_hub: HubFactory) -> None:
    hub = await make_hub()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--api-key",
        "catalyst_not-a-real-key",
        "--url",
        hub.ws_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1
    assert "invalid" in err.decode()
