"""Pure translations between Sandstorm's models and Daytona's wire values."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from sandstorm import (
    NetworkPolicy,
    ProviderAPIError,
    ProviderConfigError,
    Resources,
    TemplateNotFound,
    TerminationReason,
    Workspace,
    WorkspaceMetrics,
)

from ._allowlist import check_domain_allow_list, check_network_allow_list
from ._wire import SandboxList, SandboxWire

__all__ = [
    "LABEL_CREATE",
    "LABEL_EXPIRES",
    "LABEL_LANGUAGE",
    "LABEL_MANAGED",
    "LABEL_OWNER",
    "LABEL_PERSISTENT",
    "LABEL_REQUESTED",
    "CGROUP_SCRIPT",
    "CgroupFigures",
    "DaytonaMetrics",
    "allocation",
    "cap",
    "file_time",
    "git_state",
    "iso",
    "mode_bits",
    "names_missing_snapshot",
    "network_fields",
    "network_of",
    "parse_cgroup",
    "parse_time",
    "read_time",
    "part_error",
    "refused",
    "requested",
    "sandbox_page",
    "seg",
    "shielded",
    "shielded_value",
    "single_host",
    "termination",
    "workspace_id_of",
]

LABEL_MANAGED = "sandstorm"
"""Label set to ``"1"`` on every sandbox Sandstorm creates."""
LABEL_OWNER = "sandstorm-owner"
"""Label naming who created the sandbox (``DaytonaConfig.owner``)."""
LABEL_EXPIRES = "sandstorm-expires-at"
"""Label holding the Unix time after which ``reap`` may delete the sandbox."""
LABEL_PERSISTENT = "sandstorm-persistent"
LABEL_CREATE = "sandstorm-create"
LABEL_LANGUAGE = "code-toolbox-language"
LABEL_REQUESTED = "sandstorm-requested-"
"""Prefix of the labels that keep the cpu (cores) and memory/disk (MiB) asked for."""


class DaytonaMetrics(WorkspaceMetrics):
    """Workspace metrics plus Daytona's own figures from the toolbox ``/system/metrics``."""

    cpu_used_percent: float | None = None
    memory_total_bytes: int | None = None
    memory_cache_bytes: int | None = None
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None


class CgroupFigures(BaseModel):
    """cpu, memory and io counters read from the sandbox's cgroup."""

    cpu_user_seconds: float
    cpu_system_seconds: float
    memory_current_bytes: int
    memory_peak_bytes: int
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    process_count: int = 0


def termination(exit_code: int, truncated: bool) -> tuple[TerminationReason, int | None]:
    """Why the code stopped, from what Daytona reports: only a number.

    Like a shell, ``128 + N`` (N a signal number, 1-31) is read as death by signal N; a
    failure after output passed the cap is the cap's doing (the code got SIGPIPE).
    """
    if truncated and exit_code != 0:
        return TerminationReason.OUTPUT_LIMIT, None
    if 128 < exit_code < 160:
        return TerminationReason.SIGNALED, exit_code - 128
    return TerminationReason.EXITED, None


def refused(exc: BaseException) -> bool:
    """True when the server answered the create with a 4xx: it made nothing."""
    if isinstance(exc, TemplateNotFound):
        return True
    return isinstance(exc, ProviderAPIError) and exc.status is not None and exc.status < 500


def names_missing_snapshot(reply: httpx.Response) -> bool:
    """True when an error reply says the requested snapshot does not exist."""
    text = reply.text.lower()
    return "snapshot" in text and ("not found" in text or "does not exist" in text)


def seg(value: str) -> str:
    """``value`` as one URL path segment (snapshot names contain ``/`` and ``:``)."""
    return quote(value, safe="")


def workspace_id_of(workspace: Workspace | str) -> str:
    """The id of a workspace given as a model or an id."""
    return workspace.id if isinstance(workspace, Workspace) else workspace


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


_GO_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-]\d{2})(\d{2})(?: \S+)?"
    r"(?: m=[+-][\d.]+)?"
)


def read_time(value: str | None) -> datetime | None:
    """A timestamp as an aware datetime, or None when absent or unreadable.

    Reads RFC 3339 / ISO 8601 (``2024-05-01T12:00:00.123456789Z``, nanoseconds cut to
    microseconds) and Go's ``time.String()`` form (``2024-05-01 12:00:00.123456789 +0000
    UTC``), which the daemon sends as ``modTime``.
    """
    if not value:
        return None
    text = value.strip()
    go = _GO_TIME.fullmatch(text)
    if go:
        day, clock, fraction, hours, minutes = go.groups()
        micro = f".{(fraction or '0')[:6]:0<6}"
        text = f"{day}T{clock}{micro}{hours}:{minutes}"
    else:
        text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime:
    """A Daytona timestamp as an aware datetime (now, when absent or unreadable)."""
    return read_time(value) or datetime.now(UTC)


