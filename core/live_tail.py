"""The live feed: every stored signal, whoever published it, onto this process's bus in seq order.

Signals reach a process's WebSocket clients from three places, and all of them go
through :class:`SignalTail`, which keeps one cursor and never goes backwards:

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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.bus import LiveBus
from domain.signals import Signal
from storage.database import Database
from storage.notify import NotifyListener
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)

BATCH = 500


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
        self._offered = 0  #: highest seq offered before start()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        if listener is not None:
            listener.add(self._notified)

    @property
    def cursor(self) -> int | None:
        return self._cursor

    async def start(self) -> None:
        async with self._db.session() as session:
            latest = await signals_repo.latest_seq(session=session)
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
        known = self._cursor is not None and payload is not None and payload.isdigit()
        if known and int(payload or 0) <= (self._cursor or 0):
            return  # this process published it and already announced it
        self._wake.set()

    async def offer(self, signal: Signal) -> None:
        """Announce a signal this process has just committed. Never raises."""
        seq = signal.seq
        if seq is None:
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
        self._bus.publish(signal)

    async def poll_once(self) -> int:
        """Announce every stored signal past the cursor; returns how many."""
        if self._cursor is None:
            raise RuntimeError("SignalTail.start() has not been called")
        total = 0
        while True:
            async with self._lock:
                async with self._db.session() as session:
                    batch = await signals_repo.list_signals(
                        session=session, limit=BATCH, after_seq=self._cursor, ascending=True
                    )
                for signal in batch:
                    self._announce(signal)
            total += len(batch)
            if len(batch) < BATCH:
                return total

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
