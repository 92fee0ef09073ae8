"""A destination's delivery settings: quiet hours, digest period and cap.

Changing them releases the destination's held alerts at once: they are planned
again under the new settings on the dispatcher's next round (so ``quiet off``
brings what quiet hours held as one digest now, not at the old end time).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from domain.delivery_prefs import DeliveryPrefs
from domain.errors import NotFound
from storage.database import Database
from storage.models import utcnow
from storage.repositories import deliveries as deliveries_repo
from storage.repositories import subscriptions as subscriptions_repo

NOT_SUBSCRIBED = "this destination is not subscribed; subscribe first"


class DeliveryPrefsService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._db = db
        self._clock = clock

    async def get(self, platform: str, destination: str) -> DeliveryPrefs:
        async with self._db.session() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is None or not row.active:
                raise NotFound(NOT_SUBSCRIBED)
            return DeliveryPrefs.stored(row.delivery)

    async def apply(self, platform: str, destination: str, line: str) -> DeliveryPrefs:
        """Apply one typed setting: ``quiet 22:00-07:00 America/New_York``, ``digest 15m``,
        ``max 10/h`` (or ``... off``)."""
        return await self._change(platform, destination, lambda p: p.parse_line(line))

    async def set(self, platform: str, destination: str, name: str, value: str) -> DeliveryPrefs:
        return await self._change(platform, destination, lambda p: p.with_setting(name, value))

    async def replace(self, platform: str, destination: str, prefs: DeliveryPrefs) -> DeliveryPrefs:
        return await self._change(platform, destination, lambda _p: prefs)

    async def replace_for_user(
        self, user_id: int, subscription_id: int, prefs: DeliveryPrefs
    ) -> tuple[str, str, DeliveryPrefs]:
        """The API's form: a subscription of the caller by id. Returns
        (platform, destination, settings)."""
        async with self._db.session() as session:
            row = await subscriptions_repo.get(subscription_id, session=session)
            if row is None or row.user_id != user_id or not row.active:
                raise NotFound(f"no active subscription {subscription_id} of yours")
            platform, destination = row.platform, row.destination
        return platform, destination, await self.replace(platform, destination, prefs)

    async def _change(
        self,
        platform: str,
        destination: str,
        change: Callable[[DeliveryPrefs], DeliveryPrefs],
    ) -> DeliveryPrefs:
        async with self._db.transaction() as session:
            row = await subscriptions_repo.get_by_destination(
                platform, destination, session=session
            )
            if row is None or not row.active or row.id is None:
                raise NotFound(NOT_SUBSCRIBED)
            new = change(DeliveryPrefs.stored(row.delivery))
            row.delivery = new.to_mapping()
            row.updated_at = utcnow()
            session.add(row)
            await deliveries_repo.release_held(row.id, self._clock(), session=session)
            return new
