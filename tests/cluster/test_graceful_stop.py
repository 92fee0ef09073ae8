"""SIGTERM during slow sends: in-flight sends finish and are recorded, the rest go
to the next worker, and every (chat, signal) pair arrives exactly once in total.

A worker (``run --roles dispatcher,bots``) delivers 5 signals to 5 subscribed chats
through a fake Telegram Bot API whose ``sendMessage`` takes 1 s. As soon as the
first ``sendMessage`` reaches the fake, the worker gets SIGTERM. It must exit 0
within 15 s, and every alert that reached the fake must be ``sent`` in the
deliveries table (a send that happened but was not recorded would be sent again
by the next worker: a duplicate). A new worker then delivers the rest: each of
the 25 pairs reaches the fake exactly once across both workers.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter

import pytest

from tests.cluster.procs import (
    Cluster,
    SlowBotApi,
    alert_pairs,
    deliveries,
    signal_data,
    subscribe_chats,
    telegram_env,
    write_jsonl,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CHATS = [5101, 5102, 5103, 5104, 5105]
SIGNALS = [f"grace-{i}" for i in range(5)]
SEND_DELAY = 1.0
EXIT_WITHIN = 15.0


async def test_sigterm_finishes_in_flight_sends_and_the_next_worker_sends_the_rest(
    cluster: Cluster,
) -> None:
    fake = SlowBotApi()
    await fake.start()
    env = telegram_env(fake)
    first = cluster.start_role("worker-1", "dispatcher,bots", **env)
    second = None
    try:
        for role in ("sender-telegram", "telegram-receiver"):
            await first.await_line(rf"{role}: this process leads")
        await subscribe_chats(fake, CHATS, cluster.report)

        fake.send_delay = SEND_DELAY
        mark = len(fake.send_calls())
        path = write_jsonl(cluster.workdir / "grace.jsonl", (signal_data(s) for s in SIGNALS))
        publisher = cluster.start(
            "publish", [sys.executable, "-m", "hub.cli", "publish", "--file", str(path)]
        )
        # The fake wakes its waiters when a call is answered, so poll for an arrival.
        deadline = time.monotonic() + 30
        while len(fake.send_calls()) == mark and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert len(fake.send_calls()) > mark, f"no alert was sent\n{cluster.report()}"
        first.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        in_flight_at_stop = len(fake.send_calls()) - mark - len(alert_pairs(fake))
        code = await asyncio.to_thread(first.wait_exit, EXIT_WITHIN)
        exit_seconds = time.monotonic() - stopped_at
        assert code == 0, (
            f"worker-1 exit {code} after SIGTERM ({exit_seconds:.1f}s)\n{cluster.report()}"
        )
        assert await asyncio.to_thread(publisher.wait_exit, 30) == 0, publisher.report()

        # Every sendMessage that reached the fake has been answered and recorded there
        # (the fake records a message when its delay is over).
        arrived = len(fake.send_calls()) - mark
        await fake.wait_for(lambda: len(alert_pairs(fake)) >= arrived, 5)
        before = alert_pairs(fake)
        states = await deliveries(cluster.db_url)
        context = (
            f"worker-1 exited in {exit_seconds:.1f}s; {in_flight_at_stop} send(s) in flight at "
            f"SIGTERM; {len(before)} alert(s) reached the fake: {before}\ndeliveries: {sorted(states.items())}\n{cluster.report()}"
        )
        assert len(states) == len(CHATS) * len(SIGNALS), context
        assert before and in_flight_at_stop >= 1, context
        assert exit_seconds >= SEND_DELAY * 0.5, f"did not wait for the in-flight send\n{context}"
        unrecorded = [pair for pair in before if states.get(pair) != "sent"]
        assert not unrecorded, f"sent but not recorded as sent: {unrecorded}\n{context}"
        assert len(before) < len(states), f"nothing was left for the next worker\n{context}"
        assert "in-flight sends did not finish" not in first.output, context

        second = cluster.start_role("worker-2", "dispatcher,bots", **env)
        expected = {(chat, sid) for chat in CHATS for sid in SIGNALS}
        try:
            await fake.wait_for(lambda: set(alert_pairs(fake)) >= expected, 40)
        except TimeoutError:
            raise AssertionError(
                f"not every pair arrived: missing {sorted(expected - set(alert_pairs(fake)))}\n"
                f"{cluster.report()}"
            ) from None

        async def all_sent() -> bool:
            return set((await deliveries(cluster.db_url)).values()) == {"sent"}

        deadline = time.monotonic() + 10
        while not await all_sent() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # a duplicate would arrive now
        counts = Counter(alert_pairs(fake))
        states = await deliveries(cluster.db_url)
        context = (
            f"per-pair counts {sorted(counts.items())}\ndeliveries {sorted(states.items())}\n"
            f"{cluster.report()}"
        )
        assert set(counts) == expected, context
        duplicates = {pair: n for pair, n in counts.items() if n != 1}
        assert not duplicates, f"sent more than once: {duplicates}\n{context}"
        assert set(states.values()) == {"sent"}, context
        # Each chat got its signals in publish order across the two workers.
        for chat in CHATS:
            order = [sid for c, sid in alert_pairs(fake) if c == chat]
            assert order == SIGNALS, f"chat {chat} got {order}\n{context}"
    finally:
        codes = {p.name: await p.astop() for p in (second, first) if p is not None}
        await fake.stop()
    assert codes.get("worker-2", 0) == 0, cluster.report()
    leaks = cluster.leaks(fake.token)
    assert not leaks, "secrets in the log:\n" + "\n".join(leaks)
