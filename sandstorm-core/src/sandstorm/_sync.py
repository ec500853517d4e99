"""The blocking facade: the async provider, driven from a background event-loop thread.

This module imports neither asyncio nor pydantic: a :class:`SyncProvider` whose async
provider is built on first use (``get_provider("local")`` without settings) costs a cold
start nothing more, and the loop thread starts at the first blocking call.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._agents_sync import SyncAgentAPI
from ._capabilities import Capability

if TYPE_CHECKING:
    import asyncio

    from ._config import ProviderConfig
    from ._models import (
        CostEstimate,
        FileInfo,
        GitStatus,
        NetworkPolicy,
        OutputChunk,
        ProviderInfo,
        RunResult,
        Snapshot,
        Workspace,
        WorkspaceMetrics,
    )
    from ._provider import AsyncProvider, OutputCallback, WorkspaceRef
    from ._sandbox import Sandbox

__all__ = ["Extras", "SyncOutputStream", "SyncProvider"]

T = TypeVar("T")

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One daemon thread running an event loop for every sync provider in the process."""
    import asyncio

    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="sandstorm-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for it.

    A ``KeyboardInterrupt`` while waiting cancels the coroutine, waits for its cleanup
    (so nothing it created is leaked), then propagates.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            "the blocking sandstorm API was called from inside a running event loop; "
            "use sandstorm.get_async_provider() and await its methods instead"
        )
    loop = _background_loop()
    holder: dict[str, asyncio.Task[T]] = {}

    async def runner() -> T:
        task = asyncio.ensure_future(coro)
        holder["task"] = task
        return await task

    future = asyncio.run_coroutine_threadsafe(runner(), loop)
    try:
        return future.result()
    except BaseException:
        if future.done():
            raise  # the coroutine's own outcome
        # interrupted while waiting (Ctrl-C, or SIGTERM made SystemExit): cancel the
        # coroutine and wait for its cleanup, so nothing it created is leaked
        task = holder.get("task")
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        else:
            future.cancel()
        with contextlib.suppress(BaseException):
            future.result()
        raise


