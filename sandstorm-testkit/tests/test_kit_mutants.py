"""The kit catches bugs: every one-bug variant of the reference adapter fails it.

The default lane runs the shipped adapter (it must pass the plain command with its
deviations) and a few mutants sampled per run; ``-m slow`` runs every mutant and prints
the kit's mutation score. Each mutant runs only the kit tests that target it, in a
subprocess with a short ``--sandstorm-timeout`` so a hanging mutant fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reaper
from kit_mutants import MUTANTS, Mutant, build

KIT_TIMEOUT = 12
"""--sandstorm-timeout for a mutant's run: its tests take seconds, a hang fails at once."""
SAMPLE = 3
PYPROJECT = """
[tool.sandstorm-testkit.expected-failures]
test_workspaces_are_isolated = "plain host processes: an absolute path reaches other workspaces"
"""
CONFTEST = """
import sandstorm
sandstorm.register_provider("subproc", "subproc_provider:SubprocProvider")
"""


def _project(directory: Path, mutant: Mutant | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    build(directory, mutant)
    (directory / "pyproject.toml").write_text(PYPROJECT)
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "subproc.json").write_text(json.dumps({"root": str(directory / "state")}))
    return directory


def _kit(directory: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the kit on the project in ``directory``, under the reaper (a mutant may leak)."""
    env = {**os.environ, "SANDSTORM_HYPOTHESIS_PROFILE": "sandstorm-live"}
    return subprocess.run(
        reaper.command(
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--sandstorm-provider=subproc",
            "--sandstorm-config=subproc.json",
            f"--sandstorm-timeout={KIT_TIMEOUT}",
            "--sandstorm-report=report.json",
            "-q",
            *args,
            timeout=timeout,
        ),
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,  # the reaper's own deadline comes first
        check=False,
    )


def _caught(directory: Path, mutant: Mutant) -> tuple[bool, str]:
    """Whether the kit fails the mutant; a one-line account of what happened."""
    _project(directory, mutant)
    started = time.monotonic()
    done = _kit(directory, "-k", mutant.catch, timeout=KIT_TIMEOUT * 6)
    if done.returncode == reaper.TIMED_OUT:
        return False, f"{mutant.id}: the kit itself hung"
    took = time.monotonic() - started
    if not (directory / "report.json").exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return False, f"{mutant.id}: the kit did not run ({done.returncode}): {tail}"
    report = json.loads((directory / "report.json").read_text())
    ran = report["totals"]["passed"] + report["totals"]["failed"]
    failed = report["totals"]["failed"]
    ok = done.returncode == 1 and failed >= 1 and ran >= 1
    return ok, f"{mutant.id}: {failed}/{ran} targeted tests failed in {took:.0f} s"


def _sample() -> list[Mutant]:
    seed = os.environ.get("SANDSTORM_MUTANT_SEED") or datetime.now(UTC).strftime("%Y%m%d")
    return random.Random(seed).sample(list(MUTANTS), SAMPLE)


def test_the_catalogue_is_big_enough() -> None:
    assert len(MUTANTS) >= 40
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)


def test_reference_adapter_passes_the_plain_command(tmp_path: Path) -> None:
    directory = _project(tmp_path / "subproc", None)
    done = _kit(directory, timeout=600)
    report = json.loads((directory / "report.json").read_text())
    assert done.returncode == 0, done.stdout[-3000:]
    assert report["totals"]["failed"] == 0
    xfailed = [t["nodeid"] for t in report["tests"] if t["outcome"] == "xfailed"]
    assert xfailed == ["::TestWorkspaces::test_workspaces_are_isolated"] or all(
        x.endswith("test_workspaces_are_isolated") for x in xfailed
    ), xfailed


@pytest.mark.parametrize("mutant", _sample(), ids=lambda m: m.id)
def test_sampled_mutant_fails_the_kit(
    tmp_path: Path, mutant: Mutant, request: pytest.FixtureRequest
) -> None:
    slow_lane = "test_every_mutant_fails_the_kit"
    if any(getattr(item, "originalname", "") == slow_lane for item in request.session.items):
        pytest.skip("the slow lane runs every mutant in this session")
    ok, account = _caught(tmp_path, mutant)
    assert ok, account


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_every_mutant_fails_the_kit(tmp_path: Path, mutant: Mutant) -> None:
    """The slow lane: one item per mutant, so parallel workers share them out (conftest.py
    prints the mutation score at the end of the session)."""
    ok, account = _caught(tmp_path, mutant)
    assert ok, account


def test_the_docs_show_the_shipped_reference_adapter() -> None:
    root = Path(__file__).resolve().parents[2]
    adapter = (root / "examples" / "subproc_provider.py").read_text()
    doc = (root / "docs" / "write-a-provider.md").read_text()
    assert f"```python\n{adapter}```" in doc
    assert len(adapter.splitlines()) < 100
