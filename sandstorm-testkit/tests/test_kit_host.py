"""The whole contract against an honest (but unisolated) host-subprocess provider."""

from __future__ import annotations

import json
import re

import pytest

QUICK = ("-p", "no:cacheprovider")

HOST_LIMITS = {
    "test_timeout_kills_the_process_tree": "no pid namespace: a setsid daemon survives",
    "test_workspaces_are_isolated": "no mount namespace: absolute paths reach other workspaces",
}

SUBCLASSES = """
import pytest
import sandstorm
import sandstorm_testkit as kit
from hostprovider import HostProvider


class HostFixtures:
    @pytest.fixture
    def provider_factory(self):
        return HostProvider.from_config


class TestTimeouts(HostFixtures, kit.TimeoutContract):
    expected_failures = {EXPECTED_TIMEOUTS}


class TestWorkspaces(HostFixtures, kit.WorkspaceContract):
    expected_failures = {EXPECTED_WORKSPACES}


class TestFilesByProviderFixture(kit.FilesContract):
    @pytest.fixture
    async def provider(self):
        async with HostProvider.from_config() as provider:
            yield provider


class TestSync(HostFixtures, kit.SyncFacadeContract):
    pass
"""


def _subclasses(timeouts: dict[str, str], workspaces: dict[str, str]) -> str:
    return SUBCLASSES.replace("{EXPECTED_TIMEOUTS}", repr(timeouts)).replace(
        "{EXPECTED_WORKSPACES}", repr(workspaces)
    )


def test_whole_suite_by_name(kit_dir: pytest.Pytester) -> None:
    result = kit_dir.runpytest(*QUICK, "--sandstorm-provider=host", "--sandstorm-report=r.json")
    # +3 passed, +15 skipped: the agent contracts (INTERPRETER, PROCESSES, PORTS undeclared)
    result.assert_outcomes(passed=84, failed=2, skipped=54)
    data = json.loads((kit_dir.path / "r.json").read_text())
    failed = {t["nodeid"].split("::")[-1] for t in data["tests"] if t["outcome"] == "failed"}
    assert failed == set(HOST_LIMITS)
    assert data["totals"] == {"passed": 84, "failed": 2, "skipped": 54, "xfailed": 0}
    for test in data["tests"]:
        if test["outcome"] != "skipped":
            continue
        reason = test["reason"]
        match = re.fullmatch(r"host (does not declare|declares) (language )?(\w+)(;.*)?", reason)
        assert match, reason
        declared = match[3] in {"persistence", "files", "python", "shell"}
        assert declared == (match[1] == "declares"), reason
    # every undeclared capability has its refusal checked, and nothing else is skipped
    for cap, row in data["matrix"].items():
        if row["declared"] is False:
            assert row["passed"] == 1, (cap, row)
        if row["declared"] is True:
            assert row["skipped"] == 1, (cap, row)


def test_subclass_path_with_expected_failures(kit_dir: pytest.Pytester) -> None:
    kit_dir.makepyfile(
        test_host=_subclasses(
            {
                "test_timeout_kills_the_process_tree": HOST_LIMITS[
                    "test_timeout_kills_the_process_tree"
                ]
            },
            {"test_workspaces_are_isolated": HOST_LIMITS["test_workspaces_are_isolated"]},
        )
    )
    result = kit_dir.runpytest(*QUICK, "test_host.py", "-rx")
    result.assert_outcomes(passed=24, xfailed=2)
    result.stdout.fnmatch_lines(["*XFAIL*test_workspaces_are_isolated*no mount namespace*"])


def test_fixed_quirk_turns_red(kit_dir: pytest.Pytester) -> None:
    kit_dir.makepyfile(
        test_fixed="""
        import pytest
        import sandstorm_testkit as kit
        from hostprovider import HostProvider

        class TestErrors(kit.ErrorContract):
            expected_failures = {"test_unknown_language": "was broken once, fixed since"}

            @pytest.fixture
            def provider_factory(self):
                return HostProvider.from_config
        """
    )
    result = kit_dir.runpytest(*QUICK, "test_fixed.py")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*XPASS?strict?*expected failure: was broken once, fixed since*"])
