"""cgroup layouts a sandbox may show at /sys/fs/cgroup, as the metrics parser reads them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandstorm_daytona._cgroup import CGROUP_SCRIPT, parse_cgroup


def test_hybrid_host_with_memory_in_v2_reads_unified() -> None:
    # v1 hierarchies for pids/cpuacct, the v2 one (with memory) under unified/
    text = (
        "== unified/cpu.stat\nusage_usec 900000\nuser_usec 600000\nsystem_usec 300000\n"
        "== unified/memory.current\n4096\n== unified/memory.peak\n65536\n"
        "== pids/pids.current\n2\n== CLK_TCK\n100\n"
    )
    figures = parse_cgroup(text)
    assert figures is not None
    assert (figures.cpu_user_seconds, figures.cpu_system_seconds) == (0.6, 0.3)
    assert (figures.memory_current_bytes, figures.memory_peak_bytes) == (4096, 65536)


def test_v1_memory_with_cpu_time_from_v2() -> None:
    # v1 memory, no v1 cpuacct: the v2 hierarchy (no controllers) still accounts cpu time
    text = (
        "== unified/cpu.stat\nusage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
        "== memory/memory.usage_in_bytes\n8192\n== memory/memory.max_usage_in_bytes\n16384\n"
        "== CLK_TCK\n100\n"
    )
    figures = parse_cgroup(text)
    assert figures is not None
    assert (figures.cpu_user_seconds, figures.cpu_system_seconds) == (1.0, 0.5)
    assert (figures.memory_current_bytes, figures.memory_peak_bytes) == (8192, 16384)


def test_v1_cpuacct_wins_over_v2_cpu_stat() -> None:
    text = (
        "== unified/cpu.stat\nusage_usec 1\nuser_usec 1\nsystem_usec 0\n"
        "== cpuacct/cpuacct.stat\nuser 250\nsystem 50\n"
        "== memory/memory.usage_in_bytes\n4096\n== CLK_TCK\n100\n"
    )
    figures = parse_cgroup(text)
    assert figures is not None
    assert (figures.cpu_user_seconds, figures.cpu_system_seconds) == (2.5, 0.5)


def test_memory_without_any_cpu_time_is_unknown() -> None:
    assert parse_cgroup("== memory/memory.usage_in_bytes\n4096\n") is None
    assert parse_cgroup("== unified/memory.current\n4096\n") is None


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (
            {
                "cpu.stat": "usage_usec 5\nuser_usec 3000000\nsystem_usec 0\n",
                "memory.current": "7\n",
            },
            (3.0, 7),
        ),
        (
            {
                "unified/cpu.stat": "usage_usec 5\nuser_usec 2000000\nsystem_usec 0\n",
                "cpuacct/cpuacct.stat": "user 150\nsystem 0\n",
                "memory/memory.usage_in_bytes": "9\n",
            },
            (1.5, 9),
        ),
    ],
)
def test_the_script_reads_each_layout(
    tmp_path: Path, layout: dict[str, str], expected: tuple[float, int]
) -> None:
    # the real script over a directory tree laid out like the sandbox's /sys/fs/cgroup
    for name, body in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    script = CGROUP_SCRIPT.replace("cd /sys/fs/cgroup", f"cd {tmp_path}", 1)
    assert script != CGROUP_SCRIPT
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    figures = parse_cgroup(done.stdout)
    assert figures is not None, done.stdout
    assert (figures.cpu_user_seconds, figures.memory_current_bytes) == expected
