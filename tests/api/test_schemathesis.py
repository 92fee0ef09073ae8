"""Schemathesis fuzzes every operation of the OpenAPI schema: no 5xx, ever.

The server runs in its own thread and event loop (Schemathesis drives requests
synchronously); it is the real uvicorn app on 127.0.0.1:0 with a key holding
every scope, so authenticated paths are exercised past the auth check.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api import ApiServer, create_app
from tests.conftest import _context, settings_for


class ThreadedHub:
    """A hub and its API server on a private loop in a daemon thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = ""
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="schemathesis-hub", daemon=True)

    def __enter__(self) -> ThreadedHub:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the API did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        try:
            ctx = await _context(
                settings_for(self.folder, limits={"rest_requests_per_minute": 1_000_000})
            )
            user = await ctx.services.accounts.create_user("fuzzer")
            self.key, _ = await ctx.auth.create_key(
                user.id, ("read", "feedback", "publish", "admin")
            )
            await ctx.publisher.publish(
                {"signal_id": "known-1", "ticker": "ABCD", "confidence": 0.9}
            )
            server = ApiServer(create_app(ctx), "127.0.0.1", 0)
            await server.start()
            self.port = server.port
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()
            await ctx.dispatcher.stop()
            await ctx.db.dispose()


@pytest.fixture(scope="module")
def threaded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    with ThreadedHub(tmp_path_factory.mktemp("schemathesis")) as hub:
        yield hub


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(threaded_hub: ThreadedHub, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{threaded_hub.port}/openapi.json")
    headers = {"Authorization": f"Bearer {threaded_hub.key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any) -> None:
            response = case.call(headers=headers, timeout=10)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            exercise()
        except Unsatisfiable:
            continue  # no parameters to break: nothing negative to send
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
