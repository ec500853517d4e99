"""The MCP server: tools over one provider, served on stdio or streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from .. import __version__
from .._audit import AuditEvent
from .._errors import ExecutionTimeout, SandstormError
from .._plugins import plugin_manager
from .._provider import AsyncProvider
from ._session import ServerOptions, Session, Sessions
from ._tools import TOOLS, available, timed_out

__all__ = ["LOOPBACK", "build_server", "serve_http", "serve_stdio"]

log = logging.getLogger("sandstorm.mcp")

LOOPBACK = "127.0.0.1"
"""Where ``sandstorm mcp --http`` listens unless told otherwise."""

MAX_HTTP_SESSIONS = 100
"""Open HTTP sessions at once (each may hold a workspace); more are refused with 503."""

_BY_NAME = {spec.name: spec for spec in TOOLS}
_SESSION_KEY = "sandstorm.mcp.session"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def build_server(
    provider: AsyncProvider, options: ServerOptions | None = None, *, sessions_only: bool = False
) -> Server[Sessions]:
    """An MCP server exposing ``provider`` as tools; the caller owns (and closes) the provider.

    Each MCP connection gets its own session and workspace, made on the first tool call
    that needs one and deleted when the connection ends or the server stops. Requests of
    the 2026-07-28 protocol carry no session: they share one, deleted when the server
    stops. ``sessions_only`` makes the server advertise only the session (handshake)
    protocol versions in ``server/discover``, so clients open sessions (streamable HTTP).
    """
    options = options or ServerOptions()

    @contextlib.asynccontextmanager
    async def lifespan(_: Server[Sessions]) -> AsyncIterator[Sessions]:
        sessions = Sessions(provider, options)
        try:
            yield sessions
        finally:
            with anyio.CancelScope(shield=True):
                await sessions.aclose()

    async def list_tools(
        ctx: ServerRequestContext[Sessions], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caps = await ctx.lifespan_context.effective()
        return types.ListToolsResult(
            tools=[spec.tool(options) for spec in available(provider, caps)]
        )

    async def call_tool(
        ctx: ServerRequestContext[Sessions], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        sessions = ctx.lifespan_context
        session = _session_of(ctx, sessions)
        return await _call(sessions, session, params.name, params.arguments)

    server: Server[Sessions] = Server(
        "sandstorm",
        version=__version__,
        instructions=(
            f"Tools that run code in a '{provider.name}' sandbox. The session has one "
            "workspace: files, processes and interpreter state persist between calls "
            "and are deleted when the session ends."
        ),
        lifespan=lifespan,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    if sessions_only:
        server.add_request_handler("server/discover", types.RequestParams, _handshake_only(server))
    return server


def _handshake_only(
    server: Server[Sessions],
) -> Callable[
    [ServerRequestContext[Sessions], types.RequestParams], Awaitable[types.DiscoverResult]
]:
    async def discover(
        ctx: ServerRequestContext[Sessions], params: types.RequestParams
    ) -> types.DiscoverResult:
        # a discover answer naming no 2026 version sends clients to the initialize
        # handshake, which opens a session (the go SDK's stateful servers do the same)
        return types.DiscoverResult(
            supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
            capabilities=server.get_capabilities(),
            instructions=server.instructions,
        )

    return discover


def _session_of(ctx: ServerRequestContext[Sessions], sessions: Sessions) -> Session:
    """The session of the connection ``ctx`` came on; closed with that connection."""
    # the SDK builds the request's ServerSession around its connection; a handshake-era
    # connection lives as long as the MCP session (stdio process, HTTP session id)
    connection = getattr(ctx.session, "_connection", None)
    if connection is None or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return sessions.shared()
    session = connection.state.get(_SESSION_KEY)
    if session is None:
        session = sessions.new()
        connection.state[_SESSION_KEY] = session
        connection.exit_stack.push_async_callback(sessions.close, session)
    assert isinstance(session, Session)
    return session


async def _call(
    sessions: Sessions, session: Session, name: str, arguments: dict[str, Any] | None
) -> types.CallToolResult:
    """Run one tool call; every failure comes back as a tool error, never raised."""
    options = session.options
    spec = _BY_NAME.get(name)
    caps = await sessions.effective()
    if spec is None or spec not in available(sessions.provider, caps):
        names = ", ".join(s.name for s in available(sessions.provider, caps))
        return _error(f"unknown tool {name!r}; this server has: {names}")
    session.capabilities = caps
    async with session.limit:
        try:
            args = spec.args.model_validate(arguments or {})
            grace = options.max_timeout + 30
            content = await asyncio.wait_for(spec.handler(session, args), grace)
        except ValidationError as exc:
            result = _error(f"invalid arguments for {name}: {_describe(exc)}")
        except ExecutionTimeout as exc:
            result = types.CallToolResult(content=list(timed_out(options, exc)), is_error=True)
        except SandstormError as exc:
            result = _error(f"{type(exc).__name__}: {exc}")
        except TimeoutError:
            result = _error(f"{name} did not finish within {options.max_timeout + 30:g}s")
        except Exception as exc:  # a bug or an unmapped failure: reported, never fatal
            log.exception("sandstorm mcp: tool %s failed", name)
            result = _error(f"internal error in {name}: {type(exc).__name__}: {exc}")
        else:
            result = types.CallToolResult(content=list(content))
    _audit(sessions.provider, session, name, result.is_error)
    return result


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems[:10])


def _audit(provider: AsyncProvider, session: Session, tool: str, is_error: bool) -> None:
    event = AuditEvent(
        action="mcp.tool",
        provider=provider.name,
        workspace_id=session.workspace_id,
        details={"tool": tool, "error": is_error},
    )
    try:
        plugin_manager().hook.sandstorm_audit(event=event)
    except Exception:  # a plugin's failure must not turn into a tool failure
        log.exception("sandstorm mcp: an audit plugin failed")


# ---------------------------------------------------------------------- transports


async def serve_stdio(provider: AsyncProvider, options: ServerOptions | None = None) -> None:
    """Serve one MCP client on this process's stdin and stdout until it disconnects."""
    from mcp.server.stdio import stdio_server

    server = build_server(provider, options)
    async with _stdin_lines() as stdin, stdio_server(stdin=stdin) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


