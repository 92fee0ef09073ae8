"""One ordered log across processes: two publishers race, readers see every signal
once, in strictly increasing seq order.

Two ``hub.cli publish --file`` processes store 1,000 signals each at the same time
while a third process (``run --roles api``) streams them to a WebSocket client
subscribed with no filter. Afterwards a REST pager walks ``after_seq`` from 0.
A seq that became visible after a larger one would be skipped by both the live
tail (it reads ``seq > cursor``) and the pager, so "all 2,000, exactly once, in
order" on both is the proof that seqs become visible in seq order.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import time

import httpx
import pytest

from tests.cluster.procs import Cluster, WsFollower, signal_data, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PER_PUBLISHER = 1000


async def test_two_publishers_one_ordered_log_for_websocket_and_rest(cluster: Cluster) -> None:
    key = cluster.api_key()
    api = cluster.start_api()
    port = await asyncio.to_thread(cluster.api_port, api)
    follower = WsFollower(port, key, filters={})  # subscribed with no filter: everything
    await follower.start()
    files = {
        name: write_jsonl(
            cluster.workdir / f"{name}.jsonl",
            (
                signal_data(f"{name}-{i:04d}", ticker=name.upper(), confidence=0.5)
                for i in range(PER_PUBLISHER)
            ),
        )
        for name in ("alpha", "bravo")
    }
    expected = {f"{name}-{i:04d}" for name in files for i in range(PER_PUBLISHER)}
    try:
        started = time.monotonic()
        publishers = [
            cluster.start(
                f"publish-{name}", [sys.executable, "-m", "hub.cli", "publish", "--file", str(path)]
            )
            for name, path in files.items()
        ]
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait_exit, 90) for p in publishers))
        published_in = time.monotonic() - started
        assert codes == [0, 0], f"publishers exited {codes}\n{cluster.report()}"

        # The publishers' own view: each got 1,000 new seqs, and the two interleaved
        # (otherwise the race this test is about did not happen).
        seqs: dict[str, list[int]] = {}
        for proc, name in zip(publishers, files, strict=True):
            seqs[name] = [int(m.group(1)) for m in proc.find(r"^published: \S+ seq=(\d+)")]
            assert len(seqs[name]) == PER_PUBLISHER, proc.report()
        assert len(set(seqs["alpha"]) | set(seqs["bravo"])) == 2 * PER_PUBLISHER
        overlap = min(max(seqs["alpha"]), max(seqs["bravo"])) > max(
            min(seqs["alpha"]), min(seqs["bravo"])
        )
        assert overlap, "the two publishers did not run concurrently"

        got_all = await follower.wait_for(lambda: len(follower.signals) >= len(expected), 30)
        await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
        ws_seqs = [s["seq"] for s in follower.signals]
        context = (
            f"WebSocket got {len(ws_seqs)} signals (publishing took {published_in:.1f}s); "
            f"events {follower.events}\n{cluster.report()}"
        )
        assert got_all, context
        assert len(ws_seqs) == len(expected), context
        inversions = [(a, b) for a, b in itertools.pairwise(ws_seqs) if b <= a]
        assert not inversions, f"out of order on the WebSocket: {inversions[:10]}\n{context}"
        assert set(follower.signal_ids) == expected, context
        assert follower.connections == 1, context

        rest_seqs: list[int] = []
        rest_ids: list[str] = []
        cursor = 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _page in range(100):
                response = await http.get(
                    f"/api/v1/signals?after_seq={cursor}&limit=100",
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 200, response.text
                page = response.json()
                next_cursor = int(response.headers["X-Next-After-Seq"])
                if not page:
                    assert next_cursor == cursor
                    break
                assert next_cursor == page[-1]["seq"], (cursor, next_cursor, page[-1]["seq"])
                rest_seqs.extend(s["seq"] for s in page)
                rest_ids.extend(s["signal_id"] for s in page)
                cursor = next_cursor
        inversions = [(a, b) for a, b in itertools.pairwise(rest_seqs) if b <= a]
        assert not inversions, f"out of order over REST: {inversions[:10]}"
        assert len(rest_ids) == len(expected) and set(rest_ids) == expected
        # Both readers saw the same log.
        assert rest_seqs == ws_seqs
        assert not re.search(r"Traceback|ERROR", api.output), api.report()
    finally:
        await follower.stop()
        code = await api.astop()
    assert code == 0, api.report()
    leaks = cluster.leaks(key)
    assert not leaks, "secrets in the log:\n" + "\n".join(leaks)
