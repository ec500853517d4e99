"""The short chaos run: R1, R2 and R4 of ``benchmarks/chaos.py`` at a size CI can afford.

The full version (1,000 faulty runs, 200 cancellations, 25 random keys) is
``uv run python benchmarks/chaos.py``; these tests run the very same functions.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "chaos.py"


@pytest.fixture(scope="module")
def chaos() -> ModuleType:
    """``benchmarks/chaos.py``, loaded from the repository."""
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} is not here (not a repository checkout)")
    spec = importlib.util.spec_from_file_location("sandstorm_chaos_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_r1_faults_never_leak_and_only_raise_sandstorm_errors(chaos: ModuleType) -> None:
    result = chaos.r1(runs=60, concurrency=6, seed=3)
    assert result.ok + sum(result.sandstorm_errors.values()) == result.runs, result
    assert not result.other_errors, result.other_errors
    assert result.wrong_output == 0
    assert result.over_deadline == 0
    assert max(result.durations) < result.deadline
    assert result.left_behind == []
    # the full run asks >= 99 % of 1,000; 60 runs allow a little more chance
    assert result.success_rate >= 0.95, dict(result.sandstorm_errors)


def test_r2_cancelled_runs_leave_nothing_behind(chaos: ModuleType) -> None:
    result = chaos.r2(async_runs=10, sync_runs=10, seed=5)
    assert result.left_behind == []
    assert not result.errors, result.errors
    assert result.cancelled + result.interrupted > 0  # the cancels really landed mid-run
    if not result.sync_skipped:
        assert result.interrupted > 0


def test_r4_the_api_key_never_shows(chaos: ModuleType) -> None:
    result = chaos.r4(examples=3)
    assert result.examples >= 3
    assert result.texts_checked["log"] > 0
    assert result.texts_checked["audit"] > 0
    assert result.texts_checked["exception"] > 0
    assert result.leaks == []


# The two failure kinds R1 found (since fixed in the provider), each pinned to one
# deterministic fault. Seed 1 makes the rule's first draw fail (0.13 < 0.5) and its second
# pass (0.85): only requests matching a rule draw from its generator, so the first matching
# request fails and its retry does not.


def _one_run_against(chaos: ModuleType, rule: object) -> tuple[object, list[str]]:
    import asyncio

    from sandstorm_daytona.emulator import EmulatorConfig, Faults, running_emulator

    async def go(emu: object) -> object:
        async with chaos.provider_for(emu) as provider:
            try:
                return await provider.run("print(1)")
            except Exception as exc:
                return exc

    with running_emulator(EmulatorConfig(faults=Faults(seed=1, rules=(rule,)))) as emu:
        outcome = asyncio.run(go(emu))
        return outcome, chaos.live_sandboxes(emu)


def test_lost_delete_reply_does_not_fail_the_run(chaos: ModuleType) -> None:
    from sandstorm_daytona.emulator import FaultRule

    rule = FaultRule(path="/api/sandbox/*", method="DELETE", kind=504, when="after", rate=0.5)
    outcome, left = _one_run_against(chaos, rule)
    assert left == []
    assert not isinstance(outcome, Exception), repr(outcome)


def test_exec_refused_before_running_is_resent(chaos: ModuleType) -> None:
    from sandstorm_daytona.emulator import FaultRule

    rule = FaultRule(path="/toolbox/*/process/session/*/exec", method="POST", kind=503, rate=0.5)
    outcome, left = _one_run_against(chaos, rule)
    assert left == []
    assert not isinstance(outcome, Exception), repr(outcome)
