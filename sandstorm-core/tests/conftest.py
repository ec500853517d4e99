"""Shared fixtures for sandstorm-core's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import sandstorm


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
    """What a local provider with state dir ``root`` left: workspaces and trash entries."""
    workspaces = root / "workspaces"
    hidden = (".trash", ".spare")  # containers: what is inside them counts
    places = [workspaces, *(workspaces / name for name in hidden), root / "trash"]
    return sorted(
        str(entry.relative_to(root))
        for place in places
        if place.is_dir()
        for entry in place.iterdir()
        if entry.name not in hidden
    )


@pytest.fixture
def leftovers() -> Callable[[Path], list[str]]:
    """:func:`list_leftovers`, for tests that check a state dir holds nothing."""
    return list_leftovers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
