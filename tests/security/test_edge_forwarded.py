"""Forwarded headers are believed only from ``api.trusted_proxies`` (default: none,
not even loopback), and no redirect is built from the client's Host header."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request

from tests.security.edge_support import close_raw, closed_within, edge_hub, open_raw

router = APIRouter()


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, str]:
    return {
        "client": request.client.host if request.client else "",
        "scheme": request.url.scheme,
    }


SPOOF = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"}


async def test_forwarded_headers_are_ignored_by_default(tmp_path: Path) -> None:
    async with edge_hub(tmp_path, routers=(router,)) as hub:
        seen = (await hub.http.get("/whoami", headers=SPOOF)).json()
        assert seen == {"client": "127.0.0.1", "scheme": "http"}


async def test_forwarded_headers_from_a_configured_proxy_are_used(tmp_path: Path) -> None:
    async with edge_hub(
        tmp_path, routers=(router,), api={"trusted_proxies": ["127.0.0.0/8"]}
    ) as hub:
        seen = (await hub.http.get("/whoami", headers=SPOOF)).json()
        assert seen == {"client": "203.0.113.50", "scheme": "https"}


async def test_trailing_slash_is_404_not_a_redirect_to_the_clients_host(tmp_path: Path) -> None:
    async with edge_hub(tmp_path) as hub:
        for path in ("/health/", "/api/v1/signals/", "/metrics/"):
            r = await hub.http.get(path, headers={"Host": "evil.example"})
            assert r.status_code == 404, (path, r.status_code, r.headers.get("location"))
            assert "location" not in r.headers
        # Raw, with an absolute-form target too: nothing echoes the Host back.
        reader, writer = await open_raw(
            hub.server.port,
            b"GET http://evil.example/health/ HTTP/1.1\r\nHost: evil.example\r\n"
            b"Connection: close\r\n\r\n",
        )
        try:
            response = await closed_within(reader, 5)
        finally:
            close_raw(writer)
        assert response is not None and b"evil.example" not in response
