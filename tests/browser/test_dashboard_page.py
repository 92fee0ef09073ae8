"""``/admin`` over plain HTTP: the page and its files come from the hub, under a
strict Content-Security-Policy, and nothing on them points at another host."""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import Hub

ASSETS = {
    "/admin/static/admin.js": "text/javascript",
    "/admin/static/admin.css": "text/css",
}


def _check_security_headers(headers: httpx.Headers) -> None:
    csp = headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no inline script, no other host
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


async def test_the_page_and_its_files_are_served_with_security_headers(hub: Hub) -> None:
    page = await hub.http.get("/admin")  # no credentials: the page holds no data
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    _check_security_headers(page.headers)
    html = page.text
    assert 'name="viewport"' in html
    urls = set(re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html))
    assert urls == set(ASSETS)
    # No inline script or style: the CSP would block them.
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and "style=" not in html
    for url, media_type in ASSETS.items():
        asset = await hub.http.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(media_type), url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 1000, url


async def test_nothing_points_at_another_host(hub: Hub) -> None:
    for url in ("/admin", *ASSETS):
        text = (await hub.http.get(url)).text
        assert not re.search(r"https?://", text, re.IGNORECASE), url
        assert not re.search(r"""["'(]//[a-z0-9]""", text, re.IGNORECASE), url  # //host/...
        assert "cdn" not in text.lower(), url


async def test_only_the_pages_files_are_served(hub: Hub) -> None:
    for path in (
        "/admin/",
        "/admin/static/admin.html",
        "/admin/static/missing.js",
        "/admin/static/..%2Froutes_dashboard.py",
        "/admin/static/%2E%2E%2F__init__.py",
    ):
        assert (await hub.http.get(path)).status_code == 404, path
    assert "/admin" not in (await hub.http.get("/openapi.json")).json()["paths"]
