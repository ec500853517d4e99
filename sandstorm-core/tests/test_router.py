"""The ``router`` provider: configuration, breaker, policy and fallback rules.

Members are a small in-process provider (``memory``: host subprocesses, failures on
demand) and the real ``local`` provider where a capability it declares is needed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sandstorm
from sandstorm import (
    Capability,
    CapabilityNotSupported,
    ExecRequest,
    ProviderConfigError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    RunResult,
    Workspace,
    WorkspaceNotFound,
    WorkspaceSpec,
)
from sandstorm._registry import _registered, register_provider
from sandstorm.router import (
    BreakerState,
    Call,
    CircuitBreaker,
    RouterConfig,
    RouterProvider,
    RoutingDecision,
)

pytestmark = pytest.mark.anyio


class MemoryConfig(sandstorm.ProviderConfig):
    """``delay``: seconds each run takes on top of the code."""

    delay: float = 0.0


class MemoryProvider(sandstorm.AsyncProvider):
    """Workspaces in a dict, code in a host subprocess; failures injected by the test."""

    name = "memory"
    description = "in-process test provider"
    capabilities = frozenset({Capability.PERSISTENCE})
    languages = frozenset({"python"})
    config_model = MemoryConfig

    def __init__(self, config: sandstorm.ProviderConfig | None = None) -> None:
        super().__init__(config)
        self.workspaces: dict[str, Workspace] = {}
        self.create_errors: list[Exception] = []
        self.execute_errors: list[Exception] = []
        self.delete_errors: list[Exception] = []
        self.executed: list[str] = []

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        if self.create_errors:
            raise self.create_errors.pop(0)
        ws = Workspace(
            id=uuid.uuid4().hex[:12],
            provider=self.name,
            name=spec.name,
            persistent=spec.persistent,
            created_at=datetime.now(UTC),
            labels=spec.labels,
        )
        self.workspaces[ws.id] = ws
        return ws

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        try:
            return self.workspaces[workspace_id]
        except KeyError:
            raise WorkspaceNotFound(workspace_id, self.name) from None

    async def _list_workspaces(self) -> list[Workspace]:
        return list(self.workspaces.values())

    async def _delete_workspace(self, workspace_id: str) -> None:
        if self.delete_errors:
            raise self.delete_errors.pop(0)
        if self.workspaces.pop(workspace_id, None) is None:
            raise WorkspaceNotFound(workspace_id, self.name)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        self.executed.append(request.code)
        if self.execute_errors:
            raise self.execute_errors.pop(0)
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(self.config.delay)  # type: ignore[attr-defined]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            request.code,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return RunResult(
            stdout=out.decode(),
            stderr=err.decode(),
            exit_code=proc.returncode or 0,
            duration=asyncio.get_running_loop().time() - started,
            workspace_id=workspace.id,
            provider=self.name,
        )


@pytest.fixture(autouse=True)
def _memory_registered() -> Iterator[None]:
    register_provider("memory", MemoryProvider)
    try:
        yield
    finally:
        _registered.pop("memory", None)


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only."""
    return "asyncio"


class Decisions:
    """A plugin keeping every routing decision."""

    def __init__(self) -> None:
        self.seen: list[RoutingDecision] = []

    @sandstorm.hookimpl
    def sandstorm_routed(self, provider: object, decision: RoutingDecision) -> None:
        self.seen.append(decision)


@pytest.fixture
def decisions() -> Iterator[Decisions]:
    """The decisions the router announces during the test."""
    plugin = Decisions()
    sandstorm.plugin_manager().register(plugin)
    try:
        yield plugin
    finally:
        sandstorm.plugin_manager().unregister(plugin)


def router(*routes: dict[str, Any], **policy: Any) -> RouterProvider:
    return RouterProvider(RouterConfig.load({"routes": list(routes), **policy}, environ={}))


def mem(name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "memory", "name": name, **extra}


@pytest.fixture
async def local_root() -> AsyncIterator[str]:
    """A state directory for ``local`` members."""
    with tempfile.TemporaryDirectory(prefix="router-local-") as root:
        yield root


# ---------------------------------------------------------------------- config


def test_router_is_registered_and_configured_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDSTORM_PROVIDER", "router")
    monkeypatch.setenv("SANDSTORM_ROUTES", json.dumps([mem("a"), mem("b")]))
    provider = sandstorm.get_async_provider()
    assert isinstance(provider, RouterProvider)
    assert list(provider.members) == ["a", "b"]
    assert type(provider).info().capabilities == {"persistence"}
    assert provider.languages == {"python"}


