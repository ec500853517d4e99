"""The fixtures every contract class shares: the provider, workspaces, cleanup."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import sandstorm
from sandstorm import (
    AsyncProvider,
    Capability,
    Snapshot,
    SnapshotNotFound,
    SyncProvider,
    Workspace,
    WorkspaceNotFound,
)

from ._bounded import deadline_of, loop_for
from ._marks import ContractRoot, check_requirements, needs_effective
from ._settings import KitSettings

__all__ = ["LABEL", "AsyncContract", "SyncContract", "WorkspaceFactory"]

LABEL = "sandstorm-testkit"
"""Label key on every workspace the kit creates; its value is the session's run id."""


class WorkspaceFactory:
    """Creates labelled, named workspaces and snapshots; deletes them all afterwards.

    ``await new_workspace(**kwargs)`` takes the keyword arguments of
    :meth:`sandstorm.AsyncProvider.create_workspace`; ``persistent`` defaults to whether
    the provider declares PERSISTENCE.
    """

    def __init__(self, provider: AsyncProvider, run_id: str) -> None:
        self.provider = provider
        self.run_id = run_id
        self.workspaces: list[str] = []
        self.snapshots: list[str] = []
        self._counter = itertools.count(1)

    def name(self) -> str:
        """A fresh, unique workspace name that identifies this session."""
        return f"sstk-{self.run_id}-{next(self._counter)}{uuid.uuid4().hex[:6]}"

    @property
    def labels(self) -> dict[str, str]:
        """The labels every kit workspace carries."""
        return {LABEL: self.run_id}

    async def __call__(self, **kwargs: Any) -> Workspace:
        kwargs.setdefault("persistent", self.provider.supports(Capability.PERSISTENCE))
        kwargs.setdefault("name", self.name())
        kwargs["labels"] = {**self.labels, **(kwargs.get("labels") or {})}
        workspace = await self.provider.create_workspace(**kwargs)
        self.workspaces.append(workspace.id)
        return workspace

    def track(self, item: Workspace | Snapshot) -> None:
        """Delete ``item`` at teardown too (restored workspaces, snapshots)."""
        (self.snapshots if isinstance(item, Snapshot) else self.workspaces).append(item.id)

    async def cleanup(self) -> None:
        """Delete everything made here, then prove it is gone (fails the test otherwise)."""
        provider = self.provider
        problems: list[str] = []
        for snapshot_id in self.snapshots:
            with contextlib.suppress(SnapshotNotFound):
                await provider.delete_snapshot(snapshot_id)
        for workspace_id in self.workspaces:
            with contextlib.suppress(WorkspaceNotFound):
                await provider.delete_workspace(workspace_id)
        for workspace_id in self.workspaces:
            try:
                await provider.get_workspace(workspace_id)
            except WorkspaceNotFound:
                continue
            problems.append(f"workspace {workspace_id} still exists after delete_workspace")
        if self.workspaces:
            listed = {ws.id for ws in await provider.list_workspaces()}
            problems += [
                f"workspace {ws_id} is still listed after delete_workspace"
                for ws_id in self.workspaces
                if ws_id in listed
            ]
        if self.snapshots:
            snaps = {snap.id for snap in await provider.list_snapshots()}
            problems += [
                f"snapshot {snap_id} is still listed after delete_snapshot"
                for snap_id in self.snapshots
                if snap_id in snaps
            ]
        if problems:
            pytest.fail("cleanup failed: " + "; ".join(problems), pytrace=False)


class _Fixtures(ContractRoot):
    @pytest.fixture
    def provider_factory(self, sandstorm_settings: KitSettings) -> Callable[[], AsyncProvider]:
        """Builds a fresh, unused provider; override it to test an adapter without a name."""
        return sandstorm_settings.provider_factory()


class AsyncContract(_Fixtures):
    """Base of the async contract classes.

    Supply the provider by overriding ``provider_factory`` (a callable returning a new
    :class:`sandstorm.AsyncProvider`) or the async ``provider`` fixture; or run pytest
    with ``--sandstorm-provider=NAME``.
    """

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The kit runs on asyncio only."""
        return "asyncio"

    @pytest.fixture
    async def provider(
        self, request: pytest.FixtureRequest, provider_factory: Callable[[], AsyncProvider]
    ) -> AsyncIterator[AsyncProvider]:
        """The provider under test, closed after the test."""
        async with provider_factory() as provider:
            loop_for(request.node).providers.append(provider)
            yield provider

    @pytest.fixture(autouse=True)
    async def _sandstorm_requirements(
        self,
        request: pytest.FixtureRequest,
        provider: AsyncProvider,
        sandstorm_settings: KitSettings,
    ) -> None:
        if sandstorm_settings.tested is None:
            sandstorm_settings.tested = type(provider).info()
        effective = None
        if needs_effective(request.node, provider.capabilities):
            effective = await provider.effective_capabilities()
        check_requirements(request.node, provider.name, provider.capabilities, effective)

    @pytest.fixture
    async def new_workspace(
        self, provider: AsyncProvider, sandstorm_run_id: str
    ) -> AsyncIterator[WorkspaceFactory]:
        """A factory of labelled workspaces, all deleted (and checked gone) after the test."""
        factory = WorkspaceFactory(provider, sandstorm_run_id)
        try:
            yield factory
        finally:
            await factory.cleanup()

    @pytest.fixture
    async def workspace(self, new_workspace: WorkspaceFactory) -> Workspace:
        """One workspace (persistent when the provider declares PERSISTENCE)."""
        return await new_workspace()


class SyncContract(_Fixtures):
    """Base of the blocking-facade contract; uses ``sync_provider``."""

    @pytest.fixture
    def sync_provider(
        self, request: pytest.FixtureRequest, provider_factory: Callable[[], AsyncProvider]
    ) -> Iterator[SyncProvider]:
        """The provider under test behind the blocking facade, closed (bounded) after the test."""
        inner = provider_factory()
        loop = loop_for(request.node)
        loop.providers.append(inner)
        provider = sandstorm.SyncProvider(inner)
        try:
            yield provider
        finally:
            if loop.wedged is None:  # else the test already failed for the hang
                loop.run_sync(
                    provider.close, "closing the sync provider", deadline_of(request.node)
                )

    @pytest.fixture(autouse=True)
    def _sandstorm_sync_requirements(
        self, request: pytest.FixtureRequest, sync_provider: SyncProvider
    ) -> None:
        effective = None
        if needs_effective(request.node, sync_provider.capabilities):
            effective = loop_for(request.node).run_sync(
                sync_provider.effective_capabilities,
                "effective_capabilities()",
                deadline_of(request.node),
            )
        check_requirements(request.node, sync_provider.name, sync_provider.capabilities, effective)
