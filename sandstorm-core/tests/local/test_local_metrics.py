"""Workspace metrics from the kernel's accounting, checked against known work."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import sandstorm
from sandstorm import Capability
from sandstorm.local import LocalProvider


@pytest.fixture
def metered(local_impl: LocalProvider) -> None:
    report = local_impl.isolation_report()
    if not (report.is_active("cgroup_memory") and report.is_active("cgroup_kill")):
        pytest.skip(f"no cgroup accounting here: {report.unavailable}")


def test_metrics_capability_is_declared() -> None:
    assert LocalProvider.supports(Capability.METRICS)


@pytest.mark.usefixtures("metered")
def test_memory_peak_reflects_touched_memory(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    before = lp.get_workspace_metrics(ws)
    assert before.memory_peak_bytes < 64 << 20
    lp.run_in_workspace(ws, "x = bytearray(200 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1")
    after = lp.get_workspace_metrics(ws)
    assert after.memory_peak_bytes >= 200 << 20
    assert after.memory_current_bytes < after.memory_peak_bytes
    assert after.workspace_id == ws.id


@pytest.mark.usefixtures("metered")
def test_cpu_seconds_reflect_a_busy_loop(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    assert lp.get_workspace_metrics(ws).cpu_seconds < 0.5
    lp.run_in_workspace(
        ws, "import time\nt = time.process_time()\nwhile time.process_time() - t < 1: pass"
    )
    metrics = lp.get_workspace_metrics(ws)
    assert metrics.cpu_seconds >= 0.9
    assert metrics.cpu_user_seconds > 0.1
    assert metrics.cpu_system_seconds >= 0


@pytest.mark.usefixtures("metered")
def test_process_count_and_disk_usage(lp: sandstorm.SyncProvider) -> None:
    ws = lp.create_workspace()
    lp.run_in_workspace(ws, "open('data.bin', 'wb').write(b'x' * (3 << 20))")
    metrics = lp.get_workspace_metrics(ws)
    assert metrics.disk_used_bytes >= 3 << 20
    # nothing runs between runs (the sandbox's init may take a moment to be reaped)
    for _ in range(100):
        if metrics.process_count == 0:
            break
        time.sleep(0.01)
        metrics = lp.get_workspace_metrics(ws)
    assert metrics.process_count == 0
    seen: list[str] = []
    lp.run_in_workspace(
        ws, "import time\nprint('go', flush=True)\ntime.sleep(1.5)", on_stdout=seen.append
    )
    assert "".join(seen) == "go\n"


@pytest.mark.usefixtures("metered")
def test_process_count_while_running(local_root: Path) -> None:
    async def main() -> None:
        provider = sandstorm.get_async_provider("local", root=str(local_root / "count"))
        async with provider:
            ws = await provider.create_workspace()
            started = asyncio.Event()
            run = asyncio.ensure_future(
                provider.run_in_workspace(
                    ws,
                    "import subprocess, time\n"
                    "procs = [subprocess.Popen(['sleep', '5']) for _ in range(3)]\n"
                    "print('up', flush=True)\ntime.sleep(5)",
                    on_stdout=lambda text: started.set(),
                    timeout=3,
                )
            )
            await asyncio.wait_for(started.wait(), 10)
            metrics = await provider.get_workspace_metrics(ws)
            assert metrics.process_count >= 4
            with pytest.raises(sandstorm.ExecutionTimeout):
                await run
            for _ in range(100):
                if (await provider.get_workspace_metrics(ws)).process_count == 0:
                    break
                await asyncio.sleep(0.01)
            assert (await provider.get_workspace_metrics(ws)).process_count == 0
            await provider.delete_workspace(ws)

    asyncio.run(main())
