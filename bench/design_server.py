"""A runnable copy of the design document's in-memory server: the benchmarks' baseline.

    .venv/bin/python bench/design_server.py --port 8100 --signals 1000 --api-key K
    .venv/bin/python bench/design_server.py --port 8100 --users 2000 --api-key K

This is not product code. It copies ``../shared/design-document.md`` (``main.py``,
``websocket_manager.py``, ``signal_publisher.py``, ``auth.py``, ``config.py``) into
one file, as written, flaws included: everything lives in memory, ``GET
/api/v1/signals`` filters a Python list (parsing every timestamp for ``since``) and
validates the result through ``response_model=List[Signal]``; the WebSocket manager
keys connections by user id (a second connection with the same key replaces the
first), serializes the signal per client and awaits each send in turn
(``broadcast_signal``), and every connection runs its own 30 s heartbeat task.

Where the document leaves a gap or cannot run, the smallest fill-in:

* ``models.py`` is not in the document: ``Signal`` holds the fields of its mock
  signal (plus optional ``headline``/``url``, so the bench can give both servers
  the same content); ``UserConfig``/``SignalFilter``/``TradeOutcome`` are minimal.
* ``rate_limiter.py`` is not in the document: connections per IP and messages per
  client per second, with the config's names. The per-IP cap defaults to
  unlimited here (``--max-connections-per-ip``; the config says 300) because a
  connect storm comes from one host.
* ``verify_token``: the document's ``create_token`` puts an ISO string in ``exp``,
  which PyJWT rejects, and its client and test section send the API key as the
  token (``?token=<api key>``). So a token that is not a valid JWT is looked up
  as an API key, which is what the document's own client needs to connect.
* Ingest: the document publishes from ``signal_broadcast_loop`` (a mock runner
  every 300 s, off by default here: ``--catalyst-loop``). For fan-out benches,
  ``POST /api/v1/signals`` (API key) fills in defaults and awaits
  ``publish_signal``, the document's publish path, then answers.
* ``--users N`` adds keys ``{api_key}-{i}`` for users ``user_{i}`` (i = 1..N-1;
  ``{api_key}`` itself is ``user_0``), because one key means one connection.
* uvicorn runs with the access log off (the hub's default too), on whatever loop
  and HTTP parser uvicorn picks (uvloop and httptools when installed).

Importable: :func:`create_app` returns a fresh app; nothing runs at import time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import time
import uuid
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, Security, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

logger = logging.getLogger("design_server")

#: The document hard-codes a placeholder secret; a bench copy needs no fixed one.
JWT_SECRET = secrets.token_urlsafe(32)
CORS_ORIGINS = ["http://localhost:3000"]


def utcnow() -> datetime:
    """``datetime.utcnow()`` (naive UTC), as the document uses it."""
    return datetime.now(UTC).replace(tzinfo=None)


# ----------------------------------------------------------------------------- models


class Signal(BaseModel):
    signal_id: str
    ticker: str
    signal_type: str
    confidence: float
    catalyst_type: str
    source: str
    price: float | None = None
    rvol: float | None = None
    sector: str | None = None
    headline: str | None = None
    url: str | None = None
    timestamp: str
    metadata: dict[str, Any] = {}


class SignalFilter(BaseModel):
    min_confidence: float = 0.0
    tickers: list[str] | None = None
    catalyst_types: list[str] | None = None
    sectors: list[str] | None = None
    min_rvol: float | None = None
    max_price: float | None = None


class UserConfig(BaseModel):
    filters: dict[str, Any] = {}


class TradeOutcome(BaseModel):
    signal_id: str
    outcome: str | None = None
    return_pct: float | None = None


# ----------------------------------------------------------------------------- rate limiter


class RateLimiter:
    def __init__(self, max_connections_per_ip: int, max_messages_per_sec: int = 8) -> None:
        self.max_connections_per_ip = max_connections_per_ip
        self.max_messages_per_sec = max_messages_per_sec
        self.connections: dict[str, int] = defaultdict(int)
        self.messages: dict[str, deque[float]] = defaultdict(deque)

    def check_connection_limit(self, host: str) -> bool:
        if self.connections[host] >= self.max_connections_per_ip:
            return False
        self.connections[host] += 1
        return True

    def check_message_limit(self, client_id: str) -> bool:
        now = time.monotonic()
        window = self.messages[client_id]
        while window and now - window[0] > 1.0:
            window.popleft()
        if len(window) >= self.max_messages_per_sec:
            return False
        window.append(now)
        return True


# ----------------------------------------------------------------------------- websocket manager


class WebSocketManager:
    """Manages WebSocket connections and subscriptions (the document's, as written)."""

    def __init__(self) -> None:
        self.connections: dict[str, WebSocket] = {}
        self.filters: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.last_pong: dict[str, datetime] = {}

    async def connect(self, client_id: str, websocket: WebSocket) -> None:
        self.connections[client_id] = websocket
        self.last_pong[client_id] = utcnow()
        config = await self._load_config(client_id)
        self.configs[client_id] = config
        self.filters[client_id] = config.get("filters", {})
        logger.info(
            "client_connected client_id=%s total_clients=%d", client_id, len(self.connections)
        )

    async def disconnect(self, client_id: str) -> None:
        if client_id in self.connections:
            del self.connections[client_id]
            del self.last_pong[client_id]
            logger.info(
                "client_disconnected client_id=%s total_clients=%d",
                client_id,
                len(self.connections),
            )

    async def disconnect_all(self) -> None:
        for client_id in list(self.connections.keys()):
            try:
                ws = self.connections[client_id]
                await ws.close(code=1001, reason="Server shutting down")
            except Exception as e:
                logger.error("disconnect_error client_id=%s err=%s", client_id, str(e))
            finally:
                await self.disconnect(client_id)

    async def send_to_client(self, client_id: str, message: dict[str, Any]) -> None:
        ws = self.connections.get(client_id)
        if ws:
            try:
                await ws.send_json(message)
            except Exception as e:
                logger.error("send_failed client_id=%s err=%s", client_id, str(e))
                await self.disconnect(client_id)

    async def broadcast_signal(self, signal: dict[str, Any]) -> None:
        """Broadcast signal to clients matching their filters: one client at a time."""

        async def should_receive_signal(client_id: str) -> bool:
            filters = self.filters.get(client_id, {})
            min_confidence = filters.get("min_confidence", 0.0)
            if signal["confidence"] < min_confidence:
                return False
            if "tickers" in filters and signal["ticker"] not in filters["tickers"]:
                return False
            if (
                "catalyst_types" in filters
                and signal["catalyst_type"] not in filters["catalyst_types"]
            ):
                return False
            if "sectors" in filters and signal.get("sector") not in filters["sectors"]:
                return False
            min_rvol = filters.get("min_rvol")
            if min_rvol and (signal.get("rvol") or 0) < min_rvol:
                return False
            max_price = filters.get("max_price")
            return not (max_price and (signal.get("price") or float("inf")) > max_price)

        sent_count = 0
        for client_id in list(self.connections.keys()):
            if await should_receive_signal(client_id):
                await self.send_to_client(client_id, {"type": "signal", "data": signal})
                sent_count += 1
        logger.info(
            "signal_broadcast signal_id=%s sent_to=%d clients", signal["signal_id"], sent_count
        )

    async def update_filters(self, client_id: str, filters: dict[str, Any]) -> None:
        self.filters[client_id] = filters
        await self._save_filters(client_id, filters)

    async def update_config(self, client_id: str, config: dict[str, Any]) -> None:
        self.configs[client_id] = config
        await self._save_config(client_id, config)

    async def get_config(self, client_id: str) -> dict[str, Any] | None:
        return self.configs.get(client_id)

    async def update_pong(self, client_id: str) -> None:
        self.last_pong[client_id] = utcnow()

    async def heartbeat_loop(self, client_id: str, websocket: WebSocket) -> None:
        while True:
            try:
                await asyncio.sleep(30)
                await websocket.send_json({"type": "heartbeat"})
                last = self.last_pong.get(client_id)
                if last and (utcnow() - last).seconds > 120:
                    logger.warning("heartbeat_timeout client_id=%s", client_id)
                    await websocket.close(code=4000, reason="Heartbeat timeout")
                    break
            except Exception as e:
                logger.error("heartbeat_error client_id=%s err=%s", client_id, str(e))
                break

    def get_connection_count(self) -> int:
        return len(self.connections)

    async def _load_config(self, client_id: str) -> dict[str, Any]:
        return {}

    async def _save_config(self, client_id: str, config: dict[str, Any]) -> None:
        pass

    async def _save_filters(self, client_id: str, filters: dict[str, Any]) -> None:
        pass


# ----------------------------------------------------------------------------- publisher


class SignalPublisher:
    """In-memory signal history (newest first, 1,000 kept) and the publish path."""

    def __init__(self, ws_manager: WebSocketManager, max_signals: int = 1000) -> None:
        self.ws_manager = ws_manager
        self.running = False
        self.signals: list[dict[str, Any]] = []
        self.max_signals = max_signals

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def signal_broadcast_loop(self) -> None:
        while self.running:
            try:
                for signal in await self._run_catalyst_once():
                    await self.publish_signal(signal)
                await asyncio.sleep(300)
            except Exception as e:
                logger.error("signal_broadcast_error err=%s", str(e), exc_info=True)
                await asyncio.sleep(60)

    async def _run_catalyst_once(self) -> list[dict[str, Any]]:
        return [
            {
                "signal_id": str(uuid.uuid4()),
                "ticker": "ABCD",
                "signal_type": "BUY",
                "confidence": 0.85,
                "catalyst_type": "FDA",
                "source": "SEC_8K",
                "price": 12.50,
                "rvol": 2.3,
                "sector": "Healthcare",
                "timestamp": utcnow().isoformat(),
                "metadata": {},
            }
        ]

    async def publish_signal(self, signal: dict[str, Any]) -> None:
        self.signals.insert(0, signal)
        if len(self.signals) > self.max_signals:
            self.signals = self.signals[: self.max_signals]
        await self.ws_manager.broadcast_signal(signal)
        logger.info(
            "signal_published signal_id=%s ticker=%s confidence=%.2f",
            signal["signal_id"],
            signal["ticker"],
            signal["confidence"],
        )

    async def get_signals(
        self,
        user_id: str,
        limit: int = 50,
        since: str | None = None,
        ticker: str | None = None,
    ) -> list[dict[str, Any]]:
        filtered = self.signals
        if since:
            since_dt = datetime.fromisoformat(since)
            filtered = [s for s in filtered if datetime.fromisoformat(s["timestamp"]) > since_dt]
        if ticker:
            filtered = [s for s in filtered if s["ticker"] == ticker]
        user_filters = self.ws_manager.filters.get(user_id, {})
        if user_filters:
            min_conf = user_filters.get("min_confidence", 0)
            filtered = [s for s in filtered if s["confidence"] >= min_conf]
        return filtered[:limit]

    async def get_signal(self, signal_id: str) -> dict[str, Any] | None:
        for signal in self.signals:
            if signal["signal_id"] == signal_id:
                return signal
        return None

    async def process_feedback(self, user_id: str, signal_id: str | None, outcome: Any) -> None:
        logger.info(
            "feedback_received user_id=%s signal_id=%s outcome=%s", user_id, signal_id, outcome
        )

    async def get_user_stats(self, user_id: str) -> dict[str, Any]:
        return {"signals_received": 0, "trades_executed": 0, "win_rate": 0.0, "avg_return": 0.0}


# ----------------------------------------------------------------------------- auth


def create_token(user_id: str, expiry_hours: int = 24) -> str:
    """The document's token (its ISO-string ``exp`` makes PyJWT reject it on decode)."""
    payload = {
        "user_id": user_id,
        "exp": (utcnow() + timedelta(hours=expiry_hours)).isoformat(),
        "iat": utcnow().isoformat(),
    }
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def sample_signal(i: int, now: datetime) -> dict[str, Any]:
    """Signal number ``i`` of a pre-fill (oldest first), the same content the hub gets."""
    tickers = ("ABCD", "EFGH", "IJKL", "MNOP", "QRST")
    catalysts = ("FDA", "M&A", "EARNINGS", "OFFERING")
    return {
        "signal_id": f"bench-{i:06d}",
        "ticker": tickers[i % len(tickers)],
        "signal_type": "BUY",
        "confidence": round(0.5 + (i % 50) / 100, 2),
        "catalyst_type": catalysts[i % len(catalysts)],
        "source": "bench",
        "price": 12.5,
        "rvol": 2.3,
        "sector": "Healthcare",
        "headline": f"Bench headline number {i}",
        "url": f"https://example.com/news/{i}",
        "timestamp": (now - timedelta(seconds=10_000 - i)).isoformat(),
        "metadata": {},
    }


def create_app(
    *,
    signals: int = 0,
    api_key: str,
    users: int = 1,
    max_connections_per_ip: int = 10**9,
    catalyst_loop: bool = False,
) -> FastAPI:
    """A fresh copy of the document's app with ``signals`` pre-filled, newest first."""
    api_keys = {api_key: "user_0"}
    api_keys.update({f"{api_key}-{i}": f"user_{i}" for i in range(1, users)})
    security = HTTPBearer()
    ws_manager = WebSocketManager()
    signal_publisher = SignalPublisher(ws_manager, max_signals=max(1000, signals))
    rate_limiter = RateLimiter(max_connections_per_ip)

    now = utcnow()
    for i in range(signals):
        signal_publisher.signals.insert(0, sample_signal(i, now))

    async def verify_api_key(
        credentials: HTTPAuthorizationCredentials = Security(security),
    ) -> str:
        user_id = api_keys.get(credentials.credentials)
        if not user_id:
            raise HTTPException(status_code=401, detail="Invalid API key")
        return user_id

    async def verify_token(token: str | None) -> str | None:
        if not token:
            return None
        try:
            payload = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
            exp = datetime.fromisoformat(payload["exp"])
            if utcnow() > exp:
                return None
            return str(payload["user_id"])
        except jwt.InvalidTokenError:
            return api_keys.get(token)  # the document's client sends its API key

    app = FastAPI(
        title="Catalyst Signal API",
        version="1.0.0",
        description="Real-time trading signal distribution via WebSocket and REST",
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=CORS_ORIGINS,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.state.ws_manager = ws_manager
    app.state.signal_publisher = signal_publisher

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket, token: str | None = None) -> None:
        client_id = None
        heartbeat_task: asyncio.Task[None] | None = None
        try:
            await websocket.accept()
            if not token:
                auth_msg = await websocket.receive_json()
                if auth_msg.get("type") != "auth":
                    await websocket.send_json(
                        {"type": "error", "message": "Authentication required"}
                    )
                    await websocket.close(code=4001)
                    return
                token = auth_msg.get("token")

            client_id = await verify_token(token)
            if not client_id:
                await websocket.send_json({"type": "error", "message": "Invalid token"})
                await websocket.close(code=4001)
                return

            host = websocket.client.host if websocket.client else ""
            if not rate_limiter.check_connection_limit(host):
                await websocket.send_json({"type": "error", "message": "Rate limit exceeded"})
                await websocket.close(code=4029)
                return

            await ws_manager.connect(client_id, websocket)
            await websocket.send_json(
                {"type": "welcome", "client_id": client_id, "timestamp": utcnow().isoformat()}
            )
            heartbeat_task = asyncio.create_task(ws_manager.heartbeat_loop(client_id, websocket))

            while True:
                message = await websocket.receive_json()
                msg_type = message.get("type")
                if not rate_limiter.check_message_limit(client_id):
                    await websocket.send_json(
                        {"type": "error", "message": "Message rate limit exceeded (8/sec)"}
                    )
                    continue
                if msg_type == "subscribe":
                    filters = message.get("filters", {})
                    await ws_manager.update_filters(client_id, filters)
                    await websocket.send_json({"type": "subscribed", "filters": filters})
                elif msg_type == "pong":
                    await ws_manager.update_pong(client_id)
                elif msg_type == "feedback":
                    await signal_publisher.process_feedback(
                        client_id, message.get("signal_id"), message.get("outcome")
                    )
                else:
                    await websocket.send_json(
                        {"type": "error", "message": f"Unknown message type: {msg_type}"}
                    )
        except WebSocketDisconnect:
            logger.info("websocket_disconnected client_id=%s", client_id)
        except Exception as e:
            logger.error("websocket_error client_id=%s err=%s", client_id, str(e))
        finally:
            if client_id:
                if heartbeat_task is not None:
                    heartbeat_task.cancel()
                await ws_manager.disconnect(client_id)

    @app.get("/health")
    async def health_check() -> dict[str, Any]:
        return {
            "status": "healthy",
            "timestamp": utcnow().isoformat(),
            "connected_clients": ws_manager.get_connection_count(),
        }

    @app.get("/api/v1/signals", response_model=list[Signal])
    async def get_signals(
        limit: int = 50,
        since: str | None = None,
        ticker: str | None = None,
        user_id: str = Depends(verify_api_key),
    ) -> Any:
        if limit > 100:
            raise HTTPException(status_code=400, detail="Limit cannot exceed 100")
        return await signal_publisher.get_signals(
            user_id=user_id, limit=limit, since=since, ticker=ticker
        )

    @app.post("/api/v1/signals")
    async def ingest_signal(
        body: dict[str, Any], user_id: str = Depends(verify_api_key)
    ) -> dict[str, Any]:
        """Bench ingest (not in the document): fill defaults, then ``publish_signal``."""
        signal: dict[str, Any] = {
            "signal_id": str(uuid.uuid4()),
            "signal_type": "BUY",
            "confidence": 0.5,
            "catalyst_type": "OTHER",
            "source": "ingest",
            "timestamp": utcnow().isoformat(),
            "metadata": {},
        }
        signal.update(body)
        await signal_publisher.publish_signal(signal)
        return {"status": "published", "signal_id": signal["signal_id"]}

    @app.get("/api/v1/signals/{signal_id}", response_model=Signal)
    async def get_signal(signal_id: str, user_id: str = Depends(verify_api_key)) -> Any:
        signal = await signal_publisher.get_signal(signal_id)
        if not signal:
            raise HTTPException(status_code=404, detail="Signal not found")
        return signal

    @app.post("/api/v1/config")
    async def update_config(
        config: UserConfig, user_id: str = Depends(verify_api_key)
    ) -> dict[str, Any]:
        await ws_manager.update_config(user_id, config.model_dump())
        return {"status": "updated", "user_id": user_id, "config": config.model_dump()}

    @app.get("/api/v1/config", response_model=UserConfig)
    async def get_config(user_id: str = Depends(verify_api_key)) -> Any:
        config = await ws_manager.get_config(user_id)
        if not config:
            raise HTTPException(status_code=404, detail="Config not found")
        return UserConfig(**config)

    @app.post("/api/v1/feedback")
    async def submit_feedback(
        outcome: TradeOutcome, user_id: str = Depends(verify_api_key)
    ) -> dict[str, str]:
        await signal_publisher.process_feedback(user_id, outcome.signal_id, outcome.model_dump())
        return {"status": "received"}

    @app.get("/api/v1/stats")
    async def get_stats(user_id: str = Depends(verify_api_key)) -> dict[str, Any]:
        return await signal_publisher.get_user_stats(user_id)

    background: set[asyncio.Task[None]] = set()

    @app.on_event("startup")
    async def startup_event() -> None:
        await signal_publisher.start()
        if catalyst_loop:
            task = asyncio.create_task(signal_publisher.signal_broadcast_loop())
            background.add(task)
            task.add_done_callback(background.discard)

    @app.on_event("shutdown")
    async def shutdown_event() -> None:
        await ws_manager.disconnect_all()
        await signal_publisher.stop()

    @app.exception_handler(Exception)
    async def global_exception_handler(request: Any, exc: Exception) -> JSONResponse:
        logger.error("unhandled_exception path=%s err=%s", request.url.path, str(exc))
        return JSONResponse(
            status_code=500,
            content={"error": "Internal server error", "message": "An error occurred"},
        )

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--signals", type=int, default=0, help="signals pre-filled in memory")
    parser.add_argument("--api-key", required=True, help="the key clients authenticate with")
    parser.add_argument("--users", type=int, default=1, help="keys {api-key}-{i} for user_{i}")
    parser.add_argument("--max-connections-per-ip", type=int, default=10**9)
    parser.add_argument("--catalyst-loop", action="store_true", help="run the mock runner loop")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    app = create_app(
        signals=args.signals,
        api_key=args.api_key,
        users=args.users,
        max_connections_per_ip=args.max_connections_per_ip,
        catalyst_loop=args.catalyst_loop,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
