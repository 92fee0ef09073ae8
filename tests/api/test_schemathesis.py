"""Schemathesis fuzzes every operation of the OpenAPI schema: no 5xx, ever.

The server runs in its own thread and event loop (Schemathesis drives requests
synchronously); it is the real uvicorn app on 127.0.0.1:0 with a key holding
every scope, so authenticated paths are exercised past the auth check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from core.context import HubContext
from tests.conftest import settings_for
from tests.threaded_hub import ThreadedHub


async def _prepare(ctx: HubContext) -> str:
    user = await ctx.services.accounts.create_user("fuzzer", is_admin=True)
    key, _ = await ctx.auth.create_key(user.id, ("read", "feedback", "publish", "admin"))
    await ctx.publisher.publish({"signal_id": "known-1", "ticker": "ABCD", "confidence": 0.9})
    return key


@pytest.fixture(scope="module")
def threaded_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    folder = tmp_path_factory.mktemp("schemathesis")
    hub_settings = settings_for(folder, limits={"rest_requests_per_minute": 1_000_000})
    with ThreadedHub(hub_settings, _prepare, "schemathesis-hub") as hub:
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
