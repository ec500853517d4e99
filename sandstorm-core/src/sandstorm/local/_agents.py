"""``local``'s primitives for interpreter contexts, background processes and ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._agents import ResultCallback
from .._errors import ContextNotFound, ProcessNotFound
from .._models import Language, OutputChunk, Workspace
from .._provider import ExecRequest

if TYPE_CHECKING:
    from .._interactive import CodeContext, Execution, ExposedPort, ProcessInfo, ProcessLogs
    from ._interpreter import LocalContext
    from ._ports import PortForwarder
    from ._processes import LocalProcess
    from ._provider import LocalProvider

__all__ = ["LocalAgents"]

DEFAULT_CONTEXT = "default"


@dataclass
class _State:
    processes: dict[str, dict[str, LocalProcess]] = field(default_factory=dict)
    contexts: dict[str, dict[str, LocalContext]] = field(default_factory=dict)
    ports: dict[tuple[str, int], PortForwarder] = field(default_factory=dict)

    def close(self) -> None:
        for table in self.contexts.values():
            for context in table.values():
                context.stop(background=False)
        for procs in self.processes.values():
            for process in procs.values():
                process.close(background=False)
        for forwarder in self.ports.values():
            forwarder.close()
        self.contexts.clear()
        self.processes.clear()
        self.ports.clear()


class LocalAgents:
    """Mixed into ``LocalProvider``: what lives longer than one run."""

    __agents: _State | None = None

    def _agents(self) -> _State:
        if self.__agents is None:
            self.__agents = _State()
        return self.__agents

    def _close_agents(self) -> None:
        """Kill every process and context and stop every forwarder (provider close)."""
        if self.__agents is not None:
            self.__agents.close()

    # ------------------------------------------------------------------ processes

    async def _start_process(
        self,
        workspace: Workspace,
        command: str,
        cwd: str | None,
        env: dict[str, str],
        stdin: bool,
    ) -> ProcessInfo:
        from ._processes import LONG_LIVED, launch

        provider = _local(self)
        line = command if cwd is None else f"cd -- {_quote(cwd)} || exit 1\n{command}"
        request = ExecRequest(code=line, language=Language.SHELL, timeout=LONG_LIVED, env=env)
        process = await launch(provider, workspace, request, command=command, stdin=stdin)
        self._agents().processes.setdefault(workspace.id, {})[process.id] = process
        return process.info()

    def _process(self, workspace: Workspace, process_id: str) -> LocalProcess:
        found = self._agents().processes.get(workspace.id, {}).get(process_id)
        if found is None:
            raise ProcessNotFound(process_id)
        return found

    async def _list_processes(self, workspace: Workspace) -> list[ProcessInfo]:
        return [p.info() for p in self._agents().processes.get(workspace.id, {}).values()]

    async def _get_process(self, workspace: Workspace, process_id: str) -> ProcessInfo:
        return self._process(workspace, process_id).info()

    async def _wait_process(
        self, workspace: Workspace, process_id: str, timeout: float | None
    ) -> int:
        return await self._process(workspace, process_id).wait(timeout)

    async def _kill_process(self, workspace: Workspace, process_id: str, signal: int) -> None:
        self._process(workspace, process_id).kill(signal)

    async def _send_stdin(self, workspace: Workspace, process_id: str, data: bytes) -> None:
        await self._process(workspace, process_id).send(data)

    def _stream_process(self, workspace: Workspace, process_id: str) -> AsyncIterator[OutputChunk]:
        return self._process(workspace, process_id).stream()

    async def _process_logs(self, workspace: Workspace, process_id: str) -> ProcessLogs:
        return self._process(workspace, process_id).logs()

    def _forget_workspace(self, workspace_id: str) -> None:
        """The workspace is gone: its processes died with its cgroups; drop the host side."""
        state = self._agents()
        for process in state.processes.pop(workspace_id, {}).values():
            process.close()
        for context in state.contexts.pop(workspace_id, {}).values():
            context.stop()
        for key in [k for k in state.ports if k[0] == workspace_id]:
            state.ports.pop(key).close()

    # ------------------------------------------------------------------ interpreter

    async def _create_context(
        self, workspace: Workspace, language: str, cwd: str | None, env: dict[str, str]
    ) -> CodeContext:
        from ._interpreter import LocalContext, check_language

        check_language(language)
        context = LocalContext(workspace.id, language, cwd, env)
        await context.start(_local(self), workspace)
        self._agents().contexts.setdefault(workspace.id, {})[context.id] = context
        return context.model()

    def _context(self, workspace: Workspace, context_id: str) -> LocalContext:
        found = self._agents().contexts.get(workspace.id, {}).get(context_id)
        if found is None:
            raise ContextNotFound(context_id)
        return found

    async def _run_code(
        self,
        workspace: Workspace,
        context_id: str | None,
        code: str,
        timeout: float,
        on_stdout: Callable[[str], None] | None,
        on_stderr: Callable[[str], None] | None,
        on_result: ResultCallback | None,
    ) -> Execution:
        if context_id is None:
            table = self._agents().contexts.setdefault(workspace.id, {})
            context = table.get(DEFAULT_CONTEXT)
            if context is None:
                from ._interpreter import LocalContext

                context = LocalContext(workspace.id, Language.PYTHON, None, {})
                context.id = DEFAULT_CONTEXT
                table[DEFAULT_CONTEXT] = context
        else:
            context = self._context(workspace, context_id)
        return await context.execute(
            _local(self), workspace, code, timeout, on_stdout, on_stderr, on_result
        )

    async def _restart_context(self, workspace: Workspace, context_id: str) -> CodeContext:
        context = self._context(workspace, context_id)
        async with context.lock:
            await context.start(_local(self), workspace)
        return context.model()

    async def _delete_context(self, workspace: Workspace, context_id: str) -> None:
        context = self._context(workspace, context_id)
        context.stop()
        del self._agents().contexts[workspace.id][context_id]

    async def _list_contexts(self, workspace: Workspace) -> list[CodeContext]:
        return [c.model() for c in self._agents().contexts.get(workspace.id, {}).values()]

    # ------------------------------------------------------------------ ports

    async def _expose_port(self, workspace: Workspace, port: int) -> ExposedPort:
        from ._ports import PortForwarder

        state = self._agents()
        forwarder = state.ports.get((workspace.id, port))
        if forwarder is None:
            forwarder = PortForwarder(_local(self), workspace, port)
            await forwarder.start()
            state.ports[(workspace.id, port)] = forwarder
        return forwarder.model()

    async def _unexpose_port(self, workspace: Workspace, port: int) -> None:
        forwarder = self._agents().ports.pop((workspace.id, port), None)
        if forwarder is not None:
            forwarder.close()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _local(agents: LocalAgents) -> LocalProvider:
    from ._provider import LocalProvider

    assert isinstance(agents, LocalProvider)
    return agents
