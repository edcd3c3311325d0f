"""The web dashboard: static files served by savd's API at /dashboard/ (plain HTML, CSS and JavaScript
modules in static/, shipped as package data; nothing to build, no third-party code).

The files hold no data and no secret, so they are served without a token even when reads need one. The
page asks the operator for the API token, keeps it in sessionStorage (gone when the tab closes) and sends
it as `Authorization: Bearer` on every API call, never in a URL; it reads the same JSON API as any other
client, so the API's token rules (and any per-tenant filtering of the API) apply to it unchanged.
A strict Content-Security-Policy allows only the page's own scripts and styles and calls to its own
origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().with_name("static")
PATH = "/dashboard"

#: sent with every dashboard file: own scripts, styles and API only; never framed; no referrer
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so an upgraded savd serves its own page at once
}


class DashboardFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount_dashboard(app: FastAPI) -> None:
    """Serve static/ at /dashboard/ (index.html for the folder) and redirect /dashboard there."""

    @app.get(PATH, include_in_schema=False)
    async def dashboard_root() -> RedirectResponse:
        return RedirectResponse("dashboard/")  # relative: right behind a proxy that adds a path prefix too

    app.mount(PATH, DashboardFiles(directory=STATIC, html=True), name="dashboard")
