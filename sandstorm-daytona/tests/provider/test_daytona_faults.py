"""Retries, deadlines and leak-proof creation under faults a real server rarely produces.

These use ``httpx.MockTransport`` only to inject the fault (429 with Retry-After, 503,
a dropped or refused connection, a reply that never comes); everything else is the
provider's real code path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandstorm import (
    AuthenticationError,
    NetworkError,
    ProviderUnavailable,
    RateLimited,
    WorkspaceNotFound,
)
from sandstorm_daytona import DaytonaConfig, DaytonaProvider

pytestmark = pytest.mark.anyio

API = "http://127.0.0.1:9/api"


def sandbox_json(sandbox_id: str, name: str, labels: dict[str, str], state: str = "started") -> Any:
    return {
        "id": sandbox_id,
        "organizationId": "org",
        "name": name,
        "user": "daytona",
        "env": {},
        "labels": labels,
        "public": False,
        "networkBlockAll": True,
        "kvm": False,
        "target": "us",
        "cpu": 1,
        "gpu": 0,
        "memory": 1,
        "disk": 3,
        "state": state,
        "toolboxProxyUrl": "http://127.0.0.1:9/toolbox",
        "createdAt": "2026-01-01T00:00:00Z",
    }


def provider_with(
    handler: Callable[[httpx.Request], Any], config_for: Callable[..., DaytonaConfig], **kw: Any
) -> DaytonaProvider:
    return DaytonaProvider(config_for(API, **kw), transport=httpx.MockTransport(handler))


async def test_429_honours_retry_after(config_for: Callable[..., DaytonaConfig]) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            headers = {"Retry-After": "0.3"}
            return httpx.Response(429, json={"message": "slow down"}, headers=headers)
        return httpx.Response(200, json=sandbox_json("sb1", "n", {}))

    async with provider_with(handler, config_for) as provider:
        workspace = await provider.get_workspace("sb1")
    assert workspace.id == "sb1"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.3


async def test_retry_after_past_the_deadline_raises_at_once(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, json={"message": "quota"}, headers={"Retry-After": "120"})

    started = time.monotonic()
    async with provider_with(handler, config_for) as provider:
        with pytest.raises(RateLimited) as info:
            await provider.get_workspace("sb1")
    assert info.value.retry_after == 120.0
    assert calls == 1
    assert time.monotonic() - started < 2


async def test_503_on_a_safe_request_is_retried(config_for: Callable[..., DaytonaConfig]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return httpx.Response(503, json={"message": "unavailable"})
        return httpx.Response(200, json=sandbox_json("sb1", "n", {}))

    async with provider_with(handler, config_for) as provider:
        assert (await provider.get_workspace("sb1")).id == "sb1"
    assert calls == 3


async def test_retries_stop_after_the_attempt_budget(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, json={"message": "down"}, headers={"X-Request-Id": "r-1"})

    async with provider_with(handler, config_for) as provider:
        with pytest.raises(ProviderUnavailable) as info:
            await provider.get_workspace("sb1")
    assert calls == 4
    assert info.value.request_id == "r-1"
    assert "down" in str(info.value)


async def test_unsafe_post_is_not_retried_on_503_or_drop(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/a"):
            return httpx.Response(503, json={"message": "busy"})
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    async with provider_with(handler, config_for) as provider:
        http = provider._http
        with pytest.raises(ProviderUnavailable):
            await http.request("POST", f"{API}/a", "exec", idempotent=False)
        with pytest.raises(NetworkError):
            await http.request("POST", f"{API}/b", "exec", idempotent=False)
    assert seen == ["/api/a", "/api/b"]


async def test_dropped_connection_on_safe_request_is_retried(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(200, json=sandbox_json("sb1", "n", {}))

    async with provider_with(handler, config_for) as provider:
        assert (await provider.get_workspace("sb1")).id == "sb1"
    assert calls == 2


async def test_refused_connection_is_retried_even_for_post(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"ok": True})

    async with provider_with(handler, config_for) as provider:
        reply = await provider._http.request("POST", f"{API}/x", "exec", idempotent=False)
    assert reply.json() == {"ok": True}
    assert calls == 2


async def test_unreachable_server_is_network_error(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    # A real refused connection: nothing listens on 127.0.0.1 port 9 (discard).
    async with DaytonaProvider(config_for("http://127.0.0.1:9/api")) as provider:
        with pytest.raises(NetworkError):
            await provider.get_workspace("sb1")
        assert await provider.is_available() is False


async def test_401_never_reveals_the_key(
    config_for: Callable[..., DaytonaConfig], secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {secret}"
        return httpx.Response(401, json={"statusCode": 401, "message": "Invalid credentials"})

    caplog.set_level(logging.DEBUG)
    async with provider_with(handler, config_for) as provider:
        with pytest.raises(AuthenticationError) as info:
            await provider.get_workspace("sb1")
        assert await provider.is_available() is False
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert secret not in caplog.text


async def test_headers_follow_the_sdk(config_for: Callable[..., DaytonaConfig]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=sandbox_json("sb1", "n", {}))

    async with provider_with(handler, config_for, organization_id="org-7") as provider:
        await provider.get_workspace("sb1")
    headers = seen[0].headers
    assert headers["x-daytona-source"] == "sdk-python"
    assert headers["x-daytona-sdk-version"] == "0.226.1"
    assert headers["accept"] == "application/json"
    assert headers["x-daytona-organization-id"] == "org-7"


class FakeApi:
    """Just enough of POST/GET/DELETE /sandbox to observe creation faults."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, Any] = {}
        self.creates = 0
        self.mode = "ok"
        self.created = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/api/sandbox":
            self.creates += 1
            body = json.loads(request.content)
            if body["name"] in {s["name"] for s in self.sandboxes.values()}:
                return httpx.Response(409, json={"message": "name already exists"})
            sid = f"sb{len(self.sandboxes) + 1}"
            self.sandboxes[sid] = sandbox_json(sid, body["name"], body["labels"])
            self.created.set()
            if self.mode == "drop-first" and self.creates == 1:
                raise httpx.RemoteProtocolError("server disconnected", request=request)
            if self.mode == "hang":
                await asyncio.sleep(30)
            return httpx.Response(200, json=self.sandboxes[sid])
        key = path.rsplit("/", 1)[-1]
        match = next((s for s in self.sandboxes.values() if key in (s["id"], s["name"])), None)
        if match is None:
            return httpx.Response(404, json={"message": "Sandbox not found"})
        if request.method == "DELETE":
            del self.sandboxes[match["id"]]
        return httpx.Response(200, json=match)


