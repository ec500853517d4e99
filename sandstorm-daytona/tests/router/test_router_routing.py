"""The router on real members: chaos (503 storm) with safe fallback, and cost routing.

One emulator for the module. The chaos test holds the emulator at 100 % 503 for 30 s
while workers run one-shot code through two routers (one may fall back to ``local``, one
may not), then lets it heal; every run's code carries a token, and each token must have
executed at most once.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import sandstorm
from sandstorm import ProviderUnavailable, SandstormError
from sandstorm.router import BreakerState, RouterConfig, RouterProvider, RoutingDecision
from sandstorm_daytona import Pricing

from ..provider.pools import refilled_pool
from .conftest import daytona_route, live_sandboxes

pytestmark = pytest.mark.anyio

STORM = 30.0
"""Seconds the emulator answers every request with 503."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """One Daytona emulator on a loopback socket for the module."""
    from sandstorm_daytona.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig()) as emu:
        yield emu


class Recorder:
    """A plugin: the router's decisions, and every run it handed to a member, by token."""

    def __init__(self) -> None:
        self.decisions: list[RoutingDecision] = []
        self.runs: collections.Counter[tuple[str, str]] = collections.Counter()

    @sandstorm.hookimpl
    def sandstorm_routed(self, provider: Any, decision: RoutingDecision) -> None:
        self.decisions.append(decision)

    @sandstorm.hookimpl
    def sandstorm_before_run(self, provider: Any, workspace: Any, request: Any) -> None:
        if isinstance(provider, RouterProvider):
            token = request.code.rpartition("#")[2]
            self.runs[(provider.member_of(workspace.id) or "?", token)] += 1


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """The recorder, registered for the test."""
    plugin = Recorder()
    sandstorm.plugin_manager().register(plugin)
    try:
        yield plugin
    finally:
        sandstorm.plugin_manager().unregister(plugin)


def _executions(emu: Any) -> int:
    return sum(n for key, n in emu.emulator.request_counts.items() if key.endswith("/execute"))


async def test_storm_falls_back_safely_and_the_breaker_heals(
    emulator: Any, recorder: Recorder, tmp_path: Any
) -> None:
    from sandstorm_daytona.emulator import FaultRule, Faults

    breaker = {"failures": 2, "reset_after": 2.0}
    local = {"provider": "local", "config": {"root": str(tmp_path / "local")}}
    lenient = RouterProvider(
        RouterConfig.load(
            {
                "routes": [
                    daytona_route(emulator),
                    {**local, "accept_fallback_from": ["remote"]},
                ],
                "breaker": breaker,
            },
            environ={},
        )
    )
    strict = RouterProvider(  # sensitive jobs: never leave the cloud zone
        RouterConfig.load(
            {"routes": [daytona_route(emulator), local], "breaker": breaker}, environ={}
        )
    )
    outcomes: dict[str, collections.Counter[str]] = {
        "lenient": collections.Counter(),
        "strict": collections.Counter(),
    }
    succeeded: list[str] = []
    unexpected: list[SandstormError] = []
    before = _executions(emulator)

    async def one(router: RouterProvider, kind: str) -> None:
        token = uuid.uuid4().hex
        try:
            result = await router.run(f"print('ok') #{token}", timeout=20)
        except ProviderUnavailable:  # typed: what a 503 storm must raise (or a subclass)
            outcomes[kind]["unavailable"] += 1
        except SandstormError as exc:
            unexpected.append(exc)
        else:
            assert result.stdout == "ok\n"
            assert result.provider == "router"
            outcomes[kind]["ok"] += 1
            succeeded.append(token)

    async def worker(router: RouterProvider, kind: str, until: float) -> None:
        while time.monotonic() < until:
            await one(router, kind)
            await asyncio.sleep(0.05)

    async with lenient, strict:
        await one(lenient, "lenient")  # healthy: the first member takes it
        assert recorder.decisions[-1].member == "daytona"
        emulator.emulator.config = emulator.emulator.config.model_copy(
            update={"faults": Faults(rules=(FaultRule(path="*", kind=503),))}
        )
        stop = time.monotonic() + STORM
        await asyncio.gather(
            worker(lenient, "lenient", stop),
            worker(lenient, "lenient", stop),
            worker(strict, "strict", stop),
        )
        states = {r: r._members[0].breaker.state for r in (lenient, strict)}
        emulator.emulator.config = emulator.emulator.config.model_copy(update={"faults": Faults()})
        assert all(state is not BreakerState.CLOSED for state in states.values()), states
        # healed: after the cool-down a half-open probe closes the breaker again
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await one(lenient, "lenient")
            await one(strict, "strict")
            if recorder.decisions[-1].member == "daytona" and all(
                r._members[0].breaker.state is BreakerState.CLOSED for r in (lenient, strict)
            ):
                break
            await asyncio.sleep(0.5)
        for router in (lenient, strict):
            health = (await router.health())[0]
            assert health.opens >= 1, health
            assert health.closes >= 1, health
            assert health.state == "closed", health
        assert recorder.decisions[-1].member == "daytona"
    # the storm: the lenient router fell back to local, the strict one raised typed errors
    assert outcomes["lenient"]["ok"] > 5, outcomes
    assert outcomes["strict"]["unavailable"] > 0, outcomes
    assert unexpected == []
    fell_back = [d for d in recorder.decisions if d.member == "local" and d.fallbacks]
    skipped = [d for d in recorder.decisions if "circuit open" in d.skipped.get("daytona", "")]
    assert fell_back, "no run fell back to local"
    assert skipped, "the open breaker never made the router skip daytona"
    refused = [d for d in recorder.decisions if d.member is None]
    assert all("does not accept" in d.skipped.get("local", "") for d in refused)
    # 0 runs executed twice: per token, on either member
    per_token = collections.Counter(token for (_member, token) in recorder.runs.elements())
    assert max(per_token.values()) == 1, per_token.most_common(3)
    assert all(per_token[token] == 1 for token in succeeded)
    on_daytona = sum(n for (member, _), n in recorder.runs.items() if member == "daytona")
    executed = _executions(emulator) - before
    assert 2 <= executed <= on_daytona, (executed, on_daytona)
    assert live_sandboxes(emulator) == []
    left = [p.name for p in (tmp_path / "local").glob("workspaces/*")]
    assert [name for name in left if not name.startswith(".")] == []


