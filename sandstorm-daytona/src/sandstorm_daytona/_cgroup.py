"""A sandbox's own cgroup accounting, read from inside it: the script and its parser.

:data:`CGROUP_SCRIPT` runs in the sandbox (one toolbox command) and prints its cgroup
files; :func:`parse_cgroup` turns that text into :class:`ResourceUsage`.
"""

from __future__ import annotations

from sandstorm import ResourceUsage
from sandstorm.adapters import blkio_bytes, cgroup_counters, io_bytes

__all__ = ["CGROUP_SCRIPT", "parse_cgroup"]


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


def parse_cgroup(text: str) -> ResourceUsage | None:
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
    return cgroup_counters("\n".join(lines))


def _cgroup_v2(files: dict[str, list[str]]) -> ResourceUsage:
    cpu = _pairs(files["cpu.stat"])
    current_bytes = _first_int(files["memory.current"]) or 0
    reads, writes = io_bytes("\n".join(files.get("io.stat", [])))
    has_io = "io.stat" in files
    return ResourceUsage(
        cpu_user_seconds=cpu.get("user_usec", 0) / 1e6,
        cpu_system_seconds=cpu.get("system_usec", 0) / 1e6,
        memory_current_bytes=current_bytes,
        # kernels before 5.19 have no memory.peak: the current figure is a lower bound
        memory_peak_bytes=_first_int(files.get("memory.peak")) or current_bytes,
        disk_read_bytes=reads if has_io else None,
        disk_write_bytes=writes if has_io else None,
        process_count=_first_int(files.get("pids.current")) or 0,
    )


def _cgroup_v1(files: dict[str, list[str]]) -> ResourceUsage:
    ticks = _first_int(files.get("CLK_TCK")) or 100
    cpu = _pairs(files.get("cpuacct/cpuacct.stat", []))
    if cpu:
        user, system = cpu.get("user", 0) / ticks, cpu.get("system", 0) / ticks
    else:  # no v1 cpuacct: the v2 hierarchy accounts cpu time
        usec = _v2_cpu(files)
        user, system = usec.get("user_usec", 0) / 1e6, usec.get("system_usec", 0) / 1e6
    current_bytes = _first_int(files["memory/memory.usage_in_bytes"]) or 0
    io = files.get("blkio/blkio.throttle.io_service_bytes")
    reads, writes = blkio_bytes("\n".join(io or []))
    return ResourceUsage(
        cpu_user_seconds=user,
        cpu_system_seconds=system,
        memory_current_bytes=current_bytes,
        memory_peak_bytes=_first_int(files.get("memory/memory.max_usage_in_bytes"))
        or current_bytes,
        disk_read_bytes=reads if io is not None else None,
        disk_write_bytes=writes if io is not None else None,
        process_count=_first_int(files.get("pids/pids.current")) or 0,
    )
