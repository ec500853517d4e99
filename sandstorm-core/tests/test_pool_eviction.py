"""The warm pool's own logic, without any engine: keys, eviction, refill, close."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from sandstorm import WarmPool, Workspace, WorkspaceSpec


class Backend:
    """Creates and deletes workspaces in memory and remembers what it did."""

    def __init__(self) -> None:
        self.ids = itertools.count()
        self.live: dict[str, Workspace] = {}
        self.deleted: list[str] = []

    async def create(self, spec: WorkspaceSpec) -> Workspace:
        await asyncio.sleep(0)
        ws = Workspace(
            id=f"ws-{next(self.ids)}",
            provider="memory",
            template=spec.template,
            created_at=datetime.now(UTC),
            labels=spec.labels,
        )
        self.live[ws.id] = ws
        return ws

    async def delete(self, ws: Workspace) -> None:
        await asyncio.sleep(0)
        del self.live[ws.id]
        self.deleted.append(ws.id)


def spec(template: str) -> WorkspaceSpec:
    return WorkspaceSpec(template=template)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_least_recently_used_key_is_evicted_and_its_workspaces_deleted() -> None:
    backend = Backend()
    pool = WarmPool(backend.create, backend.delete, size=2, max_keys=2)
    await pool.fill(spec("a"))
    await pool.fill(spec("b"))
    a_waiting = {ws.id for ws in backend.live.values() if ws.template == "a"}
    assert len(a_waiting) == 2
    await pool.fill(spec("a"))  # a is now the most recently used key
    await pool.fill(spec("c"))  # b goes
    await settle()
    assert pool.ready_count(spec("b")) == 0
    assert pool.ready_count(spec("a")) == 2
    assert pool.ready_count(spec("c")) == 2
    assert {ws.template for ws in backend.live.values()} == {"a", "c"}
    assert len(backend.deleted) == 2
    assert a_waiting <= set(backend.live)
    await pool.aclose()
    assert backend.live == {}


@pytest.mark.anyio
async def test_acquire_hands_out_each_workspace_once_and_refills_behind() -> None:
    backend = Backend()
    pool = WarmPool(backend.create, backend.delete, size=2)
    await pool.fill(spec("a"))
    first = await pool.acquire(spec("a"))
    second = await pool.acquire(spec("a"))
    assert first.id != second.id
    await settle()
    assert pool.ready_count(spec("a")) == 2
    handed = {first.id, second.id}
    waiting = set(backend.live) - handed
    assert len(waiting) == 2
    await pool.aclose()
    assert set(backend.live) == handed  # the caller owns what it was handed


@pytest.mark.anyio
async def test_acquire_creates_when_nothing_waits_and_refuses_after_close() -> None:
    backend = Backend()
    pool = WarmPool(backend.create, backend.delete, size=1)
    ws = await pool.acquire(spec("x"))
    assert ws.id in backend.live
    await pool.aclose()
    with pytest.raises(RuntimeError):
        await pool.acquire(spec("x"))


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size"):
        WarmPool(Backend().create, Backend().delete, size=0)
