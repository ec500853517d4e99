"""Cleanup that a cancelled caller cannot interrupt."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["shielded"]

T = TypeVar("T")

log = logging.getLogger("sandstorm")


async def shielded(awaitable: Awaitable[T]) -> T:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile, and return its value.

    For cleanup that must happen (killing a run, deleting what a failed call made, reading
    a timed-out run's partial output). A cancelled caller waits for the cleanup to finish,
    then the cancellation propagates; a cleanup that failed meanwhile is logged, never
    raised in place of the cancellation.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.warning("cleanup after a cancelled call also failed: %r", task.exception())
        raise
