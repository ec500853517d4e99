"""The emulator's state: organisations, sandboxes, snapshots, and their lifecycle.

Each Daytona sandbox is backed by one workspace of a sandstorm provider (``local`` by
default). A Daytona snapshot is backed by a provider snapshot (a captured workspace), a
provider template, or nothing (sandboxes start empty). Time comes from an injectable
clock so auto-stop, auto-archive, auto-delete and ttl can be tested quickly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sandstorm
from sandstorm import AsyncProvider, Capability, NetworkPolicy, Workspace

from .._allowlist import check_domain_allow_list, check_network_allow_list
from ._build import BuildPlan, plan_build
from ._clock import Clock, SystemClock
from ._config import EmulatorConfig
from ._errors import ApiError
from ._metrics import MetricSample, take_sample
from ._quotas import check_quotas
from ._reaper import apply_rules, reap_forever
from ._records import SandboxRecord, SnapshotRecord
from ._sessions import SessionStore
from ._snapshots import SnapshotRegistry, build_info
from ._wire import CreateSandbox
from ._workspace_shell import shell

__all__ = ["Emulator", "Exchange", "MetricSample"]

log = logging.getLogger("sandstorm_daytona.emulator")

_GONE = frozenset({"destroyed"})


@dataclass
class Exchange:
    """One request and the response the emulator sent (``record_exchanges=True``)."""

    method: str
    path: str
    status: int
    content_type: str
    body: bytes
    sdk_version: str | None = None

    def json(self) -> Any:
        """The response body parsed as JSON."""
        import json

        return json.loads(self.body)


def check_allow_lists(networks: str | None, domains: str | None) -> None:
    """400 with the API's message for an allow-list the service refuses
    (``apps/api/src/sandbox/utils/network-validation.util.ts``)."""
    for value, check in ((networks, check_network_allow_list), (domains, check_domain_allow_list)):
        if value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None


@dataclass
class SandboxRuntime:
    """Per-sandbox state that lives only while the emulator runs."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    work_dir: str | None = None
    home_dir: str | None = None
    shell: str | None = None
    """The session shell's path, resolved once like the daemon's ``GetShell``."""
    samples: list[MetricSample] = field(default_factory=list)
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)