class SyncProvider(SyncAgentAPI):
    """A provider with blocking methods; wraps an :class:`AsyncProvider`.

    Every method mirrors the async one of the same name. Use it as a context manager, or
    call :meth:`close`, to release what the provider holds. ``get_provider("local")``
    without settings builds its async provider on first use (settings, given or from the
    environment, are validated at the call), so a cold start pays for neither.
    """

    def __init__(self, provider: AsyncProvider) -> None:
        self._provider: AsyncProvider | None = provider
        self._factory: Callable[[], AsyncProvider] | None = None
        self._build_lock = threading.Lock()

    @classmethod
    def _deferred(cls, factory: Callable[[], AsyncProvider]) -> SyncProvider:
        """A facade whose async provider ``factory()`` builds on first use (thread-safe).

        Only for a provider whose construction cannot fail and has no effect before use
        (``get_provider`` takes this path for a built-in provider given no settings).
        """
        self = cls.__new__(cls)
        self._provider = None
        self._factory = factory
        self._build_lock = threading.Lock()
        return self

    @property
    def async_provider(self) -> AsyncProvider:
        """The :class:`AsyncProvider` this facade drives (built here on first use)."""
        provider = self._provider
        if provider is None:
            with self._build_lock:
                if self._provider is None:
                    assert self._factory is not None
                    self._provider = self._factory()
                    self._factory = None
                provider = self._provider
        return provider

    @async_provider.setter
    def async_provider(self, provider: AsyncProvider) -> None:
        self._provider = provider
        self._factory = None

    def __repr__(self) -> str:
        return f"<SyncProvider {self.name!r}>"

    @property
    def name(self) -> str:
        """The provider's registered name."""
        return self.async_provider.name

    @property
    def capabilities(self) -> frozenset[Any]:
        """The capabilities the provider declares."""
        return self.async_provider.capabilities

    @property
    def config(self) -> ProviderConfig:
        """The provider's validated configuration."""
        return self.async_provider.config

    @property
    def extras(self) -> Extras:
        """The provider's own methods beyond the shared API, blocking.

        ``get_provider("daytona").extras.stop_workspace(ws)`` calls
        ``DaytonaProvider.stop_workspace`` and waits for it; see the provider's reference
        for what it offers. Plain attributes come back as they are.
        """
        return Extras(self.async_provider)

    def info(self) -> ProviderInfo:
        """The provider's declaration."""
        return self.async_provider.info()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release everything the provider holds. Idempotent."""
        run_sync(self.async_provider.aclose())

    def is_available(self) -> bool:
        """True when the provider can run code now."""
        return run_sync(self.async_provider.is_available())

    def effective_capabilities(self) -> frozenset[Capability]:
        """What this instance can do on this host (see ``AsyncProvider``)."""
        return run_sync(self.async_provider.effective_capabilities())

    def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        workspace_id: str | None = None,
        workspace_template: str | None = None,
        git_repo: str | None = None,
        git_branch: str | None = None,
        network: NetworkPolicy | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code``; see :meth:`AsyncProvider.run`."""
        return run_sync(
            self.async_provider.run(
                code,
                language=language,
                timeout=timeout,
                cpu=cpu,
                memory=memory,
                disk=disk,
                env=env,
                stdin=stdin,
                workspace_id=workspace_id,
                workspace_template=workspace_template,
                git_repo=git_repo,
                git_branch=git_branch,
                network=network,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
            )
        )

    def stream(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        workspace_id: str | None = None,
        workspace_template: str | None = None,
        git_repo: str | None = None,
        git_branch: str | None = None,
        network: NetworkPolicy | None = None,
    ) -> SyncOutputStream:
        """Run ``code`` and iterate its output as it is produced.

        ``for chunk in stream: ...`` yields :class:`OutputChunk`; afterwards
        ``stream.result`` holds the :class:`RunResult`. The keyword arguments are those of
        :meth:`run`.
        """
        self.async_provider.require(Capability.STREAMING)
        options = {
            "language": language,
            "timeout": timeout,
            "cpu": cpu,
            "memory": memory,
            "disk": disk,
            "env": env,
            "stdin": stdin,
            "workspace_id": workspace_id,
            "workspace_template": workspace_template,
            "git_repo": git_repo,
            "git_branch": git_branch,
            "network": network,
        }
        return SyncOutputStream(self.async_provider, code, options)

    def create_workspace(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """Create a workspace; see :meth:`AsyncProvider.create_workspace`."""
        return run_sync(
            self.async_provider.create_workspace(
                name=name,
                template=template,
                persistent=persistent,
                cpu=cpu,
                memory=memory,
                disk=disk,
                network=network,
                labels=labels,
                env=env,
            )
        )

    def sandbox(
        self,
        *,
        name: str | None = None,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Sandbox:
        """A handle that creates a workspace on ``with`` entry and deletes it on exit."""
        from ._sandbox import Sandbox

        return Sandbox(
            self.async_provider.sandbox(
                name=name,
                template=template,
                persistent=persistent,
                cpu=cpu,
                memory=memory,
                disk=disk,
                network=network,
                labels=labels,
                env=env,
            )
        )

    def attach(self, workspace: WorkspaceRef) -> Sandbox:
        """A handle on an existing workspace; leaving it does not delete the workspace."""
        from ._sandbox import Sandbox

        return Sandbox(run_sync(self.async_provider.attach(workspace)))

    def get_workspace(self, workspace_id: str) -> Workspace:
        """The workspace with this id (or name)."""
        return run_sync(self.async_provider.get_workspace(workspace_id))

    def list_workspaces(self, *, labels: Mapping[str, str] | None = None) -> list[Workspace]:
        """Every workspace this provider's account can see (with ``labels``: carrying them)."""
        return run_sync(self.async_provider.list_workspaces(labels=labels))

    def get_or_create_workspace(
        self,
        *,
        name: str,
        template: str | None = None,
        persistent: bool = True,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        network: NetworkPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Workspace:
        """The workspace called ``name``, created as :meth:`create_workspace` would if missing."""
        return run_sync(
            self.async_provider.get_or_create_workspace(
                name=name,
                template=template,
                persistent=persistent,
                cpu=cpu,
                memory=memory,
                disk=disk,
                network=network,
                labels=labels,
                env=env,
            )
        )

    def reap(
        self,
        *,
        older_than: float | None = None,
        dry_run: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Delete what nobody will delete; see :meth:`AsyncProvider.reap`."""
        return run_sync(
            self.async_provider.reap(older_than=older_than, dry_run=dry_run, labels=labels)
        )

    def delete_workspace(self, workspace: WorkspaceRef) -> None:
        """Delete a workspace."""
        run_sync(self.async_provider.delete_workspace(workspace))

    def run_in_workspace(
        self,
        workspace: WorkspaceRef,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` inside an existing workspace."""
        return run_sync(
            self.async_provider.run_in_workspace(
                workspace,
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
        workspace: WorkspaceRef,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run a shell command line inside an existing workspace."""
        return run_sync(
            self.async_provider.exec(workspace, command, timeout=timeout, env=env, stdin=stdin)
        )

    def write_file(self, workspace: WorkspaceRef, path: str, data: str | bytes) -> None:
        """Write a file in the workspace."""
        run_sync(self.async_provider.write_file(workspace, path, data))

    def read_file(
        self, workspace: WorkspaceRef, path: str, *, max_size: int | None = None
    ) -> bytes:
        """Read a file from the workspace (``max_size``: refuse a larger one)."""
        return run_sync(self.async_provider.read_file(workspace, path, max_size=max_size))

    def list_files(self, workspace: WorkspaceRef, path: str = ".") -> list[FileInfo]:
        """List a directory in the workspace."""
        return run_sync(self.async_provider.list_files(workspace, path))

    def delete_file(self, workspace: WorkspaceRef, path: str) -> None:
        """Delete a file or directory tree in the workspace."""
        run_sync(self.async_provider.delete_file(workspace, path))

    def git_clone(
        self, workspace: WorkspaceRef, url: str, *, branch: str | None = None, path: str = "."
    ) -> None:
        """Clone a repository into the workspace."""
        run_sync(self.async_provider.git_clone(workspace, url, branch=branch, path=path))

    def git_status(self, workspace: WorkspaceRef, path: str = ".") -> GitStatus:
        """``git status`` inside the workspace."""
        return run_sync(self.async_provider.git_status(workspace, path))

    def snapshot(self, workspace: WorkspaceRef, *, name: str | None = None) -> Snapshot:
        """Capture the workspace's files."""
        return run_sync(self.async_provider.snapshot(workspace, name=name))

    def restore(self, snapshot: Snapshot | str, *, name: str | None = None) -> Workspace:
        """A new workspace from a snapshot."""
        return run_sync(self.async_provider.restore(snapshot, name=name))

    def list_snapshots(self) -> list[Snapshot]:
        """Every snapshot this provider holds."""
        return run_sync(self.async_provider.list_snapshots())

    def delete_snapshot(self, snapshot: Snapshot | str) -> None:
        """Delete a snapshot."""
        run_sync(self.async_provider.delete_snapshot(snapshot))

    def get_workspace_metrics(self, workspace: WorkspaceRef) -> WorkspaceMetrics:
        """Resource figures for the workspace."""
        return run_sync(self.async_provider.get_workspace_metrics(workspace))

    def estimate_cost(
        self,
        *,
        duration: float,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
    ) -> CostEstimate:
        """Estimated cost of a workspace with these resources for ``duration`` seconds."""
        return run_sync(
            self.async_provider.estimate_cost(duration=duration, cpu=cpu, memory=memory, disk=disk)
        )


class Extras:
    """A provider's own public methods, blocking (see :attr:`SyncProvider.extras`)."""

    def __init__(self, provider: AsyncProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return f"<Extras of {self._provider.name!r}>"

    def __dir__(self) -> list[str]:
        return [name for name in dir(self._provider) if not name.startswith("_")]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        import inspect

        value = getattr(self._provider, name)
        if not inspect.iscoroutinefunction(value):
            return value

        @functools.wraps(value)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return run_sync(value(*args, **kwargs))

        return blocking


class SyncOutputStream:
    """The blocking twin of :class:`~sandstorm.OutputStream`.

    Iterate it for :class:`OutputChunk` s as the code prints them; once the iteration is
    over, ``result`` holds the :class:`RunResult`. Leaving the loop early cancels the run
    (its workspace is cleaned up as for any cancelled run).
    """

    def __init__(self, provider: AsyncProvider, code: str, kwargs: dict[str, Any]) -> None:
        self._provider = provider
        self._code = code
        self._kwargs = kwargs
        self._started = False
        self.result: RunResult | None = None

    def __iter__(self) -> Iterator[OutputChunk]:
        if self._started:
            raise RuntimeError("a stream can be iterated only once")
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[OutputChunk]:
        import asyncio
        import queue

        from ._models import OutputChunk

        chunks: queue.SimpleQueue[OutputChunk | None] = queue.SimpleQueue()

        def emit(stream: str) -> OutputCallback:
            return lambda text: chunks.put(OutputChunk(stream=stream, text=text))  # type: ignore[arg-type]

        async def produce() -> RunResult:
            try:
                return await self._provider.run(
                    self._code, on_stdout=emit("stdout"), on_stderr=emit("stderr"), **self._kwargs
                )
            finally:
                chunks.put(None)

        future = asyncio.run_coroutine_threadsafe(produce(), _background_loop())
        finished = False
        try:
            while (item := chunks.get()) is not None:
                yield item
            finished = True
        finally:
            if not finished and not future.done():
                future.cancel()
                with contextlib.suppress(BaseException):
                    future.result()
        self.result = future.result()
