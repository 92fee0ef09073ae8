"""Resolve the configured source to something the Catalyst job can call.

A source is any callable taking no arguments and returning an iterable of signal
mappings (or an awaitable of one). Sync callables run in a worker thread. A source
may also have an async ``commit()`` method, awaited after its items are published
(the jsonl source saves its offset there).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from core.settings import SchedulerSettings
from domain.errors import ConfigError
from storage.database import Database

SourceResult = Iterable[Mapping[str, Any]] | Awaitable[Iterable[Mapping[str, Any]]]
Source = Callable[[], SourceResult]


def _import(module_name: str) -> Any:
    """Import ``module_name``, also from the current folder (where a user keeps their
    ``my_source.py``), which the ``catalyst`` script's ``sys.path`` lacks. The folder
    goes last, so it never shadows an installed package."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        cwd = os.getcwd()
        if exc.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)


def import_callable(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        module = _import(module_name)
    except Exception as exc:  # ImportError, or the module itself failing to import
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
