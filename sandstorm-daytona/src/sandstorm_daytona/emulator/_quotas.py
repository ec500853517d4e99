"""Organisation quotas, answered with the real service's messages (403)."""

from __future__ import annotations

from collections.abc import Iterable

from ._config import Quotas
from ._errors import ApiError
from ._records import SandboxRecord

__all__ = ["check_quotas"]

UPGRADE_TIER_MESSAGE = (
    "To increase concurrency limits, upgrade your organization's Tier by visiting "
    "https://app.daytona.io/dashboard/limits."
)
ARCHIVE_SANDBOXES_MESSAGE = "Consider archiving your unused Sandboxes to free up available storage."
PER_SANDBOX_LIMIT_MESSAGE = (
    "Need higher resource limits per-sandbox? Contact us at support@daytona.io and let us "
    "know about your use case."
)
RUNNING = frozenset({"creating", "starting", "started", "restoring", "resuming", "snapshotting"})


def check_quotas(
    quotas: Quotas,
    sandboxes: Iterable[SandboxRecord],
    cpu: int,
    memory: int,
    disk: int,
    *,
    exclude: str | None = None,
) -> None:
    """Raise 403 when a sandbox of ``cpu``/``memory``/``disk`` would not fit.

    ``sandboxes`` are the organisation's live ones; ``exclude`` is the sandbox being
    started or resized (its own usage does not count twice, and it is not a new one).
    Running sandboxes count for cpu and memory, all but archived ones for disk.
    """
    if quotas.max_cpu_per_sandbox is not None and cpu > quotas.max_cpu_per_sandbox:
        raise ApiError(
            403,
            f"CPU request {cpu} exceeds maximum allowed per sandbox "
            f"({quotas.max_cpu_per_sandbox}).\n{PER_SANDBOX_LIMIT_MESSAGE}",
        )
    if quotas.max_memory_per_sandbox is not None and memory > quotas.max_memory_per_sandbox:
        raise ApiError(
            403,
            f"Memory request {memory}GB exceeds maximum allowed per sandbox "
            f"({quotas.max_memory_per_sandbox}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}",
        )
    if quotas.max_disk_per_sandbox is not None and disk > quotas.max_disk_per_sandbox:
        raise ApiError(
            403,
            f"Disk request {disk}GB exceeds maximum allowed per sandbox "
            f"({quotas.max_disk_per_sandbox}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}",
        )
    others = [r for r in sandboxes if r.id != exclude]
    running = [r for r in others if r.state in RUNNING or r.desired_state == "started"]
    stored = [r for r in others if r.state not in ("archived", "archiving")]
    if (
        exclude is None
        and quotas.max_sandboxes is not None
        and len(others) + 1 > quotas.max_sandboxes
    ):
        raise ApiError(
            403,
            f"Sandbox limit exceeded. Maximum allowed: {quotas.max_sandboxes}.\n"
            f"{UPGRADE_TIER_MESSAGE}",
        )
    if quotas.total_cpu is not None and sum(r.cpu for r in running) + cpu > quotas.total_cpu:
        raise ApiError(
            403,
            f"Total CPU limit exceeded. Maximum allowed: {quotas.total_cpu}.\n"
            f"{UPGRADE_TIER_MESSAGE}",
        )
    if (
        quotas.total_memory is not None
        and sum(r.memory for r in running) + memory > quotas.total_memory
    ):
        raise ApiError(
            403,
            f"Total memory limit exceeded. Maximum allowed: {quotas.total_memory}GiB.\n"
            f"{UPGRADE_TIER_MESSAGE}",
        )
    if quotas.total_disk is not None and sum(r.disk for r in stored) + disk > quotas.total_disk:
        raise ApiError(
            403,
            f"Total disk limit exceeded. Maximum allowed: {quotas.total_disk}GiB.\n"
            f"{ARCHIVE_SANDBOXES_MESSAGE}\n{UPGRADE_TIER_MESSAGE}",
        )
