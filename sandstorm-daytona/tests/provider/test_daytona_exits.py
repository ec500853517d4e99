"""Every way a program can end leaves no Daytona sandbox behind (the emulator, real socket).

Each scenario runs as a real subprocess (the real signal for the signal cases) using the
provider against the emulator; afterwards the emulator holds no live sandbox and the
program's stderr has no traceback.
"""

from __future__ import annotations

import pytest

from sandstorm_testkit.exits import EXIT_SCENARIOS, run_exit_scenario

from .conftest import live_sandboxes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", sorted(EXIT_SCENARIOS))
def test_exit_path_leaves_nothing(scenario: str, emulator: object) -> None:
    config = {"api_url": emulator.api_url, "api_key": emulator.api_key}  # type: ignore[attr-defined]
    before = set(live_sandboxes(emulator))
    outcome = run_exit_scenario(scenario, "daytona", config)
    assert outcome.returncode in EXIT_SCENARIOS[scenario][2], outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert "has been closed" not in outcome.stderr, outcome.stderr
    assert set(live_sandboxes(emulator)) - before == set()
