"""The interactive API docs (``/docs``), served with no CDN.

FastAPI's default page loads Swagger UI's script and stylesheet from a CDN, so
it is blank offline or behind a strict proxy. These routes serve the same page
with the files shipped in the ``swagger-ui-bundle`` package, under
``/docs/assets``. ReDoc (CDN only) is not offered.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

ASSETS = "/docs/assets"
#: The files the page needs, with their media types (nothing else is served).
SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
CACHE = {"Cache-Control": "public, max-age=86400"}


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` (and its OAuth2 redirect) to an app created with
    ``docs_url=None, redoc_url=None``."""
    from swagger_ui_bundle import swagger_ui_path

    folder = Path(str(swagger_ui_path))
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - docs"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        media_type = SERVED.get(name)
        if media_type is None:
            raise HTTPException(404, "no such docs asset")
        return FileResponse(folder / name, media_type=media_type, headers=CACHE)
