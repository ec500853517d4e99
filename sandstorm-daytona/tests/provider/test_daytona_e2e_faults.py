"""Errors and retries against the emulator's real rate limits, quotas, auth and faults."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sandstorm import (
    AuthenticationError,
    NetworkError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    WorkspaceNotFound,
)
from sandstorm_daytona import DaytonaConfig, DaytonaProvider, RetryPolicy

from .conftest import live_sandboxes

pytestmark = pytest.mark.anyio


@contextmanager
def emulator_with(**settings: Any) -> Iterator[Any]:
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(**settings)) as emu:
        yield emu


def provider_for(emu: Any, config_for: Callable[..., DaytonaConfig], **kw: Any) -> DaytonaProvider:
    return DaytonaProvider(config_for(emu.api_url, api_key=emu.api_key, **kw))


async def test_rate_limit_is_waited_out(config_for: Callable[..., DaytonaConfig]) -> None:
    from sandstorm_daytona.emulator import RateLimit

    with emulator_with(rate_limits={"authenticated": RateLimit(limit=4, ttl=1.0)}) as emu:
        async with provider_for(emu, config_for) as provider:
            started = time.monotonic()
            for _ in range(8):  # twice the window's budget
                assert await provider.list_workspaces() == []
            assert time.monotonic() - started >= 0.9  # it waited for Retry-After


async def test_rate_limit_past_the_deadline_is_raised(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import RateLimit

    policy = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05, deadline=0.5)
    with emulator_with(rate_limits={"authenticated": RateLimit(limit=1, ttl=30.0)}) as emu:
        async with provider_for(emu, config_for, retry=policy) as provider:
            await provider.list_workspaces()
            with pytest.raises(RateLimited) as info:
                await provider.list_workspaces()
    assert info.value.retry_after is not None
    assert info.value.retry_after > 1


async def test_quota_exceeded(config_for: Callable[..., DaytonaConfig]) -> None:
    from sandstorm_daytona.emulator import Quotas

    with emulator_with(quotas=Quotas(max_sandboxes=1, total_cpu=2)) as emu:
        async with provider_for(emu, config_for) as provider:
            first = await provider.create_workspace()
            try:
                with pytest.raises(QuotaExceeded) as info:
                    await provider.create_workspace()
                assert info.value.status == 403
                assert live_sandboxes(emu) == [first.id]
            finally:
                await provider.delete_workspace(first)
            with pytest.raises(QuotaExceeded, match="CPU"):
                await provider.create_workspace(cpu=4)
        assert live_sandboxes(emu) == []


async def test_wrong_key(config_for: Callable[..., DaytonaConfig]) -> None:
    with emulator_with() as emu:
        config = config_for(emu.api_url, api_key="not-the-key")
        async with DaytonaProvider(config) as provider:
            assert await provider.is_available() is False
            with pytest.raises(AuthenticationError) as info:
                await provider.create_workspace()
            assert "not-the-key" not in str(info.value)


async def test_organisations_are_isolated(config_for: Callable[..., DaytonaConfig]) -> None:
    keys = {"key-a": "org-a", "key-b": "org-b"}
    with emulator_with(api_keys=keys) as emu:
        async with (
            DaytonaProvider(config_for(emu.api_url, api_key="key-a")) as a,
            DaytonaProvider(config_for(emu.api_url, api_key="key-b")) as b,
        ):
            workspace = await a.create_workspace()
            try:
                with pytest.raises(WorkspaceNotFound):
                    await b.get_workspace(workspace.id)
                assert await b.list_workspaces() == []
            finally:
                await a.delete_workspace(workspace)


async def test_create_whose_reply_is_lost_leaks_nothing(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    # the server creates the sandbox, then drops the connection instead of answering
    rule = FaultRule(path="/api/sandbox", method="POST", kind="drop", when="after")
    with emulator_with(faults=Faults(rules=(rule,))) as emu:
        async with provider_for(emu, config_for) as provider:
            with pytest.raises(NetworkError):
                await provider.create_workspace()
        assert live_sandboxes(emu) == []


async def test_flaky_reads_are_retried(config_for: Callable[..., DaytonaConfig]) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    rules = (FaultRule(path="/api/sandbox/*", method="GET", kind=503, rate=0.5),)
    with emulator_with(faults=Faults(seed=7, rules=rules)) as emu:
        policy = RetryPolicy(attempts=8, initial_backoff=0.01, max_backoff=0.05, deadline=10)
        async with provider_for(emu, config_for, retry=policy) as provider:
            workspace = await provider.create_workspace()
            try:
                for _ in range(6):
                    assert (await provider.get_workspace(workspace.id)).id == workspace.id
            finally:
                await provider.delete_workspace(workspace)
        assert live_sandboxes(emu) == []


async def test_session_exec_is_not_repeated_on_503(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    rules = (FaultRule(path="/toolbox/*/process/session/*/exec", method="POST", kind=503),)
    with emulator_with(faults=Faults(rules=rules)) as emu:
        async with provider_for(emu, config_for) as provider:
            with pytest.raises(ProviderUnavailable):
                await provider.run("print(1)", on_stdout=lambda text: None)
        assert live_sandboxes(emu) == []


async def test_exec_refused_every_time_is_resent_then_raised(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    rules = (FaultRule(path="/toolbox/*/process/execute", method="POST", kind=503),)
    with emulator_with(faults=Faults(rules=rules)) as emu:
        async with provider_for(emu, config_for) as provider:
            seen: list[str] = []

            async def hook(request: httpx.Request) -> None:
                seen.append(f"{request.method} {request.url.path}")

            provider._http.client.event_hooks["request"].append(hook)
            with pytest.raises(ProviderUnavailable):
                await provider.run("print(1)")
            # the one-request run is safe to resend: every attempt of the policy was made
            runs = [s for s in seen if s.endswith("/process/execute") and "kill" not in s]
            assert len(runs) >= provider.config.retry.attempts
        assert live_sandboxes(emu) == []


async def test_slow_start_is_polled_and_cancel_deletes(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    import asyncio

    with emulator_with(transition_delay=1.0) as emu:
        async with provider_for(emu, config_for) as provider:
            started = time.monotonic()
            workspace = await provider.create_workspace()  # replies "starting", then polls
            assert workspace.state == "started"
            assert time.monotonic() - started >= 0.9
            await provider.delete_workspace(workspace)
            task = asyncio.ensure_future(provider.create_workspace())
            await asyncio.sleep(0.4)  # created, still starting
            assert len(live_sandboxes(emu)) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert live_sandboxes(emu) == []


async def test_exec_reply_lost_is_answered_again_without_rerunning(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    # the command runs, then the connection drops instead of the reply (a proxy cut-off);
    # seed 1: the first request matching the rule fails, the second passes
    rule = FaultRule(
        path="/toolbox/*/process/execute", method="POST", kind="drop", when="after", rate=0.5
    )
    with emulator_with(faults=Faults(seed=1, rules=(rule,))) as emu:
        async with provider_for(emu, config_for) as provider:
            workspace = await provider.create_workspace()
            seen: list[str] = []

            async def hook(request: httpx.Request) -> None:
                seen.append(f"{request.method} {request.url.path}")

            provider._http.client.event_hooks["request"].append(hook)
            try:
                code = "import sys\nopen('runs.txt', 'a').write('x')\nprint('out')\nsys.exit(3)"
                result = await provider.run_in_workspace(workspace, code)
                assert (result.stdout, result.exit_code) == ("out\n", 3)
                # sent twice, ran once: the resent command answered the first run's result
                assert sum(s.endswith("/process/execute") for s in seen) == 2
                assert await provider.read_file(workspace, "runs.txt") == b"x"
            finally:
                await provider.delete_workspace(workspace)
        assert live_sandboxes(emu) == []


async def test_session_exec_reply_lost_is_recovered_without_rerunning(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    # the command runs, then the connection drops instead of the reply (a proxy cut-off)
    rule = FaultRule(
        path="/toolbox/*/process/session/*/exec", method="POST", kind="drop", when="after"
    )
    with emulator_with(faults=Faults(rules=(rule,))) as emu:
        async with provider_for(emu, config_for) as provider:
            workspace = await provider.create_workspace()
            seen: list[str] = []

            async def hook(request: httpx.Request) -> None:
                seen.append(f"{request.method} {request.url.path}")

            provider._http.client.event_hooks["request"].append(hook)
            try:
                code = "import sys\nopen('runs.txt', 'a').write('x')\nprint('out')\nsys.exit(3)"
                streamed: list[str] = []
                result = await provider.run_in_workspace(workspace, code, on_stdout=streamed.append)
                assert (result.stdout, result.exit_code) == ("out\n", 3)
                assert "".join(streamed) == "out\n"
                assert await provider.read_file(workspace, "runs.txt") == b"x"  # ran once
                # the recovery looked the command up in its session instead of re-sending it
                assert sum(s.endswith("/exec") for s in seen) == 1
                assert any(s.startswith("GET") and "/command/" in s for s in seen)
            finally:
                await provider.delete_workspace(workspace)
        assert live_sandboxes(emu) == []
