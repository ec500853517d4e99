"""The main (control-plane) API under ``{api_prefix}``: sandboxes, snapshots, config."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._errors import ApiError, iso
from ._preview import api_routes as preview_api_routes
from ._records import SandboxRecord
from ._state import Emulator, check_allow_lists
from ._wire import (
    INT32_MAX,
    CreateSandbox,
    CreateSandboxSnapshot,
    CreateSnapshot,
    ForkSandbox,
    NetworkSettings,
    ResizeSandbox,
    UpdateLabels,
    loads,
    parse,
)

__all__ = ["main_routes", "toolbox_base_url"]

SORT_FIELDS: dict[str, Callable[[SandboxRecord], Any]] = {
    "name": lambda r: r.name,
    "cpu": lambda r: r.cpu,
    "memoryGib": lambda r: r.memory,
    "diskGib": lambda r: r.disk,
    "lastActivityAt": lambda r: r.last_activity_at or r.created_at,
    "createdAt": lambda r: r.created_at,
}


def _emulator(request: Request) -> Emulator:
    emulator: Emulator = request.app.state.emulator
    return emulator


def base_url(request: Request) -> str:
    """Where clients reach this server: the configured public URL or the request's own."""
    configured = _emulator(request).config.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def toolbox_base_url(request: Request) -> str:
    """The ``toolboxProxyUrl`` every sandbox JSON carries."""
    return base_url(request) + "/toolbox"


def sandbox_json(
    request: Request, record: SandboxRecord, *, list_item: bool = False
) -> dict[str, Any]:
    """``record`` as wire JSON for this request."""
    return record.to_json(toolbox_base_url(request), list_item=list_item)


async def _body(request: Request, model: Any) -> Any:
    raw = await request.body()
    try:
        data = loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "Unexpected token in JSON body") from None
    try:
        return parse(model, data)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def _org(request: Request) -> str:
    org: str = request.state.org
    return org


def _sandbox(request: Request) -> SandboxRecord:
    return _emulator(request).find(_org(request), request.path_params["sandbox"])


def _reply(request: Request, record: SandboxRecord) -> JSONResponse:
    return JSONResponse(sandbox_json(request, record))


# ---------------------------------------------------------------------------- sandboxes


async def create_sandbox(request: Request) -> Response:
    """``POST /sandbox`` -> 200 Sandbox (already ``started`` unless a delay is configured)."""
    emulator = _emulator(request)
    body = await _body(request, CreateSandbox)
    record = await emulator.create_sandbox(_org(request), body)
    return _reply(request, record)


async def get_sandbox(request: Request) -> Response:
    """``GET /sandbox/{idOrName}``."""
    return _reply(request, _sandbox(request))


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer number") from None


def _date_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be a valid ISO 8601 date string") from None


