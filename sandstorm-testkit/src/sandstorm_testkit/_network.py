"""Network policy: blocked means blocked; host and allow-list reach what they should."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sandstorm import AsyncProvider, Capability, NetworkPolicy, ProviderConfigError

from ._base import AsyncContract, WorkspaceFactory
from ._helpers import show

__all__ = ["Endpoint", "NetworkContract", "serve_endpoint"]


@dataclass
class Endpoint:
    """A TCP server on the test machine that answers ``pong:<token>`` and records connections."""

    host: str
    port: int
    connections: list[bytes] = field(default_factory=list)


def serve_endpoint() -> Iterator[Endpoint]:
    """Serve an :class:`Endpoint` on 127.0.0.1 until the generator is closed."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    endpoint = Endpoint("127.0.0.1", server.getsockname()[1])
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    data = conn.recv(256)
                    endpoint.connections.append(data)
                    conn.sendall(b"pong:" + data)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, name="sstk-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join(5)
        server.close()


PROBE = (
    "import socket\n"
    "try:\n"
    "    with socket.create_connection(({host!r}, {port}), timeout=5) as s:\n"
    "        s.sendall({token!r})\n"
    "        print('reached', s.recv(256).decode())\n"
    "except OSError as exc:\n"
    "    print('blocked', type(exc).__name__)\n"
)


@pytest.mark.requires(Capability.NETWORK_POLICY)
class NetworkContract(AsyncContract):
    """The workspace's network policy is enforced.

    ``endpoint`` is a server the code may or may not reach; the default listens on the
    test machine's 127.0.0.1. Override it when the provider's sandboxes cannot reach the
    test machine even with host networking.
    """

    @pytest.fixture
    def endpoint(self) -> Iterator[Endpoint]:
        """The server the probes try to reach."""
        yield from serve_endpoint()

    async def _probe(
        self,
        provider: AsyncProvider,
        new_workspace: WorkspaceFactory,
        endpoint: Endpoint,
        policy: NetworkPolicy | None,
        token: str,
    ) -> str:
        kwargs = {} if policy is None else {"network": policy}
        workspace = await new_workspace(**kwargs)
        assert workspace.network == (policy or NetworkPolicy())
        result = await provider.run_in_workspace(
            workspace,
            PROBE.format(host=endpoint.host, port=endpoint.port, token=token.encode()),
            timeout=60,
        )
        assert result.exit_code == 0, show(result)
        return result.stdout.strip()

    async def test_default_policy_blocks(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, endpoint: Endpoint
    ) -> None:
        out = await self._probe(provider, new_workspace, endpoint, None, "default")
        assert out.startswith("blocked"), out
        assert endpoint.connections == []

    async def test_blocked_policy_blocks(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, endpoint: Endpoint
    ) -> None:
        out = await self._probe(provider, new_workspace, endpoint, NetworkPolicy.blocked(), "b")
        assert out.startswith("blocked"), out
        assert endpoint.connections == []

    async def test_host_policy_reaches_the_endpoint(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, endpoint: Endpoint
    ) -> None:
        out = await self._probe(provider, new_workspace, endpoint, NetworkPolicy.host(), "host-1")
        assert out == "reached pong:host-1", out
        assert endpoint.connections == [b"host-1"]

    async def test_allow_list_is_enforced_or_refused(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory, endpoint: Endpoint
    ) -> None:
        """An allow-list either works both ways or is refused up front; never silently ignored."""
        listed = NetworkPolicy(mode="allow_list", allow=(endpoint.host,))
        refusal: str | None = None
        try:
            out = await self._probe(provider, new_workspace, endpoint, listed, "allowed")
        except ProviderConfigError as exc:
            refusal = str(exc)
        if refusal is not None:
            assert "allow" in refusal.lower(), f"the refusal should say why: {refusal}"
            with pytest.raises(ProviderConfigError):
                await provider.run("print(1)", network=listed)
            return
        assert out == "reached pong:allowed", out
        other = NetworkPolicy(mode="allow_list", allow=("192.0.2.1",))  # TEST-NET-1
        out = await self._probe(provider, new_workspace, endpoint, other, "refused")
        assert out.startswith("blocked"), out
        assert endpoint.connections == [b"allowed"]

    async def test_one_shot_run_with_host_network(
        self, provider: AsyncProvider, endpoint: Endpoint
    ) -> None:
        result = await provider.run(
            PROBE.format(host=endpoint.host, port=endpoint.port, token=b"one-shot"),
            network=NetworkPolicy.host(),
            timeout=60,
        )
        assert result.stdout.strip() == "reached pong:one-shot", show(result)
