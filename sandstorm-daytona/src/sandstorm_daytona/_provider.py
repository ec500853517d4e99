"""The ``daytona`` provider: Sandstorm's contract over the Daytona REST and toolbox APIs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

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
    ResourceAllocationError,
    Resources,
    ResourceUsage,
    RunResult,
    SandstormError,
    Snapshot,
    SnapshotNotFound,
    TemplateNotFound,
    TerminationReason,
    Workspace,
    WorkspaceError,
    WorkspaceMetrics,
    WorkspaceNotFound,
    WorkspaceSpec,
)
from sandstorm.adapters import shielded, split_credentials

from ._agents import DaytonaAgents
from ._cgroup import CGROUP_SCRIPT, parse_cgroup
from ._cleanup import BackgroundDeletes
from ._command import (
    WARM_UP,
    RunScript,
    build_exec,
    build_run,
    kill_command,
    parse_exec,
)
from ._config import DaytonaConfig
from ._errors import error_from_response
from ._execution import SessionRun
from ._http import DaytonaHTTP, is_not_found, is_not_started
from ._mapping import (
    LABEL_CREATE,
    LABEL_EXPIRES,
    LABEL_LANGUAGE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_PERSISTENT,
    LABEL_REQUESTED,
    DaytonaMetrics,
    allocation,
    cap,
    file_time,
    git_state,
    iso,
    mode_bits,
    names_missing_snapshot,
    network_fields,
    network_of,
    parse_time,
    part_error,
    refused,
    requested,
    sandbox_page,
    seg,
    termination,
    workspace_id_of,
)
from ._multipart import parse_multipart
from ._wire import (
    AnalyticsPoints,
    ExecuteResponse,
    FileInfoWire,
    GitStatusWire,
    SandboxWire,
    SnapshotList,
    SnapshotWire,
    SystemMetricsWire,
    TelemetryPoint,
    TelemetryResponse,
    TelemetrySeries,
)

__all__ = ["LABEL_EXPIRES", "LABEL_MANAGED", "LABEL_OWNER", "DaytonaMetrics", "DaytonaProvider"]

log = logging.getLogger("sandstorm.daytona")

_FAILED = frozenset({"error", "build_failed"})
_STOPPED = frozenset({"stopped", "archived", "paused"})
_GIB = 1024**3
P = ParamSpec("P")
T = TypeVar("T")
_EXEC_GRACE = 30
"""Seconds the daemon's own timeout for a run's request exceeds the run's timeout."""
_SNAPSHOT_PREFIX = "sandstorm-"
"""Start of the names of the snapshots Sandstorm names itself."""


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _is_uuid(text: str) -> bool:
    """True for a UUID in the hyphenated form NestJS's ``ParseUUIDPipe`` accepts."""
    return _UUID.fullmatch(text) is not None


