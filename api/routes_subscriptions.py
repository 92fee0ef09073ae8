"""Your chat subscriptions, and when each gets its alerts (quiet hours, digests, caps).

``GET /api/v1/subscriptions`` lists them; ``PUT /api/v1/subscriptions/{id}/delivery``
replaces one's delivery settings (what ``/quiet``, ``/digest`` and ``/max`` set in
the chat). The API's own stream is live and has no such settings.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path

from api.deps import Ctx, Reader
from api.schemas import DeliverySettings, ErrorResponse, FilterModel, SubscriptionOut
from core.router import STREAM_PLATFORMS
from domain.delivery_prefs import DeliveryPrefs

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    429: {"model": ErrorResponse},
}


@router.get("", response_model=list[SubscriptionOut], responses=_ERRORS)
async def list_subscriptions(ctx: Ctx, principal: Reader) -> list[SubscriptionOut]:
    """Your chat subscriptions, with their filters and delivery settings."""
    subs = await ctx.services.subscriptions.for_user(principal.user.id)
    return [
        SubscriptionOut(
            id=s.id,
            platform=s.platform,
            destination=s.destination,
            active=s.active,
            filters=FilterModel.of(s.filter),
            delivery=DeliverySettings(**s.delivery.to_mapping()),
        )
        for s in subs
        if s.platform not in STREAM_PLATFORMS
    ]


@router.put("/{subscription_id}/delivery", response_model=DeliverySettings, responses=_ERRORS)
async def set_delivery(
    body: DeliverySettings,
    ctx: Ctx,
    principal: Reader,
    subscription_id: int = Path(ge=1, le=2**31 - 1),
) -> DeliverySettings:
    """Replace a subscription's delivery settings. Alerts it holds are planned again
    at once under the new settings (``{}`` sends what is held now, as one digest)."""
    prefs = DeliveryPrefs.from_mapping(body.model_dump(exclude_none=True))
    _platform, _destination, stored = await ctx.services.delivery.replace_for_user(
        principal.user.id, subscription_id, prefs
    )
    return DeliverySettings(**stored.to_mapping())
