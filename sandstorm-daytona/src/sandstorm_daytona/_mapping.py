"""Pure translations between Sandstorm's models and Daytona's wire values."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

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
    "parse_time",
    "read_time",
    "part_error",
    "refused",
    "requested",
    "sandbox_page",
    "seg",
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
