"""The live feed: every stored signal, whoever published it, onto this process's bus in seq order.

Signals reach a process's WebSocket clients from three places, and all of them go
through :class:`SignalTail`, whose cursor never goes backwards:

* this process's publisher hands over each signal it committed (:meth:`offer`),
  so the common case costs no database read;
* on PostgreSQL a LISTEN/NOTIFY wake (payload: the seq) says another process
  committed one; the rows are then read from the table;
* a poll reads the table anyway: SQLite's only wake, and on PostgreSQL a safety
  net, so a lost notification costs latency, never a signal.

Reading ``seq > cursor`` is only correct because the log is ordered: a seq
becomes visible only after every smaller one (see
:func:`storage.repositories.signals.insert_signal`). So when this process commits
seq N, every smaller seq that will ever exist is already readable, and
:meth:`offer` reads the gap below N before announcing N.

Corrections and retractions (a signal's ``revision`` going up) take the same three
ways: :meth:`offer` of the revised signal, and the revision log, read by a second
cursor (``id > revision_cursor``, from its newest id at start) on the same wake
and poll, after the new signals (the log is ordered the same way, see
:func:`storage.repositories.signals.revise_signal`). They go onto the bus as updates
(:meth:`core.bus.LiveBus.publish_update`), never before the signal they revise
was announced; the bus drops the second sighting of one. Rows are read as they are
now, so a signal revised before this tail announced it goes out once, as new, in
its current state.

A NOTIFY's payload is only a seq, and a revision announces the seq it revises, so
a notification for a seq at or below the cursor may be a revision: it wakes the
tail, unless it is the one notification of a seq this tail announced before it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from core.bus import LiveBus
from domain.signals import Signal
from storage.database import Database
from storage.notify import NotifyListener
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)

BATCH = 500
#: Seqs remembered, at most, as announced and not yet notified (or the reverse).
EXPECTED_MAX = 4096


def _remember(seqs: dict[int, None], seq: int) -> None:
    """Add ``seq`` to an insertion-ordered set, forgetting the oldest past EXPECTED_MAX."""
    seqs[seq] = None
    if len(seqs) > EXPECTED_MAX:
        del seqs[next(iter(seqs))]


class SignalTail:
    def __init__(
        self,
        db: Database,
        bus: LiveBus,
        *,
        poll_seconds: float = 0.25,
        fallback_poll_seconds: float = 2.0,
        listener: NotifyListener | None = None,
    ) -> None:
        self._db = db
        self._bus = bus
        self._poll = poll_seconds
        self._fallback = fallback_poll_seconds
        self._listener = listener
        self._cursor: int | None = None
        self._revision_cursor = 0  #: the last revision-log id read
        self._offered = 0  #: highest seq offered before start()
        #: With a listener: seqs announced before their notification came, and seqs
        #: notified before they were announced (each notification is matched once).
        self._expected: dict[int, None] = {}
        self._early: dict[int, None] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        if listener is not None:
            listener.add(self._notified)

    @property
    def cursor(self) -> int | None:
        return self._cursor

    @property
    def revision_cursor(self) -> int:
        return self._revision_cursor

    async def start(self) -> None:
        async with self._db.session() as session:
            latest = await signals_repo.latest_seq(session=session)
            self._revision_cursor = await signals_repo.latest_revision_id(session=session)
        self._cursor = max(latest, self._offered)
        self._task = asyncio.create_task(self._loop(), name="signal-tail")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wake.set()

    def _notified(self, payload: str | None) -> None:
        cursor = self._cursor
        if payload is None:  # reconnected: what was missed is lost, expect nothing
            self._expected.clear()
            self._early.clear()
        elif cursor is not None and payload.isdigit():
            seq = int(payload)
            if seq > cursor:
                _remember(self._early, seq)
            elif seq in self._expected:
                del self._expected[seq]
                return  # announced already, and this is its one notification
            # else at or below the cursor, not expected: a revision
        self._wake.set()

    async def offer(self, signal: Signal) -> None:
        """Announce a signal this process has just committed, or a correction or
        retraction of one (``revision`` > 0). Never raises."""
        seq = signal.seq
        if seq is None:
            return
        if signal.revision > 0:
            if self._cursor is not None and seq > self._cursor:
                # What it revises is not announced yet: the poll reads it as it is now.
                self._wake.set()
            else:
                self._bus.publish_update(signal)
            return
        if self._cursor is None:  # not started: no cursor to keep, just announce
            self._offered = max(self._offered, seq)
            self._bus.publish(signal)
            return
        async with self._lock:
            cursor = self._cursor
            if seq <= cursor:
                return
            if seq > cursor + 1:
                try:
                    async with self._db.session() as session:
                        gap = await signals_repo.list_signals(
                            session=session,
                            limit=BATCH,
                            after_seq=cursor,
                            before_seq=seq,
                            ascending=True,
                        )
                except Exception:
                    # Keep the order: the poll announces everything, this one included.
                    self._wake.set()
                    return
                if len(gap) == BATCH:
                    self._wake.set()  # a long gap: let the poll page through it
                    return
                for earlier in gap:
                    self._announce(earlier)
            self._announce(signal)

    def _announce(self, signal: Signal) -> None:
        if signal.seq is None or self._cursor is None or signal.seq <= self._cursor:
            return
        self._cursor = signal.seq
        if self._listener is not None:
            if signal.seq in self._early:
                del self._early[signal.seq]
            else:
                _remember(self._expected, signal.seq)
        self._bus.publish(signal)

    async def poll_once(self) -> int:
        """Announce every stored signal past the cursor, then every logged revision
        past the revision cursor; returns how many rows were read."""
        if self._cursor is None:
            raise RuntimeError("SignalTail.start() has not been called")
        total = 0
        while True:
            async with self._lock, self._db.session() as session:
                batch = await signals_repo.list_signals(
                    session=session, limit=BATCH, after_seq=self._cursor, ascending=True
                )
                for signal in batch:
                    self._announce(signal)
                revised, more = 0, len(batch) == BATCH
                if not more:
                    revised, more = await self._read_revisions(session)
            total += len(batch) + revised
            if not more:
                return total

    async def _read_revisions(self, session: AsyncSession) -> tuple[int, bool]:
        """Announce one page of logged revisions past the revision cursor. Returns
        (how many, whether to read on): a page full, or a revision of a signal
        committed after the signals were read (it waits for its signal)."""
        rows = await signals_repo.revisions_after(self._revision_cursor, BATCH, session=session)
        for count, (log_id, signal) in enumerate(rows):
            if signal.seq is None or self._cursor is None or signal.seq > self._cursor:
                return count, True
            self._revision_cursor = log_id
            self._bus.publish_update(signal)
        return len(rows), len(rows) == BATCH

    def _interval(self) -> float:
        if self._listener is not None and self._listener.connected:
            return self._fallback
        return self._poll

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.poll_once()
                if self._failing:
                    log.info("signal tail: reading again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:  # once per failure streak, not every poll
                    log.warning(
                        "signal tail: cannot read new signals (%s); retrying",
                        exc.__class__.__name__,
                    )
                self._failing = True
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
            # arrives with a wake, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval()):
                    await self._wake.wait()
