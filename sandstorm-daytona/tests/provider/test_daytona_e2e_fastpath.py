"""The fast path: which HTTP requests a run costs, on one pooled keep-alive connection."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import sandstorm
from sandstorm_daytona import DaytonaConfig, DaytonaProvider

pytestmark = pytest.mark.anyio


def record(provider: DaytonaProvider) -> list[str]:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        path = request.url.path
        parts = path.split("/")
        # /toolbox/<id>/process/session/<sid>/exec -> /toolbox/*/process/session/*/exec
        if parts[1:2] == ["toolbox"]:
            parts[2] = "*"
        if len(parts) > 5 and parts[3:5] == ["process", "session"]:
            parts[5] = "*"
        if parts[1:3] == ["api", "sandbox"] and len(parts) > 3:
            parts[3] = "*"
        seen.append(f"{request.method} {'/'.join(parts)}")

    provider._http.client.event_hooks["request"].append(hook)
    return seen


async def test_one_shot_run_requests(provider: DaytonaProvider) -> None:
    seen = record(provider)
    await provider.run("print(1)")
    assert seen[:2] == [
        "POST /api/sandbox",  # create: the reply already says "started", so no polling
        "POST /toolbox/*/process/execute",  # one exec: stdout/stderr apart, framed
    ]
    await provider._deletes.wait()
    assert seen[2:] == ["DELETE /api/sandbox/*"]  # behind the result


async def test_warm_run_costs_toolbox_round_trips_only(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    config = config_for(
        emulator.api_url,  # type: ignore[attr-defined]
        api_key=emulator.api_key,  # type: ignore[attr-defined]
        warm_pool_size=1,
    )
    async with DaytonaProvider(config) as provider:
        spec = provider._sandstorm_spec(
            template=None, persistent=False, resources=sandstorm.Resources(), network=None
        )
        await provider.run("print(0)")  # creates the pool
        assert provider._sandstorm_pool is not None
        await provider._sandstorm_pool.fill(spec)
        seen = record(provider)
        result = await provider.run("print(1)")
        assert result.stdout == "1\n"
        toolbox = [s for s in seen if "/toolbox/" in s]
        assert toolbox == ["POST /toolbox/*/process/execute"]
        # the rest: deleting the used sandbox, and the pool's background refill
        assert set(seen) - set(toolbox) <= {"DELETE /api/sandbox/*", "POST /api/sandbox"}


async def test_requests_share_one_connection(provider: DaytonaProvider) -> None:
    connections: set[int] = set()

    async def hook(response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        if stream is not None:
            connections.add(id(stream))

    provider._http.client.event_hooks["response"].append(hook)
    for _ in range(3):
        await provider.run("print(1)")
        await provider._deletes.wait()  # else the next create may overlap the delete
    assert len(connections) == 1  # keep-alive: nine requests, one TCP connection
