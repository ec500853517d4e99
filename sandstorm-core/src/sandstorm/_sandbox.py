"""Workspace handles: a live workspace with its own methods, async and blocking."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._capabilities import Capability
from ._models import FileInfo, GitStatus, RunResult, Snapshot, Workspace, WorkspaceMetrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._agents import ResultCallback
    from ._interactive import CodeContext, Execution, ExposedPort, ProcessInfo
    from ._processes import AsyncProcessHandle, ProcessHandle
    from ._provider import AsyncProvider, OutputCallback, OutputStream
    from ._sync import SyncOutputStream

__all__ = ["AsyncSandbox", "Sandbox"]

T = TypeVar("T")


class AsyncSandbox:
    """A handle on one workspace: run code, move files, snapshot, measure, delete.

    ``async with provider.sandbox() as sandbox:`` creates a workspace and deletes it on
    exit; ``provider.attach(workspace_id)`` wraps an existing one without owning it.
    """

    def __init__(
        self,
        provider: AsyncProvider,
        workspace: Workspace | None = None,
        *,
        create: dict[str, Any] | None = None,
        owned: bool = False,
    ) -> None:
        self.provider = provider
        self._workspace = workspace
        self._create = create
        self.owned = owned

    def __repr__(self) -> str:
        ident = self._workspace.id if self._workspace else "(not created)"
        return f"<AsyncSandbox {self.provider.name}:{ident}>"

    @property
    def workspace(self) -> Workspace:
        """The workspace this handle drives."""
        if self._workspace is None:
            raise RuntimeError("the sandbox is not created yet: use `async with`")
        return self._workspace

    @property
    def id(self) -> str:
        """The workspace id."""
        return self.workspace.id

    async def __aenter__(self) -> Self:
        if self._workspace is None:
            self._workspace = await self.provider._sandstorm_new_workspace(
                True, **(self._create or {})
            )
            self.owned = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is GeneratorExit:
            return  # destroyed with its dead event loop: the process-exit path deletes it
        if self.owned and self._workspace is not None:
            workspace, self._workspace = self._workspace, None
            self.owned = False
            await self.provider._sandstorm_release_handle(workspace)

    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` in this workspace (see ``AsyncProvider.run_in_workspace``)."""
        return await self.provider.run_in_workspace(
            self.workspace,
            code,
            language=language,
            timeout=timeout,
            env=env,
            stdin=stdin,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )

    async def exec(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run a shell command line in this workspace."""
        return await self.provider.exec(
            self.workspace, command, timeout=timeout, env=env, stdin=stdin
        )

    def stream(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> OutputStream:
        """Run ``code`` in this workspace and iterate its output (see ``AsyncProvider.stream``)."""
        return self.provider.stream(
            code,
            workspace_id=self.workspace.id,
            language=language,
            timeout=timeout,
            env=env,
            stdin=stdin,
        )

    async def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file in this workspace."""
        await self.provider.write_file(self.workspace, path, data)

    async def read_file(self, path: str, *, max_size: int | None = None) -> bytes:
        """Read a file from this workspace (``max_size``: refuse a larger one)."""
        return await self.provider.read_file(self.workspace, path, max_size=max_size)

    async def list_files(self, path: str = ".") -> list[FileInfo]:
        """List a directory of this workspace."""
        return await self.provider.list_files(self.workspace, path)

    async def delete_file(self, path: str) -> None:
        """Delete a file or directory tree in this workspace."""
        await self.provider.delete_file(self.workspace, path)

    async def git_clone(self, url: str, *, branch: str | None = None, path: str = ".") -> None:
        """Clone a repository into this workspace."""
        await self.provider.git_clone(self.workspace, url, branch=branch, path=path)

    async def git_status(self, path: str = ".") -> GitStatus:
        """``git status`` in this workspace."""
        return await self.provider.git_status(self.workspace, path)

    async def snapshot(self, *, name: str | None = None) -> Snapshot:
        """Capture this workspace's files."""
        return await self.provider.snapshot(self.workspace, name=name)

    async def metrics(self) -> WorkspaceMetrics:
        """Resource figures for this workspace."""
        return await self.provider.get_workspace_metrics(self.workspace)

    async def create_context(
        self,
        *,
        language: str = "python",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CodeContext:
        """A new interpreter context in this workspace."""
        return await self.provider.create_context(
            self.workspace, language=language, cwd=cwd, env=env
        )

    async def run_code(
        self,
        code: str,
        *,
        context: CodeContext | str | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        on_result: ResultCallback | None = None,
    ) -> Execution:
        """Run ``code`` in an interpreter context (see ``AsyncProvider.run_code``)."""
        return await self.provider.run_code(
            self.workspace,
            code,
            context=context,
            timeout=timeout,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
        )

    async def list_contexts(self) -> list[CodeContext]:
        """The interpreter contexts of this workspace."""
        return await self.provider.list_contexts(self.workspace)

    async def restart_context(self, context: CodeContext) -> CodeContext:
        """Forget a context's state."""
        return await self.provider.restart_context(context)

    async def delete_context(self, context: CodeContext) -> None:
        """Stop a context's interpreter and forget it."""
        await self.provider.delete_context(context)

    async def start_process(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> AsyncProcessHandle:
        """Start a shell command line in the background in this workspace."""
        return await self.provider.start_process(
            self.workspace, command, cwd=cwd, env=env, stdin=stdin
        )

    async def list_processes(self) -> list[ProcessInfo]:
        """The background processes of this workspace."""
        return await self.provider.list_processes(self.workspace)

    async def get_process(self, process_id: str) -> AsyncProcessHandle:
        """A handle on one background process of this workspace."""
        return await self.provider.get_process(self.workspace, process_id)

    async def expose_port(self, port: int) -> ExposedPort:
        """Make ``port`` in this sandbox reachable from the application."""
        return await self.provider.expose_port(self.workspace, port)

    async def unexpose_port(self, port: int) -> None:
        """Stop forwarding ``port``."""
        await self.provider.unexpose_port(self.workspace, port)

    async def delete(self) -> None:
        """Delete the workspace now."""
        workspace, self._workspace = self.workspace, None
        self.owned = False
        await self.provider.delete_workspace(workspace)


class Sandbox:
    """The blocking twin of :class:`AsyncSandbox` (same methods, no ``await``)."""

    def __init__(self, handle: AsyncSandbox) -> None:
        self.async_sandbox = handle

    def __repr__(self) -> str:
        return repr(self.async_sandbox).replace("AsyncSandbox", "Sandbox", 1)

    @property
    def workspace(self) -> Workspace:
        """The workspace this handle drives."""
        return self.async_sandbox.workspace

    @property
    def id(self) -> str:
        """The workspace id."""
        return self.async_sandbox.id

    def __enter__(self) -> Self:
        _call(self.async_sandbox.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _call(self.async_sandbox.__aexit__(exc_type, exc, tb))

    def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` in this workspace."""
        return _call(
            self.async_sandbox.run(
                code,
                language=language,
                timeout=timeout,
                env=env,
                stdin=stdin,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
            )
        )

    def exec(
        self,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run a shell command line in this workspace."""
        return _call(self.async_sandbox.exec(command, timeout=timeout, env=env, stdin=stdin))

    def stream(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> SyncOutputStream:
        """Run ``code`` in this workspace; iterate its output, then read ``.result``."""
        from ._sync import SyncOutputStream

        sandbox = self.async_sandbox
        sandbox.provider.require(Capability.STREAMING)
        options = {
            "workspace_id": sandbox.workspace.id,
            "language": language,
            "timeout": timeout,
            "env": env,
            "stdin": stdin,
        }
        return SyncOutputStream(sandbox.provider, code, options)

    def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file in this workspace."""
        _call(self.async_sandbox.write_file(path, data))

    def read_file(self, path: str, *, max_size: int | None = None) -> bytes:
        """Read a file from this workspace (``max_size``: refuse a larger one)."""
        return _call(self.async_sandbox.read_file(path, max_size=max_size))

    def list_files(self, path: str = ".") -> list[FileInfo]:
        """List a directory of this workspace."""
        return _call(self.async_sandbox.list_files(path))

    def delete_file(self, path: str) -> None:
        """Delete a file or directory tree in this workspace."""
        _call(self.async_sandbox.delete_file(path))

    def git_clone(self, url: str, *, branch: str | None = None, path: str = ".") -> None:
        """Clone a repository into this workspace."""
        _call(self.async_sandbox.git_clone(url, branch=branch, path=path))

    def git_status(self, path: str = ".") -> GitStatus:
        """``git status`` in this workspace."""
        return _call(self.async_sandbox.git_status(path))

    def snapshot(self, *, name: str | None = None) -> Snapshot:
        """Capture this workspace's files."""
        return _call(self.async_sandbox.snapshot(name=name))

    def metrics(self) -> WorkspaceMetrics:
        """Resource figures for this workspace."""
        return _call(self.async_sandbox.metrics())

    def create_context(
        self,
        *,
        language: str = "python",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CodeContext:
        """A new interpreter context in this workspace."""
        return _call(self.async_sandbox.create_context(language=language, cwd=cwd, env=env))

    def run_code(
        self,
        code: str,
        *,
        context: CodeContext | str | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        on_result: ResultCallback | None = None,
    ) -> Execution:
        """Run ``code`` in an interpreter context."""
        return _call(
            self.async_sandbox.run_code(
                code,
                context=context,
                timeout=timeout,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_result=on_result,
            )
        )

    def list_contexts(self) -> list[CodeContext]:
        """The interpreter contexts of this workspace."""
        return _call(self.async_sandbox.list_contexts())

    def restart_context(self, context: CodeContext) -> CodeContext:
        """Forget a context's state."""
        return _call(self.async_sandbox.restart_context(context))

    def delete_context(self, context: CodeContext) -> None:
        """Stop a context's interpreter and forget it."""
        _call(self.async_sandbox.delete_context(context))

    def start_process(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> ProcessHandle:
        """Start a shell command line in the background in this workspace."""
        from ._processes import ProcessHandle

        return ProcessHandle(
            _call(self.async_sandbox.start_process(command, cwd=cwd, env=env, stdin=stdin))
        )

    def list_processes(self) -> list[ProcessInfo]:
        """The background processes of this workspace."""
        return _call(self.async_sandbox.list_processes())

    def get_process(self, process_id: str) -> ProcessHandle:
        """A handle on one background process of this workspace."""
        from ._processes import ProcessHandle

        return ProcessHandle(_call(self.async_sandbox.get_process(process_id)))

    def expose_port(self, port: int) -> ExposedPort:
        """Make ``port`` in this sandbox reachable from the application."""
        return _call(self.async_sandbox.expose_port(port))

    def unexpose_port(self, port: int) -> None:
        """Stop forwarding ``port``."""
        _call(self.async_sandbox.unexpose_port(port))

    def delete(self) -> None:
        """Delete the workspace now."""
        _call(self.async_sandbox.delete())


def _call(coro: Coroutine[Any, Any, T]) -> T:
    from ._sync import run_sync

    return run_sync(coro)
