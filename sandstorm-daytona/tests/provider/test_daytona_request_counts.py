"""Requests per operation, counted by the emulator (issue 12): round trips decide latency.

A one-shot run is create + one exec before its result, the delete behind it; a run in a
workspace is the exec alone; a pooled one-shot run is the exec alone before its result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from sandstorm_daytona import DaytonaConfig, DaytonaProvider

from .conftest import live_sandboxes
from .pools import refilled_pool

pytestmark = pytest.mark.anyio

EXEC = "POST /toolbox/{sandbox_id}/process/execute"


def _http(counts: dict[str, int]) -> dict[str, int]:
    return {key: n for key, n in counts.items() if not key.startswith("WEBSOCKET")}


async def test_one_shot_run_is_two_requests_then_the_delete(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    counts = emulator.emulator.request_counts  # type: ignore[attr-defined]
    config = config_for(emulator.api_url, api_key=emulator.api_key)  # type: ignore[attr-defined]
    async with DaytonaProvider(config) as daytona:
        counts.clear()
        result = await daytona.run("import sys; print('out'); print('err', file=sys.stderr)")
        before = _http(dict(counts))
        assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)
        assert before == {"POST /api/sandbox": 1, EXEC: 1}, before
    after = _http(dict(counts))
    assert after == {**before, "DELETE /api/sandbox/{sandbox}": 1}, after
    assert sum(after.values()) <= 3
    assert live_sandboxes(emulator) == []  # aclose waited for the delete


async def test_run_in_workspace_is_one_request(provider: DaytonaProvider, emulator: object) -> None:
    counts = emulator.emulator.request_counts  # type: ignore[attr-defined]
    workspace = await provider.create_workspace()
    try:
        for ref in (workspace, workspace.id):  # by handle or by id: no GET sandbox
            counts.clear()
            result = await provider.run_in_workspace(ref, "print(6 * 7)")
            assert result.stdout == "42\n"
            assert _http(dict(counts)) == {EXEC: 1}
    finally:
        await provider.delete_workspace(workspace)


async def test_pooled_one_shot_run_is_one_request_before_its_result(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    from sandstorm_daytona.emulator import EmulatorConfig, FaultRule, Faults, running_emulator

    # Creating a sandbox takes 1 s here: a run that waited for the refill would show it.
    slow_create = FaultRule(path="/api/sandbox", method="POST", kind="latency", rate=1.0, latency=1)
    with running_emulator(EmulatorConfig(faults=Faults(rules=(slow_create,)))) as emu:
        counts = emu.emulator.request_counts
        config = config_for(emu.api_url, api_key=emu.api_key, warm_pool_size=1)
        async with DaytonaProvider(config) as daytona:
            await daytona.run("print(0)")  # makes the pool; its refill fills it
            pool, _ = await refilled_pool(daytona, quiet=True)
            counts.clear()
            started = time.perf_counter()
            result = await daytona.run("print(1)")
            elapsed = time.perf_counter() - started
            before = _http(dict(counts))
            assert result.stdout == "1\n"
            assert before == {EXEC: 1}, before
            assert elapsed < 0.9, elapsed  # the run did not wait for the refill's create
            assert any(not task.done() for task in pool._refills.values())  # still going
        assert live_sandboxes(emu) == []


async def test_pool_refills_only_once_the_pooled_run_is_over(
    config_for: Callable[..., DaytonaConfig],
) -> None:
    """The refill's create never competes with the run that emptied the pool."""
    from sandstorm_daytona.emulator import EmulatorConfig, FaultRule, Faults, running_emulator

    slow_exec = FaultRule(path="/toolbox/*/process/execute", kind="latency", rate=1.0, latency=0.6)
    with running_emulator(EmulatorConfig(faults=Faults(rules=(slow_exec,)))) as emu:
        counts = emu.emulator.request_counts
        config = config_for(emu.api_url, api_key=emu.api_key, warm_pool_size=1)
        async with DaytonaProvider(config) as daytona:
            await daytona.run("print(0)")  # makes the pool; its refill fills it
            pool, spec = await refilled_pool(daytona, quiet=True)
            counts.clear()
            run = asyncio.ensure_future(daytona.run("print(1)"))
            await asyncio.sleep(0.3)  # the exec is in flight (answered after 0.6 s)
            during = _http(dict(counts))  # routes are counted once answered
            result = await run
            assert result.stdout == "1\n"
            assert "POST /api/sandbox" not in during, during  # no refill beside the run
            for _ in range(300):  # and the refill comes after it
                if pool.ready_count(spec) == 1:
                    break
                await asyncio.sleep(0.02)
            assert pool.ready_count(spec) == 1
        assert live_sandboxes(emu) == []


async def test_pooled_sandbox_is_warmed_in_the_refill(
    emulator: object, config_for: Callable[..., DaytonaConfig]
) -> None:
    """The refill compiles the Python wrapper in the new sandbox (one execute): its first
    run then starts as a later run would."""
    from sandstorm_daytona._command import PYTHON_WRAPPER_KEY

    counts = emulator.emulator.request_counts  # type: ignore[attr-defined]
    config = config_for(emulator.api_url, api_key=emulator.api_key, warm_pool_size=1)  # type: ignore[attr-defined]
    async with DaytonaProvider(config) as daytona:
        counts.clear()
        await daytona.run("print(0)")  # makes the pool; its refill fills it
        pool, spec = await refilled_pool(daytona, quiet=True)
        assert _http(dict(counts)).get("POST /api/sandbox") == 2
        assert _http(dict(counts)).get(EXEC) == 2  # the run, and the refill's warm-up
        waiting = await pool.acquire(spec, refill=False)
        try:
            # through the files API: a run would compile and keep it itself first
            kept = await daytona.list_files(waiting, ".cache/sandstorm-runs")
            names = [entry.name for entry in kept]
            assert any(n.startswith(f"pyexec-{PYTHON_WRAPPER_KEY}.") for n in names), names
        finally:
            await daytona.delete_workspace(waiting)
