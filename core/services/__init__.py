"""Platform-neutral services that every front (chat bots, REST, WebSocket, CLI) calls.

Fronts turn their inputs into these calls and show ``str(error)`` of any
:class:`~domain.errors.HubError` to the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.services.accounts import AccountService, UserRef
from core.services.delivery_prefs import DeliveryPrefsService
from core.services.feedback import FeedbackService, OutcomeInfo
from core.services.memos import MemoService
from core.services.operator import OperatorService, SenderView
from core.services.preview import PreviewService
from core.services.signals import SignalService
from core.services.subscriptions import SubscriptionInfo, SubscriptionService
from core.settings import DispatcherSettings
from domain.outcomes import DEFAULT_MIN_SAMPLE, UserStats
from storage.database import Database

__all__ = [
    "AccountService",
    "DeliveryPrefsService",
    "FeedbackService",
    "HubServices",
    "MemoService",
    "OperatorService",
    "OutcomeInfo",
    "PreviewService",
    "SignalService",
    "SubscriptionInfo",
    "SubscriptionService",
    "UserRef",
    "UserStats",
]


@dataclass(frozen=True)
class HubServices:
    accounts: AccountService
    subscriptions: SubscriptionService
    feedback: FeedbackService
    signals: SignalService
    memos: MemoService
    preview: PreviewService
    delivery: DeliveryPrefsService
    operator: OperatorService

    @classmethod
    def build(
        cls,
        db: Database,
        *,
        min_sample: int = DEFAULT_MIN_SAMPLE,
        dispatcher_settings: DispatcherSettings | None = None,
        dispatcher: SenderView | None = None,
        configured_platforms: Sequence[str] = (),
    ) -> HubServices:
        return cls(
            accounts=AccountService(db),
            subscriptions=SubscriptionService(db),
            feedback=FeedbackService(db),
            signals=SignalService(db),
            memos=MemoService(db),
            preview=PreviewService(db, min_sample=min_sample),
            delivery=DeliveryPrefsService(db),
            operator=OperatorService(
                db,
                dispatcher_settings or DispatcherSettings(),
                dispatcher=dispatcher,
                configured=configured_platforms,
            ),
        )