_MAX_LINE = 64 * 1024 * 1024
"""Longest JSON-RPC message read from stdin (a large write_file is one line)."""


class _Lines:
    """Lines of a pipe read on the event loop, not in a thread: a signal can stop the
    server at once (a thread blocked in ``read`` cannot be cancelled)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # the end: a last line without \n
                line = exc.partial
            except asyncio.LimitOverrunError:
                # one message over the limit must not end the server (and every workspace
                # with it): drop it; the client's request goes unanswered
                dropped = await self._skip_line()
                log.warning(
                    "sandstorm mcp: dropped a message of %d bytes (limit %d)", dropped, _MAX_LINE
                )
                continue
            if not line:
                raise StopAsyncIteration
            return line.decode("utf-8", "replace")

    async def _skip_line(self) -> int:
        """Discard the rest of an over-long line; how many bytes it had (at least)."""
        dropped = 0
        while True:
            try:
                dropped += len(await self._reader.readuntil(b"\n"))
                return dropped
            except asyncio.LimitOverrunError as exc:
                dropped += len(await self._reader.read(exc.consumed))
            except asyncio.IncompleteReadError as exc:
                return dropped + len(exc.partial)


@contextlib.asynccontextmanager
async def _stdin_lines() -> AsyncIterator[Any]:
    """Stdin as async lines; fd 0 points at the null device meanwhile (children read EOF).

    Yields ``None`` (the SDK's threaded reader) when stdin is no pipe, socket or tty.
    """
    loop = asyncio.get_running_loop()
    saved = os.dup(0)
    pipe = os.fdopen(os.dup(saved), "rb", buffering=0)
    reader = asyncio.StreamReader(limit=_MAX_LINE)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except (ValueError, OSError):
        pipe.close()
        os.close(saved)
        yield None
        return
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        yield _Lines(reader)
    finally:
        transport.close()
        os.dup2(saved, 0)
        os.close(saved)


async def serve_http(
    provider: AsyncProvider,
    options: ServerOptions | None = None,
    *,
    host: str = LOOPBACK,
    port: int = 8000,
    token: str | None = None,
    allow_remote: bool = False,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve MCP over streamable HTTP at ``http://host:port/mcp`` until cancelled.

    A host other than loopback needs ``allow_remote`` and a ``token``; with a token every
    request must carry ``Authorization: Bearer <token>``. ``ready`` gets the bound port.
    """
    import uvicorn

    check_bind(host, token, allow_remote)
    options = options or ServerOptions()
    server = build_server(provider, options, sessions_only=True)
    # a write_file of the largest allowed file is one request: base64 plus the envelope
    body = max(4 * 1024 * 1024, options.max_file_bytes * 4 // 3 + 1024 * 1024)
    app: ASGIApp = server.streamable_http_app(
        host=host, max_request_body_size=body, max_sessions=MAX_HTTP_SESSIONS
    )
    if token is not None:
        app = _bearer(app, token)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    web = _uvicorn_server()(config)
    task = asyncio.ensure_future(web.serve())
    try:
        while not web.started:
            if task.done():
                await task
                raise OSError(f"could not listen on {host}:{port}")
            await asyncio.sleep(0.02)
        if ready is not None:
            ready(web.servers[0].sockets[0].getsockname()[1])
        await asyncio.shield(task)
    finally:
        web.should_exit = True
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task])


def _uvicorn_server() -> type[Any]:
    import uvicorn

    class Quiet(uvicorn.Server):
        """uvicorn without its own signal handling: :func:`run` owns the signals."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Quiet


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, allow_remote: bool) -> None:
    """Refuse a non-loopback bind without ``allow_remote`` and a token."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise ValueError(
            f"{host} is not a loopback address: anyone who reaches it could run code; "
            "pass --allow-remote and set a token (SANDSTORM_MCP_TOKEN) to serve it"
        )
    if not token:
        raise ValueError(
            f"serving on {host} needs a bearer token: set SANDSTORM_MCP_TOKEN (or --token-file)"
        )


def _bearer(app: ASGIApp, token: str) -> ASGIApp:
    """``app`` behind a bearer-token check on every HTTP request (any path, any method;
    the scheme is case-insensitive, the token compared in constant time)."""
    expected = token.encode()

    async def guarded(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            valid = hmac.compare_digest(credentials.strip(), expected)
            if scheme.lower() != b"bearer" or not valid:
                if scope["type"] == "websocket":  # refused before the handshake: a 403
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b'Bearer realm="sandstorm"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong token\n"})
                return
        await app(scope, receive, send)

    return guarded


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a new event loop; SIGTERM, SIGHUP and SIGINT end it cleanly (the
    sessions' workspaces are deleted before the process exits)."""

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        stops = []
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with contextlib.suppress(ValueError, NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, task.cancel)
                stops.append(signum)
        try:
            await main()
        except asyncio.CancelledError:
            pass
        finally:
            for signum in stops:
                loop.remove_signal_handler(signum)

    asyncio.run(guarded())
