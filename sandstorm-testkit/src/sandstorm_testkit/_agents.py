"""Agent capabilities: interpreter contexts, background processes and exposed ports."""

from __future__ import annotations

import asyncio
import shlex
import time

import pytest

from sandstorm import (
    AsyncProvider,
    Capability,
    ContextNotFound,
    ExecutionTimeout,
    ProcessNotFound,
    ProcessStatus,
    Workspace,
    WorkspaceNotFound,
)

from ._base import AsyncContract, WorkspaceFactory

__all__ = ["InterpreterContract", "PortContract", "ProcessContract"]

HTML_OBJECT = (
    "class Card:\n"
    "    def _repr_html_(self):\n"
    "        return '<b>card</b>'\n"
    "    def __repr__(self):\n"
    "        return 'Card()'\n"
)

PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\n"


@pytest.mark.requires(Capability.INTERPRETER)
class InterpreterContract(AsyncContract):
    """Contexts keep state, are isolated, return rich results and structured errors."""

    async def test_state_persists_between_runs(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        context = await provider.create_context(workspace)
        first = await provider.run_code(workspace, "x = 41", context=context)
        assert first.error is None, first.error
        second = await provider.run_code(workspace, "print(x + 1)", context=context)
        assert second.error is None, second.error
        assert second.stdout == "42\n"
        assert context.id in {c.id for c in await provider.list_contexts(workspace)}

    async def test_default_context_keeps_state(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        await provider.run_code(workspace, "y = 'kept'")
        execution = await provider.run_code(workspace, "y")
        assert execution.text == "'kept'"

    async def test_last_expression_is_the_main_result(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        execution = await provider.run_code(workspace, "a = 6\na * 7")
        main = [r for r in execution.results if r.is_main_result]
        assert len(main) == 1, execution
        assert main[0].text == "42"
        assert execution.execution_count is not None
        assert execution.execution_count >= 1

    async def test_contexts_are_isolated(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        one = await provider.create_context(workspace)
        two = await provider.create_context(workspace)
        await provider.run_code(workspace, "secret = 1", context=one)
        execution = await provider.run_code(workspace, "secret", context=two)
        assert execution.error is not None
        assert execution.error.name == "NameError"

    async def test_error_is_structured(self, provider: AsyncProvider, workspace: Workspace) -> None:
        execution = await provider.run_code(workspace, "print('before')\n1 / 0")
        assert execution.stdout == "before\n"
        assert execution.error is not None
        assert execution.error.name == "ZeroDivisionError"
        assert "division by zero" in execution.error.value
        assert "ZeroDivisionError" in execution.error.traceback

    async def test_display_of_an_html_object(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        context = await provider.create_context(workspace)
        await provider.run_code(workspace, HTML_OBJECT, context=context)
        execution = await provider.run_code(
            workspace, "display(Card())\nprint('after')", context=context
        )
        assert execution.error is None, execution.error
        shown = [r for r in execution.results if not r.is_main_result]
        assert shown, execution.results
        assert shown[0].html == "<b>card</b>"
        assert shown[0].text == "Card()"
        last = await provider.run_code(workspace, "Card()", context=context)
        assert [r.html for r in last.results if r.is_main_result] == ["<b>card</b>"]

    async def test_matplotlib_figure_is_png(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        probe = await provider.run_code(workspace, "import matplotlib")
        if probe.error is not None:
            pytest.skip("matplotlib is not importable in this sandbox")
        execution = await provider.run_code(workspace, PLOT, timeout=120)
        assert execution.error is None, execution.error
        pngs = [r.png for r in execution.results if r.png]
        assert pngs, execution.results
        assert pngs[0].startswith("iVBORw0KGgo")

    async def test_timeout_interrupts_and_keeps_the_context(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        context = await provider.create_context(workspace)
        await provider.run_code(workspace, "kept = 5", context=context)
        started = time.monotonic()
        with pytest.raises(ExecutionTimeout):
            await provider.run_code(
                workspace,
                "import time\nwhile True:\n    time.sleep(0.01)",
                context=context,
                timeout=1,
            )
        assert time.monotonic() - started < 20
        after = await provider.run_code(workspace, "kept + 1", context=context)
        assert after.text == "6", after

    async def test_context_cwd(self, provider: AsyncProvider, workspace: Workspace) -> None:
        made = await provider.run_code(workspace, "import os; os.makedirs('sub', exist_ok=True)")
        assert made.error is None, made.error
        context = await provider.create_context(workspace, cwd="sub")
        execution = await provider.run_code(
            workspace, "import os; os.path.basename(os.getcwd())", context=context
        )
        assert execution.text == "'sub'", execution
        if Capability.FILES in provider.capabilities:
            # a missing directory is refused when the context is made, not at its first run
            with pytest.raises(FileNotFoundError):
                await provider.create_context(workspace, cwd="no-such-dir")
        if "shell" in provider.languages:
            # so is an absolute path the sandbox does not have (checked inside it)
            with pytest.raises(FileNotFoundError):
                await provider.create_context(workspace, cwd="/no-such-dir-sstk")
            context = await provider.create_context(workspace, cwd="/tmp")
            execution = await provider.run_code(
                workspace, "import os; os.getcwd()", context=context
            )
            assert execution.text == "'/tmp'", execution

    async def test_restart_and_delete(self, provider: AsyncProvider, workspace: Workspace) -> None:
        context = await provider.create_context(workspace)
        await provider.run_code(workspace, "z = 1", context=context)
        context = await provider.restart_context(context)
        execution = await provider.run_code(workspace, "z", context=context)
        assert execution.error is not None
        assert execution.error.name == "NameError"
        await provider.delete_context(context)
        assert context.id not in {c.id for c in await provider.list_contexts(workspace)}
        with pytest.raises(ContextNotFound):
            await provider.run_code(workspace, "1", context=context)


async def _until(check: object, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.requires(Capability.PROCESSES)
class ProcessContract(AsyncContract):
    """Background processes outlive the call, take stdin, stream logs, die when asked."""

    async def test_exit_code_and_logs(self, provider: AsyncProvider, workspace: Workspace) -> None:
        handle = await provider.start_process(workspace, "echo out; echo err >&2; exit 3")
        assert await handle.wait(timeout=30) == 3
        logs = await handle.logs()
        assert logs.stdout == "out\n"
        assert logs.stderr == "err\n"
        info = await handle.refresh()
        assert info.status == ProcessStatus.EXITED
        assert info.exit_code == 3

    async def test_outlives_the_call_and_is_killed(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        handle = await provider.start_process(workspace, "echo started; sleep 60")
        assert await handle.status() == ProcessStatus.RUNNING
        listed = await provider.list_processes(workspace)
        assert handle.id in {p.id for p in listed}
        same = await provider.get_process(workspace, handle.id)
        assert same.id == handle.id
        with pytest.raises(ExecutionTimeout):
            await handle.wait(timeout=0.5)
        await handle.kill()
        code = await handle.wait(timeout=30)
        assert code != 0
        assert await handle.status() == ProcessStatus.EXITED

    async def test_stdin_and_stream(self, provider: AsyncProvider, workspace: Workspace) -> None:
        handle = await provider.start_process(
            workspace, "while read line; do echo got:$line; done", stdin=True
        )
        await handle.send_stdin("hello\n")
        seen = ""
        async for chunk in handle.stream():
            seen += chunk.text
            if "got:hello" in seen:
                break
        assert "got:hello" in seen
        await handle.send_stdin("again\n")

        async def echoed() -> bool:
            return "got:again" in (await handle.logs()).stdout

        await _until(echoed, "the second line's echo")
        await handle.kill()
        await handle.wait(timeout=30)

    async def test_killed_with_the_workspace(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace(persistent=False)
        handle = await provider.start_process(workspace, "sleep 120")
        await provider.delete_workspace(workspace)
        try:
            code = await handle.wait(timeout=30)
        except (WorkspaceNotFound, ProcessNotFound):
            return  # the workspace is gone, and its processes with it
        assert code != 0, "the process ended normally although its workspace was deleted"

    async def test_unknown_process(self, provider: AsyncProvider, workspace: Workspace) -> None:
        with pytest.raises(ProcessNotFound):
            await provider.get_process(workspace, "sstk-no-such-process")


SERVER = (
    "import http.server, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = ('hello from ' + self.path).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args):\n"
    "        print('request', self.path, flush=True)\n"
    "socketserver.TCPServer.allow_reuse_address = True\n"
    "with socketserver.TCPServer(('127.0.0.1', {port}), H) as s:\n"
    "    print('listening', flush=True)\n"
    "    s.serve_forever()\n"
)


@pytest.mark.requires(Capability.PORTS, Capability.PROCESSES)
class PortContract(AsyncContract):
    """A server started in the sandbox is reachable from the application at the url."""

    PORT = 8765

    async def test_http_server_reachable(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        httpx = pytest.importorskip("httpx")
        server = shlex.quote(SERVER.format(port=self.PORT))
        handle = await provider.start_process(workspace, f"exec python3 -c {server}")
        try:

            async def listening() -> bool:
                return "listening" in (await handle.logs()).stdout

            await _until(listening, "the server to listen")
            exposed = await provider.expose_port(workspace, self.PORT)
            assert exposed.port == self.PORT
            async with httpx.AsyncClient(headers=exposed.headers, timeout=10) as client:
                response = await client.get(exposed.url.rstrip("/") + "/ping")
            assert response.status_code == 200, response.text
            assert response.text == "hello from /ping"

            async def logged() -> bool:
                return "request /ping" in (await handle.logs()).stdout

            await _until(logged, "the request in the server's log")
            await provider.unexpose_port(workspace, self.PORT)
        finally:
            await handle.kill()
            await handle.wait(timeout=30)