class Emulator(SnapshotRegistry):
    """Holds everything the server knows and runs; one per app.

    ``await start()`` builds the engine provider (also done lazily on the first request);
    ``await aclose()`` deletes every workspace and snapshot the emulator created and
    closes the provider.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        provider: AsyncProvider | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.clock: Clock = clock or SystemClock()
        self._provider = provider
        self._owns_provider = provider is None
        self._root: Path | None = None
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.snapshots: dict[str, SnapshotRecord] = {}
        self.runtime: dict[str, SandboxRuntime] = {}
        self.sessions = SessionStore(self)
        self._start_lock: asyncio.Lock | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._engine_snapshots: set[str] = set()
        self._archives: Path | None = None
        self._closed = False
        self.requests: set[asyncio.Task[Any]] = set()
        """Tasks serving requests right now (registered by the edge middleware)."""
        self.request_counts: Counter[str] = Counter()
        """Requests served so far per route, keyed ``"METHOD /route/{template}"`` (e.g.
        ``"POST /toolbox/{sandbox_id}/process/execute"``); ``"METHOD (unrouted)"`` for
        requests answered before routing (auth, rate limits, faults) or by no route,
        except ``"WEBSOCKET /api/socket.io"``: the SDK's event-stream attempts (refused).
        Clear it with ``request_counts.clear()`` to count one operation's requests."""
        self.stopping = False
        self.probes: dict[str, str] = {}
        """What the engine's sandboxes can run, found out once (e.g. a TypeScript runner)."""
        self.exchanges: list[Exchange] | None = [] if self.config.record_exchanges else None

    # ------------------------------------------------------------------ lifecycle

    @property
    def provider(self) -> AsyncProvider:
        """The engine provider; only valid after :meth:`start`."""
        if self._provider is None:
            raise RuntimeError("the emulator has not been started")
        return self._provider

    async def start(self) -> None:
        """Create the engine provider and start the lifecycle reaper (idempotent)."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._closed:
                raise RuntimeError("the emulator is closed")
            if self._provider is None:
                options = dict(self.config.provider_options)
                if self.config.provider == "local":
                    options.setdefault("output_cap", self.config.output_cap)
                    options.setdefault("workspace_path", "/home/daytona")
                    if "root" not in options:
                        self._root = Path(tempfile.mkdtemp(prefix="sandstorm-daytona-emulator-"))
                        options["root"] = self._root
                self._provider = sandstorm.get_async_provider(self.config.provider, **options)
            if self._reaper is None:
                self._reaper = asyncio.create_task(reap_forever(self), name="emulator-reaper")

    def interrupt_requests(self) -> None:
        """Cancel every request still being served (server shutdown): their commands are
        killed and their clients answered 503 at once instead of after a grace period."""
        self.stopping = True
        for task in list(self.requests):
            task.cancel()

    async def aclose(self) -> None:
        """Stop everything and delete every workspace and snapshot created (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.sessions.aclose()
        provider = self._provider
        if provider is not None:
            for record in list(self.sandboxes.values()):
                await self._drop_workspace(record)
            for snapshot_id in list(self._engine_snapshots):
                await self._delete_engine_snapshot(snapshot_id)
            if self._owns_provider:
                await provider.aclose()
        self.sandboxes.clear()
        self.snapshots.clear()
        for directory in (self._root, self._archives):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ tenancy

    def org_for_key(self, key: str) -> str | None:
        """The organisation a bearer token belongs to, or None (constant-time compare)."""
        found = None
        for candidate, org in self.config.api_keys.items():
            if hmac.compare_digest(candidate.encode(), key.encode()):
                found = org
        return found

    def find(self, org: str, id_or_name: str) -> SandboxRecord:
        """The org's sandbox by id, then by name; 404 like the real service otherwise."""
        self.settle_all(self.clock.now())
        record = self.sandboxes.get(id_or_name)
        if record is None or record.organization_id != org or record.state in _GONE:
            record = next(
                (
                    r
                    for r in self.sandboxes.values()
                    if r.organization_id == org and r.name == id_or_name and r.state not in _GONE
                ),
                None,
            )
        if record is None:
            raise ApiError(404, f"Sandbox with ID or name {id_or_name} not found")
        return record

    def visible(self, org: str) -> list[SandboxRecord]:
        """The org's sandboxes that are not destroyed, newest first."""
        self.settle_all(self.clock.now())
        items = [
            r for r in self.sandboxes.values() if r.organization_id == org and r.state not in _GONE
        ]
        return sorted(items, key=lambda r: (r.created_at, r.id), reverse=True)

    def runtime_of(self, record: SandboxRecord) -> SandboxRuntime:
        """The runtime side-state of ``record``."""
        return self.runtime.setdefault(record.id, SandboxRuntime())

    # ------------------------------------------------------------------ transitions

    def _begin(self, record: SandboxRecord, transitional: str, final: str) -> None:
        """Enter ``transitional`` for ``transition_delay`` seconds, then ``final``."""
        now = self.clock.now()
        record.updated_at = now
        if self.config.transition_delay > 0:
            record.state = transitional
            record.transition_to = final
            record.transition_until = now + timedelta(seconds=self.config.transition_delay)
        else:
            self._arrive(record, final, now)

    def _arrive(self, record: SandboxRecord, state: str, now: datetime) -> None:
        record.state = state
        record.transition_to = None
        record.transition_until = None
        record.updated_at = now
        if state == "stopped":
            record.stopped_at = now
        if state == "destroyed":
            self.sandboxes.pop(record.id, None)
            self.runtime.pop(record.id, None)

    def settle_all(self, now: datetime) -> None:
        """Finish every transition whose time has come (``now``)."""
        for record in list(self.sandboxes.values()):
            if record.transition_until is not None and now >= record.transition_until:
                self._arrive(record, record.transition_to or record.state, now)

    def _check_settled(self, record: SandboxRecord) -> None:
        if record.transition_to is not None or record.state != record.desired_state:
            raise ApiError(400, "State change in progress")

    # ------------------------------------------------------------------ quotas

    def check_quotas(
        self, org: str, cpu: int, memory: int, disk: int, *, exclude: str | None = None
    ) -> None:
        """403 like the service when the org's quotas leave no room (see :func:`check_quotas`)."""
        check_quotas(self.config.quotas, self.visible(org), cpu, memory, disk, exclude=exclude)

    # ------------------------------------------------------------------ sandboxes

    async def create_sandbox(self, org: str, body: CreateSandbox) -> SandboxRecord:
        """``POST /sandbox``: validate, check quotas, provision a workspace, start it."""
        self.ensure_default_snapshot()
        target = (body.target or "").strip() or self.config.regions[0]
        if target not in self.config.regions:
            raise ApiError(404, "Region not found")
        snap: SnapshotRecord | None = None
        if body.buildInfo is not None and body.snapshot:
            raise ApiError(400, "Cannot specify a snapshot when using a build info entry")
        if body.buildInfo is None and (body.cpu or body.gpu or body.memory or body.disk):
            raise ApiError(400, "Cannot specify Sandbox resources when using a snapshot")
        if body.buildInfo is not None:
            cpu = body.cpu or self.config.default_cpu
            memory = body.memory or self.config.default_memory
            disk = body.disk or self.config.default_disk
            snapshot_name = ""
        else:
            wanted = (body.snapshot or "").strip() or self.config.default_snapshot
            snap = self.find_snapshot(org, wanted)
            if snap is None:
                raise ApiError(
                    400,
                    f"Snapshot {wanted} not found. Did you add it through the Daytona Dashboard?",
                )
            if snap.state != "active":
                raise ApiError(400, f"Snapshot {wanted} is {snap.state}")
            cpu, memory, disk = snap.cpu, snap.mem, snap.disk
            snapshot_name = snap.name
        for volume in body.volumes or []:
            # the emulator has no volumes API, so no volume can exist to be mounted
            raise ApiError(400, f"Volume {volume.volumeId} not found")
        if body.name and any(
            r.name == body.name and r.state not in _GONE for r in self.visible(org)
        ):
            raise ApiError(409, f"Sandbox with name {body.name} already exists")
        for key, value in (
            ("Auto-stop", body.autoStopInterval),
            ("Auto-archive", body.autoArchiveInterval),
        ):
            if value is not None and value < 0:
                raise ApiError(400, f"{key} interval must be non-negative")
        check_allow_lists(body.networkAllowList, body.domainAllowList)
        dockerfile = (
            body.buildInfo.dockerfileContent
            if body.buildInfo is not None
            else (snap.build_info or {}).get("dockerfileContent")
            if snap is not None
            else None
        )
        plan = plan_build(dockerfile) if dockerfile else None
        self.check_quotas(org, cpu, memory, disk)

        now = self.clock.now()
        sandbox_id = str(uuid.uuid4())
        record = SandboxRecord(
            id=sandbox_id,
            organization_id=org,
            name=body.name or sandbox_id,
            snapshot=snapshot_name,
            user=body.user or "daytona",
            target=target,
            cpu=cpu,
            gpu=body.gpu or 0,
            memory=memory,
            disk=disk,
            created_at=now,
            env={**(plan.env if plan else {}), **(body.env or {})},
            labels=dict(body.labels or {}),
            public=bool(body.public),
            network_block_all=bool(body.networkBlockAll),
            network_allow_list=body.networkAllowList,
            domain_allow_list=body.domainAllowList,
            outbound_proxy_url=body.outboundProxyUrl,
            otel_endpoint_override=body.otelEndpointOverride,
            kvm=bool(body.kvm),
            spot=bool(body.spot),
            gpu_type=body.gpuType[0] if body.gpuType else None,
            queue_timeout=body.queueTimeout,
            volumes=[v.model_dump(exclude_none=True) for v in body.volumes or []],
            linked_sandbox_id=body.linkedSandbox,
            secrets=list(body.secrets or []),
            updated_at=now,
            last_activity_at=now,
        )
        if body.autoStopInterval is not None:
            record.auto_stop_interval = body.autoStopInterval
        if body.autoPauseInterval is not None:
            record.auto_pause_interval = body.autoPauseInterval
        if body.autoArchiveInterval is not None:
            record.auto_archive_interval = self.archive_interval(body.autoArchiveInterval)
        if body.autoDeleteInterval is not None:
            record.auto_delete_interval = body.autoDeleteInterval
        if body.ttlMinutes:
            record.auto_destroy_at = now + timedelta(minutes=body.ttlMinutes)
        if body.buildInfo is not None:
            record.build_info = build_info(body.buildInfo.dockerfileContent, now)
        record.workspace_id = await self._provision(record, snap)
        if plan is not None and plan.run:
            await self._apply_build(record, plan)
        if snap is not None:
            snap.last_used_at = now
        self.sandboxes[record.id] = record
        self._begin(record, "creating", "started")
        return record

    async def _apply_build(self, record: SandboxRecord, plan: BuildPlan) -> None:
        """Run the image's ``RUN`` steps in the new workspace; a failing step deletes it
        and fails the create with the step's output."""
        for number, command in enumerate(plan.run, start=1):
            try:
                result = await shell(self, record, command, plain=True)
                failed = result.exit_code != 0
                detail = f"exited {result.exit_code}: {(result.stderr or result.stdout)[-500:]}"
            except sandstorm.SandstormError as exc:
                failed, detail = True, str(exc)
            if failed:
                workspace_id, record.workspace_id = record.workspace_id, None
                if workspace_id is not None:
                    await self.provider.delete_workspace(workspace_id)
                raise ApiError(
                    400, f"Failed to build image: RUN step {number} ({command!r}) {detail}"
                )

    def archive_interval(self, minutes: int) -> int:
        """The auto-archive interval the service stores for ``minutes`` (0 = the maximum)."""
        if minutes < 0:
            raise ApiError(400, "Auto-archive interval must be non-negative")
        limit = self.config.max_auto_archive_interval
        return limit if minutes == 0 else min(minutes, limit)

    async def _provision(self, record: SandboxRecord, snap: SnapshotRecord | None) -> str:
        """Create (or restore) the engine workspace that backs ``record``."""
        try:
            if snap is not None and snap.engine_snapshot_id:
                return await self._restore(snap.engine_snapshot_id, record)
            return await self._new_workspace(record, snap.template if snap else None)
        except sandstorm.SandstormError as exc:
            raise ApiError(500, f"Failed to provision sandbox: {exc}") from exc

    async def _new_workspace(self, record: SandboxRecord, template: str | None) -> str:
        provider = self.provider
        labels = {
            "daytona-sandbox-id": record.id,
            "daytona-organization-id": record.organization_id,
        }
        # unnamed: the label ties it to its record, and a named create makes the engine
        # check every workspace's name first (the sandbox id is unique by construction)
        kwargs: dict[str, Any] = {"labels": labels, "env": record.env}
        if template:
            kwargs["template"] = template
        if self.config.enforce_resources and Capability.RESOURCE_LIMITS in provider.capabilities:
            kwargs.update(
                cpu=float(record.cpu), memory=record.memory * 1024, disk=record.disk * 1024
            )
        network = self._network(record)
        if network is not None:
            kwargs["network"] = network
        try:
            workspace = await provider.create_workspace(**kwargs)
        except sandstorm.ProviderConfigError:
            if network is None or network.mode != "allow_list":
                raise
            # an engine that cannot enforce an allow-list gets the strictest policy instead
            log.info("engine refused an allow-list for %s; the sandbox has no network", record.id)
            kwargs["network"] = NetworkPolicy.blocked()
            workspace = await provider.create_workspace(**kwargs)
        return workspace.id

    # captures: engine snapshots when the engine has them, tar archives otherwise

    async def _capture(self, record: SandboxRecord, name: str) -> tuple[str, int]:
        """Capture the sandbox's files; returns (reference, size in bytes)."""
        provider = self.provider
        if Capability.SNAPSHOTS in provider.capabilities:
            snap = await provider.snapshot(record.workspace_id or "", name=name)
            self._engine_snapshots.add(snap.id)
            return snap.id, snap.size
        result = await shell(self, record, "tar -cf - . | base64 -w0", plain=True)
        if result.exit_code != 0 or result.stdout_truncated:
            raise sandstorm.WorkspaceError(
                "cannot capture the workspace through the shell "
                f"(exit {result.exit_code}, truncated={result.stdout_truncated}): "
                f"{result.stderr.strip()[:200]}"
            )
        data = base64.b64decode(result.stdout)
        ref = f"tar:{uuid.uuid4().hex}"
        self._archive_path(ref).write_bytes(data)
        self._engine_snapshots.add(ref)
        return ref, len(data)

    async def _restore(self, ref: str, record: SandboxRecord) -> str:
        """A new workspace holding the files captured in ``ref``."""
        if not ref.startswith("tar:"):
            workspace = await self.provider.restore(ref)  # unnamed, as in _new_workspace
            return workspace.id
        workspace_id = await self._new_workspace(record, None)
        try:
            data = self._archive_path(ref).read_bytes()
            result = await shell(
                self, record, "tar -xf -", stdin=data, plain=True, workspace_id=workspace_id
            )
            if result.exit_code != 0:
                raise sandstorm.WorkspaceError(f"restore failed: {result.stderr.strip()[:200]}")
        except BaseException:
            await self.provider.delete_workspace(workspace_id)
            raise
        return workspace_id

    def _archive_path(self, ref: str) -> Path:
        if self._archives is None:
            self._archives = Path(tempfile.mkdtemp(prefix="sandstorm-daytona-archives-"))
        return self._archives / (ref.removeprefix("tar:") + ".tar")

    def _network(self, record: SandboxRecord) -> NetworkPolicy | None:
        """blocked with ``networkBlockAll``; the listed CIDRs with ``networkAllowList``;
        otherwise the emulator's ``network`` setting (blocked unless configured ``host``)."""
        if Capability.NETWORK_POLICY not in self.provider.capabilities:
            return None
        if record.network_block_all:
            return NetworkPolicy.blocked()
        allowed = tuple(
            part.strip() for part in (record.network_allow_list or "").split(",") if part.strip()
        )
        if allowed:
            return NetworkPolicy(mode="allow_list", allow=allowed)
        if self.config.network == "blocked":
            return NetworkPolicy.blocked()
        return NetworkPolicy.host()

    async def _drop_workspace(self, record: SandboxRecord) -> None:
        await self.sessions.drop_sandbox(record.id)
        workspace_id, record.workspace_id = record.workspace_id, None
        if workspace_id is not None:
            try:
                await self.provider.delete_workspace(workspace_id)
            except sandstorm.SandstormError as exc:
                log.warning("could not delete workspace %s: %s", workspace_id, exc)
        archive, record.archive_snapshot_id = record.archive_snapshot_id, None
        if archive is not None:
            await self._delete_engine_snapshot(archive)

    async def workspace(self, record: SandboxRecord) -> Workspace:
        """The live engine workspace of a started sandbox."""
        if record.workspace_id is None:
            raise ApiError(400, f"Sandbox {record.id} is not started")
        return await self.provider.get_workspace(record.workspace_id)

    async def start_sandbox(self, record: SandboxRecord) -> None:
        """``POST /sandbox/{id}/start`` from stopped, archived or paused."""
        if record.state == "started" and record.desired_state == "started":
            return
        if record.state not in ("stopped", "archived", "paused") or record.transition_to:
            raise ApiError(400, "Sandbox is not in valid state")
        self.check_quotas(
            record.organization_id, record.cpu, record.memory, record.disk, exclude=record.id
        )
        async with self.runtime_of(record).lock:
            previous = record.state
            if previous == "archived":
                assert record.archive_snapshot_id is not None
                try:
                    record.workspace_id = await self._restore(record.archive_snapshot_id, record)
                except sandstorm.SandstormError as exc:
                    raise ApiError(500, f"Failed to restore sandbox: {exc}") from exc
                await self._delete_engine_snapshot(record.archive_snapshot_id)
                record.archive_snapshot_id = None
            record.desired_state = "started"
            record.stopped_at = None
            record.touch(self.clock.now())
            transitional = {"archived": "restoring", "paused": "resuming"}.get(previous, "starting")
            self._begin(record, transitional, "started")

    async def stop_sandbox(self, record: SandboxRecord) -> None:
        """``POST /sandbox/{id}/stop``: end running commands; ephemeral ones are destroyed."""
        self._check_settled(record)
        if record.state not in ("started", "paused"):
            raise ApiError(400, "Sandbox is not started")
        if record.auto_delete_interval == 0:
            await self.destroy_sandbox(record)
            return
        await self.sessions.drop_sandbox(record.id)
        record.desired_state = "stopped"
        self._begin(record, "stopping", "stopped")
        if record.state == "stopping":
            record.stopped_at = self.clock.now()

    async def pause_sandbox(self, record: SandboxRecord) -> None:
        """``POST /sandbox/{id}/pause``."""
        self._check_settled(record)
        if record.state != "started":
            raise ApiError(400, "Sandbox is not started")
        record.desired_state = "paused"
        self._begin(record, "pausing", "paused")

    async def archive_sandbox(self, record: SandboxRecord) -> None:
        """``POST /sandbox/{id}/archive``: the files go into an engine snapshot."""
        self._check_settled(record)
        if record.state != "stopped":
            raise ApiError(400, "Sandbox is not stopped")
        if record.auto_delete_interval == 0:
            raise ApiError(400, "Ephemeral sandboxes cannot be archived")
        async with self.runtime_of(record).lock:
            if record.workspace_id is not None:
                try:
                    ref, _ = await self._capture(record, f"archive-{record.id}")
                except sandstorm.SandstormError as exc:
                    raise ApiError(500, f"Failed to archive sandbox: {exc}") from exc
                record.archive_snapshot_id = ref
                workspace_id, record.workspace_id = record.workspace_id, None
                await self.provider.delete_workspace(workspace_id)
            self.runtime.pop(record.id, None)
            record.desired_state = "archived"
            self._begin(record, "archiving", "archived")

    async def destroy_sandbox(self, record: SandboxRecord) -> None:
        """``DELETE /sandbox/{id}``: the workspace is deleted now; the record follows."""
        record.desired_state = "destroyed"
        await self._drop_workspace(record)
        self._begin(record, "destroying", "destroyed")

    async def snapshot_sandbox(self, record: SandboxRecord, name: str) -> SnapshotRecord:
        """``POST /sandbox/{id}/snapshot``: capture the files as a new named snapshot."""
        org = record.organization_id
        if any(s.name == name and s.organization_id == org for s in self.snapshots.values()):
            raise ApiError(409, f"Snapshot with name {name} already exists")
        if record.state not in ("started", "stopped"):
            raise ApiError(400, "Sandbox must be started or stopped to create a snapshot")
        if record.workspace_id is None:
            raise ApiError(400, f"Sandbox {record.id} has no filesystem to snapshot")
        async with self.runtime_of(record).lock:
            try:
                ref, size = await self._capture(record, name)
            except sandstorm.SandstormError as exc:
                raise ApiError(500, f"Failed to snapshot sandbox: {exc}") from exc
        now = self.clock.now()
        snap = SnapshotRecord(
            id=str(uuid.uuid4()),
            organization_id=org,
            name=name,
            created_at=now,
            image_name=None,
            size=round(size / (1 << 30), 6),
            cpu=record.cpu,
            gpu=record.gpu,
            mem=record.memory,
            disk=record.disk,
            source_sandbox_id=record.id,
            region_ids=[record.target],
            engine_snapshot_id=ref,
        )
        self.snapshots[snap.id] = snap
        previous = record.state
        record.touch(now)
        self._begin(record, "snapshotting", previous)
        return snap

    async def fork_sandbox(self, record: SandboxRecord, name: str | None) -> SandboxRecord:
        """``POST /sandbox/{id}/fork``: a new started sandbox with a copy of the files."""
        if record.state != "started":
            raise ApiError(400, "Sandbox is not started")
        org = record.organization_id
        if name and any(r.name == name for r in self.visible(org)):
            raise ApiError(409, f"Sandbox with name {name} already exists")
        self.check_quotas(org, record.cpu, record.memory, record.disk)
        now = self.clock.now()
        fork_id = str(uuid.uuid4())
        async with self.runtime_of(record).lock:
            try:
                ref, _ = await self._capture(record, f"fork-{record.id}")
                try:
                    forked_workspace = await self._restore(ref, record)
                finally:
                    await self._delete_engine_snapshot(ref)
            except sandstorm.SandstormError as exc:
                raise ApiError(500, f"Failed to fork sandbox: {exc}") from exc
        fork = SandboxRecord(
            id=fork_id,
            organization_id=org,
            name=name or fork_id,
            snapshot=record.snapshot,
            user=record.user,
            target=record.target,
            cpu=record.cpu,
            gpu=record.gpu,
            memory=record.memory,
            disk=record.disk,
            created_at=now,
            env=dict(record.env),
            labels=dict(record.labels),
            public=record.public,
            network_block_all=record.network_block_all,
            network_allow_list=record.network_allow_list,
            domain_allow_list=record.domain_allow_list,
            auto_stop_interval=record.auto_stop_interval,
            auto_archive_interval=record.auto_archive_interval,
            auto_delete_interval=record.auto_delete_interval,
            updated_at=now,
            last_activity_at=now,
            workspace_id=forked_workspace,
            parent_id=record.id,
        )
        self.sandboxes[fork.id] = fork
        self._begin(fork, "forking", "started")
        return fork

    # ------------------------------------------------------------------ automation

    async def tick(self) -> None:
        """Apply due transitions and the auto-stop/pause/archive/delete and ttl rules."""
        await apply_rules(self)

    # ------------------------------------------------------------------ metrics

    async def sample(self, record: SandboxRecord) -> MetricSample:
        """A fresh usage reading from the engine's accounting (kept for telemetry)."""
        return await take_sample(self, record)

    def history(self, record: SandboxRecord) -> Iterable[MetricSample]:
        """Readings taken so far, oldest first."""
        return list(self.runtime_of(record).samples)
