"""The ``daytona`` provider: Sandstorm's contract over the Daytona REST and toolbox APIs."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from sandstorm import (
    AsyncProvider,
    Capability,
    CostEstimate,
    ExecRequest,
    ExecutionTimeout,
    FileInfo,
    GitFileStatus,
    GitStatus,
    Language,
    NetworkPolicy,
    ProviderAPIError,
    ProviderConfigError,
    ResourceAllocationError,
    Resources,
    RunResult,
    SandstormError,
    Snapshot,
    SnapshotNotFound,
    TemplateNotFound,
    TerminationReason,
    Workspace,
    WorkspaceMetrics,
    WorkspaceNotFound,
    WorkspaceSpec,
)
from sandstorm._provider import OutputCallback

from ._command import build_run, kill_command
from ._config import DaytonaConfig
from ._errors import error_from_response
from ._http import DaytonaHTTP, is_not_found
from ._multipart import parse_multipart
from ._stream import Demux
from ._wire import (
    CommandInfo,
    CommandLogs,
    ExecuteResponse,
    FileInfoWire,
    GitStatusWire,
    SandboxList,
    SandboxWire,
    SessionExecuteResponse,
    SessionInfo,
    SnapshotList,
    SnapshotWire,
    SystemMetricsWire,
    TelemetryResponse,
    TelemetrySeries,
)

__all__ = ["LABEL_EXPIRES", "LABEL_MANAGED", "LABEL_OWNER", "DaytonaMetrics", "DaytonaProvider"]

log = logging.getLogger("sandstorm.daytona")

LABEL_MANAGED = "sandstorm"
"""Label set to ``"1"`` on every sandbox Sandstorm creates."""
LABEL_OWNER = "sandstorm-owner"
"""Label naming who created the sandbox (``DaytonaConfig.owner``)."""
LABEL_EXPIRES = "sandstorm-expires-at"
"""Label holding the Unix time after which ``reap`` may delete the sandbox."""
LABEL_PERSISTENT = "sandstorm-persistent"
LABEL_CREATE = "sandstorm-create"
LABEL_LANGUAGE = "code-toolbox-language"
LABEL_REQUESTED = "sandstorm-requested-"
"""Prefix of the labels that keep the cpu (cores) and memory/disk (MiB) asked for."""

_FAILED = frozenset({"error", "build_failed"})
_STOPPED = frozenset({"stopped", "archived", "paused"})
_GIB = 1024**3


class DaytonaMetrics(WorkspaceMetrics):
    """Workspace metrics plus Daytona's own figures from the toolbox ``/system/metrics``."""

    cpu_used_percent: float | None = None
    memory_total_bytes: int | None = None
    memory_cache_bytes: int | None = None
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None


class _CgroupFigures(BaseModel):
    cpu_user_seconds: float
    cpu_system_seconds: float
    memory_current_bytes: int
    memory_peak_bytes: int
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    process_count: int = 0


