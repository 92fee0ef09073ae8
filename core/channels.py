"""The Channel contract: what a platform adapter implements so the dispatcher can deliver.

A Channel sends one rendered signal to one destination. It does not retry, sleep
or queue: the dispatcher owns retries, backoff, expiry and rate limiting, so a
Channel only has to

* say which rate limits apply to a destination (:meth:`Channel.limits_for`),
* send once (:meth:`Channel.send`), and
* classify a failure by raising one of the :class:`DeliveryError` subclasses below.

Any other exception from ``send`` is treated as :class:`TransientError`.

Destinations are opaque strings chosen by the platform adapter (a Telegram chat
id, ``dm:<user id>`` or ``channel:<id>`` on Discord, ...). ``platform`` names the
channel in subscriptions and deliveries.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from domain.delivery_prefs import HoldReason, age_text
from domain.signals import Signal


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_calls`` sends per ``period`` seconds within ``scope``.

    ``scope`` is a key shared by every destination that the limit covers:
    ``"global"`` for a per-bot limit, ``"chat:42"`` for a per-chat one.
    """

    scope: str
    max_calls: int
    period: float


@dataclass(frozen=True, slots=True)
class Alert:
    """One delivery to perform: a signal for a subscription's destination."""

    delivery_id: int
    subscription_id: int
    destination: str
    signal: Signal
    #: One line from the outcome ledger for this signal's catalyst and confidence
    #: (core/hints.py); None until enough outcomes are reported.
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One held alert in a digest."""

    delivery_id: int
    signal: Signal
    #: When it matched (the outbox row's creation): the digest shows its age.
    matched_at: datetime
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    """Held alerts for one destination, sent as one message (or, past the
    platform's length limit, as consecutive parts: see :meth:`Channel.digest_parts`).

    ``items`` are newest first. ``omitted`` counts held alerts left out for being
    older than the digest TTL; the first part says how many."""

    subscription_id: int
    destination: str
    items: tuple[DigestItem, ...]
    reason: HoldReason
    now: datetime
    omitted: int = 0
    part: int = 1
    parts: int = 1

    def age_of(self, item: DigestItem) -> str:
        return age_text((self.now - item.matched_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Edit:
    """Change a message already delivered, because its signal was corrected or
    retracted (``signal.status``, ``signal.revision``).

    ``digest`` is set when the message was a digest part: the part again, from its
    items' current state (a retracted item shows as retracted), with ``now`` the
    time it was first sent, so the ages read as they did."""

    delivery_id: int
    subscription_id: int
    destination: str
    message_id: str
    signal: Signal
    digest: Digest | None = None
    #: The outcome ledger's line, as on the alert (None for a retracted signal).
    hint: str | None = None


class DeliveryError(Exception):
    """Base class for classified send failures."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(DeliveryError):
    """Rate limited by the platform: nothing in ``scope`` may be sent for ``retry_after`` s.

    ``scope`` is a :class:`RateLimit` scope key (``"global"`` blocks the whole
    channel; ``"chat:42"`` only that chat). Not counted as a failed attempt.
    """

    def __init__(self, retry_after: float, scope: str = "global", reason: str = "") -> None:
        super().__init__(reason or f"rate limited for {retry_after:g}s ({scope})")
        self.retry_after = max(0.0, float(retry_after))
        self.scope = scope


class TransientError(DeliveryError):
    """Network error, 5xx, timeout: retry with backoff."""


class DestinationGone(DeliveryError):
    """The destination no longer exists or blocked the bot: deactivate the subscription."""


class DestinationMoved(DeliveryError):
    """The destination has a new id (a Telegram group became a supergroup): move and resend."""

    def __init__(self, new_destination: str, reason: str = "") -> None:
        super().__init__(reason or f"moved to {new_destination}")
        self.new_destination = new_destination


class PermanentError(DeliveryError):
    """This message can never be delivered (e.g. rejected payload): give up on it."""


class Channel(ABC):
    """A delivery channel for one platform."""

    platform: ClassVar[str]

    @abstractmethod
    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        """The rate limits a send to ``destination`` must respect, broadest first."""

    @abstractmethod
    async def send(self, alert: Alert) -> str | None:
        """Deliver once or raise a :class:`DeliveryError` subclass. Returns the
        platform's id of the message (kept to edit it later), if it has one."""

    def digest_parts(self, digest: Digest) -> list[Digest]:
        """Split a digest into parts that each fit one platform message, in order
        (newest items first), numbering them ``part``/``parts``. An item is never
        split across parts."""
        return [digest]

    async def send_digest(self, digest: Digest) -> str | None:
        """Deliver one digest part once, or raise a :class:`DeliveryError` subclass.
        Returns the platform's message id, if it has one."""
        raise PermanentError(f"{self.platform} does not send digests")

    async def edit(self, edit: Edit) -> None:
        """Edit a delivered message in place once, or raise a :class:`DeliveryError`
        subclass. A message that is already as asked counts as done; one that no
        longer exists is a :class:`PermanentError`."""
        raise PermanentError(f"{self.platform} cannot edit messages")


class ConsoleChannel(Channel):
    """Writes alerts to the log: the embedded default shows deliveries with no chat platform."""

    platform: ClassVar[str] = "console"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("catalyst.console")

    def limits_for(self, destination: str) -> Sequence[RateLimit]:
        return (RateLimit("global", 50, 1.0),)

    async def send(self, alert: Alert) -> str | None:
        s = alert.signal
        price = f" @ ${s.price:g}" if s.price is not None else ""
        rvol = f" rvol {s.rvol:g}" if s.rvol is not None else ""
        headline = f" | {s.headline}" if s.headline else ""
        self._log.info(
            "ALERT -> %s | %s %s %s %.0f%%%s%s%s [%s]",
            alert.destination,
            s.signal_type.value,
            s.ticker,
            s.catalyst_type,
            s.confidence * 100,
            price,
            rvol,
            headline,
            s.signal_id,
        )
        return None

    async def send_digest(self, digest: Digest) -> str | None:
        extra = f" ({digest.omitted} older left out)" if digest.omitted else ""
        self._log.info(
            "DIGEST -> %s | %d alerts held (%s)%s: %s",
            digest.destination,
            len(digest.items),
            digest.reason.value,
            extra,
            "; ".join(
                f"{i.signal.ticker} {i.signal.catalyst_type} {digest.age_of(i)}"
                for i in digest.items
            ),
        )
        return None
