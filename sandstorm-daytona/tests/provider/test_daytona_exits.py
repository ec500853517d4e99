"""Every way a program can end leaves no Daytona sandbox behind (the emulator, real socket).

Each scenario runs as a real subprocess (the real signal for the signal cases) using the
provider against the emulator; afterwards the emulator holds no live sandbox and the
program's stderr has no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandstorm_testkit.exits import EXIT_SCENARIOS, leave_behind, run_exit_scenario

from .conftest import live_sandboxes

pytestmark = pytest.mark.slow

_CLI = "import sys; from sandstorm._cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("scenario", sorted(EXIT_SCENARIOS))
def test_exit_path_leaves_nothing(scenario: str, emulator: object) -> None:
    config = {"api_url": emulator.api_url, "api_key": emulator.api_key}  # type: ignore[attr-defined]
    before = set(live_sandboxes(emulator))
    outcome = run_exit_scenario(scenario, "daytona", config)
    assert outcome.returncode in EXIT_SCENARIOS[scenario][2], outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert "has been closed" not in outcome.stderr, outcome.stderr
    assert set(live_sandboxes(emulator)) - before == set()


def test_cli_reap_daytona(emulator: object) -> None:
    api = {"api_url": emulator.api_url, "api_key": emulator.api_key}  # type: ignore[attr-defined]
    left = leave_behind("daytona", api)
    env = {**os.environ, "DAYTONA_API_KEY": api["api_key"], "DAYTONA_API_URL": api["api_url"]}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, "reap", "-p", "daytona", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    dry = cli("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {left['bound']}" in dry.stdout
    assert left["persistent"] not in dry.stdout
    assert f"deleted {left['bound']}" in cli().stdout
    assert f"deleted {left['persistent']}" in cli("--older-than", "0").stdout
    assert not set(left.values()) & set(live_sandboxes(emulator))
