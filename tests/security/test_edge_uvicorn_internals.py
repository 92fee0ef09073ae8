"""api/edge_protocol.py subclasses uvicorn's HTTP protocols. This fails loudly, naming
what moved, when a uvicorn upgrade changes one of the internals it relies on;
then re-read api/edge_protocol.py against the new uvicorn before touching the pin."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.server import Server, ServerState

from api import edge_protocol
from api.edge_protocol import (
    UVICORN_INSTANCE_ATTRIBUTES,
    UVICORN_INTERNALS,
    EdgeGuard,
    EdgeH11Protocol,
    EdgeHttpToolsProtocol,
    protocol_factory,
)

CLASSES = {
    "H11Protocol": h11_impl.H11Protocol,
    "HttpToolsProtocol": httptools_impl.HttpToolsProtocol,
}
MODULES = {"H11Protocol": h11_impl, "HttpToolsProtocol": httptools_impl}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_uvicorn_is_a_version_the_module_was_checked_against() -> None:
    assert (0, 54) <= _version(uvicorn.__version__) < (0, 60), (
        f"uvicorn {uvicorn.__version__}: api/edge_protocol.py was written against 0.54; "
        "re-check it, then widen this range and pyproject's pin together"
    )
    assert "0.54" in (edge_protocol.__doc__ or "")


@pytest.mark.parametrize(("cls", "name"), UVICORN_INTERNALS)
def test_every_overridden_or_used_method_exists(cls: str, name: str) -> None:
    assert callable(getattr(CLASSES[cls], name, None)), f"uvicorn's {cls}.{name} is gone"


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_constructor_takes_what_the_server_passes(cls: str) -> None:
    params = inspect.signature(CLASSES[cls].__init__).parameters
    assert list(params)[:5] == ["self", "config", "server_state", "app_state", "_loop"], params
    startup = inspect.getsource(Server.startup)
    for needed in (
        "config.http_protocol_class(",
        "config=",
        "server_state=",
        "app_state=",
        "_loop=",
    ):
        assert needed in startup, f"Server.startup no longer builds protocols with {needed}"
    # A non-string Config(http=...) is used as the protocol factory as is.
    assert "self.http_protocol_class = self.http" in inspect.getsource(Config.load)


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_instances_have_the_attributes_read(cls: str) -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        return None

    loop = asyncio.new_event_loop()
    try:
        config = Config(app, http=cls.removesuffix("Protocol").lower())
        protocol = CLASSES[cls](config=config, server_state=ServerState(), app_state={}, _loop=loop)
    finally:
        loop.close()
    for name in UVICORN_INSTANCE_ATTRIBUTES:
        assert hasattr(protocol, name), f"uvicorn's {cls} instances have no {name!r}"
    assert protocol.cycle is None  # set per request head; response_complete on it


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_request_cycles_are_what_the_deadline_watches(cls: str) -> None:
    module = MODULES[cls]
    cycle_init = inspect.getsource(module.RequestResponseCycle.__init__)
    assert "self.response_complete = False" in cycle_init
    assert "self.on_response = on_response" in cycle_init
    assert "self.on_response()" in inspect.getsource(module.RequestResponseCycle.send)
    head = "handle_events" if cls == "H11Protocol" else "on_headers_complete"
    assert "self.cycle = RequestResponseCycle(" in inspect.getsource(getattr(CLASSES[cls], head))
    assert "on_response=self.on_response_complete" in inspect.getsource(CLASSES[cls])
    # An upgrade hands the transport to the WebSocket protocol (counted by transport).
    assert "self.transport.set_protocol(protocol)" in inspect.getsource(
        CLASSES[cls].handle_websocket_upgrade
    )


def test_httptools_reports_the_head_of_an_upgrade_too() -> None:
    source = inspect.getsource(httptools_impl.HttpToolsProtocol.on_headers_complete)
    assert "should_upgrade()" in source  # the callback runs, then returns early


def test_factory_builds_the_subclasses() -> None:
    guard = EdgeGuard()
    assert protocol_factory(guard, "h11").func is EdgeH11Protocol  # type: ignore[attr-defined]
    assert protocol_factory(guard).func is EdgeHttpToolsProtocol  # type: ignore[attr-defined]
