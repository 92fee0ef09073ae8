"""A stream connection lives as long as its credential.

A JWT's ``exp`` is scheduled to the second; every ``limits.credential_check_seconds``
one batched query re-checks the API keys (revoked, moved to another user) and users
of all open connections. A connection whose credential ended gets an error and
close 4001; :meth:`CredentialWatch.credential_ok` (through :class:`CredentialCache`,
a short-TTL cache) is also asked before each client message is handled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping

from api.ws_client import Client
from api.ws_messages import CLOSE_AUTH
from core.auth import AuthService, Principal
from core.metrics import Metrics

log = logging.getLogger(__name__)

REVOKED_MESSAGE = "API key revoked (or no longer yours); reconnect with a valid key"
EXPIRED_MESSAGE = "token expired; get a new one (POST /api/v1/auth/token) and reconnect"


class CredentialCache:
    """Whether a credential still stands, asked of the database at most once per
    ``ttl`` seconds per credential (concurrent askers share one query)."""

    def __init__(self, auth: AuthService, ttl: float) -> None:
        self._auth = auth
        self._ttl = ttl
        self._known: dict[Hashable, tuple[float, bool]] = {}
        self._asking: dict[Hashable, asyncio.Future[bool]] = {}
        self._failing = False

    @staticmethod
    def key(principal: Principal) -> Hashable:
        return (principal.key_id, principal.user.id, "admin" in principal.scopes)

    def record(self, principal: Principal, ok: bool, now: float) -> None:
        self._known[self.key(principal)] = (now, ok)

    def forget_except(self, keep: set[Hashable]) -> None:
        for key in [k for k in self._known if k not in keep]:
            del self._known[key]

    async def check(self, principal: Principal) -> bool:
        key = self.key(principal)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and (not known[1] or now - known[0] < self._ttl):
            return known[1]  # an ended credential never comes back
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        ok = known[1] if known is not None else True
        try:
            (ok,) = await self._auth.still_valid([principal])
            self._failing = False
        except Exception as exc:
            # The database is unavailable: keep the last answer (revoking needs it too).
            if not self._failing:
                log.warning("could not re-check a WebSocket credential: %s", type(exc).__name__)
            self._failing = True
        finally:
            del self._asking[key]
            future.set_result(ok)  # also when this task is cancelled: the others go on
        self._known[key] = (now, ok)
        return ok


class CredentialWatch:
    """Ends the connections (``end(client, CLOSE_AUTH, message)``) whose credential
    ended: revoked, moved to another user, or past its ``exp``."""

    def __init__(
        self,
        auth: AuthService,
        clients: Mapping[str, Client],
        *,
        cache_seconds: float,
        check_seconds: float,
        metrics: Metrics,
        end: Callable[[Client, int, str], None],
    ) -> None:
        self._auth = auth
        self._clients = clients
        self._check_seconds = check_seconds
        self._metrics = metrics
        self._end = end
        self.cache = CredentialCache(auth, cache_seconds)

    def watch(self, client: Client) -> None:
        """A JWT ends at its exp, to the second: no need to wait for the next check."""
        expires_at = client.principal.expires_at
        if expires_at is not None:
            client.expiry = asyncio.get_running_loop().call_later(
                max(expires_at - time.time(), 0.0), self.expire, client
            )

    @staticmethod
    def unwatch(client: Client) -> None:
        if client.expiry is not None:
            client.expiry.cancel()
            client.expiry = None

    def revoke(self, client: Client, message: str) -> None:
        """``client``'s credential ended: accept nothing more from it, close it (4001)."""
        if client.revoked:
            return
        client.revoked = True
        log.info("closing WebSocket client %s (user %s): %s", client.id, client.user_id, message)
        self._metrics.ws_messages_sent.labels(type="credential_ended").inc()
        self._end(client, CLOSE_AUTH, message)

    def expire(self, client: Client) -> None:
        client.expiry = None
        self.revoke(client, EXPIRED_MESSAGE)

    async def credential_ok(self, client: Client) -> bool:
        """Whether ``client``'s credential still stands (asked before each message)."""
        if client.revoked:
            return False
        if client.principal.expired():
            self.expire(client)
            return False
        if not await self.cache.check(client.principal):
            self.revoke(client, REVOKED_MESSAGE)
            return False
        return True

    async def check_all(self) -> None:
        """Re-check every open connection's credential in one batched query."""
        clients = [c for c in self._clients.values() if not c.closing and not c.revoked]
        principals: dict[Hashable, Principal] = {}
        for client in clients:
            principals.setdefault(CredentialCache.key(client.principal), client.principal)
        self.cache.forget_except(set(principals))
        if not principals:
            return
        keys = list(principals)
        results = await self._auth.still_valid([principals[k] for k in keys])
        now = time.monotonic()
        valid = {}
        for key, ok in zip(keys, results, strict=True):
            valid[key] = ok
            self.cache.record(principals[key], ok, now)
        for client in clients:
            if client.principal.expired():
                self.expire(client)
            elif not valid.get(CredentialCache.key(client.principal), True):
                self.revoke(client, REVOKED_MESSAGE)

    async def run(self) -> None:
        """Every ``check_seconds``: :meth:`check_all`, logging once per failure streak."""
        interval = self._check_seconds
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_all()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning(
                        "could not re-check WebSocket credentials (retrying every %.0f s): %s",
                        interval,
                        type(exc).__name__,
                    )
                failing = True
