"""Fixtures of the MCP server tests: a local provider, and a client connected in-process."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sandstorm.local import LocalProvider

pytest.importorskip("mcp")

from mcp import Client

from sandstorm.mcp import ServerOptions, build_server


def packages_dir() -> tuple[str, ...]:
    """Where matplotlib is installed on the host, shown to the sandboxes (the chart test)."""
    try:
        import matplotlib
    except ImportError:
        return ()
    return (str(Path(matplotlib.__file__).parent.parent),)


@pytest.fixture
def mcp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private state root for the local provider of one test."""
    return tmp_path_factory.mktemp("mcp-state")


@pytest.fixture
async def provider(mcp_root: Path) -> AsyncIterator[LocalProvider]:
    """A local provider that sees matplotlib; after the test it must hold no workspace."""
    async with LocalProvider.from_config(root=str(mcp_root), python_path=packages_dir()) as local:
        yield local
        left = await local.list_workspaces()
        for workspace in left:
            await local.delete_workspace(workspace)
    assert left == [], f"workspaces left behind: {left}"


Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(provider: LocalProvider) -> Connect:
    """``async with connect(**options) as client``: the official client, in-process."""

    @asynccontextmanager
    async def open_client(target: Any = None, **options: Any) -> AsyncIterator[Client]:
        server = build_server(target or provider, ServerOptions(**options))
        async with Client(server, raise_exceptions=True) as client:
            yield client

    return open_client


def text(result: Any) -> str:
    """The text of a tool result's first block."""
    return str(result.content[0].text)


def png(result: Any) -> bytes:
    """The PNG bytes of a tool result's image block."""
    images = [block for block in result.content if block.type == "image"]
    assert images, f"no image in {result.content}"
    assert images[0].mime_type == "image/png"
    return base64.b64decode(images[0].data)
