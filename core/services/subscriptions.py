"""Subscribe and unsubscribe destinations, and show, set or reset their filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.router import STREAM_PLATFORM
from domain.delivery_prefs import DeliveryPrefs
from domain.errors import InvalidInput, NotFound
from domain.filters import SignalFilter
from storage.database import Database
from storage.models import Subscription, utcnow
from storage.repositories import subscriptions as subscriptions_repo

MAX_DESTINATION = 128


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    id: int
    user_id: int
    platform: str
    destination: str
    filter: SignalFilter
    active: bool
    deactivated_reason: str | None
    delivery: DeliveryPrefs = field(default_factory=DeliveryPrefs)

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionInfo:
        assert row.id is not None
        try:
            flt = SignalFilter.from_mapping(row.filter or {})
        except InvalidInput:
            flt = SignalFilter()
        return cls(
            row.id,
            row.user_id,
            row.platform,
            row.destination,
            flt,
            row.active,
            row.deactivated_reason,
            DeliveryPrefs.stored(row.delivery),
        )


def _check(platform: str, destination: str) -> None:
    if not platform or len(platform) > 16:
        raise InvalidInput("platform must be 1-16 characters", field="platform")
    if not destination or len(destination) > MAX_DESTINATION:
        raise InvalidInput(
            f"destination must be 1-{MAX_DESTINATION} characters", field="destination"
        )


class SubscriptionService:
    NOT_SUBSCRIBED = "this destination is not subscribed; subscribe first"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def subscribe(
        self,
        platform: str,
        destination: str,
        user_id: int,
        flt: SignalFilter | None = None,
    ) -> tuple[SubscriptionInfo, bool]:
        """Subscribe a destination. Returns (subscription, changed); subscribing an
        active destination again changes nothing. A deactivated one is reactivated
        with its filter kept."""
        _check(platform, destination)
        try:
            return await self._subscribe(platform, destination, user_id, flt)
        except IntegrityError:
            # Two first subscribes of the same destination raced; the row exists now.
            return await self._subscribe(platform, destination, user_id, flt)

    async def _subscribe(
        self, platform: str, destination: str, user_id: int, flt: SignalFilter | None
    ) -> tuple[SubscriptionInfo, bool]:
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is not None and row.active:
                return SubscriptionInfo.of(row), False
            if row is None:
                row = Subscription(
                    user_id=user_id,
                    platform=platform,
                    destination=destination,
                    filter=(flt or SignalFilter()).to_mapping(),
                )
            else:
                row.active = True
                row.deactivated_reason = None
                row.user_id = user_id
                if flt is not None:
                    row.filter = flt.to_mapping()
                row.updated_at = utcnow()
            session.add(row)
            await session.flush()
            return SubscriptionInfo.of(row), True

    async def unsubscribe(self, platform: str, destination: str) -> bool:
        """Deactivate a destination. False if it was not subscribed."""
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is None or not row.active:
                return False
            row.active = False
            row.deactivated_reason = "unsubscribed"
            row.updated_at = utcnow()
            session.add(row)
            return True

    async def deactivate(self, platform: str, destination: str, reason: str) -> bool:
        """The destination is gone (the platform said so): deactivate its subscription
        at once, so nothing more is sent there. False if it was not active."""
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is None or not row.active or row.id is None:
                return False
            await subscriptions_repo.deactivate(row.id, reason, session=session)
            return True

    async def get(self, platform: str, destination: str) -> SubscriptionInfo | None:
        async with self._db.session() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            return SubscriptionInfo.of(row) if row is not None else None

    async def for_user(self, user_id: int) -> list[SubscriptionInfo]:
        async with self._db.session() as session:
            return [
                SubscriptionInfo.of(r)
                for r in await subscriptions_repo.list_for_user(user_id, session=session)
            ]

    async def get_filter(self, platform: str, destination: str) -> SignalFilter:
        info = await self.get(platform, destination)
        if info is None or not info.active:
            raise NotFound(self.NOT_SUBSCRIBED)
        return info.filter

    async def _store_filter(
        self, platform: str, destination: str, change: Any, *, require_active: bool = True
    ) -> SignalFilter:
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is None or (require_active and not row.active):
                raise NotFound(self.NOT_SUBSCRIBED)
            current = SubscriptionInfo.of(row).filter
            new = change(current)
            row.filter = new.to_mapping()
            row.updated_at = utcnow()
            session.add(row)
            return new  # type: ignore[no-any-return]

    async def set_field(
        self, platform: str, destination: str, field: str, value: str | None
    ) -> SignalFilter:
        """Set one filter field from user text (``/set tickers AAPL,TSLA``); blank clears."""
        return await self._store_filter(platform, destination, lambda f: f.with_field(field, value))

    async def update_filter(
        self, platform: str, destination: str, changes: Mapping[str, Any]
    ) -> SignalFilter:
        """Change only the given fields (JSON values; None clears a field)."""
        return await self._store_filter(platform, destination, lambda f: f.updated(changes))

    async def replace_filter(
        self, platform: str, destination: str, flt: SignalFilter
    ) -> SignalFilter:
        return await self._store_filter(platform, destination, lambda _f: flt)

    async def reset_filter(self, platform: str, destination: str) -> SignalFilter:
        return await self.replace_filter(platform, destination, SignalFilter())

    async def move(self, platform: str, old: str, new: str) -> bool:
        """Follow a destination that changed id (a migrated Telegram group)."""
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(platform, old, session=session)
            if row is None or row.id is None:
                return False
            return await subscriptions_repo.move(row.id, new, session=session)

    # ---- the API / WebSocket stream of a user ------------------------------
    async def stream(self, user_id: int) -> SubscriptionInfo:
        """The user's API/WebSocket subscription, created on first use (empty filter).
        Served by the live stream, never by the outbox (see core.router)."""
        info, _ = await self.subscribe(STREAM_PLATFORM, str(user_id), user_id)
        return info

    async def update_stream_filter(self, user_id: int, changes: Mapping[str, Any]) -> SignalFilter:
        """Change only the given fields of the user's stream filter (None clears one)."""
        await self.stream(user_id)
        return await self.update_filter(STREAM_PLATFORM, str(user_id), changes)

    async def set_stream_filter(self, user_id: int, flt: SignalFilter) -> SignalFilter:
        await self.stream(user_id)
        return await self.replace_filter(STREAM_PLATFORM, str(user_id), flt)
