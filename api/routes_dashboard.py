"""The admin dashboard: one static page at ``/admin``, its files under ``/admin/static``.

The page holds no data, so it loads without credentials: in the browser the admin
exchanges an API key for a JWT (``POST /api/v1/auth/token``) and every number on
the page then comes from the API and the WebSocket with that JWT, which needs the
``admin`` scope for the admin endpoints. Only the files listed in :data:`SERVED`
are served, from ``api/static`` (package data), with a Content-Security-Policy
that allows nothing but this origin: no inline script or style, no other host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "admin.html"
#: The page's files, with their media types (nothing else under /admin/static).
SERVED = {
    "admin.js": "text/javascript",
    "admin.css": "text/css",
}

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        # 'self' covers the same-origin WebSocket (ws:/wss:) too.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Revalidate each time: a new release's page never runs an old script.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/admin")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / PAGE, media_type="text/html", headers=SECURITY_HEADERS)


@router.get("/admin/static/{name}")
async def dashboard_asset(name: str) -> FileResponse:
    media_type = SERVED.get(name)
    if media_type is None:
        raise HTTPException(404, "no such dashboard file")
    return FileResponse(STATIC / name, media_type=media_type, headers=SECURITY_HEADERS)
