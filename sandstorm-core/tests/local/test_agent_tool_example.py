"""``examples/agent_tool.py`` runs unchanged on ``local`` and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "agent_tool.py"

pytestmark = pytest.mark.slow


def test_agent_tool_on_local(tmp_path: Path, leftovers: Callable[[Path], list[str]]) -> None:
    root = tmp_path / "state"
    env = {**os.environ, "SANDSTORM_PROVIDER": "local", "SANDSTORM_LOCAL_ROOT": str(root)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "20/20 conversations on local" in done.stdout
    assert "Traceback" not in done.stderr
    assert leftovers(root) == []
