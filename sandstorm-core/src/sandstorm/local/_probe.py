"""The startup probe's verdict: which isolation primitives are active on this host, and why not."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IsolationReport", "build_report"]

_DESCRIPTIONS = {
    "userns": "user namespace (rootless)",
    "netns": "network namespace (no network, private loopback)",
    "pidns": "pid namespace with a fresh /proc",
    "mountns": "mount namespace",
    "pivot_root": "a root assembled from an allow-list (pivot_root; the host's root detached)",
    "ipcns": "ipc namespace",
    "utsns": "uts namespace (own hostname)",
    "cgroupns": "cgroup namespace",
    "uid_drop": "runs as an unprivileged uid",
    "landlock": "Landlock file-access rules",
    "seccomp": "seccomp syscall deny-list and socket-family allow-list",
}


class IsolationReport(BaseModel):
    """What the ``local`` provider's startup probe found.

    ``active`` maps each working primitive to how it is provided; ``unavailable`` maps
    each missing one to the reason. ``limits`` says which mechanism enforces memory,
    cpu, pids and disk limits.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    active: dict[str, str]
    unavailable: dict[str, str]
    limits: dict[str, str]
    landlock_abi: int = 0
    uid_range: tuple[int, int] | None = Field(
        default=None, description="the uids workspaces run as, when the host is root"
    )
    host_uid: int = Field(description="uid of the process that runs the provider")

    def is_active(self, primitive: str) -> bool:
        """True when ``primitive`` (e.g. ``"netns"``) is in use."""
        return primitive in self.active

    def summary(self) -> str:
        """One human-readable line per primitive."""
        lines = [f"  + {name}: {how}" for name, how in sorted(self.active.items())]
        lines += [f"  - {name}: {why}" for name, why in sorted(self.unavailable.items())]
        lines += [f"  limit {name}: {how}" for name, how in sorted(self.limits.items())]
        return "\n".join(lines)


def build_report(
    raw: dict[str, Any],
    cgroup_active: dict[str, str],
    cgroup_errors: dict[str, str],
    *,
    landlock_enabled: bool,
    seccomp_enabled: bool,
    uid_range: tuple[int, int],
) -> IsolationReport:
    """Combine the sandbox interpreter's probe with the host's cgroup findings."""
    active: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    errors: dict[str, str] = raw.get("errors", {})
    abi = int(raw.get("landlock_abi", 0))
    for name, description in _DESCRIPTIONS.items():
        if name == "uid_drop" and raw.get("rootless"):
            unavailable[name] = f"not needed: the provider itself runs as uid {raw.get('uid')}"
            continue
        if name not in raw:
            continue
        disabled = {"landlock": not landlock_enabled, "seccomp": not seccomp_enabled}
        if disabled.get(name):
            unavailable[name] = "disabled by configuration"
        elif raw[name]:
            active[name] = description + (f" (ABI {abi})" if name == "landlock" else "")
        else:
            unavailable[name] = errors.get(name, "not available")
    if "uid_drop" in active:
        first, last = uid_range
        active["uid_separation"] = f"one uid per workspace, from {first}-{last}"
    else:
        unavailable["uid_separation"] = (
            "rootless: every sandbox runs as the host user's uid (in its own user namespace)"
            if raw.get("rootless")
            else unavailable.get("uid_drop", "no unprivileged uid")
        )
    active.update({k: v for k, v in cgroup_active.items() if k != "cgroup_sockets"})
    for name in ("cgroup_kill", "cgroup_memory", "cgroup_pids", "cgroup_cpu"):
        if name not in active:
            unavailable[name] = cgroup_errors.get(name) or cgroup_errors.get(
                "cgroups", "no writable cgroup hierarchy offers it"
            )
    uid_dropped = "uid_drop" in active
    kill = cgroup_active.get("cgroup_kill", "process session")
    if "pidns" in active:
        kill = "pid-namespace init" + (" + cgroup.kill" if "cgroup_kill" in cgroup_active else "")
    limits = {
        "memory": cgroup_active.get("cgroup_memory", "rlimit RLIMIT_DATA"),
        "cpu": cgroup_active.get("cgroup_cpu", "rlimit RLIMIT_CPU (cpu time, not cores)"),
        "pids": cgroup_active.get(
            "cgroup_pids",
            "rlimit RLIMIT_NPROC (per uid)" if uid_dropped else "pid namespace teardown only",
        ),
        "disk": "RLIMIT_FSIZE per file plus a usage check of the workspace while it runs",
        "sockets": cgroup_active.get("cgroup_sockets", "per socket only (no cgroup accounting)"),
        "kill": kill,
    }
    return IsolationReport(
        active=active,
        unavailable=unavailable,
        limits=limits,
        landlock_abi=abi,
        uid_range=uid_range if uid_dropped else None,
        host_uid=int(raw.get("uid", -1)),
    )
