"""A one-shot run's sandbox is deleted behind its result, and never leaked at exit.

The scripts below run in a child interpreter against the emulator (loopback) and exit
without closing their provider: the deletes still in flight must be finished anyway.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from .conftest import live_sandboxes

ASYNC_NO_CLOSE = """
import asyncio, sys
from sandstorm_daytona import DaytonaConfig, DaytonaProvider

async def main():
    cfg = DaytonaConfig.load({"api_key": sys.argv[2], "api_url": sys.argv[1]}, environ={})
    provider = DaytonaProvider(cfg)  # never closed
    results = await asyncio.gather(*(provider.run(f"print({i})") for i in range(3)))
    print(" ".join(r.stdout.strip() for r in results), flush=True)

asyncio.run(main())
"""

SYNC_NO_CLOSE = """
import sys
from sandstorm import SyncProvider
from sandstorm_daytona import DaytonaConfig, DaytonaProvider

cfg = DaytonaConfig.load({"api_key": sys.argv[2], "api_url": sys.argv[1]}, environ={})
provider = SyncProvider(DaytonaProvider(cfg))  # never closed
print(" ".join(provider.run(f"print({i})").stdout.strip() for i in range(3)), flush=True)
"""


@pytest.fixture(scope="module")
def emu() -> Iterator[object]:
    from sandstorm_daytona.emulator import EmulatorConfig, FaultRule, Faults, running_emulator

    # slow deletes: still in flight when the script's last line has run
    slow = FaultRule(path="/api/sandbox/*", method="DELETE", kind="latency", rate=1, latency=0.5)
    with running_emulator(EmulatorConfig(faults=Faults(rules=(slow,)))) as emulator:
        yield emulator


@pytest.mark.parametrize("script", [ASYNC_NO_CLOSE, SYNC_NO_CLOSE], ids=["asyncio.run", "sync"])
def test_exit_without_close_leaves_no_sandbox(emu: object, script: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), emu.api_url, emu.api_key],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "2"]
    assert live_sandboxes(emu) == []
    counts = emu.emulator.request_counts  # type: ignore[attr-defined]
    assert counts["DELETE /api/sandbox/{sandbox}"] >= 3
    counts.clear()