def test_routes_from_a_toml_file(tmp_path: Path) -> None:
    file = tmp_path / "routes.toml"
    file.write_text(
        'order = "fastest"\nbreaker = { failures = 5 }\n'
        '[[routes]]\nprovider = "memory"\nname = "x"\nconfig = { delay = 0.5 }\n'
    )
    config = RouterConfig.load({"routes": str(file)}, environ={})
    assert config.order == "fastest"
    assert config.breaker.failures == 5
    assert config.routes[0].member == "x"
    assert config.routes[0].config == {"delay": 0.5}
    assert "delay" not in repr(config.routes[0])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "routes is required"),
        ({"routes": []}, "routes"),
        ({"routes": [mem("a"), mem("a")]}, "two routes are called 'a'"),
        ({"routes": [{"provider": "router"}]}, "cannot route to another router"),
        ({"routes": [mem("a")], "order": "loudest"}, "order must be"),
        ({"routes": "/nonexistent/routes.toml"}, "does not exist"),
        ({"routes": "[{"}, "not a valid JSON list"),
        ({"routes": '{"provider": "memory"}'}, "routes is a JSON object; it takes a JSON list"),
    ],
)
def test_bad_config_is_a_clear_config_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        RouterConfig.load(values, environ={})


def test_a_config_of_another_provider_is_refused() -> None:
    with pytest.raises(ProviderConfigError, match="needs a RouterConfig, got MemoryConfig"):
        RouterProvider(MemoryConfig())  # type: ignore[arg-type]


def test_a_bad_member_config_names_the_route_and_never_the_value() -> None:
    with pytest.raises(ProviderConfigError, match="route 'a' \\(memory\\)") as caught:
        router(mem("a", config={"delay": "s3cr3t-value"}))
    assert "s3cr3t-value" not in str(caught.value)


# ---------------------------------------------------------------------- breaker


def test_breaker_opens_half_opens_and_honours_rate_limits() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_after=5.0, quota_cooldown=60.0, clock=lambda: now[0])
    breaker.failed(sandstorm.InvalidArgument("caller's fault"))
    breaker.failed(ProviderUnavailable("down"))
    assert breaker.state is BreakerState.CLOSED
    breaker.failed(ProviderUnavailable("down"))
    assert breaker.state is BreakerState.OPEN
    assert "circuit open" in (breaker.blocked() or "")
    now[0] = 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.blocked() is None
    breaker.failed(sandstorm.ProviderAPIError("boom", status=502))  # the trial failed
    assert breaker.state is BreakerState.OPEN
    now[0] = 10.0
    breaker.succeeded()
    assert (breaker.state, breaker.opens, breaker.closes) == (BreakerState.CLOSED, 1, 1)
    breaker.failed(RateLimited("slow down", retry_after=3))
    assert "rate limited" in (breaker.blocked() or "")
    now[0] = 13.0
    assert breaker.blocked() is None
    breaker.failed(QuotaExceeded("no more"))
    now[0] = 72.0
    assert "quota exceeded" in (breaker.blocked() or "")
    assert breaker.state is BreakerState.CLOSED


async def test_breaker_opens_on_failures_and_a_probe_closes_it(decisions: Decisions) -> None:
    async with router(mem("a"), mem("b"), breaker={"failures": 2, "reset_after": 0.2}) as rt:
        a = rt.members["a"]
        assert isinstance(a, MemoryProvider)
        a.create_errors = [ProviderUnavailable("down")] * 2
        for _ in range(2):
            assert (await rt.run("print(1)")).stdout == "1\n"
        assert decisions.seen[-1].fallbacks[0][0] == "a"
        assert (await rt.health())[0].state == "open"
        await rt.run("print(1)")
        assert "circuit open" in decisions.seen[-1].skipped["a"]
        assert decisions.seen[-1].member == "b"
        await asyncio.sleep(0.25)
        await rt.run("print(1)")  # half-open: is_available() says yes, a takes it
        assert decisions.seen[-1].member == "a"
        health = (await rt.health())[0]
        assert (health.state, health.opens, health.closes) == ("closed", 1, 1)


