"""Resume: replay what a client missed after a ``seq``, then go live, with no gap and
no duplicate.

:meth:`Replay.resume` switches the client's live feed into a side buffer first
(:meth:`api.ws_client.Client.buffer_live`: the fan-out appends there instead of
sending), replays the missed signals from the database, then drains the buffer
skipping everything at or below the last replayed ``seq``. Signals the client
already got live on this connection (the newest RECENT_LIVE) are skipped too.
Buffered ``signal_update`` messages are sent in their place among them (they move
no cursor), but not when the replay already sent that signal at that revision or
later: a replay sends each signal as it is now. The
replay reads bounded pages (REPLAY_PAGE rows, at most REPLAY_READERS pages read at
once in the process) and yields to the loop as it goes, so a replay never holds up
the live broadcast; it reaches at most ``limits.ws_resume_max_signals`` back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from api.ws_client import Client
from api.ws_messages import signal_message
from domain.errors import InvalidInput

if TYPE_CHECKING:
    from core.context import HubContext

#: Rows a resume reads per page; pages read at once in the process; messages a
#: replay queues between yields to the event loop.
REPLAY_PAGE = 200
REPLAY_READERS = 1
REPLAY_YIELD_EVERY = 50


class Replay:
    """The process's resumes (they share the page readers)."""

    def __init__(self, ctx: HubContext) -> None:
        self._ctx = ctx
        self._readers: asyncio.Semaphore | None = None

    async def resume(self, client: Client, after_seq: int) -> tuple[int, int]:
        """Replay what ``client`` missed after ``after_seq``, then go live.

        Returns (replayed, last_seq). The caller may already have switched the
        client to buffering (``register(..., resume_buffering=True)``). A cursor more
        than ``limits.ws_resume_max_signals`` back replays nothing: the client goes
        live and InvalidInput says how to catch up over REST."""
        if client.side_buffer is None:
            client.side_buffer = deque()
        already_live = {s for s in client.recent_live if s > after_seq}
        #: seq -> revision, of the revised signals the replay sent (as they are now)
        revisions_sent: dict[int, int] = {}
        last = after_seq
        replayed = 0
        ctx = self._ctx
        signals = ctx.services.signals
        if self._readers is None:
            self._readers = asyncio.Semaphore(REPLAY_READERS)
        too_far: str | None = None
        try:
            newest = await signals.latest_seq()
            reach = ctx.settings.limits.ws_resume_max_signals
            if newest - after_seq > reach:
                too_far = (
                    f"resume: after_seq {after_seq} is more than {reach} signals back (the "
                    f"newest seq is {newest}); page through GET /api/v1/signals?after_seq="
                    f"{after_seq} first, then resume from the last seq you got"
                )
            while too_far is None:
                async with self._readers:
                    page = await signals.query(limit=REPLAY_PAGE, after_seq=last, ascending=True)
                queued = 0
                for signal in page:
                    seq = signal.seq or 0
                    last = max(last, seq)
                    if seq in already_live or not client.wants(signal):
                        continue
                    await client.put(signal_message(signal))
                    ctx.receipts.note(client.user_id, seq)
                    if signal.revision:
                        revisions_sent[seq] = signal.revision
                    replayed += 1
                    queued += 1
                    if queued % REPLAY_YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the live broadcast and others run
                if len(page) < REPLAY_PAGE:
                    break
                await asyncio.sleep(0)
            buffer = client.side_buffer
            while buffer:
                seq, revision, text = buffer.popleft()
                if revision:  # a signal_update: sent unless the replay had it already
                    if revisions_sent.get(seq, 0) < revision:
                        await client.put(text)
                    continue
                if seq <= last or seq in already_live:
                    continue
                await client.put(text)
                last = seq
            # Nothing awaited between the empty check above and this line: no gap.
            client.side_buffer = None
        except BaseException:
            client.side_buffer = None
            raise
        if replayed:
            ctx.metrics.ws_messages_sent.labels(type="signal").inc(replayed)
        if too_far is not None:
            raise InvalidInput(too_far, field="after_seq")
        return replayed, last
