"""Reading cgroup accounting files (v2 and v1): the text of a file in, numbers out.

Pure functions, for an adapter that reads its own cgroups on the host or the text a
sandbox printed of its cgroups. Malformed lines are skipped, never raised on.

>>> from sandstorm.adapters import cgroup_counters, io_bytes
>>> cgroup_counters("usage_usec 1500\\nuser_usec 1000\\n")["user_usec"]
1000
>>> io_bytes("8:0 rbytes=4096 wbytes=512 rios=1\\n8:16 rbytes=4096 wbytes=0\\n")
(8192, 512)
"""

from __future__ import annotations

__all__ = ["blkio_bytes", "cgroup_counters", "io_bytes"]


def cgroup_counters(text: str) -> dict[str, int]:
    """``key value`` lines (``cpu.stat``, ``memory.stat``, ``cpuacct.stat``) as a dict."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def io_bytes(text: str) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from a v2 ``io.stat``."""
    read = write = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes" and value.isdigit():
                read += int(value)
            elif key == "wbytes" and value.isdigit():
                write += int(value)
    return read, write


def blkio_bytes(text: str) -> tuple[int, int]:
    """Bytes read and written from a v1 ``blkio.throttle.io_service_bytes`` file."""
    read = write = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                read += int(parts[2])
            elif parts[1] == "Write":
                write += int(parts[2])
    return read, write
