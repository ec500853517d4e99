"""The kit catches a provider that lies about a capability, and one that forgets to refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

QUICK = ("-p", "no:cacheprovider")
CRIPPLED = Path(__file__).resolve().with_name("crippledproviders.py")

TESTS = """
import pytest
import sandstorm_testkit as kit
from crippledproviders import {cls}


class Fixtures:
    @pytest.fixture
    def provider_factory(self):
        return {cls}.from_config


class TestMetrics(Fixtures, kit.MetricsContract):
    pass


class TestSnapshots(Fixtures, kit.SnapshotContract):
    pass


class TestCapabilities(Fixtures, kit.CapabilityContract):
    pass
"""


@pytest.fixture
def crippled_dir(kit_dir: pytest.Pytester) -> pytest.Pytester:
    (kit_dir.path / "crippledproviders.py").write_text(CRIPPLED.read_text())
    return kit_dir


def _failed(report: Path) -> set[str]:
    data = json.loads(report.read_text())
    return {t["nodeid"].split("::", 1)[1] for t in data["tests"] if t["outcome"] == "failed"}


def test_declared_but_not_delivered(crippled_dir: pytest.Pytester) -> None:
    crippled_dir.makepyfile(test_liar=TESTS.format(cls="LiarProvider"))
    result = crippled_dir.runpytest(*QUICK, "test_liar.py", "--sandstorm-report=r.json")
    result.assert_outcomes(passed=16, failed=6, skipped=4)  # +3 undeclared agent capabilities
    assert _failed(crippled_dir.path / "r.json") == {
        "TestMetrics::test_metrics_are_plausible",
        "TestMetrics::test_disk_usage_grows_with_files",
        "TestSnapshots::test_restore_reproduces_files",
        "TestSnapshots::test_each_snapshot_restores_its_own_state",
        "TestSnapshots::test_restored_workspaces_share_nothing",
        "TestSnapshots::test_snapshot_of_a_restored_workspace",
    }
    result.stdout.fnmatch_lines(["*burned ~0.6 cpu seconds, the metrics say 0.0*"])


def test_undeclared_but_not_refused(crippled_dir: pytest.Pytester) -> None:
    crippled_dir.makepyfile(test_forgetful=TESTS.format(cls="ForgetfulProvider"))
    result = crippled_dir.runpytest(*QUICK, "test_forgetful.py", "--sandstorm-report=r.json")
    # metrics and snapshot tests are skipped (undeclared); the refusal checks run
    result.assert_outcomes(passed=9, failed=2, skipped=15)
    assert _failed(crippled_dir.path / "r.json") == {
        "TestCapabilities::test_undeclared_capability_raises[cost]",
        "TestCapabilities::test_undeclared_capability_raises[metrics]",
    }
    result.stdout.fnmatch_lines(
        ["*forgetful does not declare cost but accepted: probe 0 returned*"]
    )


def test_declared_but_not_effective_is_skipped_and_refused(crippled_dir: pytest.Pytester) -> None:
    crippled_dir.makepyfile(test_nocg=TESTS.format(cls="NoCgroupsProvider"))
    result = crippled_dir.runpytest(*QUICK, "test_nocg.py", "--sandstorm-report=r.json")
    data = json.loads((crippled_dir.path / "r.json").read_text())
    outcomes = {t["nodeid"].split("::", 1)[1]: t for t in data["tests"]}
    assert data["totals"]["failed"] == 0, result.outlines[-30:]
    # the metrics tests skip for what this instance lacks, not for the declaration
    metrics = [t for name, t in outcomes.items() if name.startswith("TestMetrics::")]
    assert metrics
    for test in metrics:
        assert test["outcome"] == "skipped", test
        assert test["reason"] == (
            "no-cgroups declares metrics; not among its effective_capabilities() here"
        )
    # ... and the refusal check runs for it as for an undeclared capability
    refusal = outcomes["TestCapabilities::test_undeclared_capability_raises[metrics]"]
    assert refusal["outcome"] == "passed"


HANGS = """
import pytest
import sandstorm_testkit as kit
from crippledproviders import {cls}


class TestTimeouts(kit.TimeoutContract):
    @pytest.fixture
    def provider_factory(self):
        return {cls}.from_config


class TestSync(kit.SyncFacadeContract):
    @pytest.fixture
    def provider_factory(self):
        return {cls}.from_config
"""


@pytest.mark.parametrize("cls", ["BlockingProvider", "NeverReturnsProvider"])
def test_a_hanging_provider_fails_its_tests_and_the_session_reports(
    crippled_dir: pytest.Pytester, cls: str
) -> None:
    crippled_dir.makepyfile(test_hang=HANGS.format(cls=cls))
    result = crippled_dir.runpytest_subprocess(
        *QUICK,
        "test_hang.py",
        "-k",
        "test_timeout_raises_with_partial_output or test_sync_timeout",
        "--sandstorm-timeout=4",
        "--sandstorm-report=r.json",
        timeout=120,
    )
    assert _failed(crippled_dir.path / "r.json") == {
        "TestTimeouts::test_timeout_raises_with_partial_output",
        "TestSync::test_sync_timeout",
    }
    result.stdout.fnmatch_lines(["*did not finish within 4 s: the provider hung*"])
    assert result.duration < 100