async def test_create_retried_after_a_drop_adopts_the_first_sandbox(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    api = FakeApi()
    api.mode = "drop-first"
    async with provider_with(api, config_for) as provider:
        workspace = await provider.create_workspace()
    assert api.creates == 2
    assert list(api.sandboxes) == [workspace.id]  # one sandbox, not two


async def test_cancel_mid_create_deletes_the_sandbox(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    api = FakeApi()
    api.mode = "hang"
    async with provider_with(api, config_for) as provider:
        task = asyncio.ensure_future(provider.create_workspace(persistent=False))
        await asyncio.wait_for(api.created.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert api.sandboxes == {}


async def test_labels_and_backstop_on_create(config_for: Callable[..., DaytonaConfig]) -> None:
    bodies: list[Any] = []
    api = FakeApi()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(json.loads(request.content))
        return await api(request)

    async with provider_with(handler, config_for, owner="alice@test", region="eu") as provider:
        workspace = await provider.create_workspace(persistent=False, labels={"team": "a"})
        await provider.delete_workspace(workspace)
        with pytest.raises(WorkspaceNotFound):
            await provider.delete_workspace(workspace)
    body = bodies[0]
    labels = body["labels"]
    assert labels["sandstorm"] == "1"
    assert labels["sandstorm-owner"] == "alice@test"
    assert labels["team"] == "a"
    assert float(labels["sandstorm-expires-at"]) > time.time()
    assert body["autoDeleteInterval"] == 0
    assert body["autoStopInterval"] >= 1
    assert body["target"] == "eu"
    assert body["networkBlockAll"] is True
    assert "cpu" not in body
    assert "snapshot" not in body
