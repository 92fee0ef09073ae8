"""``/docs`` works offline: the page loads Swagger UI from the hub, never a CDN."""

from __future__ import annotations

import re

from tests.api.conftest import Hub


async def test_docs_page_and_its_assets_come_from_the_hub(hub: Hub) -> None:
    page = await hub.http.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert {u.rsplit("/", 1)[1] for u in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert all(u.startswith("/") for u in urls), urls  # nothing from another host
    for url in assets:
        asset = await hub.http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    script = await hub.http.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in script.text
    assert "/openapi.json" in page.text
    assert (await hub.http.get("/openapi.json")).status_code == 200


async def test_only_the_pages_files_are_served(hub: Hub) -> None:
    assert (await hub.http.get("/docs/assets/index.html")).status_code == 404
    assert (await hub.http.get("/docs/assets/..%2F..%2F__init__.py")).status_code == 404
    assert (await hub.http.get("/redoc")).status_code == 404
