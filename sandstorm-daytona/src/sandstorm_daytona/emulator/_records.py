"""What the emulator stores per sandbox and snapshot, and how each renders as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ._errors import iso

__all__ = ["SandboxRecord", "SnapshotRecord"]

# the list item omits these keys of the full Sandbox (PROTOCOL.md §4.1)
_NOT_IN_LIST = (
    "env",
    "kvm",
    "volumes",
    "buildInfo",
    "backupCreatedAt",
    "outboundProxyUrl",
    "otelEndpointOverride",
    "linkedSandboxId",
)


@dataclass
class SandboxRecord:
    """One Daytona sandbox and the engine workspace behind it."""

    id: str
    organization_id: str
    name: str
    snapshot: str
    user: str
    target: str
    cpu: int
    gpu: int
    memory: int
    disk: int
    created_at: datetime
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    public: bool = False
    network_block_all: bool = False
    network_allow_list: str | None = None
    domain_allow_list: str | None = None
    outbound_proxy_url: str | None = None
    otel_endpoint_override: str | None = None
    kvm: bool = False
    spot: bool = False
    gpu_type: str | None = None
    state: str = "creating"
    desired_state: str = "started"
    error_reason: str | None = None
    recoverable: bool | None = None
    backup_state: str = "None"
    auto_stop_interval: int = 15
    auto_pause_interval: int = 0
    auto_archive_interval: int = 7 * 24 * 60
    auto_delete_interval: int = -1
    auto_destroy_at: datetime | None = None
    queue_timeout: int | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    build_info: dict[str, Any] | None = None
    linked_sandbox_id: str | None = None
    secrets: list[dict[str, str]] = field(default_factory=list)
    updated_at: datetime | None = None
    last_activity_at: datetime | None = None
    # emulator-side bookkeeping, never rendered
    workspace_id: str | None = None
    archive_snapshot_id: str | None = None
    parent_id: str | None = None
    stopped_at: datetime | None = None
    transition_until: datetime | None = None
    transition_to: str | None = None

    def touch(self, now: datetime) -> None:
        """Record activity (resets the auto-stop countdown)."""
        self.updated_at = now
        self.last_activity_at = now

    def to_json(self, toolbox_proxy_url: str, *, list_item: bool = False) -> dict[str, Any]:
        """The camelCase Sandbox JSON; ``list_item`` gives the SandboxListItem shape."""
        body: dict[str, Any] = {
            "id": self.id,
            "organizationId": self.organization_id,
            "name": self.name,
            "snapshot": self.snapshot,
            "user": self.user,
            "env": dict(self.env),
            "labels": dict(self.labels),
            "public": self.public,
            "networkBlockAll": self.network_block_all,
            "kvm": self.kvm,
            "target": self.target,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "spot": self.spot,
            "memory": self.memory,
            "disk": self.disk,
            "state": self.state,
            "desiredState": self.desired_state,
            "backupState": self.backup_state,
            "autoStopInterval": self.auto_stop_interval,
            "autoPauseInterval": self.auto_pause_interval,
            "autoArchiveInterval": self.auto_archive_interval,
            "autoDeleteInterval": self.auto_delete_interval,
            "volumes": [dict(v) for v in self.volumes],
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at or self.created_at),
            "lastActivityAt": iso(self.last_activity_at or self.created_at),
            "sandboxClass": "container",
            "daemonVersion": "sandstorm-emulator",
            "runnerId": "sandstorm-local",
            "toolboxProxyUrl": toolbox_proxy_url,
        }
        optional = {
            "networkAllowList": self.network_allow_list,
            "domainAllowList": self.domain_allow_list,
            "outboundProxyUrl": self.outbound_proxy_url,
            "otelEndpointOverride": self.otel_endpoint_override,
            "gpuType": self.gpu_type,
            "errorReason": self.error_reason,
            "recoverable": self.recoverable,
            "autoDestroyAt": iso(self.auto_destroy_at) if self.auto_destroy_at else None,
            "queueTimeout": self.queue_timeout,
            "buildInfo": self.build_info,
            "linkedSandboxId": self.linked_sandbox_id,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if list_item:
            for key in _NOT_IN_LIST:
                body.pop(key, None)
        return body


@dataclass
class SnapshotRecord:
    """A Daytona snapshot (a reusable sandbox template) and what backs it in the engine.

    ``engine_snapshot_id`` is a captured workspace (from ``POST /sandbox/{id}/snapshot``);
    ``template`` names an engine template; with neither, sandboxes start empty.
    """

    id: str
    organization_id: str | None
    name: str
    created_at: datetime
    image_name: str | None = None
    general: bool = False
    state: str = "active"
    size: float | None = None
    entrypoint: list[str] | None = None
    cpu: int = 1
    gpu: int = 0
    mem: int = 1
    disk: int = 3
    error_reason: str | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None
    source_sandbox_id: str | None = None
    build_info: dict[str, Any] | None = None
    region_ids: list[str] = field(default_factory=list)
    engine_snapshot_id: str | None = None
    template: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The camelCase SnapshotDto JSON."""
        body: dict[str, Any] = {
            "id": self.id,
            "general": self.general,
            "name": self.name,
            "state": self.state,
            "size": self.size,
            "entrypoint": self.entrypoint,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "mem": self.mem,
            "disk": self.disk,
            "errorReason": self.error_reason,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at or self.created_at),
            "lastUsedAt": iso(self.last_used_at) if self.last_used_at else None,
            "regionIds": list(self.region_ids),
            "sandboxClass": "container",
        }
        optional = {
            "organizationId": self.organization_id,
            "imageName": self.image_name,
            "sourceSandboxId": self.source_sandbox_id,
            "buildInfo": self.build_info,
            "ref": self.engine_snapshot_id or self.template or self.image_name,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body


def minutes(value: float) -> timedelta:
    """``value`` minutes as a timedelta."""
    return timedelta(minutes=value)
