"""Resolve the configured source to something the Catalyst job can call.

A source is any callable taking no arguments and returning an iterable of signal
mappings (or an awaitable of one). Sync callables run in a worker thread. A source
may also have an async ``commit()`` method, awaited after its items are published
(the jsonl source saves its offset there).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from core.errors import ConfigError
from core.settings import SchedulerSettings
from storage.database import Database

SourceResult = Iterable[Mapping[str, Any]] | Awaitable[Iterable[Mapping[str, Any]]]
Source = Callable[[], SourceResult]


def import_callable(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"scheduler.source: cannot import module {module_name!r} ({exc})"
        ) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"scheduler.source: {module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise ConfigError(f"scheduler.source: {path!r} is not callable")
    return target  # type: ignore[no-any-return]


def load_source(settings: SchedulerSettings, db: Database) -> Source:
    if settings.source == "demo":
        from core.sources.demo import DemoSource

        return DemoSource(batch=settings.demo_batch)
    if settings.source == "jsonl":
        from core.sources.jsonl import JsonlSource

        return JsonlSource(settings.jsonl.path, db, max_items=settings.jsonl.max_items_per_run)
    return import_callable(settings.source)
