"""A provider-agnostic warm pool of ready, never-used workspaces."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING

from ._models import Workspace

if TYPE_CHECKING:
    from ._provider import WorkspaceSpec

__all__ = ["WarmPool"]

log = logging.getLogger("sandstorm.pool")


class WarmPool:
    """Keeps up to ``size`` fresh workspaces per spec key and refills in the background.

    ``prepare``, when given, readies each workspace the refill creates (the provider's own
    set-up, never user code) before it waits in the pool; a caller's own create does not.

    ``acquire`` hands out a workspace exactly once; a workspace that ran code is never
    handed out again (the caller deletes it). At most ``max_keys`` distinct keys are kept;
    the least recently used key's workspaces are deleted to make room. ``aclose`` stops
    refilling and deletes every workspace still waiting.
    """

    def __init__(
        self,
        create: Callable[[WorkspaceSpec], Awaitable[Workspace]],
        delete: Callable[[Workspace], Awaitable[None]],
        *,
        size: int,
        max_keys: int = 8,
        prepare: Callable[[Workspace], Awaitable[None]] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a warm pool needs size >= 1")
        self._create = create
        self._delete = delete
        self._prepare = prepare
        self.size = size
        self.max_keys = max_keys
        self._ready: OrderedDict[Hashable, list[Workspace]] = OrderedDict()
        self._refills: dict[Hashable, asyncio.Task[None]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._closed = False

    def ready_count(self, spec: WorkspaceSpec) -> int:
        """How many workspaces are waiting for ``spec``'s key right now."""
        return len(self._ready.get(spec.pool_key(), []))

    async def acquire(self, spec: WorkspaceSpec, *, refill: bool = True) -> Workspace:
        """A fresh workspace for ``spec``: a waiting one if any, else a new one.

        The pool refills in the background at once; with ``refill=False`` it waits for
        :meth:`refill`, which a caller makes once its own work is done, so the refill's
        create never competes with it for the service.
        """
        if self._closed:
            raise RuntimeError("the warm pool is closed")
        key = spec.pool_key()
        waiting = self._ready.get(key)
        self._touch(key)
        workspace = waiting.pop() if waiting else None
        if refill:
            self._schedule_refill(key, spec)
        if workspace is not None:
            return workspace
        return await self._create(spec)

    def refill(self, spec: WorkspaceSpec) -> None:
        """Bring ``spec``'s key back up to ``size`` in the background (once at a time)."""
        key = spec.pool_key()
        if not self._closed and key in self._ready:
            self._schedule_refill(key, spec)

    async def fill(self, spec: WorkspaceSpec) -> None:
        """Bring ``spec``'s key up to ``size`` waiting workspaces and wait until it is."""
        self._touch(spec.pool_key())
        await self._refill(spec.pool_key(), spec)

    async def aclose(self) -> None:
        """Stop refilling and delete every waiting workspace."""
        self._closed = True
        tasks = list(self._refills.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        leftovers = [ws for waiting in self._ready.values() for ws in waiting]
        self._ready.clear()
        results = await asyncio.gather(
            *(self._delete(ws) for ws in leftovers), return_exceptions=True
        )
        for ws, outcome in zip(leftovers, results, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("could not delete warm workspace %s: %r", ws.id, outcome)

    def _touch(self, key: Hashable) -> None:
        self._ready.setdefault(key, [])
        self._ready.move_to_end(key)
        while len(self._ready) > self.max_keys:
            old_key, old = self._ready.popitem(last=False)
            task = self._refills.pop(old_key, None)
            if task is not None:
                task.cancel()
            for ws in old:
                self._spawn(self._delete(ws))

    def _schedule_refill(self, key: Hashable, spec: WorkspaceSpec) -> None:
        running = self._refills.get(key)
        if running is not None and not running.done():
            return
        self._refills[key] = asyncio.ensure_future(self._refill(key, spec))

    async def _refill(self, key: Hashable, spec: WorkspaceSpec) -> None:
        while not self._closed and key in self._ready and len(self._ready[key]) < self.size:
            try:
                workspace = await self._create(spec)
            except Exception as exc:
                log.warning("warm pool refill failed: %r", exc)
                return
            if self._prepare is not None:
                try:
                    await self._prepare(workspace)
                except asyncio.CancelledError:
                    self._spawn(self._delete(workspace))  # aclose() waits for it
                    raise
                except Exception as exc:  # still a fresh workspace, only a slower one
                    log.debug("warm pool: could not prepare %s: %r", workspace.id, exc)
            if self._closed or key not in self._ready:
                await self._delete(workspace)
                return
            self._ready[key].append(workspace)

    def _spawn(self, awaitable: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception as exc:
                log.warning("warm pool cleanup failed: %r", exc)

        task = asyncio.ensure_future(run())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