def _bool_param(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ApiError(400, f"{name} must be a boolean value")
    return value == "true"


async def list_sandboxes(request: Request) -> Response:
    """``GET /sandbox``: filters, sort and an opaque cursor (``nextCursor``)."""
    emulator = _emulator(request)
    params = request.query_params
    items = emulator.visible(_org(request))
    labels_raw = params.get("labels")
    if labels_raw:
        try:
            labels = loads(labels_raw)
        except ValueError:
            raise ApiError(400, "labels must be a valid JSON object string") from None
        if not isinstance(labels, dict):
            raise ApiError(400, "labels must be a valid JSON object string")
        items = [r for r in items if all(r.labels.get(k) == v for k, v in labels.items())]
    if params.get("id"):
        items = [r for r in items if r.id.lower().startswith(params["id"].lower())]
    if params.get("name"):
        items = [r for r in items if r.name.lower().startswith(params["name"].lower())]
    for key, attr in (("states", "state"), ("snapshots", "snapshot"), ("regionIds", "target")):
        wanted = [v for value in params.getlist(key) for v in value.split(",") if v]
        if wanted:
            items = [r for r in items if getattr(r, attr) in wanted]
    classes = [v for value in params.getlist("sandboxClasses") for v in value.split(",") if v]
    if classes:
        items = [r for r in items if "container" in classes]
    for low, high, attr in (
        ("minCpu", "maxCpu", "cpu"),
        ("minMemoryGiB", "maxMemoryGiB", "memory"),
        ("minDiskGiB", "maxDiskGiB", "disk"),
        ("minGpu", "maxGpu", "gpu"),
    ):
        lo, hi = _int_param(request, low), _int_param(request, high)
        if lo is not None:
            items = [r for r in items if getattr(r, attr) >= lo]
        if hi is not None:
            items = [r for r in items if getattr(r, attr) <= hi]
    public = _bool_param(request, "isPublic")
    if public is not None:
        items = [r for r in items if r.public == public]
    recoverable = _bool_param(request, "isRecoverable")
    if recoverable is not None:
        items = [r for r in items if bool(r.recoverable) == recoverable]
    date_filters: list[tuple[str, str, Callable[[SandboxRecord], datetime | None]]] = [
        ("createdAtAfter", "createdAtBefore", lambda r: r.created_at),
        ("lastEventAfter", "lastEventBefore", lambda r: r.last_activity_at or r.created_at),
        ("autoDestroyAtAfter", "autoDestroyAtBefore", lambda r: r.auto_destroy_at),
    ]
    for after, before, getter in date_filters:
        lo_d, hi_d = _date_param(request, after), _date_param(request, before)
        if lo_d is not None:
            items = [r for r in items if (at := getter(r)) is not None and at >= lo_d]
        if hi_d is not None:
            items = [r for r in items if (at := getter(r)) is not None and at <= hi_d]
    sort = params.get("sort") or "createdAt"
    if sort not in SORT_FIELDS:
        raise ApiError(400, f"sort must be one of the following values: {', '.join(SORT_FIELDS)}")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be one of the following values: asc, desc")
    items.sort(key=lambda r: (SORT_FIELDS[sort](r), r.id), reverse=order == "desc")

    limit = _int_param(request, "limit") or 100
    if not 1 <= limit <= 200:
        raise ApiError(400, "limit must not be greater than 200")
    offset = 0
    cursor = params.get("cursor")
    if cursor:
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except ValueError:
            raise ApiError(400, "Invalid cursor") from None
    page = items[offset : offset + limit]
    next_offset = offset + limit
    next_cursor = (
        base64.urlsafe_b64encode(str(next_offset).encode()).decode()
        if next_offset < len(items)
        else None
    )
    return JSONResponse(
        {
            "items": [sandbox_json(request, r, list_item=True) for r in page],
            "nextCursor": next_cursor,
        }
    )


async def delete_sandbox(request: Request) -> Response:
    """``DELETE /sandbox/{idOrName}`` -> 200 Sandbox in ``destroying``/``destroyed``."""
    emulator = _emulator(request)
    record = _sandbox(request)
    await emulator.destroy_sandbox(record)
    body = sandbox_json(request, record)
    if record.state == "destroyed":
        body["state"] = "destroying"
    return JSONResponse(body)


async def start_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/start``."""
    record = _sandbox(request)
    await _emulator(request).start_sandbox(record)
    return _reply(request, record)


async def stop_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/stop?force=``."""
    record = _sandbox(request)
    await _emulator(request).stop_sandbox(record)
    return _reply(request, record)


async def archive_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/archive``."""
    record = _sandbox(request)
    await _emulator(request).archive_sandbox(record)
    return _reply(request, record)


async def pause_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/pause``."""
    record = _sandbox(request)
    await _emulator(request).pause_sandbox(record)
    return _reply(request, record)


async def recover_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/recover``: nothing here ever errors, so 400 like the service."""
    record = _sandbox(request)
    if record.state != "error":
        raise ApiError(400, "Sandbox is not in error state")
    return _reply(request, record)


async def resize_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/resize``: cpu/memory while stopped, disk only grows."""
    emulator = _emulator(request)
    record = _sandbox(request)
    body = await _body(request, ResizeSandbox)
    if body.disk is not None and body.disk < record.disk:
        raise ApiError(400, "Disk size can only be increased")
    if record.state not in ("started", "stopped"):
        raise ApiError(400, "Sandbox must be started or stopped to be resized")
    if record.state == "started":
        if body.disk is not None and body.disk != record.disk:
            raise ApiError(400, "Disk resize requires a stopped sandbox")
        if (body.cpu is not None and body.cpu < record.cpu) or (
            body.memory is not None and body.memory < record.memory
        ):
            raise ApiError(400, "Hot resize only allows increasing CPU and memory")
    cpu = body.cpu or record.cpu
    memory = body.memory or record.memory
    disk = body.disk or record.disk
    emulator.check_quotas(record.organization_id, cpu, memory, disk, exclude=record.id)
    record.cpu, record.memory, record.disk = cpu, memory, disk
    record.touch(emulator.clock.now())
    return _reply(request, record)


async def replace_labels(request: Request) -> Response:
    """``PUT /sandbox/{idOrName}/labels`` -> ``{labels}``."""
    record = _sandbox(request)
    body = await _body(request, UpdateLabels)
    record.labels = dict(body.labels)
    record.updated_at = _emulator(request).clock.now()
    return JSONResponse({"labels": record.labels})


def _minutes(request: Request) -> int:
    raw = request.path_params["minutes"]
    try:
        minutes = int(raw)
    except ValueError:
        raise ApiError(400, "Validation failed (numeric string is expected)") from None
    if not -INT32_MAX - 1 <= minutes <= INT32_MAX:
        # the service stores it in an ``integer`` column (sandbox.entity.ts)
        raise ApiError(400, f"{raw} is out of range for an integer number of minutes")
    return minutes


async def set_autostop(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/autostop/{minutes}`` (0 disables)."""
    record = _sandbox(request)
    minutes = _minutes(request)
    if minutes < 0:
        raise ApiError(400, "Auto-stop interval must be non-negative")
    record.auto_stop_interval = minutes
    record.touch(_emulator(request).clock.now())
    return _reply(request, record)


async def set_autoarchive(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/autoarchive/{minutes}`` (0 means the maximum)."""
    record = _sandbox(request)
    record.auto_archive_interval = _emulator(request).archive_interval(_minutes(request))
    return _reply(request, record)


async def set_autodelete(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/autodelete/{minutes}`` (negative disables)."""
    record = _sandbox(request)
    record.auto_delete_interval = _minutes(request)
    return _reply(request, record)


async def set_autopause(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/autopause/{minutes}`` (0 disables)."""
    record = _sandbox(request)
    minutes = _minutes(request)
    if minutes < 0:
        raise ApiError(400, "Auto-pause interval must be non-negative")
    record.auto_pause_interval = minutes
    return _reply(request, record)


async def set_ttl(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/ttl/{minutes}``: destroyed that many minutes from now."""
    from datetime import timedelta

    record = _sandbox(request)
    minutes = _minutes(request)
    if minutes < 0:
        raise ApiError(400, "TTL must be non-negative")
    now = _emulator(request).clock.now()
    record.auto_destroy_at = now + timedelta(minutes=minutes) if minutes else None
    return _reply(request, record)


async def set_public(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/public/{isPublic}``."""
    record = _sandbox(request)
    value = request.path_params["is_public"]
    if value not in ("true", "false"):
        raise ApiError(400, "Validation failed (boolean string is expected)")
    record.public = value == "true"
    return _reply(request, record)


async def network_settings(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/network-settings`` (recorded; applies on next create)."""
    record = _sandbox(request)
    body = await _body(request, NetworkSettings)
    check_allow_lists(body.networkAllowList, body.domainAllowList)
    if body.networkBlockAll is not None:
        record.network_block_all = body.networkBlockAll
    if body.networkAllowList is not None:
        record.network_allow_list = body.networkAllowList
    if body.domainAllowList is not None:
        record.domain_allow_list = body.domainAllowList
    return _reply(request, record)


async def update_secrets(request: Request) -> Response:
    """``PUT /sandbox/{idOrName}/secrets``."""
    record = _sandbox(request)
    raw = await request.body()
    try:
        data = loads(raw) if raw else {}
    except ValueError:
        raise ApiError(400, "Unexpected token in JSON body") from None
    secrets = data.get("secrets") if isinstance(data, dict) else None
    if not isinstance(secrets, list):
        raise ApiError(400, "secrets must be an array")
    record.secrets = [dict(s) for s in secrets if isinstance(s, dict)]
    return _reply(request, record)


async def snapshot_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/snapshot``: capture the files as a named snapshot."""
    record = _sandbox(request)
    body = await _body(request, CreateSandboxSnapshot)
    await _emulator(request).snapshot_sandbox(record, body.name)
    return _reply(request, record)


async def fork_sandbox(request: Request) -> Response:
    """``POST /sandbox/{idOrName}/fork`` -> the new Sandbox."""
    record = _sandbox(request)
    body = await _body(request, ForkSandbox)
    fork = await _emulator(request).fork_sandbox(record, body.name)
    return _reply(request, fork)


async def sandbox_parent(request: Request) -> Response:
    """``GET /sandbox/{idOrName}/parent``."""
    record = _sandbox(request)
    if record.parent_id is None:
        raise ApiError(404, f"Sandbox {record.id} has no parent")
    parent = _emulator(request).find(_org(request), record.parent_id)
    return _reply(request, parent)


async def sandbox_forks(request: Request) -> Response:
    """``GET /sandbox/{idOrName}/forks``."""
    record = _sandbox(request)
    forks = [r for r in _emulator(request).visible(_org(request)) if r.parent_id == record.id]
    return JSONResponse([sandbox_json(request, r) for r in forks])


async def toolbox_proxy_url(request: Request) -> Response:
    """``GET /sandbox/{id}/toolbox-proxy-url`` -> ``{url}``."""
    _sandbox(request)
    return JSONResponse({"url": toolbox_base_url(request)})


async def last_activity(request: Request) -> Response:
    """``POST /sandbox/{id}/last-activity`` -> 201."""
    record = _sandbox(request)
    record.touch(_emulator(request).clock.now())
    return Response(status_code=201)


TELEMETRY_FIELDS = {
    "daytona.sandbox.cpu.utilization": "cpu_used_pct",
    "daytona.sandbox.cpu.limit": "cpu_count",
    "daytona.sandbox.memory.usage": "mem_used",
    "daytona.sandbox.memory.limit": "mem_total",
    "daytona.sandbox.filesystem.usage": "disk_used",
    "daytona.sandbox.filesystem.total": "disk_total",
}
"""The metric names of sandbox telemetry and the sample field each one reads."""


async def telemetry_series(request: Request, record: Any) -> list[tuple[str, list[Any]]]:
    """The readings of ``record`` between the ``from`` and ``to`` query parameters, per
    metric named in ``metricNames`` (repeated or comma-separated; all when absent)."""
    emulator = _emulator(request)
    fresh = None
    if record.state == "started" and record.workspace_id is not None:
        fresh = await emulator.sample(record)
    start = _date_param(request, "from")
    end = _date_param(request, "to")
    if fresh is not None and end is not None and fresh.at - end < timedelta(minutes=1):
        end = max(end, fresh.at)  # "to" meant "now": the reading taken for this request counts
    names = [
        v for value in request.query_params.getlist("metricNames") for v in value.split(",") if v
    ]
    samples = [
        s
        for s in emulator.history(record)
        if (start is None or s.at >= start) and (end is None or s.at <= end)
    ]
    return [
        (name, [(s.at, getattr(s, field)) for s in samples])
        for name, field in TELEMETRY_FIELDS.items()
        if not names or name in names
    ]


async def telemetry_metrics(request: Request) -> Response:
    """``GET /sandbox/{id}/telemetry/metrics``: readings from the engine, as series.

    403 while the emulator serves an Analytics API, as the service's
    ``AnalyticsApiDisabledGuard`` does (``apps/api/src/sandbox-telemetry/guards``).
    """
    if _emulator(request).config.analytics_api:
        raise ApiError(403, "Telemetry endpoints are disabled when Analytics API is configured")
    series = await telemetry_series(request, _sandbox(request))
    return JSONResponse(
        {
            "series": [
                {
                    "metricName": name,
                    "dataPoints": [{"timestamp": iso(at), "value": value} for at, value in points],
                }
                for name, points in series
            ]
        }
    )


async def analytics_metrics(request: Request) -> Response:
    """Analytics API ``GET /organization/{org}/sandbox/{id}/telemetry/metrics``: a flat
    list of ``{metricName, timestamp, value}`` (``daytona_analytics_api_client``)."""
    emulator = _emulator(request)
    if not emulator.config.analytics_api:
        raise ApiError(404, f"Cannot GET {request.url.path}")
    if request.path_params["organization"] != _org(request):
        raise ApiError(403, "Request organization ID does not match resource organization ID")
    record = emulator.find(_org(request), request.path_params["sandbox"])
    series = await telemetry_series(request, record)
    return JSONResponse(
        [
            {"metricName": name, "timestamp": iso(at), "value": value}
            for name, points in series
            for at, value in points
        ]
    )


def analytics_routes() -> list[Route]:
    """The Analytics API the emulator serves under ``/analytics`` (see ``analytics_api``)."""
    return [
        Route(
            "/analytics/organization/{organization}/sandbox/{sandbox}/telemetry/metrics",
            analytics_metrics,
            methods=["GET"],
        )
    ]


# ---------------------------------------------------------------------------- snapshots


async def create_snapshot(request: Request) -> Response:
    """``POST /snapshots`` -> SnapshotDto (``active``)."""
    emulator = _emulator(request)
    body = await _body(request, CreateSnapshot)
    snap = await emulator.create_snapshot(_org(request), body)
    return JSONResponse(snap.to_json())


async def list_snapshots(request: Request) -> Response:
    """``GET /snapshots?page=&limit=&name=&sourceSandboxId=`` (page-based)."""
    emulator = _emulator(request)
    emulator.ensure_default_snapshot()
    items = emulator.org_snapshots(_org(request))
    name = request.query_params.get("name")
    if name:
        items = [s for s in items if name.lower() in s.name.lower()]
    source = request.query_params.get("sourceSandboxId")
    if source:
        items = [s for s in items if s.source_sandbox_id == source]
    page = _int_param(request, "page") or 1
    limit = _int_param(request, "limit") or 100
    if page < 1 or not 1 <= limit <= 200:
        raise ApiError(400, "page must be >= 1 and limit between 1 and 200")
    chunk = items[(page - 1) * limit : page * limit]
    return JSONResponse(
        {
            "items": [s.to_json() for s in chunk],
            "total": len(items),
            "page": page,
            "totalPages": -(-len(items) // limit),
        }
    )


def _snapshot(request: Request) -> Any:
    emulator = _emulator(request)
    emulator.ensure_default_snapshot()
    key = request.path_params["snapshot"]
    snap = emulator.find_snapshot(_org(request), key)
    if snap is None:
        raise ApiError(404, f"Snapshot with ID or name {key} not found")
    return snap


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _snapshot_by_uuid(request: Request) -> Any:
    """The snapshot of a route that takes its id only: the access guard finds it by id or
    name (404 otherwise), then ``ParseUUIDPipe`` refuses anything but a UUID (400).
    Upstream: ``apps/api/src/sandbox/controllers/snapshot.controller.ts`` and
    ``apps/api/src/sandbox/guards/snapshot-access.guard.ts``."""
    snap = _snapshot(request)
    if not _UUID.fullmatch(request.path_params["snapshot"]):
        raise ApiError(400, "Validation failed (uuid is expected)")
    return snap


async def get_snapshot(request: Request) -> Response:
    """``GET /snapshots/{idOrName}``."""
    return JSONResponse(_snapshot(request).to_json())


async def delete_snapshot(request: Request) -> Response:
    """``DELETE /snapshots/{id}`` -> 200."""
    snap = _snapshot_by_uuid(request)
    if snap.general:
        raise ApiError(403, "Cannot delete a general snapshot")
    await _emulator(request).delete_snapshot(_org(request), snap.id)
    return Response(status_code=200)


async def snapshot_activation(request: Request) -> Response:
    """``POST /snapshots/{id}/activate`` -> 200 SnapshotDto, ``/deactivate`` -> 204 (as
    ``deactivateSnapshot`` in the API's OpenAPI document)."""
    snap = _snapshot_by_uuid(request)
    if snap.general:
        raise ApiError(403, "Cannot change a general snapshot")
    activate = request.url.path.endswith("/activate")
    snap.state = "active" if activate else "inactive"
    snap.updated_at = _emulator(request).clock.now()
    return JSONResponse(snap.to_json()) if activate else Response(status_code=204)


# ---------------------------------------------------------------------------- config


async def config(request: Request) -> Response:
    """``GET /config``: the DaytonaConfiguration the SDK reads; ``analyticsApiUrl`` names
    the emulator's own Analytics API when ``analytics_api`` is on."""
    from . import DAEMON_VERSION

    emulator = _emulator(request)
    toolbox = toolbox_base_url(request)
    return JSONResponse(
        {
            "version": DAEMON_VERSION,
            "oidc": {"issuer": "", "clientId": "", "audience": "", "provider": "none"},
            "linkedAccountsEnabled": False,
            "announcements": {},
            "proxyTemplateUrl": base_url(request) + "/preview/{{PORT}}-{{sandboxId}}",
            "proxyToolboxUrl": toolbox,
            "defaultSnapshot": emulator.config.default_snapshot,
            "dashboardUrl": base_url(request),
            "maxAutoArchiveInterval": emulator.config.max_auto_archive_interval,
            "maintananceMode": False,
            "environment": "emulator",
            **(
                {"analyticsApiUrl": base_url(request) + "/analytics"}
                if emulator.config.analytics_api
                else {}
            ),
        }
    )


async def regions(request: Request) -> Response:
    """``GET /regions`` and ``/shared-regions``."""
    emulator = _emulator(request)
    now = iso(emulator.clock.now())
    return JSONResponse(
        [
            {
                "id": region,
                "name": region,
                "regionType": "shared",
                "createdAt": now,
                "updatedAt": now,
                "proxyUrl": base_url(request),
            }
            for region in emulator.config.regions
        ]
    )


async def health(request: Request) -> Response:
    """``GET /health`` and ``/health/ready`` (no auth)."""
    return JSONResponse({"status": "ok", "info": {}, "error": {}, "details": {}})


def main_routes(prefix: str) -> list[BaseRoute]:
    """The main API's routes under ``prefix`` (e.g. ``/api``)."""
    sb = prefix + "/sandbox/{sandbox}"
    table: list[tuple[str, str, Any]] = [
        ("POST", "/sandbox", create_sandbox),
        ("GET", "/sandbox", list_sandboxes),
        ("GET", "/sandbox/{sandbox}", get_sandbox),
        ("DELETE", "/sandbox/{sandbox}", delete_sandbox),
        ("POST", "/sandbox/{sandbox}/start", start_sandbox),
        ("POST", "/sandbox/{sandbox}/stop", stop_sandbox),
        ("POST", "/sandbox/{sandbox}/archive", archive_sandbox),
        ("POST", "/sandbox/{sandbox}/pause", pause_sandbox),
        ("POST", "/sandbox/{sandbox}/recover", recover_sandbox),
        ("POST", "/sandbox/{sandbox}/resize", resize_sandbox),
        ("PUT", "/sandbox/{sandbox}/labels", replace_labels),
        ("POST", "/sandbox/{sandbox}/autostop/{minutes}", set_autostop),
        ("POST", "/sandbox/{sandbox}/autoarchive/{minutes}", set_autoarchive),
        ("POST", "/sandbox/{sandbox}/autodelete/{minutes}", set_autodelete),
        ("POST", "/sandbox/{sandbox}/autopause/{minutes}", set_autopause),
        ("POST", "/sandbox/{sandbox}/ttl/{minutes}", set_ttl),
        ("POST", "/sandbox/{sandbox}/public/{is_public}", set_public),
        ("POST", "/sandbox/{sandbox}/network-settings", network_settings),
        ("PUT", "/sandbox/{sandbox}/secrets", update_secrets),
        ("POST", "/sandbox/{sandbox}/snapshot", snapshot_sandbox),
        ("POST", "/sandbox/{sandbox}/fork", fork_sandbox),
        ("GET", "/sandbox/{sandbox}/parent", sandbox_parent),
        ("GET", "/sandbox/{sandbox}/forks", sandbox_forks),
        ("GET", "/sandbox/{sandbox}/toolbox-proxy-url", toolbox_proxy_url),
        ("POST", "/sandbox/{sandbox}/last-activity", last_activity),
        ("GET", "/sandbox/{sandbox}/telemetry/metrics", telemetry_metrics),
        ("POST", "/snapshots", create_snapshot),
        ("GET", "/snapshots", list_snapshots),
        # names such as ``daytonaio/sandbox:emulator`` hold a slash: the SDK sends it
        # percent-encoded (%2F), which the server decodes before routing
        ("GET", "/snapshots/{snapshot:path}", get_snapshot),
        ("DELETE", "/snapshots/{snapshot:path}", delete_snapshot),
        ("POST", "/snapshots/{snapshot:path}/activate", snapshot_activation),
        ("POST", "/snapshots/{snapshot:path}/deactivate", snapshot_activation),
        ("GET", "/config", config),
        ("GET", "/regions", regions),
        ("GET", "/shared-regions", regions),
        ("GET", "/health", health),
        ("GET", "/health/ready", health),
    ]
    _ = sb
    routes: list[BaseRoute] = [
        Route(prefix + path, handler, methods=[method]) for method, path, handler in table
    ]
    return routes + preview_api_routes(prefix)
