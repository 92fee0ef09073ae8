"""Reading stored signals: by id, recent ones, pages for a filter or a replay cursor."""

from __future__ import annotations

from datetime import datetime

from core.services.subscriptions import SubscriptionInfo
from domain.errors import InvalidInput, NotFound
from domain.filters import SignalFilter
from domain.signals import Signal
from storage.database import Database
from storage.repositories import outcomes as outcomes_repo
from storage.repositories import signals as signals_repo
from storage.repositories import subscriptions as subscriptions_repo

MAX_SCAN = 2000


class SignalService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, signal_id: str) -> Signal:
        async with self._db.session() as session:
            signal = await signals_repo.get_signal(signal_id, session=session)
        if signal is None:
            raise NotFound(f"no signal with id {signal_id[:128]!r}")
        return signal

    async def query(
        self,
        *,
        limit: int = 50,
        flt: SignalFilter | None = None,
        since: datetime | None = None,
        ticker: str | None = None,
        after_seq: int | None = None,
        ascending: bool = False,
    ) -> list[Signal]:
        """Up to ``limit`` signals matching ``flt``, newest first (or oldest first from
        ``after_seq`` when ``ascending``). Scans at most MAX_SCAN stored signals."""
        if limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        matcher = flt.compile() if flt is not None and not flt.is_empty() else None
        out: list[Signal] = []
        cursor = after_seq
        upper: int | None = None
        scanned = 0
        page = max(limit, 100)
        async with self._db.session() as session:
            while len(out) < limit and scanned < MAX_SCAN:
                batch = await signals_repo.list_signals(
                    session=session,
                    limit=page,
                    since=since,
                    ticker=ticker,
                    after_seq=cursor if ascending else after_seq,
                    ascending=ascending,
                    before_seq=None if ascending else upper,
                )
                if not batch:
                    break
                scanned += len(batch)
                for signal in batch:
                    if matcher is None or matcher(signal):
                        out.append(signal)
                        if len(out) >= limit:
                            break
                last = batch[-1].seq
                if ascending:
                    cursor = last
                else:
                    upper = last
                if len(batch) < page:
                    break
        return out

    async def recent(self, limit: int = 5, flt: SignalFilter | None = None) -> list[Signal]:
        return await self.query(limit=limit, flt=flt)

    async def by_seq(self, seq: int) -> Signal | None:
        """The signal with this ``seq``, or None (never stored, or no longer)."""
        if not 0 < seq < 2**63:
            return None
        found = await self.query(limit=1, after_seq=seq - 1, ascending=True)
        return found[0] if found and found[0].seq == seq else None

    async def recent_for_destination(
        self, platform: str, destination: str, limit: int = 5
    ) -> tuple[list[Signal], SignalFilter | None]:
        """The newest ``limit`` signals under the filter of the destination's active
        subscription (every signal when it has none), and that filter (None: none)."""
        async with self._db.session() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
        info = SubscriptionInfo.of(row) if row is not None and row.active else None
        flt = info.filter if info is not None and not info.filter.is_empty() else None
        return await self.query(limit=limit, flt=flt), flt

    async def recent_for_user(self, user_id: int, limit: int = 25) -> list[tuple[str, str]]:
        """(signal_id, ticker) of the newest signals delivered to the user, for autocomplete."""
        async with self._db.session() as session:
            rows = await outcomes_repo.recent_delivered_signal_ids(user_id, limit, session=session)
        return [(sid, ticker) for sid, ticker, _ts in rows]

    async def latest_seq(self) -> int:
        async with self._db.session() as session:
            return await signals_repo.latest_seq(session=session)
