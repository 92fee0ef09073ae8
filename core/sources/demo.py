"""The demo source: sample catalyst signals shipped with the package, a few per run."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any


def load_samples() -> list[dict[str, Any]]:
    text = resources.files("core.sources").joinpath("demo_signals.json").read_text("utf-8")
    return list(json.loads(text))


class DemoSource:
    """Cycles through the samples; each emitted signal gets a fresh id and timestamp."""

    def __init__(self, batch: int = 3) -> None:
        self._batch = batch
        self._samples: list[dict[str, Any]] | None = None
        self._cycle: itertools.cycle[dict[str, Any]] | None = None

    def __call__(self) -> list[dict[str, Any]]:
        if self._cycle is None:
            self._samples = load_samples()
            self._cycle = itertools.cycle(self._samples)
        now = datetime.now(UTC).isoformat()
        out = []
        for sample in itertools.islice(self._cycle, self._batch):
            item = dict(sample)
            item["signal_id"] = f"demo-{uuid.uuid4().hex[:16]}"
            item["timestamp"] = now
            item["source"] = "demo"
            out.append(item)
        return out
