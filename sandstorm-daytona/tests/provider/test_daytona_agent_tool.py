"""``examples/agent_tool.py`` runs unchanged on ``daytona`` (the emulator, real socket)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import live_sandboxes

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "agent_tool.py"

pytestmark = pytest.mark.slow


def test_agent_tool_on_daytona(emulator: object) -> None:
    env = {
        **os.environ,
        "SANDSTORM_PROVIDER": "daytona",
        "DAYTONA_API_KEY": emulator.api_key,  # type: ignore[attr-defined]
        "DAYTONA_API_URL": emulator.api_url,  # type: ignore[attr-defined]
    }
    before = set(live_sandboxes(emulator))
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "20/20 conversations on daytona" in done.stdout
    assert "Traceback" not in done.stderr
    assert set(live_sandboxes(emulator)) - before == set()
