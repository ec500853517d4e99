"""asyncio helpers of the Daytona provider."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["shielded"]

T = TypeVar("T")


async def shielded(awaitable: Awaitable[T]) -> T:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile (cleanup must happen).

    Its value is returned (a cleanup that reads partial output, say); a cancelled caller
    waits for it to finish, then the cancellation propagates.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
