"""An MCP server over any Sandstorm provider: ``sandstorm mcp`` or ``python -m sandstorm.mcp``.

Needs the ``mcp`` extra (``pip install 'sandstorm-core[mcp]'``). The tools adapt to the
provider's effective capabilities; every call goes through the public provider API, so
hooks and the audit log see it. See docs/mcp.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

try:
    import mcp  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "sandstorm.mcp needs the mcp extra: pip install 'sandstorm-core[mcp]'"
    ) from exc

from ._server import LOOPBACK, build_server, check_bind, run, serve_http, serve_stdio
from ._session import ServerOptions
from ._tools import TOOLS

if TYPE_CHECKING:
    import mcp_types

    from .._capabilities import Capability

__all__ = [
    "LOOPBACK",
    "ServerOptions",
    "build_server",
    "serve",
    "serve_http",
    "serve_stdio",
    "tool_declarations",
]


def tool_declarations(
    options: ServerOptions | None = None, capabilities: Iterable[Capability] | None = None
) -> list[mcp_types.Tool]:
    """The tools (names, descriptions, JSON schemas) a server with ``options`` lists for a
    provider with ``capabilities`` (``None``: every tool)."""
    options = options or ServerOptions()
    wanted = None if capabilities is None else set(capabilities)
    return [
        spec.tool(options)
        for spec in TOOLS
        if wanted is None or spec.needs is None or spec.needs in wanted
    ]


def serve(
    provider: str | None = None,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    options: ServerOptions | None = None,
    host: str = LOOPBACK,
    port: int = 8000,
    token: str | None = None,
    allow_remote: bool = False,
    **config: Any,
) -> None:
    """Serve the provider called ``provider`` (``None``: ``$SANDSTORM_PROVIDER`` or local),
    configured from ``config`` then the environment, until the client leaves (stdio) or
    the process is told to stop (SIGTERM, SIGINT, SIGHUP); then delete what it made."""
    from .. import get_async_provider

    if transport == "http":
        check_bind(host, token, allow_remote)
    elif transport != "stdio":
        raise ValueError(f"transport must be 'stdio' or 'http', not {transport!r}")
    backend = get_async_provider(provider, **config)

    async def main() -> None:
        async with backend:
            if transport == "stdio":
                await serve_stdio(backend, options)
            else:
                await serve_http(
                    backend,
                    options,
                    host=host,
                    port=port,
                    token=token,
                    allow_remote=allow_remote,
                    ready=lambda bound: _announce(host, bound),
                )

    run(main)


def _announce(host: str, port: int) -> None:
    import sys

    where = f"[{host}]" if ":" in host else host
    print(f"sandstorm mcp: serving http://{where}:{port}/mcp", file=sys.stderr, flush=True)
