"""Usage readings of the emulator's sandboxes, from the engine's own accounting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._records import SandboxRecord
    from ._state import Emulator

__all__ = ["MetricSample", "take_sample"]


@dataclass
class MetricSample:
    """One reading of a sandbox's usage (PROTOCOL.md §6.6 units: bytes, percent)."""

    at: datetime
    cpu_count: int
    cpu_used_pct: float
    mem_total: int
    mem_used: int
    disk_total: int
    disk_used: int
    cpu_seconds: float


async def take_sample(emulator: Emulator, record: SandboxRecord) -> MetricSample:
    """A fresh usage reading of ``record``'s workspace, kept in its runtime for telemetry."""
    workspace = await emulator.workspace(record)
    metrics = await emulator.provider.get_workspace_metrics(workspace)
    runtime = emulator.runtime_of(record)
    now = emulator.clock.now()
    cpu_seconds = metrics.cpu_seconds
    cpu_count = record.cpu
    pct = 0.0
    if runtime.samples:
        last = runtime.samples[-1]
        wall = (now - last.at).total_seconds()
        if wall > 0:
            pct = max(0.0, (cpu_seconds - last.cpu_seconds) / wall / cpu_count * 100.0)
    mem_total = metrics.memory_limit_bytes or record.memory << 30
    disk_total = record.disk << 30
    sample = MetricSample(
        at=now,
        cpu_count=cpu_count,
        cpu_used_pct=round(min(pct, 100.0), 3),
        mem_total=mem_total,
        mem_used=metrics.memory_current_bytes,
        disk_total=disk_total,
        disk_used=metrics.disk_used_bytes,
        cpu_seconds=cpu_seconds,
    )
    runtime.samples.append(sample)
    del runtime.samples[:-1000]
    return sample