async def test_cheapest_picks_by_estimate_cost(emulator: Any, recorder: Recorder) -> None:
    dear = Pricing(cpu_per_second=1e-4, memory_gib_per_second=1e-5, disk_gib_per_second=1e-7)
    cheap = Pricing(cpu_per_second=1e-5, memory_gib_per_second=1e-6, disk_gib_per_second=1e-8)
    routes = [
        daytona_route(emulator, "eu", pricing=dear),
        daytona_route(emulator, "us", pricing=cheap),
    ]
    config = RouterConfig.load({"routes": routes, "order": "cheapest"}, environ={})
    async with RouterProvider(config) as router:
        result = await router.run("print(1)", cpu=2)
        assert result.stdout == "1\n"
        decision = recorder.decisions[-1]
        assert (decision.member, decision.candidates) == ("us", ["us", "eu"])
        assert decision.reason.startswith("cheapest first")
        assert result.cost is not None
        # the workspace stays with the member that made it, whatever the order says
        workspace = await router.create_workspace(persistent=True)
        assert router.member_of(workspace.id) == "us"
        assert (await router.run_in_workspace(workspace, "print(2)")).stdout == "2\n"
        listed = {ws.id for ws in await router.list_workspaces()}
        assert workspace.id in listed
        await router.delete_workspace(workspace)
    assert live_sandboxes(emulator) == []
    routes[0]["config"]["pricing"], routes[1]["config"]["pricing"] = cheap, dear
    config = RouterConfig.load({"routes": routes, "order": "cheapest"}, environ={})
    async with RouterProvider(config) as router:
        await router.run("print(1)")
        assert recorder.decisions[-1].member == "eu"
    assert live_sandboxes(emulator) == []


async def test_every_member_blocked_is_a_typed_error(emulator: Any) -> None:
    config = RouterConfig.load({"routes": [daytona_route(emulator)]}, environ={})
    async with RouterProvider(config) as router:
        for _ in range(3):
            router._members[0].breaker.failed(ProviderUnavailable("down"))
        with pytest.raises(ProviderUnavailable, match="no member can take this run now"):
            await router.run("print(1)")


async def test_the_routers_pool_readies_a_daytona_workspace(emulator: Any) -> None:
    """The router's own warm pool readies what it pools as the member's pool would: a
    Daytona workspace waits with its Python wrapper compiled."""
    from sandstorm_daytona._command import PYTHON_WRAPPER_KEY

    config = RouterConfig.load(
        {"routes": [daytona_route(emulator)], "warm_pool_size": 1}, environ={}
    )
    async with RouterProvider(config) as router:
        assert (await router.run("print(0)")).stdout == "0\n"  # makes the pool
        pool, spec = await refilled_pool(router)
        waiting = await pool.acquire(spec, refill=False)
        try:
            # through the files API: a run would compile and keep it itself first
            kept = await router.list_files(waiting, ".cache/sandstorm-runs")
            names = [entry.name for entry in kept]
            assert any(n.startswith(f"pyexec-{PYTHON_WRAPPER_KEY}.") for n in names), names
        finally:
            await router.delete_workspace(waiting)
    assert live_sandboxes(emulator) == []
