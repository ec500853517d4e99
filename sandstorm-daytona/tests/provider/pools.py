"""The warm pool of a provider whose first one-shot run made it, once it has refilled."""

from __future__ import annotations

import asyncio
from typing import Any

from sandstorm import Resources, WarmPool, WorkspaceSpec


async def refilled_pool(provider: Any, *, quiet: bool = False) -> tuple[WarmPool, WorkspaceSpec]:
    """``provider``'s pool and the spec of its one-shot runs, once it holds one readied
    workspace (and, with ``quiet``, no background delete is left either)."""
    pool = provider._sandstorm_pool
    assert pool is not None, "no one-shot run made the pool yet"
    spec = provider._sandstorm_spec(
        template=None, persistent=False, resources=Resources(), network=None
    )
    for _ in range(300):
        if pool.ready_count(spec) == 1 and not (quiet and provider._deletes):
            break
        await asyncio.sleep(0.02)
    assert pool.ready_count(spec) == 1
    return pool, spec
