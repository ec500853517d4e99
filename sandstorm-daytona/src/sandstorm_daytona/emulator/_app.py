"""The ASGI application: routes, error envelopes, lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandstorm import AsyncProvider, SandstormError

from ._clock import Clock
from ._config import EmulatorConfig
from ._daemon import ClientGone
from ._edge import EdgeMiddleware, too_large
from ._errors import ApiError, BodyTooLarge, DaemonError
from ._main_api import analytics_routes, main_routes
from ._preview import proxy_routes
from ._state import Emulator
from ._toolbox import toolbox_routes

__all__ = ["create_app"]

log = logging.getLogger("sandstorm_daytona.emulator")


def _toolbox_path(request: Request) -> str | None:
    parts = request.url.path.split("/", 3)
    if len(parts) >= 3 and parts[1] == "toolbox":
        return "/" + (parts[3] if len(parts) > 3 else "")
    return None


def _full_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response(_full_path(request))


async def _daemon_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DaemonError)
    return exc.response(_toolbox_path(request) or request.url.path, request.method)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Cannot {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Cannot {request.method} {request.url.path}"
        return ApiError(404, message).response(_full_path(request))
    else:
        message = str(exc.detail)
    toolbox = _toolbox_path(request)
    if toolbox is not None and exc.status_code != 404:
        return DaemonError(exc.status_code, message).response(toolbox, request.method)
    return ApiError(exc.status_code, message).response(_full_path(request))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # nobody is listening: the server drops whatever is sent (and logs nothing)
    return Response(status_code=499)


async def _body_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    response: Response = too_large(request.scope, exc.limit)
    return response


async def _engine_error(request: Request, exc: Exception) -> Response:
    log.warning("engine error on %s %s: %s", request.method, request.url.path, exc)
    toolbox = _toolbox_path(request)
    if toolbox is not None:
        return DaemonError(500, str(exc), "INTERNAL_SERVER_ERROR").response(toolbox, request.method)
    return ApiError(500, str(exc)).response(_full_path(request))


def create_app(
    config: EmulatorConfig | None = None,
    *,
    clock: Clock | None = None,
    provider: AsyncProvider | None = None,
) -> Starlette:
    """A Daytona-compatible ASGI app (main API under ``config.api_prefix``, toolbox under
    ``/toolbox``). ``app.state.emulator`` is its :class:`Emulator`.

    Serve it with uvicorn, or use it in-process with ``httpx.ASGITransport`` (then call
    ``await app.state.emulator.aclose()`` when done, since that transport runs no
    lifespan). ``clock`` replaces the wall clock (see :class:`ManualClock`);
    ``provider`` replaces the engine (default: ``config.provider`` with its options; the
    emulator then owns and closes it).
    """
    emulator = Emulator(config, clock=clock, provider=provider)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await emulator.start()
        try:
            yield
        finally:
            await emulator.aclose()

    app = _EmulatorApp(
        routes=[
            *main_routes(emulator.config.api_prefix),
            *toolbox_routes(),
            *analytics_routes(),
            *proxy_routes(),
        ],
        exception_handlers={
            ApiError: _api_error,
            DaemonError: _daemon_error,
            HTTPException: _http_error,
            SandstormError: _engine_error,
            ClientGone: _client_gone,
            ClientDisconnect: _client_gone,
            BodyTooLarge: _body_too_large,
        },
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    app.edge = EdgeMiddleware(app.routed, emulator, routes=app.routes)
    return app


class _EmulatorApp(Starlette):
    """Starlette with the edge middleware outermost, so it sees the server's own ``send``
    (needed to drop a TCP connection) and acts before Starlette's error handling."""

    edge: EdgeMiddleware

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The plain Starlette app (routing, error envelopes)."""
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.edge(scope, receive, send)
