"""``sandstorm mcp`` as a real process: stdio and streamable HTTP, the official client, and
nothing left behind after the client leaves or the server gets SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

import sandstorm
from sandstorm._cli import main as cli

from .conftest import packages_dir, text

pytestmark = pytest.mark.anyio


def server_env(root: Path, marker: str, **extra: str) -> dict[str, str]:
    """The environment of a server process: the local provider at ``root``, tagged."""
    env = dict(os.environ)
    env.update(
        SANDSTORM_PROVIDER="local",
        SANDSTORM_LOCAL_ROOT=str(root),
        SANDSTORM_LOCAL_PYTHON_PATH=",".join(packages_dir()),
        SANDSTORM_MCP_TEST_MARKER=marker,
        **extra,
    )
    return env


def host_processes(needle: str) -> list[int]:
    """Live processes whose command line or environment holds ``needle``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                seen = f.read()
            with contextlib.suppress(OSError), open(f"/proc/{entry}/environ", "rb") as f:
                seen += f.read()
        except OSError:
            continue
        if needle.encode() in seen:
            found.append(int(entry))
    return found


async def nothing_left(root: Path, needle: str, timeout: float = 15) -> None:
    """Wait until the state root holds no workspace and no process holds ``needle``."""
    deadline = time.monotonic() + timeout
    async with sandstorm.get_async_provider("local", root=str(root)) as local:
        while True:
            workspaces = await local.list_workspaces()
            processes = host_processes(needle)
            if not workspaces and not processes:
                return
            if time.monotonic() > deadline:
                for workspace in workspaces:
                    await local.delete_workspace(workspace)
                for pid in processes:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                pytest.fail(f"left behind: {workspaces} {processes}")
            await asyncio.sleep(0.1)


async def exercise(client: Client, sleeper: str) -> None:
    """Stateful code, a file and a background process: what a session leaves to clean."""
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"run_code", "start_process", "snapshot"} <= names
    await client.call_tool("run_code", {"code": "x = 20"})
    assert "result: 40" in text(await client.call_tool("run_code", {"code": "x * 2"}))
    started = await client.call_tool("start_process", {"command": f"exec sleep {sleeper}"})
    assert not started.is_error, text(started)
    for _ in range(100):
        if host_processes(sleeper):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the background process did not start")


def sleeper_arg() -> str:
    """A unique sleep duration: the background process is found by it on the host."""
    return f"{600 + uuid.uuid4().int % 10_000}.{uuid.uuid4().int % 10_000:04d}"


async def test_stdio_client_leaves_nothing_behind(mcp_root: Path) -> None:
    root, marker, sleeper = mcp_root / "state", uuid.uuid4().hex, sleeper_arg()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sandstorm.mcp"], env=server_env(root, marker)
    )
    async with Client(params) as client:
        await exercise(client, sleeper)
    await nothing_left(root, sleeper)
    await nothing_left(root, marker)  # the server process is gone too


async def test_stdio_server_survives_a_message_over_its_line_limit(mcp_root: Path) -> None:
    # one line over 64 MiB (a huge write_file) is dropped; the server and session go on
    def message(id_: int, method: str, params: dict[str, Any]) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})

    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}}
    huge = {"name": "write_file", "arguments": {"path": "f", "content": "x" * (65 << 20)}}
    echo = {"name": "run_command", "arguments": {"command": "echo still here"}}
    lines = [
        message(1, "initialize", hello),
        '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
        message(2, "tools/call", huge),
        message(3, "tools/call", echo),
    ]
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandstorm.mcp",
        env=server_env(mcp_root / "state", uuid.uuid4().hex),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        server.stdin.write("\n".join(lines).encode() + b"\n")
        await server.stdin.drain()
        replies = [json.loads(await server.stdout.readline()) for _ in range(2)]
        assert [reply["id"] for reply in replies] == [1, 3]
        assert "still here" in replies[1]["result"]["content"][0]["text"]
    finally:
        server.stdin.close()
        stderr = (await asyncio.wait_for(server.communicate(), 30))[1].decode()
    assert server.returncode == 0, stderr
    assert "dropped a message of 68157" in stderr


