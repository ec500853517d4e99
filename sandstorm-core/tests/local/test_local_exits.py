"""Every way a program can end leaves nothing of the ``local`` provider behind.

Each scenario runs as a real subprocess (the real signal for the signal cases) against a
private state root; afterwards the root holds no workspace and no trash, and the
program's stderr has no traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandstorm_testkit.exits import EXIT_SCENARIOS, run_exit_scenario

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", sorted(EXIT_SCENARIOS))
def test_exit_path_leaves_nothing(
    scenario: str, tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    root = tmp_path / "state"
    outcome = run_exit_scenario(scenario, "local", {"root": str(root)})
    assert outcome.returncode in EXIT_SCENARIOS[scenario][2], outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert "never retrieved" not in outcome.stderr, outcome.stderr
    assert leftovers(root) == []
