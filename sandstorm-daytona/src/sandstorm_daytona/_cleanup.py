"""Deletes that run behind a one-shot run: bounded, retried, awaited at close and at exit.

A one-shot run returns its result as soon as it has it; the sandbox is deleted by a task
kept in :class:`BackgroundDeletes`. ``DaytonaProvider._aclose`` waits for them. At
interpreter exit, deletes still in flight are finished on their event loop when it still
runs (the blocking facade's thread), else sent with a blocking client. A delete that
resists all this is left to the expiry labels and ``reap``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable

import httpx

__all__ = ["BackgroundDeletes"]

log = logging.getLogger("sandstorm.daytona")

_ATTEMPTS = 3
_EXIT_WAIT = 30.0
"""Seconds the interpreter's exit waits for deletes still in flight."""

_live: weakref.WeakSet[BackgroundDeletes] = weakref.WeakSet()


class BackgroundDeletes:
    """The sandbox deletes a provider runs in the background (one task per sandbox)."""

    def __init__(
        self,
        delete: Callable[[str], Awaitable[None]],
        blocking_delete: Callable[[str], None],
        *,
        limit: float,
    ) -> None:
        self._delete = delete
        self._blocking_delete = blocking_delete
        self._limit = limit
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        _live.add(self)

    def __len__(self) -> int:
        return len(self._tasks)

    def pending(self) -> frozenset[str]:
        """The workspaces being deleted: gone as far as the API is concerned."""
        return frozenset(self._tasks.values())

    def spawn(self, workspace_id: str) -> None:
        """Delete ``workspace_id`` in the background (returns at once)."""
        self._loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(self._run(workspace_id))
        self._tasks[task] = workspace_id
        task.add_done_callback(self._done)

    async def wait(self) -> None:
        """Wait until every delete in flight has finished (or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _run(self, workspace_id: str) -> None:
        """Try a few times within ``limit`` seconds; finish even if the loop is shutting down.

        ``asyncio.run`` cancels the tasks left when its main coroutine returns: the delete
        then goes on (once) instead of leaking the sandbox.
        """
        cancelled = False
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with asyncio.timeout(self._limit):
                    await self._delete(workspace_id)
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if cancelled or task is None:
                    raise
                cancelled = True
                task.uncancel()
                log.debug("delete of %s cancelled (loop closing?): finishing it", workspace_id)
            except Exception as exc:
                if attempt == _ATTEMPTS:
                    log.warning(
                        "could not delete sandbox %s (left to its expiry label and reap): %s",
                        workspace_id,
                        exc,
                    )
                    return
                log.debug("delete of %s failed (%s); trying again", workspace_id, exc)
                await asyncio.sleep(0.2 * attempt)

    def drain_at_exit(self) -> None:
        """Finish what is still in flight, from the exiting interpreter (blocking)."""
        pending = [wid for task, wid in list(self._tasks.items()) if not task.done()]
        if not pending:
            return
        loop = self._loop
        if loop is not None and loop.is_running() and not _runs_here(loop):
            future = asyncio.run_coroutine_threadsafe(self.wait(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout=_EXIT_WAIT)
                return
        for workspace_id in [wid for task, wid in list(self._tasks.items()) if not task.done()]:
            try:
                self._blocking_delete(workspace_id)
            except (httpx.HTTPError, OSError) as exc:
                log.warning("could not delete sandbox %s at exit: %s", workspace_id, exc)


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop`` is the running loop of this thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _drain_all() -> None:
    for deletes in list(_live):
        deletes.drain_at_exit()


atexit.register(_drain_all)
