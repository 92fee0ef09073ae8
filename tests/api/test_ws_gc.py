"""api.ws_gc.StormGC: a connect storm postpones full garbage collections only, only
while it lasts, and never leaves thresholds it did not set (correctness, no timing)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import websockets

from api.ws_gc import POSTPONED, StormGC
from tests.api.conftest import HubFactory, recv_type


@pytest.fixture(autouse=True)
def _gc_state() -> Iterator[tuple[int, int, int]]:
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    yield threshold
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()


async def _until(predicate: object, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never came true"
        await asyncio.sleep(0.005)


async def test_a_burst_postpones_only_the_full_collection(
    _gc_state: tuple[int, int, int],
) -> None:
    t0, t1, t2 = _gc_state
    storm = StormGC(burst=5, window=3600)
    for _ in range(4):
        storm.connected()
    assert not storm.active
    assert gc.get_threshold() == (t0, t1, t2)
    storm.connected()
    assert storm.active
    # The young generations are still collected as before.
    assert gc.get_threshold() == (t0, t1, POSTPONED)
    storm.restore()
    assert not storm.active
    assert gc.get_threshold() == (t0, t1, t2)
    storm.restore()  # idempotent
    assert gc.get_threshold() == (t0, t1, t2)


async def test_a_quiet_window_ends_the_storm(_gc_state: tuple[int, int, int]) -> None:
    storm = StormGC(burst=3, window=0.01)
    for _ in range(3):
        storm.connected()
    assert storm.active
    await _until(lambda: not storm.active)
    assert gc.get_threshold() == _gc_state


async def test_a_storm_never_postpones_longer_than_max_seconds(
    _gc_state: tuple[int, int, int],
) -> None:
    storm = StormGC(burst=1, window=0.01, max_seconds=0.0, cooldown=3600)
    storm.connected()
    assert storm.active
    await _until(lambda: not storm.active)
    assert gc.get_threshold() == _gc_state
    for _ in range(10):  # cooling down: full collections keep running
        storm.connected()
    assert not storm.active
    assert gc.get_threshold() == _gc_state


async def test_thresholds_set_by_someone_else_meanwhile_stand() -> None:
    storm = StormGC(burst=1, window=3600)
    storm.connected()
    assert storm.active
    gc.set_threshold(500, 5, 5)
    storm.restore()
    assert gc.get_threshold() == (500, 5, 5)


async def test_disabled_collection_is_left_alone(_gc_state: tuple[int, int, int]) -> None:
    gc.disable()
    storm = StormGC(burst=1, window=3600)
    storm.connected()
    assert not storm.active
    assert gc.get_threshold() == _gc_state
    assert not gc.isenabled()


async def test_the_manager_notes_each_connect_and_restores_on_stop(
    make_hub: HubFactory, _gc_state: tuple[int, int, int]
) -> None:
    hub = await make_hub()
    manager = hub.server.manager
    manager.storm_gc = StormGC(burst=3, window=3600)
    _user, key = await hub.user("gc", ("read",))
    for _ in range(3):
        ws = await websockets.connect(f"{hub.ws_url}?token={key}", open_timeout=10)
        hub.sockets.append(ws)
        await recv_type(ws, "welcome")
    assert manager.storm_gc.active
    assert gc.get_threshold()[2] == POSTPONED
    await manager.stop()
    assert not manager.storm_gc.active
    assert gc.get_threshold() == _gc_state