def file_time(modified_at: str | None, mod_time: str | None, path: str) -> datetime:
    """A file's modification time: RFC 3339 ``modifiedAt``, else the daemon's ``modTime``
    (Go's ``time.String()``, ``apps/daemon/pkg/toolbox/fs/get_file_info.go``)."""
    moment = read_time(modified_at) or read_time(mod_time)
    if moment is None:
        raise ProviderAPIError(
            f"list files: unreadable modification time of {path!r} "
            f"(modifiedAt={modified_at!r}, modTime={mod_time!r})",
            provider="daytona",
        )
    return moment


def allocation(resources: Resources, *, defaults: bool = True) -> tuple[int, int, int]:
    """Daytona's whole vCPU and GiB for ``resources``, rounded up (a limit is never cut).

    With ``defaults`` an unset figure takes Daytona's default sandbox size (1 vCPU,
    1 GiB memory, 3 GiB disk); without, it is 0 (meaning: not requested).
    """
    cpu = math.ceil(resources.cpu) if resources.cpu else (1 if defaults else 0)
    memory = math.ceil(resources.memory / 1024) if resources.memory else (1 if defaults else 0)
    disk = math.ceil(resources.disk / 1024) if resources.disk else (3 if defaults else 0)
    return cpu, memory, disk


def network_fields(policy: NetworkPolicy) -> dict[str, Any]:
    """The CreateSandbox fields for a network policy.

    Raises ``ProviderConfigError`` for an allow-list the Daytona API would refuse (400):
    networks must be IPv4 (addresses or CIDRs), domains plain names (``*.`` allowed in
    front, no port), at most 10 of each (``_allowlist.py``).
    """
    if policy.mode == "blocked":
        return {"networkBlockAll": True}
    if policy.mode == "host":
        return {"networkBlockAll": False}
    cidrs: list[str] = []
    domains: list[str] = []
    for entry in policy.allow:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            domains.append(entry)
        else:
            if network.version != 4:
                raise ProviderConfigError(
                    f"network allow-list entry {entry!r}: Daytona allows IPv4 networks only"
                )
            cidrs.append(str(network))
    fields: dict[str, Any] = {"networkBlockAll": False}
    for key, items, check in (
        ("networkAllowList", cidrs, check_network_allow_list),
        ("domainAllowList", domains, check_domain_allow_list),
    ):
        if not items:
            continue
        text = ",".join(items)
        try:
            check(text)
        except ValueError as exc:
            raise ProviderConfigError(
                f"network allow-list refused by Daytona's rules: {exc}"
            ) from None
        fields[key] = text
    if not cidrs and not domains:
        fields["networkBlockAll"] = True
    return fields


def network_of(sandbox: SandboxWire) -> NetworkPolicy:
    """The network policy a sandbox JSON describes."""
    allow = [
        single_host(item.strip())
        for text in (sandbox.network_allow_list, sandbox.domain_allow_list)
        for item in (text or "").split(",")
        if item.strip()
    ]
    if allow:
        return NetworkPolicy(mode="allow_list", allow=tuple(allow))
    if sandbox.network_block_all:
        return NetworkPolicy(mode="blocked")
    return NetworkPolicy(mode="host")


def requested(sandbox: SandboxWire) -> Resources:
    """The resources asked for (labels), else what Daytona allocated (GiB -> MiB)."""

    def asked(key: str) -> float | None:
        text = sandbox.labels.get(f"{LABEL_REQUESTED}{key}")
        with contextlib.suppress(TypeError, ValueError):
            return float(text) if text is not None else None
        return None

    cpu, memory, disk = asked("cpu"), asked("memory"), asked("disk")
    return Resources(
        cpu=cpu if cpu is not None else (sandbox.cpu or None),
        memory=int(memory) if memory is not None else (int(sandbox.memory * 1024) or None),
        disk=int(disk) if disk is not None else (int(sandbox.disk * 1024) or None),
    )


def single_host(entry: str) -> str:
    """``10.0.0.1/32`` reads back as ``10.0.0.1`` (a single host is sent as a /32)."""
    address, _, bits = entry.partition("/")
    if bits in ("32", "128"):
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(address))
    return entry


def sandbox_page(payload: Any) -> SandboxList:
    """One page of ``GET /sandbox`` (a bare list from older servers)."""
    if isinstance(payload, list):  # older servers answer a bare list
        return SandboxList(items=[SandboxWire.model_validate(item) for item in payload])
    return SandboxList.model_validate(payload)


def git_state(staging: str, worktree: str) -> str:
    """One file's git state from the daemon's staging/worktree pair, lower case."""
    for value in (worktree, staging):
        if value and value != "Unmodified":
            return value.lower()
    return "unmodified"


def mode_bits(text: str) -> int:
    """Permission bits from an octal string or an ``ls``-style ``rwx`` string."""
    text = text.strip()
    with contextlib.suppress(ValueError):
        return int(text, 8)
    bits = 0
    for char in text[-9:]:
        bits = (bits << 1) | (char not in "-")
    return bits


def part_error(data: bytes) -> str:
    """The message of an error part of a bulk download."""
    try:
        body = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")[:300]
    if isinstance(body, dict):
        return f"{body.get('message', '')} [{body.get('code', '')}]"
    return str(body)[:300]