async def test_stdio_server_cleans_up_on_sigterm(mcp_root: Path) -> None:
    root, marker, sleeper = mcp_root / "state", uuid.uuid4().hex, sleeper_arg()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sandstorm.mcp", "--provider", "local"],
        env=server_env(root, marker),
    )
    with contextlib.suppress(Exception):  # the client may notice its server is gone
        async with Client(params) as client:
            await exercise(client, sleeper)
            (server,) = [
                pid for pid in host_processes(marker) if pid not in host_processes(sleeper)
            ]
            os.kill(server, signal.SIGTERM)
            await nothing_left(root, sleeper)
            await nothing_left(root, marker)


@contextlib.contextmanager
def http_server(
    root: Path, marker: str, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``sandstorm mcp --http`` on a free loopback port, and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandstorm.mcp", "--http", "--port", "0", *args],
        env=server_env(root, marker, **env),
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "serving http://127.0.0.1:" in line, line
        yield process, line.split("serving ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


async def test_http_sessions_and_sigterm(mcp_root: Path) -> None:
    root, marker = mcp_root / "state", uuid.uuid4().hex
    with http_server(root, marker, SANDSTORM_MCP_TOKEN="s3cret-token") as (process, url):
        async with httpx.AsyncClient(timeout=10) as plain:
            refused = await plain.post(url, json={})
            assert refused.status_code == 401
            wrong = await plain.post(url, json={}, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            elsewhere = await plain.get(url.replace("/mcp", "/other"))
            assert elsewhere.status_code == 401
            # the scheme is case-insensitive (RFC 9110); the token is not
            kinds = {"Content-Type": "application/json", "Accept": "application/json"}
            lower = await plain.post(
                url, json={}, headers={**kinds, "Authorization": "bearer s3cret-token"}
            )
            assert lower.status_code not in (401, 500), lower.text
            upper = await plain.post(url, json={}, headers={"Authorization": "Bearer S3CRET-TOKEN"})
            assert upper.status_code == 401
            # DNS rebinding: a web page whose name resolves to loopback is still refused
            token = {"Authorization": "Bearer s3cret-token"}
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
            kinds = {"Content-Type": "application/json", "Accept": "application/json"}
            for header, status in (("Host", 421), ("Origin", 403)):
                value = "evil.example" if header == "Host" else "http://evil.example"
                rebound = await plain.post(
                    url, json=initialize, headers={**token, **kinds, header: value}
                )
                assert rebound.status_code == status, (header, rebound.text)
        auth = {"Authorization": "Bearer s3cret-token"}
        # a client that leaves: its session's workspace and process go, the server stays
        sleeper = sleeper_arg()
        async with (
            httpx2.AsyncClient(headers=auth, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            await exercise(client, sleeper)
        await nothing_left(root, sleeper)
        assert process.poll() is None
        # SIGTERM while a client is connected: its workspace and process go too
        sleeper = sleeper_arg()
        with contextlib.suppress(Exception):
            async with (
                httpx2.AsyncClient(headers=auth, timeout=30) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                await exercise(client, sleeper)
                process.send_signal(signal.SIGTERM)
                await asyncio.to_thread(process.wait, 30)
        assert process.returncode == 0
        await nothing_left(root, sleeper)


def test_remote_bind_needs_a_flag_and_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDSTORM_MCP_TOKEN", raising=False)
    assert cli(["mcp", "--http", "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert cli(["mcp", "--http", "--host", "0.0.0.0", "--allow-remote"]) == 2
    assert "token" in capsys.readouterr().err
    # a bad --persistent name stops the server at startup, not every tool call after it
    assert cli(["mcp", "--persistent", "no spaces"]) == 2
    assert "persistent workspace name must be 1-63 letters" in capsys.readouterr().err


def test_missing_extra_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an install without the extra sees
    assert cli(["mcp"]) == 2
    assert "pip install 'sandstorm-core[mcp]'" in capsys.readouterr().err
