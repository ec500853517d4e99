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
    # the agent contracts (INTERPRETER, PROCESSES, PORTS undeclared) add 3 passed, 16 skipped
    result.assert_outcomes(passed=97, failed=2, skipped=59)
    data = json.loads((kit_dir.path / "r.json").read_text())
    failed = {t["nodeid"].split("::")[-1] for t in data["tests"] if t["outcome"] == "failed"}
    assert failed == set(HOST_LIMITS)
    assert data["totals"] == {"passed": 97, "failed": 2, "skipped": 59, "xfailed": 0}
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
    result.assert_outcomes(passed=29, xfailed=2)
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


def test_plain_command_takes_a_deviations_file(kit_dir: pytest.Pytester) -> None:
    lines = [f'{name} = "{reason}"' for name, reason in HOST_LIMITS.items()]
    kit_dir.makefile(".toml", deviations="[expected-failures]\n" + "\n".join(lines))
    result = kit_dir.runpytest(
        *QUICK,
        "--sandstorm-provider=host",
        "--sandstorm-expected-failures=deviations.toml",
        "-k",
        "test_timeout_kills_the_process_tree or test_workspaces_are_isolated "
        "or (test_exit_code and not logs)",
    )
    result.assert_outcomes(passed=3, xfailed=2)
    assert result.ret == 0


def test_plain_command_takes_pyproject_deviations_strictly(kit_dir: pytest.Pytester) -> None:
    kit_dir.makefile(
        ".toml",
        pyproject='[tool.sandstorm-testkit.expected-failures]\ntest_exit_code = "claimed"\n',
    )
    result = kit_dir.runpytest(
        *QUICK, "--sandstorm-provider=host", "-k", "test_exit_code and not logs"
    )
    # the provider does not deviate: a strict expected failure that passes fails the run
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*XPASS(strict)*claimed*"])


def test_deviation_naming_no_test_is_a_usage_error(kit_dir: pytest.Pytester) -> None:
    kit_dir.makefile(".json", deviations='{"test_no_such_thing": "typo"}')
    result = kit_dir.runpytest(
        *QUICK, "--sandstorm-provider=host", "--sandstorm-expected-failures=deviations.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected failures name no collected contract test*"])