def cap(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` UTF-8 bytes, and whether it was cut."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


_V2_FILES = ("cpu.stat", "memory.current", "memory.peak", "io.stat", "pids.current")

CGROUP_SCRIPT = (
    "cd /sys/fs/cgroup 2>/dev/null || exit 0; "
    f"for f in {' '.join(_V2_FILES)} {' '.join('unified/' + f for f in _V2_FILES)} "
    "cpuacct/cpuacct.stat memory/memory.usage_in_bytes memory/memory.max_usage_in_bytes "
    "pids/pids.current blkio/blkio.throttle.io_service_bytes; "
    'do [ -r "$f" ] && c=$(cat "$f" 2>/dev/null) && [ -n "$c" ] && '
    'printf "== %s\\n%s\\n" "$f" "$c"; done; '
    'echo "== CLK_TCK"; getconf CLK_TCK 2>/dev/null || echo 100; true'
)
"""Prints the sandbox's own cgroup accounting files (v2, else v1), each after ``== name``.

v2 is read at the root (a v2 host) or at ``unified/`` (a hybrid host's v2 hierarchy).
"""


def parse_cgroup(text: str) -> CgroupFigures | None:
    """cgroup figures (v2, else v1) from what :data:`CGROUP_SCRIPT` printed; None if none."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = files.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    # a file counts only with a readable number in it: never report zeros for "unknown"
    for prefix in ("", "unified/"):
        v2 = {name: files.get(prefix + name, []) for name in _V2_FILES if prefix + name in files}
        if _pairs(v2.get("cpu.stat", [])) and _first_int(v2.get("memory.current")) is not None:
            return _cgroup_v2(v2)
    if _first_int(files.get("memory/memory.usage_in_bytes")) is not None and (
        _pairs(files.get("cpuacct/cpuacct.stat", [])) or _v2_cpu(files)
    ):
        return _cgroup_v1(files)
    return None


def _v2_cpu(files: dict[str, list[str]]) -> dict[str, int]:
    """v2 ``cpu.stat`` (root or ``unified/``): cpu time, even without the v2 cpu controller."""
    return _pairs(files.get("cpu.stat", [])) or _pairs(files.get("unified/cpu.stat", []))


def _first_int(lines: list[str] | None) -> int | None:
    if lines and lines[0].strip().isdigit():
        return int(lines[0].strip())
    return None


def _pairs(lines: list[str]) -> dict[str, int]:
    return {
        parts[0]: int(parts[1])
        for parts in (line.split() for line in lines)
        if len(parts) == 2 and parts[1].isdigit()
    }


def _cgroup_v2(files: dict[str, list[str]]) -> CgroupFigures:
    cpu = _pairs(files["cpu.stat"])
    current_bytes = _first_int(files["memory.current"]) or 0
    reads = writes = 0
    for line in files.get("io.stat", []):
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes" and value.isdigit():
                reads += int(value)
            elif key == "wbytes" and value.isdigit():
                writes += int(value)
    has_io = "io.stat" in files
    return CgroupFigures(
        cpu_user_seconds=cpu.get("user_usec", 0) / 1e6,
        cpu_system_seconds=cpu.get("system_usec", 0) / 1e6,
        memory_current_bytes=current_bytes,
        # kernels before 5.19 have no memory.peak: the current figure is a lower bound
        memory_peak_bytes=_first_int(files.get("memory.peak")) or current_bytes,
        disk_read_bytes=reads if has_io else None,
        disk_write_bytes=writes if has_io else None,
        process_count=_first_int(files.get("pids.current")) or 0,
    )


def _cgroup_v1(files: dict[str, list[str]]) -> CgroupFigures:
    ticks = _first_int(files.get("CLK_TCK")) or 100
    cpu = _pairs(files.get("cpuacct/cpuacct.stat", []))
    if cpu:
        user, system = cpu.get("user", 0) / ticks, cpu.get("system", 0) / ticks
    else:  # no v1 cpuacct: the v2 hierarchy accounts cpu time
        usec = _v2_cpu(files)
        user, system = usec.get("user_usec", 0) / 1e6, usec.get("system_usec", 0) / 1e6
    current_bytes = _first_int(files["memory/memory.usage_in_bytes"]) or 0
    reads = writes = 0
    io = files.get("blkio/blkio.throttle.io_service_bytes")
    for line in io or []:
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                reads += int(parts[2])
            elif parts[1] == "Write":
                writes += int(parts[2])
    return CgroupFigures(
        cpu_user_seconds=user,
        cpu_system_seconds=system,
        memory_current_bytes=current_bytes,
        memory_peak_bytes=_first_int(files.get("memory/memory.max_usage_in_bytes"))
        or current_bytes,
        disk_read_bytes=reads if io is not None else None,
        disk_write_bytes=writes if io is not None else None,
        process_count=_first_int(files.get("pids/pids.current")) or 0,
    )


async def shielded(awaitable: Awaitable[None]) -> None:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile (cleanup must happen)."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def shielded_value(awaitable: Awaitable[tuple[str, str]]) -> tuple[str, str]:
    """Like :func:`shielded`, for an awaitable that returns partial output."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
