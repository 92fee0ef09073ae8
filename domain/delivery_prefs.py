"""When a destination wants its alerts: quiet hours, digests and a cap.

A destination's preferences, in the words a trader types::

    quiet 22:00-07:00 America/New_York     quiet off
    digest 15m                             digest off
    max 10/h                               max off

:func:`plan` decides, for an alert about to go out at ``now``, whether it goes now
or is held until a due time (and why). Held alerts wait in the outbox and go out
together as one digest when they come due. Pure: no clock, no I/O.

* **Quiet hours** (in the given time zone, wrapping midnight when the end is
  earlier than the start): an alert is held until they end.
* **Digest** every N minutes: alerts are held until the next multiple of the
  period (counted from midnight UTC, so ``digest 1h`` comes on the hour); a due
  time that falls in quiet hours moves to their end.
* **Cap** ``max N/period``: at most N messages in any rolling period. A match
  beyond it is held until the oldest message in the window leaves it, and then
  arrives in a digest with everything else held by then. A digest counts as one
  message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidInput

MIN_DIGEST = timedelta(minutes=5)
MAX_DIGEST = timedelta(hours=24)
MAX_CAP = 1000
MIN_CAP_PERIOD = timedelta(minutes=1)
MAX_CAP_PERIOD = timedelta(days=1)

_DURATION = re.compile(r"^(?:(\d{1,3})d)?(?:(\d{1,3})h)?(?:(\d{1,4})m)?$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class HoldReason(StrEnum):
    QUIET = "quiet"
    DIGEST = "digest"
    CAP = "cap"


def parse_duration(text: str, *, field: str) -> timedelta:
    """``15m``, ``1h``, ``1h30m``, ``1d``; a bare ``h``/``d`` means one of it (``10/h``)."""
    raw = text.strip().lower()
    if raw in ("h", "d", "m"):
        raw = "1" + raw
    match = _DURATION.match(raw)
    if not raw or match is None:
        raise InvalidInput(
            f"{field}: {text!r} is not a duration; use minutes, hours or days like 15m, 1h, 1d",
            field=field,
        )
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def duration_text(value: timedelta) -> str:
    total = int(value.total_seconds()) // 60
    days, rest = divmod(total, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return "".join(parts) or "0m"


def age_text(seconds: float) -> str:
    """How long ago, compactly: ``just now``, ``4m ago``, ``2h 5m ago``, ``1d 3h ago``."""
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes}m ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m ago" if minutes else f"{hours}h ago"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h ago" if hours else f"{days}d ago"


def _parse_clock(text: str, field: str) -> time:
    match = _CLOCK.match(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise InvalidInput(f"{field}: {text!r} is not a time of day like 22:00", field=field)
    return time(int(match.group(1)), int(match.group(2)))


def _zone(name: str, field: str) -> ZoneInfo:
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        raise InvalidInput(f"{field}: {name!r} is not a time zone", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{field}: unknown time zone {name!r}; use an IANA name like America/New_York or UTC",
            field=field,
        ) from None


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    tz: str = "UTC"

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``22:00-07:00 America/New_York`` (the zone defaults to UTC)."""
        parts = text.split()
        if not parts or len(parts) > 2 or parts[0].count("-") != 1:
            raise InvalidInput(
                "quiet: use a range and a time zone, like 22:00-07:00 America/New_York",
                field="quiet",
            )
        start_text, end_text = parts[0].split("-")
        start = _parse_clock(start_text, "quiet")
        end = _parse_clock(end_text, "quiet")
        if start == end:
            raise InvalidInput("quiet: the start and end must differ", field="quiet")
        tz = parts[1] if len(parts) == 2 else "UTC"
        _zone(tz, "quiet")
        return cls(start, end, tz)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def text(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz}"

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, moment: datetime) -> datetime:
        """The first end of quiet hours after ``moment`` (as a UTC datetime).

        Computed on the local wall clock, so a daylight-saving change moves the end
        with the zone; an end that falls in a skipped hour comes at the next valid
        minute."""
        zone = self.zone
        local = moment.astimezone(zone)
        for days in range(3):
            day = local.date() + timedelta(days=days)
            candidate = datetime.combine(day, self.end, tzinfo=zone)
            # A wall time in a DST gap does not exist; normalise through UTC.
            candidate = candidate.astimezone(UTC)
            if candidate > moment:
                return candidate
        return moment + timedelta(days=1)  # pragma: no cover - unreachable


@dataclass(frozen=True, slots=True)
class Cap:
    count: int
    period: timedelta

    @classmethod
    def parse(cls, text: str) -> Cap:
        """``10/h``, ``50/d``, ``3/15m``."""
        count_text, sep, period_text = text.strip().partition("/")
        if not sep or not count_text.isdigit():
            raise InvalidInput("max: use a count per period, like 10/h or 50/d", field="max")
        count = int(count_text)
        if not 1 <= count <= MAX_CAP:
            raise InvalidInput(f"max: the count must be 1-{MAX_CAP}", field="max")
        period = parse_duration(period_text, field="max")
        if not MIN_CAP_PERIOD <= period <= MAX_CAP_PERIOD:
            raise InvalidInput("max: the period must be 1m-1d", field="max")
        return cls(count, period)

    def text(self) -> str:
        unit = {timedelta(hours=1): "h", timedelta(days=1): "d"}.get(self.period)
        return f"{self.count}/{unit or duration_text(self.period)}"


