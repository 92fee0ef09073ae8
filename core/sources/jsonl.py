"""Tail a JSONL file such as Catalyst-Bot's ``data/accepted_items.jsonl``.

Each line is ``{"ts", "ticker", "title", "source", "link", "price",
"cls": {"score", "confidence", "sentiment", "keywords"}}`` (older lines lack
``confidence``; the oldest lack ``source`` and ``title`` too). Only complete lines are read (a
partial last line waits for its newline). The byte offset is stored in the
database after the items are published, so a restart resumes where it left off;
a truncated or replaced file (smaller than the offset, or a new inode) is read
from the start. Signal ids derive from the line's content, so a line read twice
is still published once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from domain.signals import content_id
from storage.database import Database
from storage.models import SourceCursor, utcnow

log = logging.getLogger(__name__)

#: Catalyst by keyword, first match wins. Needles match whole words (and the
#: inflections listed), never inside another word: "treatment" is not "atm",
#: "second quarter" is not "sec", "steps" is not "eps".
_KEYWORD_CATALYSTS = (
    (r"fda|approval|approved|approves|pdufa", "FDA"),
    (
        r"mergers?|acquisitions?|acquir(?:e|es|ed|ing)|buyouts?|takeovers?|m&a",
        "M&A",
    ),
    (r"earnings|revenues?|eps|guidance", "EARNINGS"),
    (r"offerings?|dilution|dilutive|warrants?|atm", "OFFERING"),
    (r"trials?|phase(?: [1-4i]+)?|clinical", "CLINICAL_TRIAL"),
    (r"contracts?|awards?|awarded", "CONTRACT"),
    (r"partnerships?|partner(?:s|ed|ing)?|collaborations?", "PARTNERSHIP"),
    (r"buybacks?|repurchases?", "BUYBACK"),
    (r"8-k|10-q|10-k|sec|filings?", "SEC_FILING"),
)
_WORD_PATTERNS = tuple(
    (re.compile(rf"(?<![a-z0-9])(?:{needles})(?![a-z0-9])"), catalyst)
    for needles, catalyst in _KEYWORD_CATALYSTS
)


def catalyst_from_keywords(keywords: list[str]) -> str:
    lowered = [k.lower() for k in keywords if isinstance(k, str)]
    for pattern, catalyst in _WORD_PATTERNS:
        if any(pattern.search(k) for k in lowered):
            return catalyst
    return "NEWS"


def _confidence(item: dict[str, Any], cls: dict[str, Any]) -> Any:
    """``cls.confidence`` (newer Catalyst-Bot output, 0..1) when present, else the
    unbounded ``cls.score`` clamped to 0..1. Not a number: passed on for validation
    to name the problem."""
    for value in (cls.get("confidence"), item.get("confidence")):
        if value is not None:
            break
    else:
        value = cls.get("score", 0.0)
    if isinstance(value, bool):
        return value
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return value


def map_item(item: dict[str, Any]) -> dict[str, Any]:
    """Catalyst-Bot's accepted item -> a signal mapping (validated later by the publisher)."""
    raw_cls = item.get("cls")
    cls: dict[str, Any] = raw_cls if isinstance(raw_cls, dict) else {}
    sentiment = cls.get("sentiment", 0.0)
    keywords = cls.get("keywords") or []
    if not isinstance(keywords, list):
        keywords = [str(keywords)]
    confidence = _confidence(item, cls)
    try:
        sent = float(sentiment)
        signal_type = "BUY" if sent > 0.05 else "SELL" if sent < -0.05 else "WATCH"
    except (TypeError, ValueError):
        sent, signal_type = 0.0, "WATCH"
    mapped: dict[str, Any] = {
        "signal_id": content_id(
            "cb", item.get("ts"), item.get("ticker"), item.get("link"), item.get("title")
        ),
        "ticker": item.get("ticker"),
        "signal_type": signal_type,
        "confidence": confidence,
        "catalyst_type": catalyst_from_keywords(keywords),
        "source": str(item.get("source") or "catalyst-bot")[:64],
        "headline": (str(item["title"])[:500] if item.get("title") else None),
        "url": item.get("link") or None,
        "metadata": {"sentiment": sent, "keywords": [str(k)[:64] for k in keywords[:20]]},
    }
    if item.get("price") is not None:
        mapped["price"] = item.get("price")
    if item.get("ts"):
        ts = str(item["ts"])
        mapped["timestamp"] = ts.replace("Z", "+00:00") if ts.endswith("Z") else ts
    # A producer id, when the item has one, so a later line can correct the signal;
    # and a status, so a later line (same item, "status": "retracted") withdraws it.
    if isinstance(item.get("signal_id"), str):
        mapped["signal_id"] = item["signal_id"]
    if item.get("status") is not None:
        mapped["status"] = item["status"]
    return mapped


class JsonlSource:
    def __init__(self, path: str | Path, db: Database, *, max_items: int = 500) -> None:
        self.path = Path(path)
        self._db = db
        self._max_items = max_items
        self._name = f"jsonl:{self.path.resolve()}"
        self._pending: dict[str, int] | None = None

    async def _load_state(self) -> dict[str, int]:
        async with self._db.session() as session:
            row = await session.get(SourceCursor, self._name)
            return dict(row.state) if row is not None else {"offset": 0, "inode": 0}

    async def commit(self) -> None:
        """Persist the offset reached by the last call (after its items were published)."""
        if self._pending is None:
            return
        async with self._db.transaction() as session:
            row = await session.get(SourceCursor, self._name)
            if row is None:
                row = SourceCursor(name=self._name, state=self._pending)
            else:
                row.state = dict(self._pending)
                row.updated_at = utcnow()
            session.add(row)
        self._pending = None

    def _read(self, offset: int, inode: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            log.info("jsonl source: %s does not exist yet", self.path)
            return [], {"offset": offset, "inode": inode}
        if stat.st_ino != inode or stat.st_size < offset:
            if offset:
                log.warning(
                    "jsonl source: %s was truncated or replaced; reading from start", self.path
                )
            offset = 0
        items: list[dict[str, Any]] = []
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            while len(items) < self._max_items:
                line = fh.readline()
                if not line or not line.endswith(b"\n"):
                    break  # end of file, or a partial line still being written
                offset += len(line)
                text = line.strip()
                if not text:
                    continue
                try:
                    item = json.loads(text)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    log.warning(
                        "jsonl source: skipping a malformed line at byte %d: %s", offset, exc
                    )
                    continue
                if not isinstance(item, dict):
                    log.warning(
                        "jsonl source: skipping a line that is not an object at byte %d", offset
                    )
                    continue
                items.append(map_item(item))
        return items, {"offset": offset, "inode": stat.st_ino}

    async def __call__(self) -> list[dict[str, Any]]:
        state = await self._load_state()
        items, new_state = await asyncio.to_thread(
            self._read, int(state.get("offset", 0)), int(state.get("inode", 0))
        )
        self._pending = new_state
        return items
