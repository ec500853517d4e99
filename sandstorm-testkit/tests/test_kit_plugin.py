"""The plugin: inert by default, clear usage errors, config files, expected-failure checks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

QUICK = ("-p", "no:cacheprovider")

ASYNC_CONFIG_TEST = """
from sandstorm_testkit import AsyncContract

class TestConfig(AsyncContract):
    async def test_config_reaches_provider(self, provider):
        assert provider.name == "host"
        assert provider.config.max_output_bytes == 4096
        assert provider.config.default_timeout == 7
"""


def test_plugin_is_inert(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_plain():
            assert settings.default.max_examples == 100
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "sandstorm" in "\n".join(result.outlines)  # the plugin is loaded (header)


def test_plugin_import_has_no_side_effects() -> None:
    probe = (
        "import sys, threading, sandstorm_testkit.plugin as p; "
        "print(threading.active_count(), sorted(k for k in vars(p) if k.startswith('test')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "[]"]


def test_markers_and_options_are_registered(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest("--markers")
    text = "\n".join(markers.outlines)
    for marker in ("@pytest.mark.requires(", "@pytest.mark.undeclared(", "@pytest.mark.live"):
        assert marker in text
    options = "\n".join(pytester.runpytest("--help").outlines)
    for option in (
        "--sandstorm-provider",
        "--sandstorm-config",
        "--sandstorm-live",
        "--sandstorm-report",
    ):
        assert option in options


def test_unknown_provider_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--sandstorm-provider=sstk-nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no sandstorm provider named 'sstk-nope' is installed (installed:" in result.stderr.str()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("cfg.json", '{"max_output_bytes": 4096, "default_timeout": 7}'),
        ("cfg.toml", "max_output_bytes = 4096\ndefault_timeout = 7\n"),
    ],
)
def test_config_file_reaches_the_provider(kit_dir: pytest.Pytester, name: str, text: str) -> None:
    (kit_dir.path / name).write_text(text)
    kit_dir.makepyfile(test_cfg=ASYNC_CONFIG_TEST)
    result = kit_dir.runpytest(
        *QUICK, "test_cfg.py", "--sandstorm-provider=host", f"--sandstorm-config={name}"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", '{"sstk_bogus": 1}', "sstk_bogus"),
        ("bad.json", "[1, 2]", "must hold one object/table"),
        ("bad.toml", "= nope", "is not valid"),
        ("bad.yaml", "a: 1", "must end in .json or .toml"),
    ],
)
def test_bad_config_file_is_a_usage_error(
    kit_dir: pytest.Pytester, name: str, text: str, message: str
) -> None:
    (kit_dir.path / name).write_text(text)
    result = kit_dir.runpytest("--sandstorm-provider=host", f"--sandstorm-config={name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_missing_provider_fails_with_instructions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from sandstorm_testkit import ErrorContract

        class TestNoProvider(ErrorContract):
            pass
        """
    )
    result = pytester.runpytest(*QUICK, "-k", "unknown_language")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*no provider to test: run pytest with --sandstorm-provider=NAME*"]
    )


def test_expected_failure_typo_is_a_usage_error(kit_dir: pytest.Pytester) -> None:
    kit_dir.makepyfile(
        test_typo="""
        from sandstorm_testkit import ErrorContract

        class TestTypo(ErrorContract):
            expected_failures = {"test_unknown_langauge": "typo", "test_bad_timeout[0]": "ok"}
        """
    )
    result = kit_dir.runpytest("--sandstorm-provider=host", "test_typo.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "TestTypo.expected_failures names no test of the class: test_unknown_langauge" in (
        result.stderr.str()
    )


def test_report_is_written(kit_dir: pytest.Pytester) -> None:
    kit_dir.makepyfile(
        test_report="""
        import pytest
        from sandstorm import Capability
        from sandstorm_testkit import AsyncContract

        class TestSome(AsyncContract):
            expected_failures = {"test_xfails": "documented deviation"}

            async def test_passes(self, provider):
                pass

            @pytest.mark.requires(Capability.GIT)
            async def test_needs_git(self, provider):
                pass

            @pytest.mark.requires(Capability.FILES)
            async def test_files_fail(self, provider):
                assert False

            async def test_xfails(self, provider):
                assert False

        def test_not_a_contract_test():
            pass
        """
    )
    result = kit_dir.runpytest(
        *QUICK, "--sandstorm-provider=host", "test_report.py", "--sandstorm-report=out/r.json"
    )
    result.assert_outcomes(passed=2, failed=1, skipped=1, xfailed=1)
    data = json.loads((kit_dir.path / "out" / "r.json").read_text())
    assert data["provider"] == "host"
    assert data["declared"] == ["files", "persistence"]
    assert data["totals"] == {"passed": 1, "failed": 1, "skipped": 1, "xfailed": 1}
    assert data["matrix"]["core"] == {
        "declared": None,
        "passed": 1,
        "failed": 0,
        "skipped": 0,
        "xfailed": 1,
    }
    assert data["matrix"]["git"] == {
        "declared": False,
        "passed": 0,
        "failed": 0,
        "skipped": 1,
        "xfailed": 0,
    }
    assert data["matrix"]["files"]["failed"] == 1
    reasons = {t["nodeid"].rsplit("::", 1)[1]: t.get("reason") for t in data["tests"]}
    assert reasons["test_needs_git"] == "host does not declare git"
    assert reasons["test_xfails"] == "expected failure: documented deviation"
    markdown = (kit_dir.path / "out" / "r.md").read_text()
    assert "| git | no | 0 | 0 | 1 | 0 |" in markdown
    assert "| files | yes | 0 | 1 | 0 | 0 |" in markdown
    assert (
        "| `test_report.py::TestSome::test_needs_git` | skipped | host does not declare git |"
        in (markdown)
    ), markdown