async def test_rate_limits_and_quotas_skip_a_member_for_a_while(decisions: Decisions) -> None:
    async with router(mem("a"), mem("b"), breaker={"quota_cooldown": 60}) as rt:
        a = rt.members["a"]
        assert isinstance(a, MemoryProvider)
        a.create_errors = [RateLimited("slow down", retry_after=0.3)]
        await rt.run("print(1)")
        assert decisions.seen[-1].member == "b"
        await rt.run("print(1)")
        assert decisions.seen[-1].skipped["a"].startswith("rate limited (for ")
        await asyncio.sleep(0.35)
        await rt.run("print(1)")
        assert decisions.seen[-1].member == "a"
        a.create_errors = [QuotaExceeded("no more sandboxes")]
        await rt.run("print(1)")
        await rt.run("print(1)")
        assert decisions.seen[-1].skipped["a"].startswith("quota exceeded")
        assert (await rt.health())[0].state == "closed"  # neither opens the breaker


# ---------------------------------------------------------------------- fallback


async def test_a_run_that_may_have_started_is_never_repeated(decisions: Decisions) -> None:
    async with router(mem("a"), mem("b")) as rt:
        a, b = rt.members["a"], rt.members["b"]
        assert isinstance(a, MemoryProvider)
        assert isinstance(b, MemoryProvider)
        a.execute_errors = [ProviderUnavailable("connection reset mid-run")]
        with pytest.raises(ProviderUnavailable, match="may have started") as caught:
            await rt.run("print(1)")
        assert "did not run it elsewhere" in str(caught.value)
        assert a.executed == ["print(1)"]
        assert b.executed == []
        assert a.workspaces == {}  # the one-shot workspace was deleted anyway


async def test_one_shot_workspaces_are_deleted_behind_the_result_and_retried_at_close() -> None:
    rt = router(mem("a"))
    a = rt.members["a"]
    assert isinstance(a, MemoryProvider)
    await rt.run("print(1)")
    await asyncio.sleep(0.05)
    assert a.workspaces == {}
    assert rt._pins == {}  # nothing remembered for a workspace that is gone
    a.delete_errors = [ProviderUnavailable("down while deleting")]
    await rt.run("print(1)")
    await asyncio.sleep(0.05)
    assert len(a.workspaces) == 1  # the deletion failed: the router still owns it
    assert len(await rt.list_workspaces()) == 1
    await rt.aclose()
    assert a.workspaces == {}


async def test_fallback_stops_at_a_trust_boundary_unless_the_route_allows_it(
    decisions: Decisions,
) -> None:
    cloud = mem("cloud", trust="remote")
    async with router(cloud, mem("box", trust="local")) as rt:
        rt.members["cloud"].create_errors = [ProviderUnavailable("down")]  # type: ignore[attr-defined]
        with pytest.raises(ProviderUnavailable, match="does not accept calls from zone 'remote'"):
            await rt.run("print(1)")
        assert rt.members["box"].executed == []  # type: ignore[attr-defined]
    async with router(cloud, mem("box", trust="local", accept_fallback_from=["remote"])) as rt:
        rt.members["cloud"].create_errors = [ProviderUnavailable("down")]  # type: ignore[attr-defined]
        assert (await rt.run("print(1)")).stdout == "1\n"
        assert decisions.seen[-1].member == "box"
        assert decisions.seen[-1].fallbacks[0][0] == "cloud"


async def test_a_callers_mistake_does_not_fall_back() -> None:
    async with router(mem("a"), mem("b")) as rt:
        rt.members["a"].create_errors = [sandstorm.WorkspaceExists("x", "memory")]  # type: ignore[attr-defined]
        with pytest.raises(sandstorm.WorkspaceExists):
            await rt.run("print(1)")
        assert rt.members["b"].executed == []  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- capabilities and order


async def test_a_call_needing_snapshots_goes_to_the_member_declaring_them(
    local_root: str, decisions: Decisions
) -> None:
    local = {"provider": "local", "config": {"root": local_root}}
    async with router(mem("first"), local) as rt:
        assert Capability.SNAPSHOTS in rt.capabilities
        plain = await rt.create_workspace()
        assert rt.member_of(plain.id) == "first"
        with pytest.raises(CapabilityNotSupported, match="'first', which lacks it"):
            await rt.snapshot(plain)
        with rt.needing(Capability.SNAPSHOTS):
            workspace = await rt.create_workspace()
        assert rt.member_of(workspace.id) == "local"
        assert decisions.seen[-1].skipped == {"first": "lacks snapshots"}
        snap = await rt.snapshot(workspace)
        assert snap.provider == "router"
        restored = await rt.restore(snap)
        assert rt.member_of(restored.id) == "local"
        # a need no member meets is refused, naming it
        with rt.needing(Capability.COST), pytest.raises(CapabilityNotSupported, match="cost"):
            await rt.create_workspace()
        for ws in (plain, workspace, restored):
            await rt.delete_workspace(ws)
        await rt.delete_snapshot(snap)


