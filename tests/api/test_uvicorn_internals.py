"""api/uvicorn_internals.py reaches below uvicorn's public API. These fail loudly, naming
uvicorn, its version and what moved, when an upgrade changes anything it relies on:
then re-read that module against the new uvicorn, and only then widen
``CHECKED_VERSIONS`` and pyproject's pin together. (The HTTP edge's hooks are also
checked in detail by tests/security/test_edge_uvicorn_internals.py.)"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from pathlib import Path

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import Server, ServerState

from api import uvicorn_internals as internals

ROOT = Path(__file__).resolve().parents[2]
VERSION = uvicorn.__version__
CLASSES: dict[str, type] = {
    "Server": Server,
    "WebSocketsSansIOProtocol": WebSocketsSansIOProtocol,
    "H11Protocol": H11Protocol,
    "HttpToolsProtocol": HttpToolsProtocol,
}


def _moved(what: str) -> str:
    return (
        f"uvicorn {VERSION}: {what}. api/uvicorn_internals.py was written against uvicorn "
        f"{'/'.join('.'.join(map(str, v)) for v in internals.CHECKED_VERSIONS)}; re-read it "
        "against this version before changing the pin"
    )


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_uvicorn_is_a_version_the_module_was_checked_against() -> None:
    major_minor = tuple(int(p) for p in re.findall(r"\d+", VERSION)[:2])
    assert major_minor in internals.CHECKED_VERSIONS, _moved("not a checked version")


def test_pyproject_pins_uvicorn_to_the_checked_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if d.startswith("uvicorn")]
    low, high = internals.CHECKED_VERSIONS[0], internals.CHECKED_VERSIONS[-1]
    wanted = f">={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"
    assert pin.replace(" ", "").endswith(wanted), (
        f"pyproject pins {pin!r}; api/uvicorn_internals.py was checked against {wanted}"
    )


@pytest.mark.parametrize(("cls", "name"), internals.UVICORN_INTERNALS)
def test_every_overridden_or_called_method_exists(cls: str, name: str) -> None:
    assert callable(getattr(CLASSES[cls], name, None)), _moved(f"{cls}.{name} is gone")


def test_serve_enters_capture_signals_and_takes_sockets() -> None:
    serve = _source(Server.serve)
    assert "with self.capture_signals():" in serve, _moved(
        "Server.serve no longer installs its signal handlers through capture_signals"
    )
    assert list(inspect.signature(Server.serve).parameters) == ["self", "sockets"], _moved(
        "Server.serve(sockets=...) changed"
    )
    assert inspect.isgeneratorfunction(inspect.unwrap(Server.capture_signals)), _moved(
        "Server.capture_signals is no longer a context-manager generator"
    )
    assert "self.started = True" in _source(Server.startup), _moved("Server.started is not set")


def test_embedded_server_installs_no_signal_handler() -> None:
    import signal

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = internals.EmbeddedServer(Config(app=lambda *a: None))
    with server.capture_signals():
        assert {sig: signal.getsignal(sig) for sig in before} == before


def _ws_protocol(loop: asyncio.AbstractEventLoop) -> WebSocketsSansIOProtocol:
    async def app(scope: object, receive: object, send: object) -> None:
        return None

    config = Config(app, ws="websockets-sansio", ws_per_message_deflate=False)
    config.load()
    return internals.FanoutProtocol(
        config=config, server_state=ServerState(), app_state={}, _loop=loop
    )


def test_websocket_protocol_has_what_the_frame_shortcut_reads() -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol = _ws_protocol(loop)
    finally:
        loop.close()
    for name in internals.UVICORN_WS_INSTANCE_ATTRIBUTES:
        assert hasattr(protocol, name), _moved(f"WebSocketsSansIOProtocol has no {name!r}")
    assert protocol.close_timeout == internals.CLOSE_TIMEOUT
    for name in ("state", "extensions", "expect_continuation_frame"):
        assert hasattr(protocol.conn, name), f"websockets' ServerProtocol has no {name!r}"


def test_websocket_protocol_sends_what_the_frame_shortcut_writes() -> None:
    """write_frame must write exactly what uvicorn's own send writes for a text message."""
    send = _source(WebSocketsSansIOProtocol.send)
    for needed in (
        "await self.writable.wait()",
        'message["type"] == "websocket.send"',
        "self.conn.send_text(",
        "self.transport.write(",
        "self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)",
    ):
        assert needed in send, _moved(f"WebSocketsSansIOProtocol.send no longer has {needed!r}")


def test_websocket_scope_is_built_before_the_app_runs() -> None:
    """handle_connect builds the scope and creates the app's task: the extensions added
    right after it are seen by the app."""
    source = _source(WebSocketsSansIOProtocol.handle_connect)
    for needed in (
        "self.response = ",
        "self.scope",
        '"extensions": {',
        "create_task(self.run_asgi())",
    ):
        assert needed in source, _moved(f"handle_connect no longer has {needed!r}")
    assert "self.app(self.scope, self.receive, self.send)" in _source(
        WebSocketsSansIOProtocol.run_asgi
    ), _moved("the app no longer gets the protocol's bound send (FastSendMiddleware finds it so)")


def test_auto_websocket_protocol_is_the_sans_io_one() -> None:
    """``uvicorn --ws auto`` (a bare ``uvicorn --factory``) must pick the protocol
    FastSendMiddleware recognises, or the fan-out's shortcut is silently off."""
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    assert AutoWebSocketsProtocol is WebSocketsSansIOProtocol, _moved(
        "--ws auto no longer picks WebSocketsSansIOProtocol"
    )


async def test_frame_shortcut_writes_only_when_uvicorn_could() -> None:
    protocol = _ws_protocol(asyncio.get_running_loop())

    class Transport:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            self.written.append(data)

    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    assert not protocol.write_frame(b"x"), "written before the handshake"
    protocol.handshake_complete = True
    from websockets.protocol import State

    protocol.conn.state = State.OPEN
    assert protocol.write_frame(b"frame")
    protocol.writable.clear()
    assert not protocol.write_frame(b"held back"), "written under back pressure"
    protocol.writable.set()
    protocol.close_sent = True
    assert not protocol.write_frame(b"after close")
    assert transport.written == [b"frame"]
