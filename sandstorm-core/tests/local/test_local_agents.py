"""The kit's interpreter, process and port contracts on ``local``, plus local specifics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sandstorm
import sandstorm_testkit as kit
from sandstorm.local import LocalProvider

from .conftest import gone, sandbox_processes


def _sleeper(token: str) -> str:
    """A command line whose process carries ``token`` in its argv (seen in /proc)."""
    return f"exec python3 -c 'import time; time.sleep(300)' {token}"


def _appears(token: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while not sandbox_processes(token):
        assert time.monotonic() < deadline, f"no process carries {token}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def agents_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-agents")


def packages_dir() -> tuple[str, ...]:
    """Where matplotlib is installed on the host (the dev environment has it), shown to
    the sandboxes through ``python_path`` so the chart test runs."""
    try:
        import matplotlib
    except ImportError:
        return ()
    return (str(Path(matplotlib.__file__).parent.parent),)


class _Local:
    @pytest.fixture
    def provider_factory(self, agents_root: Path) -> Callable[[], sandstorm.AsyncProvider]:
        return lambda: LocalProvider.from_config(root=str(agents_root), python_path=packages_dir())


class TestInterpreter(_Local, kit.InterpreterContract):
    pass


class TestProcesses(_Local, kit.ProcessContract):
    pass


class TestPorts(_Local, kit.PortContract):
    pass


@pytest.fixture
def lp_agents(agents_root: Path) -> Iterator[sandstorm.SyncProvider]:
    with sandstorm.get_provider("local", root=str(agents_root / "sync")) as provider:
        yield provider


def test_sync_facade_and_handle(lp_agents: sandstorm.SyncProvider) -> None:
    with lp_agents.sandbox() as sandbox:
        assert sandbox.run_code("x = 2").error is None
        assert sandbox.run_code("x * 21").text == "42"
        handle = sandbox.start_process("echo hi; exit 4")
        assert handle.wait(timeout=30) == 4
        assert handle.logs().stdout == "hi\n"
        assert [c.text for c in handle.stream()] == ["hi\n"]


def test_processes_die_with_the_provider(agents_root: Path) -> None:
    token = "sstk-agents-token-4711"
    with sandstorm.get_provider("local", root=str(agents_root / "close")) as provider:
        workspace = provider.create_workspace()
        provider.start_process(workspace, _sleeper(token))
        _appears(token)
        context = provider.create_context(workspace)
        assert provider.run_code(workspace, "1", context=context).text == "1"
        assert provider.list_processes(workspace)[0].status == sandstorm.ProcessStatus.RUNNING
    assert gone(token, grace=5) == []


def test_sandbox_still_has_no_network(lp_agents: sandstorm.SyncProvider) -> None:
    with lp_agents.sandbox() as sandbox:
        execution = sandbox.run_code(
            "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))"
        )
        assert execution.error is not None
        assert execution.error.name in {"OSError", "TimeoutError", "ConnectionRefusedError"}


def test_context_cwd_and_env(lp_agents: sandstorm.SyncProvider) -> None:
    with lp_agents.sandbox() as sandbox:
        sandbox.write_file("sub/marker.txt", "here")
        context = sandbox.create_context(cwd="sub", env={"GREETING": "hi"})
        execution = sandbox.run_code(
            "import os\nprint(open('marker.txt').read(), os.environ['GREETING'])",
            context=context,
        )
        assert execution.error is None, execution.error
        assert execution.stdout == "here hi\n"
        assert (
            "SANDSTORM_CONTEXT_CWD"
            not in sandbox.run_code("import os\nprint(sorted(os.environ))", context=context).stdout
        )


def test_process_dies_with_its_workspace(lp_agents: sandstorm.SyncProvider) -> None:
    token = "sstk-agents-token-4712"
    workspace = lp_agents.create_workspace()
    lp_agents.start_process(workspace, _sleeper(token))
    lp_agents.create_context(workspace)
    _appears(token)
    lp_agents.delete_workspace(workspace)
    assert gone(token, grace=5) == []


ECHO = (
    "import socket\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 9009))\n"
    "s.listen()\n"
    "print('listening', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.sendall(c.recv(100).upper())\n"
    "    c.close()\n"
)


def test_port_forwards_any_tcp(lp_agents: sandstorm.SyncProvider) -> None:
    import socket
    import time
    from urllib.parse import urlsplit

    with lp_agents.sandbox() as sandbox:
        sandbox.write_file("echo.py", ECHO)
        server = sandbox.start_process("exec python3 echo.py")
        deadline = time.monotonic() + 20
        while "listening" not in server.logs().stdout:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.05)
        exposed = sandbox.expose_port(9009)
        address = urlsplit(exposed.url)
        assert address.hostname == "127.0.0.1"
        with socket.create_connection((address.hostname, address.port or 0), timeout=10) as s:
            s.sendall(b"raw bytes")
            assert s.recv(100) == b"RAW BYTES"
        sandbox.unexpose_port(9009)
        with pytest.raises(OSError):
            socket.create_connection((address.hostname, address.port or 0), timeout=2).close()
