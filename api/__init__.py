"""HTTP API and WebSocket stream: ``create_app(ctx)`` and ``ApiServer``."""

from api.app import create_app
from api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
