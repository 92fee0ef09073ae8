"""The repository's Procfile, run by honcho with two web and two worker processes.

``honcho start -c web=2,worker=2 web worker`` on a fresh, migrated PostgreSQL
database (the ``release`` line is not named, so honcho does not run it; the
fixture ran ``db upgrade`` as a release phase would). honcho gives each process
``PORT``: the base port plus the instance index for the first process type named
(web.1 = base, web.2 = base + 1), plus 100 per later type.

One signal published through REST on web.1 must reach a WebSocket client on web.1
and one on web.2 (the other node gets it through LISTEN/NOTIFY and the table), and
the subscribed Telegram chat exactly once. The combined output must show exactly
one worker leading ``sender-telegram`` and ``telegram-receiver`` while the other
stands by, and the fake Telegram API must have seen no overlapping ``getUpdates``
(409 Conflict).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from tests.cluster.procs import (
    BIN,
    ROOT,
    Cluster,
    SlowBotApi,
    WsFollower,
    alerts_for,
    free_port,
    post_signal,
    signal_data,
    subscribe_chats,
    telegram_env,
    wait_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHAT = 6101
ROLES = ("sender-telegram", "telegram-receiver")
LINE = r"^\S+ (?P<proc>{name}\.\d+)\s+\| "


def _lines(output: str, name: str, text: str) -> list[str]:
    """Which ``name.N`` processes printed ``text`` (once per printed line)."""
    pattern = re.compile(LINE.format(name=name) + r".*" + re.escape(text))
    return [m.group("proc") for line in output.splitlines() if (m := pattern.search(line))]


async def test_procfile_two_web_two_worker_one_signal_everywhere_once(cluster: Cluster) -> None:
    fake = SlowBotApi()
    await fake.start()
    key = cluster.api_key()
    base = free_port(consecutive=2)
    honcho = cluster.start(
        "honcho",
        [
            str(BIN / "honcho"),
            "start",
            "--no-colour",
            "-f",
            str(ROOT / "Procfile"),
            "-d",
            str(cluster.workdir),
            "-p",
            str(base),
            "-c",
            "web=2,worker=2",
            "web",
            "worker",
        ],
        **telegram_env(fake),
    )
    followers: list[WsFollower] = []
    try:
        # web.1 and web.2 answer on honcho's ports.
        for port in (base, base + 1):
            await wait_healthy(port, honcho)
        for role in ROLES:
            await honcho.await_line(rf"worker\.\d\s+\|.*{role}: this process leads", 45)
            await honcho.await_line(rf"worker\.\d\s+\|.*{role}: another process leads", 45)
        await subscribe_chats(fake, [CHAT], honcho.report)

        for port in (base, base + 1):
            follower = WsFollower(port, key)
            followers.append(follower)
            await follower.start()

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=10) as http:
            status, history = await post_signal(http, key, signal_data("procfile-1"))
        assert status == 201, f"{history}\n{honcho.report()}"

        def got(follower: WsFollower) -> Callable[[], bool]:
            return lambda: "procfile-1" in follower.signal_ids

        delivered = await asyncio.gather(*(f.wait_for(got(f), 15) for f in followers))
        try:
            await fake.wait_for(lambda: alerts_for(fake, "procfile-1", CHAT), 20)
        except TimeoutError:
            raise AssertionError(f"no Telegram alert\n{honcho.report()}") from None
        await asyncio.sleep(2.0)  # a duplicate would arrive now

        output = honcho.output
        context = (
            f"WebSocket web.1 {followers[0].signal_ids} {followers[0].events}; "
            f"web.2 {followers[1].signal_ids} {followers[1].events}\n"
            f"getUpdates conflicts {getattr(fake, 'conflicts', 'n/a')}, "
            f"most in flight {fake.max_polls}\n{honcho.report()}"
        )
        assert all(delivered), context
        for follower in followers:
            assert follower.signal_ids == ["procfile-1"], context
        assert len(alerts_for(fake, "procfile-1")) == 1, context
        assert len(alerts_for(fake, "procfile-1", CHAT)) == 1, context

        # web.1 published it; web.2's client got it through the database.
        published = _lines(output, "web", "published CLST procfile-1")
        assert published == ["web.1"], context
        # Exactly one worker leads each role; the other stands by.
        for role in ROLES:
            leaders = _lines(output, "worker", f"{role}: this process leads")
            standbys = _lines(output, "worker", f"{role}: another process leads; standing by")
            assert len(leaders) == 1, f"{role} leaders: {leaders}\n{context}"
            assert set(standbys) == {"worker.1", "worker.2"} - set(leaders), context
        # Nobody polled Telegram beside the leader: no 409 Conflict.
        if hasattr(fake, "conflicts"):
            assert fake.conflicts == 0, context
        assert fake.max_polls <= 1, context
        assert "Traceback" not in output, context
    finally:
        for follower in followers:
            await follower.stop()
        code = await honcho.astop(timeout=20)
        await fake.stop()
    output = honcho.output
    # SIGTERM to honcho reaches every process, and each hub stops cleanly.
    for name in ("web.1", "web.2", "worker.1", "worker.2"):
        assert re.search(rf"{re.escape(name)}\s+\|.*catalyst hub stopped", output), honcho.report()
    assert "Traceback" not in output, honcho.report()
    assert code in (0, -15, 143), honcho.report()  # honcho exits 128+15 when signalled
    # Last, as it is not about delivery: no role logs a secret (the API key travels
    # in the WebSocket URL's ?token=, which uvicorn logs).
    leaks = cluster.leaks(key, fake.token)
    assert not leaks, "secrets in the log:\n" + "\n".join(leaks)
