"""The demo source: made-up but varied catalyst signals, a few per run.

Each run draws fresh ones from the shipped samples (ticker, sector, price range)
and per-catalyst headline templates, with the numbers, type and confidence
varied, so a demo never looks like the same alert resent under a new id.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

#: Headline templates per catalyst; ``{t}`` is the ticker, ``{n}`` a number, ``{m}``
#: an amount in millions, ``{p}`` a percentage.
HEADLINES: dict[str, tuple[str, ...]] = {
    "FDA": (
        "{t} wins FDA approval for its lead oncology drug",
        "FDA grants {t} fast-track designation for a rare-disease therapy",
        "{t} receives FDA clearance for a diagnostic device",
        "FDA sets PDUFA date for {t}'s lead candidate",
    ),
    "M&A": (
        "{t} to be acquired at a {p}% premium",
        "{t} agrees to buy a rival for ${m}M in cash and stock",
        "{t} explores a sale after takeover approach",
    ),
    "EARNINGS": (
        "{t} beats estimates and raises full-year guidance",
        "{t} revenue up {p}% year over year, margins widen",
        "{t} misses on EPS but guides above consensus",
    ),
    "OFFERING": (
        "{t} prices ${m}M registered direct offering",
        "{t} files for a ${m}M at-the-market program",
        "{t} announces public offering of common stock and warrants",
    ),
    "CLINICAL_TRIAL": (
        "{t} phase {n} trial meets its primary endpoint",
        "{t} reports positive interim phase {n} data",
        "{t} completes enrolment in phase {n} study",
    ),
    "CONTRACT": (
        "{t} awarded ${m}M defense contract",
        "{t} wins multi-year ${m}M supply agreement",
        "{t} secures government contract extension worth ${m}M",
    ),
    "SEC_FILING": (
        "{t} 8-K: CFO departure effective immediately",
        "{t} 8-K: board approves ${m}M share repurchase",
        "{t} 10-Q flags going-concern doubt",
    ),
    "PARTNERSHIP": (
        "{t} announces cloud partnership with a hyperscaler",
        "{t} signs co-development deal worth up to ${m}M",
        "{t} and a major retailer expand distribution partnership",
    ),
}
SIGNAL_TYPES = ("BUY", "BUY", "WATCH", "SELL")


def load_samples() -> list[dict[str, Any]]:
    text = resources.files("core.sources").joinpath("demo_signals.json").read_text("utf-8")
    return list(json.loads(text))


class DemoSource:
    """Draws ``batch`` varied signals per run; each gets a fresh id and timestamp."""

    def __init__(self, batch: int = 3, seed: int | None = None) -> None:
        self._batch = batch
        self._random = random.Random(seed)
        self._samples: list[dict[str, Any]] | None = None

    def _one(self, sample: dict[str, Any], now: str) -> dict[str, Any]:
        rnd = self._random
        catalyst = str(sample["catalyst_type"])
        template = rnd.choice(HEADLINES.get(catalyst, (str(sample["headline"]),)))
        headline = template.format(
            t=sample["ticker"],
            n=rnd.randint(1, 3),
            m=rnd.randrange(10, 500, 5),
            p=rnd.randrange(5, 80),
        )
        item = dict(sample)
        item.update(
            signal_id=f"demo-{uuid.uuid4().hex[:16]}",
            timestamp=now,
            source="demo",
            headline=headline,
            signal_type=rnd.choice(SIGNAL_TYPES),
            confidence=round(rnd.uniform(0.45, 0.97), 2),
            price=round(float(sample["price"]) * rnd.uniform(0.8, 1.25), 2),
            rvol=round(rnd.uniform(0.8, 9.0), 1),
        )
        return item

    def __call__(self) -> list[dict[str, Any]]:
        if self._samples is None:
            self._samples = load_samples()
        now = datetime.now(UTC).isoformat()
        picks = self._random.sample(self._samples, min(self._batch, len(self._samples)))
        while len(picks) < self._batch:
            picks.append(self._random.choice(self._samples))
        return [self._one(sample, now) for sample in picks]
