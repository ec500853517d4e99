"""The blocking twins of the agent capabilities (mixed into :class:`~sandstorm.SyncProvider`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._agents import ResultCallback
    from ._interactive import CodeContext, Execution, ExposedPort, ProcessInfo
    from ._models import Workspace
    from ._processes import ProcessHandle
    from ._provider import AsyncProvider

__all__ = ["SyncAgentAPI"]

T = TypeVar("T")


def _call(coro: Coroutine[Any, Any, T]) -> T:
    from ._sync import run_sync

    return run_sync(coro)


class SyncAgentAPI:
    """Interpreter contexts, background processes and ports, without ``await``."""

    async_provider: AsyncProvider

    def create_context(
        self,
        workspace: Workspace | str,
        *,
        language: str = "python",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CodeContext:
        """A new interpreter context in the workspace."""
        return _call(
            self.async_provider.create_context(workspace, language=language, cwd=cwd, env=env)
        )

    def run_code(
        self,
        workspace: Workspace | str,
        code: str,
        *,
        context: CodeContext | str | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        on_result: ResultCallback | None = None,
    ) -> Execution:
        """Run ``code`` in an interpreter context; see ``AsyncProvider.run_code``."""
        return _call(
            self.async_provider.run_code(
                workspace,
                code,
                context=context,
                timeout=timeout,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_result=on_result,
            )
        )

    def restart_context(self, context: CodeContext) -> CodeContext:
        """Forget the context's state."""
        return _call(self.async_provider.restart_context(context))

    def delete_context(self, context: CodeContext) -> None:
        """Stop the context's interpreter and forget it."""
        _call(self.async_provider.delete_context(context))

    def list_contexts(self, workspace: Workspace | str) -> list[CodeContext]:
        """The interpreter contexts of the workspace."""
        return _call(self.async_provider.list_contexts(workspace))

    def start_process(
        self,
        workspace: Workspace | str,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> ProcessHandle:
        """Start a shell command line in the background."""
        from ._processes import ProcessHandle

        return ProcessHandle(
            _call(
                self.async_provider.start_process(workspace, command, cwd=cwd, env=env, stdin=stdin)
            )
        )

    def list_processes(self, workspace: Workspace | str) -> list[ProcessInfo]:
        """The background processes of the workspace."""
        return _call(self.async_provider.list_processes(workspace))

    def get_process(self, workspace: Workspace | str, process_id: str) -> ProcessHandle:
        """A handle on one background process."""
        from ._processes import ProcessHandle

        return ProcessHandle(_call(self.async_provider.get_process(workspace, process_id)))

    def expose_port(self, workspace: Workspace | str, port: int) -> ExposedPort:
        """Make ``port`` in the sandbox reachable from the application."""
        return _call(self.async_provider.expose_port(workspace, port))

    def unexpose_port(self, workspace: Workspace | str, port: int) -> None:
        """Stop forwarding ``port``."""
        _call(self.async_provider.unexpose_port(workspace, port))
