"""``sandstorm mcp`` over the Daytona provider on the emulator: the official MCP client
in-process, over stdio and over streamable HTTP; nothing is left after a disconnect or
SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandstorm import Capability
from sandstorm_daytona import DaytonaConfig, DaytonaProvider, RetryPolicy

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters

from sandstorm.mcp import ServerOptions, build_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n"
SERVER = (
    "import http.server, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('hello from ' + self.path).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "socketserver.TCPServer.allow_reuse_address = True\n"
    "with socketserver.TCPServer(('127.0.0.1', {port}), H) as s:\n"
    "    print('listening', flush=True)\n"
    "    s.serve_forever()\n"
)


@pytest.fixture
def anyio_backend() -> str:
    """The provider runs on asyncio."""
    return "asyncio"


def _packages() -> list[str]:
    try:
        import matplotlib
    except ImportError:
        return []
    return [str(Path(matplotlib.__file__).parent.parent)]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """An emulator whose engine shows matplotlib to the sandboxes (the chart test)."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    config = EmulatorConfig(
        provider_options={"python_path": _packages()},
        git_clone_host_paths=(tempfile.gettempdir(),),
    )
    with running_emulator(config) as emu:
        yield emu


def live(emu: Any) -> list[str]:
    """Sandboxes the emulator still holds."""
    return [
        record.id
        for record in list(emu.emulator.sandboxes.values())
        if record.state not in ("destroyed", "destroying")
    ]


async def none_live(emu: Any, timeout: float = 15) -> None:
    """Wait until the emulator holds no sandbox (deletes can finish in the background)."""
    deadline = time.monotonic() + timeout
    while live(emu):
        if time.monotonic() > deadline:
            pytest.fail(f"sandboxes left behind: {live(emu)}")
        await asyncio.sleep(0.1)


def config(emu: Any) -> DaytonaConfig:
    """The provider's config for the emulator."""
    return DaytonaConfig.load(
        {
            "api_key": emu.api_key,
            "api_url": emu.api_url,
            "retry": RetryPolicy(initial_backoff=0.05, max_backoff=0.5, deadline=10),
        },
        environ={},
    )


@pytest.fixture
async def daytona(emulator: Any) -> AsyncIterator[DaytonaProvider]:
    """The Daytona provider on the emulator; afterwards no sandbox may be left."""
    async with DaytonaProvider(config(emulator)) as provider:
        yield provider
    await none_live(emulator)


class NoSnapshots(DaytonaProvider):
    """Daytona declaring no snapshots."""

    capabilities = DaytonaProvider.capabilities - {Capability.SNAPSHOTS}


def text(result: Any) -> str:
    """The text of a tool result's first block."""
    return str(result.content[0].text)


async def test_tools_on_daytona(daytona: DaytonaProvider, emulator: Any) -> None:
    server = build_server(daytona, ServerOptions(default_timeout=10, max_timeout=10))
    async with Client(server, raise_exceptions=True) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"run_code", "snapshot", "restore", "expose_port", "start_process"} <= names

        await client.call_tool("run_code", {"code": "x = 41"})
        assert "result: 42" in text(await client.call_tool("run_code", {"code": "x + 1"}))
        chart = await client.call_tool("run_code", {"code": PLOT})
        images = [block for block in chart.content if block.type == "image"]
        assert images, text(chart)
        assert base64.b64decode(images[0].data).startswith(b"\x89PNG")

        blob = bytes(range(256))
        encoded = base64.b64encode(blob).decode()
        wrote = await client.call_tool(
            "write_file", {"path": "b.bin", "content": encoded, "encoding": "base64"}
        )
        assert not wrote.is_error, text(wrote)
        assert text(await client.call_tool("read_file", {"path": "b.bin"})) == f"base64:{encoded}"
        # a sparse file claiming more than read_file returns is refused before the download
        await client.call_tool("run_command", {"command": "truncate -s 100M big"})
        counts = emulator.emulator.request_counts
        downloads = sum(n for key, n in counts.items() if key.endswith("/bulk-download"))
        big = await client.call_tool("read_file", {"path": "big"})
        assert big.is_error
        assert "104857600 bytes, over the 10485760-byte read limit" in text(big)
        assert sum(n for key, n in counts.items() if key.endswith("/bulk-download")) == downloads

        slow = await client.call_tool("run_command", {"command": "sleep 30", "timeout": 0.5})
        assert slow.is_error, text(slow)
        assert "timed out" in text(slow)
        assert "result: 41" in text(await client.call_tool("run_code", {"code": "x"}))

        command = f"exec python3 -c {shlex.quote(SERVER.format(port=8771))}"
        started = text(await client.call_tool("start_process", {"command": command}))
        process_id = started.split("process_id: ")[1].split()[0]
        for _ in range(100):
            logs = text(await client.call_tool("process_logs", {"process_id": process_id}))
            if "listening" in logs:
                break
            await asyncio.sleep(0.05)
        exposed = text(await client.call_tool("expose_port", {"port": 8771}))
        url = exposed.split("url: ")[1].split()[0]
        headers = json.loads(exposed.split("headers: ")[1]) if "headers: " in exposed else {}
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            response = await http.get(url.rstrip("/") + "/ping")
        assert response.text == "hello from /ping"
        assert live(emulator)
    await none_live(emulator)  # the session's sandbox went with the client

    async with (
        NoSnapshots(config(emulator)) as bare,
        Client(build_server(bare), raise_exceptions=True) as client,
    ):
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "snapshot" not in names
    assert "restore" not in names
    assert "run_code" in names


def _env(emu: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SANDSTORM_PROVIDER="daytona", DAYTONA_API_KEY=emu.api_key, DAYTONA_API_URL=emu.api_url
    )
    return env


def _http_server(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sandstorm.mcp", "--http", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


async def test_stdio_and_http_leave_nothing(emulator: Any) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sandstorm.mcp"], env=_env(emulator)
    )
    async with Client(params) as client:
        await client.call_tool("run_code", {"code": "y = 'kept'"})
        assert "result: 'kept'" in text(await client.call_tool("run_code", {"code": "y"}))
        assert live(emulator)
    await none_live(emulator)

    process = _http_server(_env(emulator))
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "serving http://127.0.0.1:" in line, line
        url = line.split("serving ", 1)[1].strip()
        with contextlib.suppress(Exception):  # the client may notice its server is gone
            async with Client(url) as client:
                started = await client.call_tool("start_process", {"command": "sleep 600"})
                assert not started.is_error, text(started)
                assert live(emulator)
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 30)
        assert process.returncode == 0
        await none_live(emulator)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()  # type: ignore[union-attr]
