"""Preview links: ``/sandbox/{id}/ports/{port}/preview-url`` and the signed variant, and
the proxy that serves them.

A preview URL is ``{base}/preview/{sandboxId}/{port}/``; a private sandbox's needs the
``x-daytona-preview-token`` header, as Daytona's proxy does. A signed URL carries its
token in the path (``{base}/preview-signed/{token}/``) and works until it expires. The
proxy forwards each HTTP request, and relays each WebSocket message by message, to the
port through the engine's ``expose_port``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from sandstorm import Capability

from ._errors import ApiError
from ._records import SandboxRecord
from ._state import Emulator

__all__ = ["PREVIEW_PATHS", "TOKEN_HEADER", "api_routes", "proxy_routes"]

TOKEN_HEADER = "x-daytona-preview-token"
PREVIEW_PATHS = ("/preview/", "/preview-signed/")
"""Paths served without an API key: the preview token authorises them."""

_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    TOKEN_HEADER,
}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass
class _Signed:
    sandbox_id: str
    port: int
    expires_at: datetime


_tokens: dict[str, str] = {}
"""The preview token of each sandbox, by sandbox id (random, made on first use)."""
_signed: dict[str, _Signed] = {}


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def _base(request: Request) -> str:
    from ._main_api import base_url

    return base_url(request)


def _record(request: Request) -> SandboxRecord:
    return _emulator(request).find(request.state.org, request.path_params["sandbox"])


def _port(request: Request) -> int:
    port: int = request.path_params["port"]
    if not 1 <= port <= 65535:
        raise ApiError(400, "Invalid port")
    return port


def token_of(record: SandboxRecord) -> str:
    """The sandbox's preview token."""
    return _tokens.setdefault(record.id, secrets.token_urlsafe(24))


async def preview_url(request: Request) -> Response:
    """``GET /sandbox/{idOrName}/ports/{port}/preview-url``."""
    record = _record(request)
    port = _port(request)
    return JSONResponse(
        {
            "sandboxId": record.id,
            "url": f"{_base(request)}/preview/{record.id}/{port}",
            "token": token_of(record),
        }
    )


async def signed_preview_url(request: Request) -> Response:
    """``GET /sandbox/{idOrName}/ports/{port}/signed-preview-url?expiresInSeconds=``."""
    record = _record(request)
    port = _port(request)
    raw = request.query_params.get("expiresInSeconds") or "60"
    try:
        seconds = int(raw)
    except ValueError:
        raise ApiError(400, "expiresInSeconds must be an integer") from None
    if not 1 <= seconds <= 86400:
        raise ApiError(400, "expiresInSeconds must be between 1 and 86400")
    token = secrets.token_urlsafe(24)
    now = _emulator(request).clock.now()
    _signed[token] = _Signed(record.id, port, now + timedelta(seconds=seconds))
    return JSONResponse(
        {
            "sandboxId": record.id,
            "port": port,
            "token": token,
            "url": f"{_base(request)}/preview-signed/{token}",
        }
    )


