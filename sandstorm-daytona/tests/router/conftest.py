"""Fixtures for the router tests: ``router`` over ``local`` and daytona-on-emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandstorm_daytona import RetryPolicy


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (the providers use asyncio primitives)."""
    return "asyncio"


def daytona_route(emu: Any, name: str = "daytona", **config: Any) -> dict[str, Any]:
    """A route to the Daytona provider on the emulator ``emu``, retrying briefly."""
    config.setdefault(
        "retry", RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.05, deadline=2)
    )
    return {
        "provider": "daytona",
        "name": name,
        "config": {"api_key": emu.api_key, "api_url": emu.api_url, **config},
    }


def live_sandboxes(emu: Any) -> list[str]:
    """Ids of the sandboxes the emulator still holds (not destroyed)."""
    return [
        record.id
        for record in list(emu.emulator.sandboxes.values())
        if record.state not in ("destroyed", "destroying")
    ]


RouteFactory = Callable[..., dict[str, Any]]