class DaytonaProvider(AsyncProvider):
    """Runs code in Daytona sandboxes (daytona.io, self-hosted, or the emulator).

    One pooled ``httpx.AsyncClient`` per provider; sandboxes are labelled with
    ``sandstorm=1``, an owner and an expiry, and ``reap`` deletes expired ones.
    """

    name: ClassVar[str] = "daytona"
    description: ClassVar[str] = "Daytona cloud sandboxes over the Daytona REST API"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    languages: ClassVar[frozenset[str]] = frozenset(
        {Language.PYTHON, Language.JAVASCRIPT, Language.TYPESCRIPT, Language.SHELL}
    )
    config_model: ClassVar[type[DaytonaConfig]] = DaytonaConfig
    config: DaytonaConfig

    def __init__(
        self,
        config: DaytonaConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        self._http = DaytonaHTTP(self.config, transport)
        self._toolbox: dict[str, str] = {}
        self._snapshot_sizes: dict[str, SnapshotWire] = {}

    def __repr__(self) -> str:
        return f"DaytonaProvider(api_url={self.config.api_url!r}, region={self.config.region!r})"

    # ------------------------------------------------------------------ extra public API

    async def list_workspaces(self, *, labels: Mapping[str, str] | None = None) -> list[Workspace]:
        """Sandstorm's sandboxes, optionally only those carrying every label in ``labels``."""
        return [self._workspace(sb) for sb in await self._list_sandboxes(labels)]

    async def stop_workspace(self, workspace: Workspace | str) -> Workspace:
        """Stop a workspace (files are kept, billing for cpu and memory stops)."""
        workspace_id = _id(workspace)
        await self._sandbox_call(
            "POST", workspace_id, "/stop", "stop sandbox", params={"force": "false"}
        )
        try:
            sandbox = await self._wait_state(workspace_id, {"stopped"}, "stop")
        except WorkspaceNotFound:
            # one-shot sandboxes carry autoDeleteInterval=0: stopping one deletes it
            self._toolbox.pop(workspace_id, None)
            if isinstance(workspace, Workspace):
                return workspace.model_copy(update={"state": "destroyed"})
            raise
        return self._workspace(sandbox)

    async def start_workspace(self, workspace: Workspace | str) -> Workspace:
        """Start a stopped or archived workspace and wait until it runs."""
        workspace_id = _id(workspace)
        reply = await self._sandbox_call("POST", workspace_id, "/start", "start sandbox")
        sandbox = self._remember(SandboxWire.model_validate_json(reply.content))
        if sandbox.state != "started":
            sandbox = await self._wait_state(workspace_id, {"started"}, "start")
        return self._workspace(sandbox)

    async def get_telemetry(
        self,
        workspace: Workspace | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        metric_names: list[str] | None = None,
    ) -> list[TelemetrySeries]:
        """Time series from ``GET /sandbox/{id}/telemetry/metrics`` (cpu, memory, disk)."""
        self.require(Capability.METRICS)
        until = until or datetime.now(UTC)
        since = since or until - timedelta(minutes=15)
        params: list[tuple[str, str]] = [("from", _iso(since)), ("to", _iso(until))]
        params += [("metricNames", name) for name in metric_names or []]
        reply = await self._sandbox_call(
            "GET", _id(workspace), "/telemetry/metrics", "get telemetry", params=params
        )
        return TelemetryResponse.model_validate_json(reply.content).series

    async def upload_files(self, workspace: Workspace | str, files: Mapping[str, bytes]) -> None:
        """Write several files in one multipart request (``/files/bulk-upload``)."""
        self.require(Capability.FILES)
        base = await self._toolbox_base(_id(workspace))
        await self._upload(base, dict(files))

    async def download_files(
        self, workspace: Workspace | str, paths: list[str]
    ) -> dict[str, bytes]:
        """Read several files in one request (``/files/bulk-download``)."""
        self.require(Capability.FILES)
        base = await self._toolbox_base(_id(workspace))
        return await self._download(base, paths)

    async def reap(
        self,
        *,
        older_than: float | None = None,
        owner: str | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete Sandstorm sandboxes that are past their expiry; return their ids.

        ``older_than`` (seconds) also deletes any Sandstorm sandbox created longer ago
        than that; ``owner`` limits the sweep to one owner label; ``dry_run`` only lists.
        """
        now = time.time()
        labels = {LABEL_OWNER: owner} if owner else None
        doomed = [
            sandbox
            for sandbox in await self._list_sandboxes(labels)
            if _expired(sandbox, now, older_than)
        ]
        if dry_run:
            return [sandbox.id for sandbox in doomed]
        removed: list[str] = []
        for sandbox in doomed:
            try:
                await self._delete_workspace(sandbox.id)
            except WorkspaceNotFound:
                pass
            except SandstormError as exc:
                log.warning("reap: could not delete %s: %s", sandbox.id, exc)
                continue
            removed.append(sandbox.id)
        return removed

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
        """Run ``code``; see :meth:`sandstorm.AsyncProvider.run`.

        With ``git_repo`` and no explicit ``network``, a new sandbox may reach only the
        git host: Daytona clones from inside the sandbox, and sandboxes block the network
        by default.
        """
        if git_repo is not None and network is None and workspace_id is None:
            host = urlsplit(git_repo).hostname
            if host:
                network = NetworkPolicy(mode="allow_list", allow=(host,))
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

    # ------------------------------------------------------------------ primitives

    async def _is_available(self) -> bool:
        await self._http.request(
            "GET", self._http.api("/sandbox"), "list sandboxes", params={"limit": "1"}
        )
        return True

    async def _create_workspace(self, spec: WorkspaceSpec) -> Workspace:
        token = uuid.uuid4().hex[:16]
        ours = spec.name is None
        name = spec.name or f"sandstorm-{token}"
        body = await self._create_body(spec, name, token)
        created: str | None = None
        try:
            reply = await self._http.request(
                "POST",
                self._http.api("/sandbox"),
                "create sandbox",
                json=body,
                idempotent=ours,
                ok=(400, 404, 409) if ours else (400, 404),
                timeout=self.config.create_timeout,
            )
            if reply.status_code in (400, 404):
                template = body.get("snapshot")
                if template is not None and _names_missing_snapshot(reply):
                    raise TemplateNotFound(str(template), await self._snapshot_names())
                raise error_from_response(reply, "create sandbox")
            if reply.status_code == 409:  # a retried create whose first try went through
                sandbox = await self._adopt(name, token)
            else:
                sandbox = self._remember(SandboxWire.model_validate_json(reply.content))
            created = sandbox.id
            if sandbox.state != "started":
                sandbox = await self._wait_state(sandbox.id, {"started"}, "start")
            return self._workspace(sandbox)
        except BaseException as exc:
            if created is not None or not _refused(exc):
                await _shielded(self._abandon(created, name, token))
            raise

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        return self._workspace(await self._get_sandbox(workspace_id))

    async def _list_workspaces(self) -> list[Workspace]:
        return [self._workspace(sb) for sb in await self._list_sandboxes(None)]

    async def _delete_workspace(self, workspace_id: str) -> None:
        reply = await self._http.request(
            "DELETE", self._sandbox_url(workspace_id), "delete sandbox", ok=(404,)
        )
        self._toolbox.pop(workspace_id, None)
        if reply.status_code == 404:
            raise WorkspaceNotFound(workspace_id, self.name)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        if workspace.state in _STOPPED:
            workspace = await self.start_workspace(workspace.id)
        base = await self._toolbox_base(workspace.id)
        token = uuid.uuid4().hex[:16]
        script = build_run(
            token,
            request.language,
            request.code,
            request.env,
            request.stdin,
            max_output=self.config.max_output_bytes,
        )
        session = f"sandstorm-{token}"
        started = time.perf_counter()
        if script.uploads:
            await self._upload(base, script.uploads)
        await self._http.request(
            "POST",
            f"{base}/process/session",
            "create session",
            json={"sessionId": session},
            idempotent=True,
            ok=(409,),
        )
        finished = False
        try:
            run = _Run(self, base, session, token, request, workspace.id)
            stdout, stderr, exit_code = await run.go(script.command)
            finished = True
        finally:
            await _shielded(self._end_session(base, session, token, kill=not finished))
        duration = time.perf_counter() - started
        limit = self.config.max_output_bytes
        out, out_cut = _cap(stdout, limit)
        err, err_cut = _cap(stderr, limit)
        reason, signal = _termination(exit_code, out_cut or err_cut)
        return RunResult(
            stdout=out,
            stderr=err,
            exit_code=exit_code,
            reason=reason,
            signal=signal,
            duration=duration,
            workspace_id=workspace.id,
            provider=self.name,
            language=request.language,
            stdout_truncated=out_cut,
            stderr_truncated=err_cut,
            cost=self._cost(duration, workspace.resources),
        )

    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        await self._upload(await self._toolbox_base(workspace.id), {path: data})

    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        files = await self._download(await self._toolbox_base(workspace.id), [path])
        return files[path]

    async def _list_files(self, workspace: Workspace, path: str) -> list[FileInfo]:
        base = await self._toolbox_base(workspace.id)
        reply = await self._toolbox_call(base, "GET", "/files", "list files", params={"path": path})
        entries = [FileInfoWire.model_validate(item) for item in reply.json()]
        prefix = "" if path in (".", "") else path.rstrip("/") + "/"
        return [
            FileInfo(
                path=f"{prefix}{entry.name}",
                name=entry.name,
                is_dir=entry.is_dir,
                size=entry.size,
                mode=_mode(entry.mode),
                modified_at=_parse_time(entry.mod_time),
            )
            for entry in entries
        ]

    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        base = await self._toolbox_base(workspace.id)
        await self._toolbox_call(
            base, "DELETE", "/files", "delete file", params={"path": path, "recursive": "true"}
        )

    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        base = await self._toolbox_base(workspace.id)
        clean_url, username, password = _split_credentials(url)
        target = path
        if path in (".", "", "./"):  # the work dir is not empty: clone aside, then move in
            target = f".sandstorm-clone-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"url": clean_url, "path": target}
        if branch:
            body["branch"] = branch
        if username is not None:
            body["username"] = username
            body["password"] = password or ""
        await self._toolbox_call(base, "POST", "/git/clone", "git clone", json=body, timeout=600)
        if target != path:
            moved = await self._shell(
                base,
                f"cp -a {target}/. . && rm -rf {target}",
                "move cloned repository into the work dir",
            )
            if moved.exit_code != 0:
                raise ProviderAPIError(
                    f"git clone: could not move the clone into place: {moved.result[:300]}",
                    provider=self.name,
                )

    async def _git_status(self, workspace: Workspace, path: str) -> GitStatus:
        base = await self._toolbox_base(workspace.id)
        reply, history = await asyncio.gather(
            self._toolbox_call(base, "GET", "/git/status", "git status", params={"path": path}),
            self._toolbox_call(base, "GET", "/git/history", "git history", params={"path": path}),
        )
        status = GitStatusWire.model_validate_json(reply.content)
        commits = history.json()
        head = commits[0].get("hash") if isinstance(commits, list) and commits else None
        return GitStatus(
            branch=status.current_branch or None,
            commit=str(head) if head else None,
            ahead=status.ahead or 0,
            behind=status.behind or 0,
            files=tuple(
                GitFileStatus(path=f.name, status=_git_state(f.staging, f.worktree))
                for f in status.file_status
            ),
        )

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        snapshot_name = name or f"sandstorm-{workspace.id[:12]}-{uuid.uuid4().hex[:8]}"
        await self._sandbox_call(
            "POST", workspace.id, "/snapshot", "snapshot sandbox", json={"name": snapshot_name}
        )
        await self._wait_state(workspace.id, None, "snapshot", leaving="snapshotting")
        dto = await self._wait_snapshot(snapshot_name)
        return self._snapshot_model(dto, workspace.id)

    async def _restore(self, snapshot_id: str, name: str | None) -> Workspace:
        try:
            return await self.create_workspace(template=snapshot_id, name=name)
        except TemplateNotFound:
            raise SnapshotNotFound(snapshot_id) from None

    async def _list_snapshots(self) -> list[Snapshot]:
        result: list[Snapshot] = []
        page = 1
        while True:
            reply = await self._http.request(
                "GET",
                self._http.api("/snapshots"),
                "list snapshots",
                params={"page": str(page), "limit": "100"},
            )
            listing = SnapshotList.model_validate_json(reply.content)
            result += [
                self._snapshot_model(dto, dto.source_sandbox_id or "")
                for dto in listing.items
                if dto.source_sandbox_id
            ]
            if page >= listing.total_pages or not listing.items:
                return result
            page += 1

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        reply = await self._http.request(
            "DELETE",
            self._http.api(f"/snapshots/{_seg(snapshot_id)}"),
            "delete snapshot",
            ok=(404,),
        )
        if reply.status_code == 404:
            raise SnapshotNotFound(snapshot_id)

    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        base = await self._toolbox_base(workspace.id)
        system_reply, figures = await asyncio.gather(
            self._toolbox_call(base, "GET", "/system/metrics", "get system metrics"),
            self._cgroup_figures(base),
        )
        system = SystemMetricsWire.model_validate_json(system_reply.content)
        return DaytonaMetrics(
            workspace_id=workspace.id,
            collected_at=_parse_time(system.timestamp) if system.timestamp else datetime.now(UTC),
            cpu_limit=system.cpu_count,
            memory_limit_bytes=system.mem_total,
            disk_used_bytes=system.disk_used or 0,
            cpu_used_percent=system.cpu_used_pct,
            memory_total_bytes=system.mem_total,
            memory_cache_bytes=system.mem_cache,
            disk_total_bytes=system.disk_total,
            disk_free_bytes=system.disk_free,
            **figures.model_dump(),
        )

    async def _estimate_cost(self, duration: float, resources: Resources) -> CostEstimate:
        cpu, memory, disk = _allocation(resources)
        rates = self.config.pricing
        breakdown = {
            "cpu": cpu * rates.cpu_per_second * duration,
            "memory": memory * rates.memory_gib_per_second * duration,
            "disk": disk * rates.disk_gib_per_second * duration,
        }
        return CostEstimate(
            total=sum(breakdown.values()),
            currency=rates.currency,
            breakdown=breakdown,
            duration=duration,
        )

    async def _aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ helpers: sandboxes

    def _sandbox_url(self, workspace_id: str, suffix: str = "") -> str:
        return self._http.api(f"/sandbox/{_seg(workspace_id)}{suffix}")

    async def _sandbox_call(
        self, method: str, workspace_id: str, suffix: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        reply = await self._http.request(
            method, self._sandbox_url(workspace_id, suffix), what, ok=(404,), **kwargs
        )
        if reply.status_code == 404:
            raise WorkspaceNotFound(workspace_id, self.name)
        return reply

    async def _get_sandbox(self, workspace_id: str) -> SandboxWire:
        reply = await self._sandbox_call("GET", workspace_id, "", "get sandbox")
        return self._remember(SandboxWire.model_validate_json(reply.content))

    async def _list_sandboxes(self, labels: Mapping[str, str] | None) -> list[SandboxWire]:
        wanted = {LABEL_MANAGED: "1", **(labels or {})}
        found: list[SandboxWire] = []
        cursor: str | None = None
        while True:
            params = {"labels": json.dumps(wanted), "limit": "100"}
            if cursor:
                params["cursor"] = cursor
            reply = await self._http.request(
                "GET", self._http.api("/sandbox"), "list sandboxes", params=params
            )
            page = _sandbox_page(reply.json())
            found += [
                self._remember(sb)
                for sb in page.items
                if all(sb.labels.get(k) == v for k, v in wanted.items())
                and sb.state not in ("destroyed", "destroying")
            ]
            if not page.next_cursor:
                return found
            cursor = page.next_cursor

    def _remember(self, sandbox: SandboxWire) -> SandboxWire:
        if sandbox.toolbox_proxy_url:
            self._toolbox[sandbox.id] = sandbox.toolbox_proxy_url.rstrip("/") + f"/{sandbox.id}"
        return sandbox

    async def _toolbox_base(self, workspace_id: str) -> str:
        base = self._toolbox.get(workspace_id)
        if base is not None:
            return base
        sandbox = await self._get_sandbox(workspace_id)
        if sandbox.id not in self._toolbox:
            reply = await self._sandbox_call(
                "GET", sandbox.id, "/toolbox-proxy-url", "get toolbox proxy url"
            )
            url = str(reply.json()["url"]).rstrip("/")
            self._toolbox[sandbox.id] = f"{url}/{sandbox.id}"
        return self._toolbox[sandbox.id]

    async def _wait_state(
        self,
        workspace_id: str,
        targets: set[str] | None,
        action: str,
        *,
        leaving: str | None = None,
    ) -> SandboxWire:
        """Poll ``GET /sandbox/{id}`` until the state is in ``targets`` (or not ``leaving``)."""
        deadline = time.monotonic() + self.config.create_timeout
        delay = 0.05
        while True:
            sandbox = await self._get_sandbox(workspace_id)
            state = sandbox.state or "unknown"
            if state in _FAILED:
                reason = sandbox.error_reason or "no reason given"
                raise ResourceAllocationError(
                    f"sandbox {workspace_id} failed to {action}: {state}: {reason}",
                    provider=self.name,
                )
            if (targets is not None and state in targets) or (
                leaving is not None and state != leaving
            ):
                return sandbox
            if time.monotonic() + delay > deadline:
                raise ResourceAllocationError(
                    f"sandbox {workspace_id} did not {action} within "
                    f"{self.config.create_timeout:g}s (state {state})",
                    provider=self.name,
                )
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    async def _create_body(self, spec: WorkspaceSpec, name: str, token: str) -> dict[str, Any]:
        persistent = spec.persistent
        ttl = self.config.persistent_ttl if persistent else self.config.ephemeral_ttl
        labels = {
            **spec.labels,
            LABEL_MANAGED: "1",
            LABEL_OWNER: self.config.owner,
            LABEL_PERSISTENT: "true" if persistent else "false",
            LABEL_CREATE: token,
        }
        labels.setdefault(LABEL_LANGUAGE, "python")
        if ttl is not None:
            labels[LABEL_EXPIRES] = str(int(time.time() + ttl))
        wanted = spec.resources
        for key, value in (("cpu", wanted.cpu), ("memory", wanted.memory), ("disk", wanted.disk)):
            if value is not None:
                labels[f"{LABEL_REQUESTED}{key}"] = f"{value:g}"
        body: dict[str, Any] = {
            "name": name,
            "labels": labels,
            "env": dict(spec.env),
            "volumes": [],
            **_network_fields(spec.network),
        }
        if persistent:
            if self.config.persistent_auto_delete_minutes is not None:
                body["autoDeleteInterval"] = self.config.persistent_auto_delete_minutes
        else:
            body["autoStopInterval"] = max(1, math.ceil(self.config.ephemeral_ttl / 60))
            body["autoDeleteInterval"] = 0
        if self.config.region:
            body["target"] = self.config.region
        template = spec.template or self.config.default_workspace_template
        wants = spec.resources != Resources()
        if template is not None:
            body["snapshot"] = template
            if wants:
                await self._check_snapshot_fits(template, spec.resources)
        elif wants:
            cpu, memory, disk = _allocation(spec.resources, defaults=False)
            body["buildInfo"] = {"dockerfileContent": f"FROM {self.config.resource_image}\n"}
            body.update({k: v for k, v in (("cpu", cpu), ("memory", memory), ("disk", disk)) if v})
        return body

    async def _check_snapshot_fits(self, template: str, wanted: Resources) -> None:
        """Daytona refuses explicit resources with a snapshot: the snapshot must be big enough."""
        dto = self._snapshot_sizes.get(template)
        if dto is None:
            dto = await self._find_snapshot(template)
            if dto is None:
                raise TemplateNotFound(template, await self._snapshot_names())
            self._snapshot_sizes[template] = dto
        cpu, memory, disk = _allocation(wanted, defaults=False)
        have = {"cpu": dto.cpu, "memory": dto.mem, "disk": dto.disk}
        short = [
            f"{key} {need} > {have[key]:g}"
            for key, need in (("cpu", cpu), ("memory", memory), ("disk", disk))
            if need and have[key] is not None and need > (have[key] or 0)
        ]
        if short:
            raise ResourceAllocationError(
                f"template {template!r} is smaller than requested ({', '.join(short)}; cpu in "
                "vCPU, memory and disk in GiB). Daytona sizes snapshot-based sandboxes from the "
                "snapshot: pick a larger template, or no template to build from "
                "DaytonaConfig.resource_image with exactly these resources",
                provider=self.name,
            )

    async def _find_snapshot(self, name_or_id: str) -> SnapshotWire | None:
        """The snapshot called (or with id) ``name_or_id``, looked up by the list filter.

        Names such as ``daytonaio/sandbox:0.8.0`` hold a ``/``, which not every server
        routes inside a path segment, so the name goes in the query string.
        """
        reply = await self._http.request(
            "GET",
            self._http.api("/snapshots"),
            "find snapshot",
            params={"name": name_or_id, "limit": "100"},
        )
        for dto in SnapshotList.model_validate_json(reply.content).items:
            if name_or_id in (dto.name, dto.id):
                return dto
        return None

    async def _adopt(self, name: str, token: str) -> SandboxWire:
        sandbox = await self._get_sandbox(name)
        if sandbox.labels.get(LABEL_CREATE) != token:
            raise ProviderAPIError(
                f"create sandbox: the name {name!r} is taken by another sandbox",
                provider=self.name,
                status=409,
            )
        return sandbox

    async def _abandon(self, created: str | None, name: str, token: str) -> None:
        """Delete what a failed or cancelled create left behind (best effort, never raises)."""
        try:
            if created is not None:
                with contextlib.suppress(WorkspaceNotFound):
                    await self._delete_workspace(created)
                return
            # The reply never came: the sandbox may exist (or appear shortly) under `name`.
            for delay in (0.0, 0.2, 0.5, 1.0, 2.0):
                await asyncio.sleep(delay)
                try:
                    sandbox = await self._get_sandbox(name)
                except WorkspaceNotFound:
                    continue
                if sandbox.labels.get(LABEL_CREATE) == token:
                    with contextlib.suppress(WorkspaceNotFound):
                        await self._delete_workspace(sandbox.id)
                return
        except Exception as exc:
            log.warning("could not clean up sandbox %s after a failed create: %s", name, exc)

    async def _snapshot_names(self) -> list[str]:
        try:
            reply = await self._http.request(
                "GET", self._http.api("/snapshots"), "list snapshots", params={"limit": "100"}
            )
            return [dto.name for dto in SnapshotList.model_validate_json(reply.content).items]
        except (SandstormError, ValidationError):
            return []

    async def _wait_snapshot(self, name: str) -> SnapshotWire:
        deadline = time.monotonic() + self.config.create_timeout
        delay = 0.05
        while True:
            dto = await self._find_snapshot(name)
            if dto is not None:
                if dto.state == "active":
                    return dto
                if dto.state in ("error", "build_failed"):
                    raise ResourceAllocationError(
                        f"snapshot {name!r} failed: {dto.error_reason or dto.state}",
                        provider=self.name,
                    )
            if time.monotonic() + delay > deadline:
                raise ResourceAllocationError(
                    f"snapshot {name!r} was not ready within {self.config.create_timeout:g}s",
                    provider=self.name,
                )
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    def _snapshot_model(self, dto: SnapshotWire, workspace_id: str) -> Snapshot:
        return Snapshot(
            id=dto.id,
            provider=self.name,
            workspace_id=dto.source_sandbox_id or workspace_id,
            created_at=_parse_time(dto.created_at),
            size=int((dto.size or 0) * _GIB),
            name=dto.name,
        )

    def _workspace(self, sandbox: SandboxWire) -> Workspace:
        labels = dict(sandbox.labels)
        return Workspace(
            id=sandbox.id,
            provider=self.name,
            name=sandbox.name or None,
            template=sandbox.snapshot,
            persistent=labels.get(LABEL_PERSISTENT, "true") != "false",
            created_at=_parse_time(sandbox.created_at),
            state=sandbox.state or "unknown",
            resources=_requested(sandbox),
            network=_network_of(sandbox),
            labels=labels,
        )

    def _cost(self, duration: float, resources: Resources) -> float:
        cpu, memory, disk = _allocation(resources)
        rates = self.config.pricing
        return duration * (
            cpu * rates.cpu_per_second
            + memory * rates.memory_gib_per_second
            + disk * rates.disk_gib_per_second
        )

    # ------------------------------------------------------------------ helpers: toolbox

    async def _toolbox_call(
        self, base: str, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await self._http.request(method, f"{base}{path}", what, **kwargs)
        except ProviderAPIError as exc:
            if is_not_found(exc) and path.startswith("/files"):
                raise FileNotFoundError(f"{what}: {exc.message}") from None
            raise

    async def _shell(
        self, base: str, command: str, what: str, timeout: int = 60
    ) -> ExecuteResponse:
        reply = await self._http.request(
            "POST",
            f"{base}/process/execute",
            what,
            json={"command": command, "timeout": timeout},
            timeout=timeout + 10,
            idempotent=False,
        )
        return ExecuteResponse.model_validate_json(reply.content)

    async def _upload(self, base: str, files: Mapping[str, bytes]) -> None:
        form: list[tuple[str, Any]] = []
        data: dict[str, str] = {}
        for index, (path, content) in enumerate(files.items()):
            data[f"files[{index}].path"] = path
            form.append((f"files[{index}].file", (path, content, "application/octet-stream")))
        await self._http.request(
            "POST",
            f"{base}/files/bulk-upload",
            "upload files",
            data=data,
            files=form,
            idempotent=True,
            timeout=max(self.config.request_timeout, 600.0),
        )

    async def _download(self, base: str, paths: list[str]) -> dict[str, bytes]:
        reply = await self._http.request(
            "POST",
            f"{base}/files/bulk-download",
            "download files",
            json={"paths": paths},
            headers={"Accept": "multipart/form-data"},
            idempotent=True,
            timeout=max(self.config.request_timeout, 600.0),
        )
        try:
            parts = parse_multipart(reply.content, reply.headers.get("content-type", ""))
        except ValueError as exc:
            raise ProviderAPIError(f"download files: {exc}", provider=self.name) from None
        found: dict[str, bytes] = {}
        for part in parts:
            if part.filename is None:
                continue
            if part.name == "error":
                detail = _part_error(part.data)
                if "NOT_FOUND" in detail or "not found" in detail.lower():
                    raise FileNotFoundError(f"{part.filename}: {detail}")
                raise ProviderAPIError(f"download {part.filename}: {detail}", provider=self.name)
            found[part.filename] = part.data
        missing = [path for path in paths if path not in found]
        if missing:
            raise FileNotFoundError(f"no data received for {', '.join(missing)}")
        return found

    async def _end_session(self, base: str, session: str, token: str, *, kill: bool) -> None:
        """Drop the run's session; after a failed run also kill its processes (best effort)."""
        if kill:
            try:
                await self._shell(base, kill_command(token), "clean up run", timeout=10)
            except Exception as exc:
                log.warning("could not kill the processes of run %s: %s", token, exc)
        try:
            await self._http.request(
                "DELETE", f"{base}/process/session/{session}", "delete session", ok=(404,)
            )
        except Exception as exc:
            log.warning("could not delete session %s: %s", session, exc)

    async def _cgroup_figures(self, base: str) -> _CgroupFigures:
        script = (
            "cd /sys/fs/cgroup 2>/dev/null && for f in cpu.stat memory.current memory.peak "
            'io.stat cgroup.procs pids.current; do [ -r $f ] && { echo "== $f"; cat $f; }; done; '
            "true"
        )
        reply = await self._shell(base, script, "read cgroup accounting", timeout=10)
        figures = _parse_cgroup(reply.result)
        if figures is None:
            raise ProviderAPIError(
                "get metrics: the sandbox exposes no cgroup v2 accounting (/sys/fs/cgroup)",
                provider=self.name,
            )
        return figures


class _Run:
    """One execution in its own session: blocking exec, or async exec with live output."""

    def __init__(
        self,
        provider: DaytonaProvider,
        base: str,
        session: str,
        token: str,
        request: ExecRequest,
        workspace_id: str,
    ) -> None:
        self.p = provider
        self.http = provider._http
        self.base = base
        self.session = session
        self.token = token
        self.request = request
        self.workspace_id = workspace_id
        self.cmd_id: str | None = None
        self.sent = {"stdout": 0, "stderr": 0}
        self.callbacks: dict[str, OutputCallback | None] = {
            "stdout": request.on_stdout,
            "stderr": request.on_stderr,
        }

    @property
    def session_url(self) -> str:
        return f"{self.base}/process/session/{self.session}"

    async def go(self, command: str) -> tuple[str, str, int]:
        try:
            async with asyncio.timeout(self.request.timeout):
                if self.request.streaming:
                    return await self._streaming(command)
                return await self._blocking(command)
        except TimeoutError:
            # The caller's finally kills the process group and drops the session.
            stdout, stderr = await _shielded_value(self._partial())
            raise ExecutionTimeout(
                self.request.timeout, stdout, stderr, self.workspace_id
            ) from None

    async def _blocking(self, command: str) -> tuple[str, str, int]:
        try:
            reply = await self.http.request(
                "POST",
                f"{self.session_url}/exec",
                "run code",
                json={"command": command, "runAsync": False},
                timeout=self.request.timeout + 10,
                idempotent=False,
            )
        except SandstormError as exc:
            if not isinstance(exc, ProviderAPIError) or exc.status is not None:
                raise
            # The connection dropped mid-run: find the command and follow it by polling.
            self.cmd_id = await self._find_command()
            if self.cmd_id is None:
                raise
            await self._poll()
            return await self._finish()
        answer = SessionExecuteResponse.model_validate_json(reply.content)
        self.cmd_id = answer.cmd_id
        if answer.exit_code is not None and answer.stdout is not None and answer.stderr is not None:
            return answer.stdout, answer.stderr, answer.exit_code
        return await self._finish()

    async def _streaming(self, command: str) -> tuple[str, str, int]:
        reply = await self.http.request(
            "POST",
            f"{self.session_url}/exec",
            "run code",
            json={"command": command, "runAsync": True},
            idempotent=False,
        )
        self.cmd_id = SessionExecuteResponse.model_validate_json(reply.content).cmd_id
        mode = self.p.config.streaming
        followed = False
        if mode != "poll":
            followed = await self._follow_websocket(required=mode == "websocket")
        if not followed:
            await self._poll()
        return await self._finish()

    async def _finish(self) -> tuple[str, str, int]:
        exit_code = await self._exit_code()
        logs = await self._logs()
        self._deliver("stdout", logs.stdout)
        self._deliver("stderr", logs.stderr)
        return logs.stdout, logs.stderr, exit_code

    async def _exit_code(self) -> int:
        delay = 0.02
        while True:
            reply = await self.http.request(
                "GET", f"{self.session_url}/command/{self.cmd_id}", "get command"
            )
            info = CommandInfo.model_validate_json(reply.content)
            if info.exit_code is not None:
                return info.exit_code
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 1.5)

    async def _logs(self) -> CommandLogs:
        reply = await self.http.request(
            "GET", f"{self.session_url}/command/{self.cmd_id}/logs", "get logs"
        )
        if reply.headers.get("content-type", "").startswith("application/json"):
            return CommandLogs.model_validate_json(reply.content)
        # A daemon too old for JSON logs: only the combined stream exists.
        return CommandLogs(output=reply.text, stdout=reply.text, stderr="")

    async def _poll(self) -> None:
        """Feed the callbacks from ``GET .../logs`` until the command has an exit code."""
        delay = 0.02
        while True:
            reply = await self.http.request(
                "GET", f"{self.session_url}/command/{self.cmd_id}", "get command"
            )
            done = CommandInfo.model_validate_json(reply.content).exit_code is not None
            if self.request.streaming:
                logs = await self._logs()
                self._deliver("stdout", logs.stdout)
                self._deliver("stderr", logs.stderr)
            if done:
                return
            await asyncio.sleep(delay)
            delay = min(0.25, delay * 1.5)

    async def _follow_websocket(self, *, required: bool) -> bool:
        """Stream the logs over the daemon's WebSocket; False if it cannot be opened."""
        try:
            from httpx_ws import (
                AsyncWebSocketSession,
                HTTPXWSException,
                WebSocketDisconnect,
                aconnect_ws,
            )
            from wsproto.events import BytesMessage, TextMessage
        except ImportError:
            if required:
                raise ProviderConfigError(
                    "streaming='websocket' needs the httpx-ws package"
                ) from None
            return False
        url = f"{self.session_url}/command/{self.cmd_id}/logs?follow=true"
        demux = Demux(self._push)
        opened = False
        try:
            connect = aconnect_ws(url, self.http.client, session_class=AsyncWebSocketSession)
            async with connect as ws:
                opened = True
                while True:
                    try:
                        event = await ws.receive()
                    except WebSocketDisconnect as exc:
                        if exc.code not in (1000, 1005):
                            raise ProviderAPIError(
                                f"log stream closed with code {exc.code}: {exc.reason}",
                                provider="daytona",
                            ) from None
                        break
                    if isinstance(event, BytesMessage):
                        demux.feed(bytes(event.data))
                    elif isinstance(event, TextMessage):
                        demux.feed(event.data.encode())
        except (HTTPXWSException, httpx.HTTPError) as exc:
            if opened or required:
                raise ProviderAPIError(f"log stream failed: {exc}", provider="daytona") from None
            log.debug("log WebSocket unavailable (%s); polling instead", exc)
            return False
        demux.close()
        return True

    def _push(self, stream: str, text: str) -> None:
        callback = self.callbacks[stream]
        self.sent[stream] += len(text)
        if callback is not None and text:
            callback(text)

    def _deliver(self, stream: str, full: str) -> None:
        """Send the part of ``full`` the callback has not seen yet."""
        if len(full) > self.sent[stream]:
            self._push(stream, full[self.sent[stream] :])

    async def _find_command(self) -> str | None:
        reply = await self.http.request("GET", self.session_url, "get session")
        commands = SessionInfo.model_validate_json(reply.content).commands or []
        return commands[-1].id if commands else None

    async def _partial(self) -> tuple[str, str]:
        try:
            if self.cmd_id is None:
                self.cmd_id = await self._find_command()
            if self.cmd_id is None:
                return "", ""
            logs = await self._logs()
        except SandstormError as exc:
            log.warning("could not read partial output after a timeout: %s", exc)
            return "", ""
        return logs.stdout, logs.stderr


# ---------------------------------------------------------------------- module helpers


def _termination(exit_code: int, truncated: bool) -> tuple[TerminationReason, int | None]:
    """Why the code stopped, from what Daytona reports: only a number.

    Like a shell, ``128 + N`` (N a signal number, 1-31) is read as death by signal N; a
    failure after output passed the cap is the cap's doing (the code got SIGPIPE).
    """
    if truncated and exit_code != 0:
        return TerminationReason.OUTPUT_LIMIT, None
    if 128 < exit_code < 160:
        return TerminationReason.SIGNALED, exit_code - 128
    return TerminationReason.EXITED, None


def _refused(exc: BaseException) -> bool:
    """True when the server answered the create with a 4xx: it made nothing."""
    if isinstance(exc, TemplateNotFound):
        return True
    return isinstance(exc, ProviderAPIError) and exc.status is not None and exc.status < 500


def _names_missing_snapshot(reply: httpx.Response) -> bool:
    text = reply.text.lower()
    return "snapshot" in text and ("not found" in text or "does not exist" in text)


def _seg(value: str) -> str:
    """``value`` as one URL path segment (snapshot names contain ``/`` and ``:``)."""
    return quote(value, safe="")


def _id(workspace: Workspace | str) -> str:
    return workspace.id if isinstance(workspace, Workspace) else workspace


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _allocation(resources: Resources, *, defaults: bool = True) -> tuple[int, int, int]:
    """Daytona's whole vCPU and GiB for ``resources``, rounded up (a limit is never cut).

    With ``defaults`` an unset figure takes Daytona's default sandbox size (1 vCPU,
    1 GiB memory, 3 GiB disk); without, it is 0 (meaning: not requested).
    """
    cpu = math.ceil(resources.cpu) if resources.cpu else (1 if defaults else 0)
    memory = math.ceil(resources.memory / 1024) if resources.memory else (1 if defaults else 0)
    disk = math.ceil(resources.disk / 1024) if resources.disk else (3 if defaults else 0)
    return cpu, memory, disk


def _network_fields(policy: NetworkPolicy) -> dict[str, Any]:
    if policy.mode == "blocked":
        return {"networkBlockAll": True}
    if policy.mode == "host":
        return {"networkBlockAll": False}
    cidrs: list[str] = []
    domains: list[str] = []
    for entry in policy.allow:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            domains.append(entry)
        else:
            cidrs.append(str(network))
    fields: dict[str, Any] = {"networkBlockAll": False}
    if cidrs:
        fields["networkAllowList"] = ",".join(cidrs)
    if domains:
        fields["domainAllowList"] = ",".join(domains)
    if not cidrs and not domains:
        fields["networkBlockAll"] = True
    return fields


def _network_of(sandbox: SandboxWire) -> NetworkPolicy:
    allow = [
        _single_host(item.strip())
        for text in (sandbox.network_allow_list, sandbox.domain_allow_list)
        for item in (text or "").split(",")
        if item.strip()
    ]
    if allow:
        return NetworkPolicy(mode="allow_list", allow=tuple(allow))
    if sandbox.network_block_all:
        return NetworkPolicy(mode="blocked")
    return NetworkPolicy(mode="host")


def _requested(sandbox: SandboxWire) -> Resources:
    """The resources asked for (labels), else what Daytona allocated (GiB -> MiB)."""

    def asked(key: str) -> float | None:
        text = sandbox.labels.get(f"{LABEL_REQUESTED}{key}")
        with contextlib.suppress(TypeError, ValueError):
            return float(text) if text is not None else None
        return None

    cpu, memory, disk = asked("cpu"), asked("memory"), asked("disk")
    return Resources(
        cpu=cpu if cpu is not None else (sandbox.cpu or None),
        memory=int(memory) if memory is not None else (int(sandbox.memory * 1024) or None),
        disk=int(disk) if disk is not None else (int(sandbox.disk * 1024) or None),
    )


def _single_host(entry: str) -> str:
    """``10.0.0.1/32`` reads back as ``10.0.0.1`` (a single host is sent as a /32)."""
    address, _, bits = entry.partition("/")
    if bits in ("32", "128"):
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(address))
    return entry


