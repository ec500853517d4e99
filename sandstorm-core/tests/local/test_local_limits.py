"""Enforced limits on the real engine: memory, pids (fork bomb as root), cpu, disk, probe."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import sandstorm
from sandstorm import IsolationUnavailable, TerminationReason
from sandstorm.local import LocalProvider


def _needs(local_impl: LocalProvider, *primitives: str) -> None:
    report = local_impl.isolation_report()
    missing = [p for p in primitives if not report.is_active(p)]
    if missing:
        pytest.skip(f"this host lacks {missing}: {report.unavailable}")


def test_probe_reports_primitives_and_mechanisms(local_impl: LocalProvider) -> None:
    report = local_impl.isolation_report()
    for name in ("netns", "pidns", "mountns", "ipcns", "utsns"):
        assert report.is_active(name), report.unavailable
    assert set(report.limits) >= {"memory", "cpu", "pids", "disk", "kill"}
    assert report.summary()
    if os.geteuid() == 0:
        assert report.uid_range == (1_000_000, 1_999_999)


def test_require_fails_closed(local_root: Path) -> None:
    provider = sandstorm.get_provider(
        "local", root=str(local_root / "req"), landlock=False, require=["landlock", "netns"]
    )
    with provider, pytest.raises(IsolationUnavailable, match="landlock"):
        provider.run("print('must not run')")
    ok = sandstorm.get_provider("local", root=str(local_root / "req2"), require="netns,pidns")
    with ok:
        assert ok.run("print(1)").stdout == "1\n"


def test_memory_bomb_stops_near_the_limit(
    lp: sandstorm.SyncProvider, local_impl: LocalProvider
) -> None:
    _needs(local_impl, "cgroup_memory")
    ws = lp.create_workspace(memory=128)
    code = "chunks = []\nwhile True: chunks.append(bytearray(8 << 20))"
    result = lp.run_in_workspace(ws, code, timeout=30)
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert (result.exit_code, result.signal) == (137, 9)
    metrics = lp.get_workspace_metrics(ws)
    assert 100 << 20 <= metrics.memory_peak_bytes <= 136 << 20
    assert metrics.memory_limit_bytes == 128 << 20
    # the workspace still works after the kill
    assert lp.run_in_workspace(ws, "print('alive')").stdout == "alive\n"


def test_one_shot_memory_limit(lp: sandstorm.SyncProvider, local_impl: LocalProvider) -> None:
    _needs(local_impl, "cgroup_memory")
    result = lp.run("x = bytearray(400 << 20)", memory=128)
    assert result.reason is TerminationReason.MEMORY_LIMIT
    assert lp.run("x = bytearray(64 << 20); print('ok')", memory=128).stdout == "ok\n"


def test_fork_bomb_is_contained_even_as_root(
    local_root: Path, no_leftovers: str, find_processes: Callable[[str], list[int]]
) -> None:
    with sandstorm.get_provider("local", root=str(local_root / "fork"), pids_limit=64) as lp:
        impl = lp.async_provider
        assert isinstance(impl, LocalProvider)
        _needs(impl, "cgroup_pids")
        code = f"""
import os, time
failures = 0
children = 0
for _ in range(400):
    try:
        pid = os.fork()
    except OSError:
        failures += 1
        continue
    if pid == 0:
        os.execv('/bin/sleep', ['sleep', '30', '{no_leftovers}'])
    children += 1
print(children, failures, flush=True)
"""
        result = lp.run(code, timeout=20)
        children, failures = map(int, result.stdout.split())
        assert children < 64
        assert failures > 300
    # the host can still start processes, and nothing from the bomb is left
    assert subprocess.run(["true"], check=False).returncode == 0
    assert find_processes(no_leftovers) == []


def test_cpu_limit_throttles(lp: sandstorm.SyncProvider, local_impl: LocalProvider) -> None:
    _needs(local_impl, "cgroup_cpu")
    ws = lp.create_workspace(cpu=0.25)
    code = (
        "import time\nt = time.time()\n"
        "while time.time() - t < 1.2: pass\n"
        "print(time.process_time())"
    )
    result = lp.run_in_workspace(ws, code, timeout=20)
    cpu_seconds = float(result.stdout)
    assert cpu_seconds < 0.6, f"used {cpu_seconds:.2f} cpu s in 1.2 s wall at 0.25 cores"
    assert lp.get_workspace_metrics(ws).cpu_limit == pytest.approx(0.25)


def test_disk_limit_kills_a_filling_run(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace(disk=20)
    single = lp.run_in_workspace(ws, "open('big', 'wb').write(b'x' * (40 << 20))")
    assert single.exit_code == 1
    assert "File too large" in single.stderr
    many = lp.run_in_workspace(
        ws,
        "import os, time\n"
        "for i in range(100):\n"
        "    open(f'f{i}', 'wb').write(b'x' * (1 << 20)); time.sleep(0.01)\n",
        timeout=30,
    )
    assert many.reason is TerminationReason.DISK_LIMIT
    assert "disk limit of 20 MiB" in many.stderr


def test_timeout_returns_promptly_under_limits(lp: sandstorm.SyncProvider) -> None:
    started = time.monotonic()
    with pytest.raises(sandstorm.ExecutionTimeout):
        lp.run("import time; time.sleep(30)", timeout=0.5, memory=64, cpu=0.5)
    assert time.monotonic() - started < 1.5
