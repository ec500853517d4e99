"""Metrics: plausible figures from the backend's accounting, monotone where they must be."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from sandstorm import AsyncProvider, Capability, Workspace, WorkspaceNotFound

from ._base import AsyncContract, WorkspaceFactory
from ._helpers import MIB, code, show

__all__ = ["MetricsContract"]

BURN = code(
    """
    import time
    block = bytearray(64 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.process_time() + 0.6
    while time.process_time() < end:
        pass
    print(sum(block[::4096]))
    """
)


@pytest.mark.requires(Capability.METRICS)
class MetricsContract(AsyncContract):
    """cpu and memory accounting reflect what the code did; counters never go backwards."""

    async def test_metrics_are_plausible(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        start = await provider.get_workspace_metrics(workspace)
        result = await provider.run_in_workspace(workspace, BURN, timeout=60)
        assert result.stdout == f"{(64 << 20) // 4096}\n", show(result)
        after = await provider.get_workspace_metrics(workspace)
        assert after.workspace_id == workspace.id
        now = datetime.now(UTC)
        assert after.collected_at.tzinfo is not None
        assert now - timedelta(minutes=5) <= after.collected_at <= now + timedelta(minutes=5)
        used = after.cpu_seconds - start.cpu_seconds
        assert 0.4 <= used < 60, f"burned ~0.6 cpu seconds, the metrics say {used}"
        assert after.memory_peak_bytes >= 48 * MIB, after
        assert 0 <= after.memory_current_bytes <= after.memory_peak_bytes, after
        assert after.process_count >= 0
        assert after.disk_used_bytes >= 0
        for value in (after.disk_read_bytes, after.disk_write_bytes):
            assert value is None or value >= 0

    async def test_metrics_are_monotone(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        samples = []
        for _ in range(3):
            await provider.run_in_workspace(workspace, "sum(range(2_000_000))")
            samples.append(await provider.get_workspace_metrics(workspace))
        for earlier, later in itertools.pairwise(samples):
            assert later.collected_at >= earlier.collected_at
            assert later.cpu_user_seconds >= earlier.cpu_user_seconds
            assert later.cpu_system_seconds >= earlier.cpu_system_seconds
            assert later.memory_peak_bytes >= earlier.memory_peak_bytes
            for name in ("disk_read_bytes", "disk_write_bytes"):
                a, b = getattr(earlier, name), getattr(later, name)
                assert a is None or b is None or b >= a, name

    async def test_disk_usage_grows_with_files(
        self, provider: AsyncProvider, workspace: Workspace
    ) -> None:
        before = await provider.get_workspace_metrics(workspace)
        result = await provider.run_in_workspace(
            workspace, "import os; open('blob.bin', 'wb').write(os.urandom(8 << 20))"
        )
        assert result.exit_code == 0, show(result)
        after = await provider.get_workspace_metrics(workspace)
        grew = after.disk_used_bytes - before.disk_used_bytes
        assert grew >= 4 * MIB, f"wrote 8 MiB, disk_used_bytes grew by {grew}"

    async def test_metrics_of_deleted_workspace_raise(
        self, provider: AsyncProvider, new_workspace: WorkspaceFactory
    ) -> None:
        workspace = await new_workspace()
        await provider.delete_workspace(workspace)
        with pytest.raises(WorkspaceNotFound):
            await provider.get_workspace_metrics(workspace.id)
