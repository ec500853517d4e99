"""The official SDK's code interpreter, session input and preview links on the emulator."""

from __future__ import annotations

import asyncio
import warnings

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaTimeoutError,
    SessionExecuteRequest,
)

from sandstorm_daytona.emulator import RunningEmulator

from .conftest import KEY_A


def _client(emu: RunningEmulator) -> AsyncDaytona:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return AsyncDaytona(DaytonaConfig(api_key=KEY_A, api_url=emu.api_url, target="us"))


def test_sdk_code_interpreter(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                ci = s.code_interpreter
                seen: list[str] = []
                first = await ci.run_code(
                    "x = 41\nprint('set')", on_stdout=lambda m: seen.append(m.output)
                )
                assert first.stdout == "set\n"
                assert "".join(seen) == "set\n"
                second = await ci.run_code("print(x + 1)")
                assert (second.stdout, second.error) == ("42\n", None)
                ctx = await ci.create_context()
                assert ctx.language == "python"
                isolated = await ci.run_code("print(x)", context=ctx)
                assert isolated.error is not None
                assert isolated.error.name == "NameError"
                assert "NameError" in isolated.error.traceback
                await ci.run_code("y = 'ctx'", context=ctx)
                assert (await ci.run_code("print(y)", context=ctx)).stdout == "ctx\n"
                env = await ci.run_code(
                    "import os\nprint(os.environ['DEMO'])", context=ctx, envs={"DEMO": "yes"}
                )
                assert env.stdout == "yes\n"
                assert ctx.id in {c.id for c in await ci.list_contexts()}
                with pytest.raises(DaytonaTimeoutError):
                    await ci.run_code("import time\ntime.sleep(30)", context=ctx, timeout=1)
                assert (await ci.run_code("print(y)", context=ctx)).stdout == "ctx\n"
                await ci.delete_context(ctx)
                assert ctx.id not in {c.id for c in await ci.list_contexts()}
            finally:
                await d.delete(s)

    asyncio.run(main())


def test_sdk_session_command_input(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                await s.process.create_session("talk")
                started = await s.process.execute_session_command(
                    "talk",
                    SessionExecuteRequest(
                        command="read name; echo hello $name; read again; echo bye $again",
                        run_async=True,
                    ),
                )
                await s.process.send_session_command_input("talk", started.cmd_id, "bob\n")
                await s.process.send_session_command_input("talk", started.cmd_id, "alice\n")
                out: list[str] = []
                await s.process.get_session_command_logs_async(
                    "talk", started.cmd_id, out.append, lambda _: None
                )
                assert "".join(out) == "hello bob\nbye alice\n"
                done = await s.process.get_session_command("talk", started.cmd_id)
                assert done.exit_code == 0
                with pytest.raises(DaytonaError):
                    await s.process.send_session_command_input("talk", started.cmd_id, "late\n")
            finally:
                await d.delete(s)

    asyncio.run(main())


SERVER = (
    "import http.server, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('preview ' + self.path).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "socketserver.TCPServer.allow_reuse_address = True\n"
    "with socketserver.TCPServer(('127.0.0.1', 8766), H) as s:\n"
    "    print('listening', flush=True)\n"
    "    s.serve_forever()\n"
)


def test_sdk_preview_links(emu: RunningEmulator) -> None:
    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                await s.fs.upload_file(SERVER.encode(), "server.py")
                await s.process.create_session("web")
                started = await s.process.execute_session_command(
                    "web", SessionExecuteRequest(command="python3 server.py", run_async=True)
                )
                link = await s.get_preview_link(8766)
                async with httpx.AsyncClient(timeout=10) as http:
                    for _ in range(100):
                        reply = await http.get(
                            link.url + "/hello", headers={"x-daytona-preview-token": link.token}
                        )
                        if reply.status_code == 200:
                            break
                        await asyncio.sleep(0.1)
                    assert (reply.status_code, reply.text) == (200, "preview /hello")
                    denied = await http.get(link.url + "/hello")
                    assert denied.status_code == 401
                    signed = await s.create_signed_preview_url(8766, expires_in_seconds=60)
                    assert signed.port == 8766
                    reply = await http.get(signed.url + "/x")
                    assert (reply.status_code, reply.text) == (200, "preview /x")
                    await s.expire_signed_preview_url(8766, signed.token)
                    assert (await http.get(signed.url + "/x")).status_code == 401
                cmd = await s.process.get_session_command("web", started.cmd_id)
                assert cmd.exit_code is None
                await s.process.delete_session("web")
            finally:
                await d.delete(s)

    asyncio.run(main())


WS_ECHO = (
    "import base64, hashlib, socket\n"
    "GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'\n"
    "s = socket.socket()\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 8768))\n"
    "s.listen()\n"
    "print('listening', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    head = b''\n"
    "    while b'\\r\\n\\r\\n' not in head:\n"
    "        head += c.recv(4096)\n"
    "    key = [l.split(b':', 1)[1].strip() for l in head.split(b'\\r\\n')\n"
    "           if l.lower().startswith(b'sec-websocket-key')][0]\n"
    "    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())\n"
    "    c.sendall(b'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\n'\n"
    "              b'Connection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + b'\\r\\n\\r\\n')\n"
    "    frame = c.recv(4096)\n"
    "    size = frame[1] & 127\n"
    "    mask, data = frame[2:6], frame[6:6 + size]\n"
    "    text = bytes(b ^ mask[i % 4] for i, b in enumerate(data)).upper()\n"
    "    c.sendall(bytes([0x81, len(text)]) + text)\n"
    "    c.close()\n"
)


def test_preview_link_relays_websockets(emu: RunningEmulator) -> None:
    from httpx_ws import aconnect_ws

    async def main() -> None:
        async with _client(emu) as d:
            s = await d.create()
            try:
                await s.fs.upload_file(WS_ECHO.encode(), "ws.py")
                await s.process.create_session("ws")
                await s.process.execute_session_command(
                    "ws", SessionExecuteRequest(command="python3 ws.py", run_async=True)
                )
                link = await s.get_preview_link(8768)
                headers = {"x-daytona-preview-token": link.token}
                async with httpx.AsyncClient(headers=headers, timeout=10) as http:
                    for _ in range(100):
                        try:
                            async with aconnect_ws(link.url + "/echo", http) as ws:
                                await ws.send_text("hello")
                                assert await ws.receive_text() == "HELLO"
                                break
                        except Exception:  # not listening yet
                            await asyncio.sleep(0.1)
                    else:
                        raise AssertionError("the WebSocket never answered")
                await s.process.delete_session("ws")
            finally:
                await d.delete(s)

    asyncio.run(main())