@dataclass(frozen=True, slots=True)
class Hold:
    until: datetime
    reason: HoldReason


@dataclass(frozen=True, slots=True)
class DeliveryPrefs:
    quiet: QuietHours | None = None
    digest: timedelta | None = None
    cap: Cap | None = None

    @property
    def empty(self) -> bool:
        return self.quiet is None and self.digest is None and self.cap is None

    # ---- the words a trader types -----------------------------------------
    def with_setting(self, name: str, value: str) -> DeliveryPrefs:
        """Apply one setting: ``quiet``/``digest``/``max`` and its value, ``off`` clears."""
        key = name.strip().lower()
        raw = value.strip()
        off = raw.lower() in ("off", "none", "")
        if key == "quiet":
            return replace(self, quiet=None if off else QuietHours.parse(raw))
        if key == "digest":
            if off:
                return replace(self, digest=None)
            period = parse_duration(raw, field="digest")
            if not MIN_DIGEST <= period <= MAX_DIGEST:
                raise InvalidInput("digest: the period must be 5m-24h", field="digest")
            return replace(self, digest=period)
        if key in ("max", "cap"):
            return replace(self, cap=None if off else Cap.parse(raw))
        raise InvalidInput(f"unknown setting {name!r}; use quiet, digest or max", field="setting")

    def parse_line(self, text: str) -> DeliveryPrefs:
        """``quiet 22:00-07:00 America/New_York`` or ``digest 15m`` or ``max 10/h``."""
        name, _, value = text.strip().partition(" ")
        if not value.strip():
            raise InvalidInput(
                f"{name or 'setting'}: give a value or 'off' "
                "(quiet 22:00-07:00 America/New_York, digest 15m, max 10/h)",
                field=name or "setting",
            )
        return self.with_setting(name, value)

    def lines(self) -> list[str]:
        """One line per setting, for /delivery; empty when everything goes at once."""
        out = []
        if self.quiet is not None:
            out.append(f"quiet {self.quiet.text()}")
        if self.digest is not None:
            out.append(f"digest {duration_text(self.digest)}")
        if self.cap is not None:
            out.append(f"max {self.cap.text()}")
        return out

    def text(self) -> str:
        return " · ".join(self.lines()) or "every alert at once"

    # ---- storage -----------------------------------------------------------
    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.quiet is not None:
            out["quiet"] = self.quiet.text()
        if self.digest is not None:
            out["digest"] = duration_text(self.digest)
        if self.cap is not None:
            out["max"] = self.cap.text()
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> DeliveryPrefs:
        """From stored or JSON form: ``{"quiet": "22:00-07:00 UTC", "digest": "15m",
        "max": "10/h"}``; a missing or null key is off."""
        prefs = cls()
        if not data:
            return prefs
        if not isinstance(data, Mapping):
            raise InvalidInput("delivery settings must be an object", field="delivery")
        unknown = set(data) - {"quiet", "digest", "max"}
        if unknown:
            raise InvalidInput(
                f"unknown delivery setting {sorted(unknown)[0]!r}; use quiet, digest or max",
                field=sorted(unknown)[0],
            )
        for key in ("quiet", "digest", "max"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > 100:
                raise InvalidInput(f"{key}: must be a string or null", field=key)
            prefs = prefs.with_setting(key, value)
        return prefs

    @classmethod
    def stored(cls, data: Mapping[str, Any] | None) -> DeliveryPrefs:
        """The settings as stored; a row that no longer parses (a zone gone from the
        tz database) counts as none rather than stopping deliveries."""
        try:
            return cls.from_mapping(data)
        except InvalidInput:
            return cls()

    # ---- the decision ------------------------------------------------------
    def plan(
        self, now: datetime, recent_sends: Sequence[datetime], *, batching: bool = True
    ) -> Hold | None:
        """None to send now, or how long to hold a message and why.

        ``recent_sends``: when this destination's recent messages went (a digest
        counts once); only those inside the cap's window matter. ``batching`` is
        False for a digest that has come due: it is not held for the next period,
        only for quiet hours and the cap.
        """
        if self.quiet is not None and self.quiet.contains(now):
            return Hold(self.quiet.ends_after(now), HoldReason.QUIET)
        if batching and self.digest is not None:
            return Hold(self._after_quiet(next_boundary(now, self.digest)), HoldReason.DIGEST)
        if self.cap is not None:
            window_start = now - self.cap.period
            inside = sorted(t for t in recent_sends if t > window_start)
            if len(inside) >= self.cap.count:
                # Room comes when enough of the oldest leave the window.
                frees = inside[len(inside) - self.cap.count] + self.cap.period
                return Hold(self._after_quiet(max(frees, now)), HoldReason.CAP)
        return None

    def _after_quiet(self, moment: datetime) -> datetime:
        if self.quiet is not None and self.quiet.contains(moment):
            return self.quiet.ends_after(moment)
        return moment


def next_boundary(now: datetime, period: timedelta) -> datetime:
    """The next multiple of ``period`` after ``now``, counted from the UTC epoch."""
    elapsed = now - _EPOCH
    steps = elapsed // period + 1
    return _EPOCH + steps * period
