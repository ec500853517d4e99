"""The ``router`` provider: one provider API over an ordered list of member providers."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from .._capabilities import Capability
from .._errors import (
    AuthenticationError,
    CapabilityNotSupported,
    InvalidArgument,
    ProviderConfigError,
    ProviderUnavailable,
    QuotaExceeded,
    RateLimited,
    ResourceAllocationError,
    SandstormError,
    SnapshotNotFound,
    WorkspaceNotFound,
)
from .._interactive import CodeContext, Execution, ExposedPort, ProcessInfo, ProcessLogs
from .._models import (
    CostEstimate,
    FileInfo,
    GitStatus,
    NetworkPolicy,
    OutputChunk,
    Resources,
    RunResult,
    Snapshot,
    Workspace,
    WorkspaceMetrics,
)
from .._plugins import plugin_manager
from .._provider import AsyncProvider, ExecRequest, OutputCallback, WorkspaceSpec
from .._registry import load_provider_class
from ._breaker import BreakerState, CircuitBreaker, counts_against
from ._config import Route, RouterConfig
from ._policy import Call, RoutingDecision, missing, ordered

__all__ = ["LABEL_ROUTE", "MemberHealth", "RouterProvider"]

T = TypeVar("T")

LABEL_ROUTE = "sandstorm-route"
"""Internal label: the member a workspace was created on (pins it across processes)."""

_EXTRA: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "sandstorm_router_call", default=None
)
_NEEDS: contextvars.ContextVar[frozenset[Capability]] = contextvars.ContextVar(
    "sandstorm_router_needs", default=frozenset()
)


@dataclass
class Member:
    """A member provider of a router, with its health and observed latency."""

    name: str
    route: Route
    provider: AsyncProvider
    breaker: CircuitBreaker
    capabilities: frozenset[Capability]
    latency: float | None = None
    checked: bool = False


@dataclass(frozen=True)
class MemberHealth:
    """What ``RouterProvider.health()`` reports for one member."""

    name: str
    provider: str
    trust: str
    state: str
    blocked: str | None
    consecutive_failures: int
    opens: int
    closes: int
    latency: float | None
    available: bool | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)


class RouterProvider(AsyncProvider):
    """Routes each call to one of its member providers (``routes``), by capability, policy
    (priority, cheapest, fastest or a function) and health (a circuit breaker per member).

    A one-shot run falls back to the next member only when the member failed before the
    code started (creating its workspace); a run that may have started is never repeated.
    Workspaces are pinned to the member that created them. The instance declares the union
    of its members' capabilities and languages.
    """

    name = "router"
    description = "routes calls between member providers by capability, cost and health"
    config_model = RouterConfig
    internal_labels: ClassVar[frozenset[str]] = frozenset({LABEL_ROUTE})

    def __new__(cls, config: RouterConfig | None = None) -> RouterProvider:
        if cls is RouterProvider and (config is None or isinstance(config, RouterConfig)):
            # the instance's class declares what its members declare (``info()`` reads it)
            routes = (config or RouterConfig.load({})).routes
            return super().__new__(_declaring(tuple(route.provider for route in routes)))
        return super().__new__(cls)  # a wrong config type: __init__ says so

    def __init__(self, config: RouterConfig | None = None) -> None:
        super().__init__(config)
        assert isinstance(self.config, RouterConfig)
        self.router_config: RouterConfig = self.config
        breaker = self.router_config.breaker
        self._members: list[Member] = []
        for route in self.router_config.routes:
            provider = _build(route)
            self._members.append(
                Member(
                    name=route.member,
                    route=route,
                    provider=provider,
                    breaker=CircuitBreaker(
                        breaker.failures, breaker.reset_after, breaker.quota_cooldown
                    ),
                    capabilities=frozenset(provider.capabilities),
                )
            )
        self._by_name = {m.name: m for m in self._members}
        self._pins: dict[str, Member] = {}
        self._snapshot_pins: dict[str, Member] = {}
        self._behind: set[str] = set()

    # ------------------------------------------------------------------ public extras

    @property
    def members(self) -> Mapping[str, AsyncProvider]:
        """The member providers by member name, in route order."""
        return {m.name: m.provider for m in self._members}

    def member_of(self, workspace_id: str) -> str | None:
        """The member a workspace is pinned to, when this process knows it."""
        member = self._pins.get(workspace_id)
        return member.name if member else None

    @contextlib.contextmanager
    def needing(self, *capabilities: Capability) -> Iterator[None]:
        """Within this block, calls (in this task) route only to members declaring these
        capabilities too, e.g. a workspace that will be snapshotted later."""
        for cap in capabilities:
            if not isinstance(cap, Capability):
                raise InvalidArgument(f"needing() takes Capability values (got {cap!r})")
        token = _NEEDS.set(_NEEDS.get() | frozenset(capabilities))
        try:
            yield
        finally:
            _NEEDS.reset(token)

    async def health(self, *, probe: bool = False) -> list[MemberHealth]:
        """Each member's breaker state and latency; ``probe`` also asks ``is_available``."""
        rows = []
        for m in self._members:
            available = await m.provider.is_available() if probe else None
            rows.append(
                MemberHealth(
                    name=m.name,
                    provider=m.provider.name,
                    trust=m.route.zone,
                    state=str(m.breaker.state),
                    blocked=m.breaker.blocked(),
                    consecutive_failures=m.breaker.consecutive,
                    opens=m.breaker.opens,
                    closes=m.breaker.closes,
                    latency=m.latency,
                    available=available,
                    capabilities=frozenset(str(c) for c in m.capabilities),
                )
            )
        return rows

    async def run(
        self,
        code: str,
        *,
        language: str = "python",
        timeout: float | None = None,
        cpu: float | None = None,
        memory: int | None = None,
        disk: int | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        workspace_id: str | None = None,
        workspace_template: str | None = None,
        git_repo: str | None = None,
        git_branch: str | None = None,
        network: NetworkPolicy | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> RunResult:
        """Run ``code`` on the member the policy picks (see :meth:`AsyncProvider.run`)."""
        needs = set()
        if git_repo is not None:
            needs.add(Capability.GIT)
        if on_stdout is not None or on_stderr is not None:
            needs.add(Capability.STREAMING)
        extra = Call(
            operation="run",
            capabilities=frozenset(needs),
            language=language if isinstance(language, str) else None,
            timeout=timeout if isinstance(timeout, int | float) else self.config.default_timeout,
            one_shot=workspace_id is None,
            network=network,
            git_repo=git_repo if isinstance(git_repo, str) else None,
        )
        token = _EXTRA.set(extra)
        try:
            return await super().run(
                code,
                language=language,
                timeout=timeout,
                cpu=cpu,
                memory=memory,
                disk=disk,
                env=env,
                stdin=stdin,
                workspace_id=workspace_id,
                workspace_template=workspace_template,
                git_repo=git_repo,
                git_branch=git_branch,
                network=network,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
            )
        finally:
            _EXTRA.reset(token)

    # ------------------------------------------------------------------ routing

    def _call(self, operation: str, spec: WorkspaceSpec | None = None) -> Call:
        needs = set(_NEEDS.get())
        extra = _EXTRA.get()
        call = Call(operation=operation)
        if extra is not None and operation == "create":
            call = replace(extra, operation="run" if extra.one_shot else "create")
            needs |= extra.capabilities
        if spec is not None:
            if spec.persistent:
                needs.add(Capability.PERSISTENCE)
            if spec.template is not None:
                needs.add(Capability.TEMPLATES)
            if spec.resources != Resources():
                needs.add(Capability.RESOURCE_LIMITS)
            if spec.network != NetworkPolicy():
                needs.add(Capability.NETWORK_POLICY)
            call = replace(call, resources=spec.resources)
        return replace(call, capabilities=frozenset(needs))

    async def _fitting(self, call: Call) -> tuple[list[Member], RoutingDecision]:
        order = self.router_config.order
        decision = RoutingDecision(
            operation=call.operation,
            order=order if isinstance(order, str) else getattr(order, "__qualname__", "function"),
        )
        fit = []
        lacks: dict[str, str] = {}
        for member in self._members:
            await self._learn(member)
            why = missing(member, call)
            if why is None:
                fit.append(member)
            else:
                lacks[member.name] = why
                decision.skipped[member.name] = f"lacks {why}"
        if not fit:
            union = frozenset().union(*(m.capabilities for m in self._members))
            absent = sorted(str(c) for c in call.capabilities - union)
            detail = "no member can serve it: " + "; ".join(
                f"{name} lacks {why}" for name, why in lacks.items()
            )
            what = ", ".join(absent) or "; ".join(sorted(set(lacks.values())))
            raise CapabilityNotSupported(self.name, what, detail)
        ranked, reason = await ordered(order, fit, call)
        decision.reason = reason
        decision.candidates = [m.name for m in ranked]
        home = ranked[0].route.zone if ranked else None
        usable = []
        for member in ranked:
            zone = member.route.zone
            accepts = member.route.accept_fallback_from
            if zone != home and home not in accepts and "*" not in accepts:
                decision.skipped[member.name] = (
                    f"trust zone {zone!r} does not accept calls from zone {home!r} "
                    f"(set accept_fallback_from on its route to allow it)"
                )
                continue
            blocked = member.breaker.blocked()
            if blocked is not None:
                decision.skipped[member.name] = blocked
                continue
            if member.breaker.state is BreakerState.HALF_OPEN:
                if await member.provider.is_available():
                    member.breaker.succeeded()
                    self._audit_breaker(member, "closed", "half-open probe succeeded")
                else:
                    member.breaker.probe_failed()
                    decision.skipped[member.name] = "half-open probe failed: still unavailable"
                    continue
            usable.append(member)
        return usable, decision

    async def _learn(self, member: Member) -> None:
        """Replace a member's declared capabilities with its effective ones, once."""
        if member.checked:
            return
        try:
            member.capabilities = frozenset(await member.provider.effective_capabilities())
        except SandstormError:
            return  # unreachable now: keep the declaration and ask again next time
        member.checked = True

    async def _route(
        self, call: Call, attempt: Callable[[Member], Awaitable[T]]
    ) -> tuple[Member, T]:
        """Try the usable members in order until one succeeds; fall back only on failures
        that happen before any code runs (``attempt`` must never start code)."""
        members, decision = await self._fitting(call)
        if not members:
            self._announce(decision)
            raise ProviderUnavailable(
                f"no member can take this {call.operation} now: "
                + "; ".join(f"{name}: {why}" for name, why in decision.skipped.items()),
                provider=self.name,
            )
        last: SandstormError | None = None
        for member in members:
            try:
                value = await attempt(member)
            except SandstormError as exc:
                self._failed(member, exc)
                if not _falls_back(exc):
                    decision.member = member.name
                    self._announce(decision, error=exc)
                    raise
                decision.fallbacks.append((member.name, f"{type(exc).__name__}: {exc}"))
                last = exc
                continue
            self._succeeded(member)
            decision.member = member.name
            if decision.fallbacks:
                decision.reason += "; fell back after " + ", ".join(
                    name for name, _ in decision.fallbacks
                )
            self._announce(decision)
            return member, value
        self._announce(decision, error=last)
        tried = "; ".join(f"{name}: {why}" for name, why in decision.fallbacks)
        skipped = "; ".join(f"{name}: {why}" for name, why in decision.skipped.items())
        raise ProviderUnavailable(
            f"every member failed before the code started ({tried})"
            + (f"; skipped {skipped}" if skipped else ""),
            provider=self.name,
        ) from last

    async def _tracked(self, member: Member, work: Awaitable[T]) -> T:
        """Await a member's primitive, feeding its outcome to the member's breaker."""
        try:
            value = await work
        except SandstormError as exc:
            self._failed(member, exc)
            raise
        self._succeeded(member)
        return value

    def _failed(self, member: Member, error: BaseException) -> None:
        before = member.breaker.state
        member.breaker.failed(error)
        if before is not BreakerState.OPEN and member.breaker.state is BreakerState.OPEN:
            self._audit_breaker(member, "open", f"{type(error).__name__}: {error}")

    def _succeeded(self, member: Member) -> None:
        was_open = member.breaker.opened_at is not None
        member.breaker.succeeded()
        if was_open:
            self._audit_breaker(member, "closed", "a call succeeded")

    def _announce(self, decision: RoutingDecision, error: BaseException | None = None) -> None:
        plugin_manager().hook.sandstorm_routed(provider=self, decision=decision)
        details = decision.details()
        if error is not None:
            details["error"] = type(error).__name__
        self._sandstorm_audit("route", None, **details)

    def _audit_breaker(self, member: Member, state: str, why: str) -> None:
        self._sandstorm_audit("route.breaker", None, member=member.name, state=state, reason=why)

    # ------------------------------------------------------------------ pins

    def _adopt(self, member: Member, workspace: Workspace) -> Workspace:
        self._pins[workspace.id] = member
        return workspace.model_copy(update={"provider": self.name})

    def _theirs(self, member: Member, workspace: Workspace) -> Workspace:
        return workspace.model_copy(update={"provider": member.provider.name})

    async def _pinned(
        self, workspace: Workspace | str, *, fresh: bool = False
    ) -> tuple[Member, Workspace]:
        """The member ``workspace`` lives on, and the workspace as that member sees it.

        An id this process has not seen (another process made it) is looked up on every
        member; ``fresh`` always asks the member's backend.
        """
        ref = workspace.id if isinstance(workspace, Workspace) else workspace
        member = self._pins.get(ref)
        if member is None and isinstance(workspace, Workspace):
            member = self._by_name.get(workspace.labels.get(LABEL_ROUTE, ""))
        if member is not None:
            if isinstance(workspace, Workspace) and not fresh:
                return member, self._theirs(member, workspace)
            return member, await self._ask(member, ref, fresh)
        errors: list[SandstormError] = []
        for candidate in self._members:
            try:
                found = await self._ask(candidate, ref, fresh)
            except (WorkspaceNotFound, InvalidArgument):
                continue  # not there, or not an id this member could have made
            except SandstormError as exc:
                errors.append(exc)
                continue
            self._pins[found.id] = candidate
            return candidate, found
        if errors:
            raise errors[0]
        raise WorkspaceNotFound(ref, self.name)

    async def _ask(self, member: Member, ref: str, fresh: bool) -> Workspace:
        cached = None if fresh else member.provider._cached_workspace(ref)
        return cached if cached is not None else await member.provider._get_workspace(ref)

    # ------------------------------------------------------------------ primitives

    async def _is_available(self) -> bool:
        for member in self._members:
            if await member.provider.is_available():
                return True
        return False

    async def _effective_capabilities(self) -> frozenset[Capability]:
        for member in self._members:
            await self._learn(member)
        return combined([m.capabilities for m in self._members]) & self.capabilities

    def _cached_workspace(self, workspace_id: str) -> Workspace | None:
        member = self._pins.get(workspace_id)
        if member is None:
            return None
        found = member.provider._cached_workspace(workspace_id)
        return self._adopt(member, found) if found is not None else None

    async def _prepare_pooled(self, workspace: Workspace) -> None:
        """The router's own warm pool readies a workspace as its member's pool would."""
        member, theirs = await self._pinned(workspace)
        await member.provider._prepare_pooled(theirs)

    def _defer_delete(self, workspace_id: str) -> bool:
        """A finished one-shot (or handle) workspace is deleted behind the result.

        The router does it itself rather than hand it to the member: a deletion that fails
        (the member is down) keeps the workspace owned, so ``aclose()`` tries again.
        """
        if workspace_id not in self._pins:
            return False
        self._behind.add(workspace_id)
        self._sandstorm_background(self._delete_behind(workspace_id))
        return True

    async def _delete_behind(self, workspace_id: str) -> None:
        try:
            with contextlib.suppress(WorkspaceNotFound):
                await self._sandstorm_delete_hooked(workspace_id)
        finally:
            self._behind.discard(workspace_id)

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        call = self._call("create", spec)

        async def create(member: Member) -> Workspace:
            mine = spec
            if call.one_shot:
                network = member.provider._network_for_run(call.network, call.git_repo)
                mine = spec.model_copy(update={"network": network or NetworkPolicy()})
            labels = {**mine.labels, LABEL_ROUTE: member.name}
            return await member.provider._create_workspace(
                mine.model_copy(update={"labels": labels})
            )

        member, workspace = await self._route(call, create)
        return self._adopt(member, workspace)

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        member, workspace = await self._pinned(workspace_id, fresh=True)
        return self._adopt(member, workspace)

    async def _list_workspaces(self) -> list[Workspace]:
        merged = []
        for member in self._members:
            for workspace in await self._tracked(member, member.provider._list_workspaces()):
                if workspace.id not in self._behind:  # being deleted behind a result
                    merged.append(self._adopt(member, workspace))
        return merged

    async def _delete_workspace(self, workspace_id: str) -> None:
        member, _ = await self._pinned(workspace_id)
        await self._tracked(member, member.provider._delete_workspace(workspace_id))
        self._pins.pop(workspace_id, None)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        member, theirs = await self._pinned(workspace)
        if request.language not in member.provider.languages:
            raise CapabilityNotSupported(
                self.name,
                f"language {request.language}",
                f"workspace {workspace.id} is on member {member.name!r}, which does not run it",
            )
        if request.streaming and Capability.STREAMING not in member.capabilities:
            raise CapabilityNotSupported(
                self.name, Capability.STREAMING, f"member {member.name!r} does not stream"
            )
        one_shot = (extra := _EXTRA.get()) is not None and extra.one_shot
        started = time.perf_counter()
        try:
            result = await member.provider._execute(theirs, request)
        except SandstormError as exc:
            self._failed(member, exc)
            if one_shot and counts_against(exc):
                _say(
                    exc,
                    f"member {member.name!r} failed after the run was handed to it: the code "
                    "may have started, so the router did not run it elsewhere",
                )
            raise
        elapsed = time.perf_counter() - started
        alpha = self.router_config.latency_alpha
        member.latency = (
            elapsed if member.latency is None else alpha * elapsed + (1 - alpha) * member.latency
        )
        self._succeeded(member)
        update: dict[str, object] = {"provider": self.name}
        if Capability.COST not in self.capabilities:
            update["cost"] = None  # not every member prices a run: none is reported
        return result.model_copy(update=update)

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        member, theirs = await self._on(workspace, Capability.FILES)
        await self._tracked(member, member.provider._write_file(theirs, path, data))

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        member, theirs = await self._on(workspace, Capability.FILES)
        return await self._tracked(member, member.provider._read_file(theirs, path))

    async def _read_file_at_most(self, workspace: Workspace, path: str, max_size: int) -> bytes:
        member, theirs = await self._on(workspace, Capability.FILES)
        return await self._tracked(
            member, member.provider._read_file_at_most(theirs, path, max_size)
        )

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        member, theirs = await self._on(workspace, Capability.FILES)
        return await self._tracked(member, member.provider._list_files(theirs, path))

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        member, theirs = await self._on(workspace, Capability.FILES)
        await self._tracked(member, member.provider._delete_file(theirs, path))

    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        member, theirs = await self._on(workspace, Capability.GIT)
        await self._tracked(member, member.provider._git_clone(theirs, url, branch, path))

    async def _git_status(self, workspace: Workspace, path: str) -> GitStatus:
        member, theirs = await self._on(workspace, Capability.GIT)
        return await self._tracked(member, member.provider._git_status(theirs, path))

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        member, theirs = await self._on(workspace, Capability.SNAPSHOTS)
        snap = await self._tracked(member, member.provider._snapshot(theirs, name))
        self._snapshot_pins[snap.id] = member
        return snap.model_copy(update={"provider": self.name})

    async def _restore(self, snapshot_id: str, name: str | None) -> Workspace:
        member = self._snapshot_pins.get(snapshot_id) or await self._find_snapshot(snapshot_id)
        workspace = await self._tracked(member, member.provider._restore(snapshot_id, name))
        return self._adopt(member, workspace)

    async def _find_snapshot(self, snapshot_id: str) -> Member:
        for member in self._members:
            if Capability.SNAPSHOTS not in member.capabilities:
                continue
            with contextlib.suppress(SandstormError):
                for snap in await self._tracked(member, member.provider._list_snapshots()):
                    self._snapshot_pins[snap.id] = member
            if snapshot_id in self._snapshot_pins:
                return self._snapshot_pins[snapshot_id]
        raise SnapshotNotFound(snapshot_id)

    async def _list_snapshots(self) -> list[Snapshot]:
        merged = []
        for member in self._members:
            if Capability.SNAPSHOTS not in member.capabilities:
                continue
            for snap in await self._tracked(member, member.provider._list_snapshots()):
                self._snapshot_pins[snap.id] = member
                merged.append(snap.model_copy(update={"provider": self.name}))
        return merged

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        member = self._snapshot_pins.get(snapshot_id) or await self._find_snapshot(snapshot_id)
        await self._tracked(member, member.provider._delete_snapshot(snapshot_id))
        self._snapshot_pins.pop(snapshot_id, None)

    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        member, theirs = await self._on(workspace, Capability.METRICS)
        return await self._tracked(member, member.provider._metrics(theirs))

    async def _estimate_cost(self, duration: float, resources: Resources) -> CostEstimate:
        call = Call(
            operation="estimate_cost",
            capabilities=frozenset({Capability.COST}),
            resources=resources,
            timeout=duration,
        )
        members, _ = await self._fitting(call)
        if not members:
            raise ProviderUnavailable("no member can estimate a cost now", provider=self.name)
        return await members[0].provider._estimate_cost(duration, resources)

    async def _aclose(self) -> None:
        for member in self._members:
            await member.provider.aclose()

    def _expired(self, workspace: Workspace, now: datetime) -> bool:
        member = self._pins.get(workspace.id)
        return member is not None and member.provider._expired(self._theirs(member, workspace), now)

    def _rebind(self) -> None:
        for member in self._members:
            member.provider._rebind()

    def _sweep_leftovers(self) -> None:
        for member in self._members:
            member.provider._sweep_leftovers()

    def _has_leftovers(self) -> bool:
        return any(member.provider._has_leftovers() for member in self._members)

    async def _on(self, workspace: Workspace, capability: Capability) -> tuple[Member, Workspace]:
        member, theirs = await self._pinned(workspace)
        if capability not in member.capabilities:
            raise CapabilityNotSupported(
                self.name,
                capability,
                f"workspace {workspace.id} is on member {member.name!r}, which lacks it",
            )
        return member, theirs

    # agent primitives

    async def _create_context(
        self, workspace: Workspace, language: str, cwd: str | None, env: dict[str, str]
    ) -> CodeContext:
        member, theirs = await self._on(workspace, Capability.INTERPRETER)
        return await self._tracked(
            member, member.provider._create_context(theirs, language, cwd, env)
        )

    async def _run_code(
        self,
        workspace: Workspace,
        context_id: str | None,
        code: str,
        timeout: float,
        on_stdout: Callable[[str], None] | None,
        on_stderr: Callable[[str], None] | None,
        on_result: Any,
    ) -> Execution:
        member, theirs = await self._on(workspace, Capability.INTERPRETER)
        return await self._tracked(
            member,
            member.provider._run_code(
                theirs, context_id, code, timeout, on_stdout, on_stderr, on_result
            ),
        )

    async def _restart_context(self, workspace: Workspace, context_id: str) -> CodeContext:
        member, theirs = await self._on(workspace, Capability.INTERPRETER)
        return await self._tracked(member, member.provider._restart_context(theirs, context_id))

    async def _delete_context(self, workspace: Workspace, context_id: str) -> None:
        member, theirs = await self._on(workspace, Capability.INTERPRETER)
        await self._tracked(member, member.provider._delete_context(theirs, context_id))

    async def _list_contexts(self, workspace: Workspace) -> list[CodeContext]:
        member, theirs = await self._on(workspace, Capability.INTERPRETER)
        return await self._tracked(member, member.provider._list_contexts(theirs))

    async def _start_process(
        self, workspace: Workspace, command: str, cwd: str | None, env: dict[str, str], stdin: bool
    ) -> ProcessInfo:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        return await self._tracked(
            member, member.provider._start_process(theirs, command, cwd, env, stdin)
        )

    async def _list_processes(self, workspace: Workspace) -> list[ProcessInfo]:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        return await self._tracked(member, member.provider._list_processes(theirs))

    async def _get_process(self, workspace: Workspace, process_id: str) -> ProcessInfo:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        return await self._tracked(member, member.provider._get_process(theirs, process_id))

    async def _wait_process(
        self, workspace: Workspace, process_id: str, timeout: float | None
    ) -> int:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        return await self._tracked(
            member, member.provider._wait_process(theirs, process_id, timeout)
        )

    async def _kill_process(self, workspace: Workspace, process_id: str, signal: int) -> None:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        await self._tracked(member, member.provider._kill_process(theirs, process_id, signal))

    async def _send_stdin(self, workspace: Workspace, process_id: str, data: bytes) -> None:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        await self._tracked(member, member.provider._send_stdin(theirs, process_id, data))

    async def _stream_process(
        self, workspace: Workspace, process_id: str
    ) -> AsyncIterator[OutputChunk]:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        async for chunk in member.provider._stream_process(theirs, process_id):
            yield chunk

    async def _process_logs(self, workspace: Workspace, process_id: str) -> ProcessLogs:
        member, theirs = await self._on(workspace, Capability.PROCESSES)
        return await self._tracked(member, member.provider._process_logs(theirs, process_id))

    async def _expose_port(self, workspace: Workspace, port: int) -> ExposedPort:
        member, theirs = await self._on(workspace, Capability.PORTS)
        return await self._tracked(member, member.provider._expose_port(theirs, port))

    async def _unexpose_port(self, workspace: Workspace, port: int) -> None:
        member, theirs = await self._on(workspace, Capability.PORTS)
        await self._tracked(member, member.provider._unexpose_port(theirs, port))


def _falls_back(error: SandstormError) -> bool:
    """True for failures after which another member may take the call."""
    return counts_against(error) or isinstance(
        error, RateLimited | QuotaExceeded | ResourceAllocationError | AuthenticationError
    )


def _say(error: BaseException, text: str) -> None:
    """Append ``text`` to ``error``'s message (and its notes)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]} ({text})", *error.args[1:])
    error.add_note(text)


def _build(route: Route) -> AsyncProvider:
    cls = load_provider_class(route.provider)
    try:
        return cls(cls.config_model.load(route.config))
    except ProviderConfigError as exc:
        raise ProviderConfigError(f"route {route.member!r} ({route.provider}): {exc}") from None


EVERY_RESULT = frozenset({Capability.COST})
"""Capabilities that promise something of every run's result, not of a call that asks for
them: the router declares these only when every member does (a run routed to a member
without ``cost`` would come back with no cost)."""


def combined(member_capabilities: list[frozenset[Capability]]) -> frozenset[Capability]:
    """What a router over members declaring ``member_capabilities`` declares: their union,
    less the :data:`EVERY_RESULT` capabilities that some member lacks."""
    union = frozenset().union(*member_capabilities)
    common = frozenset.intersection(*member_capabilities) if member_capabilities else union
    return union - (EVERY_RESULT - common)


@functools.cache
def _declaring(providers: tuple[str, ...]) -> type[RouterProvider]:
    """A RouterProvider subclass declaring what its members declare, together."""
    classes = [load_provider_class(name) for name in providers]

    def loosest(attr: str) -> Any:
        values = [getattr(cls, attr) for cls in classes]
        return None if any(v is None for v in values) else max(values)

    namespace: dict[str, Any] = {
        "__module__": RouterProvider.__module__,
        "__qualname__": RouterProvider.__qualname__,
        "__doc__": RouterProvider.__doc__,
        "capabilities": combined([cls.capabilities for cls in classes]),
        "languages": frozenset().union(*(cls.languages for cls in classes)),
        "internal_labels": RouterProvider.internal_labels.union(
            *(cls.internal_labels for cls in classes)
        ),
        "max_cpu": loosest("max_cpu"),
        "max_memory": loosest("max_memory"),
        "max_disk": loosest("max_disk"),
        "max_timeout": loosest("max_timeout"),
        "exit_timeout": max(cls.exit_timeout for cls in classes),
    }
    return type("RouterProvider", (RouterProvider,), namespace)
