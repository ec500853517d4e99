"""Shared fixtures for sandstorm-core's own tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import sandstorm
from sandstorm import Capability, ExecRequest, RunResult, Workspace, WorkspaceSpec


@pytest.fixture
def state_root(tmp_path: Path) -> Path:
    """A private state directory for the local provider, removed after the test."""
    root = tmp_path / "state"
    root.mkdir()
    return root


@pytest.fixture
def local(state_root: Path) -> Iterator[sandstorm.SyncProvider]:
    """A blocking local provider with its own state directory."""
    with sandstorm.get_provider("local", root=str(state_root)) as provider:
        yield provider
        for workspace in provider.list_workspaces():
            provider.delete_workspace(workspace)


@pytest.fixture
async def alocal(state_root: Path) -> AsyncIterator[sandstorm.AsyncProvider]:
    """An async local provider with its own state directory."""
    async with sandstorm.get_async_provider("local", root=str(state_root)) as provider:
        yield provider
        for workspace in await provider.list_workspaces():
            await provider.delete_workspace(workspace)


def list_leftovers(root: Path) -> list[str]:
    """What a local provider with state dir ``root`` left (see ``WorkspaceStore.leftovers``)."""
    from sandstorm.local._workspaces import WorkspaceStore

    return WorkspaceStore.leftovers(root)


@pytest.fixture
def leftovers() -> Callable[[Path], list[str]]:
    """:func:`list_leftovers`, for tests that check a state dir holds nothing."""
    return list_leftovers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class MemoryProvider(sandstorm.AsyncProvider):
    """A provider whose workspaces live in a dict, for the core's own logic (hooks, audit,
    reaping, pools) without the engine. It runs nothing: a "run" echoes its code, and
    ``exit N`` exits with status N."""

    name = "memory"
    description = "workspaces in a dict; runs echo their code (core tests only)"
    capabilities = frozenset({Capability.PERSISTENCE})
    languages = frozenset({"python", "shell"})

    def __init__(self, config: sandstorm.ProviderConfig | None = None) -> None:
        super().__init__(config)
        self.workspaces: dict[str, Workspace] = {}
        self.deleted: list[str] = []

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        workspace = Workspace(
            id=f"mem-{uuid.uuid4().hex[:12]}",
            provider=self.name,
            name=spec.name,
            template=spec.template,
            persistent=spec.persistent,
            created_at=datetime.now(UTC),
            resources=spec.resources,
            network=spec.network,
            labels=dict(spec.labels),
        )
        self.workspaces[workspace.id] = workspace
        return workspace

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        try:
            return self.workspaces[workspace_id]
        except KeyError:
            raise sandstorm.WorkspaceNotFound(workspace_id, self.name) from None

    async def _list_workspaces(self) -> list[Workspace]:
        return list(self.workspaces.values())

    async def _delete_workspace(self, workspace_id: str) -> None:
        if self.workspaces.pop(workspace_id, None) is None:
            raise sandstorm.WorkspaceNotFound(workspace_id, self.name)
        self.deleted.append(workspace_id)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        word, _, status = request.code.partition(" ")
        exit_code = int(status) if word == "exit" and status.isdigit() else 0
        return RunResult(
            stdout="" if exit_code else request.code + "\n",
            stderr="",
            exit_code=exit_code,
            duration=0.0,
            workspace_id=workspace.id,
            provider=self.name,
            language=request.language,
        )


@pytest.fixture
def plugins() -> Iterator[Callable[[object], None]]:
    """Registers hook plugins for one test; each is unregistered after it."""
    manager = sandstorm.plugin_manager()
    registered: list[object] = []

    def register(plugin: object) -> None:
        manager.register(plugin)
        registered.append(plugin)

    yield register
    for plugin in registered:
        manager.unregister(plugin)


@pytest.fixture
async def memory() -> AsyncIterator[MemoryProvider]:
    """An in-memory provider (no engine), closed after the test."""
    async with MemoryProvider() as provider:
        yield provider
