"""The edge of the server: fault injection, bearer auth, per-key rate limits.

A pure ASGI middleware around the routed app, so faults can act before routing (or
after the request was served) and can drop the TCP connection itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._config import FaultRule
from ._errors import ApiError, BodyTooLarge, DaemonError
from ._preview import PREVIEW_PATHS
from ._state import Emulator, Exchange

__all__ = ["ConnectionDropped", "EdgeMiddleware", "too_large"]

log = logging.getLogger("sandstorm_daytona.emulator")

_LIFECYCLE_SUFFIXES = ("/start", "/stop", "/archive", "/pause", "/recover", "/resize", "/fork")


class ConnectionDropped(ConnectionResetError):
    """Raised in-process when a fault drops a connection and there is no socket to close."""


@dataclass
class _Window:
    started: float
    count: int


class _Limiter:
    """Fixed-window counters per (api key, throttler)."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def hit(self, key: str, name: str, limit: int, ttl: float) -> tuple[bool, int, float]:
        """Count one request; returns (allowed, remaining, seconds until reset)."""
        now = time.monotonic()
        window = self._windows.get((key, name))
        if window is None or now - window.started >= ttl:
            window = self._windows[(key, name)] = _Window(now, 0)
        window.count += 1
        reset = max(0.0, ttl - (now - window.started))
        return window.count <= limit, max(0, limit - window.count), reset


