"""The provider's connection pool (``LeanPool``) against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest

from sandstorm_daytona._pool import LeanPool, lean_transport

pytestmark = pytest.mark.anyio


class Server:
    """HTTP/1.1 on loopback: answers ``ok`` after ``delay``; counts its connections; with
    ``close``, closes each connection after one reply without saying so."""

    def __init__(self, delay: float = 0.0, close: bool = False) -> None:
        self.delay = delay
        self.close = close
        self.connections = 0
        self.open = 0
        self.most_open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            server.close()
            await server.wait_closed()


def client(limit: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    transport = lean_transport(limits)
    assert type(transport._pool) is LeanPool  # this httpcore is the one it was written for
    return httpx.AsyncClient(transport=transport, timeout=10)


async def test_concurrent_requests_share_the_pools_connections() -> None:
    server = Server(delay=0.01)
    async with server.serving() as url, client(4) as http:
        for _ in range(2):
            replies = await asyncio.gather(*(http.get(url) for _ in range(50)))
            assert [r.text for r in replies] == ["ok"] * 50
        assert server.most_open <= 4
        assert server.connections == 4  # the second burst reused the first one's


async def test_a_connection_the_server_closed_is_never_reused() -> None:
    server = Server(close=True)
    async with server.serving() as url, client(2) as http:
        for _ in range(5):
            assert (await http.get(url)).text == "ok"
            await asyncio.sleep(0.05)  # the server's FIN arrives: the idle socket reads EOF
        assert server.connections == 5


def test_another_httpcore_release_keeps_httpx_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # LeanPool overrides private internals of the releases it was written for; with any
    # other release the provider must not touch the pool
    monkeypatch.setattr(httpcore, "__version__", "1.1.0")
    transport = lean_transport(httpx.Limits(max_connections=4))
    assert type(transport._pool) is httpcore.AsyncConnectionPool
