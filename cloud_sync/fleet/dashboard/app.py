"""The dashboard's web app (Starlette): server-rendered pages, read-only, nothing external.

    GET /                    devices, rollouts, shadow mode, refused input, plots
    GET /device/<device>     one device: its row, its rollouts, latency per path over time
    GET /healthz             'ok' while the fleet store answers
    GET /static/style.css    the one stylesheet

Only GET and HEAD are routed (anything else: 405): pushing and rolling back stay in the CLI.
Every device-supplied string reaches the page through Jinja with autoescaping on, and the
Content-Security-Policy allows no script at all and nothing from another origin, so a payload
that slipped through would still not run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from cloud_sync.fleet.dashboard.view import FleetView, online_text
from cloud_sync.fleet.rollout import progress_bar
from device.errors import EdgelensError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals.update(online_text=online_text, progress_bar=progress_bar)
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}%"
    env.filters["dash"] = lambda v: "-" if v is None or v == "" else v
    return Jinja2Templates(env=env)


def create_app(view: FleetView) -> Starlette:
    templates = _templates()

    def overview(request: Request) -> Response:
        return templates.TemplateResponse(request, "overview.html", view.overview())

    def device(request: Request) -> Response:
        page = view.device(request.path_params["device"])
        if page is None:
            raise HTTPException(404, "no such device in the fleet store")
        return templates.TemplateResponse(request, "device.html", page)

    def healthz(request: Request) -> Response:
        execute = getattr(view.store, "execute", None)     # a cheap round trip to the store
        execute("SELECT 1") if callable(execute) else view.store.refused()
        return PlainTextResponse("ok\n")

    def failed(request: Request, exc: Exception) -> Response:
        log.error("dashboard request failed", extra={"error": str(exc)})
        return PlainTextResponse(f"edgelens-fleet dashboard: {exc}\n", status_code=503)

    def http_error(request: Request, exc: HTTPException) -> Response:
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}\n",
                                 status_code=exc.status_code, headers=exc.headers)

    routes = [Route("/", overview), Route("/device/{device}", device),
              Route("/healthz", healthz),
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes, exception_handlers={EdgelensError: failed,
                                                       HTTPException: http_error})
    app.add_middleware(SecurityHeaders)
    return app
