"""Deliberately broken providers: the kit must catch each of them.

``LiarProvider`` declares METRICS and SNAPSHOTS but only pretends (constant zero metrics,
snapshots that capture nothing). ``ForgetfulProvider`` declares neither COST nor METRICS
but overrides the public methods and forgets to raise ``CapabilityNotSupported``.
``NoCgroupsProvider`` is honest: it declares METRICS, but this instance lacks them (as
``local`` on a host without cgroups), says so in ``effective_capabilities()`` and refuses.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hostprovider import HostProvider

import sandstorm
from sandstorm import Capability, CostEstimate, Snapshot, WorkspaceMetrics, WorkspaceSpec


def _zeros(workspace_id: str) -> WorkspaceMetrics:
    return WorkspaceMetrics(
        workspace_id=workspace_id,
        collected_at=datetime.now(UTC),
        cpu_user_seconds=0.0,
        cpu_system_seconds=0.0,
        memory_current_bytes=0,
        memory_peak_bytes=0,
    )


class LiarProvider(HostProvider):
    name = "liar"
    capabilities = HostProvider.capabilities | {Capability.METRICS, Capability.SNAPSHOTS}

    def __init__(self, config=None):
        super().__init__(config)
        self._snapshots: dict[str, Snapshot] = {}

    async def _metrics(self, workspace):
        return _zeros(workspace.id)

    async def _snapshot(self, workspace, name):
        snap = Snapshot(
            id="snap-" + uuid.uuid4().hex[:8],
            provider=self.name,
            workspace_id=workspace.id,
            created_at=datetime.now(UTC),
            size=1,
            name=name,
        )
        self._snapshots[snap.id] = snap
        return snap

    async def _restore(self, snapshot_id, name):
        if snapshot_id not in self._snapshots:
            raise sandstorm.SnapshotNotFound(snapshot_id)
        return await self._create_workspace(WorkspaceSpec(name=name))

    async def _list_snapshots(self):
        return list(self._snapshots.values())

    async def _delete_snapshot(self, snapshot_id):
        if self._snapshots.pop(snapshot_id, None) is None:
            raise sandstorm.SnapshotNotFound(snapshot_id)


class ForgetfulProvider(HostProvider):
    name = "forgetful"

    async def estimate_cost(self, *, duration, cpu=None, memory=None, disk=None):
        return CostEstimate(total=0.0, duration=duration)

    async def get_workspace_metrics(self, workspace):
        ws = await self._sandstorm_resolve(workspace)
        return _zeros(ws.id)


class BlockingProvider(HostProvider):
    """Blocks its event loop in a plain ``time.sleep`` once the code asks for a timeout."""

    name = "blocking"

    async def _execute(self, workspace, request):
        if request.timeout < 30:
            import time

            time.sleep(3600)  # noqa: ASYNC251 (the bug under test)
        return await super()._execute(workspace, request)


class NeverReturnsProvider(HostProvider):
    """Ignores short timeouts: awaits forever (and ignores cancellation)."""

    name = "never-returns"

    async def _execute(self, workspace, request):
        if request.timeout < 30:
            import asyncio

            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    continue
        return await super()._execute(workspace, request)


class NoCgroupsProvider(HostProvider):
    """Declares METRICS but cannot deliver them here, and says so (no lie, no crash)."""

    name = "no-cgroups"
    capabilities = HostProvider.capabilities | {Capability.METRICS}

    async def _effective_capabilities(self):
        return self.capabilities - {Capability.METRICS}

    async def _metrics(self, workspace):
        raise sandstorm.CapabilityNotSupported(
            self.name, Capability.METRICS, "no writable cgroup hierarchy on this host"
        )
