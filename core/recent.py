"""The newest signals in memory, so common REST reads never touch the database.

:class:`RecentSignals` holds the last ``capacity`` signals of the ordered log, fed
by this process's live bus (which :class:`~core.live_tail.SignalTail` feeds in seq
order with every stored signal, whoever published it), and seeded from the
database at start. The database stays the source of truth: :meth:`query` answers
only when the window holds every row the database query would have looked at, and
returns None otherwise (not started, a query reaching below the window's oldest
signal, or after an out-of-order arrival), so the caller asks the database.

What "covers" means: the window knows every stored signal with ``floor < seq <=
head``. Seeded from the newest ``capacity`` rows, ``floor`` is one below the
oldest of them (0 when the table held fewer: nothing older exists); evicting the
oldest raises it. A signal not yet announced by the tail (committed by another
process less than a poll ago) is not there yet: the window is as fresh as the
WebSocket stream, no more.

:meth:`query` reproduces :meth:`core.services.signals.SignalService.query` to
the row, its scan cap included (the first ``limit`` matches of the filter among
the first MAX_SCAN rows, rounded up to whole pages, that pass ``since``,
``ticker`` and ``after_seq``).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from core.bus import LiveBus
from domain.filters import SignalFilter
from domain.signals import Signal
from storage.database import Database
from storage.repositories import signals as signals_repo

log = logging.getLogger(__name__)

#: Rows the database query scans at most (``core.services.signals.MAX_SCAN``).
MAX_SCAN = 2000
#: The database query's page: ``max(limit, PAGE)`` rows per round trip.
PAGE = 100


def scan_cap(limit: int) -> int:
    """How many rows the database query looks at, at most, for ``limit``."""
    page = max(limit, PAGE)
    return -(-MAX_SCAN // page) * page


class RecentSignals:
    def __init__(self, db: Database, bus: LiveBus, capacity: int = 2000) -> None:
        self._db = db
        self._bus = bus
        self._capacity = capacity
        #: Ascending by seq; ``_seqs`` mirrors it for bisecting.
        self._signals: list[Signal] = []
        self._seqs: list[int] = []
        self._by_id: dict[str, Signal] = {}
        self._floor = 0
        self._ready = False
        self._seeding: list[Signal] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_updates: Callable[[], None] | None = None
        #: Corrections and retractions that arrived while seeding, applied after it.
        self._seeding_updates: list[Signal] = []

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def floor(self) -> int:
        """Every stored signal with a seq above this is in the window (up to its head)."""
        return self._floor

    @property
    def head(self) -> int:
        return self._seqs[-1] if self._seqs else self._floor

    def __len__(self) -> int:
        return len(self._signals)

    async def start(self) -> None:
        """Listen to the bus, then read the newest rows: start it after the tail, so
        every seq above the rows read arrives on the bus, in order."""
        if self._capacity <= 0 or self._unsubscribe is not None:
            return
        self._seeding = []
        self._seeding_updates = []
        self._unsubscribe = self._bus.subscribe(self._on_signal)
        self._unsubscribe_updates = self._bus.subscribe_updates(self._on_update)
        try:
            async with self._db.session() as session:
                rows = await signals_repo.list_signals(session=session, limit=self._capacity)
        except BaseException:
            await self.stop()
            raise
        arrived, self._seeding = self._seeding, None
        rows.reverse()  # ascending
        floor = 0 if len(rows) < self._capacity else (rows[0].seq or 1) - 1
        self._reset(floor)
        self._extend(rows)
        self._extend(arrived)
        updates, self._seeding_updates = self._seeding_updates, []
        for update in updates:
            self._replace(update)
        self._ready = True
        log.info("recent signals: %d in memory (seq %d..%d)", len(self), floor + 1, self.head)

    async def stop(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        unsubscribe, self._unsubscribe_updates = self._unsubscribe_updates, None
        if unsubscribe is not None:
            unsubscribe()
        self._ready = False
        self._seeding = None
        self._reset(0)

    def _reset(self, floor: int) -> None:
        self._signals = []
        self._seqs = []
        self._by_id = {}
        self._floor = floor

    def _extend(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self._add(signal)

    def _on_signal(self, signal: Signal) -> None:
        if self._seeding is not None:
            self._seeding.append(signal)
        elif self._unsubscribe is not None:
            self._add(signal)

    def _add(self, signal: Signal) -> None:
        seq = signal.seq
        if seq is None or seq <= self._floor:
            return
        head = self.head
        if seq <= head:
            i = bisect.bisect_left(self._seqs, seq)
            if i < len(self._seqs) and self._seqs[i] == seq:
                return  # seen already (seeded, then announced)
            # Out of order: what lies below is no longer known to be complete.
            log.warning("recent signals: seq %d arrived after %d; window restarted", seq, head)
            self._reset(head)
            return
        self._signals.append(signal)
        self._seqs.append(seq)
        self._by_id[signal.signal_id] = signal
        signal.public_json  # noqa: B018 - serialize once, as it arrives
        excess = len(self._signals) - self._capacity
        if excess >= max(1, self._capacity // 8):  # trim in batches, not per signal
            for old in self._signals[:excess]:
                if self._by_id.get(old.signal_id) is old:
                    del self._by_id[old.signal_id]
            self._floor = self._seqs[excess - 1]
            del self._signals[:excess]
            del self._seqs[:excess]

    def _on_update(self, signal: Signal) -> None:
        if self._seeding is not None:
            self._seeding_updates.append(signal)
        elif self._unsubscribe_updates is not None:
            self._replace(signal)

    def _replace(self, signal: Signal) -> None:
        """A corrected or retracted signal in the window takes its old state's place,
        so REST reads served from memory never show what was withdrawn as active."""
        seq = signal.seq
        if seq is None:
            return
        i = bisect.bisect_left(self._seqs, seq)
        if i == len(self._seqs) or self._seqs[i] != seq:
            return  # not in the window: reads of it go to the database
        if self._signals[i].revision > signal.revision:
            return
        self._signals[i] = signal
        self._by_id[signal.signal_id] = signal
        signal.public_json  # noqa: B018 - serialize once, as it arrives

    # ---- reads ------------------------------------------------------------
    def get(self, signal_id: str) -> Signal | None:
        """The signal with this id if the window holds it (None: ask the database)."""
        return self._by_id.get(signal_id) if self._ready else None

    def query(
        self,
        *,
        limit: int = 50,
        flt: SignalFilter | None = None,
        since: datetime | None = None,
        ticker: str | None = None,
        after_seq: int | None = None,
        ascending: bool = False,
    ) -> list[Signal] | None:
        """What :meth:`SignalService.query` returns for the same arguments, or None
        when the window cannot tell exactly."""
        if not self._ready or limit < 1:
            return None
        matcher = flt.compile() if flt is not None and not flt.is_empty() else None
        symbol = ticker.upper() if ticker else None
        lower = after_seq
        complete = (lower is not None and lower >= self._floor) or self._floor == 0
        if ascending and not complete:
            return None  # the first rows of the answer lie below the window
        cap = scan_cap(limit)
        signals = self._signals
        if ascending:
            start = bisect.bisect_right(self._seqs, lower) if lower is not None else 0
            candidates: Iterable[Signal] = (signals[i] for i in range(start, len(signals)))
        else:
            stop = bisect.bisect_right(self._seqs, lower) if lower is not None else 0
            candidates = (signals[i] for i in range(len(signals) - 1, stop - 1, -1))
        out: list[Signal] = []
        scanned = 0
        for signal in candidates:
            if since is not None and not signal.timestamp > since:
                continue
            if symbol is not None and signal.ticker != symbol:
                continue
            scanned += 1
            if matcher is None or matcher(signal):
                out.append(signal)
                if len(out) >= limit:
                    return out
            if scanned >= cap:
                return out
        # Every candidate in the window was looked at: exact only if none lie below it.
        return out if complete else None