def _starting(
    method: Callable[Concatenate[DaytonaProvider, Workspace, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[DaytonaProvider, Workspace, P], Coroutine[Any, Any, T]]:
    """Start the sandbox and try once more when the toolbox answers that it is not started.

    Persistent workspaces auto-stop when idle (``autoStopInterval``) while the caller may
    still hold a ``Workspace`` that says "started"; the toolbox then answers 400 "... Is the
    Sandbox started?" before anything ran, so starting it and repeating is safe.
    """

    @functools.wraps(method)
    async def run(
        self: DaytonaProvider, workspace: Workspace, /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            return await method(self, workspace, *args, **kwargs)
        except ProviderAPIError as exc:
            if not is_not_started(exc):
                raise
        log.info("sandbox %s is not started (auto-stopped?): starting it", workspace.id)
        await self.start_workspace(workspace.id)
        return await method(self, workspace, *args, **kwargs)

    return run


class DaytonaProvider(DaytonaAgents, AsyncProvider):
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
    internal_labels: ClassVar[frozenset[str]] = frozenset(
        {LABEL_MANAGED, LABEL_OWNER, LABEL_EXPIRES, LABEL_PERSISTENT, LABEL_CREATE, LABEL_LANGUAGE}
        | {f"{LABEL_REQUESTED}{key}" for key in ("cpu", "memory", "disk")}
    )
    config: DaytonaConfig
    # Daytona's per-sandbox maxima for an organization (docs: "Sandboxes"); a subclass
    # may raise them for an organization whose limits were raised
    max_cpu: ClassVar[float | None] = 4.0
    max_memory: ClassVar[int | None] = 8 * 1024
    max_disk: ClassVar[int | None] = 10 * 1024
    enforces_unique_names: ClassVar[bool] = True

    def __init__(
        self,
        config: DaytonaConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        self._transport = transport
        self._http = DaytonaHTTP(self.config, transport)
        self._toolbox: dict[str, str] = {}
        self._snapshot_sizes: dict[str, SnapshotWire] = {}
        self._analytics: tuple[str | None] | None = None
        self._kept: dict[str, list[str]] = {}
        """Per sandbox, the runs whose results are kept in it for a resend (see build_exec)."""
        self._known: dict[str, Workspace] = {}
        """Workspaces as last seen (state, resources): runs skip ``GET sandbox``."""
        self._deletes = BackgroundDeletes(
            self._delete_behind, self._delete_blocking, limit=self.config.request_timeout * 3
        )

    def __repr__(self) -> str:
        return f"DaytonaProvider(api_url={self.config.api_url!r}, region={self.config.region!r})"

    # ------------------------------------------------------------------ extra public API

    async def stop_workspace(self, workspace: Workspace | str) -> Workspace:
        """Stop a workspace (files are kept, billing for cpu and memory stops)."""
        workspace_id = workspace_id_of(workspace)
        await self._sandbox_call(
            "POST", workspace_id, "/stop", "stop sandbox", params={"force": "false"}
        )
        try:
            sandbox = await self._wait_state(workspace_id, {"stopped"}, "stop")
        except WorkspaceNotFound:
            # one-shot sandboxes carry autoDeleteInterval=0: stopping one deletes it
            self._forget(workspace_id)
            if isinstance(workspace, Workspace):
                return workspace.model_copy(update={"state": "destroyed"})
            raise
        return self._sandstorm_public(self._workspace(sandbox))

    async def start_workspace(self, workspace: Workspace | str) -> Workspace:
        """Start a stopped or archived workspace and wait until it runs."""
        workspace_id = workspace_id_of(workspace)
        reply = await self._sandbox_call("POST", workspace_id, "/start", "start sandbox")
        sandbox = self._remember(SandboxWire.model_validate_json(reply.content))
        if sandbox.state != "started":
            sandbox = await self._wait_state(workspace_id, {"started"}, "start")
        return self._sandstorm_public(self._workspace(sandbox))

    async def get_telemetry(
        self,
        workspace: Workspace | str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        metric_names: list[str] | None = None,
    ) -> list[TelemetrySeries]:
        """Time series of cpu, memory and disk readings.

        Read from the Analytics API when the server's ``GET /config`` names one (as the
        official SDK does: the API's own telemetry endpoints then answer 403), else from
        ``GET /sandbox/{id}/telemetry/metrics``.
        """
        self.require(Capability.METRICS)
        until = until or datetime.now(UTC)
        since = since or until - timedelta(minutes=15)
        workspace_id = workspace_id_of(workspace)
        analytics = await self._analytics_url()
        if analytics is not None:
            return await self._analytics_telemetry(
                analytics, workspace_id, since, until, metric_names
            )
        params: list[tuple[str, str]] = [("from", iso(since)), ("to", iso(until))]
        params += [("metricNames", name) for name in metric_names or []]
        reply = await self._sandbox_call(
            "GET", workspace_id, "/telemetry/metrics", "get telemetry", params=params
        )
        return TelemetryResponse.model_validate_json(reply.content).series

    async def _analytics_url(self) -> str | None:
        """The ``analyticsApiUrl`` of ``GET /config`` (read once), None when there is none."""
        if self._analytics is None:
            try:
                reply = await self._http.request("GET", self._http.api("/config"), "get config")
                url = reply.json().get("analyticsApiUrl")
            except (SandstormError, ValueError, AttributeError) as exc:
                log.debug("no analytics API (GET /config: %s)", exc)
                url = None
            self._analytics = (str(url).rstrip("/") if url else None,)
        return self._analytics[0]

    async def _analytics_telemetry(
        self,
        analytics: str,
        workspace_id: str,
        since: datetime,
        until: datetime,
        metric_names: list[str] | None,
    ) -> list[TelemetrySeries]:
        sandbox = await self._get_sandbox(workspace_id)
        params = {"from": iso(since), "to": iso(until)}
        if metric_names:
            params["metricNames"] = ",".join(metric_names)
        reply = await self._http.request(
            "GET",
            f"{analytics}/organization/{seg(sandbox.organization_id or '')}"
            f"/sandbox/{seg(sandbox.id)}/telemetry/metrics",
            "get telemetry",
            params=params,
        )
        series: dict[str, list[TelemetryPoint]] = {}
        for point in AnalyticsPoints.validate_json(reply.content):
            if point.metric_name and point.timestamp and point.value is not None:
                series.setdefault(point.metric_name, []).append(
                    TelemetryPoint(timestamp=point.timestamp, value=point.value)
                )
        return [
            TelemetrySeries(metricName=name, dataPoints=points) for name, points in series.items()
        ]

    async def upload_files(self, workspace: Workspace | str, files: Mapping[str, bytes]) -> None:
        """Write several files in one multipart request (``/files/bulk-upload``)."""
        self.require(Capability.FILES)
        workspace_id = workspace_id_of(workspace)
        base = await self._toolbox_base(workspace_id)
        batch = dict(files)
        await self._upload(base, batch)
        for path, data in batch.items():  # audited as write_file is, one record a file
            self._sandstorm_audit("file.write", workspace_id, path=path, size=len(data))

    async def download_files(
        self, workspace: Workspace | str, paths: list[str]
    ) -> dict[str, bytes]:
        """Read several files in one request (``/files/bulk-download``)."""
        self.require(Capability.FILES)
        base = await self._toolbox_base(workspace_id_of(workspace))
        return await self._download(base, paths)

    async def reap(
        self,
        *,
        older_than: float | None = None,
        dry_run: bool = False,
        labels: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> list[str]:
        """Delete leaked and expired Sandstorm sandboxes; see :meth:`AsyncProvider.reap`.

        Expired: past the ``sandstorm-expires-at`` label. ``owner`` limits the sweep to
        one ``sandstorm-owner`` label (``DaytonaConfig.owner``).
        """
        wanted = {**(labels or {}), **({LABEL_OWNER: owner} if owner else {})}
        return await super().reap(older_than=older_than, dry_run=dry_run, labels=wanted or None)

    def _expired(self, workspace: Workspace, now: datetime) -> bool:
        expires = workspace.labels.get(LABEL_EXPIRES)
        if expires is None:
            return False
        try:
            return float(expires) <= now.timestamp()
        except ValueError:
            return False

    def _network_for_run(
        self, network: NetworkPolicy | None, git_repo: str | None
    ) -> NetworkPolicy | None:
        """With ``git_repo`` and no explicit ``network``, the new sandbox reaches the git host.

        Daytona clones from inside the sandbox, and sandboxes block the network by default.
        """
        if git_repo is not None and network is None:
            host = urlsplit(git_repo).hostname
            if host:
                return NetworkPolicy(mode="allow_list", allow=(host,))
        return network

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
                if template is not None and names_missing_snapshot(reply):
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
            if created is not None or not refused(exc):
                await shielded(self._abandon(created, name, token))
            raise

    async def _get_workspace(self, workspace_id: str) -> Workspace:
        if workspace_id in self._deletes.pending():
            raise WorkspaceNotFound(workspace_id, self.name)
        return self._workspace(await self._get_sandbox(workspace_id))

    async def _list_workspaces(self) -> list[Workspace]:
        return self._listed(await self._list_sandboxes(None))

    async def _list_labelled(self, labels: Mapping[str, str]) -> list[Workspace]:
        return self._listed(await self._list_sandboxes(labels))

    def _listed(self, sandboxes: list[SandboxWire]) -> list[Workspace]:
        """Workspaces of ``sandboxes``, less those a background delete is removing."""
        deleting = self._deletes.pending()
        return [self._workspace(sb) for sb in sandboxes if sb.id not in deleting]

    async def _delete_workspace(self, workspace_id: str) -> None:
        reply = await self._http.request(
            "DELETE", self._sandbox_url(workspace_id), "delete sandbox", ok=(404,)
        )
        self._forget(workspace_id)
        # A 404 on a retry means an earlier try deleted it and only its reply was lost.
        if reply.status_code == 404 and reply.extensions.get("sandstorm_attempts", 1) == 1:
            raise WorkspaceNotFound(workspace_id, self.name)

    async def _execute(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        if workspace.state in _STOPPED:
            workspace = await self.start_workspace(workspace.id)
        if request.streaming:
            return await self._execute_session(workspace, request)
        token = uuid.uuid4().hex[:16]
        script = build_exec(
            token,
            request.language,
            request.code,
            request.env,
            request.stdin,
            # cut (and so stop the code) past twice the cap, as local kills it
            max_output=2 * self.config.max_output_bytes,
            timeout=request.timeout,
            done=self._kept.pop(workspace.id, ()),
        )
        started = time.perf_counter()
        finished = False
        try:
            async with asyncio.timeout(request.timeout + _EXEC_GRACE + 15):
                reply = await self._exec_request(workspace, script, request.timeout)
            finished = True
        except TimeoutError:  # the sandbox's own watchdog did not answer: a backstop
            raise ExecutionTimeout(request.timeout, "", "", workspace.id) from None
        finally:
            if not finished:
                await shielded(self._kill_run(workspace.id, token))
        self._kept.setdefault(workspace.id, []).append(token)  # the next run removes it
        outcome = parse_exec(token, reply.result)
        if outcome is None:
            raise ProviderAPIError(
                f"run code: the reply carries no result (exit {reply.exit_code}): "
                f"{reply.result[-500:]!r}",
                provider=self.name,
            )
        duration = time.perf_counter() - started
        if outcome.timed_out:
            limit = self.config.max_output_bytes
            raise ExecutionTimeout(
                request.timeout,
                cap(outcome.stdout, limit)[0],
                cap(outcome.stderr, limit)[0],
                workspace.id,
            )
        return self._result(
            workspace, request, outcome.stdout, outcome.stderr, outcome.exit_code, duration
        )

    @_starting
    async def _exec_request(
        self, workspace: Workspace, script: RunScript, timeout: float
    ) -> ExecuteResponse:
        """One ``POST /process/execute`` (after uploading large payloads); safe to resend."""
        base = await self._toolbox_base(workspace.id)
        if script.uploads:
            await self._upload(base, script.uploads)
        try:
            reply = await self._http.request(
                "POST",
                f"{base}/process/execute",
                "run code",
                json={"command": script.command, "timeout": math.ceil(timeout) + _EXEC_GRACE},
                timeout=timeout + _EXEC_GRACE + 10,
                idempotent=True,
            )
        except ProviderAPIError as exc:
            if is_not_found(exc):  # deleted behind our back: what we remembered is stale
                self._forget(workspace.id)
                raise WorkspaceNotFound(workspace.id, self.name) from None
            raise
        return ExecuteResponse.model_validate_json(reply.content)

    async def _kill_run(self, workspace_id: str, token: str) -> None:
        """Kill an abandoned run's processes (best effort, never raises)."""
        base = self._toolbox.get(workspace_id)
        if base is None:
            return
        try:
            await self._shell(base, kill_command(token, keyed=True), "clean up run", timeout=10)
        except Exception as exc:
            log.debug("could not kill the processes of run %s: %s", token, exc)

    async def _execute_session(self, workspace: Workspace, request: ExecRequest) -> RunResult:
        """A run in its own session, for live output (``on_stdout``/``on_stderr``)."""
        token = uuid.uuid4().hex[:16]
        script = build_run(
            token,
            request.language,
            request.code,
            request.env,
            request.stdin,
            # the wrapper cuts (and so stops the code) past twice the cap, as local kills it
            max_output=2 * self.config.max_output_bytes,
        )
        session = f"sandstorm-{token}"
        started = time.perf_counter()
        base = await self._open_session(workspace, session, script.uploads)
        finished = False
        try:
            run = SessionRun(self, base, session, token, request, workspace.id)
            stdout, stderr, exit_code = await run.go(script.command)
            finished = True
        finally:
            await shielded(self._end_session(base, session, token, kill=not finished))
        duration = time.perf_counter() - started
        return self._result(workspace, request, stdout, stderr, exit_code, duration)

    def _result(
        self,
        workspace: Workspace,
        request: ExecRequest,
        stdout: str,
        stderr: str,
        exit_code: int,
        duration: float,
    ) -> RunResult:
        limit = self.config.max_output_bytes
        flooded = max(len(stdout.encode()), len(stderr.encode())) > 2 * limit
        out, out_cut = cap(stdout, limit)
        err, err_cut = cap(stderr, limit)
        reason, signal = termination(exit_code, flooded)
        if reason == TerminationReason.OUTPUT_LIMIT:
            exit_code, signal = 137, 9  # the one meaning of the output cap (DEFAULT_OUTPUT_CAP)
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

    async def _prepare_pooled(self, workspace: Workspace) -> None:
        """A pooled sandbox gets its Python wrapper compiled ahead (one request, in the
        refill): its first run starts as a later run in it would."""
        await self._shell(await self._toolbox_base(workspace.id), WARM_UP, "warm up", 30)

    # ------------------------------------------------------------------ background deletes

    def _defer_delete(self, workspace_id: str) -> bool:
        """A one-shot run's sandbox is deleted behind the result (awaited by ``aclose``)."""
        self._deletes.spawn(workspace_id)
        return True

    async def _delete_behind(self, workspace_id: str) -> None:
        # not the public delete_workspace: it refuses once aclose() has begun, and aclose
        # awaits these deletes (a handle closed right before its provider hit that)
        with contextlib.suppress(WorkspaceNotFound):
            await self._sandstorm_delete_hooked(workspace_id)

    def _delete_blocking(self, workspace_id: str) -> None:
        """``DELETE /sandbox/{id}`` with a blocking client (at interpreter exit)."""
        with httpx.Client(headers=self._http.auth_headers, timeout=10.0) as client:
            reply = client.delete(self._sandbox_url(workspace_id))
            if reply.status_code not in (200, 204, 404):
                reply.raise_for_status()

    def _forget(self, workspace_id: str) -> None:
        self._toolbox.pop(workspace_id, None)
        self._kept.pop(workspace_id, None)
        self._known.pop(workspace_id, None)

    def _cached_workspace(self, workspace_id: str) -> Workspace | None:
        """A workspace seen before is not fetched again (a stopped one is started on use)."""
        return self._known.get(workspace_id)

    @_starting
    async def _open_session(
        self, workspace: Workspace, session: str, uploads: Mapping[str, bytes]
    ) -> str:
        """Upload the run's large payloads and create its session; the toolbox base URL."""
        base = await self._toolbox_base(workspace.id)
        if uploads:
            await self._upload(base, uploads)
        await self._http.request(
            "POST",
            f"{base}/process/session",
            "create session",
            json={"sessionId": session},
            idempotent=True,
            ok=(409,),
        )
        return base

    @_starting
    async def _write_file(self, workspace: Workspace, path: str, data: bytes) -> None:
        await self._upload(await self._toolbox_base(workspace.id), {path: data})

    @_starting
    async def _read_file(self, workspace: Workspace, path: str) -> bytes:
        files = await self._download(await self._toolbox_base(workspace.id), [path])
        return files[path]

    @_starting
    async def _read_file_at_most(self, workspace: Workspace, path: str, max_size: int) -> bytes:
        base = await self._toolbox_base(workspace.id)
        # one more round trip, so a sparse or huge file is refused before it is downloaded
        reply = await self._toolbox_call(
            base, "GET", "/files/info", "file info", params={"path": path}
        )
        info = FileInfoWire.model_validate(reply.json())
        if not info.is_dir and info.size > max_size:
            raise WorkspaceError(
                f"{path!r} is {info.size} bytes, over the {max_size}-byte read limit"
            )
        files = await self._download(base, [path])
        return files[path]

    @_starting
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
                mode=mode_bits(entry.mode),
                modified_at=file_time(entry.modified_at, entry.mod_time, entry.name),
            )
            for entry in entries
        ]

    @_starting
    async def _delete_file(self, workspace: Workspace, path: str) -> None:
        base = await self._toolbox_base(workspace.id)
        await self._toolbox_call(
            base, "DELETE", "/files", "delete file", params={"path": path, "recursive": "true"}
        )

    @_starting
    async def _git_clone(
        self, workspace: Workspace, url: str, branch: str | None, path: str
    ) -> None:
        base = await self._toolbox_base(workspace.id)
        clean_url, username, password = split_credentials(url)
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

    @_starting
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
                GitFileStatus(path=f.name, status=git_state(f.staging, f.worktree))
                for f in status.file_status
            ),
        )

    async def _snapshot(self, workspace: Workspace, name: str | None) -> Snapshot:
        snapshot_name = name or f"{_SNAPSHOT_PREFIX}{workspace.id[:12]}-{uuid.uuid4().hex[:8]}"
        await self._sandbox_call(
            "POST", workspace.id, "/snapshot", "snapshot sandbox", json={"name": snapshot_name}
        )
        await self._wait_state(
            workspace.id,
            None,
            "snapshot",
            leaving="snapshotting",
            timeout=self.config.snapshot_timeout,
        )
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
            # Servers before sourceSandboxId (v0.190) still show ours by their name.
            result += [
                self._snapshot_model(dto, dto.source_sandbox_id or "")
                for dto in listing.items
                if dto.source_sandbox_id or dto.name.startswith(_SNAPSHOT_PREFIX)
            ]
            if page >= listing.total_pages or not listing.items:
                return result
            page += 1

    async def _delete_snapshot(self, snapshot_id: str) -> None:
        """Daytona deletes snapshots by id only (``ParseUUIDPipe``): a name is resolved first."""
        target: str | None = snapshot_id if _is_uuid(snapshot_id) else None
        if target is None:
            dto = await self._find_snapshot(snapshot_id)
            target = dto.id if dto is not None else None
        if target is None:
            raise SnapshotNotFound(snapshot_id)
        reply = await self._http.request(
            "DELETE",
            self._http.api(f"/snapshots/{seg(target)}"),
            "delete snapshot",
            ok=(404,),
        )
        if reply.status_code == 404:
            raise SnapshotNotFound(snapshot_id)

    @_starting
    async def _metrics(self, workspace: Workspace) -> WorkspaceMetrics:
        base = await self._toolbox_base(workspace.id)
        system, figures = await asyncio.gather(
            self._system_metrics(base), self._cgroup_figures(base)
        )
        if system is None:  # an older daemon: Daytona's own figures are unknown, not zero
            system = SystemMetricsWire(diskUsed=await self._disk_used(base))
        return DaytonaMetrics(
            workspace_id=workspace.id,
            collected_at=parse_time(system.timestamp) if system.timestamp else datetime.now(UTC),
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

    async def _system_metrics(self, base: str) -> SystemMetricsWire | None:
        """``GET /system/metrics``; None from a daemon that predates it (404)."""
        try:
            reply = await self._toolbox_call(base, "GET", "/system/metrics", "get system metrics")
        except ProviderAPIError as exc:
            if is_not_found(exc):
                log.debug("the daemon has no /system/metrics (older than the endpoint)")
                return None
            raise
        return SystemMetricsWire.model_validate_json(reply.content)

    async def _disk_used(self, base: str) -> int | None:
        """Bytes used on the work dir's filesystem (``df``), or None when unreadable."""
        reply = await self._shell(base, "df -Pk . 2>/dev/null", "read disk usage", timeout=10)
        lines = reply.result.strip().splitlines()
        fields = lines[-1].split() if len(lines) > 1 else []
        if len(fields) >= 3 and fields[2].isdigit():
            return int(fields[2]) * 1024
        return None

    async def _estimate_cost(self, duration: float, resources: Resources) -> CostEstimate:
        cpu, memory, disk = allocation(resources)
        rates = self.config.pricing
        breakdown = {
            "cpu": cpu * rates.cpu_per_second * duration,
            "memory": memory * rates.memory_gib_per_second * duration,
            "disk": max(0.0, disk - rates.free_disk_gib) * rates.disk_gib_per_second * duration,
        }
        return CostEstimate(
            total=sum(breakdown.values()),
            currency=rates.currency,
            breakdown=breakdown,
            duration=duration,
        )

    async def _aclose(self) -> None:
        await self._deletes.wait()
        await self._http.aclose()

    def _rebind(self) -> None:
        # the old client's connections belong to a dead event loop
        self._http = DaytonaHTTP(self.config, self._transport)

    # ------------------------------------------------------------------ helpers: sandboxes

    def _sandbox_url(self, workspace_id: str, suffix: str = "") -> str:
        return self._http.api(f"/sandbox/{seg(workspace_id)}{suffix}")

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
            page = sandbox_page(reply.json())
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
        timeout: float | None = None,
    ) -> SandboxWire:
        """Poll ``GET /sandbox/{id}`` until the state is in ``targets`` (or not ``leaving``)."""
        limit = timeout or self.config.create_timeout
        deadline = time.monotonic() + limit
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
                    f"sandbox {workspace_id} did not {action} within {limit:g}s (state {state})",
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
            **network_fields(spec.network),
        }
        if persistent:
            # explicit: the server's default (15 min) may differ per deployment; a run on a
            # stopped workspace starts it again (``_starting``)
            body["autoStopInterval"] = self.config.persistent_auto_stop_minutes
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
            cpu, memory, disk = allocation(spec.resources, defaults=False)
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
        cpu, memory, disk = allocation(wanted, defaults=False)
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

        Names such as ``daytonaio/sandbox:0.6.0`` hold a ``/``, which not every server
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
        deadline = time.monotonic() + self.config.snapshot_timeout
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
                    f"snapshot {name!r} was not ready within {self.config.snapshot_timeout:g}s",
                    provider=self.name,
                )
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    def _snapshot_model(self, dto: SnapshotWire, workspace_id: str) -> Snapshot:
        return Snapshot(
            id=dto.id,
            provider=self.name,
            workspace_id=dto.source_sandbox_id or workspace_id,
            created_at=parse_time(dto.created_at),
            size=int((dto.size or 0) * _GIB),
            name=dto.name,
        )

    def _workspace(self, sandbox: SandboxWire) -> Workspace:
        labels = dict(sandbox.labels)
        workspace = Workspace(
            id=sandbox.id,
            provider=self.name,
            name=sandbox.name or None,
            template=sandbox.snapshot,
            persistent=labels.get(LABEL_PERSISTENT, "true") != "false",
            created_at=parse_time(sandbox.created_at),
            state=sandbox.state or "unknown",
            resources=requested(sandbox),
            network=network_of(sandbox),
            labels=labels,
        )
        if workspace.state in ("destroyed", "destroying"):
            self._known.pop(workspace.id, None)
        else:
            self._known[workspace.id] = workspace
        return workspace

    def _cost(self, duration: float, resources: Resources) -> float:
        cpu, memory, disk = allocation(resources)
        rates = self.config.pricing
        return duration * (
            cpu * rates.cpu_per_second
            + memory * rates.memory_gib_per_second
            + max(0.0, disk - rates.free_disk_gib) * rates.disk_gib_per_second
        )

    # ------------------------------------------------------------------ helpers: toolbox

    async def _toolbox_call(
        self, base: str, method: str, path: str, what: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            return await self._http.request(method, f"{base}{path}", what, **kwargs)
        except ProviderAPIError as exc:
            if is_not_found(exc) and path.startswith("/files"):
                said = exc.message  # already "<what>: ..." when the mapping named it
                raise FileNotFoundError(
                    said if said.startswith(what) else f"{what}: {said}"
                ) from None
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
                detail = part_error(part.data)
                if "NOT_FOUND" in detail or "not found" in detail.lower():
                    raise FileNotFoundError(f"{part.filename}: {detail}")
                if "not a directory" in detail.lower():  # a path under a file
                    raise NotADirectoryError(f"{part.filename}: {detail}")
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

    async def _cgroup_figures(self, base: str) -> ResourceUsage:
        script = CGROUP_SCRIPT
        reply = await self._shell(base, script, "read cgroup accounting", timeout=10)
        figures = parse_cgroup(reply.result)
        if figures is None:
            raise ProviderAPIError(
                "get metrics: the sandbox exposes no cgroup accounting (/sys/fs/cgroup, v2 or v1)",
                provider=self.name,
            )
        return figures
