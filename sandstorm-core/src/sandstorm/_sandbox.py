"""Workspace handles: a live workspace with its own methods, async and blocking."""

from __future__ import annotations

from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._capabilities import Capability
from ._models import FileInfo, GitStatus, RunResult, Snapshot, Workspace, WorkspaceMetrics

if TYPE_CHECKING:
    from ._provider import AsyncProvider, OutputStream
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

    async def run(self, code: str, **kwargs: Any) -> RunResult:
        """Run ``code`` in this workspace (see ``AsyncProvider.run_in_workspace``)."""
        return await self.provider.run_in_workspace(self.workspace, code, **kwargs)

    async def exec(self, command: str, **kwargs: Any) -> RunResult:
        """Run a shell command line in this workspace."""
        return await self.provider.exec(self.workspace, command, **kwargs)

    def stream(self, code: str, **kwargs: Any) -> OutputStream:
        """Run ``code`` in this workspace and iterate its output (see ``AsyncProvider.stream``)."""
        return self.provider.stream(code, workspace_id=self.workspace.id, **kwargs)

    async def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file in this workspace."""
        await self.provider.write_file(self.workspace, path, data)

    async def read_file(self, path: str) -> bytes:
        """Read a file from this workspace."""
        return await self.provider.read_file(self.workspace, path)

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

    def run(self, code: str, **kwargs: Any) -> RunResult:
        """Run ``code`` in this workspace."""
        return _call(self.async_sandbox.run(code, **kwargs))

    def exec(self, command: str, **kwargs: Any) -> RunResult:
        """Run a shell command line in this workspace."""
        return _call(self.async_sandbox.exec(command, **kwargs))

    def stream(self, code: str, **kwargs: Any) -> SyncOutputStream:
        """Run ``code`` in this workspace; iterate its output, then read ``.result``."""
        from ._sync import SyncOutputStream

        sandbox = self.async_sandbox
        sandbox.provider.require(Capability.STREAMING)
        return SyncOutputStream(
            sandbox.provider, code, {"workspace_id": sandbox.workspace.id, **kwargs}
        )

    def write_file(self, path: str, data: str | bytes) -> None:
        """Write a file in this workspace."""
        _call(self.async_sandbox.write_file(path, data))

    def read_file(self, path: str) -> bytes:
        """Read a file from this workspace."""
        return _call(self.async_sandbox.read_file(path))

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

    def delete(self) -> None:
        """Delete the workspace now."""
        _call(self.async_sandbox.delete())


def _call(coro: Coroutine[Any, Any, T]) -> T:
    from ._sync import run_sync

    return run_sync(coro)