class EdgeMiddleware:
    """Faults, then authentication (``request.state.org``), then rate limits."""

    def __init__(
        self, app: ASGIApp, emulator: Emulator, *, routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.emulator = emulator
        self._rng = random.Random(emulator.config.faults.seed)
        self._limiter = _Limiter()
        self._templates: dict[int, list[tuple[str, Any]]] = {}
        for route in routes:
            endpoint = getattr(route, "endpoint", None)
            if endpoint is not None:
                self._templates.setdefault(id(endpoint), []).append(
                    (getattr(route, "path", "?"), getattr(route, "path_regex", None))
                )

    def _count(self, scope: Scope) -> None:
        """One more request for the route that served ``scope`` (see ``request_counts``)."""
        method = _method(scope)
        candidates = self._templates.get(id(scope.get("endpoint")), [])
        template = "(unrouted)"
        for path, regex in candidates:
            if len(candidates) == 1 or (regex is not None and regex.match(scope["path"])):
                template = path
                break
        socket_io = self.emulator.config.api_prefix + "/socket.io"
        if template == "(unrouted)" and scope["path"].startswith(socket_io):
            template = socket_io  # the SDK's event stream, refused but worth counting
        self.emulator.request_counts[f"{method} {template}"] += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        started: list[bool] = []
        counted: list[bool] = []

        def count() -> None:
            if not counted:
                counted.append(True)
                self._count(scope)

        async def tracked(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                started.append(True)
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                count()  # before the client can see the answer and read the counts
            await send(message)

        self.emulator.requests.add(task)
        try:
            await self._handle(scope, receive, tracked, send)
        except asyncio.CancelledError:
            if not self.emulator.stopping:
                raise
            # the server is shutting down: answer what can still be answered, no traceback
            log.info(
                "%s %s interrupted: the emulator is shutting down", _method(scope), _path(scope)
            )
            with contextlib.suppress(Exception):
                await _shutting_down(scope, send, bool(started))
        finally:
            self.emulator.requests.discard(task)
            count()  # a request that got no answer (a dropped connection) counts too

    async def _handle(self, scope: Scope, receive: Receive, send: Send, raw: Send) -> None:
        """``raw`` is the server's own ``send``, whose connection a drop fault closes."""
        await self.emulator.start()
        if self.emulator.exchanges is not None and scope["type"] == "http":
            send = _recording(send, scope, self.emulator.exchanges)
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        after: list[FaultRule] = []
        for rule in self._matching(path, method):
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency)
            elif rule.when == "after":
                after.append(rule)
            elif scope["type"] == "http":
                await self._fail(rule, scope, send, raw)
                return
        if after and scope["type"] == "http":
            await self._serve(scope, receive, _discard)
            await self._fail(after[0], scope, send, raw)
            return
        await self._serve(scope, receive, send)

    def _matching(self, path: str, method: str) -> list[FaultRule]:
        rules = []
        for rule in self.emulator.config.faults.rules:
            if rule.method and rule.method != method:
                continue
            if not fnmatch.fnmatchcase(path, rule.path):
                continue
            if self._rng.random() < rule.rate:
                rules.append(rule)
        return rules

    async def _fail(self, rule: FaultRule, scope: Scope, send: Send, raw: Send) -> None:
        if rule.kind == "drop":
            await _drop(raw)
            return
        assert isinstance(rule.kind, int)
        status = rule.kind
        headers = {"Retry-After": str(rule.retry_after)} if status == 429 else {}
        messages = {
            429: "ThrottlerException: Too Many Requests",
            500: "Internal server error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        error = ApiError(status, messages.get(status, "Injected fault"), headers=headers)
        await error.response(_full_path(scope))(scope, _empty_receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        prefix = self.emulator.config.api_prefix
        if path in (f"{prefix}/health", f"{prefix}/health/ready", f"{prefix}/config") or (
            path.startswith(PREVIEW_PATHS)
        ):
            scope.setdefault("state", {})["org"] = None
            await self.app(scope, receive, send)
            return
        if path.startswith(f"{prefix}/socket.io"):
            await self._reject(
                scope, send, ApiError(404, "Socket.IO is not served by the emulator")
            )
            return
        token = _bearer(scope)
        org = self.emulator.org_for_key(token) if token else None
        if org is None:
            await self._reject(scope, send, ApiError(401, "Unauthorized"))
            return
        scope.setdefault("state", {})["org"] = org
        headers: list[tuple[bytes, bytes]] = []
        if path.startswith(prefix + "/") and scope["type"] == "http":
            for name in _throttlers(path, scope.get("method", "GET"), prefix):
                limit = self.emulator.config.rate_limits.get(name)
                if limit is None:
                    continue
                allowed, remaining, reset = self._limiter.hit(
                    token or "", name, limit.limit, limit.ttl
                )
                reset_s = str(math.ceil(reset))
                headers += [
                    (f"x-ratelimit-limit-{name}".encode(), str(limit.limit).encode()),
                    (f"x-ratelimit-remaining-{name}".encode(), str(remaining).encode()),
                    (f"x-ratelimit-reset-{name}".encode(), reset_s.encode()),
                ]
                if not allowed:
                    extra = {k.decode(): v.decode() for k, v in headers}
                    extra["Retry-After"] = reset_s
                    error = ApiError(429, "ThrottlerException: Too Many Requests", headers=extra)
                    await error.response(_full_path(scope))(scope, receive, send)
                    return
        if headers:
            send = _with_headers(send, headers)
        if scope["type"] == "http":
            cap = self._body_limit(path)
            declared = _content_length(scope)
            if declared is not None and declared > cap:
                await too_large(scope, cap)(scope, _empty_receive, send)
                return
            receive = _limited(receive, cap)
        await self.app(scope, receive, send)

    def _body_limit(self, path: str) -> int:
        config = self.emulator.config
        if not path.startswith("/toolbox/"):
            return config.api_body_limit
        if path.endswith(_UPLOAD_SUFFIXES):
            return config.upload_body_limit
        return config.toolbox_body_limit

    async def _reject(self, scope: Scope, send: Send, error: ApiError) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": error.message})
            return
        await error.response(_full_path(scope))(scope, _empty_receive, send)


_UPLOAD_SUFFIXES = ("/files/upload", "/files/upload-v2", "/files/bulk-upload")


def too_large(scope: Scope, limit: int) -> Any:
    """The 413 for a body over ``limit``: the API's words (Express' body parser) or the
    daemon's envelope."""
    path = _path(scope)
    if path.startswith("/toolbox/"):
        toolbox = "/" + (path.split("/", 3)[3] if path.count("/") >= 3 else "")
        error = DaemonError(
            413, f"request body larger than {limit} bytes", "REQUEST_ENTITY_TOO_LARGE"
        )
        return error.response(toolbox, _method(scope))
    return ApiError(413, "request entity too large").response(_full_path(scope))


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes
    (bodies sent without a Content-Length are counted as they arrive)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def _method(scope: Scope) -> str:
    return str(scope.get("method", "WEBSOCKET"))


def _path(scope: Scope) -> str:
    return str(scope["path"])


async def _shutting_down(scope: Scope, send: Send, started: bool) -> None:
    """503 for a request not yet answered; close code 1001 (going away) for a WebSocket."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1001, "reason": "server shutting down"})
        return
    if started:
        return
    message = "The emulator is shutting down"
    path = _path(scope)
    if path.startswith("/toolbox/"):
        toolbox = "/" + (path.split("/", 3)[3] if path.count("/") >= 3 else "")
        await DaemonError(503, message, "SERVICE_UNAVAILABLE").response(toolbox, _method(scope))(
            scope, _empty_receive, send
        )
        return
    await ApiError(503, message).response(_full_path(scope))(scope, _empty_receive, send)


def _throttlers(path: str, method: str, prefix: str) -> list[str]:
    names = ["authenticated"]
    if method == "POST" and path == f"{prefix}/sandbox":
        names.append("sandbox-create")
    elif path.startswith(f"{prefix}/sandbox/") and (
        (method == "POST" and path.endswith(_LIFECYCLE_SUFFIXES))
        or (method == "DELETE" and path.count("/") == prefix.count("/") + 2)
    ):
        names.append("sandbox-lifecycle")
    return names


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = str(value.decode("latin-1")).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _full_path(scope: Scope) -> str:
    query = str(scope.get("query_string", b"").decode("latin-1"))
    path: str = scope["path"]
    return path + (f"?{query}" if query else "")


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return wrapped


def _recording(send: Send, scope: Scope, exchanges: list[Exchange]) -> Send:
    state: dict[str, Any] = {"body": []}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
            headers = dict(message.get("headers", []))
            state["type"] = headers.get(b"content-type", b"").decode("latin-1")
        elif message["type"] == "http.response.body":
            state["body"].append(message.get("body", b""))
            if not message.get("more_body", False):
                version = dict(scope.get("headers", [])).get(b"x-daytona-sdk-version")
                exchanges.append(
                    Exchange(
                        method=scope.get("method", "GET"),
                        path=scope["path"],
                        status=state.get("status", 0),
                        content_type=state.get("type", ""),
                        body=b"".join(state["body"]),
                        sdk_version=version.decode() if version else None,
                    )
                )
        await send(message)

    return wrapped


async def _discard(message: Message) -> None:
    return None


async def _empty_receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _drop(send: Send) -> None:
    """Close the client's TCP connection without answering (uvicorn), else raise."""
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionDropped("connection dropped by the emulator's fault injection")
    transport.abort()
    for _ in range(3):
        await asyncio.sleep(0)
    if hasattr(cycle, "disconnected"):
        cycle.disconnected = True
