"""Configuration of the ``local`` provider (keyword arguments, then ``SANDSTORM_LOCAL_*``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from .._config import ProviderConfig
from .._models import DEFAULT_OUTPUT_CAP
from ._paths import default_root

__all__ = ["SANDBOX_LAYERS", "LocalConfig", "Primitive", "default_root"]

Primitive = Literal[
    "userns",
    "netns",
    "pidns",
    "mountns",
    "pivot_root",
    "ipcns",
    "utsns",
    "cgroupns",
    "uid_drop",
    "uid_separation",
    "landlock",
    "seccomp",
    "cgroup_kill",
    "cgroup_memory",
    "cgroup_pids",
    "cgroup_cpu",
    "disk_quota",
]
"""An isolation primitive the startup probe can report, ``require`` can demand and
``allow_weaker`` can do without."""

SANDBOX_LAYERS: tuple[Primitive, ...] = (
    "netns",
    "pidns",
    "mountns",
    "pivot_root",
    "ipcns",
    "utsns",
    "cgroupns",
    "uid_separation",
    "seccomp",
    "landlock",
    "disk_quota",
)
"""The layers the provider needs by default: without one (and not in ``allow_weaker``) it
refuses to start. ``disk_quota`` only counts where the probe reports on it at all."""

_RESERVED_PATHS = ("/bin", "/dev", "/etc", "/lib", "/proc", "/sbin", "/sys", "/tmp", "/usr", "/var")


class LocalConfig(ProviderConfig):
    """Settings of the ``local`` provider; every field also reads ``SANDSTORM_LOCAL_<NAME>``."""

    env_prefix: ClassVar[str] = "SANDSTORM_LOCAL_"

    root: Path = Field(
        default_factory=default_root,
        description="state directory: workspaces/, snapshots/ live here",
    )
    namespace: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description=(
            "the application's namespace in the state directory: providers see only the "
            "workspaces of their own namespace (default: one derived from the state dir)"
        ),
    )
    output_cap: int = Field(
        default=DEFAULT_OUTPUT_CAP,
        ge=1024,
        description=(
            "bytes of stdout and of stderr kept per run; the rest is dropped (truncated flag "
            "set), and past twice this much the run is killed (reason output_limit)"
        ),
    )
    require: tuple[Primitive, ...] = Field(
        default=(),
        description="primitives that must be active on top of the sandbox layers (e.g. "
        "cgroup_memory); without them the provider refuses to start",
    )
    allow_weaker: tuple[Primitive, ...] = Field(
        default=(),
        description="sandbox layers the provider may start without (it then logs a warning "
        "on every start); without this, a missing layer makes it refuse to start",
    )
    uid_range: tuple[int, int] = Field(
        default=(1_000_000, 1_999_999),
        description="first and last uid given to workspaces, one each (host root)",
    )
    workspace_path: str = Field(
        default="/workspace",
        description="where the code sees its workspace (its working directory and HOME)",
    )
    read_only_binds: tuple[str, ...] = Field(
        default=(),
        description="more host paths shown to the code read-only, at the same path",
    )
    preload: tuple[str, ...] = Field(
        default=(), description="modules the python fork server imports once, up front"
    )
    python_path: tuple[str, ...] = Field(
        default=(), description="extra sys.path entries for sandboxed python code"
    )
    prewarm: int = Field(
        default=2,
        ge=0,
        le=16,
        description="sandboxes the fork server keeps built ahead of requests (blocked network)",
    )
    spare_workspaces: int = Field(
        default=2,
        ge=0,
        le=16,
        description="blank workspaces kept ready per disk size (disk image formatted and "
        "mounted ahead; never used for code before they are handed out)",
    )
    cgroup_favordynmods: bool = Field(
        default=False,
        description="root hosts: mount a cgroup hierarchy with the favordynmods option, so "
        "that moving each run into its cgroups stops waiting for an RCU grace period (4-15 ms "
        "of every run's latency); changes the whole host, and on Linux 6.18+ stays until "
        "reboot (docs/local.md, 'Host tuning')",
    )
    seccomp: bool = Field(default=True, description="load the seccomp deny-list when possible")
    landlock: bool = Field(default=True, description="confine file access with Landlock")
    cgroups: bool = Field(default=True, description="use cgroups for limits, kill and metrics")
    cgroup_view: bool = Field(
        default=True,
        description="show the code its workspace's own cgroups, read-only, at /sys/fs/cgroup",
    )
    pids_limit: int = Field(default=512, ge=8, description="processes per workspace")
    memory_limit: int | None = Field(
        default=2048, ge=16, description="MiB a workspace may use when no memory limit is given"
    )
    nofile_limit: int = Field(default=1024, ge=16, description="open files per process")
    disk_limit: int = Field(
        default=4096, ge=1, description="MiB a workspace may hold when no disk limit is given"
    )
    disk_images: bool = Field(
        default=True,
        description="give each workspace its own ext4 image, so the kernel enforces the disk "
        "limit (needs root and loop devices; otherwise a best-effort usage check)",
    )
    disk_check_interval: float = Field(
        default=0.1, gt=0, description="seconds between disk-usage checks while code runs"
    )
    tmp_size: int = Field(default=256, ge=1, description="MiB of the private /tmp tmpfs")
    templates: dict[str, Any] = Field(
        default_factory=dict,
        description="named workspace templates: {name: {directory, setup}} or {name: path}",
    )
    git_timeout: float = Field(default=300.0, gt=0, description="seconds a git clone may take")
    node: str | None = Field(default=None, description="node binary (default: node on PATH)")
    shell: str | None = Field(default=None, description="shell binary (default: bash, else sh)")

    @field_validator("templates", mode="before")
    @classmethod
    def _templates_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"templates must be a JSON object: {exc}") from None
        return value

    @field_validator("uid_range")
    @classmethod
    def _check_uid_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if not 1000 <= first <= last < 2**31 - 1:
            raise ValueError("uid_range must be (first, last), 1000 <= first <= last < 2**31 - 1")
        return value

    @field_validator("workspace_path")
    @classmethod
    def _check_workspace_path(cls, value: str) -> str:
        path = os.path.normpath(value)
        if not value.startswith("/") or path == "/" or path != value.rstrip("/"):
            raise ValueError(f"workspace_path must be a normalised absolute path, not {value!r}")
        if any(path == r or path.startswith(r + "/") for r in _RESERVED_PATHS):
            raise ValueError(f"workspace_path {value!r} is inside a system directory")
        return path

    @field_validator("read_only_binds")
    @classmethod
    def _check_binds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/") or os.path.normpath(path) in ("/", "/proc", "/dev"):
                raise ValueError(f"read_only_binds: {path!r} must be an absolute path below /")
        return tuple(os.path.normpath(path) for path in value)

    @field_validator(
        "require",
        "allow_weaker",
        "preload",
        "python_path",
        "read_only_binds",
        "uid_range",
        mode="before",
    )
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
