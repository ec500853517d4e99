"""The async API and the blocking facade on the real local provider."""

from __future__ import annotations

import asyncio
import time

import pytest

import sandstorm


def test_sync_run(local: sandstorm.SyncProvider) -> None:
    result = local.run("print(6*7)")
    assert result.stdout == "42\n"
    assert result.exit_code == 0
    assert result.provider == "local"
    assert result.duration > 0


@pytest.mark.anyio
async def test_async_run(alocal: sandstorm.AsyncProvider) -> None:
    result = await alocal.run("print(6*7)")
    assert result.stdout == "42\n"


def test_acceptance_line_exactly() -> None:
    assert sandstorm.get_provider("local").run("print(6*7)").stdout == "42\n"

    async def main() -> str:
        async with sandstorm.get_async_provider("local") as provider:
            return (await provider.run("print(6*7)")).stdout

    assert asyncio.run(main()) == "42\n"


def test_blocking_api_inside_an_event_loop_says_what_to_do(
    local: sandstorm.SyncProvider,
) -> None:
    async def misuse() -> None:
        local.run("print(1)")

    with pytest.raises(RuntimeError, match="get_async_provider"):
        asyncio.run(misuse())


def test_concurrent_async_runs_overlap() -> None:
    async def main() -> float:
        async with sandstorm.get_async_provider("local") as provider:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(provider.run("import time; time.sleep(0.5); print('ok')") for _ in range(4))
            )
            assert [r.stdout for r in results] == ["ok\n"] * 4
            return time.perf_counter() - started

    assert asyncio.run(main()) < 1.9


def test_undeclared_capability_raises(local: sandstorm.SyncProvider) -> None:
    for capability in sandstorm.Capability:
        if capability in local.capabilities:
            continue
        with pytest.raises(sandstorm.CapabilityNotSupported):
            _exercise(local, capability)


def _exercise(provider: sandstorm.SyncProvider, capability: sandstorm.Capability) -> None:
    calls = {
        sandstorm.Capability.COST: lambda: provider.estimate_cost(duration=1),
        sandstorm.Capability.SNAPSHOTS: provider.list_snapshots,
        sandstorm.Capability.TEMPLATES: lambda: provider.run("1", workspace_template="t"),
        sandstorm.Capability.GIT: lambda: provider.run("1", git_repo="/nonexistent"),
        sandstorm.Capability.STREAMING: lambda: provider.run("1", on_stdout=print),
        sandstorm.Capability.METRICS: lambda: provider.get_workspace_metrics("w"),
        sandstorm.Capability.FILES: lambda: provider.read_file("w", "x"),
        sandstorm.Capability.PERSISTENCE: provider.create_workspace,
        sandstorm.Capability.RESOURCE_LIMITS: lambda: provider.run("1", memory=64),
        sandstorm.Capability.NETWORK_POLICY: lambda: provider.run(
            "1", network=sandstorm.NetworkPolicy.host()
        ),
        sandstorm.Capability.INTERPRETER: lambda: provider.run_code("w", "1"),
        sandstorm.Capability.PROCESSES: lambda: provider.start_process("w", "true"),
        sandstorm.Capability.PORTS: lambda: provider.expose_port("w", 8080),
    }
    calls[capability]()


def test_bad_input_is_a_typed_error(local: sandstorm.SyncProvider) -> None:
    with pytest.raises(sandstorm.ProviderConfigError, match="cobol"):
        local.run("x", language="cobol")
    with pytest.raises(sandstorm.ProviderConfigError, match="timeout"):
        local.run("x", timeout=-1)
    with pytest.raises(sandstorm.ProviderConfigError, match="env"):
        local.run("x", env={"A=B": "c"})
    with pytest.raises(sandstorm.WorkspaceNotFound):
        local.run_in_workspace("ws-does-not-exist", "print(1)")
