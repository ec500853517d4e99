"""The provider-agnostic warm pool, driving the real local provider."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sandstorm
from sandstorm import WorkspaceSpec


@pytest.mark.anyio
async def test_pool_hands_out_fresh_workspaces_once(state_root: Path) -> None:
    async with sandstorm.get_async_provider("local", root=str(state_root)) as provider:
        created: list[str] = []

        async def create(spec: WorkspaceSpec) -> sandstorm.Workspace:
            workspace = await provider.create_workspace(persistent=False)
            created.append(workspace.id)
            return workspace

        pool = sandstorm.WarmPool(create, provider.delete_workspace, size=2)
        spec = WorkspaceSpec(persistent=False)
        await pool.fill(spec)
        assert pool.ready_count(spec) == 2
        first = await pool.acquire(spec)
        second = await pool.acquire(spec)
        assert first.id != second.id
        assert {first.id, second.id} <= set(created)
        for _ in range(50):
            if pool.ready_count(spec) == 2:
                break
            await asyncio.sleep(0.02)
        assert pool.ready_count(spec) == 2
        await pool.aclose()
        remaining = {ws.id for ws in await provider.list_workspaces()}
        assert remaining == {first.id, second.id}
        for workspace in (first, second):
            await provider.delete_workspace(workspace)


@pytest.mark.anyio
async def test_provider_runs_from_the_pool_and_never_reuses(state_root: Path) -> None:
    async with sandstorm.get_async_provider(
        "local", root=str(state_root), warm_pool_size=1
    ) as provider:
        first = await provider.run("import os; open('mark','w').write('x'); print(os.getcwd())")
        second = await provider.run("import os; print(os.path.exists('mark'))")
        assert first.workspace_id != second.workspace_id
        assert second.stdout == "False\n"
    async with sandstorm.get_async_provider("local", root=str(state_root)) as provider:
        assert await provider.list_workspaces() == []


@pytest.mark.anyio
async def test_pool_prepares_what_it_refills_and_never_a_callers_own(state_root: Path) -> None:
    async with sandstorm.get_async_provider("local", root=str(state_root)) as provider:
        prepared: list[str] = []
        failing = {"on": False}

        async def prepare(workspace: sandstorm.Workspace) -> None:
            if failing["on"]:
                raise RuntimeError("cannot warm it")
            await provider.write_file(workspace.id, "warm", "1")
            prepared.append(workspace.id)

        async def create(spec: WorkspaceSpec) -> sandstorm.Workspace:
            return await provider.create_workspace(persistent=False)

        pool = sandstorm.WarmPool(create, provider.delete_workspace, size=1, prepare=prepare)
        spec = WorkspaceSpec(persistent=False)
        own = await pool.acquire(spec, refill=False)  # empty pool: the caller's own create
        assert prepared == []
        pool.refill(spec)
        await _ready(pool, spec)
        waiting = await pool.acquire(spec, refill=False)
        assert prepared == [waiting.id]  # readied before it waited in the pool
        assert await provider.read_file(waiting.id, "warm") == b"1"
        failing["on"] = True  # a workspace that cannot be readied is still handed out
        pool.refill(spec)
        await _ready(pool, spec)
        unready = await pool.acquire(spec, refill=False)
        assert unready.id not in prepared
        await pool.aclose()
        for workspace in (own, waiting, unready):
            await provider.delete_workspace(workspace)
        assert await provider.list_workspaces() == []


@pytest.mark.anyio
async def test_pool_closing_mid_prepare_deletes_the_workspace(state_root: Path) -> None:
    async with sandstorm.get_async_provider("local", root=str(state_root)) as provider:
        started = asyncio.Event()

        async def prepare(workspace: sandstorm.Workspace) -> None:
            started.set()
            await asyncio.sleep(30)

        async def create(spec: WorkspaceSpec) -> sandstorm.Workspace:
            return await provider.create_workspace(persistent=False)

        pool = sandstorm.WarmPool(create, provider.delete_workspace, size=1, prepare=prepare)
        pool.refill(WorkspaceSpec(persistent=False))  # nothing known yet: nothing to refill
        own = await pool.acquire(WorkspaceSpec(persistent=False))  # this one refills
        await asyncio.wait_for(started.wait(), 10)
        await pool.aclose()
        await provider.delete_workspace(own)
        assert await provider.list_workspaces() == []


async def _ready(pool: sandstorm.WarmPool, spec: WorkspaceSpec) -> None:
    """Wait until ``pool`` holds a workspace for ``spec`` (its refill is done)."""
    for _ in range(200):
        if pool.ready_count(spec) == 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the pool did not refill within 2 s")