async def expire_signed(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/ports/{port}/signed-preview-url/{token}/expire``."""
    record = _record(request)
    found = _signed.get(request.path_params["token"])
    if found is not None and found.sandbox_id == record.id:
        del _signed[request.path_params["token"]]
    return Response(status_code=200)


def api_routes(prefix: str) -> list[BaseRoute]:
    """The main API's preview-link routes."""
    sb = prefix + "/sandbox/{sandbox}/ports/{port:int}"
    return [
        Route(sb + "/preview-url", preview_url, methods=["GET"]),
        Route(sb + "/signed-preview-url", signed_preview_url, methods=["GET"]),
        Route(sb + "/signed-preview-url/{token}/expire", expire_signed, methods=["POST"]),
    ]


async def _proxy(request: Request, record: SandboxRecord, port: int, path: str) -> Response:
    emulator = _emulator(request)
    if record.state != "started" or record.workspace_id is None:
        return Response(b"sandbox is not started", status_code=502)
    engine = emulator.provider
    if Capability.PORTS not in engine.capabilities:
        return Response(b"the emulator's engine cannot expose ports", status_code=501)
    exposed = await engine.expose_port(record.workspace_id, port)
    url = f"{exposed.url.rstrip('/')}/{path}"
    if request.url.query:
        url += "?" + request.url.query
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    headers.update(exposed.headers)
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            upstream = await client.request(
                request.method, url, headers=headers, content=await request.body()
            )
    except httpx.HTTPError:
        return Response(f"nothing answers on port {port}".encode(), status_code=502)
    kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
    kept.pop("content-encoding", None)
    return Response(upstream.content, status_code=upstream.status_code, headers=kept)


async def preview(request: Request) -> Response:
    """``/preview/{sandboxId}/{port}/{path}``: the token header for private sandboxes."""
    emulator = _emulator(request)
    record = emulator.sandboxes.get(request.path_params["sandbox"])
    if record is None:
        return Response(b"sandbox not found", status_code=404)
    if not record.public:
        given = request.headers.get(TOKEN_HEADER, "")
        if not secrets.compare_digest(given, token_of(record)):
            return Response(b"missing or wrong preview token", status_code=401)
    return await _proxy(request, record, _port(request), request.path_params.get("path", ""))


async def preview_signed(request: Request) -> Response:
    """``/preview-signed/{token}/{path}``: the token is the authorisation."""
    emulator = _emulator(request)
    found = _signed.get(request.path_params["token"])
    if found is None or found.expires_at <= emulator.clock.now():
        return Response(b"invalid or expired signed preview url", status_code=401)
    record = emulator.sandboxes.get(found.sandbox_id)
    if record is None:
        return Response(b"sandbox not found", status_code=404)
    return await _proxy(request, record, found.port, request.path_params.get("path", ""))


async def preview_ws(websocket: WebSocket) -> None:
    """A WebSocket at a preview URL, relayed message by message to the port."""
    emulator: Emulator = websocket.app.state.emulator
    params = websocket.path_params
    if "token" in params:
        found = _signed.get(params["token"])
        if found is None or found.expires_at <= emulator.clock.now():
            await websocket.close(code=1008, reason="invalid or expired signed preview url")
            return
        record = emulator.sandboxes.get(found.sandbox_id)
        port = found.port
    else:
        record = emulator.sandboxes.get(params["sandbox"])
        port = params["port"]
        given = websocket.headers.get(TOKEN_HEADER, "")
        if (
            record is not None
            and not record.public
            and not secrets.compare_digest(given, token_of(record))
        ):
            await websocket.close(code=1008, reason="missing or wrong preview token")
            return
    engine = emulator.provider
    if record is None or record.workspace_id is None or Capability.PORTS not in engine.capabilities:
        await websocket.close(code=1011, reason="the sandbox cannot be reached")
        return
    exposed = await engine.expose_port(record.workspace_id, port)
    url = f"{exposed.url.rstrip('/')}/{params.get('path', '')}"
    if websocket.url.query:
        url += "?" + websocket.url.query
    await _relay(websocket, url, exposed.headers)


async def _relay(websocket: WebSocket, url: str, headers: dict[str, str]) -> None:
    import asyncio

    from httpx_ws import AsyncWebSocketSession, HTTPXWSException, aconnect_ws
    from httpx_ws import WebSocketDisconnect as UpstreamClosed
    from wsproto.events import BytesMessage, TextMessage

    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        try:
            upstream_cm = aconnect_ws(url, client, session_class=AsyncWebSocketSession)
            upstream = await upstream_cm.__aenter__()
        except (HTTPXWSException, httpx.HTTPError):
            await websocket.close(code=1011, reason="nothing answers on the port")
            return
        try:
            await websocket.accept()

            async def down() -> None:
                while True:
                    try:
                        event = await upstream.receive()
                    except UpstreamClosed as exc:
                        await websocket.close(code=exc.code or 1000)
                        return
                    if isinstance(event, TextMessage):
                        await websocket.send_text(event.data)
                    elif isinstance(event, BytesMessage):
                        await websocket.send_bytes(bytes(event.data))

            async def up() -> None:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    if message.get("text") is not None:
                        await upstream.send_text(message["text"])
                    elif message.get("bytes") is not None:
                        await upstream.send_bytes(message["bytes"])

            tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await upstream_cm.__aexit__(None, None, None)


def proxy_routes() -> list[BaseRoute]:
    """The proxy's own routes (outside the API prefix, no API key)."""
    return [
        Route("/preview/{sandbox}/{port:int}", preview, methods=_METHODS),
        Route("/preview/{sandbox}/{port:int}/{path:path}", preview, methods=_METHODS),
        Route("/preview-signed/{token}", preview_signed, methods=_METHODS),
        Route("/preview-signed/{token}/{path:path}", preview_signed, methods=_METHODS),
        WebSocketRoute("/preview/{sandbox}/{port:int}", preview_ws),
        WebSocketRoute("/preview/{sandbox}/{port:int}/{path:path}", preview_ws),
        WebSocketRoute("/preview-signed/{token}", preview_ws),
        WebSocketRoute("/preview-signed/{token}/{path:path}", preview_ws),
    ]