def _expired(sandbox: SandboxWire, now: float, older_than: float | None) -> bool:
    expires = sandbox.labels.get(LABEL_EXPIRES)
    if expires is not None:
        with contextlib.suppress(ValueError):
            if float(expires) <= now:
                return True
    if older_than is not None and sandbox.created_at:
        return _parse_time(sandbox.created_at).timestamp() <= now - older_than
    return False


def _sandbox_page(payload: Any) -> SandboxList:
    if isinstance(payload, list):  # older servers answer a bare list
        return SandboxList(items=[SandboxWire.model_validate(item) for item in payload])
    return SandboxList.model_validate(payload)


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, parts.username, parts.password


def _git_state(staging: str, worktree: str) -> str:
    for value in (worktree, staging):
        if value and value != "Unmodified":
            return value.lower()
    return "unmodified"


def _mode(text: str) -> int:
    text = text.strip()
    with contextlib.suppress(ValueError):
        return int(text, 8)
    bits = 0
    for char in text[-9:]:
        bits = (bits << 1) | (char not in "-")
    return bits


def _part_error(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")[:300]
    if isinstance(body, dict):
        return f"{body.get('message', '')} [{body.get('code', '')}]"
    return str(body)[:300]


def _cap(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


def _parse_cgroup(text: str) -> _CgroupFigures | None:
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = files.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    if "cpu.stat" not in files or "memory.current" not in files:
        return None
    cpu = {
        parts[0]: int(parts[1])
        for parts in (line.split() for line in files["cpu.stat"])
        if len(parts) == 2 and parts[1].isdigit()
    }
    current_bytes = int(files["memory.current"][0].strip())
    peak = files.get("memory.peak")
    reads = writes = 0
    for line in files.get("io.stat", []):
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes" and value.isdigit():
                reads += int(value)
            elif key == "wbytes" and value.isdigit():
                writes += int(value)
    procs = files.get("pids.current") or []
    count = (
        int(procs[0])
        if procs and procs[0].strip().isdigit()
        else len(files.get("cgroup.procs", []))
    )
    return _CgroupFigures(
        cpu_user_seconds=cpu.get("user_usec", 0) / 1e6,
        cpu_system_seconds=cpu.get("system_usec", 0) / 1e6,
        memory_current_bytes=current_bytes,
        memory_peak_bytes=int(peak[0].strip()) if peak else current_bytes,
        disk_read_bytes=reads if "io.stat" in files else None,
        disk_write_bytes=writes if "io.stat" in files else None,
        process_count=count,
    )


async def _shielded(awaitable: Awaitable[None]) -> None:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile (cleanup must happen)."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def _shielded_value(awaitable: Awaitable[tuple[str, str]]) -> tuple[str, str]:
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
