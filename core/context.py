"""HubContext: the objects every front needs, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import AuthService
from core.bus import LiveBus
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
from storage.database import Database
from storage.notify import NotifyListener


@dataclass
class HubContext:
    settings: Settings
    db: Database
    services: HubServices
    auth: AuthService
    publisher: Publisher
    dispatcher: Dispatcher
    bus: LiveBus
    metrics: Metrics
    #: Feeds ``bus`` in seq order with every signal, whoever published it.
    tail: SignalTail
    #: The newest signals in memory (fed by ``bus``) for REST reads.
    recent: RecentSignals
    #: Users' stream filters, read without writing and remembered briefly.
    streams: StreamFilters
    #: Signals users received over the stream (WebSocket, REST), counted in memory.
    receipts: StreamReceipts
    #: The outcome ledger's line for an alert's catalyst and confidence bucket.
    hints: OutcomeHints
    #: PostgreSQL LISTEN connection (None on SQLite or with live.listen off).
    listener: NotifyListener | None = None
