"""The console's app: pages (every module of ``pages.PAGE_MODULES``), its static files,
the security headers and CSRF check (:mod:`.security`), and one HTTP client per upstream
service (:mod:`.upstream`). No database, no broker: everything it shows comes from the
other services' HTTP APIs, asked as the signed-in user.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from flowchat_console import SERVICE
from flowchat_console.auth import SESSION_COOKIE, Sessions
from flowchat_console.deps import Runtime
from flowchat_console.errors import CsrfRejected, Forbidden, SignInRequired, UpstreamError
from flowchat_console.pages import PAGE_MODULES
from flowchat_console.pages._kit import media_key
from flowchat_console.render import is_htmx, render
from flowchat_console.security import SecurityMiddleware, check_csrf
from flowchat_console.service import MediaLinks
from flowchat_console.settings import Settings
from flowchat_console.timing import ServerTiming
from flowchat_console.upstream import ServiceClients
from flowchat_platform.http import Readiness, build_app
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Files served from ``node_modules`` (``npm ci``): URL name → path inside it.
VENDOR = {"htmx.min.js": "htmx.org/dist/htmx.min.js"}


def create_app(settings: Settings, *, clients: ServiceClients | None = None) -> FastAPI:
    # httpx logs every upstream call's URL at INFO: a search's words (which may be a
    # phone number or a name) must not reach the logs, and a page's 30 lines cost time
    logging.getLogger("httpx").setLevel(logging.WARNING)
    clients = clients or ServiceClients(
        settings.service_urls(),
        timeout_s=settings.upstream_timeout_s,
        connections=settings.upstream_connections,
    )
    runtime = Runtime(
        settings=settings,
        clients=clients,
        sessions=Sessions(
            clients, size=settings.token_cache_size, margin_s=settings.token_refresh_margin_s
        ),
    )
    key = media_key()
    if key is not None:
        runtime.media_links = MediaLinks(key)
    vendor = {name: settings.node_modules / rel for name, rel in VENDOR.items()}
    readiness = Readiness()
    readiness.add("assets", lambda: all(p.is_file() for p in vendor.values()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = [str(p) for p in vendor.values() if not p.is_file()]
        if missing:
            log.warning("browser assets missing: run make setup (npm ci)", missing=len(missing))
        try:
            yield
        finally:
            await clients.close()

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness, title="FlowChat console")
    app.state.runtime = runtime
    app.add_middleware(SecurityMiddleware, secure_cookies=settings.secure_cookies)
    app.add_middleware(ServerTiming)
    # Every route included from here on checks the CSRF token of unsafe methods.
    app.router.dependencies.append(Depends(check_csrf))
    _add_error_pages(app)

    app.mount("/static/app", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/static/vendor/{name}", include_in_schema=False)
    async def vendor_file(name: str) -> Response:
        path = vendor.get(name)
        if path is None or not path.is_file():
            return Response(status_code=404)
        return FileResponse(
            path,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    for module_name in PAGE_MODULES:
        module = importlib.import_module(module_name)
        app.include_router(module.router)
        runtime.served.update(
            r.path
            for r in module.router.routes
            if isinstance(r, APIRoute) and "GET" in (r.methods or ())
        )
    return app


def _add_error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _: SignInRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        location = "/sign-in" if target == "/" else f"/sign-in?next={quote(target, safe='')}"
        if is_htmx(request) or request.method != "GET":
            response: Response = Response(status_code=401, headers={"HX-Redirect": location})
        else:
            response = RedirectResponse(location, status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "Not allowed", "Your role may not do this.", exc.action)

    @app.exception_handler(CsrfRejected)
    async def csrf(request: Request, _: CsrfRejected) -> Response:
        return _error(
            request,
            403,
            "Form expired",
            "This form is no longer valid: reload the page and try again.",
            "csrf",
        )

    @app.exception_handler(UpstreamError)
    async def upstream(request: Request, exc: UpstreamError) -> Response:
        if exc.status == 401:
            runtime: Runtime = request.app.state.runtime
            session = request.cookies.get(SESSION_COOKIE)
            if session:
                runtime.sessions.forget(session)
            return await sign_in_required(request, SignInRequired("token refused"))
        if exc.status == 403:
            return _error(request, 403, "Not allowed", exc.message, exc.code)
        if exc.status == 404:
            return _error(request, 404, "Not found", exc.message, exc.code)
        if exc.status >= 500:
            log.warning("upstream failed", upstream=exc.service, status=exc.status, code=exc.code)
            return _error(
                request, 502, "Service unavailable", f"{exc.service}: {exc.message}", exc.code
            )
        return _error(request, exc.status, "Refused", exc.message, exc.code)


def _error(request: Request, status: int, title: str, message: str, code: str) -> Response:
    if is_htmx(request):
        return render(
            request,
            "errors/_flash.html",
            {"title": title, "message": message, "code": code},
            status_code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return render(
        request,
        "errors/error.html",
        {"title": title, "message": message, "code": code, "status": status},
        status_code=status,
    )
