"""Build a HubContext from Settings. Nothing here starts tasks or listens on ports."""

from __future__ import annotations

import logging
import secrets

from core.auth import AuthService
from core.bus import LiveBus
from core.context import HubContext
from core.dispatcher import Dispatcher
from core.hints import OutcomeHints
from core.live_tail import SignalTail
from core.metrics import Metrics
from core.publisher import Publisher
from core.receipts import StreamReceipts
from core.recent import RecentSignals
from core.services import HubServices
from core.settings import Settings
from core.streams import StreamFilters
from domain.errors import ConfigError
from storage.database import Database
from storage.migrate import SchemaNotCurrent, check_current, upgrade
from storage.notify import NotifyListener
from storage.repositories.signals import SIGNALS_CHANNEL

log = logging.getLogger(__name__)


def jwt_secret_for(settings: Settings) -> str:
    """The configured secret; in development an unset one becomes a per-process random one."""
    secret = settings.auth.jwt_secret.get_secret_value()
    if not secret:
        if settings.env == "production":  # pragma: no cover - check_secrets refuses this first
            raise RuntimeError("auth.jwt_secret is required in production")
        log.debug("auth.jwt_secret is not set: using a random per-process secret")
        return secrets.token_urlsafe(48)
    return secret


def build_context(settings: Settings) -> HubContext:
    db = Database(
        settings.database.url,
        echo=settings.database.echo,
        busy_timeout_ms=settings.database.sqlite_busy_timeout_ms,
    )
    db.connect()
    metrics = Metrics()
    bus = LiveBus()
    listener = None
    if not db.is_sqlite and settings.live.listen:
        listener = NotifyListener(db.url, SIGNALS_CHANNEL)
    tail = SignalTail(
        db,
        bus,
        poll_seconds=settings.live.poll_seconds,
        fallback_poll_seconds=settings.live.fallback_poll_seconds,
        listener=listener,
    )
    hints = OutcomeHints(db, min_sample=settings.stats.min_sample)
    dispatcher = Dispatcher(db, settings.dispatcher, metrics=metrics, hints=hints.line_for)
    if listener is not None:
        # A signal published by any process wakes this process's senders at once.
        listener.add(lambda _payload: dispatcher.wake())
    publisher = Publisher(db, feed=tail, metrics=metrics, on_enqueued=dispatcher.wake)
    services = HubServices.build(
        db,
        min_sample=settings.stats.min_sample,
        dispatcher_settings=settings.dispatcher,
        dispatcher=dispatcher,
        configured_platforms=[
            name for name in ("telegram", "discord") if getattr(settings, name).enabled
        ],
    )
    return HubContext(
        settings=settings,
        db=db,
        services=services,
        auth=AuthService(
            db,
            jwt_secret_for(settings),
            settings.auth.token_ttl_minutes,
            cache_seconds=settings.auth.cache_seconds,
        ),
        publisher=publisher,
        dispatcher=dispatcher,
        bus=bus,
        metrics=metrics,
        tail=tail,
        recent=RecentSignals(db, bus, settings.live.recent_signals),
        streams=StreamFilters(services.subscriptions, settings.auth.cache_seconds),
        receipts=StreamReceipts(db),
        hints=hints,
        listener=listener,
    )


async def prepare_database(ctx: HubContext, *, force: bool = False) -> list[str]:
    """Migrate when asked to, and always for the embedded SQLite default; otherwise
    check that the schema is current. Returns the revisions applied."""
    if force or ctx.settings.database.auto_migrate or ctx.db.is_sqlite:
        return await upgrade(ctx.db)
    try:
        await check_current(ctx.db)
    except SchemaNotCurrent as exc:
        raise ConfigError(str(exc)) from None
    return []
