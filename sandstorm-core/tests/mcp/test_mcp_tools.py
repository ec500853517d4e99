"""The MCP tools on the local provider, through the official client connected in-process."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import time
from pathlib import Path

import httpx
import pytest

import sandstorm
from sandstorm import Capability
from sandstorm.local import LocalProvider

from .conftest import Connect, packages_dir, png, text

pytestmark = pytest.mark.anyio

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
ALL_TOOLS = {
    "run_code",
    "run_command",
    "write_file",
    "read_file",
    "list_files",
    "start_process",
    "process_logs",
    "stop_process",
    "expose_port",
    "snapshot",
    "restore",
}


class Bare(LocalProvider):
    """The local engine declaring neither snapshots, processes nor ports."""

    capabilities = LocalProvider.capabilities - {
        Capability.SNAPSHOTS,
        Capability.PROCESSES,
        Capability.PORTS,
        Capability.INTERPRETER,
    }


async def test_tools_follow_the_capabilities(connect: Connect, mcp_root: Path) -> None:
    async with connect() as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
    assert listed == ALL_TOOLS
    async with Bare.from_config(root=str(mcp_root / "bare")) as bare, connect(bare) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"run_code", "run_command", "write_file", "read_file", "list_files"}
        schema = tools["run_code"].input_schema
        assert schema["required"] == ["code"]
        assert schema["additionalProperties"] is False
        refused = await client.call_tool("snapshot", {})
        assert refused.is_error
        assert "unknown tool 'snapshot'" in text(refused)
        # without an interpreter, run_code is a plain run: no state between calls
        assert "exit_code: 0" in text(await client.call_tool("run_code", {"code": "x = 1"}))
        result = await client.call_tool("run_code", {"code": "print(x)"})
        assert "NameError" in text(result)
        assert "exit_code: 1" in text(result)


async def test_stateful_code_charts_and_files(connect: Connect) -> None:
    async with connect() as client:
        await client.call_tool("run_code", {"code": "x = 41"})
        assert "result: 42" in text(await client.call_tool("run_code", {"code": "x + 1"}))

        chart = await client.call_tool("run_code", {"code": PLOT})
        assert not chart.is_error
        assert png(chart).startswith(b"\x89PNG\r\n\x1a\n")

        blob = bytes(range(256)) * 4
        wrote = await client.call_tool(
            "write_file",
            {
                "path": "data/blob.bin",
                "content": base64.b64encode(blob).decode(),
                "encoding": "base64",
            },
        )
        assert not wrote.is_error, text(wrote)
        back = text(await client.call_tool("read_file", {"path": "data/blob.bin"}))
        assert back.startswith("base64:")
        assert base64.b64decode(back[7:]) == blob
        await client.call_tool("write_file", {"path": "notes.txt", "content": "héllo\n"})
        assert text(await client.call_tool("read_file", {"path": "notes.txt"})) == "héllo\n"
        listing = json.loads(text(await client.call_tool("list_files", {})))
        assert {"name": "data/", "size": listing[0]["size"]} in listing
        assert {"name": "notes.txt", "size": 7} in listing
        # the code sees the files the tools wrote, and the shell sees what the code wrote
        await client.call_tool(
            "run_code", {"code": "open('out.txt', 'w').write(open('notes.txt').read().upper())"}
        )
        shell = await client.call_tool("run_command", {"command": "cat out.txt; exit 3"})
        assert "exit_code: 3" in text(shell)
        assert "HÉLLO" in text(shell)
        missing = await client.call_tool("read_file", {"path": "nope.txt"})
        assert missing.is_error
        assert "FileNotFound" in text(missing)


async def test_timeout_is_a_tool_error_and_the_session_goes_on(connect: Connect) -> None:
    async with connect(default_timeout=5, max_timeout=5) as client:
        await client.call_tool("run_code", {"code": "kept = 'still here'"})
        slow = await client.call_tool(
            "run_code",
            {"code": "import time\nprint('started', flush=True)\ntime.sleep(30)", "timeout": 0.5},
        )
        assert slow.is_error
        assert "ExecutionTimeout" in text(slow)
        shell = await client.call_tool("run_command", {"command": "sleep 30", "timeout": 0.5})
        assert shell.is_error
        assert "timed out" in text(shell)
        too_long = await client.call_tool("run_command", {"command": "true", "timeout": 50})
        assert too_long.is_error
        assert "maximum" in text(too_long)
        assert "result: 'still here'" in text(await client.call_tool("run_code", {"code": "kept"}))


async def test_output_is_cut_with_a_notice(connect: Connect) -> None:
    async with connect(max_output=500) as client:
        result = await client.call_tool("run_command", {"command": "yes abcdefgh | head -c 100000"})
    assert not result.is_error
    assert "output truncated" in text(result)
    assert len(text(result)) < 1000


async def test_interpreter_values_and_tracebacks_are_cut_too(connect: Connect) -> None:
    # the last expression's value and an error's message are output the model chose
    async with connect(max_output=500) as client:
        value = await client.call_tool("run_code", {"code": "'x' * 100_000"})
        error = await client.call_tool("run_code", {"code": "raise ValueError('y' * 100_000)"})
    for result in (value, error):
        assert "output truncated" in text(result)
        assert len(text(result)) < 1000, len(text(result))


async def test_read_file_refuses_a_huge_file_before_reading_it(connect: Connect) -> None:
    # a sparse file costs no disk but claims up to the disk limit: read whole, it takes the
    # server's memory (4 GiB by default, per call); through a symlink too
    async with connect() as client:
        made = await client.call_tool(
            "run_command", {"command": "truncate -s 100M big && ln -s big l"}
        )
        assert not made.is_error, text(made)
        for path in ("big", "l"):
            result = await client.call_tool("read_file", {"path": path})
            assert result.is_error
            assert "104857600 bytes, over the 10485760-byte read limit" in text(result)


async def test_calls_of_one_session_are_bounded(connect: Connect) -> None:
    async with connect(max_concurrency=1) as client:
        await client.call_tool("run_command", {"command": "true"})  # the workspace exists
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.call_tool("run_command", {"command": "sleep 0.4"}) for _ in range(2))
        )
        assert not any(result.is_error for result in results)
        assert time.monotonic() - started >= 0.8


async def test_background_server_through_expose_port(connect: Connect) -> None:
    async with connect(max_ports=1) as client:
        server = shlex.quote(SERVER.format(port=8770))
        started = await client.call_tool("start_process", {"command": f"exec python3 -c {server}"})
        process_id = text(started).split("process_id: ")[1].split()[0]
        for _ in range(100):
            logs = text(await client.call_tool("process_logs", {"process_id": process_id}))
            if "listening" in logs:
                break
            await asyncio.sleep(0.05)
        assert "status: running" in logs
        exposed = text(await client.call_tool("expose_port", {"port": 8770}))
        # each exposed port is a listening socket on the server's host: counted
        more = await client.call_tool("expose_port", {"port": 8771})
        assert "already exposes 1 ports, the most this server allows (1): 8770" in text(more)
        url = exposed.split("url: ")[1].split()[0]
        headers = json.loads(exposed.split("headers: ")[1]) if "headers: " in exposed else {}
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            response = await http.get(url.rstrip("/") + "/ping")
        assert response.text == "hello from /ping"
        stopped = await client.call_tool("stop_process", {"process_id": process_id})
        assert not stopped.is_error
        unknown = await client.call_tool("process_logs", {"process_id": "nope"})
        assert unknown.is_error
        assert "ProcessNotFound" in text(unknown)


async def test_background_processes_of_a_session_are_bounded(connect: Connect) -> None:
    # each running one holds pipes in the server: a loop of start_process must not use up
    # the server's file descriptors (every session's)
    async with connect(max_processes=1) as client:
        first = text(await client.call_tool("start_process", {"command": "exec sleep 100"}))
        refused = await client.call_tool("start_process", {"command": "exec sleep 100"})
        assert refused.is_error
        assert "already runs 1 background processes" in text(refused)
        process_id = first.split("process_id: ")[1].split()[0]
        await client.call_tool("stop_process", {"process_id": process_id})
        for _ in range(100):  # a stopped (or ended) one frees its place
            again = await client.call_tool("start_process", {"command": "true"})
            if not again.is_error:
                break
            await asyncio.sleep(0.05)
        assert not again.is_error, text(again)


async def test_snapshot_and_restore(connect: Connect, provider: LocalProvider) -> None:
    async with connect(max_snapshots=1) as client:
        await client.call_tool("write_file", {"path": "a.txt", "content": "one"})
        snap = text(await client.call_tool("snapshot", {"name": "mcp-test"}))
        snapshot_id = snap.split("snapshot_id: ")[1].split()[0]
        # each snapshot is a copy outside the workspace's disk limit: a session's are counted
        more = await client.call_tool("snapshot", {})
        assert more.is_error
        assert "already holds 1 snapshots" in text(more)
        await client.call_tool("write_file", {"path": "a.txt", "content": "two"})
        restored = await client.call_tool("restore", {"snapshot_id": snapshot_id})
        assert not restored.is_error, text(restored)
        assert text(await client.call_tool("read_file", {"path": "a.txt"})) == "one"
    # the session's snapshots go with it: its files do not outlive it on disk
    assert await provider.list_snapshots() == []


async def test_restore_takes_only_the_sessions_own_snapshots(
    connect: Connect, provider: LocalProvider
) -> None:
    # a snapshot id the model learns (the application's, another session's) opens nothing
    async with provider.sandbox() as app:
        await app.write_file("secret.txt", b"the application's data")
        theirs = await app.snapshot()
    try:
        async with connect() as client:
            refused = await client.call_tool("restore", {"snapshot_id": theirs.id})
            assert refused.is_error
            assert "SnapshotNotFound" in text(refused)
            missing = await client.call_tool("read_file", {"path": "secret.txt"})
            assert "FileNotFound" in text(missing)
    finally:
        await provider.delete_snapshot(theirs)


async def test_tool_calls_reach_the_audit_log(connect: Connect, tmp_path: Path) -> None:
    logger = sandstorm.JsonlAuditLogger(tmp_path / "audit.jsonl")
    sandstorm.plugin_manager().register(logger)
    try:
        async with connect() as client:
            await client.call_tool("run_command", {"command": "echo hi"})
            await client.call_tool("write_file", {"path": "f.txt", "content": "x"})
            # the interpreter and background processes are audited like runs
            await client.call_tool("run_code", {"code": "1 / 0"})
            await client.call_tool("start_process", {"command": "true"})
    finally:
        sandstorm.plugin_manager().unregister(logger)
    events = [json.loads(line) for line in logger.path.read_text().splitlines()]
    actions = [event["action"] for event in events]
    for action in ("workspace.create", "run", "file.write", "mcp.tool", "workspace.delete"):
        assert action in actions, actions
    (code,) = [e for e in events if e["action"] == "code.run"]
    assert code["details"]["error"] == "ZeroDivisionError"
    assert "process.start" in actions
    workspace = next(e["workspace_id"] for e in events if e["action"] == "workspace.create")
    assert {e["workspace_id"] for e in events if e["action"] == "run"} == {workspace}
    assert actions.index("workspace.delete") > actions.index("file.write")


async def test_persistent_workspace_outlives_the_session(
    connect: Connect, provider: LocalProvider
) -> None:
    snapshot_id = ""
    for content in ("first", None):
        async with connect(persistent="mcp-keep") as client:
            if content:
                await client.call_tool("write_file", {"path": "kept.txt", "content": content})
                snap = text(await client.call_tool("snapshot", {}))
                snapshot_id = snap.split("snapshot_id: ")[1].split()[0]
            else:
                assert text(await client.call_tool("read_file", {"path": "kept.txt"})) == "first"
                # the named workspace's snapshots are kept, and restorable, with it
                restored = await client.call_tool("restore", {"snapshot_id": snapshot_id})
                assert not restored.is_error, text(restored)
    kept = await provider.get_workspace("mcp-keep")
    await provider.delete_workspace(kept)
    await provider.delete_snapshot(snapshot_id)


def test_packages_dir_has_matplotlib() -> None:
    assert packages_dir(), "the dev environment installs matplotlib (the chart test)"
