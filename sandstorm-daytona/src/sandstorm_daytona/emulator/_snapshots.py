"""The emulator's Daytona snapshots (named templates): registry, creation and deletion.

A Daytona snapshot is backed by a provider snapshot (a captured workspace), a provider
template, or nothing (sandboxes start empty).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sandstorm
from sandstorm import AsyncProvider, Capability

from ._build import plan_build
from ._clock import Clock
from ._config import EmulatorConfig
from ._errors import ApiError, iso
from ._records import SnapshotRecord
from ._wire import CreateSnapshot

__all__ = ["SnapshotRegistry", "build_info"]

log = logging.getLogger("sandstorm_daytona.emulator")


class SnapshotRegistry:
    """The snapshot half of :class:`~sandstorm_daytona.emulator._state.Emulator`."""

    config: EmulatorConfig
    clock: Clock
    snapshots: dict[str, SnapshotRecord]
    _engine_snapshots: set[str]

    if TYPE_CHECKING:

        @property
        def provider(self) -> AsyncProvider: ...

        def _archive_path(self, ref: str) -> Path: ...

    def find_snapshot(self, org: str, id_or_name: str) -> SnapshotRecord | None:
        """The org's (or a general) snapshot by name, then id."""
        for snap in self.snapshots.values():
            if snap.name == id_or_name and (snap.general or snap.organization_id == org):
                return snap
        by_id = self.snapshots.get(id_or_name)
        if by_id is not None and (by_id.general or by_id.organization_id == org):
            return by_id
        return None

    def org_snapshots(self, org: str) -> list[SnapshotRecord]:
        """Snapshots the org can use (its own and the general ones), newest first."""
        items = [s for s in self.snapshots.values() if s.general or s.organization_id == org]
        return sorted(items, key=lambda s: (s.created_at, s.id), reverse=True)

    def ensure_default_snapshot(self) -> None:
        """Register the general default snapshot (an empty workspace) once."""
        name = self.config.default_snapshot
        if any(s.name == name and s.general for s in self.snapshots.values()):
            return
        now = self.clock.now()
        record = SnapshotRecord(
            id=str(uuid.uuid4()),
            organization_id=None,
            name=name,
            created_at=now,
            image_name=name,
            general=True,
            cpu=self.config.default_cpu,
            mem=self.config.default_memory,
            disk=self.config.default_disk,
            region_ids=list(self.config.regions),
        )
        self.snapshots[record.id] = record

    async def create_snapshot(self, org: str, body: CreateSnapshot) -> SnapshotRecord:
        """``POST /snapshots``: a named template.

        ``imageName`` naming an existing snapshot of the org copies what backs it; naming
        an engine template uses that template; anything else gives an empty workspace.
        """
        if any(s.name == body.name and s.organization_id == org for s in self.snapshots.values()):
            raise ApiError(409, f"Snapshot with name {body.name} already exists")
        source = self.find_snapshot(org, body.imageName) if body.imageName else None
        now = self.clock.now()
        record = SnapshotRecord(
            id=str(uuid.uuid4()),
            organization_id=org,
            name=body.name,
            created_at=now,
            image_name=body.imageName,
            entrypoint=body.entrypoint,
            cpu=body.cpu or (source.cpu if source else self.config.default_cpu),
            gpu=body.gpu or 0,
            mem=body.memory or (source.mem if source else self.config.default_memory),
            disk=body.disk or (source.disk if source else self.config.default_disk),
            region_ids=[body.regionId] if body.regionId else list(self.config.regions),
        )
        if body.buildInfo is not None:
            plan_build(body.buildInfo.dockerfileContent)  # 400 for steps it cannot apply
            record.build_info = build_info(body.buildInfo.dockerfileContent, now)
        if source is not None:
            record.engine_snapshot_id = source.engine_snapshot_id
            record.template = source.template
            record.size = source.size
        elif body.imageName and await self._is_template(body.imageName):
            record.template = body.imageName
        self.snapshots[record.id] = record
        return record

    async def _is_template(self, name: str) -> bool:
        """True when the engine has a template called ``name`` (probed by using it)."""
        provider = self.provider
        if Capability.TEMPLATES not in provider.capabilities:
            return False
        try:
            workspace = await provider.create_workspace(template=name, persistent=True)
        except sandstorm.TemplateNotFound:
            return False
        await provider.delete_workspace(workspace)
        return True

    async def delete_snapshot(self, org: str, snapshot_id: str) -> None:
        """``DELETE /snapshots/{id}``; the engine snapshot goes when nothing uses it."""
        snap = self.snapshots.get(snapshot_id)
        if snap is None or snap.organization_id != org:
            raise ApiError(404, f"Snapshot with ID {snapshot_id} not found")
        del self.snapshots[snapshot_id]
        engine_id = snap.engine_snapshot_id
        if engine_id and not any(
            s.engine_snapshot_id == engine_id for s in self.snapshots.values()
        ):
            await self._delete_engine_snapshot(engine_id)

    async def _delete_engine_snapshot(self, snapshot_id: str) -> None:
        self._engine_snapshots.discard(snapshot_id)
        if snapshot_id.startswith("tar:"):
            self._archive_path(snapshot_id).unlink(missing_ok=True)
            return
        try:
            await self.provider.delete_snapshot(snapshot_id)
        except sandstorm.SandstormError as exc:
            log.warning("could not delete engine snapshot %s: %s", snapshot_id, exc)


def build_info(dockerfile: str, now: datetime) -> dict[str, Any]:
    """The ``buildInfo`` of a snapshot or sandbox built from ``dockerfile``."""
    import hashlib

    return {
        "dockerfileContent": dockerfile,
        "contextHashes": [],
        "createdAt": iso(now),
        "updatedAt": iso(now),
        "snapshotRef": hashlib.sha256(dockerfile.encode()).hexdigest(),
    }