async def test_fastest_learns_latency_and_a_function_can_order(decisions: Decisions) -> None:
    slow = mem("slow", config={"delay": 0.3})
    async with router(slow, mem("quick"), order="fastest") as rt:
        for _ in range(3):
            await rt.run("print(1)")
        assert [d.member for d in decisions.seen[-3:]] == ["slow", "quick", "quick"]
        assert "slow=0.3" in decisions.seen[-1].reason

    def last_first(members: Sequence[Any], call: Call) -> list[Any]:
        assert call.operation == "run"
        return list(reversed(members))

    async with router(mem("a"), mem("b"), order=last_first) as rt:
        await rt.run("print(1)")
        assert decisions.seen[-1].member == "b"
        assert decisions.seen[-1].reason.startswith("order function")


async def test_workspaces_stay_pinned_across_router_instances(local_root: str) -> None:
    routes = [
        {"provider": "local", "name": "one", "config": {"root": f"{local_root}/1"}},
        {"provider": "local", "name": "two", "config": {"root": f"{local_root}/2"}},
    ]

    def second(members: Sequence[Any], call: Call) -> list[Any]:
        return list(reversed(members))

    async with router(*routes, order=second) as rt:
        workspace = await rt.create_workspace(name="pinned")
        await rt.write_file(workspace, "f.txt", "two")
        assert rt.member_of(workspace.id) == "two"
    async with router(*routes) as again:  # a new process would see the same
        assert again.member_of(workspace.id) is None
        result = await again.run_in_workspace(workspace.id, "print(open('f.txt').read())")
        assert result.stdout == "two\n"
        assert again.member_of(workspace.id) == "two"
        assert (await again.get_workspace("pinned")).id == workspace.id
        assert [ws.id for ws in await again.list_workspaces()] == [workspace.id]
        assert "sandstorm-route" not in (await again.get_workspace(workspace.id)).labels
        await again.delete_workspace(workspace)
        with pytest.raises(WorkspaceNotFound):
            await again.get_workspace(workspace.id)


def test_sync_facade_reads_files_up_to_a_limit_through_the_member(tmp_path: Path) -> None:
    # the bound reaches the member: it refuses a sparse gigabyte before reading it
    routes = [{"provider": "local", "config": {"root": str(tmp_path)}}]
    with sandstorm.get_provider("router", routes=routes) as provider, provider.sandbox() as box:
        box.write_file("small.txt", "four")
        assert box.read_file("small.txt", max_size=4) == b"four"
        box.exec("truncate -s 1G big")
        with pytest.raises(sandstorm.WorkspaceError, match="1073741824 bytes, over the 4-byte"):
            box.read_file("big", max_size=4)
        with pytest.raises(sandstorm.InvalidArgument, match="max_size"):
            provider.read_file(box.id, "small.txt", max_size=-1)


async def test_decisions_are_audited(tmp_path: Path) -> None:
    log = sandstorm.JsonlAuditLogger(tmp_path / "audit.jsonl")
    sandstorm.plugin_manager().register(log)
    try:
        async with router(mem("a"), mem("b")) as rt:
            rt.members["a"].create_errors = [ProviderUnavailable("down")]  # type: ignore[attr-defined]
            await rt.run("print(1)")
    finally:
        sandstorm.plugin_manager().unregister(log)
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    routed = [e for e in events if e["action"] == "route"]
    assert routed[0]["provider"] == "router"
    assert routed[0]["details"]["member"] == "b"
    assert routed[0]["details"]["fallbacks"][0][0] == "a"
    assert "down" in routed[0]["details"]["fallbacks"][0][1]


def test_doctor_and_providers_show_the_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sandstorm._cli import main

    routes = [
        {"provider": "local", "name": "dev", "config": {"root": str(tmp_path / "a")}},
        {"provider": "local", "name": "spare", "config": {"root": str(tmp_path / "b")}},
    ]
    monkeypatch.setenv("SANDSTORM_ROUTES", json.dumps(routes))
    monkeypatch.delenv("SANDSTORM_PROVIDER", raising=False)
    assert main(["doctor", "router"]) == 0
    out = capsys.readouterr().out
    assert "provider:     router" in out
    members = out.split("members:\n", 1)[1].splitlines()
    assert members[0].split()[:4] == ["dev", "local", "trust=local", "breaker=closed,"]
    assert members[1].split()[0] == "spare"
    assert main(["providers", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "router")
    assert row["status"] == "ok; members: dev=closed, spare=closed"
    assert "snapshots" in row["capabilities"]
