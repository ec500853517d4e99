"""Network policy: blocked by default (host loopback unreachable, no DNS), host on request."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import sandstorm
from sandstorm import NetworkPolicy, ProviderConfigError


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener on the host's 127.0.0.1 that answers b'hello' to each connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = (
    "import socket\n"
    "try:\n"
    "    s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
    "    print('connected', s.recv(5).decode())\n"
    "except OSError as exc:\n"
    "    print('failed', type(exc).__name__)\n"
)


def test_blocked_by_default(lp: sandstorm.SyncProvider, listener: int) -> None:
    assert lp.run(CONNECT.format(port=listener)).stdout.startswith("failed")
    dns = lp.run(
        "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('resolved')\n"
        "except OSError as exc:\n    print('failed', exc)"
    )
    assert dns.stdout.startswith("failed")
    interfaces = lp.run("import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert interfaces.stdout == "['lo']\n"


def test_loopback_inside_the_sandbox_works(lp: sandstorm.SyncProvider) -> None:
    code = (
        "import socket, threading\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
        "threading.Thread(target=lambda: srv.accept()[0].sendall(b'own'), daemon=True).start()\n"
        "print(socket.create_connection(srv.getsockname()).recv(3).decode())\n"
    )
    assert lp.run(code).stdout == "own\n"


def test_host_network_on_request(lp: sandstorm.SyncProvider, listener: int) -> None:
    result = lp.run(CONNECT.format(port=listener), network=NetworkPolicy.host())
    assert result.stdout == "connected hello\n"
    ws = lp.create_workspace(network=NetworkPolicy.host())
    assert lp.run_in_workspace(ws, CONNECT.format(port=listener)).stdout == "connected hello\n"
    blocked = lp.create_workspace(network=NetworkPolicy.blocked())
    assert lp.run_in_workspace(blocked, CONNECT.format(port=listener)).stdout.startswith("failed")


def test_allow_list_is_refused_clearly(lp: sandstorm.SyncProvider) -> None:
    with pytest.raises(ProviderConfigError, match="allow-list"):
        lp.create_workspace(network=NetworkPolicy(mode="allow_list", allow=("127.0.0.1",)))
